package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/internal/badgergc"
	"github.com/hashicorp/raft"
)

// ErrKeyNotFound is returned by Get and GetUint64 for a missing key. Its text
// must stay exactly "not found" and it is never wrapped: raft.NewRaft treats a
// StableStore miss as "fresh node" only when err.Error() == "not found".
var ErrKeyNotFound = errors.New("not found")

// ErrTooLarge is returned for a log entry or value larger than the store can
// hold in one record (Options.InMemory: 1 MiB; on disk: 64 MiB). Checked up
// front because Badger's own error embeds a hex dump of the value.
var ErrTooLarge = errors.New("raftstore: value too large")

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Key prefixes: one byte per bucket, so the two key spaces never interleave
// and a prefix iterator over logs sees only logs, in index order.
const (
	prefixLog    byte = 0x01
	prefixStable byte = 0x02
)

const logKeyLen = 1 + 8

// maxStableKey keeps prefix+key under Badger's 65000-byte key limit.
const maxStableKey = 60000

// deleteChunk bounds the keys collected and deleted per transaction in
// DeleteRange, keeping memory flat and each transaction well under Badger's
// per-transaction limit (~15% of the memtable).
const deleteChunk = 16 << 10

// Options configures a Store. Start from DefaultOptions: the zero value
// disables fsync.
type Options struct {
	// SyncWrites fsyncs every write before it returns. The raft log wants it:
	// without it an acknowledged entry survives a process crash (Badger writes
	// through mmap) but not a power loss.
	SyncWrites bool
	// Logger receives Badger's warnings and errors; its info chatter goes to
	// Debug. Nil means slog.Default().
	Logger *slog.Logger
	// InMemory keeps everything in RAM (tests); dir is ignored.
	InMemory bool
	// GCInterval is how often RunGC runs value-log GC. Zero means 5 minutes.
	GCInterval time.Duration
}

// DefaultOptions returns the options for a production raft log: durable
// writes.
func DefaultOptions() Options {
	return Options{SyncWrites: true}
}

// bounds is the first and last stored log index; {0, 0} means empty.
type bounds struct {
	first, last uint64
}

// Store is a raft.LogStore and raft.StableStore on Badger. It is safe for
// concurrent use: raft calls it from its main loop, replication and snapshot
// goroutines at once.
type Store struct {
	db       *badger.DB
	log      *slog.Logger
	gc       time.Duration
	maxValue int

	// writeMu serializes log writes (StoreLogs, DeleteRange) so the cached
	// bounds are updated in commit order. Raft's snapshot goroutine compacts
	// while its main loop appends.
	writeMu sync.Mutex
	// bounds is read without locks: FirstIndex/LastIndex must be cheap.
	bounds atomic.Pointer[bounds]

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "raftstore")
	bopts := badger.DefaultOptions(dir).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{logger}).
		// Writes are serialized by writeMu and never read-modify-write, so
		// conflict tracking is pure overhead.
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false).
		// A raft log is written once, read mostly while recent (memtable),
		// and deleted from the head: it needs neither a big block cache nor
		// a big memtable.
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(16 << 20).
		// The value log is mmapped at twice this size and msynced on every
		// commit with SyncWrites; a smaller file keeps that cheap.
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2)
	if opts.InMemory {
		bopts = bopts.WithInMemory(true).WithDir("").WithValueDir("")
	} else if !opts.SyncWrites {
		logger.Warn("raft log writes are not fsynced: a power loss can lose acknowledged entries", "dir", dir)
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", dir, err)
	}
	s := &Store{db: db, log: logger, gc: opts.GCInterval, maxValue: int(bopts.ValueLogFileSize)}
	if opts.InMemory {
		// No value log: every value must fit under the value threshold.
		s.maxValue = int(bopts.ValueThreshold)
	}
	if s.gc <= 0 {
		s.gc = 5 * time.Minute
	}
	b, err := s.scanBounds()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open raft store %s: %w", dir, err)
	}
	s.bounds.Store(&b)
	return s, nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close raft store: %w", err)
		}
	})
	return s.closeErr
}

