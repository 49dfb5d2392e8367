package core

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/blob"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/internal/loopback"
	"github.com/edgeacs/edgeacs/raftstore"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Config configures one core node. Zero durations and sizes take the
// defaults from DefaultConfig.
type Config struct {
	// ID is the node's Raft server ID, unique in the cluster.
	ID string `yaml:"id"`
	// DataDir holds the raft log, snapshots, the FSM and the blob store.
	DataDir string `yaml:"data"`
	// RaftAddr is where Raft listens (host:port); it is advertised as bound.
	// It is also where every other member reaches this node for anything
	// internode (peer.go): the port is the cluster's trust boundary.
	RaftAddr string `yaml:"raftAddr"`
	// APIAddr is where the REST API for clients listens (host:port). It
	// serves plain HTTP only on a loopback address unless APIInsecure.
	APIAddr string `yaml:"apiAddr"`
	// APITLSCert and APITLSKey (PEM files), both set, make the REST API
	// HTTPS.
	APITLSCert string `yaml:"apiTLSCert"`
	APITLSKey  string `yaml:"apiTLSKey"`
	// APIInsecure allows plain HTTP on a non-loopback APIAddr: the API's
	// requests, and later its credentials, then cross the network in the
	// clear.
	APIInsecure bool `yaml:"apiInsecure"`
	// MetricsAuth makes /metrics need a read token like the rest of the
	// API; by default it is public, as /healthz and /readyz are.
	MetricsAuth bool `yaml:"metricsAuth"`
	// SyncAddr is where the edge sync link (QUIC) listens. The node does
	// not bind it (the sync server does); it registers it, so a follower can
	// redirect an edge to the leader's. SetSyncAddr corrects it once bound.
	SyncAddr string `yaml:"syncAddr"`
	// CADir holds the cluster CA certificate and this node's pair
	// (<id>.crt, <id>.key), made by `edgeacs ca`; the sync server needs
	// them. Empty: no sync server, edges cannot connect.
	CADir string `yaml:"caDir"`
	// Bootstrap makes this node form a new single-node cluster when it has
	// no raft state. With Join it first asks those peers, and refuses (New
	// fails) if any reports an existing cluster: a wiped node restarted with
	// the command that once founded the cluster must not found a second one.
	// A node started with Bootstrap or BootstrapExpect also makes the
	// cluster's first API token, "admin", when it finds none, and writes its
	// secret to <DataDir>/admin.token (Node.AdminTokenPath).
	Bootstrap bool `yaml:"bootstrap"`
	// BootstrapExpect, when N > 0, founds a cluster of N voters safely: a
	// node with no raft state asks the Join peers (the other founding
	// members), and only when N fresh nodes that expect N see each other,
	// and agree on who they are, does the one with the lowest ID bootstrap
	// them all. If any peer reports an existing cluster, the node joins it
	// instead. A node with raft state never bootstraps. See bootstrap.go.
	BootstrapExpect int `yaml:"bootstrapExpect"`
	// Join is a comma-separated list of the Raft addresses (host:port) of
	// members to join through, tried in turn; with Bootstrap or
	// BootstrapExpect, the peers to ask first. Peers talk on their Raft
	// port (peer.go), never on the client API.
	Join string `yaml:"join"`

	// Raft timing and log compaction; see raft.Config. Loopback tests use
	// a few hundred milliseconds, LANs the one-second defaults.
	HeartbeatTimeout   time.Duration `yaml:"heartbeatTimeout"`
	ElectionTimeout    time.Duration `yaml:"electionTimeout"`
	LeaderLeaseTimeout time.Duration `yaml:"leaderLeaseTimeout"`
	CommitTimeout      time.Duration `yaml:"commitTimeout"`
	SnapshotThreshold  uint64        `yaml:"snapshotThreshold"`
	SnapshotInterval   time.Duration `yaml:"snapshotInterval"`
	TrailingLogs       uint64        `yaml:"trailingLogs"`
	// RaftNoSync turns off fsync of the raft log (tests, benchmarks). An
	// acknowledged write then survives a process crash but not power loss.
	RaftNoSync bool `yaml:"raftNoSync"`
	// RaftLogLevel is the level below which raft's own logs are dropped.
	RaftLogLevel string `yaml:"raftLogLevel"`
	// RaftLayer is a test hook: when set, Raft's TCP stream layer (the
	// listener on RaftAddr and the dialer to peers) is passed through it
	// before the transport is built, so a test can cut this node's Raft
	// links (a partition) while its API and sync links stay up. Nil, as in
	// production, leaves raft's own TCP transport untouched.
	RaftLayer func(raft.StreamLayer) raft.StreamLayer `yaml:"-"`

	// ApplyTimeout bounds one write from submission to commit.
	ApplyTimeout time.Duration `yaml:"applyTimeout"`
	// LeaderWait bounds how long a write (or a consistent read) through
	// any node waits for a leader during an election, or for an
	// unreachable leader to be replaced, before it is answered 503.
	LeaderWait time.Duration `yaml:"leaderWait"`
	// MaxBatch and MaxBatchDelay tune the Batcher (commands per log entry,
	// wait to fill one while others are in flight).
	MaxBatch      int           `yaml:"maxBatch"`
	MaxBatchDelay time.Duration `yaml:"maxBatchDelay"`
	// MaxBodyBytes bounds JSON request bodies; MaxFileBytes bounds uploads.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	MaxFileBytes int64 `yaml:"maxFileBytes"`

	// APIHeaderTimeout bounds reading a request's headers. APIBodyTimeout
	// bounds reading its body: the body must arrive within it, or keep
	// delivering at least 64 KiB per APIBodyTimeout (large uploads), else
	// the request gets 408 and the connection is closed. APIIdleTimeout
	// closes a keep-alive connection that sends no next request.
	APIHeaderTimeout time.Duration `yaml:"apiHeaderTimeout"`
	APIBodyTimeout   time.Duration `yaml:"apiBodyTimeout"`
	APIIdleTimeout   time.Duration `yaml:"apiIdleTimeout"`

	// RolloutTick is how often the leader advances firmware rollouts
	// (rolloutloop.go); default 1 s.
	RolloutTick time.Duration `yaml:"rolloutTick"`

	// MaxAPIRequests bounds the API requests served at once; the others
	// get 503 with a jittered Retry-After (default DefaultMaxAPIRequests;
	// negative: no bound).
	MaxAPIRequests int `yaml:"maxAPIRequests"`
}

