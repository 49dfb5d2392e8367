package sim

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestBusyRetryAfter: a device refused with 503 comes back after the
// ACS's Retry-After (scaled by TimeScale), not after its own back-off,
// and the refusals count as busy, not as errors.
func TestBusyRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		w.Header().Set("Retry-After", "300") // × 0.001 = 300 ms; the back-off would be 5-10 ms
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	f := startFleet(t, Config{ACSURL: srv.URL, Count: 1})
	waitFor(t, func() bool { return f.Stats().SessionsBusy >= 3 })
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < 290*time.Millisecond {
			t.Fatalf("retry %d came %s after a 503 with Retry-After 300 s at time scale 0.001", i, gap)
		}
	}
	if st := f.Stats(); st.SessionErrors != 0 {
		t.Fatalf("503s counted as errors: %+v", st)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "30": 30 * time.Second, " 5 ": 5 * time.Second, "-1": 0, "Wed, 21 Oct 2015 07:28:00 GMT": 0} {
		if got := retryAfter(in); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

// BenchmarkRefusedFlood measures the simulator's cost of a storm's first
// attempts: b.N devices start at once against an ACS that refuses every
// Inform with a Retry-After far beyond the run (each device dials, sends
// its Inform, reads the 503 and sleeps). ns/op is per device, the
// in-process ACS included; compare builds, not absolute numbers. Give
// it a count (-benchtime 4000x): every device holds a socket at once, so
// the file-descriptor limit bounds b.N.
func BenchmarkRefusedFlood(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	b.Cleanup(srv.Close)
	f := startBenchFleet(b, Config{ACSURL: srv.URL, Count: b.N, Ramp: -1, Logger: quietLogger()})
	waitForLong(b, 5*time.Minute, func() bool { return f.Stats().SessionsBusy >= uint64(b.N) })
	b.StopTimer()
}
