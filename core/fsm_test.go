package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/hashicorp/raft"
	"github.com/oklog/ulid/v2"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustFSM(t *testing.T) *FSM {
	t.Helper()
	f, err := OpenFSM(filepath.Join(t.TempDir(), "fsm"), nil)
	if err != nil {
		t.Fatalf("OpenFSM: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// applyAt applies cmds as one log entry at the next index and returns
// their results.
func applyAt(t *testing.T, f *FSM, cmds ...Command) []Result {
	t.Helper()
	for i := range cmds {
		if cmds[i].V == 0 {
			cmds[i].V = CommandVersion
		}
		if cmds[i].Time.IsZero() {
			cmds[i].Time = t0
		}
	}
	b, err := EncodeCommands(cmds)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	out := f.Apply(&raft.Log{Index: f.AppliedIndex() + 1, Type: raft.LogCommand, Data: b})
	rs, ok := out.([]Result)
	if !ok || len(rs) != len(cmds) {
		t.Fatalf("apply returned %#v", out)
	}
	return rs
}

func mustApply(t *testing.T, f *FSM, cmds ...Command) []Result {
	t.Helper()
	rs := applyAt(t, f, cmds...)
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("command %d (%v): %v", i, cmds[i].Op, r.Err)
		}
	}
	return rs
}

func delta(dev, edge string, params ...string) *fleet.DeviceDelta {
	d := &fleet.DeviceDelta{Device: dev, Edge: edge, OUI: "00AA11", SerialNumber: dev, LastInform: t0, Events: []string{"1 BOOT"}}
	for i := 0; i+1 < len(params); i += 2 {
		d.Parameters = append(d.Parameters, fleet.ParameterValue{Name: params[i], Value: params[i+1], Type: "xsd:string"})
	}
	return d
}

func newTask(dev, name string) *fleet.Task {
	return &fleet.Task{ID: ulid.Make().String(), Device: dev, Name: name, Status: fleet.StatusPending, Timestamp: t0}
}

func TestFSMDeviceOps(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.B", "1", "A.C.D", "2", "A.C.E", "3")})
	d, err := f.Device("dev1", true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Edge != "e1" || len(d.Parameters) != 3 || d.Parameters["A.B"].Value != "1" || !d.Registered.Equal(t0) {
		t.Fatalf("device after delta: %+v", d)
	}
	// Removing an object drops its subtree; a later inform moves the home edge.
	dd := delta("dev1", "e2", "A.B", "9")
	dd.Removed = []string{"A.C."}
	dd.LastInform = t0.Add(time.Minute)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: dd})
	d, _ = f.Device("dev1", true)
	if d.Edge != "e2" || len(d.Parameters) != 1 || d.Parameters["A.B"].Value != "9" {
		t.Fatalf("device after second delta: %+v", d)
	}
	mustApply(t, f, Command{Op: OpTag, Name: "dev1", Tag: "blue"}, Command{Op: OpTag, Name: "dev1", Tag: "alpha"}, Command{Op: OpTag, Name: "dev1", Tag: "blue"})
	d, _ = f.Device("dev1", false)
	if len(d.Tags) != 2 || d.Tags[0] != "alpha" || d.Tags[1] != "blue" || d.Parameters != nil {
		t.Fatalf("tags: %+v", d)
	}
	mustApply(t, f, Command{Op: OpUntag, Name: "dev1", Tag: "alpha"})
	ds, _, _ := f.Devices(DeviceFilter{Tag: "blue"}, "", 0)
	if len(ds) != 1 {
		t.Fatalf("tag filter: %d devices", len(ds))
	}
	ds, _, _ = f.Devices(DeviceFilter{Tag: "alpha"}, "", 0)
	if len(ds) != 0 {
		t.Fatalf("untagged device still listed")
	}
	// Bootstrap drops the old tree.
	bd := delta("dev1", "e2", "X.Y", "1")
	bd.Bootstrap = true
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: bd})
	d, _ = f.Device("dev1", true)
	if len(d.Parameters) != 1 || d.Parameters["X.Y"].Value != "1" {
		t.Fatalf("after bootstrap: %+v", d.Parameters)
	}
	tk := newTask("dev1", fleet.TaskReboot)
	mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{tk}})
	mustApply(t, f, Command{Op: OpDeleteDevice, Name: "dev1"})
	if _, err := f.Device("dev1", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted device: %v", err)
	}
	if _, err := f.Task(tk.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("task of deleted device: %v", err)
	}
	if rs := applyAt(t, f, Command{Op: OpDeleteDevice, Name: "dev1"}); !errors.Is(rs[0].Err, ErrNotFound) {
		t.Fatalf("second delete: %v", rs[0].Err)
	}
}

