package httpapi

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/edgeacs/edgeacs/blob"
	"github.com/edgeacs/edgeacs/fleet"
)

// Sentinel errors, one per status an API answers for a failed request.
// The core and the edge alias the ones they share (core.ErrNotFound is
// ErrNotFound) and mark their own with one of them (see Mark).
var (
	// ErrBadRequest means the input is malformed or breaks a rule; nothing changed (400).
	ErrBadRequest = errors.New("bad request")
	// ErrForbidden means the request is understood and refused for what
	// it names, not for its token (403; apiauth answers token refusals).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound means the resource (or the route) does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrMethodNotAllowed means the path exists but not with this method (405).
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrRequestTimeout means the client did not send its request body in
	// time (408).
	ErrRequestTimeout = errors.New("request body timeout")
	// ErrConflict means the request contradicts the current state (409).
	ErrConflict = errors.New("conflict")
	// ErrTooLarge means a request body or upload exceeded its bound (413).
	ErrTooLarge = errors.New("request too large")
	// ErrTooManyRequests means the client must slow down (429).
	ErrTooManyRequests = errors.New("too many requests")
	// ErrUnavailable means the server cannot serve this now and a retry
	// soon may succeed (503, with Retry-After).
	ErrUnavailable = errors.New("service unavailable")
	// ErrGatewayTimeout means the work was handed on and its outcome did
	// not come back in time (504): it may or may not have happened.
	ErrGatewayTimeout = errors.New("timed out")
)

// RetryAfter is the Retry-After of a 503, in seconds: about one Raft
// election, after which a core knows its leader again; an edge that is
// not ready yet is usually ready as soon.
const RetryAfter = "1"

// statusTable is the one mapping from errors to status codes. The first
// row with a matching error wins, so the order settles errors that match
// two rows: a write that lost its leader mid-commit is both unavailable
// and of unknown outcome, and must be answered 504 (read before retrying),
// not 503 (retry).
var statusTable = []struct {
	code int
	errs []error
}{
	{http.StatusRequestEntityTooLarge, []error{ErrTooLarge, blob.ErrTooLarge}},
	{http.StatusNotFound, []error{ErrNotFound, blob.ErrNotFound}},
	{http.StatusBadRequest, []error{ErrBadRequest, fleet.ErrBadTask, fleet.ErrBadToken, fleet.ErrDuplicateKey, fleet.ErrBadDeviceID, blob.ErrBadSum}},
	{http.StatusConflict, []error{ErrConflict}},
	{http.StatusForbidden, []error{ErrForbidden}},
	{http.StatusMethodNotAllowed, []error{ErrMethodNotAllowed}},
	// os.ErrDeadlineExceeded is a connection's read deadline (the body
	// timeout), not a deadline of the server's own work.
	{http.StatusRequestTimeout, []error{ErrRequestTimeout, os.ErrDeadlineExceeded}},
	{http.StatusTooManyRequests, []error{ErrTooManyRequests}},
	{http.StatusGatewayTimeout, []error{ErrGatewayTimeout, context.DeadlineExceeded}},
	{http.StatusServiceUnavailable, []error{ErrUnavailable}},
}

// Status is the status code an API answers err with: 200 for nil, 500
// for an error the table does not know.
func Status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	for _, row := range statusTable {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				return row.code
			}
		}
	}
	return http.StatusInternalServerError
}

// marked is an error that also matches a sentinel of this package.
type marked struct {
	err, kind error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

// Mark returns an error with err's message that matches both err and
// kind under errors.Is. A package declares its own sentinels with it
// (ErrTaskRunning = Mark(errors.New("edge: task is running"),
// ErrConflict)), so the table maps them without knowing the package, and
// a handler marks an error it did not make (a failed connection request
// is a 504).
func Mark(err, kind error) error {
	return &marked{err: err, kind: kind}
}
