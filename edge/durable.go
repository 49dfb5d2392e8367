package edge

import (
	"errors"
	"fmt"
	"io"
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

// logSyncer makes every commit made so far durable by fsyncing the
// store's write-ahead logs (the memtables' .mem files and the value logs)
// through descriptors of its own, instead of Badger's DB.Sync. DB.Sync
// holds the DB's lock while it msyncs the memtable's log, and every write
// takes that lock exclusively (ensureRoomForWrite) while a waiting writer
// blocks new readers: each group fsync stopped all of the store's reads
// and writes for its duration, which a storm's bootstraps (all promised
// writes) hit back to back. In a bootstrap storm at 100k devices the
// sessions stood in Badger's read-timestamp wait and admission refused
// CPEs with the box two-thirds idle.
//
// An fsync of the file covers what was written through Badger's shared
// mapping: both reach the same page cache. Every round lists the
// directory again (a new memtable's log must be synced from its first
// commit on), but through the directory's descriptor rewound, and each
// log is opened once and kept while it is listed: a storm runs hundreds
// of rounds a second, and opening the directory and every log for each
// one was a third of the cost of durability to the edge (the fsyncs are
// the rest). A log gone by the time it is listed was flushed to a
// level-0 table, which Badger msyncs before it deletes the log; one made
// after the listing holds only later commits. A log deleted after the
// listing is synced through the kept descriptor, harmlessly, and closed
// at the next round.
type logSyncer struct {
	dir string

	mu    sync.Mutex // sync runs one at a time (groupSync); close may not
	d     *os.File   // the directory, kept open; nil before the first round
	logs  map[string]*os.File
	fresh map[string]bool // scratch: the logs this round listed
}

func newLogSyncer(dir string) *logSyncer {
	return &logSyncer{dir: dir, logs: map[string]*os.File{}, fresh: map[string]bool{}}
}

// sync fsyncs every log the directory holds now.
func (s *logSyncer) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil {
		d, err := os.Open(s.dir)
		if err != nil {
			return fmt.Errorf("sync cache logs: %w", err)
		}
		s.d = d
	} else if _, err := s.d.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("sync cache logs: rewind %s: %w", s.dir, err)
	}
	names, err := s.d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("sync cache logs: %w", err)
	}
	clear(s.fresh)
	for _, name := range names {
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
			continue
		}
		f := s.logs[name]
		if f == nil {
			f, err = os.Open(filepath.Join(s.dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // flushed away since the listing
			}
			if err != nil {
				return fmt.Errorf("sync cache log: %w", err)
			}
			s.logs[name] = f
		}
		s.fresh[name] = true
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync cache log %s: %w", name, err)
		}
	}
	for name, f := range s.logs {
		if !s.fresh[name] {
			f.Close()
			delete(s.logs, name)
		}
	}
	return nil
}

// close closes the kept descriptors; a later sync opens them again.
func (s *logSyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.logs {
		f.Close()
		delete(s.logs, name)
	}
	if s.d != nil {
		s.d.Close()
		s.d = nil
	}
}
