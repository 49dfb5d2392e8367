package sync

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/leakcheck"
	"github.com/quic-go/quic-go"
)

// ---- in-memory stand-ins for an edge's cache and a core node ----

type memOutbox struct {
	mu      gosync.Mutex
	recs    []fleet.SeqRecord
	next    uint64
	acked   uint64
	notify  chan struct{}
	resumes []uint64
}

func newMemOutbox() *memOutbox { return &memOutbox{notify: make(chan struct{}, 1)} }

func (o *memOutbox) add(n int) {
	o.mu.Lock()
	for range n {
		o.next++
		o.recs = append(o.recs, fleet.SeqRecord{Seq: o.next, Data: fmt.Appendf(nil, "rec-%d", o.next)})
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *memOutbox) ReadOutbox(after uint64, max int) ([]fleet.SeqRecord, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []fleet.SeqRecord
	for _, r := range o.recs {
		if r.Seq > after && len(out) < max {
			out = append(out, r)
		}
	}
	return out, nil
}

func (o *memOutbox) AckOutbox(upTo uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = slices.DeleteFunc(o.recs, func(r fleet.SeqRecord) bool { return r.Seq <= upTo })
	o.acked = max(o.acked, upTo)
	return nil
}

func (o *memOutbox) ResumeOutbox(coreAcked uint64) error {
	o.mu.Lock()
	o.resumes = append(o.resumes, coreAcked)
	o.next = max(o.next, coreAcked)
	o.mu.Unlock()
	return o.AckOutbox(coreAcked)
}

func (o *memOutbox) OutboxNotify() <-chan struct{} { return o.notify }

func (o *memOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.recs)
}

type memInbox struct {
	mu     gosync.Mutex
	e, s   uint64
	stored []fleet.DownRecord
	dups   int
}

func (in *memInbox) DownlinkAcked() (uint64, uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.e, in.s, nil
}

func (in *memInbox) StoreDownlink(recs []fleet.DownRecord) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range recs {
		pos := &in.e
		if r.Shared {
			pos = &in.s
		}
		if r.Seq <= *pos {
			in.dups++
			continue
		}
		*pos = r.Seq
		in.stored = append(in.stored, r)
	}
	return nil
}

func (in *memInbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.stored)
}

type memCore struct {
	mu         gosync.Mutex
	leader     bool
	leaderAddr string
	revoked    map[string]bool
	applied    map[string][]uint64 // every sequence applied, per edge: a double shows up twice
	state      map[string]*EdgeState
	down       map[string][]fleet.DownRecord
	shared     []fleet.DownRecord
	watch      chan struct{}
	health     map[string]bool
	failApply  error
	// hold, when set, keeps submitted uplink batches in held, unapplied,
	// until release: a core with that many batches in its raft pipeline.
	hold  bool
	held  []*heldBatch
	blobs map[string][]byte // by sha256, for OpenBlob (blob_test.go)
}

func newMemCore(leader bool) *memCore {
	return &memCore{leader: leader, revoked: map[string]bool{}, applied: map[string][]uint64{},
		state: map[string]*EdgeState{}, down: map[string][]fleet.DownRecord{}, watch: make(chan struct{}),
		health: map[string]bool{}}
}

func (c *memCore) st(edge string) *EdgeState {
	if c.state[edge] == nil {
		c.state[edge] = &EdgeState{}
	}
	return c.state[edge]
}

func (c *memCore) Leader() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader, c.leaderAddr
}

func (c *memCore) VerifyLeader(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leader {
		return errors.New("not leader")
	}
	return nil
}

func (c *memCore) Revoked(edge string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revoked[edge]
}

func (c *memCore) EdgeState(edge string) (EdgeState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.st(edge), nil
}

// heldBatch is an uplink batch submitted to a holding memCore.
type heldBatch struct {
	edge  string
	prev  uint64
	recs  []fleet.SeqRecord
	done  chan struct{}
	acked uint64
	err   error
}

