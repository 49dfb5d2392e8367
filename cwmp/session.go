package cwmp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// String names the state for logs.
func (s SessionState) String() string {
	switch s {
	case StateAwaitInform:
		return "await-inform"
	case StateCPERequests:
		return "cpe-requests"
	case StateACSRequests:
		return "acs-requests"
	case StateEnded:
		return "ended"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// DefaultACSMethods is the method list answered to a CPE's GetRPCMethods
// when SessionConfig.ACSMethods is empty.
var DefaultACSMethods = []string{
	MethodInform, MethodGetRPCMethods, MethodTransferComplete,
	MethodAutonomousTransferComplete, MethodRequestDownload,
	MethodDUStateChangeComplete, MethodAutonomousDUStateChangeComplete,
	MethodKicked,
}

// SessionConfig configures a Session.
type SessionConfig struct {
	// Versions are the CWMP versions the ACS supports, e.g. {"1.0",...,"1.4"};
	// empty means all of 1.0–1.4.
	Versions []string
	// ACSMethods is the method list answered to a CPE's GetRPCMethods;
	// empty means DefaultACSMethods: Inform, GetRPCMethods, TransferComplete,
	// AutonomousTransferComplete, RequestDownload, DUStateChangeComplete,
	// AutonomousDUStateChangeComplete, Kicked.
	ACSMethods []string
	// HoldRequests, when true, is sent in the InformResponse, and the CPE
	// must then not send requests of its own: one arriving anyway is
	// ErrBadSessionState.
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
	// IDMismatch is true when the CPE echoed a cwmp:ID other than ID.
	// Informational only: CPEs that drop or mangle the ID are common, so
	// the answer is still taken as the answer to Request.
	IDMismatch bool
	// Empty is true when the CPE sent an empty POST instead of answering.
	// Response is then a synthetic *Fault 9002 (EmptyAnswerFault) so that
	// callers that only look at faults still see the request fail.
	Empty bool
}

// EmptyAnswerFaultString is the FaultString of the synthetic fault recorded
// when a CPE answers an ACS request with an empty POST.
const EmptyAnswerFaultString = "CPE sent an empty POST instead of a response"

// Step is the outcome of one Receive.
type Step struct {
	// Inform is set when this POST carried the session's Inform.
	Inform *Inform
	// Request is a CPE-initiated request the ACS served in this step
	// (TransferComplete, AutonomousTransferComplete, RequestDownload,
	// DUStateChangeComplete, AutonomousDUStateChangeComplete, Kicked,
	// GetRPCMethods). Requests answered with fault 8000 are not reported.
	Request Message
	// Answer is set when this POST answered the outstanding ACS request.
	Answer *Answer
	// Reply is the envelope to send with HTTP 200 when the session answered
	// by itself (InformResponse, a CPE request's response, fault 8000 or
	// 8006). When Reply is nil the ACS must call Session.Next to choose what
	// to send (an RPC request or the end of the session).
	Reply *Envelope
}

// Session is a pure CWMP session state machine (no I/O). The edge feeds it
// each decoded POST and sends what it returns. Not safe for concurrent use.
//
// The flow (TR-069 §3.7, REFERENCE.md §2.1): Inform → InformResponse; CPE
// requests, each answered by the session itself; an empty POST hands the
// turn to the ACS, which sends one request at a time with Next and reads
// the CPE's answer from the following Receive; Next(nil) ends the session
// (HTTP 204). A Receive error leaves the session's state unchanged.
type Session struct {
	cfg       SessionConfig
	state     SessionState
	namespace string
	version   string
	inform    *Inform
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

// Inform is the session's Inform, nil before it arrived.
func (s *Session) Inform() *Inform { return s.inform }

// Pending is the outstanding ACS request (Request and ID set, Response
// nil), or nil when none is outstanding. The returned value is a copy.
func (s *Session) Pending() *Answer {
	if s.pending == nil {
		return nil
	}
	p := *s.pending
	return &p
}

// Receive takes one POST: env is the decoded envelope, or nil (or an
// envelope with a nil Body) for an empty body.
//
// An error wraps ErrBadSessionState and means the POST does not fit the
// session (the server answers HTTP 400); the session is left as it was.
// A CWMP version the ACS cannot speak is not an error: Step.Reply carries
// fault 8006 and the session moves to StateEnded, so the server writes the
// fault and then closes.
func (s *Session) Receive(env *Envelope) (Step, error) {
	var body Message
	if env != nil {
		body = env.Body
	}
	switch s.state {
	case StateAwaitInform:
		return s.receiveInform(env, body)
	case StateCPERequests:
		return s.receiveCPERequest(env, body)
	case StateACSRequests:
		return s.receiveAnswer(env, body)
	}
	return Step{}, fmt.Errorf("%w: %s received after the session ended", ErrBadSessionState, describe(body))
}

func (s *Session) receiveInform(env *Envelope, body Message) (Step, error) {
	inf, ok := body.(*Inform)
	if !ok || inf == nil {
		return Step{}, fmt.Errorf("%w: expected Inform, got %s", ErrBadSessionState, describe(body))
	}
	ns := env.Namespace
	if strings.TrimSpace(ns) == "" {
		ns = NS10
	}
	version, use, err := NegotiateVersion(env, s.cfg.Versions)
	if err != nil {
		var f *Fault
		if !errors.As(err, &f) {
			return Step{}, fmt.Errorf("inform: %w", err)
		}
		s.namespace = ns
		s.inform = inf
		s.state = StateEnded
		return Step{Inform: inf, Reply: s.reply(env, f)}, nil
	}
	s.namespace = ns
	s.version = version
	s.inform = inf
	s.state = StateCPERequests
	reply := s.reply(env, &InformResponse{MaxEnvelopes: 1})
	reply.UseCWMPVersion = use
	reply.HoldRequests = s.cfg.HoldRequests
	return Step{Inform: inf, Reply: reply}, nil
}

func (s *Session) receiveCPERequest(env *Envelope, body Message) (Step, error) {
	if body == nil {
		s.state = StateACSRequests
		return Step{}, nil
	}
	method := body.Method()
	if method == MethodInform {
		return Step{}, fmt.Errorf("%w: second Inform in a session", ErrBadSessionState)
	}
	if isAnswer(method) {
		return Step{}, fmt.Errorf("%w: %s with no ACS request outstanding", ErrBadSessionState, method)
	}
	if s.cfg.HoldRequests {
		return Step{}, fmt.Errorf("%w: %s sent despite HoldRequests", ErrBadSessionState, method)
	}
	var resp Message
	switch body.(type) {
	case *TransferComplete:
		resp = &TransferCompleteResponse{}
	case *AutonomousTransferComplete:
		resp = &AutonomousTransferCompleteResponse{}
	case *RequestDownload:
		resp = &RequestDownloadResponse{}
	case *DUStateChangeComplete:
		resp = &DUStateChangeCompleteResponse{}
	case *AutonomousDUStateChangeComplete:
		resp = &AutonomousDUStateChangeCompleteResponse{}
	case *Kicked:
		resp = &KickedResponse{}
	case *GetRPCMethods:
		methods := s.cfg.ACSMethods
		if len(methods) == 0 {
			methods = DefaultACSMethods
		}
		resp = &GetRPCMethodsResponse{MethodList: append([]string(nil), methods...)}
	default:
		// A CPE method sent the wrong way, a vendor X_ method or anything
		// else the ACS does not serve: fault 8000 keeps the session going.
		return Step{Reply: s.reply(env, NewFault(FaultACSMethodNotSupported, ""))}, nil
	}
	// NoMoreRequests (deprecated, CWMP 1.0) on a request says this was the
	// CPE's last one; its next POST must then be empty or an answer.
	if env.NoMoreRequests {
		s.state = StateACSRequests
	}
	return Step{Request: body, Reply: s.reply(env, resp)}, nil
}

func (s *Session) receiveAnswer(env *Envelope, body Message) (Step, error) {
	p := s.pending
	if p == nil {
		if body != nil {
			return Step{}, fmt.Errorf("%w: %s with no ACS request outstanding", ErrBadSessionState, body.Method())
		}
		return Step{}, nil
	}
	if body == nil {
		// Some CPEs give up on a request they cannot handle by posting
		// nothing. Treat it as the request failing rather than ending the
		// session with a 400, so the caller records a fault and moves on
		// (ending the session with Next(nil) is usually the wise move).
		a := *p
		a.Response = NewFault(FaultInternalError, EmptyAnswerFaultString)
		a.Empty = true
		s.pending = nil
		return Step{Answer: &a}, nil
	}
	method := body.Method()
	if method == MethodInform {
		return Step{}, fmt.Errorf("%w: second Inform in a session", ErrBadSessionState)
	}
	if !isAnswer(method) {
		return Step{}, fmt.Errorf("%w: CPE request %s while %s (ID %q) is outstanding",
			ErrBadSessionState, method, p.Request.Method(), p.ID)
	}
	a := *p
	a.Response = body
	a.Mismatch = method != MethodFault && method != p.Request.Method()+"Response"
	a.IDMismatch = env.HasID && env.ID != p.ID
	s.pending = nil
	return Step{Answer: &a}, nil
}

// Next sends req as the ACS's next request and returns the envelope to
// write with HTTP 200; a nil req ends the session and returns nil, which
// the server writes as HTTP 204.
//
// Next with a non-nil req is only valid in StateACSRequests with no request
// outstanding, that is after a Receive that returned a nil Reply; anything
// else is a bug in the caller and panics. Each request gets a fresh cwmp:ID
// ("acs-1", "acs-2", ...) that Pending and the resulting Answer report.
func (s *Session) Next(req Message) *Envelope {
	if req == nil {
		s.state = StateEnded
		s.pending = nil
		return nil
	}
	if s.state != StateACSRequests || s.pending != nil {
		panic(fmt.Sprintf("cwmp: Session.Next(%s) in state %s with pending=%v", req.Method(), s.state, s.pending != nil))
	}
	s.nextID++
	id := "acs-" + strconv.FormatUint(s.nextID, 10)
	s.pending = &Answer{Request: req, ID: id}
	return &Envelope{Namespace: s.namespace, ID: id, HasID: true, Body: req}
}

// reply builds an envelope answering env in the session's namespace,
// echoing its cwmp:ID (always present: the header is mustUnderstand and
// CPEs correlate on it, even when they sent an empty one).
func (s *Session) reply(env *Envelope, body Message) *Envelope {
	return &Envelope{Namespace: s.namespace, ID: env.ID, HasID: true, Body: body}
}

// isAnswer reports whether a method name is a response or a fault, that is
// something the CPE sends only to answer an ACS request.
func isAnswer(method string) bool {
	return method == MethodFault || strings.HasSuffix(method, "Response")
}

func describe(m Message) string {
	if m == nil {
		return "an empty POST"
	}
	return m.Method()
}
