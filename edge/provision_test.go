package edge

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
	"github.com/edgeacs/edgeacs/sim"
)

// putPresets stores presets as the core's downlink delivers them.
func putPresets(t testing.TB, c *Cache, ps ...*fleet.Preset) {
	t.Helper()
	_, shared, err := c.DownlinkAcked()
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]fleet.DownRecord, len(ps))
	for i, p := range ps {
		recs[i] = fleet.DownRecord{Seq: shared + uint64(i) + 1, Shared: true, Kind: fleet.DownPreset, Preset: p}
	}
	if err := c.StoreDownlink(recs); err != nil {
		t.Fatalf("StoreDownlink: %v", err)
	}
}

// dropDefaultPresets deletes the presets a standalone edge made at its
// first start, for tests of what a session does without them.
func dropDefaultPresets(t testing.TB, c *Cache) {
	t.Helper()
	for _, p := range preset.Defaults(true) {
		if err := c.DeletePreset(p.Name); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
}

func deletePreset(t testing.TB, c *Cache, name string) {
	t.Helper()
	_, shared, _ := c.DownlinkAcked()
	if err := c.StoreDownlink([]fleet.DownRecord{{Seq: shared + 1, Shared: true, Kind: fleet.DownPresetDelete, Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// simCPE is a simulated device (sim.Tree) driven session by session
// against a Cache, without HTTP: what the server does, minus the wire.
type simCPE struct {
	t     testing.TB
	c     *Cache
	dev   *sim.Tree
	clock time.Time
	// answer, when set, may replace the device's answer (nil: the device's).
	answer func(m cwmp.Message) cwmp.Message
}

func newSimCPE(t testing.TB, c *Cache, model string, index int) *simCPE {
	t.Helper()
	m, err := sim.LoadModel(model)
	if err != nil {
		t.Fatal(err)
	}
	return &simCPE{t: t, c: c, dev: sim.NewTree(m, sim.Identity{Seed: 7, Index: index, ConnectionRequestURL: "http://10.0.0.9:7547/cr"}), clock: t0}
}

func (s *simCPE) id() string {
	m := s.dev.Model()
	id, err := fleet.DeviceID(m.OUI, m.ProductClass, s.dev.Serial())
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *simCPE) root() string { return s.dev.Model().Root }

// begin opens a session with the given events, an hour after the last.
func (s *simCPE) begin(events ...string) *SessionWork {
	s.t.Helper()
	m := s.dev.Model()
	inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{Manufacturer: m.Manufacturer, OUI: m.OUI, ProductClass: m.ProductClass, SerialNumber: s.dev.Serial()},
		ParameterList: s.dev.Forced()}
	for _, e := range events {
		inf.Event = append(inf.Event, cwmp.Event{Code: e})
	}
	s.clock = s.clock.Add(time.Hour)
	return mustBegin(s.t, s.c, inf, s.clock)
}

// after makes the next session begin d after the last one (not an hour).
func (s *simCPE) after(d time.Duration) { s.clock = s.clock.Add(d - time.Hour) }

// session runs one whole session and returns the RPCs sent, described.
func (s *simCPE) session(events ...string) []string {
	s.t.Helper()
	w := s.begin(events...)
	log := s.drive(w)
	if err := w.End(true); err != nil {
		s.t.Fatalf("End: %v", err)
	}
	return log
}

// drive sends what the session plans until it is done.
func (s *simCPE) drive(w *SessionWork) []string {
	s.t.Helper()
	var log []string
	for req := w.Next(); req != nil; req = w.Next() {
		log = append(log, describeRPC(req))
		if len(log) > 600 {
			s.t.Fatalf("session does not end: %v", log[len(log)-20:])
		}
		var resp cwmp.Message
		if s.answer != nil {
			resp = s.answer(req)
		}
		if resp == nil {
			resp = simAnswer(s.dev, req)
		}
		w.Answer(&cwmp.Answer{Request: req, Response: resp,
			Mismatch: resp.Method() != cwmp.MethodFault && resp.Method() != req.Method()+"Response"})
	}
	return log
}

func (s *simCPE) get(name string) string {
	s.t.Helper()
	v, ok := s.dev.Get(name)
	if !ok {
		s.t.Fatalf("device has no %s", name)
	}
	return v
}

func (s *simCPE) cached(name string) (Parameter, bool) {
	p, err := s.c.Parameter(s.id(), name)
	return p, err == nil
}

func (s *simCPE) faults() map[string]DeviceFault {
	s.t.Helper()
	fs, err := s.c.Faults(s.id())
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]DeviceFault{}
	for _, f := range fs {
		out[f.ID] = f
	}
	return out
}

// simAnswer answers an ACS request as the simulated device does.
func simAnswer(dev *sim.Tree, m cwmp.Message) cwmp.Message {
	fault := func(f *cwmp.Fault, ok cwmp.Message) cwmp.Message {
		if f != nil {
			return f
		}
		return ok
	}
	switch r := m.(type) {
	case *cwmp.GetParameterNames:
		list, f := dev.GetNames(r.ParameterPath, r.NextLevel)
		return fault(f, &cwmp.GetParameterNamesResponse{ParameterList: list})
	case *cwmp.GetParameterValues:
		list, f := dev.GetValues(r.ParameterNames)
		return fault(f, &cwmp.GetParameterValuesResponse{ParameterList: list})
	case *cwmp.SetParameterValues:
		return fault(dev.SetValues(r.ParameterList, r.ParameterKey), &cwmp.SetParameterValuesResponse{})
	case *cwmp.AddObject:
		n, f := dev.AddObject(r.ObjectName, r.ParameterKey)
		return fault(f, &cwmp.AddObjectResponse{InstanceNumber: n})
	case *cwmp.DeleteObject:
		return fault(dev.DeleteObject(r.ObjectName, r.ParameterKey), &cwmp.DeleteObjectResponse{})
	case *cwmp.Reboot:
		return &cwmp.RebootResponse{}
	case *cwmp.FactoryReset:
		dev.Reset()
		return &cwmp.FactoryResetResponse{}
	case *cwmp.Download:
		return &cwmp.DownloadResponse{Status: 1}
	}
	return cwmp.NewFault(cwmp.FaultMethodNotSupported, "")
}

// describeRPC is a short text form of an RPC for assertions:
// "GPN <path> next|all", "GPV <names,...>", "SPV <name>=<value>,...",
// "Add <obj>", "Del <obj>", "Download <type> <url>", "Reboot".
func describeRPC(m cwmp.Message) string {
	switch r := m.(type) {
	case *cwmp.GetParameterNames:
		if r.NextLevel {
			return "GPN " + r.ParameterPath + " next"
		}
		return "GPN " + r.ParameterPath + " all"
	case *cwmp.GetParameterValues:
		return "GPV " + strings.Join(r.ParameterNames, ",")
	case *cwmp.SetParameterValues:
		parts := make([]string, len(r.ParameterList))
		for i, pv := range r.ParameterList {
			parts[i] = pv.Name + "=" + pv.Value
		}
		return "SPV " + strings.Join(parts, ",")
	case *cwmp.AddObject:
		return "Add " + r.ObjectName
	case *cwmp.DeleteObject:
		return "Del " + r.ObjectName
	case *cwmp.Download:
		return "Download " + r.FileType + " " + r.URL
	}
	return m.Method()
}

func rpcMethods(log []string) []string {
	out := make([]string, len(log))
	for i, l := range log {
		out[i], _, _ = strings.Cut(l, " ")
	}
	return out
}

// ssidOf is the first SSID's name in each data model.
func ssidOf(root string) string {
	if root == "Device." {
		return "Device.WiFi.SSID.1.SSID"
	}
	return "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
}

// TestPresetValueOnBootstrap: a preset on 0 BOOTSTRAP sets the SSID on a
// TR-098 and a TR-181 device in their first session (cold cache: the
// engine discovers the path, reads, writes); the device has it, the cache
// has it and the session's DeviceDelta carries it; the next session (no
// BOOTSTRAP) does nothing.
func TestPresetValueOnBootstrap(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			c := openTestCache(t, "")
			putPresets(t, c, &fleet.Preset{Name: "wifi", Events: map[string]bool{"0 BOOTSTRAP": true},
				Provisions: [][]any{
					{"value", "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", "pop-wifi"},
					{"value", "Device.WiFi.SSID.1.SSID", "pop-wifi"},
				}})
			cpe := newSimCPE(t, c, model, 1)
			ssid := ssidOf(cpe.root())
			log := cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
			if got := cpe.get(ssid); got != "pop-wifi" {
				t.Fatalf("device SSID %q after %v", got, log)
			}
			if p, ok := cpe.cached(ssid); !ok || p.Value != "pop-wifi" {
				t.Fatalf("cached SSID %+v %v", p, ok)
			}
			if n := len(log); n == 0 || n > 8 || log[n-1] != "SPV "+ssid+"=pop-wifi" {
				t.Fatalf("RPCs %v: want a few reads then one SPV", log)
			}
			// The other data model's path is a warning, not a fault.
			if fs := cpe.faults(); len(fs) != 0 {
				t.Fatalf("faults %+v", fs)
			}
			if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
				t.Fatalf("periodic session sent %v", log)
			}
			recs, err := c.ReadOutbox(0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range recs {
				var dd fleet.DeviceDelta
				if k, _ := fleet.KindOf(r.Data); k == fleet.KindDeviceDelta && fleet.Unmarshal(r.Data, &dd) == nil {
					for _, p := range dd.Parameters {
						found = found || (p.Name == ssid && p.Value == "pop-wifi")
					}
				}
			}
			if !found {
				t.Fatal("the SSID the preset set is in no DeviceDelta of the outbox")
			}
		})
	}
}

