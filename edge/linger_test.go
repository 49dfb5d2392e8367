package edge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// lingerEdge is an edge whose sessions linger for a minute, far longer
// than any step of a test: whether a session lingered or ended is then a
// state the test can wait for, not a race against the hold.
func lingerEdge(t *testing.T) *testEdge {
	t.Helper()
	return startEdgeWith(t, "", nil, func(n *Node) { n.server.cfg.SessionLinger = time.Minute })
}

// TestOperatorSequenceRidesOneSession is the operator's sequence of issue
// 13 (get, set, get, reboot on one device, each posted with
// ?connection_request&wait once the previous answered): one connection
// request wakes the device, the session lingers after each waited task,
// and the follow-ups run in it. The Reboot ends it at once, and the device
// comes back with M Reboot and 1 BOOT on its own: no second request. The
// edge's shutdown at the end ends a lingering session too (a minute's
// hold would outlast the harness's 20 s wait for Run to return).
func TestOperatorSequenceRidesOneSession(t *testing.T) {
	e := lingerEdge(t)
	f := startFleet(t, e, 1, nil)
	waitInformed(t, e, f)
	id, root := f.Device(0).ID(), f.Device(0).Root()
	waitFor(t, 10*time.Second, "the first sessions to end", func() bool { return e.node.Server().OpenSessions() == 0 })
	crs := f.Stats().ConnectionRequests

	get := `{"name":"getParameterValues","parameterNames":["` + root + `DeviceInfo.ProvisioningCode"]}`
	steps := []struct {
		name, body string
	}{
		{"get", get},
		{"set", `{"name":"setParameterValues","parameterValues":[["` + root + `DeviceInfo.ProvisioningCode","linger-1","xsd:string"]]}`},
		{"get again", get},
		{"reboot", `{"name":"reboot"}`},
	}
	var session time.Time // the LastInform of the session the tasks ran in
	for i, st := range steps {
		posted := time.Now()
		task := e.postTask(id, st.body, "connection_request&wait=10s")
		if task.Status != fleet.StatusDone {
			t.Fatalf("%s: %s %+v", st.name, task.Status, task.Fault)
		}
		// A task run by a held session is stamped when it ran, not when
		// the hold began (before it was posted): a diagnostic's timeout
		// counts from that time.
		if task.Updated.Before(posted) {
			t.Fatalf("%s: updated %s, before it was posted at %s", st.name, task.Updated.Format(time.RFC3339Nano), posted.UTC().Format(time.RFC3339Nano))
		}
		d := e.device(id)
		if i == 0 {
			session = d.LastInform
			if len(d.LastEvents) == 0 || d.LastEvents[0] != cwmp.EventConnectionRequest {
				t.Fatalf("the first task ran in a session with events %v, want one a connection request opened", d.LastEvents)
			}
		} else if !d.LastInform.Equal(session) {
			t.Fatalf("%s ran in a later session (events %v), want the first task's", st.name, d.LastEvents)
		}
		if i == 2 {
			if v := task.Result.ParameterValues; len(v) != 1 || v[0].Value != "linger-1" {
				t.Fatalf("get after set: %+v", v)
			}
		}
	}
	waitFor(t, 10*time.Second, "the device back from its reboot", func() bool {
		d := e.device(id)
		return d.LastInform.After(session) && slices.Contains(d.LastEvents, cwmp.EventBoot) && slices.Contains(d.LastEvents, cwmp.EventMReboot)
	})
	if n := f.Stats().ConnectionRequests - crs; n != 1 {
		t.Errorf("%d connection requests reached the device for the sequence, want 1", n)
	}
	if m := e.metric(`edgeacs_edge_session_lingers_total{outcome="task"} 3`); m == "" {
		t.Errorf("follow-ups counted: %q, want 3", e.metric(`edgeacs_edge_session_lingers_total{outcome="task"}`))
	}
}

