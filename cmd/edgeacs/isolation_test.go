package main

// Issue 9's "Leader isolated from its followers while an edge stays
// connected to it: no task reaches two edges", in one process: three core
// nodes wired as runCoreWithSync wires them, two edges wired as `edgeacs
// edge` wires them, simulated CPEs at both. The leader's Raft links are
// cut (core.Config.RaftLayer) while its QUIC links to both edges, its API
// and everything else stay up, so the only thing it loses is its quorum.
// Edge A reaches the cores through UDP relays, so the test can leave it on
// the isolated leader's side for a while ({L, A} | {F1, F2, B}): the new
// leader then cannot hear A confirm that it dropped the tasks of a device
// that moved to B, which is when a task could reach two edges.
// test/e2e's TestSyncChaosLeaderPaused approximates this with SIGSTOP,
// which also freezes the leader's sync server and so never shows what a
// live, deposed leader does with the edges still talking to it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/edge"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/leakcheck"
	"github.com/edgeacs/edgeacs/internal/testauth"
	"github.com/edgeacs/edgeacs/internal/udprelay"
	"github.com/edgeacs/edgeacs/sim"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// ---- a Raft network the test can partition ---------------------------------

var errRaftCut = errors.New("raft link cut by the test's partition")

// raftNet is the loopback network between the core nodes' Raft
// transports. Every node's stream layer is wrapped by wrap, and a
// partition is enforced on the dialing side only: Raft's NetworkTransport
// sends every RPC (AppendEntries, RequestVote, InstallSnapshot,
// TimeoutNow) on a connection the sender dialed and reads the answer on
// the same one, so refusing dials between two nodes, in both directions,
// and closing the connections either of them dialed to the other cuts
// every exchange between them. The accepting side cannot tell which peer
// a connection comes from (only an ephemeral port) and need not.
type raftNet struct {
	mu    sync.Mutex
	cut   map[[2]string]bool // unordered pairs of raft addresses
	conns map[*raftConn]struct{}
	// refused counts dials the partition refused: evidence that Raft
	// really tried to reach across it.
	refused atomic.Int64
}

func newRaftNet() *raftNet {
	return &raftNet{cut: map[[2]string]bool{}, conns: map[*raftConn]struct{}{}}
}

func raftPair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// wrap is the core.Config.RaftLayer hook.
func (rn *raftNet) wrap(inner raft.StreamLayer) raft.StreamLayer {
	return &cutLayer{StreamLayer: inner, rn: rn, self: inner.Addr().String()}
}

// partition cuts a from b and closes the connections between them; it
// returns how many it closed.
func (rn *raftNet) partition(a, b string) int {
	p := raftPair(a, b)
	rn.mu.Lock()
	rn.cut[p] = true
	var victims []*raftConn
	for c := range rn.conns {
		if raftPair(c.from, c.to) == p {
			victims = append(victims, c)
			delete(rn.conns, c)
		}
	}
	rn.mu.Unlock()
	for _, c := range victims {
		c.Conn.Close()
	}
	return len(victims)
}

// heal lifts every cut.
func (rn *raftNet) heal() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	clear(rn.cut)
}

type cutLayer struct {
	raft.StreamLayer
	rn   *raftNet
	self string
}

func (l *cutLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	to := string(addr)
	p := raftPair(l.self, to)
	l.rn.mu.Lock()
	cut := l.rn.cut[p]
	l.rn.mu.Unlock()
	if cut {
		l.rn.refused.Add(1)
		return nil, fmt.Errorf("dial %s from %s: %w", to, l.self, errRaftCut)
	}
	c, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	rc := &raftConn{Conn: c, rn: l.rn, from: l.self, to: to}
	l.rn.mu.Lock()
	// A partition made while this dial was under way must not miss it.
	if l.rn.cut[p] {
		l.rn.mu.Unlock()
		c.Close()
		l.rn.refused.Add(1)
		return nil, fmt.Errorf("dial %s from %s: %w", to, l.self, errRaftCut)
	}
	l.rn.conns[rc] = struct{}{}
	l.rn.mu.Unlock()
	return rc, nil
}

// raftConn is a dialed Raft connection the network can close.
type raftConn struct {
	net.Conn
	rn       *raftNet
	from, to string
}

func (c *raftConn) Close() error {
	c.rn.mu.Lock()
	delete(c.rn.conns, c)
	c.rn.mu.Unlock()
	return c.Conn.Close()
}

