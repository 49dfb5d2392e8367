package sync

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/edgeacs/edgeacs/fleet"
)

func TestUpBatchCompressedRoundTrip(t *testing.T) {
	var recs []fleet.SeqRecord
	for i := range 300 {
		recs = append(recs, fleet.SeqRecord{Seq: uint64(i + 1), Data: []byte(fmt.Sprintf("InternetGatewayDevice.WANDevice.1.WANCommonInterfaceConfig.TotalBytesSent=%d", i))})
	}
	plain, err := encodeUpBatch(recs, false)
	must(t, err)
	packed, err := encodeUpBatch(recs, true)
	must(t, err)
	if len(packed)*3 > len(plain) {
		t.Errorf("compressed batch of %d bytes, plain %d: want it several times smaller", len(packed), len(plain))
	}
	for name, b := range map[string][]byte{"plain": plain, "compressed": packed} {
		f, err := newFrameReader(bytes.NewReader(b)).read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f.T != fUpBatch || len(f.UpS2) != 0 || len(f.Up) != len(recs) {
			t.Fatalf("%s: decoded %s frame with %d records (%d compressed bytes left)", name, f.T, len(f.Up), len(f.UpS2))
		}
		for i := range recs {
			if f.Up[i].Seq != recs[i].Seq || !bytes.Equal(f.Up[i].Data, recs[i].Data) {
				t.Fatalf("%s: record %d is %+v, want %+v", name, i, f.Up[i], recs[i])
			}
		}
	}
}

// A compressed batch is held to the same bounds as a plain one, and to
// the frame's bound before it is decompressed.
func TestUpBatchCompressedRefused(t *testing.T) {
	pack := func(v any) []byte {
		raw, err := fleet.CBOR.Enc.Marshal(v)
		must(t, err)
		return s2.Encode(nil, raw)
	}
	bomb := s2.Encode(nil, make([]byte, MaxFrame+1))
	tests := []struct {
		name string
		f    frame
		want string
	}{
		{"in a frame other than an uplink batch", frame{T: fDownBatch, UpS2: pack([]fleet.SeqRecord{{Seq: 1}})}, "compressed records"},
		{"beside plain records", frame{T: fUpBatch, Up: []fleet.SeqRecord{{Seq: 1}}, UpS2: pack([]fleet.SeqRecord{{Seq: 2}})}, "compressed records"},
		{"not S2", frame{T: fUpBatch, UpS2: []byte("plainly not s2 at all")}, "compressed uplink records"},
		{"decompressing past the frame limit", frame{T: fUpBatch, UpS2: bomb}, "over the"},
		{"not an array of records", frame{T: fUpBatch, UpS2: pack("text")}, "undecodable compressed"},
		{"a record without a sequence", frame{T: fUpBatch, UpS2: pack([]fleet.SeqRecord{{Seq: 0, Data: []byte("x")}})}, "without a sequence"},
		{"an oversized record", frame{T: fUpBatch, UpS2: pack([]fleet.SeqRecord{{Seq: 1, Data: make([]byte, MaxRecord+1)}})}, "over the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeFrame(&tt.f)
			must(t, err)
			_, err = newFrameReader(bytes.NewReader(b)).read()
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a protocol violation saying %q", err, tt.want)
			}
		})
	}
}
