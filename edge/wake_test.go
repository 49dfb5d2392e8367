package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// TestWakeDuringFirstSession is the race behind a flaky e2e run: a core
// task marked Wake reached the edge while the device's first session was
// ending, after that session's last look at its tasks but before its end
// stored the connection-request credentials the session had just set. The
// connection request went out at once with the old credentials, the CPE
// refused it (401), and the task waited for the next periodic Inform.
// The session is held in that window here; the task must run right after
// it, woken by a connection request the CPE accepts.
func TestWakeDuringFirstSession(t *testing.T) {
	held := make(chan string, 1)
	release := make(chan struct{})
	var once, unblock sync.Once
	free := func() { unblock.Do(func() { close(release) }) }
	e := startEdgeWith(t, "", nil, func(n *Node) {
		n.server.beforeEnd = func(id string) {
			once.Do(func() {
				held <- id
				<-release
			})
		}
	})
	t.Cleanup(free)
	f := startFleet(t, e, 1, nil)
	var id string
	select {
	case id = <-held:
	case <-time.After(15 * time.Second):
		t.Fatal("the device's first session did not reach its end")
	}
	if id != f.Device(0).ID() {
		t.Fatalf("held the session of %s, want %s", id, f.Device(0).ID())
	}
	if _, pass := crCredentials(e.device(id)); pass != "" {
		t.Fatal("the credentials are stored before the first session ended; the test holds the wrong moment")
	}
	informs := e.device(id).LastInform

	task := &fleet.Task{ID: "WAKE-IN-SESSION", Device: id, Name: fleet.TaskGetRPCMethods, Status: fleet.StatusPending, Timestamp: time.Now().UTC()}
	mustStore(t, e.node.Cache(), fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Wake: true, Task: task})
	// The edge has dealt with the wake: deferred it to the session's end,
	// or (before the fix) sent a connection request the CPE refused.
	waitFor(t, 10*time.Second, "the wake to be deferred to the session's end", func() bool {
		return wakesAfterSession(e, id) > 0 ||
			e.metric(`edgeacs_edge_connection_requests_total{outcome="auth_failed",transport="http"}`) != ""
	})
	free()

	got := e.waitTask(task.ID, 10*time.Second)
	if got.Status != fleet.StatusDone {
		t.Fatalf("task %s: %+v", got.Status, got.Fault)
	}
	d := e.device(id)
	if !d.LastInform.After(informs) || len(d.LastEvents) == 0 || d.LastEvents[0] != cwmp.EventConnectionRequest {
		t.Fatalf("the task ran in a session with events %v, want one opened by a connection request", d.LastEvents)
	}
	if m := e.metric(`edgeacs_edge_connection_requests_total{outcome="auth_failed",transport="http"}`); m != "" {
		t.Errorf("a connection request was refused: %s", m)
	}
}

