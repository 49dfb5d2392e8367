package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// coreToken is a token as the core sends it; its secret is "eacs_" + name.
func coreToken(name string, scope fleet.Scope) *fleet.Token {
	return &fleet.Token{Name: name, Scope: scope, Hash: fleet.HashToken(fleet.TokenPrefix + name), Created: t0}
}

func downToken(seq uint64, tok *fleet.Token) fleet.DownRecord {
	return fleet.DownRecord{Seq: seq, Shared: true, Kind: fleet.DownToken, Token: tok}
}

func downTokenRevoke(seq uint64, name string) fleet.DownRecord {
	return fleet.DownRecord{Seq: seq, Shared: true, Kind: fleet.DownTokenRevoke, Name: name}
}

// TestDownlinkTokens stores the core's tokens and revocations from the
// shared downlink: the index follows each commit, a resend changes
// nothing, an unusable record is skipped, and a reopened cache loads the
// same tokens.
func TestDownlinkTokens(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	ci, ops := coreToken("ci", fleet.ScopeWrite), coreToken("ops", fleet.ScopeRead)
	mustStore(t, c, downToken(1, ci), downToken(2, ops))
	if tok, ok := c.TokenByHash(ci.Hash); !ok || tok.Name != "ci" || tok.Scope != fleet.ScopeWrite {
		t.Fatalf("TokenByHash(ci) = %+v %v", tok, ok)
	}
	mustStore(t, c, downTokenRevoke(3, "ci"))
	if _, ok := c.TokenByHash(ci.Hash); ok {
		t.Fatal("revoked token still found")
	}
	// A resend of records already stored (a lost ack) changes nothing:
	// the revoked token does not come back.
	before := dumpDB(t, c)
	mustStore(t, c, downToken(1, ci), downToken(2, ops), downTokenRevoke(3, "ci"))
	if after := dumpDB(t, c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a resend changed the store")
	}
	// Unusable records are skipped whole; the position moves on.
	mustStore(t, c, downTokenRevoke(4, "bad/name"), fleet.DownRecord{Seq: 5, Shared: true, Kind: fleet.DownToken, Token: &fleet.Token{Name: "x", Scope: "root", Hash: ci.Hash}})
	if _, s, _ := c.DownlinkAcked(); s != 5 {
		t.Fatalf("shared position %d, want 5", s)
	}
	// The core's token replaces a local one of the same name.
	local := fleet.Token{Name: "admin", Scope: fleet.ScopeAdmin, Hash: fleet.HashToken("eacs_local"), Created: t0}
	if err := c.PutToken(local, false); err != nil {
		t.Fatal(err)
	}
	mustStore(t, c, downToken(6, coreToken("admin", fleet.ScopeAdmin)))
	if _, ok := c.TokenByHash(local.Hash); ok {
		t.Fatal("the local admin token survived the core's")
	}
	if got := c.Tokens(); len(got) != 2 || got[0].Name != "admin" || got[1].Name != "ops" {
		t.Fatalf("Tokens() = %+v", got)
	}
	c.Close()
	c = openTestCache(t, dir)
	if got := c.Tokens(); len(got) != 2 || got[0].Name != "admin" || got[1].Name != "ops" {
		t.Fatalf("Tokens() after reopen = %+v", got)
	}
	if _, ok := c.TokenByHash(ops.Hash); !ok {
		t.Fatal("ops not found after reopen")
	}
}

