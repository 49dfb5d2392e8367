package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/internal/testauth"
)

// apiTokens maps each API's address to the token the tests send it: every
// management API answers 401 without one.
var apiTokens testauth.Hosts

func TestMain(m *testing.M) {
	testauth.Install(apiTokens.Token)
	os.Exit(m.Run())
}

// useToken makes the tests' HTTP requests to addr carry token.
func useToken(addr, token string) { apiTokens.Use(addr, token) }

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
