package core

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"
)

// FSM snapshot format, version 1.
//
// db.Backup (the format before this one) runs Badger's Stream machinery,
// which allocates a few hundred MB of batch buffers per snapshot whatever
// the DB's size. A snapshot only needs the live keys and values, so it is
// written with one plain iterator instead:
//
//	header   "EACSFSM" (7 bytes), format version (1 byte, 1)
//	records  uvarint len(key) (≥1), uvarint len(value), key, value
//	         ... one per live key, in key order
//	end      uvarint 0 (Badger refuses empty keys, so 0 cannot start a record)
//	         number of records (uint64, big endian)
//	         CRC-32C (Castagnoli) of every byte above (uint32, big endian)
//
// Nothing may follow the checksum. Restore tells this format from the old
// one by the header: a db.Backup stream starts with the little-endian size
// of its first protobuf list, and the magic read that way is about 1e17
// bytes, a size no backup list can have.
const (
	snapMagic   = "EACSFSM"
	snapVersion = 1
	snapHdrLen  = len(snapMagic) + 1

	// snapBufSize is the read and write buffer: big enough that the sink
	// and the checksum see few, large writes.
	snapBufSize = 64 << 10
	// maxKeyLen is Badger's own key limit; a longer length can only be
	// corruption, and refusing it early avoids a huge allocation.
	maxKeyLen = 65000
	// maxLegacyListLen bounds the first list of an old-format stream. Badger
	// sends lists of about 100 MB at most; anything past 4 GiB is not a
	// backup stream, and db.Load would try to allocate that much.
	maxLegacyListLen = 1 << 32
)

