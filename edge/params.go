package edge

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/s2"

	"github.com/edgeacs/edgeacs/cwmp"
)

// One device's cached parameter tree is one record, P/<device> (see
// DESIGN.md "Key layout"). It was one key per node (p/<device>/<path>)
// until the 100k-device storm measured where a bootstrap's time went: a
// device is ~150 nodes, so a bootstrap wrote ~150 keys, and Badger copied
// every one through its memtable, level-0 tables and each compaction
// level; at 100,000 devices compaction took a third of the edge's CPU. As
// one record, a bootstrap writes one key of a few kilobytes (names share
// long prefixes, types are a handful of xsd names), a session that reads
// its tree reads one key, and a single parameter is found by walking the
// record without decoding the rest.

// paramsFormat is the first byte of a P/ record.
const paramsFormat = 1

// paramsFormatS2 is the first byte of a P/ record that is a format-1
// record compressed (S2 block format) after it. Why: Badger copies every
// value byte through its write-ahead log, its memtable's arena and the
// level-0 table it flushes to, each from freshly faulted memory in a
// storm (over half the edge's page faults were Badger's, on a box where
// a fault costs ~10 µs), and compresses the tables' blocks only then. A
// gateway's record of ~230 nodes is ~6.7 KB, ~3.5 KB compressed (14 µs
// to compress, 10 to expand, on that box).
// Records under compressParamsMin, or that do not shrink by an eighth,
// stay format 1; both are read.
const paramsFormatS2 = 2

// compressParamsMin is the smallest record stored compressed.
const compressParamsMin = 1 << 10

// maxParamsRecord bounds what a compressed record may expand to (a
// damaged length must not allocate without bound).
const maxParamsRecord = 64 << 20

// maxParamsDecoded bounds the names a record may decode to: shared name
// prefixes let a small record claim a large tree.
const maxParamsDecoded = 16 << 20

// errCorruptParams means a P/ record could not be decoded.
var errCorruptParams = errors.New("corrupt parameter record")

// paramTypeNames are the types a record names by index (1 on); the list
// is part of the format and only grows.
var paramTypeNames = [...]string{"", "xsd:string", "xsd:unsignedInt", "xsd:int", "xsd:boolean", "xsd:dateTime",
	"xsd:unsignedLong", "xsd:long", "xsd:base64", "xsd:hexBinary"}

// flagAttrs marks, in a record only, that the entry's notification and
// access list follow. Flags' own bits stay below it.
const flagAttrs = 1 << 7

// paramEntry is one node of a devParams.
type paramEntry struct {
	path string
	rec  paramRec
}

// devParams is one device's parameter tree as stored: entries sorted by
// path, each path once. Prefix operations (a subtree) are ranges.
type devParams struct {
	ents []paramEntry
}

func comparePath(e paramEntry, path string) int { return strings.Compare(e.path, path) }

// get returns the record at path.
func (p *devParams) get(path string) (*paramRec, bool) {
	i, ok := slices.BinarySearchFunc(p.ents, path, comparePath)
	if !ok {
		return nil, false
	}
	return &p.ents[i].rec, true
}

// set stores r at path. Sorted input appends.
func (p *devParams) set(path string, r paramRec) {
	if n := len(p.ents); n == 0 || p.ents[n-1].path < path {
		p.ents = append(p.ents, paramEntry{path, r})
		return
	}
	i, ok := slices.BinarySearchFunc(p.ents, path, comparePath)
	if ok {
		p.ents[i].rec = r
		return
	}
	p.ents = slices.Insert(p.ents, i, paramEntry{path, r})
}

// remove deletes the record at path and reports whether there was one.
func (p *devParams) remove(path string) bool {
	i, ok := slices.BinarySearchFunc(p.ents, path, comparePath)
	if ok {
		p.ents = slices.Delete(p.ents, i, i+1)
	}
	return ok
}

// prefixRange is the range of entries whose path starts with prefix.
func (p *devParams) prefixRange(prefix string) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(p.ents, prefix, comparePath)
	hi = lo
	for hi < len(p.ents) && strings.HasPrefix(p.ents[hi].path, prefix) {
		hi++
	}
	return lo, hi
}