func TestFSMDevicesPaging(t *testing.T) {
	f := mustFSM(t)
	var cmds []Command
	for _, id := range []string{"a1", "a2", "a3", "b1", "b2"} {
		cmds = append(cmds, Command{Op: OpDeviceDelta, Delta: delta(id, "e1")})
	}
	mustApply(t, f, cmds...)
	var got []string
	cursor := ""
	for range 10 {
		ds, next, err := f.Devices(DeviceFilter{IDPrefix: "a"}, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != 3 || got[0] != "a1" || got[2] != "a3" {
		t.Fatalf("paged devices: %v", got)
	}
}

func TestFSMTasks(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	tk := newTask("dev1", fleet.TaskReboot)
	rs := mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{tk}})
	if ids := rs[0].Value.([]string); len(ids) != 1 || ids[0] != tk.ID {
		t.Fatalf("created ids %v", rs[0].Value)
	}
	// A replayed create changes nothing.
	if ids := mustApply(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{tk}})[0].Value.([]string); len(ids) != 0 {
		t.Fatalf("replayed create made %v", ids)
	}
	// Unknown device: nothing is created.
	other := newTask("nope", fleet.TaskReboot)
	if rs := applyAt(t, f, Command{Op: OpCreateTasks, Tasks: []*fleet.Task{newTask("dev1", fleet.TaskReboot), other}}); !errors.Is(rs[0].Err, ErrNotFound) {
		t.Fatalf("unknown device: %v", rs[0].Err)
	}
	if ts, _, _ := f.Tasks(TaskFilter{Device: "dev1"}, "", 0); len(ts) != 1 {
		t.Fatalf("tasks after refused create: %d", len(ts))
	}
	// SkipMissing creates what it can.
	ok := newTask("dev1", fleet.TaskFactoryReset)
	if ids := mustApply(t, f, Command{Op: OpCreateTasks, SkipMissing: true, Tasks: []*fleet.Task{ok, other}})[0].Value.([]string); len(ids) != 1 {
		t.Fatalf("skip missing: %v", ids)
	}
	mustApply(t, f, Command{Op: OpTaskResult, TaskID: tk.ID, Status: fleet.StatusFault, Fault: &fleet.TaskFault{Code: "9002", Message: "internal"}})
	// A second, different result for a final task changes nothing.
	mustApply(t, f, Command{Op: OpTaskResult, TaskID: tk.ID, Status: fleet.StatusDone, Result: &fleet.TaskResult{Status: 0}})
	got, _ := f.Task(tk.ID)
	if got.Status != fleet.StatusFault || got.Fault == nil || got.Fault.Code != "9002" || got.Result != nil {
		t.Fatalf("task after results: %+v", got)
	}
	if fs, _ := f.Faults("dev1"); len(fs) != 1 || fs[0].TaskID != tk.ID {
		t.Fatalf("faults: %+v", fs)
	}
	if ts, _, _ := f.Tasks(TaskFilter{Status: fleet.StatusPending}, "", 0); len(ts) != 1 || ts[0].ID != ok.ID {
		t.Fatalf("pending tasks: %+v", ts)
	}
	mustApply(t, f, Command{Op: OpCancelTask, TaskID: ok.ID})
	if _, err := f.Task(ok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled task: %v", err)
	}
	for _, c := range []Command{
		{Op: OpCancelTask, TaskID: ok.ID},
		{Op: OpTaskResult, TaskID: "missing", Status: fleet.StatusDone},
	} {
		if rs := applyAt(t, f, c); !errors.Is(rs[0].Err, ErrNotFound) {
			t.Errorf("%v: %v, want not found", c.Op, rs[0].Err)
		}
	}
}

