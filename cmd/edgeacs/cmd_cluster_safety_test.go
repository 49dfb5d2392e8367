package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/core"
)

// TestREADMECoreCommandsAreSafe parses the README's three core command
// lines ("The whole system by hand") as `edgeacs core` would: each must
// be the safe founding form, --bootstrap-expect 3 with --join naming the
// other two by their Raft addresses, which core's TestWipedFounderRejoinsInsteadOfBootstrapping
// runs (with loopback ports) against a wiped founder.
func TestREADMECoreCommandsAreSafe(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []core.Config
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "$B core ") {
			continue
		}
		args := strings.Fields(strings.TrimPrefix(line, "$B core "))
		cfg, code := runCoreArgs(t, args...)
		if code != 0 {
			t.Fatalf("README line %q: exit %d", line, code)
		}
		cfgs = append(cfgs, cfg)
	}
	if len(cfgs) != 3 {
		t.Fatalf("%d core command lines in the README, want 3", len(cfgs))
	}
	for i, cfg := range cfgs {
		if cfg.Bootstrap || cfg.BootstrapExpect != 3 {
			t.Errorf("node %s: bootstrap %v, bootstrap-expect %d: not the safe form", cfg.ID, cfg.Bootstrap, cfg.BootstrapExpect)
		}
		var want []string
		for j, other := range cfgs {
			if j != i {
				want = append(want, other.RaftAddr)
			}
		}
		if cfg.Join != strings.Join(want, ",") {
			t.Errorf("node %s: --join %q, want the other two founders %q", cfg.ID, cfg.Join, strings.Join(want, ","))
		}
	}
}

// TestClusterJoinReplaceFlag: `edgeacs cluster join --replace` asks the
// API for a replacing join; without the flag it does not.
func TestClusterJoinReplaceFlag(t *testing.T) {
	var got []core.JoinRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req core.JoinRequest
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/api/v1/cluster/join" || json.Unmarshal(b, &req) != nil {
			http.Error(w, `{"error": "unexpected"}`, 400)
			return
		}
		got = append(got, req)
		w.Write([]byte(`{"status": "joined"}`))
	}))
	defer srv.Close()
	for _, extra := range [][]string{nil, {"--replace"}} {
		oldExit := cli.OsExiter
		code := 0
		cli.OsExiter = func(c int) { code = c }
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		args := append([]string{"edgeacs", "cluster", "join", "--api", srv.URL, "--id", "n2", "--raft-addr", "127.0.0.1:7002"}, extra...)
		if err := app.Run(args); err != nil || code != 0 {
			t.Fatalf("%v: %v (exit %d)", args, err, code)
		}
		cli.OsExiter = oldExit
	}
	if len(got) != 2 || got[0].Replace || !got[1].Replace || got[1].ID != "n2" {
		t.Fatalf("join requests: %+v", got)
	}
}
