package provision

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

func children(t Tree, path string) []string {
	var out []string
	t.Children(path, func(e Entry) bool {
		out = append(out, e.Path)
		return true
	})
	return out
}

func TestMemTree(t *testing.T) {
	m := NewMemTree()
	at := t0
	for _, n := range []string{"X.T.10.A", "X.T.2.A", "X.T.1.B", "X.T.Count", "X.T.1.A"} {
		m.Put(Entry{Path: n, Value: "v", PathTime: at})
		at = at.Add(time.Second)
	}
	if got := children(m, "X.T."); !slices.Equal(got, []string{"X.T.1.", "X.T.2.", "X.T.10.", "X.T.Count"}) {
		t.Errorf("children = %q", got)
	}
	e, ok := m.Get("X.")
	if !ok || !e.Object || !e.PathTime.Equal(t0.Add(4*time.Second)) {
		t.Errorf("implied ancestor = %+v, %v", e, ok)
	}
	m.Delete("X.T.1.")
	if _, ok := m.Get("X.T.1.A"); ok {
		t.Error("Delete left a descendant")
	}
	if got := children(m, "X.T."); !slices.Equal(got, []string{"X.T.2.", "X.T.10.", "X.T.Count"}) {
		t.Errorf("children after delete = %q", got)
	}
	if n := m.Len(); n != 8 { // "", X., X.T., X.T.2., X.T.2.A, X.T.10., X.T.10.A, X.T.Count
		t.Errorf("Len = %d", n)
	}
	m.Delete("")
	if m.Len() != 1 {
		t.Errorf("Len after deleting the root = %d", m.Len())
	}
}

func TestApplyGPNPrunes(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Hour))
	// The CPE lost host 3 since the cache learnt it.
	if f := h.dev.DeleteObject(igd+"LANDevice.1.Hosts.Host.3.", ""); f == nil {
		t.Fatal("sim let a read-only table lose an instance")
	}
	// Host tables are read-only on the sim; prune through a fake answer.
	gpn := &cwmp.GetParameterNames{ParameterPath: igd + "LANDevice.1.Hosts.Host.", NextLevel: true}
	resp := &cwmp.GetParameterNamesResponse{ParameterList: []cwmp.ParameterInfo{
		{Name: igd + "LANDevice.1.Hosts.Host.1."}, {Name: igd + "LANDevice.1.Hosts.Host.2."}}}
	if err := ApplyResponse(h.cache, gpn, resp, t0); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.cache.Get(igd + "LANDevice.1.Hosts.Host.3.MACAddress"); ok {
		t.Error("host 3 survived the listing")
	}
	e, _ := h.cache.Get(igd + "LANDevice.1.Hosts.Host.")
	if !e.ListTime.Equal(t0) {
		t.Errorf("table ListTime = %v", e.ListTime)
	}
	if e, _ := h.cache.Get(igd + "LANDevice.1.Hosts.Host.1.MACAddress"); e.ValueTime.IsZero() {
		t.Error("a NextLevel listing forgot the values below the instances")
	}
	if err := ApplyResponse(h.cache, gpn, &cwmp.GetParameterValuesResponse{}, t0); err == nil {
		t.Error("mismatched response accepted")
	}
}

