package core

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/leakcheck"
)

// TestInternalRoutesOnlyOnRaftPort: the routes peers use answer 404 on
// the client API, and work on the Raft port, which serves nothing of the
// client API except requests another member forwarded.
func TestInternalRoutesOnlyOnRaftPort(t *testing.T) {
	n := newCluster(t, 1, func(c *Config) { c.MaxBodyBytes = 4 << 10 })[0]
	content := []byte("firmware for the peer route")
	req, _ := http.NewRequest("PUT", api(n, "/files/fw.bin"), bytes.NewReader(content))
	req.Header.Set("fileType", "1 Firmware Upgrade Image")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	h := sha256.Sum256(content)
	sum := hex.EncodeToString(h[:])

	client := "http://" + n.APIAddr()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/cluster/peer", ""},
		{"POST", "/api/v1/cluster/apply", "garbage"},
		{"GET", "/internal/v1/blobs/" + sum, ""},
		{"GET", "/internal/v1/peer", ""},
		{"POST", "/internal/v1/join", `{"id": "n9", "raftAddr": "127.0.0.1:1"}`},
		{"POST", "/internal/v1/apply", "garbage"},
	} {
		code, _, body := httpDo(t, r.method, client+r.path, r.body, nil)
		if code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
			t.Errorf("client API %s %s: %d %s, want 404", r.method, r.path, code, body)
		}
	}

	peer := "http://" + n.RaftAddr()
	var pi PeerInfo
	if code := do(t, "GET", peer+"/internal/v1/peer", nil, &pi); code != 200 || pi.ID != n.ID() || pi.RaftAddr != n.RaftAddr() || !pi.HasState {
		t.Fatalf("peer info on the raft port: %d %+v", code, pi)
	}
	code, _, body := httpDo(t, "GET", peer+"/internal/v1/blobs/"+sum, "", nil)
	if code != 200 || body != string(content) {
		t.Fatalf("blob on the raft port: %d %q", code, body)
	}
	for _, r := range []struct {
		method, path, body string
		hdr                map[string]string
		want               int
	}{
		{"POST", "/internal/v1/apply", "garbage", nil, 400},
		{"POST", "/internal/v1/join", `{"id":`, nil, 400},
		{"POST", "/internal/v1/join", `{"id": "` + strings.Repeat("x", 8<<10) + `"}`, nil, 413},
		{"GET", "/internal/v1/blobs/" + strings.Repeat("0", 64), "", nil, 404},
		{"GET", "/api/v1/devices", "", nil, 404},                                   // the client API is not served here...
		{"GET", "/api/v1/devices", "", map[string]string{hdrForwarded: "n2"}, 200}, // ...except forwarded
		{"GET", "/nothing", "", nil, 404},
	} {
		code, _, body := httpDo(t, r.method, peer+r.path, r.body, r.hdr)
		if code != r.want {
			t.Errorf("raft port %s %s: %d %s, want %d", r.method, r.path, code, body, r.want)
		}
	}
	// A join on the raft port is a join: a node of its own asks and is added.
	cfg := testConfig(t, "n2")
	cfg.Join = n.RaftAddr()
	n2 := startNode(t, cfg)
	waitFor(t, "n2 to join over the raft port", 15*time.Second, func() bool { return clusterReady([]*testNode{n, n2}) })

	// Neither Raft nor HTTP: the connection is closed.
	c, err := net.Dial("tcp", n.RaftAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0xff, 'x'})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !hungUp(err) {
		t.Fatalf("a connection starting with 0xff: read %v, want it closed", err)
	}
}

// hungUp: a read ended because the other side closed (EOF, or a reset
// when it closed with our bytes unread).
func hungUp(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) }

// TestPortMux: a connection goes to Raft or HTTP by its first byte, which
// the receiver still reads; one that sends nothing within the peek
// timeout, or something else, is closed; Close stops everything.
func TestPortMux(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newPortMux(ln, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	addr := ln.Addr().String()
	accepted := func(sub *subListener, send []byte) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(send)
		got, err := sub.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		buf := make([]byte, len(send))
		got.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(got, buf); err != nil || !bytes.Equal(buf, send) {
			t.Fatalf("read %q (%v), want %q", buf, err, send)
		}
	}
	accepted(m.raft, []byte{0, 1, 2, 3})
	accepted(m.raft, []byte{4, 'x'})
	accepted(m.http, []byte("GET / HTTP/1.1\r\n"))
	accepted(m.http, []byte("POST /internal/v1/join HTTP/1.1\r\n"))

	closedByMux := func(send []byte) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(send)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !hungUp(err) {
			t.Fatalf("after %q: read %v, want it closed by the mux", send, err)
		}
	}
	closedByMux([]byte{0x16, 3, 1})  // a TLS ClientHello
	closedByMux([]byte("get lower")) // not an HTTP method
	closedByMux(nil)                 // silent past the peek timeout

	// A connection still silent when the mux closes is closed with it.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	for _, sub := range []*subListener{m.raft, m.http} {
		go func() {
			defer wg.Done()
			if c, err := sub.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after Close: %v %v, want net.ErrClosed", c, err)
			}
		}()
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !hungUp(err) {
		t.Fatalf("silent connection after Close: %v, want it closed", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("the raft port still accepts after Close")
	}
	leakcheck.NoGoroutines(t, 5*time.Second, "edgeacs/core.(*portMux)", "edgeacs/core.(*subListener)")
}

