package core

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/edgeacs/edgeacs/internal/badgergc"
	"github.com/hashicorp/raft"
)

// FSM is the core's replicated state machine and the one type that touches
// its Badger DB. Raft calls Apply/ApplyBatch/Snapshot/Restore from its FSM
// goroutine; the API reads concurrently through the read methods. The FSM
// itself is thin: decoding and applying commands is the processor's job.
type FSM struct {
	dir  string // the live DB lives in dir; restores are staged beside it
	log  *slog.Logger
	proc processor

	mu sync.RWMutex // Lock only to swap db during Restore
	db *badger.DB

	applied atomic.Uint64 // highest log index applied, mirrored in kApplied

	devs *deviceCache // owned by the apply path (ApplyBatch, Restore)

	// tokens indexes the stored API tokens by hash (tokens.go).
	tokens *tokenIndex

	watchMu sync.Mutex
	watch   chan struct{} // closed and replaced after every applied batch

	// failed holds the *ApplyError that stopped the FSM; once set, nothing
	// more is applied, snapshotted or restored.
	failed atomic.Pointer[ApplyError]
	// onFatal is told, once, when the FSM stops (SetFatalHook).
	onFatal func(error)
	// writeFault, when set (tests only), can fail an apply-path write.
	writeFault atomic.Pointer[func(k []byte) error]
}

// ApplyError says which committed entry the FSM could not apply and why.
// It wraps ErrApplyFailed and the cause.
type ApplyError struct {
	// Index and Term name the raft entry. For a failed commit of a batch
	// of entries, Index is the batch's last entry.
	Index, Term uint64
	// Op is the failing command's operation (0 when the commit failed).
	Op Op
	// Err is the storage failure.
	Err error
}

// Error names the entry and the cause.
func (e *ApplyError) Error() string {
	what := "commit of the batch ending at raft entry"
	if e.Op != 0 {
		what = fmt.Sprintf("%v command of raft entry", e.Op)
	}
	return fmt.Sprintf("%s: %s %d (term %d): %v", ErrApplyFailed, what, e.Index, e.Term, e.Err)
}

// Unwrap returns ErrApplyFailed and the cause, for errors.Is and errors.As.
func (e *ApplyError) Unwrap() []error { return []error{ErrApplyFailed, e.Err} }

// deviceCacheSize bounds the apply path's device cache (about 0.5 KB a
// device with a small overlay).
const deviceCacheSize = 1 << 16

var (
	_ raft.BatchingFSM = (*FSM)(nil)
	_ raft.FSM         = (*FSM)(nil)
)

// OpenFSM opens (or creates) the FSM's Badger DB in dir.
func OpenFSM(dir string, logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{dir: dir, log: logger, watch: make(chan struct{}), devs: newDeviceCache(deviceCacheSize), tokens: newTokenIndex()}
	// A crash during Restore can leave the staging dirs behind; the live DB
	// (or, failing that, the old one) wins, and raft restores the latest
	// snapshot on start anyway.
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir + ".old"); err == nil {
			if err := os.Rename(dir+".old", dir); err != nil {
				return nil, fmt.Errorf("recover fsm dir: %w", err)
			}
		}
	}
	for _, d := range []string{dir + ".restore", dir + ".old"} {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("clean %s: %w", d, err)
		}
	}
	db, err := openBadger(dir, logger)
	if err != nil {
		return nil, err
	}
	f.db = db
	if err := f.loadApplied(); err != nil {
		db.Close()
		return nil, err
	}
	if err := f.tokens.load(db); err != nil {
		db.Close()
		return nil, err
	}
	return f, nil
}

func openBadger(dir string, logger *slog.Logger) (*badger.DB, error) {
	// SyncWrites off: the raft log is the durable record; after a crash raft
	// restores the latest snapshot and replays the log into this DB.
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{logger}).
		WithDetectConflicts(false). // one writer: the raft FSM goroutine
		WithMemTableSize(64 << 20).
		// Values are small CBOR records; compressing them costs more CPU
		// on every flush and compaction than the disk it saves.
		WithCompression(options.None).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(32 << 20).
		WithNumVersionsToKeep(1)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open fsm db %s: %w", dir, err)
	}
	return db, nil
}