// DefaultConfig returns production defaults: raft's own timeouts, fsync'd log.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   2 * time.Minute,
		TrailingLogs:       10240,
		RaftLogLevel:       "warn",
		ApplyTimeout:       10 * time.Second,
		LeaderWait:         5 * time.Second,
		MaxBatch:           512,
		MaxBatchDelay:      2 * time.Millisecond,
		MaxBodyBytes:       1 << 20,
		MaxFileBytes:       1 << 30,
		APIHeaderTimeout:   10 * time.Second,
		APIBodyTimeout:     30 * time.Second,
		APIIdleTimeout:     2 * time.Minute,
		RolloutTick:        time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.ElectionTimeout, d.ElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, min(d.LeaderLeaseTimeout, c.HeartbeatTimeout))
	setDur(&c.CommitTimeout, d.CommitTimeout)
	setDur(&c.SnapshotInterval, d.SnapshotInterval)
	setDur(&c.ApplyTimeout, d.ApplyTimeout)
	setDur(&c.LeaderWait, d.LeaderWait)
	setDur(&c.MaxBatchDelay, d.MaxBatchDelay)
	setDur(&c.APIHeaderTimeout, d.APIHeaderTimeout)
	setDur(&c.APIBodyTimeout, d.APIBodyTimeout)
	setDur(&c.APIIdleTimeout, d.APIIdleTimeout)
	setDur(&c.RolloutTick, d.RolloutTick)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.RaftLogLevel == "" {
		c.RaftLogLevel = d.RaftLogLevel
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = d.MaxFileBytes
	}
	if c.MaxAPIRequests == 0 {
		c.MaxAPIRequests = DefaultMaxAPIRequests
	}
	return c
}

// Validate reports the first thing wrong with the configuration.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: node id is required", ErrBadRequest)
	case c.DataDir == "":
		return fmt.Errorf("%w: data dir is required", ErrBadRequest)
	case c.RaftAddr == "":
		return fmt.Errorf("%w: raft address is required", ErrBadRequest)
	case c.APIAddr == "":
		return fmt.Errorf("%w: API address is required", ErrBadRequest)
	case c.Bootstrap && c.BootstrapExpect > 0:
		return fmt.Errorf("%w: bootstrap and bootstrap-expect are exclusive", ErrBadRequest)
	case c.BootstrapExpect < 0:
		return fmt.Errorf("%w: bootstrap-expect must be positive", ErrBadRequest)
	case c.BootstrapExpect > 1 && len(c.joinAddrs()) < c.BootstrapExpect-1:
		return fmt.Errorf("%w: bootstrap-expect %d needs join with the Raft addresses of the other %d founding members", ErrBadRequest, c.BootstrapExpect, c.BootstrapExpect-1)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("%w: leader lease timeout must not exceed the heartbeat timeout", ErrBadRequest)
	case (c.APITLSCert == "") != (c.APITLSKey == ""):
		return fmt.Errorf("%w: --api-tls-cert and --api-tls-key (apiTLSCert, apiTLSKey) go together", ErrBadRequest)
	case c.LeaderWait < 0:
		return fmt.Errorf("%w: leader wait must not be negative", ErrBadRequest)
	}
	for _, a := range c.joinAddrs() {
		if strings.Contains(a, "/") {
			return fmt.Errorf("%w: join address %q: want the HOST:PORT of a member's Raft listener (--raft-addr), not a URL", ErrBadRequest, a)
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: join address %q: want the HOST:PORT of a member's Raft listener: %v", ErrBadRequest, a, err)
		}
	}
	for _, a := range []struct{ name, addr string }{{"raft", c.RaftAddr}, {"api", c.APIAddr}, {"sync", c.SyncAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%w: %s address %q: %v", ErrBadRequest, a.name, a.addr, err)
		}
	}
	if c.APITLSCert == "" && !c.APIInsecure && !loopback.IsAddr(c.APIAddr) {
		return fmt.Errorf("%w: API address %s is not a loopback address, and serving the API there over plain HTTP would send its requests in the clear: "+
			"give --api-tls-cert and --api-tls-key (apiTLSCert, apiTLSKey) to serve HTTPS, or --api-insecure (apiInsecure) to accept plain HTTP", ErrBadRequest, c.APIAddr)
	}
	return nil
}

