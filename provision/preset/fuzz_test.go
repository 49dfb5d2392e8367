package preset

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
)

// FuzzCompilePreset feeds preset JSON (as a PUT body would carry it) to
// Compile: nothing may panic, every refusal is an *Error wrapping
// ErrInvalid, and what compiles can be matched, its precondition prints to
// something that parses back the same, and its schedule survives a
// re-parse of its own String.
func FuzzCompilePreset(f *testing.F) {
	for _, s := range []string{
		genieJSON,
		`{"weight": 1, "channel": "wifi", "provisions": [["value", "Device.WiFi.SSID.1.SSID", "x"]]}`,
		`{"precondition": "{\"_tags\": {\"$ne\": \"done\"}, \"a\": {\"$gte\": 3}}", "provisions": []}`,
		`{"precondition": "a = ", "provisions": []}`,
		`{"schedule": "60 */5 1-3,7 * jan-mar mon", "provisions": [["reboot"]]}`,
		`{"schedule": "86400 0 0 0 29 2 *", "events": {"1 BOOT": true}}`,
		`{"provisions": [["x", ["+", ["PARAM", "a"], 1], null, true, -1.5]]}`,
		`{"channel": "task_1"}`, `{"provisions": [[]]}`, `{"events": {"": true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p fleet.Preset
		if json.Unmarshal(data, &p) != nil {
			return
		}
		p.Name = "fuzz"
		c, err := Compile(&p)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile: %v is not an *Error wrapping ErrInvalid", err)
			}
			return
		}
		if c.Precondition != nil {
			s := c.Precondition.String()
			e, err := expr.Parse(s)
			if err != nil || e.String() != s {
				t.Fatalf("precondition %q printed %q: %v", p.Precondition, s, err)
			}
		}
		if c.Schedule != nil {
			s2, err := ParseSchedule(c.Schedule.String())
			if err != nil || s2.String() != c.Schedule.String() {
				t.Fatalf("schedule %q: %v", c.Schedule, err)
			}
			c.Schedule.InWindow(time.Unix(1717243200, 0))
		}
		lookup := func(string) (expr.Value, bool) { return expr.StringValue("1"), true }
		s := Session{Events: []string{"1 BOOT"}, Now: time.Unix(1717243200, 0), Env: expr.Env{Lookup: lookup}}
		Prefetch([]*Compiled{c}, s)
		for _, g := range Groups(Match([]*Compiled{c}, s)) {
			for _, pr := range g.Provisions() {
				pr.Values(s.Env)
			}
		}
	})
}
