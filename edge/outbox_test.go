package edge

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// The cache is what cmd/edgeacs hands the sync client.
var (
	_ fleetsync.Outbox       = (*Cache)(nil)
	_ fleetsync.Inbox        = (*Cache)(nil)
	_ fleetsync.HealthSource = (*Cache)(nil)
	_ fleetsync.HealthSource = (*Node)(nil)
)

// stageDrop is one update that stages a TaskDrop record named name.
func stageDrop(c *Cache, name string) error {
	return c.updateOutbox(func(_ *badger.Txn, ob *outboxTxn) error {
		return ob.add(&fleet.TaskDrop{Task: name})
	})
}

func dropName(t testing.TB, r fleet.SeqRecord) string {
	t.Helper()
	var d fleet.TaskDrop
	if err := fleet.Unmarshal(r.Data, &d); err != nil {
		t.Fatalf("record %d: %v", r.Seq, err)
	}
	return d.Task
}

func seqs(recs []fleet.SeqRecord) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// heldUpdate is an update that has its sequence and waits, uncommitted,
// until released.
type heldUpdate struct {
	release chan struct{}
	done    chan error
}

// holdUpdate starts an update staging record name and returns once it has
// taken its sequence.
func holdUpdate(c *Cache, name string) *heldUpdate {
	h := &heldUpdate{release: make(chan struct{}), done: make(chan error, 1)}
	staged := make(chan struct{})
	go func() {
		first := true
		h.done <- c.updateOutbox(func(_ *badger.Txn, ob *outboxTxn) error {
			if err := ob.add(&fleet.TaskDrop{Task: name}); err != nil {
				return err
			}
			if first {
				first = false
				close(staged)
				<-h.release
			}
			return nil
		})
	}()
	<-staged
	return h
}

func (h *heldUpdate) commit(t *testing.T) {
	t.Helper()
	close(h.release)
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("held update: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held update did not commit")
	}
}

// TestOutboxReaderSeesOnlyFinalRecords commits updates in an order other
// than their sequences'. A reader that reads after every commit and acks
// what it read (as the sync client does) must get every record once, in
// sequence order: before the fix it read 2, acked 2, and never saw 1.
func TestOutboxReaderSeesOnlyFinalRecords(t *testing.T) {
	tests := []struct {
		name        string
		commitOrder []int // indexes into the held updates, whose sequences are 1..n
	}{
		{"in order", []int{0, 1}},
		{"2 before 1", []int{1, 0}},
		{"3 then 1 then 2", []int{2, 0, 1}},
		{"reverse of 4", []int{3, 2, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTestCache(t, "")
			held := make([]*heldUpdate, len(tt.commitOrder))
			for i := range held {
				held[i] = holdUpdate(c, "r"+strconv.Itoa(i+1))
			}
			var pos uint64
			var got []fleet.SeqRecord
			readAndAck := func() {
				recs, err := c.ReadOutbox(pos, 100)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, recs...)
				if len(recs) > 0 {
					pos = recs[len(recs)-1].Seq
					if err := c.AckOutbox(pos); err != nil {
						t.Fatal(err)
					}
				}
			}
			readAndAck()
			for _, i := range tt.commitOrder {
				held[i].commit(t)
				readAndAck()
			}
			var names []string
			for _, r := range got {
				names = append(names, dropName(t, r))
			}
			want := make([]string, len(held))
			for i := range want {
				want[i] = "r" + strconv.Itoa(i+1)
			}
			if !slices.Equal(names, want) || !slices.IsSorted(seqs(got)) {
				t.Errorf("reader got %v (seqs %v), want %v in sequence order", names, seqs(got), want)
			}
			if c.OutboxLen() != 0 {
				t.Errorf("OutboxLen = %d after acking everything read", c.OutboxLen())
			}
		})
	}
}

