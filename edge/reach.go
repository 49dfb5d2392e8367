package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Connection-request errors callers branch on.
var (
	// ErrRateLimited means the device was asked too recently and ctx ended
	// before the next request was allowed.
	ErrRateLimited = errors.New("edge: connection request rate limited")
	// ErrNoCRAddress means the device reported neither a
	// ConnectionRequestURL nor a usable UDP connection-request address.
	ErrNoCRAddress = errors.New("edge: device has no connection request address")
)

// ReacherConfig configures a Reacher.
type ReacherConfig struct {
	Cache *Cache
	// Client carries HTTP connection requests; nil means a default client.
	Client *http.Client
	// Timeout bounds one HTTP attempt; Retries is the number of extra
	// attempts after a failure that may be transient (device offline).
	Timeout time.Duration
	Retries int
	// MinInterval and Burst make each device's allowance a token bucket:
	// up to Burst requests may go back to back, and one more is allowed
	// every MinInterval after that. Burst 0 means 1 (at most one request
	// per MinInterval); MinInterval 0 means no limit.
	MinInterval time.Duration
	Burst       int
	// Sessions, when set, tells which devices are in a CWMP session: a
	// request for one waits for the session's end (see Server.AfterSession).
	Sessions SessionWatcher
	Metrics  *Metrics
	Logger   *slog.Logger
}

// SessionWatcher reports the end of a device's open CWMP session; the
// edge's Server is one (Server.AfterSession documents the contract).
type SessionWatcher interface {
	AfterSession(deviceID string, fn func(pending bool)) bool
}

// Reacher sends connection requests (TR-069 §3.2.2 over HTTP, TR-111 over
// UDP) to the devices in the cache. It implements ConnectionRequester.
type Reacher struct {
	cfg  ReacherConfig
	stun atomic.Pointer[STUNServer]

	// now is the clock of the per-device allowance (tests move it).
	now func() time.Time

	mu      sync.Mutex
	devices map[string]*crState

	// udp tracks UDP sends that outlive their ConnectionRequest call (see
	// send); Wait lets the node's shutdown wait for them.
	udp sync.WaitGroup
}

// Wait returns once every connection request still under way (an HTTP
// request a caller gave up on, UDP repeat copies) has finished; each is
// bounded by the CR timeout and retries.
func (r *Reacher) Wait() { r.udp.Wait() }

// crState coalesces the connection requests of one device: callers that
// arrive while one is in flight share its result, and a new one is sent
// only when the device's token bucket holds a whole token.
type crState struct {
	// gen counts requests started; a caller that arrived before one
	// started is served by it (see ConnectionRequest).
	gen uint64
	// tokens is the bucket's level at time at (zero time: full, never
	// asked); it refills at one token per MinInterval up to Burst.
	tokens   float64
	at       time.Time
	inflight chan struct{} // closed when the current request finishes
	err      error         // result of the current/last request
	// waiters counts the callers waiting on the request in flight (tests
	// wait on it instead of on timing).
	waiters int
}

// NewReacher returns a Reacher; ReacherConfig zero values get defaults.
func NewReacher(cfg ReacherConfig) *Reacher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = cwmp.DefaultCRTimeout
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     30 * time.Second,
			DisableKeepAlives:   true, // one request per CPE, then the CPE dials us
		}}
	}
	return &Reacher{cfg: cfg, now: time.Now, devices: make(map[string]*crState)}
}

// level returns the device's tokens at now.
func (r *Reacher) level(st *crState, now time.Time) float64 {
	burst := float64(r.cfg.Burst)
	if st.at.IsZero() || r.cfg.MinInterval <= 0 {
		return burst
	}
	return min(burst, st.tokens+float64(now.Sub(st.at))/float64(r.cfg.MinInterval))
}

// SetSTUN makes UDP connection requests leave from the STUN server's
// socket, the source address the CPE's NAT binding was created towards.
func (r *Reacher) SetSTUN(s *STUNServer) { r.stun.Store(s) }

