package sim

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

func newTestTree(t *testing.T, model string, index int) *Tree {
	t.Helper()
	m, err := LoadModel(model)
	if err != nil {
		t.Fatalf("LoadModel(%s): %v", model, err)
	}
	return NewTree(m, Identity{Seed: 42, Index: index, ConnectionRequestURL: "http://127.0.0.1:7547/x"})
}

func TestModelsLoad(t *testing.T) {
	for _, name := range []string{ModelTR098, ModelTR181, ModelVoIP} {
		tr := newTestTree(t, name, 0)
		if n := tr.Len(); n < 100 || n > 400 {
			t.Errorf("%s: %d parameters, want 100..400", name, n)
		}
		for _, p := range tr.Forced() {
			if strings.Contains(p.Value, "{") {
				t.Errorf("%s: forced %s has unexpanded value %q", name, p.Name, p.Value)
			}
		}
	}
	if _, err := LoadModel("tr999"); err == nil {
		t.Fatal("LoadModel(tr999) succeeded")
	}
}

func TestParseModelErrors(t *testing.T) {
	tests := []struct{ name, text string }{
		{"no root", "X.A string R v\n"},
		{"bad type", "@root X.\nX.A strin R v\n"},
		{"bad flags", "@root X.\nX.A string Q v\n"},
		{"outside root", "@root X.\nY.A string R v\n"},
		{"bad count", "@root X.\nX.T.{i}. object W many\n"},
		{"object without dot", "@root X.\nX.T object R\n"},
		{"duplicate", "@root X.\nX.A string R\nX.A string R\n"},
	}
	for _, tc := range tests {
		if _, err := ParseModel("t", []byte(tc.text)); err == nil {
			t.Errorf("%s: ParseModel succeeded", tc.name)
		}
	}
}

func TestDeterministicValues(t *testing.T) {
	a, b, c := newTestTree(t, ModelTR098, 7), newTestTree(t, ModelTR098, 7), newTestTree(t, ModelTR098, 8)
	mac := "InternetGatewayDevice.LANDevice.1.Hosts.Host.2.MACAddress"
	va, _ := a.Get(mac)
	vb, _ := b.Get(mac)
	vc, _ := c.Get(mac)
	if va != vb || va == vc || va == "" {
		t.Fatalf("MAC a=%q b=%q c=%q: want a==b!=c", va, vb, vc)
	}
	if a.Serial() == c.Serial() {
		t.Fatalf("serials equal: %s", a.Serial())
	}
	ssid1, _ := a.Get("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID")
	if !strings.HasPrefix(ssid1, "EdgeSim-") || !strings.HasSuffix(ssid1, "-1") {
		t.Fatalf("SSID = %q", ssid1)
	}
}

func TestGetValues(t *testing.T) {
	tr := newTestTree(t, ModelTR098, 1)
	tests := []struct {
		names   []string
		want    int // -1: fault 9005
		contain string
	}{
		{[]string{"InternetGatewayDevice.DeviceInfo.SerialNumber"}, 1, "InternetGatewayDevice.DeviceInfo.SerialNumber"},
		{[]string{"InternetGatewayDevice.LANDevice.1.Hosts.Host.1."}, 7, "InternetGatewayDevice.LANDevice.1.Hosts.Host.1.HostName"},
		{[]string{"InternetGatewayDevice.LANDevice.1.Hosts.Host."}, 21, "InternetGatewayDevice.LANDevice.1.Hosts.Host.3.Active"},
		{[]string{"InternetGatewayDevice.DeviceInfo.SerialNumber", "InternetGatewayDevice.DeviceInfo.Manufacturer"}, 2, "InternetGatewayDevice.DeviceInfo.Manufacturer"},
		{[]string{""}, tr.Len(), "InternetGatewayDevice.DeviceSummary"},
		{[]string{"InternetGatewayDevice.Nope"}, -1, ""},
		{[]string{"InternetGatewayDevice.DeviceInfo"}, -1, ""},         // object without dot
		{[]string{"InternetGatewayDevice.DeviceInfo.UpTime."}, -1, ""}, // parameter with dot
	}
	for _, tc := range tests {
		got, f := tr.GetValues(tc.names)
		if tc.want < 0 {
			if f == nil || f.Code != cwmp.FaultInvalidParameterName {
				t.Errorf("%v: fault %v, want 9005", tc.names, f)
			}
			continue
		}
		if f != nil {
			t.Errorf("%v: fault %v", tc.names, f)
			continue
		}
		if len(got) != tc.want {
			t.Errorf("%v: %d values, want %d", tc.names, len(got), tc.want)
		}
		found := false
		for _, p := range got {
			if p.Name == tc.contain {
				found = true
			}
			if p.Type == "" {
				t.Errorf("%s has no type", p.Name)
			}
		}
		if !found {
			t.Errorf("%v: %s missing", tc.names, tc.contain)
		}
	}
	// Secrets read back empty.
	got, _ := tr.GetValues([]string{"InternetGatewayDevice.ManagementServer.ConnectionRequestPassword"})
	if got[0].Value != "" {
		t.Errorf("password read back as %q", got[0].Value)
	}
	if v, _ := tr.Get("InternetGatewayDevice.ManagementServer.ConnectionRequestPassword"); v == "" {
		t.Error("device's own password is empty")
	}
}

