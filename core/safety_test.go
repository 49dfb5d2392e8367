package core

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/edgeacs/edgeacs/internal/testnet"
)

// Tests for issue 10's core items: cluster safety (bootstrap, duplicate
// IDs, status codes that invite duplicate work) and the API's bounds.

// freeAddrs reserves n loopback ports (see internal/testnet). Founding
// members must know each other's Raft addresses before they start.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	return testnet.Addrs(t, n)
}

// httpDo sends one request and returns the status, headers and the error
// message of a JSON error answer (or the raw body).
func httpDo(t *testing.T, method, url, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

// postTasks creates count distinct tasks for device through nodes in
// turn, each under its own Idempotency-Key, retrying a key until it is
// acknowledged (so a retry across a leader change creates nothing twice),
// and returns the acknowledged task IDs.
func postTasks(t *testing.T, nodes []*testNode, device, prefix string, count int) []string {
	t.Helper()
	var ids []string
	for i := range count {
		key := fmt.Sprintf("%s-%d", prefix, i)
		body := fmt.Sprintf(`{"name": "reboot", "commandKey": %q}`, key)
		deadline := time.Now().Add(20 * time.Second)
		for attempt := 0; ; attempt++ {
			var tk fleet.Task
			n := nodes[(i+attempt)%len(nodes)]
			req, _ := http.NewRequest("POST", api(n, "/devices/"+device+"/tasks"), strings.NewReader(body))
			req.Header.Set("Idempotency-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				code := resp.StatusCode
				derr := decodeJSONBody(resp, &tk)
				resp.Body.Close()
				if (code == 200 || code == 202) && derr == nil && tk.ID != "" {
					ids = append(ids, tk.ID)
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not acknowledged within 20s", key)
			}
			time.Sleep(20 * time.Millisecond) // pacing retries, not synchronisation
		}
	}
	return ids
}

func serverSet(t *testing.T, n *testNode) map[string]string {
	t.Helper()
	st, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range st.Servers {
		out[s.ID] = s.Address
	}
	return out
}

// TestWipedFounderRejoinsInsteadOfBootstrapping is the first
// cluster-safety finding: stop the leader, wipe its data directory, run
// the README's command again. The founding command is --bootstrap-expect
// 3 with --join the other two, so the wiped node finds the existing
// cluster and joins it; it never forms a second one, and every write the
// old members acknowledged (before, during and after) is kept everywhere.
func TestWipedFounderRejoinsInsteadOfBootstrapping(t *testing.T) {
	rafts := freeAddrs(t, 3)
	var nodes []*testNode
	for i := range 3 {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1))
		cfg.RaftAddr = rafts[i]
		cfg.BootstrapExpect = 3
		var others []string
		for j, a := range rafts {
			if j != i {
				others = append(others, a)
			}
		}
		cfg.Join = strings.Join(others, ",")
		nodes = append(nodes, startNode(t, cfg))
	}
	waitFor(t, "the three founders to form one cluster", 20*time.Second, func() bool { return clusterReady(nodes) })
	for _, n := range nodes {
		if got := serverSet(t, n); len(got) != 3 {
			t.Fatalf("%s sees members %v, want the three founders", n.ID(), got)
		}
	}
	mustApplyNode(t, leaderOf(t, nodes), Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	acked := postTasks(t, nodes, "dev1", "before", 20)

	leader := leaderOf(t, nodes)
	cfg := leader.cfg
	cfg.RaftAddr = leader.RaftAddr() // the README's command names fixed addresses
	leader.stop()
	var survivors []*testNode
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}

	// The unsafe form is refused outright: --bootstrap with the peers listed.
	unsafe := cfg
	unsafe.BootstrapExpect, unsafe.Bootstrap = 0, true
	if n, err := New(unsafe, testLogger()); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "existing") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("--bootstrap --join with a live cluster: %v, want a refusal naming the existing cluster", err)
	}
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}

	acked = append(acked, postTasks(t, survivors, "dev1", "while-down", 10)...)
	restarted := startNode(t, cfg) // the README's command, on an empty directory
	all := append([]*testNode{restarted}, survivors...)
	waitFor(t, "the wiped node to rejoin and catch up", 30*time.Second, func() bool { return clusterReady(all) })
	acked = append(acked, postTasks(t, all, "dev1", "after", 10)...)
	waitFor(t, "every node to apply everything", 15*time.Second, func() bool { return clusterReady(all) })

	want := serverSet(t, survivors[0])
	for _, n := range all {
		if got := serverSet(t, n); len(got) != 3 || got[cfg.ID] != cfg.RaftAddr || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s sees members %v, want %v: a second cluster", n.ID(), got, want)
		}
		for _, id := range acked {
			if _, err := n.fsm.Task(id); err != nil {
				t.Fatalf("%s lost acknowledged task %s: %v", n.ID(), id, err)
			}
		}
	}
}

