package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/leakcheck"
	"github.com/hashicorp/raft"
)

func testLogger() *slog.Logger {
	if os.Getenv("CORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig has short timeouts for loopback clusters; they stay generous
// enough for -race on a busy two-core machine.
func testConfig(t testing.TB, id string) Config {
	dir := t.TempDir()
	stageTestSecret(t, dir)
	return Config{
		ID: id, DataDir: dir, RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0",
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		RaftNoSync: true, RaftLogLevel: "error", ApplyTimeout: 5 * time.Second,
	}
}

type testNode struct {
	*Node
	cfg  Config
	stop func()
}

// startNode creates and runs a node; stop (also run at cleanup) closes it
// and waits for Run to return.
func startNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	n, err := New(cfg, testLogger())
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			t.Logf("node %s: run: %v", cfg.ID, err)
		}
	}()
	var once sync.Once
	tn := &testNode{Node: n, cfg: cfg}
	tn.stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(tn.stop)
	return tn
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newCluster bootstraps the first node and joins the rest through its API.
func newCluster(t testing.TB, size int, tweak func(*Config)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range size {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1))
		if tweak != nil {
			tweak(&cfg)
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = nodes[0].RaftAddr()
		}
		nodes = append(nodes, startNode(t, cfg))
		if i == 0 {
			if _, err := nodes[0].WaitForLeader(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "all nodes to join", 15*time.Second, func() bool { return clusterReady(nodes) })
	waitTestToken(t, nodes...)
	return nodes
}

// clusterReady: every node sees all members, the same leader, and has
// applied what the leader applied.
func clusterReady(nodes []*testNode) bool {
	var leader *testNode
	for _, n := range nodes {
		if n.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		return false
	}
	st, err := leader.Status()
	if err != nil || len(st.Servers) != len(nodes) {
		return false
	}
	for _, s := range st.Servers {
		if s.APIAddr == "" {
			return false
		}
	}
	for _, n := range nodes {
		if _, id := n.raft.LeaderWithID(); string(id) != leader.ID() || n.fsm.AppliedIndex() < leader.fsm.AppliedIndex() {
			return false
		}
	}
	return true
}

