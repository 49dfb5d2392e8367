package core

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
)

func TestPlanWaves(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("dev%03d", i)
		}
		return out
	}
	tests := []struct {
		name     string
		n        int
		percents []float64
		min      int
		sizes    []int
		kept     []float64
	}{
		{"issue's example", 200, []float64{10, 50, 100}, 1, []int{20, 80, 100}, []float64{10, 50, 100}},
		{"rounds up", 3, []float64{50, 100}, 1, []int{2, 1}, []float64{50, 100}},
		{"tiny first wave gets one", 5, []float64{1, 10, 100}, 1, []int{1, 1, 3}, []float64{1, 10, 100}},
		{"min wave size", 100, []float64{1, 10, 100}, 10, []int{10, 10, 80}, []float64{1, 10, 100}},
		{"min wave size eats the last waves", 15, []float64{1, 10, 100}, 10, []int{10, 5}, []float64{1, 10}},
		{"waves with no device are dropped", 5, []float64{1, 2, 100}, 5, []int{5}, []float64{1}},
		{"one wave", 7, []float64{100}, 0, []int{7}, []float64{100}},
		{"fractional percent", 1000, []float64{0.5, 100}, 1, []int{5, 995}, []float64{0.5, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ids(tt.n)
			wave, order, sizes, kept := planWaves("r", in, tt.percents, tt.min)
			if !slices.Equal(sizes, tt.sizes) || !slices.Equal(kept, tt.kept) {
				t.Fatalf("sizes %v kept %v, want %v %v", sizes, kept, tt.sizes, tt.kept)
			}
			count := make([]int, len(sizes))
			seen := map[int]bool{}
			for _, id := range in {
				w, ok := wave[id]
				if !ok {
					t.Fatalf("device %s has no wave", id)
				}
				count[w]++
				if seen[order[id]] {
					t.Fatalf("order %d given twice", order[id])
				}
				seen[order[id]] = true
			}
			if !slices.Equal(count, sizes) {
				t.Fatalf("devices per wave %v, sizes %v", count, sizes)
			}
			// Deterministic: the input's order does not matter.
			rev := slices.Clone(in)
			slices.Reverse(rev)
			w2, o2, _, _ := planWaves("r", rev, tt.percents, tt.min)
			for _, id := range in {
				if w2[id] != wave[id] || o2[id] != order[id] {
					t.Fatalf("device %s: wave %d/%d order %d/%d depending on input order", id, wave[id], w2[id], order[id], o2[id])
				}
			}
		})
	}
	// The first wave is a spread, not the lowest IDs, and depends on the
	// rollout's name.
	in := ids(200)
	a, _, _, _ := planWaves("a", in, []float64{10, 100}, 1)
	b, _, _, _ := planWaves("b", in, []float64{10, 100}, 1)
	low, same := 0, 0
	for _, id := range in {
		if a[id] == 0 && id < "dev020" {
			low++
		}
		if a[id] == 0 && b[id] == 0 {
			same++
		}
	}
	if low == 20 || same == 20 {
		t.Fatalf("first wave: %d of the 20 lowest IDs, %d shared by two rollouts", low, same)
	}
}

func TestParseWindow(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		window string
		err    string
		open   []string
		closed []string
	}{
		{window: "", open: []string{"2026-12-02 13:00:00"}},
		{window: "0 2 * * */4h", open: []string{"2026-12-02 02:00:00", "2026-12-02 05:59:59"}, closed: []string{"2026-12-02 01:59:59", "2026-12-02 06:00:00", "2026-12-02 13:00:00"}},
		{window: "14400 0 2 * * *", open: []string{"2026-12-02 02:00:00", "2026-12-02 05:59:59"}, closed: []string{"2026-12-02 06:01:00"}},
		{window: "30 1 * * SAT,SUN/2h30m", open: []string{"2026-12-05 03:59:00"}, closed: []string{"2026-12-05 04:00:01", "2026-12-02 02:00:00"}},
		{window: "0 0 2 * * */90m", open: []string{"2026-12-02 03:29:59"}, closed: []string{"2026-12-02 03:30:00"}},
		{window: "0 22 * * */4h", open: []string{"2026-12-03 01:30:00"}, closed: []string{"2026-12-02 21:59:00"}},
		{window: "0 2 * * */4", err: "duration"},
		{window: "0 2 * */4h", err: "fields"},
		{window: "0 2 * * */1500ms", err: "whole seconds"},
		{window: "0 25 * * */1h", err: "hour"},
		{window: "nonsense", err: "cron"},
	}
	for _, tt := range tests {
		sch, err := ParseWindow(tt.window)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseWindow(%q) = %v, want an error naming %q", tt.window, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", tt.window, err)
			continue
		}
		if tt.window == "" && sch != nil {
			t.Errorf("empty window parsed to %v", sch)
		}
		for _, s := range tt.open {
			if !windowOpen(tt.window, at(s)) {
				t.Errorf("window %q closed at %s", tt.window, s)
			}
		}
		for _, s := range tt.closed {
			if windowOpen(tt.window, at(s)) {
				t.Errorf("window %q open at %s", tt.window, s)
			}
		}
	}
}

