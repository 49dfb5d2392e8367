package core

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/hashicorp/raft"
)

// kinds lists the records' kinds, for compact comparisons.
func kinds(rs []fleet.DownRecord) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.Kind.String())
	}
	return b.String()
}

// TestDispatchOnCreateAndFirstHome checks that a task for a homed device
// goes to its edge at once (with Wake when asked), and that a task for a
// device with no home waits and goes to the edge that first homes it,
// which wakes the device.
func TestDispatchOnCreateAndFirstHome(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("homed", "e1")})
	tk := newTask("homed", fleet.TaskReboot)
	mustApply(t, f, Command{Op: OpCreateTasks, Wake: true, Tasks: []*fleet.Task{tk}})
	got, _ := f.Task(tk.ID)
	if got.Edge != "e1" {
		t.Fatalf("task edge %q, want e1", got.Edge)
	}
	rs := ownLog(t, f, "e1")
	if len(rs) != 1 || rs[0].Kind != fleet.DownTask || rs[0].Seq != 1 || !rs[0].Wake || rs[0].Shared ||
		rs[0].Task == nil || rs[0].Task.ID != tk.ID || rs[0].Task.Edge != "e1" || rs[0].Device != "homed" || !rs[0].Time.Equal(t0) {
		t.Fatalf("e1 log: %+v", rs)
	}
	if err := rs[0].Validate(); err != nil {
		t.Fatal(err)
	}

	// Pre-registered through the API, no home yet: the task waits.
	mustApply(t, f, Command{Op: OpPutDevice, Device: &Device{ID: "homeless"}})
	waiting := newTask("homeless", fleet.TaskFactoryReset)
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{waiting}})
	if got, _ := f.Task(waiting.ID); got.Edge != "" {
		t.Fatalf("task for a homeless device dispatched to %q", got.Edge)
	}
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("homeless", "e2")})
	if got, _ := f.Task(waiting.ID); got.Edge != "e2" || got.Status != fleet.StatusPending {
		t.Fatalf("task after first home: %+v", got)
	}
	// With Wake: the device has just shown up with work waiting for it.
	if rs := ownLog(t, f, "e2"); kinds(rs) != "task" || rs[0].Task.ID != waiting.ID || !rs[0].Wake {
		t.Fatalf("e2 log: %+v", rs)
	}
	// Another delta from the same edge dispatches nothing more.
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("homeless", "e2", "A.B", "1")})
	if rs := ownLog(t, f, "e2"); len(rs) != 1 {
		t.Fatalf("e2 log after a second delta: %s", kinds(rs))
	}
}

