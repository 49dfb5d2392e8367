package core

import (
	"testing"
	"time"
)

// TestClusterStatusShowsUnreachable: GET /api/v1/cluster reports each
// member's state as the member itself tells it, so a stopped leader is
// "unreachable" at once, not listed with the role it last had, and the
// survivors show their own states before and after the election.
func TestClusterStatusShowsUnreachable(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	var st ClusterStatus
	if code := do(t, "GET", api(followerOf(nodes), "/cluster"), nil, &st); code != 200 {
		t.Fatalf("status: %d", code)
	}
	states := func(st ClusterStatus) map[string]string {
		m := map[string]string{}
		for _, s := range st.Servers {
			m[s.ID] = s.State
		}
		return m
	}
	for id, s := range states(st) {
		want := "follower"
		if id == leader.ID() {
			want = "leader"
		}
		if s != want {
			t.Fatalf("all up: %s is %q, want %q (%+v)", id, s, want, st)
		}
	}

	leader.stop()
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	// At once, whatever the survivors still believe about the leader.
	start := time.Now()
	st = ClusterStatus{}
	if code := do(t, "GET", api(rest[0], "/cluster"), nil, &st); code != 200 {
		t.Fatalf("status after the kill: %d", code)
	}
	took := time.Since(start)
	for _, s := range st.Servers {
		switch {
		case s.ID == leader.ID() && (s.State != StateUnreachable || s.Problem == ""):
			t.Fatalf("stopped leader listed as %q (problem %q): %+v", s.State, s.Problem, st)
		case s.ID != leader.ID() && (s.State == StateUnreachable || s.State == ""):
			t.Fatalf("live member %s listed as %q: %+v", s.ID, s.State, st)
		}
	}
	if took > clusterProbeTimeout+time.Second {
		t.Fatalf("status took %v with a member down; the probe is bounded by %v", took, clusterProbeTimeout)
	}

	// After the election: one leader, one follower, the stopped node
	// still unreachable, and the leader field names the new leader.
	newLeader := leaderOf(t, rest)
	waitFor(t, "the status to show the new leader", 15*time.Second, func() bool {
		st = ClusterStatus{}
		if do(t, "GET", api(rest[0], "/cluster"), nil, &st) != 200 || st.Leader != newLeader.ID() {
			return false
		}
		m := states(st)
		return m[newLeader.ID()] == "leader" && m[leader.ID()] == StateUnreachable
	})
}