func TestFSMIdempotency(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	// Uplink records keyed by edge and sequence: a resend is a no-op.
	up := func(seq uint64, val string) Result {
		return applyAt(t, f, Command{Op: OpDeviceDelta, Edge: "e1", Seq: seq, Delta: delta("dev1", "e1", "A.B", val)})[0]
	}
	if r := up(5, "five"); r.Err != nil || r.Noop {
		t.Fatalf("seq 5: %+v", r)
	}
	if r := up(5, "again"); !r.Noop {
		t.Fatalf("replayed seq 5 applied: %+v", r)
	}
	if r := up(3, "old"); !r.Noop {
		t.Fatalf("old seq 3 applied: %+v", r)
	}
	d, _ := f.Device("dev1", true)
	if d.Parameters["A.B"].Value != "five" {
		t.Fatalf("replay changed state: %v", d.Parameters)
	}
	es, _ := f.Edges()
	if len(es) != 1 || es[0].UplinkAcked != 5 {
		t.Fatalf("edges: %+v", es)
	}
	// A client idempotency key returns the first command's value.
	tk := newTask("dev1", fleet.TaskReboot)
	first := mustApply(t, f, Command{Op: OpCreateTasks, Key: "k1", Tasks: []*fleet.Task{tk}})[0]
	second := mustApply(t, f, Command{Op: OpCreateTasks, Key: "k1", Tasks: []*fleet.Task{newTask("dev1", fleet.TaskReboot)}})[0]
	if !second.Noop || len(second.Value.([]string)) != 1 || second.Value.([]string)[0] != first.Value.([]string)[0] {
		t.Fatalf("idempotent create: first %+v second %+v", first, second)
	}
	if ts, _, _ := f.Tasks(TaskFilter{}, "", 0); len(ts) != 1 {
		t.Fatalf("tasks after duplicate key: %d", len(ts))
	}
	// Downlink acks only move forward.
	mustApply(t, f, Command{Op: OpEdgeAck, Name: "e1", Seq: 10}, Command{Op: OpEdgeAck, Name: "e1", Seq: 7}, Command{Op: OpEdgeSeen, Name: "e1", Addr: "10.0.0.1:1"})
	es, _ = f.Edges()
	if es[0].DownlinkAcked != 10 || es[0].Addr != "10.0.0.1:1" {
		t.Fatalf("edge after acks: %+v", es[0])
	}
	// A log entry applied before (a replay after restart) is skipped.
	b, _ := EncodeCommands([]Command{{V: 1, Op: OpDeleteDevice, Name: "dev1", Time: t0}})
	f.Apply(&raft.Log{Index: f.AppliedIndex(), Type: raft.LogCommand, Data: b})
	if _, err := f.Device("dev1", false); err != nil {
		t.Fatalf("replayed old entry applied: %v", err)
	}
}

