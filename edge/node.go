package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/loopback"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
	"github.com/edgeacs/edgeacs/provision/preset"
	"github.com/edgeacs/edgeacs/provision/script"
)

// ErrConfig wraps every configuration error found by Config.Validate.
var ErrConfig = errors.New("edge: bad configuration")

// Config configures an edge node. The zero value plus ID and DataDir, after
// SetDefaults, is a working development node.
type Config struct {
	// ID names the edge (in logs, metrics, and towards the core later).
	ID string `yaml:"id"`
	// DataDir holds the Badger cache and the file store.
	DataDir string `yaml:"data"`
	// CWMPAddr is where CPEs connect (HTTP, or HTTPS with TLSCert/TLSKey).
	CWMPAddr string `yaml:"cwmp_addr"`
	// APIAddr serves the local JSON API, /metrics and health checks. It
	// serves plain HTTP only on a loopback address unless APIInsecure.
	APIAddr string `yaml:"api_addr"`
	// APITLSCert and APITLSKey (PEM files), both set, make the local API
	// HTTPS.
	APITLSCert string `yaml:"api_tls_cert"`
	APITLSKey  string `yaml:"api_tls_key"`
	// APIInsecure allows plain HTTP on a non-loopback APIAddr: the API's
	// requests then cross the network in the clear.
	APIInsecure bool `yaml:"api_insecure"`
	// MetricsAuth makes /metrics need a read token (see APIConfig).
	MetricsAuth bool `yaml:"metrics_auth"`
	// STUNAddr, when set, runs the STUN server for TR-111 on this UDP address.
	STUNAddr string `yaml:"stun_addr"`
	// TLSCert and TLSKey, both set, make the CWMP listener HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`

	// CPEAuth is none, basic or digest (default).
	CPEAuth string `yaml:"cpe_auth"`
	// AllowBasicOverHTTP permits basic auth without TLS (testing only).
	AllowBasicOverHTTP bool `yaml:"allow_basic_over_http"`
	// Username and Password are the shared CPE→ACS credentials, used for
	// devices without per-device ones in the cache.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Realm is the HTTP auth realm (default "edgeacs").
	Realm string `yaml:"realm"`
	// DigestAlgorithms are the digest algorithms offered, one
	// WWW-Authenticate challenge each in this order, and the only ones
	// accepted: "MD5", "SHA-256" (any case). Default MD5 alone: it is
	// the one TR-069 requires and every CPE implements, while some CPE
	// HTTP stacks misread a second challenge (one merged both headers
	// and hashed with the wrong algorithm) or refuse SHA-256. Add
	// SHA-256 where the fleet is known to handle it.
	DigestAlgorithms []string `yaml:"digest_algorithms"`
	// AuthFailuresPerMinute is how many failed authentications one source
	// address may make per minute before a cool-down (default 10). Requests
	// without credentials count too once that many earlier ones from the
	// address went unanswered for 10 s (a CPE's first request without
	// credentials is the normal first leg of digest and is not counted).
	AuthFailuresPerMinute int `yaml:"auth_failures_per_minute"`
	// AllowDigestWithoutQOP accepts RFC 2069 digest responses (no qop, so
	// no nonce count); each nonce is then good for one request. Off by
	// default: without a count a replayed header looks like a new one.
	AllowDigestWithoutQOP bool `yaml:"allow_digest_without_qop"`
	// MaxUnauthenticatedPerIP bounds the requests one source address may
	// have in flight before they are authenticated (default 1024; more get
	// 429). With CPE auth on, that is only while the headers are checked;
	// with none, it is every Inform while its body is read and parsed.
	MaxUnauthenticatedPerIP int `yaml:"max_unauthenticated_per_ip"`
	// FilesAuth guards /files/ on the CWMP listener; nil means true, the
	// default. A file is then served only on a URL the edge signed into a
	// Download it sent (valid for DownloadTimeout plus the Download's
	// DelaySeconds), or to a client presenting CPE credentials. false
	// serves every file to whoever reaches the listener.
	FilesAuth *bool `yaml:"files_auth"`

	// MaxBodyBytes bounds a CWMP request body, after decompression (default 4 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SessionTimeout ends a session idle this long (default 30 s). A CPE's
	// cwmp:SessionTimeout header may shorten it for its session, never
	// lengthen it.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// MaxConcurrentSessions refuses new sessions with 503 and a jittered
	// Retry-After beyond this number; a tenth of it is kept for priority
	// sessions (admission.go). 0 derives it at start: three quarters of
	// MaxConnections, at most what a quarter of memory holds.
	MaxConcurrentSessions int `yaml:"max_concurrent_sessions"`
	// MaxConnections bounds the CWMP connections held; beyond it the
	// listener accepts no more until one closes, and closes idle
	// keep-alive ones to make room. 0 derives it at start from the file
	// descriptor limit (raised to the hard limit), keeping a fifth (at
	// least 1024) for Badger, the API and the sync link.
	MaxConnections int `yaml:"max_connections"`
	// StoreFailureLimit is how long cache writes may keep failing with no
	// success before the edge stops (default 30 s). Meanwhile sessions get
	// 503 and /healthz reports the failure.
	StoreFailureLimit time.Duration `yaml:"store_failure_limit"`
	// HoldRequests asks CPEs not to send requests of their own.
	HoldRequests bool `yaml:"hold_requests"`
	// FilesBaseURL is the URL prefix put in Download requests; empty means
	// this listener as the CPE reached it ("http://<Host>/files/").
	FilesBaseURL string `yaml:"files_base_url"`

	// ManualCRCredentials stops the edge from making up connection-request
	// passwords: DeviceID.ConnectionRequestPassword is then the password
	// the edge knows for a device, or NULL, and a standalone edge's default
	// inform preset is created without the credentials (see
	// preset.Defaults); the operator provisions them.
	ManualCRCredentials bool `yaml:"manual_cr_credentials"`
	// CRTimeout bounds one connection-request attempt (default 2 s).
	CRTimeout time.Duration `yaml:"cr_timeout"`
	// CRRetries is how many times a failed connection request is retried (default 2).
	CRRetries int `yaml:"cr_retries"`
	// CRMinInterval and CRBurst bound the connection requests to one
	// device as a token bucket: CRBurst may go back to back (default 4),
	// then one per CRMinInterval (default 1 s). Requests that find the
	// allowance spent wait for it and are coalesced.
	CRMinInterval time.Duration `yaml:"cr_min_interval"`
	CRBurst       int           `yaml:"cr_burst"`
	// SessionLinger is how long a session that has nothing left to send
	// is held open, before its empty answer ends it, for a follow-up task
	// of an API client that waited for one of its tasks (default 200 ms;
	// negative: never). See Server.linger.
	SessionLinger time.Duration `yaml:"session_linger"`

	// ProvisionRetryDelay is how long a faulted preset channel waits
	// before a session retries it (default 5 min, GenieACS's
	// cwmp.retryDelay); every retry that faults again doubles the wait, up
	// to a day. Deleting the fault retries it at the next session.
	ProvisionRetryDelay time.Duration `yaml:"provision_retry_delay"`
	// ScriptTimeout bounds one run of a provision script in a session
	// (default 50 ms, GenieACS's; at most 1 s). Past it the preset's
	// channel faults "timeout".
	ScriptTimeout time.Duration `yaml:"script_timeout"`
	// GPVBatchSize bounds the names of one GetParameterValues or
	// SetParameterValues the presets send (default 256,
	// provision.DefaultBatchSize; GenieACS's cwmp.gpvBatchSize is 32). A
	// CPE that faults a large GetParameterValues with 9002 or 9004, or
	// hangs up or times out with one outstanding, is asked 32 names at a
	// time from then on (Device.SmallGPV, stored with the device).
	GPVBatchSize int `yaml:"gpv_batch_size"`

	// DownloadTimeout ends as fault "timeout" a Download or Upload the CPE
	// accepted (status 1) but never reported with TransferComplete; it is
	// checked when the device's next session starts (default 1 h, like
	// GenieACS's cwmp.downloadTimeout).
	DownloadTimeout time.Duration `yaml:"download_timeout"`
	// DiagnosticsTimeout ends as fault "diagnostics_timeout" a diagnostic
	// task (ping, traceroute, ...) whose CPE accepted it but sent no
	// 8 DIAGNOSTICS COMPLETE in time: checked at the device's sessions and
	// by the janitor every second (default 10 min).
	DiagnosticsTimeout time.Duration `yaml:"diagnostics_timeout"`
	// HistoryPoints and HistoryMaxAge bound each recorded parameter
	// series (a preset's history): the newest points, none older (default
	// 288 and 7 days, as the core keeps them).
	HistoryPoints int           `yaml:"history_points"`
	HistoryMaxAge time.Duration `yaml:"history_max_age"`

	// ShutdownTimeout is the grace of a shutdown (default 3 s): open
	// sessions get until then to finish, and Run returns shortly after
	// it whatever the CPEs do (sessions still open then are ended as
	// dropped: their tasks pending again, nothing committed lost).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// SyncWrites makes every cache commit fsync. Without it a killed
	// process loses nothing (writes reach the OS before the CPE is
	// answered), and the writes a CPE or operator was promised (events the
	// CPE will not resend, TransferComplete, task results, accepted tasks)
	// still survive a power loss through a shared group fsync; only plain
	// periodic sessions are left to the OS.
	SyncWrites bool `yaml:"sync_writes"`
	// Standalone runs without a core: nothing is queued for one.
	Standalone bool `yaml:"standalone"`
	// Core lists core nodes' sync addresses (host:port); any one will do,
	// a follower redirects the edge to the leader. Required unless
	// Standalone.
	Core []string `yaml:"core"`
	// CADir holds the cluster CA certificate and this edge's pair
	// (<id>.crt, <id>.key), made by `edgeacs ca`. Required unless
	// Standalone.
	CADir string `yaml:"ca_dir"`
	// CacheMemory is the memory budget of the device cache's store:
	// Badger's memtables, block cache and index cache are sized from it
	// (default 256 MiB, at least 64 MiB; see DESIGN.md, "Memory"). The
	// sessions in flight and the Go runtime come on top.
	CacheMemory ByteSize `yaml:"cache_memory"`
	// MemoryLimit is the soft limit on the Go runtime's memory that the
	// edge command sets (GOMEMLIMIT's; GOMEMLIMIT in the environment
	// wins). Zero derives it from the cache budget (DeriveMemoryLimit).
	MemoryLimit ByteSize `yaml:"memory_limit"`
	// HugePages, unless false, has the edge command ask Linux for
	// transparent huge pages for the Go heap where the system leaves them
	// to each process (transparent_hugepage "madvise"): page faults are
	// dear in a virtual machine, and a storm takes hundreds of thousands
	// (internal/hugepages; DESIGN.md, "Round 21").
	HugePages *bool `yaml:"huge_pages"`

	// apiTimeouts bound the local API's connections (defaults in
	// SetDefaults; tests shorten them).
	apiTimeouts httpTimeouts
	// challengeGrace overrides the authenticator's challengeGrace (tests).
	challengeGrace time.Duration
	// retryAfterMin and retryAfterMax bound the Retry-After of a refused
	// session (defaults DefaultRetryAfterMin/Max; tests shorten them).
	retryAfterMin, retryAfterMax time.Duration
	// capacityFDLimit replaces the process's fd limit in the derivation
	// (tests).
	capacityFDLimit uint64
	// maxBusy bounds the CWMP requests in progress before new sessions
	// are refused (Capacity.Busy; derived from the CPUs; negative: none).
	maxBusy int
}