// ConnectionRequest asks a device to open a session now. Concurrent calls
// for one device share one request; a call that finds the device's
// allowance spent (Burst requests in quick succession, see ReacherConfig)
// waits until a request is allowed again (ErrRateLimited if ctx ends
// first).
// For a device in a session it waits for the session's end, and returns
// nil without a request when the session left no task pending: the tasks
// queued meanwhile ran in it.
func (r *Reacher) ConnectionRequest(ctx context.Context, deviceID string) error {
	if waited, pending, err := r.awaitSession(ctx, deviceID); err != nil {
		return err
	} else if waited && !pending {
		return nil
	}
	var (
		arrived   uint64
		arrivedAt *crState // the state arrived counts in (the sweep may replace it)
	)
	for {
		r.mu.Lock()
		st := r.devices[deviceID]
		if st == nil {
			st = &crState{}
			r.devices[deviceID] = st
			r.sweepLocked()
		}
		if arrivedAt != st {
			arrivedAt, arrived = st, st.gen
		}
		if ch := st.inflight; ch != nil {
			st.waiters++
			r.mu.Unlock()
			return r.await(ctx, deviceID, st, ch)
		}
		// Callers that waited out the interval together share the next
		// request: one that started after this caller arrived (and has
		// ended) was sent after its task was stored, so it serves it too.
		if st.gen != arrived {
			err := st.err
			r.mu.Unlock()
			return err
		}
		now := r.now()
		if lvl := r.level(st, now); lvl < 1 {
			// At least a millisecond: a rounding remainder must not spin.
			wait := max(time.Millisecond, time.Duration((1-lvl)*float64(r.cfg.MinInterval)))
			r.mu.Unlock()
			if r.cfg.Metrics != nil {
				r.cfg.Metrics.ConnectionRequests.WithLabelValues("any", "rate_limited").Inc()
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("connection request to %s: %w", deviceID, ErrRateLimited)
			}
		}
		ch := make(chan struct{})
		st.inflight = ch
		st.gen++
		st.tokens, st.at = r.level(st, now)-1, now
		st.waiters++
		r.mu.Unlock()
		// The request is shared by every caller that joins it, so it must
		// not end when the caller that started it gives up (an API wait
		// that was over used to cancel it under the others): it runs on a
		// context of its own, bounded by the attempts it may make, owned
		// by r.udp like the UDP copies, and this caller waits for it like
		// any other.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(r.cfg.Retries+1)*r.cfg.Timeout+time.Second)
		r.udp.Add(1)
		go func() {
			defer r.udp.Done()
			defer cancel()
			err := r.deliver(sctx, deviceID)
			r.mu.Lock()
			st.err = err
			st.inflight = nil
			r.mu.Unlock()
			close(ch)
		}()
		return r.await(ctx, deviceID, st, ch)
	}
}

// await waits for the request in flight (done closes when it ends) and
// returns its result, or gives up when ctx ends. The caller counted itself
// in st.waiters.
func (r *Reacher) await(ctx context.Context, deviceID string, st *crState, done chan struct{}) error {
	var err error
	select {
	case <-done:
		r.mu.Lock()
		err = st.err
	case <-ctx.Done():
		err = fmt.Errorf("connection request to %s: %w", deviceID, ctx.Err())
		r.mu.Lock()
	}
	st.waiters--
	r.mu.Unlock()
	return err
}

// waiting returns how many callers wait on the device's request in flight.
func (r *Reacher) waiting(deviceID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.devices[deviceID]; st != nil {
		return st.waiters
	}
	return 0
}

