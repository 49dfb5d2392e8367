package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// Shared CPE credentials of the test edges.
const (
	testUser = "cpe"
	testPass = "cpe-secret"
)

// testEdge is a running Node on loopback ports for one test.
type testEdge struct {
	t      testing.TB
	node   *Node
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	api    string        // http://host:port/api/v1
	acs    string        // http://host:port/
	logs   *lockedBuffer // everything the node logged, at debug level
}

// lockedBuffer is a bytes.Buffer safe for the node's concurrent loggers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("EDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startEdge runs a standalone edge in dir (a fresh temp dir when empty)
// with digest auth and the test credentials; mutate adjusts the config.
func startEdge(t testing.TB, dir string, mutate func(*Config)) *testEdge {
	t.Helper()
	return startEdgeWith(t, dir, mutate, nil)
}

// startEdgeWith is startEdge with a hook that runs on the node before Run
// (SetUplink, SetBlobFetcher).
func startEdgeWith(t testing.TB, dir string, mutate func(*Config), before func(*Node)) *testEdge {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config{
		ID:              "test-edge",
		DataDir:         dir,
		CWMPAddr:        "127.0.0.1:0",
		APIAddr:         "127.0.0.1:0",
		STUNAddr:        "127.0.0.1:0",
		CPEAuth:         AuthDigest,
		Username:        testUser,
		Password:        testPass,
		Standalone:      true,
		ShutdownTimeout: 2 * time.Second,
		CRMinInterval:   10 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &lockedBuffer{}
	var logOut io.Writer = logs
	if testing.Verbose() && os.Getenv("EDGE_TEST_LOG") != "" {
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	n, err := New(cfg, slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if before != nil {
		before(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEdge{t: t, node: n, cfg: cfg, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { e.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-e.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("edge not ready after 10s")
	}
	a := n.Addrs()
	e.api = "http://" + a.API + "/api/v1"
	e.acs = "http://" + a.CWMP + "/"
	t.Cleanup(e.stop)
	if cfg.Standalone {
		e.useAdminToken()
	}
	return e
}

// stop cancels Run and waits for it; idempotent.
func (e *testEdge) stop() {
	e.t.Helper()
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run returned %v", err)
		}
	case <-time.After(20 * time.Second):
		e.t.Error("Run did not return 20s after cancel")
	}
}

// startFleet runs n simulated CPEs against e until the test ends.
func startFleet(t testing.TB, e *testEdge, n int, mutate func(*sim.Config)) *sim.Fleet {
	t.Helper()
	cfg := sim.Config{
		ACSURL:          e.acs,
		Count:           n,
		Model:           sim.ModelMixed,
		Seed:            7,
		Username:        testUser,
		Password:        testPass,
		PoolConnections: true,
		RebootDelay:     50 * time.Millisecond,
		TimeScale:       0.01,
		Ramp:            -1,
		Logger:          testLogger(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	f, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatalf("sim Start: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitInformed waits until every device of f is in the cache and has its
// connection-request credentials provisioned (its first session done).
func waitInformed(t testing.TB, e *testEdge, f *sim.Fleet) {
	t.Helper()
	waitFor(t, 30*time.Second, "devices to inform and get CR credentials", func() bool {
		for i := 0; i < f.Len(); i++ {
			d, err := e.node.Cache().Device(f.Device(i).ID())
			if err != nil {
				return false
			}
			if _, pass := crCredentials(d); pass == "" {
				return false
			}
		}
		return true
	})
}

func (e *testEdge) device(id string) *Device {
	e.t.Helper()
	d, err := e.node.Cache().Device(id)
	if err != nil {
		e.t.Fatalf("device %s: %v", id, err)
	}
	return d
}

// postTask posts a task through the local API and returns the task as the
// API answered it (final when wait allowed).
func (e *testEdge) postTask(id, body, query string) *fleet.Task {
	e.t.Helper()
	u := e.api + "/devices/" + url.PathEscape(id) + "/tasks"
	if query != "" {
		u += "?" + query
	}
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("post task: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("post task %s: %s: %s", body, resp.Status, raw)
	}
	var reply struct {
		fleet.Task
		Warning string `json:"warning"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		e.t.Fatalf("decode task reply %s: %v", raw, err)
	}
	if reply.Warning != "" {
		e.t.Logf("task %s warning: %s", body, reply.Warning)
	}
	return &reply.Task
}

// waitTask waits for a task to reach a final status.
func (e *testEdge) waitTask(id string, d time.Duration) *fleet.Task {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	t, err := e.node.Cache().WaitTask(ctx, id)
	if err != nil {
		cur, _ := e.node.Cache().Task(id)
		e.t.Fatalf("task %s not final after %s: %v (now %+v)", id, d, err, cur)
	}
	return t
}

// snapshot is a device's stored state, to prove bad input changed nothing.
type snapshot struct {
	Device *Device
	Params map[string]Parameter
	Tasks  []*fleet.Task
}

func (e *testEdge) snapshot(id string) snapshot {
	e.t.Helper()
	d := e.device(id)
	p, err := e.node.Cache().Parameters(id)
	if err != nil {
		e.t.Fatal(err)
	}
	ts, err := e.node.Cache().DeviceTasks(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return snapshot{d, p, ts}
}

func (s snapshot) equal(o snapshot) bool { return reflect.DeepEqual(s, o) }

// cpe is a hand-rolled CPE for the protocol corner cases the simulator
// does not produce: it speaks raw HTTP, keeps the cookie itself and
// answers digest challenges through cwmp.DigestTransport.
type cpe struct {
	t      testing.TB
	url    string
	client *http.Client
	cookie string
	oui    string
	pc     string
	serial string
	// crURL, when set, is the ConnectionRequestURL the CPE informs.
	crURL string
}

func newCPE(t testing.TB, e *testEdge, serial string) *cpe {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &cpe{
		t:      t,
		url:    e.acs,
		client: &http.Client{Transport: &cwmp.DigestTransport{Username: testUser, Password: testPass, Base: tr}, Timeout: 10 * time.Second},
		oui:    "A1B2C3",
		pc:     "Hand-CPE",
		serial: serial,
	}
}

func (c *cpe) id() string {
	id, err := fleet.DeviceID(c.oui, c.pc, c.serial)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// informBody is an Inform of this CPE with the given events and extra parameters.
func (c *cpe) informBody(events []string, params ...cwmp.ParameterValue) []byte {
	crURL := "http://127.0.0.1:1/cr"
	if c.crURL != "" {
		crURL = c.crURL
	}
	inf := &cwmp.Inform{
		DeviceId:     cwmp.DeviceID{Manufacturer: "Hand", OUI: c.oui, ProductClass: c.pc, SerialNumber: c.serial},
		MaxEnvelopes: 1,
		CurrentTime:  time.Now().UTC().Truncate(time.Second),
		ParameterList: append([]cwmp.ParameterValue{
			{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", Value: "1.0", Type: cwmp.TypeString},
			{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestURL", Value: crURL, Type: cwmp.TypeString},
			{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", Value: "cr-user", Type: cwmp.TypeString},
			{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", Value: "cr-pass", Type: cwmp.TypeString},
		}, params...),
	}
	for _, ev := range events {
		inf.Event = append(inf.Event, cwmp.Event{Code: ev})
	}
	return envelope(c.t, "inform-1", inf)
}

func envelope(t testing.TB, id string, m cwmp.Message) []byte {
	b, err := cwmp.Encode(&cwmp.Envelope{Namespace: cwmp.NS10, ID: id, HasID: true, Body: m})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends one POST with the session cookie and returns the status, the
// decoded reply (nil for none or non-XML) and the raw body.
func (c *cpe) post(body []byte, hdr ...string) (int, *cwmp.Envelope, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	if c.cookie != "" {
		req.Header.Set("Cookie", "session="+c.cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == "session" {
			c.cookie = ck.Value
		}
	}
	var env *cwmp.Envelope
	if resp.StatusCode == http.StatusOK && len(bytes.TrimSpace(raw)) > 0 {
		env, err = cwmp.Decode(raw)
		if err != nil {
			c.t.Fatalf("decode reply %s: %v", raw, err)
		}
	}
	return resp.StatusCode, env, raw
}

// open starts a session: Inform, expecting InformResponse.
func (c *cpe) open(events ...string) {
	c.t.Helper()
	c.cookie = ""
	if len(events) == 0 {
		events = []string{cwmp.EventPeriodic}
	}
	code, env, raw := c.post(c.informBody(events))
	if code != http.StatusOK || env == nil || env.Body == nil || env.Body.Method() != cwmp.MethodInformResponse {
		c.t.Fatalf("Inform: %d %s", code, raw)
	}
	if c.cookie == "" {
		c.t.Fatal("no session cookie set")
	}
}

// finish posts empty bodies, answering nothing, until the 204.
func (c *cpe) emptyPost() (int, *cwmp.Envelope) {
	c.t.Helper()
	code, env, _ := c.post(nil)
	return code, env
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}