// httpTimeouts are an http.Server's read-side timeouts.
type httpTimeouts struct {
	header time.Duration // request line and headers
	body   time.Duration // a request, headers and body, without upload progress
	idle   time.Duration // between keep-alive requests
	upload time.Duration // a file upload without a byte received (APIConfig.UploadIdle)
}

// Local API timeouts. The body timeout is for JSON requests; a file upload
// instead has its deadline pushed forward while it makes progress (see
// progressReader), and a ?wait request clears it once its body is read.
const (
	DefaultAPIHeaderTimeout = 10 * time.Second
	DefaultAPIBodyTimeout   = 60 * time.Second
	DefaultAPIIdleTimeout   = 2 * time.Minute
)

// FilesAuthOn reports whether /files/ needs a signed URL or CPE
// credentials (FilesAuth, true unless set to false).
func (c *Config) FilesAuthOn() bool { return c.FilesAuth == nil || *c.FilesAuth }

// HugePagesOn reports whether the edge command asks for huge pages (unless
// HugePages is false).
func (c *Config) HugePagesOn() bool { return c.HugePages == nil || *c.HugePages }

// Defaults.
const (
	DefaultCWMPAddr       = "0.0.0.0:7547"
	DefaultAPIAddr        = "127.0.0.1:7557"
	DefaultRealm          = "edgeacs"
	DefaultMaxBodyBytes   = 4 << 20
	DefaultSessionTimeout = 30 * time.Second
	DefaultMaxSessions    = 100000
	// DefaultMaxUnauthenticatedPerIP is MaxUnauthenticatedPerIP's default.
	// Authentication reads headers only, so a request in this state costs
	// little; the bound must leave room for the thousands of CPEs a
	// carrier NAT puts behind one address starting together.
	DefaultMaxUnauthenticatedPerIP = 1024
	// DefaultCRBurst lets an operator's few quick tasks on one device
	// each wake it at once; a flood is still cut to one per interval.
	DefaultCRBurst = 4
	// DefaultSessionLinger covers an API client's turn-around (answer,
	// next POST, the task's fsync) on a busy box; MaxSessionLinger keeps
	// the hold far inside any CPE's HTTP timeout.
	DefaultSessionLinger = 200 * time.Millisecond
	MaxSessionLinger     = 5 * time.Second
	// DefaultShutdownTimeout is ShutdownTimeout's default: long enough
	// for a session mid-exchange to finish its round trips, short enough
	// for an orchestrator's stop timeout (often 5 s before SIGKILL).
	DefaultShutdownTimeout = 3 * time.Second
)

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.CWMPAddr == "" {
		c.CWMPAddr = DefaultCWMPAddr
	}
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if c.CPEAuth == "" {
		c.CPEAuth = AuthDigest
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.AuthFailuresPerMinute == 0 {
		c.AuthFailuresPerMinute = defaultFailures
	}
	if c.MaxUnauthenticatedPerIP == 0 {
		c.MaxUnauthenticatedPerIP = DefaultMaxUnauthenticatedPerIP
	}
	if c.FilesAuth == nil {
		on := true
		c.FilesAuth = &on
	}
	if c.apiTimeouts.header == 0 {
		c.apiTimeouts.header = DefaultAPIHeaderTimeout
	}
	if c.apiTimeouts.body == 0 {
		c.apiTimeouts.body = DefaultAPIBodyTimeout
	}
	if c.apiTimeouts.idle == 0 {
		c.apiTimeouts.idle = DefaultAPIIdleTimeout
	}
	if c.apiTimeouts.upload == 0 {
		c.apiTimeouts.upload = defaultUploadIdle
	}
	if c.CRTimeout == 0 {
		c.CRTimeout = 2 * time.Second
	}
	if c.CRRetries == 0 {
		c.CRRetries = 2
	}
	if c.CRMinInterval == 0 {
		c.CRMinInterval = time.Second
	}
	if c.CRBurst == 0 {
		c.CRBurst = DefaultCRBurst
	}
	if c.SessionLinger == 0 {
		c.SessionLinger = DefaultSessionLinger
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if len(c.DigestAlgorithms) == 0 {
		c.DigestAlgorithms = []string{cwmp.DigestMD5}
	}
	if c.DownloadTimeout == 0 {
		c.DownloadTimeout = DefaultDownloadTimeout
	}
	if c.CacheMemory == 0 {
		c.CacheMemory = DefaultCacheMemory
	}
}

// TLS reports whether the CWMP listener serves HTTPS.
func (c *Config) TLS() bool { return c.TLSCert != "" && c.TLSKey != "" }

// APITLS reports whether the local API serves HTTPS.
func (c *Config) APITLS() bool { return c.APITLSCert != "" && c.APITLSKey != "" }

// Validate checks the configuration; errors wrap ErrConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.ID == "" {
		return bad("edge id is required (--id)")
	}
	if c.DataDir == "" {
		return bad("data directory is required (--data)")
	}
	if c.CacheMemory != 0 && c.CacheMemory < MinCacheMemory {
		return bad("cache memory %s is below the minimum %s (--cache-memory)", c.CacheMemory, MinCacheMemory)
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < max(c.CacheMemory, MinCacheMemory)+64<<20 {
		return bad("memory limit %s leaves nothing beside the cache budget %s: give it at least the budget plus 64MiB (--memory-limit)",
			c.MemoryLimit, max(c.CacheMemory, MinCacheMemory))
	}
	for name, addr := range map[string]string{"cwmp address": c.CWMPAddr, "api address": c.APIAddr, "stun address": c.STUNAddr} {
		if addr == "" && name == "stun address" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("%s %q: want HOST:PORT", name, addr)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("--tls-cert and --tls-key go together")
	}
	if (c.APITLSCert == "") != (c.APITLSKey == "") {
		return bad("--api-tls-cert and --api-tls-key (api_tls_cert, api_tls_key) go together")
	}
	if c.APITLSCert == "" && !c.APIInsecure && !loopback.IsAddr(c.APIAddr) {
		return bad("api address %s is not a loopback address, and serving the API there over plain HTTP would send its requests in the clear: "+
			"give --api-tls-cert and --api-tls-key (api_tls_cert, api_tls_key) to serve HTTPS, or --api-insecure (api_insecure) to accept plain HTTP", c.APIAddr)
	}
	switch c.CPEAuth {
	case AuthNone:
	case AuthBasic:
		if !c.TLS() && !c.AllowBasicOverHTTP {
			return bad("basic CPE auth over plain HTTP sends passwords in the clear; use TLS or --allow-basic-over-http")
		}
		if c.Username == "" {
			return bad("basic CPE auth needs --username and --password")
		}
	case AuthDigest:
		if c.Username == "" {
			return bad("digest CPE auth needs --username and --password (or --cpe-auth none for development)")
		}
	default:
		return bad("cpe auth %q: want none, basic or digest", c.CPEAuth)
	}
	if c.MaxBodyBytes < 4<<10 {
		return bad("max body bytes %d is below 4 KiB", c.MaxBodyBytes)
	}
	if c.DownloadTimeout < time.Second {
		return bad("download timeout %s is below 1s", c.DownloadTimeout)
	}
	if c.SessionTimeout < time.Second {
		return bad("session timeout %s is below 1s", c.SessionTimeout)
	}
	if c.MaxConcurrentSessions < 0 || c.MaxConnections < 0 || c.StoreFailureLimit < 0 || c.CRRetries < 0 || c.AuthFailuresPerMinute < 0 || c.MaxUnauthenticatedPerIP < 0 || c.CRBurst < 0 || c.GPVBatchSize < 0 {
		return bad("negative limits")
	}
	if c.CPEAuth == AuthDigest {
		seen := map[string]bool{}
		for i, a := range c.DigestAlgorithms {
			canon, ok := canonicalDigestAlgorithm(a)
			if !ok {
				return bad("digest algorithm %q: want md5 or sha-256", a)
			}
			if seen[canon] {
				return bad("digest algorithm %s listed twice", canon)
			}
			seen[canon] = true
			c.DigestAlgorithms[i] = canon
		}
	}
	if c.ShutdownTimeout < 0 {
		return bad("shutdown timeout %s is negative", c.ShutdownTimeout)
	}
	if c.SessionLinger > MaxSessionLinger {
		return bad("session linger %s is above %s: a CPE waits that long for the ACS's answer", c.SessionLinger, MaxSessionLinger)
	}
	if !c.Standalone {
		if len(c.Core) == 0 {
			return bad("--core (the core nodes' sync addresses) is required unless --standalone")
		}
		for _, a := range c.Core {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return bad("--core address %q: %v", a, err)
			}
		}
		if c.CADir == "" {
			return bad("--ca-dir (the cluster CA and this edge's certificate) is required unless --standalone")
		}
	}
	return nil
}

