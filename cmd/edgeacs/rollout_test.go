package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// rolloutSystem is three core nodes, two edges and 100 simulated devices
// at each edge, all in this process.
type rolloutSystem struct {
	t      *testing.T
	cores  []*isoCore
	edges  []*isoEdge
	fleets []*sim.Fleet
	devs   map[string]*sim.Device
}

func startRolloutSystem(t *testing.T, perEdge int) *rolloutSystem {
	t.Helper()
	s := &rolloutSystem{t: t, devs: map[string]*sim.Device{}}
	caDir := isoCA(t)
	s.cores = startIsoCores(t, caDir, func(cfg *core.Config) { cfg.RolloutTick = 100 * time.Millisecond }, nil)
	coreAt := map[string]string{}
	var syncAddrs []string
	for _, c := range s.cores {
		coreAt[c.sync] = c.id
		syncAddrs = append(syncAddrs, c.sync)
	}
	for i, id := range []string{"popA", "popB"} {
		e := startIsoEdge(t, id, caDir, syncAddrs, coreAt)
		s.edges = append(s.edges, e)
		f, err := sim.New(sim.Config{
			ACSURL: e.acs, Count: perEdge, Model: sim.ModelMixed, Seed: int64(500 + i),
			Username: isoUser, Password: isoPass, PoolConnections: true, TimeScale: 0.01,
			RebootDelay: 50 * time.Millisecond, Ramp: 200 * time.Millisecond,
			// Periodic informs pick up the task of a device the wake missed
			// (on a loaded box under -race some first sessions time out
			// before the edge sets connection-request credentials).
			InformInterval: 10 * time.Second,
			Logger:         slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		s.fleets = append(s.fleets, f)
		for j := range f.Len() {
			s.devs[f.Device(j).ID()] = f.Device(j)
		}
	}
	if len(s.devs) != 2*perEdge {
		t.Fatalf("simulated devices share IDs: %d of %d", len(s.devs), 2*perEdge)
	}
	for _, f := range s.fleets {
		isoStartFleet(t, f)
	}
	// Homed at the core; most are also provisioned at their edges
	// (connection-request credentials set) by then, so a task wakes them.
	var unprovisioned, unhomed int
	defer func() {
		if t.Failed() {
			t.Logf("at the end: %d devices not provisioned at their edge, %d not homed at the core", unprovisioned, unhomed)
		}
	}()
	isoWait(t, "devices homed at the core", 180*time.Second, func() bool {
		l := s.leader()
		if l == nil {
			return false
		}
		unprovisioned, unhomed = 0, 0
		for i, f := range s.fleets {
			for j := range f.Len() {
				id := f.Device(j).ID()
				if d, err := s.edges[i].node.Cache().Device(id); err != nil || d.CRPassword == "" {
					unprovisioned++
				}
				if cd, err := l.node.FSM().Device(id, false); err != nil || cd.Edge != s.edges[i].id {
					unhomed++
				}
			}
		}
		return unhomed == 0
	})
	t.Logf("devices homed; %d of %d not provisioned yet", unprovisioned, 2*perEdge)
	return s
}

func (s *rolloutSystem) leader() *isoCore { return isoLeader(s.cores) }

// client is an API client of core c.
func (s *rolloutSystem) client(c *isoCore) *client.Client {
	cl, err := client.New(c.node.APIAddr(), client.Options{Token: testSecret, Timeout: 10 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	return cl
}

// upload stores a firmware file of the given version.
func (s *rolloutSystem) upload(cl *client.Client, name, version string) {
	s.t.Helper()
	body := bytes.Repeat([]byte("firmware "+version+"\n"), 512)
	if _, err := cl.UploadFile(context.Background(), bytes.NewReader(body), client.FileUpload{
		Name: name, FileType: "1 Firmware Upgrade Image", Version: version, Size: int64(len(body))}); err != nil {
		s.t.Fatal(err)
	}
}

// create starts a rollout. An answer lost to a leader change (504: the
// outcome is unknown, or 503) is settled by reading the rollout back.
func (s *rolloutSystem) create(cl func() *client.Client, req client.RolloutRequest) (client.Rollout, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := cl().CreateRollout(context.Background(), req)
		if err == nil || errors.Is(err, client.ErrBadRequest) || time.Now().After(deadline) {
			return r, err
		}
		if got, gerr := cl().Rollout(context.Background(), req.Name); gerr == nil {
			return got, nil
		}
		time.Sleep(200 * time.Millisecond) // the election settles
	}
}

// waitRollout polls the rollout at cl until cond holds.
func (s *rolloutSystem) waitRollout(cl func() *client.Client, name, what string, d time.Duration, cond func(client.Rollout) bool) client.Rollout {
	s.t.Helper()
	var last client.Rollout
	deadline := time.Now().Add(d)
	for {
		r, err := cl().Rollout(context.Background(), name)
		if err == nil {
			last = r
			if cond(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("rollout %s: timed out after %v waiting for %s; last: state %s (%s), wave %d, %+v faults %v, err %v",
				name, d, what, last.State, last.Reason, last.Wave, last.Waves, last.Faults, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// rolloutTasks counts the tasks the rollout created, per device, as the
// core holds them.
func (s *rolloutSystem) rolloutTasks(c *isoCore, name string) map[string]int {
	s.t.Helper()
	ts, _, err := c.node.FSM().Tasks(core.TaskFilter{}, "", 0)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int{}
	for _, tk := range ts {
		if tk.Rollout == name {
			if tk.Name != fleet.TaskDownload {
				s.t.Errorf("rollout %s made a %s task", name, tk.Name)
			}
			out[tk.Device]++
		}
	}
	return out
}

func (s *rolloutSystem) downloads() uint64 {
	var n uint64
	for _, f := range s.fleets {
		n += f.Stats().RPCs["Download"]
	}
	return n
}

func (s *rolloutSystem) checkAllOn(version string) {
	s.t.Helper()
	bad := 0
	for id, d := range s.devs {
		v, _ := d.Get(d.Root() + "DeviceInfo.SoftwareVersion")
		if v != version {
			if bad < 5 {
				s.t.Errorf("device %s is on %q, want %q", id, v, version)
			}
			bad++
		}
	}
	if bad > 0 {
		s.t.Errorf("%d devices not on %s", bad, version)
	}
}

// TestRollouts runs three rollouts over 200 simulated devices homed at
// two edges, each in three waves: one that completes; one where 10% of
// the devices fault on download, which pauses after its first wave with
// those faults counted, then completes once the devices are fixed and
// retried; and one whose leader is stopped mid-rollout, which a new leader
// finishes with exactly one task and one download per device.
func TestRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-core, 2-edge, 200-device system")
	}
	if raceEnabled {
		// 200 devices through 3 cores and 2 edges take minutes under the
		// race detector on 2 cores; make test runs this test in its plain
		// pass instead (the rollout FSM and planner are race-tested in core).
		t.Skip("runs without -race: make test's second pass")
	}
	s := startRolloutSystem(t, 100)
	leaderClient := func() *client.Client {
		if l := s.leader(); l != nil {
			return s.client(l)
		}
		return s.client(s.cores[len(s.cores)-1])
	}
	ctx := context.Background()
	cl := leaderClient()
	waves := []client.RolloutWaveSpec{{Percent: 10}, {Percent: 50}, {Percent: 100}}

	t.Run("completes", func(t *testing.T) {
		s.t = t
		s.upload(cl, "fw_v2.0.bin", "2.0")
		before := s.downloads()
		r, err := s.create(leaderClient, client.RolloutRequest{Name: "r2", File: "fw_v2.0.bin", Filter: "true", Waves: waves,
			MaxFaultRate: 0, Soak: "100ms", Timeout: "3m"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Total != 200 || len(r.Waves) != 3 || r.Waves[0].Total != 20 || r.Waves[1].Total != 80 || r.Waves[2].Total != 100 {
			t.Fatalf("plan: total %d, waves %+v", r.Total, r.Waves)
		}
		r = s.waitRollout(leaderClient, "r2", "done", 180*time.Second, func(r client.Rollout) bool { return r.State == "done" })
		if r.Done != 200 || r.Faulted != 0 || r.Edges["popA"].Done != 100 || r.Edges["popB"].Done != 100 {
			t.Errorf("done rollout: done %d faulted %d edges %+v", r.Done, r.Faulted, r.Edges)
		}
		for i, w := range r.Waves {
			if w.Done != w.Total || w.Started.IsZero() || w.Finished.IsZero() || (i > 0 && w.Started.Before(r.Waves[i-1].Finished)) {
				t.Errorf("wave %d: %+v (the one before finished %v)", i+1, w, r.Waves[max(i-1, 0)].Finished)
			}
		}
		s.checkAllOn("2.0")
		if got := s.downloads() - before; got != 200 {
			t.Errorf("devices ran %d downloads, want 200", got)
		}
		if tasks := s.rolloutTasks(s.leader(), "r2"); len(tasks) != 200 {
			t.Errorf("rollout tasks for %d devices, want 200", len(tasks))
		}
	})

	t.Run("pauses on faults, resumes after a fix", func(t *testing.T) {
		s.t = t
		for _, f := range s.fleets {
			f.SetDownloadFaultRate(0.1)
		}
		faulty := 0
		for _, d := range s.devs {
			if d.FaultsDownloads() {
				faulty++
			}
		}
		s.upload(cl, "fw_v3.0.bin", "3.0")
		_, err := s.create(leaderClient, client.RolloutRequest{Name: "r3", File: "fw_v3.0.bin", Filter: "true",
			Waves: []client.RolloutWaveSpec{{Percent: 30}, {Percent: 60}, {Percent: 100}}, MaxFaultRate: 0.02, Soak: "100ms", Timeout: "3m"})
		if err != nil {
			t.Fatal(err)
		}
		r := s.waitRollout(leaderClient, "r3", "paused with wave 1 settled", 180*time.Second, func(r client.Rollout) bool {
			w := r.Waves[0]
			return r.State == "paused" && w.Pending+w.Downloading+w.NotBack == 0
		})
		want := 0
		for _, d := range r.Devices["faulted"] {
			if d.Wave != 0 {
				t.Errorf("device %s of wave %d faulted", d.Device, d.Wave+1)
			}
		}
		for _, st := range []string{"done", "faulted"} {
			for _, d := range r.Devices[st] {
				if d.Wave == 0 && s.devs[d.Device].FaultsDownloads() {
					want++
				}
			}
		}
		if want == 0 {
			t.Fatalf("no device of wave 1 faults downloads (%d of 200 do): pick other seeds", faulty)
		}
		w := r.Waves[0]
		if w.Total != 60 || w.Faulted != want || w.Done != 60-want || r.Faults["9010"] != want || r.Wave != 1 ||
			!r.Waves[1].Started.IsZero() || r.Pending != 140 || !strings.Contains(r.Reason, "wave 1 of 3") {
			t.Fatalf("paused rollout: wave 1 %+v, want %d faulted; faults %v, wave %d, pending %d, reason %q", w, want, r.Faults, r.Wave, r.Pending, r.Reason)
		}
		t.Logf("paused: %s", r.Reason)

		for _, f := range s.fleets {
			f.SetDownloadFaultRate(0)
		}
		if _, err := leaderClient().RolloutAction(ctx, "r3", "retry"); err != nil {
			t.Fatal(err)
		}
		if _, err := leaderClient().RolloutAction(ctx, "r3", "resume"); err != nil {
			t.Fatal(err)
		}
		r = s.waitRollout(leaderClient, "r3", "done", 180*time.Second, func(r client.Rollout) bool { return r.State == "done" })
		if r.Done != 200 || r.Faulted != 0 || len(r.Faults) != 0 {
			t.Errorf("done rollout: done %d faulted %d faults %v", r.Done, r.Faulted, r.Faults)
		}
		retried := 0
		for _, d := range r.Devices["done"] {
			if d.Attempts == 2 {
				retried++
			}
		}
		if retried != want {
			t.Errorf("%d devices took two attempts, want %d", retried, want)
		}
		s.checkAllOn("3.0")
		n := 0
		for _, c := range s.rolloutTasks(s.leader(), "r3") {
			n += c
		}
		if n != 200+want {
			t.Errorf("rollout made %d tasks, want %d", n, 200+want)
		}
	})

	t.Run("leader stopped mid-rollout", func(t *testing.T) {
		s.t = t
		s.upload(cl, "fw_v4.0.bin", "4.0")
		before := s.downloads()
		if _, err := s.create(leaderClient, client.RolloutRequest{Name: "r4", File: "fw_v4.0.bin", Filter: "true", Waves: waves,
			MaxFaultRate: 0, Soak: "200ms", Concurrency: &client.RolloutConcurrency{PerEdge: 20}, Timeout: "3m"}); err != nil {
			t.Fatal(err)
		}
		s.waitRollout(leaderClient, "r4", "wave 2 under way", 180*time.Second, func(r client.Rollout) bool {
			return r.Wave >= 2 && r.Done > 20
		})
		old := s.leader()
		if old == nil {
			t.Fatal("no leader")
		}
		old.stop()
		var rest []*isoCore
		for _, c := range s.cores {
			if c != old {
				rest = append(rest, c)
			}
		}
		isoWait(t, "a new leader", 20*time.Second, func() bool {
			for _, c := range rest {
				if c.node.IsLeader() {
					return true
				}
			}
			return false
		})
		s.cores = rest
		r := s.waitRollout(leaderClient, "r4", "done after the leader change", 180*time.Second, func(r client.Rollout) bool { return r.State == "done" })
		if r.Done != 200 || r.Faulted != 0 {
			t.Errorf("done rollout: done %d faulted %d %v", r.Done, r.Faulted, r.Faults)
		}
		for _, d := range r.Devices["done"] {
			if d.Attempts != 1 {
				t.Errorf("device %s: %d attempts", d.Device, d.Attempts)
			}
		}
		tasks := s.rolloutTasks(s.leader(), "r4")
		doubled := 0
		for _, c := range tasks {
			if c != 1 {
				doubled++
			}
		}
		if len(tasks) != 200 || doubled != 0 {
			t.Errorf("rollout tasks: %d devices, %d with more than one", len(tasks), doubled)
		}
		if got := s.downloads() - before; got != 200 {
			t.Errorf("devices ran %d downloads, want exactly 200", got)
		}
		s.checkAllOn("4.0")
	})
}