// DB exposes the underlying Badger database for metrics and tooling. Writing
// log keys through it bypasses the cached bounds.
func (s *Store) DB() *badger.DB { return s.db }

func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func stableKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixStable
	copy(k[1:], key)
	return k
}

func parseLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || k[0] != prefixLog {
		return 0, fmt.Errorf("%w: bad log key %x", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// seekLog returns the index of the first log >= from (or, with reverse, the
// last log <= from); ok is false when there is none.
func seekLog(txn *badger.Txn, from uint64, reverse bool) (index uint64, ok bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{
		PrefetchValues: false,
		Reverse:        reverse,
		Prefix:         []byte{prefixLog},
	})
	defer it.Close()
	it.Seek(logKey(from))
	if !it.Valid() {
		return 0, false, nil
	}
	index, err = parseLogKey(it.Item().Key())
	return index, err == nil, err
}

// scanBounds reads the first and last index from the database.
func (s *Store) scanBounds() (bounds, error) {
	var b bounds
	err := s.db.View(func(txn *badger.Txn) error {
		first, ok, err := seekLog(txn, 0, false)
		if err != nil || !ok {
			return err
		}
		last, _, err := seekLog(txn, ^uint64(0), true)
		if err != nil {
			return err
		}
		b = bounds{first: first, last: last}
		return nil
	})
	if err != nil {
		return bounds{}, fmt.Errorf("scan log bounds: %w", err)
	}
	return b, nil
}

// FirstIndex returns the first stored log index, 0 when the log is empty.
func (s *Store) FirstIndex() (uint64, error) {
	return s.bounds.Load().first, nil
}

// LastIndex returns the last stored log index, 0 when the log is empty.
func (s *Store) LastIndex() (uint64, error) {
	return s.bounds.Load().last, nil
}

// GetLog reads the log at index into l, or returns raft.ErrLogNotFound
// (unwrapped: raft compares it with ==).
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	if b := s.bounds.Load(); index < b.first || index > b.last {
		return raft.ErrLogNotFound
	}
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		if err := item.Value(func(v []byte) error { return decodeLog(v, l) }); err != nil {
			return err
		}
		if l.Index != index {
			return fmt.Errorf("%w: entry under key %d says index %d", ErrCorrupt, index, l.Index)
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return raft.ErrLogNotFound
	default:
		return fmt.Errorf("get log %d: %w", index, err)
	}
}

