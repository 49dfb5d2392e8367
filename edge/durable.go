package edge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

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

// logSync makes every commit made so far durable by fsyncing the store's
// write-ahead logs (the memtables' .mem files and the value logs) through
// descriptors of its own, instead of Badger's DB.Sync. DB.Sync holds the
// DB's lock while it msyncs the memtable's log, and every write takes
// that lock exclusively (ensureRoomForWrite) while a waiting writer blocks
// new readers: each group fsync stopped all of the store's reads and
// writes for its duration, which a storm's bootstraps (all promised
// writes) hit back to back. In a bootstrap storm at 100k devices the
// sessions stood in Badger's read-timestamp wait and admission refused
// CPEs with the box two-thirds idle.
//
// An fsync of the file covers what was written through Badger's shared
// mapping: both reach the same page cache. A log gone by the time it is
// opened was flushed to a level-0 table, which Badger msyncs before it
// deletes the log; one made after the listing holds only later commits.
func logSync(dir string) func() error {
	return func() error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("sync cache logs: %w", err)
		}
		for _, e := range ents {
			name := e.Name()
			if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
				continue
			}
			if err := syncFile(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
		return nil
	}
}

// syncFile fsyncs one file; one that no longer exists is not an error.
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync cache log: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync cache log %s: %w", filepath.Base(path), err)
	}
	return nil
}
