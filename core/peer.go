package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Internode traffic. Everything one core node asks of another goes to the
// other's Raft port, never to its client API: Raft RPCs, and HTTP for the
// rest (a founder asking a peer about itself, a new node asking to join,
// a follower handing the leader a command or a client's request, a node
// fetching a blob it lacks). The Raft port is the cluster's trust
// boundary already: whoever can open a connection to it can speak Raft,
// and so append to the log, so serving the peer routes there adds no
// exposure, and no client API credential can ever reach them. The client
// API serves clients only; its former internal routes answer 404 there.
//
// One listener carries both. raft's NetworkTransport starts every
// connection it dials by writing an RPC type byte (0 to 4 in raft 1.8:
// AppendEntries, RequestVote, InstallSnapshot, TimeoutNow,
// RequestPreVote), and an HTTP/1.1 request starts with its method's
// first letter, an ASCII capital. portMux reads that first byte, within
// peerPeekTimeout, and hands the connection, byte included, to Raft or
// to the peer HTTP server; anything else is closed. A TLS ClientHello
// (0x16) falls in neither range, which leaves it free for a later move of
// internode traffic to mTLS.

// Peer port bounds.
const (
	// maxRaftRPCType is the highest first byte taken for a Raft RPC:
	// raft uses 0 to 4, and a few more leave room for a new RPC type in a
	// later raft release without a change here.
	maxRaftRPCType = 0x0f
	// peerPeekTimeout bounds the wait for a new connection's first byte.
	// Raft writes its RPC type as soon as it has dialed, and an HTTP
	// client its request line, so only a silent client ever waits it out.
	peerPeekTimeout = 5 * time.Second
	// maxPeerPeeking bounds connections whose first byte has not arrived
	// yet; beyond it new connections are closed at once.
	maxPeerPeeking = 256
	// peerDialTimeout bounds one dial to a peer's Raft port.
	peerDialTimeout = 5 * time.Second
	// peerIdleTimeout closes a pooled peer connection before the peer's
	// server would (APIIdleTimeout, 2 minutes by default), so a request
	// is never sent on a connection the other side is closing.
	peerIdleTimeout = 60 * time.Second
	// peerMaxHeaderBytes bounds a peer request's headers.
	peerMaxHeaderBytes = 64 << 10
)

// Internal routes, on the peer HTTP server only.
const (
	peerPathInfo  = "/internal/v1/peer"
	peerPathJoin  = "/internal/v1/join"
	peerPathApply = "/internal/v1/apply"
	peerPathBlobs = "/internal/v1/blobs/"
)

// portMux splits the connections accepted on the Raft listener between
// Raft and the peer HTTP server by their first byte. It owns the listener
// and every connection until it is handed over; Close stops it and waits
// for its goroutines.
type portMux struct {
	ln   net.Listener
	peek time.Duration
	log  *slog.Logger

	raft *subListener
	http *subListener

	done    chan struct{}
	mu      sync.Mutex
	closed  bool
	peeking map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// newPortMux starts accepting on ln.
func newPortMux(ln net.Listener, peek time.Duration, log *slog.Logger) *portMux {
	m := &portMux{
		ln: ln, peek: peek, log: log,
		raft: newSubListener(ln.Addr()), http: newSubListener(ln.Addr()),
		done: make(chan struct{}), peeking: map[net.Conn]struct{}{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *portMux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("raft port: accept failed; retrying", "err", err, "in", delay)
			t := time.NewTimer(delay)
			select {
			case <-m.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		if !m.track(c) {
			c.Close()
			continue
		}
		m.wg.Add(1)
		go m.classify(c)
	}
}

// track records c as waiting for its first byte; false when the mux is
// closed or too many are waiting already.
func (m *portMux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || len(m.peeking) >= maxPeerPeeking {
		return false
	}
	m.peeking[c] = struct{}{}
	return true
}

func (m *portMux) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.peeking, c)
}

// classify reads c's first byte and hands c on.
func (m *portMux) classify(c net.Conn) {
	defer m.wg.Done()
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(m.peek))
	_, err := io.ReadFull(c, b[:])
	m.untrack(c)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, first: b[0]}
	switch {
	case b[0] <= maxRaftRPCType:
		m.raft.deliver(pc, m.done)
	case b[0] >= 'A' && b[0] <= 'Z':
		m.http.deliver(pc, m.done)
	default:
		m.log.Debug("raft port: closing a connection that is neither Raft nor HTTP", "remote", c.RemoteAddr(), "first", b[0])
		c.Close()
	}
}

