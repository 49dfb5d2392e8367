package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// encodeDeviceV3 is the device encoder as it was before format 4 (kept
// here, frozen, to write stores in the old layout): the fields, the
// flags, then each overlay entry's name and encodeParam form.
func encodeDeviceV3(d *Device, ov overlay) []byte {
	b := []byte{deviceFormatV3}
	for _, f := range []string{d.ID, d.OUI, d.ProductClass, d.SerialNumber, d.Manufacturer, d.Edge} {
		b = appendString(b, f)
	}
	b = appendTime(b, d.LastInform)
	b = appendTime(b, d.Registered)
	b = appendStrings(b, d.Tags)
	b = appendStrings(b, d.LastEvents)
	b = binary.AppendUvarint(b, uint64(d.flags))
	for _, p := range ov {
		b = binary.AppendUvarint(b, uint64(len(p.name)))
		b = append(b, p.name...)
		b = binary.AppendUvarint(b, uint64(len(p.enc)))
		b = append(b, p.enc...)
	}
	return b
}

// TestFSMReadsOldLayout opens a store written in the layout before format 4
// and the cold spill (every parameter a delta wrote in the device's
// overlay; the overflow of one device in per-parameter keys; one device in
// plain CBOR) and checks that devices read the same after a reopen, after
// new deltas rewrite them, and after a snapshot of the mixed store is
// restored elsewhere.
func TestFSMReadsOldLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fsm")
	f, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Hour)
	param := func(v, typ string, ts time.Time) []byte {
		return encodeParam(Param{Value: v, Type: typ, Updated: ts})
	}
	type oldDev struct {
		d      Device
		ov     overlay
		params map[string][]byte // per-parameter keys
	}
	devs := []oldDev{
		{d: Device{ID: "overlay-only", OUI: "B0B0B0", ProductClass: "Box", SerialNumber: "S1", Manufacturer: "Acme", Edge: "e1",
			LastInform: at, Registered: t0, Tags: []string{"blue"}, LastEvents: []string{"2 PERIODIC"}, flags: devTasks},
			ov: overlay{
				{name: []byte("InternetGatewayDevice.DeviceInfo.SoftwareVersion"), enc: param("1.0", "xsd:string", t0)},
				{name: []byte("InternetGatewayDevice.DeviceInfo.UpTime"), enc: param("42", "xsd:unsignedInt", at)},
				{name: []byte("InternetGatewayDevice.X_VENDOR.Odd"), enc: param("\xff\x00", strings.Repeat("t", 255), at)},
				{name: []byte("InternetGatewayDevice.X_VENDOR.Empty"), enc: param("", "", time.Time{})},
			}},
		{d: Device{ID: "spilled", Edge: "e1", LastInform: at, Registered: t0, flags: devSpilled},
			ov:     overlay{{name: []byte("A.B"), enc: param("new", "xsd:string", at)}},
			params: map[string][]byte{"A.B": param("old", "xsd:string", t0), "A.C": param("c", "xsd:int", t0)}},
	}
	err = f.db.Update(func(txn *badger.Txn) error {
		for _, od := range devs {
			if err := txn.Set(key(pDevice, od.d.ID), encodeDeviceV3(&od.d, od.ov)); err != nil {
				return err
			}
			for n, v := range od.params {
				if err := txn.Set(key(pParam, od.d.ID, n), v); err != nil {
					return err
				}
			}
		}
		cb, err := encodeRecord(&Device{ID: "cbor", Edge: "e1", Tags: []string{"t"}, LastInform: t0})
		if err != nil {
			return err
		}
		return txn.Set(key(pDevice, "cbor"), cb)
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"overlay-only", "spilled", "cbor"}
	read := func(f *FSM) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, id := range ids {
			d, err := f.Device(id, false)
			if err != nil {
				t.Fatal(err)
			}
			ps := paramValues(t, f, id)
			ps["@fields"] = fmt.Sprintf("%s|%s|%s|%s|%s|%v|%v|%v|%v", d.OUI, d.ProductClass, d.SerialNumber, d.Manufacturer, d.Edge,
				d.LastInform.UnixNano(), d.Registered.UnixNano(), d.Tags, d.LastEvents)
			out[id] = ps
		}
		return out
	}
	before := read(f)
	if got := before["overlay-only"]["InternetGatewayDevice.DeviceInfo.UpTime"]; got != "42|xsd:unsignedInt|"+at.Format(time.RFC3339Nano) {
		t.Fatalf("old overlay read as %q", got)
	}
	if got := before["spilled"]; got["A.B"] != "new|xsd:string|"+at.Format(time.RFC3339Nano) || got["A.C"] != "c|xsd:int|"+t0.Format(time.RFC3339Nano) {
		t.Fatalf("old spilled device read as %v", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = OpenFSM(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := read(f); !equalDevs(got, before) {
		t.Fatalf("after reopen:\n got %v\nwant %v", got, before)
	}

	// New deltas rewrite every device in the current layout; what they
	// did not touch reads as before.
	want := before
	for i, id := range ids {
		later := at.Add(time.Duration(i+1) * time.Minute)
		for step := range 3 {
			later = later.Add(time.Minute)
			mustApply(t, f, Command{Op: OpDeviceDelta, Delta: informAt(id, "e1", later, "Z.New", fmt.Sprint(step))})
		}
		want[id]["Z.New"] = "2|xsd:string|" + later.Format(time.RFC3339Nano)
		d, err := f.Device(id, false)
		if err != nil {
			t.Fatal(err)
		}
		// The delta's own fields: as the helper sets them.
		want[id]["@fields"] = fmt.Sprintf("%s|%s|%s|%s|%s|%v|%v|%v|%v", d.OUI, d.ProductClass, d.SerialNumber, d.Manufacturer, d.Edge,
			later.UnixNano(), d.Registered.UnixNano(), d.Tags, []string{"1 BOOT"})
		if d.OUI != "00AA11" || d.SerialNumber != id {
			t.Fatalf("%s after delta: %+v", id, d)
		}
		var b []byte
		_ = f.view(func(txn *badger.Txn) error { b, err = getRaw(txn, key(pDevice, id)); return err })
		if len(b) == 0 || b[0] != deviceFormat {
			t.Fatalf("%s not rewritten in format %d: % x", id, deviceFormat, b[:min(len(b), 4)])
		}
	}
	if got := read(f); !equalDevs(got, want) {
		t.Fatalf("after new deltas:\n got %v\nwant %v", got, want)
	}

	// A snapshot carries both layouts (untouched keys as they are).
	mustApply(t, f, Command{Op: OpTag, Name: "overlay-only", Tag: "green"})
	want = read(f)
	if !strings.Contains(want["overlay-only"]["@fields"], "green") {
		t.Fatalf("tag lost: %v", want["overlay-only"]["@fields"])
	}
	g := mustFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(persist(t, f)))); err != nil {
		t.Fatal(err)
	}
	if got := read(g); !equalDevs(got, want) {
		t.Fatalf("after restore:\n got %v\nwant %v", got, want)
	}
}