func TestOutboxNotify(t *testing.T) {
	c := openTestCache(t, "")
	ch := c.OutboxNotify()
	h := holdUpdate(c, "a")
	if err := stageDrop(c, "b"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("notified while record 1 is still in flight: nothing new is readable")
	default:
	}
	h.commit(t)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after records became readable")
	}
	// Writers never block on a reader that is not listening.
	for i := range 3 {
		if err := stageDrop(c, "more"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-ch
	select {
	case <-ch:
		t.Fatal("the channel buffers more than one wake-up")
	default:
	}
}

// TestOutboxSequenceReuseAndHoles: a conflict retry stages its record
// under the sequence its first attempt took (no gap); an update that fails
// leaves its sequence as a hole that readers pass.
func TestOutboxSequenceReuseAndHoles(t *testing.T) {
	tests := []struct {
		name string
		// run performs one update that stages "x", forcing its fate.
		run      func(t *testing.T, c *Cache) error
		wantErr  bool
		wantSeqs []uint64 // of the records readable afterwards, "x" (if any) then "next"
	}{
		{"conflict retry keeps the sequence", func(t *testing.T, c *Cache) error {
			attempts := 0
			return c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
				attempts++
				if _, err := txn.Get([]byte("x/conflict")); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				if err := ob.add(&fleet.TaskDrop{Task: "x"}); err != nil {
					return err
				}
				if attempts == 1 {
					// Another writer changes what this attempt read.
					if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/conflict"), nil) }); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			})
		}, false, []uint64{1, 2}},
		{"failed update leaves a hole", func(t *testing.T, c *Cache) error {
			return c.updateOutbox(func(_ *badger.Txn, ob *outboxTxn) error {
				if err := ob.add(&fleet.TaskDrop{Task: "x"}); err != nil {
					return err
				}
				return errors.New("refused")
			})
		}, true, []uint64{2}},
		{"panicking update leaves a hole", func(t *testing.T, c *Cache) (err error) {
			defer func() {
				if recover() != nil {
					err = errors.New("panicked")
				}
			}()
			return c.updateOutbox(func(_ *badger.Txn, ob *outboxTxn) error {
				if err := ob.add(&fleet.TaskDrop{Task: "x"}); err != nil {
					return err
				}
				panic("bug")
			})
		}, true, []uint64{2}},
		{"retry staging fewer records leaves a hole", func(t *testing.T, c *Cache) error {
			attempts := 0
			return c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
				attempts++
				if _, err := txn.Get([]byte("x/conflict")); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				if attempts == 1 {
					if err := ob.add(&fleet.TaskDrop{Task: "gone"}); err != nil {
						return err
					}
					if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/conflict"), nil) }); err != nil {
						t.Fatal(err)
					}
				}
				return ob.add(&fleet.TaskDrop{Task: "x"})
			})
		}, false, []uint64{1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTestCache(t, "")
			if err := tt.run(t, c); (err != nil) != tt.wantErr {
				t.Fatalf("update: %v, want error %v", err, tt.wantErr)
			}
			if err := stageDrop(c, "next"); err != nil {
				t.Fatal(err)
			}
			recs, err := c.ReadOutbox(0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(recs), tt.wantSeqs) || len(recs) == 0 || dropName(t, recs[len(recs)-1]) != "next" {
				t.Errorf("readable seqs %v, want %v ending with next", seqs(recs), tt.wantSeqs)
			}
			if c.OutboxLen() != len(tt.wantSeqs) {
				t.Errorf("OutboxLen = %d, want %d", c.OutboxLen(), len(tt.wantSeqs))
			}
		})
	}
}

// TestOutboxSequencesNeverGoBack reopens the cache in various states: the
// next record's sequence is above every one handed out before. Before the
// fix, an outbox emptied by acks restarted at 1, and the core dropped the
// new records as resends.
func TestOutboxSequencesNeverGoBack(t *testing.T) {
	tests := []struct {
		name  string
		ack   func(c *Cache, last uint64) error
		crash bool // close Badger without Close
	}{
		{"everything acked", func(c *Cache, last uint64) error { return c.AckOutbox(last) }, false},
		{"everything acked, crash", func(c *Cache, last uint64) error { return c.AckOutbox(last) }, true},
		{"part acked", func(c *Cache, last uint64) error { return c.AckOutbox(last - 2) }, false},
		{"nothing acked", func(*Cache, uint64) error { return nil }, true},
		{"resumed beyond", func(c *Cache, last uint64) error { return c.ResumeOutbox(last + 100) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := OpenCache(dir, CacheOptions{Logger: quietLog, EdgeID: "e1"})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := stageDrop(c, strconv.Itoa(i)); err != nil {
					t.Fatal(err)
				}
			}
			recs, err := c.ReadOutbox(0, 10)
			if err != nil || len(recs) != 5 {
				t.Fatalf("ReadOutbox = %v, %v", recs, err)
			}
			last := recs[4].Seq
			if err := tt.ack(c, last); err != nil {
				t.Fatal(err)
			}
			floor := max(last, c.ob.acked)
			if tt.crash {
				c.db.Close()
			} else if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			c2 := openTestCache(t, dir)
			if err := stageDrop(c2, "after"); err != nil {
				t.Fatal(err)
			}
			recs, err = c2.ReadOutbox(0, 10)
			if err != nil || len(recs) == 0 {
				t.Fatalf("ReadOutbox after reopen = %v, %v", recs, err)
			}
			if got := recs[len(recs)-1].Seq; got <= floor {
				t.Errorf("new record got sequence %d after %d was handed out", got, floor)
			}
		})
	}
}

