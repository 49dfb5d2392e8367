package sim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// Sentinel errors of the fleet.
var (
	// ErrBadConfig wraps every Config validation failure.
	ErrBadConfig = errors.New("sim: bad config")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("sim: fleet already started")
)

// Config configures a Fleet. Zero values take the documented defaults.
type Config struct {
	// ACSURL is where devices send their Informs (http or https).
	ACSURL string
	// Count is the number of devices (≥ 1).
	Count int
	// Offset is the index of the first device: fleets started with the
	// same Seed and disjoint [Offset, Offset+Count) ranges simulate
	// disjoint devices (serial numbers, MACs, passwords and the model
	// rotation derive from the index), so one fleet can be split over
	// processes or machines.
	Offset int
	// Model is "tr098", "tr181", "voip", "mixed" (tr098 and tr181
	// alternating) or a comma-separated rotation such as
	// "tr098,tr181,voip" (device i gets the (i mod n)-th); default tr098.
	Model string
	// Seed makes serial numbers, MACs and other values reproducible.
	Seed int64
	// InformInterval overrides the templates' PeriodicInformInterval
	// (300 s); sub-second values are honoured for load tests.
	InformInterval time.Duration
	// CRAddr is the address of the shared HTTP connection-request
	// listener; default "127.0.0.1:0".
	CRAddr string
	// UDPCRAddr, when set, opens one UDP socket for TR-111 connection
	// requests (reported as UDPConnectionRequestAddress).
	UDPCRAddr string
	// STUNServer ("host:port"), when set with UDPCRAddr, is asked for the
	// UDP socket's public binding, which then becomes
	// UDPConnectionRequestAddress.
	STUNServer string
	// Username and Password are the ACS credentials of every device
	// (ManagementServer.Username/Password); empty keeps each device's own.
	Username string
	Password string
	// Insecure skips TLS verification of the ACS and file servers.
	Insecure bool
	// CAFile is a PEM bundle of CAs trusted for the ACS and file servers.
	CAFile string
	// RootCAs, if set, is used instead of CAFile (tests).
	RootCAs *x509.CertPool
	// Ramp spreads the first Informs over this long; default 1 s per
	// 1000 devices. Negative means no ramp.
	Ramp time.Duration
	// TimeScale multiplies the retry back-off and ScheduleInform/Download
	// delays, so tests can run the spec's schedule fast; default 1.
	TimeScale float64
	// RebootDelay is how long a Reboot, FactoryReset or firmware install
	// keeps a device offline; default 1 s.
	RebootDelay time.Duration
	// SessionTimeout bounds each HTTP exchange with the ACS; default 30 s.
	SessionTimeout time.Duration
	// TransferTimeout bounds a Download or Upload; default 2 min.
	TransferTimeout time.Duration
	// PoolConnections shares one keep-alive connection pool across all
	// devices. Faster, and fine for an ACS that keys sessions by cookie
	// (edgeacs); an ACS that keys sessions by TCP connection (GenieACS)
	// needs the default: one connection per session, as a real CPE.
	PoolConnections bool
	// MaxConnecting bounds how many devices are opening a session at
	// once: connecting, sending their Inform and waiting for its answer
	// (0: no bound). A simulator that cannot keep up with its own flood
	// (tens of thousands of devices connecting within seconds, on a core
	// or two shared with the ACS) otherwise makes the devices already in
	// session wait behind every dial for the process's CPU: their
	// exchanges wait seconds, where a real CPE has a CPU of its own, and
	// the ACS holds their sessions open for nothing. Bounded, the devices
	// past it wait to start and those in session go on.
	MaxConnecting int
	// MaxSockets bounds the connections to the ACS the process holds at
	// once, the devices past it waiting for one to close before they dial
	// (0: the process's descriptor limit less a tenth; negative: no
	// bound). Running out of descriptors is the simulator's limit, not
	// the ACS's: unbounded, a process of 50,000 devices dialling in a
	// storm's flood failed sessions on "too many open files".
	MaxSockets int
	// SingleSource makes every device connect from the one address the
	// system picks. By default, on Linux, devices connecting to a
	// loopback address each do so from their own (127.a.b.c, from the
	// device's index), as real CPEs come from their own addresses: from
	// one, a fleet has one address's ~28,000 ephemeral ports toward the
	// ACS's one port, each held a minute in TIME_WAIT, so past ~470 new
	// connections a second every connect searched the port space (over a
	// third of the simulator's CPU in a 100k storm) and then failed.
	SingleSource bool
	// MaxIdleConnsPerHost bounds idle pooled connections; default 64.
	MaxIdleConnsPerHost int
	// NoDiagnosticsComplete makes every device run the diagnostics it is
	// asked for but never inform 8 DIAGNOSTICS COMPLETE (tests of an
	// ACS's timeout); Device.SetNoDiagnosticsComplete does it for one.
	NoDiagnosticsComplete bool
	// Logger receives debug logs of failures; default slog.Default().
	Logger *slog.Logger
	// DownloadFaultRate (0..1) makes that share of the devices fail every
	// Download with 9010 after fetching the file, as a firmware the device
	// refuses to install. Which devices is decided by a hash of Seed and
	// the serial number alone (Device.FaultsDownloads), so a test knows
	// them in advance; Fleet.SetDownloadFaultRate changes it while running.
	DownloadFaultRate float64
	// Booted starts the devices as already known to the ACS (the
	// simulator restarted against an ACS that holds their trees): their
	// first Inform carries 1 BOOT instead of 0 BOOTSTRAP + 1 BOOT.
	Booted bool
}