// SubmitUplink applies at once, as a core whose commit is instant, unless
// the core holds batches (see release); wait answers what the apply did.
// Like the core's FSM it refuses a batch whose first record's predecessor
// (prev) is not applied.
func (c *memCore) SubmitUplink(_ context.Context, edge string, prev uint64, recs []fleet.SeqRecord) (func(context.Context) (uint64, error), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failApply != nil {
		return nil, c.failApply
	}
	b := &heldBatch{edge: edge, prev: prev, recs: recs, done: make(chan struct{})}
	if c.hold {
		c.held = append(c.held, b)
	} else {
		c.applyLocked(b)
	}
	return func(ctx context.Context) (uint64, error) {
		select {
		case <-b.done:
			return b.acked, b.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}, nil
}

func (c *memCore) applyLocked(b *heldBatch) {
	defer close(b.done)
	st := c.st(b.edge)
	if len(b.recs) > 0 && b.recs[0].Seq > st.UplinkAcked && b.prev > st.UplinkAcked {
		b.err = fmt.Errorf("record %d follows %d, applied up to %d", b.recs[0].Seq, b.prev, st.UplinkAcked)
		return
	}
	for _, r := range b.recs {
		if r.Seq <= st.UplinkAcked {
			continue
		}
		c.applied[b.edge] = append(c.applied[b.edge], r.Seq)
		st.UplinkAcked = r.Seq
	}
	b.acked = st.UplinkAcked
}

// heldCount is how many uplink batches the core holds.
func (c *memCore) heldCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// release stops holding and applies the held batches in the order they
// were submitted, except the one at index lost, which fails as a batch
// that never made it into the log.
func (c *memCore) release(lost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range c.held {
		if i == lost {
			b.err = errors.New("raft: enqueue timed out")
			close(b.done)
			continue
		}
		c.applyLocked(b)
	}
	c.hold, c.held = false, nil
}

func (c *memCore) Downlink(edge string, after, sharedAfter uint64, max int) ([]fleet.DownRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []fleet.DownRecord
	for _, r := range c.down[edge] {
		if r.Seq > after && len(out) < max {
			out = append(out, r)
		}
	}
	for _, r := range c.shared {
		if r.Seq > sharedAfter && len(out) < max {
			out = append(out, r)
		}
	}
	return out, nil
}

func (c *memCore) DownlinkNotify() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watch
}

func (c *memCore) AckDownlink(_ context.Context, edge string, e, s uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st(edge)
	st.DownlinkAcked, st.SharedAcked = max(st.DownlinkAcked, e), max(st.SharedAcked, s)
	return nil
}

func (c *memCore) EdgeConnected(context.Context, string, string) error { return nil }

func (c *memCore) EdgeHealth(edge string, _ fleet.EdgeHealth, connected bool) {
	c.mu.Lock()
	c.health[edge] = connected
	c.mu.Unlock()
}

// push appends n task records to edge's downlink (and m shared ones).
func (c *memCore) push(edge string, n, m int) {
	c.mu.Lock()
	for range n {
		seq := uint64(len(c.down[edge]) + 1)
		c.down[edge] = append(c.down[edge], fleet.DownRecord{Seq: seq, Kind: fleet.DownCancel, TaskID: fmt.Sprintf("%s-t%d", edge, seq)})
	}
	for range m {
		seq := uint64(len(c.shared) + 1)
		c.shared = append(c.shared, fleet.DownRecord{Seq: seq, Shared: true, Kind: fleet.DownRevoke, Name: fmt.Sprint("x", seq)})
	}
	close(c.watch)
	c.watch = make(chan struct{})
	c.mu.Unlock()
}

func (c *memCore) appliedOf(edge string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.applied[edge])
}

// ---- harness ----

// pki is a cluster CA with certificates for two cores and two edges, and
// a second, foreign CA.
type pki struct{ dir, other string }