func (f *FSM) loadApplied() error {
	return f.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(kApplied))
		if errors.Is(err, badger.ErrKeyNotFound) {
			f.applied.Store(0)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read applied index: %w", err)
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("applied index: %d bytes", len(v))
			}
			f.applied.Store(binary.BigEndian.Uint64(v))
			return nil
		})
	})
}

// AppliedIndex is the highest raft log index this FSM has applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// SetFatalHook installs fn, called once (from raft's FSM goroutine, so it
// must not block on raft) when a committed entry cannot be applied and
// the FSM stops. Call it before raft starts.
func (f *FSM) SetFatalHook(fn func(error)) { f.onFatal = fn }

// Err returns the *ApplyError that stopped the FSM, or nil while it runs.
func (f *FSM) Err() error {
	if e := f.failed.Load(); e != nil {
		return e
	}
	return nil
}

// setWriteFault makes fn see every key the apply path writes, and fail the
// write when it returns an error (tests: a disk that refuses writes).
func (f *FSM) setWriteFault(fn func(k []byte) error) {
	if fn == nil {
		f.writeFault.Store(nil)
		return
	}
	f.writeFault.Store(&fn)
}

// fail stops the FSM and tells the hook, once.
func (f *FSM) fail(e *ApplyError) {
	if !f.failed.CompareAndSwap(nil, e) {
		return
	}
	f.log.Error("fsm stopped: a committed raft entry cannot be applied; the node shuts down and replays it on restart",
		"index", e.Index, "term", e.Term, "op", e.Op, "applied", f.applied.Load(), "err", e.Err)
	if f.onFatal != nil {
		f.onFatal(e)
	}
}

// Watch returns a channel closed after the next batch is applied; readers
// waiting for a change (a task becoming final) re-read and watch again.
func (f *FSM) Watch() <-chan struct{} {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	return f.watch
}

func (f *FSM) notify() {
	f.watchMu.Lock()
	close(f.watch)
	f.watch = make(chan struct{})
	f.watchMu.Unlock()
}

// Apply applies one committed log entry. It returns []Result, one per
// command in the entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one Badger transaction (split
// only when Badger says it is too big). Entries at or below the stored
// applied index were applied before a restart and are skipped, so a replay
// never applies anything twice.
//
// Apply is fail-stop. A command's domain error is its result; an entry
// that cannot be decoded is logged and changes nothing; but when Badger
// refuses a write (or the commit) the FSM can no longer match the log, and
// carrying on would let this node diverge silently. The transaction is
// then discarded, so the stored applied index stays where it was and a
// restart replays from there; the FSM stops (every later batch is answered
// with the same *ApplyError and nothing is applied, snapshotted or
// restored) and the fatal hook shuts the node down.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if e := f.failed.Load(); e != nil {
		for i := range out {
			out[i] = []Result{{Err: e}}
		}
		return out
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	w := &wtx{db: f.db, txn: f.db.NewTransaction(true), devs: f.devs}
	if fn := f.writeFault.Load(); fn != nil {
		w.fault = *fn
	}
	defer func() { w.txn.Discard() }()
	last := f.applied.Load()
	var failed *ApplyError
	for i, l := range logs {
		if l.Index <= last || l.Type != raft.LogCommand {
			continue
		}
		cmds, err := decodeEntry(l.Data)
		if err != nil {
			f.log.Error("committed raft entry cannot be decoded; it changes nothing", "index", l.Index, "term", l.Term, "bytes", len(l.Data), "err", err)
			out[i] = []Result{{Err: err}}
			continue
		}
		rs := make([]Result, len(cmds))
		for j := range cmds {
			rs[j] = f.proc.apply(w, &cmds[j])
			var se storageError
			if errors.As(rs[j].Err, &se) {
				failed = &ApplyError{Index: l.Index, Term: l.Term, Op: cmds[j].Op, Err: se}
				break
			} else if errors.Is(rs[j].Err, ErrCorruptCommand) {
				f.log.Error("committed command is corrupt; it changes nothing", "index", l.Index, "op", cmds[j].Op, "err", rs[j].Err)
			}
		}
		if failed != nil {
			break
		}
		out[i] = rs
	}
	if l := logs[len(logs)-1]; failed == nil && l.Index > last {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], l.Index)
		err := w.flushEdges()
		if err == nil {
			err = w.set([]byte(kApplied), b[:])
		}
		if err == nil {
			err = w.txn.Commit()
		}
		if err != nil {
			failed = &ApplyError{Index: l.Index, Term: l.Term, Err: storageError{err}}
		} else {
			f.applied.Store(l.Index)
			f.tokens.apply(w.tokens)
		}
	}
	if failed != nil {
		f.devs.reset() // it may hold writes that were never committed
		for i := range out {
			out[i] = []Result{{Err: failed}}
		}
		f.fail(failed)
	}
	f.notify()
	return out
}

