package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/hashicorp/raft"
)

// TestDeposedLeaderNoTermBumpedEntry reproduces the divergence behind the
// flaky e2e TestSyncChaosLeaderPaused: a leader that wakes from a pause
// (SIGSTOP there) sees its successor's heartbeat and a client's write at
// the same moment. In hashicorp/raft (1.8.0, issue #695) a heartbeat from
// the transport's fast path raises the node's term and makes it a
// follower off the main goroutine, while the leader loop, idle in its
// select, still takes the write and stamps it with the successor's term.
// That entry then sits at the index where the successor wrote its own
// entry of the same term; raft matches entries by index and term, so the
// old leader keeps and applies its own: a task that exists on it alone.
//
// Here n2 leads with a long lease, is cut off from n1 and n3 until they
// elect a successor, receives the successor's heartbeat alone (as the
// successor sends it) and a write, and is then reconnected. Every node
// must end with the same tasks, and the refused write on none.
func TestDeposedLeaderNoTermBumpedEntry(t *testing.T) {
	net := newPartition()
	nodes := newCluster(t, 3, func(c *Config) {
		c.RaftLayer = net.layer
		if c.ID == "n2" {
			// n2 keeps believing it leads for seconds after the cut, as a
			// paused process does; it never needs to elect itself.
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 10*time.Second, 10*time.Second, 10*time.Second
		}
	})
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	mustApplyNode(t, leaderOf(t, nodes), Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})

	if err := leaderOf(t, nodes).raft.LeadershipTransferToServer(raft.ServerID(n2.ID()), raft.ServerAddress(n2.RaftAddr())).Error(); err != nil {
		t.Fatalf("transfer leadership to n2: %v", err)
	}
	// Settled: the same last index on every node, all of it applied, so the
	// successor's first entry takes the index n2's next one would.
	waitFor(t, "n2 to lead a settled cluster", 15*time.Second, func() bool {
		if !n2.IsLeader() {
			return false
		}
		last := n2.raft.LastIndex()
		for _, n := range nodes {
			if n.raft.LastIndex() != last || n.raft.AppliedIndex() != last {
				return false
			}
		}
		return true
	})
	stale := newTask("dev1", fleet.TaskReboot)

	net.isolate(n2.RaftAddr())
	var succ *testNode
	waitFor(t, "n1 and n3 to elect a successor", 15*time.Second, func() bool {
		for _, n := range []*testNode{n1, n3} {
			if n.IsLeader() {
				succ = n
				return true
			}
		}
		return false
	})
	if !n2.IsLeader() {
		t.Skip("n2 stepped down before the successor was elected (a stalled machine); nothing to test")
	}
	term, err := strconv.ParseUint(succ.raft.Stats()["term"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The successor's heartbeat, exactly as its raft sends it, delivered
	// to n2 alone (the test's own connection is not cut).
	sendHeartbeat(t, n2.RaftAddr(), succ.ID(), succ.RaftAddr(), term)
	waitFor(t, "n2 to follow "+succ.ID(), 5*time.Second, func() bool { return !n2.IsLeader() })

	// A client's write reaching n2 now (it was sent while n2 led).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	r := n2.Apply(ctx, Command{Op: OpCreateTasks, Key: "stale-write", Tasks: []*fleet.Task{stale}})
	cancel()
	if r.Err == nil {
		t.Fatalf("a write on the deposed leader n2 was acknowledged: %+v", r)
	}
	if !errors.Is(r.Err, ErrNotLeader) {
		t.Logf("write on the deposed leader: %v", r.Err)
	}

	net.heal()
	// The cluster moves on: a write through the successor (or whoever
	// leads now) that every node must apply.
	after := newTask("dev1", fleet.TaskReboot)
	applyViaLeader(t, nodes, 15*time.Second, Command{Op: OpCreateTasks, Key: "after-heal", Tasks: []*fleet.Task{after}})
	waitFor(t, "every node to apply the write after the heal", 15*time.Second, func() bool {
		for _, n := range nodes {
			if _, err := n.fsm.Task(after.ID); err != nil {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		if got, err := n.fsm.Task(stale.ID); err == nil {
			t.Errorf("node %s holds task %s from the write the deposed leader n2 refused (status %s): the nodes' states diverged", n.ID(), stale.ID, got.Status)
		} else if !errors.Is(err, ErrNotFound) {
			t.Errorf("node %s: task %s: %v", n.ID(), stale.ID, err)
		}
	}
	var want []string
	for i, n := range nodes {
		var ids []string
		for _, tk := range mustDeviceTasks(t, n, "dev1") {
			ids = append(ids, tk.ID)
		}
		if i == 0 {
			want = ids
		} else if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("node %s lists tasks %v for dev1, node %s %v", n.ID(), ids, nodes[0].ID(), want)
		}
	}
}

// mustDeviceTasks lists a device's tasks from n's own state.
func mustDeviceTasks(t *testing.T, n *testNode, dev string) []*fleet.Task {
	t.Helper()
	ts, _, err := n.fsm.Tasks(TaskFilter{Device: dev}, "", httpapi.MaxLimit)
	if err != nil {
		t.Fatalf("%s: tasks of %s: %v", n.ID(), dev, err)
	}
	return ts
}

// sendHeartbeat sends the heartbeat a raft leader of term at leaderAddr
// sends its followers, to the node at to.
func sendHeartbeat(t *testing.T, to, leaderID, leaderAddr string, term uint64) {
	t.Helper()
	trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	req := raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(leaderID), Addr: []byte(leaderAddr)},
		Term:      term,
	}
	var resp raft.AppendEntriesResponse
	if err := trans.AppendEntries(raft.ServerID("n2"), raft.ServerAddress(to), &req, &resp); err != nil {
		t.Fatalf("heartbeat to %s: %v", to, err)
	}
}

// partition cuts chosen nodes' Raft ports (Raft and peer HTTP alike) off
// from the other nodes: their dials to each other fail and the
// connections between them are closed. Connections from outside the
// cluster (the test's own) are left alone.
type partition struct {
	mu       sync.Mutex
	isolated map[string]bool
	conns    map[net.Conn][2]string // dialed connection → from, to
}

func newPartition() *partition {
	return &partition{isolated: map[string]bool{}, conns: map[net.Conn][2]string{}}
}

// layer is the RaftLayer hook of one node.
func (p *partition) layer(inner raft.StreamLayer) raft.StreamLayer {
	return &partLayer{StreamLayer: inner, p: p, self: inner.Addr().String()}
}

func (p *partition) cut(a, b string) bool { return p.isolated[a] != p.isolated[b] }

// isolate cuts addr off from every other node.
func (p *partition) isolate(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isolated[addr] = true
	for c, ends := range p.conns {
		if p.cut(ends[0], ends[1]) {
			c.Close()
			delete(p.conns, c)
		}
	}
}

// heal reconnects everyone.
func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.isolated)
}

type partLayer struct {
	raft.StreamLayer
	p    *partition
	self string
}

func (l *partLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.p.mu.Lock()
	cut := l.p.cut(l.self, string(addr))
	l.p.mu.Unlock()
	if cut {
		return nil, fmt.Errorf("dial %s from %s: partitioned by the test", addr, l.self)
	}
	c, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	if l.p.cut(l.self, string(addr)) {
		c.Close()
		return nil, fmt.Errorf("dial %s from %s: partitioned by the test", addr, l.self)
	}
	l.p.conns[c] = [2]string{l.self, string(addr)}
	return c, nil
}
