package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/hashicorp/raft"
)

// openFSM opens an FSM in a temp dir, closed when tb ends.
func openFSM(tb testing.TB) *FSM {
	tb.Helper()
	f, err := OpenFSM(filepath.Join(tb.TempDir(), "fsm"), nil)
	if err != nil {
		tb.Fatalf("OpenFSM: %v", err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// fillDevices applies n device deltas (5 parameters each) in entries of
// 100 commands, the way raft hands them to the FSM.
func fillDevices(tb testing.TB, f *FSM, n int) {
	tb.Helper()
	var logs []*raft.Log
	for i := 0; i < n; i += 100 {
		var cmds []Command
		for j := i; j < min(i+100, n); j++ {
			d := delta(fmt.Sprintf("dev%06d", j), "e1", "A.DeviceInfo.UpTime", fmt.Sprint(j), "A.WAN.BytesSent", "12345678",
				"A.WAN.BytesReceived", "87654321", "A.LAN.Hosts", "7", "A.WiFi.SSID", "home-network")
			cmds = append(cmds, Command{V: CommandVersion, Op: OpDeviceDelta, Time: t0, Delta: d})
		}
		b, err := EncodeCommands(cmds)
		if err != nil {
			tb.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: f.AppliedIndex() + uint64(len(logs)) + 1, Type: raft.LogCommand, Data: b})
	}
	for _, o := range f.ApplyBatch(logs) {
		for _, r := range o.([]Result) {
			if r.Err != nil {
				tb.Fatal(r.Err)
			}
		}
	}
}

// dumpDB returns every live key and value in db.
func dumpDB(tb testing.TB, db *badger.DB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key())] = v
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// sameDB fails tb unless got holds exactly want.
func sameDB(tb testing.TB, got, want map[string][]byte) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			tb.Fatalf("key %q missing", k)
		}
		if !bytes.Equal(g, v) {
			tb.Fatalf("key %q: %d bytes, want %d bytes (or same length, other bytes)", k, len(g), len(v))
		}
	}
}

// persist takes a snapshot of f and returns its bytes.
func persist(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		tb.Fatal(err)
	}
	snap.Release()
	return sink.Bytes()
}

// putRaw writes k=v straight into f's DB, for values no command makes.
func putRaw(tb testing.TB, f *FSM, k string, v []byte) {
	tb.Helper()
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(k), v) }); err != nil {
		tb.Fatal(err)
	}
}

