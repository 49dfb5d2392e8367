package edge

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/testauth"
)

// apiTokens maps each test API's address to the token the tests send it.
var apiTokens testauth.Hosts

func TestMain(m *testing.M) {
	testauth.Install(apiTokens.Token)
	os.Exit(m.Run())
}

// useToken makes the tests' requests to the API at base (a URL or
// host:port) carry token.
func useToken(base, token string) { apiTokens.Use(base, token) }

// addTestToken stores a fresh token of scope in c and returns its secret.
func addTestToken(t testing.TB, c *Cache, name string, scope fleet.Scope) string {
	t.Helper()
	secret, tok, err := fleet.NewToken(name, scope, time.Time{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutToken(tok, false); err != nil {
		t.Fatal(err)
	}
	return secret
}

// serveAPI serves NewAPI(cfg) on loopback with an admin token in cfg.Cache
// that the tests' requests carry.
func serveAPI(t testing.TB, cfg APIConfig) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewAPI(cfg))
	t.Cleanup(srv.Close)
	srv.Client().Transport = testauth.Transport{Base: srv.Client().Transport, Token: apiTokens.Token}
	if cfg.Cache != nil {
		useToken(srv.URL, addTestToken(t, cfg.Cache, "test-admin", fleet.ScopeAdmin))
	}
	return srv
}

// useAdminToken makes the tests' requests to e's API carry the admin token
// the standalone edge wrote under its data directory, if it is there (a
// test may have removed it).
func (e *testEdge) useAdminToken() {
	e.t.Helper()
	if b, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "admin.token")); err == nil {
		useToken(e.api, strings.TrimSpace(string(b)))
	}
}
