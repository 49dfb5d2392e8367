package core

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestDecodeEntryMatchesDecodeCommands checks that the apply path's decoder
// reads every field DecodeCommands reads, with the delta's parameters raw:
// a field added to Command or fleet.DeviceDelta must reach the FSM.
func TestDecodeEntryMatchesDecodeCommands(t *testing.T) {
	full := Command{V: 1, Op: OpDeviceDelta, Time: t0, Key: "k", Edge: "e1", Seq: 7, Name: "n", Tag: "t", TaskID: "x", Status: fleet.StatusDone,
		SkipMissing: true, Addr: "127.0.0.1:1", Device: &Device{ID: "d1", OUI: "o"}, Node: &NodeInfo{ID: "n1", APIAddr: "a"},
		Delta: &fleet.DeviceDelta{Device: "d1", Edge: "e1", OUI: "o", ProductClass: "pc", SerialNumber: "sn", Manufacturer: "m",
			LastInform: t0.Add(time.Second), Events: []string{"1 BOOT"}, Removed: []string{"A.C."}, Bootstrap: true,
			Parameters: []fleet.ParameterValue{{Name: "A.B", Value: "1", Type: "xsd:int"}, {Name: "A.Long", Value: strings.Repeat("v", 70000)}, {Name: "A.E"}}}}
	b, err := EncodeCommands([]Command{full, {V: 1, Op: OpTag, Name: "d1", Tag: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeCommands(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d commands, want %d", len(got), len(want))
	}
	var params []fleet.ParameterValue
	err = got[0].rawParams.forEach(func(name, value, typ []byte) error {
		params = append(params, fleet.ParameterValue{Name: string(name), Value: string(value), Type: string(typ)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(params, want[0].Delta.Parameters) {
		t.Fatalf("raw parameters differ from decoded ones")
	}
	got[0].Delta.Parameters, got[0].rawParams = want[0].Delta.Parameters, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeEntry:\n got %+v\nwant %+v", got[0], want[0])
	}
	if got[1].rawParams != nil || got[1].Delta != nil {
		t.Fatalf("command without a delta got %+v", got[1])
	}
}

func TestRawParamsCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"not an array", []byte{0x61, 'a'}},
		{"element not an array", []byte{0x81, 0x61, 'a'}},
		{"two fields", []byte{0x81, 0x82, 0x61, 'a', 0x61, 'b'}},
		{"field not text", []byte{0x81, 0x83, 0x61, 'a', 0x01, 0x61, 'b'}},
		{"truncated text", []byte{0x81, 0x83, 0x61, 'a', 0x61, 'b', 0x65, 'c'}},
		{"missing elements", []byte{0x82, 0x83, 0x61, 'a', 0x61, 'b', 0x61, 'c'}},
		{"truncated length", []byte{0x81, 0x83, 0x79, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rawParams(tc.raw).forEach(func(_, _, _ []byte) error { return nil })
			if !errors.Is(err, ErrCorruptCommand) {
				t.Fatalf("got %v, want ErrCorruptCommand", err)
			}
		})
	}
}

// fastEntrySeeds are log entries of uplink commands as the sync server's
// submissions make them.
func fastEntrySeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, cmds := range [][]Command{
		{{V: CommandVersion, Op: OpUplink, Time: t0, Edge: "e1", Seq: 1, Record: []byte{1, 4, 0xa0}}},
		{
			{V: CommandVersion, Op: OpUplink, Time: t0, Edge: "e1", Seq: 8, Prev: 5, Record: []byte("x")},
			{V: CommandVersion, Op: OpUplink, Time: t0, Edge: "e1", Seq: 9, Prev: 8, Record: nil},
			{V: CommandVersion, Op: OpUplink, Time: t0.Add(time.Nanosecond), Edge: "e2", Seq: 1 << 40, Prev: 1<<40 - 1, Record: []byte(strings.Repeat("r", 300))},
		},
		{{V: CommandVersion, Op: OpDeviceDelta, Time: time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("", -3600))}},
	} {
		b, err := EncodeCommands(cmds)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b[1:])
	}
	return out
}

// TestFastEntryMatchesLibrary checks fastEntry on entries of uplink
// commands (it must decode them, and as the CBOR library does) and on
// others (it must leave them to the library).
func TestFastEntryMatchesLibrary(t *testing.T) {
	for i, b := range fastEntrySeeds(t) {
		if _, ok := fastEntry(b); !ok {
			t.Fatalf("seed %d: an uplink entry not decoded by hand", i)
		}
		checkFastEntry(t, b)
	}
	other, err := EncodeCommands([]Command{{V: 1, Op: OpTag, Name: "d1", Tag: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	seed := fastEntrySeeds(t)[1]
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"another op's fields", other[1:]},
		{"trailing byte", append(slices.Clone(seed), 0)},
		{"truncated", seed[:len(seed)-1]},
		{"version over a byte", []byte{0x81, 0xa1, 0x01, 0x19, 0x01, 0x00}},
		{"op over a byte", []byte{0x81, 0xa1, 0x02, 0x19, 0x01, 0x00}},
		{"keys out of order", []byte{0x81, 0xa2, 0x06, 0x01, 0x01, 0x01}},
		{"text record", []byte{0x81, 0xa1, 0x18, 0x18, 0x61, 'x'}},
		{"byte-string edge", []byte{0x81, 0xa1, 0x05, 0x41, 'x'}},
		{"indefinite array", []byte{0x9f, 0xa1, 0x01, 0x01, 0xff}},
		{"not an array", []byte{0xa0}},
	} {
		if _, ok := fastEntry(tc.b); ok {
			t.Errorf("%s: decoded by hand, want it left to the library", tc.name)
		}
		checkFastEntry(t, tc.b)
	}
}

// checkFastEntry fails when fastEntry decodes b differently from the CBOR
// library (or decodes what the library refuses).
func checkFastEntry(t testing.TB, b []byte) {
	t.Helper()
	got, ok := fastEntry(b)
	if !ok {
		return
	}
	want, err := libraryEntry(b)
	if err != nil {
		t.Fatalf("fastEntry decoded %x, which the library refuses: %v", b, err)
	}
	if len(got) != len(want) {
		t.Fatalf("fastEntry(%x): %d commands, the library %d", b, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.Time.Location().String() != w.Time.Location().String() {
			t.Fatalf("fastEntry(%x) command %d: time %v, the library %v", b, i, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if (g.Record == nil) != (w.Record == nil) {
			t.Fatalf("fastEntry(%x) command %d: record %v, the library %v", b, i, g.Record, w.Record)
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("fastEntry(%x) command %d: %+v, the library %+v", b, i, g, w)
		}
	}
}

// FuzzFastEntry checks that whatever fastEntry decodes, it decodes as the
// CBOR library does.
func FuzzFastEntry(f *testing.F) {
	for _, b := range fastEntrySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFastEntry(t, b) })
}