// TestPresetRefreshFreshSendsNothing: a refresh whose data the cache holds
// fresh enough costs no RPC; a stale one reads values only.
func TestPresetRefreshFreshSendsNothing(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 1)
	igd := "InternetGatewayDevice."
	putPresets(t, c, &fleet.Preset{Name: "refresh", Provisions: [][]any{
		{"refresh", igd + "DeviceInfo.SoftwareVersion", 7200.0},
		{"refresh", igd + "ManagementServer.PeriodicInformInterval", 7200.0},
		{"refresh", igd + "LANDevice.1.WLANConfiguration.1.", 7200.0},
	}})
	first := cpe.session(cwmp.EventBootstrap)
	if len(first) == 0 {
		t.Fatal("a cold cache needs reads")
	}
	// An hour later (each session is an hour apart): everything is
	// fresher than two hours.
	if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
		t.Fatalf("refresh of fresh data sent %v", log)
	}
	// Two hours on, the values are stale: read again, without listing
	// what the cache knows exists... except the object refreshed whole.
	cpe.clock = cpe.clock.Add(2 * time.Hour)
	log := cpe.session(cwmp.EventPeriodic)
	if len(log) == 0 || len(log) > 3 {
		t.Fatalf("stale refresh sent %v", log)
	}
	for _, l := range log {
		if strings.HasPrefix(l, "GPN") && !strings.Contains(l, "WLANConfiguration.1.") {
			t.Fatalf("stale refresh listed a known parameter's parent: %v", log)
		}
	}
	t.Logf("first session %v; stale session %v", rpcMethods(first), log)
}