func TestFSMPresetsFilesNodes(t *testing.T) {
	f := mustFSM(t)
	p := &fleet.Preset{Name: "inform", Events: map[string]bool{"1 BOOT": true}, Provisions: [][]any{{"refresh", "InternetGatewayDevice.DeviceInfo"}, {"value", "A.B", 3.0}}}
	mustApply(t, f, Command{Op: OpPutPreset, Preset: p})
	got, err := f.Preset("inform")
	if err != nil || len(got.Provisions) != 2 || got.Provisions[1][2] != 3.0 {
		t.Fatalf("preset: %+v %v", got, err)
	}
	fm := &fleet.FileMeta{Name: "fw.bin", FileType: "1 Firmware Upgrade Image", Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Uploaded: t0}
	mustApply(t, f, Command{Op: OpPutFileMeta, File: fm}, Command{Op: OpRegisterNode, Node: &NodeInfo{ID: "n1", APIAddr: "127.0.0.1:1"}})
	if m, err := f.File("fw.bin"); err != nil || m.SHA256 != fm.SHA256 {
		t.Fatalf("file: %+v %v", m, err)
	}
	if n, err := f.Node("n1"); err != nil || n.APIAddr != "127.0.0.1:1" {
		t.Fatalf("node: %+v %v", n, err)
	}
	mustApply(t, f, Command{Op: OpDeletePreset, Name: "inform"}, Command{Op: OpDeleteFileMeta, Name: "fw.bin"}, Command{Op: OpRemoveNode, Name: "n1"})
	if ps, _ := f.Presets(); len(ps) != 0 {
		t.Fatalf("presets after delete: %d", len(ps))
	}
	if fs, _ := f.Files(); len(fs) != 0 {
		t.Fatalf("files after delete: %d", len(fs))
	}
}

func TestFSMBadCommands(t *testing.T) {
	f := mustFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.B", "1")})
	tk := newTask("dev1", fleet.TaskReboot)
	bad := &fleet.Task{ID: ulid.Make().String(), Device: "dev1", Name: "explode", Status: fleet.StatusPending}
	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"unknown op", Command{Op: 200}, ErrBadRequest},
		{"future version", Command{V: 9, Op: OpTag}, ErrCorruptCommand},
		{"device delta without delta", Command{Op: OpDeviceDelta}, ErrBadRequest},
		{"device with slash", Command{Op: OpDeviceDelta, Delta: delta("a/b", "e1")}, ErrBadRequest},
		{"bad parameter name", Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.", "1")}, ErrBadRequest},
		{"tag unknown device", Command{Op: OpTag, Name: "nope", Tag: "x"}, ErrNotFound},
		{"empty tag", Command{Op: OpTag, Name: "dev1"}, ErrBadRequest},
		{"task bad kind", Command{Op: OpCreateTasks, Tasks: []*fleet.Task{bad}}, ErrBadRequest},
		{"task bad id", Command{Op: OpCreateTasks, Tasks: []*fleet.Task{{ID: "x", Device: "dev1", Name: "reboot", Status: fleet.StatusPending}}}, ErrBadRequest},
		{"task no tasks", Command{Op: OpCreateTasks}, ErrBadRequest},
		{"result bad status", Command{Op: OpTaskResult, TaskID: tk.ID, Status: "weird"}, ErrBadRequest},
		{"fault without fault", Command{Op: OpTaskResult, TaskID: tk.ID, Status: fleet.StatusFault}, ErrBadRequest},
		{"preset no provisions", Command{Op: OpPutPreset, Preset: &fleet.Preset{Name: "p"}}, ErrBadRequest},
		{"preset provision not named", Command{Op: OpPutPreset, Preset: &fleet.Preset{Name: "p", Provisions: [][]any{{1.0, "x"}}}}, ErrBadRequest},
		{"file bad sha", Command{Op: OpPutFileMeta, File: &fleet.FileMeta{Name: "f", SHA256: "zz"}}, ErrBadRequest},
		{"delete missing preset", Command{Op: OpDeletePreset, Name: "none"}, ErrNotFound},
		{"register node without addr", Command{Op: OpRegisterNode, Node: &NodeInfo{ID: "n"}}, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := applyAt(t, f, tt.cmd)
			if !errors.Is(rs[0].Err, tt.want) {
				t.Fatalf("err = %v, want %v", rs[0].Err, tt.want)
			}
		})
	}
	// Undecodable entries are an error response, never a panic.
	for _, data := range [][]byte{nil, {9}, {entryFormat, 0xff, 0x00}, append([]byte{entryFormat}, bytes.Repeat([]byte{0x9f}, 40)...)} {
		out := f.Apply(&raft.Log{Index: f.AppliedIndex() + 1, Type: raft.LogCommand, Data: data})
		rs := out.([]Result)
		if len(rs) != 1 || !errors.Is(rs[0].Err, ErrCorruptCommand) {
			t.Fatalf("corrupt entry %x: %+v", data, rs)
		}
	}
	d, _ := f.Device("dev1", true)
	if len(d.Parameters) != 1 || len(d.Tags) != 0 {
		t.Fatalf("bad commands changed state: %+v", d)
	}
	if ts, _, _ := f.Tasks(TaskFilter{}, "", 0); len(ts) != 0 {
		t.Fatalf("bad commands created tasks: %d", len(ts))
	}
}