// StoreLog stores one log entry.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores logs in one Badger transaction, so the batch is durable as
// a whole when it returns.
//
// Should the batch exceed Badger's transaction limit (about 15% of the
// memtable, i.e. megabytes of entries), it is committed in several
// transactions, in the order given, each fully synced before the next
// starts. Raft hands batches in ascending index order, so a crash between
// them leaves a prefix of the batch: the stored log stays contiguous, never
// has a gap, and the missing suffix was never acknowledged, so raft simply
// replicates it again.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode outside the lock, into one buffer: Badger keeps references to
	// keys and values until commit, so they cannot share a reused buffer,
	// but they can share one allocation.
	size := 0
	for _, l := range logs {
		size += logKeyLen + encodedLogSize(l)
	}
	buf := make([]byte, 0, size)
	keys := make([][]byte, len(logs))
	vals := make([][]byte, len(logs))
	for i, l := range logs {
		start := len(buf)
		buf = append(buf, prefixLog)
		buf = binary.BigEndian.AppendUint64(buf, l.Index)
		keys[i] = buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = appendLog(buf, l)
		vals[i] = buf[start:len(buf):len(buf)]
		if len(vals[i]) > s.maxValue {
			return fmt.Errorf("store log %d: %w: %d bytes, limit %d", l.Index, ErrTooLarge, len(vals[i]), s.maxValue)
		}
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	lo, hi := logs[0].Index, logs[0].Index
	for i := 0; i < len(logs); i++ {
		err := txn.Set(keys[i], vals[i])
		if errors.Is(err, badger.ErrTxnTooBig) && i > 0 {
			if err := s.commitLogs(txn, lo, hi); err != nil {
				return fmt.Errorf("store logs %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
			}
			s.log.Debug("split oversized log batch", "committed_through", hi)
			txn = s.db.NewTransaction(true)
			lo, hi = logs[i].Index, logs[i].Index
			err = txn.Set(keys[i], vals[i])
		}
		if err != nil {
			return fmt.Errorf("store log %d: %w", logs[i].Index, err)
		}
		lo, hi = min(lo, logs[i].Index), max(hi, logs[i].Index)
	}
	if err := s.commitLogs(txn, lo, hi); err != nil {
		return fmt.Errorf("store logs %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	return nil
}

// commitLogs commits txn holding logs lo..hi and widens the cached bounds.
// The caller holds writeMu.
func (s *Store) commitLogs(txn *badger.Txn, lo, hi uint64) error {
	if err := txn.Commit(); err != nil {
		return err
	}
	b := *s.bounds.Load()
	if b.first == 0 || lo < b.first {
		b.first = lo
	}
	b.last = max(b.last, hi)
	s.bounds.Store(&b)
	return nil
}

// DeleteRange deletes the logs with min <= index <= max.
//
// Usually one transaction. A huge range is deleted in chunks, and the order
// is chosen so that an interruption never leaves a gap: a tail truncation
// (the range reaches the last index, raft discarding conflicting entries) is
// deleted from the top down, anything else (compaction of the head) from the
// bottom up. Either way what remains is contiguous.
func (s *Store) DeleteRange(minIdx, maxIdx uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	b := *s.bounds.Load()
	lo, hi := max(minIdx, b.first), min(maxIdx, b.last)
	if b.last == 0 || lo > hi {
		return nil
	}
	topDown := hi == b.last && lo > b.first
	for lo <= hi {
		keys, err := s.collectKeys(lo, hi, topDown)
		if err != nil {
			return fmt.Errorf("delete logs %d-%d: %w", minIdx, maxIdx, err)
		}
		if len(keys) == 0 {
			break
		}
		edge, _ := parseLogKey(keys[len(keys)-1])
		doneLo, doneHi := lo, edge
		if topDown {
			doneLo, doneHi = edge, hi
		}
		// The bounds never cover a deleted entry: they shrink past the
		// chunk before it goes (a reader that sees LastIndex = n, or
		// FirstIndex = n, can read entry n), and are set from the disk
		// after it is gone.
		before := *s.bounds.Load()
		s.bounds.Store(shrink(before, doneLo, doneHi))
		if err := s.deleteKeys(keys); err != nil {
			s.bounds.Store(&before) // one transaction: nothing was deleted
			return fmt.Errorf("delete logs %d-%d: %w", minIdx, maxIdx, err)
		}
		if err := s.refreshBounds(before, doneLo, doneHi); err != nil {
			return fmt.Errorf("delete logs %d-%d: %w", minIdx, maxIdx, err)
		}
		if len(keys) < deleteChunk {
			break
		}
		if topDown {
			hi = edge - 1 // edge > lo >= 1: no underflow
		} else {
			lo = edge + 1 // edge < hi <= MaxUint64: no overflow
		}
	}
	return nil
}

// collectKeys returns up to deleteChunk log keys in [lo, hi], ascending or
// descending.
//
// A range that fits in one chunk is not read at all: between its bounds the
// raft log is dense (the one exception, the gap raft leaves after installing
// a snapshot, only costs a few tombstones for keys that never existed), and
// skipping the iterator halves the cost of a typical compaction.
func (s *Store) collectKeys(lo, hi uint64, descending bool) ([][]byte, error) {
	if hi-lo < deleteChunk {
		keys := make([][]byte, 0, hi-lo+1)
		for i := lo; i <= hi && i >= lo; i++ { // i >= lo stops at wrap-around
			idx := i
			if descending {
				idx = hi - (i - lo)
			}
			keys = append(keys, logKey(idx))
		}
		return keys, nil
	}
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: false,
			Reverse:        descending,
			Prefix:         []byte{prefixLog},
		})
		defer it.Close()
		start, end := lo, hi
		if descending {
			start = hi
		}
		for it.Seek(logKey(start)); it.Valid() && len(keys) < deleteChunk; it.Next() {
			k := it.Item().KeyCopy(nil)
			idx, err := parseLogKey(k)
			if err != nil {
				return err
			}
			if (!descending && idx > end) || (descending && idx < lo) {
				break
			}
			keys = append(keys, k)
		}
		return nil
	})
	return keys, err
}