// Fleet runs simulated devices, each in its own goroutine, sharing one
// HTTP transport and one connection-request listener.
type Fleet struct {
	cfg       Config
	spread    bool // devices may connect from addresses of their own (spreadSources)
	log       *slog.Logger
	stats     *stats
	devices   []*Device
	byToken   map[string]*Device
	transport *http.Transport
	nonceKey  []byte
	// connecting holds a token per device opening a session
	// (Config.MaxConnecting); nil: no bound.
	connecting gate
	// sockets holds a token per connection to the ACS open
	// (Config.MaxSockets; the connection's slotconn gives it back): a real CPE has a
	// socket of its own, and a process of 50,000 devices dialling in a
	// storm's flood ran out of descriptors (26,826 sessions of a 100k
	// storm failed on "socket: too many open files", backed off as if
	// the ACS had failed them). nil: no bound.
	sockets gate
	// workers run the devices' sessions (set by Start).
	workers *sessionWorkers
	// replies remembers the ACS's large requests decoded (replymemo.go).
	replies replyMemo

	crLn    net.Listener
	crSrv   *http.Server
	crAddr  string
	udp     net.PacketConn
	udpAddr string
	seen    *recentIDs

	// dlFaultRate is Config.DownloadFaultRate as math.Float64bits.
	dlFaultRate atomic.Uint64

	tlsMu     sync.Mutex
	tlsByHost map[string]*tls.Config // connTransport's, per ACS or file server host

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates cfg, opens the connection-request listeners and builds the
// devices. Devices do nothing until Start; Close releases the listeners.
func New(cfg Config) (*Fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger, stats: newStats(), byToken: map[string]*Device{}, seen: newRecentIDs(), spread: spreadSources(cfg)}
	f.dlFaultRate.Store(math.Float64bits(cfg.DownloadFaultRate))
	f.connecting, f.sockets = newGate(cfg.MaxConnecting), newGate(cfg.MaxSockets)
	f.nonceKey = make([]byte, 32)
	if _, err := rand.Read(f.nonceKey); err != nil {
		return nil, fmt.Errorf("nonce key: %w", err)
	}
	tlsConf := &tls.Config{InsecureSkipVerify: cfg.Insecure, RootCAs: cfg.RootCAs, ClientSessionCache: tls.NewLRUClientSessionCache(1024)} //nolint:gosec // operator's choice
	if cfg.CAFile != "" && cfg.RootCAs == nil {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: read CA file: %w", ErrBadConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrBadConfig, cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	f.transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * cfg.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     tlsConf,
	}
	if err := f.listen(); err != nil {
		return nil, err
	}
	var err error
	rotation := modelRotation(cfg.Model)
	for i := cfg.Offset; i < cfg.Offset+cfg.Count; i++ {
		m, lerr := LoadModel(rotation[i%len(rotation)])
		if lerr != nil {
			err = lerr
			break
		}
		d := newDevice(f, m, i)
		f.devices = append(f.devices, d)
		f.byToken[d.token] = d
	}
	if err != nil {
		f.closeListeners()
		return nil, err
	}
	return f, nil
}

