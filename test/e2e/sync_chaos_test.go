package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/sim"
)

// The chaos tests of issue 9: processes killed, paused and moved while
// tasks and results stream, then exact counts by ID on every core node,
// every edge and every simulated CPE.

// chaosTask is a task as the core's and the edge's APIs both show it.
type chaosTask struct {
	ID         string `json:"_id"`
	Device     string `json:"device"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Edge       string `json:"edge"`
	ObjectName string `json:"objectName"`
	Result     *struct {
		InstanceNumber uint32 `json:"instanceNumber"`
	} `json:"result"`
}

// chaosClient bounds every request: a paused node must not hang a writer.
var chaosClient = &http.Client{Timeout: time.Second}

// statusClient reads GET /api/v1/cluster, which waits for every member's
// answer (or the core's probe timeout).
var statusClient = &http.Client{Timeout: 5 * time.Second}

// getJSON GETs url into out; it returns the status and the next-page cursor.
func getJSON(client *http.Client, u string, out any) (int, string, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("decode %q: %w", raw, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("X-Next-Cursor"), nil
}

// listAll reads every page of a list endpoint (X-Next-Cursor paging).
func listAll[T any](t *testing.T, base string, limit int) []T {
	t.Helper()
	var all []T
	cursor := ""
	client := &http.Client{Timeout: 30 * time.Second}
	for {
		u := base
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page []T
		code, next, err := getJSON(client, u, &page)
		if err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", u, code, err)
		}
		all = append(all, page...)
		if next == "" || len(page) == 0 {
			return all
		}
		cursor = next
	}
}

// addObjectTable is a table of d's data model that allows AddObject, and
// the parameter counting its live instances.
func addObjectTable(d *sim.Device) (object, count string) {
	if d.Root() == "Device." {
		return "Device.PPP.Interface.", "Device.PPP.InterfaceNumberOfEntries"
	}
	wcd := "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1."
	return wcd + "WANIPConnection.", wcd + "WANIPConnectionNumberOfEntries"
}

// instances counts the live instances of d's addObject table, as the
// device itself holds them.
func instances(t *testing.T, d *sim.Device) int {
	t.Helper()
	_, count := addObjectTable(d)
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

func addObjectBody(d *sim.Device) string {
	obj, _ := addObjectTable(d)
	return fmt.Sprintf(`{"name": "addObject", "objectName": %q}`, obj)
}

// simulateWith is simulate with the caller's fleet settings.
func (s *system) simulateWith(e *edgeProc, cfg sim.Config) *sim.Fleet {
	s.t.Helper()
	cfg.ACSURL = "http://" + e.cwmp + "/"
	cfg.Username, cfg.Password, cfg.PoolConnections = "cpe", "cpe-secret", true
	if cfg.Model == "" {
		cfg.Model = sim.ModelMixed
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 0.01
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	f, err := sim.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { f.Close() })
	return f
}

// ---- the cluster as the chaos sees it ----

// chaosCluster tracks which core nodes are up and which one leads, so
// writers aim at a live follower.
type chaosCluster struct {
	s      *system
	mu     sync.Mutex
	down   map[string]bool
	leader string
}

func newChaosCluster(s *system) *chaosCluster {
	c := &chaosCluster{s: s, down: map[string]bool{}}
	c.leader = c.waitLeader("", 30*time.Second).id
	return c
}

func (c *chaosCluster) byID(id string) *coreProc {
	for _, p := range c.s.cores {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (c *chaosCluster) setDown(id string, down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[id] = down
}

func (c *chaosCluster) setLeader(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = id
}

func (c *chaosCluster) live() []*coreProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*coreProc
	for _, p := range c.s.cores {
		if !c.down[p.id] {
			out = append(out, p)
		}
	}
	return out
}

// follower picks a live node that is not the leader, rotating by n.
func (c *chaosCluster) follower(n int) *coreProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fs []*coreProc
	for _, p := range c.s.cores {
		if !c.down[p.id] && p.id != c.leader {
			fs = append(fs, p)
		}
	}
	if len(fs) == 0 {
		for _, p := range c.s.cores {
			if !c.down[p.id] {
				fs = append(fs, p)
			}
		}
	}
	return fs[n%len(fs)]
}

// waitLeader waits until every live node names the same leader, a live
// node other than not, with every server in its configuration.
func (c *chaosCluster) waitLeader(not string, d time.Duration) *coreProc {
	c.s.t.Helper()
	var leader string
	coreWait(c.s.t, "every live core node to agree on a leader other than "+strconv.Quote(not), d, func() bool {
		leader = ""
		live := c.live()
		for _, p := range live {
			var st coreStatus
			// The status asks every member; one paused costs the probe's
			// timeout (under a second), so this read gets more than
			// chaosClient's second.
			code, _, err := getJSON(statusClient, "http://"+p.api+"/api/v1/cluster", &st)
			if err != nil || code != 200 || st.Leader == "" || st.Leader == not || len(st.Servers) != len(c.s.cores) {
				return false
			}
			if leader != "" && st.Leader != leader {
				return false
			}
			leader = st.Leader
		}
		return slices.ContainsFunc(live, func(p *coreProc) bool { return p.id == leader })
	})
	return c.byID(leader)
}

// restart starts a stopped node again from its data directory: no
// --bootstrap, and --join through a live member (harmless when it is
// already one).
func (c *chaosCluster) restart(p *coreProc, via *coreProc) {
	c.s.t.Helper()
	var args []string
	for i := 0; i < len(p.args); i++ {
		switch p.args[i] {
		case "--bootstrap":
			continue
		case "--join":
			i++
			continue
		}
		args = append(args, p.args[i])
	}
	p.args = append(args, "--join", via.raft)
	p.start(c.s.t, c.s.bin)
}

// ---- writers that retry with an Idempotency-Key ----

type ackedTask struct {
	key, id, device string
	edge            string // the edge the core answered with, if any
}

// taskWriter creates tasks through the core's API, one logical task per
// Idempotency-Key, retrying the same key on connection errors, timeouts
// and 5xx until the core acknowledges it. Its workers each keep one
// request in flight.
type taskWriter struct {
	t      *testing.T
	prefix string
	target func(attempt int) *coreProc
	devs   []*sim.Device
	body   func(d *sim.Device) string
	pace   time.Duration
	// sent gets a token (if nobody holds one) each time a request leaves,
	// so a test can strike while one is in flight.
	sent chan struct{}

	mu       sync.Mutex
	acked    []ackedTask
	byDevice map[string]int
	retries  int
	replayed int // acknowledgements answered 200: a retry matched the key's first task
	lastErrs []string
	failed   error

	stop    chan struct{}
	abandon atomic.Bool // the test failed: stop even mid-key
	wg      sync.WaitGroup
}

func startTaskWriter(t *testing.T, prefix string, workers int, devs []*sim.Device, target func(int) *coreProc) *taskWriter {
	w := &taskWriter{t: t, prefix: prefix, target: target, devs: devs, body: addObjectBody, pace: 25 * time.Millisecond,
		sent: make(chan struct{}, 1), byDevice: map[string]int{}, stop: make(chan struct{})}
	for k := range workers {
		w.wg.Add(1)
		go w.run(k, workers)
	}
	t.Cleanup(func() {
		if t.Failed() {
			w.abandon.Store(true)
		}
		w.halt()
	})
	return w
}

func (w *taskWriter) run(worker, workers int) {
	defer w.wg.Done()
	attempt := worker
	for i := worker; ; i += workers {
		select {
		case <-w.stop:
			return
		default:
		}
		d := w.devs[i%len(w.devs)]
		key := fmt.Sprintf("%s-%05d", w.prefix, i)
		deadline := time.Now().Add(45 * time.Second)
		for {
			attempt++
			p := w.target(attempt)
			select {
			case w.sent <- struct{}{}:
			default:
			}
			task, code, err := postIdem("http://"+p.api+devicePath(d.ID())+"/tasks?connection_request", w.body(d), key)
			if err == nil && (code == 200 || code == 202) && task.ID != "" {
				w.mu.Lock()
				w.acked = append(w.acked, ackedTask{key: key, id: task.ID, device: d.ID(), edge: task.Edge})
				w.byDevice[d.ID()]++
				if code == 200 {
					w.replayed++
				}
				w.mu.Unlock()
				break
			}
			w.mu.Lock()
			w.retries++
			msg := fmt.Sprintf("%s via %s: %d %v", key, p.id, code, err)
			w.lastErrs = append(w.lastErrs, msg)
			if len(w.lastErrs) > 8 {
				w.lastErrs = w.lastErrs[1:]
			}
			if err == nil && code/100 == 4 {
				w.failed = fmt.Errorf("task refused: %s", msg)
			} else if time.Now().After(deadline) {
				w.failed = fmt.Errorf("task %s never acknowledged in 45s; last: %s", key, msg)
			}
			failed := w.failed
			w.mu.Unlock()
			if failed != nil || w.abandon.Load() {
				return
			}
			time.Sleep(20 * time.Millisecond) // retry pacing, not synchronisation
		}
		time.Sleep(w.pace) // a steady stream, not a flood
	}
}

// halt stops creating new tasks once each worker's current key is
// acknowledged.
func (w *taskWriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *taskWriter) count() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.failed
}

// waitAcks waits for n more acknowledged tasks than base.
func (w *taskWriter) waitAcks(what string, base, n int, d time.Duration) int {
	w.t.Helper()
	coreWait(w.t, fmt.Sprintf("%d tasks acknowledged %s", n, what), d, func() bool {
		got, err := w.count()
		if err != nil {
			w.t.Fatalf("task writer: %v", err)
		}
		return got >= base+n
	})
	got, _ := w.count()
	return got
}

// retry creates the task of key for d, a key some earlier attempt may
// already have created, and records it as acknowledged.
func (w *taskWriter) retry(d *sim.Device, key string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		p := w.target(attempt)
		task, code, err := postIdem("http://"+p.api+devicePath(d.ID())+"/tasks?connection_request", w.body(d), key)
		if err == nil && (code == 200 || code == 202) && task.ID != "" {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.acked = append(w.acked, ackedTask{key: key, id: task.ID, device: d.ID(), edge: task.Edge})
			w.byDevice[d.ID()]++
			if code == 200 {
				w.replayed++
			}
			return
		}
		if (err == nil && code/100 == 4) || time.Now().After(deadline) {
			w.t.Fatalf("retry of %s via %s: %d %v", key, p.id, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queueTask creates one task at the core with an Idempotency-Key,
// retrying the key on errors, and answers it as stored.
func queueTask(t *testing.T, api string, d *sim.Device, body, key string) chaosTask {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		task, code, err := postIdem(api+devicePath(d.ID())+"/tasks", body, key)
		if err == nil && (code == 200 || code == 202) && task.ID != "" {
			return task
		}
		if (err == nil && code/100 == 4) || time.Now().After(deadline) {
			t.Fatalf("queue task %s for %s: %d %v", key, d.ID(), code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// abandonTask sends a task creation for d straight to the node at api and
// hangs up without reading the answer: the create may be committed, and
// only a retry with the same key can tell.
func abandonTask(t *testing.T, api string, d *sim.Device, key string) {
	t.Helper()
	conn, err := net.Dial("tcp", api)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := addObjectBody(d)
	fmt.Fprintf(conn, "POST %s/tasks?connection_request HTTP/1.1\r\nHost: %s\r\nIdempotency-Key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		devicePath(d.ID()), api, key, len(body), body)
}

// inFlight waits until a worker has just sent a request.
func (w *taskWriter) inFlight() {
	select {
	case <-w.sent:
	default:
	}
	select {
	case <-w.sent:
	case <-time.After(5 * time.Second):
	}
}

func (w *taskWriter) result() ([]ackedTask, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		w.t.Fatalf("task writer: %v (recent errors: %q)", w.failed, w.lastErrs)
	}
	return slices.Clone(w.acked), w.byDevice
}

// postIdem POSTs a task with an Idempotency-Key.
func postIdem(u, body, key string) (chaosTask, int, error) {
	var task chaosTask
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		return task, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := chaosClient.Do(req)
	if err != nil {
		return task, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return task, resp.StatusCode, err
	}
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, &task); err != nil {
			return task, resp.StatusCode, fmt.Errorf("decode %q: %w", raw, err)
		}
	} else if resp.StatusCode/100 == 4 {
		return task, resp.StatusCode, fmt.Errorf("%s", raw)
	}
	return task, resp.StatusCode, nil
}

// ---- checks shared by the tests ----

// checkAckedAtCores: every acknowledged task exists exactly once on every
// core node, reaches done there, on the edge homes names; and no other
// addObject task exists (a retried key never made a second task).
func checkAckedAtCores(t *testing.T, s *system, acked []ackedTask, homes map[string]string) {
	t.Helper()
	want := map[string]map[string]bool{} // device → acked IDs
	for _, a := range acked {
		if want[a.device] == nil {
			want[a.device] = map[string]bool{}
		}
		if want[a.device][a.id] {
			t.Errorf("two keys were acknowledged with the same task %s", a.id)
		}
		want[a.device][a.id] = true
	}
	waitClient := &http.Client{Timeout: 40 * time.Second}
	for _, p := range s.cores {
		for _, a := range acked {
			var got chaosTask
			code, _, err := getJSON(waitClient, "http://"+p.api+"/api/v1/tasks/"+a.id+"?wait=30s", &got)
			if err != nil || code != 200 || got.Status != "done" {
				t.Fatalf("core %s: acknowledged task %s (key %s, device %s): %d %v %+v", p.id, a.id, a.key, a.device, code, err, got)
			}
			if got.Edge != homes[a.device] {
				t.Fatalf("core %s: task %s ran on edge %q, device %s is homed at %q", p.id, a.id, got.Edge, a.device, homes[a.device])
			}
		}
		for dev, ids := range want {
			seen := map[string]int{}
			for _, task := range listAll[chaosTask](t, "http://"+p.api+devicePath(dev)+"/tasks", 10000) {
				seen[task.ID]++
				if task.Name == "addObject" && !ids[task.ID] {
					t.Errorf("core %s: addObject task %s for %s was never acknowledged to the client (status %s, edge %s)",
						p.id, task.ID, dev, task.Status, task.Edge)
				}
			}
			for id := range ids {
				if seen[id] != 1 {
					t.Errorf("core %s: task %s appears %d times in %s's task list", p.id, id, seen[id], dev)
				}
			}
		}
	}
}

// checkAckedAtEdges: each acknowledged task is on exactly one edge, the
// one the core names, once, done; and it ran exactly once on the CPE.
func checkAckedAtEdges(t *testing.T, s *system, coreAPI string, acked []ackedTask, homes map[string]string, devs []*sim.Device, initial map[string]int, byDevice map[string]int) {
	t.Helper()
	where := map[string][]string{} // task ID → edges holding it
	for name, e := range s.edges {
		for _, task := range listAll[chaosTask](t, "http://"+e.api+"/api/v1/tasks", 1000) {
			where[task.ID] = append(where[task.ID], name)
		}
	}
	for id, es := range where {
		if len(es) > 1 {
			t.Errorf("task %s is on more than one edge: %v", id, es)
			continue
		}
		var ct chaosTask
		code, _, err := getJSON(chaosClient, "http://"+coreAPI+"/api/v1/tasks/"+id, &ct)
		if err != nil || code != 200 || ct.Edge != es[0] {
			t.Errorf("task %s is on edge %s; at the core: %d %v edge %q", id, es[0], code, err, ct.Edge)
		}
	}
	for _, a := range acked {
		if es := where[a.id]; len(es) != 1 || es[0] != homes[a.device] {
			t.Errorf("task %s for %s (homed at %s) is on edges %v", a.id, a.device, homes[a.device], es)
		}
	}
	for _, d := range devs {
		e := s.edges[homes[d.ID()]]
		seen := map[string]int{}
		for _, task := range getChaosTasks(t, "http://"+e.api+devicePath(d.ID())) {
			seen[task.ID]++
			if task.Name == "addObject" && task.Status != "done" {
				t.Errorf("edge %s: addObject task %s for %s is %s", e.id, task.ID, d.ID(), task.Status)
			}
		}
		for _, a := range acked {
			if a.device == d.ID() && seen[a.id] != 1 {
				t.Errorf("edge %s lists task %s %d times for %s", e.id, a.id, seen[a.id], d.ID())
			}
		}
		if got, want := instances(t, d)-initial[d.ID()], byDevice[d.ID()]; got != want {
			t.Errorf("device %s (%s) holds %d new instances, %d addObject tasks were acknowledged for it", d.ID(), d.Model(), got, want)
		}
	}
}

func getChaosTasks(t *testing.T, devURL string) []chaosTask {
	t.Helper()
	var ts []chaosTask
	code, _, err := getJSON(&http.Client{Timeout: 10 * time.Second}, devURL+"/tasks", &ts)
	if err != nil || code != 200 {
		t.Fatalf("GET %s/tasks: %d %v", devURL, code, err)
	}
	return ts
}

// waitHomed waits until the core node at api holds every device of homes,
// homed at its edge.
func waitHomed(t *testing.T, api string, homes map[string]string, d time.Duration) {
	t.Helper()
	coreWait(t, fmt.Sprintf("%d devices at the core homed at their edges", len(homes)), d, func() bool {
		var devs []coreDevice
		code, _, err := getJSON(chaosClient, "http://"+api+"/api/v1/devices?limit=10000", &devs)
		if err != nil || code != 200 {
			return false
		}
		n := 0
		for _, dv := range devs {
			if h, ok := homes[dv.ID]; ok {
				if dv.Edge != h {
					return false
				}
				n++
			}
		}
		return n == len(homes)
	})
}

// waitSessions waits until the fleet completed n sessions: with n its
// size, the first sessions (the edge's credential provisioning included)
// are over, so a task queued now waits for a later one.
func waitSessions(t *testing.T, f *sim.Fleet, n int) {
	t.Helper()
	coreWait(t, fmt.Sprintf("%d first sessions", n), 30*time.Second, func() bool {
		return f.Stats().SessionsCompleted >= uint64(n)
	})
}

// ---- 1. the leader killed five times during a stream of tasks ----

func TestSyncChaosLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills core processes")
	}
	start := time.Now()
	s := newSystem(t, 3, "pop")
	e := s.startEdge("pop", s.syncAddrs())
	f := s.simulate(e, 10, 31)
	var devs []*sim.Device
	homes := map[string]string{}
	for i := range f.Len() {
		devs = append(devs, f.Device(i))
		homes[f.Device(i).ID()] = "pop"
	}
	c := newChaosCluster(s)
	waitHomed(t, c.byID(c.leader).api, homes, 60*time.Second)
	waitSessions(t, f, len(devs))
	initial := map[string]int{}
	for _, d := range devs {
		initial[d.ID()] = instances(t, d)
	}

	w := startTaskWriter(t, "kill", 2, devs, c.follower)
	acks := w.waitAcks("before the first kill", 0, 10, 30*time.Second)
	for round := 1; round <= 5; round++ {
		old := c.byID(c.leader)
		c.setDown(old.id, true)
		// Strike while creates are on their way through the leader: one the
		// test abandons right after sending it to the leader (committed or
		// not, nobody hears the answer), and the writers' own.
		pd := devs[round%len(devs)]
		probe := fmt.Sprintf("probe-%d", round)
		abandonTask(t, old.api, pd, probe)
		w.inFlight()
		time.Sleep(time.Duration(round) * time.Millisecond)
		t0 := time.Now()
		old.kill()
		nl := c.waitLeader(old.id, 20*time.Second)
		c.setLeader(nl.id)
		elected := time.Since(t0)
		acks = w.waitAcks(fmt.Sprintf("after round %d's new leader %s", round, nl.id), acks, 5, 30*time.Second)
		w.retry(pd, probe)
		c.restart(old, nl)
		c.setDown(old.id, false)
		c.waitLeader("", 30*time.Second)
		t.Logf("round %d: SIGKILL leader %s, %s leads after %v; %s back; %d tasks acknowledged so far",
			round, old.id, nl.id, elected.Round(time.Millisecond), old.id, acks)
		acks = w.waitAcks(fmt.Sprintf("after round %d", round), acks, 5, 30*time.Second)
	}
	w.halt()
	acked, byDevice := w.result()
	t.Logf("%d tasks acknowledged, %d retries, %d acknowledgements were replays of an earlier attempt (200)", len(acked), w.retries, w.replayed)

	checkAckedAtCores(t, s, acked, homes)
	checkAckedAtEdges(t, s, s.cores[0].api, acked, homes, devs, initial, byDevice)
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// ---- 2. the edge killed mid-drain, three times ----

type edgeHealthz struct {
	OutboxLen int64 `json:"outboxLen"`
	Sync      struct {
		Connected   bool   `json:"connected"`
		UplinkAcked uint64 `json:"uplinkAcked"`
	} `json:"sync"`
}

type edgeRecord struct {
	ID          string `json:"id"`
	UplinkAcked uint64 `json:"uplinkAcked"`
	Rejected    uint64 `json:"rejected"`
	Connected   bool   `json:"connected"`
}

func healthOf(e *edgeProc) (edgeHealthz, error) {
	var h edgeHealthz
	code, _, err := getJSON(chaosClient, "http://"+e.api+"/healthz", &h)
	if err == nil && code != 200 {
		err = fmt.Errorf("healthz: %d", code)
	}
	return h, err
}

func edgeAtCore(t *testing.T, api, name string) edgeRecord {
	t.Helper()
	var es []edgeRecord
	code, _, err := getJSON(chaosClient, "http://"+api+"/api/v1/edges", &es)
	if err != nil || code != 200 {
		t.Fatalf("GET /api/v1/edges: %d %v", code, err)
	}
	for _, e := range es {
		if e.ID == name {
			return e
		}
	}
	return edgeRecord{ID: name}
}

func TestSyncChaosEdgeKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills an edge")
	}
	start := time.Now()
	s := newSystem(t, 1, "pop")
	core := s.cores[0].api
	relay := newUDPRelay(t, s.sync["n1"])
	e := s.startEdge("pop", relay.Addr())
	const n = 200
	f := s.simulateWith(e, sim.Config{Count: n, Seed: 41, InformInterval: 2 * time.Second, Ramp: 2 * time.Second})
	homes := map[string]string{}
	for i := range n {
		homes[f.Device(i).ID()] = "pop"
	}
	waitHomed(t, core, homes, 60*time.Second)

	// Tasks created on the edge's local API while the backhaul is down:
	// each is an uplink record, and runs in the device's next session.
	var localMu sync.Mutex
	var local []string
	postLocal := func(ctx context.Context, worker int) {
		client := &http.Client{Timeout: 5 * time.Second}
		for i := worker; ctx.Err() == nil; i += 4 {
			d := f.Device(i % n)
			body := fmt.Sprintf(`{"name": "getParameterValues", "parameterNames": [%q]}`, d.Root()+"DeviceInfo.SoftwareVersion")
			resp, err := client.Post("http://"+e.api+devicePath(d.ID())+"/tasks", "application/json", strings.NewReader(body))
			if err != nil {
				continue // the edge is being killed
			}
			var task chaosTask
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 202 && json.Unmarshal(raw, &task) == nil && task.ID != "" {
				localMu.Lock()
				local = append(local, task.ID)
				localMu.Unlock()
			}
		}
	}

	const (
		backlog   = 3000
		drainRate = 50 // datagrams/s from the edge while it drains before the kill
	)
	for round := 1; round <= 3; round++ {
		// The last round's drain is over at the edge too (acknowledged
		// records deleted), so the backlog below is this round's own.
		coreWait(t, fmt.Sprintf("round %d: the edge's outbox drained", round), 60*time.Second, func() bool {
			h, err := healthOf(e)
			return err == nil && h.Sync.Connected && h.OutboxLen < backlog/10
		})
		before := edgeAtCore(t, core, "pop").UplinkAcked
		relay.SetCut(true)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); postLocal(ctx, w) }()
		}
		coreWait(t, fmt.Sprintf("round %d: a backlog of %d records", round, backlog), 60*time.Second, func() bool {
			h, err := healthOf(e)
			return err == nil && h.OutboxLen >= backlog
		})
		cancel()
		wg.Wait()
		coreWait(t, fmt.Sprintf("round %d: the edge to see the link down", round), 30*time.Second, func() bool {
			h, err := healthOf(e)
			return err == nil && !h.Sync.Connected
		})
		h, _ := healthOf(e)
		peak := h.OutboxLen

		// Restore the backhaul, narrowed so that the drain takes seconds
		// whatever this box's speed (a drain at full speed can finish
		// between two polls of a busy test), and SIGKILL the edge mid-drain.
		relay.SetUplinkRate(drainRate)
		relay.SetCut(false)
		restored := time.Now()
		var at edgeHealthz
		drainDeadline := time.Now().Add(30 * time.Second)
		for {
			h, err := healthOf(e)
			if err == nil {
				peak = max(peak, h.OutboxLen)
				if h.OutboxLen > 0 && h.OutboxLen <= peak-min(peak/10, 256) {
					at = h
					break
				}
				if h.OutboxLen == 0 {
					t.Fatalf("round %d: the outbox drained from %d to 0 between two polls; no mid-drain kill", round, peak)
				}
			}
			if time.Now().After(drainDeadline) {
				t.Fatalf("round %d: the drain of %d records did not start in 30s (last %+v, %v)", round, peak, h, err)
			}
			time.Sleep(time.Millisecond)
		}
		e.kill()
		relay.SetUplinkRate(0)
		ackedAtKill := edgeAtCore(t, core, "pop").UplinkAcked
		t.Logf("round %d: backlog peak %d (core acked %d before the cut); SIGKILL %v after the restore at outboxLen %d, core acked %d",
			round, peak, before, time.Since(restored).Round(time.Millisecond), at.OutboxLen, ackedAtKill)
		if at.OutboxLen <= 0 || at.OutboxLen >= peak {
			t.Fatalf("round %d: killed at outboxLen %d, not mid-drain of %d", round, at.OutboxLen, peak)
		}
		s.startEdge("pop", relay.Addr())
		// Sequences are gap-free: the records that were in the outbox at
		// its peak all sit above what the core held before the cut.
		coreWait(t, fmt.Sprintf("round %d: the backlog drained after the restart", round), 60*time.Second, func() bool {
			return edgeAtCore(t, core, "pop").UplinkAcked >= before+uint64(peak)
		})
	}

	// The fleet stops; the edge drains; then the core's view is the edge's.
	f.Close()
	var last edgeHealthz
	coreWait(t, "the edge's outbox empty and the link up", 60*time.Second, func() bool {
		h, err := healthOf(e)
		last = h
		return err == nil && h.OutboxLen == 0 && h.Sync.Connected
	})
	rec := edgeAtCore(t, core, "pop")
	if rec.Rejected != 0 {
		t.Errorf("the core rejected %d records from the edge", rec.Rejected)
	}
	if rec.UplinkAcked < last.Sync.UplinkAcked || rec.UplinkAcked == 0 {
		t.Errorf("core uplinkAcked %d, the edge was told %d", rec.UplinkAcked, last.Sync.UplinkAcked)
	}
	t.Logf("core: uplinkAcked %d, rejected %d; edge: uplinkAcked %d", rec.UplinkAcked, rec.Rejected, last.Sync.UplinkAcked)

	type lite struct {
		ID         string    `json:"_id"`
		Edge       string    `json:"edge"`
		LastInform time.Time `json:"lastInform"`
	}
	// A session the stopped fleet left open has its Inform in the edge's
	// device record already, but goes upstream only when the session ends:
	// at the edge's session timeout (30 s). Wait for the views to agree,
	// then report what still differs.
	var coreDevs, edgeDevs []lite
	atCore := map[string]lite{}
	deadline := time.Now().Add(90 * time.Second)
	for {
		coreDevs = listAll[lite](t, "http://"+core+"/api/v1/devices", 10000)
		edgeDevs = listAll[lite](t, "http://"+e.api+"/api/v1/devices", 1000)
		clear(atCore)
		for _, d := range coreDevs {
			atCore[d.ID] = d
		}
		agree := len(coreDevs) == len(edgeDevs)
		for _, d := range edgeDevs {
			if cd, ok := atCore[d.ID]; !ok || !cd.LastInform.Equal(d.LastInform) {
				agree = false
				break
			}
		}
		if agree || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(coreDevs) != len(edgeDevs) || len(edgeDevs) != n {
		t.Errorf("%d devices at the core, %d at the edge, %d simulated", len(coreDevs), len(edgeDevs), n)
	}
	mismatch := 0
	for _, d := range edgeDevs {
		cd, ok := atCore[d.ID]
		switch {
		case !ok:
			t.Errorf("device %s is at the edge, not at the core", d.ID)
		case cd.Edge != "pop":
			t.Errorf("device %s is homed at %q at the core", d.ID, cd.Edge)
		case !cd.LastInform.Equal(d.LastInform):
			if mismatch++; mismatch <= 5 {
				t.Errorf("device %s: lastInform %v at the core, %v at the edge", d.ID, cd.LastInform, d.LastInform)
			}
		}
	}
	if mismatch > 5 {
		t.Errorf("... %d devices with a lastInform that differs", mismatch)
	}

	// Every task the edge holds is at the core exactly once, in the same
	// final state; every task created on the edge's API among them.
	edgeTasks := listAll[chaosTask](t, "http://"+e.api+"/api/v1/tasks", 1000)
	coreTasks := listAll[chaosTask](t, "http://"+core+"/api/v1/tasks", 10000)
	coreCount := map[string]int{}
	coreByID := map[string]chaosTask{}
	for _, task := range coreTasks {
		coreCount[task.ID]++
		coreByID[task.ID] = task
	}
	for id, c := range coreCount {
		if c != 1 {
			t.Errorf("task %s is %d times at the core", id, c)
		}
	}
	atEdge := map[string]int{}
	diff := 0
	for _, task := range edgeTasks {
		atEdge[task.ID]++
		ct, ok := coreByID[task.ID]
		if !ok {
			t.Errorf("task %s (%s, %s) is at the edge, not at the core", task.ID, task.Name, task.Status)
			continue
		}
		if ct.Edge != "pop" {
			t.Errorf("task %s has edge %q at the core", task.ID, ct.Edge)
		}
		if ct.Status != task.Status && (final(task.Status) || final(ct.Status)) {
			if diff++; diff <= 5 {
				t.Errorf("task %s is %s at the edge, %s at the core", task.ID, task.Status, ct.Status)
			}
		}
	}
	localMu.Lock()
	defer localMu.Unlock()
	for _, id := range local {
		if coreCount[id] != 1 || atEdge[id] != 1 {
			t.Errorf("local task %s: %d at the core, %d at the edge", id, coreCount[id], atEdge[id])
		}
	}
	t.Logf("%d tasks created on the edge's API during the cuts; %d tasks at the edge, %d at the core; took %v",
		len(local), len(edgeTasks), len(coreTasks), time.Since(start).Round(time.Millisecond))
	// The fleet left sessions open at the edge, which a graceful stop
	// would wait out (its 10 s shutdown timeout): nothing is left to check.
	e.kill()

}

func final(status string) bool { return status == "done" || status == "fault" || status == "expired" }

// ---- 3. a device moves from edge A to edge B with pending tasks ----

// TestSyncChaosDeviceMove moves a device with two tasks held for it from
// edge A to edge B, twice: once with A reachable (A drops the tasks, the
// core sends them to B), once with A's backhaul cut (the tasks stay with
// A, which alone knows whether it ran them, until A is back and confirms
// the drop). Each task runs exactly once, at B.
func TestSyncChaosDeviceMove(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three processes")
	}
	start := time.Now()
	s := newSystem(t, 1, "popA", "popB")
	core := "http://" + s.cores[0].api
	relay := newUDPRelay(t, s.sync["n1"])
	a := s.startEdge("popA", relay.Addr())
	b := s.startEdge("popB", s.syncAddrs())

	taskAt := func(api, id string) (chaosTask, int) {
		var got chaosTask
		code, _, err := getJSON(chaosClient, api+"/api/v1/tasks/"+id, &got)
		if err != nil {
			t.Fatalf("GET task %s from %s: %v", id, api, err)
		}
		return got, code
	}
	wakeAtB := func(d *sim.Device) {
		t.Helper()
		var wake chaosTask
		code, err := coreHTTP("POST", core+devicePath(d.ID())+"/tasks?connection_request&wait=20s",
			fmt.Sprintf(`{"name": "getParameterValues", "parameterNames": [%q]}`, d.Root()+"DeviceInfo.SoftwareVersion"), &wake)
		if err != nil || code != 200 || wake.Status != "done" || wake.Edge != "popB" {
			t.Fatalf("wake task through the core: %d %v %+v", code, err, wake)
		}
	}

	move := func(seed int64, cutA bool) {
		t.Helper()
		fa := s.simulateWith(a, sim.Config{Count: 1, Seed: seed})
		da := fa.Device(0)
		id := da.ID()
		waitHomed(t, s.cores[0].api, map[string]string{id: "popA"}, 30*time.Second)
		waitSessions(t, fa, 1)
		initial := instances(t, da)

		// Two tasks without a connection request: they wait at A for the
		// device's next session.
		var held []chaosTask
		for i := range 2 {
			task := queueTask(t, core, da, addObjectBody(da), fmt.Sprintf("move-%d-%d", seed, i))
			if task.Edge != "popA" {
				t.Fatalf("task %d for a device at A: %+v", i, task)
			}
			held = append(held, task)
		}
		coreWait(t, "the two tasks held at A", 20*time.Second, func() bool {
			n := 0
			for _, task := range getChaosTasks(t, "http://"+a.api+devicePath(id)) {
				if (task.ID == held[0].ID || task.ID == held[1].ID) && task.Status == "pending" {
					n++
				}
			}
			return n == 2
		})
		if cutA {
			relay.SetCut(true)
			coreWait(t, "A to see its link down", 20*time.Second, func() bool {
				h, err := healthOf(a)
				return err == nil && !h.Sync.Connected
			})
		}

		// The device goes away from A and comes up at B: same seed, same
		// index, same ID, a fresh data model.
		fa.Close()
		fb := s.simulateWith(b, sim.Config{Count: 1, Seed: seed, InformInterval: 3 * time.Second})
		db := fb.Device(0)
		if db.ID() != id {
			t.Fatalf("the device at B is %s, want %s", db.ID(), id)
		}
		t0 := time.Now()
		waitHomed(t, s.cores[0].api, map[string]string{id: "popB"}, 30*time.Second)
		rehomed := time.Since(t0)

		if cutA {
			// A cannot confirm: the tasks stay A's. A session at B (a task
			// after them in B's ordered downlink) does not run them.
			wakeAtB(db)
			for _, h := range held {
				if got, code := taskAt(core, h.ID); code != 200 || got.Edge != "popA" || got.Status != "pending" {
					t.Errorf("task %s while A is unreachable: %d %+v, want pending at popA", h.ID, code, got)
				}
				if got, code := taskAt("http://"+b.api, h.ID); code != 404 {
					t.Errorf("task %s reached B while A could not confirm dropping it: %d %+v", h.ID, code, got)
				}
			}
			relay.SetCut(false)
		}
		for _, h := range held {
			coreWait(t, "task "+h.ID+" moved to B", 40*time.Second, func() bool {
				got, code := taskAt(core, h.ID)
				return code == 200 && got.Edge == "popB"
			})
		}
		moved := time.Since(t0)
		// A dropped them: its local API no longer has them.
		for _, h := range held {
			if got, code := taskAt("http://"+a.api, h.ID); code != 404 {
				t.Errorf("task %s at A after the move: %d %+v", h.ID, code, got)
			}
		}
		// A session at B runs them: wake the device through the core.
		wakeAtB(db)
		for _, h := range held {
			var got chaosTask
			code, _, err := getJSON(&http.Client{Timeout: 30 * time.Second}, core+"/api/v1/tasks/"+h.ID+"?wait=20s", &got)
			if err != nil || code != 200 || got.Status != "done" || got.Edge != "popB" {
				t.Fatalf("moved task %s at the core: %d %v %+v", h.ID, code, err, got)
			}
		}
		seenB := map[string]int{}
		for _, task := range getChaosTasks(t, "http://"+b.api+devicePath(id)) {
			seenB[task.ID]++
			if (task.ID == held[0].ID || task.ID == held[1].ID) && task.Status != "done" {
				t.Errorf("task %s at B is %s", task.ID, task.Status)
			}
		}
		for _, h := range held {
			if seenB[h.ID] != 1 {
				t.Errorf("task %s is %d times at B", h.ID, seenB[h.ID])
			}
		}
		for _, task := range listAll[chaosTask](t, "http://"+a.api+"/api/v1/tasks", 1000) {
			if task.ID == held[0].ID || task.ID == held[1].ID {
				t.Errorf("task %s is still at A: %+v", task.ID, task)
			}
		}
		if got := instances(t, da) - initial; got != 0 {
			t.Errorf("the device ran %d addObject at A", got)
		}
		if got := instances(t, db) - initial; got != 2 {
			t.Errorf("the device ran %d addObject at B, want 2", got)
		}
		t.Logf("device %s (A cut: %v): re-homed at the core %v after it came up at B, its tasks moved to B after %v",
			id, cutA, rehomed.Round(time.Millisecond), moved.Round(time.Millisecond))
	}
	move(51, false)
	move(52, true)
	if rec := edgeAtCore(t, s.cores[0].api, "popA"); rec.Rejected != 0 {
		t.Errorf("the core rejected %d records from A", rec.Rejected)
	}
	if rec := edgeAtCore(t, s.cores[0].api, "popB"); rec.Rejected != 0 {
		t.Errorf("the core rejected %d records from B", rec.Rejected)
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// ---- 4. the leader paused while its edges stay connected ----

// TestSyncChaosLeaderPaused approximates "the leader isolated from its
// followers while an edge stays connected to it": the leader is stopped
// (SIGSTOP) while tasks stream through a follower, the followers elect a
// new leader, and the old one is woken (SIGCONT) inside the edges' 5 s
// idle timeout, so it comes back believing it leads with both edges'
// links alive. In each round a device also moves from edge A to edge B
// during the pause, with two tasks held for it at A: the only way a task
// could reach two edges.
func TestSyncChaosLeaderPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and pauses core processes")
	}
	start := time.Now()
	s := newSystem(t, 3, "popA", "popB")
	a := s.startEdge("popA", s.syncAddrs())
	b := s.startEdge("popB", s.syncAddrs())
	fa, fb := s.simulate(a, 5, 61), s.simulate(b, 5, 62)
	var devs []*sim.Device
	homes := map[string]string{}
	for i := range 5 {
		devs = append(devs, fa.Device(i), fb.Device(i))
		homes[fa.Device(i).ID()], homes[fb.Device(i).ID()] = "popA", "popB"
	}
	// One mover per round, each in a fleet of its own so it can leave A alone.
	const rounds = 3
	var movers []*sim.Fleet
	moverHomes := map[string]string{}
	for r := range rounds {
		f := s.simulateWith(a, sim.Config{Count: 1, Seed: int64(610 + r)})
		movers = append(movers, f)
		moverHomes[f.Device(0).ID()] = "popA"
	}
	if len(moverHomes) != rounds {
		t.Fatalf("movers share IDs: %v", moverHomes)
	}
	c := newChaosCluster(s)
	waitHomed(t, c.byID(c.leader).api, homes, 60*time.Second)
	waitHomed(t, c.byID(c.leader).api, moverHomes, 60*time.Second)
	waitSessions(t, fa, 5)
	waitSessions(t, fb, 5)
	initial := map[string]int{}
	for _, d := range devs {
		initial[d.ID()] = instances(t, d)
	}
	for _, f := range movers {
		waitSessions(t, f, 1)
		initial[f.Device(0).ID()] = instances(t, f.Device(0))
	}

	var paused atomic.Pointer[coreProc]
	t.Cleanup(func() {
		if p := paused.Load(); p != nil {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	w := startTaskWriter(t, "pause", 2, devs, c.follower)
	acks := w.waitAcks("before the first pause", 0, 10, 30*time.Second)
	var held []ackedTask
	var arrived []*sim.Fleet // the movers at B
	for round := 1; round <= rounds; round++ {
		old := c.byID(c.leader)
		coreWait(t, "both edges connected to the leader "+old.id, 30*time.Second, func() bool {
			var es []edgeRecord
			code, _, err := getJSON(chaosClient, "http://"+old.api+"/api/v1/edges", &es)
			n := 0
			for _, e := range es {
				if e.Connected {
					n++
				}
			}
			return err == nil && code == 200 && n == 2
		})
		// Two tasks held at A for this round's mover (no connection request).
		m := movers[round-1].Device(0)
		for i := range 2 {
			key := fmt.Sprintf("held-%d-%d", round, i)
			task := queueTask(t, "http://"+old.api, m, addObjectBody(m), key)
			if task.Edge != "popA" {
				t.Fatalf("round %d: a task for the mover at A: %+v", round, task)
			}
			held = append(held, ackedTask{key: key, id: task.ID, device: m.ID(), edge: task.Edge})
		}
		coreWait(t, fmt.Sprintf("round %d: the mover's tasks held at A", round), 20*time.Second, func() bool {
			n := 0
			for _, task := range getChaosTasks(t, "http://"+a.api+devicePath(m.ID())) {
				if task.Name == "addObject" && task.Status == "pending" {
					n++
				}
			}
			return n == 2
		})

		c.setDown(old.id, true)
		paused.Store(old)
		t0 := time.Now()
		if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// The device leaves A and informs at B while the leader sleeps.
		movers[round-1].Close()
		arrived = append(arrived, s.simulateWith(b, sim.Config{Count: 1, Seed: int64(610 + round - 1), InformInterval: time.Second}))
		nl := c.waitLeader(old.id, 20*time.Second)
		c.setLeader(nl.id)
		elected := time.Since(t0)
		// Let the new leader take a few writes, but wake the old one well
		// inside the edges' 5 s idle timeout: their links to it still live.
		base, _ := w.count()
		for n, _ := w.count(); n < base+3 && time.Since(t0) < 2*time.Second; n, _ = w.count() {
			time.Sleep(10 * time.Millisecond)
		}
		if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		paused.Store(nil)
		pausedFor := time.Since(t0)
		c.setDown(old.id, false)
		c.waitLeader("", 30*time.Second)
		acks = w.waitAcks(fmt.Sprintf("after round %d", round), acks, 5, 30*time.Second)
		t.Logf("round %d: SIGSTOP leader %s for %v, %s elected after %v; %d tasks acknowledged so far",
			round, old.id, pausedFor.Round(time.Millisecond), nl.id, elected.Round(time.Millisecond), acks)
	}
	w.halt()
	acked, byDevice := w.result()
	t.Logf("%d tasks acknowledged, %d retries, %d acknowledgements were replays of an earlier attempt (200)", len(acked), w.retries, w.replayed)

	for _, f := range arrived {
		d := f.Device(0)
		homes[d.ID()] = "popB"
		devs = append(devs, d)
		byDevice[d.ID()] = 2
	}
	waitHomed(t, c.byID(c.leader).api, homes, 30*time.Second)
	checkAckedAtCores(t, s, append(acked, held...), homes)
	checkAckedAtEdges(t, s, s.cores[0].api, append(acked, held...), homes, devs, initial, byDevice)
	for _, f := range movers {
		if got := instances(t, f.Device(0)) - initial[f.Device(0).ID()]; got != 0 {
			t.Errorf("mover %s ran %d addObject at A", f.Device(0).ID(), got)
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}
