package expr

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// FuzzParseExpr checks that no input panics Parse or Eval, that every
// refusal is a positioned *Error, and that String is a fixed point:
// printing a parsed expression and parsing it again prints the same and
// names the same paths.
func FuzzParseExpr(f *testing.F) {
	for _, s := range []string{
		`a = 1`, swv + ` <> "1.2.3" AND DeviceID.ProductClass LIKE 'HG8%'`,
		`Tags.x IS NULL OR NOT Tags.y IS NOT NULL`, `a - -1 * (b + 2) / 3 % 4`,
		`'it''s' || "\u00e9\n" || 1e21 || 1e-7`, `NOW() - 3600000 < Events.Inform`,
		`CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END`, `COALESCE(a, UPPER(b), ROUND(c, 2))`,
		`a.*.b.[K:"v]"].c LIKE '5!%' ESCAPE '!'`, `(((a)))`, `x*2`, `a..b`, `1.2.3`,
		`"\ud83d\ude00"`, `"\ud800"`, `a != b`, `Device.{x}`, `a = 1 = 2`, "\xff",
	} {
		f.Add(s)
	}
	env := Env{
		Lookup: func(p string) (Value, bool) {
			switch len(p) % 4 {
			case 0:
				return StringValue(p), true
			case 1:
				return NumberValue(float64(len(p))), true
			case 2:
				return BoolValue(len(p)%3 == 0), true
			}
			return Value{}, false
		},
		Now: time.Unix(1717243200, 0),
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): %v is not a positioned ErrSyntax", s, err)
			}
			if pe.Offset < 0 || pe.Offset > len(s) || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("Parse(%q): bad position %+v", s, pe)
			}
			return
		}
		out := e.String()
		e2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) printed %q, which does not parse: %v", s, out, err)
		}
		if out2 := e2.String(); out2 != out {
			t.Fatalf("Parse(%q): String not a fixed point:\n%s\n%s", s, out, out2)
		}
		if !slices.Equal(e.Paths(), e2.Paths()) {
			t.Fatalf("Parse(%q): paths %q then %q", s, e.Paths(), e2.Paths())
		}
		for _, p := range e.Paths() {
			if err := CheckPath(p); err != nil {
				t.Fatalf("Parse(%q) names path %q that CheckPath refuses: %v", s, p, err)
			}
		}
		v1, v2 := e.Eval(env), e2.Eval(env)
		if !v1.Equal(v2) {
			t.Fatalf("Parse(%q): %v, re-parsed %v", s, v1, v2)
		}
	})
}