func TestFaultRateExceeded(t *testing.T) {
	tests := []struct {
		faulted, tolerated, size int
		max                      float64
		want                     bool
	}{
		{0, 0, 20, 0, false},
		{1, 0, 20, 0, true},    // 0: the first fault pauses
		{2, 0, 20, 0.1, false}, // exactly the rate is allowed
		{3, 0, 20, 0.1, true},
		{1, 0, 100, 0.02, false},
		{3, 0, 100, 0.02, true},
		{3, 2, 100, 0.02, false}, // a resume accepted two
		{5, 0, 0, 0, false},      // an empty wave never pauses
		{7, 0, 10, 1, false},
	}
	for _, tt := range tests {
		if got := faultRateExceeded(tt.faulted, tt.tolerated, tt.size, tt.max); got != tt.want {
			t.Errorf("faultRateExceeded(%d, %d, %d, %v) = %v, want %v", tt.faulted, tt.tolerated, tt.size, tt.max, got, tt.want)
		}
	}
}

// TestPlanStep: the leader's decisions from stored state, table-driven
// over one device's situation, then the wave rules.
func TestPlanStep(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	base := func() *Rollout {
		return &Rollout{Name: "r", Version: "2.0", WaveSizes: []int{1, 1}, Percents: []float64{50, 100}, MaxFaultRate: 1,
			State: RolloutRunning, Wave: 0, Timeout: time.Minute, WaveStarted: []time.Time{now, {}}, WaveFinished: make([]time.Time, 2), Tolerated: make([]int, 2)}
	}
	task := func(st fleet.TaskStatus, f *fleet.TaskFault) *fleet.Task {
		return &fleet.Task{ID: "T", Status: st, Fault: f}
	}
	moves := []struct {
		name  string
		dev   RolloutDevice
		obs   rolloutObs
		to    string
		fault string
	}{
		{"done on the new version", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now}, rolloutObs{exists: true, version: "2.0", task: task(fleet.StatusDone, nil)}, RDDone, ""},
		{"transferred, old version", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now}, rolloutObs{exists: true, version: "1.0", task: task(fleet.StatusDone, nil)}, RDNotBack, ""},
		{"download fault", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now}, rolloutObs{exists: true, task: task(fleet.StatusFault, &fleet.TaskFault{Code: "9010"})}, RDFaulted, "9010"},
		{"expired", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now}, rolloutObs{exists: true, task: task(fleet.StatusExpired, nil)}, RDFaulted, "expired"},
		{"task cancelled", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now}, rolloutObs{exists: true}, RDFaulted, FaultTaskGone},
		{"still running", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now}, rolloutObs{exists: true, task: task(fleet.StatusRunning, nil)}, "", ""},
		{"running too long", RolloutDevice{State: RDDownloading, Task: "T", Dispatched: now.Add(-2 * time.Minute)}, rolloutObs{exists: true, task: task(fleet.StatusPending, nil)}, RDFaulted, FaultRolloutTimeout},
		{"back on the new version", RolloutDevice{State: RDNotBack, Task: "T", Dispatched: now, Transferred: now}, rolloutObs{exists: true, version: "2.0"}, RDDone, ""},
		{"back on the old version", RolloutDevice{State: RDNotBack, Task: "T", Dispatched: now, Transferred: now}, rolloutObs{exists: true, version: "1.0", lastInform: now.Add(time.Second)}, RDFaulted, FaultVersionUnchanged},
		{"not back yet", RolloutDevice{State: RDNotBack, Task: "T", Dispatched: now, Transferred: now}, rolloutObs{exists: true, version: "1.0", lastInform: now.Add(-time.Second)}, "", ""},
		{"never back", RolloutDevice{State: RDNotBack, Task: "T", Dispatched: now.Add(-2 * time.Minute), Transferred: now}, rolloutObs{exists: true, version: "1.0"}, RDFaulted, FaultNotBack},
	}
	for _, tt := range moves {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.dev
			d.Device, d.Wave = "d1", 0
			other := &RolloutDevice{Device: "d2", Wave: 1, Order: 1, State: RDPending}
			s := planStep(base(), []*RolloutDevice{&d, other}, map[string]rolloutObs{"d1": tt.obs}, now, func() string { return "new" })
			var got RolloutMove
			if len(s.Moves) == 1 {
				got = s.Moves[0]
			} else if len(s.Moves) > 1 {
				t.Fatalf("moves %+v", s.Moves)
			}
			if got.To != tt.to || got.Fault != tt.fault || (got.To != "" && (got.From != d.State || got.Task != "T")) {
				t.Fatalf("move %+v, want to %q fault %q", got, tt.to, tt.fault)
			}
			if tt.fault == FaultRolloutTimeout && !got.Cancel {
				t.Fatal("a timed-out download is not cancelled")
			}
		})
	}

	// Wave rules over two one-device waves.
	d1 := func(st string) *RolloutDevice { return &RolloutDevice{Device: "d1", Wave: 0, State: st, Fault: "9010"} }
	d2 := &RolloutDevice{Device: "d2", Wave: 1, Order: 1, State: RDPending}
	obs := map[string]rolloutObs{"d2": {exists: true, edge: "e1"}}
	finished := func(r *Rollout, ago time.Duration) *Rollout { r.WaveFinished[0] = now.Add(-ago); return r }
	for _, tt := range []struct {
		name string
		r    *Rollout
		d1   string
		want string // what the step does
	}{
		{"first wave done: finished, soak 0, next starts and dispatches", base(), RDDone, "finish start dispatch"},
		{"soak not over", func() *Rollout { r := finished(base(), time.Second); r.Soak = time.Minute; return r }(), RDDone, ""},
		{"soak over", func() *Rollout { r := finished(base(), 2*time.Minute); r.Soak = time.Minute; return r }(), RDDone, "start dispatch"},
		{"window closed", func() *Rollout { r := finished(base(), time.Hour); r.Window = "0 2 * * */1h"; return r }(), RDDone, ""},
		{"window open", func() *Rollout { r := finished(base(), time.Hour); r.Window = "0 11 * * */2h"; return r }(), RDDone, "start dispatch"},
		{"faults over the rate pause", func() *Rollout { r := base(); r.MaxFaultRate = 0.5; return r }(), RDFaulted, "finish pause"},
		{"faults a resume accepted do not", func() *Rollout { r := base(); r.MaxFaultRate = 0.5; r.Tolerated[0] = 1; return r }(), RDFaulted, "finish start dispatch"},
		{"paused: finishes, starts nothing", func() *Rollout { r := base(); r.State = RolloutPaused; return r }(), RDDone, "finish"},
		{"first wave still running", base(), RDDownloading, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dd := d1(tt.d1)
			if tt.d1 == RDDownloading {
				dd.Task, dd.Dispatched = "T", now
				obs["d1"] = rolloutObs{exists: true, task: task(fleet.StatusRunning, nil)}
			} else {
				delete(obs, "d1")
			}
			s := planStep(tt.r, []*RolloutDevice{dd, d2}, obs, now, func() string { return "new" })
			var did []string
			if len(s.Finished) > 0 {
				did = append(did, "finish")
			}
			if s.Pause != "" {
				did = append(did, "pause")
			}
			if s.Start > 0 {
				did = append(did, "start")
			}
			if len(s.Dispatch) > 0 {
				did = append(did, "dispatch")
			}
			if got := strings.Join(did, " "); got != tt.want {
				t.Fatalf("step %+v does %q, want %q", s, got, tt.want)
			}
			if s.Pause != "" && !strings.Contains(s.Pause, "9010 ×1") {
				t.Fatalf("pause reason %q names no fault code", s.Pause)
			}
		})
	}

	// Per-edge cap: three downloading at e1, cap 4: one more of e1, all of e2.
	r := base()
	r.WaveSizes, r.PerEdge = []int{8}, 4
	var devs []*RolloutDevice
	o := map[string]rolloutObs{}
	for i := range 8 {
		d := &RolloutDevice{Device: fmt.Sprintf("d%d", i), Order: i, State: RDPending, Edge: "e1"}
		if i < 3 {
			d.State, d.Task, d.Dispatched = RDDownloading, "T", now
			o[d.Device] = rolloutObs{exists: true, edge: "e1", task: task(fleet.StatusRunning, nil)}
		} else {
			edge := "e1"
			if i >= 5 {
				edge = "e2"
			}
			o[d.Device] = rolloutObs{exists: true, edge: edge}
		}
		devs = append(devs, d)
	}
	s := planStep(r, devs, o, now, func() string { return "new" })
	var got []string
	for _, dp := range s.Dispatch {
		got = append(got, dp.Device)
	}
	if !slices.Equal(got, []string{"d3", "d5", "d6", "d7"}) {
		t.Fatalf("dispatched %v, want d3 (e1's last slot) and d5-d7 (e2)", got)
	}
}