func (s *Store) deleteKeys(keys [][]byte) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return txn.Commit()
}

// refreshBounds sets the cached bounds, which were b before every log in
// [lo, hi] was deleted, from the disk. It seeks from the edge of the deleted range rather than from the
// start of the key space, so it does not walk over the tombstones just
// written. The caller holds writeMu.
func (s *Store) refreshBounds(b bounds, lo, hi uint64) error {
	if b.last == 0 || hi < b.first || lo > b.last {
		return nil
	}
	if lo <= b.first && hi >= b.last {
		s.bounds.Store(&bounds{})
		return nil
	}
	if lo > b.first && hi < b.last {
		return nil // a hole in the middle: the bounds stand
	}
	err := s.db.View(func(txn *badger.Txn) error {
		var (
			idx uint64
			ok  bool
			err error
		)
		// The neighbor of the deleted range is almost always there (the log
		// is dense); a point lookup is cheaper than an iterator.
		if lo <= b.first {
			idx, ok, err = hi+1, true, nil // hi < b.last
			if !s.hasLog(txn, idx) {
				idx, ok, err = seekLog(txn, hi+1, false)
			}
			b.first = idx
		} else {
			idx, ok, err = lo-1, true, nil // lo > b.first >= 1
			if !s.hasLog(txn, idx) {
				idx, ok, err = seekLog(txn, lo-1, true)
			}
			b.last = idx
		}
		if err == nil && !ok {
			b = bounds{}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("refresh log bounds: %w", err)
	}
	s.bounds.Store(&b)
	return nil
}

// shrink returns b without the range [lo, hi] when the range touches one
// end; a hole in the middle leaves the bounds as they are.
func shrink(b bounds, lo, hi uint64) *bounds {
	switch {
	case b.last == 0 || hi < b.first || lo > b.last:
		return &b
	case lo <= b.first && hi >= b.last:
		return &bounds{}
	case lo <= b.first:
		return &bounds{first: hi + 1, last: b.last}
	case hi >= b.last:
		return &bounds{first: b.first, last: lo - 1}
	}
	return &b
}

// hasLog reports whether the log at index exists. Errors count as absent:
// the caller falls back to an iterator, which reports them.
func (s *Store) hasLog(txn *badger.Txn, index uint64) bool {
	_, err := txn.Get(logKey(index))
	return err == nil
}

// Set stores a StableStore key.
func (s *Store) Set(key, val []byte) error {
	if len(val) > s.maxValue || len(key) > maxStableKey {
		return fmt.Errorf("set %q: %w: key %d bytes, value %d bytes", key, ErrTooLarge, len(key), len(val))
	}
	v := append([]byte(nil), val...)
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), v)
	})
	if err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	return nil
}

// Get returns the value of a StableStore key, or ErrKeyNotFound (unwrapped).
func (s *Store) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case err == nil:
		return val, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, ErrKeyNotFound
	default:
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
}

// SetUint64 stores a uint64 StableStore value (big-endian).
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns a uint64 StableStore value, or ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("get uint64 %q: %w: %d bytes", key, ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// RunGC runs Badger's value-log GC every Options.GCInterval until ctx is
// cancelled, then returns nil. The caller owns the goroutine and must cancel
// ctx and wait for RunGC to return before Close. In-memory stores have no
// value log; RunGC then just waits for ctx.
func (s *Store) RunGC(ctx context.Context) error {
	badgergc.Run(ctx, s.gc, s.db.RunValueLogGC, s.log)
	return nil
}

// badgerLogger routes Badger's logger to slog. Badger logs compaction and
// flush progress at info level; that is demoted to Debug so a healthy node
// stays quiet.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, args ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (b badgerLogger) Warningf(f string, args ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (b badgerLogger) Infof(f string, args ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, args...)))
}

func (b badgerLogger) Debugf(f string, args ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, args...)))
}
