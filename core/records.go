package core

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// Device is the core's record of one CPE: identity, home edge, last inform
// and tags. The parameter tree is stored beside it, one key per parameter,
// so a delta writes only what changed; Parameters is filled on reads that
// ask for it.
type Device struct {
	ID           string    `json:"_id" cbor:"1,keyasint"`
	OUI          string    `json:"oui,omitempty" cbor:"2,keyasint,omitempty"`
	ProductClass string    `json:"productClass,omitempty" cbor:"3,keyasint,omitempty"`
	SerialNumber string    `json:"serialNumber,omitempty" cbor:"4,keyasint,omitempty"`
	Manufacturer string    `json:"manufacturer,omitempty" cbor:"5,keyasint,omitempty"`
	Edge         string    `json:"edge,omitempty" cbor:"6,keyasint,omitempty"`
	LastInform   time.Time `json:"lastInform,omitzero" cbor:"7,keyasint,omitzero"`
	Registered   time.Time `json:"registered,omitzero" cbor:"8,keyasint,omitzero"`
	Tags         []string  `json:"tags,omitempty" cbor:"9,keyasint,omitempty"`
	// LastEvents are the event codes of the last inform ("1 BOOT", ...).
	LastEvents []string `json:"lastEvents,omitempty" cbor:"10,keyasint,omitempty"`

	Parameters map[string]Param `json:"parameters,omitempty" cbor:"-"`

	// flags are apply-path hints stored with the device (devFlag*).
	flags devFlags
}

// devFlags are hints that let the apply path skip reads. Each bit may be
// set when the condition is false (the reader then pays a scan that finds
// nothing), never clear when it is true.
type devFlags uint8

const (
	// devTasks: the device may have tasks that are not final. Set when a
	// task is created for it; cleared by a re-home that scans its tasks
	// and finds none open.
	devTasks devFlags = 1 << iota
	// devSpilled: the device may have per-parameter keys (p/). Set by a
	// spill; cleared by a bootstrap, which deletes them.
	devSpilled
	// devFlagsUnknown is what a record written before the flags existed
	// reads as.
	devFlagsUnknown = devTasks | devSpilled
)

// Param is one leaf of a device's parameter tree.
type Param struct {
	Value   string    `json:"value" cbor:"1,keyasint"`
	Type    string    `json:"type,omitempty" cbor:"2,keyasint,omitempty"`
	Updated time.Time `json:"updated,omitzero" cbor:"3,keyasint,omitzero"`
}

// Edge is the core's record of one edge node and where its sync link stands.
type Edge struct {
	ID        string    `json:"id" cbor:"1,keyasint"`
	Addr      string    `json:"addr,omitempty" cbor:"2,keyasint,omitempty"`
	FirstSeen time.Time `json:"firstSeen,omitzero" cbor:"3,keyasint,omitzero"`
	LastSeen  time.Time `json:"lastSeen,omitzero" cbor:"4,keyasint,omitzero"`
	// UplinkAcked is the highest uplink sequence applied; resends at or
	// below it are no-ops.
	UplinkAcked uint64 `json:"uplinkAcked" cbor:"5,keyasint"`
	// DownlinkAcked is the highest sequence of the edge's own downlink log
	// the edge persisted; the core deletes the log up to it.
	DownlinkAcked uint64 `json:"downlinkAcked" cbor:"6,keyasint"`
	// SharedAcked is the highest sequence of the fleet-wide downlink log
	// the edge persisted.
	SharedAcked uint64 `json:"sharedAcked" cbor:"7,keyasint,omitempty"`
	// Rejected counts uplink records that could never be applied
	// (undecodable or invalid): each was consumed (UplinkAcked moved past
	// it) and logged, so one bad record does not wedge the edge's stream.
	Rejected uint64 `json:"rejected" cbor:"8,keyasint,omitempty"`
	// Revoked is when the edge's certificate name was revoked; zero if not.
	Revoked time.Time `json:"revoked,omitzero" cbor:"9,keyasint,omitzero"`
}