// TestPresetMatching: events (required and excluded), preconditions over
// Inform values, DeviceID, parameters the cache lacks (fetched first),
// and the weight-then-name order of the matched presets.
func TestPresetMatching(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 1)
	igd := "InternetGatewayDevice."
	tag := func(name string) [][]any { return [][]any{{"tag", name, true}} }
	model := cpe.get(igd + "DeviceInfo.ModelName")
	putPresets(t, c,
		&fleet.Preset{Name: "boot-only", Weight: 5, Events: map[string]bool{"1 BOOT": true}, Provisions: tag("boot")},
		&fleet.Preset{Name: "not-periodic", Weight: 1, Events: map[string]bool{"2 PERIODIC": false}, Provisions: tag("notperiodic")},
		&fleet.Preset{Name: "oui", Weight: -3, Precondition: "DeviceID.OUI = '" + cpe.dev.Model().OUI + "'", Provisions: tag("oui")},
		&fleet.Preset{Name: "other-oui", Precondition: "DeviceID.OUI = 'FFFFFF'", Provisions: tag("otheroui")},
		// ModelName is not in the Inform: the precondition's parameter
		// is fetched before matching.
		&fleet.Preset{Name: "model", Weight: 2, Channel: "m", Precondition: igd + "DeviceInfo.ModelName = \"" + model + "\"", Provisions: tag("model")},
		&fleet.Preset{Name: "missing", Precondition: igd + "No.Such.Parameter = 1", Provisions: tag("missing")},
		&fleet.Preset{Name: "a-tagged", Channel: "m", Precondition: "Tags.model IS NOT NULL", Provisions: tag("chained")},
	)
	w := cpe.begin(cwmp.EventBoot)
	log := cpe.drive(w)
	var order []string
	for _, p := range w.prov.active {
		order = append(order, p.Name)
	}
	if err := w.End(true); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(log, "GPV "+igd+"DeviceInfo.ModelName") {
		t.Fatalf("the precondition's parameter was not fetched: %v", log)
	}
	// The last cycle: Tags.model was set in the first, so "a-tagged"
	// matches in the second.
	want := []string{"oui", "a-tagged", "not-periodic", "model", "boot-only"}
	if !slices.Equal(order, want) {
		t.Fatalf("matched order %v, want %v", order, want)
	}
	for _, tg := range []string{"boot", "notperiodic", "oui", "model", "chained"} {
		if p, ok := cpe.cached("Tags." + tg); !ok || p.Value != "true" {
			t.Errorf("tag %s not set: %+v", tg, p)
		}
	}
	for _, tg := range []string{"otheroui", "missing"} {
		if _, ok := cpe.cached("Tags." + tg); ok {
			t.Errorf("tag %s set", tg)
		}
	}
	// A periodic session: boot-only and not-periodic do not match.
	w = cpe.begin(cwmp.EventPeriodic)
	cpe.drive(w)
	order = order[:0]
	for _, p := range w.prov.active {
		order = append(order, p.Name)
	}
	w.End(true)
	if want := []string{"oui", "a-tagged", "model"}; !slices.Equal(order, want) {
		t.Fatalf("periodic: matched %v, want %v", order, want)
	}
}