// errBadSnapshot marks a snapshot Restore refuses (unknown header,
// truncated, failed checksum); the live state is untouched.
var errBadSnapshot = errors.New("bad fsm snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeSnapshot writes db's live keys and values to w in the format above
// and returns the number of records. One read transaction gives a
// consistent cut, so the stored applied index (kApplied) travels with
// exactly the state it describes.
func writeSnapshot(db *badger.DB, w io.Writer) (uint64, error) {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), snapBufSize)
	// bufio write errors are sticky, so the unchecked writes below are
	// reported by the checked ones (the value write, the final Flush).
	bw.WriteString(snapMagic)
	bw.WriteByte(snapVersion)

	var n uint64
	var lb [binary.MaxVarintLen64]byte
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions // AllVersions false: live keys only
		// Values are copied straight into the buffer from Item.Value;
		// prefetching would copy each of them once more for nothing.
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			// The format carries keys and values only. The FSM sets neither
			// user meta nor TTLs; if it ever does, fail loudly rather than
			// restore something different from what was snapshotted.
			if item.UserMeta() != 0 || item.ExpiresAt() != 0 {
				return fmt.Errorf("key %q has user meta %d or expiry %d, which the snapshot format does not carry", k, item.UserMeta(), item.ExpiresAt())
			}
			if err := item.Value(func(v []byte) error {
				bw.Write(binary.AppendUvarint(lb[:0], uint64(len(k))))
				bw.Write(binary.AppendUvarint(lb[:0], uint64(len(v))))
				bw.Write(k)
				// Checking this write stops the walk as soon as the sink
				// fails.
				_, err := bw.Write(v)
				return err
			}); err != nil {
				return fmt.Errorf("write key %q: %w", k, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	bw.WriteByte(0)
	bw.Write(binary.BigEndian.AppendUint64(lb[:0], n))
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	// The checksum goes straight to w: it covers everything before it.
	if _, err := w.Write(binary.BigEndian.AppendUint32(lb[:0], crc.Sum32())); err != nil {
		return 0, fmt.Errorf("write snapshot checksum: %w", err)
	}
	return n, nil
}

// loadSnapshot loads a snapshot into db, a fresh DB: the format above, or,
// when the header is not ours, the old db.Backup format, so snapshots
// written before this format still restore. On error db holds a partial
// load and must be thrown away.
func loadSnapshot(db *badger.DB, r io.Reader) error {
	br := bufio.NewReaderSize(r, snapBufSize)
	hdr, err := br.Peek(snapHdrLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	// A stream cut inside our magic is ours, truncated.
	if m := min(len(hdr), len(snapMagic)); m > 0 && string(hdr[:m]) == snapMagic[:m] {
		return readSnapshot(db, br)
	}
	// Otherwise it should be a db.Backup stream (an empty one is what
	// Backup wrote for an empty DB, and still loads as nothing); a first
	// list size no backup can have means it is neither format.
	if len(hdr) == snapHdrLen && binary.LittleEndian.Uint64(hdr) > maxLegacyListLen {
		return fmt.Errorf("%w: unknown header % x", errBadSnapshot, hdr)
	}
	// db.Load wraps br in a bufio.Reader of its own only if br's buffer is
	// smaller than it wants; ours is larger, so nothing is copied twice.
	if err := db.Load(br, 256); err != nil {
		return fmt.Errorf("load old-format (badger backup) snapshot: %w", err)
	}
	return nil
}

// readSnapshot reads the format above from br into db through a
// WriteBatch, which commits whenever a transaction would grow too big.
func readSnapshot(db *badger.DB, br *bufio.Reader) (err error) {
	sr := snapReader{br: br}
	var hdr [snapHdrLen]byte
	if err := sr.full(hdr[:]); err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	if v := hdr[len(snapMagic)]; v != snapVersion {
		return fmt.Errorf("%w: format version %d, this build reads %d", errBadSnapshot, v, snapVersion)
	}
	wb := db.NewWriteBatch()
	defer func() {
		if err != nil {
			wb.Cancel()
		}
	}()
	maxVal := uint64(db.Opts().ValueLogFileSize) // Badger's value limit
	var n uint64
	for {
		klen, err := sr.uvarint()
		if err != nil {
			return fmt.Errorf("record %d: key length: %w", n, err)
		}
		if klen == 0 {
			break
		}
		vlen, err := sr.uvarint()
		if err != nil {
			return fmt.Errorf("record %d: value length: %w", n, err)
		}
		// Bound the lengths before allocating: a corrupt length must be
		// refused, not become a multi-GB allocation.
		if klen > maxKeyLen {
			return fmt.Errorf("%w: record %d: key of %d bytes, Badger's limit is %d", errBadSnapshot, n, klen, maxKeyLen)
		}
		if vlen > maxVal {
			return fmt.Errorf("%w: record %d: value of %d bytes, Badger's limit is %d", errBadSnapshot, n, vlen, maxVal)
		}
		// A fresh buffer per record: the batch keeps the slices until it
		// commits.
		kv := make([]byte, klen+vlen)
		if err := sr.full(kv); err != nil {
			return fmt.Errorf("record %d: %w", n, err)
		}
		if err := wb.Set(kv[:klen:klen], kv[klen:]); err != nil {
			return fmt.Errorf("record %d: write key %q: %w", n, kv[:klen], err)
		}
		n++
	}
	var cb [8]byte
	if err := sr.full(cb[:]); err != nil {
		return fmt.Errorf("read record count: %w", err)
	}
	if c := binary.BigEndian.Uint64(cb[:]); c != n {
		return fmt.Errorf("%w: end marker counts %d records, stream has %d", errBadSnapshot, c, n)
	}
	sum := sr.crc
	if err := sr.full(cb[:4]); err != nil {
		return fmt.Errorf("read checksum: %w", err)
	}
	if c := binary.BigEndian.Uint32(cb[:4]); c != sum {
		return fmt.Errorf("%w: checksum %08x, computed %08x", errBadSnapshot, c, sum)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("%w: data after the checksum", errBadSnapshot)
		}
		return fmt.Errorf("read snapshot end: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("commit restored records: %w", err)
	}
	return nil
}

// snapReader reads the snapshot format and checksums what it consumes
// (not what bufio has merely buffered ahead).
type snapReader struct {
	br  *bufio.Reader
	crc uint32
}

// full fills p; running out of input is a truncated snapshot.
func (r *snapReader) full(p []byte) error {
	if _, err := io.ReadFull(r.br, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated", errBadSnapshot)
		}
		return fmt.Errorf("read snapshot: %w", err)
	}
	r.crc = crc32.Update(r.crc, castagnoli, p)
	return nil
}

// uvarint reads one uvarint.
func (r *snapReader) uvarint() (uint64, error) {
	// Peek returns what is left when the stream ends within the window;
	// Uvarint then says whether that was enough.
	b, err := r.br.Peek(binary.MaxVarintLen64)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, fmt.Errorf("%w: truncated", errBadSnapshot)
	case n < 0:
		return 0, fmt.Errorf("%w: length overflows 64 bits", errBadSnapshot)
	}
	r.crc = crc32.Update(r.crc, castagnoli, b[:n])
	r.br.Discard(n)
	return v, nil
}
