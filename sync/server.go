package sync

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/quic-go/quic-go"
)

// ServerConfig configures the core side of the link.
type ServerConfig struct {
	// Addr is the UDP address to listen on (host:port; port 0 picks one).
	Addr string
	// TLS is the core node's server configuration (ServerTLS): it requires
	// an edge certificate from the cluster CA.
	TLS *tls.Config
	// Core is the node the server applies uplink records to and reads the
	// downlink from.
	Core Core
	Log  *slog.Logger
	// HeartbeatInterval is how often the leader confirms its leadership
	// with a quorum; the downlink pauses when the last confirmation is
	// older. Zero means one second.
	HeartbeatInterval time.Duration
	// DownBatch bounds the records of one downlink batch; DownInflight the
	// batches sent and not yet acknowledged. Zero means 256 and 4.
	DownBatch    int
	DownInflight int
	// UpInflight bounds the uplink batches of one edge submitted and not
	// yet applied; while that many are, the server reads no further batch
	// (QUIC flow control then holds the edge). Zero means 8.
	UpInflight int
	// MaxConns bounds the edge connections served at once (one per edge,
	// plus handshakes of edges reconnecting); more are closed at once
	// with codeBusy and the edges back off. Zero means DefaultMaxConns.
	MaxConns int
}

// DefaultMaxConns is ServerConfig.MaxConns's default: far more edges than
// a cluster serves, yet a bound on the goroutines and descriptors a flood
// of connections (a misbehaving fleet of edges, a reconnect storm) can
// take from the core.
const DefaultMaxConns = 4096

// Server accepts edges' QUIC connections on a core node. Only the Raft
// leader serves them; a follower tells an edge where the leader is.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	udp net.PacketConn
	tr  *quic.Transport
	ln  *quic.Listener

	mu       gosync.Mutex
	sessions map[string]*serverSession // by edge name: one live connection per edge
	wg       gosync.WaitGroup

	// Refused counts connections refused before a session started, by reason
	// class; tests and metrics read it.
	refused atomic.Int64
	// active counts the connections being served (MaxConns).
	active atomic.Int64
}

type serverSession struct {
	conn   *quic.Conn
	cancel context.CancelFunc
}

// NewServer binds the UDP socket; Serve accepts on it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.TLS == nil || cfg.Core == nil {
		return nil, errors.New("sync server: TLS and Core are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.DownBatch <= 0 {
		cfg.DownBatch = 256
	}
	if cfg.DownInflight <= 0 {
		cfg.DownInflight = 4
	}
	if cfg.UpInflight <= 0 {
		cfg.UpInflight = 8
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	udpAddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sync server: resolve %s: %w", cfg.Addr, err)
	}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("sync server: listen %s: %w", cfg.Addr, err)
	}
	// A stateless-reset key lets an edge learn at once that this node
	// restarted, instead of waiting out the idle timeout.
	var key quic.StatelessResetKey
	if _, err := rand.Read(key[:]); err != nil {
		udp.Close()
		return nil, fmt.Errorf("sync server: reset key: %w", err)
	}
	tr := &quic.Transport{Conn: udp, StatelessResetKey: &key}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "sync-server"), udp: udp, tr: tr,
		sessions: map[string]*serverSession{}}
	ln, err := tr.Listen(s.loggingTLS(cfg.TLS), quicConfig())
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("sync server: listen %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	return s, nil
}

// loggingTLS returns conf with every refused client logged with its
// reason. QUIC hides a failed handshake from Accept, and Go stops at a
// chain it cannot verify before any hook runs; so the chain is verified
// here, in VerifyConnection, where a refusal can be seen and counted.
func (s *Server) loggingTLS(conf *tls.Config) *tls.Config {
	c := conf.Clone()
	c.NextProtos = []string{ALPN}
	pool, inner := c.ClientCAs, c.VerifyConnection
	c.ClientAuth = tls.RequireAnyClientCert
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verifyClientChain(cs, pool)
		if err == nil && inner != nil {
			err = inner(cs)
		}
		if err != nil {
			s.refused.Add(1)
			s.log.Warn("edge connection refused", "reason", err.Error())
		}
		return err
	}
	return c
}