// TestPresetChannelFaults: a channel that faults (a CPE fault on its
// value, a provision the edge does not know, a download of a missing
// file) records "<device>:<channel>" and stops only itself; a faulted
// channel is skipped by later sessions until its retry is due (the
// retry delay, doubled by every retry that faults again) or its fault
// is deleted; one that runs clean at its retry loses its fault.
func TestPresetChannelFaults(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 1)
	igd := "InternetGatewayDevice."
	ssid := ssidOf(igd)
	putPresets(t, c,
		&fleet.Preset{Name: "good", Channel: "wifi", Provisions: [][]any{{"value", ssid, "iso-ok"}}},
		&fleet.Preset{Name: "bad-value", Channel: "bad", Provisions: [][]any{{"value", igd + "ManagementServer.PeriodicInformInterval", "soon"}}},
		&fleet.Preset{Name: "script", Channel: "s", Provisions: [][]any{{"myScript", 1.0}}},
		&fleet.Preset{Name: "firmware", Channel: "fw", Provisions: [][]any{{"download", "1 Firmware Upgrade Image", "nofile.bin"}}},
	)
	cpe.session(cwmp.EventBoot)
	if got := cpe.get(ssid); got != "iso-ok" {
		t.Fatalf("the good channel's SSID: %q", got)
	}
	id := cpe.id()
	fs := cpe.faults()
	want := map[string]string{"bad": "cwmp.9003", "s": FaultCodeUnknownProvision, "fw": "file_not_found"}
	for ch, code := range want {
		f, ok := fs[ChannelFaultID(id, ch)]
		if !ok || f.Code != code || f.Channel != ch || f.Device != id {
			t.Errorf("channel %s: fault %+v, want code %s (all: %+v)", ch, f, code, fs)
		}
	}
	if len(fs) != len(want) {
		t.Fatalf("faults %+v", fs)
	}
	if d := fs[ChannelFaultID(id, "bad")].Detail; !strings.HasPrefix(d[igd+"ManagementServer.PeriodicInformInterval"], "9007") {
		t.Errorf("bad channel's detail %v", d)
	}
	// Faulted channels wait for their retry: a session a minute later
	// sends nothing, the faults stay.
	cpe.after(time.Minute)
	if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
		t.Fatalf("second session: %v, want nothing (the good channel is settled, the others faulted)", log)
	}
	if fs2 := cpe.faults(); len(fs2) != 3 || !fs2[ChannelFaultID(id, "bad")].Timestamp.Equal(fs[ChannelFaultID(id, "bad")].Timestamp) {
		t.Fatalf("faults after a skipping session: %+v", fs2)
	}
	// Five minutes after the fault (the retry delay) the channels run
	// again; faulting again doubles the wait (ten minutes, then twenty).
	// The script stored meanwhile runs clean at its retry: its fault is
	// cleared, and the core is told.
	putProvisions(t, c, &fleet.Provision{Name: "myScript", Script: `log("hello " + args[0]);`})
	for i, tt := range []struct {
		after time.Duration
		retry bool
	}{{4 * time.Minute, true}, {9 * time.Minute, false}, {2 * time.Minute, true}, {19 * time.Minute, false}, {2 * time.Minute, true}} {
		cpe.after(tt.after)
		log := cpe.session(cwmp.EventPeriodic)
		if sent := slices.Contains(log, "SPV "+igd+"ManagementServer.PeriodicInformInterval=soon"); sent != tt.retry {
			t.Fatalf("step %d (%v later): retried %v, want %v (RPCs %v)", i, tt.after, sent, tt.retry, log)
		}
		if f := cpe.faults()[ChannelFaultID(id, "bad")]; f.Retries != (i+2)/2 {
			t.Fatalf("step %d: fault %+v, want %d retries", i, f, (i+2)/2)
		}
	}
	if _, ok := cpe.faults()[ChannelFaultID(id, "s")]; ok {
		t.Fatalf("the script's channel ran clean at its retry, its fault stays: %+v", cpe.faults())
	}
	var reported []fleet.ChannelFault
	recs, _ := c.ReadOutbox(0, 10000)
	for _, r := range recs {
		var cf fleet.ChannelFault
		if k, _ := fleet.KindOf(r.Data); k == fleet.KindChannelFault && fleet.Unmarshal(r.Data, &cf) == nil && cf.Channel == "s" {
			reported = append(reported, cf)
		}
	}
	if n := len(reported); n < 2 || reported[0].Cleared || !reported[n-1].Cleared || reported[0].Code != FaultCodeUnknownProvision {
		t.Fatalf("the script channel's fault upstream: %+v", reported)
	}
	// Cleared (through the API's route), the channel runs again (and
	// faults again).
	writer := addTestToken(t, c, "writer", fleet.ScopeWrite)
	api := NewAPI(APIConfig{Cache: c, Logger: quietLog})
	del := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodDelete, "/api/v1/faults/"+url.PathEscape(ChannelFaultID(id, "bad")), nil)
		req.Header.Set("Authorization", "Bearer "+writer)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec
	}
	if rec := del(); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE fault: %d %s", rec.Code, rec.Body)
	}
	if rec := del(); rec.Code != http.StatusNotFound {
		t.Fatalf("DELETE fault again: %d %s", rec.Code, rec.Body)
	}
	cpe.after(time.Minute)
	log := cpe.session(cwmp.EventPeriodic)
	if !slices.Contains(log, "SPV "+igd+"ManagementServer.PeriodicInformInterval=soon") {
		t.Fatalf("cleared channel did not run again: %v", log)
	}
	if f := cpe.faults()[ChannelFaultID(id, "bad")]; f.Code != "cwmp.9003" || f.Retries != 0 || !f.Timestamp.After(fs[ChannelFaultID(id, "bad")].Timestamp) {
		t.Fatalf("fault after the retry: %+v", f)
	}
	// 0 BOOTSTRAP is a new life: its faults are gone.
	cpe.session(cwmp.EventBootstrap)
	if fs := cpe.faults(); len(fs) != 2 {
		t.Fatalf("faults after bootstrap (the same channels fault again): %+v", fs)
	}
}

