package nbi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

func ptr[T any](v T) *T { return &v }

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	igd = "InternetGatewayDevice."
	swv = igd + "DeviceInfo.SoftwareVersion"
	mac = igd + "WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.MACAddress"
)

// sampleDevice is a small TR-098 CPE with one value of each CWMP type.
func sampleDevice(t testing.TB) *Record {
	ts := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	return &Record{
		Info: Meta{
			ID:            "202BC1-BM632w-000000",
			Tags:          []string{"test", "lab"},
			LastInform:    ts,
			Registered:    time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC),
			LastBoot:      ts.Add(-time.Hour),
			LastBootstrap: time.Time{},
			DeviceID:      DeviceID{Manufacturer: "Genie", OUI: "202BC1", ProductClass: "BM632w", SerialNumber: "000000"},
		},
		Params: map[string]Entry{
			igd:                          {Object: true, Writable: ptr(false), Timestamp: ts},
			igd + "DeviceInfo.":          {Object: true, Writable: ptr(false), Timestamp: ts},
			swv:                          {Value: "1.2.3", Type: "xsd:string", Writable: ptr(false), Timestamp: ts},
			igd + "DeviceInfo.UpTime":    {Value: "3600", Type: "xsd:unsignedInt", Timestamp: ts},
			igd + "DeviceInfo.ModelName": {Value: "BM632w", Type: "xsd:string"},
			igd + "ManagementServer.PeriodicInformEnable":   {Value: "true", Type: "xsd:boolean", Writable: ptr(true)},
			igd + "ManagementServer.PeriodicInformInterval": {Value: "300", Type: "xsd:unsignedInt", Writable: ptr(true)},
			igd + "ManagementServer.URL":                    {Value: "http://acs.example.net:7547/", Type: "xsd:string"},
			igd + "Time.CurrentLocalTime":                   {Value: "2024-06-01T12:00:00Z", Type: "xsd:dateTime"},
			igd + "X_Vendor.Temperature":                    {Value: "-5", Type: "xsd:int"},
			igd + "X_Vendor.Untyped":                        {Value: "42"},
			igd + "X_Vendor.Flag":                           {Value: "1", Type: "xsd:boolean"},
			mac:                                             {Value: "20:2B:C1:E0:06:65", Type: "xsd:string"},
		},
	}
}

