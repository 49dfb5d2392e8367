package provision

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

const (
	igd   = "InternetGatewayDevice."
	ms98  = igd + "ManagementServer."
	pii98 = ms98 + "PeriodicInformInterval"
	wlan  = igd + "LANDevice.1.WLANConfiguration."
	ppp   = igd + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection."
)

// chanProvs is one channel's provisions in a test case.
type chanProvs struct {
	channel string
	provs   [][]any
}

func ch(name string, provs ...[]any) chanProvs { return chanProvs{name, provs} }

func p(args ...any) []any { return args }

// TestPlan runs built-in provisions against simulated TR-098 and TR-181
// devices, from a cold cache (only the Inform's parameters) or a warm one
// (the whole tree learnt an hour or ten seconds ago), and checks the RPCs
// sent, the device's final state and the outcome.
func TestPlan(t *testing.T) {
	hour := t0.Add(-time.Hour)
	recent := t0.Add(-10 * time.Second)
	cold := func(h *harness) { h.inform(hour) }
	warm := func(h *harness) { h.discover(hour) }
	tests := []struct {
		name  string
		model string
		setup func(h *harness)
		opts  Options
		chans []chanProvs
		// want is the exact RPC sequence; nil skips the check.
		want []string
		// maxRPCs bounds the RPCs when want is nil.
		maxRPCs int
		check   func(t *testing.T, h *harness, out *Outcome)
	}{
		{
			name: "value on a cold cache lists the object, reads, then sets", model: "tr098", setup: cold,
			chans: []chanProvs{ch("", p("value", pii98, 600.0))},
			want:  []string{"GPN " + ms98 + " next", "GPV 1", "SPV " + pii98 + "=600"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if v := h.devGet(pii98); v != "600" {
					t.Errorf("device %s = %s", pii98, v)
				}
				if len(out.Changed) != 1 || out.Changed[0].Type != cwmp.TypeUnsignedInt {
					t.Errorf("Changed = %+v, want one xsd:unsignedInt", out.Changed)
				}
			},
		},
		{
			name: "value already set plans nothing", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("value", pii98, "300"), p("value", ms98+"PeriodicInformEnable", "1"),
				p("value", ms98+"STUNEnable", false))},
			want: []string{},
		},
		{
			name: "value that differs on a warm cache is one SPV", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("value", pii98, 60.0), p("value", ms98+"STUNEnable", true))},
			want:  []string{"SPV " + pii98 + "=60," + ms98 + "STUNEnable=1"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if v := h.devGet(ms98 + "STUNEnable"); v != "true" {
					t.Errorf("STUNEnable = %s", v)
				}
			},
		},
		{
			name: "value on a read-only parameter warns", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("value", ms98+"NATDetected", true))},
			want:  []string{},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0].Message, "not writable") {
					t.Errorf("Warnings = %+v", out.Warnings)
				}
				if len(out.Faults) != 0 {
					t.Errorf("Faults = %+v", out.Faults)
				}
			},
		},
		{
			name: "refresh of a fresh parameter plans nothing", model: "tr098", setup: func(h *harness) { h.discover(recent) },
			chans: []chanProvs{ch("", p("refresh", pii98, 3600.0), p("refresh", wlan, 3600.0))},
			want:  []string{},
		},
		{
			name: "refresh of a stale parameter is one GPV", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("refresh", pii98), p("refresh", ms98+"STUNEnable", 60.0))},
			want:  []string{"GPV 2"},
		},
		{
			name: "refresh of a stale object lists it whole and reads every value", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("refresh", igd+"LANDevice.1.Hosts"))},
			want:  []string{"GPN " + igd + "LANDevice.1.Hosts. all", "GPV 22"},
		},
		{
			name: "refresh of the whole tree", model: "tr181", setup: cold,
			chans:   []chanProvs{ch("", p("refresh", ""))},
			maxRPCs: 8,
			check: func(t *testing.T, h *harness, out *Outcome) {
				want := h.dev.Len()
				got := 0
				h.cache.Walk("", func(e Entry) bool {
					if !e.Object && !isVirtual(e.Path) && !e.ValueTime.Before(t0) {
						got++
					}
					return true
				})
				if got != want {
					t.Errorf("%d parameters refreshed, device has %d", got, want)
				}
			},
		},
		{
			name: "GPV batches are bounded", model: "tr098", setup: warm, opts: Options{BatchSize: 10},
			chans:   []chanProvs{ch("", p("refresh", wlan))},
			maxRPCs: 5,
			check: func(t *testing.T, h *harness, out *Outcome) {
				total := 0
				for _, l := range h.log {
					if strings.HasPrefix(l, "GPV ") {
						var n int
						for _, c := range l[4:] {
							n = n*10 + int(c-'0')
						}
						if n > 10 {
							t.Errorf("%q has more than 10 names", l)
						}
						total += n
					}
				}
				all, _ := h.dev.GetValues([]string{wlan})
				if total != len(all) {
					t.Errorf("read %d values, the subtree has %d", total, len(all))
				}
			},
		},
		{
			name: "wildcard value sets every instance", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("value", wlan+"*.Enable", false))},
			want:  []string{"SPV " + wlan + "1.Enable=0," + wlan + "2.Enable=0"},
		},
		{
			name: "wildcard value from a cold cache", model: "tr098", setup: cold,
			chans: []chanProvs{ch("", p("value", wlan+"*.SSIDAdvertisementEnabled", false))},
			want: []string{"GPN " + igd + " next", "GPN " + igd + "LANDevice. all", "GPV 2",
				"SPV " + wlan + "1.SSIDAdvertisementEnabled=0," + wlan + "2.SSIDAdvertisementEnabled=0"},
		},
		{
			name: "alias value sets only the matching instance", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("value", wlan+"[Channel:"+"%CH2%"+"].Enable", false))},
			want:  []string{"SPV " + wlan + "2.Enable=0"},
		},
		{
			name: "alias with a nested key from a cold cache", model: "tr181", setup: cold,
			chans: []chanProvs{ch("", p("value",
				"Device.WiFi.AccessPoint.[Security.ModeEnabled:WPA2-Personal,SSIDReference:Device.WiFi.SSID.2.].SSIDAdvertisementEnabled", false))},
			maxRPCs: 6,
			check: func(t *testing.T, h *harness, out *Outcome) {
				if v := h.devGet("Device.WiFi.AccessPoint.2.SSIDAdvertisementEnabled"); v != "false" {
					t.Errorf("AP 2 advertisement = %s", v)
				}
				if v := h.devGet("Device.WiFi.AccessPoint.1.SSIDAdvertisementEnabled"); v != "true" {
					t.Errorf("AP 1 advertisement = %s", v)
				}
			},
		},
		{
			name: "instances up creates with alias values", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("instances", ppp+"[Name:voip,Enable:false]", 1.0))},
			want:  []string{"Add " + ppp, "SPV " + ppp + "2.Enable=0," + ppp + "2.Name=voip"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if v := h.devGet(ppp + "2.Name"); v != "voip" {
					t.Errorf("new instance Name = %q", v)
				}
				if !slices.Equal(out.Added, []string{ppp + "2."}) {
					t.Errorf("Added = %v", out.Added)
				}
			},
		},
		{
			name: "instances up takes key types from a sibling", model: "tr181", setup: warm,
			chans: []chanProvs{ch("", p("instances", "Device.DHCPv4.Server.Pool.[MinAddress:10.0.0.10]", "+1"))},
			want:  []string{"Add Device.DHCPv4.Server.Pool.", "SPV Device.DHCPv4.Server.Pool.2.MinAddress=10.0.0.10"},
		},
		{
			name: "instances up reads keys whose type it cannot tell", model: "tr181",
			setup: func(h *harness) {
				if f := h.dev.DeleteObject("Device.IP.Interface.2.IPv4Address.1.", ""); f != nil {
					h.t.Fatal(f)
				}
				h.discover(hour)
			},
			chans: []chanProvs{ch("", p("instances", "Device.IP.Interface.2.IPv4Address.[IPAddress:10.1.1.1,Enable:true]", 1.0))},
			want: []string{"Add Device.IP.Interface.2.IPv4Address.", "GPV 2",
				"SPV Device.IP.Interface.2.IPv4Address.2.IPAddress=10.1.1.1"},
		},
		{
			name: "instances down deletes the newest", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("instances", wlan+"*", 1.0))},
			want:  []string{"Del " + wlan + "2."},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if _, ok := h.cache.Get(wlan + "2."); ok {
					t.Error("cache still has the deleted instance")
				}
			},
		},
		{
			name: "a later declaration keeps what an earlier one would delete", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("instances", wlan+"[]", 0.0),
				p("instances", wlan+"[SSID:guest]", 1.0), p("instances", wlan+"[SSID:iot]", 1.0))},
			maxRPCs: 8,
			check: func(t *testing.T, h *harness, out *Outcome) {
				// Both instances go (neither matches), two come with
				// the alias values, and nothing deletes them again.
				if len(out.Faults) != 0 || len(out.Deleted) != 2 || len(out.Added) != 2 {
					t.Errorf("faults %v, deleted %v, added %v", out.Faults, out.Deleted, out.Added)
				}
				if v := h.devGet(wlan + "3.SSID"); v != "guest" {
					t.Errorf("instance 3 SSID = %q", v)
				}
				if v := h.devGet(wlan + "4.SSID"); v != "iot" {
					t.Errorf("instance 4 SSID = %q", v)
				}
			},
		},
		{
			name: "relative +1 adds exactly one", model: "tr181", setup: warm,
			chans: []chanProvs{ch("task_1", p("instances", "Device.IP.Interface.1.IPv4Address.[]", "+1"))},
			want:  []string{"Add Device.IP.Interface.1.IPv4Address."},
		},
		{
			name: "relative -1 deletes exactly one", model: "tr181", setup: warm,
			chans: []chanProvs{ch("task_1", p("instances", "Device.WiFi.SSID.*", "-1"))},
			want:  []string{"Del Device.WiFi.SSID.2."},
		},
		{
			name: "instances from a cold cache", model: "tr181", setup: cold,
			chans:   []chanProvs{ch("", p("instances", "Device.WiFi.SSID.[Alias:guest]", 1.0))},
			maxRPCs: 6,
			check: func(t *testing.T, h *harness, out *Outcome) {
				if v := h.devGet("Device.WiFi.SSID.3.Alias"); v != "guest" {
					t.Errorf("SSID 3 Alias = %q", v)
				}
			},
		},
		{
			name: "deleteObject of a numbered instance", model: "tr181", setup: warm,
			chans: []chanProvs{ch("task_2", p("instances", "Device.WiFi.AccessPoint.1", 0.0))},
			want:  []string{"Del Device.WiFi.AccessPoint.1."},
		},
		{
			name: "a missing path in a preset is a warning", model: "tr098", setup: cold,
			chans: []chanProvs{ch("", p("value", ms98+"NoSuchThing", 1.0))},
			want:  []string{"GPN " + ms98 + " next"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if len(out.Warnings) != 1 || out.Warnings[0].Path != ms98+"NoSuchThing" {
					t.Errorf("Warnings = %+v", out.Warnings)
				}
			},
		},
		{
			name: "a missing path in a task faults its channel", model: "tr098", setup: warm,
			chans: []chanProvs{ch("task_9", p("refresh", igd+"NoSuch.Object.Param")), ch("", p("value", pii98, 120.0))},
			want:  []string{"SPV " + pii98 + "=120"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				f, ok := out.Faults["task_9"]
				if !ok || f.Code != "cwmp.9005" {
					t.Errorf("Faults = %+v", out.Faults)
				}
			},
		},
		{
			name: "a CPE fault stops only its channel", model: "tr098", setup: warm,
			chans: []chanProvs{
				ch("bad", p("value", pii98, "soon")),
				ch("good", p("refresh", ms98+"STUNEnable"), p("tag", "seen", true)),
			},
			want: []string{"GPV 1", "SPV " + pii98 + "=soon"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				f, ok := out.Faults["bad"]
				if !ok || f.Code != "cwmp.9003" || !strings.HasPrefix(f.Detail[pii98], "9007") {
					t.Errorf("bad fault = %+v", f)
				}
				if _, ok := out.Faults["good"]; ok || !out.Tags["seen"] {
					t.Errorf("good: faults %+v, tags %v", out.Faults, out.Tags)
				}
			},
		},
		{
			name: "a CPE fault quoting a secret value keeps the words, not the secret", model: "tr181", setup: warm,
			chans: []chanProvs{ch("key", p("value", "Device.WiFi.AccessPoint.1.Security.PreSharedKey", "not-hex-secret"))},
			want:  []string{"SPV Device.WiFi.AccessPoint.1.Security.PreSharedKey=not-hex-secret"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				f, ok := out.Faults["key"]
				if d := f.Detail["Device.WiFi.AccessPoint.1.Security.PreSharedKey"]; !ok || !strings.HasPrefix(d, "9007") ||
					strings.Contains(d+f.Message, "not-hex-secret") || !strings.Contains(d, fleet.SecretMask) {
					t.Errorf("key fault = %+v, want 9007 in words without the secret", f)
				}
			},
		},
		{
			name: "a SetParameterValues fault naming one channel's parameter stops that channel only", model: "tr098", setup: warm,
			chans: []chanProvs{
				ch("bad", p("value", pii98, "soon")),
				ch("good", p("value", igd+"Time.NTPServer1", "ntp.example")),
			},
			// The CPE applies an SPV whole or not at all: the good
			// channel's value is sent again, alone.
			want: []string{"SPV " + pii98 + "=soon," + igd + "Time.NTPServer1=ntp.example", "SPV " + igd + "Time.NTPServer1=ntp.example"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if f, ok := out.Faults["bad"]; !ok || f.Code != "cwmp.9003" {
					t.Errorf("bad fault = %+v", out.Faults)
				}
				if _, ok := out.Faults["good"]; ok || h.devGet(igd+"Time.NTPServer1") != "ntp.example" {
					t.Errorf("good: faults %+v, NTP server %s", out.Faults, h.devGet(igd+"Time.NTPServer1"))
				}
			},
		},
		{
			name: "reboot", model: "tr098", setup: warm,
			chans: []chanProvs{ch("", p("reboot"))},
			want:  []string{"Reboot"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if !out.Reboot {
					t.Error("outcome has no reboot")
				}
			},
		},
		{
			name: "factory reset", model: "tr181", setup: warm,
			chans: []chanProvs{ch("", p("reset"))},
			want:  []string{"FactoryReset"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if !out.FactoryReset {
					t.Error("outcome has no factory reset")
				}
			},
		},
		{
			name: "download resolves its URL", model: "tr098", setup: warm,
			opts: Options{Files: func(name string) (string, uint32, error) {
				return "http://files.example/" + name, 1234, nil
			}},
			chans: []chanProvs{ch("", p("download", "1 Firmware Upgrade Image", "fw-2.5.bin"))},
			want:  []string{"Download 1 Firmware Upgrade Image http://files.example/fw-2.5.bin"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if len(out.Downloads) != 1 || out.Downloads[0].FileName != "fw-2.5.bin" || out.Downloads[0].Status != 1 {
					t.Errorf("Downloads = %+v", out.Downloads)
				}
				if e, ok := h.cache.Get("Downloads.1.FileName"); !ok || e.Value != "fw-2.5.bin" {
					t.Errorf("Downloads.1.FileName = %+v", e)
				}
			},
		},
		{
			name: "download without a file store faults", model: "tr098", setup: warm,
			chans: []chanProvs{ch("task_3", p("download", "1 Firmware Upgrade Image", "fw.bin"))},
			want:  []string{},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if out.Faults["task_3"].Code != FaultFileNotFound {
					t.Errorf("Faults = %+v", out.Faults)
				}
			},
		},
		{
			name: "writes come in GenieACS's order", model: "tr098", setup: warm,
			opts: Options{Files: func(name string) (string, uint32, error) { return "http://f/" + name, 1, nil }},
			chans: []chanProvs{ch("",
				p("reboot"), p("download", "3 Vendor Configuration File", "cfg.xml"), p("value", pii98, 900.0),
				p("instances", wlan+"*", 1.0), p("refresh", ms98+"ParameterKey"))},
			want: []string{"GPV 1", "Del " + wlan + "2.", "SPV " + pii98 + "=900",
				"Download 3 Vendor Configuration File http://f/cfg.xml", "Reboot"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.model)
			tc.setup(h)
			r := h.newRun(tc.opts)
			for _, c := range tc.chans {
				for i := range c.provs {
					c.provs[i] = h.expand(c.provs[i])
				}
				provisions(t, r, c.channel, c.provs...)
			}
			got := h.drive(r)
			t.Logf("RPCs: %q", got)
			if tc.want != nil && !slices.Equal(got, h.expandAll(tc.want)) {
				t.Errorf("RPCs:\n got %q\nwant %q", got, h.expandAll(tc.want))
			}
			if tc.want == nil && len(got) > tc.maxRPCs {
				t.Errorf("%d RPCs, want at most %d: %q", len(got), tc.maxRPCs, got)
			}
			out := r.Outcome()
			if tc.check != nil {
				tc.check(t, h, out)
			}
			// Idempotence: the same declarations on the updated cache,
			// later in the same session, plan nothing.
			if tc.want != nil && len(out.Faults) == 0 && !out.FactoryReset && !relative(tc.chans) {
				r2 := h.newRun(Options{Now: h.clock, Files: tc.opts.Files})
				ApplyTags(h.cache, out.Tags, h.clock)
				for _, c := range tc.chans {
					provisions(t, r2, c.channel, c.provs...)
				}
				if again := h.drive(r2); len(again) != 0 && !onlyRepeatable(again) {
					t.Errorf("second run planned %q", again)
				}
				if len(r2.Outcome().Tags) != 0 {
					t.Errorf("second run changed tags %v", r2.Outcome().Tags)
				}
			}
		})
	}
}

