package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/internal/slotconn"
)

// A CPE holds one TCP connection per session. net/http's Transport gives
// each connection two goroutines (a read loop and a write loop) and each
// request with a client timeout a third, and each cloned Transport its own
// pools: with 40,000 sessions waiting on a slow ACS that was five
// goroutines per device, ~54 KB of stacks and buffers each, where an idle
// device costs ~14 KB. connTransport runs a session's exchanges on the
// device's own goroutine instead, one request at a time, on one
// connection, with deadlines for the timeout and cancellation.

// bufSize is the read buffer of a session's connection; writeBufSize
// the write buffer, held only while a request is written, so it can hold
// a whole GetParameterNames or GetParameterValues answer (35-45 KB for a
// gateway's whole tree): one write, where 4 KB took ten, each paying the
// loopback's TCP path on both sides (a fifth of the simulator's CPU in a
// storm went to writes), and 32 KB two.
const (
	bufSize      = 4 << 10
	writeBufSize = 64 << 10
)

// writers are the write buffers, held only while a request is written.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}

// writeOnly hides the connection's ReadFrom from bufio.Writer: a request
// body longer than the buffer would otherwise go to net.TCPConn.ReadFrom,
// which (no file to splice from) copies through a fresh 32 KB buffer, for
// every GetParameterNames and GetParameterValues answer a device sends:
// the simulator's largest allocation in a bootstrap storm.
type writeOnly struct{ w io.Writer }

func (w writeOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// errTransportClosed is returned for a request after Close.
var errTransportClosed = errors.New("sim: session connection closed")

// aLongTimeAgo is a deadline in the past: it interrupts a blocked read or
// write at once.
var aLongTimeAgo = time.Unix(1, 0)

// connTransport is an http.RoundTripper over at most one connection at a
// time, for one session (or transfer). Requests must not overlap, which
// a session's do not.
type connTransport struct {
	f       *Fleet
	timeout time.Duration // per exchange: request written and response body read
	src     net.IP        // the device's own address, for loopback destinations (dialSource; nil: none)

	mu     sync.Mutex // guards conn against Close from another goroutine
	conn   net.Conn
	br     *bufio.Reader
	addr   string // "scheme://host:port" conn is connected to
	closed bool
}

func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, reused, err := t.roundTrip(req)
	if err != nil && reused && (req.Body == nil || req.GetBody != nil) && req.Context().Err() == nil {
		// The ACS closed the kept-alive connection between two requests
		// (its idle timeout): the request never reached it, send it
		// again on a new connection, as net/http does.
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, fmt.Errorf("rewind request body: %w", gerr)
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		resp, _, err = t.roundTrip(req)
	}
	return resp, err
}

// roundTrip sends req on the open connection (reused) or a new one.
func (t *connTransport) roundTrip(req *http.Request) (*http.Response, bool, error) {
	ctx := req.Context()
	conn, br, reused, err := t.connect(ctx, req)
	if err != nil {
		closeBody(req)
		return nil, false, err
	}
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		t.drop(conn)
		closeBody(req)
		return nil, reused, err
	}
	// Cancellation interrupts the blocked read or write; AfterFunc starts
	// no goroutine unless ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		t.drop(conn)
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return nil, reused, err
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(writeOnly{conn})
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(fmt.Errorf("read response: %w", err))
	}
	resp.Body = &connBody{rc: resp.Body, t: t, conn: conn, stop: stop, keep: !resp.Close}
	return resp, reused, nil
}

