package edge

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// wifiName is a writable virtual parameter over the first SSID: a value
// declared for it is set on the device.
const wifiName = `const path = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID";
if (args[1].value) {
  declare(path, null, {value: args[1].value[0]});
  return {writable: true, value: [args[1].value[0], "xsd:string"]};
}
const v = declare(path, {value: args[0].value || 1}).value[0];
return {writable: true, value: [v, "xsd:string"]};
`

// TestVirtualParameters: VirtualParameters.<name> computed by its script
// at the edge, on a simulated TR-098 device: in a precondition (fetched
// before matching), read by a provision script, set by a preset's value
// (the script applies it); its value is kept in the tree and goes
// upstream; a script that throws faults the channel that asked, and a
// name with no script is a warning, like a path the device lacks; the
// session ends either way.
func TestVirtualParameters(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 7)
	mac := cpe.get("InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.MACAddress")
	mustStore(t, c,
		fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "MAC", Script: genieSeed(t, "unified-mac")}},
		fleet.DownRecord{Seq: 2, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "WiFiName", Script: wifiName}},
		fleet.DownRecord{Seq: 3, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "Broken", Script: `throw new Error("no way");`}},
		fleet.DownRecord{Seq: 4, Shared: true, Kind: fleet.DownProvision, Provision: &fleet.Provision{Name: "macTag", Script: `const m = declare("VirtualParameters.MAC", {value: Date.now()}).value[0];
declare("Tags.mac-" + m.split(":").join(""), null, {value: true});`}},
	)
	putPresets(t, c,
		&fleet.Preset{Name: "has-mac", Channel: "a", Precondition: `VirtualParameters.MAC <> "00:00:00:00:00:00"`, Provisions: [][]any{{"tag", "hasmac", true}}},
		&fleet.Preset{Name: "mac-tag", Channel: "b", Provisions: [][]any{{"macTag"}}},
		&fleet.Preset{Name: "wifi", Channel: "c", Provisions: [][]any{{"value", "VirtualParameters.WiFiName", "vp-ssid"}}},
		&fleet.Preset{Name: "broken", Channel: "d", Provisions: [][]any{{"refresh", "VirtualParameters.Broken"}}},
		&fleet.Preset{Name: "nosuch", Channel: "e", Provisions: [][]any{{"value", "VirtualParameters.NoSuch", "x"}}},
	)
	log := cpe.session(cwmp.EventBoot)
	id := cpe.id()
	if p, ok := cpe.cached("VirtualParameters.MAC"); !ok || p.Value != mac {
		t.Fatalf("VirtualParameters.MAC cached %+v, device %s (RPCs %v)", p, mac, log)
	}
	if p, ok := cpe.cached("Tags.hasmac"); !ok || p.Value != "true" {
		t.Fatalf("the precondition on VirtualParameters.MAC did not hold: %+v", p)
	}
	if _, ok := cpe.cached("Tags.mac-" + strings.ReplaceAll(mac, ":", "")); !ok {
		t.Fatalf("the script reading VirtualParameters.MAC did not tag the device")
	}
	if got := cpe.get(ssidOf(cpe.root())); got != "vp-ssid" {
		t.Fatalf("SSID %q: the value declared on VirtualParameters.WiFiName was not applied", got)
	}
	if p, ok := cpe.cached("VirtualParameters.WiFiName"); !ok || p.Value != "vp-ssid" {
		t.Fatalf("VirtualParameters.WiFiName cached %+v", p)
	}
	fs := cpe.faults()
	if f := fs[ChannelFaultID(id, "d")]; f.Code != "script.Error" || !strings.Contains(f.Message, "no way") {
		t.Errorf("the broken virtual parameter's channel: %+v", f)
	}
	// A name with no script is left alone, as a path the device lacks.
	if len(fs) != 1 {
		t.Errorf("faults %+v, want the broken virtual parameter's only", fs)
	}
	// Upstream with the session's values.
	recs, _ := c.ReadOutbox(0, 10000)
	found := false
	for _, r := range recs {
		var dd fleet.DeviceDelta
		if k, _ := fleet.KindOf(r.Data); k == fleet.KindDeviceDelta && fleet.Unmarshal(r.Data, &dd) == nil {
			for _, p := range dd.Parameters {
				found = found || (p.Name == "VirtualParameters.MAC" && p.Value == mac)
			}
		}
	}
	if !found {
		t.Fatal("VirtualParameters.MAC went upstream in no DeviceDelta")
	}
	// A minute later: the precondition's value is cached, the SSID is as
	// declared; the MAC read by the script (fresh as of each session) is
	// computed again, from the CPE's values.
	cpe.after(time.Minute)
	log = cpe.session(cwmp.EventPeriodic)
	for _, l := range log {
		if strings.HasPrefix(l, "SPV") {
			t.Fatalf("second session wrote: %v", log)
		}
	}
}

