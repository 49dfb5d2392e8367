package core

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/hashicorp/raft"
	"github.com/oklog/ulid/v2"
)

// record is fleet.Marshal that fails the test.
func record(t testing.TB, v any) []byte {
	t.Helper()
	b, err := fleet.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// up is an uplink command: record data from edge under seq.
func up(edge string, seq uint64, data []byte) Command {
	return Command{Op: OpUplink, Edge: edge, Seq: seq, Record: data}
}

// informAt is a delta from edge informing at the given time.
func informAt(dev, edge string, at time.Time, params ...string) *fleet.DeviceDelta {
	d := delta(dev, edge, params...)
	d.LastInform = at
	return d
}

func edgeRecord(t *testing.T, f *FSM, id string) *Edge {
	t.Helper()
	e, err := f.Edge(id)
	if err != nil {
		t.Fatalf("edge %s: %v", id, err)
	}
	return e
}

// ownLog is the edge's own downlink log, without the fleet-wide one.
func ownLog(t *testing.T, f *FSM, edge string) []fleet.DownRecord {
	t.Helper()
	rs, err := f.Downlink(edge, 0, math.MaxUint64, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func countTasks(t *testing.T, f *FSM) int {
	t.Helper()
	ts, _, err := f.Tasks(TaskFilter{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ts)
}

func countDevices(t *testing.T, f *FSM) int {
	t.Helper()
	ds, _, err := f.Devices(DeviceFilter{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ds)
}

func edgeTask(dev string, st fleet.TaskStatus) *fleet.Task {
	return &fleet.Task{ID: ulid.Make().String(), Device: dev, Name: fleet.TaskReboot, Status: st, Timestamp: t0}
}

// TestUplinkIdempotent checks that an uplink batch applies once: a resend
// changes nothing, and neither does a replay of the log after the FSM is
// reopened (the raft entries it already holds, then a resend).
func TestUplinkIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fsm")
	f, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := edgeTask("dev1", fleet.StatusPending)
	done := *created
	done.Status, done.Attempts, done.Result = fleet.StatusDone, 1, &fleet.TaskResult{Status: 0}
	batch := []Command{
		up("e1", 1, record(t, informAt("dev1", "e1", t0, "A.B", "1"))),
		up("e1", 2, record(t, informAt("dev2", "e1", t0, "A.B", "2"))),
		up("e1", 3, record(t, created)),
		up("e1", 4, record(t, &done)),
		up("e1", 5, record(t, informAt("dev1", "e1", t0.Add(time.Minute), "A.C", "3"))),
	}
	var logs []*raft.Log
	apply := func(f *FSM, cmds ...Command) []Result {
		for i := range cmds {
			cmds[i].V, cmds[i].Time = CommandVersion, t0
		}
		b, err := EncodeCommands(cmds)
		if err != nil {
			t.Fatal(err)
		}
		l := &raft.Log{Index: f.AppliedIndex() + 1, Type: raft.LogCommand, Data: b}
		logs = append(logs, l)
		return f.Apply(l).([]Result)
	}
	for i, r := range apply(f, batch...) {
		if r.Err != nil || r.Noop {
			t.Fatalf("record %d: %+v", i+1, r)
		}
	}
	check := func(when string, f *FSM, devices int, acked uint64) {
		t.Helper()
		if n := countDevices(t, f); n != devices {
			t.Fatalf("%s: %d devices, want %d", when, n, devices)
		}
		if n := countTasks(t, f); n != 1 {
			t.Fatalf("%s: %d tasks, want 1", when, n)
		}
		tk, err := f.Task(created.ID)
		if err != nil || tk.Status != fleet.StatusDone || tk.Attempts != 1 || tk.Edge != "e1" {
			t.Fatalf("%s: task %+v %v", when, tk, err)
		}
		d, _ := f.Device("dev1", true)
		if len(d.Parameters) != 2 || !d.LastInform.Equal(t0.Add(time.Minute)) {
			t.Fatalf("%s: dev1 %+v", when, d)
		}
		if e := edgeRecord(t, f, "e1"); e.UplinkAcked != acked || e.Rejected != 0 {
			t.Fatalf("%s: edge %+v", when, e)
		}
	}
	check("first apply", f, 2, 5)
	// A resend (the edge did not get the ack) changes nothing.
	for i, r := range apply(f, batch...) {
		if r.Err != nil || !r.Noop {
			t.Fatalf("resent record %d: %+v", i+1, r)
		}
	}
	// So does a resend of a tail with new records behind it: only those apply.
	rs := apply(f, batch[3], up("e1", 6, record(t, informAt("dev3", "e1", t0))))
	if !rs[0].Noop || rs[1].Noop || rs[1].Err != nil {
		t.Fatalf("tail resend: %+v", rs)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// Raft replays its log after a restart: every entry is at or below the
	// stored applied index and is skipped.
	for _, o := range g.ApplyBatch(logs) {
		if o != nil {
			t.Fatalf("replayed entry answered %+v", o)
		}
	}
	for i, r := range apply(g, batch...) {
		if !r.Noop {
			t.Fatalf("resend after restart, record %d: %+v", i+1, r)
		}
	}
	check("after restart", g, 3, 6)
}

// TestUplinkRejectedRecordDoesNotWedge checks that records the core can
// never apply are consumed and counted, and the records behind them apply.
func TestUplinkRejectedRecordDoesNotWedge(t *testing.T) {
	f := mustFSM(t)
	badTask := edgeTask("dev1", fleet.StatusPending)
	badTask.Name = "explode"
	notULID := edgeTask("dev1", fleet.StatusPending)
	notULID.ID = "task-1"
	preset := &fleet.Preset{Name: "p", Provisions: [][]any{{"refresh", "A"}}}
	rs := applyAt(t, f,
		up("e1", 1, record(t, informAt("dev1", "e1", t0, "A.B", "1"))),
		up("e1", 2, []byte("garbage")),
		up("e1", 3, record(t, badTask)),
		up("e1", 4, record(t, notULID)),
		up("e1", 5, record(t, preset)),
		up("e1", 6, append(record(t, informAt("dev2", "e1", t0))[:2], 0xff)),
		up("e1", 7, record(t, informAt("dev3", "e1", t0))),
	)
	for i, r := range rs {
		bad := i >= 1 && i <= 5
		if bad != (r.Err != nil) {
			t.Fatalf("record %d: %v", i+1, r.Err)
		}
		if bad && !errors.Is(r.Err, ErrBadRequest) {
			t.Fatalf("record %d: %v, want a bad request", i+1, r.Err)
		}
	}
	e := edgeRecord(t, f, "e1")
	if e.UplinkAcked != 7 || e.Rejected != 5 {
		t.Fatalf("edge after rejections: %+v", e)
	}
	if n := countDevices(t, f); n != 2 {
		t.Fatalf("%d devices, want dev1 and dev3", n)
	}
	if n := countTasks(t, f); n != 0 {
		t.Fatalf("%d tasks from rejected records", n)
	}
	// A resend of the rejected ones is a no-op and is not counted again.
	for _, r := range applyAt(t, f, up("e1", 2, []byte("garbage")), up("e1", 3, record(t, badTask))) {
		if !r.Noop || r.Err != nil {
			t.Fatalf("resent rejected record: %+v", r)
		}
	}
	if e := edgeRecord(t, f, "e1"); e.UplinkAcked != 7 || e.Rejected != 5 {
		t.Fatalf("edge after resend: %+v", e)
	}
}

// TestUplinkPrevOrdersRecords checks Command.Prev: a record whose
// predecessor is not applied yet is refused with ErrUplinkGap and not
// consumed (the edge's position, its Rejected count and the state stay as
// they were), so the predecessor still applies when it comes, and the
// refused record applies when it is sent again behind it.
func TestUplinkPrevOrdersRecords(t *testing.T) {
	f := mustFSM(t)
	rec := func(dev string) []byte { return record(t, informAt(dev, "e1", t0)) }
	after := func(c Command, prev uint64) Command { c.Prev = prev; return c }
	steps := []struct {
		name    string
		cmds    []Command
		want    []string // per command: "ok", "noop" or "gap"
		acked   uint64
		devices int
	}{
		{"a record ahead of its predecessor", []Command{after(up("e1", 5, rec("d5")), 3)}, []string{"gap"}, 0, 0},
		{"the predecessor", []Command{after(up("e1", 3, rec("d3")), 0)}, []string{"ok"}, 3, 1},
		{"the record again, behind it", []Command{after(up("e1", 5, rec("d5")), 3)}, []string{"ok"}, 5, 2},
		{"a resend below the position, whatever its Prev", []Command{after(up("e1", 3, rec("d3")), 9)}, []string{"noop"}, 5, 2},
		{"one entry, out of order and then in order", []Command{
			after(up("e1", 8, rec("d8")), 7), after(up("e1", 7, rec("d7")), 5), after(up("e1", 8, rec("d8")), 7),
		}, []string{"gap", "ok", "ok"}, 8, 4},
		{"a gap the edge made (a record it skipped) is not one", []Command{after(up("e1", 10, rec("d10")), 8)}, []string{"ok"}, 10, 5},
	}
	for _, st := range steps {
		rs := applyAt(t, f, st.cmds...)
		for i, r := range rs {
			got := "ok"
			switch {
			case errors.Is(r.Err, ErrUplinkGap):
				got = "gap"
			case r.Err != nil:
				got = r.Err.Error()
			case r.Noop:
				got = "noop"
			}
			if got != st.want[i] {
				t.Fatalf("%s: record %d: %s, want %s", st.name, i, got, st.want[i])
			}
		}
		e, err := f.Edge("e1")
		if errors.Is(err, ErrNotFound) {
			e, err = &Edge{}, nil // never applied a record: no record yet
		}
		if err != nil || e.UplinkAcked != st.acked || e.Rejected != 0 {
			t.Fatalf("%s: edge %+v %v, want acked %d", st.name, e, err, st.acked)
		}
		if n := countDevices(t, f); n != st.devices {
			t.Fatalf("%s: %d devices, want %d", st.name, n, st.devices)
		}
	}
}

// TestStaleDeltaFromOldEdge checks that a late delta from the edge a
// device left neither re-homes it nor overwrites the newer values its new
// edge reported, in the overlay and in spilled parameters alike, while
// values it is the newest for still land.
func TestStaleDeltaFromOldEdge(t *testing.T) {
	f := mustFSM(t)
	t1, t2, late := t0, t0.Add(2*time.Minute), t0.Add(time.Minute)
	// Enough parameters to spill, so both storage places are exercised.
	var many []string
	for i := range overlayMaxParams + 1 {
		many = append(many, fmt.Sprintf("S.P%03d", i), "a1")
	}
	mustApply(t, f, up("A", 1, record(t, informAt("dev1", "A", t1, many...))))
	mustApply(t, f, up("A", 2, record(t, informAt("dev1", "A", t1, "X", "a1", "Y", "a1", "R", "a1"))))
	if paramKeys(t, f, "dev1") == 0 {
		t.Fatal("parameters did not spill")
	}
	mustApply(t, f, up("B", 1, record(t, informAt("dev1", "B", t2, "X", "b2", "S.P000", "b2"))))
	stale := informAt("dev1", "A", late, "X", "a-late", "Y", "a-late", "S.P000", "a-late", "S.P001", "a-late", "Z", "new")
	stale.Removed = []string{"R"}
	stale.Events = []string{"2 PERIODIC"}
	stale.Bootstrap = true // a stale bootstrap must not wipe the newer tree
	mustApply(t, f, up("A", 3, record(t, stale)))

	d, err := f.Device("dev1", true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Edge != "B" || !d.LastInform.Equal(t2) || len(d.LastEvents) != 1 || d.LastEvents[0] != "1 BOOT" {
		t.Fatalf("stale delta re-homed the device: edge %s, inform %v, events %v", d.Edge, d.LastInform, d.LastEvents)
	}
	want := map[string]string{"X": "b2", "S.P000": "b2", "Y": "a-late", "S.P001": "a-late", "S.P002": "a1", "Z": "new", "R": ""}
	for k, v := range want {
		p, ok := d.Parameters[k]
		if v == "" {
			if ok {
				t.Errorf("%s should have been removed, is %q", k, p.Value)
			}
			continue
		}
		if p.Value != v {
			t.Errorf("%s = %q, want %q", k, p.Value, v)
		}
	}
	if got := d.Parameters["X"].Updated; !got.Equal(t2) {
		t.Errorf("X stamped %v, want the new edge's inform %v", got, t2)
	}
	if got := d.Parameters["Y"].Updated; !got.Equal(late) {
		t.Errorf("Y stamped %v, want the late inform %v", got, late)
	}
	// A newer delta from the old edge is a move back.
	mustApply(t, f, up("A", 4, record(t, informAt("dev1", "A", t2.Add(time.Minute), "X", "a3"))))
	d, _ = f.Device("dev1", true)
	if d.Edge != "A" || d.Parameters["X"].Value != "a3" {
		t.Fatalf("newer delta from A: edge %s, X %q", d.Edge, d.Parameters["X"].Value)
	}
	// A delta without an inform time is stamped with the command's time.
	mustApply(t, f, Command{Op: OpDeviceDelta, Time: t2.Add(time.Hour), Delta: &fleet.DeviceDelta{Device: "dev1", Edge: "A",
		Parameters: []fleet.ParameterValue{{Name: "X", Value: "t", Type: "xsd:string"}}}})
	d, _ = f.Device("dev1", true)
	if !d.Parameters["X"].Updated.Equal(t2.Add(time.Hour)) {
		t.Fatalf("zero-inform delta stamped %v", d.Parameters["X"].Updated)
	}
}

// TestEdgeCreatedTaskThenResult checks that the core learns a task an edge
// created (registering its unknown device as a stub there) and then takes
// its result, once, and only from that edge.
func TestEdgeCreatedTaskThenResult(t *testing.T) {
	f := mustFSM(t)
	tk := edgeTask("newdev", fleet.StatusPending)
	mustApply(t, f, up("e1", 1, record(t, tk)))
	got, err := f.Task(tk.ID)
	if err != nil || got.Status != fleet.StatusPending || got.Edge != "e1" {
		t.Fatalf("edge-created task: %+v %v", got, err)
	}
	d, err := f.Device("newdev", false)
	if err != nil || d.Edge != "e1" || !d.Registered.Equal(t0) {
		t.Fatalf("stub device: %+v %v", d, err)
	}
	if rs := ownLog(t, f, "e1"); len(rs) != 0 {
		t.Fatalf("the core sent the creating edge its own task: %+v", rs)
	}
	// Another edge cannot report it.
	running := *tk
	running.Status, running.Attempts = fleet.StatusRunning, 1
	if r := applyAt(t, f, up("e2", 1, record(t, &running)))[0]; !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("report from another edge: %+v", r)
	}
	mustApply(t, f, up("e1", 2, record(t, &running)))
	if got, _ := f.Task(tk.ID); got.Status != fleet.StatusRunning || got.Attempts != 1 {
		t.Fatalf("running: %+v", got)
	}
	faulted := running
	faulted.Status, faulted.Updated = fleet.StatusFault, t0.Add(time.Second)
	faulted.Fault = &fleet.TaskFault{Code: "9002", Message: "internal"}
	mustApply(t, f, up("e1", 3, record(t, &faulted)))
	// A result for a final task changes nothing.
	again := running
	again.Status, again.Result = fleet.StatusDone, &fleet.TaskResult{}
	mustApply(t, f, up("e1", 4, record(t, &again)))
	got, _ = f.Task(tk.ID)
	if got.Status != fleet.StatusFault || got.Fault == nil || got.Fault.Code != "9002" || got.Result != nil || !got.Updated.Equal(t0.Add(time.Second)) {
		t.Fatalf("final task: %+v", got)
	}
	if fs, _ := f.Faults("newdev"); len(fs) != 1 || fs[0].TaskID != tk.ID {
		t.Fatalf("faults: %+v", fs)
	}
	// A task created already final (the edge ran it while the link was
	// down) is learnt as it is.
	doneAtEdge := edgeTask("newdev", fleet.StatusDone)
	mustApply(t, f, up("e1", 5, record(t, doneAtEdge)))
	if got, _ := f.Task(doneAtEdge.ID); got.Status != fleet.StatusDone {
		t.Fatalf("task created final: %+v", got)
	}
	if e := edgeRecord(t, f, "e1"); e.UplinkAcked != 5 || e.Rejected != 0 {
		t.Fatalf("edge e1: %+v", e)
	}
	if e := edgeRecord(t, f, "e2"); e.UplinkAcked != 1 || e.Rejected != 1 {
		t.Fatalf("edge e2: %+v", e)
	}
}

// TestEdgeCreatedTaskForMovedDevice checks that a task created at an edge
// the device has already left (its cache was behind) is dropped there at
// once and, once the edge confirms, goes to the device's home.
func TestEdgeCreatedTaskForMovedDevice(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, up("A", 1, record(t, informAt("dev1", "A", t0))))
	mustApply(t, f, up("B", 1, record(t, informAt("dev1", "B", t0.Add(time.Minute)))))
	tk := edgeTask("dev1", fleet.StatusPending)
	mustApply(t, f, up("A", 2, record(t, tk)))
	if got, _ := f.Task(tk.ID); got.Edge != "A" {
		t.Fatalf("edge-created task assigned to %q, want A", got.Edge)
	}
	if rs := ownLog(t, f, "A"); len(rs) != 1 || rs[0].Kind != fleet.DownDrop || rs[0].TaskID != tk.ID {
		t.Fatalf("A log: %+v", rs)
	}
	mustApply(t, f, up("A", 3, record(t, &fleet.TaskDrop{Task: tk.ID, Device: "dev1", Edge: "A"})))
	if got, _ := f.Task(tk.ID); got.Edge != "B" {
		t.Fatalf("task after the drop assigned to %q, want B", got.Edge)
	}
	if rs := ownLog(t, f, "B"); len(rs) != 1 || rs[0].Kind != fleet.DownTask || rs[0].TaskID != tk.ID {
		t.Fatalf("B log: %+v", rs)
	}
}

// BenchmarkFSMApplyUplinkDeltas is BenchmarkFSMApplyDeltas with the deltas
// arriving as uplink records (OpUplink, eight edges, sequenced): the cost
// the core pays per record of an edge's drain, next to a direct delta's.
func BenchmarkFSMApplyUplinkDeltas(b *testing.B) {
	f, err := OpenFSM(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const perEntry = 300
	params := []string{"A.DeviceInfo.UpTime", "A.WAN.BytesSent", "A.WAN.BytesReceived", "A.LAN.Hosts", "A.WiFi.Clients"}
	now := time.Now().UTC()
	var logs []*raft.Log
	for i := 0; i < b.N; i += perEntry {
		cmds := make([]Command, 0, perEntry)
		for j := i; j < min(i+perEntry, b.N); j++ {
			edge := fmt.Sprintf("e%d", j%8)
			dd := &fleet.DeviceDelta{Device: fmt.Sprintf("dev%05d", j%20000), Edge: edge, LastInform: now.Add(time.Duration(j))}
			for _, p := range params {
				dd.Parameters = append(dd.Parameters, fleet.ParameterValue{Name: p, Value: fmt.Sprint(j), Type: "xsd:unsignedInt"})
			}
			cmds = append(cmds, Command{V: CommandVersion, Op: OpUplink, Time: now, Edge: edge, Seq: uint64(j/8 + 1), Record: record(b, dd)})
		}
		data, err := EncodeCommands(cmds)
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: data})
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < len(logs); i += 4 {
		for _, r := range f.ApplyBatch(logs[i:min(i+4, len(logs))]) {
			for _, res := range r.([]Result) {
				if res.Err != nil || res.Noop {
					b.Fatalf("%+v", res)
				}
			}
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// fastDeltaSeeds are DeviceDelta records as the edge writes them, from a
// bare one to every field set.
func fastDeltaSeeds(t testing.TB) [][]byte {
	full := informAt("dev1", "e1", t0.Add(1500*time.Millisecond), "A.B", "1", "A.C", "x\xffy")
	full.OUI, full.ProductClass, full.SerialNumber, full.Manufacturer = "B0B0B0", "Box", "SN1", "Acme"
	full.Events, full.Removed, full.Bootstrap = []string{"0 BOOTSTRAP", "1 BOOT"}, []string{"A.D.", "A.E"}, true
	zone := informAt("dev2", "e1", time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("", 2*3600)))
	zone.Events, zone.Removed = []string{}, []string{"A."}
	var out [][]byte
	for _, d := range []*fleet.DeviceDelta{{Device: "dev0"}, delta("dev3", "e1", "A.B", "2"), full, zone} {
		out = append(out, record(t, d)[2:])
	}
	return out
}

// TestFastDeltaMatchesLibrary checks fastDelta on records in the edge's
// form (it must decode them, and as the CBOR library does) and on others
// (it must leave them to the library).
func TestFastDeltaMatchesLibrary(t *testing.T) {
	seeds := fastDeltaSeeds(t)
	for i, b := range seeds {
		var dd fleet.DeviceDelta
		if _, ok := fastDelta(b, &dd); !ok {
			t.Fatalf("seed %d: the edge's own form not decoded by hand", i)
		}
		checkFastDelta(t, b)
	}
	full := seeds[2]
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"trailing byte", append(slices.Clone(full), 0)},
		{"truncated", full[:len(full)-1]},
		{"unknown key", []byte{0xa1, 0x0c, 0x61, 'x'}},
		{"keys out of order", []byte{0xa2, 0x03, 0x61, 'x', 0x01, 0x61, 'y'}},
		{"duplicate key", []byte{0xa2, 0x01, 0x61, 'x', 0x01, 0x61, 'y'}},
		{"text key", []byte{0xa1, 0x61, '1', 0x61, 'x'}},
		{"byte-string device", []byte{0xa1, 0x01, 0x41, 'x'}},
		{"indefinite map", []byte{0xbf, 0x01, 0x61, 'x', 0xff}},
		{"indefinite text", []byte{0xa1, 0x01, 0x7f, 0x61, 'x', 0xff}},
		{"tagged time", []byte{0xa1, 0x07, 0xc0, 0x74, '2', '0', '2', '4', '-', '0', '1', '-', '0', '1', 'T', '0', '0', ':', '0', '0', ':', '0', '0', 'Z'}},
		{"bad time", []byte{0xa1, 0x07, 0x61, 'x'}},
		{"null bootstrap", []byte{0xa1, 0x0b, 0xf6}},
		{"parameter pair", []byte{0xa1, 0x09, 0x81, 0x82, 0x61, 'a', 0x61, 'b'}},
		{"not a map", []byte{0x80}},
	} {
		var dd fleet.DeviceDelta
		if _, ok := fastDelta(tc.b, &dd); ok {
			t.Errorf("%s: decoded by hand, want it left to the library", tc.name)
		}
		checkFastDelta(t, tc.b)
	}
}

// checkFastDelta fails when fastDelta decodes b differently from the CBOR
// library (or decodes what the library refuses).
func checkFastDelta(t testing.TB, b []byte) {
	t.Helper()
	var got fleet.DeviceDelta
	raw, ok := fastDelta(b, &got)
	if !ok {
		return
	}
	var want applyDelta
	if err := cmdDec.Unmarshal(b, &want); err != nil {
		t.Fatalf("fastDelta decoded %x, which the library refuses: %v", b, err)
	}
	w := fleet.DeviceDelta(want.deltaFields)
	w.Edge = "" // the link's, not the record's
	if !reflect.DeepEqual(got, w) || !bytes.Equal(raw, want.Parameters) || (raw == nil) != (want.Parameters == nil) {
		t.Fatalf("fastDelta(%x) = %+v %x, the library %+v %x", b, got, raw, w, []byte(want.Parameters))
	}
	if !got.LastInform.Equal(w.LastInform) || got.LastInform.Location().String() != w.LastInform.Location().String() {
		t.Fatalf("fastDelta(%x): time %v, the library %v", b, got.LastInform, w.LastInform)
	}
}

// FuzzFastDelta checks that whatever fastDelta decodes, it decodes as the
// CBOR library does.
func FuzzFastDelta(f *testing.F) {
	for _, b := range fastDeltaSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFastDelta(t, b) })
}
