package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/s2"
)

// ErrCorrupt reports a stored record that cannot be decoded: a torn or
// tampered value, or one written by an incompatible future version.
var ErrCorrupt = errors.New("raftstore: corrupt record")

// logFormatV1 is the first byte of every encoded log entry so the format can
// evolve without a migration: a reader rejects versions it does not know.
const logFormatV1 = 1

// flagAppendedAt marks that AppendedAt is present. A zero time is common
// (raft only sets it on the leader path) and costs nothing when absent.
const flagAppendedAt = 1 << 0

// flagS2 marks that Data is stored S2-compressed (klauspost/compress/s2).
// The core's entries are batches of hundreds of commands, a few hundred KiB
// of CBOR with the same parameter names over and over, which S2 shrinks
// about eightfold in a fraction of a millisecond. Badger copies an inline
// value into its write-ahead log, its memtable, a level-0 table and every
// level a compaction moves it through, and that was most of what storing
// an entry cost (BenchmarkStoreLogsBatchEntry: 2.9 ms of CPU for a 320 KiB
// entry stored and read back, 1.0 ms compressed). Only this node's copy is
// compressed: raft replicates the entry as it is.
const flagS2 = 1 << 1

// compressMin is the smallest Data worth compressing; compressed Data is
// kept only when it saves at least an eighth.
const compressMin = 4 << 10

// compressData turns compression off when false (benchmarks compare).
var compressData = true

// maxDecoded bounds the size a compressed Data may claim before anything is
// allocated for it (a value is at most a value-log file, 64 MiB).
const maxDecoded = 64 << 20

// Layout (v1), all integers varint-encoded:
//
//	version(1 byte) index term type(1 byte) flags(1 byte)
//	[unix-seconds(signed) nanoseconds]   if flags&flagAppendedAt
//	len(Data) Data len(Extensions) Extensions
//
// With flags&flagS2, Data is stored S2-compressed (its length is the
// compressed one). A reader that does not know the flag refuses the entry
// as corrupt rather than hand raft compressed bytes.
//
// The index is repeated in the value although the key carries it, so a value
// stored under the wrong key (or a key/value mix-up after corruption) is
// detected on read instead of silently feeding raft the wrong entry.
//
// A hand-written encoding beats CBOR here (see BenchmarkCodec): raft.Log has a
// fixed shape, the hot path must not allocate per field, and the result is a
// few bytes smaller per entry.

// encodedLogSize returns an upper bound of the encoded size of l.
func encodedLogSize(l *raft.Log) int {
	return 1 + binary.MaxVarintLen64*2 + 2 + binary.MaxVarintLen64*2 +
		binary.MaxVarintLen64 + len(l.Data) + binary.MaxVarintLen64 + len(l.Extensions)
}

// appendLog appends the encoding of l to dst (never longer than
// encodedLogSize says: Data is compressed only when that makes it shorter).
func appendLog(dst []byte, l *raft.Log) []byte {
	data, flags := l.Data, byte(0)
	if compressData && len(data) >= compressMin {
		if c := s2.Encode(nil, data); len(c) <= len(data)-len(data)/8 {
			data, flags = c, flagS2
		}
	}
	dst = append(dst, logFormatV1)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	if l.AppendedAt.IsZero() {
		dst = append(dst, flags)
	} else {
		dst = append(dst, flags|flagAppendedAt)
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	dst = append(dst, data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return dst
}

// decodeLog decodes src into l. The byte slices in l are copies: src belongs
// to a Badger transaction and is invalid once it ends.
func decodeLog(src []byte, l *raft.Log) error {
	d := decoder{buf: src}
	if v := d.byte(); v != logFormatV1 {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: unknown log format version %d", ErrCorrupt, v)
	}
	index := d.uvarint()
	term := d.uvarint()
	typ := raft.LogType(d.byte())
	flags := d.byte()
	var appended time.Time
	if flags&flagAppendedAt != 0 {
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= uint64(time.Second) && d.err == nil {
			d.err = fmt.Errorf("%w: nanoseconds %d out of range", ErrCorrupt, nsec)
		}
		appended = time.Unix(sec, int64(nsec))
	}
	if flags&^(flagAppendedAt|flagS2) != 0 && d.err == nil {
		d.err = fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	data := d.bytes()
	ext := d.bytes()
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.buf))
	}
	dataLen := len(data)
	if flags&flagS2 != 0 {
		n, err := s2.DecodedLen(data)
		if err != nil || n > maxDecoded {
			return fmt.Errorf("%w: compressed data of entry %d: length %d, %v", ErrCorrupt, index, n, err)
		}
		dataLen = n
	}
	// One allocation for both payloads; capacities are clipped so an append by
	// the caller to Data cannot scribble over Extensions.
	var payload []byte
	if n := dataLen + len(ext); n > 0 {
		payload = make([]byte, n)
		if flags&flagS2 != 0 {
			if out, err := s2.Decode(payload[:dataLen], data); err != nil || len(out) != dataLen {
				return fmt.Errorf("%w: compressed data of entry %d: %v", ErrCorrupt, index, err)
			}
		} else {
			copy(payload, data)
		}
		copy(payload[dataLen:], ext)
	}
	*l = raft.Log{Index: index, Term: term, Type: typ, AppendedAt: appended}
	if dataLen > 0 {
		l.Data = payload[:dataLen:dataLen]
	}
	if len(ext) > 0 {
		l.Extensions = payload[dataLen:]
	}
	return nil
}

// decoder reads varint fields, remembering the first error so the decode
// function reads straight through and checks once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", ErrCorrupt, what)
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) < 1 {
		d.fail("byte")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail("length")
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}
