package core

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestOpenAPIMatchesRoutes: every /api/v1 route the core registers is in
// openapi.json with its method, every operation there is registered, and
// the document is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	missing, extra := openAPI.Compare(n.routes.Patterns(), "/api/v1/")
	for _, p := range missing {
		t.Errorf("route %q is not in core/openapi.json", p)
	}
	for _, op := range extra {
		t.Errorf("core/openapi.json has %q, which no route serves", op)
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if code := do(t, "GET", api(n, "/openapi.json"), nil, &doc); code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
		t.Fatalf("GET /api/v1/openapi.json: %d %+v", code, doc)
	}
}

// TestAPIPlumbing: the answers httpapi gives alike on the core and the
// edge: unknown query parameters, limits, 405 with Allow, 404 for no route.
func TestAPIPlumbing(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	tests := []struct {
		method, path string
		code         int
		allow, names string
	}{
		{"GET", "/tasks?stauts=done", 400, "", `"stauts"`},
		{"GET", "/devices/dev1?verbose=1", 400, "", `"verbose"`},
		{"GET", "/devices/dev1?consistent=true", 200, "", ""},
		{"GET", "/tasks?limit=10001", 400, "", "limit"},
		{"GET", "/tasks?limit=10000", 200, "", ""},
		{"GET", "/tasks/x?wait=6m", 400, "", "wait"},
		{"PATCH", "/tasks/x", 405, "GET, HEAD, DELETE", "PATCH"},
		{"POST", "/devices", 405, "GET, HEAD", "POST"},
		{"GET", "/nothing", 404, "", "/api/v1/nothing"},
	}
	for _, tt := range tests {
		code, hdr, body := httpDo(t, tt.method, api(n, tt.path), "", nil)
		var p struct{ Error string }
		if code != tt.code || hdr.Get("Allow") != tt.allow ||
			(tt.code >= 400 && (json.Unmarshal([]byte(body), &p) != nil || !strings.Contains(p.Error, tt.names))) {
			t.Errorf("%s %s: %d Allow %q %s; want %d naming %s", tt.method, tt.path, code, hdr.Get("Allow"), body, tt.code, tt.names)
		}
	}
}

// TestAPIHidesSecrets: the core shows secret parameter values and transfer
// passwords as the edge does: "" and marked (secret, redacted), in the
// device, its parameters and every task answer; the stored values stay.
func TestAPIHidesSecrets(t *testing.T) {
	const (
		crPass = "Device.ManagementServer.ConnectionRequestPassword"
		psk    = "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
		pw     = "hunter2-secret"
	)
	n := newCluster(t, 1, nil)[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", crPass, pw, "Device.DeviceInfo.SoftwareVersion", "1.0")})

	var dv fleet.DeviceView
	if code := do(t, "GET", api(n, "/devices/dev1"), nil, &dv); code != 200 {
		t.Fatalf("get device: %d", code)
	}
	if p := dv.Parameters[crPass]; p.Value != "" || !p.Secret || p.Type != "xsd:string" {
		t.Errorf("device shows %s as %+v", crPass, p)
	}
	if p := dv.Parameters["Device.DeviceInfo.SoftwareVersion"]; p.Value != "1.0" || p.Secret || p.Timestamp.IsZero() {
		t.Errorf("device shows SoftwareVersion as %+v", p)
	}
	var params map[string]fleet.Parameter
	if code := do(t, "GET", api(n, "/devices/dev1/params"), nil, &params); code != 200 || params[crPass].Value != "" || !params[crPass].Secret {
		t.Errorf("params: %d %+v", code, params[crPass])
	}

	var spv, dl fleet.TaskView
	if code := do(t, "POST", api(n, "/devices/dev1/tasks"), `{"name": "setParameterValues", "parameterValues": [["`+psk+`", "`+pw+`"]]}`, &spv); code != 202 ||
		spv.ParameterValues[0].Value != "" || len(spv.Redacted) != 1 || spv.Redacted[0] != psk {
		t.Errorf("SPV reply: %d %+v", code, spv)
	}
	if code := do(t, "POST", api(n, "/devices/dev1/tasks"), `{"name": "download", "url": "http://files/fw", "username": "u", "password": "`+pw+`"}`, &dl); code != 202 ||
		dl.Password != "" || len(dl.Redacted) != 1 || dl.Redacted[0] != fleet.RedactedPassword {
		t.Errorf("download reply: %d %+v", code, dl)
	}
	for _, path := range []string{"/devices/dev1", "/devices/dev1/params", "/devices/dev1/tasks", "/tasks", "/tasks/" + spv.ID, "/tasks/" + dl.ID + "?wait=1ms"} {
		if code, _, body := httpDo(t, "GET", api(n, path), "", nil); code/100 != 2 || strings.Contains(body, pw) {
			t.Errorf("GET %s: %d leaks the secret: %s", path, code, body)
		}
	}
	// The FSM keeps the real values: the edge must send them.
	if st, err := n.fsm.Task(dl.ID); err != nil || st.Password != pw {
		t.Errorf("stored download task: %+v %v", st, err)
	}
	if d, err := n.fsm.Device("dev1", true); err != nil || d.Parameters[crPass].Value != pw {
		t.Errorf("stored device: %v", err)
	}
}

// TestAPIDeviceFaults: GET /api/v1/devices/{id}/faults lists a device's
// faults in the edge's shape; an unknown device is 404.
func TestAPIDeviceFaults(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	var tk fleet.TaskView
	if code := do(t, "POST", api(n, "/devices/dev1/tasks"), `{"name": "reboot"}`, &tk); code != 202 {
		t.Fatalf("create: %d", code)
	}
	mustApplyNode(t, n, Command{Op: OpTaskResult, TaskID: tk.ID, Status: fleet.StatusFault, Fault: &fleet.TaskFault{Code: "9002", Message: "internal"}})
	var fs []fleet.FaultView
	if code := do(t, "GET", api(n, "/devices/dev1/faults"), nil, &fs); code != 200 || len(fs) != 1 ||
		fs[0].ID != tk.ID || fs[0].Task != tk.ID || fs[0].Device != "dev1" || fs[0].Code != "9002" || fs[0].Timestamp.IsZero() {
		t.Fatalf("device faults: %d %+v", code, fs)
	}
	if code := do(t, "GET", api(n, "/faults?device=dev1"), nil, &fs); code != 200 || len(fs) != 1 {
		t.Fatalf("faults: %d %+v", code, fs)
	}
	if code := do(t, "GET", api(n, "/devices/nope/faults"), nil, nil); code != 404 {
		t.Fatalf("unknown device: %d", code)
	}
}