// TestPresetLoopGuard: presets that undo each other stop with a
// preset_loop fault naming them, within a bounded number of writes; the
// session completes and other channels are applied.
func TestPresetLoopGuard(t *testing.T) {
	igd := "InternetGatewayDevice."
	ntp := igd + "Time.NTPServer1"
	t.Run("two presets set one parameter", func(t *testing.T) {
		c := openTestCache(t, "")
		cpe := newSimCPE(t, c, sim.ModelTR098, 1)
		putPresets(t, c,
			&fleet.Preset{Name: "A", Channel: "a", Provisions: [][]any{{"value", ntp, "one.example"}}},
			&fleet.Preset{Name: "B", Channel: "b", Provisions: [][]any{{"value", ntp, "two.example"}}},
			&fleet.Preset{Name: "C", Channel: "c", Provisions: [][]any{{"value", ssidOf(igd), "calm"}}},
		)
		log := cpe.session(cwmp.EventBoot)
		spvs := 0
		for _, l := range log {
			if strings.HasPrefix(l, "SPV") && strings.Contains(l, ntp) {
				spvs++
			}
		}
		if spvs == 0 || spvs > MaxPresetCycles {
			t.Fatalf("%d writes of %s: %v", spvs, ntp, log)
		}
		fs := cpe.faults()
		for _, ch := range []string{"a", "b"} {
			f := fs[ChannelFaultID(cpe.id(), ch)]
			if f.Code != FaultCodePresetLoop || !strings.Contains(f.Message, "A, B") || f.Detail["parameter"] != ntp {
				t.Errorf("channel %s: fault %+v", ch, f)
			}
		}
		if _, ok := fs[ChannelFaultID(cpe.id(), "c")]; ok || cpe.get(ssidOf(igd)) != "calm" {
			t.Fatalf("channel c: faults %+v, SSID %q", fs, cpe.get(ssidOf(igd)))
		}
		// The next session (before the retry) skips the looping channels.
		cpe.after(time.Minute)
		if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
			t.Fatalf("next session %v", log)
		}
	})
	t.Run("preconditions that flip", func(t *testing.T) {
		c := openTestCache(t, "")
		cpe := newSimCPE(t, c, sim.ModelTR098, 1)
		cpe.dev.SetValues([]cwmp.ParameterValue{{Name: ntp, Value: "x"}}, "")
		putPresets(t, c,
			&fleet.Preset{Name: "to-y", Precondition: ntp + " = 'x'", Provisions: [][]any{{"value", ntp, "y"}}},
			&fleet.Preset{Name: "to-x", Precondition: ntp + " = 'y'", Provisions: [][]any{{"value", ntp, "x"}}},
		)
		log := cpe.session(cwmp.EventBoot)
		f := cpe.faults()[ChannelFaultID(cpe.id(), "default")]
		if f.Code != FaultCodePresetLoop || !strings.Contains(f.Message, "to-x, to-y") {
			t.Fatalf("fault %+v after %v", f, log)
		}
		if n := strings.Count(strings.Join(log, "\n"), "SPV"); n != MaxPresetCycles {
			t.Fatalf("%d SPVs, want one per cycle (%d): %v", n, MaxPresetCycles, log)
		}
	})
}

// TestPresetMissingPath: a value on a path the device lacks is a
// warning, not a fault; the session completes and the preset's other
// provisions apply.
func TestPresetMissingPath(t *testing.T) {
	logs := &lockedBuffer{}
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), EdgeID: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cpe := newSimCPE(t, c, sim.ModelTR181, 2)
	putPresets(t, c, &fleet.Preset{Name: "typo", Provisions: [][]any{
		{"value", "Device.WiFi.SSID.1.SSSID", "x"},
		{"value", "Device.WiFi.NoSuchTable.*.Enable", true},
		{"value", "Device.WiFi.SSID.1.SSID", "typo-ok"},
	}})
	cpe.session(cwmp.EventBoot)
	if got := cpe.get("Device.WiFi.SSID.1.SSID"); got != "typo-ok" {
		t.Fatalf("SSID %q", got)
	}
	if fs := cpe.faults(); len(fs) != 0 {
		t.Fatalf("faults %+v", fs)
	}
	if !strings.Contains(logs.String(), "Device.WiFi.SSID.1.SSSID") {
		t.Fatalf("no warning for the missing path in the log: %s", logs)
	}
	if log := cpe.session(cwmp.EventPeriodic); len(log) > 1 {
		t.Fatalf("the missing path costs more than a listing in later sessions: %v", log)
	}
}