// TestSnapshotRoundTrip snapshots a DB with many keys, large values (some
// big enough for Badger's value log, and more than one write batch's
// worth) and an empty one, read back from disk after a reopen, and checks
// that Restore rebuilds it exactly, applied index included.
func TestSnapshotRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fsm")
	f, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fillDevices(t, f, 3000)
	// Tokens travel too, and the restored FSM's index follows them.
	kept, revoked := testToken("ci", fleet.ScopeWrite), testToken("old", fleet.ScopeRead)
	mustApply(t, f, Command{Op: OpPutToken, Token: kept}, Command{Op: OpPutToken, Token: revoked})
	mustApply(t, f, Command{Op: OpRevokeToken, Name: "old"})
	big := make([]byte, 3<<20) // past Badger's 1 MB value threshold: stored in the value log
	for i := range big {
		big[i] = byte(i * 7)
	}
	for i := range 8 { // 24 MB: more than one transaction can hold
		big[0] = byte(i)
		putRaw(t, f, fmt.Sprintf("z/big/%d", i), big)
	}
	putRaw(t, f, "z/mid", bytes.Repeat([]byte("x"), 200<<10))
	putRaw(t, f, "z/empty", nil)
	// Overwrites and deletes leave older versions behind; only the live
	// value may travel.
	putRaw(t, f, "z/over", []byte("old"))
	putRaw(t, f, "z/over", []byte("new"))
	putRaw(t, f, "z/gone", []byte("x"))
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte("z/gone")) }); err != nil {
		t.Fatal(err)
	}
	// Reopen so the snapshot reads SSTs and the value log, not the memtable.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = OpenFSM(dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	want := dumpDB(t, f.db)
	if _, ok := want["z/gone"]; ok || string(want["z/over"]) != "new" {
		t.Fatalf("setup: z/gone present %v, z/over %q", ok, want["z/over"])
	}

	b := persist(t, f)
	if !bytes.HasPrefix(b, []byte(snapMagic+"\x01")) {
		t.Fatalf("snapshot starts % x", b[:min(len(b), 8)])
	}
	g := openFSM(t)
	stale := testToken("stale", fleet.ScopeAdmin)
	mustApply(t, g, Command{Op: OpDeviceDelta, Delta: delta("stale", "e9")}, Command{Op: OpPutToken, Token: stale})
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	sameDB(t, dumpDB(t, g.db), want)
	if toks := g.Tokens(); len(toks) != 1 || toks[0].Name != "ci" || toks[0].Hash != kept.Hash {
		t.Fatalf("tokens after restore: %+v", toks)
	}
	for _, h := range []string{stale.Hash, revoked.Hash} {
		if tok, ok := g.TokenByHash(h); ok {
			t.Fatalf("restore left token %s findable", tok.Name)
		}
	}
	if rs := sharedLog(t, g); kinds(rs) != "token token token-revoke" {
		t.Fatalf("shared log after restore: %s", kinds(rs))
	}
	if g.AppliedIndex() != f.AppliedIndex() || g.AppliedIndex() == 0 {
		t.Fatalf("restored applied index %d, want %d", g.AppliedIndex(), f.AppliedIndex())
	}
	if ds, _, _ := g.Devices(DeviceFilter{}, "", 0); len(ds) != 3000 {
		t.Fatalf("%d devices after restore", len(ds))
	}
	// The restored FSM carries on: replays skip what is in, new entries apply.
	mustApply(t, g, Command{Op: OpDeviceDelta, Delta: delta("after", "e1")})
	if _, err := g.Device("after", false); err != nil {
		t.Fatal(err)
	}

	// An empty DB (no applied index yet) round-trips too.
	e := openFSM(t)
	h := openFSM(t)
	mustApply(t, h, Command{Op: OpDeviceDelta, Delta: delta("stale", "e9")})
	if err := h.Restore(io.NopCloser(bytes.NewReader(persist(t, e)))); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpDB(t, h.db)); n != 0 || h.AppliedIndex() != 0 {
		t.Fatalf("restore of an empty snapshot: %d keys, applied %d", n, h.AppliedIndex())
	}
}

// TestSnapshotRestoreRefusesBad feeds Restore damaged snapshots: each is
// refused with errBadSnapshot, and the live state, the applied index and
// the FSM's ability to apply are untouched.
func TestSnapshotRestoreRefusesBad(t *testing.T) {
	src := openFSM(t)
	fillDevices(t, src, 200)
	good := persist(t, src)

	f := openFSM(t)
	fillDevices(t, f, 50)
	want, applied := dumpDB(t, f.db), f.AppliedIndex()

	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	count := len(good) - 12 // the record count, before the 4-byte checksum
	cases := []struct {
		name string
		b    []byte
	}{
		{"magic only", good[:len(snapMagic)]},
		{"cut in magic", good[:3]},
		{"header only", good[:snapHdrLen]},
		{"cut in a record", good[:len(good)/2]},
		{"cut before the end marker", good[:count-1]},
		{"cut in the count", good[:count+3]},
		{"no checksum", good[:len(good)-4]},
		{"cut in the checksum", good[:len(good)-1]},
		{"flipped value byte", flip(len(good) / 2)},
		{"flipped count", flip(count + 7)},
		{"flipped checksum", flip(len(good) - 1)},
		{"trailing data", append(bytes.Clone(good), 0)},
		{"unknown version", append([]byte(snapMagic+"\x02"), good[snapHdrLen:]...)},
		{"unknown header", []byte("not a snapshot at all")},
		{"huge key length", binary.AppendUvarint(binary.AppendUvarint([]byte(snapMagic+"\x01"), 1<<40), 1)},
		{"huge value length", binary.AppendUvarint(binary.AppendUvarint([]byte(snapMagic+"\x01"), 1), 1<<40)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.Restore(io.NopCloser(bytes.NewReader(c.b)))
			if !errors.Is(err, errBadSnapshot) {
				t.Fatalf("Restore: %v, want %v", err, errBadSnapshot)
			}
			t.Log(err)
			sameDB(t, dumpDB(t, f.db), want)
			if f.AppliedIndex() != applied {
				t.Fatalf("applied index %d, want %d", f.AppliedIndex(), applied)
			}
			if _, err := os.Stat(f.dir + ".restore"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("staged db left behind: %v", err)
			}
		})
	}
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("after", "e1")})
	if _, err := f.Device("after", false); err != nil {
		t.Fatal(err)
	}
	// And the good one still restores.
	if err := f.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
		t.Fatal(err)
	}
	sameDB(t, dumpDB(t, f.db), dumpDB(t, src.db))
}

