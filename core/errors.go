package core

import (
	"errors"

	"github.com/edgeacs/edgeacs/httpapi"
)

// Sentinel errors callers branch on. Every layer wraps them with context and
// matches them with errors.Is. The ones the edge shares are httpapi's own
// (so errors.Is matches across packages); the core's own are marked with
// the httpapi kind whose status the REST API answers them with, in httpapi's
// one table.
var (
	// ErrNotFound means the device, task, preset, file, edge or server does not exist.
	ErrNotFound = httpapi.ErrNotFound
	// ErrBadRequest means the input is malformed or violates a rule; nothing changed.
	ErrBadRequest = httpapi.ErrBadRequest
	// ErrConflict means the write contradicts current state (for example an ID already taken).
	ErrConflict = httpapi.ErrConflict
	// ErrTooLarge means a request body exceeded its bound.
	ErrTooLarge = httpapi.ErrTooLarge
	// ErrNotLeader means this node is not the Raft leader and cannot apply writes.
	ErrNotLeader = httpapi.Mark(errors.New("not the raft leader"), httpapi.ErrUnavailable)
	// ErrNoLeader means the cluster has no known leader right now.
	ErrNoLeader = httpapi.Mark(errors.New("no raft leader"), httpapi.ErrUnavailable)
	// ErrCorruptCommand means a committed log entry could not be decoded. It is
	// reported in the apply response and logged loudly; the entry changes nothing.
	ErrCorruptCommand = errors.New("corrupt command")
	// ErrClosed means the node or one of its parts has been shut down.
	ErrClosed = httpapi.Mark(errors.New("closed"), httpapi.ErrUnavailable)
	// ErrTimeout means a write was not committed within its deadline; it may still commit.
	ErrTimeout = httpapi.Mark(errors.New("timed out"), httpapi.ErrGatewayTimeout)
	// ErrApplyFailed means the FSM could not apply a committed entry (its
	// storage refused a write) and stopped: it applies nothing further and
	// the node shuts down. Wrapped by *ApplyError, which names the entry.
	ErrApplyFailed = httpapi.Mark(errors.New("fsm stopped: a committed entry could not be applied"), httpapi.ErrUnavailable)
	// ErrUplinkGap means an uplink record reached the state machine before
	// the record its link sent ahead of it was applied (that one's batch
	// failed on its way into the log): it is refused, not consumed, and the
	// edge resends from what the core applied.
	ErrUplinkGap = httpapi.Mark(errors.New("uplink record arrived ahead of its predecessor"), httpapi.ErrUnavailable)
	// ErrRevoked means the edge's certificate name is on the revocation list.
	ErrRevoked = httpapi.Mark(errors.New("edge revoked"), httpapi.ErrForbidden)
	// ErrOutcomeUnknown means a write was sent on but its answer was lost (the
	// leader failed or lost leadership mid-request): it may or may not have
	// been applied. Unlike ErrNotLeader it does not invite a blind retry; a
	// client should read the state (or retry with the same Idempotency-Key).
	ErrOutcomeUnknown = httpapi.Mark(errors.New("outcome unknown: the write may or may not have been applied"), httpapi.ErrGatewayTimeout)
	// ErrNotMember means this node is not in the cluster's raft configuration
	// (it was removed or replaced, or has not joined yet): its state may be
	// stale, so it serves no reads.
	ErrNotMember = httpapi.Mark(errors.New("not a member of the cluster"), httpapi.ErrUnavailable)
	// ErrMethodNotAllowed means the path exists but not with this method.
	ErrMethodNotAllowed = httpapi.ErrMethodNotAllowed
	// ErrRequestTimeout means the client did not send its request body
	// within the API's body timeout (or below its minimum rate).
	ErrRequestTimeout = httpapi.ErrRequestTimeout
)