// TestPresetsCompiledOnce: sessions share the compiled presets until the
// downlink changes one; a preset that does not compile is left out.
func TestPresetsCompiledOnce(t *testing.T) {
	c := openTestCache(t, "")
	if got := c.compiledPresets(); len(got) != 0 {
		t.Fatalf("no presets: %v", got)
	}
	putPresets(t, c, &fleet.Preset{Name: "a", Provisions: [][]any{{"reboot"}}},
		&fleet.Preset{Name: "broken", Precondition: "1 = ", Provisions: [][]any{{"reboot"}}})
	first := c.compiledPresets()
	if len(first) != 1 || first[0].Name != "a" {
		t.Fatalf("compiled %v", first)
	}
	if again := c.compiledPresets(); &again[0] != &first[0] {
		t.Fatal("compiled again without a change")
	}
	deletePreset(t, c, "a")
	if got := c.compiledPresets(); len(got) != 0 {
		t.Fatalf("after delete: %v", got)
	}
}

// TestE2EPresetOnBootstrap: presets stored at a standalone edge provision
// simulated TR-098 and TR-181 routers through the real CWMP server in
// their first (0 BOOTSTRAP) session: the SSID and the NTP server land on
// the devices and in the cache, next to the connection-request
// credentials the default inform preset sets; a preset naming a
// provision the edge does not store faults its own channel,
// which the device's faults route shows.
func TestE2EPresetOnBootstrap(t *testing.T) {
	e := startEdge(t, "", nil)
	putPresets(t, e.node.Cache(),
		&fleet.Preset{Name: "wifi", Events: map[string]bool{"0 BOOTSTRAP": true}, Provisions: [][]any{
			{"value", "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", "e2e-pop"},
			{"value", "Device.WiFi.SSID.1.SSID", "e2e-pop"},
		}},
		&fleet.Preset{Name: "interval", Channel: "interval", Weight: 1, Events: map[string]bool{"0 BOOTSTRAP": true}, Provisions: [][]any{
			{"value", "InternetGatewayDevice.Time.NTPServer1", "ntp.pop.example"},
			{"value", "Device.Time.NTPServer1", "ntp.pop.example"},
			{"tag", "provisioned", true},
		}},
		&fleet.Preset{Name: "script", Channel: "scripts", Events: map[string]bool{"0 BOOTSTRAP": true}, Provisions: [][]any{{"default"}}},
	)
	f := startFleet(t, e, 2, nil)
	waitInformed(t, e, f)
	for i := 0; i < f.Len(); i++ {
		d := f.Device(i)
		ssid := ssidOf(d.Root())
		waitFor(t, 10*time.Second, d.Model()+" provisioned", func() bool {
			v, _ := d.Get(ssid)
			p, err := e.node.Cache().Parameter(d.ID(), "Tags.provisioned")
			return v == "e2e-pop" && err == nil && p.Value == "true"
		})
		if v, _ := d.Get(d.Root() + "Time.NTPServer1"); v != "ntp.pop.example" {
			t.Errorf("%s: NTPServer1 %s", d.Model(), v)
		}
		if p, err := e.node.Cache().Parameter(d.ID(), ssid); err != nil || p.Value != "e2e-pop" {
			t.Errorf("%s: cached SSID %+v %v", d.Model(), p, err)
		}
		// The script's channel faulted, visible on the API; the others did not.
		var fs []DeviceFault
		resp, err := http.Get(e.api + "/devices/" + url.PathEscape(d.ID()) + "/faults")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&fs)
		resp.Body.Close()
		if err != nil || len(fs) != 1 || fs[0].ID != ChannelFaultID(d.ID(), "scripts") || fs[0].Code != FaultCodeUnknownProvision {
			t.Errorf("%s: faults %+v %v", d.Model(), fs, err)
		}
	}
	if st := f.Stats(); st.SessionErrors != 0 {
		t.Fatalf("%d session errors", st.SessionErrors)
	}
}

