package raftstore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The crash tests re-exec the test binary as a child that writes to a store
// and dies without Close; the parent then reopens the directory.
const (
	envCrashDir  = "RAFTSTORE_CRASH_DIR"
	envCrashMode = "RAFTSTORE_CRASH_MODE"
)

// TestCrashChild is the child half; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("only runs as the child of a crash test")
	}
	s, err := Open(dir, Options{SyncWrites: true, Logger: quietLogger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		fmt.Fprintln(os.Stderr, "set:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for next := uint64(1); ; next += 16 {
		logs := testLogs(next, next+15)
		if err := s.StoreLogs(logs); err != nil {
			fmt.Fprintln(os.Stderr, "store:", err)
			os.Exit(2)
		}
		// Only now is the batch acknowledged to the parent.
		fmt.Fprintln(out, next+15)
		out.Flush()
		if os.Getenv(envCrashMode) == "exit" && next+15 >= 256 {
			os.Exit(0) // no Close: the deferred work Badger does on Close never runs
		}
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	cases := []struct {
		name string
		mode string // "exit": os.Exit without Close; "kill": SIGKILL mid-write
	}{
		{"exit without close", "exit"},
		{"killed mid-write", "kill"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashMode+"="+c.mode)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
			defer timer.Stop()

			var acked uint64
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				n, err := strconv.ParseUint(sc.Text(), 10, 64)
				if err != nil {
					t.Fatalf("child said %q", sc.Text())
				}
				acked = n
				if c.mode == "kill" && acked >= 512 {
					_ = cmd.Process.Kill()
					break
				}
			}
			_ = cmd.Wait()
			if c.mode == "exit" && cmd.ProcessState.ExitCode() != 0 {
				t.Fatalf("child exit %d: %s", cmd.ProcessState.ExitCode(), stderr.String())
			}
			if acked == 0 {
				t.Fatalf("child acknowledged nothing; stderr: %s", stderr.String())
			}

			s := mustOpen(t, dir, Options{SyncWrites: true, Logger: quietLogger})
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if first != 1 || last < acked {
				t.Fatalf("after crash bounds = [%d, %d], want [1, >= %d]", first, last, acked)
			}
			t.Logf("child acknowledged through %d; reopened store holds [%d, %d]", acked, first, last)
			// Every entry up to the last one present must be intact: no gap,
			// no torn record, nothing acknowledged lost.
			for i := first; i <= last; i++ {
				var l raft.Log
				if err := s.GetLog(i, &l); err != nil {
					t.Fatalf("GetLog(%d) after crash: %v", i, err)
				}
				if want := fmt.Sprintf("log%d", i); string(l.Data) != want {
					t.Fatalf("GetLog(%d).Data = %q, want %q", i, l.Data, want)
				}
			}
			if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
				t.Fatalf("CurrentTerm after crash = %d, %v", v, err)
			}
			// The recovered store accepts the next entry.
			mustStore(t, s, testLogs(last+1, last+1))
		})
	}
}