func TestGetNames(t *testing.T) {
	tr := newTestTree(t, ModelTR098, 1)
	tests := []struct {
		path      string
		nextLevel bool
		want      []string // names that must appear
		notWant   []string
		count     int // exact count when > 0
		fault     uint32
	}{
		{path: "", nextLevel: true, want: []string{"InternetGatewayDevice."}, count: 1},
		{path: "InternetGatewayDevice.LANDevice.1.Hosts.", nextLevel: true,
			want:    []string{"InternetGatewayDevice.LANDevice.1.Hosts.HostNumberOfEntries", "InternetGatewayDevice.LANDevice.1.Hosts.Host."},
			notWant: []string{"InternetGatewayDevice.LANDevice.1.Hosts.Host.1."}, count: 2},
		{path: "InternetGatewayDevice.LANDevice.1.Hosts.Host.", nextLevel: true,
			want: []string{"InternetGatewayDevice.LANDevice.1.Hosts.Host.1.", "InternetGatewayDevice.LANDevice.1.Hosts.Host.3."}, count: 3},
		{path: "InternetGatewayDevice.LANDevice.1.Hosts.Host.", nextLevel: false,
			want: []string{"InternetGatewayDevice.LANDevice.1.Hosts.Host.", "InternetGatewayDevice.LANDevice.1.Hosts.Host.2.", "InternetGatewayDevice.LANDevice.1.Hosts.Host.2.MACAddress"}, count: 1 + 3 + 21},
		{path: "InternetGatewayDevice.DeviceInfo.SerialNumber", nextLevel: false, want: []string{"InternetGatewayDevice.DeviceInfo.SerialNumber"}, count: 1},
		{path: "InternetGatewayDevice.DeviceInfo.SerialNumber", nextLevel: true, fault: cwmp.FaultInvalidArguments},
		{path: "InternetGatewayDevice.Bogus.", nextLevel: true, fault: cwmp.FaultInvalidParameterName},
	}
	for _, tc := range tests {
		got, f := tr.GetNames(tc.path, tc.nextLevel)
		if tc.fault != 0 {
			if f == nil || f.Code != tc.fault {
				t.Errorf("GPN(%q,%v): fault %v, want %d", tc.path, tc.nextLevel, f, tc.fault)
			}
			continue
		}
		if f != nil {
			t.Errorf("GPN(%q,%v): %v", tc.path, tc.nextLevel, f)
			continue
		}
		names := map[string]bool{}
		for _, p := range got {
			names[p.Name] = true
		}
		for _, w := range tc.want {
			if !names[w] {
				t.Errorf("GPN(%q,%v): missing %s", tc.path, tc.nextLevel, w)
			}
		}
		for _, w := range tc.notWant {
			if names[w] {
				t.Errorf("GPN(%q,%v): unexpected %s", tc.path, tc.nextLevel, w)
			}
		}
		if tc.count > 0 && len(got) != tc.count {
			t.Errorf("GPN(%q,%v): %d names, want %d", tc.path, tc.nextLevel, len(got), tc.count)
		}
	}
	// Writability: a writable table and its instances are writable, a read-only one is not.
	got, _ := tr.GetNames("InternetGatewayDevice.LANDevice.1.", true)
	for _, p := range got {
		switch p.Name {
		case "InternetGatewayDevice.LANDevice.1.WLANConfiguration.":
			if !p.Writable {
				t.Error("WLANConfiguration. not writable")
			}
		case "InternetGatewayDevice.LANDevice.1.Hosts.":
			if p.Writable {
				t.Error("Hosts. writable")
			}
		}
	}
}

