package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// dumpDB returns every key and value of the cache, to show that a call
// changed nothing at all.
func dumpDB(t testing.TB, c *Cache) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().KeyCopy(nil))] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outboxRecords decodes the whole outbox: *fleet.Task, *fleet.TaskDrop or
// *fleet.DeviceDelta per record.
func outboxRecords(t testing.TB, c *Cache) []any {
	t.Helper()
	recs, err := c.ReadOutbox(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, r := range recs {
		k, err := fleet.KindOf(r.Data)
		if err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		var v any
		switch k {
		case fleet.KindTask:
			v = new(fleet.Task)
		case fleet.KindTaskDrop:
			v = new(fleet.TaskDrop)
		case fleet.KindDeviceDelta:
			v = new(fleet.DeviceDelta)
		default:
			t.Fatalf("record %d: unexpected kind %d", r.Seq, k)
		}
		if err := fleet.Unmarshal(r.Data, v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func outboxDrops(t testing.TB, c *Cache) []fleet.TaskDrop {
	var out []fleet.TaskDrop
	for _, r := range outboxRecords(t, c) {
		if d, ok := r.(*fleet.TaskDrop); ok {
			out = append(out, *d)
		}
	}
	return out
}

func outboxTasks(t testing.TB, c *Cache) []fleet.Task {
	var out []fleet.Task
	for _, r := range outboxRecords(t, c) {
		if tk, ok := r.(*fleet.Task); ok {
			out = append(out, *tk)
		}
	}
	return out
}

func downTask(seq uint64, id string, wake bool) fleet.DownRecord {
	return fleet.DownRecord{Seq: seq, Kind: fleet.DownTask, Wake: wake,
		Task: &fleet.Task{ID: id, Device: devID, Name: fleet.TaskReboot, Status: fleet.StatusPending, Timestamp: t0}}
}

func mustStore(t testing.TB, c *Cache, recs ...fleet.DownRecord) {
	t.Helper()
	if err := c.StoreDownlink(recs); err != nil {
		t.Fatalf("StoreDownlink: %v", err)
	}
}

// TestAddTaskExistingIDChangesNothing: redelivering a task must never
// send a finished one back to pending, nor touch one in progress. Before
// the fix AddTask overwrote it.
func TestAddTaskExistingIDChangesNothing(t *testing.T) {
	tests := []struct {
		name   string
		status fleet.TaskStatus
	}{
		{"done", fleet.StatusDone},
		{"fault", fleet.StatusFault},
		{"pending", fleet.StatusPending},
		{"running transfer", fleet.StatusRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newDevice(t)
			orig := &fleet.Task{ID: "T1", Device: devID, Name: fleet.TaskDownload, URL: "http://fw/1.bin",
				FileType: "1 Firmware Upgrade Image", Status: tt.status, Timestamp: t0, Attempts: 1}
			if err := c.AddTask(orig); err != nil {
				t.Fatal(err)
			}
			before := dumpDB(t, c)
			again := &fleet.Task{ID: "T1", Device: devID, Name: fleet.TaskReboot}
			if err := c.AddTask(again); !errors.Is(err, ErrTaskExists) {
				t.Errorf("AddTask(existing ID) = %v, want ErrTaskExists", err)
			}
			if after := dumpDB(t, c); !reflect.DeepEqual(before, after) {
				t.Error("AddTask of an existing ID changed the store")
			}
			// Through the downlink too, where it is silently skipped.
			mustStore(t, c, fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Task: again})
			got, err := c.Task("T1")
			if err != nil || got.Status != tt.status || got.Name != fleet.TaskDownload {
				t.Errorf("after redelivery: %+v %v, want the original %s download", got, err, tt.status)
			}
		})
	}
}

// TestEdgeCreatedTasksReachOutbox: a task created at the edge is in the
// outbox, pending, from the transaction that stores it, so the core knows
// it before its result arrives. A task from the core is not echoed back.
func TestEdgeCreatedTasksReachOutbox(t *testing.T) {
	tests := []struct {
		name    string
		disable bool
		create  func(t *testing.T, c *Cache) string // returns the task ID
		want    bool
	}{
		{"local API task", false, func(t *testing.T, c *Cache) string {
			return addTask(t, c, `{"name":"reboot"}`).ID
		}, true},
		{"task from the core", false, func(t *testing.T, c *Cache) string {
			mustStore(t, c, downTask(1, "CORE1", false))
			return "CORE1"
		}, false},
		{"standalone edge", true, func(t *testing.T, c *Cache) string {
			return addTask(t, c, `{"name":"reboot"}`).ID
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, EdgeID: "e1", DisableOutbox: tt.disable})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			mustBegin(t, c, tr098("SN1"), t0).End(true)
			id := tt.create(t, c)
			var found []fleet.Task
			for _, tk := range outboxTasks(t, c) {
				if tk.ID == id {
					found = append(found, tk)
				}
			}
			if tt.want && (len(found) != 1 || found[0].Status != fleet.StatusPending || found[0].Device != devID) {
				t.Errorf("outbox records of task %s = %+v, want one pending record", id, found)
			}
			if !tt.want && len(found) != 0 {
				t.Errorf("outbox records of task %s = %+v, want none", id, found)
			}
			// Either way its result goes up when it runs (unless standalone).
			w := mustBegin(t, c, tr098("SN1"), t0)
			runCPE(t, w, func(m cwmp.Message) cwmp.Message {
				switch m.(type) {
				case *cwmp.Reboot:
					return &cwmp.RebootResponse{}
				case *cwmp.SetParameterValues:
					return &cwmp.SetParameterValuesResponse{}
				}
				return cwmp.NewFault(cwmp.FaultMethodNotSupported, "")
			}, 1)
			results := 0
			for _, tk := range outboxTasks(t, c) {
				if tk.ID == id && tk.Status == fleet.StatusDone {
					results++
				}
			}
			if want := map[bool]int{false: 1, true: 0}[tt.disable]; results != want {
				t.Errorf("%d result records for task %s, want %d", results, id, want)
			}
		})
	}
}