// verifyClientChain checks the client's certificate against the cluster
// CA for client authentication, as RequireAndVerifyClientCert would.
func verifyClientChain(cs tls.ConnectionState, pool *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("refuse client: no certificate: %w", ErrNoIdentity)
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return fmt.Errorf("refuse client %q: %w", leaf.Subject.CommonName, err)
	}
	return nil
}

// Addr is the bound UDP address.
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Refused is the number of connections refused before a session started.
func (s *Server) Refused() int64 { return s.refused.Load() }

// Serve accepts connections until ctx is done, then closes every session
// and the socket and waits for their goroutines.
func (s *Server) Serve(ctx context.Context) error {
	defer func() {
		s.ln.Close()
		s.mu.Lock()
		for _, ss := range s.sessions {
			ss.cancel()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.tr.Close()
		s.udp.Close()
	}()
	for {
		// quic-go's Accept fails only once the listener is closed: a
		// connection costs no descriptor (one UDP socket serves all), so
		// there is no EMFILE to ride out here.
		conn, err := s.ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sync server: accept: %w", err)
		}
		if s.active.Load() >= int64(s.cfg.MaxConns) {
			s.refuse(conn, codeBusy, "", fmt.Sprintf("core at its limit of %d edge connections; retry later", s.cfg.MaxConns))
			continue
		}
		s.active.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.active.Add(-1)
			s.handle(ctx, conn)
		}()
	}
}

// refuse closes a connection before a session started and logs why.
func (s *Server) refuse(conn *quic.Conn, code quic.ApplicationErrorCode, edge, reason string) {
	s.refused.Add(1)
	s.log.Warn("edge connection refused", "remote", conn.RemoteAddr().String(), "edge", edge, "reason", reason)
	_ = conn.CloseWithError(code, reason)
}

func (s *Server) handle(ctx context.Context, conn *quic.Conn) {
	name, role, err := PeerIdentity(conn.ConnectionState().TLS)
	if err != nil {
		s.refuse(conn, codeRefused, "", err.Error())
		return
	}
	if role != RoleEdge {
		s.refuse(conn, codeRefused, name, fmt.Sprintf("certificate role %q is not edge", role))
		return
	}
	if s.cfg.Core.Revoked(name) {
		s.refuse(conn, codeRefused, name, "edge "+name+" is revoked")
		return
	}
	hctx, hcancel := context.WithTimeout(ctx, DeadAfter)
	ctl, err := acceptStream(hctx, conn, streamControl)
	hcancel()
	if err != nil {
		s.refuse(conn, codeProtocol, name, err.Error())
		return
	}
	_ = ctl.SetReadDeadline(time.Now().Add(DeadAfter))
	ctlR := newFrameReader(ctl)
	hello, err := ctlR.expect(fHello)
	if err != nil {
		s.refuse(conn, codeProtocol, name, "hello: "+err.Error())
		return
	}
	_ = ctl.SetReadDeadline(time.Time{})
	switch {
	case hello.Version != ProtocolVersion:
		s.refuse(conn, codeProtocol, name, fmt.Sprintf("protocol version %d, this core speaks %d", hello.Version, ProtocolVersion))
		return
	case hello.Edge != "" && hello.Edge != name:
		s.refuse(conn, codeRefused, name, fmt.Sprintf("hello names edge %q but the certificate is %q", hello.Edge, name))
		return
	}
	if leader, addr := s.cfg.Core.Leader(); !leader {
		if addr == "" {
			s.refuse(conn, codeLeader, name, "no leader known; retry")
			return
		}
		_ = writeFrame(ctl, &frame{T: fRedirect, Addr: addr})
		s.log.Debug("edge redirected to the leader", "edge", name, "leader", addr)
		// Give the frame a moment to leave before the close discards it.
		closeAfterFlush(ctl, conn, codeLeader, "not leader; leader at "+addr)
		return
	}
	vctx, vcancel := context.WithTimeout(ctx, DeadAfter)
	err = s.cfg.Core.VerifyLeader(vctx)
	vcancel()
	if err != nil {
		s.refuse(conn, codeLeader, name, "leadership not confirmed: "+err.Error())
		return
	}
	st, err := s.cfg.Core.EdgeState(name)
	if err != nil {
		s.refuse(conn, codeInternal, name, "read edge state: "+err.Error())
		return
	}
	// Where the edge connects from is for operators (edgeacs edges list):
	// a failure to record it is logged and costs the link nothing.
	actx, acancel := context.WithTimeout(ctx, DeadAfter)
	if err := s.cfg.Core.EdgeConnected(actx, name, conn.RemoteAddr().String()); err != nil {
		s.log.Warn("could not record the edge's address", "edge", name, "err", err)
	}
	acancel()
	if err := writeFrame(ctl, &frame{T: fWelcome, Seq: st.UplinkAcked, ReadsS2: true}); err != nil {
		s.log.Warn("edge welcome failed", "edge", name, "err", err)
		_ = conn.CloseWithError(codeClosed, "")
		return
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if old := s.sessions[name]; old != nil {
		_ = old.conn.CloseWithError(codeReplaced, "replaced by a newer connection of "+name)
		old.cancel()
	}
	me := &serverSession{conn: conn, cancel: cancel}
	s.sessions[name] = me
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.sessions[name] == me {
			delete(s.sessions, name)
		}
		s.mu.Unlock()
		s.cfg.Core.EdgeHealth(name, fleet.EdgeHealth{}, false)
	}()

	s.log.Info("edge connected", "edge", name, "remote", conn.RemoteAddr().String(),
		"uplinkAcked", st.UplinkAcked, "downlinkStored", hello.Seq, "sharedStored", hello.Shared)
	sess := &coreSession{srv: s, name: name, conn: conn, ctl: ctl, ctlR: ctlR}
	sess.confirmed.Store(time.Now().UnixNano())
	err = sess.run(sctx, st, hello)
	_, reason := closeCode(err, ctx.Err() != nil || sctx.Err() != nil)
	s.log.Info("edge disconnected", "edge", name, "reason", closeReasonOr(err, reason))
}

