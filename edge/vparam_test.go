package edge

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// unifiedMAC is the first example of GenieACS's virtual parameters
// documentation, unchanged.
const unifiedMAC = `// Example: Unified MAC parameter across different device models
let m = "00:00:00:00:00:00";
let d = declare("Device.WANDevice.*.WANConnectionDevice.*.WANIPConnection.*.MACAddress", {value: Date.now()});
let igd = declare("InternetGatewayDevice.WANDevice.*.WANConnectionDevice.*.WANPPPConnection.*.MACAddress", {value: Date.now()});

if (d.size) {
  for (let p of d) {
    if (p.value[0]) {
      m = p.value[0];
      break;
    }
  }  
}
else if (igd.size) {
  for (let p of igd) {
    if (p.value[0]) {
      m = p.value[0];
      break;
    }
  }  
}

return {writable: false, value: [m, "xsd:string"]};
`

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
		fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "MAC", Script: unifiedMAC}},
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
		fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "MAC", Script: unifiedMAC}},
		fleet.DownRecord{Seq: 2, Shared: true, Kind: fleet.DownVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "Broken", Script: `throw new Error("no way");`}},
	)
	cpe.session(cwmp.EventBoot) // registers the device
	sv := "InternetGatewayDevice.DeviceInfo.SoftwareVersion"
	add := func(body string) *fleet.Task {
		t.Helper()
		tk, err := fleet.ParseTask([]byte(body), cpe.id(), t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddTask(tk); err != nil {
			t.Fatal(err)
		}
		return tk
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
