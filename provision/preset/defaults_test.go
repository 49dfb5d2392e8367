package preset

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
)

// TestDefaultsValidate: the default presets pass the check every API
// applies, with and without the credentials; the inform preset keeps the
// interval at most DefaultInformInterval, leaving a shorter one alone;
// its prefetch names the parameters its arguments read.
func TestDefaultsValidate(t *testing.T) {
	for _, creds := range []bool{true, false} {
		for _, p := range Defaults(creds) {
			if err := Validate(&p); err != nil {
				t.Fatalf("Defaults(%v) %s: %v", creds, p.Name, err)
			}
			if strings.Contains(strings.Join(provisionPaths(p), " "), "ConnectionRequest") != (creds && p.Name == DefaultInform) {
				t.Fatalf("Defaults(%v) %s: provisions %v", creds, p.Name, p.Provisions)
			}
		}
	}
	ds := Defaults(true)
	inform, err := Compile(&ds[1])
	if err != nil {
		t.Fatal(err)
	}
	const param = "Device.ManagementServer.PeriodicInformInterval"
	var arg *expr.Expr
	for _, pr := range inform.Provisions {
		if s, _ := pr.Args[0].Literal(); s.Any() == param {
			arg = pr.Args[1]
		}
	}
	for _, tt := range []struct {
		have expr.Value
		want float64
	}{
		{expr.NumberValue(86400), 300}, {expr.NumberValue(60), 60}, {expr.NumberValue(300), 300},
		{expr.NumberValue(0), 300}, {expr.Value{}, 300}, {expr.StringValue("60"), 60},
	} {
		env := expr.Env{Lookup: func(p string) (expr.Value, bool) { return tt.have, p == param && !tt.have.IsNull() }, Now: time.Now()}
		if got := arg.Eval(env); fmt.Sprint(got.Any()) != fmt.Sprint(tt.want) {
			t.Errorf("interval %v: declared %v, want %v", tt.have.Any(), got.Any(), tt.want)
		}
	}
	paths := Prefetch([]*Compiled{inform}, Session{Now: time.Now()})
	if !contains(paths, param) || !contains(paths, CRPasswordPath) {
		t.Errorf("prefetch %v: want the interval and the password it reads", paths)
	}
}

func provisionPaths(p fleet.Preset) []string {
	var out []string
	for _, pr := range p.Provisions {
		if len(pr) > 1 {
			if s, ok := pr[1].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestValidate: what Compile refuses, and built-ins whose literal
// arguments a session would refuse, are errors naming the field;
// expression arguments and scripts' provisions are left to the edge.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		p     fleet.Preset
		field string // "" = valid
	}{
		{"valid", fleet.Preset{Name: "a", Provisions: [][]any{{"value", "A.B", "x"}, {"refresh", "A."}}}, ""},
		{"script", fleet.Preset{Name: "a", Provisions: [][]any{{"myScript", 1.0, "x"}}}, ""},
		{"expression argument", fleet.Preset{Name: "a", Provisions: [][]any{{"value", "A.B", []any{"PARAM", "A.C"}}}}, ""},
		{"bad precondition", fleet.Preset{Name: "a", Precondition: "A.B = ", Provisions: [][]any{}}, "precondition"},
		{"bad refresh path", fleet.Preset{Name: "a", Provisions: [][]any{{"refresh", "A..B"}}}, "provisions[0]"},
		{"value without one", fleet.Preset{Name: "a", Provisions: [][]any{{"refresh", "A."}, {"value", "A.B"}}}, "provisions[1]"},
		{"tag not boolean", fleet.Preset{Name: "a", Provisions: [][]any{{"tag", "x", "yes"}}}, "provisions[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(&tt.p)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || ErrorFields(err)["field"] != tt.field {
				t.Fatalf("Validate: %v (fields %v), want an error in %s", err, ErrorFields(err), tt.field)
			}
		})
	}
}
