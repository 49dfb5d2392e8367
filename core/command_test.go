package core

import (
	"errors"
	"reflect"
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