// TestMoveWithDropThenDispatch checks the no-double-dispatch rule: when a
// device moves from A to B, A's task gets a DownDrop and stays A's until A
// confirms the drop; then, and only then, it goes to B.
func TestMoveWithDropThenDispatch(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, up("A", 1, record(t, informAt("dev1", "A", t0))))
	atA := newTask("dev1", fleet.TaskReboot)
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{atA}})
	mustApply(t, f, up("B", 1, record(t, informAt("dev1", "B", t0.Add(time.Minute)))))

	if d, _ := f.Device("dev1", false); d.Edge != "B" {
		t.Fatalf("device home %q, want B", d.Edge)
	}
	if got, _ := f.Task(atA.ID); got.Edge != "A" {
		t.Fatalf("moving task assigned to %q before A confirmed", got.Edge)
	}
	rs := ownLog(t, f, "A")
	if kinds(rs) != "task drop" || rs[1].TaskID != atA.ID || rs[1].Device != "dev1" {
		t.Fatalf("A log: %+v", rs)
	}
	if err := rs[1].Validate(); err != nil {
		t.Fatal(err)
	}
	if rs := ownLog(t, f, "B"); len(rs) != 0 {
		t.Fatalf("B got %s before A confirmed the drop", kinds(rs))
	}
	// A stale delta from A meanwhile changes nothing about the task.
	mustApply(t, f, up("A", 2, record(t, informAt("dev1", "A", t0.Add(30*time.Second)))))
	if rs := ownLog(t, f, "B"); len(rs) != 0 {
		t.Fatalf("B log after a stale delta: %s", kinds(rs))
	}

	mustApply(t, f, up("A", 3, record(t, &fleet.TaskDrop{Task: atA.ID, Device: "dev1", Edge: "A"})))
	got, _ := f.Task(atA.ID)
	if got.Edge != "B" || got.Status != fleet.StatusPending {
		t.Fatalf("task after A's drop: %+v", got)
	}
	rs = ownLog(t, f, "B")
	if kinds(rs) != "task" || rs[0].Task.ID != atA.ID || rs[0].Task.Edge != "B" {
		t.Fatalf("B log: %+v", rs)
	}
	// The same confirmation again (a new record, as after an edge restart)
	// is stale: nothing more goes anywhere.
	mustApply(t, f, up("A", 4, record(t, &fleet.TaskDrop{Task: atA.ID, Device: "dev1", Edge: "A"})))
	if rs := ownLog(t, f, "B"); len(rs) != 1 {
		t.Fatalf("B log after a repeated drop: %s", kinds(rs))
	}
	if rs := ownLog(t, f, "A"); len(rs) != 2 {
		t.Fatalf("A log after a repeated drop: %s", kinds(rs))
	}
	// B runs it; B's result is taken.
	done := *got
	done.Status, done.Attempts = fleet.StatusDone, 1
	mustApply(t, f, up("B", 2, record(t, &done)))
	if got, _ := f.Task(atA.ID); got.Status != fleet.StatusDone || got.Edge != "B" {
		t.Fatalf("task after B's result: %+v", got)
	}
}

// TestMoveWhereOldEdgeReportsResult checks that when the old edge had
// already run the task, its result is final and nothing goes to the new
// edge, even if a drop confirmation arrives after it.
func TestMoveWhereOldEdgeReportsResult(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, up("A", 1, record(t, informAt("dev1", "A", t0))))
	tk := newTask("dev1", fleet.TaskReboot)
	never := newTask("dev1", fleet.TaskFactoryReset)
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{tk, never}})
	mustApply(t, f, up("B", 1, record(t, informAt("dev1", "B", t0.Add(time.Minute)))))
	if rs := ownLog(t, f, "A"); kinds(rs) != "task task drop drop" {
		t.Fatalf("A log: %s", kinds(rs))
	}
	stored, _ := f.Task(tk.ID)
	done := *stored
	done.Status, done.Attempts, done.Result = fleet.StatusDone, 1, &fleet.TaskResult{Status: 1}
	mustApply(t, f, up("A", 2, record(t, &done)))
	// A drop confirmation cannot follow a result for the same task; if a
	// confused edge sent one, it would change nothing.
	mustApply(t, f, up("A", 3, record(t, &fleet.TaskDrop{Task: tk.ID, Device: "dev1", Edge: "A"})))
	got, _ := f.Task(tk.ID)
	if got.Status != fleet.StatusDone || got.Edge != "A" || got.Result == nil || got.Result.Status != 1 {
		t.Fatalf("task after A's result: %+v", got)
	}
	// The other task was still pending at A: its drop moves it.
	mustApply(t, f, up("A", 4, record(t, &fleet.TaskDrop{Task: never.ID, Device: "dev1", Edge: "A"})))
	rs := ownLog(t, f, "B")
	if kinds(rs) != "task" || rs[0].TaskID != never.ID {
		t.Fatalf("B log: %+v", rs)
	}
	// The device moves back to A before B ran it: B gets a drop, and the
	// finished task goes nowhere.
	mustApply(t, f, up("A", 5, record(t, informAt("dev1", "A", t0.Add(2*time.Minute)))))
	if rs := ownLog(t, f, "B"); kinds(rs) != "task drop" || rs[1].TaskID != never.ID {
		t.Fatalf("B log after the move back: %+v", rs)
	}
	if rs := ownLog(t, f, "A"); kinds(rs) != "task task drop drop" {
		t.Fatalf("A log after the move back: %s", kinds(rs))
	}
}