// TestBootstrapExpectJoinsExistingCluster: a fresh node started with
// --bootstrap-expect whose peers already form a cluster joins it, even
// when the number of fresh nodes it sees would let it found one.
func TestBootstrapExpectJoinsExistingCluster(t *testing.T) {
	nodes := newCluster(t, 2, nil)
	cfg := testConfig(t, "a0") // the lowest ID: it would be the one to bootstrap
	cfg.BootstrapExpect = 1
	cfg.Join = nodes[0].RaftAddr() + "," + nodes[1].RaftAddr()
	n := startNode(t, cfg)
	all := append([]*testNode{n}, nodes...)
	waitFor(t, "the fresh node to join", 20*time.Second, func() bool { return clusterReady(all) })
	if got := serverSet(t, n); len(got) != 3 {
		t.Fatalf("members %v", got)
	}
}

// TestJoinDuplicateIDRefused: a join naming a live member's ID (even the
// leader's) at another address, or a live member's raft address under
// another ID, is refused with 409 naming the member, and evicts no one.
func TestJoinDuplicateIDRefused(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	follower := followerOf(nodes)
	before := serverSet(t, leader)
	for _, req := range []JoinRequest{
		{ID: follower.ID(), RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"},
		{ID: leader.ID(), RaftAddr: "127.0.0.1:1"},
		{ID: "intruder", RaftAddr: follower.RaftAddr()},
	} {
		var e struct {
			Error string `json:"error"`
		}
		// Through the follower: forwarded, as an operator's would be.
		code := do(t, "POST", api(follower, "/cluster/join"), req, &e)
		member := req.ID
		if req.ID == "intruder" {
			member = follower.ID()
		}
		if code != http.StatusConflict || !strings.Contains(e.Error, member) || !strings.Contains(e.Error, before[member]) || !strings.Contains(e.Error, "replace") {
			t.Fatalf("join %+v: %d %q, want 409 naming member %s at %s", req, code, e.Error, member, before[member])
		}
	}
	if after := serverSet(t, leaderOf(t, nodes)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("members changed: %v → %v", before, after)
	}
	for _, n := range nodes {
		if code, _, body := httpDo(t, "GET", "http://"+n.APIAddr()+"/readyz", "", nil); code != 200 {
			t.Fatalf("%s not ready after refused joins: %d %s", n.ID(), code, body)
		}
	}
}

// TestJoinReplace: with replace (edgeacs cluster join --replace) a node
// takes over a member's ID at a new address. The process it replaced,
// still running, stops serving reads and says why in /readyz.
func TestJoinReplace(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	old := followerOf(nodes)
	var third *testNode
	for _, n := range nodes {
		if n != leader && n != old {
			third = n
		}
	}
	repl := startNode(t, testConfig(t, old.ID())) // fresh: neither bootstraps nor joins
	req := JoinRequest{ID: old.ID(), RaftAddr: repl.RaftAddr(), APIAddr: repl.APIAddr()}
	if code := do(t, "POST", api(leader, "/cluster/join"), req, nil); code != http.StatusConflict {
		t.Fatalf("join without replace: %d, want 409", code)
	}
	req.Replace = true
	var e struct {
		Error string `json:"error"`
	}
	if code := do(t, "POST", api(leader, "/cluster/join"), req, &e); code != 200 {
		t.Fatalf("join with replace: %d %s", code, e.Error)
	}
	waitFor(t, "the replacement to catch up", 20*time.Second, func() bool { return clusterReady([]*testNode{leader, third, repl}) })
	if got := serverSet(t, leader); len(got) != 3 || got[old.ID()] != repl.RaftAddr() {
		t.Fatalf("members after replace: %v", got)
	}
	if _, err := repl.fsm.Device("dev1", false); err != nil {
		t.Fatalf("replacement lacks the data: %v", err)
	}
	waitFor(t, "the replaced process to stop serving", 10*time.Second, func() bool {
		code, _, body := httpDo(t, "GET", "http://"+old.APIAddr()+"/readyz", "", nil)
		return code == http.StatusServiceUnavailable && strings.Contains(body, ErrNotMember.Error())
	})
	if code, _, body := httpDo(t, "GET", api(old, "/devices/dev1"), "", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "serves no reads") {
		t.Fatalf("read on the replaced process: %d %s", code, body)
	}
}

// TestRemovedNodeNotReady: a node removed from the configuration (and
// left running) answers /readyz with 503 and the reason, and refuses
// reads instead of serving its stale state.
func TestRemovedNodeNotReady(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	mustApplyNode(t, leader, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	victim := followerOf(nodes)
	waitFor(t, "replication", 10*time.Second, func() bool { return clusterReady(nodes) })
	if code := do(t, "POST", api(leader, "/cluster/remove"), map[string]string{"id": victim.ID()}, nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}
	waitFor(t, "the removed node's /readyz to give the reason", 10*time.Second, func() bool {
		code, h, body := httpDo(t, "GET", "http://"+victim.APIAddr()+"/readyz", "", nil)
		return code == http.StatusServiceUnavailable && h.Get("Retry-After") != "" &&
			strings.Contains(body, "not in the cluster configuration") && strings.Contains(body, "removed")
	})
	for _, path := range []string{"/devices/dev1", "/devices", "/tasks"} {
		if code, _, body := httpDo(t, "GET", api(victim, path), "", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, ErrNotMember.Error()) {
			t.Fatalf("GET %s on the removed node: %d %s, want 503", path, code, body)
		}
	}
	// A node that never joined says so too.
	lone := startNode(t, testConfig(t, "lone"))
	if code, _, body := httpDo(t, "GET", "http://"+lone.APIAddr()+"/readyz", "", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "no cluster yet") {
		t.Fatalf("fresh node /readyz: %d %s", code, body)
	}
}

// TestRemoveLeaderAnswersSuccess: removing the leader succeeds, and says
// so (it used to answer 503 after it had succeeded, inviting a retry).
func TestRemoveLeaderAnswersSuccess(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	var e struct {
		Error string `json:"error"`
	}
	if code := do(t, "POST", api(leader, "/cluster/remove"), map[string]string{"id": leader.ID()}, &e); code != 200 {
		t.Fatalf("remove the leader: %d %s, want 200", code, e.Error)
	}
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	waitFor(t, "the others to carry on", 20*time.Second, func() bool { return clusterReady(rest) })
	for _, n := range rest {
		if got := serverSet(t, n); len(got) != 2 || got[leader.ID()] != "" {
			t.Fatalf("%s sees members %v", n.ID(), got)
		}
		if _, err := n.fsm.Node(leader.ID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s still has the removed leader registered: %v", n.ID(), err)
		}
	}
	// The removed leader's registration is gone, so followers forward to the new one.
	if code, _, body := httpDo(t, "PUT", api(rest[0], "/devices/after"), `{}`, nil); code != 200 {
		t.Fatalf("write after removing the leader: %d %s", code, body)
	}
}

// TestForwardUnknownOutcome: a follower that sent a write on to the
// leader and lost the answer says the outcome is unknown (504), not 503's
// "retry"; one that could not reach the leader at all, for longer than
// LeaderWait, says 503 with Retry-After.
func TestForwardUnknownOutcome(t *testing.T) {
	// The leader side: a write that lost leadership mid-commit.
	if err := raftError(raft.ErrLeadershipLost); httpapi.Status(err) != http.StatusGatewayTimeout || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("leadership lost: %d %v", httpapi.Status(err), err)
	}

	// Every node's dials go through a layer the test can redirect; the
	// follower's forward to the leader is the one it redirects.
	var mu sync.Mutex
	layers := map[string]*redirectLayer{}
	nodes := newCluster(t, 3, func(c *Config) {
		c.LeaderWait = 300 * time.Millisecond
		c.RaftLayer = func(inner raft.StreamLayer) raft.StreamLayer {
			l := &redirectLayer{StreamLayer: inner}
			mu.Lock()
			layers[inner.Addr().String()] = l
			mu.Unlock()
			return l
		}
	})
	mustApplyNode(t, leaderOf(t, nodes), Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	// A "leader" that reads the whole request and hangs up unanswered.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				io.Copy(io.Discard, req.Body)
			}
			c.Close()
		}
	}()

	// forwardVia posts a task through a follower whose dials to the leader
	// go to dial instead, again if leadership moved meanwhile.
	forwardVia := func(dial func(raft.ServerAddress, time.Duration) (net.Conn, error)) (int, http.Header, string) {
		t.Helper()
		for range 10 {
			leader := leaderOf(t, nodes)
			follower := followerOf(nodes)
			mu.Lock()
			l := layers[follower.RaftAddr()]
			mu.Unlock()
			l.redirect(leader.RaftAddr(), dial)
			follower.peerTr.CloseIdleConnections() // a pooled connection would bypass the redirect
			code, h, body := httpDo(t, "POST", api(follower, "/devices/dev1/tasks"), `{"name": "reboot"}`, nil)
			l.redirect("", nil)
			if _, id := follower.raft.LeaderWithID(); string(id) == leader.ID() {
				return code, h, body
			}
		}
		t.Fatal("leadership kept moving")
		return 0, nil, ""
	}
	code, _, body := forwardVia(func(raft.ServerAddress, time.Duration) (net.Conn, error) {
		return net.Dial("tcp", hole.Addr().String())
	})
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "may or may not have been applied") {
		t.Fatalf("forward whose answer was lost: %d %s, want 504 saying the outcome is unknown", code, body)
	}
	code, h, body := forwardVia(func(addr raft.ServerAddress, _ time.Duration) (net.Conn, error) {
		return nil, fmt.Errorf("dial %s: connection refused by the test", addr)
	})
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "refused by the test") {
		t.Fatalf("forward to an unreachable leader: %d (Retry-After %q) %s, want 503 with Retry-After", code, h.Get("Retry-After"), body)
	}
}

