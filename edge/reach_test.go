package edge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/sim"
)

func TestHTTPConnectionRequest(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CRMinInterval = time.Second; c.CRBurst = 1 })
	f := startFleet(t, e, 1, nil)
	waitInformed(t, e, f)
	id := f.Device(0).ID()
	before := e.device(id).LastInform
	n0 := f.Stats().ConnectionRequests

	// Concurrent requests for one device share one connection request.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.node.Reacher().ConnectionRequest(context.Background(), id)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Over, too: a request for a device in session waits for its end.
	waitFor(t, 10*time.Second, "the session after the connection request to end", func() bool {
		d := e.device(id)
		return d.LastInform.After(before) && len(d.LastEvents) > 0 && d.LastEvents[0] == cwmp.EventConnectionRequest &&
			e.node.Server().OpenSessions() == 0
	})
	if n := f.Stats().ConnectionRequests - n0; n < 1 || n > 2 {
		t.Fatalf("%d connection requests reached the device for 4 concurrent calls", n)
	}

	// Within MinInterval a caller with a short deadline is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.node.Reacher().ConnectionRequest(ctx, id); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("within the interval: %v", err)
	}
	// A patient one is served once the interval has passed.
	if err := e.node.Reacher().ConnectionRequest(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionRequestErrors(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.CRTimeout = 200 * time.Millisecond; c.CRRetries = 1 })
	if err := e.node.Reacher().ConnectionRequest(context.Background(), "no-such-device"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	// The hand CPE reports a CR URL nobody listens on.
	c := newCPE(t, e, "OFFLINE1")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	if err := e.node.Reacher().ConnectionRequest(context.Background(), c.id()); !errors.Is(err, cwmp.ErrDeviceOffline) {
		t.Fatalf("offline device: %v", err)
	}
	if m := e.metric(`edgeacs_edge_connection_requests_total{outcome="offline",transport="http"}`); m == "" {
		t.Fatal("offline connection request not counted")
	}
}

// TestUDPConnectionRequest: a device behind "NAT" reports a UDP
// connection-request address and STUNEnable; the edge sends the signed
// TR-111 datagram from its STUN socket.
func TestUDPConnectionRequest(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := newCPE(t, e, "UDPCR001")
	code, _, raw := c.post(c.informBody([]string{cwmp.EventBootstrap},
		cwmp.ParameterValue{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestURL", Value: "", Type: cwmp.TypeString},
		cwmp.ParameterValue{Name: "InternetGatewayDevice.ManagementServer.UDPConnectionRequestAddress", Value: pc.LocalAddr().String(), Type: cwmp.TypeString},
		cwmp.ParameterValue{Name: "InternetGatewayDevice.ManagementServer.STUNEnable", Value: "1", Type: cwmp.TypeBoolean},
	))
	if code != 200 {
		t.Fatalf("inform: %d %s", code, raw)
	}
	finishSession(t, c)
	if err := e.node.Reacher().ConnectionRequest(context.Background(), c.id()); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	req, err := cwmp.ParseUDPConnectionRequest(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Verify("cr-pass", time.Now(), time.Minute); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if from.String() != e.node.Addrs().STUN {
		t.Fatalf("datagram from %s, want the STUN socket %s", from, e.node.Addrs().STUN)
	}
}

// TestUDPConnectionRequestWithSimulator: simulated CPEs learn their
// binding from the edge's STUN server and are woken over UDP.
func TestUDPConnectionRequestWithSimulator(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 1, func(c *sim.Config) {
		c.UDPCRAddr = "127.0.0.1:0"
		c.STUNServer = e.node.Addrs().STUN
		c.Model = sim.ModelTR098
	})
	waitInformed(t, e, f)
	id := f.Device(0).ID()
	// The address is not a forced Inform parameter: a GPV brings it into the cache.
	task := e.postTask(id, `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.ManagementServer."]}`, "connection_request&wait=10s")
	if p, err := e.node.Cache().Parameter(id, "InternetGatewayDevice.ManagementServer.UDPConnectionRequestAddress"); task.Status != "done" || err != nil || p.Value == "" {
		t.Fatalf("GPV %s; UDP address %+v, %v", task.Status, p, err)
	}
	// The session that ran it may linger for a follow-up; a connection
	// request for a device in session waits for its end and, with nothing
	// left to run, sends nothing.
	waitFor(t, 10*time.Second, "the GPV's session to end", func() bool { return e.node.Server().OpenSessions() == 0 })
	before := e.device(id).LastInform
	n0 := f.Stats().ConnectionRequests
	// A request made while the device is in another session (one of its
	// own) waits for that session and, with nothing queued, sends
	// nothing: the device just talked to the edge. Ask again then.
	waitFor(t, 20*time.Second, "the session after the UDP request", func() bool {
		if e.device(id).LastInform.After(before) && f.Stats().ConnectionRequests > n0 {
			return true
		}
		if f.Stats().ConnectionRequests == n0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.node.Reacher().ConnectionRequest(ctx, id); err != nil {
				t.Logf("connection request: %v", err)
			}
		}
		return false
	})
	// HTTP's success does not cut the UDP send short; its copies finish on
	// their own and are counted then.
	waitFor(t, 10*time.Second, "the UDP request counted as sent", func() bool {
		return e.metric(`edgeacs_edge_connection_requests_total{outcome="sent",transport="udp"}`) != ""
	})
}

// TestSharedConnectionRequestOutlivesFirstCaller: callers that join a
// connection request in flight get its result even when the caller that
// started it gives up (an API ?wait that ended used to cancel the request
// under everyone else), and the caller that gives up returns at once.
func TestSharedConnectionRequestOutlivesFirstCaller(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	e := startEdge(t, "", func(c *Config) { c.CRTimeout = 10 * time.Second })
	c := newCPE(t, e, "SLOWCR1")
	c.crURL = srv.URL + "/cr"
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)

	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- e.node.Reacher().ConnectionRequest(ctx1, c.id()) }()
	waitFor(t, 10*time.Second, "the connection request at the CPE", func() bool { return hits.Load() == 1 })
	second := make(chan error, 1)
	go func() { second <- e.node.Reacher().ConnectionRequest(context.Background(), c.id()) }()
	// The second caller must have joined the request in flight before the
	// first gives up and the CPE answers; on a busy box its goroutine may
	// otherwise run only after the request ended and start a new one.
	waitFor(t, 10*time.Second, "the second caller joining the request in flight", func() bool { return e.node.Reacher().waiting(c.id()) == 2 })
	cancel1()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the caller that gave up: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller that gave up is still waiting")
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("the caller that joined: %v (the request was cancelled under it)", err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d requests reached the CPE, want the one shared", n)
	}
}