// modelRotation returns the models a Config.Model value cycles through.
func modelRotation(model string) []string {
	if model == ModelMixed {
		return []string{ModelTR098, ModelTR181}
	}
	names := strings.Split(model, ",")
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
	}
	return names
}

func (c *Config) defaults() error {
	u, err := url.Parse(c.ACSURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: ACS URL %q must be an absolute http or https URL", ErrBadConfig, c.ACSURL)
	}
	if c.Count < 1 {
		return fmt.Errorf("%w: count %d must be at least 1", ErrBadConfig, c.Count)
	}
	if c.MaxConnecting < 0 {
		return fmt.Errorf("%w: max connecting %d is negative", ErrBadConfig, c.MaxConnecting)
	}
	if c.MaxSockets == 0 {
		c.MaxSockets = socketBound()
	}
	if c.Offset < 0 || c.Offset > math.MaxInt32-c.Count {
		return fmt.Errorf("%w: offset %d must be between 0 and %d", ErrBadConfig, c.Offset, math.MaxInt32-c.Count)
	}
	if c.Model == "" {
		c.Model = ModelTR098
	}
	for _, name := range modelRotation(c.Model) {
		switch name {
		case ModelTR098, ModelTR181, ModelVoIP:
		default:
			return fmt.Errorf("%w: model %q: want tr098, tr181, voip, mixed or a comma-separated list of models", ErrBadConfig, c.Model)
		}
	}
	if c.DownloadFaultRate < 0 || c.DownloadFaultRate > 1 || math.IsNaN(c.DownloadFaultRate) {
		return fmt.Errorf("%w: download fault rate %v must be between 0 and 1", ErrBadConfig, c.DownloadFaultRate)
	}
	if c.InformInterval < 0 {
		return fmt.Errorf("%w: inform interval %s is negative", ErrBadConfig, c.InformInterval)
	}
	if c.CRAddr == "" {
		c.CRAddr = "127.0.0.1:0"
	}
	if c.STUNServer != "" && c.UDPCRAddr == "" {
		return fmt.Errorf("%w: a STUN server needs a UDP connection-request address", ErrBadConfig)
	}
	if c.Ramp == 0 {
		c.Ramp = time.Duration(c.Count) * time.Millisecond
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	if c.TimeScale < 0 || math.IsNaN(c.TimeScale) {
		return fmt.Errorf("%w: time scale %v must be positive", ErrBadConfig, c.TimeScale)
	}
	if c.RebootDelay == 0 {
		c.RebootDelay = time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.TransferTimeout == 0 {
		c.TransferTimeout = 2 * time.Minute
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Start launches every device, spreading their first Informs over the
// ramp, and serves connection requests. It returns at once; the devices
// run until ctx ends or Close.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.closed {
		return ErrStarted
	}
	f.started = true
	ctx, f.cancel = context.WithCancel(ctx)
	f.workers = newSessionWorkers(ctx, &f.wg)
	f.serve(ctx)
	n := len(f.devices)
	// Each device's first Inform is due at a time fixed now, not a delay
	// counted from when its goroutine first runs: starting 50,000
	// goroutines on one CPU while the first devices already inform took
	// seconds, and stretched the ramp by that much.
	t0 := time.Now()
	for i, d := range f.devices {
		at := t0
		if f.cfg.Ramp > 0 && n > 1 {
			at = t0.Add(time.Duration(int64(f.cfg.Ramp) * int64(i) / int64(n)))
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			d.run(ctx, time.Until(at))
		}()
	}
	return nil
}

// Close stops every device and listener and waits for their goroutines.
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	cancel := f.cancel
	f.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	err := f.closeListeners()
	f.wg.Wait()
	f.transport.CloseIdleConnections()
	return err
}

// Len returns the number of devices.
func (f *Fleet) Len() int { return len(f.devices) }

// Device returns device i (0 ≤ i < Len), or nil when out of range.
func (f *Fleet) Device(i int) *Device {
	if i < 0 || i >= len(f.devices) {
		return nil
	}
	return f.devices[i]
}

// Stats returns a snapshot of the fleet's counters.
func (f *Fleet) Stats() Stats { return f.stats.snapshot(len(f.devices)) }

// ConnectionRequestAddr is the HTTP connection-request listener's address.
func (f *Fleet) ConnectionRequestAddr() string { return f.crAddr }

// UDPConnectionRequestAddr is the UDP connection-request socket's address
// (local, or learned through STUN); "" when UDP is off.
func (f *Fleet) UDPConnectionRequestAddr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.udpAddr
}