func TestSetValues(t *testing.T) {
	const ssid = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
	const interval = "InternetGatewayDevice.ManagementServer.PeriodicInformInterval"
	const enable = "InternetGatewayDevice.ManagementServer.PeriodicInformEnable"
	const serial = "InternetGatewayDevice.DeviceInfo.SerialNumber"
	const key = "InternetGatewayDevice.ManagementServer.ParameterKey"
	tests := []struct {
		name   string
		params []cwmp.ParameterValue
		faults map[string]uint32 // per-parameter faults; nil means success
		check  map[string]string
	}{
		{"ok", []cwmp.ParameterValue{{Name: ssid, Value: "home", Type: cwmp.TypeString}, {Name: interval, Value: "60", Type: cwmp.TypeUnsignedInt}, {Name: enable, Value: "1", Type: cwmp.TypeBoolean}},
			nil, map[string]string{ssid: "home", interval: "60", enable: "true", key: "k1"}},
		{"untyped ok", []cwmp.ParameterValue{{Name: interval, Value: "120"}}, nil, map[string]string{interval: "120"}},
		{"int width ok", []cwmp.ParameterValue{{Name: interval, Value: "30", Type: cwmp.TypeInt}}, nil, map[string]string{interval: "30"}},
		{"unknown", []cwmp.ParameterValue{{Name: "InternetGatewayDevice.Nope", Value: "x"}}, map[string]uint32{"InternetGatewayDevice.Nope": 9005}, nil},
		{"object", []cwmp.ParameterValue{{Name: "InternetGatewayDevice.DeviceInfo.", Value: "x"}}, map[string]uint32{"InternetGatewayDevice.DeviceInfo.": 9005}, nil},
		{"read-only", []cwmp.ParameterValue{{Name: serial, Value: "x", Type: cwmp.TypeString}}, map[string]uint32{serial: 9008}, nil},
		{"bad type", []cwmp.ParameterValue{{Name: interval, Value: "60", Type: cwmp.TypeString}}, map[string]uint32{interval: 9006}, nil},
		{"bad value", []cwmp.ParameterValue{{Name: interval, Value: "-5", Type: cwmp.TypeUnsignedInt}}, map[string]uint32{interval: 9007}, nil},
		{"bad bool", []cwmp.ParameterValue{{Name: enable, Value: "yes", Type: cwmp.TypeBoolean}}, map[string]uint32{enable: 9007}, nil},
		{"word as unsignedInt", []cwmp.ParameterValue{{Name: interval, Value: "abc", Type: cwmp.TypeUnsignedInt}}, map[string]uint32{interval: 9007}, nil},
		{"word as boolean", []cwmp.ParameterValue{{Name: enable, Value: "abc", Type: cwmp.TypeBoolean}}, map[string]uint32{enable: 9007}, nil},
		{"int for a string", []cwmp.ParameterValue{{Name: ssid, Value: "42", Type: cwmp.TypeInt}}, map[string]uint32{ssid: 9006}, nil},
		{"boolean for an unsignedInt", []cwmp.ParameterValue{{Name: interval, Value: "1", Type: cwmp.TypeBoolean}}, map[string]uint32{interval: 9006}, nil},
		{"atomic", []cwmp.ParameterValue{{Name: ssid, Value: "changed", Type: cwmp.TypeString}, {Name: serial, Value: "x"}, {Name: interval, Value: "abc"}},
			map[string]uint32{serial: 9008, interval: 9007}, nil},
	}
	for _, tc := range tests {
		tr := newTestTree(t, ModelTR098, 1)
		before := map[string]string{}
		for _, p := range tc.params {
			before[p.Name], _ = tr.Get(p.Name)
		}
		f := tr.SetValues(tc.params, "k1")
		if tc.faults == nil {
			if f != nil {
				t.Errorf("%s: fault %+v", tc.name, f)
			}
			for n, want := range tc.check {
				if got, _ := tr.Get(n); got != want {
					t.Errorf("%s: %s = %q, want %q", tc.name, n, got, want)
				}
			}
			continue
		}
		if f == nil || f.Code != cwmp.FaultInvalidArguments {
			t.Errorf("%s: fault %+v, want 9003", tc.name, f)
			continue
		}
		got := map[string]uint32{}
		for _, pf := range f.SetParameterValuesFaults {
			got[pf.ParameterName] = pf.FaultCode
			if want := cwmp.FaultMessage(pf.FaultCode) + ": "; !strings.HasPrefix(pf.FaultString, want) || strings.Contains(pf.FaultString, "cwmp:") {
				t.Errorf("%s: %s fault string %q, want %q and the CPE's reason, no Go error chain", tc.name, pf.ParameterName, pf.FaultString, want)
			}
		}
		if len(got) != len(tc.faults) {
			t.Errorf("%s: per-parameter faults %v, want %v", tc.name, got, tc.faults)
		}
		for n, c := range tc.faults {
			if got[n] != c {
				t.Errorf("%s: %s fault %d, want %d", tc.name, n, got[n], c)
			}
		}
		for n, v := range before {
			if now, _ := tr.Get(n); now != v {
				t.Errorf("%s: %s changed to %q despite the fault", tc.name, n, now)
			}
		}
		if k, _ := tr.Get(key); k != "" {
			t.Errorf("%s: ParameterKey stored on failure: %q", tc.name, k)
		}
	}
}

