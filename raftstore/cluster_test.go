package raftstore

import (
	"encoding/json"
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

func (c *cluster) apply(leader *node, from, to int) {
	c.t.Helper()
	var futures []raft.ApplyFuture
	for i := from; i < to; i++ {
		futures = append(futures, leader.raft.Apply([]byte(fmt.Sprintf("cmd%d", i)), 5*time.Second))
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			c.t.Fatalf("apply cmd%d on %s: %v", from+i, leader.id, err)
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
	old := c.leader()
	c.apply(old, 0, 100)
	c.converged(commands(100))

	// Compaction ran through the store: the head of the log is gone.
	waitFor(t, "log compaction on the leader", 10*time.Second, func() bool {
		first, _ := old.store.FirstIndex()
		return first > 1
	})

	oldLast, _ := old.store.LastIndex()
	c.stop(old)
	leader := c.leader()
	if leader == old {
		t.Fatal("the stopped node still leads")
	}
	c.apply(leader, 100, 200)

	// The old leader restarts from its own directory: its log must still be
	// there, then it catches up on what it missed.
	c.start(old)
	if last, _ := old.store.LastIndex(); last < oldLast {
		t.Fatalf("restarted node's log ends at %d, had %d before stopping", last, oldLast)
	}
	c.apply(c.leader(), 200, 250)
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
