package main

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

// testSecret is the admin token of the tests' core clusters: stageSecret
// makes a founder propose it instead of a random one, the tests' HTTP
// requests carry it, and so do the commands they run (EDGEACS_TOKEN).
const testSecret = "eacs_cmdtestsecretcmdtestsecretcmdtestsecretcmdte"

func TestMain(m *testing.M) {
	// CWMP requests (to "/") carry their own digest, or get a challenge.
	testauth.Install(func(r *http.Request) string {
		if r.URL.Path == "/" {
			return ""
		}
		return testSecret
	})
	os.Setenv("EDGEACS_TOKEN", testSecret)
	os.Exit(m.Run())
}

// stageSecret makes testSecret the admin secret a founder with this data
// directory proposes.
func stageSecret(t testing.TB, dataDir string) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, tokenfile.Name)+".tmp", []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tokenHolder is a core node, in-process, that knows tokens.
type tokenHolder interface {
	TokenByHash(hash string) (fleet.Token, bool)
}

// waitSecret waits until n knows testSecret.
func waitSecret(t testing.TB, n tokenHolder) {
	t.Helper()
	hash := fleet.HashToken(testSecret)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := n.TokenByHash(hash); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the test admin token never reached the node")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSecretFile waits until the founder whose data directory is dir has
// written its admin token (the cluster holds it then).
func waitSecretFile(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, tokenfile.Name)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin token in %s", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