// removePrefix deletes the entries under prefix and returns their paths.
func (p *devParams) removePrefix(prefix string) []string {
	lo, hi := p.prefixRange(prefix)
	if lo == hi {
		return nil
	}
	paths := make([]string, 0, hi-lo)
	for _, e := range p.ents[lo:hi] {
		paths = append(paths, e.path)
	}
	p.ents = slices.Delete(p.ents, lo, hi)
	return paths
}

// appendParams appends the record form of ents (sorted, unique): the
// format byte, the entry count, then per entry the length of the prefix
// its path shares with the previous one and the rest of the path, its
// flags, its timestamp as a signed varint from the previous entry's (a
// session stamps what it writes alike, so mostly one byte), its type (an
// index in paramTypeNames, or 0 and the type), its value and, with
// flagAttrs, its notification and access list.
func appendParams(b []byte, ents []paramEntry) []byte {
	b = append(b, paramsFormat)
	b = binary.AppendUvarint(b, uint64(len(ents)))
	prev, prevTS := "", int64(0)
	for i := range ents {
		e := &ents[i]
		shared := 0
		for shared < len(prev) && shared < len(e.path) && prev[shared] == e.path[shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendStr(b, e.path[shared:])
		prev = e.path
		flags := e.rec.Flags &^ flagAttrs
		attrs := e.rec.Notify != 0 || len(e.rec.AccessList) > 0 || flags&flagAttrKnown != 0
		if attrs {
			flags |= flagAttrs
		}
		b = append(b, flags)
		b = binary.AppendVarint(b, e.rec.Timestamp-prevTS)
		prevTS = e.rec.Timestamp
		if code := paramTypeCode(e.rec.Type); code != 0 {
			b = append(b, code)
		} else {
			b = append(b, 0)
			b = appendStr(b, e.rec.Type)
		}
		b = appendStr(b, e.rec.Value)
		if attrs {
			b = append(b, byte(e.rec.Notify))
			b = binary.AppendUvarint(b, uint64(len(e.rec.AccessList)))
			for _, a := range e.rec.AccessList {
				b = appendStr(b, a)
			}
		}
	}
	return b
}

func paramTypeCode(typ string) byte {
	for i := 1; i < len(paramTypeNames); i++ {
		if typ == paramTypeNames[i] {
			return byte(i)
		}
	}
	return 0
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// paramsReader walks a record's entries in order, over the record's bytes
// or a string of them (the decoder's entries then slice that string).
type paramsReader[S ~string | ~[]byte] struct {
	s    S
	bad  bool
	left uint64 // entries still to read
	ts   int64
	// name is the current entry's path (rebuilt from the shared prefix),
	// valid until the next call.
	name []byte
}

// rawParam is one entry as read: strings are slices of the record.
type rawParam[S ~string | ~[]byte] struct {
	flags   byte
	ts      int64
	typCode byte
	typ     S // the type when typCode is 0
	value   S
	notify  int8
	access  []S
}

func newParamsReader[S ~string | ~[]byte](s S) (*paramsReader[S], error) {
	r := &paramsReader[S]{s: s}
	if len(s) == 0 || s[0] != paramsFormat {
		return nil, fmt.Errorf("%w: unknown format", errCorruptParams)
	}
	r.s = r.s[1:]
	r.left = r.uvarint()
	// Every entry takes at least five bytes.
	if r.bad || r.left > uint64(len(r.s)/5) {
		return nil, fmt.Errorf("%w: bad entry count", errCorruptParams)
	}
	return r, nil
}

func (r *paramsReader[S]) uvarint() uint64 {
	var x uint64
	for i, shift := 0, uint(0); i < len(r.s) && shift < 64; i, shift = i+1, shift+7 {
		c := r.s[i]
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			r.s = r.s[i+1:]
			return x
		}
	}
	r.bad = true
	return 0
}

func (r *paramsReader[S]) byte1() byte {
	if len(r.s) == 0 {
		r.bad = true
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

func (r *paramsReader[S]) str() S {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.s)) {
		r.bad = true
		return r.s[:0]
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

// next reads the next entry into e (its path into r.name); false at the
// end or on a malformed entry (then r.bad).
func (r *paramsReader[S]) next(e *rawParam[S]) bool {
	if r.left == 0 || r.bad {
		return false
	}
	r.left--
	shared := r.uvarint()
	if shared > uint64(len(r.name)) {
		r.bad = true
		return false
	}
	r.name = append(r.name[:shared], r.str()...)
	e.flags = r.byte1()
	d := r.uvarint()
	r.ts += int64(d>>1) ^ -int64(d&1)
	e.ts = r.ts
	e.typCode = r.byte1()
	e.typ = r.s[:0]
	if e.typCode == 0 {
		e.typ = r.str()
	} else if int(e.typCode) >= len(paramTypeNames) {
		r.bad = true
	}
	e.value = r.str()
	e.notify, e.access = 0, e.access[:0]
	if e.flags&flagAttrs != 0 {
		e.notify = int8(r.byte1())
		n := r.uvarint()
		if n > uint64(len(r.s)) {
			r.bad = true
		}
		for i := uint64(0); i < n && !r.bad; i++ {
			e.access = append(e.access, r.str())
		}
	}
	return !r.bad
}

// typeName is e's type.
func (e *rawParam[S]) typeName() string {
	if e.typCode != 0 {
		return paramTypeNames[e.typCode]
	}
	return string(e.typ)
}

// record converts e to a paramRec, copying its strings.
func (e *rawParam[S]) record() paramRec {
	r := paramRec{Value: string(e.value), Type: e.typeName(), Flags: e.flags &^ flagAttrs, Timestamp: e.ts, Notify: e.notify}
	for _, a := range e.access {
		r.AccessList = append(r.AccessList, string(a))
	}
	return r
}

// decodeParams reads a whole record. Values and types are slices of one
// copy of b; paths are cut from one string.
func decodeParams(b []byte) (*devParams, error) {
	s := string(b)
	r, err := newParamsReader(s)
	if err != nil {
		return nil, err
	}
	ents := make([]paramEntry, 0, r.left)
	ends := make([]int, 0, r.left)
	// Paths rebuilt from shared prefixes take two to three times the
	// record; one allocation in the common case.
	names := make([]byte, 0, 3*len(b))
	var e rawParam[string]
	for r.next(&e) {
		if len(names)+len(r.name) > maxParamsDecoded {
			return nil, fmt.Errorf("%w: decodes to over %d bytes of names", errCorruptParams, maxParamsDecoded)
		}
		names = append(names, r.name...)
		ends = append(ends, len(names))
		rec := paramRec{Value: e.value, Type: e.typeName(), Flags: e.flags &^ flagAttrs, Timestamp: e.ts, Notify: e.notify}
		if len(e.access) > 0 {
			rec.AccessList = slices.Clone(e.access)
		}
		ents = append(ents, paramEntry{rec: rec})
	}
	if r.bad || r.left != 0 || len(r.s) != 0 {
		return nil, fmt.Errorf("%w: malformed entry %d", errCorruptParams, len(ents))
	}
	all, start := string(names), 0
	for i := range ents {
		ents[i].path = all[start:ends[i]]
		start = ends[i]
		if i > 0 && ents[i-1].path >= ents[i].path {
			return nil, fmt.Errorf("%w: paths out of order at %q", errCorruptParams, ents[i].path)
		}
	}
	return &devParams{ents: ents}, nil
}

// lookupParam finds path in a record without decoding the rest.
func lookupParam(b []byte, path string) (paramRec, bool, error) {
	r, err := newParamsReader(b)
	if err != nil {
		return paramRec{}, false, err
	}
	var e rawParam[[]byte]
	for r.next(&e) {
		switch c := compareName(r.name, path); {
		case c == 0:
			return e.record(), true, nil
		case c > 0:
			return paramRec{}, false, nil // sorted: not there
		}
	}
	if r.bad {
		return paramRec{}, false, fmt.Errorf("%w: malformed entry", errCorruptParams)
	}
	return paramRec{}, false, nil
}

// compareName is strings.Compare(string(b), s) without the copy.
func compareName(b []byte, s string) int {
	for i := 0; i < len(b) && i < len(s); i++ {
		if b[i] != s[i] {
			return cmp.Compare(b[i], s[i])
		}
	}
	return cmp.Compare(len(b), len(s))
}

// treeHolds reports whether the device's stored tree has every value of
// params (names ending in "." and empty ones aside) as they are: the
// common periodic Inform, which then costs one walk of the record and no
// decoding. A damaged record holds nothing.
func treeHolds(txn *badger.Txn, id string, params []cwmp.ParameterValue) (bool, error) {
	want := make([]*cwmp.ParameterValue, 0, len(params))
	for i := range params {
		if n := params[i].Name; n != "" && !strings.HasSuffix(n, ".") {
			want = append(want, &params[i])
		}
	}
	slices.SortFunc(want, func(a, b *cwmp.ParameterValue) int { return strings.Compare(a.Name, b.Name) })
	holds := false
	found, err := readParams(txn, id, func(b []byte) error {
		r, err := newParamsReader(b)
		if err != nil {
			return nil
		}
		j := 0
		var e rawParam[[]byte]
		for j < len(want) && r.next(&e) {
			switch c := compareName(r.name, want[j].Name); {
			case c > 0:
				return nil // want[j] is not stored
			case c == 0:
				if string(e.value) != want[j].Value || e.typeName() != want[j].Type {
					return nil
				}
				j++
			}
		}
		holds = j == len(want) && !r.bad
		return nil
	})
	if !found && err == nil {
		return len(want) == 0, nil
	}
	return holds, err
}

// loadParams reads a device's tree in txn (empty when it has none).
func loadParams(txn *badger.Txn, id string) (*devParams, error) {
	p := &devParams{}
	_, err := readParams(txn, id, func(b []byte) (err error) {
		p, err = decodeParams(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// readParams calls fn with the bytes of the device's record in txn, in
// format 1 (valid during fn only); false when the device has none.
func readParams(txn *badger.Txn, id string, fn func(b []byte) error) (bool, error) {
	item, err := txn.Get([]byte(pTree + id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := item.Value(func(b []byte) error { return withPlainParams(b, fn) }); err != nil {
		return true, fmt.Errorf("parameters of %s: %w", id, err)
	}
	return true, nil
}

// expandBufs holds the buffers compressed records are expanded into.
var expandBufs = sync.Pool{New: func() any { return new([]byte) }}

// withPlainParams calls fn with stored record b in format 1: b itself, or
// b expanded into a pooled buffer (valid during fn only).
func withPlainParams(b []byte, fn func(b []byte) error) error {
	if len(b) == 0 || b[0] != paramsFormatS2 {
		return fn(b)
	}
	n, err := s2.DecodedLen(b[1:])
	if err != nil || n > maxParamsRecord {
		return fmt.Errorf("%w: compressed record of bad length (%d, %v)", errCorruptParams, n, err)
	}
	bp := expandBufs.Get().(*[]byte)
	defer expandBufs.Put(bp)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	plain, err := s2.Decode((*bp)[:cap(*bp)], b[1:])
	if err != nil {
		return fmt.Errorf("%w: %v", errCorruptParams, err)
	}
	// What it expands to is read as format 1: anything else, a record
	// compressed twice included, is refused there (newParamsReader).
	return fn(plain)
}

// encodeParams is the record that stores ents: compressed (format 2)
// when that pays, else format 1. Badger keeps the slice until the
// transaction commits, so it is a copy of exactly the record, never a
// pooled buffer.
func encodeParams(ents []paramEntry) []byte {
	if len(ents) == 0 {
		return appendParams(nil, nil)
	}
	sp := encodeBufs.Get().(*encodeBuf)
	defer encodeBufs.Put(sp)
	sp.plain = appendParams(sp.plain[:0], ents)
	plain := sp.plain
	if len(plain) < compressParamsMin {
		return slices.Clone(plain)
	}
	if n := s2.MaxEncodedLen(len(plain)); cap(sp.comp) < n {
		sp.comp = make([]byte, n)
	}
	c := s2.Encode(sp.comp[:cap(sp.comp)], plain)
	if 1+len(c) > len(plain)-len(plain)/8 {
		return slices.Clone(plain)
	}
	out := make([]byte, 1+len(c))
	out[0] = paramsFormatS2
	copy(out[1:], c)
	return out
}

// encodeBuf is encodeParams's scratch: the plain record and its
// compressed form.
type encodeBuf struct{ plain, comp []byte }

var encodeBufs = sync.Pool{New: func() any { return new(encodeBuf) }}

// loadParamsForWrite is loadParams for a transaction that will store the
// tree: a record that cannot be decoded is dropped with a warning (the
// tree is a cache of what the CPE has, read again when presets ask), not
// a failure of every session the device ever opens.
func (c *Cache) loadParamsForWrite(txn *badger.Txn, id string) (*devParams, error) {
	p, err := loadParams(txn, id)
	if errors.Is(err, errCorruptParams) {
		c.log.Warn("dropping the device's cached parameters", "device", id, "err", err)
		return &devParams{}, nil
	}
	return p, err
}

// saveParams stores the tree in txn (deletes the record when it is
// empty) and keeps the device record's InformInterval in step with it.
func saveParams(txn *badger.Txn, id string, p *devParams) error {
	if err := putParams(txn, id, p); err != nil {
		return err
	}
	return editDevice(txn, id, func(d *Device) bool { return keepInterval(d, p) })
}

// keepInterval sets d's copy of the tree's inform interval and reports
// whether it changed.
func keepInterval(d *Device, p *devParams) bool {
	iv := treeInterval(p, d.Root)
	changed := iv != d.InformInterval
	d.InformInterval = iv
	return changed
}

// putParams stores the tree alone, for a caller that writes the device
// record itself (with treeInterval's InformInterval).
func putParams(txn *badger.Txn, id string, p *devParams) error {
	if len(p.ents) == 0 {
		return txn.Delete([]byte(pTree + id))
	}
	return txn.Set([]byte(pTree+id), encodeParams(p.ents))
}

// getParam reads one parameter of a device in txn, or ErrNotFound.
func getParam(txn *badger.Txn, id, path string) (paramRec, error) {
	var (
		r  paramRec
		ok bool
	)
	_, err := readParams(txn, id, func(b []byte) (err error) {
		r, ok, err = lookupParam(b, path)
		return err
	})
	if err != nil {
		return paramRec{}, err
	}
	if !ok {
		return paramRec{}, ErrNotFound
	}
	return r, nil
}

// migrateParamKeys moves a cache written with one key per parameter
// (p/<device>/<path>, before the P/ record) to one record per device: one
// pass over a snapshot writes every device's record, then the old keys
// are dropped as a range (Badger's DropPrefix: tombstones for millions of
// keys would cost more than the move, and every later scan would step
// over them until compaction). A crash part-way leaves old keys that the
// next open merges into the records already written. kLayout marks the
// move done (or never needed), so later opens skip even the check.
func migrateParamKeys(db *badger.DB, log *slog.Logger) error {
	const old = "p/"
	done := false
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(kLayout))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		done = err == nil
		return err
	})
	if err != nil || done {
		return err
	}
	markDone := func() error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(kLayout), []byte{paramsFormat}) })
	}
	txn := db.NewTransaction(false)
	defer txn.Discard()
	o := badger.DefaultIteratorOptions
	o.Prefix = []byte(old)
	it := txn.NewIterator(o)
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return markDone()
	}
	start := time.Now()
	log.Info("moving cached parameters to one record per device (once)")
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	var (
		dev     string
		p       *devParams
		devices int
		skipped int
	)
	flush := func() error {
		if dev == "" || len(p.ents) == 0 {
			return nil
		}
		devices++
		if devices%100000 == 0 {
			log.Info("moving cached parameters", "devices", devices)
		}
		return wb.Set([]byte(pTree+dev), encodeParams(p.ents))
	}
	for ; it.Valid(); it.Next() {
		d, path, ok := strings.Cut(string(it.Item().Key()[len(old):]), "/")
		if !ok {
			continue // never written: every p/ key names a device and a path
		}
		if d != dev {
			if err := flush(); err != nil {
				return fmt.Errorf("migrate parameters of %s: %w", dev, err)
			}
			dev = d
			var err error
			if p, err = loadParams(txn, d); err != nil {
				p = &devParams{}
			}
		}
		var r paramRec
		if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
			skipped++
			continue
		}
		p.set(path, r)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("migrate parameters of %s: %w", dev, err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("migrate parameters: %w", err)
	}
	it.Close()
	txn.Discard()
	if err := db.DropPrefix([]byte(old)); err != nil {
		return fmt.Errorf("migrate parameters: drop the old keys: %w", err)
	}
	if err := markDone(); err != nil {
		return fmt.Errorf("migrate parameters: %w", err)
	}
	log.Info("cached parameters moved", "devices", devices, "unreadable_records_dropped", skipped, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