// TestLocalTokens: a standalone edge's own tokens. Names and hashes are
// unique, ifNone refuses once any token exists, a revocation of a name not
// there is ErrNotFound.
func TestLocalTokens(t *testing.T) {
	c := openTestCache(t, "")
	a := fleet.Token{Name: "a", Scope: fleet.ScopeRead, Hash: fleet.HashToken("eacs_a"), Created: t0}
	if err := c.PutToken(a, true); err != nil {
		t.Fatal(err)
	}
	b := a
	b.Name, b.Hash = "b", fleet.HashToken("eacs_b")
	if err := c.PutToken(b, true); !errors.Is(err, ErrTokenExists) {
		t.Fatalf("ifNone with a token present: %v", err)
	}
	for _, bad := range []fleet.Token{{Name: "a", Scope: fleet.ScopeRead, Hash: b.Hash}, {Name: "c", Scope: fleet.ScopeRead, Hash: a.Hash}} {
		if err := c.PutToken(bad, false); !errors.Is(err, ErrTokenExists) {
			t.Fatalf("PutToken(%+v): %v", bad, err)
		}
	}
	if err := c.PutToken(fleet.Token{Name: "x", Scope: "root", Hash: b.Hash}, false); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("bad scope: %v", err)
	}
	if err := c.RevokeToken("a"); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeToken("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if c.HasTokens() {
		t.Fatal("tokens left")
	}
}

// TestStandaloneAdminToken: a standalone edge's first start writes
// admin.token (0600, one line) whose secret resolves to an admin token;
// restarts keep it, and a restart without the file (tokens exist) makes
// no new one. An edge synced to a core makes none.
func TestStandaloneAdminToken(t *testing.T) {
	dir := t.TempDir()
	e := startEdge(t, dir, nil)
	path := filepath.Join(dir, "admin.token")
	if e.node.AdminTokenPath() != path {
		t.Fatalf("AdminTokenPath %q", e.node.AdminTokenPath())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 || !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("admin.token: mode %v, %q", st.Mode(), b)
	}
	secret := strings.TrimSpace(string(b))
	tok, ok := e.node.TokenByHash(fleet.HashToken(secret))
	if !ok || tok.Name != "admin" || tok.Scope != fleet.ScopeAdmin {
		t.Fatalf("admin token: %+v %v", tok, ok)
	}
	if !strings.Contains(e.logs.String(), "admin token written") || strings.Contains(e.logs.String(), secret) {
		t.Fatal("the log must name the file, never the secret")
	}
	e.stop()

	e = startEdge(t, dir, nil)
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Fatalf("restart changed admin.token: %q", b2)
	}
	e.stop()
	os.Remove(path)
	e = startEdge(t, dir, nil)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restart with tokens present wrote admin.token: %v", err)
	}
	if got := e.node.Tokens(); len(got) != 1 || got[0].Hash != tok.Hash {
		t.Fatalf("tokens after restarts: %+v", got)
	}
	e.stop()

	// A crash after the token was stored and before the file was moved
	// into place is completed on the next start.
	dir2 := t.TempDir()
	e = startEdge(t, dir2, nil)
	path2 := filepath.Join(dir2, "admin.token")
	b, _ = os.ReadFile(path2)
	e.stop()
	if err := os.Rename(path2, path2+".tmp"); err != nil {
		t.Fatal(err)
	}
	startEdge(t, dir2, nil).stop()
	if b2, err := os.ReadFile(path2); err != nil || string(b2) != string(b) {
		t.Fatalf("staged secret not completed: %q %v", b2, err)
	}
	if _, err := os.Stat(path2 + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staged file left: %v", err)
	}

	// Synced to a core: no local admin token is made, and the standalone
	// edge's own tokens are dropped (the core could not revoke them); the
	// core's stay.
	e = startEdge(t, dir, nil)
	mustStore(t, e.node.Cache(), downToken(1, coreToken("ci", fleet.ScopeRead)))
	e.stop()
	os.Remove(path)
	n, err := New(Config{ID: "e1", DataDir: dir, CPEAuth: AuthNone, Core: []string{"127.0.0.1:1"}, CADir: dir}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	got := n.Tokens()
	n.Cache().Close()
	if len(got) != 1 || got[0].Name != "ci" {
		t.Fatalf("a synced edge holds %+v, want only the core's ci", got)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a synced edge made a local admin token: %v", err)
	}
}