// TestStoreDownlink applies each kind of downlink record, then stores the
// same batch again: the second store must change nothing at all.
func TestStoreDownlink(t *testing.T) {
	file := &fleet.FileMeta{Name: "fw.bin", FileType: "1 Firmware Upgrade Image", Size: 3, SHA256: strings.Repeat("ab", 32), Uploaded: t0}
	tests := []struct {
		name string
		// setup runs first; it may return a session to end after the test.
		setup         func(t *testing.T, c *Cache) *SessionWork
		recs          []fleet.DownRecord
		wantTasks     map[string]fleet.TaskStatus // "" = must not exist
		wantDrops     []fleet.TaskDrop
		wantPositions [2]uint64
		check         func(t *testing.T, c *Cache)
	}{
		{
			name:          "task stored, not echoed",
			recs:          []fleet.DownRecord{downTask(1, "T1", false)},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusPending},
			wantPositions: [2]uint64{1, 0},
			check: func(t *testing.T, c *Cache) {
				if ts, _ := c.PendingTasks(devID); len(ts) != 1 || ts[0].ID != "T1" {
					t.Errorf("queue = %+v", ts)
				}
				if n := len(outboxTasks(t, c)); n != 0 {
					t.Errorf("%d task records echoed to the outbox", n)
				}
			},
		},
		{
			name: "finished task delivered again stays finished",
			setup: func(t *testing.T, c *Cache) *SessionWork {
				mustStore(t, c, downTask(1, "T1", false))
				runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(cwmp.Message) cwmp.Message { return &cwmp.RebootResponse{} }, 1)
				return nil
			},
			recs:          []fleet.DownRecord{downTask(2, "T1", false)},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusDone},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name:          "cancel of a pending task",
			setup:         func(t *testing.T, c *Cache) *SessionWork { mustStore(t, c, downTask(1, "T1", false)); return nil },
			recs:          []fleet.DownRecord{{Seq: 2, Kind: fleet.DownCancel, TaskID: "T1"}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": ""},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name: "cancel of a task a session holds",
			setup: func(t *testing.T, c *Cache) *SessionWork {
				mustStore(t, c, downTask(1, "T1", false))
				w := mustBegin(t, c, tr098("SN1"), t0)
				if w.Next() == nil {
					t.Fatal("session sent nothing")
				}
				return w
			},
			recs:          []fleet.DownRecord{{Seq: 2, Kind: fleet.DownCancel, TaskID: "T1"}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusRunning},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name:          "drop of a pending task",
			setup:         func(t *testing.T, c *Cache) *SessionWork { mustStore(t, c, downTask(1, "T1", false)); return nil },
			recs:          []fleet.DownRecord{{Seq: 2, Kind: fleet.DownDrop, TaskID: "T1", Device: devID}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": ""},
			wantDrops:     []fleet.TaskDrop{{Task: "T1", Device: devID, Edge: "e1"}},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name: "drop of a task a session holds",
			setup: func(t *testing.T, c *Cache) *SessionWork {
				mustStore(t, c, downTask(1, "T1", false))
				w := mustBegin(t, c, tr098("SN1"), t0)
				if w.Next() == nil {
					t.Fatal("session sent nothing")
				}
				return w
			},
			recs:          []fleet.DownRecord{{Seq: 2, Kind: fleet.DownDrop, TaskID: "T1", Device: devID}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusRunning},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name: "drop of a finished task",
			setup: func(t *testing.T, c *Cache) *SessionWork {
				mustStore(t, c, downTask(1, "T1", false))
				runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(cwmp.Message) cwmp.Message { return &cwmp.RebootResponse{} }, 1)
				return nil
			},
			recs:          []fleet.DownRecord{{Seq: 2, Kind: fleet.DownDrop, TaskID: "T1", Device: devID}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusDone},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name: "drop of an addObject whose instance exists",
			setup: func(t *testing.T, c *Cache) *SessionWork {
				mustStore(t, c, fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Task: &fleet.Task{ID: "T1", Device: devID,
					Name: fleet.TaskAddObject, ObjectName: "InternetGatewayDevice.LANDevice.1.WLANConfiguration.",
					ParameterValues: []fleet.ParameterValue{{Name: "SSID", Value: "guest", Type: cwmp.TypeString}}}})
				w := mustBegin(t, c, tr098("SN1"), t0)
				req := w.Next()
				w.Answer(&cwmp.Answer{Request: req, Response: &cwmp.AddObjectResponse{InstanceNumber: 3}})
				w.Next() // the SPV of its values, never answered
				if err := w.End(false); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			recs:          []fleet.DownRecord{{Seq: 2, Kind: fleet.DownDrop, TaskID: "T1", Device: devID}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusPending},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name:          "drop of a task this edge never had is confirmed",
			recs:          []fleet.DownRecord{{Seq: 1, Kind: fleet.DownDrop, TaskID: "GHOST", Device: devID}},
			wantDrops:     []fleet.TaskDrop{{Task: "GHOST", Device: devID, Edge: "e1"}},
			wantPositions: [2]uint64{1, 0},
		},
		{
			name: "task and its drop in one batch",
			recs: []fleet.DownRecord{downTask(1, "T1", false),
				{Seq: 2, Kind: fleet.DownDrop, TaskID: "T1", Device: devID}},
			wantTasks:     map[string]fleet.TaskStatus{"T1": ""},
			wantDrops:     []fleet.TaskDrop{{Task: "T1", Device: devID, Edge: "e1"}},
			wantPositions: [2]uint64{2, 0},
		},
		{
			name: "fleet-wide records",
			recs: []fleet.DownRecord{
				{Seq: 1, Shared: true, Kind: fleet.DownPreset, Preset: &fleet.Preset{Name: "b/inform", Weight: 1}},
				{Seq: 2, Shared: true, Kind: fleet.DownPreset, Preset: &fleet.Preset{Name: "a", Weight: 2}},
				{Seq: 3, Shared: true, Kind: fleet.DownPresetDelete, Name: "a"},
				{Seq: 4, Shared: true, Kind: fleet.DownFile, File: file},
				{Seq: 5, Shared: true, Kind: fleet.DownRevoke, Name: "edge-9"},
				{Seq: 6, Shared: true, Kind: fleet.DownFile, File: &fleet.FileMeta{Name: "old.bin", SHA256: "x"}},
				{Seq: 7, Shared: true, Kind: fleet.DownFileDelete, Name: "old.bin"},
			},
			wantPositions: [2]uint64{0, 7},
			check: func(t *testing.T, c *Cache) {
				if ps, err := c.Presets(); err != nil || len(ps) != 1 || ps[0].Name != "b/inform" || ps[0].Weight != 1 {
					t.Errorf("Presets = %+v, %v", ps, err)
				}
				if m, err := c.FileMeta("fw.bin"); err != nil || m != *file {
					t.Errorf("FileMeta = %+v, %v", m, err)
				}
				if _, err := c.FileMeta("old.bin"); !errors.Is(err, ErrNotFound) {
					t.Errorf("deleted file: %v", err)
				}
				if r, err := c.Revoked("edge-9"); err != nil || !r {
					t.Errorf("Revoked(edge-9) = %v, %v", r, err)
				}
				if r, _ := c.Revoked("edge-1"); r {
					t.Error("Revoked(edge-1) = true")
				}
			},
		},
		{
			name: "provision scripts",
			recs: []fleet.DownRecord{
				{Seq: 1, Shared: true, Kind: fleet.DownProvision, Provision: &fleet.Provision{Name: "inform", Script: "log('v1');"}},
				{Seq: 2, Shared: true, Kind: fleet.DownProvision, Provision: &fleet.Provision{Name: "gone", Script: "1"}},
				{Seq: 3, Shared: true, Kind: fleet.DownProvision, Provision: &fleet.Provision{Name: "inform", Script: "log('v2');"}},
				{Seq: 4, Shared: true, Kind: fleet.DownProvisionDelete, Name: "gone"},
				{Seq: 5, Shared: true, Kind: fleet.DownProvisionDelete, Name: "never-stored"},
				{Seq: 6, Shared: true, Kind: fleet.DownProvision, Provision: &fleet.Provision{Name: "a/b", Script: "1"}},
				{Seq: 7, Shared: true, Kind: fleet.DownProvision},
			},
			wantPositions: [2]uint64{0, 7},
			check: func(t *testing.T, c *Cache) {
				want := fleet.Provision{Name: "inform", Script: "log('v2');"}
				if ps, err := c.Provisions(); err != nil || len(ps) != 1 || ps[0] != want {
					t.Errorf("Provisions = %+v, %v", ps, err)
				}
				if p, err := c.Provision("inform"); err != nil || p != want {
					t.Errorf("Provision(inform) = %+v, %v", p, err)
				}
				for _, name := range []string{"gone", "a/b", "never-stored", ""} {
					if _, err := c.Provision(name); !errors.Is(err, ErrNotFound) {
						t.Errorf("Provision(%q): %v, want ErrNotFound", name, err)
					}
				}
			},
		},
		{
			name: "unusable records are skipped, their positions kept",
			recs: []fleet.DownRecord{
				downTask(1, "T1", false),
				{Seq: 2, Kind: fleet.DownTask},
				{Seq: 3, Kind: fleet.DownTask, Task: &fleet.Task{ID: "T3", Device: "a/b", Name: fleet.TaskReboot}},
				{Seq: 4, Kind: fleet.DownTask, Task: &fleet.Task{ID: "T4", Device: devID, Name: "explode"}},
				{Seq: 5, Kind: fleet.DownKind(99)},
				{Seq: 1, Shared: true, Kind: fleet.DownPreset, Preset: &fleet.Preset{}},
				downTask(6, "T6", false),
			},
			wantTasks:     map[string]fleet.TaskStatus{"T1": fleet.StatusPending, "T3": "", "T4": "", "T6": fleet.StatusPending},
			wantPositions: [2]uint64{6, 1},
			check: func(t *testing.T, c *Cache) {
				if ps, _ := c.Presets(); len(ps) != 0 {
					t.Errorf("Presets = %+v", ps)
				}
			},
		},
		{
			name: "records at or below the stored position change nothing",
			setup: func(t *testing.T, c *Cache) *SessionWork {
				mustStore(t, c, downTask(5, "T5", false))
				return nil
			},
			recs:          []fleet.DownRecord{downTask(3, "T3", false), {Seq: 5, Kind: fleet.DownCancel, TaskID: "T5"}, downTask(6, "T6", false)},
			wantTasks:     map[string]fleet.TaskStatus{"T3": "", "T5": fleet.StatusPending, "T6": fleet.StatusPending},
			wantPositions: [2]uint64{6, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newDevice(t)
			if tt.setup != nil {
				if w := tt.setup(t, c); w != nil {
					defer w.End(false)
				}
			}
			dropsBefore := len(outboxDrops(t, c))
			mustStore(t, c, tt.recs...)
			for id, want := range tt.wantTasks {
				got, err := c.Task(id)
				switch {
				case want == "" && !errors.Is(err, ErrNotFound):
					t.Errorf("task %s: %+v %v, want none", id, got, err)
				case want != "" && (err != nil || got.Status != want):
					t.Errorf("task %s: %+v %v, want %s", id, got, err, want)
				}
			}
			if drops := outboxDrops(t, c)[dropsBefore:]; !reflect.DeepEqual(drops, tt.wantDrops) && len(drops)+len(tt.wantDrops) > 0 {
				t.Errorf("TaskDrop records %+v, want %+v", drops, tt.wantDrops)
			}
			e, s, err := c.DownlinkAcked()
			if err != nil || [2]uint64{e, s} != tt.wantPositions {
				t.Errorf("DownlinkAcked = %d, %d, %v; want %v", e, s, err, tt.wantPositions)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
			before := dumpDB(t, c)
			mustStore(t, c, tt.recs...)
			if after := dumpDB(t, c); !reflect.DeepEqual(before, after) {
				t.Error("storing the same batch again changed the store")
			}
		})
	}
}