func TestAttributes(t *testing.T) {
	tr := newTestTree(t, ModelTR098, 1)
	const sw = "InternetGatewayDevice.DeviceInfo.SoftwareVersion"
	const ssid = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
	got, f := tr.GetAttributes([]string{sw, ssid})
	if f != nil || len(got) != 2 || got[0].Notification != 2 || got[1].Notification != 0 {
		t.Fatalf("default attributes %+v %v", got, f)
	}
	if f := tr.SetAttributes([]cwmp.SetParameterAttribute{
		{Name: ssid, NotificationChange: true, Notification: 1, AccessListChange: true, AccessList: []string{"Subscriber"}},
		{Name: "InternetGatewayDevice.LANDevice.1.Hosts.Host.1.", NotificationChange: true, Notification: 2},
	}); f != nil {
		t.Fatalf("SPA: %v", f)
	}
	got, _ = tr.GetAttributes([]string{ssid, "InternetGatewayDevice.LANDevice.1.Hosts.Host.1."})
	if got[0].Notification != 1 || len(got[0].AccessList) != 1 || got[0].AccessList[0] != "Subscriber" {
		t.Errorf("SSID attributes did not stick: %+v", got[0])
	}
	for _, a := range got[1:] {
		if a.Notification != 2 {
			t.Errorf("%s notification %d, want 2", a.Name, a.Notification)
		}
	}
	tests := []struct {
		name string
		spa  cwmp.SetParameterAttribute
		code uint32
	}{
		{"unknown", cwmp.SetParameterAttribute{Name: "InternetGatewayDevice.X", NotificationChange: true}, cwmp.FaultInvalidParameterName},
		{"bad notification", cwmp.SetParameterAttribute{Name: ssid, NotificationChange: true, Notification: 7}, cwmp.FaultNotificationRejected},
		{"bad access", cwmp.SetParameterAttribute{Name: ssid, AccessListChange: true, AccessList: []string{"Everyone"}}, cwmp.FaultInvalidArguments},
	}
	for _, tc := range tests {
		if f := tr.SetAttributes([]cwmp.SetParameterAttribute{tc.spa}); f == nil || f.Code != tc.code {
			t.Errorf("%s: fault %v, want %d", tc.name, f, tc.code)
		}
	}
	if _, f := tr.GetAttributes([]string{"InternetGatewayDevice.X"}); f == nil || f.Code != cwmp.FaultInvalidParameterName {
		t.Errorf("GPA unknown: %v", f)
	}
	// Local changes: passive is reported but does not trigger, active triggers.
	if active, err := tr.SetLocal(ssid, "neighbour"); err != nil || active {
		t.Errorf("SetLocal passive: active=%v err=%v", active, err)
	}
	if active, err := tr.SetLocal(sw, "9.9"); err != nil || !active {
		t.Errorf("SetLocal active: active=%v err=%v", active, err)
	}
	if ch := tr.TakeChanged(); len(ch) != 2 {
		t.Errorf("TakeChanged = %+v, want 2", ch)
	}
	if ch := tr.TakeChanged(); len(ch) != 0 {
		t.Errorf("second TakeChanged = %+v", ch)
	}
	if _, err := tr.SetLocal("InternetGatewayDevice.X", "1"); err == nil {
		t.Error("SetLocal unknown succeeded")
	}
}

