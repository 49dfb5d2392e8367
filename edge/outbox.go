package edge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
)

// The outbox is the edge's durable uplink FIFO (DESIGN.md "Outbox"): every
// record is written in the same transaction as the state change it
// reports, under the key o/<sequence, 8 bytes big-endian>, so key order is
// sequence order. The sync client reads it (ReadOutbox), sends, and deletes
// what the core acknowledged (AckOutbox, ResumeOutbox).
//
// Sequences are handed out before the transaction that writes them
// commits, so without care two sessions that commit out of order would let
// a reader see sequence 2, move its position past it, and never see 1. The
// outbox therefore tracks the sequences held by transactions still in
// flight, like Badger's own y.WaterMark, and a reader never gets a record
// above the lowest of them: what it sees is final, and nothing can appear
// below it later.
//
// A conflict retry of one update reuses the sequences its earlier attempts
// were given, so the usual case has no gaps. A sequence whose update
// finally fails (or whose retry stages fewer records) is a permanent hole:
// it is never handed out again, and readers simply pass over it. The core
// relies on order and on (edge, sequence) being unique, not on density.
const (
	// kOutboxAcked holds the highest sequence the core has applied (8
	// bytes big-endian). It is written in the same transaction as the
	// deletes of an acknowledgement, and it is why sequences never go
	// back across a restart: the next sequence is above both it and the
	// last key.
	kOutboxAcked = "m/oacked"
	// outboxTag starts every outbox value: tag, the unix-nanosecond time
	// the record was staged (8 bytes big-endian), then the fleet record.
	// The time gives the age of the oldest unsent record after a restart;
	// a fleet record starts with its version byte (1), never with the tag.
	outboxTag    = 0xE0
	outboxHeader = 9
	// defaultAckChunk bounds the deletes of one acknowledgement
	// transaction, so acknowledging a backlog of millions holds a bounded
	// set of keys in memory and never hits ErrTxnTooBig.
	defaultAckChunk = 10_000
	// maxChunkRetries bounds the conflict retries of one chunk.
	maxChunkRetries = 20
)

func outboxKey(seq uint64) []byte {
	k := make([]byte, len(pOutbox)+8)
	copy(k, pOutbox)
	binary.BigEndian.PutUint64(k[len(pOutbox):], seq)
	return k
}

func outboxSeq(key []byte) uint64 { return binary.BigEndian.Uint64(key[len(pOutbox):]) }

func outboxValue(staged time.Time, rec []byte) []byte {
	v := make([]byte, outboxHeader+len(rec))
	v[0] = outboxTag
	binary.BigEndian.PutUint64(v[1:outboxHeader], uint64(staged.UnixNano()))
	copy(v[outboxHeader:], rec)
	return v
}

// splitOutboxValue returns the staging time (zero for a value written
// before records carried one) and the fleet record.
func splitOutboxValue(v []byte) (time.Time, []byte) {
	if len(v) >= outboxHeader && v[0] == outboxTag {
		return time.Unix(0, int64(binary.BigEndian.Uint64(v[1:outboxHeader]))), v[outboxHeader:]
	}
	return time.Time{}, v
}

// seqRange is a run of sequences handed to one update (one sequence) or
// to a renumbering (many).
type seqRange struct {
	lo, hi uint64
	done   bool
}

// outbox is the sequence and bookkeeping side of the outbox; the records
// live in the cache's Badger DB.
type outbox struct {
	db       *badger.DB
	log      *slog.Logger
	disabled bool
	// chunk is the most deletes (or moves) one transaction makes.
	chunk int

	notify chan struct{}
	length atomic.Int64
	// ackTxns counts committed acknowledgement transactions (tests check
	// that a big acknowledgement is split).
	ackTxns atomic.Int64

	mu   sync.Mutex
	cond sync.Cond // on mu; broadcast whenever an in-flight range finishes
	// next is the next sequence to hand out.
	next uint64
	// pending holds the ranges handed out and not yet finished (plus done
	// ones behind an unfinished one), in sequence order.
	pending []seqRange
	// floor is next as Open found it: every sequence below it belongs to
	// an earlier run of this edge.
	floor uint64
	// maxRead is the highest sequence ReadOutbox returned in this run.
	maxRead uint64
	// oldestSeq and oldestTime describe the oldest record known to be in
	// the outbox (oldestSeq 0: none or unknown).
	oldestSeq  uint64
	oldestTime time.Time

	ackMu sync.Mutex // serialises acknowledgements; guards acked and cleared
	// acked is the persisted kOutboxAcked.
	acked uint64
	// cleared: every record at or below it is deleted (≤ acked; less only
	// after an acknowledgement failed between chunks).
	cleared uint64
}