// redirectLayer is a Raft stream layer whose dials to one address a test
// can send elsewhere.
type redirectLayer struct {
	raft.StreamLayer
	mu   sync.Mutex
	addr string
	dial func(raft.ServerAddress, time.Duration) (net.Conn, error)
}

func (l *redirectLayer) redirect(addr string, dial func(raft.ServerAddress, time.Duration) (net.Conn, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addr, l.dial = addr, dial
}

func (l *redirectLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	dial := l.dial
	if string(addr) != l.addr {
		dial = nil
	}
	l.mu.Unlock()
	if dial != nil {
		return dial(addr, timeout)
	}
	return l.StreamLayer.Dial(addr, timeout)
}

// TestTaskCreationIdempotent: without a key, an identical request while
// the first task is pending answers that task (200, Idempotent-Replayed)
// and queues nothing; once it has ended, the same request is a new task.
// A client key answers the first task for good, and refuses a different
// request under it.
func TestTaskCreationIdempotent(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev2", "e1")})
	post := func(device, body string, hdr map[string]string) (int, http.Header, fleet.Task) {
		t.Helper()
		code, h, raw := httpDo(t, "POST", api(n, "/devices/"+device+"/tasks"), body, hdr)
		var tk fleet.Task
		if code/100 == 2 {
			if err := decodeJSONString(raw, &tk); err != nil {
				t.Fatalf("decode %q: %v", raw, err)
			}
		}
		return code, h, tk
	}
	count := func() int {
		ts, _, _ := n.fsm.Tasks(TaskFilter{}, "", 0)
		return len(ts)
	}

	code, h, first := post("dev1", `{"name": "reboot"}`, nil)
	if code != 202 || !strings.HasPrefix(h.Get("Idempotency-Key"), derivedKeyPrefix) {
		t.Fatalf("first reboot: %d key %q", code, h.Get("Idempotency-Key"))
	}
	// A retry, with the arguments in another order and an expiry.
	code, h2, again := post("dev1", `{"expiry": 60, "name": "reboot"}`, nil)
	if code != 200 || again.ID != first.ID || h2.Get("Idempotent-Replayed") != "true" || h2.Get("Idempotency-Key") != h.Get("Idempotency-Key") {
		t.Fatalf("retry: %d %s (first %s) %v", code, again.ID, first.ID, h2)
	}
	if code, _, other := post("dev2", `{"name": "reboot"}`, nil); code != 202 || other.ID == first.ID {
		t.Fatalf("same task, other device: %d %s", code, other.ID)
	}
	if code, _, other := post("dev1", `{"name": "reboot", "commandKey": "second"}`, nil); code != 202 || other.ID == first.ID {
		t.Fatalf("different task: %d %s", code, other.ID)
	}
	if c := count(); c != 3 {
		t.Fatalf("%d tasks, want 3", c)
	}
	mustApplyNode(t, n, Command{Op: OpTaskResult, TaskID: first.ID, Status: fleet.StatusDone, Result: &fleet.TaskResult{}})
	if code, _, next := post("dev1", `{"name": "reboot"}`, nil); code != 202 || next.ID == first.ID {
		t.Fatalf("same request after the first ended: %d %s, want a new task", code, next.ID)
	}

	key := map[string]string{"Idempotency-Key": "client-key-1"}
	code, h, a := post("dev1", `{"name": "factoryReset"}`, key)
	if code != 202 || h.Get("Idempotency-Key") != "client-key-1" {
		t.Fatalf("keyed create: %d %v", code, h)
	}
	mustApplyNode(t, n, Command{Op: OpTaskResult, TaskID: a.ID, Status: fleet.StatusDone, Result: &fleet.TaskResult{}})
	if code, _, b := post("dev1", `{"name": "factoryReset"}`, key); code != 200 || b.ID != a.ID {
		t.Fatalf("keyed retry after the task ended: %d %s, want the first %s", code, b.ID, a.ID)
	}
	for _, tt := range []struct{ device, body string }{{"dev1", `{"name": "reboot"}`}, {"dev2", `{"name": "factoryReset"}`}} {
		if code, _, _ := post(tt.device, tt.body, key); code != http.StatusConflict {
			t.Fatalf("key reused for %s %s: %d, want 409", tt.device, tt.body, code)
		}
	}
	if code, _, _ := post("dev1", `{"name": "reboot"}`, map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}); code != 400 {
		t.Fatalf("oversized key: %d", code)
	}
	if c := count(); c != 5 {
		t.Fatalf("%d tasks, want 5", c)
	}
}