// TestCancelSendsDownCancel checks that cancelling a dispatched task tells
// its edge, and that a result the edge sends anyway does not bring the
// task back.
func TestCancelSendsDownCancel(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	tk := newTask("dev1", fleet.TaskReboot)
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{tk}})
	mustApply(t, f, Command{Op: OpCancelTask, TaskID: tk.ID})
	rs := ownLog(t, f, "e1")
	if kinds(rs) != "task cancel" || rs[1].TaskID != tk.ID || rs[1].Device != "dev1" {
		t.Fatalf("e1 log: %+v", rs)
	}
	if err := rs[1].Validate(); err != nil {
		t.Fatal(err)
	}
	late := *tk
	late.Status, late.Edge = fleet.StatusDone, "e1"
	mustApply(t, f, up("e1", 1, record(t, &late)))
	if _, err := f.Task(tk.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled task came back: %v", err)
	}
	// Deleting a device cancels its dispatched tasks at the edge too.
	other := newTask("dev1", fleet.TaskFactoryReset)
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{other}})
	mustApply(t, f, Command{Op: OpDeleteDevice, Name: "dev1"})
	if rs := ownLog(t, f, "e1"); kinds(rs) != "task cancel task cancel" || rs[3].TaskID != other.ID {
		t.Fatalf("e1 log after device delete: %s", kinds(rs))
	}
}

// TestFleetChangesGoToSharedLog checks presets, files and revocations go
// to the fleet-wide log, in order, and how Downlink pages both logs.
func TestFleetChangesGoToSharedLog(t *testing.T) {
	f := mustFSM(t)
	p := &fleet.Preset{Name: "inform", Provisions: [][]any{{"refresh", "A"}}}
	fm := &fleet.FileMeta{Name: "fw.bin", FileType: "1 Firmware Upgrade Image", Size: 3, SHA256: strings.Repeat("ab", 32), Uploaded: t0}
	mustApply(t, f, Command{Op: OpPutPreset, Preset: p}, Command{Op: OpPutFileMeta, File: fm})
	mustApply(t, f, Command{Op: OpDeletePreset, Name: "inform"}, Command{Op: OpDeleteFileMeta, Name: "fw.bin"})
	// A refused change appends nothing.
	applyAt(t, f, Command{Op: OpDeletePreset, Name: "inform"})
	rs, err := f.Downlink("e9", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if kinds(rs) != "preset file preset-delete file-delete" {
		t.Fatalf("shared log: %s", kinds(rs))
	}
	for i, r := range rs {
		if !r.Shared || r.Seq != uint64(i+1) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if rs[0].Preset.Name != "inform" || rs[1].File.SHA256 != fm.SHA256 || rs[2].Name != "inform" || rs[3].Name != "fw.bin" {
		t.Fatalf("shared records: %+v", rs)
	}
	// Own records come first, then shared ones, up to max.
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e9")})
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{newTask("dev1", fleet.TaskReboot), newTask("dev1", fleet.TaskReboot)}})
	rs, _ = f.Downlink("e9", 0, 1, 3)
	if kinds(rs) != "task task file" || rs[2].Seq != 2 {
		t.Fatalf("page: %+v", rs)
	}
	rs, _ = f.Downlink("e9", 2, 3, 10)
	if kinds(rs) != "file-delete" {
		t.Fatalf("second page: %s", kinds(rs))
	}
	if _, err := f.Downlink("bad/edge", 0, 0, 1); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad edge name: %v", err)
	}
}

