package core

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/testauth"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
)

// testSecret is the admin token of every test cluster: testConfig stages
// it as a founder's admin secret (internal/tokenfile), so the founder
// proposes it instead of a random one, and the tests' requests carry it.
const testSecret = "eacs_coretestsecretcoretestsecretcoretestsecretco"

func TestMain(m *testing.M) {
	testauth.Install(func(*http.Request) string { return testSecret })
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
