package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/sim"
)

// wifiScript is the provision script of the seed's story: the SSID from
// the last six characters of the serial number (GenieACS's documented
// example), the passphrase from the preset's argument, in whichever data
// model the device has (the other's paths are left alone, a warning).
const wifiScript = `const serial = declare("DeviceID.SerialNumber", {value: 1}).value[0];
const ssid = "seed-" + serial.slice(-6);
declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", {value: 1}, {value: ssid});
declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", null, {value: args[0]});
declare("Device.WiFi.SSID.1.SSID", {value: 1}, {value: ssid});
declare("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", null, {value: args[0]});
`

// TestPresetProvisionsOfflineEdge is the seed's story: a preset and the
// provision script it names, PUT at the core, reach the edge; with the
// backhaul cut, simulated TR-098 and TR-181 routers bootstrap at the edge
// and get their SSID and Wi-Fi passphrase from the script in their first
// session, next to the connection-request credentials of the cluster's
// default inform preset; a script that throws faults its own channel
// only. When the link returns the core sees the SSID and the fault, and
// the fault deleted at the core is gone at the edge too.
func TestPresetProvisionsOfflineEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a core and an edge")
	}
	s := newSystem(t, 1, "pop")
	relay := newUDPRelay(t, s.sync["n1"])
	e := s.startEdge("pop", relay.Addr())
	core := "http://" + s.cores[0].api

	const pass = "seed-passphrase-1"
	if code, err := coreHTTP("PUT", core+"/api/v1/provisions/wifi", wifiScript, nil); code != 200 {
		t.Fatalf("PUT provision: %d %v", code, err)
	}
	if code, err := coreHTTP("PUT", core+"/api/v1/provisions/broken", `throw new Error("not today");`, nil); code != 200 {
		t.Fatalf("PUT provision: %d %v", code, err)
	}
	preset := `{"weight": 0, "channel": "wifi", "events": {"0 BOOTSTRAP": true}, "provisions": [["wifi", "` + pass + `"]]}`
	if code, err := coreHTTP("PUT", core+"/api/v1/presets/wifi", preset, nil); code != 200 {
		t.Fatalf("PUT preset: %d %v", code, err)
	}
	if code, err := coreHTTP("PUT", core+"/api/v1/presets/broken", `{"channel": "broken", "events": {"0 BOOTSTRAP": true}, "provisions": [["broken"]]}`, nil); code != 200 {
		t.Fatalf("PUT preset: %d %v", code, err)
	}
	// A script named as a built-in is refused.
	if code, _ := coreHTTP("PUT", core+"/api/v1/provisions/value", "log(1);", nil); code != 400 {
		t.Fatalf("PUT a script named value: %d", code)
	}
	// A bad one is refused with where the mistake is.
	req, _ := http.NewRequest("PUT", core+"/api/v1/presets/bad", strings.NewReader(`{"precondition": "Tags.x = ", "provisions": []}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var bad struct {
		Error        string
		Line, Column int
	}
	err = json.NewDecoder(resp.Body).Decode(&bad)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 400 || bad.Line != 1 || bad.Column != 10 || !strings.Contains(bad.Error, "precondition") {
		t.Fatalf("bad preset: %d %+v %v", resp.StatusCode, bad, err)
	}
	// The shared downlink is ordered: once the edge takes a token made
	// after the preset, it holds the preset too.
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(s.run("token", "create", "--api", s.cores[0].api, "--name", "marker", "--scope", "read", "--json")), &tok); err != nil {
		t.Fatal(err)
	}
	coreWait(t, "the edge to hold what the core sent", 30*time.Second, func() bool {
		req, _ := http.NewRequest("GET", "http://"+e.api+"/api/v1/devices?limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	relay.SetCut(true)
	coreWait(t, "the edge to see the link down", 20*time.Second, func() bool {
		var h map[string]any
		code, err := coreHTTP("GET", "http://"+e.api+"/healthz", "", &h)
		sync, _ := h["sync"].(map[string]any)
		return err == nil && code == 200 && sync != nil && sync["connected"] == false
	})
	f := s.simulate(e, 2, 21)
	passOf := func(d *sim.Device) string {
		if d.Root() == "Device." {
			return "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
		}
		return d.Root() + "LANDevice.1.WLANConfiguration.1.KeyPassphrase"
	}
	ssidFor := func(d *sim.Device) string {
		serial := d.Serial()
		return "seed-" + serial[len(serial)-6:]
	}
	for i := range f.Len() {
		d := f.Device(i)
		coreWait(t, d.Model()+" provisioned offline", 30*time.Second, func() bool {
			s, _ := d.Get(ssidOf(d))
			p, _ := d.Get(passOf(d))
			return s == ssidFor(d) && p == pass
		})
		// The default inform preset set the connection-request
		// credentials the edge keeps; the throwing script faulted its
		// own channel, nothing else.
		coreWait(t, d.Model()+"'s credentials and fault", 30*time.Second, func() bool {
			var dev struct {
				CRUser string `json:"connectionRequestUsername"`
			}
			var faults []struct {
				ID      string `json:"_id"`
				Channel string `json:"channel"`
				Code    string `json:"code"`
				Message string `json:"message"`
			}
			coreHTTP("GET", "http://"+e.api+devicePath(d.ID()), "", &dev)
			code, _ := coreHTTP("GET", "http://"+e.api+devicePath(d.ID())+"/faults", "", &faults)
			return code == 200 && dev.CRUser == d.Serial() && len(faults) == 1 && faults[0].ID == d.ID()+":broken" &&
				faults[0].Code == "script.Error" && strings.Contains(faults[0].Message, "not today")
		})
	}
	var devs []coreDevice
	if code, _ := coreHTTP("GET", core+"/api/v1/devices", "", &devs); code == 200 && len(devs) != 0 {
		t.Fatalf("the core learnt devices through a cut backhaul: %v", devs)
	}

	relay.SetCut(false)
	for i := range f.Len() {
		d := f.Device(i)
		coreWait(t, d.Model()+"'s SSID and fault at the core", 30*time.Second, func() bool {
			var cd coreDevice
			code, err := coreHTTP("GET", core+devicePath(d.ID()), "", &cd)
			var faults []struct{ ID, Channel, Code string }
			fcode, _ := coreHTTP("GET", core+"/api/v1/faults?device="+url.QueryEscape(d.ID()), "", &faults)
			return err == nil && code == 200 && cd.Parameters[ssidOf(d)].Value == ssidFor(d) &&
				fcode == 200 && len(faults) == 1 && faults[0].Channel == "broken" && faults[0].Code == "script.Error"
		})
	}
	// Deleted at the core, the fault is gone at the edge too.
	d := f.Device(0)
	if code, err := coreHTTP("DELETE", core+"/api/v1/faults/"+url.PathEscape(d.ID()+":broken"), "", nil); code != 204 {
		t.Fatalf("DELETE the fault at the core: %d %v", code, err)
	}
	coreWait(t, "the fault deleted at the edge", 30*time.Second, func() bool {
		var faults []map[string]any
		code, _ := coreHTTP("GET", "http://"+e.api+devicePath(d.ID())+"/faults", "", &faults)
		return code == 200 && len(faults) == 0
	})
	if logs, _ := os.ReadFile(e.logPath); strings.Contains(string(logs), pass) {
		t.Fatal("the passphrase reached the edge's log")
	}
}