// TestVirtualParameterTask: a getParameterValues task naming a virtual
// parameter (and a CPE parameter) runs the script in the session and ends
// done with both values, as GenieACS answers it; one naming a virtual
// parameter whose script throws ends in fault; the tasks after them run.
func TestVirtualParameterTask(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 8)
	mac := cpe.get("InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.MACAddress")
	mustStore(t, c,
		fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "MAC", Script: genieSeed(t, "unified-mac")}},
		fleet.DownRecord{Seq: 2, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "Broken", Script: `throw new Error("no way");`}},
	)
	cpe.session(cwmp.EventBoot) // registers the device
	sv := "InternetGatewayDevice.DeviceInfo.SoftwareVersion"
	add := func(body string) *fleet.Task {
		t.Helper()
		return addTaskFor(t, c, cpe.id(), body)
	}
	good := add(`{"name": "getParameterValues", "parameterNames": ["VirtualParameters.MAC", "` + sv + `"]}`)
	bad := add(`{"name": "getParameterValues", "parameterNames": ["VirtualParameters.Broken"]}`)
	after := add(`{"name": "reboot"}`)
	log := cpe.session(cwmp.EventConnectionRequest)
	got, err := c.Task(good.ID)
	if err != nil || got.Status != fleet.StatusDone || got.Result == nil {
		t.Fatalf("task %+v %v (RPCs %v)", got, err, log)
	}
	vals := map[string]string{}
	for _, pv := range got.Result.ParameterValues {
		vals[pv.Name] = pv.Value
	}
	if vals["VirtualParameters.MAC"] != mac || vals[sv] != cpe.get(sv) {
		t.Fatalf("task result %v, want the MAC %s and the software version", vals, mac)
	}
	if got, _ := c.Task(bad.ID); got.Status != fleet.StatusFault || got.Fault == nil || got.Fault.Code != "script.Error" {
		t.Fatalf("the broken virtual parameter's task: %+v", got)
	}
	if got, _ := c.Task(after.ID); got.Status != fleet.StatusDone {
		t.Fatalf("the task after them: %+v (RPCs %v)", got, log)
	}
	if p, ok := cpe.cached("VirtualParameters.MAC"); !ok || p.Value != mac {
		t.Fatalf("cached %+v", p)
	}
}

// wifiPassword is a writable virtual parameter over the first WLAN's
// passphrase at path (TR-098 or TR-181): a value declared for it (a
// setParameterValues task: args[1]) is set on the device and returned as
// the new value; otherwise it reads the device's.
func wifiPassword(path string) string {
	return `const path = "` + path + `";
if (args[1].value) {
  declare(path, null, {value: args[1].value[0]});
  return {writable: true, value: [args[1].value[0], "xsd:string"]};
}
const p = declare(path, {value: args[0].value || 1});
return {writable: true, value: [p.value[0], "xsd:string"]};
`
}