// TestResumeOutbox: records the core applied are deleted; when the core
// knows sequences this edge does not (its disk was wiped), records staged
// since are renumbered above them instead of being dropped as resends.
func TestResumeOutbox(t *testing.T) {
	tests := []struct {
		name      string
		staged    int    // records staged before the resume
		read      bool   // the client read them all before (a reconnect)
		coreAcked uint64 // what the core says it applied
		wantSeqs  []uint64
	}{
		{"reconnect, core applied part", 5, true, 3, []uint64{4, 5, 6}},
		{"reconnect, core applied all", 5, true, 5, []uint64{6}},
		{"first connect of a fresh edge", 2, false, 0, []uint64{1, 2, 3}},
		{"wiped edge, nothing staged", 0, false, 1000, []uint64{1001}},
		{"wiped edge, records staged before the link came up", 3, false, 1000, []uint64{1001, 1002, 1003, 1004}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTestCache(t, "")
			for i := range tt.staged {
				if err := stageDrop(c, "r"+strconv.Itoa(i+1)); err != nil {
					t.Fatal(err)
				}
			}
			if tt.read {
				if _, err := c.ReadOutbox(0, 100); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.ResumeOutbox(tt.coreAcked); err != nil {
				t.Fatal(err)
			}
			if err := stageDrop(c, "new"); err != nil {
				t.Fatal(err)
			}
			recs, err := c.ReadOutbox(tt.coreAcked, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(recs), tt.wantSeqs) {
				t.Errorf("after resume seqs %v, want %v", seqs(recs), tt.wantSeqs)
			}
			// Order and content survive a renumbering.
			if tt.coreAcked > uint64(tt.staged) {
				for i, r := range recs[:len(recs)-1] {
					if got, want := dropName(t, r), "r"+strconv.Itoa(i+1); got != want {
						t.Errorf("record %d is %q, want %q", r.Seq, got, want)
					}
				}
			}
			if all, _ := c.ReadOutbox(0, 100); len(all) != len(recs) || c.OutboxLen() != len(recs) {
				t.Errorf("outbox holds %v (len %d), want only %v", seqs(all), c.OutboxLen(), tt.wantSeqs)
			}
		})
	}
}

// TestResumeOutboxWaitsForInFlight: a wiped edge's update that took a
// sequence the core already applied, and commits only after the resume
// began, is renumbered too, not lost.
func TestResumeOutboxWaitsForInFlight(t *testing.T) {
	c := openTestCache(t, "")
	h := holdUpdate(c, "inflight")
	resumed := make(chan error, 1)
	go func() { resumed <- c.ResumeOutbox(50) }()
	waitFor(t, 10*time.Second, "the resume to fast-forward the sequence", func() bool {
		c.ob.mu.Lock()
		defer c.ob.mu.Unlock()
		return c.ob.next > 50
	})
	select {
	case err := <-resumed:
		t.Fatalf("resume returned (%v) while sequence 1 was in flight", err)
	default:
	}
	h.commit(t)
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	recs, err := c.ReadOutbox(50, 10)
	if err != nil || len(recs) != 1 || recs[0].Seq != 51 || dropName(t, recs[0]) != "inflight" {
		t.Fatalf("after resume: %v %v", recs, err)
	}
}