func leaderOf(t testing.TB, nodes []*testNode) *testNode {
	t.Helper()
	var l *testNode
	waitFor(t, "a leader", 15*time.Second, func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

func followerOf(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if !n.IsLeader() {
			return n
		}
	}
	return nil
}

// do sends a request to a node's API and decodes a JSON answer into out.
func do(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode
}

func api(n *testNode, path string) string { return "http://" + n.APIAddr() + "/api/v1" + path }

func mustApplyNode(t testing.TB, n *testNode, cmd Command) Result {
	t.Helper()
	r := n.Apply(context.Background(), cmd)
	if r.Err != nil {
		t.Fatalf("apply %v: %v", cmd.Op, r.Err)
	}
	return r
}

// applyViaLeader applies cmd on whichever of nodes leads, following the
// leadership for up to d. With the short test timeouts a busy machine
// (-race, parallel packages, FSM snapshots) can stall a process past the
// leader lease, and raft then legitimately elects again; Node.Apply is
// leader-only and reports that as ErrNotLeader, either because raft refused
// the entry or because leadership was lost while committing it. In the
// second case the command may already be in the log, so it is sent again:
// only idempotent commands may be passed here.
func applyViaLeader(t testing.TB, nodes []*testNode, d time.Duration, cmd Command) Result {
	t.Helper()
	deadline := time.Now().Add(d)
	lastErr := fmt.Errorf("%w among %d nodes", ErrNoLeader, len(nodes))
	for {
		for _, n := range nodes {
			if !n.IsLeader() {
				continue
			}
			r := n.Apply(context.Background(), cmd)
			if r.Err == nil {
				return r
			}
			if !errors.Is(r.Err, ErrNotLeader) {
				t.Fatalf("apply %v on %s: %v", cmd.Op, n.ID(), r.Err)
			}
			lastErr = fmt.Errorf("on %s: %w", n.ID(), r.Err)
			t.Logf("apply %v: leadership moved, following it: %v", cmd.Op, lastErr)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("apply %v: no leader committed it within %v; last error: %v", cmd.Op, d, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClusterReplicationAndForwarding(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	follower := followerOf(nodes)
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.B", "1")})

	// Writes through a follower are forwarded; the client sees the leader's answer.
	preset := `{"weight": 0, "channel": "", "events": {"1 BOOT": true}, "precondition": "", "provisions": [["refresh", "InternetGatewayDevice.DeviceInfo"]]}`
	if code := do(t, "PUT", api(follower, "/presets/boot"), preset, nil); code != 200 {
		t.Fatalf("PUT preset via follower: %d", code)
	}
	var task fleet.Task
	if code := do(t, "POST", api(follower, "/devices/dev1/tasks"), `{"name": "reboot"}`, &task); code != 202 || task.ID == "" {
		t.Fatalf("POST task via follower: %d %+v", code, task)
	}
	var multi struct {
		Count int      `json:"count"`
		IDs   []string `json:"ids"`
	}
	if code := do(t, "POST", api(follower, "/tasks"), `{"filter": {"edge": "e1"}, "task": {"name": "getParameterValues", "parameterNames": ["A.B"]}}`, &multi); code != 202 || multi.Count != 1 {
		t.Fatalf("POST /tasks via follower: %d %+v", code, multi)
	}
	if code := do(t, "POST", api(follower, "/devices/dev1/tags/blue"), nil, nil); code != 204 {
		t.Fatalf("tag via follower: %d", code)
	}
	// A file uploaded to a follower: blob on the follower, metadata everywhere.
	req, _ := http.NewRequest("PUT", api(follower, "/files/fw.bin"), strings.NewReader("firmware-bytes"))
	req.Header.Set("fileType", "1 Firmware Upgrade Image")
	req.Header.Set("oui", "00AA11")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("PUT file via follower: %v %v", err, resp)
	}
	resp.Body.Close()

	// A consistent read on a follower is answered by the leader.
	var got fleet.Task
	if code := do(t, "GET", api(follower, "/tasks/"+task.ID+"?consistent=true"), nil, &got); code != 200 || got.ID != task.ID {
		t.Fatalf("consistent read: %d %+v", code, got)
	}
	for _, n := range nodes {
		waitFor(t, "replication to "+n.ID(), 10*time.Second, func() bool {
			_, e1 := n.fsm.Preset("boot")
			_, e2 := n.fsm.Task(task.ID)
			_, e3 := n.fsm.File("fw.bin")
			d, e4 := n.fsm.Device("dev1", false)
			return e1 == nil && e2 == nil && e3 == nil && e4 == nil && len(d.Tags) == 1
		})
		var ts []fleet.Task
		if code := do(t, "GET", api(n, "/devices/dev1/tasks"), nil, &ts); code != 200 || len(ts) != 2 {
			t.Fatalf("%s: device tasks %d %+v", n.ID(), code, ts)
		}
	}
	var body bytes.Buffer
	resp, err = http.Get(api(follower, "/files/fw.bin/content"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&body, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body.String() != "firmware-bytes" {
		t.Fatalf("file content on follower: %d %q", resp.StatusCode, body.String())
	}
	// ?wait returns as soon as the task is final.
	go func() {
		time.Sleep(50 * time.Millisecond)
		leader.Apply(context.Background(), Command{Op: OpTaskResult, TaskID: task.ID, Status: fleet.StatusDone, Result: &fleet.TaskResult{}})
	}()
	if code := do(t, "GET", api(follower, "/tasks/"+task.ID+"?wait=10s"), nil, &got); code != 200 || got.Status != fleet.StatusDone {
		t.Fatalf("wait for task: %d %+v", code, got)
	}
	if code := do(t, "GET", api(follower, "/tasks/"+multi.IDs[0]+"?wait=50ms"), nil, &got); code != 202 || got.Status != fleet.StatusPending {
		t.Fatalf("wait on pending task: %d %+v", code, got)
	}
	var st ClusterStatus
	if code := do(t, "GET", api(follower, "/cluster"), nil, &st); code != 200 || st.Leader != leader.ID() || len(st.Servers) != 3 || st.Servers[0].Suffrage != "voter" {
		t.Fatalf("cluster status: %d %+v", code, st)
	}
	for _, p := range []struct{ path, want string }{
		{"/healthz", "ok"}, {"/readyz", leader.ID()},
		{"/metrics", "edgeacs_core_raft_state 0"}, {"/metrics", "edgeacs_core_api_seconds_count{code=\"202\",route=\"POST /api/v1/devices/{id}/tasks\"}"},
	} {
		resp, err := http.Get("http://" + follower.APIAddr() + p.path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(raw), p.want) {
			t.Fatalf("GET %s: %d, body lacks %q", p.path, resp.StatusCode, p.want)
		}
	}
	resp, err = http.Get("http://" + leader.APIAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"edgeacs_core_raft_state 2", "edgeacs_core_batch_commands_count", "edgeacs_core_apply_seconds_bucket"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("leader /metrics lacks %q", want)
		}
	}
}

func TestLeaderKillLosesNoAckedWrite(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Writers go through the API of every node in turn, so both the leader
	// and forwarding followers see the kill.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := nodes[(w+i)%len(nodes)]
				var tk fleet.Task
				// A distinct commandKey per request: identical requests would
				// be answered with the pending first one (idempotent creation).
				body := fmt.Sprintf(`{"name": "reboot", "commandKey": "w%d-%d"}`, w, i)
				req, _ := http.NewRequest("POST", api(n, "/devices/dev1/tasks"), strings.NewReader(body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if resp.StatusCode == 202 && json.NewDecoder(resp.Body).Decode(&tk) == nil {
					mu.Lock()
					acked = append(acked, tk.ID)
					mu.Unlock()
				}
				resp.Body.Close()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, "writes before the kill", 10*time.Second, func() bool { return count() >= 50 })
	leader.stop()
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	newLeader := leaderOf(t, rest)
	before := count()
	waitFor(t, "writes after the kill", 15*time.Second, func() bool { return count() >= before+50 })
	close(stop)
	wg.Wait()
	waitFor(t, "survivors to converge", 10*time.Second, func() bool {
		return rest[0].fsm.AppliedIndex() == rest[1].fsm.AppliedIndex() && newLeader.fsm.AppliedIndex() > 0
	})
	for _, n := range rest {
		for _, id := range acked {
			if _, err := n.fsm.Task(id); err != nil {
				t.Fatalf("%s lost acknowledged task %s: %v", n.ID(), id, err)
			}
		}
	}
	t.Logf("%d acknowledged writes, all present on %d survivors; new leader %s", len(acked), len(rest), newLeader.ID())
}

func TestJoinRemove(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	follower := followerOf(nodes)
	victim := nodes[2]
	if victim == leader {
		victim = nodes[1]
	}
	if victim == follower {
		for _, n := range nodes {
			if n != leader && n != victim {
				follower = n
			}
		}
	}
	// Remove through a follower (forwarded to the leader).
	if code := do(t, "POST", api(follower, "/cluster/remove"), map[string]string{"id": victim.ID()}, nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}
	victim.stop()
	var st ClusterStatus
	do(t, "GET", api(leader, "/cluster"), nil, &st)
	if len(st.Servers) != 2 {
		t.Fatalf("after remove: %+v", st)
	}
	if code := do(t, "POST", api(leader, "/cluster/remove"), map[string]string{"id": "ghost"}, nil); code != 404 {
		t.Fatalf("remove unknown: %d", code)
	}
	// A new node joins through the follower.
	cfg := testConfig(t, "n4")
	cfg.Join = follower.RaftAddr()
	n4 := startNode(t, cfg)
	rest := []*testNode{leader, follower, n4}
	waitFor(t, "n4 to join", 15*time.Second, func() bool { return clusterReady(rest) })
	// A membership change on a busy box may move the leadership.
	applyViaLeader(t, rest, 15*time.Second, Command{Op: OpPutPreset, Preset: &fleet.Preset{Name: "p", Provisions: [][]any{{"refresh", "A."}}}})
	waitFor(t, "n4 to replicate", 10*time.Second, func() bool { _, err := n4.fsm.Preset("p"); return err == nil })
}

func TestSnapshotInstallOnLateJoiner(t *testing.T) {
	tweak := func(c *Config) {
		c.SnapshotThreshold = 32
		c.TrailingLogs = 8
		c.SnapshotInterval = 50 * time.Millisecond
	}
	nodes := newCluster(t, 1, tweak)
	leader := nodes[0]
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	for i := range 200 {
		mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta(fmt.Sprintf("d%03d", i), "e1", "A.B", "x")})
	}
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	waitFor(t, "log compaction", 10*time.Second, func() bool {
		first, _ := leader.logs.FirstIndex()
		return first > 1
	})
	cfg := testConfig(t, "n2")
	tweak(&cfg)
	cfg.Join = leader.RaftAddr()
	late := startNode(t, cfg)
	waitFor(t, "late joiner to catch up", 15*time.Second, func() bool { return clusterReady([]*testNode{leader, late}) })
	if late.raft.Stats()["last_snapshot_index"] == "0" {
		t.Fatalf("late joiner caught up without installing a snapshot: %v", late.raft.Stats())
	}
	ds, _, _ := late.fsm.Devices(DeviceFilter{}, "", 0)
	if len(ds) != 201 {
		t.Fatalf("late joiner has %d devices, want 201", len(ds))
	}
}

func TestRestartWithData(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	follower := followerOf(nodes)
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("before", "e1")})
	waitFor(t, "replication", 10*time.Second, func() bool { return clusterReady(nodes) })
	cfg := follower.cfg
	cfg.RaftAddr, cfg.APIAddr = follower.RaftAddr(), follower.APIAddr()
	cfg.Join, cfg.Bootstrap = "", false
	follower.stop()
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("while-down", "e1")})
	restarted := startNode(t, cfg)
	if _, err := restarted.Device("before"); err != nil {
		t.Fatalf("restarted node lost its data: %v", err)
	}
	waitFor(t, "restarted node to catch up", 15*time.Second, func() bool {
		_, err := restarted.fsm.Device("while-down", false)
		return err == nil
	})
	// It serves as a full member again: a write through it is forwarded.
	if code := do(t, "POST", api(restarted, "/devices/before/tags/back"), nil, nil); code != 204 {
		t.Fatalf("write via restarted node: %d", code)
	}
}

