//go:build unix

package main

// BenchmarkUplinkDrain with EDGEACS_BENCH_CORE=proc runs the three core
// nodes in a child process (this test binary again, running
// TestBenchCoreChild) instead of in the benchmark's own: in a deployment
// the core runs on other machines, and in one process the cluster's CPU
// and the edge's are one pool the Go scheduler shares out as it likes.
// EDGEACS_BENCH_CORE_CPUS=LIST starts the child under `taskset -c LIST`;
// start the benchmark itself under taskset too, so that the edge and the
// CPE load keep to the other CPUs:
//
//	EDGEACS_BENCH_CORE=proc EDGEACS_BENCH_CORE_CPUS=1 taskset -c 0 \
//	  ./edgeacs.test -test.run '^$' -test.bench UplinkDrain/fsync -test.benchtime 1x
//
// The idle session rate is measured in the same configuration. The
// child's CPU time (/proc/<pid>/stat) over the drain is reported as
// core-cpu-cores; cpu-cores is then the edge and the CPEs alone.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// procClusterInfo is what the child tells the benchmark, as a JSON file.
type procClusterInfo struct {
	CADir      string `json:"caDir"`
	LeaderSync string `json:"leaderSync"`
	LeaderAPI  string `json:"leaderAPI"`
	// Down is the fleet-wide downlink (fleet.CBOR of []fleet.DownRecord)
	// the edge stores before its link comes up (benchCluster.edgeStart).
	Down []byte `json:"down"`
}

type procCluster struct {
	info procClusterInfo
	down []fleet.DownRecord
	cmd  *exec.Cmd
}

// TestBenchCoreChild is the cluster process of BenchmarkUplinkDrain with
// EDGEACS_BENCH_CORE=proc; it does nothing in a normal test run.
func TestBenchCoreChild(t *testing.T) {
	out := os.Getenv("EDGEACS_BENCH_CORE_CHILD")
	if out == "" {
		t.Skip("the core cluster process of BenchmarkUplinkDrain with EDGEACS_BENCH_CORE=proc")
	}
	defer profileSide("core")()
	c := startBenchCluster(t, os.Getenv("EDGEACS_BENCH_CORE_NOSYNC") == "1", benchLog())
	coreSync, caDir, down := c.edgeStart(t)
	enc, err := fleet.CBOR.Enc.Marshal(down)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(procClusterInfo{CADir: caDir, LeaderSync: coreSync, LeaderAPI: c.leader.node.APIAddr(), Down: enc})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".tmp", raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		t.Fatal(err)
	}
	// Until the benchmark closes our stdin (or dies).
	io.Copy(io.Discard, os.Stdin)
}

// startProcCluster starts the child and waits for its cluster; the
// cleanup closes its stdin, which stops it.
func startProcCluster(b *testing.B, noSync bool) *procCluster {
	b.Helper()
	dir := b.TempDir()
	out := filepath.Join(dir, "cluster.json")
	name, args := os.Args[0], []string{"-test.run", "^TestBenchCoreChild$", "-test.bench", "^$", "-test.timeout", "60m"}
	if cpus := os.Getenv("EDGEACS_BENCH_CORE_CPUS"); cpus != "" {
		name, args = "taskset", append([]string{"-c", cpus, name}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "EDGEACS_BENCH_CORE_CHILD="+out)
	if noSync {
		cmd.Env = append(cmd.Env, "EDGEACS_BENCH_CORE_NOSYNC=1")
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the core cluster process: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				b.Logf("core cluster process: %v\n%s", err, logs.String())
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			b.Logf("core cluster process killed after a minute of stopping\n%s", logs.String())
		}
	})
	pc := &procCluster{cmd: cmd}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, err := os.ReadFile(out)
		if err == nil {
			if err := json.Unmarshal(raw, &pc.info); err != nil {
				b.Fatal(err)
			}
			break
		}
		select {
		case err := <-exited:
			b.Fatalf("core cluster process exited: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("no core cluster after 2m\n%s", logs.String())
		}
	}
	if err := fleet.CBOR.Dec.Unmarshal(pc.info.Down, &pc.down); err != nil {
		b.Fatal(err)
	}
	return pc
}

// cpuTime is the child's user and system CPU time so far.
func (pc *procCluster) cpuTime() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pc.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in
	// parentheses: state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// procAcked is the edge's uplinkAcked as the cluster's API says (0 until
// the core has heard of the edge).
func procAcked(b *testing.B, apiAddr string) uint64 {
	e, _ := findBenchEdge(b, apiAddr)
	return e.UplinkAcked
}
