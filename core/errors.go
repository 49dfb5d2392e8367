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
)
