package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// Node is what the edge sync server runs against: cmd/edgeacs hands it to
// the server as its fleetsync.Core.
var _ fleetsync.Core = (*Node)(nil)

// edgeLive is what this node knows of an edge's link from its own sync
// server; it is not replicated (another node's server has its own view).
type edgeLive struct {
	health    fleet.EdgeHealth
	connected bool
	at        time.Time
}

// Leader reports whether this node is the Raft leader and, when it is not,
// the sync address the leader registered ("" when there is no leader or
// it has not registered one yet).
func (n *Node) Leader() (bool, string) {
	if n.IsLeader() {
		return true, n.SyncAddr()
	}
	info, err := n.leaderInfo()
	if err != nil {
		return false, ""
	}
	return false, info.SyncAddr
}

// VerifyLeader confirms with a quorum that this node still leads, so a
// deposed leader cut off from its peers stops serving the downlink.
func (n *Node) VerifyLeader(ctx context.Context) error {
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return raftError(err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: verify leadership: %v", ErrTimeout, ctx.Err())
	case <-n.closed:
		return fmt.Errorf("verify leadership: %w", ErrClosed)
	}
}

// Revoked reports whether the edge's name is on the revocation list. A
// read failure counts as revoked: the link is refused rather than opened
// on an unknown answer.
func (n *Node) Revoked(edge string) bool {
	r, err := n.fsm.Revoked(edge)
	if err != nil {
		n.log.Warn("revocation list unreadable; refusing the edge", "edge", edge, "err", err)
		return true
	}
	return r
}

// EdgeState reads the edge's acknowledged positions from this node's FSM
// (zero for an edge never seen).
func (n *Node) EdgeState(edge string) (fleetsync.EdgeState, error) {
	e, err := n.fsm.Edge(edge)
	if errors.Is(err, ErrNotFound) {
		return fleetsync.EdgeState{}, nil
	}
	if err != nil {
		return fleetsync.EdgeState{}, err
	}
	return fleetsync.EdgeState{UplinkAcked: e.UplinkAcked, DownlinkAcked: e.DownlinkAcked, SharedAcked: e.SharedAcked}, nil
}

// ApplyUplink applies an edge's uplink records through Raft, in order,
// and returns the edge's UplinkAcked afterwards: SubmitUplink with no
// predecessor to check, and its wait.
func (n *Node) ApplyUplink(ctx context.Context, edge string, recs []fleet.SeqRecord) (uint64, error) {
	wait, err := n.SubmitUplink(ctx, edge, 0, recs)
	if err != nil {
		return 0, err
	}
	return wait(ctx)
}

