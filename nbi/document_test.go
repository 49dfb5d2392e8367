package nbi

import (
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseProjection(t *testing.T) {
	cases := []struct {
		in    string
		paths []string
	}{
		{"", nil},
		{"  ", nil},
		{"_id", []string{"_id"}},
		{"InternetGatewayDevice.DeviceInfo.ModelName,InternetGatewayDevice.DeviceInfo.Manufacturer",
			[]string{"InternetGatewayDevice.DeviceInfo.Manufacturer", "InternetGatewayDevice.DeviceInfo.ModelName"}},
		{" _id , _lastInform,_tags ", []string{"_id", "_lastInform", "_tags"}},
		{"a,a", []string{"a"}},
		// Paths under another add nothing.
		{"a.b.c,a.b,a.b-x,a.b.d._value", []string{"a.b", "a.b-x"}},
		{"a-x,a.b,a", []string{"a", "a-x"}},
		{"_deviceId._OUI,_deviceId", []string{"_deviceId"}},
	}
	for _, c := range cases {
		p, err := ParseProjection(c.in)
		if err != nil {
			t.Errorf("ParseProjection(%q): %v", c.in, err)
			continue
		}
		if got := p.Paths(); !slices.Equal(got, c.paths) || p.All() != (c.paths == nil) {
			t.Errorf("ParseProjection(%q) = %q (all %v), want %q", c.in, got, p.All(), c.paths)
		}
	}
	for _, in := range []string{
		"a,,b", "a,", ",a", "a..b", ".a", "a.", "a.$", "$slice",
		strings.Repeat("a,", MaxProjectionPaths) + "a",
		strings.Repeat("a", MaxPathLen+1),
		strings.Repeat("a", MaxProjectionBytes+1),
	} {
		if _, err := ParseProjection(in); !errors.Is(err, ErrInvalidProjection) {
			name := in
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			t.Errorf("ParseProjection(%q) err = %v, want ErrInvalidProjection", name, err)
		}
	}
}

func TestProjectionCovers(t *testing.T) {
	p, err := ParseProjection("a.b,a-x,c.d._value")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"a.b": true, "a.b.c": true, "a.b._value": true, "a-x": true, "a-x.y": true,
		"a": false, "a.bc": false, "a.c": false, "c.d": false, "c.d._value": true, "c.d._type": false,
	} {
		if got := p.covers(path); got != want {
			t.Errorf("covers(%q) = %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]bool{
		"a": true, "a.b": false, "c": true, "c.d": true, "a-x": false, "b": false,
	} {
		if got := p.reaches(path); got != want {
			t.Errorf("reaches(%q) = %v, want %v", path, got, want)
		}
	}
}

func docJSON(t *testing.T, d DocSource, projection string) string {
	t.Helper()
	p, err := ParseProjection(projection)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(DeviceDocument(d, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// canonical re-encodes JSON with sorted keys, as json.Marshal writes maps.
func canonical(t *testing.T, s string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func smallTree() *Record {
	ts := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	return &Record{
		Info: Meta{
			ID:         "202BC1-BM632w-000000",
			Tags:       []string{"test"},
			LastInform: ts,
			Registered: time.Date(2023, 1, 2, 3, 4, 5, 6e6, time.UTC),
			DeviceID:   DeviceID{Manufacturer: "Genie", OUI: "202BC1", ProductClass: "BM632w", SerialNumber: "000000"},
		},
		Params: map[string]Entry{
			"Device.":                           {Object: true, Writable: ptr(false), Timestamp: ts},
			"Device.DeviceInfo.":                {Object: true, Writable: ptr(false), Timestamp: ts},
			"Device.DeviceInfo.SoftwareVersion": {Value: "1.2.3", Type: "xsd:string", Writable: ptr(false), Timestamp: ts},
			"Device.DeviceInfo.UpTime":          {Value: "3600", Type: "xsd:unsignedInt", Timestamp: ts},
			"Device.ManagementServer.PeriodicInformEnable": {Value: "1", Type: "xsd:boolean", Writable: ptr(true), Timestamp: ts,
				Notification: ptr(2), AccessList: []string{"Subscriber"}},
			"Device.Time.CurrentLocalTime": {Value: "2024-06-01T14:00:00+02:00", Type: "xsd:dateTime", Timestamp: ts},
			"Device.X_Vendor.Offset":       {Value: "-7", Type: "xsd:int"},
			"Device.X_Vendor.Ratio":        {Value: "0.25", Type: "xsd:decimal"},
			"Device.X_Vendor.Bad":          {Value: "n/a", Type: "xsd:unsignedInt"},
			"Device.X_Vendor.NoType":       {Value: "7"},
		},
	}
}

func TestDeviceDocument(t *testing.T) {
	want := canonical(t, `{
		"_id": "202BC1-BM632w-000000",
		"_deviceId": {"_Manufacturer": "Genie", "_OUI": "202BC1", "_ProductClass": "BM632w", "_SerialNumber": "000000"},
		"_lastInform": "2024-06-01T12:00:00.000Z",
		"_registered": "2023-01-02T03:04:05.006Z",
		"_tags": ["test"],
		"Device": {
			"_object": true, "_writable": false, "_timestamp": "2024-06-01T12:00:00.000Z",
			"DeviceInfo": {
				"_object": true, "_writable": false, "_timestamp": "2024-06-01T12:00:00.000Z",
				"SoftwareVersion": {"_object": false, "_value": "1.2.3", "_type": "xsd:string", "_writable": false, "_timestamp": "2024-06-01T12:00:00.000Z"},
				"UpTime": {"_object": false, "_value": 3600, "_type": "xsd:unsignedInt", "_timestamp": "2024-06-01T12:00:00.000Z"}
			},
			"ManagementServer": {
				"_object": true,
				"PeriodicInformEnable": {"_object": false, "_value": true, "_type": "xsd:boolean", "_writable": true, "_timestamp": "2024-06-01T12:00:00.000Z",
					"_notification": 2, "_accessList": ["Subscriber"]}
			},
			"Time": {
				"_object": true,
				"CurrentLocalTime": {"_object": false, "_value": "2024-06-01T12:00:00.000Z", "_type": "xsd:dateTime", "_timestamp": "2024-06-01T12:00:00.000Z"}
			},
			"X_Vendor": {
				"_object": true,
				"Bad": {"_object": false, "_value": "n/a", "_type": "xsd:unsignedInt"},
				"NoType": {"_object": false, "_value": "7"},
				"Offset": {"_object": false, "_value": -7, "_type": "xsd:int"},
				"Ratio": {"_object": false, "_value": 0.25, "_type": "xsd:decimal"}
			}
		}
	}`)
	if got := docJSON(t, smallTree(), ""); got != want {
		t.Errorf("document:\n got %s\nwant %s", got, want)
	}
}

func TestDeviceDocumentProjection(t *testing.T) {
	cases := []struct{ projection, want string }{
		{"_id", `{"_id": "202BC1-BM632w-000000"}`},
		{"_lastInform,_tags", `{"_id": "202BC1-BM632w-000000", "_lastInform": "2024-06-01T12:00:00.000Z", "_tags": ["test"]}`},
		{"_deviceId._OUI", `{"_id": "202BC1-BM632w-000000", "_deviceId": {"_OUI": "202BC1"}}`},
		{"_deviceId", `{"_id": "202BC1-BM632w-000000", "_deviceId": {"_Manufacturer": "Genie", "_OUI": "202BC1", "_ProductClass": "BM632w", "_SerialNumber": "000000"}}`},
		// Ancestors of a selected node are bare containers.
		{"Device.DeviceInfo.UpTime", `{"_id": "202BC1-BM632w-000000", "Device": {"DeviceInfo": {
			"UpTime": {"_object": false, "_value": 3600, "_type": "xsd:unsignedInt", "_timestamp": "2024-06-01T12:00:00.000Z"}}}}`},
		// One attribute.
		{"Device.DeviceInfo.UpTime._value,Device.DeviceInfo.SoftwareVersion._type",
			`{"_id": "202BC1-BM632w-000000", "Device": {"DeviceInfo": {"SoftwareVersion": {"_type": "xsd:string"}, "UpTime": {"_value": 3600}}}}`},
		// A subtree: its root keeps its attributes, implicit objects say so.
		{"Device.X_Vendor", `{"_id": "202BC1-BM632w-000000", "Device": {"X_Vendor": {"_object": true,
			"Bad": {"_object": false, "_value": "n/a", "_type": "xsd:unsignedInt"},
			"NoType": {"_object": false, "_value": "7"},
			"Offset": {"_object": false, "_value": -7, "_type": "xsd:int"},
			"Ratio": {"_object": false, "_value": 0.25, "_type": "xsd:decimal"}}}}`},
		{"Device.DeviceInfo", `{"_id": "202BC1-BM632w-000000", "Device": {"DeviceInfo": {
			"_object": true, "_writable": false, "_timestamp": "2024-06-01T12:00:00.000Z",
			"SoftwareVersion": {"_object": false, "_value": "1.2.3", "_type": "xsd:string", "_writable": false, "_timestamp": "2024-06-01T12:00:00.000Z"},
			"UpTime": {"_object": false, "_value": 3600, "_type": "xsd:unsignedInt", "_timestamp": "2024-06-01T12:00:00.000Z"}}}}`},
		// Nothing there: no empty containers.
		{"Device.Nope,InternetGatewayDevice,_lastBoot", `{"_id": "202BC1-BM632w-000000"}`},
		// A prefix of a name is not its ancestor.
		{"Device.DeviceInfo.Up", `{"_id": "202BC1-BM632w-000000"}`},
	}
	for _, c := range cases {
		if got, want := docJSON(t, smallTree(), c.projection), canonical(t, c.want); got != want {
			t.Errorf("projection %q:\n got %s\nwant %s", c.projection, got, want)
		}
	}
}

// shuffled yields a Record's entries in reverse path order, with objects
// given only by a trailing dot, and a few entries a document cannot hold.
type shuffled struct{ *Record }

func (s shuffled) Entries() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		var all []Entry
		for e := range s.Record.Entries() {
			e.Object = false
			all = append(all, e)
		}
		all = append(all, Entry{Path: "Device._hidden", Value: "x"}, Entry{Path: ""}, Entry{Path: "Device..X", Value: "y"},
			Entry{Path: "$where", Value: "z"})
		slices.Reverse(all)
		for _, e := range all {
			if !yield(e) {
				return
			}
		}
	}
}

func TestDeviceDocumentOrderIndependent(t *testing.T) {
	r := smallTree()
	if a, b := docJSON(t, r, ""), docJSON(t, shuffled{r}, ""); a != b {
		t.Fatalf("entry order changed the document:\n%s\n%s", a, b)
	}
	// A leaf that also has children (a CPE that changed its mind) keeps
	// both, whatever the order.
	r.Params["Device.DeviceInfo.UpTime.Sub"] = Entry{Value: "1", Type: "xsd:int"}
	a, b := docJSON(t, r, ""), docJSON(t, shuffled{r}, "")
	if a != b {
		t.Fatalf("entry order changed the document:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, `"UpTime":{"Sub":{"_object":false,"_type":"xsd:int","_value":1},"_object":false,`) {
		t.Fatalf("leaf with a child: %s", a)
	}
}

func TestDeviceDocumentBoots(t *testing.T) {
	r := smallTree()
	r.Info.LastBoot = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	got := DeviceDocument(r, Projection{})
	if got["_lastBoot"] != "2024-05-01T00:00:00.000Z" {
		t.Errorf("_lastBoot = %v", got["_lastBoot"])
	}
	if _, ok := got["_lastBootstrap"]; ok {
		t.Errorf("zero _lastBootstrap rendered")
	}
	// No tags: no _tags.
	r.Info.Tags = nil
	if _, ok := DeviceDocument(r, Projection{})["_tags"]; ok {
		t.Errorf("empty _tags rendered")
	}
}

func TestTypedValue(t *testing.T) {
	for _, c := range []struct {
		v, typ string
		want   any
	}{
		{"42", "xsd:int", int64(42)},
		{"42", "int", int64(42)},
		{"42", "XSD:UNSIGNEDINT", uint64(42)},
		{"18446744073709551615", "xsd:unsignedLong", uint64(18446744073709551615)},
		{"-1", "xsd:unsignedInt", "-1"},
		{"0010", "xsd:unsignedInt", uint64(10)},
		{"true", "xsd:boolean", true},
		{"FALSE", "xsd:boolean", false},
		{"0", "xsd:boolean", false},
		{"yes", "xsd:boolean", "yes"},
		{"0001-01-01T00:00:00Z", "xsd:dateTime", "0001-01-01T00:00:00.000Z"},
		{"2024-01-01T00:00:00", "xsd:dateTime", "2024-01-01T00:00:00.000Z"},
		{"garbage", "xsd:dateTime", "garbage"},
		{"1.5", "xsd:decimal", 1.5},
		{"AAEC", "xsd:base64", "AAEC"},
		{"12", "", "12"},
		{"12", "xsd:string", "12"},
	} {
		if got := typedValue(c.v, c.typ); got != c.want {
			t.Errorf("typedValue(%q, %q) = %#v, want %#v", c.v, c.typ, got, c.want)
		}
	}
}