// closeCode maps why a session ended to the code and reason the edge is
// told when the connection closes, so its log and /healthz say why.
func closeCode(err error, shuttingDown bool) (quic.ApplicationErrorCode, string) {
	switch {
	case errors.Is(err, ErrProtocol):
		return codeProtocol, err.Error()
	case errors.Is(err, errNotLeader):
		return codeLeader, err.Error()
	case errors.Is(err, errRevoked):
		return codeRefused, err.Error()
	case errors.Is(err, errApply):
		return codeInternal, err.Error()
	case err != nil && !shuttingDown:
		return codeClosed, err.Error()
	}
	return codeClosed, "core shutting down"
}

func closeReasonOr(err error, reason string) string {
	if err == nil {
		return reason
	}
	return closeReason(err)
}

// closeAfterFlush closes the stream's send side and the connection once
// the peer has read what was sent (or after a short bound).
func closeAfterFlush(s *quic.Stream, conn *quic.Conn, code quic.ApplicationErrorCode, reason string) {
	_ = s.Close()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-conn.Context().Done():
	case <-t.C:
	}
	_ = conn.CloseWithError(code, reason)
}

var (
	errNotLeader = errors.New("sync: this core is no longer the leader")
	errRevoked   = errors.New("sync: edge revoked")
	errApply     = errors.New("sync: core could not apply")
)

// coreSession is one edge's live link on the leader.
type coreSession struct {
	srv  *Server
	name string
	conn *quic.Conn
	ctl  *quic.Stream
	ctlR *frameReader
	// confirmed is when leadership was last confirmed with a quorum
	// (unix nanoseconds); the downlink sends only while it is recent.
	confirmed atomic.Int64
}

func (cs *coreSession) run(ctx context.Context, st EdgeState, hello *frame) error {
	up, err := acceptStream(ctx, cs.conn, streamUplink)
	if err != nil {
		return err
	}
	down, err := acceptStream(ctx, cs.conn, streamDownlink)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg gosync.WaitGroup
	run := func(fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				cancel(err)
			}
		}()
	}
	run(cs.leadership)
	run(cs.control)
	applying := make(chan func(context.Context) (uint64, error), cs.srv.cfg.UpInflight)
	run(func(ctx context.Context) error { return cs.uplink(ctx, up, st.UplinkAcked, applying) })
	run(func(ctx context.Context) error { return cs.uplinkAcks(ctx, up, applying) })
	run(func(ctx context.Context) error { return cs.downlink(ctx, down, hello.Seq, hello.Shared) })
	run(cs.acceptBlobs)
	<-ctx.Done()
	err = context.Cause(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	// Closing unblocks the stream readers (they do not watch ctx) and
	// tells the edge why: the first close's reason is the one it sees.
	code, reason := closeCode(err, err == nil)
	_ = cs.conn.CloseWithError(code, reason)
	wg.Wait()
	return err
}

