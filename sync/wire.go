package sync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"

	"github.com/edgeacs/edgeacs/fleet"
)

// Wire format. Every stream starts with one byte naming its role, then
// carries frames: a 4-byte big-endian length and a CBOR map (fleet.CBOR,
// the project's one profile). Frames are bounded before they are read, so a
// peer cannot make the other side allocate more than MaxFrame.
const (
	streamControl  byte = 'C'
	streamUplink   byte = 'U'
	streamDownlink byte = 'D'
	// streamBlob carries one blob fetch: a request frame, a header frame,
	// then the blob's raw bytes (see blob.go). Any number may come and go
	// while the session lasts.
	streamBlob byte = 'B'
)

// MaxFrame bounds one frame's encoded size. Batches are cut well below it
// (maxBatchBytes), so only a broken or hostile peer reaches it.
const MaxFrame = 8 << 20

// MaxRecord bounds one uplink record. A device delta with a full TR-181
// tree is a few hundred KiB; anything past this is refused by the edge's
// reader before it is sent and by the core before it is applied.
const MaxRecord = 2 << 20

// ProtocolVersion is sent in the hello; a core refuses versions it does
// not speak with a clear reason.
const ProtocolVersion = 1

// ErrProtocol marks a peer that broke the protocol (bad frame, sequence
// going backwards, oversized record): the link is closed with the reason.
var ErrProtocol = errors.New("sync: protocol violation")

type frameType uint8

const (
	fHello        frameType = 1 // edge → core, control: who, and what it stored
	fWelcome      frameType = 2 // core → edge, control: what the core applied
	fRedirect     frameType = 3 // core → edge, control: talk to the leader at Addr
	fHeartbeat    frameType = 4 // edge → core, control: health
	fHeartbeatAck frameType = 5 // core → edge, control
	fUpBatch      frameType = 6 // edge → core, uplink: records
	fUpAck        frameType = 7 // core → edge, uplink: applied up to Seq
	fDownBatch    frameType = 8 // core → edge, downlink: records
	fDownAck      frameType = 9 // edge → core, downlink: stored up to Seq/Shared
	fError        frameType = 10
	fBlobRequest  frameType = 11 // edge → core, blob stream: Sum from Offset
	fBlobHeader   frameType = 12 // core → edge, blob stream: Size in all; raw bytes from Offset follow
)

func (t frameType) String() string {
	names := [...]string{"", "hello", "welcome", "redirect", "heartbeat", "heartbeat-ack", "uplink-batch",
		"uplink-ack", "downlink-batch", "downlink-ack", "error", "blob-request", "blob-header"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// frame is every message of the protocol; T says which fields matter.
type frame struct {
	T       frameType          `cbor:"1,keyasint"`
	Version int                `cbor:"2,keyasint,omitempty"`
	Edge    string             `cbor:"3,keyasint,omitempty"`
	Seq     uint64             `cbor:"4,keyasint,omitempty"`
	Shared  uint64             `cbor:"5,keyasint,omitempty"`
	Addr    string             `cbor:"6,keyasint,omitempty"`
	Health  *fleet.EdgeHealth  `cbor:"7,keyasint,omitempty"`
	Up      []fleet.SeqRecord  `cbor:"8,keyasint,omitempty"`
	Down    []fleet.DownRecord `cbor:"9,keyasint,omitempty"`
	Reason  string             `cbor:"10,keyasint,omitempty"`
	Sum     string             `cbor:"11,keyasint,omitempty"` // blob SHA-256, hex
	Offset  int64              `cbor:"12,keyasint,omitempty"` // where a blob fetch starts
	Size    int64              `cbor:"13,keyasint,omitempty"` // a blob's whole size
	Missing bool               `cbor:"14,keyasint,omitempty"` // error frame: the core has no such blob
	// UpS2 is an uplink batch's records (Up) as their CBOR array,
	// S2-compressed (see encodeUpBatch); decodeFrame restores Up from it.
	UpS2 []byte `cbor:"55,keyasint,omitempty"`
	// ReadsS2 is the welcome's: this core reads UpS2 batches. An edge
	// sends them only to a core that says so (an older one would close
	// the link on a frame with no records).
	ReadsS2 bool `cbor:"56,keyasint,omitempty"`
}

// encodeUpBatch is the frame of one uplink batch, its records
// S2-compressed when compress is set. Deltas repeat the same long
// parameter names, so a batch shrinks about tenfold: that many fewer
// QUIC packets to encrypt, pace, send, acknowledge and decrypt on both
// sides, and on a loaded machine the edge's paced QUIC sends were what
// bounded a drain.
func encodeUpBatch(recs []fleet.SeqRecord, compress bool) ([]byte, error) {
	if !compress {
		return encodeFrame(&frame{T: fUpBatch, Up: recs})
	}
	raw, err := fleet.CBOR.Enc.Marshal(recs)
	if err != nil {
		return nil, fmt.Errorf("encode %s records: %w", fUpBatch, err)
	}
	return encodeFrame(&frame{T: fUpBatch, UpS2: s2.Encode(nil, raw)})
}

// writeFrame encodes f and writes it with its length prefix in one Write.
func writeFrame(w io.Writer, f *frame) error {
	b, err := encodeFrame(f)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %s frame: %w", f.T, err)
	}
	return nil
}

// encodeFrame returns f as it goes on the wire: its length, then its CBOR.
func encodeFrame(f *frame) ([]byte, error) {
	body, err := fleet.CBOR.Enc.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.T, err)
	}
	if len(body) > MaxFrame {
		return nil, fmt.Errorf("encode %s frame: %d bytes over the %d limit", f.T, len(body), MaxFrame)
	}
	buf := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	return append(buf, body...), nil
}