// canonicalDigestAlgorithm spells a digest algorithm as RFC 7616 does.
func canonicalDigestAlgorithm(a string) (string, bool) {
	switch strings.ToUpper(strings.TrimSpace(a)) {
	case "MD5":
		return cwmp.DigestMD5, true
	case "SHA-256", "SHA256":
		return cwmp.DigestSHA256, true
	}
	return "", false
}

// Uplink is the link to the core. It is nil in standalone mode; the sync
// client implements it, draining the cache's outbox while Run lasts.
type Uplink interface {
	Run(ctx context.Context) error
	// LinkStatus is shown in /healthz under "sync" (connected, which
	// core, last error).
	LinkStatus() any
}

// Addrs are the addresses a running node is bound to.
type Addrs struct {
	CWMP, API, STUN string
}

// Node is one edge: the CWMP server, the local API, the STUN server, the
// device cache and its maintenance, wired together.
type Node struct {
	cfg     Config
	log     *slog.Logger
	cache   *Cache
	files   *FileStore
	metrics *Metrics
	server  *Server
	reach   *Reacher
	api     http.Handler
	uplink  Uplink
	// wakeQ carries devices the core asked to reach now (a downlink task
	// with Wake) from the cache's OnWake to the wake workers.
	wakeQ chan string

	// capacity is what admission control allows (admission.go).
	capacity Capacity

	ready   chan struct{}
	mu      sync.Mutex
	addrs   Addrs
	started bool
}