// TestApplyGPNWholeSubtree: a NextLevel=false listing prunes what the
// CPE no longer lists at any depth (an instance and everything below it,
// a lone parameter), adds what is new, and stamps every object under the
// root as listed, those the CPE named only through their children too.
// Nothing outside the root, and no value inside it, is touched.
func TestApplyGPNWholeSubtree(t *testing.T) {
	before := t0.Add(-time.Hour)
	h := newHarness(t, "tr098").discover(before)
	lan := igd + "LANDevice.1."
	hosts := lan + "Hosts.Host."
	gpn := &cwmp.GetParameterNames{ParameterPath: lan}
	all, f := h.dev.GetNames(lan, false)
	if f != nil {
		t.Fatal(f)
	}
	var list []cwmp.ParameterInfo
	for _, pi := range all {
		switch {
		case strings.HasPrefix(pi.Name, hosts+"3."), pi.Name == wlan+"1.Standard", pi.Name == hosts+"2.":
		default:
			list = append(list, pi)
		}
	}
	list = append(list, cwmp.ParameterInfo{Name: hosts + "4.MACAddress"})
	if err := ApplyResponse(h.cache, gpn, &cwmp.GetParameterNamesResponse{ParameterList: list}, t0); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{hosts + "3.", hosts + "3.MACAddress", wlan + "1.Standard"} {
		if _, ok := h.cache.Get(gone); ok {
			t.Errorf("%s survived the listing", gone)
		}
	}
	for _, obj := range []string{lan, hosts, hosts + "2.", hosts + "4.", wlan + "1."} {
		if e, ok := h.cache.Get(obj); !ok || !e.Object || !e.ListTime.Equal(t0) {
			t.Errorf("%s: ok %v, entry %+v; want an object listed at t0", obj, ok, e)
		}
	}
	if e, ok := h.cache.Get(hosts + "4.MACAddress"); !ok || !e.PathTime.Equal(t0) || !e.ValueTime.IsZero() {
		t.Errorf("new parameter: ok %v, entry %+v", ok, e)
	}
	if e, _ := h.cache.Get(hosts + "1.MACAddress"); !e.ValueTime.Equal(before) || !e.PathTime.Equal(t0) {
		t.Errorf("listed parameter: %+v; want its value kept and its path time t0", e)
	}
	if e, _ := h.cache.Get(igd + "DeviceInfo.SoftwareVersion"); !e.PathTime.Equal(before) {
		t.Errorf("a parameter outside the listing changed: %+v", e)
	}
}

// TestSelfHeal: the cache believes in an instance the CPE lost; the SET
// faults 9005 per parameter, the cache forgets the names, their object is
// listed again (9005: gone) and the remaining instances are set.
func TestSelfHeal(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Hour))
	if f := h.dev.DeleteObject(wlan+"2.", ""); f != nil {
		t.Fatal(f)
	}
	r := h.newRun(Options{})
	provisions(t, r, "", p("value", wlan+"*.Standard", "ac"))
	got := h.drive(r)
	want := []string{
		"SPV " + wlan + "1.Standard=ac," + wlan + "2.Standard=ac",
		"GPN " + wlan + "2. next", // 9005: the instance is gone
		"SPV " + wlan + "1.Standard=ac",
	}
	if !slices.Equal(got, want) {
		t.Errorf("RPCs:\n got %q\nwant %q", got, want)
	}
	if len(r.Outcome().Faults) != 0 {
		t.Errorf("Faults = %+v", r.Outcome().Faults)
	}
	if _, ok := h.cache.Get(wlan + "2."); ok {
		t.Error("the lost instance is still cached")
	}
}

func TestMatch(t *testing.T) {
	h := newHarness(t, "tr181").discover(t0)
	alias := h.devGet("Device.WiFi.SSID.2.Alias")
	for _, tc := range []struct {
		path string
		want int
	}{
		{"Device.WiFi.SSID.*.SSID", 2},
		{"Device.WiFi.SSID.[Alias:" + alias + "]", 1},
		{"Device.WiFi.SSID.[Alias:" + alias + "].SSID", 1},
		{"Device.WiFi.SSID.[Alias:none]", 0},
		{"Device.WiFi.SSID.*.", 2},
		{"Device.WiFi.", 1},
		{"Device.Nope", 0},
	} {
		got, err := Match(h.cache, tc.path)
		if err != nil || len(got) != tc.want {
			t.Errorf("Match(%q) = %d entries, %v; want %d", tc.path, len(got), err, tc.want)
		}
	}
}

