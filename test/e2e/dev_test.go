package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// devProc is one `edgeacs dev` process: stdout (the ready banner) and
// stderr (the logs) go to files in its folder.
type devProc struct {
	cmd      *exec.Cmd
	out, log string
	exited   chan struct{}
}

// startDev runs `edgeacs dev` in dir with args and waits for its ready
// line.
func startDev(t *testing.T, bin, dir string, run int, args ...string) *devProc {
	t.Helper()
	p := &devProc{out: filepath.Join(dir, fmt.Sprintf("dev-%d.out", run)), log: filepath.Join(dir, fmt.Sprintf("dev-%d.log", run)), exited: make(chan struct{})}
	outf, err := os.Create(p.out)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, append([]string{"dev"}, args...)...)
	p.cmd.Dir, p.cmd.Env = dir, cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = outf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		outf.Close()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.out)
			l, _ := os.ReadFile(p.log)
			t.Logf("---- edgeacs dev run %d stdout ----\n%s\n---- its log ----\n%s", run, b, tail(string(l), 6000))
			if dir := os.Getenv("EDGEACS_ARTIFACTS"); dir != "" {
				// The whole log, for what the tail above leaves out.
				name := filepath.Join(dir, fmt.Sprintf("%s-dev-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), run))
				if err := os.WriteFile(name, l, 0o644); err == nil {
					t.Logf("whole log: %s", name)
				}
			}
		}
	})
	coreWait(t, "edgeacs dev to print ready", 30*time.Second, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("edgeacs dev exited before it was ready: %v", p.cmd.ProcessState)
		default:
		}
		b, _ := os.ReadFile(p.out)
		return strings.Contains(string(b), "is ready")
	})
	return p
}

// interrupt sends SIGINT (Ctrl-C) and returns the exit code, failing if
// the process takes longer than d to stop.
func (p *devProc) interrupt(t *testing.T, d time.Duration) int {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("edgeacs dev still running %v after SIGINT", d)
	}
	t.Logf("edgeacs dev stopped %v after SIGINT", time.Since(start).Round(time.Millisecond))
	return p.cmd.ProcessState.ExitCode()
}

// cleanEnv is the test's environment without any EDGEACS_ variable, so
// that commands find their API and token only in ./data/cli.yaml.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDGEACS_") {
			env = append(env, kv)
		}
	}
	return env
}

// fleetCmd runs a fleet command in dir, as a user would type it there.
func fleetCmd(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("edgeacs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDevCommand is `make run` as a new user meets it: `edgeacs dev` brings
// up a core, an edge on the QUIC link and 20 CPEs, prints ready once the
// devices are at the core, and the fleet commands typed in the same
// folder work with no --api or --token. Ctrl-C stops it cleanly (exit 0);
// the next start reuses the data: the same token, CA and devices.
func TestDevCommand(t *testing.T) {
	bin := coreBuild(t)
	dir := t.TempDir()
	api := coreFreeAddr(t)
	raft := coreFreeAddr(t)
	args := []string{"--data", "data", "--sim", "20",
		"--api-addr", api, "--cwmp-addr", coreFreeAddr(t), "--edge-api-addr", coreFreeAddr(t),
		"--raft-addr", raft, "--sync-addr", freeUDPAddr(t), "--stun-addr", freeUDPAddr(t)}

	began := time.Now()
	p := startDev(t, bin, dir, 1, args...)
	t.Logf("first start ready after %v", time.Since(began).Round(time.Millisecond))
	banner, _ := os.ReadFile(p.out)
	for _, want := range []string{"20 simulated CPEs", "http://" + api, "devices list", "edges list", "cluster status", "data/cli.yaml"} {
		if !strings.Contains(string(banner), want) {
			t.Errorf("the ready banner lacks %q:\n%s", want, banner)
		}
	}
	conf := filepath.Join(dir, "data", "cli.yaml")
	if st, err := os.Stat(conf); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, want mode 0600", conf, err)
	}
	token := cliToken(t, conf)

	edges := fleetCmd(t, bin, dir, "edges", "list")
	if !regexp.MustCompile(`(?m)^edge1 +\S+ +up `).MatchString(edges) {
		t.Fatalf("edges list: want edge1 with its link up:\n%s", edges)
	}
	status := fleetCmd(t, bin, dir, "cluster", "status")
	if !strings.Contains(status, "core1") || !strings.Contains(status, raft) || !strings.Contains(status, "leader") {
		t.Fatalf("cluster status: want core1 at %s, leader:\n%s", raft, status)
	}
	useToken(api, token)
	devs := devicesAt(t, api)
	if len(devs) != 20 {
		t.Fatalf("the core lists %d devices, want 20", len(devs))
	}
	for _, d := range devs {
		if d.Edge != "edge1" {
			t.Fatalf("device %s has home edge %q, want edge1", d.ID, d.Edge)
		}
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "data", "ca", "ca.crt"))

	if code := p.interrupt(t, 15*time.Second); code != 0 {
		t.Fatalf("edgeacs dev exited with %d after SIGINT, want 0", code)
	}

	p = startDev(t, bin, dir, 2, args...)
	if got := cliToken(t, conf); got != token {
		t.Fatalf("the second start wrote token %q, want the first's", got)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "data", "ca", "ca.crt")); len(ca) == 0 || string(ca2) != string(ca) {
		t.Fatal("the second start made a new CA")
	}
	again := devicesAt(t, api)
	if len(again) != 20 {
		t.Fatalf("after a restart the core lists %d devices, want the same 20", len(again))
	}
	for i := range again {
		if again[i].ID != devs[i].ID || !again[i].Registered.Equal(devs[i].Registered) {
			t.Fatalf("device %d after a restart: %s registered %v, want %s registered %v (the same record)",
				i, again[i].ID, again[i].Registered, devs[i].ID, devs[i].Registered)
		}
	}
	if out := fleetCmd(t, bin, dir, "edges", "list"); !strings.Contains(out, "edge1") {
		t.Fatalf("edges list after a restart:\n%s", out)
	}
	if code := p.interrupt(t, 15*time.Second); code != 0 {
		t.Fatalf("the second run exited with %d after SIGINT, want 0", code)
	}
}

type devDevice struct {
	ID         string    `json:"_id"`
	Edge       string    `json:"edge"`
	Registered time.Time `json:"registered"`
}

func devicesAt(t *testing.T, api string) []devDevice {
	t.Helper()
	var devs []devDevice
	code, err := coreHTTP("GET", "http://"+api+"/api/v1/devices", "", &devs)
	if err != nil || code != 200 {
		t.Fatalf("GET devices: %d %v", code, err)
	}
	return devs
}

// cliToken reads the token from a cli.yaml.
func cliToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok && strings.HasPrefix(v, "eacs_") {
			return v
		}
	}
	t.Fatalf("no token in %s:\n%s", path, b)
	return ""
}
