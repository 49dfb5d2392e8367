package core

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
)

// testSecret is the admin token of every test cluster: testConfig stages
// it as a founder's admin secret (internal/tokenfile), so the founder
// proposes it instead of a random one, and the tests' requests carry it.
const testSecret = "eacs_coretestsecretcoretestsecretcoretestsecretco"

// authTransport adds the test admin token to requests that carry no
// Authorization: every API route but health answers 401 without one.
type authTransport struct{ base http.RoundTripper }

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := r.Header["Authorization"]; !ok {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+testSecret)
	}
	return a.base.RoundTrip(r)
}

// CloseIdleConnections lets clients reach the base's.
func (a authTransport) CloseIdleConnections() {
	if c, ok := a.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func TestMain(m *testing.M) {
	http.DefaultTransport = authTransport{base: http.DefaultTransport}
	os.Exit(m.Run())
}

// stageTestSecret makes testSecret the admin secret a founder with this
// data directory proposes.
func stageTestSecret(t testing.TB, dataDir string) {
	t.Helper()
	path := filepath.Join(dataDir, tokenfile.Name)
	if err := os.WriteFile(path+".tmp", []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitTestToken waits until every node knows the test admin token.
func waitTestToken(t testing.TB, nodes ...*testNode) {
	t.Helper()
	hash := fleet.HashToken(testSecret)
	waitFor(t, "the test admin token on every node", 15*time.Second, func() bool {
		for _, n := range nodes {
			if _, ok := n.TokenByHash(hash); !ok {
				return false
			}
		}
		return true
	})
}