func TestFSMApplyBatchAndSnapshot(t *testing.T) {
	f := mustFSM(t)
	var logs []*raft.Log
	for i := range 50 {
		var cmds []Command
		for j := range 40 {
			cmds = append(cmds, Command{V: 1, Op: OpDeviceDelta, Time: t0, Delta: delta(devName(i*40+j), "e1", "A.B", "v")})
		}
		b, _ := EncodeCommands(cmds)
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b})
	}
	// A configuration entry in the middle gets no response and does no harm.
	logs = append(logs, &raft.Log{Index: 51, Type: raft.LogConfiguration})
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) || out[50] != nil {
		t.Fatalf("ApplyBatch returned %d responses", len(out))
	}
	for i, o := range out[:50] {
		for _, r := range o.([]Result) {
			if r.Err != nil {
				t.Fatalf("log %d: %v", i, r.Err)
			}
		}
	}
	if f.AppliedIndex() != 51 {
		t.Fatalf("applied index %d", f.AppliedIndex())
	}
	ds, _, _ := f.Devices(DeviceFilter{}, "", 0)
	if len(ds) != 2000 {
		t.Fatalf("%d devices after batch", len(ds))
	}

	// Snapshot into a buffer and restore into a second FSM.
	snap, _ := f.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := mustFSM(t)
	mustApply(t, g, Command{Op: OpDeviceDelta, Delta: delta("stale", "e9")})
	ch := g.Watch()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("restore did not notify watchers")
	}
	if g.AppliedIndex() != 51 {
		t.Fatalf("restored applied index %d", g.AppliedIndex())
	}
	if _, err := g.Device("stale", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore kept old state: %v", err)
	}
	ds, _, _ = g.Devices(DeviceFilter{}, "", 0)
	if len(ds) != 2000 {
		t.Fatalf("%d devices after restore", len(ds))
	}
	// A corrupt snapshot fails and leaves the state as it was.
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("garbage")))); err == nil {
		t.Fatal("restore of garbage succeeded")
	}
	if ds, _, _ = g.Devices(DeviceFilter{}, "", 0); len(ds) != 2000 {
		t.Fatalf("%d devices after failed restore", len(ds))
	}
}

func devName(i int) string { return "dev" + string(rune('a'+i%26)) + ulidSuffix(i) }