// sweepLocked forgets the devices whose bucket is full again and that
// nobody waits on: such a state is the same as none, so forgetting it
// loosens nothing. The map holds only the devices asked within the last
// Burst×MinInterval (or still in flight); it is swept every 1,024 new
// devices once it holds 4,096, so the sweeps cost O(1) per request.
func (r *Reacher) sweepLocked() {
	if len(r.devices) < 4096 || len(r.devices)%1024 != 0 {
		return
	}
	now, burst := r.now(), float64(r.cfg.Burst)
	for id, st := range r.devices {
		if st.inflight == nil && st.waiters == 0 && r.level(st, now) >= burst {
			delete(r.devices, id)
		}
	}
}

// awaitSession waits for the end of the device's open session, if it has
// one (waited), and reports whether the session left tasks pending.
func (r *Reacher) awaitSession(ctx context.Context, deviceID string) (waited, pending bool, err error) {
	if r.cfg.Sessions == nil {
		return false, false, nil
	}
	ended := make(chan bool, 1)
	if !r.cfg.Sessions.AfterSession(deviceID, func(pending bool) { ended <- pending }) {
		return false, false, nil
	}
	select {
	case pending = <-ended:
		return true, pending, nil
	case <-ctx.Done():
		return true, false, fmt.Errorf("connection request to %s: waiting for its session to end: %w", deviceID, ctx.Err())
	}
}

// deliver sends the request. The CPE refusing its credentials may be the
// edge's own doing: a session sets new ones on the CPE (see
// provisionCRCredentials) and the edge stores them when that session ends,
// so a request that reached the CPE in between carried the old ones. Such
// a request is sent once more when the credentials are in place: after
// the end of the session the device is in (unless it left no task
// pending), or at once if they changed since. A request refused while a
// session was starting is not repeated: that session runs what was queued
// before it. Credentials that are just wrong still fail.
func (r *Reacher) deliver(ctx context.Context, deviceID string) error {
	start := time.Now()
	d, err := r.cfg.Cache.Device(deviceID)
	if err != nil {
		return fmt.Errorf("connection request to %s: %w", deviceID, err)
	}
	user, pass := crCredentials(d)
	err = r.send(ctx, d)
	if err == nil || !errors.Is(err, cwmp.ErrCRAuthFailed) {
		return err
	}
	waited, pending, werr := r.awaitSession(ctx, deviceID)
	switch {
	case werr != nil:
		return err
	case waited && !pending:
		return nil
	}
	cur, derr := r.cfg.Cache.Device(deviceID)
	if derr != nil {
		return err
	}
	if u, p := crCredentials(cur); !waited && u == user && p == pass {
		if cur.LastInform.After(start) {
			return nil
		}
		return err
	}
	r.cfg.Logger.Debug("connection request refused while the device's credentials changed; sending it again", "device", deviceID)
	return r.send(ctx, cur)
}

// send tries UDP (when the device advertises it behind STUN) and HTTP at
// the same time; the first success wins.
func (r *Reacher) send(ctx context.Context, d *Device) error {
	deviceID := d.ID
	if w, ok := r.cfg.Sessions.(wakeRecorder); ok {
		w.woke(deviceID, remoteIP(d.RemoteAddr)) // its Inform may come before the request returns
	}
	udpFromTree(r.cfg.Cache, d)
	useUDP := d.UDPConnectionRequestAddress != "" && d.STUNEnable
	useHTTP := d.ConnectionRequestURL != ""
	if !useUDP && !useHTTP {
		return fmt.Errorf("connection request to %s: %w", deviceID, ErrNoCRAddress)
	}
	// UDP cannot tell whether the CPE heard it, so HTTP decides when both
	// run: its success ends the call at once, its failure falls back to
	// UDP's "sent". The UDP send is not cancelled by HTTP's success: its
	// copies go out regardless (as GenieACS sends both), on a context of
	// its own bounded by the CR timeout and owned by r.udp.
	var udpDone chan error
	if useUDP {
		udpDone = make(chan error, 1)
		uctx := context.WithoutCancel(ctx)
		r.udp.Add(1)
		go func() {
			defer r.udp.Done()
			udpDone <- r.sendUDP(uctx, d)
		}()
	}
	if !useHTTP {
		if err := <-udpDone; err != nil {
			return fmt.Errorf("connection request to %s: %w", deviceID, err)
		}
		return nil
	}
	herr := r.sendHTTP(ctx, d)
	if herr == nil {
		return nil
	}
	if udpDone != nil {
		if uerr := <-udpDone; uerr == nil {
			return nil
		} else {
			herr = errors.Join(herr, uerr)
		}
	}
	return fmt.Errorf("connection request to %s: %w", deviceID, herr)
}

