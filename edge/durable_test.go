package edge

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGroupSyncCoversEveryCaller(t *testing.T) {
	for _, pace := range []time.Duration{0, time.Millisecond} {
		t.Run(pace.String(), func(t *testing.T) { testGroupSyncCovers(t, pace) })
	}
}

func testGroupSyncCovers(t *testing.T, pace time.Duration) {
	var calls atomic.Int64
	var committed, synced atomic.Int64
	g := newGroupSync(func() error {
		// Everything committed before this fsync started is now durable.
		synced.Store(committed.Load())
		calls.Add(1)
		return nil
	}, pace)
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
	g := newGroupSync(func() error { return boom }, 0)
	if err := g.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want %v", err, boom)
	}
}

// TestGroupSyncPaces: rounds start at least the pace apart however the
// callers come, one after another or all at once, and a burst of
// callers shares the rounds instead of running one each.
func TestGroupSyncPaces(t *testing.T) {
	const pace = 5 * time.Millisecond
	var mu sync.Mutex
	var starts []time.Time
	g := newGroupSync(func() error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return nil
	}, pace)
	for range 5 {
		if err := g.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	const callers, each = 40, 5
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if err := g.Sync(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < pace {
			t.Errorf("round %d started %v after the one before, want at least %v", i, gap, pace)
		}
	}
	if n, calls := len(starts), 5+callers*each; n >= calls-5 {
		t.Errorf("%d rounds for %d calls: the burst shared none", n, calls)
	}
	if got := g.rounds.Load(); got != uint64(len(starts)) {
		t.Errorf("rounds counter = %d, want %d", got, len(starts))
	}
}

// TestLogSyncerSealsOldLogs: a memtable or value log older than the
// newest of its kind is synced once more after the newer one appears,
// then never again; the newest is synced every round; a log that is gone
// is let go.
func TestLogSyncerSealsOldLogs(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"00001.mem", "00002.mem", "000001.vlog", "MANIFEST", "000003.sst"} {
		touch(n)
	}
	s := newLogSyncer(dir)
	defer s.close()
	var synced []string
	s.fsync = func(f *os.File) error {
		synced = append(synced, filepath.Base(f.Name()))
		return nil
	}
	round := func(want ...string) {
		t.Helper()
		synced = nil
		if err := s.sync(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(synced)
		slices.Sort(want)
		if !slices.Equal(synced, want) {
			t.Fatalf("synced %v, want %v", synced, want)
		}
	}
	round("00001.mem", "00002.mem", "000001.vlog")
	round("00002.mem", "000001.vlog")
	touch("00003.mem")
	touch("000002.vlog")
	round("00002.mem", "00003.mem", "000001.vlog", "000002.vlog")
	round("00003.mem", "000002.vlog")
	// Past five digits the names stop sorting as text.
	touch("100000.mem")
	round("00003.mem", "100000.mem", "000002.vlog")
	round("100000.mem", "000002.vlog")
	for _, n := range []string{"00001.mem", "00002.mem", "00003.mem"} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	round("100000.mem", "000002.vlog")
	if len(s.logs) != 3 {
		t.Errorf("%d logs kept open after three were deleted, want 3", len(s.logs))
	}
}