func ulidSuffix(i int) string {
	const digits = "0123456789"
	s := ""
	for {
		s = string(digits[i%10]) + s
		i /= 10
		if i == 0 {
			return s
		}
	}
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

// paramKeys counts the device's per-parameter keys (spilled from the overlay).
func paramKeys(t *testing.T, f *FSM, dev string) int {
	t.Helper()
	n := 0
	pre := key(pParam, dev, "")
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, pre, nil, func(_, _ []byte) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFSMParameterOverlay checks that parameters read the same whether they
// sit in the device's overlay, in per-parameter keys after a spill, or in
// both with the overlay newer.
func TestFSMParameterOverlay(t *testing.T) {
	f := mustFSM(t)
	many := func(prefix string, n int, val string) []string {
		var kv []string
		for i := range n {
			kv = append(kv, fmt.Sprintf("%s.P%03d", prefix, i), val)
		}
		return kv
	}
	steps := []struct {
		name      string
		params    []string
		removed   []string
		bootstrap bool
		tag       string
		want      map[string]string // nil value: must be absent
		wantKeys  int               // per-parameter keys after the step, -1 to skip
	}{
		{name: "small delta stays in the overlay", params: []string{"A.X", "1", "A.Y", "2"}, want: map[string]string{"A.X": "1", "A.Y": "2"}, wantKeys: 0},
		{name: "overflow spills everything", params: many("B", overlayMaxParams, "b"), want: map[string]string{"A.X": "1", "B.P000": "b", "B.P063": "b"}, wantKeys: overlayMaxParams + 2},
		{name: "update of a spilled parameter is read from the overlay", params: []string{"B.P001", "new", "A.X", "9"}, want: map[string]string{"B.P001": "new", "A.X": "9", "B.P002": "b"}, wantKeys: overlayMaxParams + 2},
		{name: "tagging keeps the overlay", tag: "blue", want: map[string]string{"B.P001": "new", "A.X": "9"}, wantKeys: -1},
		{name: "removal drops overlay and spilled value", removed: []string{"B.P001", "A.X"}, want: map[string]string{"B.P001": "", "A.X": "", "A.Y": "2"}, wantKeys: overlayMaxParams},
		{name: "object removal covers both", params: []string{"B.P005", "o"}, removed: []string{"B."}, want: map[string]string{"B.P005": "o", "B.P006": "", "A.Y": "2"}, wantKeys: 1},
		{name: "bootstrap drops overlay and keys", params: []string{"C.Z", "z"}, bootstrap: true, want: map[string]string{"C.Z": "z", "A.Y": "", "B.P005": ""}, wantKeys: 0},
	}
	for _, st := range steps {
		if st.tag != "" {
			mustApply(t, f, Command{Op: OpTag, Name: "dev1", Tag: st.tag})
		} else {
			dd := delta("dev1", "e1", st.params...)
			dd.Removed, dd.Bootstrap = st.removed, st.bootstrap
			mustApply(t, f, Command{Op: OpDeviceDelta, Delta: dd})
		}
		d, err := f.Device("dev1", true)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for k, v := range st.want {
			p, ok := d.Parameters[k]
			if v == "" && ok {
				t.Errorf("%s: %s still present (%q)", st.name, k, p.Value)
			} else if v != "" && p.Value != v {
				t.Errorf("%s: %s = %q, want %q", st.name, k, p.Value, v)
			}
		}
		if st.wantKeys >= 0 {
			if n := paramKeys(t, f, "dev1"); n != st.wantKeys {
				t.Errorf("%s: %d per-parameter keys, want %d", st.name, n, st.wantKeys)
			}
		}
		if st.tag != "" && !slices.Contains(d.Tags, st.tag) {
			t.Errorf("%s: tags %v", st.name, d.Tags)
		}
	}
}

// TestFSMReadsCBOROnlyDevice checks that device records written before the
// overlay format (plain CBOR) are still read and updated.
func TestFSMReadsCBOROnlyDevice(t *testing.T) {
	f := mustFSM(t)
	old, err := encodeRecord(&Device{ID: "old", Edge: "e1", Tags: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set(key(pDevice, "old"), old) }); err != nil {
		t.Fatal(err)
	}
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("old", "e2", "A.B", "1")})
	d, err := f.Device("old", true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Edge != "e2" || len(d.Tags) != 1 || d.Parameters["A.B"].Value != "1" {
		t.Fatalf("old record after delta: %+v", d)
	}
}

func TestDeviceRecordRoundTrip(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		d    Device
		ov   overlay
	}{
		{name: "minimal", d: Device{ID: "d"}},
		{name: "full", d: Device{ID: "dev-1", OUI: "00AA11", ProductClass: "HG8245", SerialNumber: "SN1", Manufacturer: "ACME", Edge: "e1",
			LastInform: time.Date(2026, 1, 2, 3, 4, 5, 6, cet), Registered: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
			Tags: []string{"a", "b"}, LastEvents: []string{"0 BOOTSTRAP", "1 BOOT"}},
			ov: overlay{{name: []byte("A.B"), enc: encodeParam(Param{Value: "v", Type: "xsd:string", Updated: t0})}, {name: []byte("A.C"), enc: encodeParam(Param{})}}},
		{name: "before 1970 and far future", d: Device{ID: "d", LastInform: time.Date(1900, 5, 5, 0, 0, 0, 999999999, time.UTC), Registered: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeDevice(&tc.d, tc.ov)
			if err != nil {
				t.Fatal(err)
			}
			var got Device
			ov, err := decodeDevice(b, &got, true)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tc.d.ID || got.OUI != tc.d.OUI || got.ProductClass != tc.d.ProductClass || got.SerialNumber != tc.d.SerialNumber ||
				got.Manufacturer != tc.d.Manufacturer || got.Edge != tc.d.Edge || !got.LastInform.Equal(tc.d.LastInform) ||
				!got.Registered.Equal(tc.d.Registered) || !slices.Equal(got.Tags, tc.d.Tags) || !slices.Equal(got.LastEvents, tc.d.LastEvents) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.d)
			}
			if len(ov) != len(tc.ov) {
				t.Fatalf("overlay: %d entries, want %d", len(ov), len(tc.ov))
			}
			for i := range ov {
				if !bytes.Equal(ov[i].name, tc.ov[i].name) || !bytes.Equal(ov[i].enc, tc.ov[i].enc) {
					t.Fatalf("overlay entry %d: %q %x, want %q %x", i, ov[i].name, ov[i].enc, tc.ov[i].name, tc.ov[i].enc)
				}
			}
			// A truncated record fails cleanly (an empty overlay is a valid end).
			fields, _ := encodeDevice(&tc.d, nil)
			for n := range len(b) {
				var d Device
				_, err := decodeDevice(b[:n], &d, true)
				if err == nil && n < len(fields) {
					t.Fatalf("record truncated to %d of %d bytes decoded without error", n, len(b))
				}
			}
		})
	}
}