// TestLingerOnlyForWaitedTasks: a session lingers after a task someone
// waits for: an API client here, or the core (a downlink task marked
// Wake, its operator's ?connection_request). A task queued with neither
// joins a lingering session, but then the session ends at once, as does
// one woken for a task nobody waits for.
func TestLingerOnlyForWaitedTasks(t *testing.T) {
	e := lingerEdge(t)
	f := startFleet(t, e, 1, nil)
	waitInformed(t, e, f)
	id, root := f.Device(0).ID(), f.Device(0).Root()
	waitFor(t, 10*time.Second, "the first sessions to end", func() bool { return e.node.Server().OpenSessions() == 0 })
	crs := f.Stats().ConnectionRequests
	gpv := func(tid string) *fleet.Task {
		return &fleet.Task{ID: tid, Device: id, Name: fleet.TaskGetParameterValues, Status: fleet.StatusPending,
			Timestamp: time.Now().UTC(), ParameterNames: []string{root + "DeviceInfo.SoftwareVersion"}}
	}
	done := func(tid string) {
		t.Helper()
		waitFor(t, 10*time.Second, "task "+tid+" done", func() bool {
			got, err := e.node.Cache().Task(tid)
			return err == nil && got.Status == fleet.StatusDone
		})
	}
	// ended waits for the task to be final and its session over, not
	// lingering (which would last a minute).
	ended := func(tid string) {
		t.Helper()
		done(tid)
		waitFor(t, 10*time.Second, "the session of task "+tid+" to end", func() bool { return e.node.Server().OpenSessions() == 0 })
	}
	sameSession := func(what string, informed time.Time) {
		t.Helper()
		if d := e.device(id); !d.LastInform.Equal(informed) {
			t.Fatalf("%s ran in a later session (events %v), want the lingering one", what, d.LastEvents)
		}
	}

	// Waited for through the API: the session lingers.
	first := e.postTask(id, `{"name":"getRPCMethods"}`, "connection_request&wait=10s")
	if first.Status != fleet.StatusDone {
		t.Fatalf("first task %s", first.Status)
	}
	informed := e.device(id).LastInform
	if n := e.node.Server().OpenSessions(); n != 1 {
		t.Fatalf("%d sessions open after a waited task, want the one lingering", n)
	}
	// A core task marked Wake runs in it, and the session lingers again:
	// the core's operator waits for it.
	mustStore(t, e.node.Cache(), fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Wake: true, Task: gpv("CORE-FOLLOW-UP")})
	done("CORE-FOLLOW-UP")
	sameSession("the core's task", informed)
	if n := e.node.Server().OpenSessions(); n != 1 {
		t.Fatalf("%d sessions open after the core's task, want the one lingering", n)
	}
	// A task nobody waits for runs in it too; then the session ends.
	if err := e.node.Cache().AddTask(gpv("QUEUED-ONLY")); err != nil {
		t.Fatal(err)
	}
	ended("QUEUED-ONLY")
	sameSession("the queued task", informed)

	// Woken without a wait: the session ends after it.
	if err := e.node.Cache().AddTask(gpv("NOBODY-WAITS")); err != nil {
		t.Fatal(err)
	}
	if err := e.node.Reacher().ConnectionRequest(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	ended("NOBODY-WAITS")
	if n := f.Stats().ConnectionRequests - crs; n != 2 {
		t.Errorf("%d connection requests reached the device, want one per session (2)", n)
	}
}