// TestAckPrunesEdgeLog checks that an ack stores both positions (only
// ever forward) and deletes the edge's log up to its position, a bounded
// number of records per ack.
func TestAckPrunesEdgeLog(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")}, Command{Op: OpDeviceDelta, Delta: delta("dev2", "e2")})
	n := downPruneMax + 100
	tasks := make([]*fleet.Task, n)
	for i := range tasks {
		tasks[i] = newTask("dev1", fleet.TaskReboot)
	}
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: tasks})
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{newTask("dev2", fleet.TaskReboot)}})
	if rs := ownLog(t, f, "e1"); len(rs) != n {
		t.Fatalf("e1 log holds %d records, want %d", len(rs), n)
	}
	mustApply(t, f, Command{Op: OpEdgeAck, Name: "e1", Seq: 3, SharedSeq: 2})
	e := edgeRecord(t, f, "e1")
	if e.DownlinkAcked != 3 || e.SharedAcked != 2 {
		t.Fatalf("edge after ack: %+v", e)
	}
	rs := ownLog(t, f, "e1")
	if len(rs) != n-3 || rs[0].Seq != 4 {
		t.Fatalf("after ack 3: %d records from %d", len(rs), rs[0].Seq)
	}
	// Older acks change nothing.
	mustApply(t, f, Command{Op: OpEdgeAck, Name: "e1", Seq: 1, SharedSeq: 1})
	if e := edgeRecord(t, f, "e1"); e.DownlinkAcked != 3 || e.SharedAcked != 2 {
		t.Fatalf("edge after an older ack: %+v", e)
	}
	// Acking everything deletes at most downPruneMax now, the rest with
	// the next ack.
	mustApply(t, f, Command{Op: OpEdgeAck, Name: "e1", Seq: uint64(n), SharedSeq: 2})
	if rs := ownLog(t, f, "e1"); len(rs) != n-3-downPruneMax {
		t.Fatalf("after a full ack: %d records left, want %d", len(rs), n-3-downPruneMax)
	}
	if rs, _ := f.Downlink("e1", uint64(n), math.MaxUint64, 0); len(rs) != 0 {
		t.Fatalf("records above the ack: %d", len(rs))
	}
	mustApply(t, f, Command{Op: OpEdgeAck, Name: "e1", Seq: uint64(n)})
	if rs := ownLog(t, f, "e1"); len(rs) != 0 {
		t.Fatalf("after the second ack: %d records left", len(rs))
	}
	// Another edge's log is untouched; new records continue the sequence.
	if rs := ownLog(t, f, "e2"); len(rs) != 1 {
		t.Fatalf("e2 log: %d records", len(rs))
	}
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{newTask("dev1", fleet.TaskReboot)}})
	if rs := ownLog(t, f, "e1"); len(rs) != 1 || rs[0].Seq != uint64(n+1) {
		t.Fatalf("e1 log after a new task: %+v", rs)
	}
}

// TestRevokeEdge checks the revocation list: stored once, announced on
// the fleet-wide log, and the edge's uplink refused (not consumed).
func TestRevokeEdge(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, up("e1", 1, record(t, informAt("dev1", "e1", t0))))
	if r, err := f.Revoked("e1"); err != nil || r {
		t.Fatalf("revoked before: %v %v", r, err)
	}
	mustApply(t, f, Command{Op: OpRevokeEdge, Name: "e1"})
	mustApply(t, f, Command{Op: OpRevokeEdge, Name: "e1"})
	if r, err := f.Revoked("e1"); err != nil || !r {
		t.Fatalf("revoked after: %v %v", r, err)
	}
	if r, _ := f.Revoked("e2"); r {
		t.Fatal("e2 revoked")
	}
	rs, _ := f.Downlink("e2", 0, 0, 0)
	if kinds(rs) != "revoke" || rs[0].Name != "e1" || !rs[0].Shared {
		t.Fatalf("shared log: %+v", rs)
	}
	e := edgeRecord(t, f, "e1")
	if !e.Revoked.Equal(t0) || e.UplinkAcked != 1 {
		t.Fatalf("edge record: %+v", e)
	}
	r := applyAt(t, f, up("e1", 2, record(t, informAt("dev2", "e1", t0))))[0]
	if !errors.Is(r.Err, ErrRevoked) {
		t.Fatalf("uplink from a revoked edge: %+v", r)
	}
	if e := edgeRecord(t, f, "e1"); e.UplinkAcked != 1 || e.Rejected != 0 {
		t.Fatalf("revoked edge's uplink consumed: %+v", e)
	}
	if _, err := f.Device("dev2", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked edge's delta applied: %v", err)
	}
	if r := applyAt(t, f, Command{Op: OpRevokeEdge, Name: "bad\x01"})[0]; !errors.Is(r.Err, ErrBadRequest) {
		t.Fatalf("revoke of a bad name: %v", r.Err)
	}
}

