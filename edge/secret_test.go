package edge

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestAPIHidesSecrets: a password set through the API is stored and sent
// for real but never shown: not in the task JSON (POST reply, GET task,
// task lists), not in the device's parameter tree; and no one can filter
// devices by it.
func TestAPIHidesSecrets(t *testing.T) {
	const (
		psk  = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase"
		ssid = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
		pw   = "hunter2-wifi"
	)
	e := newAPIEnv(t)
	resp, body := e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks?connection_request&wait=10s",
		strings.NewReader(`{"name":"setParameterValues","parameterValues":[["`+ssid+`","home","xsd:string"],["`+psk+`","`+pw+`","xsd:string"]]}`))
	if resp.StatusCode != 200 {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	var reply struct {
		fleet.Task
		Redacted []string
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Status != fleet.StatusDone || len(reply.ParameterValues) != 2 || reply.ParameterValues[0].Value != "home" ||
		reply.ParameterValues[1].Value != "" || len(reply.Redacted) != 1 || reply.Redacted[0] != psk {
		t.Errorf("task reply: %s", body)
	}
	// The stored task and the cache keep the real value: the CPE got it.
	if st, err := e.c.Task(reply.ID); err != nil || st.ParameterValues[1].Value != pw {
		t.Errorf("stored task lost the secret: %+v, %v", st, err)
	}
	if p, err := e.c.Parameter(devID, psk); err != nil || p.Value != pw {
		t.Errorf("cached secret: %+v, %v", p, err)
	}
	for _, path := range []string{"/api/v1/tasks/" + reply.ID, "/api/v1/devices/" + devID + "/tasks", "/tasks", "/api/v1/devices/" + devID} {
		resp, body := e.do(t, "GET", path, nil)
		if resp.StatusCode != 200 || strings.Contains(string(body), pw) {
			t.Errorf("GET %s: %d leaks the secret: %s", path, resp.StatusCode, body)
		}
	}
	_, body = e.do(t, "GET", "/api/v1/devices/"+devID, nil)
	var view struct{ Parameters map[string]Parameter }
	if err := json.Unmarshal(body, &view); err != nil {
		t.Fatal(err)
	}
	if p := view.Parameters[psk]; !p.Secret || p.Value != "" {
		t.Errorf("tree shows %s as %+v", psk, p)
	}
	if p := view.Parameters[ssid]; p.Secret || p.Value != "home" {
		t.Errorf("tree shows %s as %+v", ssid, p)
	}
	// Transfer credentials are hidden the same way.
	resp, body = e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks",
		strings.NewReader(`{"name":"download","fileType":"1 Firmware Upgrade Image","url":"http://files/fw","username":"u","password":"`+pw+`"}`))
	if resp.StatusCode != 202 || strings.Contains(string(body), pw) || !strings.Contains(string(body), `"redacted":["password"]`) {
		t.Errorf("download task: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/api/v1/devices?param=" + url.QueryEscape(psk+"="+pw),
		"/devices?query=" + url.QueryEscape(`{"`+psk+`._value":"`+pw+`"}`)} {
		if resp, body := e.do(t, "GET", path, nil); resp.StatusCode != 400 {
			t.Errorf("filter on a secret %s: %d %s", path, resp.StatusCode, body)
		}
	}
}