// newIsoRelay is edge A's network path to one core's sync address
// (udprelay). A reaches every core through one, so the test can put A on
// the isolated leader's side of the partition; a core's redirect names the
// leader's own address, which A learns only from a core it reaches.
func newIsoRelay(t *testing.T, target string) *udprelay.Relay {
	t.Helper()
	r, err := udprelay.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// ---- logs ------------------------------------------------------------------------

// isoLog keeps one component's log in memory: the test reads what the
// leader's sync server said when it closed the edges' sessions, and a
// failed run prints the tails.
type isoLog struct {
	name string
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (l *isoLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *isoLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

func (l *isoLog) since(off int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()[off:]
}

func (l *isoLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

var isoReasonRE = regexp.MustCompile(`reason=("(?:[^"\\]|\\.)*"|\S+)`)

// isoDisconnect is a sync server's log of closing an edge's session.
type isoDisconnect struct {
	at     time.Time
	reason string
}

// isoDisconnects returns, by edge, the sessions the sync server logged
// closing in the log text.
func isoDisconnects(text string) map[string][]isoDisconnect {
	out := map[string][]isoDisconnect{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, `msg="edge disconnected"`) {
			continue
		}
		i := strings.Index(line, " edge=")
		if i < 0 {
			continue
		}
		name, _, _ := strings.Cut(line[i+len(" edge="):], " ")
		reason := ""
		if m := isoReasonRE.FindStringSubmatch(line); m != nil {
			reason = m[1]
			if r, err := strconv.Unquote(reason); err == nil {
				reason = r
			}
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, _ := time.Parse(time.RFC3339Nano, ts)
		out[name] = append(out[name], isoDisconnect{at: at, reason: reason})
	}
	return out
}

// ---- core nodes and edges ---------------------------------------------------------

type isoCore struct {
	id   string
	node *core.Node
	sync string
	log  *isoLog
	stop func()
}

// startIsoCore runs a core node and its sync server as runCoreWithSync
// does, keeping the *core.Node (for raft state and the FSM) and the bound
// sync address.
func startIsoCore(t *testing.T, cfg core.Config) *isoCore {
	t.Helper()
	lg := &isoLog{name: "core " + cfg.ID}
	log := lg.logger()
	var np atomic.Pointer[core.Node]
	tlsConf, err := fleetsync.ServerTLS(cfg.CADir, cfg.ID, func(name string) bool {
		n := np.Load()
		return n != nil && n.Revoked(name)
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := core.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	np.Store(n)
	srv, err := fleetsync.NewServer(fleetsync.ServerConfig{Addr: cfg.SyncAddr, TLS: tlsConf, Core: n, Log: log})
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	n.SetSyncAddr(srv.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	srvDone, runDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(srvDone)
		if err := srv.Serve(ctx); err != nil {
			t.Logf("core %s: sync server: %v", cfg.ID, err)
		}
	}()
	go func() {
		defer close(runDone)
		if err := n.Run(ctx); err != nil {
			t.Logf("core %s: run: %v", cfg.ID, err)
		}
		cancel()
	}()
	c := &isoCore{id: cfg.ID, node: n, sync: srv.Addr(), log: lg}
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			<-runDone
			<-srvDone
		})
	}
	t.Cleanup(c.stop)
	return c
}

// leaderSeen is the leader's ID as c sees it ("" for none).
func (c *isoCore) leaderSeen() string {
	_, id := c.node.Raft().LeaderWithID()
	return string(id)
}

type isoEdge struct {
	id   string
	node *edge.Node
	link *fleetsync.Client
	api  string // local API, host:port
	acs  string // CWMP URL
	log  *isoLog
	// coreAt names the core behind each sync address the edge may dial:
	// the cores' own, and its relays.
	coreAt map[string]string
}

// startIsoEdge runs an edge (not standalone) wired as `edgeacs edge`
// wires it: edgeSyncTLS, newEdgeUplink, SetUplink. cores are the sync
// addresses it is given (--core); coreAt names the core behind each
// address it may dial.
func startIsoEdge(t *testing.T, id, caDir string, cores []string, coreAt map[string]string) *isoEdge {
	t.Helper()
	lg := &isoLog{name: "edge " + id}
	log := lg.logger()
	cfg := edge.Config{
		ID: id, DataDir: t.TempDir(),
		CWMPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0",
		CPEAuth: edge.AuthDigest, Username: isoUser, Password: isoPass,
		Core: cores, CADir: caDir,
		ShutdownTimeout: 2 * time.Second,
	}
	tlsConf, err := edgeSyncTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	node, err := edge.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	up, err := newEdgeUplink(cfg, tlsConf, node, log)
	if err != nil {
		t.Fatal(err)
	}
	eu, ok := up.(edgeUplink)
	if !ok {
		t.Fatalf("newEdgeUplink returned %T", up)
	}
	node.SetUplink(up)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	select {
	case <-node.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("edge %s: run: %v", id, err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("edge %s not ready after 15s", id)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Logf("edge %s: %v", id, err)
			}
		})
	})
	return &isoEdge{id: id, node: node, link: eu.Client, api: node.Addrs().API, acs: "http://" + node.Addrs().CWMP + "/", log: lg, coreAt: coreAt}
}

// linkedTo reports whether the edge's sync link is up to core c.
func (e *isoEdge) linkedTo(c *isoCore) bool {
	st := e.link.Status()
	return st.Connected && e.coreAt[st.Core] == c.id
}

const (
	isoUser = "cpe"
	isoPass = "cpe-secret"
)

func isoFleet(t *testing.T, acs string, n int, seed int64, inform time.Duration) *sim.Fleet {
	t.Helper()
	return isoFleetLogged(t, acs, n, seed, inform, slog.New(slog.DiscardHandler))
}

