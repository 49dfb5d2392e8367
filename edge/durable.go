package edge

import "sync"

// groupSync coalesces fsyncs. With SyncWrites off, Badger's commits reach
// the OS before they return (a killed process loses nothing) but not the
// disk. Writes whose loss on power failure would break a promise made to a
// CPE or an operator call Sync, which waits for one fsync that started after
// the caller's commit; concurrent callers share it, so a burst of sessions
// costs a few fsyncs, not one each.
type groupSync struct {
	fn func() error

	mu      sync.Mutex
	cond    *sync.Cond
	started uint64 // fsyncs started
	done    uint64 // fsyncs finished
	running bool
	err     error // result of the last finished fsync
}

func newGroupSync(fn func() error) *groupSync {
	g := &groupSync{fn: fn}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// Sync returns once an fsync that began after the call has finished.
func (g *groupSync) Sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A running fsync may have begun before the caller's commit: only the
	// next one is sure to cover it.
	target := g.started + 1
	for g.done < target {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		n := g.started
		g.mu.Unlock()
		err := g.fn()
		g.mu.Lock()
		g.running = false
		g.done, g.err = n, err
		g.cond.Broadcast()
	}
	return g.err
}