// TestReacherTokenBucket: the per-device allowance lets Burst requests go
// back to back, then one per MinInterval; a caller that finds it spent
// waits and gives up with ErrRateLimited when its context ends first. The
// CPE sees no more than the allowance, however many callers ask. The
// Reacher's clock is the test's, so nothing depends on timing.
func TestReacherTokenBucket(t *testing.T) {
	e := startEdge(t, "", nil)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	c := newCPE(t, e, "BUCKET1")
	c.crURL = srv.URL + "/cr"
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)

	const interval = time.Hour
	tests := []struct {
		name  string
		burst int
		// steps: advance the clock by this many intervals, then ask n
		// times in a row; want the CPE to have been reached sent times.
		steps []struct{ advance, n, sent int }
	}{
		{"burst 1 is the old minimum interval", 1, []struct{ advance, n, sent int }{
			{0, 3, 1}, {1, 2, 1},
		}},
		{"burst 3", 3, []struct{ advance, n, sent int }{
			{0, 5, 3},  // three back to back, then spent
			{1, 2, 1},  // one interval refills one
			{10, 5, 3}, // a long pause refills up to the burst only
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			r := NewReacher(ReacherConfig{Cache: e.node.Cache(), MinInterval: interval, Burst: tt.burst})
			t.Cleanup(r.Wait)
			r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			for i, st := range tt.steps {
				mu.Lock()
				now = now.Add(time.Duration(st.advance) * interval)
				mu.Unlock()
				before := hits.Load()
				for k := range st.n {
					// A spent allowance means an hour's wait: the short
					// deadline of a request that should find it spent
					// ends that wait, which is the refusal.
					d := 10 * time.Second
					if k >= st.sent {
						d = 50 * time.Millisecond
					}
					ctx, cancel := context.WithTimeout(context.Background(), d)
					err := r.ConnectionRequest(ctx, c.id())
					cancel()
					if k < st.sent && err != nil {
						t.Fatalf("step %d request %d: %v, want it sent", i, k, err)
					}
					if k >= st.sent && !errors.Is(err, ErrRateLimited) {
						t.Fatalf("step %d request %d: %v, want ErrRateLimited", i, k, err)
					}
				}
				if got := int(hits.Load() - before); got != st.sent {
					t.Fatalf("step %d: the CPE was reached %d times, want %d", i, got, st.sent)
				}
			}
		})
	}

	// A flood of concurrent callers gets no more than the allowance.
	t.Run("flood", func(t *testing.T) {
		r := NewReacher(ReacherConfig{Cache: e.node.Cache(), MinInterval: interval, Burst: 3})
		t.Cleanup(r.Wait)
		before := hits.Load()
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				if err := r.ConnectionRequest(ctx, c.id()); err != nil && !errors.Is(err, ErrRateLimited) && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("flood: %v", err)
				}
			}()
		}
		wg.Wait()
		r.Wait() // a request the callers gave up on still reaches the CPE
		if got := hits.Load() - before; got < 1 || got > 3 {
			t.Fatalf("50 concurrent callers reached the CPE %d times, want 1 to 3", got)
		}
	})
}

// TestReacherForgetsFullBuckets: the per-device state is dropped once the
// device's allowance is whole again (forgetting it then loosens nothing),
// so the table holds only devices asked recently.
func TestReacherForgetsFullBuckets(t *testing.T) {
	r := NewReacher(ReacherConfig{MinInterval: time.Second, Burst: 4})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	// 6,000 + 1,166 + the one in flight: 7,167, one short of a sweep
	// point (4,096 + 3×1,024).
	const old, recent = 6000, 1166
	r.mu.Lock()
	for i := range old + recent {
		st := &crState{tokens: 3, at: now}
		if i >= old {
			st.at = now.Add(4 * time.Second) // asked after the clock moves below
		}
		r.devices["dev-"+strconv.Itoa(i)] = st
	}
	busy := &crState{tokens: 0, at: now, inflight: make(chan struct{})}
	r.devices["in-flight"] = busy
	now = now.Add(4 * time.Second) // the old ones have refilled (1 token/s up to 4)
	r.sweepLocked()                // not a sweep point: nothing may go
	if len(r.devices) != old+recent+1 {
		r.mu.Unlock()
		t.Fatalf("swept at %d entries, off the 1,024-step schedule", old+recent+1)
	}
	r.devices["one-more"] = &crState{tokens: 3, at: now}
	r.sweepLocked() // 7,168: a sweep point
	n, kept := len(r.devices), r.devices["in-flight"] == busy
	r.mu.Unlock()
	if want := recent + 2; n != want {
		t.Errorf("%d entries after the sweep, want %d (the recent, the one in flight, the new one)", n, want)
	}
	if !kept {
		t.Error("a device with a request in flight was forgotten")
	}
}