// TestRolloutFSM drives a rollout through the API and the leader's loop
// on one node, playing the edges: it answers each download task and
// reports the device on its new version, except one device that comes
// back on the old one. Then it checks the controls and that a snapshot
// carries the rollout.
func TestRolloutFSM(t *testing.T) {
	n := newCluster(t, 1, func(c *Config) { c.RolloutTick = 20 * time.Millisecond })[0]
	const root = "InternetGatewayDevice.DeviceInfo.SoftwareVersion"
	for i := range 10 {
		edge := "e1"
		if i%2 == 1 {
			edge = "e2"
		}
		ver := "1.0"
		if i == 9 {
			ver = "2.0" // already there: skipped
		}
		mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta(fmt.Sprintf("dev%d", i), edge, root, ver)})
	}
	mustApplyNode(t, n, Command{Op: OpPutFileMeta, File: &fleet.FileMeta{Name: "fw.bin", FileType: "1 Firmware Upgrade Image", Version: "2.0", Size: 1, SHA256: strings.Repeat("a", 64)}})

	for _, bad := range []struct{ body, names string }{
		{`{"name": "x", "file": "nope.bin", "filter": "true"}`, "no such file"},
		{`{"name": "x", "file": "fw.bin", "filter": "true", "waves": [{"percent": 50}]}`, "100 percent"},
		{`{"name": "x", "file": "fw.bin", "filter": "true", "window": "0 2 * */4h"}`, "window"},
		{`{"name": "x", "file": "fw.bin", "filter": "true", "mode": "now"}`, "mode"},
		{`{"name": "x", "file": "fw.bin", "filter": "DeviceID.ID = \"none\""}`, "no device needs"},
		{`{"name": "x", "file": "fw.bin", "filter": "((("}`, "filter"},
		{`{"name": "x", "file": "fw.bin", "filter": "true", "maxFaultRate": 2}`, "maxFaultRate"},
	} {
		if code, _, body := httpDo(t, "POST", api(n, "/rollouts"), bad.body, nil); code != 400 || !strings.Contains(body, bad.names) {
			t.Errorf("POST %s: %d %s, want 400 naming %q", bad.body, code, body, bad.names)
		}
	}

	var v fleet.RolloutView
	if code := do(t, "POST", api(n, "/rollouts"), `{"name": "r1", "file": "fw.bin", "filter": "true", "waves": [{"percent": 50}, {"percent": 100}],
		"maxFaultRate": 0.5, "concurrency": {"perEdge": 2}, "mode": "next-inform", "timeout": "1m"}`, &v); code != 201 {
		t.Fatalf("create: %d", code)
	}
	if v.Total != 9 || v.Skipped != 1 || len(v.Waves) != 2 || v.Waves[0].Total != 5 || v.Waves[1].Total != 4 {
		t.Fatalf("created %+v", v)
	}
	if code := do(t, "POST", api(n, "/rollouts"), `{"name": "r1", "file": "fw.bin", "filter": "true"}`, nil); code != 409 {
		t.Fatalf("second create: %d, want 409", code)
	}

	// Play the edges until the rollout settles; dev3 comes back on 1.0.
	answered := map[string]bool{}
	maxInflight := map[string]int{}
	var late *fleet.DeviceDelta
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, devs, err := n.fsm.Rollout("r1")
		if err != nil {
			t.Fatal(err)
		}
		if r.State != RolloutRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout stuck: %+v", rolloutView(r, devs, false, time.Now()))
		}
		inflight := map[string]int{}
		for _, d := range devs {
			if d.State == RDDownloading {
				inflight[d.Edge]++
			}
			if d.State == RDNotBack && late != nil && late.Device == d.Device {
				// The inform on the old version comes after the transfer
				// the rollout recorded, however long the loop took to see it.
				late.LastInform = d.Transferred.Add(time.Second)
				mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: late})
				late = nil
			}
			if d.State != RDDownloading || answered[d.Task] {
				continue
			}
			tk, err := n.fsm.Task(d.Task)
			if err != nil || tk.Rollout != "r1" || tk.FileName != "fw.bin" || tk.Name != fleet.TaskDownload {
				t.Fatalf("task of %s: %+v %v", d.Device, tk, err)
			}
			answered[d.Task] = true
			ver := "2.0"
			if d.Device == "dev3" {
				ver = "1.0"
			}
			dl := delta(d.Device, d.Edge, root, ver)
			dl.LastInform = time.Now().UTC()
			mustApplyNode(t, n, Command{Op: OpTaskResult, TaskID: d.Task, Status: fleet.StatusDone})
			if d.Device == "dev3" {
				late = dl // informs once the rollout saw the transfer
				continue
			}
			mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: dl})
		}
		for e, k := range inflight {
			maxInflight[e] = max(maxInflight[e], k)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	r, devs, err := n.fsm.Rollout("r1")
	if err != nil {
		t.Fatal(err)
	}
	v = rolloutView(r, devs, true, time.Now())
	if r.State != RolloutDone || v.Done != 8 || v.Faulted != 1 || v.Faults[FaultVersionUnchanged] != 1 ||
		len(v.Devices[RDFaulted]) != 1 || v.Devices[RDFaulted][0].Device != "dev3" || len(answered) != 9 {
		t.Fatalf("settled: %s (%s) %+v faults %v, %d tasks", r.State, r.Reason, v.RolloutCounts, v.Faults, len(answered))
	}
	for e, k := range maxInflight {
		if k > 2 {
			t.Errorf("edge %s had %d downloads at once, cap 2", e, k)
		}
	}

	// Retry puts dev3 back; it gets a second task.
	if code := do(t, "POST", api(n, "/rollouts/r1/retry"), nil, &v); code != 200 || v.State != RolloutRunning || v.Pending != 1 {
		t.Fatalf("retry: %d %+v", code, v)
	}
	if code := do(t, "POST", api(n, "/rollouts/r1/pause"), nil, &v); code != 200 || v.State != RolloutPaused {
		t.Fatalf("pause: %d %+v", code, v)
	}
	if code, _, body := httpDo(t, "DELETE", api(n, "/rollouts/r1"), "", nil); code != 409 || !strings.Contains(body, "abort it first") {
		t.Fatalf("delete a paused rollout: %d %s, want 409 saying to abort it", code, body)
	}
	if code := do(t, "POST", api(n, "/rollouts/r1/abort"), nil, &v); code != 200 || v.State != RolloutAborted || v.Cancelled != 1 {
		t.Fatalf("abort: %d %+v", code, v)
	}
	if code := do(t, "POST", api(n, "/rollouts/r1/resume"), nil, nil); code != 409 {
		t.Fatalf("resume after abort: %d, want 409", code)
	}
	var list []fleet.RolloutView
	if code := do(t, "GET", api(n, "/rollouts"), nil, &list); code != 200 || len(list) != 1 || list[0].Devices != nil {
		t.Fatalf("list: %d %+v", code, list)
	}
	if code := do(t, "GET", api(n, "/rollouts/nope"), nil, nil); code != 404 {
		t.Fatalf("unknown rollout: %d", code)
	}

	// A snapshot carries the rollout and its devices.
	g := mustFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(persist(t, n.fsm)))); err != nil {
		t.Fatal(err)
	}
	r2, devs2, err := g.Rollout("r1")
	if err != nil || r2.State != RolloutAborted || len(devs2) != 9 {
		t.Fatalf("restored rollout: %+v, %d devices, %v", r2, len(devs2), err)
	}

	// An aborted rollout can be deleted, devices and all; its tasks stay.
	if code, _, body := httpDo(t, "DELETE", api(n, "/rollouts/r1"), "", nil); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code := do(t, "GET", api(n, "/rollouts/r1"), nil, nil); code != 404 {
		t.Fatalf("deleted rollout: %d, want 404", code)
	}
	if code := do(t, "DELETE", api(n, "/rollouts/r1"), nil, nil); code != 404 {
		t.Fatalf("second delete: %d, want 404", code)
	}
	if err := n.fsm.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pRolloutDev), nil, func(k, _ []byte) (bool, error) {
			return false, fmt.Errorf("left behind: %q", k)
		})
	}); err != nil {
		t.Fatal(err)
	}
	for id := range answered {
		if tk, err := n.fsm.Task(id); err != nil || tk.Rollout != "r1" {
			t.Fatalf("task %s after the delete: %+v %v", id, tk, err)
		}
	}
}