func TestMatch(t *testing.T) {
	d := sampleDevice(t)
	cases := []struct {
		q    string
		want bool
	}{
		// GenieACS API reference examples.
		{`{"_id": "202BC1-BM632w-000000"}`, true},
		{`{"_id": "202BC1-BM632w-000001"}`, false},
		{`{"` + mac + `": "20:2B:C1:E0:06:65"}`, true},
		{`{"_lastInform": {"$lt": "2017-12-11 13:16:23 +0000"}}`, false},
		{`{"_lastInform": {"$gt": "2017-12-11 13:16:23 +0000"}}`, true},
		{`{"_tags": "test"}`, true},
		{`{"_tags": "prod"}`, false},
		{`{"` + swv + `": {"$ne": "1.2.3"}}`, false},
		{`{"` + swv + `": {"$ne": "1.2.4"}}`, true},
		{`{"$or": [{"_tags": "prod"}, {"_id": "202BC1-BM632w-000000"}]}`, true},
		{`{"$or": [{"_tags": "prod"}, {"_id": "x"}]}`, false},
		// Empty and match-all.
		{``, true},
		{`{}`, true},
		{`  `, true},
		// ._value is the same as the bare path.
		{`{"` + swv + `._value": "1.2.3"}`, true},
		{`{"` + swv + `._value": {"$in": ["1.0", "1.2.3"]}}`, true},
		// Implicit AND.
		{`{"_tags": "test", "` + swv + `": "1.2.3"}`, true},
		{`{"_tags": "test", "` + swv + `": "9"}`, false},
		{`{"$and": [{"_tags": "test"}, {"_tags": "lab"}]}`, true},
		{`{"$and": [{"_tags": "test"}, {"_tags": "prod"}]}`, false},
		{`{"$nor": [{"_tags": "prod"}]}`, true},
		{`{"$nor": [{"_tags": "lab"}]}`, false},
		// _lastInform ranges, in every date form.
		{`{"_lastInform": {"$lt": "2024-01-01T00:00:00Z"}}`, false},
		{`{"_lastInform": {"$gte": "2024-01-01T00:00:00Z", "$lt": "2024-07-01T00:00:00Z"}}`, true},
		{`{"_lastInform": {"$gte": "2024-06-01T12:00:00.001Z"}}`, false},
		{`{"_lastInform": {"$lte": "2024-06-01T12:00:00Z"}}`, true},
		{`{"_lastInform": {"$gt": {"$date": "2024-05-31"}}}`, true},
		{`{"_lastInform": {"$gt": {"$date": 1717243200000}}}`, false}, // = 2024-06-01T12:00:00Z
		{`{"_lastInform": {"$gte": {"$date": {"$numberLong": "1717243200000"}}}}`, true},
		{`{"_lastInform": "2024-06-01T14:00:00+02:00"}`, true},
		{`{"_lastInform": {"$exists": true}}`, true},
		{`{"_registered": {"$lt": "2023-06-01"}}`, true},
		{`{"_lastBoot": {"$lt": "2024-06-01T12:00:00Z"}}`, true},
		{`{"_lastBootstrap": {"$exists": false}}`, true},
		{`{"_lastBootstrap": null}`, true},
		// _deviceId fields.
		{`{"_deviceId._Manufacturer": "Genie"}`, true},
		{`{"_deviceId._OUI": "202BC1", "_deviceId._ProductClass": "BM632w"}`, true},
		{`{"_deviceId._SerialNumber": {"$in": ["1", "2"]}}`, false},
		{`{"_deviceId._SerialNumber": {"$regex": "^0+$"}}`, true},
		// Numbers compare as numbers when both sides are numeric.
		{`{"` + igd + `DeviceInfo.UpTime": {"$gt": 999}}`, true},
		{`{"` + igd + `DeviceInfo.UpTime": {"$gt": "999"}}`, true}, // not "3600" < "999"
		{`{"` + igd + `DeviceInfo.UpTime": {"$lt": 1e4}}`, true},
		{`{"` + igd + `DeviceInfo.UpTime": 3600}`, true},
		{`{"` + igd + `DeviceInfo.UpTime": "3600.0"}`, true},
		{`{"` + igd + `DeviceInfo.UpTime": {"$gte": 3600.5}}`, false},
		{`{"` + igd + `X_Vendor.Temperature": {"$lt": 0}}`, true},
		{`{"` + igd + `X_Vendor.Untyped": {"$gt": 9}}`, true}, // untyped but numeric
		// A string-typed value compares as a string, even when it looks numeric.
		{`{"` + swv + `": {"$gt": "1.10"}}`, true},
		{`{"` + igd + `DeviceInfo.ModelName": {"$gte": "BM"}}`, true},
		// Strings against a numeric value fall back to text.
		{`{"` + igd + `DeviceInfo.UpTime": {"$lt": "abc"}}`, true},
		// Booleans: true/false/1/0 in any form.
		{`{"` + igd + `ManagementServer.PeriodicInformEnable": true}`, true},
		{`{"` + igd + `ManagementServer.PeriodicInformEnable": "true"}`, true},
		{`{"` + igd + `ManagementServer.PeriodicInformEnable": "1"}`, true},
		{`{"` + igd + `ManagementServer.PeriodicInformEnable": 1}`, true},
		{`{"` + igd + `ManagementServer.PeriodicInformEnable": false}`, false},
		{`{"` + igd + `ManagementServer.PeriodicInformEnable": {"$ne": false}}`, true},
		{`{"` + igd + `X_Vendor.Flag": true}`, true},
		{`{"` + igd + `X_Vendor.Flag": "false"}`, false},
		// Dates in parameters.
		{`{"` + igd + `Time.CurrentLocalTime": {"$gt": "2024-06-01T11:00:00Z"}}`, true},
		{`{"` + igd + `Time.CurrentLocalTime": {"$gt": {"$date": "2024-06-01T13:00:00+02:00"}}}`, true},
		{`{"` + igd + `Time.CurrentLocalTime": "2024-06-01 12:00:00 +0000"}`, true},
		// Missing parameters: equality fails, $ne holds, null matches.
		{`{"` + igd + `Nope": "x"}`, false},
		{`{"` + igd + `Nope": {"$ne": "x"}}`, true},
		{`{"` + igd + `Nope": {"$nin": ["x"]}}`, true},
		{`{"` + igd + `Nope": null}`, true},
		{`{"` + igd + `Nope": {"$gt": 0}}`, false},
		{`{"` + swv + `": null}`, false},
		{`{"` + swv + `": {"$ne": null}}`, true},
		{`{"` + igd + `Nope": {"$in": [null, "x"]}}`, true},
		// $exists; an object node has no value.
		{`{"` + swv + `": {"$exists": true}}`, true},
		{`{"` + igd + `Nope": {"$exists": false}}`, true},
		{`{"` + igd + `DeviceInfo": {"$exists": true}}`, false},
		{`{"` + swv + `": {"$exists": 0}}`, false},
		// $in / $nin.
		{`{"_id": {"$in": ["a", "202BC1-BM632w-000000"]}}`, true},
		{`{"_id": {"$nin": ["a", "202BC1-BM632w-000000"]}}`, false},
		{`{"` + igd + `ManagementServer.PeriodicInformInterval": {"$in": [60, 300]}}`, true},
		// Arrays: any tag satisfies; $ne/$nin need none to.
		{`{"_tags": {"$ne": "test"}}`, false},
		{`{"_tags": {"$ne": "prod"}}`, true},
		{`{"_tags": {"$in": ["prod", "lab"]}}`, true},
		{`{"_tags": {"$nin": ["prod", "lab"]}}`, false},
		{`{"_tags": {"$gt": "m"}}`, true}, // "test"
		{`{"_tags": {"$exists": true}}`, true},
		{`{"_tags": {"$regex": "^la"}}`, true},
		// $regex and $options.
		{`{"_id": {"$regex": "^202BC1-"}}`, true},
		{`{"_id": {"$regex": "^202bc1-"}}`, false},
		{`{"_id": {"$regex": "^202bc1-", "$options": "i"}}`, true},
		{`{"` + swv + `": {"$regex": "^1\\.2\\."}}`, true},
		{`{"` + igd + `DeviceInfo.UpTime": {"$regex": "^36"}}`, true},
		// $not.
		{`{"_id": {"$not": {"$regex": "^202BC1"}}}`, false},
		{`{"` + igd + `DeviceInfo.UpTime": {"$not": {"$gt": 5000}}}`, true},
		// GenieACS's wildcard and /regex/ readings of a plain string.
		{`{"_id": "202BC1*"}`, true},
		{`{"_id": "*000000"}`, true},
		{`{"_id": "*-BM632w-*"}`, true},
		{`{"_id": "202BC1*1"}`, false},
		{`{"` + swv + `": "1.2.*"}`, true},
		{`{"` + swv + `": "1?2*"}`, false}, // '?' is literal in a wildcard
		{`{"_id": "/^202bc1/i"}`, true},
		{`{"_id": "/^xyz/"}`, false},
		{`{"_id": "/[/"}`, false}, // not a regex: only the string itself
		{`{"_tags": {"$in": ["te*"]}}`, true},
		{`{"_id": {"$ne": "202BC1*"}}`, false},
		// Ordering never uses the wildcard reading.
		{`{"_id": {"$gte": "202BC1*"}}`, true},
		// Several operators on one field AND together.
		{`{"` + igd + `DeviceInfo.UpTime": {"$gt": 100, "$lt": 200}}`, false},
		{`{"` + igd + `DeviceInfo.UpTime": {"$gt": 100, "$lt": 20000, "$ne": 3600}}`, false},
		{`{"` + igd + `DeviceInfo.UpTime": {"$eq": 3600}}`, true},
		// Nested logic.
		{`{"$or": [{"$and": [{"_tags": "lab"}, {"_deviceId._OUI": "X"}]}, {"$nor": [{"_tags": "nope"}]}]}`, true},
	}
	for _, c := range cases {
		q, err := ParseQuery([]byte(c.q))
		if err != nil {
			t.Errorf("ParseQuery(%s): %v", c.q, err)
			continue
		}
		if got := q.Match(d); got != c.want {
			t.Errorf("Match(%s) = %v, want %v", c.q, got, c.want)
		}
	}
}