// openOutbox loads the acknowledged mark, finishes an acknowledgement a
// crash interrupted, and counts the records with a key-only scan.
func openOutbox(db *badger.DB, log *slog.Logger, disabled bool) (*outbox, error) {
	o := &outbox{db: db, log: log, disabled: disabled, chunk: defaultAckChunk, notify: make(chan struct{}, 1)}
	o.cond.L = &o.mu
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(kOutboxAcked))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%s: %d bytes, want 8", kOutboxAcked, len(v))
			}
			o.acked = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox acknowledged mark: %w", err)
	}
	// Records at or below the mark were applied by the core; a crash
	// between the chunks of their acknowledgement left them behind.
	if err := o.deleteThrough(o.acked); err != nil {
		return nil, err
	}
	var last uint64
	var n int64
	err = db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(pOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		// Everything at or below the mark is gone now: seek past it
		// rather than walk its tombstones again.
		for it.Seek(outboxKey(o.acked + 1)); it.Valid(); it.Next() {
			n++
			last = outboxSeq(it.Item().Key())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan outbox: %w", err)
	}
	o.length.Store(n)
	o.floor = max(last, o.acked) + 1
	o.next = o.floor
	o.refreshOldest(o.acked)
	return o, nil
}

// allocLocked hands out n consecutive sequences, in flight until finished.
func (o *outbox) allocLocked(n uint64) uint64 {
	lo := o.next
	o.next += n
	o.pending = append(o.pending, seqRange{lo: lo, hi: lo + n - 1})
	return lo
}

// readableLocked is the highest sequence a reader may see: below the
// lowest one still in flight.
func (o *outbox) readableLocked() uint64 {
	if len(o.pending) > 0 {
		return o.pending[0].lo - 1
	}
	return o.next - 1
}

// finishLocked marks the range starting at lo finished (committed, failed
// or unused alike) and drops the finished ranges at the front.
func (o *outbox) finishLocked(lo uint64) {
	i := sort.Search(len(o.pending), func(i int) bool { return o.pending[i].lo >= lo })
	if i < len(o.pending) && o.pending[i].lo == lo {
		o.pending[i].done = true
	}
	for len(o.pending) > 0 && o.pending[0].done {
		o.pending = o.pending[1:]
	}
}

// finish ends ranges and wakes whoever waits on them: readers through
// notify when the readable limit moved, acknowledgements through cond.
// When committed, records holds how many of them carry a record, staged
// at the given time.
func (o *outbox) finish(los []uint64, records int, staged time.Time) {
	if len(los) == 0 {
		return
	}
	o.mu.Lock()
	before := o.readableLocked()
	for _, lo := range los {
		o.finishLocked(lo)
	}
	if records > 0 {
		o.length.Add(int64(records))
		if o.oldestSeq == 0 || los[0] < o.oldestSeq {
			o.oldestSeq, o.oldestTime = los[0], staged
		}
	}
	advanced := o.readableLocked() > before
	o.cond.Broadcast()
	o.mu.Unlock()
	if advanced {
		o.signal()
	}
}

func (o *outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default: // a wake-up is already pending; the reader reads everything
	}
}

// outboxTxn stages outbox records inside one Cache.updateOutbox call. It
// keeps the sequences that call was given, so a conflict retry stages its
// records under the same ones.
type outboxTxn struct {
	o    *outbox
	txn  *badger.Txn
	seqs []uint64
	used int       // records the current attempt staged
	now  time.Time // when the current attempt started
}

