package core

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// errDiskFull is the injected storage failure.
var errDiskFull = errors.New("injected: no space left on device")

// faultOn fails every apply-path write of a key containing marker.
func faultOn(marker string) func(k []byte) error {
	return func(k []byte) error {
		if bytes.Contains(k, []byte(marker)) {
			return errDiskFull
		}
		return nil
	}
}

// TestFSMFailStop checks that a storage failure stops the FSM: the batch
// holding the failing entry is not committed (the stored applied index
// stays), the hook hears an error naming the entry and the cause, later
// batches apply nothing, snapshots are refused, and a reopened FSM holds
// exactly what was committed before.
func TestFSMFailStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fsm")
	f, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var hooked []error
	f.SetFatalHook(func(err error) { hooked = append(hooked, err) })
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("good", "e1", "A.B", "1")})
	before := f.AppliedIndex()

	f.setWriteFault(faultOn("poison"))
	enc := func(cmds ...Command) []byte {
		for i := range cmds {
			cmds[i].V, cmds[i].Time = CommandVersion, t0
		}
		b, err := EncodeCommands(cmds)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	logs := []*raft.Log{
		{Index: before + 1, Term: 3, Type: raft.LogCommand, Data: enc(Command{Op: OpDeviceDelta, Delta: delta("fine", "e1")})},
		{Index: before + 2, Term: 3, Type: raft.LogCommand, Data: enc(Command{Op: OpTag, Name: "good", Tag: "x"}, Command{Op: OpDeviceDelta, Delta: delta("poison", "e1")})},
		{Index: before + 3, Term: 3, Type: raft.LogCommand, Data: enc(Command{Op: OpDeviceDelta, Delta: delta("after", "e1")})},
	}
	out := f.ApplyBatch(logs)
	for i, o := range out {
		rs := o.([]Result)
		if len(rs) != 1 || !errors.Is(rs[0].Err, ErrApplyFailed) {
			t.Fatalf("entry %d: %+v, want ErrApplyFailed", i, rs)
		}
	}
	if len(hooked) != 1 {
		t.Fatalf("fatal hook called %d times", len(hooked))
	}
	var ae *ApplyError
	if !errors.As(hooked[0], &ae) || ae.Index != before+2 || ae.Term != 3 || ae.Op != OpDeviceDelta || !errors.Is(hooked[0], errDiskFull) {
		t.Fatalf("hook error %v (%+v)", hooked[0], ae)
	}
	if msg := hooked[0].Error(); !strings.Contains(msg, "raft entry "+itoa(int(before+2))) || !strings.Contains(msg, errDiskFull.Error()) {
		t.Fatalf("error does not name the entry and the cause: %q", msg)
	}
	if f.AppliedIndex() != before {
		t.Fatalf("applied index moved to %d, want %d", f.AppliedIndex(), before)
	}

	// Stopped: a later batch applies nothing, even with the disk fixed.
	f.setWriteFault(nil)
	out = f.ApplyBatch([]*raft.Log{{Index: before + 4, Type: raft.LogCommand, Data: enc(Command{Op: OpDeviceDelta, Delta: delta("later", "e1")})}})
	if rs := out[0].([]Result); !errors.Is(rs[0].Err, ErrApplyFailed) {
		t.Fatalf("stopped FSM applied: %+v", rs)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrApplyFailed) {
		t.Fatalf("stopped FSM snapshot: %v", err)
	}
	if len(hooked) != 1 {
		t.Fatalf("fatal hook called %d times", len(hooked))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.AppliedIndex() != before {
		t.Fatalf("reopened applied index %d, want %d", g.AppliedIndex(), before)
	}
	for _, id := range []string{"fine", "poison", "after", "later"} {
		if _, err := g.Device(id, false); !errors.Is(err, ErrNotFound) {
			t.Fatalf("device %s of the failed batch is stored: %v", id, err)
		}
	}
	d, err := g.Device("good", true)
	if err != nil || len(d.Tags) != 0 || d.Parameters["A.B"].Value != "1" {
		t.Fatalf("state before the failure: %+v %v", d, err)
	}
	// The replay raft does on restart applies the entries in order.
	out = g.ApplyBatch(logs)
	for i, o := range out {
		for _, r := range o.([]Result) {
			if r.Err != nil {
				t.Fatalf("replayed entry %d: %v", i, r.Err)
			}
		}
	}
	for _, id := range []string{"fine", "poison", "after"} {
		if _, err := g.Device(id, false); err != nil {
			t.Fatalf("replayed device %s: %v", id, err)
		}
	}
}

// runNode starts a node whose Run error the test reads: done is closed
// when Run returns, and *runErr holds what it returned.
func runNode(t *testing.T, cfg Config) (n *Node, done <-chan struct{}, runErr *error) {
	t.Helper()
	n, err := New(cfg, testLogger())
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	runErr = new(error)
	go func() {
		defer close(ch)
		*runErr = n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-ch
	})
	return n, ch, runErr
}

// TestNodeStopsOnStorageFailure checks the node's side of fail-stop: the
// FSM's failure shuts the node down by itself, Run returns an error that
// names the entry and the cause, the write's proposer gets an error, and
// after a restart the node replays the entry and holds everything.
func TestNodeStopsOnStorageFailure(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.Bootstrap = true
	n, done, runErr := runNode(t, cfg)
	if _, err := n.WaitForLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leadership", 10*time.Second, n.IsLeader)
	ctx := context.Background()
	if r := n.Apply(ctx, Command{Op: OpDeviceDelta, Delta: delta("before", "e1", "A.B", "1")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	n.fsm.setWriteFault(faultOn("poison"))
	r := n.Apply(ctx, Command{Op: OpDeviceDelta, Delta: delta("poison", "e1")})
	if !errors.Is(r.Err, ErrApplyFailed) {
		t.Fatalf("write hitting the failure: %v", r.Err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("node did not stop after the FSM failed")
	}
	var ae *ApplyError
	if err := *runErr; !errors.As(err, &ae) || !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "raft entry") {
		t.Fatalf("Run returned %v", err)
	}
	if r := n.Apply(ctx, Command{Op: OpDeviceDelta, Delta: delta("late", "e1")}); r.Err == nil {
		t.Fatal("stopped node accepted a write")
	}

	cfg.RaftAddr, cfg.APIAddr = n.RaftAddr(), n.APIAddr()
	m, _, _ := runNode(t, cfg)
	waitFor(t, "the restarted node to replay the failed entry", 15*time.Second, func() bool {
		_, err := m.fsm.Device("poison", false)
		return err == nil
	})
	if m.fsm.AppliedIndex() < ae.Index {
		t.Fatalf("applied %d, failed entry was %d", m.fsm.AppliedIndex(), ae.Index)
	}
	d, err := m.fsm.Device("before", true)
	if err != nil || d.Parameters["A.B"].Value != "1" {
		t.Fatalf("state before the failure after restart: %+v %v", d, err)
	}
}