// SubmitUplink proposes an edge's uplink records through Raft and returns
// without waiting for them; wait returns the edge's UplinkAcked once they
// are applied: the highest sequence now applied (or consumed as rejected).
// A link keeps several batches in flight this way: one batch a commit
// round was the drain's bound. prev is the sequence the link sent just
// before recs (for its first batch, the UplinkAcked it resumed from).
//
// A later sequence must never apply before an earlier one, or the earlier
// would become a "resend" and be lost. Calls for one edge are serialised
// on this node up to the submission, and each call's records go into log
// entries as contiguous commands, one entry after the other, so the log
// holds them in the order they were submitted. That alone does not cover
// a batch that fails on its way into the log (an enqueue timeout, a
// leadership change) while the next one gets in: every record carries
// its predecessor (Command.Prev), and the FSM refuses, without consuming
// it, a record whose predecessor is not applied (ErrUplinkGap). Records at
// or below what was applied change nothing. A record the FSM rejects (bad
// bytes, an invalid task) is logged here and counted in the edge's
// Rejected; it does not fail the batch. A batch whose sequences do not
// increase from prev, a revoked edge, a record refused as out of order, or
// a Raft or storage failure does: nothing after the failure is applied and
// the caller resends from the edge's UplinkAcked.
func (n *Node) SubmitUplink(ctx context.Context, edge string, prev uint64, recs []fleet.SeqRecord) (wait func(context.Context) (uint64, error), err error) {
	if err := checkName("edge ID", edge); err != nil {
		return nil, err
	}
	last := prev
	for i := range recs {
		if recs[i].Seq == 0 || recs[i].Seq <= last {
			return nil, fmt.Errorf("%w: uplink from %s: sequence %d at position %d does not increase from %d", ErrBadRequest, edge, recs[i].Seq, i, last)
		}
		last = recs[i].Seq
	}
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	type chunk struct {
		recs []fleet.SeqRecord
		p    *pending
	}
	chunks := make([]chunk, 0, (len(recs)+n.cfg.MaxBatch-1)/n.cfg.MaxBatch)
	mu, _ := n.uplinkMu.LoadOrStore(edge, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	now := time.Now().UTC()
	for start := 0; start < len(recs); start += n.cfg.MaxBatch {
		c := chunk{recs: recs[start:min(start+n.cfg.MaxBatch, len(recs))]}
		cmds := make([]Command, len(c.recs))
		for i, r := range c.recs {
			cmds[i] = Command{Op: OpUplink, Time: now, Edge: edge, Seq: r.Seq, Prev: prev, Record: r.Data, uplinkOnly: true}
			prev = r.Seq
		}
		if c.p, err = n.batch.submit(ctx, cmds); err != nil {
			// What was submitted may still apply; what follows it is not
			// proposed. The caller resends from the edge's UplinkAcked.
			break
		}
		chunks = append(chunks, c)
	}
	mu.(*sync.Mutex).Unlock()
	if err != nil {
		return nil, fmt.Errorf("uplink from %s: %w", edge, err)
	}
	submitted := time.Now()
	return func(ctx context.Context) (uint64, error) {
		ctx, cancel := context.WithDeadline(ctx, submitted.Add(n.cfg.ApplyTimeout))
		defer cancel()
		for _, c := range chunks {
			rs, err := n.batch.await(ctx, c.p)
			if err != nil {
				return 0, fmt.Errorf("uplink from %s, records %d..%d: %w", edge, c.recs[0].Seq, c.recs[len(c.recs)-1].Seq, err)
			}
			for i, r := range rs {
				switch {
				case r.Err == nil:
				case errors.Is(r.Err, ErrRevoked), errors.Is(r.Err, ErrUplinkGap):
					return 0, fmt.Errorf("uplink from %s: %w", edge, r.Err)
				default:
					n.log.Warn("uplink record rejected; skipped and counted", "edge", edge, "seq", c.recs[i].Seq, "err", r.Err)
				}
			}
		}
		st, err := n.EdgeState(edge)
		if err != nil {
			return 0, err
		}
		return st.UplinkAcked, nil
	}, nil
}

// Downlink returns up to max records for edge from this node's FSM: its
// own log above edgeAfter, then the fleet-wide log above sharedAfter.
func (n *Node) Downlink(edge string, edgeAfter, sharedAfter uint64, max int) ([]fleet.DownRecord, error) {
	return n.fsm.Downlink(edge, edgeAfter, sharedAfter, max)
}

// DownlinkNotify returns a channel closed after the FSM next applies
// something, which may have appended downlink records.
func (n *Node) DownlinkNotify() <-chan struct{} { return n.fsm.Watch() }

// AckDownlink records through Raft the downlink positions the edge
// stored; its own log is deleted up to edgeSeq.
func (n *Node) AckDownlink(ctx context.Context, edge string, edgeSeq, sharedSeq uint64) error {
	if err := checkName("edge ID", edge); err != nil {
		return err
	}
	if r := n.Apply(ctx, Command{Op: OpEdgeAck, Name: edge, Seq: edgeSeq, SharedSeq: sharedSeq}); r.Err != nil {
		return fmt.Errorf("ack downlink of %s at %d/%d: %w", edge, edgeSeq, sharedSeq, r.Err)
	}
	return nil
}

// EdgeConnected records through Raft that the edge's link came up from
// remoteAddr: its replicated record's addr and lastSeen, which every
// node's GET /api/v1/edges shows, also once the link is gone. One write
// per connection.
func (n *Node) EdgeConnected(ctx context.Context, edge, remoteAddr string) error {
	if err := checkName("edge ID", edge); err != nil {
		return err
	}
	if r := n.Apply(ctx, Command{Op: OpEdgeSeen, Name: edge, Addr: remoteAddr}); r.Err != nil {
		return fmt.Errorf("record edge %s at %s: %w", edge, remoteAddr, r.Err)
	}
	return nil
}

// EdgeHealth records the health an edge last reported on this node's sync
// link; connected is false once the link closed. It is kept in memory
// only and shown by GET /api/v1/edges on this node. When the link closes
// the last report is kept (the sync server passes none then): the edge's
// device count is still the best one known while it is away.
func (n *Node) EdgeHealth(edge string, h fleet.EdgeHealth, connected bool) {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	if old, ok := n.health[edge]; ok && !connected && h == (fleet.EdgeHealth{}) {
		h = old.health
	}
	n.health[edge] = edgeLive{health: h, connected: connected, at: time.Now().UTC()}
}

// edgeHealth returns what this node knows of the edge's link.
func (n *Node) edgeHealth(edge string) (edgeLive, bool) {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	l, ok := n.health[edge]
	return l, ok
}

// liveEdges lists the edges this node's sync server has heard from.
func (n *Node) liveEdges() []string {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	out := make([]string, 0, len(n.health))
	for id := range n.health {
		out = append(out, id)
	}
	return out
}

// Revoke puts the edge on the revocation list (replicated; every core
// node then refuses its certificate, and every edge learns it over the
// fleet-wide downlink) and returns its record.
func (n *Node) Revoke(ctx context.Context, edge string) (*Edge, error) {
	if err := checkName("edge ID", edge); err != nil {
		return nil, err
	}
	if r := n.Apply(ctx, Command{Op: OpRevokeEdge, Name: edge}); r.Err != nil {
		return nil, fmt.Errorf("revoke edge %s: %w", edge, r.Err)
	}
	return n.fsm.Edge(edge)
}
