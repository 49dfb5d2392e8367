package raftstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// listFSM records every applied command in order, so replicas can be
// compared entry by entry.
type listFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.applied)), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var applied []string
	if err := json.NewDecoder(rc).Decode(&applied); err != nil {
		return fmt.Errorf("restore list snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = applied
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// node is one raft server on a raftstore.Store in its own directory.
type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	store *Store
	trans *raft.InmemTransport
	fsm   *listFSM
	raft  *raft.Raft
	up    bool
}

type cluster struct {
	t     *testing.T
	nodes []*node
}

func clusterConfig(t *testing.T, id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	// Fast but not so fast that a loaded 2-core machine under -race flaps.
	c.HeartbeatTimeout = 250 * time.Millisecond
	c.ElectionTimeout = 250 * time.Millisecond
	c.LeaderLeaseTimeout = 125 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	// Snapshot and compact often so DeleteRange runs under raft.
	c.SnapshotThreshold = 40
	c.SnapshotInterval = 100 * time.Millisecond
	c.TrailingLogs = 20
	c.LogOutput = t.Output()
	c.LogLevel = "ERROR"
	return c
}

// start opens n's store (existing state included) and starts raft on it.
func (c *cluster) start(n *node) {
	t := c.t
	t.Helper()
	var err error
	n.store, err = Open(filepath.Join(n.dir, "raft"), Options{SyncWrites: true, Logger: quietLogger})
	if err != nil {
		t.Fatalf("%s: open store: %v", n.id, err)
	}
	snaps, err := raft.NewFileSnapshotStore(n.dir, 2, io.Discard)
	if err != nil {
		t.Fatalf("%s: snapshot store: %v", n.id, err)
	}
	_, n.trans = raft.NewInmemTransport(n.addr)
	for _, o := range c.nodes {
		if o != n && o.up {
			n.trans.Connect(o.addr, o.trans)
			o.trans.Connect(n.addr, n.trans)
		}
	}
	n.fsm = &listFSM{}
	n.raft, err = raft.NewRaft(clusterConfig(t, n.id), n.fsm, n.store, n.store, snaps, n.trans)
	if err != nil {
		t.Fatalf("%s: new raft: %v", n.id, err)
	}
	n.up = true
}

// stop shuts raft down, then the store it writes to, and cuts n off the
// network the way a dead process would be.
func (c *cluster) stop(n *node) {
	c.t.Helper()
	if !n.up {
		return
	}
	n.up = false
	if err := n.raft.Shutdown().Error(); err != nil {
		c.t.Errorf("%s: shutdown: %v", n.id, err)
	}
	for _, o := range c.nodes {
		if o != n && o.up {
			o.trans.Disconnect(n.addr)
		}
	}
	_ = n.trans.Close()
	if err := n.store.Close(); err != nil {
		c.t.Errorf("%s: close store: %v", n.id, err)
	}
}

func newCluster(t *testing.T, size int) *cluster {
	c := &cluster{t: t}
	var servers []raft.Server
	for i := range size {
		n := &node{
			id:   raft.ServerID(fmt.Sprintf("n%d", i+1)),
			addr: raft.ServerAddress(fmt.Sprintf("n%d", i+1)),
			dir:  t.TempDir(),
		}
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr, Suffrage: raft.Voter})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	})
	for _, n := range c.nodes {
		c.start(n)
	}
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader waits for exactly one live node to lead and all live nodes to agree.
func (c *cluster) leader() *node {
	c.t.Helper()
	var leader *node
	waitFor(c.t, "a leader", 10*time.Second, func() bool {
		leader = nil
		for _, n := range c.nodes {
			if n.up && n.raft.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

// apply commits cmd<from> up to cmd<to-1> through whichever node leads, in
// order and each exactly once. With the short test timeouts a busy machine
// can stall a process past the leader lease, and raft then legitimately
// elects again; raft.Apply reports that as ErrNotLeader or
// ErrLeadershipTransferInProgress (the entry was refused) or
// ErrLeadershipLost (the entry may or may not commit). Neither
// is a failure of the store, so apply settles what committed and sends the
// rest to the new leader. Resending blindly would commit a command twice,
// which converged would then catch.
func (c *cluster) apply(from, to int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	next := from
	for {
		leader := c.leader()
		var futures []raft.ApplyFuture
		for i := next; i < to; i++ {
			futures = append(futures, leader.raft.Apply([]byte(fmt.Sprintf("cmd%d", i)), 5*time.Second))
		}
		var moved error
		for i, f := range futures {
			err := f.Error()
			switch {
			case err == nil:
			case leadershipMoved(err):
				if moved == nil {
					moved = fmt.Errorf("cmd%d on %s: %w", next+i, leader.id, err)
				}
			default:
				c.t.Fatalf("apply cmd%d on %s: %v", next+i, leader.id, err)
			}
		}
		if moved == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("apply cmd%d..cmd%d: not committed after 30s of leadership changes; last: %v", from, to-1, moved)
		}
		c.t.Logf("leadership moved (%v); settling what committed", moved)
		next = c.committed()
		if next < from || next > to {
			c.t.Fatalf("after a leadership change the log holds cmd0..cmd%d, want between cmd%d and cmd%d", next-1, from-1, to-1)
		}
	}
}

// leadershipMoved reports whether an apply failed only because the node it
// was sent to stopped leading.
func leadershipMoved(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// committed returns how many commands the cluster holds once an entry of
// the current leader's term has committed. From then on an entry of an
// earlier term that is not in the log can never commit (every future
// leader's log holds the barrier, and entries after it are of later
// terms), so what the leader's FSM holds is final. Commands are submitted
// in order by one goroutine, so what committed is cmd0..cmd<n-1>.
func (c *cluster) committed() int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader := c.leader()
		err := leader.raft.Barrier(5 * time.Second).Error()
		if err == nil {
			got := leader.fsm.list()
			if !slices.Equal(got, commands(len(got))) {
				c.t.Fatalf("%s holds %d commands that are not cmd0..cmd%d in order: %q", leader.id, len(got), len(got)-1, got)
			}
			return len(got)
		}
		if !leadershipMoved(err) {
			c.t.Fatalf("barrier on %s: %v", leader.id, err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader committed a barrier within 30s; last: %v", err)
		}
	}
}

// converged waits until every live FSM holds exactly want.
func (c *cluster) converged(want []string) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("all FSMs to hold %d commands", len(want)), 10*time.Second, func() bool {
		for _, n := range c.nodes {
			if n.up && !slices.Equal(n.fsm.list(), want) {
				return false
			}
		}
		return true
	})
}

func commands(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("cmd%d", i))
	}
	return s
}