// TestPresetOtherDataModelSettles: a preset written for both data models
// (GenieACS configurations often are) names a root the device lacks. The
// Inform's parameters name the device's root, so no session lists the top
// level or asks for the other root, and later sessions send nothing.
func TestPresetOtherDataModelSettles(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			c := openTestCache(t, "")
			putPresets(t, c, &fleet.Preset{Name: "both", Provisions: [][]any{
				{"value", "InternetGatewayDevice.Time.NTPServer1", "ntp.example"},
				{"value", "Device.Time.NTPServer1", "ntp.example"},
			}})
			cpe := newSimCPE(t, c, model, 3)
			other := "Device."
			if model == sim.ModelTR181 {
				other = "InternetGatewayDevice."
			}
			noOther := func(what string, log []string) {
				t.Helper()
				for _, l := range log {
					if strings.HasPrefix(l, "GPN  ") || strings.Contains(l, " "+other) {
						t.Fatalf("%s sent %q: %v", what, l, log)
					}
				}
			}
			first := cpe.session(cwmp.EventBootstrap)
			noOther("bootstrap session", first)
			if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
				t.Fatalf("second session sent %v (first %v)", log, first)
			}
			// A new life forgets the tree: its own root is read again.
			log := cpe.session(cwmp.EventBootstrap)
			if len(log) == 0 {
				t.Fatalf("bootstrap session sent nothing")
			}
			noOther("second bootstrap session", log)
		})
	}
}

// TestPresetBuiltins: the built-ins other tests do not cover, through
// sessions: instances with an alias (AddObject and its keys), tag,
// download (a file of the edge's store; its failed TransferComplete is a
// device fault) and reboot (nothing follows it in the session).
func TestPresetBuiltins(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 4)
	wlan := "InternetGatewayDevice.LANDevice.1.WLANConfiguration."
	if _, err := c.putFileMeta(fleet.FileMeta{Name: "fw-2.0.bin", FileType: "1 Firmware Upgrade Image", Size: 42,
		SHA256: strings.Repeat("ab", 32), Uploaded: t0}); err != nil {
		t.Fatal(err)
	}
	putPresets(t, c,
		&fleet.Preset{Name: "guest", Channel: "guest", Provisions: [][]any{
			{"instances", wlan + "[SSID:guest-net]", 1.0}, {"tag", "guest", true}}},
		&fleet.Preset{Name: "firmware", Channel: "fw", Events: map[string]bool{"1 BOOT": true},
			Provisions: [][]any{{"download", "1 Firmware Upgrade Image", "fw-2.0.bin"}}},
		&fleet.Preset{Name: "reboot", Channel: "rb", Events: map[string]bool{"M Reboot": true},
			Provisions: [][]any{{"reboot"}}},
	)
	log := cpe.session(cwmp.EventBoot)
	var inst string
	for i := 1; i < 10; i++ {
		if v, ok := cpe.dev.Get(wlan + itoa(uint32(i)) + ".SSID"); ok && v == "guest-net" {
			inst = wlan + itoa(uint32(i)) + "."
		}
	}
	if inst == "" || !slices.Contains(log, "Add "+wlan) {
		t.Fatalf("no guest instance on the device after %v", log)
	}
	if p, ok := cpe.cached(inst + "SSID"); !ok || p.Value != "guest-net" {
		t.Fatalf("cached %sSSID: %+v", inst, p)
	}
	if !slices.Contains(log, "Download 1 Firmware Upgrade Image http://edge:7547/files/fw-2.0.bin") {
		t.Fatalf("no Download in %v", log)
	}
	if p, ok := cpe.cached("Tags.guest"); !ok || p.Value != "true" {
		t.Fatalf("tag %+v", p)
	}
	if fs := cpe.faults(); len(fs) != 0 {
		t.Fatalf("faults %+v", fs)
	}
	// The CPE reports the preset's transfer failed: a device fault.
	w := cpe.begin(cwmp.EventTransferComplete)
	if err := w.CPERequest(&cwmp.TransferComplete{CommandKey: "prov-abc-1", FaultStruct: cwmp.FaultStruct{Code: 9010, String: "download failed"}}); err != nil {
		t.Fatal(err)
	}
	if log := cpe.drive(w); len(log) != 0 {
		t.Fatalf("settled presets sent %v", log)
	}
	w.End(true)
	fs := cpe.faults()
	if len(fs) != 1 {
		t.Fatalf("faults %+v", fs)
	}
	for _, f := range fs {
		if f.Code != "9010" || !strings.HasPrefix(f.ID, "download-") {
			t.Fatalf("transfer fault %+v", f)
		}
	}
	// A reboot is the session's last RPC.
	if log := cpe.session(cwmp.EventBoot, cwmp.EventMReboot); len(log) == 0 || log[len(log)-1] != "Reboot" || slices.Contains(log[:len(log)-1], "Reboot") {
		t.Fatalf("reboot session %v", log)
	}
}