// Node is one core cluster member: Raft, the FSM, the write batcher, the
// blob store, the REST API for clients and the peer HTTP server on the
// Raft port.
type Node struct {
	cfg   Config
	log   *slog.Logger
	fsm   *FSM
	logs  *raftstore.Store
	snaps raft.SnapshotStore
	trans *serialTransport
	raft  *raft.Raft
	batch *Batcher
	blobs *blob.Store
	met   *metrics

	apiLn   net.Listener
	apiAddr string
	http    *http.Server
	// routes are the client API's registered patterns (tests walk them).
	routes *apiauth.Mux

	// The Raft port (peer.go): pmux splits it between Raft and peerSrv;
	// layer dials peers (through the RaftLayer hook, if set); peerTr and
	// peerClient are this node's HTTP client side to peers.
	pmux       *portMux
	layer      raft.StreamLayer
	peerSrv    *http.Server
	peerTr     *http.Transport
	peerClient *http.Client

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error

	// fatal is the error that stopped the FSM; Run returns it.
	fatal atomic.Pointer[error]

	// syncAddr is the advertised sync address; reregister wakes leaderLoop
	// to publish a new one.
	syncAddr   atomic.Pointer[string]
	reregister chan struct{}
	// uplinkMu serialises ApplyUplink per edge (edge → *sync.Mutex).
	uplinkMu sync.Map
	// health is what each edge last reported over this node's sync server.
	healthMu sync.Mutex
	health   map[string]edgeLive

	// fresh: the node started without raft state. bootstrapped: New
	// founded a cluster with it (--bootstrap). founders is what
	// bootstrapLoop last saw (bootstrap.go), for peers asking.
	fresh        bool
	bootstrapped bool
	founders     atomic.Pointer[[]Founder]
}

