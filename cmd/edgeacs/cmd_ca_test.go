package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// runCA runs `edgeacs ca args...` and returns its output and exit code.
func runCA(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runCmd(t, append([]string{"ca"}, args...)...)
}

// runCmd runs `edgeacs args...` in-process and returns its output and
// exit code.
func runCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	oldExit := cli.OsExiter
	defer func() { cli.OsExiter = oldExit }()
	code := 0
	cli.OsExiter = func(c int) { code = c }
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, io.Discard
	err := runOrdered(app, append([]string{"edgeacs"}, args...))
	var ec cli.ExitCoder
	if code == 0 && errors.As(err, &ec) {
		code = ec.ExitCode()
	} else if code == 0 && err != nil {
		code = 1
	}
	return out.String(), code
}

func TestCACommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	out, code := runCA(t, "init", "--dir", dir)
	if code != 0 {
		t.Fatalf("init: exit %d", code)
	}
	for _, want := range []string{"wrote " + filepath.Join(dir, "ca.crt"), "wrote " + filepath.Join(dir, "ca.key"), "valid until "} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	caKey, _ := os.ReadFile(filepath.Join(dir, "ca.key"))

	if _, code := runCA(t, "init", "--dir", dir); code != 1 {
		t.Errorf("second init: exit %d, want 1", code)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.key")); !bytes.Equal(b, caKey) {
		t.Error("second init changed ca.key")
	}

	out, code = runCA(t, "issue", "--dir", dir, "--name", "core-1", "--role", "core")
	if code != 0 || !strings.Contains(out, "wrote "+filepath.Join(dir, "core-1.crt")+" (core certificate for core-1, ecdsa key") {
		t.Fatalf("issue core: exit %d\n%s", code, out)
	}
	out, code = runCA(t, "issue", "--dir", dir, "--name", "pop-fra-1", "--role", "edge", "--key", "ed25519")
	if code != 0 || !strings.Contains(out, "(edge certificate for pop-fra-1, ed25519 key") || !strings.Contains(out, "wrote "+filepath.Join(dir, "pop-fra-1.key")) {
		t.Fatalf("issue edge: exit %d\n%s", code, out)
	}
	// The pairs work as the sync link's configurations.
	if _, err := fleetsync.ServerTLS(dir, "core-1", nil); err != nil {
		t.Errorf("ServerTLS: %v", err)
	}
	if _, err := fleetsync.ClientTLS(dir, "pop-fra-1"); err != nil {
		t.Errorf("ClientTLS: %v", err)
	}
	// Issuing the same name again is refused (not a usage error).
	if _, code := runCA(t, "issue", "--dir", dir, "--name", "pop-fra-1", "--role", "edge"); code != 1 {
		t.Errorf("reissue: exit %d, want 1", code)
	}
}

func TestCACommandUsageErrors(t *testing.T) {
	dir := t.TempDir()
	if _, code := runCA(t, "init", "--dir", dir); code != 0 {
		t.Fatalf("init: exit %d", code)
	}
	tests := [][]string{
		{"init"},
		{"init", "--dir", dir, "extra"},
		{"init", "--no-such-flag"},
		{"issue", "--dir", dir, "--name", "n1", "--role", "admin"},
		{"issue", "--dir", dir, "--name", "n1", "--role", "EDGE"},
		{"issue", "--dir", dir, "--name", "n1"},
		{"issue", "--dir", dir, "--role", "edge"},
		{"issue", "--name", "n1", "--role", "edge"},
		{"issue", "--dir", dir, "--name", "../n1", "--role", "edge"},
		{"issue", "--dir", dir, "--name", "n1", "--role", "edge", "--key", "rsa"},
		{"issue", "--dir", dir, "--name", "n1", "--role", "edge", "--no-such-flag"},
	}
	for _, args := range tests {
		if _, code := runCA(t, args...); code != 2 {
			t.Errorf("ca %v: exit %d, want 2", args, code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused issue wrote n1.key: %v", err)
	}
}
