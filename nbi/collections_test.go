package nbi

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

func TestRecordQueries(t *testing.T) {
	at := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	task := &fleet.Task{ID: "01J0", Device: "dev1", Name: fleet.TaskReboot, Status: fleet.StatusFault, Timestamp: at}
	f := NewFault("dev1", TaskChannel("01J0"), "9002", "Internal error", nil, at)
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{`{"_id": "01J0"}`, true},
		{`{"device": "dev1", "name": "reboot"}`, true},
		{`{"name": {"$in": ["reboot", "factoryReset"]}}`, true},
		{`{"status": "fault"}`, true},
		{`{"timestamp": {"$gt": "2024-06-01T11:00:00Z"}}`, true},
		{`{"timestamp": {"$lt": "2024-06-01"}}`, false},
		{`{"device": "dev2"}`, false},
		{`{"$or": [{"device": "dev2"}, {"_id": {"$in": ["01J0"]}}]}`, true},
	} {
		q, err := ParseRecordQuery([]byte(tc.q), TaskFields...)
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if got := q.Match(TaskRecord(task)); got != tc.want {
			t.Errorf("task %s: %v, want %v", tc.q, got, tc.want)
		}
	}
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{`{"_id": "dev1:task_01J0"}`, true},
		{`{"code": "cwmp.9002", "channel": {"$regex": "^task_"}}`, true},
		{`{"retries": 0}`, true},
		{`{"retries": {"$gt": 0}}`, false},
	} {
		q, err := ParseRecordQuery([]byte(tc.q), FaultFields...)
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if got := q.Match(f.Record()); got != tc.want {
			t.Errorf("fault %s: %v, want %v", tc.q, got, tc.want)
		}
	}
	for _, q := range []string{`{"_tags": "x"}`, `{"device._value": "dev1"}`, `{"$or": [{"name": "reboot"}, {"InternetGatewayDevice.X": 1}]}`, `{"retries": 0}`} {
		_, err := ParseRecordQuery([]byte(q), TaskFields...)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "the fields are _id, device") {
			t.Errorf("%s: %v, want ErrUnsupported naming the fields", q, err)
		}
	}
	if _, err := ParseRecordQuery([]byte(`{"name": {"$where": 1}}`), TaskFields...); !errors.Is(err, ErrUnsupported) {
		t.Errorf("$where: %v", err)
	}
}

func TestFaultIDs(t *testing.T) {
	if id := FaultID("00AA11-S%3A1", TaskChannel("01J0")); id != "00AA11-S%3A1:task_01J0" {
		t.Fatalf("FaultID = %q", id)
	}
	if d, c, ok := SplitFaultID("00AA11-S1:task_01J0"); !ok || d != "00AA11-S1" || c != "task_01J0" {
		t.Errorf("split: %q %q %v", d, c, ok)
	}
	for _, bad := range []string{"", "dev", ":ch", "dev:"} {
		if _, _, ok := SplitFaultID(bad); ok {
			t.Errorf("SplitFaultID(%q) ok", bad)
		}
	}
	if id, ok := TaskOfChannel("task_01J0"); !ok || id != "01J0" {
		t.Errorf("TaskOfChannel: %q %v", id, ok)
	}
	if _, ok := TaskOfChannel("autonomousTransferComplete-1"); ok {
		t.Error("a CPE-reported channel read as a task's")
	}
	for code, want := range map[string]string{"9002": "cwmp.9002", "timeout": "timeout", "": ""} {
		if got := FaultCode(code); got != want {
			t.Errorf("FaultCode(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestSelectFields(t *testing.T) {
	p, err := ParseProjection("name,result.parameterValues")
	if err != nil {
		t.Fatal(err)
	}
	doc := SelectFields(map[string]any{"_id": "1", "name": "reboot", "device": "d", "result": map[string]any{"status": 0}}, p)
	if len(doc) != 3 || doc["_id"] != "1" || doc["name"] != "reboot" || doc["result"] == nil {
		t.Errorf("selected %v", doc)
	}
}

func TestParseList(t *testing.T) {
	v := func(kv ...string) url.Values {
		out := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	l, err := ParseList(v("query", `{"_tags": "a"}`, "projection", "_id,_tags", "skip", "2", "limit", "3"), nil)
	if err != nil || l.Skip != 2 || l.Limit != 3 || l.Projection.All() {
		t.Fatalf("%+v %v", l, err)
	}
	for n, want := range map[int][2]int{0: {0, 0}, 1: {1, 1}, 4: {2, 4}, 10: {2, 5}} {
		if lo, hi := l.Window(n); lo != want[0] || hi != want[1] {
			t.Errorf("Window(%d) = %d, %d; want %v", n, lo, hi, want)
		}
	}
	if l, err := ParseList(v(), nil); err != nil || l.Limit != 0 || !l.Projection.All() {
		t.Errorf("empty: %+v %v", l, err)
	}
	if lo, hi := (List{}).Window(7); lo != 0 || hi != 7 {
		t.Errorf("no limit: %d %d", lo, hi)
	}
	for _, tc := range []struct {
		v    url.Values
		want error
	}{
		{v("query", `{"x": {"$where": "1"}}`), ErrUnsupported},
		{v("query", `{bad`), ErrInvalid},
		{v("projection", "a..b"), ErrInvalidProjection},
		{v("sort", `{"_id": 1}`), ErrUnsupported},
		{v("skip", "-1"), ErrInvalid},
		{v("limit", "x"), ErrInvalid},
		{v("query", `{"Device.WiFi.AccessPoint.1.Security.KeyPassphrase": "x"}`), ErrSecret},
		{v("query", `{"$or": [{"_id": "a"}, {"InternetGatewayDevice.ManagementServer.Password._value": {"$regex": "^a"}}]}`), ErrSecret},
	} {
		if _, err := ParseList(tc.v, nil); !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.v, err, tc.want)
		}
	}
	if _, err := ParseList(v("query", `{"name": "reboot"}`), TaskFields); err != nil {
		t.Errorf("task query: %v", err)
	}
	if _, err := ParseList(v("query", `{"_tags": "x"}`), TaskFields); !errors.Is(err, ErrUnsupported) {
		t.Errorf("task query on _tags: %v", err)
	}
}

// TestNoValue: a leaf whose value was never read renders without _value
// and _type and matches no value query.
func TestNoValue(t *testing.T) {
	w := false
	r := &Record{Info: Meta{ID: "d1"}, Params: map[string]Entry{
		"Device.ManagementServer.URL": {NoValue: true, Writable: &w, Timestamp: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)},
	}}
	doc := DeviceDocument(r, Projection{})
	url := doc["Device"].(map[string]any)["ManagementServer"].(map[string]any)["URL"].(map[string]any)
	if _, ok := url["_value"]; ok || url["_type"] != nil || url["_object"] != false || url["_writable"] != false || url["_timestamp"] == nil {
		t.Errorf("node %v", url)
	}
	for _, q := range []string{`{"Device.ManagementServer.URL": ""}`, `{"Device.ManagementServer.URL": {"$exists": true}}`} {
		pq, err := ParseQuery([]byte(q))
		if err != nil {
			t.Fatal(err)
		}
		if pq.Match(r) {
			t.Errorf("%s matches a value never read", q)
		}
	}
}
