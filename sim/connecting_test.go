package sim

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedACS answers as responder does (InformResponse to an Inform, 204
// to an empty POST), holding the requests of the kind hold names until release is
// closed, and counting those held.
type gatedACS struct {
	hold    string // "inform" or "empty"
	release chan struct{}
	once    sync.Once
	held    atomic.Int32
	mu      sync.Mutex
	maxHeld int32
}

func newGatedACS(t *testing.T, hold string) (*gatedACS, string) {
	a := &gatedACS{hold: hold, release: make(chan struct{})}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	t.Cleanup(a.open) // before the server closes: no handler left waiting
	return a, srv.URL
}

// holdsAtMost fails the test if more than n requests are held at once
// over the next 200 ms (what held is made of: what).
func (a *gatedACS) holdsAtMost(t *testing.T, n int32, what string) {
	t.Helper()
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
		if got := a.held.Load(); got > n {
			t.Fatalf("%d %s at once, bound %d", got, what, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// open lets every held request through, and those to come.
func (a *gatedACS) open() { a.once.Do(func() { close(a.release) }) }

func (a *gatedACS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	inform := strings.Contains(string(body), "Inform")
	if (inform && a.hold == "inform") || (!inform && a.hold == "empty") {
		n := a.held.Add(1)
		a.mu.Lock()
		a.maxHeld = max(a.maxHeld, n)
		a.mu.Unlock()
		<-a.release
		a.held.Add(-1)
	}
	// Answered as the plainest ACS would (responder), the body put back.
	r.Body = io.NopCloser(bytes.NewReader(body))
	responder().ServeHTTP(w, r)
}

// TestMaxConnecting: with MaxConnecting set, no more devices than that
// wait for the answer to their Inform at once, the others waiting to start;
// a device's token goes back once its Inform is answered, so the sessions
// under way are not bounded by it.
func TestMaxConnecting(t *testing.T) {
	t.Run("bound", func(t *testing.T) {
		acs, url := newGatedACS(t, "inform")
		f := startFleet(t, Config{ACSURL: url, Count: 8, MaxConnecting: 2})
		waitFor(t, func() bool { return f.Stats().SessionsStarted == 8 && acs.held.Load() == 2 })
		// Every device has begun; none past the two may reach the ACS.
		// (Unbounded, the other six arrive within milliseconds.)
		acs.holdsAtMost(t, 2, "Informs waiting at the ACS")
		acs.open()
		waitFor(t, func() bool { return f.Stats().SessionsCompleted == 8 })
		acs.mu.Lock()
		defer acs.mu.Unlock()
		if acs.maxHeld != 2 {
			t.Fatalf("at most %d Informs waited at the ACS at once, want 2", acs.maxHeld)
		}
	})
	t.Run("sessions under way are not bounded", func(t *testing.T) {
		acs, url := newGatedACS(t, "empty")
		f := startFleet(t, Config{ACSURL: url, Count: 4, MaxConnecting: 1})
		// All four past their Inform, each holding its session open.
		waitFor(t, func() bool { return acs.held.Load() == 4 })
		acs.open()
		waitFor(t, func() bool { return f.Stats().SessionsCompleted == 4 })
	})
}

// TestMaxSockets: with MaxSockets set, no more connections to the ACS are
// open at once than that, the devices past it waiting for one to close
// rather than failing their session (a process out of descriptors is the
// simulator's limit, not the ACS's); by default the bound comes from the
// process's descriptor limit.
func TestMaxSockets(t *testing.T) {
	acs, url := newGatedACS(t, "empty")
	f := startFleet(t, Config{ACSURL: url, Count: 6, MaxSockets: 2})
	// Two sessions past their Inform, each holding its connection.
	waitFor(t, func() bool { return acs.held.Load() == 2 })
	acs.holdsAtMost(t, 2, "sessions held at the ACS")
	acs.open()
	waitFor(t, func() bool { return f.Stats().SessionsCompleted == 6 })
	if st := f.Stats(); st.SessionErrors != 0 {
		t.Fatalf("%d sessions failed waiting for a socket, want 0", st.SessionErrors)
	}
	acs.mu.Lock()
	defer acs.mu.Unlock()
	if acs.maxHeld != 2 {
		t.Fatalf("at most %d sessions held at the ACS at once, want 2", acs.maxHeld)
	}

	var c Config
	c.ACSURL, c.Count = url, 1
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if lim := fdLimit(); lim > 0 && lim <= 1<<22 && (c.MaxSockets <= 0 || uint64(c.MaxSockets) >= lim) {
		t.Fatalf("default MaxSockets %d with a descriptor limit of %d", c.MaxSockets, lim)
	}
}
