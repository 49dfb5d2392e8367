package edge

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// apiTokens maps a test API's host:port to the token the tests send it:
// every route but health answers 401 without one.
var apiTokens sync.Map

// authTransport adds the registered token to requests that carry no
// Authorization, so the tests' plain HTTP helpers need not know tokens.
// CWMP requests go to other addresses and are left alone.
type authTransport struct{ base http.RoundTripper }

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		if tok, ok := apiTokens.Load(r.URL.Host); ok {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok.(string))
		}
	}
	return a.base.RoundTrip(r)
}

// CloseIdleConnections lets httptest.Server.Close reach the base.
func (a authTransport) CloseIdleConnections() {
	if c, ok := a.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func TestMain(m *testing.M) {
	http.DefaultTransport = authTransport{base: http.DefaultTransport}
	os.Exit(m.Run())
}

// useToken makes the tests' requests to the API at base (a URL or
// host:port) carry token.
func useToken(base, token string) {
	host := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	apiTokens.Store(host, token)
}

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
	srv.Client().Transport = authTransport{base: srv.Client().Transport}
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
