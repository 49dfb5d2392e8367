package raftstore

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Side-by-side benchmarks against hashicorp/raft-boltdb/v2. Both fsync:
// raft-boltdb does by default, Badger with SyncWrites. "badger-nosync" is
// reported separately and is not a fair comparison.
//
//	go test -run='^$' -bench=. -benchtime=2s ./raftstore

type benchStore interface {
	raft.LogStore
	Close() error
}

var benchBackends = []struct {
	name string
	open func(b *testing.B) benchStore
}{
	{"badger", func(b *testing.B) benchStore { return openBadgerBench(b, true) }},
	{"bolt", openBoltBench},
	{"badger-nosync", func(b *testing.B) benchStore { return openBadgerBench(b, false) }},
}

func openBadgerBench(b *testing.B, sync bool) benchStore {
	s, err := Open(b.TempDir(), Options{SyncWrites: sync, Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func openBoltBench(b *testing.B) benchStore {
	s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchPayload is a typical batched FSM command.
var benchPayload = func() []byte {
	p := make([]byte, 512)
	_, _ = rand.Read(p)
	return p
}()

// batch returns n logs reused across iterations; next sets their indices.
type batch []*raft.Log

func newBatch(n int) batch {
	logs := make(batch, n)
	for i := range logs {
		logs[i] = &raft.Log{Term: 3, Type: raft.LogCommand, Data: benchPayload, AppendedAt: time.Now()}
	}
	return logs
}

func (bt batch) next(first uint64) []*raft.Log {
	for i, l := range bt {
		l.Index = first + uint64(i)
	}
	return bt
}

func fill(b *testing.B, s raft.LogStore, n int) {
	bt := newBatch(256)
	for i := 0; i < n; i += 256 {
		if err := s.StoreLogs(bt.next(uint64(i) + 1)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreLogs(b *testing.B) {
	for _, be := range benchBackends {
		for _, n := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/%d", be.name, n), func(b *testing.B) {
				s := be.open(b)
				bt := newBatch(n)
				b.SetBytes(int64(n * len(benchPayload)))
				b.ResetTimer()
				for i := range b.N {
					if err := s.StoreLogs(bt.next(uint64(i*n) + 1)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

func BenchmarkGetLog(b *testing.B) {
	const stored = 10_000
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			fill(b, s, stored)
			var l raft.Log
			b.ResetTimer()
			for i := range b.N {
				// Stride through the log so reads are not all memtable hits
				// of one neighborhood.
				idx := uint64(i*7919%stored) + 1
				if err := s.GetLog(idx, &l); err != nil {
					b.Fatalf("GetLog(%d): %v", idx, err)
				}
			}
		})
	}
}

// BenchmarkDeleteRange measures steady-state compaction: the log keeps 1024
// entries; each iteration appends 64 (untimed) and deletes the oldest 64.
func BenchmarkDeleteRange(b *testing.B) {
	const keep, step = 1024, 64
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			fill(b, s, keep)
			bt := newBatch(step)
			first, next := uint64(1), uint64(keep+1)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := s.StoreLogs(bt.next(next)); err != nil {
					b.Fatal(err)
				}
				next += step
				b.StartTimer()
				if err := s.DeleteRange(first, first+step-1); err != nil {
					b.Fatal(err)
				}
				first += step
			}
			b.StopTimer()
			if got, _ := s.FirstIndex(); got != first {
				b.Fatalf("FirstIndex = %d, want %d", got, first)
			}
		})
	}
}

// BenchmarkCodec compares the hand-written log encoding with CBOR
// (fxamacker/cbor/v2, nanosecond timestamps) on a typical entry.
func BenchmarkCodec(b *testing.B) {
	in := &raft.Log{Index: 123456, Term: 7, Type: raft.LogCommand, Data: benchPayload,
		Extensions: []byte("ext"), AppendedAt: time.Now()}
	em, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
	if err != nil {
		b.Fatal(err)
	}
	bin := appendLog(nil, in)
	cb, err := em.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("binary/encode", func(b *testing.B) {
		b.ReportMetric(float64(len(bin)), "bytes")
		buf := make([]byte, 0, encodedLogSize(in))
		for range b.N {
			buf = appendLog(buf[:0], in)
		}
	})
	b.Run("cbor/encode", func(b *testing.B) {
		b.ReportMetric(float64(len(cb)), "bytes")
		for range b.N {
			if _, err := em.Marshal(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary/decode", func(b *testing.B) {
		var out raft.Log
		for range b.N {
			if err := decodeLog(bin, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cbor/decode", func(b *testing.B) {
		var out raft.Log
		for range b.N {
			out = raft.Log{}
			if err := cbor.Unmarshal(cb, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