func newPKI(t *testing.T) pki {
	t.Helper()
	p := pki{dir: t.TempDir(), other: t.TempDir()}
	must(t, InitCA(p.dir))
	must(t, InitCA(p.other))
	for _, n := range []struct {
		name string
		role Role
	}{{"c1", RoleCore}, {"c2", RoleCore}, {"e1", RoleEdge}, {"e2", RoleEdge}} {
		must(t, IssueCert(p.dir, n.name, n.role, "ecdsa"))
	}
	must(t, IssueCert(p.other, "e1", RoleEdge, "ecdsa"))
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// logBuf collects log lines so tests can check a refusal's reason.
type logBuf struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testServer struct {
	*Server
	core   *memCore
	logs   *logBuf
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, p pki, node, addr string, core *memCore) *testServer {
	t.Helper()
	tlsConf, err := ServerTLS(p.dir, node, core.Revoked)
	must(t, err)
	logs := &logBuf{}
	s, err := NewServer(ServerConfig{Addr: addr, TLS: tlsConf, Core: core, Log: slog.New(slog.NewTextHandler(logs, nil)),
		HeartbeatInterval: 200 * time.Millisecond})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, core: core, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ctx) }()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	<-ts.done
	ts.cancel = nil
}

type testClient struct {
	*Client
	logs   *logBuf
	out    *memOutbox
	in     *memInbox
	cancel context.CancelFunc
	done   chan struct{}
}

func startClient(t *testing.T, p pki, edge string, cores ...string) *testClient {
	t.Helper()
	tlsConf, err := ClientTLS(p.dir, edge)
	must(t, err)
	out, in, logs := newMemOutbox(), &memInbox{}, &logBuf{}
	c, err := NewClient(ClientConfig{EdgeID: edge, Cores: cores, TLS: tlsConf, Outbox: out, Inbox: in,
		Log: slog.New(slog.NewTextHandler(logs, nil)), UpBatch: 100, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testClient{Client: c, logs: logs, out: out, in: in, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(tc.done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-tc.done })
	return tc
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exactlyOnce(t *testing.T, got []uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("applied %d records, want %d", len(got), n)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("applied[%d] = %d: out of order, doubled or skipped", i, s)
		}
	}
}

// ---- tests ----

// noLeaks fails the test if the link leaves a goroutine behind; call it
// first, so its cleanup runs after every other one.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { leakcheck.NoGoroutines(t, 10*time.Second, "edgeacs/sync.") })
}

func TestLinkMovesRecordsBothWays(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	core.push("e1", 700, 5)
	core.push("e2", 3, 0) // another edge's records never reach e1
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	cl := startClient(t, p, "e1", srv.Addr())
	cl.out.add(2500)

	waitFor(t, "uplink drained", func() bool { return len(core.appliedOf("e1")) == 2500 && cl.out.len() == 0 })
	waitFor(t, "downlink stored", func() bool { return cl.in.count() == 705 })
	waitFor(t, "downlink acked at the core", func() bool {
		st, _ := core.EdgeState("e1")
		return st.DownlinkAcked == 700 && st.SharedAcked == 5
	})
	// Records written while the link is up flow at once (the notify path).
	cl.out.add(10)
	core.push("e1", 2, 0)
	waitFor(t, "new records", func() bool { return len(core.appliedOf("e1")) == 2510 && cl.in.count() == 707 })
	exactlyOnce(t, core.appliedOf("e1"), 2510)
	cl.in.mu.Lock()
	for _, r := range cl.in.stored {
		if !r.Shared && !strings.HasPrefix(r.TaskID, "e1-") {
			t.Errorf("another edge's record reached e1: %+v", r)
		}
	}
	cl.in.mu.Unlock()
	// The status follows the core's acks, which arrive after the apply.
	waitFor(t, "the status to show the last ack", func() bool {
		st := cl.Status()
		return st.Connected && st.UplinkAcked == 2510
	})
}