// tokenAPI serves the token routes over a fresh cache.
func tokenAPI(t *testing.T, local bool) (*Cache, *httptest.Server) {
	c := openTestCache(t, "")
	srv := serveAPI(t, APIConfig{Cache: c, Logger: quietLog, LocalTokens: local})
	t.Cleanup(srv.Close)
	return c, srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTokenAPIStandalone: the token routes' shapes and refusals, the same
// as the core's.
func TestTokenAPIStandalone(t *testing.T) {
	c, srv := tokenAPI(t, true)
	code, body := call(t, srv, "POST", "/api/v1/tokens", `{"name":"ci","scope":"write","expires":"720h"}`)
	var raw map[string]any
	if code != 201 || json.Unmarshal([]byte(body), &raw) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	secret, _ := raw["token"].(string)
	if len(raw) != 4 || raw["name"] != "ci" || raw["scope"] != "write" || raw["expires"] == nil || !strings.HasPrefix(secret, fleet.TokenPrefix) {
		t.Fatalf("201 body: %s", body)
	}
	if tok, ok := c.TokenByHash(fleet.HashToken(secret)); !ok || tok.Name != "ci" || tok.Expires.Before(time.Now().Add(719*time.Hour)) {
		t.Fatalf("created token: %+v %v", tok, ok)
	}
	if code, body := call(t, srv, "POST", "/api/v1/tokens", `{"name":"ro","scope":"read"}`); code != 201 || strings.Contains(body, "expires") {
		t.Fatalf("create without expiry: %d %s", code, body)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"name":"bad name","scope":"read"}`, "name"},
		{`{"name":"x","scope":"root"}`, "scope"},
		{`{"name":"x"}`, "scope"},
		{`{"name":"x","scope":"read","expires":"0s"}`, "expires"},
		{`{"name":"x","scope":"read","expires":"yesterday"}`, "expires"},
		{`{"name":"x","scope":"read","token":"mine"}`, "unknown field"},
		{`{"name":"x","scope":"read","scope":"admin"}`, "duplicate"},
	} {
		if code, body := call(t, srv, "POST", "/api/v1/tokens", tc.body); code != 400 || !strings.Contains(body, tc.want) {
			t.Fatalf("%s: %d %s, want 400 naming %q", tc.body, code, body, tc.want)
		}
	}
	if code, body := call(t, srv, "POST", "/api/v1/tokens", `{"name":"ci","scope":"read"}`); code != 409 {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	code, body = call(t, srv, "GET", "/api/v1/tokens", "")
	if code != 200 || strings.Contains(body, secret) || strings.Contains(body, fleet.HashToken(secret)) || strings.Contains(strings.ToLower(body), "hash") {
		t.Fatalf("list: %d %s", code, body)
	}
	var list []fleet.Token
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list) != 3 || list[0].Name != "ci" || list[1].Name != "ro" || list[2].Name != "test-admin" || list[0].Created.IsZero() {
		t.Fatalf("list: %s %v", body, err)
	}
	if code, _ := call(t, srv, "DELETE", "/api/v1/tokens/ci", ""); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := call(t, srv, "DELETE", "/api/v1/tokens/ci", ""); code != 404 {
		t.Fatalf("revoke again: %d", code)
	}
	if code, _ := call(t, srv, "PUT", "/api/v1/tokens/ci", ""); code != 405 {
		t.Fatalf("PUT: %d", code)
	}
}

// TestTokenAPISynced: an edge synced to a core lists the core's tokens and
// refuses to create or revoke any.
func TestTokenAPISynced(t *testing.T) {
	c, srv := tokenAPI(t, false)
	mustStore(t, c, downToken(1, coreToken("ci", fleet.ScopeRead)))
	if code, body := call(t, srv, "GET", "/api/v1/tokens", ""); code != 200 || !strings.Contains(body, `"ci"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, r := range [][2]string{{"POST", "/api/v1/tokens"}, {"DELETE", "/api/v1/tokens/ci"}} {
		code, body := call(t, srv, r[0], r[1], `{"name":"x","scope":"read"}`)
		if code != 409 || !strings.Contains(body, "managed at the core") {
			t.Fatalf("%s %s: %d %s", r[0], r[1], code, body)
		}
	}
	if len(c.Tokens()) != 2 { // ci and the test's own admin token
		t.Fatal("a refused write changed the tokens")
	}
}