// onlyRepeatable reports whether RPCs are the ones GenieACS repeats in
// every run by design: a reboot, reset or download is declared "as of
// now", so a later run asks again (presets guard them with preconditions).
func onlyRepeatable(log []string) bool {
	for _, m := range methods(log) {
		if m != "Reboot" && m != "FactoryReset" && m != "Download" {
			return false
		}
	}
	return true
}

func relative(chans []chanProvs) bool {
	for _, c := range chans {
		for _, pr := range c.provs {
			if len(pr) == 3 {
				if s, ok := pr[2].(string); ok && (strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-")) {
					return true
				}
			}
		}
	}
	return false
}

// expand replaces placeholders in provision arguments with values of the
// simulated device, which are generated per device.
func (h *harness) expand(pr []any) []any {
	out := slices.Clone(pr)
	for i, a := range out {
		if s, ok := a.(string); ok {
			out[i] = h.expandString(s)
		}
	}
	return out
}

func (h *harness) expandAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = h.expandString(s)
	}
	return out
}

func (h *harness) expandString(s string) string {
	if strings.Contains(s, "%CH2%") {
		s = strings.ReplaceAll(s, "%CH2%", h.devGet(wlan+"2.Channel"))
	}
	return s
}

func TestPlanFreshness(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-2 * time.Minute))
	run := func(ts Timestamps) []string {
		r := h.newRun(Options{})
		c, _ := r.Channel("")
		if err := c.Declare(pii98, ts, Values{}); err != nil {
			t.Fatal(err)
		}
		return h.drive(r)
	}
	if got := run(Timestamps{Value: t0.Add(-5 * time.Minute)}); len(got) != 0 {
		t.Errorf("value fresh enough: %q", got)
	}
	if got := run(Timestamps{Value: t0.Add(-time.Minute)}); !slices.Equal(got, []string{"GPV 1"}) {
		t.Errorf("value stale: %q", got)
	}
	// Now fresh: the GPV above was at t0 + 10ms.
	if got := run(Timestamps{Value: t0}); len(got) != 0 {
		t.Errorf("value read in this session: %q", got)
	}
	// A requirement in the future counts as the session's start.
	if got := run(Timestamps{Value: t0.Add(time.Hour)}); len(got) != 0 {
		t.Errorf("future timestamp: %q", got)
	}
	// A wildcard's path timestamp asks for the list of instances.
	r := h.newRun(Options{Now: t0.Add(time.Second)})
	c, _ := r.Channel("")
	_ = c.Declare(wlan+"*", Timestamps{Path: t0.Add(time.Second)}, Values{})
	if got := h.drive(r); !slices.Equal(got, []string{"GPN " + wlan + " next"}) {
		t.Errorf("path timestamp: %q", got)
	}
	// Writable flags come from the parent's listing.
	r = h.newRun(Options{Now: t0.Add(2 * time.Second)})
	c, _ = r.Channel("")
	_ = c.Declare(pii98, Timestamps{Writable: t0.Add(2 * time.Second)}, Values{})
	if got := h.drive(r); !slices.Equal(got, []string{"GPN " + ms98 + " next"}) {
		t.Errorf("writable timestamp: %q", got)
	}
}