// A Device that does not implement Boots has no _lastBoot.
type bareDevice struct{ r *Record }

func (b bareDevice) ID() string                            { return b.r.ID() }
func (b bareDevice) Tags() []string                        { return nil }
func (b bareDevice) LastInform() time.Time                 { return time.Time{} }
func (b bareDevice) Registered() time.Time                 { return b.r.Registered() }
func (b bareDevice) DeviceID() DeviceID                    { return DeviceID{} }
func (b bareDevice) Param(p string) (string, string, bool) { return b.r.Param(p) }

func TestMatchAbsentFields(t *testing.T) {
	d := bareDevice{sampleDevice(t)}
	for q, want := range map[string]bool{
		`{"_lastBoot": {"$exists": true}}`:       false,
		`{"_lastBoot": {"$lt": "2030-01-01"}}`:   false,
		`{"_lastInform": {"$exists": false}}`:    true, // zero time is absent
		`{"_lastInform": {"$lt": "2030-01-01"}}`: false,
		`{"_tags": {"$exists": false}}`:          true,
		`{"_tags": {"$ne": "x"}}`:                true,
		`{"_tags": null}`:                        true,
		`{"_deviceId._ProductClass": ""}`:        true,
		`{"` + swv + `": "1.2.3"}`:               true,
	} {
		qq, err := ParseQuery([]byte(q))
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := qq.Match(d); got != want {
			t.Errorf("Match(%s) = %v, want %v", q, got, want)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	deep := strings.Repeat(`{"$or": [`, 8) + `{}` + strings.Repeat(`]}`, 8) // depth 17
	okDeep := strings.Repeat(`{"$or": [`, 7) + `{"a": {"$gt": 1}}` + strings.Repeat(`]}`, 7)
	many := make([]string, MaxClauses+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"p.%d": 1`, i)
	}
	longIn := `{"_id": {"$in": [` + strings.Repeat(`"a",`, MaxListLen) + `"a"]}}`
	big := `{"_id": "` + strings.Repeat("x", MaxQueryBytes) + `"}`

	if _, err := ParseQuery([]byte(okDeep)); err != nil {
		t.Fatalf("depth 16 query refused: %v", err)
	}
	cases := []struct {
		q    string
		is   error
		text string
	}{
		// Unsupported operators and fields are named.
		{`{"$where": "this.a == 1"}`, ErrUnsupported, "$where"},
		{`{"$expr": {"$eq": [1, 1]}}`, ErrUnsupported, "$expr"},
		{`{"$text": {"$search": "x"}}`, ErrUnsupported, "$text"},
		{`{"_tags": {"$elemMatch": {"$eq": "x"}}}`, ErrUnsupported, "$elemMatch"},
		{`{"_tags": {"$size": 2}}`, ErrUnsupported, "$size"},
		{`{"_tags": {"$all": ["a"]}}`, ErrUnsupported, "$all"},
		{`{"a.b": {"$type": "string"}}`, ErrUnsupported, "$type"},
		{`{"a.b": {"$mod": [2, 0]}}`, ErrUnsupported, "$mod"},
		{`{"a.b._writable": true}`, ErrUnsupported, "_writable"},
		{`{"a.b._timestamp": {"$gt": "2024-01-01"}}`, ErrUnsupported, "_timestamp"},
		{`{"_lastFoo": 1}`, ErrUnsupported, "_lastFoo"},
		{`{"_deviceId": {"_OUI": "x"}}`, ErrUnsupported, "whole-object"},
		{`{"a.b": {"c": 1}}`, ErrUnsupported, "whole-object"},
		{`{"a.b": {"$in": [{"x": 1}]}}`, ErrUnsupported, "object value"},
		{`{"_id": {"$regex": "x", "$options": "x"}}`, ErrUnsupported, "option"},
		// Malformed.
		{`{"_id": `, ErrInvalid, "malformed"},
		{`{"_id" "x"}`, ErrInvalid, "malformed"},
		{`[{"_id": "x"}]`, ErrInvalid, "JSON object"},
		{`"x"`, ErrInvalid, "JSON object"},
		{`{"_id": "a"} {"_id": "b"}`, ErrInvalid, "trailing"},
		{`{"_id": "a", "_id": "b"}`, fleet.ErrDuplicateKey, `"_id"`},
		{`{"$or": [{"a": 1, "a": 2}]}`, ErrInvalid, "duplicate"},
		{`{"$or": []}`, ErrInvalid, "non-empty array"},
		{`{"$or": {"a": 1}}`, ErrInvalid, "non-empty array"},
		{`{"$and": [1]}`, ErrInvalid, "non-empty array"},
		{`{"a.b": {"$in": "x"}}`, ErrInvalid, "needs an array"},
		{`{"a.b": {"$exists": "yes"}}`, ErrInvalid, "$exists"},
		{`{"a.b": {"$gt": 1, "c": 2}}`, ErrInvalid, "mixes"},
		{`{"a.b": {"c": 2, "$gt": 1}}`, ErrInvalid, "mixes"},
		{`{"a.b": {"$or": [{"x": 1}]}}`, ErrInvalid, "top of a query"},
		{`{"a.b": {"$not": "x"}}`, ErrInvalid, "$not"},
		{`{"a.b": {"$options": "i"}}`, ErrInvalid, "$options without $regex"},
		{`{"a.b": {"$regex": 5}}`, ErrInvalid, "$regex"},
		{`{"a.b": {"$regex": "("}}`, ErrInvalid, "$regex"},
		{`{"a.b": ["x"]}`, ErrInvalid, "arrays"},
		{`{"a.b": 1e999}`, ErrInvalid, "out of range"},
		{`{"_lastInform": {"$lt": "last tuesday"}}`, ErrInvalid, "dates"},
		{`{"_lastInform": {"$lt": 1700000000}}`, ErrInvalid, "dates"},
		{`{"_lastInform": {"$regex": "^2024"}}`, ErrInvalid, "dates"},
		{`{"_lastInform": {"$lt": {"$date": "soon"}}}`, ErrInvalid, "$date"},
		{`{"a..b": 1}`, ErrInvalid, "bad field"},
		{`{".a": 1}`, ErrInvalid, "bad field"},
		{`{"a.b.": 1}`, ErrInvalid, "bad field"},
		{`{"": 1}`, ErrInvalid, "bad field"},
		{`{"a.$b": 1}`, ErrInvalid, "bad field"},
		// Bounds.
		{big, ErrInvalid, "bytes"},
		{deep, ErrInvalid, "nesting deeper than 16"},
		{`{` + strings.Join(many, ",") + `}`, ErrInvalid, "more than 256 clauses"},
		{longIn, ErrInvalid, "more than 1024 values"},
		{`{"_id": {"$regex": "` + strings.Repeat("a", MaxRegexLen+1) + `"}}`, ErrInvalid, "longer than 256"},
		{`{"` + strings.Repeat("a", MaxPathLen+1) + `": 1}`, ErrInvalid, "longer than"},
	}
	for _, c := range cases {
		q, err := ParseQuery([]byte(c.q))
		name := c.q
		if len(name) > 80 {
			name = name[:80] + "..."
		}
		if err == nil {
			t.Errorf("ParseQuery(%s) = %v, want an error", name, q)
			continue
		}
		if !errors.Is(err, c.is) {
			t.Errorf("ParseQuery(%s) = %v, want it to wrap %v", name, err, c.is)
		}
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("ParseQuery(%s) = %v, wraps neither sentinel", name, err)
		}
		if !strings.Contains(err.Error(), c.text) {
			t.Errorf("ParseQuery(%s) = %q, want it to mention %q", name, err, c.text)
		}
	}
}

func TestClauseCount(t *testing.T) {
	// Exactly MaxClauses clauses parse.
	parts := make([]string, MaxClauses)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"p.%d": 1`, i)
	}
	if _, err := ParseQuery([]byte(`{` + strings.Join(parts, ",") + `}`)); err != nil {
		t.Fatalf("%d clauses refused: %v", MaxClauses, err)
	}
	// Operators count too: 128 fields with two operators each is over.
	for i := range parts[:MaxClauses/2] {
		parts[i] = fmt.Sprintf(`"p.%d": {"$gt": 1, "$lt": 2}`, i)
	}
	_, err := ParseQuery([]byte(`{` + strings.Join(parts[:MaxClauses/2], ",") + `}`))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("384 clauses: err = %v, want ErrInvalid", err)
	}
}

func TestIDs(t *testing.T) {
	cases := []struct {
		q   string
		ids []string
		ok  bool
	}{
		{`{"_id": "a"}`, []string{"a"}, true},
		{`{"_id": {"$eq": "a"}}`, []string{"a"}, true},
		{`{"_id": {"$in": ["c", "a", "b", "a"]}}`, []string{"a", "b", "c"}, true},
		{`{"_id": {"$in": []}}`, []string{}, true},
		{`{"_id": "a", "_tags": "x"}`, []string{"a"}, true},
		{`{"$and": [{"_id": {"$in": ["a", "b"]}}, {"_id": {"$in": ["b", "c"]}}]}`, []string{"b"}, true},
		{`{"_id": {"$in": ["a", "b"], "$ne": "a"}}`, []string{"a", "b"}, true},
		{`{"$or": [{"_id": "b"}, {"_id": {"$in": ["a", "b"]}}]}`, []string{"a", "b"}, true},
		{`{"$or": [{"_id": "b"}, {"_tags": "x"}]}`, nil, false},
		{`{"_id": "a*"}`, nil, false},
		{`{"_id": "/^a/"}`, nil, false},
		{`{"_id": {"$in": ["a", "b*"]}}`, nil, false},
		{`{"_id": {"$ne": "a"}}`, nil, false},
		{`{"_id": {"$regex": "^a$"}}`, nil, false},
		{`{"_id": null}`, nil, false},
		{`{"_tags": "a"}`, nil, false},
		{`{}`, nil, false},
		{`{"$nor": [{"_id": "a"}]}`, nil, false},
	}
	for _, c := range cases {
		q, err := ParseQuery([]byte(c.q))
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		ids, ok := q.IDs()
		if ok != c.ok || (ok && !slices.Equal(ids, c.ids)) {
			t.Errorf("IDs(%s) = %q, %v; want %q, %v", c.q, ids, ok, c.ids, c.ok)
		}
	}
	// The set is a superset of the matches: every sample match is in it.
	d := sampleDevice(t)
	q, _ := ParseQuery([]byte(`{"_id": {"$in": ["x", "202BC1-BM632w-000000"]}, "_tags": "lab"}`))
	ids, ok := q.IDs()
	if !ok || !q.Match(d) || !slices.Contains(ids, d.ID()) {
		t.Fatalf("IDs = %q, %v; Match = %v", ids, ok, q.Match(d))
	}
}

func TestParamPaths(t *testing.T) {
	q, err := ParseQuery([]byte(`{"$or": [{"b.c._value": 1}, {"a.x": {"$exists": true}}], "b.c": 2, "_id": "x", "_deviceId._OUI": "y"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := q.ParamPaths(); !slices.Equal(got, []string{"a.x", "b.c"}) {
		t.Fatalf("ParamPaths = %q", got)
	}
	q, _ = ParseQuery([]byte(`{"_tags": "x"}`))
	if got := q.ParamPaths(); len(got) != 0 {
		t.Fatalf("ParamPaths = %q, want none", got)
	}
}

func TestDateForms(t *testing.T) {
	want := mustTime(t, "2017-12-11T13:16:23Z")
	for _, s := range []string{
		"2017-12-11T13:16:23Z",
		"2017-12-11T13:16:23.000Z",
		"2017-12-11T14:16:23+01:00",
		"2017-12-11T14:16:23+0100",
		"2017-12-11T13:16:23",
		"2017-12-11 13:16:23 +0000",
		"2017-12-11 13:16:23Z",
		"2017-12-11 13:16:23",
	} {
		got, ok := parseDate(s)
		if !ok || !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "2017", "20171211", "12/11/2017", "2017-13-01", "x017-12-11"} {
		if _, ok := parseDate(s); ok {
			t.Errorf("parseDate(%q) accepted", s)
		}
	}
}

func TestNumberSyntax(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-12": true, "+3": true, "1.5": true, ".5": true, "5.": true, "2e3": true, "2E-3": true,
		"": false, "-": false, ".": false, "1e": false, "0x10": false, "1_000": false, "Inf": false,
		"NaN": false, "1.2.3": false, "20:2B": false, " 1": false, "1 ": false,
	} {
		if _, got := parseNumber(s); got != want {
			t.Errorf("parseNumber(%q) ok = %v, want %v", s, got, want)
		}
	}
	a, _ := parseNumber("9007199254740993")
	b, _ := parseNumber("9007199254740992")
	if a.cmp(b) != 1 {
		t.Errorf("large integers compare inexactly")
	}
}

func TestPatternsCountAsClauses(t *testing.T) {
	vals := make([]string, MaxClauses)
	for i := range vals {
		vals[i] = fmt.Sprintf(`"a%d*"`, i)
	}
	_, err := ParseQuery([]byte(`{"_id": {"$in": [` + strings.Join(vals, ",") + `]}}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "clauses") {
		t.Fatalf("256 wildcards and a field: err = %v, want too many clauses", err)
	}
}

// BenchmarkWorstCase measures a query at the bounds against one device:
// MaxClauses regexes of MaxRegexLen bytes.
func BenchmarkWorstCase(b *testing.B) {
	parts := make([]string, MaxClauses/2-1) // field + $regex each, and $or
	for i := range parts {
		parts[i] = fmt.Sprintf(`"p.%d": {"$regex": "(a|b)*c?%s"}`, i, strings.Repeat("x?", (MaxRegexLen-8)/2))
	}
	q := []byte(`{"$or": [{` + strings.Join(parts, ",") + `}]}`)
	d := sampleDevice(b)
	for i := range 20 {
		d.Params[fmt.Sprintf("p.%d", i)] = Entry{Value: strings.Repeat("ab", 1000)}
	}
	b.ReportAllocs()
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseQuery(q); err != nil {
				b.Fatal(err)
			}
		}
	})
	pq, err := ParseQuery(q)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("match", func(b *testing.B) {
		for b.Loop() {
			pq.Match(d)
		}
	})
}
