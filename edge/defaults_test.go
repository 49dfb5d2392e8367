package edge

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/preset"
	"github.com/edgeacs/edgeacs/sim"
)

// TestDefaultPresetsProvision: the default presets on TR-098 and TR-181
// devices. The bootstrap session refreshes the whole tree and the inform
// preset sets the connection-request credentials (the serial number and
// a random password the edge keeps), enables the periodic inform and
// brings a day-long interval down to 300 s; a device informing every
// minute keeps its minute. Later sessions send nothing.
func TestDefaultPresetsProvision(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		for _, tt := range []struct{ interval, want string }{{"86400", "300"}, {"60", "60"}} {
			t.Run(model+"/"+tt.interval, func(t *testing.T) {
				c := openTestCache(t, "")
				if made, err := c.SeedDefaultPresets(preset.Defaults(true)); err != nil || !made {
					t.Fatalf("SeedDefaultPresets: %v %v", made, err)
				}
				cpe := newSimCPE(t, c, model, 5)
				root := cpe.root()
				ms := root + "ManagementServer."
				cpe.dev.SetValues([]cwmp.ParameterValue{{Name: ms + "PeriodicInformInterval", Value: tt.interval},
					{Name: ms + "PeriodicInformEnable", Value: "false"}}, "")
				log := cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
				if fs := cpe.faults(); len(fs) != 0 {
					t.Fatalf("faults %+v", fs)
				}
				// The whole tree is in the cache, not just what the Inform carried.
				if p, ok := cpe.cached(root + "DeviceInfo.ModelName"); !ok || p.Value != cpe.get(root+"DeviceInfo.ModelName") {
					t.Fatalf("ModelName not refreshed: %+v (RPCs %v)", p, log)
				}
				d, err := c.Device(cpe.id())
				if err != nil {
					t.Fatal(err)
				}
				if d.CRUsername != cpe.dev.Serial() || len(d.CRPassword) != 24 {
					t.Fatalf("the edge keeps credentials %q/%q", d.CRUsername, d.CRPassword)
				}
				if got := cpe.get(ms + "ConnectionRequestPassword"); got != d.CRPassword {
					t.Fatalf("device password %q, edge's %q", got, d.CRPassword)
				}
				if got := cpe.get(ms + "ConnectionRequestUsername"); got != d.CRUsername {
					t.Fatalf("device username %q, edge's %q", got, d.CRUsername)
				}
				if got := cpe.get(ms + "PeriodicInformInterval"); got != tt.want {
					t.Fatalf("PeriodicInformInterval %s, want %s", got, tt.want)
				}
				if got := cpe.get(ms + "PeriodicInformEnable"); got != "true" {
					t.Fatalf("PeriodicInformEnable %s", got)
				}
				if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
					t.Fatalf("periodic session sent %v", log)
				}
				// A new life: the password is made again (the CPE's is back
				// to its default), the tree refreshed.
				log = cpe.session(cwmp.EventBootstrap)
				d2, _ := c.Device(cpe.id())
				if d2.CRPassword == "" || d2.CRPassword == d.CRPassword || cpe.get(ms+"ConnectionRequestPassword") != d2.CRPassword {
					t.Fatalf("after a bootstrap: password %q (was %q), RPCs %v", d2.CRPassword, d.CRPassword, log)
				}
			})
		}
	}
}

// TestDefaultPresetsOnce: a standalone edge makes the default presets at
// its first start; they are listed like any preset, and what the
// operator does to them (an edit, a delete) survives restarts. With
// manual_cr_credentials the inform preset sets no credentials.
func TestDefaultPresetsOnce(t *testing.T) {
	dir := t.TempDir()
	e := startEdge(t, dir, nil)
	list := func(e *testEdge) map[string]fleet.Preset {
		t.Helper()
		code, body := apiDo(t, e, "GET", "/api/v1/presets", "")
		var ps []fleet.Preset
		if code != 200 || json.Unmarshal([]byte(body), &ps) != nil {
			t.Fatalf("list presets: %d %s", code, body)
		}
		out := map[string]fleet.Preset{}
		for _, p := range ps {
			out[p.Name] = p
		}
		return out
	}
	ps := list(e)
	if len(ps) != 2 || ps["bootstrap"].Events["0 BOOTSTRAP"] != true || len(ps["inform"].Provisions) == 0 {
		t.Fatalf("default presets %+v", ps)
	}
	if code, body := apiDo(t, e, "DELETE", "/api/v1/presets/inform", ""); code != 204 {
		t.Fatalf("delete inform: %d %s", code, body)
	}
	if code, body := apiDo(t, e, "PUT", "/api/v1/presets/bootstrap", `{"events": {"0 BOOTSTRAP": true}, "provisions": [["refresh", "Device.DeviceInfo."]]}`); code != 200 {
		t.Fatalf("edit bootstrap: %d %s", code, body)
	}
	e.stop()
	e = startEdge(t, dir, nil)
	ps = list(e)
	if _, ok := ps["inform"]; ok || len(ps) != 1 || ps["bootstrap"].Provisions[0][1] != "Device.DeviceInfo." {
		t.Fatalf("after a restart: %+v", ps)
	}

	e = startEdge(t, "", func(c *Config) { c.ManualCRCredentials = true })
	for _, pr := range list(e)["inform"].Provisions {
		if path, _ := pr[1].(string); strings.Contains(path, "ConnectionRequest") {
			t.Fatalf("manual_cr_credentials: the inform preset sets %s", path)
		}
	}
}

