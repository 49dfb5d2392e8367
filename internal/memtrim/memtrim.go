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
// collection (its goal less what is in use) is at least MinFree, and the
// process allocated less than the free heap since the last look
// (allocated). A busy process's free heap is what it allocates from until
// then (a storm's edge: ~300 MB in use, a goal of ~600 MB, ~300 MB free);
// once the work that needed it has gone, the goal falls with the live
// heap and the free heap is surplus (after a 100k storm: ~200 MB in use,
// ~800 MB free).
//
// The allocation test is for the middle of a burst, when what is in use
// can pass the goal (the collector is behind) and the first test alone
// says yes: a 30k storm's edge returned 120-300 MB four times in 86 s,
// each a forced full collection, and faulted the pages back in within
// the second (it allocates ~200 MB a second). Heap the process allocates
// more than over one interval is heap it is about to use again.
func Worth(free, inUse, goal, allocated uint64) bool {
	room := uint64(0)
	if goal > inUse {
		room = goal - inUse
	}
	return free > room && free-room >= MinFree && allocated < free
}

// read returns the free and in-use heap, the heap goal, and the bytes
// allocated since the process started.
func read() (free, inUse, goal, allocs uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return v(0), v(1), v(2), v(3)
}

// Run checks every interval until ctx ends and, when Worth says so,
// collects and returns the free heap (debug.FreeOSMemory: a full
// collection, a few tens of ms of CPU for a few hundred MB).
func Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	_, _, _, lastAllocs := read()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		free, inUse, goal, allocs := read()
		allocated := allocs - lastAllocs
		lastAllocs = allocs
		if !Worth(free, inUse, goal, allocated) {
			continue
		}
		debug.FreeOSMemory()
		after, _, _, _ := read()
		log.Debug("returned free heap to the OS", "free_mib", free>>20, "in_use_mib", inUse>>20, "left_mib", after>>20)
	}
}