func TestTaskProvisions(t *testing.T) {
	files := func(name string) (string, uint32, error) { return "http://f/" + name, 10, nil }
	tests := []struct {
		task  fleet.Task
		want  [][]any
		model string
		rpcs  []string
		check func(t *testing.T, h *harness, out *Outcome)
	}{
		{
			task:  fleet.Task{Name: fleet.TaskGetParameterValues, ParameterNames: []string{pii98, ms98 + "URL"}},
			want:  [][]any{{"refresh", pii98}, {"refresh", ms98 + "URL"}},
			model: "tr098", rpcs: []string{"GPV 2"},
		},
		{
			task: fleet.Task{Name: fleet.TaskSetParameterValues, ParameterValues: []fleet.ParameterValue{
				{Name: pii98, Value: "120", Type: "xsd:int"}, {Name: ms98 + "URL", Value: "http://acs"}}},
			want: [][]any{{"value", pii98, []any{"120", "xsd:int"}}, {"value", ms98 + "URL", "http://acs"}},
			// The task's inferred xsd:int yields to the CPE's unsignedInt.
			model: "tr098", rpcs: []string{"SPV " + pii98 + "=120," + ms98 + "URL=http://acs"},
			check: func(t *testing.T, h *harness, out *Outcome) {
				if out.Changed[0].Type != cwmp.TypeUnsignedInt {
					t.Errorf("type sent = %s", out.Changed[0].Type)
				}
			},
		},
		{
			task:  fleet.Task{Name: fleet.TaskRefreshObject, ObjectName: igd + "LANDevice.1.Hosts."},
			want:  [][]any{{"refresh", igd + "LANDevice.1.Hosts."}},
			model: "tr098", rpcs: []string{"GPN " + igd + "LANDevice.1.Hosts. all", "GPV 22"},
		},
		{
			task: fleet.Task{Name: fleet.TaskAddObject, ObjectName: ppp, ParameterValues: []fleet.ParameterValue{
				{Name: "Name", Value: "vo,ip"}}},
			want:  [][]any{{"instances", ppp[:len(ppp)-1] + `.[Name:"vo,ip"]`, "+1"}},
			model: "tr098", rpcs: []string{"Add " + ppp, "SPV " + ppp + "2.Name=vo,ip"},
		},
		{
			task:  fleet.Task{Name: fleet.TaskAddObject, ObjectName: "Device.WiFi.SSID"},
			want:  [][]any{{"instances", "Device.WiFi.SSID.[]", "+1"}},
			model: "tr181", rpcs: []string{"Add Device.WiFi.SSID."},
		},
		{
			task:  fleet.Task{Name: fleet.TaskDeleteObject, ObjectName: "Device.WiFi.SSID.1."},
			want:  [][]any{{"instances", "Device.WiFi.SSID.1", 0.0}},
			model: "tr181", rpcs: []string{"Del Device.WiFi.SSID.1."},
		},
		{
			task: fleet.Task{Name: fleet.TaskReboot}, want: [][]any{{"reboot"}},
			model: "tr181", rpcs: []string{"Reboot"},
		},
		{
			task: fleet.Task{Name: fleet.TaskFactoryReset}, want: [][]any{{"reset"}},
			model: "tr181", rpcs: []string{"FactoryReset"},
		},
		{
			task:  fleet.Task{Name: fleet.TaskDownload, FileType: "1 Firmware Upgrade Image", FileName: "fw.bin"},
			want:  [][]any{{"download", "1 Firmware Upgrade Image", "fw.bin", ""}},
			model: "tr181", rpcs: []string{"Download 1 Firmware Upgrade Image http://f/fw.bin"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.task.Name, func(t *testing.T) {
			tc.task.ID = "01TASK"
			got, err := TaskProvisions(&tc.task)
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSON(got, tc.want) {
				t.Fatalf("TaskProvisions = %#v, want %#v", got, tc.want)
			}
			h := newHarness(t, tc.model).discover(t0.Add(-time.Hour))
			r := h.newRun(Options{Files: files})
			provisions(t, r, TaskChannel(tc.task.ID), got...)
			if rpcs := h.drive(r); !slices.Equal(rpcs, tc.rpcs) {
				t.Errorf("RPCs:\n got %q\nwant %q", rpcs, tc.rpcs)
			}
			out := r.Outcome()
			if len(out.Faults) != 0 || !slices.Equal(out.Channels, []string{"task_01TASK"}) {
				t.Errorf("Faults %+v, Channels %v", out.Faults, out.Channels)
			}
			if tc.check != nil {
				tc.check(t, h, out)
			}
		})
	}
	for _, name := range []string{fleet.TaskGetParameterNames, fleet.TaskUpload, fleet.TaskGetRPCMethods} {
		if _, err := TaskProvisions(&fleet.Task{Name: name}); err == nil {
			t.Errorf("%s mapped to provisions", name)
		}
	}
}

func equalJSON(a, b [][]any) bool {
	return slices.EqualFunc(a, b, func(x, y []any) bool {
		return slices.EqualFunc(x, y, func(u, v any) bool {
			if us, ok := u.([]any); ok {
				vs, ok := v.([]any)
				return ok && slices.Equal(us, vs)
			}
			return u == v
		})
	})
}
