package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
)

func TestDevStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), devStateName)
	if st, err := readDevState(path); err != nil || st != (devState{}) {
		t.Fatalf("missing file: %+v %v, want an empty state", st, err)
	}
	want := devState{RaftAddr: "127.0.0.1:41000", SyncAddr: "127.0.0.1:41001", STUNAddr: "127.0.0.1:41002",
		EdgeAPIAddr: "127.0.0.1:41003", CPEUsername: "cpe", CPEPassword: "S3CRET"}
	if err := writeDevState(path, want); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("dev.yaml mode: %v %v, want 0600", st.Mode(), err)
	}
	if got, err := readDevState(path); err != nil || got != want {
		t.Fatalf("read back %+v %v, want %+v", got, err, want)
	}
	os.WriteFile(path, []byte("raftAddr: 127.0.0.1:1\nraftAdr: typo\n"), 0o600)
	if _, err := readDevState(path); err == nil || !strings.Contains(err.Error(), "raftAdr") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("typo in dev.yaml: %v, want a one-line error naming the key", err)
	}
}

func TestDevAddr(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer takenUDP.Close()
	free := coreFreeTCP(t)
	tests := []struct {
		name, given, network, remembered, want string
	}{
		{"flag wins", "127.0.0.1:5000", "tcp", free, "127.0.0.1:5000"},
		{"first start", "", "tcp", "", devFreePort},
		{"remembered and free", "", "tcp", free, free},
		{"remembered but taken", "", "tcp", taken.Addr().String(), devFreePort},
		{"remembered UDP but taken", "", "udp", takenUDP.LocalAddr().String(), devFreePort},
	}
	for _, tt := range tests {
		if got := devAddr("raft-addr", tt.given, tt.network, tt.remembered, log); got != tt.want {
			t.Errorf("%s: devAddr = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func coreFreeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTypedCommand: the ready banner's commands run when typed in the
// same folder: a binary started by path keeps its path.
func TestTypedCommand(t *testing.T) {
	tests := []struct{ arg0, want string }{
		{"./edgeacs", "./edgeacs"},
		{"./bin/edgeacs", "bin/edgeacs"},
		{"bin/edgeacs", "bin/edgeacs"},
		{"edgeacs", "edgeacs"}, // found in PATH: typed the same way
		{"/usr/local/bin/edgeacs", "/usr/local/bin/edgeacs"},
		{"bin/../edgeacs", "./edgeacs"},
	}
	for _, tc := range tests {
		if got := typedCommand(tc.arg0); got != tc.want {
			t.Errorf("typedCommand(%q) = %q, want %q", tc.arg0, got, tc.want)
		}
	}
}

func TestDevUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.MkdirAll(bad, 0o700)
	os.WriteFile(filepath.Join(bad, devStateName), []byte("nonsense: [\n"), 0o600)
	for _, args := range [][]string{
		{"dev", "--data", dir, "extra"},
		{"dev", "--data", dir, "--sim", "-1"},
		{"dev", "--data", ""},
		{"dev", "--data", dir, "--api-addr", "192.0.2.1:7557"},
		{"dev", "--data", dir, "--edge-api-addr", "0.0.0.0:7558"},
		{"dev", "--data", dir, "--cwmp-addr", "no-port"},
		{"dev", "--data", dir, "--raft-addr", ""},
		{"dev", "--data", bad},
		// A bad model is refused before any node starts.
		{"dev", "--data", dir, "--model", "tr999", "--api-addr", "127.0.0.1:0", "--cwmp-addr", "127.0.0.1:0"},
	} {
		if out, code := runCmd(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "core")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start made the core's data: %v", err)
	}
}

// syncBuffer is an io.Writer read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runDevInProcess runs `edgeacs dev` until it prints ready, and returns
// its output and how to stop it (the stop returns Run's error).
func runDevInProcess(t *testing.T, args ...string) (*syncBuffer, func() error) {
	t.Helper()
	out := &syncBuffer{}
	app := newApp()
	app.Writer, app.ErrWriter = out, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, append([]string{"edgeacs", "--log-level", "error", "dev"}, args...))
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "is ready") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("dev stopped before it was ready: %v\n%s", err, out)
		case <-deadline:
			cancel()
			<-done
			t.Fatalf("dev not ready after 30s\n%s", out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				err = errors.New("dev did not stop within 20s")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return out, stop
}

// TestDevInProcess runs the dev system twice on one data directory: it
// becomes ready with every CPE at the core, writes cli.yaml (0600) with a
// token the core takes, stops cleanly, and the second start reuses the
// CA, the token, the remembered ports and the devices.
func TestDevInProcess(t *testing.T) {
	old, oldLog := cli.OsExiter, slog.Default()
	cli.OsExiter = func(int) {}
	// The app's --log-level sets the process's default logger.
	defer func() { cli.OsExiter = old; slog.SetDefault(oldLog) }()
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data", data, "--sim", "3", "--api-addr", "127.0.0.1:0", "--cwmp-addr", "127.0.0.1:0"}

	out, stop := runDevInProcess(t, args...)
	for _, want := range []string{"3 simulated CPEs", "core API", "devices list", "edges list", "cluster status", "export " + cliConfigEnv + "="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ready banner lacks %q:\n%s", want, out)
		}
	}
	conf, err := readCLIConfig(filepath.Join(data, cliConfigName))
	if err != nil {
		t.Fatalf("cli.yaml: %v", err)
	}
	if !strings.HasPrefix(conf.Token, "eacs_") || !strings.HasPrefix(conf.API, "http://127.0.0.1:") {
		t.Fatalf("cli.yaml: %+v", conf)
	}
	cl, err := client.New(conf.API, client.Options{Token: conf.Token})
	if err != nil {
		t.Fatal(err)
	}
	var edges []struct {
		ID        string `json:"id"`
		Connected bool   `json:"connected"`
	}
	if err := cl.Do(context.Background(), "GET", "/api/v1/edges", nil, &edges); err != nil || len(edges) != 1 || edges[0].ID != devEdgeID || !edges[0].Connected {
		t.Fatalf("edges at the core with cli.yaml's token: %+v %v", edges, err)
	}
	var devs []struct {
		ID   string `json:"_id"`
		Edge string `json:"edge"`
	}
	if err := cl.Do(context.Background(), "GET", "/api/v1/devices", nil, &devs); err != nil || len(devs) != 3 || devs[0].Edge != devEdgeID {
		t.Fatalf("devices at the core: %+v %v", devs, err)
	}
	st1, _ := readDevState(filepath.Join(data, devStateName))
	ca1, _ := os.ReadFile(filepath.Join(data, "ca", "ca.crt"))
	if err := stop(); err != nil {
		t.Fatalf("first run stopped with %v", err)
	}

	_, stop = runDevInProcess(t, args...)
	conf2, err := readCLIConfig(filepath.Join(data, cliConfigName))
	if err != nil || conf2.Token != conf.Token {
		t.Fatalf("second start's token %q (%v), want the first's", conf2.Token, err)
	}
	st2, _ := readDevState(filepath.Join(data, devStateName))
	ca2, _ := os.ReadFile(filepath.Join(data, "ca", "ca.crt"))
	if st2 != st1 || !bytes.Equal(ca1, ca2) || len(ca1) == 0 {
		t.Fatalf("second start changed its state or CA:\n%+v\n%+v", st1, st2)
	}
	cl, _ = client.New(conf2.API, client.Options{Token: conf2.Token})
	var devs2 []struct {
		ID string `json:"_id"`
	}
	if err := cl.Do(context.Background(), "GET", "/api/v1/devices", nil, &devs2); err != nil || len(devs2) != 3 || devs2[0].ID != devs[0].ID {
		t.Fatalf("devices after a restart: %+v %v", devs2, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second run stopped with %v", err)
	}
}