// TestFSMInvalidUTF8 checks that a string that is not valid UTF-8 (a CPE
// can report any bytes) is stored as given and does not fail the other
// commands batched with it.
func TestFSMInvalidUTF8(t *testing.T) {
	f := mustFSM(t)
	rs := mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.B", "ok")}, Command{Op: OpDeviceDelta, Delta: delta("dev2", "e1", "A.B", "\xff\xfe")})
	for i, r := range rs {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	d, err := f.Device("dev2", true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Parameters["A.B"].Value != "\xff\xfe" {
		t.Fatalf("value %q", d.Parameters["A.B"].Value)
	}
}

// TestFSMDeviceCache checks that the apply path's device cache never
// outlives what it mirrors: a restore drops it (the restored device must not
// get back a tag it only had before), and a full cache starts over without
// losing writes.
func TestFSMDeviceCache(t *testing.T) {
	t.Run("restore", func(t *testing.T) {
		f := mustFSM(t)
		mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.B", "1")})
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatal(err)
		}
		mustApply(t, f, Command{Op: OpTag, Name: "dev1", Tag: "gone"}, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.X", "gone")})
		if err := f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			t.Fatal(err)
		}
		mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.C", "2")})
		d, err := f.Device("dev1", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Tags) != 0 || d.Parameters["A.X"].Value != "" || d.Parameters["A.B"].Value != "1" || d.Parameters["A.C"].Value != "2" {
			t.Fatalf("after restore and delta: tags %v, params %+v", d.Tags, d.Parameters)
		}
	})
	t.Run("full", func(t *testing.T) {
		f := mustFSM(t)
		f.devs = newDeviceCache(2)
		for round := range 3 {
			var cmds []Command
			for i := range 5 {
				cmds = append(cmds, Command{Op: OpDeviceDelta, Delta: delta(fmt.Sprintf("dev%d", i), "e1", fmt.Sprintf("A.R%d", round), "v")})
			}
			mustApply(t, f, cmds...)
		}
		for i := range 5 {
			d, err := f.Device(fmt.Sprintf("dev%d", i), true)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Parameters) != 3 {
				t.Fatalf("dev%d: %+v", i, d.Parameters)
			}
		}
		if len(f.devs.m) > 2 {
			t.Fatalf("cache holds %d devices, bound 2", len(f.devs.m))
		}
	})
}
