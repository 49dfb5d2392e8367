package preset

import (
	"errors"
	"fmt"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/expr"
)

// Validate checks a preset as an API that stores one must (the core's,
// a standalone edge's): Compile, then a dry run of the built-in
// provisions whose arguments are all literals, with the parser and
// argument checks a session applies (a refresh path that does not parse,
// a value without one). A provision with an expression argument is
// checked only where the expression has its values; a provision
// script's name is not looked up (a script may be stored later). So a
// mistake is a 400 at PUT time rather than a fault at every device's
// next inform. The name is the caller's to check. Errors are *Error
// wrapping ErrInvalid (and an *expr.Error for a precondition: see
// ErrorFields).
func Validate(p *fleet.Preset) error {
	c, err := Compile(p)
	if err != nil {
		return err
	}
	if err := fleet.ValidateHistory(p.History); err != nil {
		return &Error{Preset: p.Name, Field: "history", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
	}
	run := provision.NewRun(provision.Options{Now: time.Unix(0, 0)})
	col, err := run.Channel(c.Channel)
	if err != nil {
		return &Error{Preset: p.Name, Field: "channel", Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
	}
	for i, pr := range c.Provisions {
		if !provision.Builtin(pr.Name) {
			continue // a provision script's: checked when it runs
		}
		args := make([]any, 0, len(pr.Args))
		for _, a := range pr.Args {
			v, ok := a.Literal()
			if !ok {
				args = nil
				break
			}
			args = append(args, v.Any())
		}
		if args == nil && len(pr.Args) > 0 {
			continue
		}
		if err := col.Provision(pr.Name, args...); err != nil && !errors.Is(err, provision.ErrTooMany) {
			return &Error{Preset: p.Name, Field: fmt.Sprintf("provisions[%d]", i), Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
	}
	return nil
}

// ErrorFields says where a Validate or Compile error is, for the
// answer to a refused PUT: "field", and for a precondition "line",
// "column" and "offset". Empty for other errors.
func ErrorFields(err error) map[string]any {
	out := map[string]any{}
	var pe *Error
	if errors.As(err, &pe) {
		out["field"] = pe.Field
	}
	var ee *expr.Error
	if errors.As(err, &ee) {
		out["line"], out["column"], out["offset"] = ee.Line, ee.Column, ee.Offset
	}
	return out
}
