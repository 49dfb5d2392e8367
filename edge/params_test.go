package edge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/s2"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// sampleParams is a small tree with every kind of entry the record form
// distinguishes: objects, known and literal types, attributes, stamps
// going back and forth, empty values.
func sampleParams() *devParams {
	p := &devParams{}
	for _, e := range []paramEntry{
		{"InternetGatewayDevice.", paramRec{Flags: flagObject | flagListed, Timestamp: 1_700_000_000_000_000_000}},
		{"InternetGatewayDevice.DeviceInfo.", paramRec{Flags: flagObject, Timestamp: 1_700_000_000_000_000_000}},
		{"InternetGatewayDevice.DeviceInfo.SerialNumber", paramRec{Value: "SN1", Type: cwmp.TypeString, Flags: flagValue | flagWritableKnown, Timestamp: 1_700_000_000_000_000_000}},
		{"InternetGatewayDevice.DeviceInfo.UpTime", paramRec{Value: "42", Type: "xsd:unsignedInt", Flags: flagValue, Timestamp: 1_700_000_300_000_000_000}},
		{"InternetGatewayDevice.ManagementServer.PeriodicInformInterval", paramRec{Value: "300", Type: "xsd:unsignedInt", Flags: flagValue | flagWritableKnown | flagWritable | flagAttrKnown, Timestamp: 1_600_000_000_000_000_000, Notify: 2, AccessList: []string{"Subscriber", ""}}},
		{"InternetGatewayDevice.X_VENDOR_Odd", paramRec{Value: "", Type: "vendor:type", Timestamp: 0}},
		{"InternetGatewayDevice.X_VENDOR_Notify", paramRec{Value: "ü", Type: "", Timestamp: -5, Notify: -1}},
	} {
		p.set(e.path, e.rec)
	}
	return p
}

// TestParamsRecord: the record form keeps every field of every entry,
// finds single entries without decoding the rest, and refuses damaged
// records with errCorruptParams.
func TestParamsRecord(t *testing.T) {
	p := sampleParams()
	for i := 1; i < len(p.ents); i++ {
		if p.ents[i-1].path >= p.ents[i].path {
			t.Fatalf("set left %q before %q", p.ents[i-1].path, p.ents[i].path)
		}
	}
	b := appendParams(nil, p.ents)
	got, err := decodeParams(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.ents, p.ents) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", got.ents, p.ents)
	}
	for _, e := range p.ents {
		r, ok, err := lookupParam(b, e.path)
		if err != nil || !ok || !reflect.DeepEqual(r, e.rec) {
			t.Fatalf("lookup %s: %+v %v %v, want %+v", e.path, r, ok, err, e.rec)
		}
	}
	for _, missing := range []string{"", "A", "InternetGatewayDevice.DeviceInfo.Serial", "Z"} {
		if _, ok, err := lookupParam(b, missing); ok || err != nil {
			t.Fatalf("lookup %q: found %v, err %v", missing, ok, err)
		}
	}
	if empty, err := decodeParams(appendParams(nil, nil)); err != nil || len(empty.ents) != 0 {
		t.Fatalf("empty record: %+v %v", empty, err)
	}

	outOfOrder := appendParams(nil, []paramEntry{{"B", paramRec{}}, {"A", paramRec{}}})
	bad := map[string][]byte{
		"empty":        nil,
		"format":       append([]byte{9}, b[1:]...),
		"truncated":    b[:len(b)-3],
		"trailing":     append(append([]byte{}, b...), 0),
		"count":        {paramsFormat, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"shared":       {paramsFormat, 1, 5, 0, 0, 0, 1, 0},
		"type code":    {paramsFormat, 1, 0, 1, 'A', 0, 0, 200, 0},
		"out of order": outOfOrder,
	}
	for name, rec := range bad {
		if _, err := decodeParams(rec); !errors.Is(err, errCorruptParams) {
			t.Errorf("%s: decode err %v, want errCorruptParams", name, err)
		}
	}
	if _, _, err := lookupParam(b[:len(b)-3], "Z"); !errors.Is(err, errCorruptParams) {
		t.Errorf("lookup in a truncated record: %v", err)
	}
}