// TestBootstrapRoundTrips: the default presets' bootstrap of a TR-098 and
// a TR-181 device costs four RPCs: one GetParameterNames of the device's
// own root (none of the top level or of the other root: the Inform names
// the root), its values in batches of provision.DefaultBatchSize (the
// precondition prefetch planned with the refresh, not before it), and the
// connection-request credentials. The next periodic session sends
// nothing, and every parameter of the device is cached.
func TestBootstrapRoundTrips(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			c := openTestCache(t, "")
			if made, err := c.SeedDefaultPresets(preset.Defaults(true)); err != nil || !made {
				t.Fatalf("SeedDefaultPresets: %v %v", made, err)
			}
			cpe := newSimCPE(t, c, model, 5)
			log := cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
			gpvs := (cpe.dev.Len() + provision.DefaultBatchSize - 1) / provision.DefaultBatchSize
			want := []string{"GPN " + cpe.root() + " all"}
			for range gpvs {
				want = append(want, "GPV")
			}
			want = append(want, "SPV")
			got := make([]string, len(log))
			for i, l := range log {
				got[i] = l
				if !strings.HasPrefix(l, "GPN") {
					got[i], _, _ = strings.Cut(l, " ")
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("bootstrap RPCs %v, want %v", log, want)
			}
			if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
				t.Fatalf("periodic session after the bootstrap sent %v", log)
			}
			params, err := c.Parameters(cpe.id())
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for path := range params {
				if !strings.HasSuffix(path, ".") {
					n++
				}
			}
			if n < cpe.dev.Len() {
				t.Errorf("%d parameters cached, the device has %d", n, cpe.dev.Len())
			}
		})
	}
}

// TestBigGPVDropped: a CPE that, instead of faulting 9002/9004, hangs up
// (its next Inform replaces the session) or goes silent (the session
// times out) while a GetParameterValues of more than
// provision.SmallBatchSize names is outstanding is marked SmallGPV; its
// next bootstrap asks at most that many names at a time and registers
// the whole tree. Over HTTP against a standalone edge with the default
// presets.
func TestBigGPVDropped(t *testing.T) {
	for _, how := range []string{"hangup", "timeout"} {
		t.Run(how, func(t *testing.T) {
			e := startEdge(t, "", func(c *Config) { c.SessionTimeout = time.Second })
			m, err := sim.LoadModel(sim.ModelTR098)
			if err != nil {
				t.Fatal(err)
			}
			dev := sim.NewTree(m, sim.Identity{Seed: 7, Index: 1, ConnectionRequestURL: "http://127.0.0.1:1/cr"})
			c := newCPE(t, e, dev.Serial())
			c.oui, c.pc = m.OUI, m.ProductClass
			inform := func() {
				t.Helper()
				c.cookie = ""
				inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{Manufacturer: m.Manufacturer, OUI: m.OUI, ProductClass: m.ProductClass, SerialNumber: dev.Serial()},
					MaxEnvelopes: 1, CurrentTime: time.Now().UTC().Truncate(time.Second), ParameterList: dev.Forced(),
					Event: []cwmp.Event{{Code: cwmp.EventBootstrap}, {Code: cwmp.EventBoot}}}
				code, env, raw := c.post(envelope(t, "inform", inf))
				if code != http.StatusOK || env == nil || env.Body.Method() != cwmp.MethodInformResponse {
					t.Fatalf("Inform: %d %s", code, raw)
				}
			}
			// run drives a session; with hangUp it stops at the first
			// large GetParameterValues and reports whether it did.
			run := func(hangUp bool) (maxGPV int, hung bool) {
				t.Helper()
				var body []byte
				for range 100 {
					code, env, raw := c.post(body)
					if code == http.StatusNoContent {
						return maxGPV, false
					}
					if code != http.StatusOK || env == nil {
						t.Fatalf("session: %d %s", code, raw)
					}
					if g, ok := env.Body.(*cwmp.GetParameterValues); ok {
						maxGPV = max(maxGPV, len(g.ParameterNames))
						if hangUp && len(g.ParameterNames) > provision.SmallBatchSize {
							return maxGPV, true
						}
					}
					body = envelope(t, env.ID, simAnswer(dev, env.Body))
				}
				t.Fatal("session does not end")
				return 0, false
			}
			inform()
			if big, hung := run(true); !hung {
				t.Fatalf("the bootstrap sent no GetParameterValues over %d names (largest %d)", provision.SmallBatchSize, big)
			}
			if how == "timeout" {
				waitFor(t, 10*time.Second, "the silent session to time out", func() bool { return e.node.Server().OpenSessions() == 0 })
			}
			// The CPE comes back (a new connection) and bootstraps again.
			c.client.CloseIdleConnections()
			inform()
			if big, _ := run(false); big > provision.SmallBatchSize {
				t.Fatalf("after the drop a GetParameterValues of %d names", big)
			}
			if d := e.device(c.id()); d == nil || !d.SmallGPV {
				t.Fatalf("device %+v not marked SmallGPV", d)
			}
			params, err := e.node.Cache().Parameters(c.id())
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for path := range params {
				if !strings.HasSuffix(path, ".") {
					n++
				}
			}
			if n < dev.Len() {
				t.Fatalf("%d parameters registered, the device has %d", n, dev.Len())
			}
		})
	}
}