// NodeInfo maps a Raft server ID to the addresses it serves: the API, so a
// follower knows where to forward writes, and the edge sync link, so a
// follower can redirect an edge to the leader.
type NodeInfo struct {
	ID       string `json:"id" cbor:"1,keyasint"`
	APIAddr  string `json:"apiAddr" cbor:"2,keyasint"`
	SyncAddr string `json:"syncAddr,omitempty" cbor:"3,keyasint,omitempty"`
}

// Fault is a fault kept for listing: a task's (which task, what the CPE
// answered and when), or a preset channel's as the edge that recorded it
// reported it (Channel and Edge set, TaskID empty).
type Fault struct {
	Device string          `json:"device" cbor:"1,keyasint"`
	TaskID string          `json:"task" cbor:"2,keyasint"`
	Fault  fleet.TaskFault `json:"fault" cbor:"3,keyasint"`
	Time   time.Time       `json:"timestamp" cbor:"4,keyasint"`
	// Channel is the preset channel of a provisioning fault.
	Channel string `json:"channel,omitempty" cbor:"5,keyasint,omitempty"`
	// Retries counts the edge's retries of the channel that faulted again.
	Retries int `json:"retries,omitempty" cbor:"6,keyasint,omitempty"`
	// Edge is the edge that recorded a channel fault: the one told when
	// it is deleted here.
	Edge string `json:"edge,omitempty" cbor:"7,keyasint,omitempty"`
}

// paramFormat prefixes a parameter value. Parameters are the bulk of all
// writes (every delta carries several), so they skip CBOR: format byte,
// updated time (unix nanoseconds, 8 bytes big-endian), type length (1 byte),
// type, value.
const paramFormat = 2

func encodeParam(p Param) []byte {
	return encodeParamParts(p.Updated, p.Type, p.Value)
}

// encodeParamParts encodes a parameter from strings or from bytes still
// in a log entry.
func encodeParamParts[S ~string | ~[]byte](updated time.Time, typ, value S) []byte {
	return appendParamParts(make([]byte, 0, 10+min(len(typ), 255)+len(value)), updated, typ, value)
}

// appendParamParts appends encodeParamParts's form to b.
func appendParamParts[S ~string | ~[]byte](b []byte, updated time.Time, typ, value S) []byte {
	return appendParamNanos(b, updated.UnixNano(), typ, value)
}

// appendParamNanos is appendParamParts with the time as Unix nanoseconds
// (no conversions on format 4's decoding path, which rebuilds the form).
func appendParamNanos[T, V ~string | ~[]byte](b []byte, nanos int64, typ T, value V) []byte {
	if len(typ) > 255 {
		typ = typ[:255]
	}
	b = append(b, paramFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(nanos))
	b = append(b, byte(len(typ)))
	b = append(b, typ...)
	return append(b, value...)
}

// splitParam reads an encodeParam form into its parts, aliasing enc; ok
// is false for anything else.
func splitParam(enc []byte) (nanos int64, typ, value []byte, ok bool) {
	if len(enc) < 10 || enc[0] != paramFormat || len(enc) < 10+int(enc[9]) {
		return 0, nil, nil, false
	}
	n := int(enc[9])
	return int64(binary.BigEndian.Uint64(enc[1:9])), enc[10 : 10+n], enc[10+n:], true
}

func decodeParam(b []byte) (Param, error) {
	nanos, typ, value, ok := splitParam(b)
	if !ok {
		return Param{}, fmt.Errorf("decode parameter: bad record")
	}
	return Param{Updated: time.Unix(0, nanos).UTC(), Type: string(typ), Value: string(value)}, nil
}

// recordVersion prefixes every core-only record stored in Badger.
const recordVersion = 1

func encodeRecord(v any) ([]byte, error) {
	body, err := cmdEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return append([]byte{recordVersion}, body...), nil
}