func TestPlanClear(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-10 * time.Second))
	r := h.newRun(Options{})
	c, _ := r.Channel("")
	if err := c.Clear(ms98+"PeriodicInformInterval", t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Declare(pii98, Timestamps{Value: Ever}, Values{}); err != nil {
		t.Fatal(err)
	}
	if got := h.drive(r); !slices.Equal(got, []string{"GPV 1"}) {
		t.Errorf("cleared parameter: %q", got)
	}
	// Clearing a table's instances forces a new listing.
	r = h.newRun(Options{Now: t0.Add(time.Second)})
	c, _ = r.Channel("")
	_ = c.Clear(wlan+"*", t0.Add(time.Second))
	_ = c.Declare(wlan+"*.SSID", Timestamps{}, Values{})
	if got := h.drive(r); len(got) == 0 || got[0] != "GPN "+wlan+" all" {
		t.Errorf("cleared instances: %q", got)
	}
}

// TestPlanBounded: a CPE that lists a parameter and then denies it (9005
// on every GetParameterValues) ends as a fault after MaxIterations rounds.
func TestPlanBounded(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	h.answer = func(m cwmp.Message) cwmp.Message {
		if gpv, ok := m.(*cwmp.GetParameterValues); ok && slices.Contains(gpv.ParameterNames, pii98) {
			return cwmp.NewFault(cwmp.FaultInvalidParameterName, "no")
		}
		return nil
	}
	r := h.newRun(Options{MaxIterations: 8})
	provisions(t, r, "flaky", p("value", pii98, 60.0))
	provisions(t, r, "fine", p("value", ms98+"STUNEnable", true))
	got := h.drive(r)
	if len(got) > 2*8 {
		t.Errorf("%d RPCs: %q", len(got), got)
	}
	out := r.Outcome()
	if out.Faults["flaky"].Code != FaultTooManyCommits {
		t.Errorf("Faults = %+v", out.Faults)
	}
	if v := h.devGet(ms98 + "STUNEnable"); v != "true" {
		t.Errorf("the other channel did not finish: STUNEnable = %s", v)
	}
}

