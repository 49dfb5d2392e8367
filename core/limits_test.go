package core

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLimitInFlight: past MaxAPIRequests a request is answered 503 with a
// Retry-After in the window at once, health checks still pass, and a freed
// slot serves again.
func TestLimitInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
	rejected := newAPIRejected(prometheus.NewRegistry())
	srv := httptest.NewServer(limitInFlight(h, 2, rejected))
	defer srv.Close()

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(srv.URL + "/slow"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	<-entered
	<-entered
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/api/v1/devices", http.StatusServiceUnavailable},
		{"/healthz", http.StatusOK},
		{"/metrics", http.StatusOK},
	} {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Fatalf("%s with the API full: %d, want %d", tt.path, resp.StatusCode, tt.want)
		}
		if tt.want == http.StatusServiceUnavailable {
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || ra < apiRetryAfterMin || ra > apiRetryAfterMax {
				t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	close(release)
	wg.Wait()
	resp, err := http.Get(srv.URL + "/api/v1/devices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the slow requests ended: %d", resp.StatusCode)
	}
}
