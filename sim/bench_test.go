package sim

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// responder is the plainest CWMP ACS: InformResponse to an Inform, an
// empty response to a TransferComplete, 204 to anything else.
func responder() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		env, err := cwmp.Decode(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var reply cwmp.Message
		switch env.Body.(type) {
		case *cwmp.Inform:
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "x", Path: "/"})
			reply = &cwmp.InformResponse{MaxEnvelopes: 1}
		case *cwmp.TransferComplete:
			reply = &cwmp.TransferCompleteResponse{}
		default:
			w.WriteHeader(http.StatusNoContent)
			return
		}
		out, err := cwmp.Encode(&cwmp.Envelope{Namespace: env.Namespace, ID: env.ID, HasID: true, Body: reply})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		_, _ = w.Write(out)
	})
}

// BenchmarkSessions measures complete sessions (Inform → InformResponse →
// empty POST → 204) per second, 64 devices informing back to back.
func BenchmarkSessions(b *testing.B) {
	for _, pooled := range []bool{false, true} {
		b.Run("pooled="+strconv.FormatBool(pooled), func(b *testing.B) {
			srv := httptest.NewServer(responder())
			b.Cleanup(srv.Close)
			start := time.Now()
			f := startBenchFleet(b, Config{ACSURL: srv.URL, Count: 64, InformInterval: time.Millisecond, Ramp: -1,
				PoolConnections: pooled, Logger: quietLogger()})
			for f.Stats().SessionsCompleted < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			st := f.Stats()
			b.ReportMetric(float64(st.SessionsCompleted)/el.Seconds(), "sessions/s")
			b.ReportMetric(float64(st.SessionP99.Microseconds()), "p99-µs")
			if st.SessionErrors > 0 {
				b.Logf("%d session errors", st.SessionErrors)
			}
		})
	}
}

// startBenchFleet builds cfg's fleet, resets b's timer and starts it; the
// fleet stops when b ends (before servers b.Cleanup registered earlier).
func startBenchFleet(b *testing.B, cfg Config) *Fleet {
	b.Helper()
	f, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() {
		cancel()
		f.Close()
	})
	b.ResetTimer()
	if err := f.Start(ctx); err != nil {
		b.Fatal(err)
	}
	return f
}

// TestFleetMemory builds 10,000 devices and reports the heap they take.
// Skipped unless EDGEACS_SIM_MEMORY=1: it is a measurement, not a check.
func TestFleetMemory(t *testing.T) {
	if os.Getenv("EDGEACS_SIM_MEMORY") == "" {
		t.Skip("set EDGEACS_SIM_MEMORY=1 to measure the memory of 10,000 devices")
	}
	srv := httptest.NewServer(responder())
	defer srv.Close()
	for _, model := range []string{ModelTR098, ModelTR181} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f, err := New(Config{ACSURL: srv.URL, Count: 10000, Model: model, Ramp: 2 * time.Second, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitForLong(t, 60*time.Second, func() bool { return f.Stats().SessionsCompleted >= 10000 })
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := f.Stats()
		heap := after.HeapAlloc - before.HeapAlloc
		t.Logf("%s: 10000 devices after their bootstrap: heap %.1f MiB (%d B/device), %d goroutines, sys %.1f MiB, sessions p50 %s p99 %s",
			model, float64(heap)/(1<<20), heap/10000, runtime.NumGoroutine(), float64(after.Sys)/(1<<20), st.SessionP50, st.SessionP99)
		cancel()
		f.Close()
		fmt.Fprint(io.Discard, f.Len())
	}
}

func waitForLong(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPSACS(t *testing.T) {
	srv := httptest.NewUnstartedServer(responder())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case logs a handshake error
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"trusted CA", Config{RootCAs: pool}, true},
		{"insecure", Config{Insecure: true}, true},
		{"untrusted", Config{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ACSURL, cfg.Count = srv.URL, 1
			f := startFleet(t, cfg)
			if tc.ok {
				waitFor(t, func() bool { return f.Stats().SessionsCompleted == 1 })
			} else {
				waitFor(t, func() bool { return f.Stats().SessionErrors >= 1 })
				if f.Stats().SessionsCompleted != 0 {
					t.Error("session completed against an untrusted certificate")
				}
			}
		})
	}
}

// bootstrapACS answers each session as the edge answers a bootstrap:
// InformResponse, then GetParameterNames of the whole tree, a
// GetParameterValues of every parameter (256 names at most, as the
// edge's batch), a SetParameterValues of the connection-request username, and 204. The requests are
// encoded once (each with a fresh cwmp:ID) and the step is read from the
// CPE's message with a substring test, so the ACS's own cost stays small
// and the same for every build of the simulator.
func bootstrapACS(tb testing.TB, model string) http.Handler {
	tb.Helper()
	m, err := LoadModel(model)
	if err != nil {
		tb.Fatal(err)
	}
	tr := NewTree(m, Identity{Seed: 1})
	info, f := tr.GetNames(tr.l.nodes[0].name, false)
	if f != nil {
		tb.Fatal(f)
	}
	var names []string
	for _, pi := range info {
		if !strings.HasSuffix(pi.Name, ".") && len(names) < 256 {
			names = append(names, pi.Name)
		}
	}
	root := tr.l.nodes[0].name
	var seq atomic.Uint64
	enc := func(body cwmp.Message) []byte {
		out, err := cwmp.Encode(&cwmp.Envelope{ID: strconv.FormatUint(seq.Add(1), 10), HasID: true, Body: body})
		if err != nil {
			panic(err)
		}
		return out
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var out []byte
		switch {
		case bytes.Contains(body, []byte("<cwmp:Inform>")):
			out = enc(&cwmp.InformResponse{MaxEnvelopes: 1})
		case len(bytes.TrimSpace(body)) == 0:
			out = enc(&cwmp.GetParameterNames{ParameterPath: root})
		case bytes.Contains(body, []byte("GetParameterNamesResponse")):
			out = enc(&cwmp.GetParameterValues{ParameterNames: names})
		case bytes.Contains(body, []byte("GetParameterValuesResponse")):
			out = enc(&cwmp.SetParameterValues{ParameterList: []cwmp.ParameterValue{
				{Name: root + "ManagementServer.ConnectionRequestUsername", Value: "cr-user", Type: cwmp.TypeString}}})
		default:
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		_, _ = w.Write(out)
	})
}

// BenchmarkBootstrapExchanges measures the simulator's cost of a
// bootstrap-shaped session (Inform, GetParameterNames of the whole tree,
// GetParameterValues of every parameter, SetParameterValues, end) against
// bootstrapACS, 64 devices back to back; ns/op is per session, the
// in-process ACS included. Run it with -cpu 1 to compare builds.
func BenchmarkBootstrapExchanges(b *testing.B) {
	for _, model := range []string{ModelTR098, ModelTR181} {
		b.Run(model, func(b *testing.B) {
			srv := httptest.NewServer(bootstrapACS(b, model))
			b.Cleanup(srv.Close)
			f := startBenchFleet(b, Config{ACSURL: srv.URL, Model: model, Count: 64, InformInterval: time.Millisecond,
				Ramp: -1, Logger: quietLogger()})
			for f.Stats().SessionsCompleted < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			if st := f.Stats(); st.SessionErrors > 0 || st.RPCs[cwmp.MethodGetParameterValues] == 0 {
				b.Fatalf("sessions failed or were not bootstraps: %+v", st)
			}
		})
	}
}