// Close closes the listener and every connection not yet handed over,
// and waits for the mux's goroutines. Connections already handed to Raft
// or the HTTP server are theirs to close.
func (m *portMux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	for c := range m.peeking {
		c.Close()
	}
	m.mu.Unlock()
	err := m.ln.Close()
	m.raft.Close()
	m.http.Close()
	m.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// subListener is one side of the mux: a net.Listener whose Accept
// returns the connections classify hands it.
type subListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newSubListener(addr net.Addr) *subListener {
	return &subListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver waits for an Accept to take c; c is closed if the listener or
// the mux closes first.
func (s *subListener) deliver(c net.Conn, muxDone <-chan struct{}) {
	select {
	case s.conns <- c:
	case <-s.done:
		c.Close()
	case <-muxDone:
		c.Close()
	}
}

// Accept returns the next connection for this side.
func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; the underlying listener is the mux's.
func (s *subListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// Addr is the Raft listener's address.
func (s *subListener) Addr() net.Addr { return s.addr }

// peekedConn gives back the byte classify read before the rest.
type peekedConn struct {
	net.Conn
	first byte
	read  bool
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if !c.read && len(p) > 0 {
		c.read = true
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}

// raftStream is what raft's NetworkTransport runs on: the mux's Raft side
// to accept, the (possibly test-wrapped) stream layer to dial.
type raftStream struct {
	*subListener
	dialer raft.StreamLayer
}

func (s raftStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dialer.Dial(addr, timeout)
}

// newPeerTransport is an HTTP transport to peers' Raft ports. It dials
// through the Raft stream layer, so the RaftLayer test hook that cuts a
// node's Raft links cuts its peer HTTP with them, and it never uses an
// environment proxy: internode traffic goes straight to the peer.
func (n *Node) newPeerTransport() *http.Transport {
	dialer := n.layer
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			timeout := peerDialTimeout
			if d, ok := ctx.Deadline(); ok {
				timeout = min(timeout, time.Until(d))
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if timeout <= 0 {
				return nil, context.DeadlineExceeded
			}
			return dialer.Dial(raft.ServerAddress(addr), timeout)
		},
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        peerIdleTimeout,
		ResponseHeaderTimeout:  0, // forwarded long polls (?wait) answer late
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: peerMaxHeaderBytes,
	}
}

// peerURL is the URL of path on the peer at raftAddr.
func peerURL(raftAddr, path string) string { return "http://" + raftAddr + path }

// peerHandler serves the peer routes, and requests another member
// forwarded on behalf of a client (marked with hdrForwarded), which go to
// the client API's handler: a follower forwards a client's write to the
// leader here rather than to the leader's client API, so forwarding needs
// neither the leader's API address nor its TLS certificate, and the
// client's own headers (credentials included) travel with it.
func (n *Node) peerHandler(client http.Handler) http.Handler {
	mux := http.NewServeMux()
	// Peer bodies are small JSON or CBOR: bounded like client ones.
	limit := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, n.cfg.MaxBodyBytes)
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+peerPathInfo, n.clusterPeer)
	mux.HandleFunc("POST "+peerPathJoin, limit(n.write(n.clusterJoin)))
	mux.HandleFunc("POST "+peerPathApply, limit(n.internalApply))
	mux.HandleFunc("GET "+peerPathBlobs+"{sha256}", n.internalBlob)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%s %s: %w on the peer port", r.Method, r.URL.Path, ErrNotFound))
	})
	internal := n.instrument(n.boundBody(mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get(hdrForwarded) != "" {
			client.ServeHTTP(w, r)
			return
		}
		internal.ServeHTTP(w, r)
	})
}

// Waiting out an election: a request that needs the leader while there is
// none (or while the one this node knows of cannot be reached) polls for
// a leader this often, and tries an unreachable one again after a backoff
// from leaderRetryMin to leaderRetryMax, all within Config.LeaderWait.
const (
	leaderPoll     = 10 * time.Millisecond
	leaderRetryMin = 25 * time.Millisecond
	leaderRetryMax = 500 * time.Millisecond
)