// TestStoreDownlinkPositionsSurviveRestart: what was stored, and where the
// stream stands, is durable and read back after a reopen.
func TestStoreDownlinkPositionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	mustStore(t, c, downTask(7, "T7", false), fleet.DownRecord{Seq: 3, Shared: true, Kind: fleet.DownRevoke, Name: "e9"})
	c.db.Close() // no clean Close
	c2 := openTestCache(t, dir)
	if e, s, err := c2.DownlinkAcked(); err != nil || e != 7 || s != 3 {
		t.Errorf("DownlinkAcked after reopen = %d, %d, %v", e, s, err)
	}
	if _, err := c2.Task("T7"); err != nil {
		t.Errorf("task after reopen: %v", err)
	}
}

func TestStoreDownlinkWake(t *testing.T) {
	var mu sync.Mutex
	var woken []string
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, EdgeID: "e1", OnWake: func(id string) {
		mu.Lock()
		woken = append(woken, id)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	task := func(seq uint64, id, dev string, wake bool, st fleet.TaskStatus) fleet.DownRecord {
		return fleet.DownRecord{Seq: seq, Kind: fleet.DownTask, Wake: wake,
			Task: &fleet.Task{ID: id, Device: dev, Name: fleet.TaskReboot, Status: st, Timestamp: t0}}
	}
	batch := []fleet.DownRecord{
		task(1, "T1", "d1", true, ""),
		task(2, "T2", "d1", true, ""), // same device: one connection request
		task(3, "T3", "d2", false, ""),
		task(4, "T4", "d3", true, fleet.StatusDone),
		task(5, "T5", "d4", true, ""),
	}
	mustStore(t, c, batch...)
	mustStore(t, c, batch...) // a resend wakes nobody
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"d1", "d4"}; !slices.Equal(woken, want) {
		t.Errorf("woken %v, want %v", woken, want)
	}
}