// TestPlanTags: tags are outcome only, never RPCs.
func TestPlanTags(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Hour))
	ApplyTags(h.cache, map[string]bool{"old": true, "keep": true}, t0.Add(-time.Hour))
	r := h.newRun(Options{})
	provisions(t, r, "", p("tag", "vip", true), p("tag", "old", false), p("tag", "keep", true))
	if got := h.drive(r); len(got) != 0 {
		t.Errorf("tags sent RPCs: %q", got)
	}
	if tags := r.Outcome().Tags; len(tags) != 2 || !tags["vip"] || tags["old"] {
		t.Errorf("Tags = %v", tags)
	}
	ApplyTags(h.cache, r.Outcome().Tags, t0)
	if m, _ := Match(h.cache, "Tags.*"); len(m) != 2 {
		t.Errorf("tags in the tree: %+v", m)
	}
}

// TestPlanReplan: a caller that answers only the first RPC of a batch and
// replans loses nothing and repeats nothing.
func TestPlanReplan(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Hour))
	r := h.newRun(Options{BatchSize: 1})
	provisions(t, r, "", p("refresh", ms98+"STUNEnable"), p("refresh", pii98), p("refresh", ms98+"URL"))
	var sent []string
	for range 10 {
		msgs, done := r.Next(h.cache)
		if done {
			break
		}
		m := msgs[0]
		sent = append(sent, describeRPC(m)+" "+m.(*cwmp.GetParameterValues).ParameterNames[0])
		if err := r.Answer(h.cache, &cwmp.Answer{Request: m, Response: cpeAnswer(h.dev, m)}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if len(sent) != 3 {
		t.Errorf("sent %q", sent)
	}
	if err := r.Answer(h.cache, &cwmp.Answer{Request: &cwmp.Reboot{}}, t0); !errors.Is(err, ErrUnknownRequest) {
		t.Errorf("foreign request: %v", err)
	}
}

func TestDeclareErrors(t *testing.T) {
	r := NewRun(Options{Now: t0})
	c, _ := r.Channel("")
	for _, tc := range []struct {
		path string
		vals Values
		want error
	}{
		{"A..B", Values{}, ErrBadPath},
		{"VirtualParameters.x.y", Values{Value: &Value{Value: "1"}}, ErrUnsupported},
		{"VirtualParameters.*", Values{Value: &Value{Value: "1"}}, ErrUnsupported},
		{"VirtualParameters.x", Values{Instances: Count(1)}, ErrUnsupported},
		{"Tags.x", Values{Value: &Value{Value: "maybe"}}, ErrBadArguments},
		{"Device.A", Values{Instances: &Instances{Min: 2, Max: 1}}, ErrBadArguments},
		{"Device", Values{Instances: Count(1)}, ErrBadArguments},
		{"*.A", Values{Value: &Value{Value: "1"}}, ErrUnsupported},
	} {
		if err := c.Declare(tc.path, Timestamps{}, tc.vals); !errors.Is(err, tc.want) {
			t.Errorf("Declare(%q, %+v) = %v, want %v", tc.path, tc.vals, err, tc.want)
		}
	}
	for _, tc := range [][]any{
		{"refresh"}, {"refresh", 1.0}, {"refresh", "A", "x"}, {"value", "A"}, {"value", "A", "notification", 1.0},
		{"tag", "a", "yes"}, {"tag", "a.b", true}, {"reboot", 1.0}, {"download", "1 X"}, {"instances", "A.*", "many"},
		{"instances", "A.*", -1.0}, {"instances", "A.*", 1.5},
	} {
		if err := c.Provision(tc[0].(string), tc[1:]...); err == nil {
			t.Errorf("Provision(%v) succeeded", tc)
		}
	}
	if err := c.Provision("myScript"); !errors.Is(err, ErrUnknownProvision) {
		t.Errorf("unknown provision: %v", err)
	}
	for i := range MaxChannels - 1 {
		if _, err := r.Channel(strings.Repeat("x", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Channel("one too many"); !errors.Is(err, ErrTooMany) {
		t.Errorf("channel %d: %v", MaxChannels+1, err)
	}
}

// TestPlanPhantomInstances: a CPE that answers AddObject but never keeps
// the instance must not make the run add forever.
func TestPlanPhantomInstances(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Hour))
	h.answer = func(m cwmp.Message) cwmp.Message {
		if _, ok := m.(*cwmp.AddObject); ok {
			return &cwmp.AddObjectResponse{InstanceNumber: 9}
		}
		return nil
	}
	r := h.newRun(Options{})
	provisions(t, r, "", p("instances", ppp+"[Name:voip]", 2.0))
	got := h.drive(r)
	if n := strings.Count(strings.Join(got, "\n"), "Add "); n > 2 {
		t.Errorf("%d AddObjects: %q", n, got)
	}
	if f := r.Outcome().Faults[""]; f.Code != FaultTooManyCommits {
		t.Errorf("fault = %+v; RPCs %q", f, got)
	}
}

func TestPlanMaxRPCs(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Hour))
	r := h.newRun(Options{BatchSize: 5, MaxRPCs: 3})
	provisions(t, r, "big", p("refresh", wlan))
	provisions(t, r, "small", p("value", pii98, 30.0))
	got := h.drive(r)
	if len(got) != 3 {
		t.Errorf("RPCs %q", got)
	}
	out := r.Outcome()
	if out.Faults["big"].Code != FaultTooManyRPCs || out.Faults["small"].Code != FaultTooManyRPCs {
		t.Errorf("Faults = %+v", out.Faults)
	}
}

