package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/core"
)

// runCoreArgs runs `edgeacs core args...` with the node replaced by a
// capture of its configuration, returning the config and the exit code.
func runCoreArgs(t *testing.T, args ...string) (core.Config, int) {
	t.Helper()
	oldRun, oldExit := runCoreNode, cli.OsExiter
	defer func() { runCoreNode, cli.OsExiter = oldRun, oldExit }()
	var got core.Config
	runCoreNode = func(_ context.Context, cfg core.Config) error { got = cfg; return nil }
	code := 0
	cli.OsExiter = func(c int) { code = c }
	app := newApp()
	app.ErrWriter, app.Writer = io.Discard, io.Discard
	err := app.Run(append([]string{"edgeacs", "core"}, args...))
	var ec cli.ExitCoder
	if code == 0 && errors.As(err, &ec) {
		code = ec.ExitCode()
	} else if code == 0 && err != nil {
		code = 1
	}
	return got, code
}

func TestCoreConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "core.yaml")
	os.WriteFile(file, []byte("id: from-yaml\ndata: /yaml\nraftAddr: 127.0.0.1:1\napiAddr: 127.0.0.1:2\nheartbeatTimeout: 300ms\nleaderLeaseTimeout: 100ms\nbootstrap: true\n"), 0o644)
	t.Setenv("EDGEACS_DATA", "/env")
	t.Setenv("EDGEACS_API_ADDR", "127.0.0.1:3")
	cfg, code := runCoreArgs(t, "--config", file, "--api-addr", "127.0.0.1:4")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := map[string][2]string{
		"id (yaml)":       {cfg.ID, "from-yaml"},
		"data (env)":      {cfg.DataDir, "/env"},
		"raft (yaml)":     {cfg.RaftAddr, "127.0.0.1:1"},
		"api (flag)":      {cfg.APIAddr, "127.0.0.1:4"},
		"sync (default)":  {cfg.SyncAddr, defaultCoreSyncAddr},
		"heartbeat yaml":  {cfg.HeartbeatTimeout.String(), "300ms"},
		"apply (default)": {cfg.ApplyTimeout.String(), "10s"},
	}
	for name, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", name, v[0], v[1])
		}
	}
	if !cfg.Bootstrap {
		t.Error("bootstrap from yaml lost")
	}
}

func TestCoreBadFlags(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("id: x\nnoSuchKey: 1\n"), 0o644)
	tests := [][]string{
		{}, // no id
		{"--id", "n1", "--bootstrap", "--bootstrap-expect", "3", "--join", "127.0.0.1:1,127.0.0.1:2"},
		{"--id", "n1", "--bootstrap-expect", "3", "--join", "127.0.0.1:1"}, // needs the other two
		{"--id", "n1", "--bootstrap-expect", "-1"},
		{"--id", "n1", "--raft-addr", "nowhere"},
		{"--id", "n1", "--no-such-flag"},
		{"--id", "n1", "--heartbeat-timeout", "soon"},
		{"--id", "n1", "extra-arg"},
		{"--config", badYAML},
		{"--config", filepath.Join(dir, "missing.yaml")},
	}
	for _, args := range tests {
		if _, code := runCoreArgs(t, args...); code != 2 {
			t.Errorf("core %v: exit %d, want 2", args, code)
		}
	}
}

func TestClusterCommands(t *testing.T) {
	dataDir := t.TempDir()
	stageSecret(t, dataDir)
	cfg := core.Config{ID: "n1", DataDir: dataDir, RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Bootstrap: true,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond, RaftNoSync: true}
	n, err := core.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := n.WaitForLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, n)
	apiURL := "http://" + n.APIAddr()
	run := func(args ...string) (string, int) {
		oldExit := cli.OsExiter
		defer func() { cli.OsExiter = oldExit }()
		code := 0
		cli.OsExiter = func(c int) { code = c }
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, io.Discard
		err := app.Run(append([]string{"edgeacs", "cluster"}, args...))
		var ec cli.ExitCoder
		if code == 0 && errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		return out.String(), code
	}
	// The leader registers its API address right after winning; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code := run("status", "--api", apiURL)
		if code == 0 && strings.Contains(out, n.APIAddr()) {
			if !strings.Contains(out, "leader") || !strings.Contains(out, "voter") {
				t.Fatalf("status table:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: exit %d\n%s", code, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, code := run("status", "--api", apiURL, "--json")
	var st core.ClusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Leader != "n1" || len(st.Servers) != 1 {
		t.Fatalf("status --json: %d %q", code, out)
	}
	if _, code := run("remove", "--api", apiURL, "ghost"); code != 1 {
		t.Fatalf("remove unknown: exit %d, want 1", code)
	}
	if _, code := run("remove", "--api", apiURL); code != 2 {
		t.Fatalf("remove without id: exit %d, want 2", code)
	}
	if _, code := run("join", "--api", apiURL, "--id", "n2"); code != 2 {
		t.Fatalf("join without raft-addr: exit %d, want 2", code)
	}
	if _, code := run("join", "--api", apiURL, "--id", "n2", "--raft-addr", "bad"); code != 2 {
		t.Fatalf("join with a bad address: exit %d, want 2 (the API refused the input)", code)
	}
	if _, code := run("status", "--api", "http://127.0.0.1:1"); code != 1 {
		t.Fatalf("status against nothing: exit %d, want 1", code)
	}
}
