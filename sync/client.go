package sync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/quic-go/quic-go"
)

// ClientConfig configures the edge side of the link.
type ClientConfig struct {
	// EdgeID is the edge's name; it must match its certificate.
	EdgeID string
	// Cores are the sync addresses (host:port) of core nodes; any of them
	// will do, a follower redirects to the leader.
	Cores []string
	// TLS is the edge's client configuration (ClientTLS).
	TLS    *tls.Config
	Outbox Outbox
	Inbox  Inbox
	// Health, when set, is reported on every heartbeat.
	Health HealthSource
	Log    *slog.Logger
	// UpBatch and UpBatchBytes bound one uplink batch; UpInflight the
	// batches sent and not yet acknowledged. Zero means 512, 1 MiB and 8.
	UpBatch      int
	UpBatchBytes int
	UpInflight   int
	// UpPlain sends uplink batches uncompressed even to a core that reads
	// S2-compressed ones (tests of the plain form).
	UpPlain bool
	// BackoffMin and BackoffMax bound the jittered exponential wait between
	// connection attempts. Zero means 100 ms and 30 s.
	BackoffMin time.Duration
	BackoffMax time.Duration
}

// Status is the link as the edge sees it, for /healthz and metrics.
type Status struct {
	Connected bool      `json:"connected"`
	Core      string    `json:"core,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// UplinkAcked is the highest sequence the core confirmed applying.
	UplinkAcked uint64 `json:"uplinkAcked"`
}

// Client keeps an edge connected to the core's leader and moves records
// both ways: the outbox up, the downlink into the inbox.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu     gosync.Mutex
	status Status

	// Counters for tests and metrics.
	sentRecords atomic.Int64
	downRecords atomic.Int64

	// blobConn is the live session's connection, which FetchBlob opens
	// its streams on (nil while the link is down); blobSlots bounds those
	// streams to MaxBlobStreams.
	blobConn  atomic.Pointer[quic.Conn]
	blobSlots chan struct{}
}

// NewClient checks the configuration; Run connects.
func NewClient(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.EdgeID == "":
		return nil, errors.New("sync client: edge ID is required")
	case len(cfg.Cores) == 0:
		return nil, errors.New("sync client: at least one core address is required")
	case cfg.TLS == nil || cfg.Outbox == nil || cfg.Inbox == nil:
		return nil, errors.New("sync client: TLS, Outbox and Inbox are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.UpBatch <= 0 {
		cfg.UpBatch = 512
	}
	if cfg.UpBatchBytes <= 0 {
		cfg.UpBatchBytes = 1 << 20
	}
	if cfg.UpInflight <= 0 {
		cfg.UpInflight = 8
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	return &Client{cfg: cfg, log: cfg.Log.With("component", "sync-client"), blobSlots: make(chan struct{}, MaxBlobStreams)}, nil
}

// Status returns the link's current state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// SentRecords is the number of uplink records sent (resends included).
func (c *Client) SentRecords() int64 { return c.sentRecords.Load() }

func (c *Client) setStatus(fn func(*Status)) {
	c.mu.Lock()
	fn(&c.status)
	c.mu.Unlock()
}

// errRedirect carries the leader's address from a follower.
type errRedirect struct{ addr string }

func (e *errRedirect) Error() string { return "redirected to the leader at " + e.addr }

// Run keeps the link up until ctx is done: it dials the cores in turn (or
// the leader a follower named), runs a session, and after any failure
// waits a jittered, exponentially growing delay capped at BackoffMax.
func (c *Client) Run(ctx context.Context) error {
	next := 0
	redirect := ""
	wait := c.cfg.BackoffMin
	for ctx.Err() == nil {
		addr := redirect
		redirect = ""
		if addr == "" {
			addr = c.cfg.Cores[next%len(c.cfg.Cores)]
			next++
		}
		welcomed, err := c.session(ctx, addr)
		if ctx.Err() != nil {
			break
		}
		var rd *errRedirect
		if errors.As(err, &rd) {
			redirect = rd.addr
			c.log.Debug("core redirected us to the leader", "core", addr, "leader", rd.addr)
			continue // a redirect is not a failure: dial the leader at once
		}
		c.setStatus(func(s *Status) { s.Connected, s.LastError = false, closeReason(err) })
		if welcomed {
			wait = c.cfg.BackoffMin
			c.log.Warn("sync link lost; reconnecting", "core", addr, "reason", closeReason(err))
		} else {
			c.log.Warn("sync link: connection failed", "core", addr, "reason", closeReason(err), "retryIn", wait)
		}
		// Full jitter in [wait/2, wait): many edges that lost the same core
		// do not come back in lockstep.
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		wait = min(wait*2, c.cfg.BackoffMax)
	}
	c.setStatus(func(s *Status) { s.Connected = false })
	return nil
}

// session runs one connection until it fails; welcomed reports whether
// the core accepted it.
func (c *Client) session(ctx context.Context, addr string) (welcomed bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, DeadAfter)
	tlsConf := c.cfg.TLS.Clone()
	tlsConf.NextProtos = []string{ALPN}
	conn, err := quic.DialAddr(dctx, addr, tlsConf, quicConfig())
	cancel()
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.CloseWithError(codeClosed, "edge closing")

	downE, downS, err := c.cfg.Inbox.DownlinkAcked()
	if err != nil {
		return false, fmt.Errorf("read downlink position: %w", err)
	}
	hctx, hcancel := context.WithTimeout(ctx, DeadAfter)
	defer hcancel()
	ctl, err := openStream(hctx, conn, streamControl)
	if err != nil {
		return false, err
	}
	if err := writeFrame(ctl, &frame{T: fHello, Version: ProtocolVersion, Edge: c.cfg.EdgeID, Seq: downE, Shared: downS}); err != nil {
		return false, err
	}
	_ = ctl.SetReadDeadline(time.Now().Add(DeadAfter))
	ctlR := newFrameReader(ctl)
	f, err := ctlR.expect(fWelcome, fRedirect)
	if err != nil {
		if cerr := context.Cause(conn.Context()); cerr != nil && !errors.Is(cerr, context.Canceled) {
			return false, cerr
		}
		return false, fmt.Errorf("hello: %w", err)
	}
	if f.T == fRedirect {
		if f.Addr == "" || f.Addr == addr {
			return false, fmt.Errorf("core %s redirected to %q", addr, f.Addr)
		}
		return false, &errRedirect{addr: f.Addr}
	}
	_ = ctl.SetReadDeadline(time.Time{})
	if err := c.cfg.Outbox.ResumeOutbox(f.Seq); err != nil {
		return true, fmt.Errorf("resume outbox at %d: %w", f.Seq, err)
	}
	up, err := openStream(hctx, conn, streamUplink)
	if err != nil {
		return true, err
	}
	down, err := openStream(hctx, conn, streamDownlink)
	if err != nil {
		return true, err
	}
	// Blob streams only after the three above, which the core accepts in
	// this order.
	c.blobConn.Store(conn)
	defer c.blobConn.CompareAndSwap(conn, nil)
	hcancel()
	c.setStatus(func(s *Status) {
		*s = Status{Connected: true, Core: addr, Since: time.Now().UTC(), UplinkAcked: f.Seq}
	})
	c.log.Info("sync link up", "core", addr, "uplinkAcked", f.Seq, "downlinkStored", downE, "sharedStored", downS)

	sctx, scancel := context.WithCancelCause(ctx)
	defer scancel(nil)
	var wg gosync.WaitGroup
	run := func(fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(sctx); err != nil {
				scancel(err)
			}
		}()
	}
	run(func(ctx context.Context) error { return c.heartbeat(ctx, ctl, ctlR) })
	compress := f.ReadsS2 && !c.cfg.UpPlain
	run(func(ctx context.Context) error { return c.uplink(ctx, up, f.Seq, compress) })
	run(func(ctx context.Context) error { return c.downlink(ctx, down) })
	select {
	case <-sctx.Done():
	case <-conn.Context().Done():
		scancel(context.Cause(conn.Context()))
	}
	_ = conn.CloseWithError(codeClosed, "edge closing")
	wg.Wait()
	err = context.Cause(sctx)
	if cerr := context.Cause(conn.Context()); cerr != nil {
		var ae *quic.ApplicationError
		if errors.As(cerr, &ae) && ae.Remote {
			err = cerr // the core's own reason beats our stream error
		}
	}
	return true, err
}

// heartbeat sends the edge's health every KeepAlive and reads the core's
// answers; a core that stops answering for DeadAfter is dead.
func (c *Client) heartbeat(ctx context.Context, ctl *quic.Stream, r *frameReader) error {
	errc := make(chan error, 1)
	go func() {
		for {
			_ = ctl.SetReadDeadline(time.Now().Add(DeadAfter))
			if _, err := r.expect(fHeartbeatAck); err != nil {
				errc <- fmt.Errorf("control: %w", err)
				return
			}
		}
	}()
	t := time.NewTicker(KeepAlive)
	defer t.Stop()
	for {
		f := &frame{T: fHeartbeat}
		if c.cfg.Health != nil {
			h := c.cfg.Health.Health()
			f.Health = &h
		}
		if err := writeFrame(ctl, f); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-t.C:
		}
	}
}

// ackDeleteDelay is how long the uplink's deleter lets acknowledgements
// gather before it deletes what they cover.
const ackDeleteDelay = 50 * time.Millisecond

// uplink sends the outbox oldest first, at most UpInflight batches ahead
// of the core's acknowledgements, and deletes what the core acknowledged.
// An ack frees its batch's slot as soon as it arrives; the deletes run on
// their own goroutine, one for all the acks that came in while the last
// one ran, so the next batch does not wait for the edge's disk.
func (c *Client) uplink(ctx context.Context, s *quic.Stream, acked uint64, compress bool) error {
	slots := make(chan struct{}, c.cfg.UpInflight)
	errc := make(chan error, 3) // ack reader, deleter, producer
	// toDelete holds the highest sequence acknowledged and not yet
	// deleted (0: none); deleteNow wakes the deleter.
	var toDelete atomic.Uint64
	deleteNow := make(chan struct{}, 1)
	dctx, stopDeleter := context.WithCancel(ctx)
	deleterDone := make(chan struct{})
	go func() {
		defer close(deleterDone)
		for {
			select {
			case <-dctx.Done():
				return
			case <-deleteNow:
			}
			// Let the acks of a drain gather: one delete transaction per
			// ackDeleteDelay instead of one per batch. Each commit holds up
			// every read transaction a CPE session opens meanwhile (Badger
			// makes a reader wait for the commits before it), and a late
			// delete loses nothing: the core applied those records, and a
			// resend of one is a no-op there.
			select {
			case <-dctx.Done():
				return
			case <-time.After(ackDeleteDelay):
			}
			if x := toDelete.Swap(0); x > 0 {
				if err := c.cfg.Outbox.AckOutbox(x); err != nil {
					errc <- fmt.Errorf("ack outbox at %d: %w", x, err)
					return
				}
			}
		}
	}()
	defer func() {
		stopDeleter()
		<-deleterDone
	}()
	go func() {
		r := newFrameReader(s)
		for {
			f, err := r.expect(fUpAck)
			if err != nil {
				errc <- fmt.Errorf("uplink acks: %w", err)
				return
			}
			for {
				old := toDelete.Load()
				if f.Seq <= old || toDelete.CompareAndSwap(old, f.Seq) {
					break
				}
			}
			select {
			case deleteNow <- struct{}{}:
			default:
			}
			c.setStatus(func(st *Status) { st.UplinkAcked = max(st.UplinkAcked, f.Seq) })
			select {
			case <-slots:
			default:
			}
		}
	}()
	// The next batch is read from the outbox and encoded while the one
	// before it is written: on a busy edge each step takes milliseconds,
	// and one after the other they bounded the drain.
	type encoded struct {
		frame []byte
		n     int
		last  uint64
	}
	next := make(chan encoded, 1)
	pctx, stopProducer := context.WithCancel(ctx)
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		if err := c.produceUplink(pctx, acked, func(b []fleet.SeqRecord) error {
			fr, err := encodeUpBatch(b, compress)
			if err != nil {
				return err
			}
			select {
			case next <- encoded{frame: fr, n: len(b), last: b[len(b)-1].Seq}:
			case <-pctx.Done():
			}
			return nil
		}); err != nil {
			errc <- err
		}
	}()
	defer func() {
		stopProducer()
		<-producerDone
	}()
	for {
		var b encoded
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case b = <-next:
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case slots <- struct{}{}:
		}
		if _, err := s.Write(b.frame); err != nil {
			return fmt.Errorf("write %s frame: %w", fUpBatch, err)
		}
		c.sentRecords.Add(int64(b.n))
	}
}

// produceUplink reads the outbox oldest first from after, cuts it into
// batches and hands each to send, until ctx is done; it returns only
// when reading fails (or send does).
func (c *Client) produceUplink(ctx context.Context, after uint64, send func([]fleet.SeqRecord) error) error {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for ctx.Err() == nil {
		notify := c.cfg.Outbox.OutboxNotify()
		recs, err := c.cfg.Outbox.ReadOutbox(after, c.cfg.UpBatch)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		batch, size := recs[:0], 0
		for _, r := range recs {
			if len(r.Data) > MaxRecord {
				// The core would refuse it and stop the stream: skip it
				// (its sequence becomes a hole), and say so.
				c.log.Error("outbox record over the size limit skipped", "seq", r.Seq, "bytes", len(r.Data), "limit", MaxRecord)
				after = r.Seq
				continue
			}
			if len(batch) > 0 && size+len(r.Data) > c.cfg.UpBatchBytes {
				break
			}
			batch = append(batch, r)
			size += len(r.Data)
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
			case <-notify:
			case <-poll.C:
			}
			continue
		}
		if err := send(batch); err != nil {
			return err
		}
		after = batch[len(batch)-1].Seq
	}
	return nil
}

// downlink stores each batch durably, then acknowledges the positions
// reached.
func (c *Client) downlink(ctx context.Context, s *quic.Stream) error {
	r := newFrameReader(s)
	for {
		f, err := r.expect(fDownBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("downlink: %w", err)
		}
		if err := c.cfg.Inbox.StoreDownlink(f.Down); err != nil {
			return fmt.Errorf("store downlink: %w", err)
		}
		c.downRecords.Add(int64(len(f.Down)))
		e, sh, err := c.cfg.Inbox.DownlinkAcked()
		if err != nil {
			return fmt.Errorf("read downlink position: %w", err)
		}
		if err := writeFrame(s, &frame{T: fDownAck, Seq: e, Shared: sh}); err != nil {
			return err
		}
	}
}
