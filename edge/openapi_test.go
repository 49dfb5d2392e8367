package edge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestOpenAPIMatchesRoutes: every /api/v1 route the edge registers is in
// openapi.json with its method, every operation there is registered, and
// the document is served (read scope).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	mux, _ := newAPI(APIConfig{Logger: quietLog})
	missing, extra := openAPI.Compare(mux.Patterns(), "/api/v1/")
	for _, p := range missing {
		t.Errorf("route %q is not in edge/openapi.json", p)
	}
	for _, op := range extra {
		t.Errorf("edge/openapi.json has %q, which no route serves", op)
	}

	e := newAPIEnv(t)
	read := addTestToken(t, e.c, "doc-reader", fleet.ScopeRead)
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+read)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
		t.Fatalf("GET /api/v1/openapi.json with a read token: %d %v %+v", resp.StatusCode, err, doc)
	}
}

// TestAPIPlumbing: the answers httpapi gives alike on the edge and the
// core: unknown query parameters, limits, 405 with Allow, 404 for no route.
func TestAPIPlumbing(t *testing.T) {
	e := newAPIEnv(t)
	tests := []struct {
		method, path string
		code         int
		allow, names string
	}{
		{"GET", "/api/v1/tasks?stauts=done", 400, "", `"stauts"`},
		{"GET", "/api/v1/devices/" + devID + "?verbose=1", 400, "", `"verbose"`},
		{"GET", "/api/v1/tasks?limit=10001", 400, "", "limit"},
		{"GET", "/api/v1/tasks?limit=10000", 200, "", ""},
		{"GET", "/api/v1/tasks/x?wait=6m", 400, "", "wait"},
		{"PATCH", "/api/v1/tasks/x", 405, "GET, HEAD, DELETE", "PATCH"},
		{"POST", "/api/v1/devices", 405, "GET, HEAD", "POST"},
		{"GET", "/api/v1/nothing", 404, "", "/api/v1/nothing"},
	}
	for _, tt := range tests {
		resp, body := e.do(t, tt.method, tt.path, nil)
		var p struct{ Error string }
		if resp.StatusCode != tt.code || resp.Header.Get("Allow") != tt.allow ||
			(tt.code >= 400 && (json.Unmarshal(body, &p) != nil || !strings.Contains(p.Error, tt.names))) {
			t.Errorf("%s %s: %d Allow %q %s; want %d naming %s", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), body, tt.code, tt.names)
		}
	}
}

// TestAPIGetTaskWait: GET /api/v1/tasks/{id}?wait answers 202 with the
// task as it stands when the wait runs out, 200 once it is final.
func TestAPIGetTaskWait(t *testing.T) {
	e := newAPIEnv(t)
	tk := addTask(t, e.c, `{"name":"reboot"}`)
	resp, body := e.do(t, "GET", "/api/v1/tasks/"+tk.ID+"?wait=20ms", nil)
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"pending"`) {
		t.Fatalf("pending task after the wait: %d %s", resp.StatusCode, body)
	}
	// A bodiless POST with connection_request wakes the device, which
	// runs the task while the GET waits.
	if resp, body := e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks?connection_request", nil); resp.StatusCode != 200 {
		t.Fatalf("wake: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/api/v1/tasks/"+tk.ID+"?timeout=5000", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"done"`) {
		t.Fatalf("final task with a wait: %d %s", resp.StatusCode, body)
	}
}
