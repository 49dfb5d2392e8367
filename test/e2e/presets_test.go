package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/sim"
)

// TestPresetProvisionsOfflineEdge is the seed's story: a preset PUT at the
// core reaches the edge; with the backhaul cut, simulated TR-098 and
// TR-181 routers bootstrap at the edge and get their SSID and Wi-Fi
// passphrase from it in their first session; when the link returns the
// core sees the SSID.
func TestPresetProvisionsOfflineEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a core and an edge")
	}
	s := newSystem(t, 1, "pop")
	relay := newUDPRelay(t, s.sync["n1"])
	e := s.startEdge("pop", relay.Addr())
	core := "http://" + s.cores[0].api

	const ssid, pass = "seed-pop", "seed-passphrase-1"
	preset := `{"weight": 0, "channel": "wifi", "events": {"0 BOOTSTRAP": true}, "provisions": [
		["value", "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", "` + ssid + `"],
		["value", "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", "` + pass + `"],
		["value", "Device.WiFi.SSID.1.SSID", "` + ssid + `"],
		["value", "Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "` + pass + `"]]}`
	if code, err := coreHTTP("PUT", core+"/api/v1/presets/wifi", preset, nil); code != 200 {
		t.Fatalf("PUT preset: %d %v", code, err)
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
	for i := range f.Len() {
		d := f.Device(i)
		coreWait(t, d.Model()+" provisioned offline", 30*time.Second, func() bool {
			s, _ := d.Get(ssidOf(d))
			p, _ := d.Get(passOf(d))
			return s == ssid && p == pass
		})
		// The edge's faults route: nothing faulted.
		var faults []map[string]any
		if code, err := coreHTTP("GET", "http://"+e.api+devicePath(d.ID())+"/faults", "", &faults); code != 200 || len(faults) != 0 {
			t.Fatalf("%s: faults %d %v %v", d.Model(), code, err, faults)
		}
	}
	var devs []coreDevice
	if code, _ := coreHTTP("GET", core+"/api/v1/devices", "", &devs); code == 200 && len(devs) != 0 {
		t.Fatalf("the core learnt devices through a cut backhaul: %v", devs)
	}

	relay.SetCut(false)
	for i := range f.Len() {
		d := f.Device(i)
		coreWait(t, d.Model()+"'s SSID at the core", 30*time.Second, func() bool {
			var cd coreDevice
			code, err := coreHTTP("GET", core+devicePath(d.ID()), "", &cd)
			return err == nil && code == 200 && cd.Parameters[ssidOf(d)].Value == ssid
		})
	}
	if logs, _ := os.ReadFile(e.logPath); strings.Contains(string(logs), pass) {
		t.Fatal("the passphrase reached the edge's log")
	}
}