// TestDevParamsRanges: the subtree operations the tasks and the engine
// use (prefix ranges, removals) over the sorted entries.
func TestDevParamsRanges(t *testing.T) {
	p := sampleParams()
	if lo, hi := p.prefixRange("InternetGatewayDevice.DeviceInfo."); hi-lo != 3 {
		t.Fatalf("DeviceInfo. range %d..%d", lo, hi)
	}
	if lo, hi := p.prefixRange("Device."); lo != hi {
		t.Fatalf("Device. range %d..%d", lo, hi)
	}
	gone := p.removePrefix("InternetGatewayDevice.DeviceInfo.")
	if len(gone) != 3 || gone[0] != "InternetGatewayDevice.DeviceInfo." {
		t.Fatalf("removed %v", gone)
	}
	if _, ok := p.get("InternetGatewayDevice.DeviceInfo.UpTime"); ok {
		t.Fatal("a removed entry is still there")
	}
	if !p.remove("InternetGatewayDevice.X_VENDOR_Odd") || p.remove("InternetGatewayDevice.X_VENDOR_Odd") {
		t.Fatal("remove reported wrongly")
	}
	p.set("InternetGatewayDevice.A", paramRec{Value: "x"})
	if r, ok := p.get("InternetGatewayDevice.A"); !ok || r.Value != "x" || p.ents[1].path != "InternetGatewayDevice.A" {
		t.Fatalf("insert in the middle: %+v", p.ents)
	}
	if all := p.removePrefix(""); len(all) != 4 || len(p.ents) != 0 {
		t.Fatalf("remove all: %v left %d", all, len(p.ents))
	}
}

// bigParams is a tree whose record is stored compressed.
func bigParams() *devParams {
	p := sampleParams()
	for i := 1; i <= 60; i++ {
		p.set(fmt.Sprintf("InternetGatewayDevice.LANDevice.1.Hosts.Host.%d.IPAddress", i),
			paramRec{Value: fmt.Sprintf("192.168.1.%d", i), Type: cwmp.TypeString, Flags: flagValue, Timestamp: 1_700_000_000_000_000_000})
	}
	return p
}

