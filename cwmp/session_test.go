package cwmp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func informEnv(ns, id string) *Envelope {
	return &Envelope{Namespace: ns, ID: id, HasID: true, Body: &Inform{
		DeviceId: DeviceID{Manufacturer: "Acme", OUI: "00259E", ProductClass: "HG", SerialNumber: "S1"},
		Event:    []Event{{Code: EventBootstrap}, {Code: EventBoot}},
	}}
}

// vendorMessage stands in for a method the codec hands over but the ACS
// does not know.
type vendorMessage struct{ name string }

func (v *vendorMessage) Method() string { return v.name }

// op is one HTTP exchange in a scripted session: either a POST fed to
// Receive (with what must come back), or a Next call.
type op struct {
	recv    *Envelope // POST body; nil with empty=true for an empty POST
	empty   bool
	next    Message // ACS request for Next; nil with end=true ends the session
	end     bool
	wantErr bool
	// expectations on the Step or the Next envelope
	reply      Message // body of Step.Reply or of the Next envelope; nil = no reply
	replyID    string
	request    Message // Step.Request
	answer     *Answer // Step.Answer (compared field by field, Response by method)
	inform     bool    // Step.Inform set
	state      SessionState
	useVersion string
}

func runSession(t *testing.T, cfg SessionConfig, ops []op) *Session {
	t.Helper()
	s := NewSession(cfg)
	for i, o := range ops {
		if o.next != nil || o.end {
			env := s.Next(o.next)
			if o.end {
				if env != nil {
					t.Fatalf("op %d: Next(nil) = %+v, want nil", i, env)
				}
			} else {
				if env == nil || env.Body != o.next || !env.HasID || env.ID != o.replyID || env.Namespace != s.Namespace() {
					t.Fatalf("op %d: Next = %+v, want body %T with ID %q in %q", i, env, o.next, o.replyID, s.Namespace())
				}
				if p := s.Pending(); p == nil || p.ID != o.replyID || p.Request != o.next {
					t.Fatalf("op %d: Pending = %+v", i, p)
				}
			}
			if s.State() != o.state {
				t.Fatalf("op %d: state %s, want %s", i, s.State(), o.state)
			}
			continue
		}
		var env *Envelope
		if !o.empty {
			env = o.recv
		}
		before := s.State()
		step, err := s.Receive(env)
		if o.wantErr {
			if !errors.Is(err, ErrBadSessionState) {
				t.Fatalf("op %d: err = %v, want ErrBadSessionState", i, err)
			}
			if s.State() != before {
				t.Fatalf("op %d: failed Receive moved state %s → %s", i, before, s.State())
			}
			continue
		}
		if err != nil {
			t.Fatalf("op %d: Receive: %v", i, err)
		}
		if s.State() != o.state {
			t.Fatalf("op %d: state %s, want %s", i, s.State(), o.state)
		}
		if (step.Inform != nil) != o.inform {
			t.Fatalf("op %d: Step.Inform = %v, want set=%v", i, step.Inform, o.inform)
		}
		if step.Request != o.request {
			t.Fatalf("op %d: Step.Request = %#v, want %#v", i, step.Request, o.request)
		}
		switch {
		case o.reply == nil && step.Reply != nil:
			t.Fatalf("op %d: unexpected reply %#v", i, step.Reply)
		case o.reply != nil:
			r := step.Reply
			if r == nil {
				t.Fatalf("op %d: no reply, want %T", i, o.reply)
			}
			if !reflect.DeepEqual(r.Body, o.reply) {
				t.Fatalf("op %d: reply body %#v, want %#v", i, r.Body, o.reply)
			}
			if !r.HasID || r.ID != o.replyID {
				t.Fatalf("op %d: reply ID (%q, %v), want %q", i, r.ID, r.HasID, o.replyID)
			}
			if r.Namespace != s.Namespace() || r.Namespace == "" {
				t.Fatalf("op %d: reply namespace %q, session %q", i, r.Namespace, s.Namespace())
			}
			if r.UseCWMPVersion != o.useVersion {
				t.Fatalf("op %d: UseCWMPVersion %q, want %q", i, r.UseCWMPVersion, o.useVersion)
			}
		}
		switch {
		case o.answer == nil && step.Answer != nil:
			t.Fatalf("op %d: unexpected answer %+v", i, step.Answer)
		case o.answer != nil:
			a := step.Answer
			if a == nil {
				t.Fatalf("op %d: no answer", i)
			}
			if a.Request != o.answer.Request || a.ID != o.answer.ID || a.Mismatch != o.answer.Mismatch ||
				a.IDMismatch != o.answer.IDMismatch || a.Empty != o.answer.Empty {
				t.Fatalf("op %d: answer %+v, want %+v", i, a, o.answer)
			}
			if !reflect.DeepEqual(a.Response, o.answer.Response) {
				t.Fatalf("op %d: answer response %#v, want %#v", i, a.Response, o.answer.Response)
			}
			if s.Pending() != nil {
				t.Fatalf("op %d: request still pending after its answer", i)
			}
		}
	}
	return s
}