func (r *Reacher) sendHTTP(ctx context.Context, d *Device) error {
	user, pass := crCredentials(d)
	var err error
	for attempt := 0; attempt <= r.cfg.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * 200 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("http: %w", ctx.Err())
			}
		}
		actx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		err = cwmp.HTTPConnectionRequest(actx, r.cfg.Client, d.ConnectionRequestURL, user, pass)
		cancel()
		if err == nil {
			r.count("http", "ok")
			return nil
		}
		if !errors.Is(err, cwmp.ErrDeviceOffline) || ctx.Err() != nil {
			break
		}
	}
	outcome := "error"
	switch {
	case errors.Is(err, cwmp.ErrDeviceOffline):
		outcome = "offline"
	case errors.Is(err, cwmp.ErrCRAuthFailed):
		outcome = "auth_failed"
	case errors.Is(err, context.Canceled):
		outcome = "canceled"
	}
	r.count("http", outcome)
	return fmt.Errorf("http: %w", err)
}

func (r *Reacher) sendUDP(ctx context.Context, d *Device) error {
	var conn net.PacketConn
	if s := r.stun.Load(); s != nil {
		conn = s.Conn()
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	user, pass := crCredentials(d)
	if err := cwmp.SendUDPConnectionRequest(actx, conn, d.UDPConnectionRequestAddress, user, pass); err != nil {
		r.count("udp", "error")
		return fmt.Errorf("udp: %w", err)
	}
	r.count("udp", "sent")
	return nil
}

func (r *Reacher) count(transport, outcome string) {
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.ConnectionRequests.WithLabelValues(transport, outcome).Inc()
	}
}

// Connection-request credentials. A CPE's ConnectionRequestPassword is
// secret (it reads back empty), so an ACS can only know it by setting it.
// Like GenieACS's default "inform" provision, the default inform preset
// (preset.Defaults) sets both on every device, the password being one the
// edge makes up for a device whose password it does not know
// (preset.CRPasswordPath); a session that set them, by a preset or a
// setParameterValues task, copies the values into the device record (see
// storeCRCredentials), where crCredentials finds them.
const (
	crUserParam = "ManagementServer.ConnectionRequestUsername"
	crPassParam = "ManagementServer.ConnectionRequestPassword"
)

// crCredentials returns the credentials to send with a connection request.
// The device record holds them: an Inform that reports a non-empty
// password, or the End of a session in which a setParameterValues that set
// them succeeded (storeCRCredentials).
func crCredentials(d *Device) (user, pass string) { return d.CRUsername, d.CRPassword }

// udpFromTree fills the TR-111 fields of d from the cached parameter tree
// when the Inform did not carry them: UDPConnectionRequestAddress is not a
// forced Inform parameter, so many CPEs only report it to a GPV or a
// refresh.
func udpFromTree(c *Cache, d *Device) {
	if d.UDPConnectionRequestAddress != "" || d.Root == "" {
		return
	}
	p, err := c.Parameter(d.ID, d.Root+"ManagementServer.UDPConnectionRequestAddress")
	if err != nil || p.Value == "" {
		return
	}
	d.UDPConnectionRequestAddress = p.Value
	if p, err := c.Parameter(d.ID, d.Root+"ManagementServer.STUNEnable"); err == nil {
		d.STUNEnable, _ = cwmp.ParseBool(p.Value)
	}
}
