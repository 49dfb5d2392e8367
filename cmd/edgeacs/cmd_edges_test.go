package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestEdgesCommand(t *testing.T) {
	var revoked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/edges":
			w.Write([]byte(`[{"id":"popA","addr":"192.0.2.7:50123","connected":true,"lastSeen":"2026-12-02T05:41:21Z","uplinkAcked":200,"downlinkAcked":3,"health":{"outboxLen":7,"devices":1200}},` +
				`{"id":"popC","status":"offline","connected":false}]`))
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v1/edges/") && strings.HasSuffix(r.URL.Path, "/revoke"):
			revoked = append(revoked, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/edges/"), "/revoke"))
			w.Write([]byte(`{"id":"popB","status":"revoked","revoked":"2026-12-02T05:41:21Z"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such route"}`))
		}
	}))
	defer srv.Close()

	out, code := runCmd(t, "edges", "list", "--api", srv.URL)
	if code != 0 || !regexp.MustCompile(`(?m)^popA\s+192\.0\.2\.7:50123\s+up\s+\d+[smhd] ago\s+7\s+1200\s*$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^popC\s+-\s+down\s+never\s+-\s+-\s*$`).MatchString(out) {
		t.Fatalf("edges list: %d\n%s", code, out)
	}
	if out, code := runCmd(t, "edges", "list", "--api", srv.URL, "--json"); code != 0 || !strings.Contains(out, `"id": "popA"`) {
		t.Fatalf("edges list --json: %d\n%s", code, out)
	}
	if out, code := runCmd(t, "edges", "revoke", "--api", srv.URL, "popB"); code != 0 || !strings.Contains(out, "revoked edge popB") {
		t.Fatalf("edges revoke: %d\n%s", code, out)
	}
	if len(revoked) != 1 || revoked[0] != "popB" {
		t.Fatalf("revoke requests: %v", revoked)
	}
	for _, args := range [][]string{
		{"edges", "revoke", "--api", srv.URL},                 // no name
		{"edges", "revoke", "a", "b", "--api", srv.URL},       // two names
		{"edges", "revoke", "../x", "--api", srv.URL},         // not a node name
		{"edges", "list", "extra", "--api", srv.URL},          // stray argument
		{"edges", "list", "--no-such-flag", "--api", srv.URL}, // unknown flag
	} {
		if _, code := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if len(revoked) != 1 {
		t.Fatalf("a refused command reached the API: %v", revoked)
	}
	// An unreachable core is exit 1 with a message, not a usage error.
	if _, code := runCmd(t, "edges", "list", "--api", "127.0.0.1:1"); code != 1 {
		t.Fatalf("unreachable core: exit %d, want 1", code)
	}
}