func TestSessionWalks(t *testing.T) {
	tc := &TransferComplete{CommandKey: "fw1"}
	grpc := &GetRPCMethods{}
	gpv := &GetParameterValues{ParameterNames: []string{"Device.DeviceInfo."}}
	gpvResp := &GetParameterValuesResponse{ParameterList: []ParameterValue{{Name: "Device.DeviceInfo.SerialNumber", Value: "S1", Type: TypeString}}}
	spv := &SetParameterValues{ParameterList: []ParameterValue{{Name: "Device.X", Value: "1", Type: TypeInt}}}
	spvFault := NewFault(FaultInvalidArguments, "")
	reboot := &Reboot{CommandKey: "r"}
	gpn := &GetParameterNames{ParameterPath: "Device.", NextLevel: true}
	download := &Download{CommandKey: "d"}
	atc := &AutonomousTransferComplete{TransferURL: "http://x"}
	rd := &RequestDownload{FileType: "1 Firmware Upgrade Image"}
	duscc := &DUStateChangeComplete{CommandKey: "du"}
	aduscc := &AutonomousDUStateChangeComplete{}
	kicked := &Kicked{Command: "c"}
	vendor := &vendorMessage{name: "X_ACME_Hello"}

	tests := []struct {
		name string
		cfg  SessionConfig
		ops  []op
	}{
		{
			name: "full session",
			ops: []op{
				{recv: informEnv(NS10, "inf-1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "inf-1", state: StateCPERequests},
				{recv: &Envelope{Namespace: NS10, ID: "tc-1", HasID: true, Body: tc}, request: tc, reply: &TransferCompleteResponse{}, replyID: "tc-1", state: StateCPERequests},
				{recv: &Envelope{Namespace: NS10, ID: "g-1", HasID: true, Body: grpc}, request: grpc, reply: &GetRPCMethodsResponse{MethodList: DefaultACSMethods}, replyID: "g-1", state: StateCPERequests},
				{empty: true, state: StateACSRequests},
				{next: gpv, replyID: "acs-1", state: StateACSRequests},
				{recv: &Envelope{Namespace: NS10, ID: "acs-1", HasID: true, Body: gpvResp}, answer: &Answer{Request: gpv, Response: gpvResp, ID: "acs-1"}, state: StateACSRequests},
				{next: spv, replyID: "acs-2", state: StateACSRequests},
				{recv: &Envelope{Namespace: NS10, ID: "acs-2", HasID: true, Body: spvFault}, answer: &Answer{Request: spv, Response: spvFault, ID: "acs-2"}, state: StateACSRequests},
				{end: true, state: StateEnded},
				{recv: &Envelope{Namespace: NS10}, wantErr: true},
				{empty: true, wantErr: true},
			},
		},
		{
			name: "every served CPE request, empty Body ends them",
			ops: []op{
				{recv: informEnv(NS12, ""), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "", state: StateCPERequests},
				{recv: &Envelope{Body: atc}, request: atc, reply: &AutonomousTransferCompleteResponse{}, state: StateCPERequests},
				{recv: &Envelope{Body: rd}, request: rd, reply: &RequestDownloadResponse{}, state: StateCPERequests},
				{recv: &Envelope{Body: duscc}, request: duscc, reply: &DUStateChangeCompleteResponse{}, state: StateCPERequests},
				{recv: &Envelope{Body: aduscc}, request: aduscc, reply: &AutonomousDUStateChangeCompleteResponse{}, state: StateCPERequests},
				{recv: &Envelope{Body: kicked}, request: kicked, reply: &KickedResponse{}, state: StateCPERequests},
				{recv: &Envelope{Namespace: NS12}, state: StateACSRequests},
				{end: true, state: StateEnded},
			},
		},
		{
			name: "unserved and unknown CPE requests get fault 8000 and the session goes on",
			ops: []op{
				{recv: informEnv(NS11, "1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "1", state: StateCPERequests},
				{recv: &Envelope{ID: "2", HasID: true, Body: &Reboot{}}, reply: NewFault(FaultACSMethodNotSupported, ""), replyID: "2", state: StateCPERequests},
				{recv: &Envelope{ID: "3", HasID: true, Body: vendor}, reply: NewFault(FaultACSMethodNotSupported, ""), replyID: "3", state: StateCPERequests},
				{recv: &Envelope{Body: tc}, request: tc, reply: &TransferCompleteResponse{}, state: StateCPERequests},
				{empty: true, state: StateACSRequests},
				{end: true, state: StateEnded},
			},
		},
		{
			name: "custom ACS methods list",
			cfg:  SessionConfig{ACSMethods: []string{"Inform", "GetRPCMethods"}},
			ops: []op{
				{recv: informEnv(NS10, "1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "1", state: StateCPERequests},
				{recv: &Envelope{Body: grpc}, request: grpc, reply: &GetRPCMethodsResponse{MethodList: []string{"Inform", "GetRPCMethods"}}, state: StateCPERequests},
			},
		},
		{
			name: "NoMoreRequests header hands over the turn",
			ops: []op{
				{recv: informEnv(NS10, "1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "1", state: StateCPERequests},
				{recv: &Envelope{NoMoreRequests: true, Body: tc}, request: tc, reply: &TransferCompleteResponse{}, state: StateACSRequests},
				{recv: &Envelope{Body: tc}, wantErr: true},
				{empty: true, state: StateACSRequests},
				{next: reboot, replyID: "acs-1", state: StateACSRequests},
			},
		},
		{
			name: "NoMoreRequests with an empty body",
			ops: []op{
				{recv: informEnv(NS10, "1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "1", state: StateCPERequests},
				{recv: &Envelope{NoMoreRequests: true}, state: StateACSRequests},
			},
		},
		{
			name: "mismatched answer, wrong ID, empty answer",
			ops: []op{
				{recv: informEnv(NS10, "1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "1", state: StateCPERequests},
				{empty: true, state: StateACSRequests},
				{empty: true, state: StateACSRequests}, // no request outstanding: still the ACS's turn
				{next: gpn, replyID: "acs-1", state: StateACSRequests},
				{recv: &Envelope{ID: "acs-1", HasID: true, Body: gpvResp}, answer: &Answer{Request: gpn, Response: gpvResp, ID: "acs-1", Mismatch: true}, state: StateACSRequests},
				{next: reboot, replyID: "acs-2", state: StateACSRequests},
				{recv: &Envelope{ID: "acs-9", HasID: true, Body: &RebootResponse{}}, answer: &Answer{Request: reboot, Response: &RebootResponse{}, ID: "acs-2", IDMismatch: true}, state: StateACSRequests},
				{next: download, replyID: "acs-3", state: StateACSRequests},
				{empty: true, answer: &Answer{Request: download, Response: NewFault(FaultInternalError, EmptyAnswerFaultString), ID: "acs-3", Empty: true}, state: StateACSRequests},
				{next: reboot, replyID: "acs-4", state: StateACSRequests},
				{recv: &Envelope{Body: &RebootResponse{}}, answer: &Answer{Request: reboot, Response: &RebootResponse{}, ID: "acs-4"}, state: StateACSRequests},
				{end: true, state: StateEnded},
				{end: true, state: StateEnded},
			},
		},
		{
			name: "HoldRequests",
			cfg:  SessionConfig{HoldRequests: true},
			ops: []op{
				{recv: informEnv(NS10, "1"), inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "1", state: StateCPERequests},
				{recv: &Envelope{Body: tc}, wantErr: true},
				{recv: &Envelope{Body: grpc}, wantErr: true},
				{empty: true, state: StateACSRequests},
			},
		},
		{
			name: "CWMP 1.4 negotiation",
			ops: []op{
				{recv: &Envelope{Namespace: NS12, ID: "4711", HasID: true, SupportedCWMPVersions: "1.0,1.1,1.2,1.3,1.4", Body: &Inform{}},
					inform: true, reply: &InformResponse{MaxEnvelopes: 1}, replyID: "4711", useVersion: "1.4", state: StateCPERequests},
			},
		},
		{
			name: "version incompatible ends the session with fault 8006",
			cfg:  SessionConfig{Versions: []string{"1.0"}},
			ops: []op{
				{recv: &Envelope{Namespace: NS12, ID: "4711", HasID: true, SupportedCWMPVersions: "1.4", Body: &Inform{}},
					inform: true, reply: NewFault(FaultACSVersionIncompatible, ""), replyID: "4711", state: StateEnded},
				{empty: true, wantErr: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSession(t, tt.cfg, tt.ops)
		})
	}
}

func TestSessionBadStates(t *testing.T) {
	inform := func() *Envelope { return informEnv(NS10, "1") }
	toCPE := []*Envelope{inform()}
	toACS := []*Envelope{inform(), nil}
	resp := &Envelope{Body: &GetParameterValuesResponse{}}
	fault := &Envelope{Body: NewFault(FaultInternalError, "")}
	tests := []struct {
		name   string
		before []*Envelope
		pend   Message // sent with Next after before, if set
		bad    *Envelope
	}{
		{name: "empty POST first", bad: nil},
		{name: "empty envelope first", bad: &Envelope{Namespace: NS10}},
		{name: "request first", bad: &Envelope{Body: &TransferComplete{}}},
		{name: "response first", bad: resp},
		{name: "typed nil Inform first", bad: &Envelope{Body: (*Inform)(nil)}},
		{name: "second Inform while CPE sends", before: toCPE, bad: inform()},
		{name: "response while CPE sends", before: toCPE, bad: resp},
		{name: "fault while CPE sends", before: toCPE, bad: fault},
		{name: "unknown response while CPE sends", before: toCPE, bad: &Envelope{Body: &vendorMessage{name: "X_FooResponse"}}},
		{name: "response with nothing outstanding", before: toACS, bad: resp},
		{name: "request with nothing outstanding", before: toACS, bad: &Envelope{Body: &TransferComplete{}}},
		{name: "second Inform while ACS drives", before: toACS, bad: inform()},
		{name: "second Inform with request outstanding", before: toACS, pend: &Reboot{}, bad: inform()},
		{name: "CPE request with request outstanding", before: toACS, pend: &Reboot{}, bad: &Envelope{Body: &TransferComplete{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSession(SessionConfig{})
			for i, env := range tt.before {
				if _, err := s.Receive(env); err != nil {
					t.Fatalf("setup POST %d: %v", i, err)
				}
			}
			if tt.pend != nil {
				s.Next(tt.pend)
			}
			state, pending := s.State(), s.Pending()
			_, err := s.Receive(tt.bad)
			if !errors.Is(err, ErrBadSessionState) {
				t.Fatalf("err = %v, want ErrBadSessionState", err)
			}
			if s.State() != state || !reflect.DeepEqual(s.Pending(), pending) {
				t.Fatalf("failed Receive changed the session: %s/%+v → %s/%+v", state, pending, s.State(), s.Pending())
			}
		})
	}
}

func TestSessionInformAccessors(t *testing.T) {
	s := NewSession(SessionConfig{HoldRequests: true})
	if s.Inform() != nil || s.Version() != "" || s.State() != StateAwaitInform {
		t.Fatal("fresh session not empty")
	}
	env := informEnv("", "x")
	env.SessionTimeout = 30
	step, err := s.Receive(env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Inform() != env.Body || step.Inform != env.Body {
		t.Fatal("Inform not recorded")
	}
	if s.Namespace() != NS10 || step.Reply.Namespace != NS10 || s.Version() != "1.0" {
		t.Fatalf("empty namespace: got ns %q version %q", s.Namespace(), s.Version())
	}
	if !step.Reply.HoldRequests {
		t.Fatal("HoldRequests not sent")
	}

	s = NewSession(SessionConfig{})
	if step, err = s.Receive(&Envelope{Namespace: NS12, SessionTimeout: 60, Body: &Inform{}}); err != nil {
		t.Fatal(err)
	}
	if s.Version() != "1.3" || s.Namespace() != NS12 {
		t.Fatalf("got version %q ns %q, want 1.3 in %q", s.Version(), s.Namespace(), NS12)
	}
	if step.Reply.UseCWMPVersion != "" {
		t.Fatal("UseCWMPVersion sent without SupportedCWMPVersions")
	}
}

func TestSessionNextMisusePanics(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Session)
	}{
		{name: "before Inform", setup: func(*Session) {}},
		{name: "during CPE requests", setup: func(s *Session) { s.Receive(informEnv(NS10, "1")) }},
		{name: "request outstanding", setup: func(s *Session) {
			s.Receive(informEnv(NS10, "1"))
			s.Receive(nil)
			s.Next(&Reboot{})
		}},
		{name: "after end", setup: func(s *Session) {
			s.Receive(informEnv(NS10, "1"))
			s.Receive(nil)
			s.Next(nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSession(SessionConfig{})
			tt.setup(s)
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), "Session.Next") {
					t.Fatalf("recover() = %v, want a Session.Next panic", r)
				}
			}()
			s.Next(&FactoryReset{})
		})
	}
}

func TestSessionStateString(t *testing.T) {
	for s, want := range map[SessionState]string{StateAwaitInform: "await-inform", StateCPERequests: "cpe-requests",
		StateACSRequests: "acs-requests", StateEnded: "ended", 9: "state(9)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
}

// roundTrip encodes env and decodes it back, as the CPE would read it.
func roundTrip(t *testing.T, env *Envelope) (*Envelope, []byte) {
	t.Helper()
	data, err := Encode(env)
	if err != nil {
		t.Fatalf("encode %T: %v", env.Body, err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatalf("decode our own %T: %v\n%s", env.Body, err, data)
	}
	return back, data
}

func decodeFixture(t *testing.T, name string) *Envelope {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return env
}

// TestSessionOverTheWire drives whole sessions with the fixture envelopes
// through Decode and the session's replies through Encode.
func TestSessionOverTheWire(t *testing.T) {
	tests := []struct {
		inform    string
		cfg       SessionConfig
		namespace string
		version   string
		use       string
		id        string
	}{
		{inform: "inform-tr098-bootstrap.xml", namespace: NS10, version: "1.0", id: "100001"},
		{inform: "inform-tr181.xml", namespace: NS12, version: "1.4", use: "1.4", id: "inf-181"},
		{inform: "inform-tr181.xml", cfg: SessionConfig{Versions: []string{"1.0", "1.2"}, HoldRequests: true}, namespace: NS12, version: "1.2", use: "1.2", id: "inf-181"},
		{inform: "quirk-easycwmp-empty-id.xml", namespace: NS12, version: "1.3", id: ""},
	}
	for _, tt := range tests {
		t.Run(tt.inform, func(t *testing.T) {
			s := NewSession(tt.cfg)
			step, err := s.Receive(decodeFixture(t, tt.inform))
			if err != nil {
				t.Fatal(err)
			}
			if s.Version() != tt.version || s.Namespace() != tt.namespace {
				t.Fatalf("version %q ns %q, want %q %q", s.Version(), s.Namespace(), tt.version, tt.namespace)
			}
			ir, data := roundTrip(t, step.Reply)
			if !bytes.Contains(data, []byte(`"`+tt.namespace+`"`)) {
				t.Fatalf("reply not in the CPE's namespace:\n%s", data)
			}
			if ir.ID != tt.id || !ir.HasID || ir.UseCWMPVersion != tt.use || ir.HoldRequests != tt.cfg.HoldRequests {
				t.Fatalf("InformResponse header %+v", ir)
			}
			if r, ok := ir.Body.(*InformResponse); !ok || r.MaxEnvelopes != 1 {
				t.Fatalf("InformResponse body %#v", ir.Body)
			}

			if _, err := s.Receive(decodeFixture(t, "quirk-empty-body.xml")); err != nil {
				t.Fatal(err)
			}
			gpv := &GetParameterValues{ParameterNames: []string{"InternetGatewayDevice.DeviceInfo."}}
			req, _ := roundTrip(t, s.Next(gpv))
			if req.ID != "acs-1" || !reflect.DeepEqual(req.Body, gpv) {
				t.Fatalf("request on the wire: %+v %#v", req, req.Body)
			}
			step, err = s.Receive(decodeFixture(t, "gpv-response.xml"))
			if err != nil {
				t.Fatal(err)
			}
			a := step.Answer
			if a == nil || a.Request != gpv || a.Mismatch || a.ID != "acs-1" {
				t.Fatalf("answer %+v", a)
			}
			if r, ok := a.Response.(*GetParameterValuesResponse); !ok || len(r.ParameterList) == 0 {
				t.Fatalf("answer response %#v", a.Response)
			}
			spv := &SetParameterValues{ParameterList: []ParameterValue{{Name: "X", Value: "1", Type: TypeBoolean}}}
			s.Next(spv)
			step, err = s.Receive(decodeFixture(t, "fault-spv-9003.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := step.Answer.Response.(*Fault); !ok || f.Code != FaultInvalidArguments || len(f.SetParameterValuesFaults) == 0 || step.Answer.Mismatch {
				t.Fatalf("SPV fault answer %+v", step.Answer)
			}
			if s.Next(nil) != nil || s.State() != StateEnded {
				t.Fatal("session did not end")
			}
		})
	}
}

// TestSessionWireFaults checks the faults the session writes by itself.
func TestSessionWireFaults(t *testing.T) {
	s := NewSession(SessionConfig{Versions: []string{"1.0", "1.1"}})
	inform := decodeFixture(t, "inform-tr181.xml")
	inform.SupportedCWMPVersions = "1.3,1.4"
	step, err := s.Receive(inform)
	if err != nil {
		t.Fatal(err)
	}
	env, data := roundTrip(t, step.Reply)
	if f, ok := env.Body.(*Fault); !ok || f.Code != FaultACSVersionIncompatible || env.ID != "inf-181" {
		t.Fatalf("8006 reply %+v %#v\n%s", env, env.Body, data)
	}

	s = NewSession(SessionConfig{})
	if _, err := s.Receive(decodeFixture(t, "inform-tr098-bootstrap.xml")); err != nil {
		t.Fatal(err)
	}
	step, err = s.Receive(decodeFixture(t, "upload-request.xml")) // a CPE method sent the wrong way
	if err != nil {
		t.Fatal(err)
	}
	env, data = roundTrip(t, step.Reply)
	if f, ok := env.Body.(*Fault); !ok || f.Code != FaultACSMethodNotSupported || f.SOAPCode != "Server" {
		t.Fatalf("8000 reply %#v\n%s", env.Body, data)
	}
	step, err = s.Receive(decodeFixture(t, "transfercomplete.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := step.Request.(*TransferComplete); !ok {
		t.Fatalf("TransferComplete not reported: %+v", step)
	}
	if env, _ = roundTrip(t, step.Reply); reflect.TypeOf(env.Body) != reflect.TypeOf(&TransferCompleteResponse{}) {
		t.Fatalf("TransferComplete reply %#v", env.Body)
	}
}

// BenchmarkSession runs a whole session in memory: Inform, TransferComplete,
// empty POST, one GPV and its answer, 204.
func BenchmarkSession(b *testing.B) {
	inform := informEnv(NS10, "1")
	tc := &Envelope{Namespace: NS10, ID: "2", HasID: true, Body: &TransferComplete{CommandKey: "k"}}
	gpv := &GetParameterValues{ParameterNames: []string{"Device."}}
	resp := &Envelope{Namespace: NS10, ID: "acs-1", HasID: true, Body: &GetParameterValuesResponse{}}
	b.ReportAllocs()
	for b.Loop() {
		s := NewSession(SessionConfig{})
		if _, err := s.Receive(inform); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Receive(tc); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Receive(nil); err != nil {
			b.Fatal(err)
		}
		s.Next(gpv)
		if _, err := s.Receive(resp); err != nil {
			b.Fatal(err)
		}
		s.Next(nil)
	}
}