// TestRolloutStepIdempotent applies the same step twice, as a new leader
// might propose what its predecessor already committed: one task per
// device, whatever the repeats.
func TestRolloutStepIdempotent(t *testing.T) {
	f := mustFSM(t)
	for i := range 3 {
		mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta(fmt.Sprintf("dev%d", i), "e1")})
	}
	ro := &Rollout{Name: "r", File: "fw.bin", Version: "2.0", Percents: []float64{100}, WaveSizes: []int{3}, Mode: RolloutModeWake}
	var devs []*RolloutDevice
	for i := range 3 {
		devs = append(devs, &RolloutDevice{Device: fmt.Sprintf("dev%d", i), Order: i})
	}
	mustApply(t, f, Command{Op: OpRolloutCreate, Rollout: ro, RolloutDevices: devs})
	step := &RolloutStep{Start: 1, Dispatch: []RolloutDispatch{
		{Device: "dev0", Task: "01J00000000000000000000000"}, {Device: "dev1", Task: "01J00000000000000000000001"}}}
	mustApply(t, f, Command{Op: OpRolloutStep, Name: "r", RolloutStep: step})
	// The same again, and a stale one with other task IDs.
	mustApply(t, f, Command{Op: OpRolloutStep, Name: "r", RolloutStep: step})
	mustApply(t, f, Command{Op: OpRolloutStep, Name: "r", RolloutStep: &RolloutStep{Start: 1, Dispatch: []RolloutDispatch{
		{Device: "dev0", Task: "01J00000000000000000000002"}, {Device: "dev2", Task: "01J00000000000000000000003"}}}})
	ts, _, err := f.Tasks(TaskFilter{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, tk := range ts {
		per[tk.Device]++
	}
	if len(ts) != 3 || per["dev0"] != 1 || per["dev1"] != 1 || per["dev2"] != 1 {
		t.Fatalf("tasks per device %v", per)
	}
	r, rdevs, err := f.Rollout("r")
	if err != nil || r.Wave != 0 {
		t.Fatalf("rollout %+v %v", r, err)
	}
	for _, d := range rdevs {
		if d.State != RDDownloading || d.Attempts != 1 || d.Edge != "e1" {
			t.Fatalf("device %+v", d)
		}
	}
	// A move names the state and task it expects: a repeat is a no-op.
	mv := RolloutMove{Device: "dev0", Task: rdevs[0].Task, From: RDDownloading, To: RDFaulted, Fault: "9010"}
	mustApply(t, f, Command{Op: OpRolloutStep, Name: "r", RolloutStep: &RolloutStep{Moves: []RolloutMove{mv}}})
	mustApply(t, f, Command{Op: OpRolloutControl, Name: "r", Action: RolloutActionRetry})
	mustApply(t, f, Command{Op: OpRolloutStep, Name: "r", RolloutStep: &RolloutStep{Moves: []RolloutMove{mv}}})
	_, rdevs, _ = f.Rollout("r")
	if rdevs[0].State != RDPending {
		t.Fatalf("a repeated move changed a retried device: %+v", rdevs[0])
	}
}
