package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiTokens maps an API's host:port to the bearer token the tests send it:
// every management API answers 401 without one.
var apiTokens sync.Map

// authTransport adds the registered token to requests that carry none, so
// the tests' many plain HTTP helpers need not each know about tokens.
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

func TestMain(m *testing.M) {
	http.DefaultTransport = authTransport{base: http.DefaultTransport}
	os.Exit(m.Run())
}

// useToken makes the tests' HTTP requests to addr carry token.
func useToken(addr, token string) { apiTokens.Store(addr, token) }

// readAdminToken waits for the admin token a bootstrapping core or a
// standalone edge writes under its data directory, and returns it.
func readAdminToken(t *testing.T, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, "admin.token")
	var tok string
	coreWait(t, "the admin token in "+path, 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		tok = strings.TrimSpace(string(b))
		return err == nil && tok != ""
	})
	return tok
}