// leadership closes the session the moment this node stops being leader
// and confirms leadership with a quorum once per heartbeat interval.
func (cs *coreSession) leadership(ctx context.Context) error {
	every := cs.srv.cfg.HeartbeatInterval
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	next := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
		if leader, _ := cs.srv.cfg.Core.Leader(); !leader {
			return errNotLeader
		}
		if time.Now().Before(next) {
			continue
		}
		vctx, cancel := context.WithTimeout(ctx, every)
		err := cs.srv.cfg.Core.VerifyLeader(vctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: %v", errNotLeader, err)
		}
		cs.confirmed.Store(time.Now().UnixNano())
		// Confirm twice per interval, so a confirmation is never older
		// than the interval while the next one is under way.
		next = time.Now().Add(every / 2)
	}
}

// control answers heartbeats and records the edge's health.
func (cs *coreSession) control(ctx context.Context) error {
	for {
		f, err := cs.ctlR.expect(fHeartbeat)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if cs.srv.cfg.Core.Revoked(cs.name) {
			return fmt.Errorf("%w: %s", errRevoked, cs.name)
		}
		if f.Health != nil {
			cs.srv.cfg.Core.EdgeHealth(cs.name, *f.Health, true)
		}
		if err := writeFrame(cs.ctl, &frame{T: fHeartbeatAck}); err != nil {
			return err
		}
	}
}

// uplink submits the edge's batches in order, each right behind the one
// before it, and hands their waits to uplinkAcks, which acknowledges them
// in the same order. Up to UpInflight batches are being applied at once
// (the edge sends a bounded number ahead of the acks), so the drain is not
// one commit round a batch; a batch that fails makes every later one fail
// too (SubmitUplink's prev), so an ack never covers a record that was
// skipped. Batches are read ahead while others apply.
func (cs *coreSession) uplink(ctx context.Context, s *quic.Stream, acked uint64, applying chan<- func(context.Context) (uint64, error)) error {
	defer close(applying)
	r := newFrameReader(s)
	batches := make(chan []fleet.SeqRecord, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		last := acked
		for {
			f, err := r.expect(fUpBatch)
			if err == nil {
				err = checkUplinkOrder(last, f.Up)
			}
			if err != nil {
				readErr <- err
				return
			}
			if len(f.Up) == 0 {
				continue
			}
			last = f.Up[len(f.Up)-1].Seq
			select {
			case batches <- f.Up:
			case <-ctx.Done():
				return
			}
		}
	}()
	prev := acked
	for {
		var recs []fleet.SeqRecord
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case recs, ok = <-batches:
		}
		if !ok {
			err := <-readErr
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wait, err := cs.srv.cfg.Core.SubmitUplink(ctx, cs.name, prev, recs)
		if err != nil {
			return cs.uplinkFailed(ctx, err)
		}
		prev = recs[len(recs)-1].Seq
		select {
		case applying <- wait:
		case <-ctx.Done():
			return nil
		}
	}
}

// uplinkAcks waits for the submitted batches in order and acknowledges
// each with the highest sequence applied.
func (cs *coreSession) uplinkAcks(ctx context.Context, s *quic.Stream, applying <-chan func(context.Context) (uint64, error)) error {
	for {
		var wait func(context.Context) (uint64, error)
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case wait, ok = <-applying:
		}
		if !ok {
			return nil
		}
		applied, err := wait(ctx)
		if err != nil {
			return cs.uplinkFailed(ctx, err)
		}
		if err := writeFrame(s, &frame{T: fUpAck, Seq: applied}); err != nil {
			return err
		}
	}
}

