package preset

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
)

// Bounds on a preset, beyond those on its precondition (expr.MaxLen etc.).
const (
	MaxProvisions = 256 // provisions in one preset
	MaxArgs       = 64  // arguments of one provision
	MaxEvents     = 32  // entries in events
	MaxNameLen    = 128 // bytes of a provision name, a channel or an event
)

// DefaultChannel is the channel of a preset that names none, GenieACS's
// name for it, so a fault's ID reads the same in both.
const DefaultChannel = "default"

// taskChannelHead starts the channels GenieACS gives tasks ("task_<id>"):
// a preset may not take one, or its faults would mix with a task's.
const taskChannelHead = "task_"

// ErrInvalid is wrapped by every error Compile and ParseSchedule return:
// the preset cannot be stored (400 at PUT time).
var ErrInvalid = errors.New("invalid preset")

// Error says which part of which preset is wrong. It wraps ErrInvalid and
// the cause, so errors.As finds an *expr.Error (with its line and column)
// behind a bad precondition.
type Error struct {
	Preset string // the preset's name, if it has one yet
	Field  string // "precondition", "schedule", "provisions[2][1]", ...
	Err    error
}

// Error names the preset and the field: `preset "p": schedule: ...`.
func (e *Error) Error() string {
	msg := strings.TrimPrefix(e.Err.Error(), ErrInvalid.Error()+": ")
	if e.Preset != "" {
		return fmt.Sprintf("preset %q: %s: %s", e.Preset, e.Field, msg)
	}
	return e.Field + ": " + msg
}

// Unwrap returns ErrInvalid and the cause.
func (e *Error) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// Compiled is a preset checked and ready to match: its precondition
// parsed, its schedule and provisions validated. It is immutable and safe
// for concurrent use.
type Compiled struct {
	Name   string
	Weight int
	// Channel groups presets for fault isolation. An empty channel is
	// GenieACS's "default", so faults are keyed the same way.
	Channel string
	// Events maps event codes with their whitespace runs turned into "_"
	// ("0 BOOTSTRAP" → "0_BOOTSTRAP", as GenieACS keys them) to whether the
	// session must (true) or must not (false) carry that event.
	Events map[string]bool
	// Precondition is nil when the preset has none (it always holds).
	Precondition *expr.Expr
	// Schedule is nil when the preset has none (any time will do).
	Schedule   *Schedule
	Provisions []Provision
}

// Provision is one provision call: a name (a built-in such as "refresh",
// "value", "tag", "reboot", "reset", "download", "instances", or a
// provision script's) and its arguments.
type Provision struct {
	Name string
	// Args are the arguments as expressions: a JSON scalar is a literal
	// (a string argument is always a string, never parsed), an array is an
	// expression in GenieACS's array form.
	Args []*expr.Expr
}

// Values evaluates the arguments, for a provision whose arguments may read
// parameters or NOW(); literal arguments evaluate to themselves.
func (p Provision) Values(env expr.Env) []expr.Value {
	out := make([]expr.Value, len(p.Args))
	for i, a := range p.Args {
		out[i] = a.Eval(env)
	}
	return out
}