// isoFleetLogged is isoFleet with the simulator's log (its failed
// sessions are logged at debug, with their cause) going to log.
func isoFleetLogged(t *testing.T, acs string, n int, seed int64, inform time.Duration, log *slog.Logger) *sim.Fleet {
	t.Helper()
	f, err := sim.New(sim.Config{
		ACSURL: acs, Count: n, Model: sim.ModelMixed, Seed: seed, InformInterval: inform,
		Username: isoUser, Password: isoPass, PoolConnections: true, TimeScale: 0.01,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func isoStartFleet(t *testing.T, f *sim.Fleet) {
	t.Helper()
	if err := f.Start(context.Background()); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// isoObjects is a table of d's data model that allows AddObject and the
// parameter counting its instances: an addObject task that ran adds
// exactly one, so the device itself counts executions.
func isoObjects(d *sim.Device) (object, count string) {
	if d.Root() == "Device." {
		return "Device.PPP.Interface.", "Device.PPP.InterfaceNumberOfEntries"
	}
	wcd := "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1."
	return wcd + "WANIPConnection.", wcd + "WANIPConnectionNumberOfEntries"
}

func isoInstances(t *testing.T, d *sim.Device) int {
	t.Helper()
	_, count := isoObjects(d)
	v, ok := d.Get(count)
	if !ok {
		t.Fatalf("device %s has no %s", d.ID(), count)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("device %s: %s = %q", d.ID(), count, v)
	}
	return n
}

func isoAddObject(d *sim.Device) string {
	obj, _ := isoObjects(d)
	return fmt.Sprintf(`{"name": "addObject", "objectName": %q}`, obj)
}

func isoWait(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	return time.Since(start)
}

// isoCA writes a CA with certificates for three core nodes (n1, n2, n3)
// and two edges (popA, popB) into a temporary directory.
func isoCA(t *testing.T) string {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "ca")
	if err := fleetsync.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if err := fleetsync.IssueCert(caDir, id, fleetsync.RoleCore, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"popA", "popB"} {
		if err := fleetsync.IssueCert(caDir, id, fleetsync.RoleEdge, ""); err != nil {
			t.Fatal(err)
		}
	}
	return caDir
}

// startIsoCores starts a three-voter cluster in this process with loopback
// timings: n1 founds it, n2 and n3 join through it. tweak, if not nil,
// adjusts each node's configuration before it starts; started, if not nil,
// sees each node as soon as it runs (to keep its log for a failure). It
// returns once the three voters have registered their addresses and hold
// the test token.
func startIsoCores(t *testing.T, caDir string, tweak func(*core.Config), started func(*isoCore)) []*isoCore {
	t.Helper()
	var cores []*isoCore
	for i, id := range []string{"n1", "n2", "n3"} {
		cfg := core.DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.CADir = id, t.TempDir(), caDir
		cfg.RaftAddr, cfg.APIAddr, cfg.SyncAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
		cfg.RaftNoSync, cfg.RaftLogLevel = true, "warn"
		if tweak != nil {
			tweak(&cfg)
		}
		if i == 0 {
			cfg.Bootstrap = true
			stageSecret(t, cfg.DataDir)
		} else {
			cfg.Join = cores[0].node.RaftAddr()
		}
		c := startIsoCore(t, cfg)
		cores = append(cores, c)
		if started != nil {
			started(c)
		}
		if i == 0 {
			if _, err := c.node.WaitForLeader(15 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	isoWait(t, "three voters with registered addresses", 30*time.Second, func() bool {
		l := isoLeader(cores)
		if l == nil {
			return false
		}
		st, err := l.node.Status()
		if err != nil || len(st.Servers) != 3 {
			return false
		}
		for _, srv := range st.Servers {
			if srv.APIAddr == "" || srv.SyncAddr == "" {
				return false
			}
		}
		return true
	})
	for _, c := range cores {
		waitSecret(t, c.node)
	}
	return cores
}

// isoLeader is the node of cores that believes it leads, or nil.
func isoLeader(cores []*isoCore) *isoCore {
	for _, c := range cores {
		if c.node.IsLeader() {
			return c
		}
	}
	return nil
}

// isoTask is a task as the core's and the edge's APIs show it.
type isoTask struct {
	ID     string `json:"_id"`
	Device string `json:"device"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Edge   string `json:"edge"`
}

// isoPostTask creates a task with an Idempotency-Key at the core API at api,
// with a connection request if wake, waiting up to wait for it to end.
func isoPostTask(client *http.Client, api, device, body, key string, wake bool, wait time.Duration) (isoTask, int, error) {
	var task isoTask
	u := "http://" + api + "/api/v1/devices/" + url.PathEscape(device) + "/tasks"
	q := url.Values{}
	if wake {
		q.Set("connection_request", "")
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return task, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return task, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return task, resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return task, resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, &task); err != nil {
		return task, resp.StatusCode, fmt.Errorf("decode %q: %w", raw, err)
	}
	return task, resp.StatusCode, nil
}

// ---- the task writer -------------------------------------------------------------

// isoAck is an acknowledged task: sent is when the request that was
// acknowledged left, replayed that it answered with a task an earlier
// attempt of the key had created.
type isoAck struct {
	key, id, device string
	sent            time.Time
	replayed        bool
}

// isoWriter creates addObject tasks (with a connection request) through
// the followers' APIs, one logical task per Idempotency-Key, retrying the
// same key on connection errors, timeouts and 5xx until a node
// acknowledges it; a 4xx fails the test.
type isoWriter struct {
	client *http.Client
	target func(attempt int) string // the API address for an attempt
	devs   []*sim.Device

	mu      sync.Mutex
	acked   []isoAck
	retries int
	lastErr string
	failed  error

	stop    chan struct{}
	abandon atomic.Bool // the test failed: stop even mid-key
	wg      sync.WaitGroup
}

func startIsoWriter(t *testing.T, client *http.Client, target func(int) string, devs []*sim.Device, workers int) *isoWriter {
	w := &isoWriter{client: client, target: target, devs: devs, stop: make(chan struct{})}
	for k := range workers {
		w.wg.Add(1)
		go w.run(k, workers)
	}
	t.Cleanup(func() {
		w.abandon.Store(t.Failed())
		w.halt()
	})
	return w
}

func (w *isoWriter) run(worker, workers int) {
	defer w.wg.Done()
	attempt := worker
	for i := worker; ; i += workers {
		select {
		case <-w.stop:
			return
		default:
		}
		d := w.devs[i%len(w.devs)]
		key := fmt.Sprintf("iso-%05d", i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			attempt++
			api := w.target(attempt)
			sent := time.Now()
			task, code, err := isoPostTask(w.client, api, d.ID(), isoAddObject(d), key, true, 0)
			if err == nil && task.ID != "" {
				w.mu.Lock()
				w.acked = append(w.acked, isoAck{key: key, id: task.ID, device: d.ID(), sent: sent, replayed: code == http.StatusOK})
				w.mu.Unlock()
				break
			}
			w.mu.Lock()
			w.retries++
			w.lastErr = fmt.Sprintf("%s via %s: %d %v", key, api, code, err)
			if code/100 == 4 {
				w.failed = fmt.Errorf("task refused: %s", w.lastErr)
			} else if time.Now().After(deadline) {
				w.failed = fmt.Errorf("task %s not acknowledged in 30s; last: %s", key, w.lastErr)
			}
			failed := w.failed
			w.mu.Unlock()
			if failed != nil || w.abandon.Load() {
				return
			}
			// halt does not interrupt a key: an attempt may have created
			// its task unheard, and every task at the core must be one
			// the test knows of.
			time.Sleep(20 * time.Millisecond) // retry pacing
		}
		time.Sleep(40 * time.Millisecond) // a steady stream, not a flood
	}
}

// halt stops new keys; each worker finishes the key it holds.
func (w *isoWriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *isoWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *isoWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *isoWriter) since(n int) []isoAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked[n:])
}

// waitAcks waits until n tasks are acknowledged in all.
func (w *isoWriter) waitAcks(t *testing.T, what string, n int, d time.Duration) {
	t.Helper()
	isoWait(t, fmt.Sprintf("%d tasks acknowledged %s", n, what), d, func() bool {
		if err := w.err(); err != nil {
			t.Fatalf("task writer: %v", err)
		}
		return w.count() >= n
	})
}

// ---- the edges' task lists, watched ------------------------------------------------

// isoSighting is one answer of an edge's local API listing a task.
type isoSighting struct {
	edge   string
	round  int
	status string
}

// isoWatch polls both edges' local APIs (GET /api/v1/devices/{id}/tasks
// for every device) from one goroutine, one request at a time, and records
// every task each answer lists. Requests never overlap, so the recorded
// sightings are in real-time order: a task listed by one edge after
// another edge listed it was, at some instant, at the second edge and
// later at the first. A task may move once (A drops it, then B gets it):
// its sightings must read A…A B…B, never an A after a B.
type isoWatch struct {
	client *http.Client
	edges  []*isoEdge
	devs   []string

	mu       sync.Mutex
	seen     map[string][]isoSighting
	rounds   int
	failures int
	lastErr  string

	stop chan struct{}
	done chan struct{}
}

func startIsoWatch(t *testing.T, client *http.Client, edges []*isoEdge, devs []string) *isoWatch {
	w := &isoWatch{client: client, edges: edges, devs: devs, seen: map[string][]isoSighting{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *isoWatch) run() {
	defer close(w.done)
	for round := 0; ; round++ {
		for i, dev := range w.devs {
			for k := range w.edges {
				// Alternate which edge is asked first, so neither is
				// always the later look.
				e := w.edges[(k+i+round)%len(w.edges)]
				w.look(e, dev, round)
			}
		}
		w.mu.Lock()
		w.rounds++
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-time.After(10 * time.Millisecond): // pacing, to leave the CPUs to the system
		}
	}
}

func (w *isoWatch) look(e *isoEdge, dev string, round int) {
	resp, err := w.client.Get("http://" + e.api + "/api/v1/devices/" + url.PathEscape(dev) + "/tasks")
	if err != nil {
		w.fail(fmt.Sprintf("%s %s: %v", e.id, dev, err))
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		w.fail(fmt.Sprintf("%s %s: %v", e.id, dev, err))
		return
	case resp.StatusCode == http.StatusNotFound:
		return // the device never informed at this edge
	case resp.StatusCode != http.StatusOK:
		w.fail(fmt.Sprintf("%s %s: HTTP %d: %s", e.id, dev, resp.StatusCode, raw))
		return
	}
	var ts []isoTask
	if err := json.Unmarshal(raw, &ts); err != nil {
		w.fail(fmt.Sprintf("%s %s: %v", e.id, dev, err))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, task := range ts {
		w.seen[task.ID] = append(w.seen[task.ID], isoSighting{edge: e.id, round: round, status: task.Status})
	}
}

func (w *isoWatch) fail(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures++
	w.lastErr = msg
}

func (w *isoWatch) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// twoEdges lists the tasks whose sightings show them on two edges at once
// (an edge listing a task after another edge had listed it, and then
// again at the first), or that moved other than from edge from to edge
// to; moved returns the tasks seen on both edges in a legitimate order.
func (w *isoWatch) twoEdges(from, to string) (bad []string, moved map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	moved = map[string]bool{}
	for id, ss := range w.seen {
		// Collapse runs: A A A B B → [A B].
		var order []string
		for _, s := range ss {
			if len(order) == 0 || order[len(order)-1] != s.edge {
				order = append(order, s.edge)
			}
		}
		switch {
		case len(order) == 1:
		case len(order) == 2 && order[0] == from && order[1] == to:
			moved[id] = true
		default:
			bad = append(bad, fmt.Sprintf("task %s listed by edges in the order %v (%d sightings)", id, order, len(ss)))
		}
	}
	slices.Sort(bad)
	return bad, moved
}

// ---- the system ----------------------------------------------------------------------

// isoSystem is three core nodes over a partitionable Raft network, edges
// A and B, and simulated CPEs: three at each edge, and the mover, alone
// in its fleet at A so that it can leave A by itself.
type isoSystem struct {
	t      *testing.T
	rn     *raftNet
	cores  []*isoCore
	relays map[string]*udprelay.Relay // core ID → A's path to its sync address
	a, b   *isoEdge
	logs   []*isoLog
	client *http.Client

	devs    []*sim.Device // the stationary devices
	mover   *sim.Fleet
	md      *sim.Device       // the mover at A
	ids     []string          // every device's ID
	homes   map[string]string // device → the edge it is (finally) homed at
	initial map[string]int    // device → addObject table instances at the start
}

const isoMoverSeed = 73

func startIsoSystem(t *testing.T) *isoSystem {
	t.Helper()
	s := &isoSystem{t: t, rn: newRaftNet(), relays: map[string]*udprelay.Relay{}, homes: map[string]string{}, initial: map[string]int{}}
	// Registered before the parts, so it runs after they stopped.
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("EDGEACS_TEST_LOGS") == "" {
			return
		}
		for _, l := range s.logs {
			text := l.since(0)
			if len(text) > 8000 {
				text = "…" + text[len(text)-8000:]
			}
			t.Logf("---- %s log ----\n%s", l.name, text)
		}
	})

	caDir := isoCA(t)
	// Raft runs over rn.
	s.cores = startIsoCores(t, caDir, func(cfg *core.Config) { cfg.RaftLayer = s.rn.wrap },
		func(c *isoCore) { s.logs = append(s.logs, c.log) })

	// Each edge is given every core's sync address: B the cores' own, A
	// its relays to them, so that the test can leave A on the isolated
	// leader's side. A core's redirect names the leader's own address.
	coreAt := map[string]string{}
	var syncAddrs, relayAddrs []string
	for _, c := range s.cores {
		r := newIsoRelay(t, c.sync)
		s.relays[c.id] = r
		coreAt[c.sync], coreAt[r.Addr()] = c.id, c.id
		syncAddrs, relayAddrs = append(syncAddrs, c.sync), append(relayAddrs, r.Addr())
	}
	s.a = startIsoEdge(t, "popA", caDir, relayAddrs, coreAt)
	s.b = startIsoEdge(t, "popB", caDir, syncAddrs, coreAt)
	s.logs = append(s.logs, s.a.log, s.b.log)
	s.client = &http.Client{Timeout: 2 * time.Second, Transport: testauth.Transport{Base: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}, Token: func(*http.Request) string { return testSecret }}}
	t.Cleanup(s.client.CloseIdleConnections)

	simLog := &isoLog{name: "simulators"}
	s.logs = append(s.logs, simLog)
	simLogger := slog.New(slog.NewTextHandler(simLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fa := isoFleetLogged(t, s.a.acs, 3, 71, 0, simLogger.With("fleet", "A"))
	fb := isoFleetLogged(t, s.b.acs, 3, 72, 0, simLogger.With("fleet", "B"))
	s.mover = isoFleetLogged(t, s.a.acs, 1, isoMoverSeed, 0, simLogger.With("fleet", "mover"))
	for i := range 3 {
		s.devs = append(s.devs, fa.Device(i), fb.Device(i))
		s.homes[fa.Device(i).ID()], s.homes[fb.Device(i).ID()] = s.a.id, s.b.id
	}
	s.md = s.mover.Device(0)
	s.homes[s.md.ID()] = s.a.id
	if len(s.homes) != 7 {
		t.Fatalf("simulated devices share IDs: %v", s.homes)
	}
	s.ids = slices.Collect(maps.Keys(s.homes))
	slices.Sort(s.ids)
	for _, d := range append(slices.Clone(s.devs), s.md) {
		s.initial[d.ID()] = isoInstances(t, d)
	}
	for _, f := range []*sim.Fleet{fa, fb, s.mover} {
		isoStartFleet(t, f)
	}
	// Registered at the core, homed at their edges, and their first
	// session over (the edge has set connection-request credentials), so
	// a task can wake them.
	edgeOf := map[string]*isoEdge{s.a.id: s.a, s.b.id: s.b}
	// missing says what the last look found wanting, for the timeout;
	// missingAt is the device and edge it names, if any.
	var missing, missingID, missingAt string
	defer func() {
		if !t.Failed() || missing == "" {
			return
		}
		t.Logf("at the timeout: %s", missing)
		if missingID == "" {
			return
		}
		c := edgeOf[missingAt].node.Cache()
		d, err := c.Device(missingID)
		t.Logf("its record at %s: %+v (%v)", missingAt, d, err)
		faults, err := c.Faults(missingID)
		t.Logf("its faults: %+v (%v)", faults, err)
		edgeSeq, sharedSeq, err := c.DownlinkAcked()
		presets, perr := c.Presets()
		var names []string
		for _, p := range presets {
			names = append(names, p.Name)
		}
		t.Logf("the edge's downlink at %d/%d (%v), its presets %q (%v)", edgeSeq, sharedSeq, err, names, perr)
	}()
	isoWait(t, "devices homed at the core and provisioned at their edges", 60*time.Second, func() bool {
		l := s.leader()
		if l == nil {
			missing, missingID = "no core node is the leader", ""
			return false
		}
		for _, id := range s.ids {
			home := s.homes[id]
			d, err := edgeOf[home].node.Cache().Device(id)
			if err != nil || d.CRPassword == "" {
				missing = fmt.Sprintf("device %s at edge %s: %v (connection-request password set: %v)", id, home, err, err == nil && d.CRPassword != "")
				missingID, missingAt = id, home
				return false
			}
			cd, err := l.node.FSM().Device(id, false)
			if err != nil {
				missing, missingID = fmt.Sprintf("device %s at the leader %s: %v", id, l.id, err), ""
				return false
			}
			if cd.Edge != home {
				missing, missingID = fmt.Sprintf("device %s at the leader %s: homed at %q, want %q", id, l.id, cd.Edge, home), ""
				return false
			}
		}
		missing, missingID = "", ""
		return true
	})
	return s
}

func (s *isoSystem) leader() *isoCore { return isoLeader(s.cores) }

func (s *isoSystem) byID(id string) *isoCore {
	for _, c := range s.cores {
		if c.id == id {
			return c
		}
	}
	return nil
}

// steady waits for one leader with both edges linked to it and returns
// it and its followers.
func (s *isoSystem) steady() (*isoCore, []*isoCore) {
	s.t.Helper()
	var l *isoCore
	isoWait(s.t, "both edges linked to the leader", 30*time.Second, func() bool {
		l = s.leader()
		return l != nil && s.a.linkedTo(l) && s.b.linkedTo(l)
	})
	var fs []*isoCore
	for _, c := range s.cores {
		if c != l {
			fs = append(fs, c)
		}
	}
	return l, fs
}

// holdAtA creates two addObject tasks for the mover without a connection
// request, through api, and waits until A holds them: the mover's
// periodic inform is minutes away, so they stay pending there.
func (s *isoSystem) holdAtA(api string) []isoAck {
	s.t.Helper()
	var held []isoAck
	for i := range 2 {
		key := fmt.Sprintf("held-%d", i)
		var task isoTask
		isoWait(s.t, "held task "+key+" acknowledged", 20*time.Second, func() bool {
			var code int
			var err error
			task, code, err = isoPostTask(s.client, api, s.md.ID(), isoAddObject(s.md), key, false, 0)
			if code/100 == 4 {
				s.t.Fatalf("held task %s: %v", key, err)
			}
			return err == nil && task.ID != ""
		})
		if task.Edge != s.a.id {
			s.t.Fatalf("a task for the mover at A went to %q: %+v", task.Edge, task)
		}
		held = append(held, isoAck{key: key, id: task.ID, device: s.md.ID()})
	}
	isoWait(s.t, "the mover's two tasks pending at A", 20*time.Second, func() bool {
		ts, err := s.a.node.Cache().DeviceTasks(s.md.ID())
		if err != nil {
			return false
		}
		n := 0
		for _, task := range ts {
			if isoIsHeld(held, task.ID) && task.Status == fleet.StatusPending {
				n++
			}
		}
		return n == len(held)
	})
	return held
}

func isoIsHeld(held []isoAck, id string) bool {
	return slices.ContainsFunc(held, func(h isoAck) bool { return h.id == id })
}

// moveToB closes the mover's fleet at A and starts the same seed and index
// (the same device ID, a fresh data model) at B, informing every second.
func (s *isoSystem) moveToB() *sim.Device {
	s.t.Helper()
	s.mover.Close()
	f := isoFleet(s.t, s.b.acs, 1, isoMoverSeed, time.Second)
	d := f.Device(0)
	if d.ID() != s.md.ID() {
		s.t.Fatalf("the mover at B is %s, want %s", d.ID(), s.md.ID())
	}
	if got := isoInstances(s.t, d); got != s.initial[d.ID()] {
		s.t.Fatalf("the mover's fresh data model at B has %d instances, at A it began with %d", got, s.initial[d.ID()])
	}
	isoStartFleet(s.t, f)
	s.homes[d.ID()] = s.b.id
	return d
}

// ---- the test ------------------------------------------------------------------------

// TestLeaderIsolatedFromFollowersNoDoubleDispatch: with both edges linked
// to the leader L, L's Raft links to both followers are cut while tasks
// stream in through the followers' APIs and a device with two tasks held
// at edge A moves to edge B. A is left on L's side of the partition for a
// while (it can reach only L), so the new leader cannot hear A confirm it
// dropped the held tasks. L, alive and linked to both edges over QUIC,
// must stop serving them once it loses its quorum; B must find the new
// leader, and run a new task for the mover but not the held ones until A
// is back and confirms the drop. No task may be at two edges at once;
// every acknowledged task runs exactly once, on the edge the core names.
// Then the partition heals and L rejoins as a follower with the same
// state.
func TestLeaderIsolatedFromFollowersNoDoubleDispatch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three core nodes, two edges and simulated CPEs")
	}
	begin := time.Now()
	// First cleanup, so it runs last: nothing the test started survives it.
	t.Cleanup(func() {
		leakcheck.NoGoroutines(t, 20*time.Second, "edgeacs/edgeacs/core.", "edgeacs/edgeacs/edge.", "edgeacs/edgeacs/sync.",
			"edgeacs/edgeacs/sim.", "edgeacs/edgeacs/raftstore.", "edgeacs/edgeacs/blob.", "hashicorp/raft", "dgraph-io/badger", "quic-go/quic-go")
	})
	s := startIsoSystem(t)
	a, b, md := s.a, s.b, s.md

	// Steady state: one leader L, both edges linked to it; two tasks held
	// at A for the mover. The writer streams tasks in through whichever
	// nodes are L's followers; the watch reads both edges to the end.
	L, followers := s.steady()
	t.Logf("steady state after %v: leader %s, both edges linked to it", time.Since(begin).Round(time.Millisecond), L.id)
	var targets atomic.Pointer[[]string]
	aim := func(fs []*isoCore) {
		apis := []string{fs[0].node.APIAddr(), fs[1].node.APIAddr()}
		targets.Store(&apis)
	}
	aim(followers)
	held := s.holdAtA(L.node.APIAddr())
	watch := startIsoWatch(t, &http.Client{Timeout: 5 * time.Second, Transport: testauth.Transport{Base: &http.Transport{Proxy: nil}, Token: func(*http.Request) string { return testSecret }}}, []*isoEdge{a, b}, s.ids)
	w := startIsoWriter(t, s.client, func(attempt int) string {
		apis := *targets.Load()
		return apis[attempt%len(apis)]
	}, s.devs, 2)
	w.waitAcks(t, "before the partition", 6, 30*time.Second)

	// ---- the partition: {L, A} | {F1, F2, B} ----
	// L's Raft links to both followers are cut, and A's paths to the
	// followers: A can reach only L. Both edges' QUIC links to L stay up.
	if prev := L; !L.node.IsLeader() || !a.linkedTo(L) || !b.linkedTo(L) {
		L, followers = s.steady()
		aim(followers)
		t.Logf("the leadership moved from %s to %s before the cut", prev.id, L.id)
	}
	logMark := L.log.mark()
	acksAtCut := w.count()
	t0 := time.Now()
	closed := 0
	for _, f := range followers {
		closed += s.rn.partition(L.node.RaftAddr(), f.node.RaftAddr())
		s.relays[f.id].SetCut(true)
	}
	// The mover leaves A for B while both edges are still linked to L.
	mdB := s.moveToB()

	// The isolation takes effect: L steps down, the followers elect one
	// of themselves, L sees no leader.
	isoWait(t, "the isolated leader "+L.id+" to step down", 10*time.Second, func() bool { return !L.node.IsLeader() })
	stepDown := time.Since(t0)
	// Everything L committed, it committed before the cut, and has applied
	// by now (its lease ran out since): its state is frozen from here.
	lApplied := L.node.FSM().AppliedIndex()
	var N *isoCore
	isoWait(t, "the followers to agree on a new leader", 15*time.Second, func() bool {
		l0, l1 := followers[0].leaderSeen(), followers[1].leaderSeen()
		if l0 == "" || l0 != l1 || l0 == L.id {
			return false
		}
		N = s.byID(l0)
		return N.node.IsLeader()
	})
	elected := time.Since(t0)
	if seen := L.leaderSeen(); seen != "" {
		t.Errorf("the isolated node %s believes %q leads", L.id, seen)
	}
	// L closes both edges' sessions because it lost the leadership. The
	// sync server says so in one of two ways, whichever of its session's
	// goroutines notices first: the leadership watch ("no longer the
	// leader"), or an uplink batch whose Raft apply failed with the lost
	// leadership ("core could not apply: … leadership lost").
	var closes map[string][]isoDisconnect
	isoWait(t, L.id+" to close both edges' sessions", 10*time.Second, func() bool {
		closes = isoDisconnects(L.log.since(logMark))
		return len(closes[a.id]) > 0 && len(closes[b.id]) > 0
	})
	var closedAt time.Duration
	var reasons []string
	for _, e := range []string{a.id, b.id} {
		for _, d := range closes[e] {
			if !strings.Contains(d.reason, "no longer the leader") && !strings.Contains(d.reason, "leadership lost") {
				t.Errorf("%s closed %s's session for %q, not because it lost the leadership", L.id, e, d.reason)
			}
			closedAt = max(closedAt, d.at.Sub(t0))
			reasons = append(reasons, e+": "+d.reason)
		}
	}
	isoCheckNoEdgeConnected(t, s.client, L)
	// B finds the new leader through the followers.
	isoWait(t, "B linked to the new leader", 20*time.Second, func() bool { return b.linkedTo(N) })
	t.Logf("after the cut (%d raft connections closed): %s stepped down at %v and had closed both edges' sessions at %v (%q); %s was elected at %v; B was linked to it at %v",
		closed, L.id, stepDown.Round(time.Millisecond), closedAt.Round(time.Millisecond), reasons,
		N.id, elected.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	// The new leader re-homes the mover at B, but the tasks held at A stay
	// A's: A, which alone knows whether it ran them, cannot confirm it
	// dropped them. A task created now for the mover runs at B; the held
	// ones do not.
	isoWait(t, "the mover homed at B by the new leader", 20*time.Second, func() bool {
		d, err := N.node.FSM().Device(md.ID(), false)
		return err == nil && d.Edge == b.id
	})
	wake := isoWake(t, s.client, N, mdB, b.id)
	if st := a.link.Status(); st.Connected {
		t.Fatalf("A is linked to %s (%s) while it can reach only the isolated %s", a.coreAt[st.Core], st.Core, L.id)
	}
	for _, h := range held {
		if task, err := N.node.FSM().Task(h.id); err != nil || task.Edge != a.id || task.Status != fleet.StatusPending {
			t.Errorf("held task %s while A cannot confirm dropping it: %v %+v, want pending at %s", h.id, err, task, a.id)
		}
	}
	atB, err := b.node.Cache().DeviceTasks(md.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range atB {
		if isoIsHeld(held, task.ID) {
			t.Errorf("held task %s reached B (%s) while A still held it", task.ID, task.Status)
		}
	}
	if got := isoInstances(t, mdB) - s.initial[md.ID()]; got != 0 {
		t.Errorf("the mover ran %d addObject at B while its tasks were held at A", got)
	}

	// A's paths to the followers come back (the Raft partition stays): A
	// finds the new leader, confirms the drop, and B gets the tasks.
	for _, f := range followers {
		s.relays[f.id].SetCut(false)
	}
	restored := time.Now()
	isoWait(t, "A linked to the new leader", 30*time.Second, func() bool { return a.linkedTo(N) })
	relinkedA := time.Since(restored)
	isoWait(t, "the mover's held tasks done at B", 40*time.Second, func() bool {
		for _, h := range held {
			task, err := N.node.FSM().Task(h.id)
			if err != nil || task.Edge != b.id || task.Status != fleet.StatusDone {
				return false
			}
		}
		return true
	})
	t.Logf("A linked to %s %v after its paths came back; the held tasks moved to B and ran there %v after that",
		N.id, relinkedA.Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))

	// The majority moved on without L: tasks kept being acknowledged, and
	// L saw none of it. Its commit index froze at the cut (it hears no
	// follower since), so a task first created by a request sent after
	// the cut is not in its state (a replay may name a task that an
	// attempt before the cut created).
	w.waitAcks(t, "during the partition", acksAtCut+10, 30*time.Second)
	during := w.since(acksAtCut)
	created := 0
	for _, ack := range during {
		if ack.replayed || !ack.sent.After(t0) {
			continue
		}
		created++
		if _, err := L.node.FSM().Task(ack.id); err == nil {
			t.Errorf("task %s, created during the partition, is in the isolated %s's state", ack.id, L.id)
		}
	}
	if created == 0 {
		t.Error("no task was created during the partition")
	}
	if got := L.node.FSM().AppliedIndex(); got != lApplied {
		t.Errorf("the isolated %s applied entries %d..%d during the partition", L.id, lApplied+1, got)
	}
	if L.node.IsLeader() {
		t.Errorf("the isolated %s leads again", L.id)
	}
	if s.rn.refused.Load() == 0 {
		t.Error("no raft dial was refused by the partition: the cut was never tested")
	}
	t.Logf("during the partition: %d tasks acknowledged (%d created after the cut, none at %s); %s applied index %d, %s's %d; %d raft dials refused",
		len(during), created, L.id, L.id, lApplied, N.id, N.node.FSM().AppliedIndex(), s.rn.refused.Load())

	// ---- heal: L rejoins as a follower and catches up ----
	partitioned := time.Since(t0)
	nIndex := N.node.FSM().AppliedIndex()
	s.rn.heal()
	rejoined := isoWait(t, L.id+" back as a follower of the cluster's leader", 20*time.Second, func() bool {
		l := s.leader()
		return l != nil && l != L && L.leaderSeen() == l.id && L.node.FSM().AppliedIndex() >= nIndex
	})
	w.waitAcks(t, "after the heal", w.count()+5, 30*time.Second)
	w.halt()
	if err := w.err(); err != nil {
		t.Fatalf("task writer: %v (last error: %s)", err, w.lastErr)
	}
	acked := w.since(0)
	t.Logf("healed after %v: %s rejoined in %v; %d tasks acknowledged in all, %d retries",
		partitioned.Round(time.Millisecond), L.id, rejoined.Round(time.Millisecond), len(acked), w.retries)

	all := slices.Concat(acked, held, []isoAck{wake})
	s.checkCores(all)
	s.checkEdges(all, acked, held, mdB)

	// No task was ever on two edges at once, as the edges' APIs showed it
	// throughout; the held tasks were seen to move, A then B.
	watch.halt()
	bad, moved := watch.twoEdges(a.id, b.id)
	for _, msg := range bad {
		t.Error(msg)
	}
	for _, h := range held {
		if !moved[h.id] {
			t.Errorf("the watch did not see held task %s at A and then at B (sightings %+v)", h.id, watch.seen[h.id])
		}
	}
	for id := range moved {
		// Only the mover's tasks can be at both edges, one after the other.
		if task, err := N.node.FSM().Task(id); err != nil || task.Device != md.ID() {
			t.Errorf("task %s moved from A to B, but it is not the mover's (%v %+v)", id, err, task)
		}
	}
	if watch.failures > 0 {
		t.Logf("%d edge API requests of the watch failed, last: %s", watch.failures, watch.lastErr)
	}
	t.Logf("watched the edges in %d rounds (%d tasks seen, %d moved A→B); took %v",
		watch.rounds, len(watch.seen), len(moved), time.Since(begin).Round(time.Millisecond))
}

// isoCheckNoEdgeConnected: the deposed c's API (which answers from its own
// state, knowing no leader) lists no edge as connected to it.
func isoCheckNoEdgeConnected(t *testing.T, client *http.Client, c *isoCore) {
	t.Helper()
	resp, err := client.Get("http://" + c.node.APIAddr() + "/api/v1/edges")
	if err != nil {
		t.Fatalf("GET %s /api/v1/edges: %v", c.id, err)
	}
	defer resp.Body.Close()
	var es []struct {
		ID        string `json:"id"`
		Connected bool   `json:"connected"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&es); err != nil {
		t.Fatalf("GET %s /api/v1/edges: %v", c.id, err)
	}
	for _, e := range es {
		if e.Connected {
			t.Errorf("the isolated %s still lists edge %s as connected", c.id, e.ID)
		}
	}
}

// isoWake creates a getParameterValues task for d through c's API with a
// connection request and waits for it to end; it must run at edge.
func isoWake(t *testing.T, client *http.Client, c *isoCore, d *sim.Device, edge string) isoAck {
	t.Helper()
	// The call waits for the task to end: a longer timeout than the writer's.
	wc := &http.Client{Timeout: 25 * time.Second, Transport: client.Transport}
	body := fmt.Sprintf(`{"name": "getParameterValues", "parameterNames": [%q]}`, d.Root()+"DeviceInfo.SoftwareVersion")
	const key = "wake-mover"
	var task isoTask
	isoWait(t, "a new task for the mover done at "+edge, 30*time.Second, func() bool {
		var code int
		var err error
		task, code, err = isoPostTask(wc, c.node.APIAddr(), d.ID(), body, key, true, 20*time.Second)
		if code/100 == 4 {
			t.Fatalf("the mover's wake task: %v", err)
		}
		return err == nil && task.Status == string(fleet.StatusDone)
	})
	if task.Edge != edge {
		t.Fatalf("the mover's wake task ran on %q, want %s: %+v", task.Edge, edge, task)
	}
	return isoAck{key: key, id: task.ID, device: d.ID()}
}

// checkCores: at every core node, every acknowledged task is done, on the
// edge its device is homed at, and no addObject task exists that was not
// acknowledged (a retried key made one task); the three nodes hold the
// same tasks in the same state; no uplink record of either edge was
// refused on the way (resends across the leader change, the drop
// confirmations, B's deltas).
func (s *isoSystem) checkCores(all []isoAck) {
	t := s.t
	t.Helper()
	known := map[string]bool{}
	for _, ack := range all {
		known[ack.id] = true
	}
	for _, c := range s.cores {
		isoWait(t, fmt.Sprintf("%d acknowledged tasks done at %s", len(all), c.id), 40*time.Second, func() bool {
			for _, ack := range all {
				task, err := c.node.FSM().Task(ack.id)
				if err != nil || task.Status != fleet.StatusDone {
					return false
				}
			}
			return true
		})
		for _, ack := range all {
			task, _ := c.node.FSM().Task(ack.id)
			if task.Edge != s.homes[ack.device] {
				t.Errorf("core %s: task %s for %s ran on %q, the device is homed at %s", c.id, ack.id, ack.device, task.Edge, s.homes[ack.device])
			}
		}
	}
	type taskState struct{ status, edge, name string }
	var views []map[string]taskState
	converged := isoWait(t, "the same tasks on all three nodes", 20*time.Second, func() bool {
		views = views[:0]
		for _, c := range s.cores {
			ts, _, err := c.node.FSM().Tasks(core.TaskFilter{}, "", 0)
			if err != nil {
				return false
			}
			m := map[string]taskState{}
			for _, task := range ts {
				m[task.ID] = taskState{string(task.Status), task.Edge, task.Name}
			}
			views = append(views, m)
		}
		return maps.Equal(views[0], views[1]) && maps.Equal(views[0], views[2])
	})
	for id, st := range views[0] {
		if st.name == "addObject" && !known[id] {
			t.Errorf("addObject task %s (%s, edge %q) was never acknowledged to the client", id, st.status, st.edge)
		}
	}
	for _, c := range s.cores {
		for _, e := range []string{s.a.id, s.b.id} {
			st, err := c.node.FSM().Edge(e)
			switch {
			case err != nil:
				t.Errorf("core %s: edge %s: %v", c.id, e, err)
			case st.Rejected != 0:
				t.Errorf("core %s: %d uplink records of edge %s rejected", c.id, st.Rejected, e)
			}
		}
	}
	t.Logf("the three nodes agree on %d tasks (%v after the acknowledged ones were done)", len(views[0]), converged.Round(time.Millisecond))
}

// checkEdges: each acknowledged task is listed once, done, by the edge
// the core names, and by no other; each addObject ran exactly once, on
// the device (the mover's held ones at B, none at A).
func (s *isoSystem) checkEdges(all, acked, held []isoAck, mdB *sim.Device) {
	t := s.t
	t.Helper()
	lists := map[string]map[string][]isoTask{} // edge → device → tasks
	for _, e := range []*isoEdge{s.a, s.b} {
		lists[e.id] = map[string][]isoTask{}
		for _, id := range s.ids {
			lists[e.id][id] = isoEdgeTasks(t, s.client, e, id)
		}
	}
	for _, ack := range all {
		for _, e := range []*isoEdge{s.a, s.b} {
			n := 0
			for _, task := range lists[e.id][ack.device] {
				if task.ID == ack.id {
					n++
					if task.Status != string(fleet.StatusDone) {
						t.Errorf("edge %s: task %s for %s is %s", e.id, ack.id, ack.device, task.Status)
					}
				}
			}
			want := 0
			if e.id == s.homes[ack.device] {
				want = 1
			}
			if n != want {
				t.Errorf("edge %s lists task %s for %s %d times, want %d", e.id, ack.id, ack.device, n, want)
			}
		}
	}
	byDevice := map[string]int{}
	for _, ack := range acked {
		byDevice[ack.device]++
	}
	for _, d := range s.devs {
		if got, want := isoInstances(t, d)-s.initial[d.ID()], byDevice[d.ID()]; got != want {
			t.Errorf("device %s (%s) ran %d addObject, %d were acknowledged for it", d.ID(), d.Model(), got, want)
		}
	}
	if got := isoInstances(t, s.md) - s.initial[s.md.ID()]; got != 0 {
		t.Errorf("the mover ran %d addObject at A; its tasks were to move to B", got)
	}
	if got := isoInstances(t, mdB) - s.initial[s.md.ID()]; got != len(held) {
		t.Errorf("the mover ran %d addObject at B, want %d", got, len(held))
	}
}

// isoEdgeTasks lists a device's tasks at edge e (none if e never saw it).
func isoEdgeTasks(t *testing.T, client *http.Client, e *isoEdge, device string) []isoTask {
	t.Helper()
	resp, err := client.Get("http://" + e.api + "/api/v1/devices/" + url.PathEscape(device) + "/tasks")
	if err != nil {
		t.Fatalf("edge %s: tasks of %s: %v", e.id, device, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var ts []isoTask
	if err := json.NewDecoder(resp.Body).Decode(&ts); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("edge %s: tasks of %s: HTTP %d %v", e.id, device, resp.StatusCode, err)
	}
	return ts
}
