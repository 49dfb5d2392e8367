package provision

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// Names of GenieACS's built-in provisions.
const (
	ProvisionRefresh   = "refresh"
	ProvisionValue     = "value"
	ProvisionTag       = "tag"
	ProvisionReboot    = "reboot"
	ProvisionReset     = "reset"
	ProvisionDownload  = "download"
	ProvisionInstances = "instances"
)

// Builtin reports whether name is a built-in provision.
func Builtin(name string) bool {
	switch name {
	case ProvisionRefresh, ProvisionValue, ProvisionTag, ProvisionReboot, ProvisionReset,
		ProvisionDownload, ProvisionInstances:
		return true
	}
	return false
}

// ErrShadowsBuiltin means a provision script would take a built-in's
// name: a preset naming it would run the built-in, never the script.
var ErrShadowsBuiltin = errors.New("provision: the name of a built-in provision")

// CheckScriptName refuses a provision script's name that is a
// built-in's (wrapping ErrShadowsBuiltin), for the APIs that store
// scripts: refused at PUT time rather than silently never run.
func CheckScriptName(name string) error {
	if Builtin(name) {
		return fmt.Errorf("%w: %q is a built-in provision, which presets naming it run; give the script another name", ErrShadowsBuiltin, name)
	}
	return nil
}