// frameReader reads length-prefixed frames, refusing oversized ones before
// allocating for them.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// read returns the next frame. An oversized or undecodable frame is an
// ErrProtocol; a clean end of stream is io.EOF.
func (fr *frameReader) read() (*frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes over the %d limit", ErrProtocol, n, MaxFrame)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	b := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return decodeFrame(b)
}

// decodeFrame decodes and sanity-checks one frame body.
func decodeFrame(b []byte) (*frame, error) {
	var f frame
	if err := fleet.CBOR.Dec.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: undecodable frame: %v", ErrProtocol, err)
	}
	if f.T < fHello || f.T > fBlobHeader {
		return nil, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, f.T)
	}
	if f.Offset < 0 || f.Size < 0 {
		return nil, fmt.Errorf("%w: negative blob offset %d or size %d", ErrProtocol, f.Offset, f.Size)
	}
	if len(f.UpS2) > 0 {
		if f.T != fUpBatch || len(f.Up) > 0 {
			return nil, fmt.Errorf("%w: compressed records in a %s frame that has %d plain ones", ErrProtocol, f.T, len(f.Up))
		}
		// Bounded like a frame before anything is allocated for it.
		n, err := s2.DecodedLen(f.UpS2)
		if err != nil {
			return nil, fmt.Errorf("%w: compressed uplink records: %v", ErrProtocol, err)
		}
		if n > MaxFrame {
			return nil, fmt.Errorf("%w: compressed uplink records of %d bytes over the %d limit", ErrProtocol, n, MaxFrame)
		}
		raw, err := s2.Decode(nil, f.UpS2)
		if err != nil {
			return nil, fmt.Errorf("%w: compressed uplink records: %v", ErrProtocol, err)
		}
		if err := fleet.CBOR.Dec.Unmarshal(raw, &f.Up); err != nil {
			return nil, fmt.Errorf("%w: undecodable compressed uplink records: %v", ErrProtocol, err)
		}
		f.UpS2 = nil
	}
	for _, r := range f.Up {
		if r.Seq == 0 {
			return nil, fmt.Errorf("%w: uplink record without a sequence", ErrProtocol)
		}
		if len(r.Data) > MaxRecord {
			return nil, fmt.Errorf("%w: uplink record %d of %d bytes over the %d limit", ErrProtocol, r.Seq, len(r.Data), MaxRecord)
		}
	}
	return &f, nil
}

// expect reads a frame and checks its type; an fError frame becomes an
// error carrying the peer's reason.
func (fr *frameReader) expect(types ...frameType) (*frame, error) {
	f, err := fr.read()
	if err != nil {
		return nil, err
	}
	if f.T == fError {
		return nil, &PeerError{Reason: f.Reason}
	}
	for _, t := range types {
		if f.T == t {
			return f, nil
		}
	}
	return nil, fmt.Errorf("%w: got a %s frame, want %v", ErrProtocol, f.T, types)
}

// PeerError is the reason a peer gave for refusing or closing the link.
type PeerError struct{ Reason string }

func (e *PeerError) Error() string { return "sync: peer refused: " + e.Reason }

// checkUplinkOrder verifies that a batch's sequences strictly increase and
// start above last (what this connection already received).
func checkUplinkOrder(last uint64, recs []fleet.SeqRecord) error {
	for _, r := range recs {
		if r.Seq <= last {
			return fmt.Errorf("%w: uplink sequence %d after %d", ErrProtocol, r.Seq, last)
		}
		last = r.Seq
	}
	return nil
}
