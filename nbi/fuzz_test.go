package nbi

import (
	"errors"
	"slices"
	"testing"
)

// FuzzParseQuery checks that no input panics the parser or the evaluator,
// that every refusal wraps a sentinel, and that IDs never leaves out a
// device the query matches.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"_id": "202BC1-BM632w-000000"}`,
		`{"` + swv + `": {"$ne": "1.2.3"}}`,
		`{"_tags": "test"}`,
		`{"$or": [{"_tags": "prod"}, {"_id": {"$in": ["a", "202BC1-BM632w-000000"]}}]}`,
		`{"_lastInform": {"$lt": "2017-12-11 13:16:23 +0000"}}`,
		`{"_lastInform": {"$gte": {"$date": 1717243200000}}}`,
		`{"InternetGatewayDevice.DeviceInfo.UpTime._value": {"$gt": 100, "$lte": "4000"}}`,
		`{"_id": {"$regex": "^202", "$options": "i"}}`,
		`{"_id": "202BC1*"}`, `{"_id": "/^2/i"}`,
		`{"a.b": {"$not": {"$exists": true}}}`,
		`{"$nor": [{"_deviceId._OUI": null}]}`,
		`{"$where": "1"}`, `{"a": {"$elemMatch": {}}}`,
		`{"$and": [{"$or": [{"$nor": [{"x": 1}]}]}]}`,
		`{"a": [1, {"b": 2}]}`, `{"a": 1e999}`, `{"a": "\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	d := sampleDevice(f)
	bare := bareDevice{d}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuery(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		for _, dev := range []Device{d, bare} {
			if q.Match(dev) {
				if ids, ok := q.IDs(); ok && !slices.Contains(ids, dev.ID()) {
					t.Fatalf("matches %s, but IDs = %q", dev.ID(), ids)
				}
			}
		}
		if p := q.ParamPaths(); !slices.IsSorted(p) {
			t.Fatalf("ParamPaths not sorted: %q", p)
		}
	})
}