// TestRunReopenAndReset: a run takes new declarations after it was done
// (tasks one after the other), and a script sandbox's Reset keeps what
// must not be decided twice (the target of "+1").
func TestRunReopenAndReset(t *testing.T) {
	h := newHarness(t, "tr181").discover(t0.Add(-time.Hour))
	r := h.newRun(Options{})
	provisions(t, r, "task_1", p("instances", "Device.WiFi.SSID.[]", "+1"))
	if got := h.drive(r); !slices.Equal(got, []string{"Add Device.WiFi.SSID."}) {
		t.Fatalf("first task: %q", got)
	}
	if _, done := r.Next(h.cache); !done {
		t.Fatal("not done after the first task")
	}
	provisions(t, r, "task_2", p("value", "Device.WiFi.SSID.1.SSID", "corp"))
	if got := h.drive(r); !slices.Equal(got, []string{"SPV Device.WiFi.SSID.1.SSID=corp"}) {
		t.Fatalf("second task: %q", got)
	}
	r.Reset()
	provisions(t, r, "task_1", p("instances", "Device.WiFi.SSID.[]", "+1"))
	if got := h.drive(r); len(got) != 0 {
		t.Errorf("replayed +1 added again: %q", got)
	}
	if out := r.Outcome(); !slices.Equal(out.Channels, []string{"task_1", "task_2"}) || len(out.Faults) != 0 {
		t.Errorf("Channels %v, Faults %+v", out.Channels, out.Faults)
	}
}

