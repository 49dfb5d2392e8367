package edge

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestGroupSyncCoversEveryCaller(t *testing.T) {
	var calls atomic.Int64
	var committed, synced atomic.Int64
	g := newGroupSync(func() error {
		// Everything committed before this fsync started is now durable.
		synced.Store(committed.Load())
		calls.Add(1)
		return nil
	})
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			my := committed.Add(1)
			if err := g.Sync(); err != nil {
				t.Error(err)
			}
			if synced.Load() < my {
				t.Errorf("Sync returned before a sync covered commit %d (synced %d)", my, synced.Load())
			}
		}()
	}
	wg.Wait()
	if c := calls.Load(); c < 1 || c > n {
		t.Fatalf("fsync calls = %d", c)
	}
	t.Logf("%d callers, %d fsyncs", n, calls.Load())
}

func TestGroupSyncReportsError(t *testing.T) {
	boom := errors.New("disk gone")
	g := newGroupSync(func() error { return boom })
	if err := g.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want %v", err, boom)
	}
}