// TestStoreDownlinkSplitsBigBatch: a batch too big for one Badger
// transaction is stored in parts, all of it.
func TestStoreDownlinkSplitsBigBatch(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(1 << 10) }
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, EdgeID: "e1", tune: small})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Values under the value threshold count in full towards the limit.
	big := strings.Repeat("x", 900)
	const n = 300 // ~270 KiB, over the ~150 KiB transaction limit
	var recs []fleet.DownRecord
	for i := range n {
		recs = append(recs, fleet.DownRecord{Seq: uint64(i + 1), Shared: true, Kind: fleet.DownPreset,
			Preset: &fleet.Preset{Name: fmt.Sprintf("p%03d", i), Precondition: big}})
	}
	// One transaction really is too big.
	err = c.update(func(txn *badger.Txn) error {
		for _, r := range recs {
			if err := setRecord(txn, pPreset+r.Preset.Name, r.Preset); err != nil {
				return err
			}
		}
		return errors.New("discard")
	})
	if !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("one transaction of the batch: %v, want ErrTxnTooBig", err)
	}
	mustStore(t, c, recs...)
	ps, err := c.Presets()
	if err != nil || len(ps) != n {
		t.Fatalf("Presets: %d, %v", len(ps), err)
	}
	if _, s, _ := c.DownlinkAcked(); s != n {
		t.Errorf("shared position %d, want %d", s, n)
	}
}