func decodeRecord(b []byte, v any) error {
	if len(b) < 1 || b[0] != recordVersion {
		return fmt.Errorf("decode %T: unknown record version", v)
	}
	if err := cmdDec.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

// deviceFormat prefixes a stored device: the device's fields in a compact
// binary form (see appendDevice), then the parameter overlay. Every delta
// decodes and rewrites its device, so the device skips CBOR (and RFC 3339
// time parsing) the way parameters do. A new field needs a new format
// byte; records written with recordVersion (CBOR, no overlay) are still
// read.
//
// The overlay holds the device's most recently written parameters inside
// the device's own value. Every delta already rewrites the device record
// (last inform), so parameters that land in the overlay cost no Badger key
// of their own; a per-key write (WAL entry, skiplist insert, flush,
// compaction) was most of a delta's apply cost. Periodic informs update the
// same few parameters again and again, so the overlay rarely grows; when it
// passes overlayMaxParams or overlayMaxBytes it is spilled to the
// per-parameter keys (p/<device>\0<name>), so a device's value stays small
// and a delta never rewrites a whole tree; entries the last two deltas did
// not write go there too (spillCold). An overlay entry is newer than the
// per-parameter key of the same name.
//
// Format 3 adds the device's flags (one uvarint after LastEvents); format
// 2 records are still read, with every flag set. Format 4 (deviceFormat)
// stores the overlay compactly (see appendOverlayV4); format 3 records are
// still read.
const deviceFormat = 4

// deviceFormatV3 is the format whose overlay entries are a name and an
// encodeParam form, each length-prefixed.
const deviceFormatV3 = 3

// deviceFormatV2 is the format before the flags.
const deviceFormatV2 = 2

const (
	overlayMaxParams = 64
	overlayMaxBytes  = 4096
)

// overlayParam is one overlay entry: a parameter name and its encodeParam form.
type overlayParam struct {
	name []byte
	enc  []byte
}

type overlay []overlayParam

func (o overlay) size() int {
	n := 0
	for _, p := range o {
		n += len(p.name) + len(p.enc) + 4
	}
	return n
}

// set replaces name's entry in place or appends one, so the order depends
// only on the sequence of applied commands. The overlay may alias name
// until it is encoded.
func (o overlay) set(name, enc []byte) overlay {
	for i := range o {
		if string(o[i].name) == string(name) {
			o[i].enc = enc
			return o
		}
	}
	return append(o, overlayParam{name: name, enc: enc})
}

// remove drops name, or every name under it when it ends with a dot.
func (o overlay) remove(name string) overlay {
	prefix := strings.HasSuffix(name, ".")
	return slices.DeleteFunc(o, func(p overlayParam) bool {
		return string(p.name) == name || (prefix && strings.HasPrefix(string(p.name), name))
	})
}

func encodeDevice(d *Device, ov overlay) ([]byte, error) {
	n := 64 + len(d.ID) + len(d.OUI) + len(d.ProductClass) + len(d.SerialNumber) + len(d.Manufacturer) + len(d.Edge) + ov.size()
	for _, t := range d.Tags {
		n += len(t) + 2
	}
	for _, e := range d.LastEvents {
		n += len(e) + 2
	}
	b := make([]byte, 0, n)
	b = append(b, deviceFormat)
	for _, f := range []string{d.ID, d.OUI, d.ProductClass, d.SerialNumber, d.Manufacturer, d.Edge} {
		b = appendString(b, f)
	}
	b = appendTime(b, d.LastInform)
	b = appendTime(b, d.Registered)
	b = appendStrings(b, d.Tags)
	b = appendStrings(b, d.LastEvents)
	b = binary.AppendUvarint(b, uint64(d.flags))
	return appendOverlayV4(b, ov, stampBase(d.LastInform)), nil
}

// paramTypes are the parameter types a format 4 overlay entry names by
// their index (1 on); the list is part of the format and only grows.
var paramTypes = [...]string{"", "xsd:string", "xsd:unsignedInt", "xsd:int", "xsd:boolean", "xsd:dateTime",
	"xsd:unsignedLong", "xsd:long", "xsd:base64", "xsd:hexBinary"}

const (
	// typeLiteral: the type's length and bytes follow.
	typeLiteral = 0
	// typeRaw: the entry's encodeParam form follows whole (length and
	// bytes), for a form appendOverlayV4 does not understand.
	typeRaw = 0xff
)

// typeCode is typ's index in paramTypes, or typeLiteral.
func typeCode(typ []byte) byte {
	for i := 1; i < len(paramTypes); i++ {
		if string(typ) == paramTypes[i] {
			return byte(i)
		}
	}
	return typeLiteral
}

// stampBase is what format 4 stamps are relative to: every delta rewrites
// its device with its own inform time, so the entries it wrote cost one
// byte of stamp.
func stampBase(lastInform time.Time) int64 {
	if lastInform.IsZero() {
		return 0
	}
	return lastInform.UnixNano()
}

// appendOverlayV4 appends the overlay in format 4. Every delta rewrites its
// device, overlay included, and Badger copies those bytes through its WAL,
// memtable, level-0 tables and compactions; a parameter's name and type
// took most of an entry (TR-069 names repeat long prefixes, types are a
// handful of xsd names). Each entry is: the length of the prefix its
// name shares with the previous entry's and the rest of the name; its
// stamp as a signed varint from base; a type code (an index in
// paramTypes, typeLiteral then the type, or typeRaw then the whole
// encodeParam form); the value.
func appendOverlayV4(b []byte, ov overlay, base int64) []byte {
	var prev []byte
	for _, p := range ov {
		shared := 0
		for shared < len(prev) && shared < len(p.name) && prev[shared] == p.name[shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendString(b, p.name[shared:])
		prev = p.name
		nanos, typ, value, ok := splitParam(p.enc)
		if !ok {
			b = binary.AppendVarint(b, 0)
			b = append(b, typeRaw)
			b = appendString(b, p.enc)
			continue
		}
		b = binary.AppendVarint(b, nanos-base)
		if code := typeCode(typ); code != typeLiteral {
			b = append(b, code)
		} else {
			b = append(b, typeLiteral)
			b = appendString(b, typ)
		}
		b = appendString(b, value)
	}
	return b
}

// maxOverlayDecoded bounds what a format 4 overlay may decode to: shared
// name prefixes let a small record claim a large one, and an overlay is
// written at most overlayMaxBytes large (putDevSpill).
const maxOverlayDecoded = 1 << 20

// decodeOverlayV4 reads appendOverlayV4's form. Names and encodeParam forms
// are rebuilt in one buffer, sized by a first pass.
func decodeOverlayV4(r devReader, base int64) (overlay, error) {
	count := r
	n, size := 0, 0
	var prevLen uint64
	for len(count.b) > 0 && !count.bad {
		shared := count.uvarint()
		name := count.bytes()
		if shared > prevLen {
			return nil, fmt.Errorf("bad overlay name")
		}
		prevLen = shared + uint64(len(name))
		count.varint()
		switch code := count.byte(); {
		case code == typeRaw:
			size += len(count.bytes())
		case code == typeLiteral:
			size += 10 + len(count.bytes()) + len(count.bytes())
		case int(code) < len(paramTypes):
			size += 10 + len(paramTypes[code]) + len(count.bytes())
		default:
			return nil, fmt.Errorf("bad overlay type code %d", code)
		}
		size += int(prevLen)
		n++
		if size > maxOverlayDecoded {
			return nil, fmt.Errorf("bad overlay: decodes to more than %d bytes", maxOverlayDecoded)
		}
	}
	if count.bad {
		return nil, fmt.Errorf("bad overlay")
	}
	if n == 0 {
		return nil, nil
	}
	ov := make(overlay, 0, n)
	buf := make([]byte, 0, size)
	var prev []byte
	for range n {
		shared := r.uvarint()
		start := len(buf)
		buf = append(buf, prev[:shared]...)
		buf = append(buf, r.bytes()...)
		name := buf[start:len(buf):len(buf)]
		prev = name
		stamp := base + r.varint()
		start = len(buf)
		switch code := r.byte(); code {
		case typeRaw:
			buf = append(buf, r.bytes()...)
		case typeLiteral:
			typ := r.bytes()
			buf = appendParamNanos(buf, stamp, typ, r.bytes())
		default:
			buf = appendParamNanos(buf, stamp, paramTypes[code], r.bytes())
		}
		ov = append(ov, overlayParam{name: name, enc: buf[start:len(buf):len(buf)]})
	}
	return ov, nil
}

func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// appendTime writes a zero flag, or 1, Unix seconds and nanoseconds: exact
// for every time.Time, unlike UnixNano.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// devReader decodes deviceFormat fields; the first failure sticks.
type devReader struct {
	b   []byte
	bad bool
}

func (r *devReader) uvarint() uint64 {
	v, w := binary.Uvarint(r.b)
	if w <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *devReader) varint() int64 {
	v, w := binary.Varint(r.b)
	if w <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *devReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *devReader) bytes() []byte {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *devReader) string() string { return string(r.bytes()) }

func (r *devReader) strings() []string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string()
	}
	return out
}

