package sim

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionWorkers runs sessions from many devices at once, then checks
// that a session handed to an idle worker reuses it, that idle workers
// exit after their idle time, and that the fleet's stop ends the rest.
func TestSessionWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	w := newSessionWorkers(ctx, &wg)
	w.idle = time.Hour

	// 64 devices at once: every session runs, and run returns only after.
	var ran, running atomic.Int64
	release := make(chan struct{})
	var devices sync.WaitGroup
	for range 64 {
		wg.Add(1)
		devices.Add(1)
		go func() {
			defer wg.Done()
			defer devices.Done()
			w.run(func() {
				running.Add(1)
				<-release
				ran.Add(1)
			})
		}()
	}
	// All 64 running at once: 64 workers.
	waitForLong(t, 10*time.Second, func() bool { return running.Load() == 64 })
	close(release)
	devices.Wait()
	if got := ran.Load(); got != 64 {
		t.Fatalf("%d sessions ran, want 64", got)
	}

	// The 64 workers are idle now: 64 more sessions, one at a time,
	// start none.
	before := runtime.NumGoroutine()
	for range 64 {
		w.run(func() { ran.Add(1) })
	}
	if got := runtime.NumGoroutine(); got > before {
		t.Errorf("%d goroutines after sessions on idle workers, %d before", got, before)
	}

	// The fleet stops: every worker exits.
	cancel()
	waitGroupWithin(t, &wg, 10*time.Second, "workers still running 10 s after the fleet stopped")

	// Idle workers exit on their own.
	w2 := newSessionWorkers(context.Background(), &wg)
	w2.idle = 10 * time.Millisecond
	wg.Add(1)
	w2.run(func() {})
	wg.Done()
	waitGroupWithin(t, &wg, 10*time.Second, "an idle worker still running 10 s after its idle time")
}

// waitGroupWithin fails the test with msg unless wg is done within d.
func waitGroupWithin(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}
