package preset

import (
	"slices"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
)

func mustCompile(t *testing.T, ps ...fleet.Preset) []*Compiled {
	t.Helper()
	var out []*Compiled
	for i := range ps {
		c, err := Compile(&ps[i])
		if err != nil {
			t.Fatalf("Compile(%s): %v", ps[i].Name, err)
		}
		out = append(out, c)
	}
	return out
}

func names(cs []*Compiled) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

var sessionNow = time.Date(2024, 6, 3, 2, 30, 0, 0, time.UTC) // a Monday

func env(m map[string]expr.Value) expr.Env { return expr.MapEnv(m, time.Time{}) }

func TestMatchEvents(t *testing.T) {
	ps := mustCompile(t,
		fleet.Preset{Name: "bootstrap", Events: map[string]bool{"0 BOOTSTRAP": true}},
		fleet.Preset{Name: "boot-not-bootstrap", Events: map[string]bool{"1 BOOT": true, "0_BOOTSTRAP": false}},
		fleet.Preset{Name: "always"},
		fleet.Preset{Name: "periodic", Events: map[string]bool{"2 PERIODIC": true}},
		fleet.Preset{Name: "reboot-method", Events: map[string]bool{"M Reboot": true}},
	)
	for _, tc := range []struct {
		events []string
		want   []string
	}{
		{[]string{"0 BOOTSTRAP", "1 BOOT"}, []string{"always", "bootstrap"}},
		{[]string{"1 BOOT"}, []string{"always", "boot-not-bootstrap"}},
		{[]string{"1_BOOT", "M  Reboot"}, []string{"always", "boot-not-bootstrap", "reboot-method"}},
		{[]string{"2 PERIODIC"}, []string{"always", "periodic"}},
		{nil, []string{"always"}},
	} {
		got := names(Match(ps, Session{Events: tc.events, Now: sessionNow}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("events %q: matched %q, want %q", tc.events, got, tc.want)
		}
	}
}

func TestMatchPrecondition(t *testing.T) {
	ps := mustCompile(t,
		fleet.Preset{Name: "old-firmware", Precondition: `Device.DeviceInfo.SoftwareVersion <> "2.0"`},
		fleet.Preset{Name: "big-uptime", Precondition: `Device.DeviceInfo.UpTime > 86400`},
		fleet.Preset{Name: "untagged", Precondition: `Tags.done IS NULL`},
		fleet.Preset{Name: "recent-boot", Precondition: `Events.1_BOOT > NOW() - 3600 * 1000`},
		fleet.Preset{Name: "hg-models", Precondition: `DeviceID.ProductClass LIKE 'HG%'`},
	)
	for _, tc := range []struct {
		params map[string]expr.Value
		want   []string
	}{
		// Nothing known: only IS NULL holds; <> with NULL is NULL, not true.
		{nil, []string{"untagged"}},
		{map[string]expr.Value{
			"Device.DeviceInfo.SoftwareVersion": expr.FromCWMP("1.9", "xsd:string"),
			"Device.DeviceInfo.UpTime":          expr.FromCWMP("90000", "xsd:unsignedInt"),
			"Tags.done":                         expr.BoolValue(true),
			"Events.1_BOOT":                     expr.TimeValue(sessionNow.Add(-time.Minute)),
			"DeviceID.ProductClass":             expr.StringValue("HG8245"),
		}, []string{"big-uptime", "hg-models", "old-firmware", "recent-boot"}},
		{map[string]expr.Value{
			"Device.DeviceInfo.SoftwareVersion": expr.StringValue("2.0"),
			"Device.DeviceInfo.UpTime":          expr.FromCWMP("100", "xsd:unsignedInt"),
			"Events.1_BOOT":                     expr.TimeValue(sessionNow.Add(-2 * time.Hour)),
			"DeviceID.ProductClass":             expr.StringValue("hg8245"),
		}, []string{"untagged"}},
		// An untyped string still compares as a number against a number.
		{map[string]expr.Value{"Device.DeviceInfo.UpTime": expr.FromCWMP("90000", "")}, []string{"big-uptime", "untagged"}},
	} {
		got := names(Match(ps, Session{Now: sessionNow, Env: env(tc.params)}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("params %v: matched %q, want %q", tc.params, got, tc.want)
		}
	}
	// Env.Now wins over Session.Now for NOW() when set.
	e := env(map[string]expr.Value{"Events.1_BOOT": expr.TimeValue(sessionNow.Add(-time.Minute))})
	e.Now = sessionNow.Add(2 * time.Hour)
	if got := names(Match(ps[3:4], Session{Now: sessionNow, Env: e})); len(got) != 0 {
		t.Errorf("Env.Now ignored: %q", got)
	}
}

func TestMatchScheduleWeightAndName(t *testing.T) {
	ps := mustCompile(t,
		fleet.Preset{Name: "c", Weight: 1},
		fleet.Preset{Name: "b", Weight: 1},
		fleet.Preset{Name: "a", Weight: 2},
		fleet.Preset{Name: "z", Weight: -5},
		fleet.Preset{Name: "night", Weight: 0, Schedule: "3600 0 2 * * *"},
		fleet.Preset{Name: "noon", Weight: 0, Schedule: "3600 0 12 * * *"},
	)
	got := names(Match(ps, Session{Now: sessionNow}))
	if want := []string{"z", "night", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Fatalf("matched %q, want %q", got, want)
	}
	// The input is not reordered.
	if names(ps)[0] != "c" {
		t.Fatal("Match sorted its input")
	}
	got = names(Match(ps, Session{Now: sessionNow.Add(10 * time.Hour)}))
	if want := []string{"z", "noon", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Fatalf("at noon: matched %q, want %q", got, want)
	}
}

func TestMatchChannels(t *testing.T) {
	ps := mustCompile(t,
		fleet.Preset{Name: "fw", Channel: "firmware", Weight: 3, Provisions: [][]any{{"download", "1 Firmware Upgrade Image", "fw.bin"}}},
		fleet.Preset{Name: "fw-tag", Channel: "firmware", Weight: 4, Provisions: [][]any{{"tag", "upgraded", true}}},
		fleet.Preset{Name: "wifi", Channel: "wifi", Weight: 2, Provisions: [][]any{{"value", "Device.WiFi.SSID.1.SSID", "x"}}},
		fleet.Preset{Name: "inform", Weight: 1, Provisions: [][]any{{"refresh", "Device.DeviceInfo.", 3600}}},
		fleet.Preset{Name: "inform2", Channel: "default", Weight: 5, Provisions: [][]any{{"reboot"}}},
	)
	matched := Match(ps, Session{Now: sessionNow})
	groups := Groups(matched)
	var chans []string
	for _, g := range groups {
		chans = append(chans, g.Channel)
	}
	if want := []string{"default", "wifi", "firmware"}; !slices.Equal(chans, want) {
		t.Fatalf("channels %q, want %q", chans, want)
	}
	if got := names(groups[0].Presets); !slices.Equal(got, []string{"inform", "inform2"}) {
		t.Fatalf("default channel %q", got)
	}
	var provs []string
	for _, p := range groups[2].Provisions() {
		provs = append(provs, p.Name)
	}
	if !slices.Equal(provs, []string{"download", "tag"}) {
		t.Fatalf("firmware provisions %q", provs)
	}

	faulted := func(ch string) bool { return ch == "firmware" }
	got := names(Match(ps, Session{Now: sessionNow, Faulted: faulted}))
	if want := []string{"inform", "wifi", "inform2"}; !slices.Equal(got, want) {
		t.Fatalf("with firmware faulted: %q, want %q", got, want)
	}
	got = names(Match(ps, Session{Now: sessionNow, Only: "firmware"}))
	if want := []string{"fw", "fw-tag"}; !slices.Equal(got, want) {
		t.Fatalf("firmware only: %q, want %q", got, want)
	}
	if g := Groups(nil); len(g) != 0 {
		t.Fatal(g)
	}
}

func TestPrefetch(t *testing.T) {
	ps := mustCompile(t,
		fleet.Preset{Name: "a", Weight: 2, Precondition: `Device.X = 1 AND Tags.t IS NULL`},
		fleet.Preset{Name: "b", Weight: 1, Precondition: `Device.Y.*.Z = 'q' OR Device.X > 0`},
		fleet.Preset{Name: "boot-only", Events: map[string]bool{"1 BOOT": true}, Precondition: `Device.Boot = 1`},
		fleet.Preset{Name: "faulted", Channel: "bad", Precondition: `Device.Bad = 1`},
		fleet.Preset{Name: "off-schedule", Schedule: "60 0 0 12 * * *", Precondition: `Device.Noon = 1`},
		fleet.Preset{Name: "none"},
	)
	s := Session{Now: sessionNow, Faulted: func(ch string) bool { return ch == "bad" }}
	if got, want := Prefetch(ps, s), []string{"Device.Y.*.Z", "Device.X", "Tags.t"}; !slices.Equal(got, want) {
		t.Fatalf("Prefetch = %q, want %q", got, want)
	}
	s.Events = []string{"1 BOOT"}
	if got, want := Prefetch(ps, s), []string{"Device.Boot", "Device.Y.*.Z", "Device.X", "Tags.t"}; !slices.Equal(got, want) {
		t.Fatalf("Prefetch on boot = %q, want %q", got, want)
	}
	if got := names(Candidates(ps, s)); !slices.Equal(got, []string{"boot-only", "none", "b", "a"}) {
		t.Fatalf("Candidates = %q", got)
	}
}