// New opens the node's cache and file store and builds its servers. Run
// serves them; Run also closes the cache when it returns.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = clipLogger(logger).With("edge", cfg.ID)
	if cfg.CPEAuth == AuthNone {
		logger.Warn("CPE AUTHENTICATION IS OFF (--cpe-auth none): any client can pose as any device; development only")
	}
	// The metrics exist before the cache, which reports final tasks to
	// them; the outbox gauges read the cache only at scrape time.
	var cache *Cache
	metrics := NewMetrics(func() float64 {
		if cache == nil {
			return 0
		}
		return float64(cache.OutboxLen())
	})
	metrics.watchOutboxAge(func() float64 {
		if cache == nil {
			return 0
		}
		return cache.OutboxOldest().Seconds()
	})
	metrics.watchStoreSyncs(func() float64 {
		if cache == nil {
			return 0
		}
		return float64(cache.SyncRounds())
	})
	metrics.watchDeviceStates(func(now time.Time) (map[string]int, error) {
		if cache == nil {
			return nil, nil
		}
		return cache.DeviceStates(now)
	})
	wakeQ := make(chan string, wakeQueueLen)
	var interim []fleet.Preset
	if !cfg.Standalone {
		// Until its core has spoken, a synced edge runs the defaults a
		// fresh cluster gets.
		interim = preset.Defaults(!cfg.ManualCRCredentials)
	}
	capacity := resolveCapacity(&cfg, logger)
	cache, err := OpenCache(filepath.Join(cfg.DataDir, "cache"), CacheOptions{
		StoreFailureLimit:   cfg.StoreFailureLimit,
		OnStoreFailure:      func(op string) { metrics.Storm.StoreFailures.WithLabelValues(op).Inc() },
		SyncWrites:          cfg.SyncWrites,
		Logger:              logger,
		EdgeID:              cfg.ID,
		OnTaskFinal:         metrics.TaskFinal,
		DownloadTimeout:     cfg.DownloadTimeout,
		DiagnosticsTimeout:  cfg.DiagnosticsTimeout,
		HistoryPoints:       cfg.HistoryPoints,
		HistoryMaxAge:       cfg.HistoryMaxAge,
		ManualCRCredentials: cfg.ManualCRCredentials,
		ProvisionRetryDelay: cfg.ProvisionRetryDelay,
		InterimPresets:      interim,
		ScriptLimits:        script.Limits{Time: cfg.ScriptTimeout},
		GPVBatchSize:        cfg.GPVBatchSize,
		Memory:              cfg.CacheMemory,
		// Standalone, nothing drains the outbox: it would grow without bound.
		DisableOutbox: cfg.Standalone,
		OnWake: func(deviceID string) {
			select {
			case wakeQ <- deviceID:
			default:
				// The task is stored; it runs at the device's next
				// Inform instead of now.
				logger.Warn("connection request queue full; the task waits for the device's next inform", "device", deviceID)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open edge cache in %s: %w", cfg.DataDir, err)
	}
	files, err := OpenFileStore(filepath.Join(cfg.DataDir, "files"), cache)
	if err != nil {
		cache.Close()
		return nil, fmt.Errorf("open file store in %s: %w", cfg.DataDir, err)
	}
	n := &Node{cfg: cfg, log: logger, cache: cache, files: files, wakeQ: wakeQ, ready: make(chan struct{}), capacity: capacity}
	n.metrics = metrics
	n.server = newServer(cfg, cache, files, n.metrics, logger)
	n.reach = NewReacher(ReacherConfig{
		Cache:       cache,
		Timeout:     cfg.CRTimeout,
		Retries:     cfg.CRRetries,
		MinInterval: cfg.CRMinInterval,
		Burst:       cfg.CRBurst,
		Sessions:    n.server,
		Metrics:     n.metrics,
		Logger:      logger,
	})
	n.api = NewAPI(APIConfig{
		EdgeID:  cfg.ID,
		Cache:   cache,
		Files:   files,
		CR:      n.reach,
		Metrics: n.metrics.Handler(),
		Ready:   n.readyErr,
		Health:  cache.Health,
		Store:   cache.StoreHealth,
		Sync: func() any {
			if n.uplink == nil {
				return nil
			}
			return n.uplink.LinkStatus()
		},
		Logger:      logger,
		BadMessages: n.server.LastBadMessage,
		UploadIdle:  cfg.apiTimeouts.upload,
		LocalTokens: cfg.Standalone,
		// A standalone edge keeps its own presets and scripts.
		LocalProvisioning: cfg.Standalone,
		MetricsAuth:       cfg.MetricsAuth,
	})
	if cfg.Standalone {
		// The web console, for the edge's own devices (a synced edge's are
		// the core's console's).
		if n.api, err = n.withConsole(n.api); err != nil {
			cache.Close()
			return nil, err
		}
		if err := ensureAdminToken(cache, n.AdminTokenPath(), logger); err != nil {
			cache.Close()
			return nil, fmt.Errorf("edge admin token: %w", err)
		}
		if made, err := cache.SeedDefaultPresets(preset.Defaults(!cfg.ManualCRCredentials)); err != nil {
			cache.Close()
			return nil, fmt.Errorf("edge default presets: %w", err)
		} else if made {
			logger.Info("created the default presets (bootstrap, inform): edit or delete them like any preset; they are not made again")
		}
	} else {
		dropped, err := cache.DropLocalTokens()
		if err != nil {
			cache.Close()
			return nil, err
		}
		if len(dropped) > 0 {
			logger.Warn("removed the API tokens this edge made while standalone: synced to a core, it accepts only the core's",
				"tokens", dropped, "admin_token_file", n.AdminTokenPath())
		}
		local, err := cache.DropLocalProvisioning()
		if err != nil {
			cache.Close()
			return nil, err
		}
		if len(local) > 0 {
			logger.Warn("removed the presets, provision scripts and virtual parameters this edge made while standalone: synced to a core, it runs only the core's",
				"records", local)
		}
	}
	return n, nil
}

// AdminTokenPath is where a standalone edge writes its first admin token's
// secret (<data>/admin.token) when its store holds no token.
func (n *Node) AdminTokenPath() string { return filepath.Join(n.cfg.DataDir, tokenfile.Name) }

// TokenByHash returns the API token whose secret hashes (fleet.HashToken)
// to hash: the core's tokens on a synced edge, the edge's own standalone.
func (n *Node) TokenByHash(hash string) (fleet.Token, bool) { return n.cache.TokenByHash(hash) }

// Tokens lists the API tokens by name.
func (n *Node) Tokens() []fleet.Token { return n.cache.Tokens() }

// Wake-up of devices for downlink tasks marked Wake (the core's
// ?connection_request): like the API's, each is a connection request
// through the Reacher, which coalesces and rate-limits per device.
const (
	wakeQueueLen = 4096
	wakeWorkers  = 16
	wakeTimeout  = 10 * time.Second
)

// wakeLoop sends the connection requests queued by OnWake until ctx ends;
// those for a device in a session wait for its end (deferWake) without
// holding a worker, and none goes to a device whose tasks already ran.
func (n *Node) wakeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-n.wakeQ:
			if n.deferWake(id) {
				continue
			}
			// A session that was open when the task arrived (lingering
			// for a follow-up, or re-reading its queue) may have run it
			// and ended before this worker got here: nothing to wake for.
			if !n.cache.hasPending(id) {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, wakeTimeout)
			err := n.reach.ConnectionRequest(cctx, id)
			cancel()
			if err != nil && ctx.Err() == nil {
				n.log.Info("connection request for a core task failed; it runs at the device's next inform", "device", id, "err", err)
			}
		}
	}
}