// Snapshot captures the DB for raft. The stream is produced in Persist,
// concurrently with later applies; entries applied meanwhile may slip into
// the stream, which is harmless because the stored applied index travels
// with them and replays skip what is already in.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	// A stopped FSM is behind what raft thinks it applied: a snapshot would
	// let raft compact away the entries it still has to apply.
	if err := f.Err(); err != nil {
		return nil, err
	}
	return &fsmSnapshot{f: f}, nil
}

type fsmSnapshot struct{ f *FSM }

// Persist streams the DB's live keys and values into the sink (the format
// is in snapshot.go). The read lock keeps Restore from swapping the DB
// out from under the iterator.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.f.Err(); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist fsm snapshot: %w", err)
	}
	s.f.mu.RLock()
	_, err := writeSnapshot(s.f.db, sink)
	s.f.mu.RUnlock()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist fsm snapshot: %w", err)
	}
	return sink.Close()
}

// Release is a no-op: Persist holds nothing after it returns.
func (s *fsmSnapshot) Release() {}

// Restore replaces the state with a snapshot: it loads into a fresh DB
// beside the live one, then swaps directories, so a failed load (an unknown
// header, a truncated stream, a bad checksum) leaves the current state
// untouched. It reads the format Persist writes and, told apart by the
// header, the db.Backup stream earlier versions wrote.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.Err(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	stage := f.dir + ".restore"
	if err := os.RemoveAll(stage); err != nil {
		return fmt.Errorf("restore: clean stage: %w", err)
	}
	ndb, err := openBadger(stage, f.log)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := loadSnapshot(ndb, rc); err != nil {
		ndb.Close()
		os.RemoveAll(stage)
		return fmt.Errorf("restore: load snapshot: %w", err)
	}
	if err := ndb.Close(); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("restore: close staged db: %w", err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.devs.reset()
	if err := f.db.Close(); err != nil {
		f.log.Warn("restore: close old fsm db", "err", err)
	}
	old := f.dir + ".old"
	if err := os.Rename(f.dir, old); err != nil {
		return f.reopenAfter(fmt.Errorf("restore: move old db: %w", err))
	}
	if err := os.Rename(stage, f.dir); err != nil {
		_ = os.Rename(old, f.dir)
		return f.reopenAfter(fmt.Errorf("restore: move new db: %w", err))
	}
	if err := f.reopenAfter(nil); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		f.log.Warn("restore: remove old fsm db", "err", err)
	}
	if err := f.loadApplied(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := f.tokens.load(f.db); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.log.Info("fsm restored from snapshot", "applied", f.applied.Load())
	f.notify()
	return nil
}

// reopenAfter reopens the live dir (whatever is there) and returns cause.
// Caller holds f.mu.
func (f *FSM) reopenAfter(cause error) error {
	db, err := openBadger(f.dir, f.log)
	if err != nil {
		return errors.Join(cause, err)
	}
	f.db = db
	return cause
}

// RunGC reclaims Badger value-log space until ctx ends. Each GC call holds
// the read lock, because Restore swaps the DB underneath.
func (f *FSM) RunGC(ctx context.Context, every time.Duration) {
	badgergc.Run(ctx, every, func(ratio float64) error {
		f.mu.RLock()
		defer f.mu.RUnlock()
		return f.db.RunValueLogGC(ratio)
	}, f.log)
}

// Close closes the DB. Raft must be shut down first.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	if err != nil {
		return fmt.Errorf("close fsm db: %w", err)
	}
	return nil
}

// badgerLogger sends Badger's warnings and errors to slog and drops its
// info and debug chatter.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