// TestDropRacesSession: a drop and a session that wants the same task,
// started together many times: the task either runs (and no TaskDrop is
// sent) or is dropped (and never sent to the CPE), never both.
func TestDropRacesSession(t *testing.T) {
	c := newDevice(t)
	for i := range 40 {
		id := fmt.Sprintf("R%02d", i)
		seq := uint64(2*i + 1)
		mustStore(t, c, downTask(seq, id, false))
		dropsBefore := len(outboxDrops(t, c))
		var sent bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			w, err := c.BeginSession(tr098("SN1"), InformMeta{Now: t0})
			if err != nil {
				t.Error(err)
				return
			}
			if m := w.Next(); m != nil {
				sent = true
				w.Answer(&cwmp.Answer{Request: m, Response: &cwmp.RebootResponse{}})
			}
			if err := w.End(true); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := c.StoreDownlink([]fleet.DownRecord{{Seq: seq + 1, Kind: fleet.DownDrop, TaskID: id, Device: devID}}); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		dropped := len(outboxDrops(t, c)) - dropsBefore
		if sent == (dropped == 1) || dropped > 1 {
			t.Fatalf("round %d: sent to the CPE %v, TaskDrop records %d: want exactly one of the two", i, sent, dropped)
		}
	}
}

// TestDownlinkWakeReachesDevice: a core task marked Wake makes the node
// send a connection request, so the simulated CPE runs it at once.
func TestDownlinkWakeReachesDevice(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 1, nil)
	waitInformed(t, e, f)
	d := f.Device(0)
	rec := fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Wake: true,
		Task: &fleet.Task{ID: "WAKE1", Device: d.ID(), Name: fleet.TaskGetRPCMethods, Status: fleet.StatusPending, Timestamp: time.Now().UTC()}}
	mustStore(t, e.node.Cache(), rec)
	if got := e.waitTask("WAKE1", 15*time.Second); got.Status != fleet.StatusDone {
		t.Fatalf("task %s", got.Status)
	}
	if m := e.metric(`edgeacs_edge_connection_requests_total{outcome="ok",transport="http"}`); m == "" {
		t.Error("no connection request counted")
	}
}

// TestHealthzReportsBacklog: /healthz and /metrics say how far behind the
// core the edge is.
func TestHealthzReportsBacklog(t *testing.T) {
	c := newDevice(t) // one device, one record
	srv := serveAPI(t, APIConfig{Cache: c, Health: c.Health, Logger: quietLog})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status              string  `json:"status"`
		OutboxLen           int64   `json:"outboxLen"`
		Devices             int64   `json:"devices"`
		SessionsPerSec      float64 `json:"sessionsPerSec"`
		OldestUnsentSeconds float64 `json:"oldestUnsentSeconds"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %d %v", resp.StatusCode, err)
	}
	if h.Status != "ok" || h.OutboxLen != 1 || h.Devices != 1 || h.OldestUnsentSeconds <= 0 {
		t.Errorf("healthz = %+v", h)
	}

	e := startEdge(t, "", nil)
	for _, m := range []string{"edgeacs_edge_outbox_length ", "edgeacs_edge_outbox_oldest_unsent_seconds "} {
		if e.metric(m) == "" {
			t.Errorf("metric %s missing", m)
		}
	}
	if got := e.node.Health(); got.OutboxLen != 0 {
		t.Errorf("standalone node health %+v", got)
	}
}