func equalDevs(a, b map[string]map[string]string) bool {
	return maps.EqualFunc(a, b, func(x, y map[string]string) bool { return maps.Equal(x, y) })
}

// FuzzDecodeDevice checks that a stored device of any bytes decodes or
// fails without panicking, and that what decodes encodes to a record that
// decodes the same (snapshots from a peer are the way foreign bytes reach
// the store).
func FuzzDecodeDevice(f *testing.F) {
	d := Device{ID: "d", OUI: "O", Edge: "e", LastInform: t0, LastEvents: []string{"2 PERIODIC"}}
	ov := overlay{{name: []byte("A.B.C"), enc: encodeParam(Param{Value: "1", Type: "xsd:int", Updated: t0})},
		{name: []byte("A.B.D"), enc: encodeParam(Param{Value: "x", Type: "custom", Updated: t0.Add(-time.Hour)})},
		{name: []byte("E"), enc: []byte{9, 9}}}
	v4, _ := encodeDevice(&d, ov)
	f.Add(v4)
	f.Add(encodeDeviceV3(&d, ov))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Device
		ov, err := decodeDevice(b, &d, true)
		if err != nil {
			return
		}
		again, err := encodeDevice(&d, ov)
		if err != nil {
			t.Fatal(err)
		}
		var d2 Device
		ov2, err := decodeDevice(again, &d2, true)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if len(ov2) != len(ov) {
			t.Fatalf("overlay of %d entries, re-read %d", len(ov), len(ov2))
		}
		for i := range ov {
			if !bytes.Equal(ov[i].name, ov2[i].name) || !bytes.Equal(ov[i].enc, ov2[i].enc) {
				t.Fatalf("entry %d: %q %x, re-read %q %x", i, ov[i].name, ov[i].enc, ov2[i].name, ov2[i].enc)
			}
		}
		if d2.ID != d.ID || d2.Edge != d.Edge || !d2.LastInform.Equal(d.LastInform) || d2.flags != d.flags {
			t.Fatalf("fields %+v, re-read %+v", d, d2)
		}
	})
}