// Provision declares a built-in provision on the collector's channel,
// with GenieACS's names and arguments (as a preset or a task lists them,
// JSON-decoded: strings, float64 or json.Number, bools):
//
//	refresh(path[, age])                 path and everything below it read within age seconds (default 1: now)
//	value(path, value)                   parameter(s) set; value may be [value, type]
//	tag(name, true|false)                device tag added or removed
//	reboot()                             a Reboot in this run
//	reset()                              a FactoryReset in this run
//	download(fileType, fileName[, target]) a Download in this run
//	instances(path, count|"+n"|"-n")     instance count of a table, absolute or relative to now
//
// Errors wrap ErrUnknownProvision (not a built-in: perhaps a script),
// ErrBadArguments, ErrBadPath or ErrTooMany.
func (c *Collector) Provision(name string, args ...any) error {
	now := c.r.opts.Now
	str := func(i int) (string, bool) {
		if i >= len(args) {
			return "", false
		}
		s, ok := args[i].(string)
		return s, ok
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: %s(%s): %s", ErrBadArguments, name, describeArgs(args), why)
	}
	parse := func(s string) (Path, error) {
		p, err := ParsePath(s)
		if err != nil {
			return Path{}, fmt.Errorf("%s: %w", name, err)
		}
		return p, nil
	}
	switch name {
	case ProvisionRefresh:
		s, ok := str(0)
		if !ok || len(args) > 2 {
			return bad("want (path[, age seconds])")
		}
		age := 1.0
		if len(args) == 2 {
			n, ok := number(args[1])
			if !ok || n < 0 || n > 100*365*86400 {
				return bad("age must be a number of seconds")
			}
			if n > 0 {
				age = n
			}
		}
		p, err := parse(s)
		if err != nil {
			return err
		}
		t := refreshBoundary(now, time.Duration(age*float64(time.Second)), c.r.opts.DeviceID)
		// Writable flags come with the listing of objects; a
		// parameter's refresh needs only its value (GenieACS also asks
		// for its writable flag, an extra GetParameterNames).
		return c.declare(&decl{path: p, deep: true, ts: Timestamps{Path: t, Value: t}})
	case ProvisionValue:
		s, ok := str(0)
		var raw any
		switch {
		case ok && len(args) == 2:
			raw = args[1]
		case ok && len(args) == 3:
			if attr, _ := str(1); attr != "value" {
				return fmt.Errorf("%w: %s attribute %v", ErrUnsupported, name, args[1])
			}
			raw = args[2]
		default:
			return bad("want (path, value)")
		}
		v, err := declaredValue(raw)
		if err != nil {
			return bad(err.Error())
		}
		p, err := parse(s)
		if err != nil {
			return err
		}
		return c.declare(&decl{path: p, value: &v})
	case ProvisionTag:
		s, ok := str(0)
		var on, isBool bool
		if len(args) == 2 {
			on, isBool = args[1].(bool)
		}
		if !ok || !isBool || !validName(s) {
			return bad("want (name, true|false)")
		}
		p := Path{Segments: []Segment{{Name: RootTags}, {Name: s}}}
		return c.declare(&decl{kind: kTag, path: p, tag: s, on: on})
	case ProvisionReboot, ProvisionReset:
		if len(args) != 0 {
			return bad("takes no arguments")
		}
		kind, root := kReboot, RootReboot
		if name == ProvisionReset {
			kind, root = kReset, RootFactoryReset
		}
		return c.declare(&decl{kind: kind, path: Path{Segments: []Segment{{Name: root}}}, when: now})
	case ProvisionDownload:
		ft, ok1 := str(0)
		fn, ok2 := str(1)
		target, ok3 := str(2)
		if !ok1 || !ok2 || (len(args) == 3 && !ok3) || len(args) > 3 || fn == "" {
			return bad("want (fileType, fileName[, targetFileName])")
		}
		dl := DownloadRequest{FileType: ft, FileName: fn, TargetFileName: target}
		p := Path{Segments: []Segment{{Name: RootDownloads}, {Kind: Alias, Terms: []AliasTerm{
			{Key: "FileName", Value: fn}, {Key: "FileType", Value: ft}, {Key: "TargetFileName", Value: target}}},
			{Name: "Download"}}}
		return c.declare(&decl{kind: kDownload, path: p, dl: dl, when: now})
	case ProvisionInstances:
		s, ok := str(0)
		if !ok || len(args) != 2 {
			return bad("want (path, count)")
		}
		d := &decl{}
		switch v := args[1].(type) {
		case string:
			v = strings.TrimSpace(v)
			n, err := strconv.Atoi(v)
			if err != nil || n < -1<<20 || n > 1<<20 {
				return bad("count must be a number, \"+n\" or \"-n\"")
			}
			if strings.HasPrefix(v, "+") || strings.HasPrefix(v, "-") {
				d.relative, d.rel = true, n
				d.inst = &Instances{}
			} else {
				d.inst = Count(n)
			}
		default:
			n, ok := number(v)
			if !ok || n < 0 || n > 1<<20 || n != math.Trunc(n) {
				return bad("count must be a whole number")
			}
			d.inst = Count(int(n))
		}
		p, err := parse(s)
		if err != nil {
			return err
		}
		d.path = p
		return c.declare(d)
	}
	return fmt.Errorf("%w: %q", ErrUnknownProvision, name)
}