// TestVirtualParameterSetTask: setParameterValues tasks naming virtual
// parameters run their scripts with the value in args[1], on TR-098 and
// TR-181 devices: a writable one whose script sets the KeyPassphrase ends
// done with the new value on the device and in the cache; one mixed with
// a CPE parameter sets both; a read-only one faults not_writable and
// changes nothing; a throwing script faults script.Error; a CPE refusing
// what the script declared faults the task as the CPE answered (9003,
// 9007 for the passphrase), as a plain task's SetParameterValues does; the
// tasks after them, plain or virtual, run in the same session; a
// connection-request password a script sets is stored for the edge's use.
func TestVirtualParameterSetTask(t *testing.T) {
	for i, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			c := openTestCache(t, "")
			cpe := newSimCPE(t, c, model, 20+i)
			pass := passphraseOf(cpe.root())
			ssid := ssidOf(cpe.root())
			mustStore(t, c,
				fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "wifiPassword", Script: wifiPassword(pass)}},
				fleet.DownRecord{Seq: 2, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "MAC", Script: genieSeed(t, "unified-mac")}},
				fleet.DownRecord{Seq: 3, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "Broken", Script: `throw new Error("no way");`}},
				fleet.DownRecord{Seq: 4, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "crPassword", Script: wifiPassword(cpe.root() + "ManagementServer.ConnectionRequestPassword")}},
			)
			cpe.session(cwmp.EventBoot) // registers the device
			add := func(body string) *fleet.Task {
				t.Helper()
				return addTaskFor(t, c, cpe.id(), body)
			}
			// The CPE refuses one passphrase, as a real one refuses a
			// too short key.
			cpe.answer = func(m cwmp.Message) cwmp.Message {
				if spv, ok := m.(*cwmp.SetParameterValues); ok {
					for _, pv := range spv.ParameterList {
						if pv.Name == pass && pv.Value == "refused" {
							f := cwmp.NewFault(cwmp.FaultInvalidArguments, "")
							f.SetParameterValuesFaults = []cwmp.SetParameterValuesFault{{ParameterName: pass, FaultCode: cwmp.FaultInvalidParameterValue, FaultString: "Invalid parameter value"}}
							return f
						}
					}
				}
				return nil
			}
			macPath := "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.MACAddress"
			if cpe.root() == "Device." {
				macPath = ""
			}
			set := add(`{"name": "setParameterValues", "parameterValues": [["VirtualParameters.wifiPassword", "n3w-pass"]]}`)
			readOnly := add(`{"name": "setParameterValues", "parameterValues": [["VirtualParameters.MAC", "02:00:00:00:00:01"]]}`)
			broken := add(`{"name": "setParameterValues", "parameterValues": [["VirtualParameters.Broken", "x"]]}`)
			refused := add(`{"name": "setParameterValues", "parameterValues": [["VirtualParameters.wifiPassword", "refused"]]}`)
			mixed := add(`{"name": "setParameterValues", "parameterValues": [["VirtualParameters.wifiPassword", "m1xed-pass"], ["` + ssid + `", "mixed-ssid"]]}`)
			cr := add(`{"name": "setParameterValues", "parameterValues": [["VirtualParameters.crPassword", "cr-s3cret"]]}`)
			plain := add(`{"name": "getParameterValues", "parameterNames": ["` + ssid + `"]}`)
			refresh := add(`{"name": "refreshObject", "objectName": "VirtualParameters.wifiPassword"}`)
			var mac string
			if macPath != "" {
				mac = cpe.get(macPath)
			}
			log := cpe.session(cwmp.EventConnectionRequest)

			task := func(tk *fleet.Task) *fleet.Task {
				t.Helper()
				got, err := c.Task(tk.ID)
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			values := func(tk *fleet.Task) map[string]string {
				out := map[string]string{}
				if tk.Result != nil {
					for _, pv := range tk.Result.ParameterValues {
						out[pv.Name] = pv.Value
					}
				}
				return out
			}
			if got := task(set); got.Status != fleet.StatusDone || values(got)["VirtualParameters.wifiPassword"] != "n3w-pass" {
				t.Fatalf("set: %+v %v (RPCs %v)", got, values(got), log)
			}
			got := task(readOnly)
			if got.Status != fleet.StatusFault || got.Fault == nil || got.Fault.Code != FaultCodeNotWritable ||
				!strings.Contains(got.Fault.Message, "VirtualParameters.MAC is not writable") {
				t.Fatalf("read-only: %+v %+v", got, got.Fault)
			}
			if macPath != "" && cpe.get(macPath) != mac {
				t.Fatalf("the read-only virtual parameter changed the MAC to %s", cpe.get(macPath))
			}
			if got := task(broken); got.Status != fleet.StatusFault || got.Fault == nil || got.Fault.Code != "script.Error" || !strings.Contains(got.Fault.Message, "no way") {
				t.Fatalf("broken: %+v %+v", got, got.Fault)
			}
			if got := task(refused); got.Status != fleet.StatusFault || got.Fault == nil || got.Fault.Code != "cwmp.9003" ||
				!strings.HasPrefix(got.Fault.Detail[pass], "9007") {
				t.Fatalf("refused by the CPE: %+v %+v (RPCs %v)", got, got.Fault, log)
			}
			// Its value was not applied: the cache kept the one before
			// until the mixed task set another.
			if ups := outboxParams(t, c, "VirtualParameters.wifiPassword"); slices.Contains(ups, "refused") || !slices.Contains(ups, "m1xed-pass") {
				t.Fatalf("upstream values %v: want the applied ones only", ups)
			}
			if got := task(mixed); got.Status != fleet.StatusDone {
				t.Fatalf("mixed: %+v %+v (RPCs %v)", got, got.Fault, log)
			}
			if got := cpe.get(pass); got != "m1xed-pass" {
				t.Fatalf("device passphrase %q after the tasks, want the mixed task's (RPCs %v)", got, log)
			}
			if got := cpe.get(ssid); got != "mixed-ssid" {
				t.Fatalf("device SSID %q, want the mixed task's", got)
			}
			// The connection-request password the script set is the
			// edge's to use, as a plain task's or a preset's is.
			if got := task(cr); got.Status != fleet.StatusDone {
				t.Fatalf("crPassword: %+v %+v", got, got.Fault)
			}
			if d, err := c.Device(cpe.id()); err != nil || d.CRPassword != "cr-s3cret" {
				t.Fatalf("the edge keeps the connection-request password %q (%v)", d.CRPassword, err)
			}
			if got := task(plain); got.Status != fleet.StatusDone || values(got)[ssid] != "mixed-ssid" {
				t.Fatalf("the plain task after them: %+v %v", got, values(got))
			}
			if got := task(refresh); got.Status != fleet.StatusDone || values(got)["VirtualParameters.wifiPassword"] != "m1xed-pass" {
				t.Fatalf("refreshObject: %+v %v %+v", got, values(got), got.Fault)
			}
			for name, want := range map[string]string{"VirtualParameters.wifiPassword": "m1xed-pass", pass: "m1xed-pass", ssid: "mixed-ssid"} {
				if p, ok := cpe.cached(name); !ok || p.Value != want {
					t.Errorf("cached %s = %+v, want %q", name, p, want)
				}
			}
			// The faulted tasks' faults are listed as a plain task's are
			// (by task, no preset channel), and the next session has
			// nothing left to do.
			fs := cpe.faults()
			for _, tk := range []*fleet.Task{readOnly, broken, refused} {
				if f, ok := fs[tk.ID]; !ok || f.Task != tk.ID || f.Channel != "" {
					t.Errorf("fault of task %s: %+v", tk.ID, f)
				}
			}
			if len(fs) != 3 {
				t.Errorf("faults %+v, want the three tasks'", fs)
			}
			cpe.answer = nil
			if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
				t.Errorf("next session sent %v", log)
			}
		})
	}
}

// outboxParams returns the values name took in the outbox's device
// deltas, oldest first.
func outboxParams(t *testing.T, c *Cache, name string) []string {
	t.Helper()
	recs, err := c.ReadOutbox(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		var dd fleet.DeviceDelta
		if k, _ := fleet.KindOf(r.Data); k == fleet.KindDeviceDelta && fleet.Unmarshal(r.Data, &dd) == nil {
			for _, p := range dd.Parameters {
				if p.Name == name {
					out = append(out, p.Value)
				}
			}
		}
	}
	return out
}