// Health is what the edge reports on the sync link's heartbeats and in
// /healthz (see Cache.Health).
func (n *Node) Health() fleet.EdgeHealth { return n.cache.Health() }

// SetUplink attaches the core link; call before Run.
func (n *Node) SetUplink(u Uplink) { n.uplink = u }

// SetBlobFetcher lets the node fetch file content from the core (the sync
// client): download tasks from the core fetch their file ahead, and a
// session holds a Download until its file is here, then the device is
// sent a connection request. Call before Run.
func (n *Node) SetBlobFetcher(f BlobFetcher) {
	n.files.SetFetcher(f, func(deviceID string) {
		select {
		case n.wakeQ <- deviceID:
		default:
			n.log.Warn("connection request queue full; a held download waits for the device's next inform", "device", deviceID)
		}
	})
}

// Cache is the node's device cache.
func (n *Node) Cache() *Cache { return n.cache }

// Capacity is what admission control allows (derived at start unless
// configured).
func (n *Node) Capacity() Capacity { return n.capacity }

// Files is the node's file store.
func (n *Node) Files() *FileStore { return n.files }

// Reacher sends connection requests to this node's devices.
func (n *Node) Reacher() *Reacher { return n.reach }

// Metrics is the node's instrumentation.
func (n *Node) Metrics() *Metrics { return n.metrics }