// Device is a test shortcut for reading a device without parameters.
func (n *testNode) Device(id string) (*Device, error) { return n.fsm.Device(id, false) }

func decodeJSONBody(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestShutdownLeavesNoGoroutines closes a 3-node cluster and checks that no
// goroutine of raft, badger or this package outlives it.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	for _, n := range nodes {
		n.stop()
	}
	leakcheck.NoGoroutines(t, 10*time.Second, "edgeacs/core.", "hashicorp/raft.", "dgraph-io/badger")
}

// TestFollowerBehindCatchesUpBySnapshot stops a follower, writes past the
// log compaction of both survivors, and restarts it: the entries it missed
// are gone from every log it could be sent, so it must install a snapshot.
func TestFollowerBehindCatchesUpBySnapshot(t *testing.T) {
	tweak := func(c *Config) {
		c.SnapshotThreshold = 32
		c.TrailingLogs = 8
		c.SnapshotInterval = 50 * time.Millisecond
	}
	nodes := newCluster(t, 3, tweak)
	follower := followerOf(nodes)
	var survivors []*testNode
	for _, n := range nodes {
		if n != follower {
			survivors = append(survivors, n)
		}
	}
	cfg := follower.cfg
	cfg.RaftAddr, cfg.APIAddr = follower.RaftAddr(), follower.APIAddr()
	cfg.Join, cfg.Bootstrap = "", false
	// The restarted node never snapshots on its own, so a snapshot it has
	// afterwards can only be one the leader sent it.
	cfg.SnapshotThreshold = 1 << 40
	follower.stop()
	// Its log is closed and can no longer change; the store still answers
	// from its cached bounds. The first entry it misses is the one after.
	missedFrom, _ := follower.logs.LastIndex()
	// Either survivor may lead (now or after an election during the
	// writes), so every write follows the leader. Re-applying a delta for
	// the same new device changes nothing, so a retry after a lost
	// leadership is safe.
	for i := range 150 {
		applyViaLeader(t, survivors, 15*time.Second, Command{Op: OpDeviceDelta, Delta: delta(fmt.Sprintf("late%03d", i), "e1")})
	}
	// Whichever survivor leads when the follower returns must have dropped
	// the entries it needs, so both compact.
	for _, n := range survivors {
		if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("snapshot on %s: %v", n.ID(), err)
		}
	}
	waitFor(t, "compaction past the follower on both survivors", 10*time.Second, func() bool {
		for _, n := range survivors {
			if first, _ := n.logs.FirstIndex(); first <= missedFrom+1 {
				return false
			}
		}
		return true
	})
	restarted := startNode(t, cfg)
	waitFor(t, "the follower to catch up", 15*time.Second, func() bool {
		_, err := restarted.fsm.Device("late149", false)
		return err == nil
	})
	ds, _, _ := restarted.fsm.Devices(DeviceFilter{IDPrefix: "late"}, "", 0)
	if len(ds) != 150 {
		t.Fatalf("caught-up follower has %d of 150 devices", len(ds))
	}
	// Raft records the installed snapshot just after the FSM restore that
	// made the devices visible, so wait for it rather than read it once.
	waitFor(t, "the follower to record an installed snapshot past what it missed", 10*time.Second, func() bool {
		idx, err := strconv.ParseUint(restarted.raft.Stats()["last_snapshot_index"], 10, 64)
		return err == nil && idx > missedFrom
	})
}