// fakeFuture is an already-applied raft.ApplyFuture.
type fakeFuture struct{ resp any }

func (f fakeFuture) Error() error  { return nil }
func (f fakeFuture) Response() any { return f.resp }
func (f fakeFuture) Index() uint64 { return 0 }

// TestBatcherKeepsGroupsContiguous checks ApplyAll's promise: a group's
// commands land in one entry, contiguous and in order, however writers
// interleave, and entries stay within MaxBatch unless one group is larger.
func TestBatcherKeepsGroupsContiguous(t *testing.T) {
	var mu sync.Mutex
	var entries [][]Command
	b := NewBatcher(func(data []byte) raft.ApplyFuture {
		cmds, err := DecodeCommands(data)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		entries = append(entries, cmds)
		mu.Unlock()
		return fakeFuture{resp: make([]Result, len(cmds))}
	}, BatcherConfig{MaxBatch: 64, MaxDelay: time.Millisecond})
	defer b.Close()
	const writers = 16
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range 20 {
				size := 1 + (w*7+g*13)%90 // some above MaxBatch
				cmds := make([]Command, size)
				for i := range cmds {
					cmds[i] = Command{Op: OpUplink, Edge: fmt.Sprintf("w%d", w), Name: fmt.Sprint(g), Seq: uint64(i + 1)}
				}
				rs, err := b.ApplyAll(context.Background(), cmds)
				if err != nil || len(rs) != size {
					t.Errorf("writer %d group %d: %d results, %v", w, g, len(rs), err)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, e := range entries {
		for i := 0; i < len(e); {
			c := e[i]
			id := c.Edge + "/" + c.Name
			if seen[id] || c.Seq != 1 {
				t.Fatalf("group %s split or out of order (starts at %d)", id, c.Seq)
			}
			seen[id] = true
			j := i + 1
			for j < len(e) && e[j].Edge == c.Edge && e[j].Name == c.Name {
				if e[j].Seq != e[j-1].Seq+1 {
					t.Fatalf("group %s out of order", id)
				}
				j++
			}
			if len(e) > 64 && j-i != len(e) {
				t.Fatalf("entry of %d commands holds more than one oversized group", len(e))
			}
			i = j
		}
	}
	if len(seen) != writers*20 {
		t.Fatalf("%d groups applied, want %d", len(seen), writers*20)
	}
}

// TestSyncBackend drives the core's side of the sync contracts through a
// one-node cluster: uplink (resend, restart), downlink and acks, leader
// and sync address, edge health in the API, revocation over the API, and
// a task created with ?connection_request&wait that returns when the
// edge's result lands.
func TestSyncBackend(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.Bootstrap, cfg.SyncAddr = true, "0.0.0.0:7443"
	n, _, _ := runNode(t, cfg)
	waitFor(t, "leadership", 15*time.Second, n.IsLeader)
	ctx := context.Background()
	// The founder's admin token is the first shared record (sequence 1);
	// waiting for it keeps the logs below in a known order.
	waitFor(t, "the bootstrap admin token", 15*time.Second, n.fsm.HasTokens)

	if lead, addr := n.Leader(); !lead || addr != "127.0.0.1:7443" {
		t.Fatalf("Leader() = %v %q", lead, addr)
	}
	waitFor(t, "the leader to register its sync address", 10*time.Second, func() bool {
		info, err := n.fsm.Node("n1")
		return err == nil && info.SyncAddr == "127.0.0.1:7443"
	})
	n.SetSyncAddr("127.0.0.1:9443")
	waitFor(t, "the new sync address to be registered", 10*time.Second, func() bool {
		info, err := n.fsm.Node("n1")
		return err == nil && info.SyncAddr == "127.0.0.1:9443"
	})
	if err := n.VerifyLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := n.EdgeState("e1"); err != nil || st != (struct{ UplinkAcked, DownlinkAcked, SharedAcked uint64 }{}) {
		t.Fatalf("state of an unknown edge: %+v %v", st, err)
	}

	// Uplink: one batch registers a device; a resend changes nothing.
	recs := []fleet.SeqRecord{
		{Seq: 1, Data: record(t, informAt("dev1", "e1", t0, "A.B", "1"))},
		{Seq: 2, Data: []byte("junk")},
		{Seq: 3, Data: record(t, informAt("dev1", "e1", t0.Add(time.Second), "A.B", "2"))},
	}
	for range 2 {
		acked, err := n.ApplyUplink(ctx, "e1", recs)
		if err != nil || acked != 3 {
			t.Fatalf("ApplyUplink: %d %v", acked, err)
		}
	}
	if e, _ := n.fsm.Edge("e1"); e.Rejected != 1 {
		t.Fatalf("edge after uplink: %+v", e)
	}
	if _, err := n.ApplyUplink(ctx, "e1", []fleet.SeqRecord{{Seq: 5}, {Seq: 4}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("decreasing sequences: %v", err)
	}
	// A batch submitted behind one that never made it (sequence 4, lost
	// on its way into the log) is refused and changes nothing; so is one
	// that does not go on from its predecessor.
	wait, err := n.SubmitUplink(ctx, "e1", 4, []fleet.SeqRecord{{Seq: 5, Data: record(t, informAt("dev9", "e1", t0))}})
	if err != nil {
		t.Fatal(err)
	}
	if acked, err := wait(ctx); !errors.Is(err, ErrUplinkGap) {
		t.Fatalf("batch behind a lost one: acked %d, %v", acked, err)
	}
	if e, _ := n.fsm.Edge("e1"); e.UplinkAcked != 3 || e.Rejected != 1 {
		t.Fatalf("edge after a refused batch: %+v", e)
	}
	if _, err := n.SubmitUplink(ctx, "e1", 6, []fleet.SeqRecord{{Seq: 6}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("batch not above its predecessor: %v", err)
	}

	// A task created through the API with ?connection_request&wait goes
	// to e1 with Wake and the call returns when e1's result is applied.
	type answer struct {
		code int
		task fleet.Task
	}
	ans := make(chan answer, 1)
	go func() {
		var tk fleet.Task
		code := do(t, "POST", api(&testNode{Node: n}, "/devices/dev1/tasks?connection_request&wait=20s"), `{"name":"reboot"}`, &tk)
		ans <- answer{code, tk}
	}()
	// The fleet-wide log a founded cluster starts with: its default
	// presets and the admin token.
	founded := uint64(len(defaultPresets()) + 1)
	var down []fleet.DownRecord
	waitFor(t, "the task on e1's downlink", 10*time.Second, func() bool {
		var err error
		down, err = n.Downlink("e1", 0, founded, 10)
		return err == nil && len(down) == 1
	})
	if down[0].Kind != fleet.DownTask || !down[0].Wake || down[0].Task.Edge != "e1" {
		t.Fatalf("downlink: %+v", down)
	}
	notify := n.DownlinkNotify()
	result := *down[0].Task
	result.Status, result.Attempts = fleet.StatusDone, 1
	if acked, err := n.ApplyUplink(ctx, "e1", []fleet.SeqRecord{{Seq: 4, Data: record(t, &result)}}); err != nil || acked != 4 {
		t.Fatalf("result uplink: %d %v", acked, err)
	}
	select {
	case a := <-ans:
		if a.code != http.StatusOK || a.task.Status != fleet.StatusDone || a.task.ID != result.ID {
			t.Fatalf("?wait answered %d %+v", a.code, a.task)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("?wait did not return when the result landed")
	}
	select {
	case <-notify:
	default:
		t.Fatal("DownlinkNotify was not signalled by an apply")
	}
	if err := n.AckDownlink(ctx, "e1", 1, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.EdgeState("e1"); st.UplinkAcked != 4 || st.DownlinkAcked != 1 {
		t.Fatalf("edge state: %+v", st)
	}
	if rs, _ := n.Downlink("e1", 0, founded, 10); len(rs) != 0 {
		t.Fatalf("acked records still served: %+v", rs)
	}

	// Health shows in the edge list, with the replicated record.
	n.EdgeHealth("e1", fleet.EdgeHealth{SessionsPerSec: 12.5, OutboxLen: 7}, true)
	n.EdgeHealth("e9", fleet.EdgeHealth{Devices: 3}, false)
	var es []struct {
		ID          string            `json:"id"`
		Status      string            `json:"status"`
		Connected   bool              `json:"connected"`
		Health      *fleet.EdgeHealth `json:"health"`
		UplinkAcked uint64            `json:"uplinkAcked"`
		Rejected    uint64            `json:"rejected"`
	}
	if code := do(t, "GET", api(&testNode{Node: n}, "/edges"), nil, &es); code != 200 || len(es) != 2 {
		t.Fatalf("edges: %d %+v", code, es)
	}
	if e := es[0]; e.ID != "e1" || !e.Connected || e.Status != "online" || e.Health == nil || e.Health.OutboxLen != 7 || e.UplinkAcked != 4 || e.Rejected != 1 {
		t.Fatalf("e1 view: %+v", e)
	}
	if e := es[1]; e.ID != "e9" || e.Connected || e.Health == nil || e.Health.Devices != 3 {
		t.Fatalf("e9 view: %+v", e)
	}

	// Revocation over the API.
	var ev struct {
		ID      string    `json:"id"`
		Status  string    `json:"status"`
		Revoked time.Time `json:"revoked"`
	}
	if code := do(t, "POST", api(&testNode{Node: n}, "/edges/e1/revoke"), nil, &ev); code != 200 || ev.ID != "e1" || ev.Revoked.IsZero() || ev.Status != "revoked" {
		t.Fatalf("revoke: %d %+v", code, ev)
	}
	if code := do(t, "POST", api(&testNode{Node: n}, "/edges/bad%7Fname/revoke"), nil, nil); code != 400 {
		t.Fatalf("revoke of a bad name: %d", code)
	}
	if !n.Revoked("e1") || n.Revoked("e2") {
		t.Fatal("Revoked() disagrees with the API")
	}
	if _, err := n.ApplyUplink(ctx, "e1", []fleet.SeqRecord{{Seq: 5, Data: record(t, informAt("dev2", "e1", t0))}}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("uplink of a revoked edge: %v", err)
	}
	if rs, _ := n.Downlink("e2", 0, 0, 10); kinds(rs) != "preset preset token revoke" {
		t.Fatalf("e2 downlink: %s", kinds(rs))
	}

	// After a restart the log replays onto the stored state: same counts.
	devs, tasks, applied := countDevices(t, n.fsm), countTasks(t, n.fsm), n.fsm.AppliedIndex()
	cfg.RaftAddr, cfg.APIAddr = n.RaftAddr(), n.APIAddr()
	n.Close()
	m, _, _ := runNode(t, cfg)
	waitFor(t, "the restarted node to lead and catch up", 15*time.Second, func() bool {
		return m.IsLeader() && m.fsm.AppliedIndex() > applied
	})
	if countDevices(t, m.fsm) != devs || countTasks(t, m.fsm) != tasks {
		t.Fatalf("after restart: %d devices, %d tasks; want %d, %d", countDevices(t, m.fsm), countTasks(t, m.fsm), devs, tasks)
	}
	if st, _ := m.EdgeState("e1"); st.UplinkAcked != 4 || st.DownlinkAcked != 1 {
		t.Fatalf("edge state after restart: %+v", st)
	}
}

// TestApplyUplinkConcurrentEdges checks exact counts when several edges
// drain at once, each as the sync server does (several batches submitted
// before the first is applied, each behind the one before), while other
// writers share the batcher: every record of every edge applies once, in
// order (each creates one task; a record applied after a later one would
// be dropped as a resend). A drain that fails (a leader change on a busy
// machine, or a batch refused because the one ahead of it went to the old
// leader) resumes as the sync server does: from the edge's acked
// position, on whichever node leads.
func TestApplyUplinkConcurrentEdges(t *testing.T) {
	nodes := newCluster(t, 3, func(c *Config) { c.MaxBatch = 64 })
	const edges, total, perBatch, depth = 4, 300, 50, 3
	leader := func() *testNode { return leaderOf(t, nodes) }
	var wg sync.WaitGroup
	errs := make(chan error, edges)
	stop := make(chan struct{})
	var writers sync.WaitGroup
	writers.Add(1)
	go func() { // unrelated writers, interleaving with the uplinks
		defer writers.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, n := range nodes {
				if n.IsLeader() {
					n.Apply(context.Background(), Command{Op: OpDeviceDelta, Delta: delta(fmt.Sprintf("api%d", i%50), "")})
				}
			}
		}
	}()
	for e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			edge := fmt.Sprintf("e%d", e)
			recs := make([]fleet.SeqRecord, total)
			for i := range recs {
				recs[i] = fleet.SeqRecord{Seq: uint64(i + 1), Data: record(t, edgeTask(fmt.Sprintf("%s-dev%d", edge, i%5), fleet.StatusPending))}
			}
			ctx := context.Background()
			acked, resumes := uint64(0), 0
			for acked < total {
				// Up to depth batches in flight, then their acks in order.
				var waits []func(context.Context) (uint64, error)
				var ends []uint64
				var err error
				for next := acked; len(waits) < depth && next < total; {
					batch := recs[next:min(next+perBatch, total)]
					w, serr := leader().SubmitUplink(ctx, edge, next, batch)
					if serr != nil {
						err = serr
						break
					}
					next = batch[len(batch)-1].Seq
					waits, ends = append(waits, w), append(ends, next)
				}
				for i, w := range waits {
					got, werr := w(ctx)
					if werr == nil && got < ends[i] {
						werr = fmt.Errorf("acked %d after a batch ending at %d", got, ends[i])
					}
					if werr != nil {
						err = cmp.Or(err, werr)
						break
					}
					acked = got
				}
				if err != nil {
					if resumes++; resumes > 20 || !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrUplinkGap) {
						errs <- fmt.Errorf("%s: %w", edge, err)
						return
					}
					// Resume where the (possibly new) leader says: resending
					// what it already applied changes nothing.
					st, _ := leader().EdgeState(edge)
					acked = st.UplinkAcked
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(stop)
	writers.Wait()
	for range edges {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "replication", 15*time.Second, func() bool { return clusterReady(nodes) })
	for _, n := range nodes {
		if got := countTasks(t, n.fsm); got != edges*total {
			t.Fatalf("node %s: %d tasks, want %d", n.ID(), got, edges*total)
		}
		for e := range edges {
			if st, _ := n.EdgeState(fmt.Sprintf("e%d", e)); st.UplinkAcked != total {
				t.Fatalf("node %s edge e%d: %+v", n.ID(), e, st)
			}
		}
	}
	// Followers send edges to the leader.
	f := followerOf(nodes)
	if lead, addr := f.Leader(); lead || addr != "" {
		// No sync address configured in this cluster: known leader, no address.
		t.Fatalf("follower Leader() = %v %q", lead, addr)
	}
	if _, err := f.ApplyUplink(context.Background(), "e0", []fleet.SeqRecord{{Seq: 999, Data: []byte("x")}}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("uplink on a follower: %v", err)
	}
}
