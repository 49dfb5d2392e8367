package core

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestAPIPresetValidation: PUT /presets/{name} compiles the preset as the
// edges will (precondition, schedule, provisions, built-in arguments) and
// answers 400 with where the mistake is; nothing reaches the log.
func TestAPIPresetValidation(t *testing.T) {
	nodes := newCluster(t, 1, nil)
	n := nodes[0]
	type answer struct {
		Error  string `json:"error"`
		Field  string `json:"field"`
		Line   int    `json:"line"`
		Column int    `json:"column"`
	}
	bad := []struct {
		name, body string
		field      string
		line, col  int
		says       string
	}{
		{"precondition syntax", `{"precondition": "DeviceID.ProductClass = 'X' AND\n  (Tags.a = ", "provisions": [["refresh", "A."]]}`,
			"precondition", 2, 13, "line 2, column 13"},
		{"precondition legacy json", `{"precondition": "{\"a\": {\"$bogus\": 1}}", "provisions": []}`, "precondition", 0, 0, "precondition"},
		{"schedule", `{"schedule": "60 * * *", "provisions": []}`, "schedule", 0, 0, "schedule"},
		{"task channel", `{"channel": "task_1", "provisions": []}`, "channel", 0, 0, "task channels"},
		{"object argument", `{"provisions": [["value", {"a": 1}]]}`, "provisions[0][1]", 0, 0, "argument"},
		{"refresh bad path", `{"provisions": [["refresh", "A..B"]]}`, "provisions[0]", 0, 0, "provisions[0]"},
		{"value without value", `{"provisions": [["value", "A.B"]]}`, "provisions[0]", 0, 0, "want (path, value)"},
		{"tag not boolean", `{"provisions": [["tag", "x", "yes"]]}`, "provisions[0]", 0, 0, "tag"},
		{"instances bad count", `{"provisions": [["instances", "A.B.*", "lots"]]}`, "provisions[0]", 0, 0, "count"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var a answer
			if code := do(t, "PUT", api(n, "/presets/p1"), tt.body, &a); code != 400 {
				t.Fatalf("PUT %s: %d %+v, want 400", tt.body, code, a)
			}
			if a.Field != tt.field || !strings.Contains(a.Error, tt.says) {
				t.Fatalf("answer %+v, want field %q and an error saying %q", a, tt.field, tt.says)
			}
			if tt.line != 0 && (a.Line != tt.line || a.Column != tt.col) {
				t.Fatalf("position %d:%d, want %d:%d (%s)", a.Line, a.Column, tt.line, tt.col, a.Error)
			}
		})
	}
	if ps, _ := n.fsm.Presets(); len(ps) != len(defaultPresets()) {
		t.Fatalf("a refused preset was stored: %d presets besides the defaults", len(ps)-len(defaultPresets()))
	}

	// Accepted: GenieACS's shapes, a script's provision (checked where it
	// runs) and an expression argument (evaluated at the edge).
	good := []string{
		`{"weight": 0, "channel": "", "events": {"0 BOOTSTRAP": true, "1 BOOT": false}, "precondition": "", "provisions": [["refresh", "InternetGatewayDevice."]]}`,
		`{"precondition": "DeviceID.ProductClass LIKE 'HG8%' AND Tags.beta IS NULL", "schedule": "3600 0 2 * * *", "provisions": [["value", "Device.WiFi.SSID.1.SSID", "lab"], ["tag", "done", true]]}`,
		`{"precondition": "{\"_tags\": \"beta\"}", "provisions": [["myScript", 1, "two", null]]}`,
		`{"provisions": [["value", "Device.ManagementServer.PeriodicInformInterval", ["+", 200, 100]], ["instances", "Device.IP.Interface.[Alias:wan]", 1]]}`,
	}
	for i, body := range good {
		if code := do(t, "PUT", api(n, "/presets/g"+string(rune('0'+i))), body, nil); code != 200 {
			t.Fatalf("PUT %s: %d, want 200", body, code)
		}
	}
}

// TestFSMStoredPresetCheckAcceptsOldPresets: the state machine's check
// stays as permissive as every earlier API was, so a replayed log applies
// alike; expression arrays, which the API now accepts, apply too.
func TestFSMStoredPresetCheckAcceptsOldPresets(t *testing.T) {
	f := mustFSM(t)
	for _, p := range []*fleet.Preset{
		{Name: "old", Precondition: "this is not an expression", Provisions: [][]any{{"refresh", "A..B"}}},
		{Name: "expr", Provisions: [][]any{{"value", "A.B", []any{"+", 1.0, 2.0}}}},
	} {
		mustApply(t, f, Command{Op: OpPutPreset, Preset: p})
	}
	if ps, _ := f.Presets(); len(ps) != 2 {
		t.Fatalf("presets: %d, want 2", len(ps))
	}
}

// TestFSMSeedPresets: the default presets are stored once in a cluster's
// life, with their fleet-wide downlink records; a preset the operator
// stored under a default's name first is kept, and one deleted or edited
// after the seed is not made again.
func TestFSMSeedPresets(t *testing.T) {
	f := mustFSM(t)
	mine := &fleet.Preset{Name: "inform", Provisions: [][]any{{"tag", "mine", true}}}
	mustApply(t, f, Command{Op: OpPutPreset, Preset: mine})
	if f.PresetsSeeded() {
		t.Fatal("seeded before any seed")
	}
	mustApply(t, f, Command{Op: OpSeedPresets, Presets: defaultPresets()})
	if !f.PresetsSeeded() {
		t.Fatal("not seeded")
	}
	ps, err := f.Presets()
	if err != nil || len(ps) != 2 || ps[0].Name != "bootstrap" || ps[1].Provisions[0][0] != "tag" {
		t.Fatalf("presets after the seed: %+v %v", ps, err)
	}
	mustApply(t, f, Command{Op: OpDeletePreset, Name: "bootstrap"})
	mustApply(t, f, Command{Op: OpSeedPresets, Presets: defaultPresets()})
	if ps, _ := f.Presets(); len(ps) != 1 {
		t.Fatalf("a second seed made %+v", ps)
	}
	rs, err := f.Downlink("e1", 0, 0, 0)
	if err != nil || kinds(rs) != "preset preset preset-delete" || rs[1].Preset.Name != "bootstrap" {
		t.Fatalf("shared log %s %v", kinds(rs), err)
	}
	if r := applyAt(t, f, Command{Op: OpSeedPresets, Presets: []*fleet.Preset{{Name: "a/b", Provisions: [][]any{}}}})[0]; !errors.Is(r.Err, ErrBadRequest) {
		t.Fatalf("a bad preset in a seed: %v", r.Err)
	}
}

// TestClusterDefaultPresets: a founded cluster has the default presets,
// which pass the API's own validation, and they are there before the
// admin token (an edge that has the token has them).
func TestClusterDefaultPresets(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	var ps []fleet.Preset
	if code := do(t, "GET", api(n, "/presets"), nil, &ps); code != 200 || len(ps) != 2 || ps[0].Name != "bootstrap" || ps[1].Name != "inform" {
		t.Fatalf("presets of a new cluster: %d %+v", code, ps)
	}
	for i := range ps {
		if err := ValidatePreset(&ps[i]); err != nil {
			t.Errorf("default preset %s: %v", ps[i].Name, err)
		}
	}
	rs, err := n.fsm.Downlink("e1", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range rs {
		order = append(order, r.Kind.String())
	}
	if len(order) < 3 || order[0] != "preset" || order[1] != "preset" || order[2] != "token" {
		t.Fatalf("shared log of a new cluster: %v, want the presets before the token", order)
	}
}