func TestLinkResumesAfterCoreRestart(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	addr := srv.Addr()
	cl := startClient(t, p, "e1", addr)
	cl.out.add(300)
	waitFor(t, "first records", func() bool { return len(core.appliedOf("e1")) > 0 })
	srv.stop()
	// The backhaul is down: the edge keeps queueing.
	cl.out.add(300)
	core.push("e1", 50, 0)
	waitFor(t, "link down", func() bool { return !cl.Status().Connected })
	startServer(t, p, "c1", addr, core)
	waitFor(t, "drained after restart", func() bool { return len(core.appliedOf("e1")) == 600 && cl.out.len() == 0 })
	waitFor(t, "downlink after restart", func() bool { return cl.in.count() == 50 })
	exactlyOnce(t, core.appliedOf("e1"), 600)
	cl.in.mu.Lock()
	dups := cl.in.dups
	cl.in.mu.Unlock()
	if dups != 0 {
		t.Fatalf("%d downlink records delivered twice to the store (resume must start after the stored position)", dups)
	}
}

func TestFollowerRedirectsToLeader(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	leaderCore := newMemCore(true)
	leader := startServer(t, p, "c2", "127.0.0.1:0", leaderCore)
	followerCore := newMemCore(false)
	followerCore.leaderAddr = leader.Addr()
	follower := startServer(t, p, "c1", "127.0.0.1:0", followerCore)
	cl := startClient(t, p, "e1", follower.Addr())
	cl.out.add(20)
	waitFor(t, "records at the leader", func() bool { return len(leaderCore.appliedOf("e1")) == 20 })
	if n := len(followerCore.appliedOf("e1")); n != 0 {
		t.Fatalf("follower applied %d records", n)
	}
	if st := cl.Status(); st.Core != leader.Addr() {
		t.Fatalf("connected to %q, want the leader %q", st.Core, leader.Addr())
	}
}

func TestLeaderLossClosesLink(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	cl := startClient(t, p, "e1", srv.Addr())
	waitFor(t, "connected", func() bool { return cl.Status().Connected })
	core.mu.Lock()
	core.leader = false
	core.mu.Unlock()
	core.push("e1", 5, 0) // a deposed leader must not hand these out
	waitFor(t, "link closed", func() bool { return !cl.Status().Connected })
	time.Sleep(100 * time.Millisecond) // nothing is expected; give a wrong send a chance to show
	if n := cl.in.count(); n != 0 {
		t.Fatalf("a node that lost leadership sent %d downlink records", n)
	}
	if !stringsContain(srv.logs.String(), "no longer the leader") {
		t.Fatalf("server log does not say why:\n%s", srv.logs.String())
	}
	// The edge is told why, not just that the link closed.
	waitFor(t, "the edge to log why the link closed", func() bool { return stringsContain(cl.logs.String(), "no longer the leader") })
}