// Server is the node's CWMP handler.
func (n *Node) Server() *Server { return n.server }

// Ready is closed once every listener is bound.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Addrs reports the bound addresses (useful with port 0); valid after Ready.
func (n *Node) Addrs() Addrs {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addrs
}

func (n *Node) readyErr() error {
	select {
	case <-n.ready:
		return nil
	default:
		return errors.New("edge is starting")
	}
}

// Run serves until ctx is cancelled, then shuts down gracefully: new
// sessions are refused, in-flight ones get ShutdownTimeout to finish, the
// rest are ended as dropped (their tasks stay pending), then the API, the
// STUN server and the GC stop, and the cache is closed last. Run may be
// called once.
func (n *Node) Run(ctx context.Context) (err error) {
	n.mu.Lock()
	if n.started {
		n.mu.Unlock()
		return errors.New("edge: Run called twice")
	}
	n.started = true
	n.mu.Unlock()
	defer func() {
		if cerr := n.cache.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close edge cache: %w", cerr)
		}
	}()

	// No TCP keep-alive on CPE connections: the server's read and idle
	// timeouts (60 s, 2 min) close a vanished CPE's connection before
	// keep-alive would (15 s idle, then 9 probes 15 s apart), and its
	// four setsockopts per accepted connection were paid by every
	// refusal of a storm's flood too.
	cwmpLn, err := (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", n.cfg.CWMPAddr)
	if err != nil {
		return fmt.Errorf("listen for CWMP on %s: %w", n.cfg.CWMPAddr, err)
	}
	var connLimit *limitListener
	if n.capacity.Connections > 0 {
		connLimit = newLimitListener(cwmpLn, n.capacity.Connections, n.metrics.Storm)
		cwmpLn = connLimit
	}
	apiLn, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		cwmpLn.Close()
		return fmt.Errorf("listen for API on %s: %w", n.cfg.APIAddr, err)
	}
	var stunSrv *STUNServer
	if n.cfg.STUNAddr != "" {
		pc, err := net.ListenPacket("udp", n.cfg.STUNAddr)
		if err != nil {
			cwmpLn.Close()
			apiLn.Close()
			return fmt.Errorf("listen for STUN on %s: %w", n.cfg.STUNAddr, err)
		}
		stunSrv = NewSTUNServer(pc, n.metrics, n.log)
		n.reach.SetSTUN(stunSrv)
	}
	for _, l := range []struct {
		on        bool
		what      string
		cert, key string
		ln        *net.Listener
	}{
		{n.cfg.TLS(), "CWMP", n.cfg.TLSCert, n.cfg.TLSKey, &cwmpLn},
		{n.cfg.APITLS(), "API", n.cfg.APITLSCert, n.cfg.APITLSKey, &apiLn},
	} {
		if !l.on {
			continue
		}
		cert, err := tls.LoadX509KeyPair(l.cert, l.key)
		if err != nil {
			cwmpLn.Close()
			apiLn.Close()
			if stunSrv != nil {
				stunSrv.Close()
			}
			return fmt.Errorf("load %s TLS certificate: %w", l.what, err)
		}
		*l.ln = tls.NewListener(*l.ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	}
	n.mu.Lock()
	n.addrs = Addrs{CWMP: cwmpLn.Addr().String(), API: apiLn.Addr().String()}
	if stunSrv != nil {
		n.addrs.STUN = stunSrv.Addr().String()
	}
	n.mu.Unlock()

	errLog := slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)
	cwmpSrv := &http.Server{
		Handler:           n.server,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
		// Sessions of CPEs that ignore the cookie follow their
		// keep-alive connection (see connTrack).
		ConnContext: n.server.connContext,
		ConnState:   n.server.connState,
	}
	if connLimit != nil {
		cwmpSrv.ConnState = func(c net.Conn, st http.ConnState) {
			n.server.connState(c, st)
			connLimit.connState(c, st)
		}
	}
	// The API is an operator's, but a client stuck mid-request (or one
	// trickling a body a byte at a time) must not hold a connection and a
	// goroutine forever: headers, bodies and idle keep-alives are bounded.
	// No WriteTimeout: ?wait answers up to httpapi.MaxWait later, and file
	// listings of any size must be able to finish.
	apiSrv := &http.Server{
		Handler:           n.api,
		ReadHeaderTimeout: n.cfg.apiTimeouts.header,
		ReadTimeout:       n.cfg.apiTimeouts.body,
		IdleTimeout:       n.cfg.apiTimeouts.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	var wg sync.WaitGroup
	serveErr := make(chan error, 3)
	serve := func(name string, srv *http.Server, ln net.Listener) {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("serve %s: %w", name, err)
		}
	}
	wg.Add(2)
	go serve("CWMP", cwmpSrv, cwmpLn)
	go serve("API", apiSrv, apiLn)
	var stunWG sync.WaitGroup
	if stunSrv != nil {
		stunWG.Add(1)
		go func() {
			defer stunWG.Done()
			if err := stunSrv.Serve(bg); err != nil {
				serveErr <- fmt.Errorf("serve STUN: %w", err)
			}
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); n.cache.RunGC(bg) }()
	go func() { defer wg.Done(); n.janitor(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); n.files.RunFetcher(bg) }()
	var wakeWG sync.WaitGroup
	for range wakeWorkers {
		wakeWG.Add(1)
		go func() { defer wakeWG.Done(); n.wakeLoop(bg) }()
	}
	var upErr chan error
	if n.uplink != nil {
		upErr = make(chan error, 1)
		wg.Add(1)
		go func() { defer wg.Done(); upErr <- n.uplink.Run(bg) }()
	}
	close(n.ready)
	n.log.Info("edge serving", "cwmp", n.addrs.CWMP, "api", n.addrs.API, "stun", n.addrs.STUN, "tls", n.cfg.TLS(), "api_tls", n.cfg.APITLS(), "cpe_auth", n.cfg.CPEAuth)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		n.log.Error("edge server failed; shutting down", "err", runErr)
	case runErr = <-upErr:
		n.log.Error("uplink failed; shutting down", "err", runErr)
	case <-n.cache.StoreFailed():
		runErr = fmt.Errorf("edge %s stops: %w; what was committed is on disk and the edge may be restarted once the cause is fixed", n.cfg.ID, n.cache.StoreHealth())
	}

	// Graceful shutdown, bounded by ShutdownTimeout as a whole: stop new
	// sessions, let open ones finish within the grace, then close what
	// is left. Every session's work is committed or put back pending by
	// abandonAll, so nothing a CPE was told is lost.
	n.server.drain()
	deadline := time.Now().Add(n.cfg.ShutdownTimeout)
	// Keep a little of the grace for what follows the wait: closing the
	// listeners' last requests (a request whose body never ends holds its
	// connection), ending the sessions still open, closing the cache.
	reserve := min(n.cfg.ShutdownTimeout/4, 500*time.Millisecond)
	for n.server.OpenSessions() > 0 && time.Now().Before(deadline.Add(-reserve)) {
		time.Sleep(10 * time.Millisecond)
	}
	httpDeadline := deadline.Add(-reserve / 2)
	shutdown := func(srv *http.Server) {
		// At least a moment, for requests already answered to flush.
		sctx, cancel := context.WithDeadline(context.Background(), later(httpDeadline, time.Now().Add(20*time.Millisecond)))
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}
	shutdown(cwmpSrv)
	n.server.abandonAll()
	shutdown(apiSrv)
	stopBG()
	// No connection request may start once the Reacher is waited for.
	wakeWG.Wait()
	// UDP connection requests may still be sending copies from the STUN
	// socket: let them finish before it closes.
	n.reach.Wait()
	if stunSrv != nil {
		stunSrv.Close()
		stunWG.Wait()
	}
	wg.Wait()
	n.log.Info("edge stopped")
	return runErr
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// janitor ends idle sessions until ctx is done.
func (n *Node) janitor(ctx context.Context) {
	period := n.cfg.SessionTimeout / 4
	if period > time.Second {
		period = time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if k := n.server.expire(now); k > 0 {
				n.log.Debug("ended idle sessions", "count", k)
			}
			if k, err := n.cache.ExpireDiagnostics(now); err != nil {
				n.log.Error("expire diagnostics", "err", err)
			} else if k > 0 {
				n.log.Info("diagnostics timed out", "count", k)
			}
		}
	}
}
