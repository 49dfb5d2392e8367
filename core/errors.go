package core

import "errors"

// Sentinel errors callers branch on. Every layer wraps them with context and
// matches them with errors.Is; the REST API maps them to status codes in one
// place (statusFor in api.go).
var (
	// ErrNotFound means the device, task, preset, file, edge or server does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest means the input is malformed or violates a rule; nothing changed.
	ErrBadRequest = errors.New("bad request")
	// ErrConflict means the write contradicts current state (for example an ID already taken).
	ErrConflict = errors.New("conflict")
	// ErrTooLarge means a request body exceeded its bound.
	ErrTooLarge = errors.New("request too large")
	// ErrNotLeader means this node is not the Raft leader and cannot apply writes.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrNoLeader means the cluster has no known leader right now.
	ErrNoLeader = errors.New("no raft leader")
	// ErrCorruptCommand means a committed log entry could not be decoded. It is
	// reported in the apply response and logged loudly; the entry changes nothing.
	ErrCorruptCommand = errors.New("corrupt command")
	// ErrClosed means the node or one of its parts has been shut down.
	ErrClosed = errors.New("closed")
	// ErrTimeout means a write was not committed within its deadline; it may still commit.
	ErrTimeout = errors.New("timed out")
	// ErrApplyFailed means the FSM could not apply a committed entry (its
	// storage refused a write) and stopped: it applies nothing further and
	// the node shuts down. Wrapped by *ApplyError, which names the entry.
	ErrApplyFailed = errors.New("fsm stopped: a committed entry could not be applied")
	// ErrRevoked means the edge's certificate name is on the revocation list.
	ErrRevoked = errors.New("edge revoked")
	// ErrOutcomeUnknown means a write was sent on but its answer was lost (the
	// leader failed or lost leadership mid-request): it may or may not have
	// been applied. Unlike ErrNotLeader it does not invite a blind retry; a
	// client should read the state (or retry with the same Idempotency-Key).
	ErrOutcomeUnknown = errors.New("outcome unknown: the write may or may not have been applied")
	// ErrNotMember means this node is not in the cluster's raft configuration
	// (it was removed or replaced, or has not joined yet): its state may be
	// stale, so it serves no reads.
	ErrNotMember = errors.New("not a member of the cluster")
	// ErrMethodNotAllowed means the path exists but not with this method.
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrRequestTimeout means the client did not send its request body
	// within the API's body timeout (or below its minimum rate).
	ErrRequestTimeout = errors.New("request body timeout")
)