// nextLeader waits until a leader other than avoid is known, or until
// until; it returns the leader known then (none: "").
func (n *Node) nextLeader(ctx context.Context, until time.Time, avoid raft.ServerAddress) (raft.ServerAddress, raft.ServerID, error) {
	for {
		addr, id := n.raft.LeaderWithID()
		if id != "" && (avoid == "" || addr != avoid) {
			return addr, id, nil
		}
		left := time.Until(until)
		if left <= 0 {
			return addr, id, nil
		}
		t := time.NewTimer(min(leaderPoll, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", "", fmt.Errorf("waiting for a raft leader: %w", ctx.Err())
		case <-n.closed:
			t.Stop()
			return "", "", fmt.Errorf("waiting for a raft leader: %w", ErrClosed)
		case <-t.C:
		}
	}
}

// viaLeader runs a request that needs the leader: local when this node
// leads (or comes to lead while waiting), else try against the leader's
// Raft address. During an election it waits, up to Config.LeaderWait, for
// a leader instead of failing at once. try reports retry when nothing
// was applied (the leader could not be reached, or answered 503); it is
// then tried again, on a new leader as soon as one is known, until the
// wait is over, when its error is returned.
func (n *Node) viaLeader(ctx context.Context, local func() error, try func(addr raft.ServerAddress, id raft.ServerID) (retry bool, err error)) error {
	deadline := time.Now().Add(n.cfg.LeaderWait)
	backoff := leaderRetryMin
	var avoid raft.ServerAddress
	var lastErr error
	for {
		until := deadline
		if avoid != "" {
			if until = time.Now().Add(backoff); until.After(deadline) {
				until = deadline
			}
			backoff = min(2*backoff, leaderRetryMax)
		}
		addr, id, err := n.nextLeader(ctx, until, avoid)
		if err != nil {
			return err
		}
		over := !time.Now().Before(deadline)
		switch {
		case id == "" && over:
			if lastErr != nil {
				return lastErr
			}
			return fmt.Errorf("%w: none elected within %v (nothing was applied; retry)", ErrNoLeader, n.cfg.LeaderWait)
		case id == "":
			continue
		case string(id) == n.cfg.ID:
			return local()
		}
		retry, err := try(addr, id)
		if !retry || !time.Now().Before(deadline) {
			return err
		}
		lastErr, avoid = err, addr
	}
}

// errLeaderBusy carries a leader's 503 (nothing applied) out of the
// reverse proxy, so that forward tries again.
type errLeaderBusy struct{ err error }

func (e *errLeaderBusy) Error() string { return e.err.Error() }

// forward serves a request that must run on the leader from a follower:
// it is proxied to the leader's peer port, where the leader serves it
// with its client handler, and the client sees the leader's answer. If
// this node becomes the leader meanwhile, local serves it here. The body
// (a JSON request; uploads are never forwarded) is read first, bounded by
// MaxBodyBytes, so that a try that never reached a leader can be repeated.
func (n *Node) forward(w http.ResponseWriter, r *http.Request, local http.HandlerFunc) {
	if by := r.Header.Get(hdrForwarded); by != "" {
		writeError(w, fmt.Errorf("%w: request forwarded by %s reached %s, which is not the leader either", ErrNotLeader, by, n.cfg.ID))
		return
	}
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	withBody := func() *http.Request {
		c := r.Clone(r.Context())
		c.Body, c.ContentLength = http.NoBody, 0
		if len(body) > 0 {
			c.Body, c.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		return c
	}
	n.met.forwarded.Inc()
	err = n.viaLeader(r.Context(),
		func() error { local(w, withBody()); return nil },
		func(addr raft.ServerAddress, id raft.ServerID) (bool, error) {
			return n.proxyToLeader(w, withBody(), addr, id)
		})
	if err != nil {
		writeError(w, err)
	}
}

// proxyToLeader sends r to the leader at addr and copies its answer to w.
// It writes nothing, and reports retry, when nothing can have been
// applied: the request never left, the leader answered 503, or it is a
// read. A write that was sent and whose answer was lost is answered 504
// (ErrOutcomeUnknown) here.
func (n *Node) proxyToLeader(w http.ResponseWriter, r *http.Request, addr raft.ServerAddress, id raft.ServerID) (bool, error) {
	to := fmt.Sprintf("leader %s at %s", id, addr)
	sent := new(atomic.Bool)
	var retryErr error
	proxy := &httputil.ReverseProxy{
		Transport: n.peerTr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: string(addr)})
			pr.Out.Header.Set(hdrForwarded, n.cfg.ID)
			var ctx context.Context
			ctx, sent = traceSent(pr.Out.Context())
			pr.Out = pr.Out.WithContext(ctx)
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode != http.StatusServiceUnavailable {
				return nil
			}
			var e struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
			return &errLeaderBusy{errorFor(resp.StatusCode, e.Error)}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var busy *errLeaderBusy
			read := r.Method == http.MethodGet || r.Method == http.MethodHead
			switch {
			case errors.As(err, &busy):
				retryErr = busy.err
			case !sent.Load() || read:
				retryErr = forwardError(r.Method, false, to, err)
			default:
				writeError(w, forwardError(r.Method, true, to, err))
			}
		},
	}
	proxy.ServeHTTP(w, r)
	return retryErr != nil, retryErr
}
