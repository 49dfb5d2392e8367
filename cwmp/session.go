package cwmp

import (
	"errors"
	"time"
)

// ErrBadSessionState means a message arrived that the session cannot accept
// in its current state (no Inform first, a second Inform, a response with
// no request outstanding, anything after the end). The server answers HTTP 400.
var ErrBadSessionState = errors.New("cwmp: bad session state")

// SessionState is where a CWMP session stands.
type SessionState int

// Session states in order.
const (
	// StateAwaitInform: nothing received yet; only an Inform is accepted.
	StateAwaitInform SessionState = iota
	// StateCPERequests: InformResponse sent; the CPE may send its own
	// requests (TransferComplete, GetRPCMethods, ...) until an empty POST.
	StateCPERequests
	// StateACSRequests: the ACS drives; at most one request outstanding.
	StateACSRequests
	// StateEnded: the ACS answered 204; nothing more is accepted.
	StateEnded
)

// SessionConfig configures a Session.
type SessionConfig struct {
	// Versions are the CWMP versions the ACS supports, e.g. {"1.0",...,"1.4"};
	// empty means all of 1.0–1.4.
	Versions []string
	// ACSMethods is the method list answered to a CPE's GetRPCMethods;
	// empty means Inform, GetRPCMethods, TransferComplete,
	// AutonomousTransferComplete, RequestDownload, DUStateChangeComplete,
	// AutonomousDUStateChangeComplete, Kicked.
	ACSMethods []string
	// HoldRequests, when true, is sent in the InformResponse.
	HoldRequests bool
}

// Answer pairs an ACS request with what the CPE answered: its response
// message or a *Fault.
type Answer struct {
	Request  Message
	Response Message
	// ID is the cwmp:ID the ACS put on the request.
	ID string
	// Mismatch is true when the response's name does not match the request
	// (GenieACS records this as fault invalid_response).
	Mismatch bool
}

// Step is the outcome of one Receive.
type Step struct {
	// Inform is set when this POST carried the session's Inform.
	Inform *Inform
	// Request is a CPE-initiated request handled in this step
	// (TransferComplete, AutonomousTransferComplete, RequestDownload, ...).
	Request Message
	// Answer is set when this POST answered the outstanding ACS request.
	Answer *Answer
	// Reply is the envelope to send with HTTP 200 when the session answered
	// by itself (InformResponse, a CPE request's response, fault 8000).
	// When Reply is nil the ACS must call Session.Next to choose what to
	// send (an RPC request or the end of the session).
	Reply *Envelope
}

// Session is a pure CWMP session state machine (no I/O). The edge feeds it
// each decoded POST and sends what it returns. Not safe for concurrent use.
type Session struct {
	cfg       SessionConfig
	state     SessionState
	started   time.Time
	namespace string
	version   string
	pending   *Answer
	nextID    uint64
}

// NewSession returns a session awaiting its Inform.
func NewSession(cfg SessionConfig) *Session { return &Session{cfg: cfg} }

// State reports where the session stands.
func (s *Session) State() SessionState { return s.state }

// Version is the negotiated CWMP version ("1.0" … "1.4"), known after the Inform.
func (s *Session) Version() string { return s.version }

// Namespace is the CWMP namespace URI replies use (the CPE's own).
func (s *Session) Namespace() string { return s.namespace }

// Receive takes one POST: env is the decoded envelope, or nil for an empty
// body. Implemented by the session work (issue #3).
func (s *Session) Receive(env *Envelope) (Step, error) { return Step{}, ErrBadSessionState }

// Next sends req as the ACS's next request and returns the envelope to
// write with HTTP 200; a nil req ends the session and returns nil, which
// the server writes as HTTP 204. Implemented by the session work (issue #3).
func (s *Session) Next(req Message) *Envelope { return nil }