// fillOutbox stages n records in transactions of 5,000.
func fillOutbox(tb testing.TB, c *Cache, n int) {
	tb.Helper()
	for done := 0; done < n; {
		k := min(5000, n-done)
		err := c.updateOutbox(func(_ *badger.Txn, ob *outboxTxn) error {
			for i := range k {
				if err := ob.add(&fleet.TaskDrop{Task: "t" + strconv.Itoa(done+i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		done += k
	}
}

// fillOutboxRaw writes records 1..n straight into a closed cache's
// directory, as a long outage leaves them, and reopens it.
func fillOutboxRaw(tb testing.TB, dir string, opts CacheOptions, n uint64) *Cache {
	tb.Helper()
	c, err := OpenCache(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := fleet.Marshal(&fleet.TaskDrop{Task: "backlog"})
	if err != nil {
		tb.Fatal(err)
	}
	v := outboxValue(time.Now(), rec)
	wb := c.db.NewWriteBatch()
	for seq := uint64(1); seq <= n; seq++ {
		if err := wb.Set(outboxKey(seq), v); err != nil {
			tb.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := c.Close(); err != nil {
		tb.Fatal(err)
	}
	if c, err = OpenCache(dir, opts); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if c.OutboxLen() != int(n) {
		tb.Fatalf("OutboxLen after fill = %d, want %d", c.OutboxLen(), n)
	}
	return c
}

// TestAckOutboxBacklog acknowledges a backlog at once, as a resume after
// an outage does. Before the fix the single transaction failed with
// ErrTxnTooBig at 200,000 records (BenchmarkAckOutbox); now it is split into chunks of
// defaultAckChunk keys, or wherever Badger says a transaction is full
// (forced here with a small memtable). Memory: BenchmarkAckOutbox.
func TestAckOutboxBacklog(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(1 << 10) }
	tests := []struct {
		name      string
		backlog   uint64
		chunk     int
		tune      func(badger.Options) badger.Options
		minChunks int64
	}{
		// The chunk is small so many chunks run in little time under -race;
		// BenchmarkAckOutbox covers backlogs of 200k and 400k.
		{"30k chunked by count", 30_000, 1_000, nil, 30},
		{"chunked where Badger says the transaction is full", 20_000, 1 << 30, small, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := CacheOptions{Logger: quietLog, EdgeID: "e1", tune: tt.tune}
			c := fillOutboxRaw(t, dir, opts, tt.backlog)
			c.ob.chunk = tt.chunk
			before := c.ob.ackTxns.Load()
			if err := c.ResumeOutbox(tt.backlog); err != nil {
				t.Fatal(err)
			}
			if n := c.ob.ackTxns.Load() - before; n < tt.minChunks {
				t.Errorf("ack committed %d transactions, want at least %d", n, tt.minChunks)
			}
			if recs, err := c.ReadOutbox(0, 10); err != nil || len(recs) != 0 || c.OutboxLen() != 0 {
				t.Errorf("after ack: %v %v len %d", seqs(recs), err, c.OutboxLen())
			}
			c.Close()
			c2, err := OpenCache(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if c2.OutboxLen() != 0 {
				t.Errorf("OutboxLen after reopen = %d", c2.OutboxLen())
			}
			if err := stageDrop(c2, "next"); err != nil {
				t.Fatal(err)
			}
			if recs, _ := c2.ReadOutbox(0, 10); len(recs) != 1 || recs[0].Seq != tt.backlog+1 {
				t.Errorf("after reopen: %v, want sequence %d", seqs(recs), tt.backlog+1)
			}
		})
	}
}

// TestOpenFinishesInterruptedAck: records at or below the persisted mark
// (an ack that crashed between chunks) are deleted when the cache opens.
func TestOpenFinishesInterruptedAck(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	fillOutbox(t, c, 30)
	// What a crash after the first chunk of AckOutbox(20) leaves: the
	// mark persisted, records 11..20 still there.
	c.ob.chunk = 10
	c.ob.ackMu.Lock()
	n, _, more, err := c.ob.deleteChunk(1, 20, 20)
	c.ob.ackMu.Unlock()
	if err != nil || n != 10 || !more {
		t.Fatalf("deleteChunk = %d, %v, %v", n, more, err)
	}
	c.db.Close()
	c2 := openTestCache(t, dir)
	recs, err := c2.ReadOutbox(0, 100)
	if err != nil || len(recs) != 10 || recs[0].Seq != 21 || c2.OutboxLen() != 10 {
		t.Fatalf("after reopen: %v %v len %d, want 21..30", seqs(recs), err, c2.OutboxLen())
	}
}

func TestOutboxAgeAndHealth(t *testing.T) {
	c := openTestCache(t, "")
	if h := c.Health(); h.OutboxLen != 0 || h.OldestUnsent != 0 {
		t.Fatalf("empty: %+v", h)
	}
	start := time.Now()
	mustBegin(t, c, tr098("AGE1"), t0).End(true)
	mustBegin(t, c, tr098("AGE2"), t0).End(true)
	if _, err := c.ReadOutbox(0, 10); err != nil {
		t.Fatal(err)
	}
	h := c.Health()
	if h.OutboxLen != 2 || h.Devices != 2 || h.OldestUnsent <= 0 || h.OldestUnsent > time.Since(start) {
		t.Errorf("health = %+v", h)
	}
	// Acking the first record makes the second the oldest; acking all
	// makes the age zero.
	if err := c.AckOutbox(1); err != nil {
		t.Fatal(err)
	}
	if c.ob.oldestSeq != 2 || c.OutboxOldest() <= 0 {
		t.Errorf("after ack of 1: oldest seq %d age %v", c.ob.oldestSeq, c.OutboxOldest())
	}
	if err := c.AckOutbox(2); err != nil {
		t.Fatal(err)
	}
	if h := c.Health(); h.OutboxLen != 0 || h.OldestUnsent != 0 {
		t.Errorf("after ack of all: %+v", h)
	}
}

// TestOutboxAgeSurvivesRestart: the staging time is stored with each
// record, so a restarted edge still reports how old its backlog is.
func TestOutboxAgeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	staged := time.Now()
	fillOutbox(t, c, 3)
	c.Close()
	c2 := openTestCache(t, dir)
	c2.ob.mu.Lock()
	seq, at := c2.ob.oldestSeq, c2.ob.oldestTime
	c2.ob.mu.Unlock()
	if seq != 1 || at.Before(staged.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("oldest after reopen: seq %d staged %v (records staged at %v)", seq, at, staged)
	}
}

func TestRateMeter(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		events []time.Duration // offsets from base
		at     time.Duration
		want   float64
	}{
		{"none", nil, 10 * time.Second, 0},
		{"steady 2/s", []time.Duration{0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond,
			2 * time.Second, 2500 * time.Millisecond, 3 * time.Second, 3500 * time.Millisecond,
			4 * time.Second, 4500 * time.Millisecond}, 5 * time.Second, 2},
		{"current second not counted", []time.Duration{5 * time.Second, 5 * time.Second}, 5*time.Second + 100*time.Millisecond, 0},
		{"old events forgotten", []time.Duration{0, 0, 0}, 30 * time.Second, 0},
		{"bucket reused after wrap", []time.Duration{0, 6 * time.Second}, 7 * time.Second, 0.2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m rateMeter
			for _, e := range tt.events {
				m.add(base.Add(e))
			}
			if got := m.rate(base.Add(tt.at)); got != tt.want {
				t.Errorf("rate = %v, want %v", got, tt.want)
			}
		})
	}
}

// BenchmarkAckOutbox acknowledges a backlog in one call; run with
// -benchmem -benchtime=1x. B/op counts every allocation (Badger's, per
// delete), so it grows with the backlog; what must not grow is the memory
// held at once: ack-peak-MB, the highest live heap sampled during the ack
// above the live heap before it, levels off as the backlog grows (Badger's
// memtables, not the keys; the old single transaction held every key, and
// failed past ~100k).
func BenchmarkAckOutbox(b *testing.B) {
	for _, backlog := range []int{50_000, 200_000, 400_000} {
		b.Run(strconv.Itoa(backlog), func(b *testing.B) {
			c := openTestCache(b, "")
			var acked, peak, base uint64
			for range b.N {
				b.StopTimer()
				fillOutbox(b, c, backlog)
				acked += uint64(backlog)
				if _, err := c.ReadOutbox(acked-1, 1); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				base = liveHeap()
				peak = base
				stop := sampleLiveHeap(&peak)
				b.StartTimer()
				if err := c.AckOutbox(acked); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				stop()
			}
			b.ReportMetric(float64(peak-base)/(1<<20), "ack-peak-MB")
		})
	}
}

func liveHeap() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// sampleLiveHeap records the highest live heap into *peak every
// millisecond until the returned stop is called.
func sampleLiveHeap(peak *uint64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			*peak = max(*peak, liveHeap())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

func ExampleCache_ReadOutbox() {
	c, err := OpenCache("", CacheOptions{InMemory: true, Logger: quietLog, EdgeID: "e1"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.AddTask(&fleet.Task{ID: "T1", Device: "dev1", Name: fleet.TaskReboot})
	// The sync client's loop: read after what the core applied, send,
	// then ack what the core says it applied.
	recs, _ := c.ReadOutbox(0, 100)
	for _, r := range recs {
		k, _ := fleet.KindOf(r.Data)
		fmt.Println(r.Seq, k == fleet.KindTask)
	}
	_ = c.AckOutbox(recs[len(recs)-1].Seq)
	fmt.Println(c.OutboxLen())
	// Output:
	// 1 true
	// 0
}