// New opens the node's stores, starts Raft (bootstrapping a new cluster if
// asked and there is no state), binds the API listener and starts serving
// the peer routes on the Raft port (founders and joining nodes ask before
// Run). Run serves the API.
// The result is unnamed so that a failing return does not nil the node the
// cleanup closures use.
func New(cfg Config, logger *slog.Logger) (_ *Node, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("node", cfg.ID)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: logger, closed: make(chan struct{}), reregister: make(chan struct{}, 1), health: map[string]edgeLive{}}
	n.bgCtx, n.bgCancel = context.WithCancel(context.Background())
	// On any failure below, close what was opened, in reverse order.
	undo := []func(){n.bgCancel}
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	if n.fsm, err = OpenFSM(filepath.Join(cfg.DataDir, "fsm"), logger); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.fsm.Close() })
	n.fsm.SetFatalHook(n.fsmStopped)
	if n.blobs, err = blob.Open(filepath.Join(cfg.DataDir, "blobs")); err != nil {
		return nil, err
	}
	n.logs, err = raftstore.Open(filepath.Join(cfg.DataDir, "raft"), raftstore.Options{SyncWrites: !cfg.RaftNoSync, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	undo = append(undo, func() { n.logs.Close() })

	hl := newHCLog(logger, cfg.RaftLogLevel)
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	if n.layer, err = listenRaft(cfg); err != nil {
		return nil, fmt.Errorf("raft listen on %s: %w", cfg.RaftAddr, err)
	}
	n.pmux = newPortMux(n.layer, peerPeekTimeout, logger)
	undo = append(undo, func() { n.pmux.Close() })
	n.trans = &serialTransport{raft.NewNetworkTransportWithLogger(raftStream{subListener: n.pmux.raft, dialer: n.layer}, raftMaxPool, raftTimeout, hl)}
	undo = append(undo, func() { n.trans.Close() })
	n.peerTr = n.newPeerTransport()
	n.peerClient = &http.Client{Transport: n.peerTr, Timeout: 60 * time.Second}
	undo = append(undo, n.peerTr.CloseIdleConnections)

	if n.apiLn, err = listenAPI(cfg); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.apiLn.Close() })
	n.apiAddr = advertiseAPI(n.apiLn.Addr().(*net.TCPAddr), string(n.trans.LocalAddr()))
	sa := advertiseSync(cfg.SyncAddr, string(n.trans.LocalAddr()))
	n.syncAddr.Store(&sa)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = 128
	rc.BatchApplyCh = true
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: raft config: %v", ErrBadRequest, err)
	}
	hasState, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
	if err != nil {
		return nil, fmt.Errorf("check raft state: %w", err)
	}
	// Recent entries are kept decoded in memory: the leader reads each
	// entry back to replicate it and a follower to apply it, and from the
	// store that is a Badger read and an S2 decode of up to a MiB per
	// entry, on every node, for every uplink batch of a drain.
	cached, err := raft.NewLogCache(raftLogCacheEntries, n.logs)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, cached, n.logs, n.snaps, n.trans); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	undo = append(undo, func() { n.raft.Shutdown().Error() })
	n.fresh = !hasState

	n.met = newMetrics(n)
	n.batch = NewBatcher(func(data []byte) raft.ApplyFuture {
		return n.raft.Apply(data, cfg.ApplyTimeout)
	}, BatcherConfig{MaxBatch: cfg.MaxBatch, MaxDelay: cfg.MaxBatchDelay, Observe: n.met.observeBatch})
	undo = append(undo, n.batch.Close)

	// No ReadTimeout: it would cut long uploads, and once it fires during a
	// long poll (?wait) net/http cancels the request. Bodies are bounded
	// per request instead (boundBody in api.go).
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	client := n.handler()
	front, err := n.withConsole(client)
	if err != nil {
		return nil, err
	}
	n.http = &http.Server{Handler: front, ReadHeaderTimeout: cfg.APIHeaderTimeout, IdleTimeout: cfg.APIIdleTimeout, ErrorLog: errLog}
	// The peer server has the same bounds, and serves from here on: a
	// founder asks its peers, this one included, before Run.
	n.peerSrv = &http.Server{Handler: n.peerHandler(client), ReadHeaderTimeout: cfg.APIHeaderTimeout, IdleTimeout: cfg.APIIdleTimeout,
		MaxHeaderBytes: peerMaxHeaderBytes, ErrorLog: errLog}
	n.goBG(func(context.Context) {
		if err := n.peerSrv.Serve(n.pmux.http); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("peer HTTP server on the raft port stopped", "err", err)
		}
	})
	undo = append(undo, func() { n.peerSrv.Close(); n.bg.Wait() })

	if cfg.Bootstrap && !hasState {
		if err := n.refuseExistingCluster(); err != nil {
			logger.Error("refusing to bootstrap", "err", err)
			return nil, err
		}
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.trans.LocalAddr()}}}
		if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
			return nil, fmt.Errorf("bootstrap cluster: %w", err)
		}
		n.bootstrapped = true
		logger.Info("bootstrapped a new cluster", "raft", n.trans.LocalAddr())
	} else if hasState {
		logger.Info("restarting with existing raft state", "applied", n.fsm.AppliedIndex())
	}
	return n, nil
}

// serialTransport is raft's TCP transport without its heartbeat fast
// path. With the fast path, NetworkTransport hands a leader's heartbeat
// to raft on the connection's goroutine rather than raft's main one
// (hashicorp/raft issue #695, unfixed in 1.8.0). A heartbeat with a newer
// term then makes a leader a follower of that term behind the leader
// loop's back: the loop, idle in its select, still takes the next write
// and stamps it with the new leader's term, at the index where the new
// leader wrote an entry of its own in that term. Raft matches entries by
// index and term, so the deposed leader keeps its entry and applies it,
// and its state diverges from the cluster's for good. A leader paused
// (SIGSTOP, a VM stall, a long GC) while writes queued up for it wakes
// into exactly that race (TestDeposedLeaderNoTermBumpedEntry).
//
// Without a handler, NetworkTransport queues heartbeats for raft's main
// goroutine like every other RPC, so a term change and a write are
// always handled one after the other (raft's in-memory transport has no
// fast path either). The cost: a heartbeat waits behind whatever the
// follower's main goroutine is doing, a log write usually. Its election
// timer runs on that goroutine too, so a stall alone starts no election;
// at worst a follower stalled past its heartbeat timeout asks for a
// pre-vote, which the others refuse while they still hear the leader.
type serialTransport struct {
	*raft.NetworkTransport
}

// serialTransport keeps every other capability raft looks for.
var _ interface {
	raft.Transport
	raft.WithClose
	raft.WithPreVote
} = (*serialTransport)(nil)

// SetHeartbeatHandler declines the fast path; see serialTransport.
func (*serialTransport) SetHeartbeatHandler(func(raft.RPC)) {}

// Raft's connection pool per peer and I/O timeout.
const (
	raftMaxPool = 3
	raftTimeout = 10 * time.Second
)

