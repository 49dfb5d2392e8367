package sync

import (
	"context"
	"io"

	"github.com/edgeacs/edgeacs/fleet"
)

// Outbox is the edge's durable uplink queue, as the client drains it.
// cmd/edgeacs wires it to edge.Cache.
type Outbox interface {
	// ReadOutbox returns up to max records with a sequence above after,
	// oldest first. A record it returns is committed, and no record with a
	// lower sequence can appear later.
	ReadOutbox(after uint64, max int) ([]fleet.SeqRecord, error)
	// AckOutbox deletes every record up to and including upTo; the core
	// has applied them.
	AckOutbox(upTo uint64) error
	// ResumeOutbox tells the outbox what the core has applied from this
	// edge: records at or below it are deleted, and new records get higher
	// sequences even if the edge lost its data.
	ResumeOutbox(coreAcked uint64) error
	// OutboxNotify returns a channel that receives a value whenever a new
	// record may be readable.
	OutboxNotify() <-chan struct{}
}

// Inbox is the edge's store of downlink records. cmd/edgeacs wires it to
// the edge node.
type Inbox interface {
	// DownlinkAcked returns the highest per-edge and fleet-wide downlink
	// sequences stored.
	DownlinkAcked() (edgeSeq, sharedSeq uint64, err error)
	// StoreDownlink stores records and the positions they reach in one
	// transaction; records at or below the stored positions change
	// nothing. It returns only when the records are durable.
	StoreDownlink(recs []fleet.DownRecord) error
}

// HealthSource reports the edge's health for heartbeats.
type HealthSource interface {
	Health() fleet.EdgeHealth
}

// EdgeState is what the core's replicated state says of one edge's link.
type EdgeState struct {
	UplinkAcked   uint64
	DownlinkAcked uint64
	SharedAcked   uint64
}

// Core is what the sync server needs from a core node. cmd/edgeacs wires
// it to core.Node.
type Core interface {
	// Leader reports whether this node is the Raft leader and, when it is
	// not, the sync address of the node that is ("" when unknown).
	Leader() (isLeader bool, leaderSyncAddr string)
	// VerifyLeader confirms with a quorum that this node is still leader.
	VerifyLeader(ctx context.Context) error
	// Revoked reports whether the edge's certificate name was revoked.
	Revoked(edge string) bool
	// EdgeState reads the edge's acknowledged positions (zero for an edge
	// never seen).
	EdgeState(edge string) (EdgeState, error)
	// SubmitUplink proposes records from edge through Raft, in order, and
	// returns without waiting for them, so a link keeps several batches in
	// flight; wait returns the highest sequence applied once they are.
	// prev is the sequence the link sent just before recs (for its first
	// batch, the UplinkAcked it resumed from): a record is never applied
	// before the one sent ahead of it, so when an earlier batch failed
	// the later ones fail too and nothing is lost. Records at or below
	// what was applied before change nothing; a record that can never be
	// applied is counted and skipped, never retried forever.
	SubmitUplink(ctx context.Context, edge string, prev uint64, recs []fleet.SeqRecord) (wait func(context.Context) (uint64, error), err error)
	// Downlink returns up to max records for edge: its own above edgeAfter
	// and fleet-wide ones above sharedAfter, each log in order.
	Downlink(edge string, edgeAfter, sharedAfter uint64, max int) ([]fleet.DownRecord, error)
	// DownlinkNotify returns a channel closed when new downlink records may
	// exist (the FSM applied something).
	DownlinkNotify() <-chan struct{}
	// AckDownlink records through Raft that edge stored the downlink up to
	// the given positions.
	AckDownlink(ctx context.Context, edge string, edgeSeq, sharedSeq uint64) error
	// EdgeConnected records through Raft that edge's link is up, from
	// remoteAddr: the edge's address and when it was last seen, which the
	// core's edge list shows, also after the link is gone.
	EdgeConnected(ctx context.Context, edge, remoteAddr string) error
	// EdgeHealth records the latest health an edge reported; connected is
	// false when its link closed.
	EdgeHealth(edge string, h fleet.EdgeHealth, connected bool)
	// OpenBlob opens the content-addressed blob with this SHA-256 (hex)
	// for an edge's fetch and returns its size. A blob this node does not
	// hold (yet: it may still be coming from a peer) is an error wrapping
	// ErrUnknownBlob; the edge tries again later.
	OpenBlob(sha256 string) (io.ReadSeekCloser, int64, error)
}