// TestGPVBatchFallback: a CPE that cannot answer a large
// GetParameterValues (9002 or 9004, its reply does not fit) is asked the
// same names again SmallBatchSize at a time, and the refresh completes
// without a fault; a CPE that faults a small batch too faults the channel
// as before.
func TestGPVBatchFallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  uint32
		limit int // the CPE faults GPVs of more names than this
		fault bool
	}{
		{"resources exceeded", cwmp.FaultResourcesExceeded, SmallBatchSize, false},
		{"internal error", cwmp.FaultInternalError, SmallBatchSize, false},
		{"small batches fault too", cwmp.FaultInternalError, 8, true},
		{"request denied is no size problem", cwmp.FaultRequestDenied, SmallBatchSize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "tr098")
			h.inform(t0.Add(-time.Hour))
			h.answer = func(m cwmp.Message) cwmp.Message {
				if gpv, ok := m.(*cwmp.GetParameterValues); ok && len(gpv.ParameterNames) > tc.limit {
					return cwmp.NewFault(tc.code, "reply too large")
				}
				return nil
			}
			r := h.newRun(Options{})
			provisions(t, r, "boot", p("refresh", igd))
			got := h.drive(r)
			out := r.Outcome()
			if tc.fault {
				if _, ok := out.Faults["boot"]; !ok {
					t.Fatalf("no fault after %q", got)
				}
				return
			}
			if len(out.Faults) != 0 {
				t.Fatalf("faults %+v after %q", out.Faults, got)
			}
			// The first round's large batches refused, then the tree in
			// small ones.
			large := (h.dev.Len() + DefaultBatchSize - 1) / DefaultBatchSize
			gpvs := 0
			for _, l := range got {
				n, ok := strings.CutPrefix(l, "GPV ")
				if !ok {
					continue
				}
				gpvs++
				k, _ := strconv.Atoi(n)
				if gpvs > large && k > SmallBatchSize {
					t.Errorf("GPV %d of %d names after the fault: %q", gpvs, k, got)
				}
			}
			if want := large + (h.dev.Len()+SmallBatchSize-1)/SmallBatchSize; gpvs != want {
				t.Errorf("%d GPVs, want %d: %q", gpvs, want, got)
			}
			fresh := 0
			h.cache.Walk("", func(e Entry) bool {
				if !e.Object && !isVirtual(e.Path) && !e.ValueTime.Before(t0) {
					fresh++
				}
				return true
			})
			if fresh != h.dev.Len() {
				t.Errorf("%d parameters refreshed, device has %d", fresh, h.dev.Len())
			}
		})
	}
}