// TestSnapshotRestoresOldFormat checks that a snapshot written by earlier
// versions (db.Backup's protobuf stream) still restores, applied index
// included.
func TestSnapshotRestoresOldFormat(t *testing.T) {
	src := openFSM(t)
	fillDevices(t, src, 500)
	putRaw(t, src, "z/big", bytes.Repeat([]byte("v"), 2<<20))
	var old bytes.Buffer
	if _, err := src.db.Backup(&old, 0); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t)
	mustApply(t, f, Command{Op: OpDeviceDelta, Delta: delta("stale", "e9")})
	if err := f.Restore(io.NopCloser(bytes.NewReader(old.Bytes()))); err != nil {
		t.Fatal(err)
	}
	sameDB(t, dumpDB(t, f.db), dumpDB(t, src.db))
	if f.AppliedIndex() != src.AppliedIndex() {
		t.Fatalf("applied index %d, want %d", f.AppliedIndex(), src.AppliedIndex())
	}
	// Once restored, it snapshots in the new format.
	if b := persist(t, f); !bytes.HasPrefix(b, []byte(snapMagic)) {
		t.Fatalf("snapshot after old-format restore starts % x", b[:8])
	}

	// An empty DB's backup is an empty stream: it restores to nothing, as
	// it always did.
	var empty bytes.Buffer
	if _, err := openFSM(t).db.Backup(&empty, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(empty.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpDB(t, f.db)); n != 0 || f.AppliedIndex() != 0 {
		t.Fatalf("restore of an empty backup: %d keys, applied %d", n, f.AppliedIndex())
	}
}

// TestSnapshotRefusesTTL checks that Persist fails, rather than silently
// dropping it, on a key with a TTL, which the format does not carry.
func TestSnapshotRefusesTTL(t *testing.T) {
	f := openFSM(t)
	if err := f.db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(badger.NewEntry([]byte("z/ttl"), []byte("v")).WithTTL(time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(&memSink{}); err == nil {
		t.Fatal("Persist of a key with a TTL succeeded")
	}
}

// countSink is a raft.SnapshotSink that only counts what it is given.
type countSink struct{ n int64 }

func (s *countSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *countSink) ID() string                  { return "count" }
func (s *countSink) Cancel() error               { return nil }
func (s *countSink) Close() error                { return nil }

// BenchmarkFSMSnapshot measures one FSM snapshot (Snapshot + Persist) of a
// DB holding 100 or 10k devices, in the memtable right after the applies
// and, "disk", in SSTs after a reopen; run with -benchmem: the bytes
// allocated per op are what every snapshot costs the process.
func BenchmarkFSMSnapshot(b *testing.B) {
	for _, c := range []struct {
		devices int
		reopen  bool
	}{{100, false}, {10000, false}, {10000, true}} {
		name := fmt.Sprintf("devices=%d", c.devices)
		if c.reopen {
			name += ",disk"
		}
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "fsm")
			f, err := OpenFSM(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			fillDevices(b, f, c.devices)
			if c.reopen {
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				if f, err = OpenFSM(dir, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.Cleanup(func() { f.Close() })
			var sink countSink
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				sink.n = 0
				snap, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				if err := snap.Persist(&sink); err != nil {
					b.Fatal(err)
				}
				snap.Release()
			}
			b.ReportMetric(float64(sink.n), "snapshot-bytes")
		})
	}
}