// add stages v (a *fleet.DeviceDelta, *fleet.Task or *fleet.TaskDrop) as
// the next outbox record; nothing when the outbox is disabled.
func (t *outboxTxn) add(v any) error {
	if t.o.disabled {
		return nil
	}
	rec, err := fleet.Marshal(v)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	var seq uint64
	if t.used < len(t.seqs) {
		seq = t.seqs[t.used]
	} else {
		t.o.mu.Lock()
		seq = t.o.allocLocked(1)
		t.o.mu.Unlock()
		t.seqs = append(t.seqs, seq)
	}
	t.used++
	if err := t.txn.Set(outboxKey(seq), outboxValue(t.now, rec)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// updateOutbox is update for writes that may stage outbox records: fn
// gets the transaction and an outboxTxn to stage them with. The sequences
// fn used become readable once the commit returns; whatever it failed to
// commit leaves holes.
func (c *Cache) updateOutbox(fn func(txn *badger.Txn, ob *outboxTxn) error) error {
	ob := &outboxTxn{o: c.ob}
	committed := false
	// Deferred so that even a panic in fn (which net/http would survive)
	// cannot leave a sequence in flight and stall every reader for good.
	defer func() {
		records := 0
		if committed {
			records = ob.used
		}
		c.ob.finish(ob.seqs, records, ob.now)
	}()
	if err := c.guard.before("update"); err != nil {
		return err
	}
	var err, fnErr error
	for range 20 {
		err = c.db.Update(func(txn *badger.Txn) error {
			ob.txn, ob.used, ob.now = txn, 0, time.Now()
			fnErr = fn(txn, ob)
			return fnErr
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	committed = err == nil
	return c.settle("update", err, fnErr)
}

// ReadOutbox returns up to n records with a sequence above after,
// oldest first. Every record it returns is committed, and no record with
// a lower sequence can appear later (see the outbox comment).
func (c *Cache) ReadOutbox(after uint64, n int) ([]fleet.SeqRecord, error) {
	if err := c.refuseUnusable(); err != nil {
		return nil, err
	}
	o := c.ob
	if n <= 0 {
		return nil, nil
	}
	// The limit is taken before the snapshot: everything at or below it
	// committed before the snapshot began, so the snapshot holds it.
	o.mu.Lock()
	limit := o.readableLocked()
	o.mu.Unlock()
	if after >= limit {
		return nil, nil
	}
	var out []fleet.SeqRecord
	err := o.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pOutbox)
		// No prefetching: it copies each value once more (ValueCopy
		// below is the one copy needed), and records are inline in the
		// LSM tree (the value log holds only values over 1 MiB), so
		// there is hardly a value-log read to overlap.
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(outboxKey(after + 1)); it.Valid() && len(out) < n; it.Next() {
			seq := outboxSeq(it.Item().Key())
			if seq > limit {
				break
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("record %d: %w", seq, err)
			}
			_, rec := splitOutboxValue(v)
			out = append(out, fleet.SeqRecord{Seq: seq, Data: rec})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox after %d: %w", after, err)
	}
	if len(out) > 0 {
		o.mu.Lock()
		o.maxRead = max(o.maxRead, out[len(out)-1].Seq)
		o.mu.Unlock()
	}
	return out, nil
}

// AckOutbox deletes every record up to and including upTo: the core has
// applied them. It deletes in bounded chunks, each persisting the mark.
func (c *Cache) AckOutbox(upTo uint64) error {
	if err := c.refuseUnusable(); err != nil {
		return err
	}
	if err := c.ob.ack(upTo, "ack"); err != nil {
		return fmt.Errorf("ack outbox through %d: %w", upTo, err)
	}
	return nil
}

// ResumeOutbox tells the outbox what the core has applied from this edge
// when the link (re)connects: records at or below coreAcked are deleted,
// and new records get sequences above it even if this edge lost its data.
func (c *Cache) ResumeOutbox(coreAcked uint64) error {
	if err := c.refuseUnusable(); err != nil {
		return err
	}
	if err := c.ob.ack(coreAcked, "resume"); err != nil {
		return fmt.Errorf("resume outbox at %d: %w", coreAcked, err)
	}
	return nil
}

// OutboxNotify returns a channel that receives a value (buffered, never
// blocking the writer) whenever new records may have become readable.
func (c *Cache) OutboxNotify() <-chan struct{} { return c.ob.notify }

// OutboxLen is the number of records waiting for the sync link.
func (c *Cache) OutboxLen() int { return int(c.ob.length.Load()) }

// OutboxOldest is the age of the oldest record still in the outbox, zero
// when it is empty: how far behind the core this edge is.
func (c *Cache) OutboxOldest() time.Duration { return c.ob.age(time.Now()) }

func (o *outbox) age(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.length.Load() <= 0 || o.oldestSeq == 0 || o.oldestTime.IsZero() {
		return 0
	}
	return max(now.Sub(o.oldestTime), 0)
}

// ack deletes the records through x and persists x as the acknowledged
// mark. Sequences handed out afterwards are above x.
//
// When x is above every sequence this run could have shown the core (the
// highest one Open found, or ReadOutbox returned since), the core knows
// sequences this edge does not: its disk was wiped or lost unsynced
// writes. The records this run staged in that range were never sent, and
// deleting them, or sending them under sequences the core already
// applied, would lose them; they are moved above x instead.
func (o *outbox) ack(x uint64, why string) error {
	if x == math.MaxUint64 {
		// No sequence could follow it: a corrupt acknowledgement, not
		// something to obey.
		return fmt.Errorf("sequence %d out of range", x)
	}
	o.ackMu.Lock()
	defer o.ackMu.Unlock()
	o.mu.Lock()
	known := max(o.floor-1, o.maxRead)
	if x >= o.next {
		o.next = x + 1
	}
	if x > known {
		// No sequence at or below x is handed out any more; wait for
		// the updates that already hold one.
		for len(o.pending) > 0 && o.pending[0].lo <= x {
			o.cond.Wait()
		}
	}
	o.mu.Unlock()
	if x > known {
		n, err := o.renumber(known, x)
		o.log.Warn("outbox: the core has applied sequences this edge never sent (its data was lost or wiped); renumbered the records staged since",
			"op", why, "core", x, "known", known, "renumbered", n)
		if err != nil {
			return fmt.Errorf("renumber records above %d: %w", known, err)
		}
	}
	return o.deleteThrough(x)
}

// renumber moves the records in (after, through] to fresh sequences above
// through, keeping their order and staging times, and returns how many it
// moved. The fresh sequences are one range handed out at once, so records
// staged meanwhile come after them.
func (o *outbox) renumber(after, through uint64) (uint64, error) {
	var count uint64
	err := o.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(pOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(outboxKey(after + 1)); it.Valid() && outboxSeq(it.Item().Key()) <= through; it.Next() {
			count++
		}
		return nil
	})
	if err != nil || count == 0 {
		return 0, err
	}
	o.mu.Lock()
	lo := o.allocLocked(count)
	o.mu.Unlock()
	// Unused sequences of the range (after an error) become holes.
	defer o.finish([]uint64{lo}, 0, time.Time{})
	var moved uint64
	size, retries := o.chunk, 0
	cursor := after
	for moved < count {
		n, last, err := o.moveChunk(cursor, through, lo+moved, size)
		switch {
		case errors.Is(err, badger.ErrTxnTooBig) && size > 1:
			size /= 2
			continue
		case errors.Is(err, badger.ErrConflict) && retries < maxChunkRetries:
			retries++
			continue
		case err != nil:
			return moved, err
		case n == 0:
			return moved, nil // the count is exact under ackMu; defensive
		}
		moved += n
		cursor = last
	}
	return moved, nil
}

// moveChunk moves up to size records in (after, through] to the sequences
// from newLo on, in one transaction (all of them or none).
func (o *outbox) moveChunk(after, through, newLo uint64, size int) (n, last uint64, err error) {
	txn := o.db.NewTransaction(true)
	defer txn.Discard()
	err = func() error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(outboxKey(after + 1)); it.Valid() && n < uint64(size); it.Next() {
			item := it.Item()
			seq := outboxSeq(item.Key())
			if seq > through {
				break
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := txn.Set(outboxKey(newLo+n), v); err != nil {
				return err
			}
			if err := txn.Delete(item.KeyCopy(nil)); err != nil {
				return err
			}
			n++
			last = seq
		}
		return nil
	}()
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		return 0, 0, err
	}
	return n, last, nil
}

// deleteThrough deletes the records at or below x in chunks of o.chunk
// keys (fewer if Badger finds the transaction too big), each chunk
// persisting the acknowledged mark. Called with ackMu held, or from Open.
func (o *outbox) deleteThrough(x uint64) error {
	if x <= o.cleared {
		return nil
	}
	mark := max(o.acked, x)
	from := o.cleared + 1
	for retries := 0; ; {
		n, last, more, err := o.deleteChunk(from, x, mark)
		if errors.Is(err, badger.ErrConflict) && retries < maxChunkRetries {
			retries++
			continue
		}
		if err != nil {
			return fmt.Errorf("delete acknowledged records from %d through %d: %w", from, x, err)
		}
		o.acked = mark
		o.ackTxns.Add(1)
		o.length.Add(-n)
		if !more {
			break
		}
		from = last + 1
	}
	o.cleared = x
	o.refreshOldest(x)
	return nil
}

// deleteChunk deletes records from from through x, at most o.chunk of
// them and fewer when Badger says the transaction is full, and writes the
// mark. more reports that records may remain after last.
func (o *outbox) deleteChunk(from, x, mark uint64) (n int64, last uint64, more bool, err error) {
	txn := o.db.NewTransaction(true)
	defer txn.Discard()
	if mark > o.acked {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], mark)
		if err := txn.Set([]byte(kOutboxAcked), b[:]); err != nil {
			return 0, 0, false, err
		}
	}
	err = func() error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(pOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(outboxKey(from)); it.Valid(); it.Next() {
			seq := outboxSeq(it.Item().Key())
			if seq > x {
				return nil
			}
			if n == int64(o.chunk) {
				more = true
				return nil
			}
			err := txn.Delete(it.Item().KeyCopy(nil))
			if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
				// Commit what fits; the next chunk goes on from here.
				more = true
				return nil
			}
			if err != nil {
				return err
			}
			n++
			last = seq
		}
		return nil
	}()
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		return 0, 0, false, err
	}
	return n, last, more, nil
}

// refreshOldest finds the oldest record above x after x was acknowledged,
// for the age OutboxOldest reports. A record committed meanwhile either
// is in the snapshot or records itself in finish; the smaller sequence
// wins either way.
func (o *outbox) refreshOldest(x uint64) {
	o.mu.Lock()
	stale := o.oldestSeq <= x
	if stale {
		o.oldestSeq, o.oldestTime = 0, time.Time{}
	}
	o.mu.Unlock()
	if !stale {
		return
	}
	var seq uint64
	var staged time.Time
	err := o.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(pOutbox)
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(outboxKey(x + 1))
		if !it.Valid() {
			return nil
		}
		seq = outboxSeq(it.Item().Key())
		return it.Item().Value(func(v []byte) error {
			staged, _ = splitOutboxValue(v)
			return nil
		})
	})
	if err != nil {
		o.log.Warn("outbox: cannot read the oldest record's age", "err", err)
		return
	}
	if seq == 0 {
		return
	}
	if staged.IsZero() {
		staged = time.Now() // written before records carried their time
	}
	o.mu.Lock()
	if o.oldestSeq == 0 || seq < o.oldestSeq {
		o.oldestSeq, o.oldestTime = seq, staged
	}
	o.mu.Unlock()
}