func stringsContain(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

// rawDial opens a QUIC connection with the given edge certificate and
// returns it for hand-made frames.
func rawDial(t *testing.T, dir, edge, addr string) *quic.Conn {
	t.Helper()
	tlsConf, err := ClientTLS(dir, edge)
	must(t, err)
	tlsConf.NextProtos = []string{ALPN}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, tlsConf, quicConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

func TestLinkRefusesBadPeers(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	hello := func(edge string) []byte {
		var b bytes.Buffer
		b.WriteByte(streamControl)
		must(t, writeFrame(&b, &frame{T: fHello, Version: ProtocolVersion, Edge: edge}))
		return b.Bytes()
	}
	cases := []struct {
		name   string
		setup  func(core *memCore)
		dial   func(t *testing.T, addr string) (*quic.Conn, error)
		reason string
	}{
		{"certificate from another CA", nil, func(t *testing.T, addr string) (*quic.Conn, error) {
			tlsConf, err := ClientTLS(p.other, "e1")
			must(t, err)
			tlsConf.RootCAs = nil
			// Trust the right server so only the client side is wrong.
			good, err := ClientTLS(p.dir, "e1")
			must(t, err)
			tlsConf.VerifyConnection = good.VerifyConnection
			tlsConf.NextProtos = []string{ALPN}
			return dialAndHello(addr, tlsConf)
		}, "unknown authority"},
		{"core certificate used by an edge", nil, func(t *testing.T, addr string) (*quic.Conn, error) {
			good, err := ClientTLS(p.dir, "e1")
			must(t, err)
			coreCert, err := tls.LoadX509KeyPair(p.dir+"/c2.crt", p.dir+"/c2.key")
			must(t, err)
			good.GetClientCertificate = nil
			good.Certificates = []tls.Certificate{coreCert}
			good.NextProtos = []string{ALPN}
			return dialAndHello(addr, good)
		}, "role"},
		{"revoked edge", func(core *memCore) { core.revoked["e2"] = true }, func(t *testing.T, addr string) (*quic.Conn, error) {
			tlsConf, err := ClientTLS(p.dir, "e2")
			must(t, err)
			tlsConf.NextProtos = []string{ALPN}
			return dialAndHello(addr, tlsConf)
		}, "revoked"},
		{"garbage bytes", nil, func(t *testing.T, addr string) (*quic.Conn, error) {
			c := rawDial(t, p.dir, "e1", addr)
			return c, sendRaw(c, []byte("\x00\x01GET / HTTP/1.1\r\n\r\n garbage"))
		}, "stream role"},
		{"oversized frame", nil, func(t *testing.T, addr string) (*quic.Conn, error) {
			c := rawDial(t, p.dir, "e1", addr)
			return c, sendRaw(c, []byte{streamControl, 0x7f, 0xff, 0xff, 0xff})
		}, "over the"},
		{"hello for another edge", nil, func(t *testing.T, addr string) (*quic.Conn, error) {
			c := rawDial(t, p.dir, "e1", addr)
			return c, sendRaw(c, hello("e2"))
		}, "certificate is"},
		{"replayed sequence", func(core *memCore) { core.st("e1").UplinkAcked = 10 }, func(t *testing.T, addr string) (*quic.Conn, error) {
			c := rawDial(t, p.dir, "e1", addr)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ctl, err := openStream(ctx, c, streamControl)
			must(t, err)
			must(t, writeFrame(ctl, &frame{T: fHello, Version: ProtocolVersion, Edge: "e1"}))
			if _, err := newFrameReader(ctl).expect(fWelcome); err != nil {
				return c, err
			}
			up, err := openStream(ctx, c, streamUplink)
			must(t, err)
			_, err = openStream(ctx, c, streamDownlink)
			must(t, err)
			must(t, writeFrame(up, &frame{T: fUpBatch, Up: []fleet.SeqRecord{{Seq: 7, Data: []byte("old")}}}))
			_, err = newFrameReader(up).read()
			return c, err
		}, "uplink sequence 7 after 10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core := newMemCore(true)
			if tc.setup != nil {
				tc.setup(core)
			}
			srv := startServer(t, p, "c1", "127.0.0.1:0", core)
			_, err := tc.dial(t, srv.Addr())
			if err == nil {
				t.Fatal("the core accepted the link")
			}
			waitFor(t, "the refusal logged", func() bool { return stringsContain(srv.logs.String(), tc.reason) })
			if n := len(core.appliedOf("e1")) + len(core.appliedOf("e2")); n != 0 {
				t.Fatalf("a refused peer got %d records applied", n)
			}
			if st := core.st("e1"); tc.name == "replayed sequence" && st.UplinkAcked != 10 {
				t.Fatalf("stored state changed: %+v", st)
			}
		})
	}
}

// dialAndHello dials with tlsConf and says hello; the error is the
// refusal, at the TLS layer or after it.
func dialAndHello(addr string, tlsConf *tls.Config) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, addr, tlsConf, quicConfig())
	if err == nil {
		_, err = acceptOrFail(c)
	}
	return c, err
}

// acceptOrFail reports whether the server closes a connection that the
// TLS layer let through on the client side (TLS 1.3 client auth fails
// after the client's handshake completes).
func acceptOrFail(c *quic.Conn) (*quic.Stream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := openStream(ctx, c, streamControl)
	if err != nil {
		return nil, err
	}
	if err := writeFrame(s, &frame{T: fHello, Version: ProtocolVersion}); err != nil {
		return nil, err
	}
	_, err = newFrameReader(s).read()
	return s, err
}