func TestAddDeleteObject(t *testing.T) {
	tr := newTestTree(t, ModelTR098, 1)
	other := newTestTree(t, ModelTR098, 2)
	const wlan = "InternetGatewayDevice.LANDevice.1.WLANConfiguration."
	n, f := tr.AddObject(wlan, "add1")
	if f != nil || n != 3 {
		t.Fatalf("AddObject = %d, %v; want 3", n, f)
	}
	if v, ok := tr.Get(wlan + "3.SSID"); !ok || !strings.HasSuffix(v, "-3") {
		t.Fatalf("new instance SSID = %q, %v", v, ok)
	}
	if _, ok := tr.Get(wlan + "3.PreSharedKey.1.KeyPassphrase"); !ok {
		t.Fatal("nested default instance missing")
	}
	if k, _ := tr.Get("InternetGatewayDevice.ManagementServer.ParameterKey"); k != "add1" {
		t.Errorf("ParameterKey = %q", k)
	}
	if _, ok := other.Get(wlan + "3.SSID"); ok {
		t.Fatal("AddObject leaked into another device sharing the layout")
	}
	if f := tr.DeleteObject(wlan+"1.", "del1"); f != nil {
		t.Fatalf("DeleteObject: %v", f)
	}
	if _, ok := tr.Get(wlan + "1.SSID"); ok {
		t.Fatal("deleted instance still readable")
	}
	names, _ := tr.GetNames(wlan, true)
	if len(names) != 2 || names[0].Name != wlan+"2." || names[1].Name != wlan+"3." {
		t.Fatalf("instances after delete: %+v", names)
	}
	// Numbers are not reused.
	if n, _ := tr.AddObject(wlan, ""); n != 4 {
		t.Fatalf("next instance %d, want 4", n)
	}
	const hosts = "InternetGatewayDevice.LANDevice.1.Hosts.Host."
	if v, _ := tr.Get("InternetGatewayDevice.LANDevice.1.Hosts.HostNumberOfEntries"); v != "3" {
		t.Errorf("HostNumberOfEntries = %s", v)
	}
	faults := []struct {
		name string
		fn   func() *cwmp.Fault
		code uint32
	}{
		{"add unknown", func() *cwmp.Fault { _, f := tr.AddObject("InternetGatewayDevice.Nope.", ""); return f }, cwmp.FaultInvalidParameterName},
		{"add not table", func() *cwmp.Fault { _, f := tr.AddObject("InternetGatewayDevice.DeviceInfo.", ""); return f }, cwmp.FaultInvalidParameterName},
		{"add no dot", func() *cwmp.Fault {
			_, f := tr.AddObject("InternetGatewayDevice.DeviceInfo.SerialNumber", "")
			return f
		}, cwmp.FaultInvalidParameterName},
		{"add read-only table", func() *cwmp.Fault { _, f := tr.AddObject(hosts, ""); return f }, cwmp.FaultRequestDenied},
		{"delete table", func() *cwmp.Fault { return tr.DeleteObject(wlan, "") }, cwmp.FaultInvalidParameterName},
		{"delete gone", func() *cwmp.Fault { return tr.DeleteObject(wlan+"1.", "") }, cwmp.FaultInvalidParameterName},
		{"delete read-only", func() *cwmp.Fault { return tr.DeleteObject(hosts+"1.", "") }, cwmp.FaultRequestDenied},
	}
	for _, tc := range faults {
		if f := tc.fn(); f == nil || f.Code != tc.code {
			t.Errorf("%s: fault %v, want %d", tc.name, f, tc.code)
		}
	}
	// Factory reset restores the template layout and values.
	tr.Reset()
	if _, ok := tr.Get(wlan + "1.SSID"); !ok {
		t.Fatal("Reset did not restore instance 1")
	}
	if _, ok := tr.Get(wlan + "3.SSID"); ok {
		t.Fatal("Reset kept added instance 3")
	}
}