// TestSeedDefaultPresets: the seed stores what is missing, keeps a
// preset the operator stored under a default's name, and happens once.
func TestSeedDefaultPresets(t *testing.T) {
	c := openTestCache(t, "")
	mine := &fleet.Preset{Name: "inform", Provisions: [][]any{{"tag", "mine", true}}}
	if err := c.PutPreset(mine); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		made, err := c.SeedDefaultPresets(preset.Defaults(true))
		if err != nil || made != want {
			t.Fatalf("seed %d: made %v, %v", i, made, err)
		}
	}
	ps, err := c.Presets()
	if err != nil || len(ps) != 2 || !slices.ContainsFunc(ps, func(p fleet.Preset) bool { return p.Name == "bootstrap" }) {
		t.Fatalf("presets %+v %v", ps, err)
	}
	if p, _ := c.Preset("inform"); p.Provisions[0][0] != "tag" {
		t.Fatalf("the operator's inform preset was replaced: %+v", p)
	}
	if err := c.DeletePreset("bootstrap"); err != nil {
		t.Fatal(err)
	}
	if made, _ := c.SeedDefaultPresets(preset.Defaults(true)); made {
		t.Fatal("a deleted default was made again")
	}
}

// TestInterimPresets: an edge synced to a core runs the default presets
// until its core has sent anything fleet-wide (CPEs informing at a new
// edge still get their connection-request credentials); from then on it
// runs the core's presets only, none if the core has none.
func TestInterimPresets(t *testing.T) {
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, EdgeID: "e1", InterimPresets: preset.Defaults(true)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cpe := newSimCPE(t, c, sim.ModelTR098, 9)
	cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
	if d, err := c.Device(cpe.id()); err != nil || d.CRPassword == "" {
		t.Fatalf("no credentials from the interim presets: %+v %v", d, err)
	}
	if ps, _ := c.Presets(); len(ps) != 0 {
		t.Fatalf("interim presets stored: %+v", ps)
	}
	// The core speaks (a token, no preset): its presets rule, and it has
	// none: a new life gets no credentials.
	tok := fleet.Token{Name: "t", Scope: fleet.ScopeRead, Hash: strings.Repeat("ab", 32), Created: t0}
	mustStore(t, c, fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownToken, Token: &tok})
	cpe.session(cwmp.EventBootstrap)
	if d, _ := c.Device(cpe.id()); d.CRPassword != "" {
		t.Fatalf("the interim presets still ran after the core spoke: %+v", d)
	}
}

// TestInterimPresetsHandOver: the downlink that brings the core's presets
// lands while a session is deciding which presets to run. The session
// runs either the interim presets or the core's, never none. It found
// none when the stored presets and the downlink position were read in
// two views (a bootstrap lost for good: the device's next session has no
// 0 BOOTSTRAP, and it got no connection-request credentials).
func TestInterimPresetsHandOver(t *testing.T) {
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, EdgeID: "e1", InterimPresets: preset.Defaults(true)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	landed := false
	c.afterPresetsListed = func() {
		if landed {
			return
		}
		landed = true
		var recs []fleet.DownRecord
		for i, p := range preset.Defaults(true) {
			recs = append(recs, fleet.DownRecord{Seq: uint64(i + 1), Shared: true, Kind: fleet.DownPreset, Preset: &p})
		}
		mustStore(t, c, recs...)
	}
	cpe := newSimCPE(t, c, sim.ModelTR098, 9)
	cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
	if !landed {
		t.Fatal("the session did not read the presets")
	}
	d, err := c.Device(cpe.id())
	if err != nil || d.CRPassword == "" {
		t.Fatalf("no credentials from the bootstrap that ran while the core's presets arrived: %+v %v", d, err)
	}
	if params, err := c.Parameters(cpe.id()); err != nil || len(params) < 100 {
		t.Fatalf("the bootstrap's refresh did not run: %d parameters cached (%v)", len(params), err)
	}
	if ps, _ := c.Presets(); len(ps) != 2 {
		t.Fatalf("the core's presets were not stored: %+v", ps)
	}
}