// sendRaw opens a stream, writes b and waits for the server to close.
func sendRaw(c *quic.Conn, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if _, err := s.Write(b); err != nil {
		return err
	}
	_, err = newFrameReader(s).read()
	if err == nil {
		return errors.New("server answered")
	}
	return err
}

func TestApplyFailureClosesWithoutAck(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	core.failApply = errors.New("raft: leadership lost while committing log")
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	cl := startClient(t, p, "e1", srv.Addr())
	cl.out.add(5)
	waitFor(t, "the failure logged", func() bool { return stringsContain(srv.logs.String(), "leadership lost") })
	if cl.out.len() != 5 {
		t.Fatalf("the edge deleted records the core never applied: %d left", cl.out.len())
	}
	core.mu.Lock()
	core.failApply = nil
	core.mu.Unlock()
	waitFor(t, "resent after recovery", func() bool { return len(core.appliedOf("e1")) == 5 && cl.out.len() == 0 })
	exactlyOnce(t, core.appliedOf("e1"), 5)
}

// TestUplinkPipelineKeepsOrder checks that the core has several uplink
// batches of an edge in flight at once, each submitted behind the one
// before, and that when one of them is lost on its way into the log the
// ones behind it are refused rather than applied (they would make the
// lost records resends): the edge resends from what was applied, and
// every record applies once, in order.
func TestUplinkPipelineKeepsOrder(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	core.hold = true
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	cl := startClient(t, p, "e1", srv.Addr())
	cl.out.add(500) // five batches of 100
	waitFor(t, "five batches in flight at once", func() bool { return core.heldCount() == 5 })
	if n := len(core.appliedOf("e1")); n != 0 {
		t.Fatalf("%d records applied while the core held them", n)
	}
	core.release(1) // records 101-200 are lost
	waitFor(t, "the refusal to close the link", func() bool { return stringsContain(srv.logs.String(), "edge disconnected") })
	waitFor(t, "every record applied after the resend", func() bool { return len(core.appliedOf("e1")) >= 500 && cl.out.len() == 0 })
	exactlyOnce(t, core.appliedOf("e1"), 500)
}

func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range []*frame{
		{T: fHello, Version: 1, Edge: "e1", Seq: 3, Shared: 4},
		{T: fUpBatch, Up: []fleet.SeqRecord{{Seq: 1, Data: []byte("x")}, {Seq: 2, Data: nil}}},
		{T: fDownBatch, Down: []fleet.DownRecord{{Seq: 1, Kind: fleet.DownCancel, TaskID: "t"}}},
		{T: fHeartbeat, Health: &fleet.EdgeHealth{SessionsPerSec: 3, OutboxLen: 4}},
		{T: fError, Reason: "no"},
		{T: fBlobRequest, Sum: "ab", Offset: 5},
		{T: fBlobHeader, Size: 9},
		{T: fError, Missing: true, Reason: "unknown blob"},
	} {
		var b bytes.Buffer
		if err := writeFrame(&b, fr); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	packed, err := encodeUpBatch([]fleet.SeqRecord{{Seq: 1, Data: []byte("x")}, {Seq: 2, Data: []byte("xx")}}, true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(packed)
	f.Add([]byte{0, 0, 0, 1, 0xff})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := newFrameReader(bytes.NewReader(b)).read()
		if err != nil {
			return
		}
		// A frame that decodes re-encodes and decodes to the same frame.
		var out bytes.Buffer
		if err := writeFrame(&out, fr); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := newFrameReader(&out).read()
		if err != nil {
			t.Fatalf("decode of re-encoded frame: %v", err)
		}
		if again.T != fr.T || len(again.Up) != len(fr.Up) || len(again.Down) != len(fr.Down) {
			t.Fatalf("round trip changed the frame: %+v → %+v", fr, again)
		}
	})
}