// TestWakeInSessionRunsInIt: a task marked Wake that reaches the edge
// while its device is in a session, before that session's last look at
// its tasks, runs in that session. No connection request goes out: the
// CPE has a session open, and the credentials the session has just set
// on it are not the edge's until the session ends. A connection request
// asked for through the Reacher meanwhile (the API's) waits for the
// session's end and is not sent either.
func TestWakeInSessionRunsInIt(t *testing.T) {
	e := startEdge(t, "", nil)
	// The CPE talks to the edge through a proxy that holds its answer to
	// the edge's first SetParameterValues (the credentials task of its
	// first session): the CPE has applied it, the edge has not heard.
	held := make(chan struct{})
	release := make(chan struct{})
	var once, unblock sync.Once
	free := func() { unblock.Do(func() { close(release) }) }
	t.Cleanup(free)
	target, err := url.Parse(e.acs)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if bytes.Contains(body, []byte("SetParameterValuesResponse")) {
			once.Do(func() {
				close(held)
				<-release
			})
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	f := startFleet(t, e, 1, func(c *sim.Config) { c.ACSURL = proxy.URL + "/" })
	select {
	case <-held:
	case <-time.After(15 * time.Second):
		t.Fatal("the device's first session sent no SetParameterValues")
	}
	id := f.Device(0).ID()
	first := e.device(id).LastInform

	task := &fleet.Task{ID: "WAKE-MID-SESSION", Device: id, Name: fleet.TaskGetRPCMethods, Status: fleet.StatusPending, Timestamp: time.Now().UTC()}
	mustStore(t, e.node.Cache(), fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Wake: true, Task: task})
	api := make(chan error, 1)
	go func() { api <- e.node.Reacher().ConnectionRequest(context.Background(), id) }()
	waitFor(t, 10*time.Second, "the wake and the API's request to wait for the session's end", func() bool {
		return wakesAfterSession(e, id) == 2 ||
			e.metric(`edgeacs_edge_connection_requests_total{outcome="auth_failed",transport="http"}`) != ""
	})
	free()

	got := e.waitTask(task.ID, 10*time.Second)
	if got.Status != fleet.StatusDone {
		t.Fatalf("task %s: %+v", got.Status, got.Fault)
	}
	select {
	case err := <-api:
		if err != nil {
			t.Fatalf("the API's connection request: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the API's connection request still waits after the session ended")
	}
	if d := e.device(id); !d.LastInform.Equal(first) {
		t.Errorf("the task ran in a later session (events %v), want the one it arrived in", d.LastEvents)
	}
	if m := e.metric(`edgeacs_edge_connection_requests_total{`); m != "" {
		t.Errorf("a connection request went out to a device in session: %s", m)
	}
}

// crServer is a CPE's connection-request listener that checks digest
// credentials the test may change, as a CPE's change when an ACS sets them.
type crServer struct {
	mu         sync.Mutex
	user, pass string
	accepted   int // authenticated requests answered 200
	refused    int // authenticated requests answered 401
	// before, when set, runs once, at the first request.
	before func()
	once   sync.Once
}

func (s *crServer) setCredentials(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

func (s *crServer) counts() (accepted, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.refused
}

func (s *crServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(func() {
		if s.before != nil {
			s.before()
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := r.Header.Get("Authorization"); h != "" {
		a, err := cwmp.ParseDigestAuthorization(h)
		if err == nil && a.Username == s.user && a.Verify(r.Method, s.pass) {
			s.accepted++
			w.WriteHeader(http.StatusOK)
			return
		}
		s.refused++
	}
	ch := cwmp.DigestChallenge{Realm: "cpe", Nonce: cwmp.NewNonce(), QOP: "auth", Algorithm: cwmp.DigestMD5}
	w.Header().Set("WWW-Authenticate", ch.String())
	w.WriteHeader(http.StatusUnauthorized)
}

// TestConnectionRequestRetriedAfterCredentialsChange: a connection request
// the CPE refuses because a session changed its credentials while the
// request was on its way is sent again with the new ones; one with
// credentials that are just wrong still fails, after one attempt.
func TestConnectionRequestRetriedAfterCredentialsChange(t *testing.T) {
	e := startEdge(t, "", nil)
	cr := &crServer{user: "cr-user", pass: "cr-pass"}
	srv := httptest.NewServer(cr)
	t.Cleanup(srv.Close)
	c := newCPE(t, e, "CRCHANGE1")
	c.crURL = srv.URL + "/cr"
	c.open(cwmp.EventBootstrap) // informs cr-user/cr-pass
	finishSession(t, c)
	if _, err := e.node.Cache().Device(c.id()); err != nil {
		t.Fatal(err)
	}
	// An operator's task gives the CPE new credentials at its next session.
	spvCreds := &fleet.Task{Device: c.id(), Name: fleet.TaskSetParameterValues, Status: fleet.StatusPending, Timestamp: time.Now().UTC(),
		ParameterValues: []fleet.ParameterValue{
			{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", Value: "new-user", Type: cwmp.TypeString},
			{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", Value: "new-pass", Type: cwmp.TypeString},
		}}
	if err := e.node.Cache().AddTask(spvCreds); err != nil {
		t.Fatal(err)
	}
	// That session happens, on the CPE's own schedule, while a connection
	// request read the old credentials and is on its way.
	atCPE, sessionDone := make(chan struct{}), make(chan struct{})
	cr.before = func() {
		close(atCPE)
		<-sessionDone
	}
	result := make(chan error, 1)
	go func() { result <- e.node.Reacher().ConnectionRequest(context.Background(), c.id()) }()
	select {
	case <-atCPE:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection request reached the CPE")
	}
	c.open(cwmp.EventPeriodic)
	finishSession(t, c)
	cr.setCredentials("new-user", "new-pass")
	close(sessionDone)
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("connection request after the credentials changed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection request did not return")
	}
	if acc, ref := cr.counts(); acc != 1 || ref != 1 {
		t.Fatalf("CPE accepted %d and refused %d requests, want the old credentials refused once and the new accepted", acc, ref)
	}

	// Credentials the edge does not know are not retried.
	cr.setCredentials("someone", "else")
	if err := e.node.Reacher().ConnectionRequest(context.Background(), c.id()); !errors.Is(err, cwmp.ErrCRAuthFailed) {
		t.Fatalf("wrong credentials: %v", err)
	}
	if acc, ref := cr.counts(); acc != 1 || ref != 2 {
		t.Fatalf("CPE accepted %d and refused %d requests, want one more refused", acc, ref)
	}
}