// TestAPIBodyTimeouts: a client that sends its body slowly, or a trickle,
// is answered 408 and disconnected; an idle keep-alive connection is
// closed; a long poll after a body is not cut by the body's deadline.
func TestAPIBodyTimeouts(t *testing.T) {
	n := newCluster(t, 1, func(c *Config) {
		c.APIBodyTimeout = 300 * time.Millisecond
		c.APIIdleTimeout = 500 * time.Millisecond
	})[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	// expectCut reads the answer on conn: 408, then the server's close
	// (EOF, or a reset when the client was still sending), well before the
	// client's own 10 s bound.
	expectCut := func(t *testing.T, conn net.Conn, what string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", what, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("%s: %d, want 408", what, resp.StatusCode)
		}
		var ne net.Error
		if _, err := br.ReadByte(); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("%s: connection not closed after 408: %v", what, err)
		}
	}
	head := "POST /api/v1/devices/dev1/tasks HTTP/1.1\r\nHost: core\r\nAuthorization: Bearer " + testSecret + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"

	t.Run("stalled body", func(t *testing.T) {
		conn, err := net.Dial("tcp", n.APIAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, head+"{")
		expectCut(t, conn, "stalled body")
	})
	t.Run("trickled body", func(t *testing.T) {
		conn, err := net.Dial("tcp", n.APIAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, head)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one byte every 20 ms: 100 bytes would take 2 s
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		expectCut(t, conn, "trickled body")
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", n.APIAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: core\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection not closed: %v", err)
		}
	})
	t.Run("long poll after a body", func(t *testing.T) {
		start := time.Now()
		code, _, body := httpDo(t, "POST", api(n, "/devices/dev1/tasks?wait=1s"), `{"name": "reboot", "commandKey": "long-poll"}`, nil)
		if code != http.StatusAccepted || time.Since(start) < time.Second {
			t.Fatalf("long poll: %d after %v: %s", code, time.Since(start), body)
		}
	})
}