// Provisions declares a list of provisions, each [name, args...] as a
// preset or task carries them, stopping at the first error.
func (c *Collector) Provisions(list [][]any) error {
	for _, p := range list {
		if len(p) == 0 {
			return fmt.Errorf("%w: empty provision", ErrBadArguments)
		}
		name, ok := p[0].(string)
		if !ok {
			return fmt.Errorf("%w: provision name %v is not a string", ErrBadArguments, p[0])
		}
		if err := c.Provision(name, p[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// declaredValue converts a provision's value argument: a string, number
// or boolean (the parameter's own type is kept) or [value, type].
func declaredValue(raw any) (Value, error) {
	if pair, ok := raw.([]any); ok {
		if len(pair) != 2 {
			return Value{}, errors.New("value must be v or [v, type]")
		}
		typ, ok := pair[1].(string)
		if !ok {
			return Value{}, errors.New("type must be a string")
		}
		v, err := declaredValue(pair[0])
		v.Type = typ
		return v, err
	}
	switch v := raw.(type) {
	case string:
		return Value{Value: v}, nil
	case bool:
		return Value{Value: strconv.FormatBool(v)}, nil
	case time.Time:
		return Value{Value: v.UTC().Format(time.RFC3339Nano), Type: "xsd:dateTime"}, nil
	}
	if n, ok := number(raw); ok {
		return Value{Value: strconv.FormatFloat(n, 'f', -1, 64)}, nil
	}
	return Value{}, fmt.Errorf("value %v is not a string, number or boolean", raw)
}

// number reads a JSON number in any of the forms a decoder produces.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func describeArgs(args []any) string {
	b, err := json.Marshal(args)
	if err != nil {
		return "…"
	}
	s := string(b)
	return clip(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
}

// refreshBoundary is the time data must have been read since for a
// refresh every `every`: the last boundary of a grid of that period,
// shifted per device so that a fleet's refreshes spread over the period
// (GenieACS's scheduling interval and variance).
func refreshBoundary(now time.Time, every time.Duration, deviceID string) time.Time {
	ms := every.Milliseconds()
	if ms <= 0 {
		ms = 1000
	}
	sum := md5.Sum([]byte(deviceID))
	h := binary.LittleEndian.Uint32(sum[0:]) ^ binary.LittleEndian.Uint32(sum[4:]) ^
		binary.LittleEndian.Uint32(sum[8:]) ^ binary.LittleEndian.Uint32(sum[12:])
	offset := int64(h) % ms
	t := now.UnixMilli()
	return time.UnixMilli((t+offset)/ms*ms - offset)
}

// ErrNotProvisionTask means a task kind has no provision form; the
// caller runs it as a plain RPC (getParameterNames, the attribute tasks,
// upload, scheduleInform, getRPCMethods).
var ErrNotProvisionTask = errors.New("provision: task kind has no provision form")

// TaskChannel is the channel of a task's provisions, as GenieACS names it.
func TaskChannel(taskID string) string { return "task_" + taskID }

// TaskProvisions returns the built-in provisions GenieACS runs a task as,
// on channel TaskChannel(t.ID), so that tasks and presets share one
// engine: getParameterValues → refresh per name; setParameterValues →
// value per [name, value, type]; refreshObject → refresh; addObject →
// instances "<object>.[values as alias]" "+1"; deleteObject → instances
// "<object>" 0; reboot → reboot; factoryReset → reset; download →
// download. Other kinds wrap ErrNotProvisionTask.
func TaskProvisions(t *fleet.Task) ([][]any, error) {
	obj := strings.TrimSuffix(t.ObjectName, ".")
	switch t.Name {
	case fleet.TaskGetParameterValues:
		out := make([][]any, 0, len(t.ParameterNames))
		for _, n := range t.ParameterNames {
			out = append(out, []any{ProvisionRefresh, n})
		}
		return out, nil
	case fleet.TaskSetParameterValues:
		out := make([][]any, 0, len(t.ParameterValues))
		for _, pv := range t.ParameterValues {
			var v any = pv.Value
			if pv.Type != "" {
				v = []any{pv.Value, pv.Type}
			}
			out = append(out, []any{ProvisionValue, pv.Name, v})
		}
		return out, nil
	case fleet.TaskRefreshObject:
		return [][]any{{ProvisionRefresh, t.ObjectName}}, nil
	case fleet.TaskAddObject:
		terms := make([]string, 0, len(t.ParameterValues))
		for _, pv := range t.ParameterValues {
			terms = append(terms, pv.Name+":"+quote(pv.Value))
		}
		return [][]any{{ProvisionInstances, obj + ".[" + strings.Join(terms, ",") + "]", "+1"}}, nil
	case fleet.TaskDeleteObject:
		return [][]any{{ProvisionInstances, obj, 0.0}}, nil
	case fleet.TaskReboot:
		return [][]any{{ProvisionReboot}}, nil
	case fleet.TaskFactoryReset:
		return [][]any{{ProvisionReset}}, nil
	case fleet.TaskDownload:
		return [][]any{{ProvisionDownload, t.FileType, t.FileName, t.TargetFileName}}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNotProvisionTask, t.Name)
}
