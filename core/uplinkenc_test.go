package core

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// The hand encoder of uplink entries must write the library's bytes
// exactly: every node decodes what the leader wrote, and fastEntry only
// takes the library's form.
func TestEncodeUplinkEntryMatchesLibrary(t *testing.T) {
	now := time.Date(2026, 12, 2, 17, 35, 32, 123456789, time.UTC)
	big := bytes.Repeat([]byte{0xa5}, 70_000) // a 4-byte length
	tests := []struct {
		name string
		cmds []Command
	}{
		{"one record", []Command{{V: CommandVersion, Op: OpUplink, Time: now, Edge: "edge1", Seq: 1, Prev: 0, Record: []byte{0xa1, 0x01, 0x02}}}},
		{"zero fields left out", []Command{{Op: OpUplink}, {V: 1, Op: OpUplink, Seq: 7}}},
		{"whole second, other zone", []Command{{V: 1, Op: OpUplink, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Edge: "e", Seq: 2, Prev: 1, Record: []byte("r")}}},
		{"integer widths", []Command{
			{V: 1, Op: OpUplink, Time: now, Edge: "e", Seq: 23, Prev: 24, Record: []byte("a")},
			{V: 1, Op: OpUplink, Time: now, Edge: "e", Seq: 255, Prev: 256, Record: []byte("b")},
			{V: 1, Op: OpUplink, Time: now, Edge: "e", Seq: math.MaxUint16 + 1, Prev: math.MaxUint32, Record: []byte("c")},
			{V: 1, Op: OpUplink, Time: now, Edge: "e", Seq: math.MaxUint32 + 1, Prev: math.MaxUint64, Record: []byte("d")},
		}},
		{"long strings", []Command{{V: 1, Op: OpUplink, Time: now, Edge: strings.Repeat("x", 300), Seq: 9, Prev: 8, Record: big}}},
	}
	many := make([]Command, 600) // an array head of two bytes
	for i := range many {
		many[i] = Command{V: 1, Op: OpUplink, Time: now, Edge: "edge1", Seq: uint64(i + 1), Prev: uint64(i), Record: []byte{0xa0}}
	}
	tests = append(tests, struct {
		name string
		cmds []Command
	}{"600 records", many})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := cmdEnc.Marshal(tt.cmds)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte{entryFormat}, body...)
			for i := range tt.cmds {
				tt.cmds[i].uplinkOnly = true
			}
			got, err := EncodeCommands(tt.cmds)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("hand-encoded entry differs from the library's:\n got %x\nwant %x", got[:min(len(got), 200)], want[:min(len(want), 200)])
			}
			dec, err := DecodeCommands(got)
			if err != nil || len(dec) != len(tt.cmds) {
				t.Fatalf("decode: %d commands, %v", len(dec), err)
			}
		})
	}
	// A command that is not uplinkOnly sends the whole entry to the library.
	mixed := []Command{{V: 1, Op: OpUplink, Seq: 1, uplinkOnly: true}, {V: 1, Op: OpDeletePreset, Name: "p"}}
	if _, ok := encodeUplinkEntry(mixed); ok {
		t.Fatal("an entry with a non-uplink command was encoded by hand")
	}
}