// listenRaft binds cfg.RaftAddr and returns the stream layer over it:
// raft's plain TCP one, or, with the cfg.RaftLayer test hook, the hook's
// wrapping of it. The mux accepts on it, Raft and peer HTTP dial through
// it. (raft's TCPStreamLayer cannot be built around a listener from
// outside the raft package, so tcpStreamLayer reproduces it.)
func listenRaft(cfg Config) (raft.StreamLayer, error) {
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, err
	}
	// The bound address is what peers are told to dial, as raft checks.
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("local bind address %s is not advertisable", ln.Addr())
	}
	var layer raft.StreamLayer = tcpStreamLayer{ln}
	if cfg.RaftLayer != nil {
		layer = cfg.RaftLayer(layer)
	}
	return layer, nil
}

// listenAPI binds the client API's listener, HTTPS when a certificate is
// configured (HTTP/1.1 only, as the body deadlines in boundBody are
// per-connection).
func listenAPI(cfg Config) (net.Listener, error) {
	var tlsConf *tls.Config
	if cfg.APITLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.APITLSCert, cfg.APITLSKey)
		if err != nil {
			return nil, fmt.Errorf("%w: load API TLS certificate (--api-tls-cert %s, --api-tls-key %s): %v", ErrBadRequest, cfg.APITLSCert, cfg.APITLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("api listen on %s: %w", cfg.APIAddr, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	return ln, nil
}

// tcpStreamLayer is raft's TCPStreamLayer: accept on the listener, dial
// peers over plain TCP.
type tcpStreamLayer struct{ net.Listener }

func (t tcpStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// ID is the node's Raft server ID.
func (n *Node) ID() string { return n.cfg.ID }

// APIAddr is the address the REST API is bound to.
func (n *Node) APIAddr() string { return n.apiAddr }

// RaftAddr is the address Raft is bound to.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// FSM gives read access to the node's replicated state.
func (n *Node) FSM() *FSM { return n.fsm }

// Raft exposes the raft instance (stats, tests).
func (n *Node) Raft() *raft.Raft { return n.raft }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Run serves the API and the node's background work until ctx ends or
// Close is called, then shuts down gracefully. When the FSM stops because
// a committed entry cannot be applied, the node shuts itself down and Run
// returns that error (an *ApplyError naming the entry and the cause).
func (n *Node) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	n.goBG(func(context.Context) {
		if err := n.http.Serve(n.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	n.goBG(n.leaderLoop)
	n.goBG(n.blobLoop)
	n.goBG(n.rolloutLoop)
	n.goBG(func(ctx context.Context) { n.fsm.RunGC(ctx, 5*time.Minute) })
	n.goBG(func(ctx context.Context) { _ = n.logs.RunGC(ctx) })
	switch {
	case n.cfg.BootstrapExpect > 0 && n.fresh:
		n.goBG(n.bootstrapLoop) // ends in joinLoop unless it founds the cluster
	case n.cfg.Join != "" && !n.bootstrapped:
		n.goBG(n.joinLoop)
	}
	if n.cfg.Bootstrap || n.cfg.BootstrapExpect > 0 {
		n.goBG(n.adminTokenLoop)
	}
	n.log.Info("core node running", "api", n.apiAddr, "tls", n.cfg.APITLSCert != "", "raft", n.RaftAddr())
	var err error
	select {
	case <-ctx.Done():
	case <-n.closed:
	case err = <-serveErr:
		err = fmt.Errorf("api server: %w", err)
	}
	closeErr := n.Close()
	return errors.Join(n.Err(), err, closeErr)
}

// Err returns the error that stopped the node's FSM, or nil.
func (n *Node) Err() error {
	if e := n.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

// fsmStopped is the FSM's fatal hook. It runs on raft's FSM goroutine,
// which raft.Shutdown waits for, so the shutdown runs on its own.
func (n *Node) fsmStopped(err error) {
	if !n.fatal.CompareAndSwap(nil, &err) {
		return
	}
	n.log.Error("shutting down: the FSM cannot apply the committed log", "err", err)
	go n.Close()
}

func (n *Node) goBG(fn func(ctx context.Context)) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		fn(n.bgCtx)
	}()
}

// Close shuts the node down in order: the client API and the peer HTTP
// server (in-flight requests get a few seconds), background loops, the
// batcher, Raft, its transport and the Raft port, then the stores Raft
// wrote to. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.closed)
		var errs []error
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var wg sync.WaitGroup
		for name, srv := range map[string]*http.Server{"API": n.http, "peer": n.peerSrv} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Shutdown(ctx); err != nil {
					// Past the grace period what remains is a long ?wait, or a
					// connection a client dialed and never used (net/http waits
					// 5 s for those): cut them. Writes are in Raft, not in the
					// handlers, so nothing is half-done; this is still a clean stop.
					n.log.Warn("closing "+name+" connections still open after the grace period", "err", err)
					srv.Close()
				}
			}()
		}
		wg.Wait()
		cancel()
		n.apiLn.Close()
		n.bgCancel()
		n.bg.Wait()
		n.peerTr.CloseIdleConnections()
		n.batch.Close()
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		// Close drops only the listener; CloseStreams also closes pooled
		// outbound connections, so peers' handlers for them see EOF and exit.
		n.trans.CloseStreams()
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft transport: %w", err))
		}
		if err := n.pmux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft port: %w", err))
		}
		if err := n.logs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft log: %w", err))
		}
		if err := n.fsm.Close(); err != nil {
			errs = append(errs, err)
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("core node stopped")
	})
	return n.closeErr
}