// TestParamsCompressed: a large tree is stored compressed (format 2) and
// reads back whole, by single parameter and by treeHolds; a small one
// stays format 1; a damaged compressed record is errCorruptParams, and
// the device's next write drops it.
func TestParamsCompressed(t *testing.T) {
	big := bigParams()
	if rec := encodeParams(big.ents); rec[0] != paramsFormatS2 || len(rec) >= len(appendParams(nil, big.ents)) {
		t.Fatalf("large record: format %d, %d bytes, %d plain", rec[0], len(rec), len(appendParams(nil, big.ents)))
	}
	if rec := encodeParams(sampleParams().ents); rec[0] != paramsFormat {
		t.Fatalf("small record stored in format %d", rec[0])
	}
	c := openTestCache(t, "")
	const id = "A1B2C3-R-S1"
	if err := c.db.Update(func(txn *badger.Txn) error { return putParams(txn, id, big) }); err != nil {
		t.Fatal(err)
	}
	err := c.db.View(func(txn *badger.Txn) error {
		got, err := loadParams(txn, id)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got.ents, big.ents) {
			t.Fatalf("read back %d entries, not the %d stored", len(got.ents), len(big.ents))
		}
		r, err := getParam(txn, id, "InternetGatewayDevice.LANDevice.1.Hosts.Host.37.IPAddress")
		if err != nil || r.Value != "192.168.1.37" {
			t.Fatalf("single parameter: %+v %v", r, err)
		}
		holds, err := treeHolds(txn, id, []cwmp.ParameterValue{{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "42", Type: "xsd:unsignedInt"}})
		if err != nil || !holds {
			t.Fatalf("treeHolds: %v %v", holds, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	good := encodeParams(big.ents)
	for name, rec := range map[string][]byte{
		"truncated":       good[:len(good)/2],
		"length too long": append([]byte{paramsFormatS2}, binary.AppendUvarint(nil, maxParamsRecord+1)...),
		"garbage":         {paramsFormatS2, 0x10, 0xff, 0xff},
		"twice":           append([]byte{paramsFormatS2}, s2.Encode(nil, good)...),
	} {
		if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pTree+id), rec) }); err != nil {
			t.Fatal(err)
		}
		err := c.db.View(func(txn *badger.Txn) error { _, err := loadParams(txn, id); return err })
		if !errors.Is(err, errCorruptParams) {
			t.Fatalf("%s: %v, want errCorruptParams", name, err)
		}
		err = c.db.Update(func(txn *badger.Txn) error {
			p, err := c.loadParamsForWrite(txn, id)
			if err == nil && len(p.ents) != 0 {
				t.Fatalf("%s: the damaged record was not dropped", name)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: loadParamsForWrite: %v", name, err)
		}
	}
}

// FuzzDecodeParams: a damaged record, compressed or not, is an error,
// never a panic, and what decodes encodes back to a record that decodes
// to the same.
func FuzzDecodeParams(f *testing.F) {
	f.Add(appendParams(nil, sampleParams().ents))
	f.Add(appendParams(nil, nil))
	f.Add([]byte{paramsFormat, 1, 0, 1, 'A', flagAttrs, 0, 0, 0, 3, 2, 0})
	f.Add(encodeParams(bigParams().ents))
	f.Fuzz(func(t *testing.T, stored []byte) {
		var b []byte
		if err := withPlainParams(stored, func(plain []byte) error { b = bytes.Clone(plain); return nil }); err != nil {
			if !errors.Is(err, errCorruptParams) {
				t.Fatalf("error not errCorruptParams: %v", err)
			}
			return
		}
		_, _, _ = lookupParam(b, "InternetGatewayDevice.DeviceInfo.UpTime")
		p, err := decodeParams(b)
		if err != nil {
			if !errors.Is(err, errCorruptParams) {
				t.Fatalf("error not errCorruptParams: %v", err)
			}
			return
		}
		again, err := decodeParams(appendParams(nil, p.ents))
		if err != nil {
			t.Fatalf("re-encoded record: %v", err)
		}
		if len(again.ents) != len(p.ents) {
			t.Fatalf("re-encoded %d entries, want %d", len(again.ents), len(p.ents))
		}
		for i := range p.ents {
			a, b := again.ents[i], p.ents[i]
			if a.path != b.path || a.rec.Value != b.rec.Value || a.rec.Type != b.rec.Type || a.rec.Timestamp != b.rec.Timestamp {
				t.Fatalf("entry %d: %+v, want %+v", i, a, b)
			}
		}
	})
}

// TestMigrateParamKeys: a cache written with one key per parameter opens
// with each device's parameters in one record, nothing lost, no old key
// left; a migration cut short (a record already written, old keys still
// there) merges on the next open.
func TestMigrateParamKeys(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	m, err := sim.LoadModel(sim.ModelTR098)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	want := map[string]map[string]Parameter{}
	for i := 1; i <= 3; i++ {
		dev := sim.NewTree(m, sim.Identity{Seed: 1, Index: i})
		w := mustBegin(t, c, &cwmp.Inform{DeviceId: cwmp.DeviceID{OUI: m.OUI, ProductClass: m.ProductClass, SerialNumber: dev.Serial()},
			Event: []cwmp.Event{{Code: cwmp.EventBootstrap}}, ParameterList: dev.Forced()}, t0)
		if err := w.End(true); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.DeviceID())
	}
	// Rewrite the cache in the old layout by hand: every device's tree
	// as one key per node, the third device's half moved already.
	err = c.db.Update(func(txn *badger.Txn) error {
		for n, id := range ids {
			p, err := loadParams(txn, id)
			if err != nil {
				return err
			}
			p.set("InternetGatewayDevice.ManagementServer.", paramRec{Flags: flagObject | flagAttrKnown, Notify: 1, AccessList: []string{"Subscriber"}, Timestamp: t0.UnixNano()})
			want[id] = map[string]Parameter{}
			for _, e := range p.ents {
				want[id][e.path] = e.rec.public()
			}
			keep := &devParams{}
			for i, e := range p.ents {
				if n == 2 && i%2 == 0 {
					keep.set(e.path, e.rec)
					continue
				}
				if err := setCBOR(txn, "p/"+id+"/"+e.path, &e.rec); err != nil {
					return err
				}
			}
			if err := saveParams(txn, id, keep); err != nil {
				return err
			}
		}
		// An unreadable old record is dropped, not a failed open.
		if err := txn.Set([]byte("p/"+ids[0]+"/Broken"), []byte{0xff}); err != nil {
			return err
		}
		// A cache from before the move has no mark.
		return txn.Delete([]byte(kLayout))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openTestCache(t, dir)
	for _, id := range ids {
		got, err := c.Parameters(id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want[id]) {
			t.Fatalf("%s after the move:\n%v\nwant\n%v", id, got, want[id])
		}
	}
	if n, err := c.countKeys("p/"); err != nil || n != 0 {
		t.Fatalf("%d old keys left (%v)", n, err)
	}
	if n, err := c.countKeys(kLayout); err != nil || n != 1 {
		t.Fatalf("the move is not marked done: %d %v", n, err)
	}
	if p, err := c.Parameter(ids[2], "InternetGatewayDevice.ManagementServer."); err != nil || p.Notification == nil || *p.Notification != 1 {
		t.Fatalf("attributes after the move: %+v %v", p, err)
	}
}

// TestCorruptParamsRecord: a device whose parameter record is damaged
// is an error on the API (not an empty tree), and its next session drops
// the record and stores what the CPE sends, instead of failing every
// session the device opens.
func TestCorruptParamsRecord(t *testing.T) {
	c := openTestCache(t, "")
	inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{OUI: "A1B2C3", ProductClass: "R", SerialNumber: "S1"},
		ParameterList: []cwmp.ParameterValue{pv("Device.DeviceInfo.SoftwareVersion", "1.0")}}
	w := mustBegin(t, c, inf, t0)
	if err := w.End(true); err != nil {
		t.Fatal(err)
	}
	id := w.DeviceID()
	if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pTree+id), []byte{paramsFormat, 3, 1}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Parameters(id); err == nil || !strings.Contains(err.Error(), "corrupt parameter record") {
		t.Fatalf("Parameters of a damaged record: %v", err)
	}
	inf.ParameterList = []cwmp.ParameterValue{pv("Device.DeviceInfo.SoftwareVersion", "2.0")}
	w = mustBegin(t, c, inf, t0.Add(time.Minute))
	if err := w.End(true); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Parameter(id, "Device.DeviceInfo.SoftwareVersion"); err != nil || p.Value != "2.0" {
		t.Fatalf("after the next session: %+v %v", p, err)
	}
}