func TestTR181Tree(t *testing.T) {
	tr := newTestTree(t, ModelTR181, 3)
	if _, ok := tr.Get("Device.WiFi.AccessPoint.2.Security.KeyPassphrase"); !ok {
		t.Fatal("KeyPassphrase missing")
	}
	if v, _ := tr.Get("Device.WiFi.SSID.2.LowerLayers"); v != "Device.WiFi.Radio.2." {
		t.Fatalf("LowerLayers = %q", v)
	}
	n, f := tr.AddObject("Device.Services.VoiceService.1.VoiceProfile.1.Line.", "")
	if f != nil || n != 3 {
		t.Fatalf("add line: %d %v", n, f)
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// TestVoIPLine: the voip model is a TR-104 SIP adapter on a TR-098 root;
// an operator provisions a line's number and SIP credentials, and the
// device checks types as a real one does: a value that does not parse as
// the parameter's type is 9007, a value sent as another type 9006, both
// inside a 9003 that changes nothing.
func TestVoIPLine(t *testing.T) {
	const (
		profile = "InternetGatewayDevice.Services.VoiceService.1.VoiceProfile.1."
		line    = profile + "Line.1."
		number  = line + "DirectoryNumber"
		user    = line + "SIP.AuthUserName"
		pass    = line + "SIP.AuthPassword"
		enable  = line + "Enable"
		proxy   = profile + "SIP.ProxyServer"
		port    = profile + "SIP.ProxyServerPort"
	)
	tr := newTestTree(t, ModelVoIP, 3)
	if tr.Model().Root != "InternetGatewayDevice." {
		t.Fatalf("voip root %s", tr.Model().Root)
	}
	for _, name := range []string{number, user, pass, enable, proxy, port, profile + "Line.2.DirectoryNumber", line + "SIP.URI"} {
		if _, ok := tr.Get(name); !ok {
			t.Errorf("voip model lacks %s", name)
		}
	}
	tests := []struct {
		name   string
		params []cwmp.ParameterValue
		faults map[string]uint32 // nil: success, and each value reads back
	}{
		{"provision a line", []cwmp.ParameterValue{
			{Name: number, Value: "+31201234567", Type: cwmp.TypeString},
			{Name: user, Value: "alice", Type: cwmp.TypeString},
			{Name: pass, Value: "s3cret", Type: cwmp.TypeString},
			{Name: enable, Value: "Enabled", Type: cwmp.TypeString},
			{Name: proxy, Value: "sip.example.net", Type: cwmp.TypeString},
			{Name: port, Value: "5061", Type: cwmp.TypeUnsignedInt},
		}, nil},
		{"number sent as xsd:int", []cwmp.ParameterValue{{Name: number, Value: "31201234567", Type: cwmp.TypeInt}}, map[string]uint32{number: cwmp.FaultInvalidParameterType}},
		{"port that is not a number", []cwmp.ParameterValue{{Name: port, Value: "abc", Type: cwmp.TypeUnsignedInt}}, map[string]uint32{port: cwmp.FaultInvalidParameterValue}},
		{"one bad value spoils the set", []cwmp.ParameterValue{
			{Name: user, Value: "bob", Type: cwmp.TypeString},
			{Name: port, Value: "-1", Type: cwmp.TypeUnsignedInt},
		}, map[string]uint32{port: cwmp.FaultInvalidParameterValue}},
		{"read-only status", []cwmp.ParameterValue{{Name: line + "Status", Value: "Up", Type: cwmp.TypeString}}, map[string]uint32{line + "Status": cwmp.FaultNonWritableParameter}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestTree(t, ModelVoIP, 3)
			before := map[string]string{}
			for _, p := range tc.params {
				before[p.Name], _ = tr.Get(p.Name)
			}
			f := tr.SetValues(tc.params, "voip-1")
			if tc.faults == nil {
				if f != nil {
					t.Fatalf("fault %+v", f)
				}
				for _, p := range tc.params {
					if got, _ := tr.Get(p.Name); got != p.Value {
						t.Errorf("%s = %q, want %q", p.Name, got, p.Value)
					}
				}
				// The password is the device's own: a read gives nothing.
				got, _ := tr.GetValues([]string{pass})
				if len(got) != 1 || got[0].Value != "" {
					t.Errorf("GetParameterValues of the SIP password: %+v", got)
				}
				return
			}
			if f == nil || f.Code != cwmp.FaultInvalidArguments {
				t.Fatalf("fault %+v, want 9003", f)
			}
			got := map[string]uint32{}
			for _, pf := range f.SetParameterValuesFaults {
				got[pf.ParameterName] = pf.FaultCode
				if !strings.HasPrefix(pf.FaultString, cwmp.FaultMessage(pf.FaultCode)) {
					t.Errorf("%s: fault string %q", pf.ParameterName, pf.FaultString)
				}
			}
			if len(got) != len(tc.faults) {
				t.Errorf("per-parameter faults %v, want %v", got, tc.faults)
			}
			for n, c := range tc.faults {
				if got[n] != c {
					t.Errorf("%s: fault %d, want %d", n, got[n], c)
				}
			}
			for n, v := range before {
				if now, _ := tr.Get(n); now != v {
					t.Errorf("%s changed to %q despite the fault", n, now)
				}
			}
		})
	}
}

// TestLiveValues: DeviceInfo.UpTime counts the seconds since the device
// booted and starts again at a reboot; Time.CurrentLocalTime is the
// clock; MemoryStatus is there on every model. The tree's clock is the
// test's.
func TestLiveValues(t *testing.T) {
	for _, model := range []string{ModelTR098, ModelTR181, ModelVoIP} {
		t.Run(model, func(t *testing.T) {
			tr := newTestTree(t, model, 1)
			now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
			tr.now = func() time.Time { return now }
			tr.Boot()
			root := tr.Model().Root
			uptime := func() string {
				t.Helper()
				got, f := tr.GetValues([]string{root + "DeviceInfo.UpTime"})
				if f != nil || len(got) != 1 || got[0].Type != cwmp.TypeUnsignedInt {
					t.Fatalf("UpTime: %+v %v", got, f)
				}
				return got[0].Value
			}
			steps := []struct {
				advance time.Duration
				boot    bool
				want    string
			}{
				{0, false, "0"},
				{90*time.Second + 500*time.Millisecond, false, "90"},
				{time.Hour, false, "3690"},
				{0, true, "0"}, // rebooted
				{5 * time.Second, false, "5"},
			}
			for _, st := range steps {
				now = now.Add(st.advance)
				if st.boot {
					tr.Boot()
				}
				if got := uptime(); got != st.want {
					t.Fatalf("after %s (boot %v): UpTime %s, want %s", st.advance, st.boot, got, st.want)
				}
			}
			if v, ok := tr.Get(root + "DeviceInfo.UpTime"); !ok || v != "5" {
				t.Errorf("Get UpTime = %q", v)
			}
			if v, _ := tr.Get(root + "Time.CurrentLocalTime"); v != now.Format(time.RFC3339) {
				t.Errorf("CurrentLocalTime %q, want %s", v, now.Format(time.RFC3339))
			}

			mem, f := tr.GetValues([]string{root + "DeviceInfo.MemoryStatus."})
			if f != nil || len(mem) != 2 {
				t.Fatalf("MemoryStatus: %+v %v", mem, f)
			}
			vals := map[string]uint64{}
			for _, p := range mem {
				n, err := strconv.ParseUint(p.Value, 10, 32)
				if err != nil || p.Type != cwmp.TypeUnsignedInt {
					t.Fatalf("%s = %q (%s)", p.Name, p.Value, p.Type)
				}
				vals[strings.TrimPrefix(p.Name, root+"DeviceInfo.MemoryStatus.")] = n
			}
			if vals["Total"] == 0 || vals["Free"] == 0 || vals["Free"] > vals["Total"] {
				t.Errorf("memory %v", vals)
			}
		})
	}
}

// TestResetGeneratesEveryValue checks Reset's shortcut (the model's
// device-independent values copied, the rest generated per device)
// against generating every node's template for the device.
func TestResetGeneratesEveryValue(t *testing.T) {
	for _, name := range []string{"tr098", "tr181", "voip"} {
		m, err := LoadModel(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.perDevice) == 0 || len(m.perDevice) >= len(m.layout.nodes)/2 {
			t.Errorf("%s: %d of %d nodes generated per device", name, len(m.perDevice), len(m.layout.nodes))
		}
		for _, index := range []int{0, 1, 37, 99999} {
			id := Identity{Seed: 7, Index: index, ConnectionRequestURL: "http://cr.example/x"}
			tr := NewTree(m, id)
			ctx := genCtx{m: m, seed: id.Seed, index: id.Index, serial: tr.serial, crURL: id.ConnectionRequestURL}
			for i, n := range tr.l.nodes {
				g := &m.gen[n.gen]
				want := ""
				if !g.object {
					ctx.path, ctx.inst = n.name, n.inst
					want = ctx.expand(g.value)
				}
				if strings.Contains(g.value, "{now}") {
					continue // the clock moved on
				}
				if tr.vals[i] != want {
					t.Errorf("%s device %d: %s = %q, want %q", name, index, n.name, tr.vals[i], want)
				}
			}
		}
	}
}

// TestGeneratedValuesStable pins a few generated values: they derive from
// (seed, index, path) only, and a fleet restarted with the same seed must
// report the same serials, MACs and passwords as before.
func TestGeneratedValuesStable(t *testing.T) {
	for _, tc := range []struct {
		model string
		index int
		name  string
		want  string
	}{
		{"tr098", 0, "InternetGatewayDevice.DeviceInfo.SerialNumber", "ESG000700000000"},
		{"tr098", 0, "InternetGatewayDevice.DeviceInfo.MemoryStatus.Free", "161486"},
		{"tr098", 0, "InternetGatewayDevice.ManagementServer.Password", "ec1746f1f415"},
		{"tr098", 0, "InternetGatewayDevice.LANDevice.1.LANEthernetInterfaceConfig.2.MACAddress", "00:D0:9E:7C:2E:FE"},
		{"tr098", 0, "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", "EdgeSim-bfbc-1"},
		{"tr098", 0, "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", "4afa7c119e3fc4d3"},
		{"tr181", 37, "Device.Ethernet.Interface.1.MACAddress", "00:D0:9F:AA:A0:CC"},
	} {
		m, err := LoadModel(tc.model)
		if err != nil {
			t.Fatal(err)
		}
		tr := NewTree(m, Identity{Seed: 7, Index: tc.index})
		i, ok := tr.lookup(tc.name)
		if !ok {
			t.Fatalf("%s has no %s", tc.model, tc.name)
		}
		if got := tr.vals[i]; got != tc.want {
			t.Errorf("%s device %d: %s = %q, want %q", tc.model, tc.index, tc.name, got, tc.want)
		}
	}
}