// uplinkFailed says why the core could not take an uplink batch (nil when
// the session is ending anyway).
func (cs *coreSession) uplinkFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	// Leadership lost under a batch is a change of leader, not a failure
	// of this core: the edge reconnects to the new one.
	if leader, _ := cs.srv.cfg.Core.Leader(); !leader {
		return fmt.Errorf("%w: uplink of %s: %v", errNotLeader, cs.name, err)
	}
	return fmt.Errorf("%w: uplink of %s: %v", errApply, cs.name, err)
}

// downlink streams the edge's records from the positions it says it
// stored, a bounded number of batches ahead of its acknowledgements, and
// records the acknowledged positions through Raft.
func (cs *coreSession) downlink(ctx context.Context, s *quic.Stream, edgePos, sharedPos uint64) error {
	acks := make(chan *frame, cs.srv.cfg.DownInflight+1)
	readErr := make(chan error, 1)
	go func() {
		r := newFrameReader(s)
		for {
			f, err := r.expect(fDownAck)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case acks <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Acks go through Raft off this loop; only the newest matters.
	ackSig := make(chan struct{}, 1)
	var ackMu gosync.Mutex
	var ackE, ackS uint64
	var ackWG gosync.WaitGroup
	ackWG.Add(1)
	go func() {
		defer ackWG.Done()
		var doneE, doneS uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-ackSig:
			}
			ackMu.Lock()
			e, sh := ackE, ackS
			ackMu.Unlock()
			if e == doneE && sh == doneS {
				continue
			}
			if err := cs.srv.cfg.Core.AckDownlink(ctx, cs.name, e, sh); err != nil {
				if ctx.Err() == nil {
					cs.srv.log.Warn("record downlink ack", "edge", cs.name, "err", err)
					// Retried with the next ack; the edge resends nothing for it.
					select {
					case ackSig <- struct{}{}:
					default:
					}
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			doneE, doneS = e, sh
		}
	}()
	defer ackWG.Wait()

	sentE, sentS := edgePos, sharedPos
	inflight := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if inflight < cs.srv.cfg.DownInflight {
			watch := cs.srv.cfg.Core.DownlinkNotify()
			recs, err := cs.srv.cfg.Core.Downlink(cs.name, sentE, sentS, cs.srv.cfg.DownBatch)
			if err != nil {
				return fmt.Errorf("%w: read downlink of %s: %v", errApply, cs.name, err)
			}
			if len(recs) > 0 {
				if err := cs.waitConfirmed(ctx); err != nil {
					return err
				}
				if err := writeFrame(s, &frame{T: fDownBatch, Down: recs}); err != nil {
					return err
				}
				for _, r := range recs {
					if r.Shared {
						sentS = max(sentS, r.Seq)
					} else {
						sentE = max(sentE, r.Seq)
					}
				}
				inflight++
				continue
			}
			select {
			case <-ctx.Done():
				return nil
			case <-watch:
			case <-tick.C:
			case f := <-acks:
				inflight = max(0, inflight-1)
				cs.noteAck(f, &ackMu, &ackE, &ackS, ackSig)
			case err := <-readErr:
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case f := <-acks:
			inflight = max(0, inflight-1)
			cs.noteAck(f, &ackMu, &ackE, &ackS, ackSig)
		case err := <-readErr:
			return err
		}
	}
}

func (cs *coreSession) noteAck(f *frame, mu *gosync.Mutex, e, s *uint64, sig chan struct{}) {
	mu.Lock()
	*e, *s = max(*e, f.Seq), max(*s, f.Shared)
	mu.Unlock()
	select {
	case sig <- struct{}{}:
	default:
	}
}

// waitConfirmed holds a downlink send until leadership was confirmed
// within the last heartbeat interval: a deposed leader that has not yet
// noticed must not hand out tasks.
func (cs *coreSession) waitConfirmed(ctx context.Context) error {
	every := cs.srv.cfg.HeartbeatInterval
	deadline := time.Now().Add(3 * every)
	for {
		if leader, _ := cs.srv.cfg.Core.Leader(); !leader {
			return errNotLeader
		}
		if time.Since(time.Unix(0, cs.confirmed.Load())) <= every {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: leadership not confirmed for %v", errNotLeader, 3*every)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
