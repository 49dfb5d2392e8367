package raftstore

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
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

// coreBatchEntry is a raft entry as the core writes one during an edge's
// uplink drain: 512 uplink commands (CBOR), each a device delta of five
// counters, about 320 KiB.
func coreBatchEntry() []byte {
	counters := []string{"InternetGatewayDevice.DeviceInfo.UpTime", "InternetGatewayDevice.WANDevice.1.WANCommonInterfaceConfig.TotalBytesSent",
		"InternetGatewayDevice.WANDevice.1.WANCommonInterfaceConfig.TotalBytesReceived", "InternetGatewayDevice.LANDevice.1.Hosts.HostNumberOfEntries",
		"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.TotalAssociations"}
	type command struct { // core.Command's uplink fields
		V      uint8     `cbor:"1,keyasint"`
		Op     uint8     `cbor:"2,keyasint"`
		Time   time.Time `cbor:"3,keyasint"`
		Edge   string    `cbor:"5,keyasint"`
		Seq    uint64    `cbor:"6,keyasint"`
		Record []byte    `cbor:"24,keyasint"`
		Prev   uint64    `cbor:"31,keyasint"`
	}
	now := time.Now().UTC()
	var cmds []command
	for i := range 512 {
		dev := i * 37 % 20000
		dd := &fleet.DeviceDelta{Device: fmt.Sprintf("B0B0B0-Fill-FILL%06d", dev), Edge: "edge1", OUI: "B0B0B0", ProductClass: "Fill",
			SerialNumber: fmt.Sprintf("FILL%06d", dev), Manufacturer: "Bench", LastInform: now.Add(time.Duration(i) * time.Millisecond), Events: []string{"2 PERIODIC"}}
		for k, c := range counters {
			dd.Parameters = append(dd.Parameters, fleet.ParameterValue{Name: c, Value: strconv.Itoa(i*7919 + k*13), Type: "xsd:unsignedInt"})
		}
		rec, err := fleet.Marshal(dd)
		if err != nil {
			panic(err)
		}
		cmds = append(cmds, command{1, 17, now, "edge1", uint64(i + 1000), rec, uint64(i + 999)})
	}
	b, err := fleet.CBOR.Enc.Marshal(cmds)
	if err != nil {
		panic(err)
	}
	return append([]byte{1}, b...)
}

// BenchmarkStoreLogsBatchEntry stores one core batch entry per iteration
// (fsync on) and reads it back, as raft does to replicate and apply it,
// with Data compressed and without: cpu-us/entry is all the CPU spent,
// Badger's flushes and compactions included.
func BenchmarkStoreLogsBatchEntry(b *testing.B) {
	entry := coreBatchEntry()
	for _, compress := range []bool{true, false} {
		b.Run(fmt.Sprintf("compressed=%v", compress), func(b *testing.B) {
			defer func(old bool) { compressData = old }(compressData)
			compressData = compress
			s := openBadgerBench(b, true).(*Store)
			b.SetBytes(int64(len(entry)))
			cpu0 := cpuTime()
			b.ResetTimer()
			var l raft.Log
			for i := range b.N {
				if err := s.StoreLogs([]*raft.Log{{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: entry}}); err != nil {
					b.Fatal(err)
				}
				if err := s.GetLog(uint64(i+1), &l); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-us/entry")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
