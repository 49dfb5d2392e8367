// Package memtrim hands the heap a burst of work left free back to the
// operating system once the burst has passed, instead of over minutes.
//
// Why: after a bootstrap storm an edge's live heap falls from ~600 MB to
// ~200 MB, but the Go runtime keeps the freed spans mapped and returns
// them at its background scavenger's pace (about 1 % of a CPU), or only
// as far as the soft memory limit asks. For minutes the process then
// holds the storm's peak: a 100k-device edge's steady RSS measured 1.19
// to 1.25 GiB in two runs of three, 0.85 GiB in the third, with the same
// ~200 MB in use.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Interval is how often Run looks.
const Interval = 15 * time.Second

// MinFree is the free heap below which Run leaves it to the scavenger.
const MinFree = 64 << 20

// Worth reports whether free heap (mapped, unused, not yet returned) is
// worth returning now: what the heap will not grow into before the next
// collection (its goal less what is in use) is at least MinFree. A busy
// process's free heap is what it allocates from until then (a storm's
// edge: ~300 MB in use, a goal of ~600 MB, ~300 MB free); once the work
// that needed it has gone, the goal falls with the live heap and the free
// heap is surplus (after a 100k storm: ~200 MB in use, ~800 MB free).
func Worth(free, inUse, goal uint64) bool {
	room := uint64(0)
	if goal > inUse {
		room = goal - inUse
	}
	return free > room && free-room >= MinFree
}

// read returns the free and in-use heap and the heap goal.
func read() (free, inUse, goal uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/goal:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return v(0), v(1), v(2)
}

// Run checks every interval until ctx ends and, when Worth says so,
// collects and returns the free heap (debug.FreeOSMemory: a full
// collection, a few tens of ms of CPU for a few hundred MB).
func Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		free, inUse, goal := read()
		if !Worth(free, inUse, goal) {
			continue
		}
		debug.FreeOSMemory()
		after, _, _ := read()
		log.Debug("returned free heap to the OS", "free_mib", free>>20, "in_use_mib", inUse>>20, "left_mib", after>>20)
	}
}