// sessionTransport returns the transport for one session (or transfer),
// how to release it, and the http.Client timeout to use with it: zero when
// the transport bounds each exchange by timeout itself (connTransport's
// deadlines; a client timeout would cost a goroutine per request).
func (f *Fleet) sessionTransport(timeout time.Duration, src net.IP) (http.RoundTripper, func(), time.Duration) {
	if f.cfg.PoolConnections {
		return f.transport, func() {}, timeout
	}
	t := &connTransport{f: f, timeout: timeout, src: src}
	return t, t.Close, 0
}

func (f *Fleet) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * f.cfg.TimeScale)
}

// retryWait is the TR-069 §3.2.1.1 session retry wait after the n-th
// consecutive failure: uniformly random in [m·k^(n-1), m·k^n] with m = 5 s
// and k = 2, the exponent capped at 10, scaled by TimeScale.
func (f *Fleet) retryWait(n uint32, rng *mrand.Rand) time.Duration {
	e := float64(min(n, 10))
	lo := 5 * math.Pow(2, e-1)
	hi := 5 * math.Pow(2, e)
	secs := lo + rng.Float64()*(hi-lo)
	return f.scaled(time.Duration(secs * float64(time.Second)))
}

// SetDownloadFaultRate changes Config.DownloadFaultRate for downloads that
// start from now on (a test "fixes" the firmware). Values outside 0..1
// are clamped.
func (f *Fleet) SetDownloadFaultRate(rate float64) {
	if math.IsNaN(rate) {
		rate = 0
	}
	f.dlFaultRate.Store(math.Float64bits(min(max(rate, 0), 1)))
}

// downloadFaultPoint places a device in [0, 1) for DownloadFaultRate: a
// device faults while its point is below the rate, so raising the rate
// only adds devices.
func (f *Fleet) downloadFaultPoint(serial string) float64 {
	// A cryptographic hash: FNV's high bits hardly move when only the
	// last characters differ, as serial numbers do.
	h := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s", f.cfg.Seed, serial))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// DeviceIDAt returns the device ID of the device at index in a fleet of
// this model rotation (Config.Model) and seed, without building the
// device: what a load generator needs to queue tasks for simulated devices
// it does not run itself.
func DeviceIDAt(model string, seed int64, index int) (string, error) {
	rotation := modelRotation(model)
	m, err := LoadModel(rotation[index%len(rotation)])
	if err != nil {
		return "", err
	}
	return fleet.DeviceID(m.OUI, m.ProductClass, serialFor(m, seed, index))
}

// spreadSources reports whether devices may connect from addresses of
// their own (Config.SingleSource): on Linux, which accepts any
// 127.0.0.0/8 address as a local one. Each dial decides whether it applies
// (dialSource): the ACS may move a device (ManagementServer.URL) and a
// download may be elsewhere.
func spreadSources(cfg Config) bool {
	return !cfg.SingleSource && runtime.GOOS == "linux"
}

// dialSource is the local address for a connection to host from a device
// whose own address is src: src when both are IPv4 loopback (an address
// of 127.0.0.0/8 cannot reach beyond the host), else nil, the system's
// choice.
func dialSource(src net.IP, host string) *net.TCPAddr {
	if src == nil {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil
	}
	return &net.TCPAddr{IP: src}
}

// loopbackSource is device index i's own source address: 127.a.b.c with
// c in 1..254 and a from 1, so no device uses 127.0.0.1 (the ACS's usual
// address) nor a .0 or .255 one.
func loopbackSource(i int) net.IP {
	c := 1 + i%254
	b := (i / 254) % 256
	a := 1 + (i/254/256)%254
	return net.IPv4(127, byte(a), byte(b), byte(c))
}

// gate bounds how many may be inside at once (a token each); nil lets
// everyone in.
type gate chan struct{}

// newGate is a gate for n at once; nil (no bound) when n <= 0.
func newGate(n int) gate {
	if n <= 0 {
		return nil
	}
	return make(gate, n)
}

// enter waits for a token and reports whether it got one; false when ctx
// ended first.
func (g gate) enter(ctx context.Context) bool {
	if g == nil {
		return true
	}
	select {
	case g <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// leave returns the token enter took.
func (g gate) leave() {
	if g != nil {
		<-g
	}
}
