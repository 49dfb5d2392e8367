package edge

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// groupSync coalesces fsyncs. With SyncWrites off, Badger's commits reach
// the OS before they return (a killed process loses nothing) but not the
// disk. Writes whose loss on power failure would break a promise made to a
// CPE or an operator call Sync, which waits for one fsync that started after
// the caller's commit; concurrent callers share it, so a burst of sessions
// costs a few fsyncs, not one each.
//
// Sharing alone batched little: an fsync round takes ~0.2 ms here, and a
// storm's bootstraps (two promised writes each, ~900 a second) mostly
// found none running, so nearly every Sync paid a round of its own
// (60,001 calls, 43,602 rounds in a 30k storm). Rounds are therefore paced
// (pace): a caller that finds the last round started less than pace ago
// waits out the rest before starting the next, and the callers that come
// meanwhile share it. An edge that syncs less often than that never waits.
type groupSync struct {
	fn   func() error
	pace time.Duration

	mu        sync.Mutex
	cond      *sync.Cond
	started   uint64 // fsyncs started
	done      uint64 // fsyncs finished
	running   bool   // a caller is waiting out the pace or running fn
	lastStart time.Time
	err       error // result of the last finished fsync

	rounds atomic.Uint64 // fsyncs run, for the metric
}

// syncPace is groupSync's pace for the cache: at most 200 fsync rounds a
// second, at most 5 ms added to a promised write (nothing when the last
// round is older than that). A round cost the edge ~1 ms of CPU in a
// storm, far more than its fsync system calls: the memtable log is
// written through a shared mapping, and a writeback that cleans its pages
// makes the next commits fault them in again. 30k storms, rounds and the
// edge's CPU: unpaced 43,602 and 73 s; 1 ms 11,165 and 70 s; 2 ms ~7,300
// and 67-68 s; 5 ms ~4,200 and 63-66 s; 10 ms 2,976 and 63.5 s.
const syncPace = 5 * time.Millisecond

func newGroupSync(fn func() error, pace time.Duration) *groupSync {
	g := &groupSync{fn: fn, pace: pace}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// Sync returns once an fsync that began after the call has finished.
func (g *groupSync) Sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A running fsync may have begun before the caller's commit: only the
	// next one is sure to cover it. A caller waiting out the pace has not
	// started its round yet, so that round covers this caller too.
	target := g.started + 1
	for g.done < target {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		if wait := g.pace - time.Since(g.lastStart); wait > 0 {
			g.mu.Unlock()
			time.Sleep(wait)
			g.mu.Lock()
		}
		g.started++
		n := g.started
		g.lastStart = time.Now()
		g.mu.Unlock()
		g.rounds.Add(1)
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
//
// Only the newest memtable log and the newest value log take writes: an
// older one (a memtable waiting to be flushed, a full value log) is synced
// once after a newer one is listed, and skipped from then on. A storm
// keeps one or two full memtables waiting for their flush, which cost a
// clean fsync each in every round.
type logSyncer struct {
	dir string

	mu    sync.Mutex // sync runs one at a time (groupSync); close may not
	d     *os.File   // the directory, kept open; nil before the first round
	logs  map[string]*keptLog
	fresh map[string]bool // scratch: the logs this round listed
	fsync func(*os.File) error
}

// keptLog is a log's descriptor, kept while the directory lists it.
type keptLog struct {
	f *os.File
	// sealed: synced after a newer log of its kind was listed, so it
	// holds every write it will ever take, on disk.
	sealed bool
}

func newLogSyncer(dir string) *logSyncer {
	return &logSyncer{dir: dir, logs: map[string]*keptLog{}, fresh: map[string]bool{}, fsync: (*os.File).Sync}
}

// logKind is a write-ahead log's extension and number (Badger names them
// %05d.mem and %06d.vlog, the numbers growing); ok is false for any
// other file.
func logKind(name string) (ext string, fid uint64, ok bool) {
	for _, ext := range [...]string{".mem", ".vlog"} {
		if num, found := strings.CutSuffix(name, ext); found {
			fid, err := strconv.ParseUint(num, 10, 64)
			return ext, fid, err == nil
		}
	}
	return "", 0, false
}

// sync fsyncs every log the directory holds now that may hold writes not
// yet synced.
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
	var newestMem, newestVlog uint64
	for _, name := range names {
		switch ext, fid, ok := logKind(name); {
		case !ok:
		case ext == ".mem":
			newestMem = max(newestMem, fid)
		default:
			newestVlog = max(newestVlog, fid)
		}
	}
	clear(s.fresh)
	for _, name := range names {
		ext, fid, ok := logKind(name)
		if !ok {
			continue
		}
		l := s.logs[name]
		if l == nil {
			f, err := os.Open(filepath.Join(s.dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // flushed away since the listing
			}
			if err != nil {
				return fmt.Errorf("sync cache log: %w", err)
			}
			l = &keptLog{f: f}
			s.logs[name] = l
		}
		s.fresh[name] = true
		if l.sealed {
			continue
		}
		if err := s.fsync(l.f); err != nil {
			return fmt.Errorf("sync cache log %s: %w", name, err)
		}
		// A newer log of its kind was listed, so this one was no longer
		// written when the listing was made: the fsync covered all it
		// will ever hold.
		l.sealed = (ext == ".mem" && fid < newestMem) || (ext == ".vlog" && fid < newestVlog)
	}
	for name, l := range s.logs {
		if !s.fresh[name] {
			l.f.Close()
			delete(s.logs, name)
		}
	}
	return nil
}

// close closes the kept descriptors; a later sync opens them again.
func (s *logSyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, l := range s.logs {
		l.f.Close()
		delete(s.logs, name)
	}
	if s.d != nil {
		s.d.Close()
		s.d = nil
	}
}