// raftLogCacheEntries is how many of the newest raft entries each node
// keeps in memory (raft.LogCache): more than the uplink batches of a link
// in flight and a replication round, so replicating and applying an entry
// never reads it back from the store. At up to about a MiB per entry it
// bounds the cache at tens of MiB.
const raftLogCacheEntries = 32

// Apply proposes one command through the batcher. It must run on the leader.
func (n *Node) Apply(ctx context.Context, cmd Command) Result {
	if cmd.Time.IsZero() {
		cmd.Time = time.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	return n.batch.Apply(ctx, cmd)
}

// WaitForLeader blocks until the cluster has a leader this node knows of.
func (n *Node) WaitForLeader(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return string(id), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("node %s: %w after %v", n.cfg.ID, ErrNoLeader, timeout)
		}
		select {
		case <-n.closed:
			return "", ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// leaderInfo returns the leader's registered addresses.
func (n *Node) leaderInfo() (*NodeInfo, error) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return nil, ErrNoLeader
	}
	if string(id) == n.cfg.ID {
		return &NodeInfo{ID: n.cfg.ID, APIAddr: n.apiAddr, SyncAddr: n.SyncAddr()}, nil
	}
	info, err := n.fsm.Node(string(id))
	if err != nil {
		return nil, fmt.Errorf("%w: leader %s has not registered its addresses yet", ErrNoLeader, id)
	}
	return info, nil
}

// leaderLoop registers this node's API and sync addresses whenever it
// becomes leader, so followers can redirect edges to it and GET /cluster
// shows where to reach it.
func (n *Node) leaderLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-n.raft.LeaderCh():
			if !leader {
				continue
			}
			n.log.Info("became raft leader")
			n.registerSelf(ctx)
		case <-n.reregister:
			if n.IsLeader() {
				n.registerSelf(ctx)
			}
		}
	}
}

// registerSelf records this node's API and sync addresses while it leads.
func (n *Node) registerSelf(ctx context.Context) {
	for ctx.Err() == nil && n.IsLeader() {
		r := n.Apply(ctx, Command{Op: OpRegisterNode, Node: &NodeInfo{ID: n.cfg.ID, APIAddr: n.apiAddr, SyncAddr: n.SyncAddr()}})
		if r.Err == nil {
			return
		}
		n.log.Warn("register own API and sync addresses", "err", r.Err)
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// SyncAddr is the edge sync address this node advertises ("" if none).
func (n *Node) SyncAddr() string { return *n.syncAddr.Load() }

// SetSyncAddr replaces the advertised sync address, for a sync server
// that learned its address only when it bound (port 0). A leader
// re-registers it at once; a follower when it becomes leader or joins.
func (n *Node) SetSyncAddr(addr string) {
	addr = advertiseSync(addr, n.RaftAddr())
	n.syncAddr.Store(&addr)
	select {
	case n.reregister <- struct{}{}:
	default:
	}
}

// JoinRequest is the body of POST /api/v1/cluster/join on the client API
// (an operator adding a running node) and of POST /internal/v1/join on
// the peer port (a node started with Join asking to be added).
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr,omitempty"`
	// SyncAddr is the joining node's edge sync address, registered with
	// its API address.
	SyncAddr string `json:"syncAddr,omitempty"`
	// Replace lets the join evict a member with the same ID (or the same
	// raft address) at another address. Without it such a join is refused
	// (ErrConflict): the leader cannot tell a dead member from a live one,
	// and evicting a live one leaves it serving stale reads.
	Replace bool `json:"replace,omitempty"`
}

// joinLoop asks the Join peers, in turn, on their Raft ports, to add this
// node until one succeeds; a follower forwards the request to the leader. Joining is idempotent, so a restarted node repeats it
// harmlessly (and refreshes its API address). A refusal (409: the ID is a
// member at another address) is logged as an error and retried slowly:
// it needs an operator (`edgeacs cluster join --replace`), after which
// the next attempt succeeds.
func (n *Node) joinLoop(ctx context.Context) {
	body, _ := json.Marshal(JoinRequest{ID: n.cfg.ID, RaftAddr: n.RaftAddr(), APIAddr: n.apiAddr, SyncAddr: n.SyncAddr()})
	peers := n.cfg.joinAddrs()
	if len(peers) == 0 {
		return
	}
	delay := 100 * time.Millisecond
	for attempt := 1; ctx.Err() == nil; attempt++ {
		via := peers[(attempt-1)%len(peers)]
		err := n.postJSON(ctx, peerURL(via, peerPathJoin), body)
		if err == nil {
			n.log.Info("joined cluster", "via", via)
			return
		}
		switch {
		case errors.Is(err, ErrConflict):
			n.log.Error("join cluster: refused; if the member named is gone for good, run edgeacs cluster join --replace", "via", via, "err", err)
			delay = 5 * time.Second
		case attempt == 1 || attempt%20 == 0:
			n.log.Warn("join cluster: retrying", "via", via, "attempt", attempt, "err", err)
		}
		sleepCtx(ctx, delay)
		delay = max(delay, min(delay*2, 2*time.Second))
	}
}

func (n *Node) postJSON(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return errorFor(resp.StatusCode, e.Error)
	}
	return nil
}