func TestRaftClusterOnStore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node raft cluster")
	}
	c := newCluster(t, 3)
	c.apply(0, 100)
	c.converged(commands(100))

	// Compaction ran through the store: the head of the log is gone. The
	// node checked is the leader of the moment, the one stopped next.
	old := c.leader()
	waitFor(t, "log compaction on the leader", 10*time.Second, func() bool {
		first, _ := old.store.FirstIndex()
		return first > 1
	})

	oldLast, _ := old.store.LastIndex()
	c.stop(old)
	if leader := c.leader(); leader == old {
		t.Fatal("the stopped node still leads")
	}
	c.apply(100, 200)

	// The old leader restarts from its own directory: its log must still be
	// there, then it catches up on what it missed.
	c.start(old)
	if last, _ := old.store.LastIndex(); last < oldLast {
		t.Fatalf("restarted node's log ends at %d, had %d before stopping", last, oldLast)
	}
	c.apply(200, 250)
	c.converged(commands(250))

	for _, n := range c.nodes {
		first, _ := n.store.FirstIndex()
		last, _ := n.store.LastIndex()
		var l raft.Log
		if err := n.store.GetLog(last, &l); err != nil {
			t.Errorf("%s: GetLog(last=%d): %v", n.id, last, err)
		}
		t.Logf("%s: log [%d, %d]", n.id, first, last)
	}
}