// TestInformIntervalKept: the device record's copy of the tree's
// periodic inform interval follows every write of the tree (an Inform, a
// task's changes), and a record older than the copy is served from the
// tree.
func TestInformIntervalKept(t *testing.T) {
	c := openTestCache(t, "")
	const param = "Device.ManagementServer.PeriodicInformInterval"
	inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{OUI: "A1B2C3", ProductClass: "R", SerialNumber: "S1"},
		ParameterList: []cwmp.ParameterValue{pv("Device.DeviceInfo.SoftwareVersion", "1.0"), pv(param, "60")}}
	at := t0
	session := func(interval string) string {
		t.Helper()
		inf.ParameterList[1].Value = interval
		at = at.Add(time.Minute)
		w := mustBegin(t, c, inf, at)
		if err := w.End(true); err != nil {
			t.Fatal(err)
		}
		return w.DeviceID()
	}
	interval := func(id string) time.Duration {
		t.Helper()
		d, err := c.Device(id)
		if err != nil {
			t.Fatal(err)
		}
		return d.InformInterval
	}
	id := session("60")
	if got := interval(id); got != time.Minute {
		t.Fatalf("after the first Inform: %v", got)
	}
	session("120")
	if got := interval(id); got != 2*time.Minute {
		t.Fatalf("after a changed Inform: %v", got)
	}
	// A record written before the copy existed: the tree says.
	err := c.update(func(txn *badger.Txn) error {
		var d Device
		if err := getCBOR(txn, pDevice+id, &d); err != nil {
			return err
		}
		d.InformInterval = 0
		return setCBOR(txn, pDevice+id, &d)
	})
	if err != nil {
		t.Fatal(err)
	}
	states, err := c.DeviceStates(at.Add(3 * time.Minute))
	if err != nil || states[fleet.DeviceLate] != 1 {
		t.Fatalf("states of an old record, 3 min after a 2 min interval: %v %v", states, err)
	}
	// A task's deletion of the parameter: the copy says "none".
	err = c.update(func(txn *badger.Txn) error {
		return c.storeOps(txn, id, []paramOp{{path: param, del: true}}, at, &fleet.DeviceDelta{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := interval(id); got != -1 {
		t.Fatalf("after the parameter's deletion: %v", got)
	}
}

// TestTreeHolds: an Inform whose values the tree has as they are is
// recognised without decoding (and only then).
func TestTreeHolds(t *testing.T) {
	c := openTestCache(t, "")
	p := sampleParams()
	err := c.update(func(txn *badger.Txn) error { return putParams(txn, "dev", p) })
	if err != nil {
		t.Fatal(err)
	}
	sn := cwmp.ParameterValue{Name: "InternetGatewayDevice.DeviceInfo.SerialNumber", Value: "SN1", Type: cwmp.TypeString}
	up := cwmp.ParameterValue{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "42", Type: "xsd:unsignedInt"}
	odd := cwmp.ParameterValue{Name: "InternetGatewayDevice.X_VENDOR_Odd", Value: "", Type: "vendor:type"}
	for _, c0 := range []struct {
		name   string
		id     string
		params []cwmp.ParameterValue
		want   bool
	}{
		{"all as stored, out of order", "dev", []cwmp.ParameterValue{up, odd, sn}, true},
		{"objects and empty names aside", "dev", []cwmp.ParameterValue{{Name: "InternetGatewayDevice."}, {}, sn}, true},
		{"none", "dev", nil, true},
		{"a changed value", "dev", []cwmp.ParameterValue{sn, {Name: up.Name, Value: "43", Type: up.Type}}, false},
		{"a changed type", "dev", []cwmp.ParameterValue{{Name: up.Name, Value: up.Value, Type: "xsd:int"}}, false},
		{"a name not stored", "dev", []cwmp.ParameterValue{sn, pv("InternetGatewayDevice.DeviceInfo.Unknown", "x")}, false},
		{"a name after the last", "dev", []cwmp.ParameterValue{pv("Z", "x")}, false},
		{"no tree", "other", []cwmp.ParameterValue{sn}, false},
		{"no tree, nothing sent", "other", nil, true},
	} {
		var got bool
		err := c.db.View(func(txn *badger.Txn) (err error) { got, err = treeHolds(txn, c0.id, c0.params); return err })
		if err != nil || got != c0.want {
			t.Errorf("%s: %v %v, want %v", c0.name, got, err, c0.want)
		}
	}
}