// Join adds a voter; on a follower it fails with ErrNotLeader (both join
// routes forward join requests to the leader first).
func (n *Node) Join(ctx context.Context, req JoinRequest) error {
	if err := checkName("server id", req.ID); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(req.RaftAddr); err != nil {
		return fmt.Errorf("%w: raft address %q: %v", ErrBadRequest, req.RaftAddr, err)
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	present := false
	var stale []raft.Server
	for _, s := range cf.Configuration().Servers {
		sameID, sameAddr := s.ID == raft.ServerID(req.ID), s.Address == raft.ServerAddress(req.RaftAddr)
		switch {
		case sameID && sameAddr:
			present = true
		case sameID || sameAddr:
			stale = append(stale, s)
		}
	}
	for _, s := range stale {
		// A node that came back at a new address, or a new node at an old
		// one, looks the same to the leader as a duplicate ID or a typo that
		// would evict a live member: only an explicit replace evicts.
		if !req.Replace {
			if s.ID == raft.ServerID(req.ID) {
				return fmt.Errorf("%w: server ID %s is already a member at %s; joining it at %s would evict that member (if it is gone for good, join with replace: edgeacs cluster join --replace)",
					ErrConflict, s.ID, s.Address, req.RaftAddr)
			}
			return fmt.Errorf("%w: raft address %s belongs to member %s; joining %s there would evict it (if it is gone for good, join with replace: edgeacs cluster join --replace)",
				ErrConflict, s.Address, s.ID, req.ID)
		}
		if s.ID == raft.ServerID(n.cfg.ID) {
			return fmt.Errorf("%w: cannot replace member %s at %s: it is the leader answering this request (remove it first, so another node leads)",
				ErrConflict, s.ID, s.Address)
		}
	}
	for _, s := range stale {
		if err := n.raft.RemoveServer(s.ID, 0, 0).Error(); err != nil {
			return fmt.Errorf("remove replaced server %s: %w", s.ID, raftError(err))
		}
		n.log.Warn("replaced member on request", "id", s.ID, "raft", s.Address, "by", req.ID, "at", req.RaftAddr)
	}
	if !present {
		if err := n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, 0).Error(); err != nil {
			return fmt.Errorf("add voter %s: %w", req.ID, raftError(err))
		}
		n.log.Info("added voter", "id", req.ID, "raft", req.RaftAddr)
	}
	if req.APIAddr != "" {
		if r := n.Apply(ctx, Command{Op: OpRegisterNode, Node: &NodeInfo{ID: req.ID, APIAddr: req.APIAddr, SyncAddr: req.SyncAddr}}); r.Err != nil {
			return fmt.Errorf("register %s: %w", req.ID, r.Err)
		}
	}
	return nil
}

// Remove takes a server out of the cluster.
func (n *Node) Remove(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		found = found || s.ID == raft.ServerID(id)
	}
	_, regErr := n.fsm.Node(id)
	registered := regErr == nil
	unregister := func() error {
		if r := n.Apply(ctx, Command{Op: OpRemoveNode, Name: id}); r.Err != nil && !errors.Is(r.Err, ErrNotFound) {
			return fmt.Errorf("unregister %s: %w", id, r.Err)
		}
		return nil
	}
	switch {
	case !found && !registered:
		return fmt.Errorf("server %s: %w", id, ErrNotFound)
	case !found:
		// Out of the configuration but still registered: an earlier remove
		// whose last step failed. Finish it, so its retry succeeds.
		return unregister()
	case id == n.cfg.ID:
		// Removing the leader: once the change commits, raft steps down
		// (and shuts down), and this node can apply nothing more. So the
		// registration goes first; the answer is then the removal's own.
		if err := unregister(); err != nil {
			return err
		}
		if err := n.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
			select { // still a member and perhaps still leading: register again
			case n.reregister <- struct{}{}:
			default:
			}
			return fmt.Errorf("remove server %s (the leader): %w", id, raftError(err))
		}
		n.log.Warn("removed this node (the leader) from the cluster: raft stops, and the node serves no reads", "id", id)
		return nil
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, raftError(err))
	}
	if err := unregister(); err != nil {
		return err
	}
	n.log.Info("removed server", "id", id)
	return nil
}