func (r *devReader) time() time.Time {
	if len(r.b) == 0 {
		r.bad = true
		return time.Time{}
	}
	flag := r.b[0]
	r.b = r.b[1:]
	if flag == 0 {
		return time.Time{}
	}
	sec, w := binary.Varint(r.b)
	if w <= 0 || flag != 1 {
		r.bad, r.b = true, nil
		return time.Time{}
	}
	r.b = r.b[w:]
	ns := r.uvarint()
	if ns >= 1e9 {
		r.bad = true
	}
	return time.Unix(sec, int64(ns)).UTC()
}

// decodeDevice reads a stored device; the overlay is parsed only when
// withOverlay is set; a format 3 overlay aliases b, a format 4 one is rebuilt.
func decodeDevice(b []byte, d *Device, withOverlay bool) (overlay, error) {
	if len(b) > 0 && b[0] == recordVersion {
		d.flags = devFlagsUnknown
		return nil, decodeRecord(b, d)
	}
	if len(b) < 1 || (b[0] != deviceFormat && b[0] != deviceFormatV3 && b[0] != deviceFormatV2) {
		return nil, fmt.Errorf("decode device: unknown record format")
	}
	r := devReader{b: b[1:]}
	d.ID, d.OUI, d.ProductClass, d.SerialNumber, d.Manufacturer, d.Edge = r.string(), r.string(), r.string(), r.string(), r.string(), r.string()
	d.LastInform, d.Registered = r.time(), r.time()
	d.Tags, d.LastEvents = r.strings(), r.strings()
	d.flags = devFlagsUnknown
	if b[0] != deviceFormatV2 {
		d.flags = devFlags(r.uvarint())
	}
	if r.bad {
		return nil, fmt.Errorf("decode device: bad record")
	}
	if !withOverlay {
		return nil, nil
	}
	if b[0] == deviceFormat {
		ov, err := decodeOverlayV4(r, stampBase(d.LastInform))
		if err != nil {
			return nil, fmt.Errorf("decode device %s: %w", d.ID, err)
		}
		return ov, nil
	}
	// Counted first, so that the overlay is one allocation: growing it
	// entry by entry was most of what decoding a device cost, and every
	// delta decodes one.
	count := devReader{b: r.b}
	n := 0
	for len(count.b) > 0 && !count.bad {
		count.bytes()
		count.bytes()
		n++
	}
	var ov overlay
	if n > 0 {
		ov = make(overlay, 0, n)
	}
	for len(r.b) > 0 && !r.bad {
		name := r.bytes()
		ov = append(ov, overlayParam{name: name, enc: r.bytes()})
	}
	if r.bad {
		return nil, fmt.Errorf("decode device %s: bad overlay", d.ID)
	}
	return ov, nil
}