// connect returns the session's connection to req's host, dialling it
// (and shaking hands for https) when there is none or it leads elsewhere.
func (t *connTransport) connect(ctx context.Context, req *http.Request) (net.Conn, *bufio.Reader, bool, error) {
	host := req.URL.Hostname()
	port := req.URL.Port()
	if port == "" {
		port = "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
	}
	hostport := net.JoinHostPort(host, port)
	addr := req.URL.Scheme + "://" + hostport
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, nil, false, errTransportClosed
	}
	if t.conn != nil && t.addr == addr {
		conn, br := t.conn, t.br
		t.mu.Unlock()
		return conn, br, true, nil
	}
	old := t.conn
	t.conn, t.br = nil, nil
	t.mu.Unlock()
	if old != nil {
		old.Close()
	}

	// Room for a descriptor first (Config.MaxSockets): the wait is the
	// simulator's, so the dial's timeout starts after it.
	if !t.f.sockets.enter(ctx) {
		return nil, nil, false, fmt.Errorf("dial %s: %w", hostport, ctx.Err())
	}
	// The dial gets the exchange's timeout (Config.SessionTimeout, 30 s),
	// not 10 s: an ACS whose accept queue overflows drops SYNs, and a
	// CPE's TCP stack sends them again after 1, 3, 7 and 15 s (Linux
	// gives up after ~2 minutes). At 10 s the simulator gave up where a
	// CPE keeps trying: a 100k storm's flood failed 35-575 sessions on
	// "dial: i/o timeout" once its devices dialled faster.
	dctx, cancel := context.WithTimeout(ctx, max(t.timeout, 10*time.Second))
	defer cancel()
	// No TCP keep-alive: a session's exchanges have their own deadline,
	// and its four setsockopts were four of the sixteen system calls of
	// an attempt refused with 503, a storm's flood of them.
	dialer := net.Dialer{KeepAlive: -1}
	if src := dialSource(t.src, host); src != nil {
		dialer.LocalAddr = src
	}
	conn, err := dialer.DialContext(dctx, "tcp", hostport)
	if err != nil {
		t.f.sockets.leave()
		return nil, nil, false, fmt.Errorf("dial %s: %w", hostport, err)
	}
	if t.f.sockets != nil {
		conn = slotconn.New(conn, t.f.sockets.leave)
	}
	if req.URL.Scheme == "https" {
		tc := tls.Client(conn, t.f.tlsConfig(host))
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, nil, false, fmt.Errorf("TLS handshake with %s: %w", hostport, err)
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, bufSize)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		conn.Close()
		return nil, nil, false, errTransportClosed
	}
	t.conn, t.br, t.addr = conn, br, addr
	t.mu.Unlock()
	return conn, br, false, nil
}

// drop closes conn if it is still the session's connection.
func (t *connTransport) drop(conn net.Conn) {
	t.mu.Lock()
	if t.conn == conn {
		t.conn, t.br = nil, nil
	}
	t.mu.Unlock()
	conn.Close()
}

// Close closes the connection; later requests fail.
func (t *connTransport) Close() {
	t.mu.Lock()
	conn := t.conn
	t.conn, t.br, t.closed = nil, nil, true
	t.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// connBody is a response body on the session's connection: the exchange's
// deadline and cancellation stay armed until it is closed, and the
// connection is kept for the next request only if the body was read to
// its end and the ACS did not ask to close.
type connBody struct {
	rc   io.ReadCloser
	t    *connTransport
	conn net.Conn
	stop func() bool
	keep bool
	done bool
}

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.keep = false
	}
	return n, err
}

func (b *connBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// Closing an unread body reads it to its end (bounded by the
	// deadline), which keeps the connection usable.
	err := b.rc.Close()
	b.stop()
	if err != nil || !b.keep {
		b.t.drop(b.conn)
		return err
	}
	_ = b.conn.SetDeadline(time.Time{})
	return nil
}

// tlsConfig returns the TLS configuration for connections to host, made
// once per host so sessions share it (and its session cache).
func (f *Fleet) tlsConfig(host string) *tls.Config {
	f.tlsMu.Lock()
	defer f.tlsMu.Unlock()
	if c, ok := f.tlsByHost[host]; ok {
		return c
	}
	c := f.transport.TLSClientConfig.Clone()
	c.ServerName = host
	if f.tlsByHost == nil {
		f.tlsByHost = map[string]*tls.Config{}
	}
	f.tlsByHost[host] = c
	return c
}