// ClusterServer is one member in GET /api/v1/cluster.
type ClusterServer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	APIAddr  string `json:"apiAddr,omitempty"`
	SyncAddr string `json:"syncAddr,omitempty"`
	Suffrage string `json:"suffrage"`
	// State is the member's Raft state as the member itself reports it
	// when asked (leader, follower, candidate, shutdown), or
	// StateUnreachable when it did not answer within clusterProbeTimeout:
	// the configuration alone would list a stopped leader with the role it
	// last had. Empty from Status, which asks no one.
	State string `json:"state,omitempty"`
	// Problem says why the member counts as unreachable.
	Problem string `json:"problem,omitempty"`
}

// StateUnreachable is ClusterServer.State of a member that did not answer.
const StateUnreachable = "unreachable"

// clusterProbeTimeout bounds the question ProbeStatus asks each member: a
// live member on a LAN answers in milliseconds, and an operator (or a
// script polling the status with its own short timeout while a member is
// paused or cut off) waits no longer than this for the status of a
// cluster with a member down.
const clusterProbeTimeout = 750 * time.Millisecond

// ClusterStatus is the body of GET /api/v1/cluster.
type ClusterStatus struct {
	Leader  string          `json:"leader"`
	Servers []ClusterServer `json:"servers"`
}

// Status reports the leader and members as this node sees them.
func (n *Node) Status() (ClusterStatus, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return ClusterStatus{}, fmt.Errorf("read configuration: %w", err)
	}
	_, leader := n.raft.LeaderWithID()
	st := ClusterStatus{Leader: string(leader), Servers: []ClusterServer{}}
	for _, s := range cf.Configuration().Servers {
		cs := ClusterServer{ID: string(s.ID), Address: string(s.Address), Suffrage: strings.ToLower(s.Suffrage.String())}
		if info, err := n.fsm.Node(string(s.ID)); err == nil {
			cs.APIAddr, cs.SyncAddr = info.APIAddr, info.SyncAddr
		}
		st.Servers = append(st.Servers, cs)
	}
	return st, nil
}

// ProbeStatus is Status with each member's State filled in: this node's
// from its own raft, every other member's from its answer to GET
// /internal/v1/peer on its Raft port, asked all at once, each within
// clusterProbeTimeout (or ctx's deadline, if sooner).
func (n *Node) ProbeStatus(ctx context.Context) (ClusterStatus, error) {
	st, err := n.Status()
	if err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(ctx, clusterProbeTimeout)
	defer cancel()
	var addrs []string
	var idx []int
	for i, s := range st.Servers {
		if s.ID == n.cfg.ID {
			st.Servers[i].State = strings.ToLower(n.raft.State().String())
			continue
		}
		addrs = append(addrs, s.Address)
		idx = append(idx, i)
	}
	for j, a := range n.askPeers(ctx, addrs) {
		s := &st.Servers[idx[j]]
		switch {
		case a.err != nil:
			s.State, s.Problem = StateUnreachable, a.err.Error()
		case a.info.ID != s.ID:
			// Another node now holds the address: the member itself is gone.
			s.State, s.Problem = StateUnreachable, fmt.Sprintf("%s answers as node %q", s.Address, a.info.ID)
		case a.info.State != "":
			s.State = a.info.State
		case a.info.Leader == a.info.ID: // a node from before PeerInfo.State
			s.State = "leader"
		default:
			s.State = "follower"
		}
	}
	return st, nil
}

// consistent makes the following local read linearizable: a barrier entry
// is committed through the log in this leader's current term, and raft
// resolves it only after everything before it is applied. VerifyLeader
// alone is not enough: a new leader's commit index can lag behind writes
// the old leader acknowledged until it commits an entry of its own term.
func (n *Node) consistent(ctx context.Context) error {
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return raftError(err)
	}
	return nil
}

// advertiseAPI is the API address registered for this node: the bound one,
// unless it is a wildcard (0.0.0.0, ::), in which case the raft address's
// host (which raft already requires to be routable) with the API port.
func advertiseAPI(bound *net.TCPAddr, raftAddr string) string {
	if !bound.IP.IsUnspecified() {
		return bound.String()
	}
	host, _, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return bound.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(bound.Port))
}

// advertiseSync is the sync address edges are redirected to: as
// configured, unless its host is a wildcard (or empty), in which case the
// raft address's host with the sync port.
func advertiseSync(addr, raftAddr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	rhost, _, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(rhost, port)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// newHCLog routes raft's hclog output into slog, dropping lines below level.
func newHCLog(l *slog.Logger, level string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.LevelFromString(level),
		Output:      hclogWriter{l},
		DisableTime: true,
	})
}

type hclogWriter struct{ l *slog.Logger }

// Write turns one formatted hclog line ("[WARN]  raft: msg: k=v") into a
// slog record at the matching level.
func (w hclogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[ERROR]"):
		lvl = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		lvl = slog.LevelWarn
	case strings.HasPrefix(line, "[DEBUG]"), strings.HasPrefix(line, "[TRACE]"):
		lvl = slog.LevelDebug
	}
	if i := strings.Index(line, "]"); i >= 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	w.l.Log(context.Background(), lvl, line, "component", "raft")
	return len(p), nil
}
