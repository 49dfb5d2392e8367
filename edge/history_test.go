package edge

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// TestHistoryRetention: a preset's history records each value of the
// named parameter that arrives changed (here set by tasks), keeps the
// newest HistoryPoints, and serves them at /devices/{id}/history; a path
// no history names records nothing; a secret cannot be named.
func TestHistoryRetention(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.HistoryPoints = 3 })
	f := startFleet(t, e, 1, func(c *sim.Config) { c.Model = sim.ModelTR098 })
	waitInformed(t, e, f)
	const code = "InternetGatewayDevice.DeviceInfo.ProvisioningCode"
	const ssid = "InternetGatewayDevice.LANDevice.*.WLANConfiguration.*.SSID"
	if st, body := apiDo(t, e, "PUT", "/api/v1/presets/history",
		`{"provisions": [], "history": ["`+code+`", "`+ssid+`"]}`); st != 200 {
		t.Fatalf("put preset: %d %s", st, body)
	}
	if st, body := apiDo(t, e, "PUT", "/api/v1/presets/leak",
		`{"provisions": [], "history": ["InternetGatewayDevice.ManagementServer.Password"]}`); st != 400 || !strings.Contains(body, "secret") {
		t.Fatalf("a secret in history: %d %s", st, body)
	}
	id := f.Device(0).ID()
	for i := 1; i <= 5; i++ {
		body := `{"name":"setParameterValues","parameterValues":[["` + code + `","v` + strconv.Itoa(i) + `"],` +
			`["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID","net-` + strconv.Itoa(i) + `"]]}`
		if task := e.postTask(id, body, "connection_request&wait=15s"); task.Status != fleet.StatusDone {
			task = e.waitTask(task.ID, 15*time.Second)
			if task.Status != fleet.StatusDone {
				t.Fatalf("set %d: %s %+v", i, task.Status, task.Fault)
			}
		}
	}
	history := func(q string) []fleet.HistorySeries {
		t.Helper()
		st, body := apiDo(t, e, "GET", "/api/v1/devices/"+url.PathEscape(id)+"/history"+q, "")
		var hs []fleet.HistorySeries
		if st != 200 || json.Unmarshal([]byte(body), &hs) != nil {
			t.Fatalf("history%s: %d %s", q, st, body)
		}
		return hs
	}
	values := func(s fleet.HistorySeries) []string {
		var out []string
		for i, p := range s.Points {
			out = append(out, p.Value)
			if i > 0 && p.Time.Before(s.Points[i-1].Time) {
				t.Errorf("%s: points out of order", s.Path)
			}
		}
		return out
	}
	hs := history("?path=" + url.QueryEscape(code))
	if len(hs) != 1 || hs[0].Path != code || strings.Join(values(hs[0]), ",") != "v3,v4,v5" {
		t.Fatalf("history of %s: %+v, want v3,v4,v5", code, hs)
	}
	all := history("")
	if len(all) != 2 || all[0].Path != "InternetGatewayDevice.DeviceInfo.ProvisioningCode" ||
		all[1].Path != "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID" || strings.Join(values(all[1]), ",") != "net-3,net-4,net-5" {
		t.Fatalf("every series: %+v", all)
	}
	if hs := history("?path=InternetGatewayDevice.DeviceInfo.HardwareVersion"); len(hs) != 0 {
		t.Fatalf("a parameter no history names: %+v", hs)
	}
	if st, _ := apiDo(t, e, "GET", "/api/v1/devices/nope/history", ""); st != 404 {
		t.Fatalf("unknown device: %d", st)
	}
}
