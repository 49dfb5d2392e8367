package memtrim

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestWorth(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                         string
		free, inUse, goal, allocated uint64
		want                         bool
	}{
		{"after a storm", 800 * mib, 200 * mib, 400 * mib, 150 * mib, true},
		{"storm: free is the next cycle's room", 300 * mib, 300 * mib, 600 * mib, 3000 * mib, false},
		{"storm: a little over the room", 350 * mib, 300 * mib, 600 * mib, 3000 * mib, false},
		{"storm: in use over the goal", 300 * mib, 450 * mib, 400 * mib, 3000 * mib, false},
		{"idle, in use over the goal", 100 * mib, 700 * mib, 600 * mib, 0, true},
		{"after a storm, still allocating as much as is free", 800 * mib, 200 * mib, 400 * mib, 800 * mib, false},
		{"small", 40 * mib, 1 * mib, 4 * mib, 0, false},
	}
	for _, tt := range tests {
		if got := Worth(tt.free, tt.inUse, tt.goal, tt.allocated); got != tt.want {
			t.Errorf("%s: Worth(free %d, in use %d, goal %d, allocated %d MiB) = %v, want %v",
				tt.name, tt.free/mib, tt.inUse/mib, tt.goal/mib, tt.allocated/mib, got, tt.want)
		}
	}
}

// TestRunReturnsFreedHeap: a burst's garbage, once collected, is free
// heap the runtime keeps mapped; Run hands it back within an interval.
func TestRunReturnsFreedHeap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 20*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	burst := make([][]byte, 0, 256)
	for range 256 {
		burst = append(burst, make([]byte, 1<<20))
	}
	runtime.KeepAlive(burst)
	burst = nil
	runtime.GC()
	deadline := time.Now().Add(10 * time.Second)
	for {
		free, _, _, _ := read()
		if free < MinFree {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d MiB of free heap still mapped 10 s after the burst", free>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