// Compile checks p as GenieACS would load it and more strictly: the
// precondition must parse (an expression, or a legacy MongoDB-style query
// given as a JSON string), the schedule must parse, every provision must
// be a non-empty array starting with its name, arguments must be scalars
// or expression arrays, channel and event names must be sane. The name
// itself is the caller's to check (the core's rule for names). Every error
// is an *Error wrapping ErrInvalid.
func Compile(p *fleet.Preset) (*Compiled, error) {
	fail := func(field string, err error) (*Compiled, error) {
		return nil, &Error{Preset: p.Name, Field: field, Err: err}
	}
	c := &Compiled{Name: p.Name, Weight: p.Weight, Channel: p.Channel}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if err := checkName("channel", p.Channel, true); err != nil {
		return fail("channel", err)
	}
	if strings.HasPrefix(p.Channel, taskChannelHead) {
		return fail("channel", fmt.Errorf("%w: channel %q: names starting with %q are task channels", ErrInvalid, clip(p.Channel), taskChannelHead))
	}
	if len(p.Events) > MaxEvents {
		return fail("events", fmt.Errorf("%w: more than %d events", ErrInvalid, MaxEvents))
	}
	c.Events = make(map[string]bool, len(p.Events))
	for ev, want := range p.Events {
		if err := checkName("event", ev, false); err != nil {
			return fail("events", err)
		}
		k := EventKey(ev)
		if w, dup := c.Events[k]; dup && w != want {
			return fail("events", fmt.Errorf("%w: event %q is both required and excluded", ErrInvalid, clip(k)))
		}
		c.Events[k] = want
	}
	if src := strings.TrimSpace(p.Precondition); src != "" {
		var err error
		if src[0] == '{' {
			c.Precondition, err = parseLegacy(src)
		} else {
			c.Precondition, err = expr.Parse(p.Precondition)
		}
		if err != nil {
			return fail("precondition", err)
		}
	}
	if strings.TrimSpace(p.Schedule) != "" {
		s, err := ParseSchedule(p.Schedule)
		if err != nil {
			return fail("schedule", err)
		}
		c.Schedule = s
	}
	if len(p.Provisions) > MaxProvisions {
		return fail("provisions", fmt.Errorf("%w: more than %d provisions", ErrInvalid, MaxProvisions))
	}
	for i, raw := range p.Provisions {
		at := fmt.Sprintf("provisions[%d]", i)
		if len(raw) == 0 {
			return fail(at, fmt.Errorf("%w: empty provision (want [name, args...])", ErrInvalid))
		}
		name, ok := raw[0].(string)
		if !ok {
			return fail(at+"[0]", fmt.Errorf("%w: a provision starts with its name, a string", ErrInvalid))
		}
		if err := checkName("provision name", name, false); err != nil {
			return fail(at+"[0]", err)
		}
		if len(raw)-1 > MaxArgs {
			return fail(at, fmt.Errorf("%w: more than %d arguments", ErrInvalid, MaxArgs))
		}
		pr := Provision{Name: name, Args: make([]*expr.Expr, 0, len(raw)-1)}
		for j, a := range raw[1:] {
			e, err := compileArg(a)
			if err != nil {
				return fail(fmt.Sprintf("%s[%d]", at, j+1), err)
			}
			pr.Args = append(pr.Args, e)
		}
		c.Provisions = append(c.Provisions, pr)
	}
	return c, nil
}

func compileArg(a any) (*expr.Expr, error) {
	if v, ok := expr.LiteralJSON(a); ok {
		return expr.Lit(v), nil
	}
	if _, ok := a.([]any); ok {
		e, err := expr.FromJSON(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return e, nil
	}
	return nil, fmt.Errorf("%w: an argument must be a string, number, boolean, null or an expression array, not %s", ErrInvalid, kindOf(a))
}

func kindOf(a any) string {
	switch a.(type) {
	case map[string]any, map[any]any:
		return "an object"
	case float64, float32, int, int64, uint64:
		return "a non-finite number"
	}
	return fmt.Sprintf("%T", a)
}

// checkName bounds the names a preset carries into fault IDs, logs and
// session state.
func checkName(what, s string, emptyOK bool) error {
	switch {
	case s == "" && emptyOK:
		return nil
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q contains a control character", ErrInvalid, what, clip(s))
		}
	}
	return nil
}

// EventKey is how GenieACS keys an event code: whitespace runs become
// "_", so "0 BOOTSTRAP" and "0_BOOTSTRAP" are the same event (and
// Events.0_BOOTSTRAP the parameter holding its time).
func EventKey(code string) string {
	if !strings.ContainsAny(code, " \t\n\r\v\f") {
		return code
	}
	var b strings.Builder
	space := false
	for _, r := range code {
		if r == ' ' || (r >= '\t' && r <= '\r') {
			space = true
			continue
		}
		if space {
			b.WriteByte('_')
			space = false
		}
		b.WriteRune(r)
	}
	if space {
		b.WriteByte('_')
	}
	return b.String()
}

func clip(s string) string {
	if utf8.RuneCountInString(s) > 60 {
		return string([]rune(s)[:57]) + "..."
	}
	return s
}
