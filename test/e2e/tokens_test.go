package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTokensReachEdgesAndOutliveTheBackhaul: tokens made and revoked with
// `edgeacs token` at the core reach the edge over the sync link; with the
// core gone, the edge still takes the token made before the cut, still
// refuses the one revoked before it, and a read token still cannot write.
func TestTokensReachEdgesAndOutliveTheBackhaul(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a core and an edge")
	}
	s := newSystem(t, 1, "pop")
	e := s.startEdge("pop", s.syncAddrs())
	api := "http://" + s.cores[0].api

	create := func(name, scope string) string {
		t.Helper()
		var tok struct{ Name, Scope, Token string }
		out := s.run("token", "create", "--api", api, "--name", name, "--scope", scope, "--json")
		if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Name != name || tok.Scope != scope || !strings.HasPrefix(tok.Token, "eacs_") {
			t.Fatalf("token create %s: %q %v", name, out, err)
		}
		return tok.Token
	}
	kept, gone := create("kept", "read"), create("gone", "write")
	if out := s.run("token", "revoke", "--api", api, "gone"); !strings.Contains(out, "revoked token gone") {
		t.Fatalf("token revoke: %q", out)
	}
	list := s.run("token", "list", "--api", api)
	if !strings.Contains(list, "kept") || strings.Contains(list, "gone") || strings.Contains(list, kept) {
		t.Fatalf("token list:\n%s", list)
	}

	// status sends one request to the edge's API with secret.
	status := func(method, path, secret string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+e.api+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	check := func(when string) {
		t.Helper()
		if code := status("GET", "/api/v1/devices?limit=1", kept); code != 200 {
			t.Errorf("%s: the kept read token: %d, want 200", when, code)
		}
		if code := status("DELETE", "/api/v1/devices/nobody", kept); code != 403 {
			t.Errorf("%s: a write with the read token: %d, want 403", when, code)
		}
		if code := status("GET", "/api/v1/devices?limit=1", gone); code != 401 {
			t.Errorf("%s: the revoked token: %d, want 401", when, code)
		}
	}
	coreWait(t, "the edge to take the new token and refuse the revoked one", 30*time.Second, func() bool {
		return status("GET", "/api/v1/devices?limit=1", kept) == 200 && status("GET", "/api/v1/devices?limit=1", gone) == 401
	})
	check("with the backhaul up")

	s.cores[0].stop() // the backhaul is down: no core to ask
	check("with the core gone")
}