// TestAPIHardening: the smaller items of the resource bounds.
func TestAPIHardening(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	before := summarize(t, n)

	t.Run("timeout overflow", func(t *testing.T) {
		for _, p := range []string{"/devices/dev1/tasks?timeout=9223372036854775807", "/devices/dev1/tasks?timeout=300001"} {
			if code, _, body := httpDo(t, "POST", api(n, p), `{"name": "reboot"}`, nil); code != 400 {
				t.Fatalf("POST %s: %d %s, want 400", p, code, body)
			}
		}
		if code, _, _ := httpDo(t, "GET", api(n, "/tasks/x?timeout=9223372036854775807"), "", nil); code != 400 {
			t.Fatalf("GET with overflowing timeout: %d", code)
		}
	})
	t.Run("duplicate keys", func(t *testing.T) {
		for _, tt := range []struct{ method, path, body, key string }{
			{"POST", "/devices/dev1/tasks", `{"name": "reboot", "name": "factoryReset"}`, `"name"`},
			{"POST", "/tasks", `{"filter": {"edge": "e1", "edge": "e2"}, "task": {"name": "reboot"}}`, `"filter.edge"`},
			{"POST", "/tasks", `{"filter": {"edge": "e1"}, "task": {"name": "reboot", "name": "factoryReset"}}`, `"task.name"`},
			{"PUT", "/presets/p1", `{"provisions": [["refresh", "A."]], "provisions": []}`, `"provisions"`},
			{"PUT", "/devices/dev1", `{"edge": "e1", "edge": "e2"}`, `"edge"`},
		} {
			code, _, body := httpDo(t, tt.method, api(n, tt.path), tt.body, nil)
			if code != 400 || !strings.Contains(body, "duplicate JSON key") || !strings.Contains(body, strings.ReplaceAll(tt.key, `"`, `\"`)) {
				t.Fatalf("%s %s %s: %d %s, want 400 naming %s", tt.method, tt.path, tt.body, code, body, tt.key)
			}
		}
	})
	t.Run("dot names", func(t *testing.T) {
		for _, p := range []string{"/devices/%2E%2E", "/devices/%2E", "/presets/%2E%2E"} {
			body := `{}`
			if strings.HasPrefix(p, "/presets") {
				body = `{"provisions": []}`
			}
			if code, _, resp := httpDo(t, "PUT", api(n, p), body, nil); code != 400 {
				t.Fatalf("PUT %s: %d %s, want 400", p, code, resp)
			}
		}
		if r := n.Apply(context.Background(), Command{Op: OpDeviceDelta, Delta: delta("..", "e1")}); !errors.Is(r.Err, ErrBadRequest) {
			t.Fatalf("delta for device '..': %v", r.Err)
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		for _, tt := range []struct{ method, path, allow string }{
			{"PATCH", "/api/v1/devices/dev1", "GET, HEAD, PUT, DELETE"},
			{"POST", "/api/v1/devices/dev1", "GET, HEAD, PUT, DELETE"},
			{"PATCH", "/api/v1/tasks", "GET, HEAD, POST"},
			{"DELETE", "/readyz", "GET, HEAD"},
		} {
			code, h, body := httpDo(t, tt.method, "http://"+n.APIAddr()+tt.path, "", nil)
			if code != http.StatusMethodNotAllowed || h.Get("Allow") != tt.allow || !strings.Contains(body, "method not allowed") {
				t.Fatalf("%s %s: %d Allow %q %s, want 405 with Allow %q", tt.method, tt.path, code, h.Get("Allow"), body, tt.allow)
			}
		}
		if code, _, _ := httpDo(t, "PATCH", "http://"+n.APIAddr()+"/api/v1/nothing", "", nil); code != 404 {
			t.Fatalf("PATCH of an unknown path: %d, want 404", code)
		}
	})
	after := summarize(t, n)
	after.applied, before.applied = 0, 0
	if after != before {
		t.Fatalf("refused requests changed state: %+v → %+v", before, after)
	}
}

func decodeJSONString(s string, v any) error { return json.Unmarshal([]byte(s), v) }