// TestWriteDuringElection: right after the leader stops, a write through
// a follower, and a file upload (its metadata goes to the leader), wait
// for the election and succeed; no 503 reaches the client.
func TestWriteDuringElection(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	leader.stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		code, h, body := httpDo(t, "PUT", api(rest[0], "/presets/during-election"), `{"provisions": [["refresh", "A."]]}`, nil)
		if code != 200 {
			t.Errorf("write through a follower during the election: %d (Retry-After %q) %s, want 200", code, h.Get("Retry-After"), body)
		}
	}()
	go func() {
		defer wg.Done()
		code, _, body := httpDo(t, "PUT", api(rest[1], "/files/during-election.bin"), "bytes", map[string]string{"fileType": "1 Firmware Upgrade Image"})
		if code != 201 {
			t.Errorf("upload through a follower during the election: %d %s, want 201", code, body)
		}
	}()
	wg.Wait()
	for _, n := range rest {
		waitFor(t, "both writes on "+n.ID(), 10*time.Second, func() bool {
			_, e1 := n.fsm.Preset("during-election")
			_, e2 := n.fsm.File("during-election.bin")
			return e1 == nil && e2 == nil
		})
	}
}

// TestWriteWithoutLeader: a node that knows no leader waits LeaderWait
// for one, then answers 503 with Retry-After.
func TestWriteWithoutLeader(t *testing.T) {
	// Two nodes, the leader stopped: the other knows the tokens but can
	// never win an election alone.
	nodes := newCluster(t, 2, func(c *Config) { c.LeaderWait = 200 * time.Millisecond })
	l := leaderOf(t, nodes)
	n := nodes[0]
	if n == l {
		n = nodes[1]
	}
	l.stop()
	cfg := n.cfg
	waitFor(t, "the follower to lose its leader", 10*time.Second, func() bool { _, id := n.raft.LeaderWithID(); return id == "" })
	start := time.Now()
	code, h, body := httpDo(t, "PUT", api(n, "/presets/p"), `{"provisions": [["refresh", "A."]]}`, nil)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "no raft leader") {
		t.Fatalf("write without a leader: %d (Retry-After %q) %s, want 503 with Retry-After", code, h.Get("Retry-After"), body)
	}
	if waited := time.Since(start); waited < cfg.LeaderWait {
		t.Fatalf("answered after %v, before LeaderWait %v", waited, cfg.LeaderWait)
	}
}

// TestForwardedCreateKeepsIdempotencyKey: a task created through a
// follower keeps the client's Idempotency-Key across the forward to the
// leader (the leader's answer names it), so a retry through any other
// member answers the first task instead of queueing a second; a request
// a member forwarded is never forwarded again, so no second hop can drop
// it either.
func TestForwardedCreateKeepsIdempotencyKey(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	mustApplyNode(t, leaderOf(t, nodes), Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1")})
	var followers []*testNode
	for _, n := range nodes {
		if !n.IsLeader() {
			followers = append(followers, n)
		}
	}
	key := map[string]string{"Idempotency-Key": "forwarded-key-1"}
	code, h, body := httpDo(t, "POST", api(followers[0], "/devices/dev1/tasks"), `{"name": "reboot"}`, key)
	if code != http.StatusAccepted || h.Get("Idempotency-Key") != "forwarded-key-1" {
		t.Fatalf("create through follower %s: %d key %q %s", followers[0].ID(), code, h.Get("Idempotency-Key"), body)
	}
	first := decodeTask(t, body)
	code, h, body = httpDo(t, "POST", api(followers[1], "/devices/dev1/tasks"), `{"name": "reboot"}`, key)
	if again := decodeTask(t, body); code != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || again.ID != first.ID {
		t.Fatalf("retry through follower %s: %d replayed %q task %s, want 200 with task %s", followers[1].ID(), code, h.Get("Idempotent-Replayed"), again.ID, first.ID)
	}
	if ts := mustDeviceTasks(t, leaderOf(t, nodes), "dev1"); len(ts) != 1 {
		t.Fatalf("dev1 has %d tasks, want 1", len(ts))
	}
}

func decodeTask(t *testing.T, body string) fleet.Task {
	t.Helper()
	var tk fleet.Task
	if err := json.Unmarshal([]byte(body), &tk); err != nil {
		t.Fatalf("decode task %q: %v", body, err)
	}
	return tk
}
