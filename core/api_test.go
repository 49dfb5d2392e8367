package core

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// stateSummary is what bad requests must leave unchanged.
type stateSummary struct {
	applied                        uint64
	devices, tasks, presets, files int
	tags                           int
}

func summarize(t *testing.T, n *testNode) stateSummary {
	t.Helper()
	ds, _, err := n.fsm.Devices(DeviceFilter{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, _ := n.fsm.Tasks(TaskFilter{}, "", 0)
	ps, _ := n.fsm.Presets()
	fs, _ := n.fsm.Files()
	s := stateSummary{applied: n.fsm.AppliedIndex(), devices: len(ds), tasks: len(ts), presets: len(ps), files: len(fs)}
	for _, d := range ds {
		s.tags += len(d.Tags)
	}
	return s
}

func TestAPIBadInput(t *testing.T) {
	nodes := newCluster(t, 1, func(c *Config) {
		c.MaxBodyBytes = 4 << 10
		c.MaxFileBytes = 1 << 10
	})
	n := nodes[0]
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("dev1", "e1", "A.B", "1")})
	mustApplyNode(t, n, Command{Op: OpPutPreset, Preset: &fleet.Preset{Name: "keep", Provisions: [][]any{{"refresh", "A."}}}})
	before := summarize(t, n)
	big := `{"name": "getParameterValues", "parameterNames": ["` + strings.Repeat("A", 8<<10) + `"]}`

	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		want                     int
	}{
		{"task bad json", "POST", "/devices/dev1/tasks", `{"name": `, nil, 400},
		{"task unknown kind", "POST", "/devices/dev1/tasks", `{"name": "explode"}`, nil, 400},
		{"task unknown field", "POST", "/devices/dev1/tasks", `{"name": "reboot", "bogus": 1}`, nil, 400},
		{"task missing args", "POST", "/devices/dev1/tasks", `{"name": "getParameterValues"}`, nil, 400},
		{"task unknown device", "POST", "/devices/nope/tasks", `{"name": "reboot"}`, nil, 404},
		{"task oversized", "POST", "/devices/dev1/tasks", big, nil, 413},
		{"task download unknown file", "POST", "/devices/dev1/tasks", `{"name": "download", "fileType": "1 Firmware Upgrade Image", "fileName": "nosuch.bin"}`, nil, 400},
		{"filter task download unknown file", "POST", "/tasks", `{"filter": {"edge": "e1"}, "task": {"name": "download", "fileType": "1 Firmware Upgrade Image", "fileName": "nosuch.bin"}}`, nil, 400},
		{"filter task empty filter", "POST", "/tasks", `{"filter": {}, "task": {"name": "reboot"}}`, nil, 400},
		{"filter task bad json", "POST", "/tasks", `[1,2`, nil, 400},
		{"filter task bad kind", "POST", "/tasks", `{"filter": {"edge": "e1"}, "task": {"name": "nope"}}`, nil, 400},
		{"filter task bad date", "POST", "/tasks", `{"filter": {"lastInformAfter": "yesterday"}, "task": {"name": "reboot"}}`, nil, 400},
		{"get unknown task", "GET", "/tasks/01HZZZZZZZZZZZZZZZZZZZZZZZ", "", nil, 404},
		{"wait bad duration", "GET", "/tasks/x?wait=forever", "", nil, 400},
		{"cancel unknown task", "DELETE", "/tasks/01HZZZZZZZZZZZZZZZZZZZZZZZ", "", nil, 404},
		{"unknown device", "GET", "/devices/nope", "", nil, 404},
		{"unknown device params", "GET", "/devices/nope/params", "", nil, 404},
		{"unknown device tasks", "GET", "/devices/nope/tasks", "", nil, 404},
		{"put device bad json", "PUT", "/devices/dev2", `{"oui": 5}`, nil, 400},
		{"put device unknown field", "PUT", "/devices/dev2", `{"colour": "red"}`, nil, 400},
		{"put device bad id", "PUT", "/devices/%01x", `{}`, nil, 400},
		{"delete unknown device", "DELETE", "/devices/nope", "", nil, 404},
		{"tag unknown device", "POST", "/devices/nope/tags/x", "", nil, 404},
		{"devices bad limit", "GET", "/devices?limit=0", "", nil, 400},
		{"devices bad date", "GET", "/devices?lastInformAfter=soon", "", nil, 400},
		{"devices bad consistent", "GET", "/devices?consistent=maybe", "", nil, 400},
		{"preset bad json", "PUT", "/presets/p1", `{"weight": "heavy"}`, nil, 400},
		{"preset no provisions", "PUT", "/presets/p1", `{"weight": 0}`, nil, 400},
		{"preset provisions not arrays", "PUT", "/presets/p1", `{"provisions": ["refresh"]}`, nil, 400},
		{"preset provision unnamed", "PUT", "/presets/p1", `{"provisions": [[1, "A."]]}`, nil, 400},
		{"preset provision object arg", "PUT", "/presets/p1", `{"provisions": [["value", {"a": 1}]]}`, nil, 400},
		{"preset id mismatch", "PUT", "/presets/p1", `{"_id": "p2", "provisions": [["refresh", "A."]]}`, nil, 400},
		{"preset oversized", "PUT", "/presets/p1", `{"provisions": [["refresh", "` + strings.Repeat("A", 8<<10) + `"]]}`, nil, 413},
		{"get unknown preset", "GET", "/presets/none", "", nil, 404},
		{"delete unknown preset", "DELETE", "/presets/none", "", nil, 404},
		{"file without type", "PUT", "/files/f1", "data", nil, 400},
		{"file too big", "PUT", "/files/f1", strings.Repeat("x", 2<<10), map[string]string{"fileType": "1 Firmware Upgrade Image"}, 413},
		{"unknown file", "GET", "/files/none", "", nil, 404},
		{"unknown file content", "GET", "/files/none/content", "", nil, 404},
		{"delete unknown file", "DELETE", "/files/none", "", nil, 404},
		{"join bad json", "POST", "/cluster/join", `{"id":`, nil, 400},
		{"join bad addr", "POST", "/cluster/join", `{"id": "n9", "raftAddr": "nowhere"}`, nil, 400},
		{"remove without id", "POST", "/cluster/remove", `{}`, nil, 400},
		{"remove unknown", "POST", "/cluster/remove", `{"id": "ghost"}`, nil, 404},
		{"unknown route", "GET", "/nothing", "", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, api(n, tt.path), strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error string `json:"error"`
			}
			decodeErr := decodeJSONBody(resp, &e)
			if resp.StatusCode != tt.want || decodeErr != nil || e.Error == "" {
				t.Fatalf("%s %s: %d %q (%v), want %d with an error message", tt.method, tt.path, resp.StatusCode, e.Error, decodeErr, tt.want)
			}
		})
	}
	// Nothing changed in the replicated state (bad requests never reach the
	// log, or reach it and fail cleanly).
	after := summarize(t, n)
	after.applied, before.applied = 0, 0
	if after != before {
		t.Fatalf("bad input changed state: before %+v after %+v", before, after)
	}
	if p, err := n.fsm.Preset("keep"); err != nil || len(p.Provisions) != 1 {
		t.Fatalf("preset changed: %+v %v", p, err)
	}
}

func TestAPIHappyPaths(t *testing.T) {
	nodes := newCluster(t, 1, nil)
	n := nodes[0]
	for i := range 5 {
		dd := delta("dev"+string(rune('0'+i)), "e1", "A.B", "1")
		if i >= 3 {
			dd.Edge = "e2"
		}
		mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: dd})
	}
	var put Device
	if code := do(t, "PUT", api(n, "/devices/pre1"), `{"oui": "00AA11", "serialNumber": "S1", "edge": "e1"}`, &put); code != 200 || put.ID != "pre1" || put.Registered.IsZero() {
		t.Fatalf("put device: %d %+v", code, put)
	}
	if code := do(t, "DELETE", api(n, "/devices/pre1"), nil, nil); code != 204 {
		t.Fatalf("delete put device: %d", code)
	}
	// Pages are bare arrays; the next page's cursor is in X-Next-Cursor.
	page := func(url string) ([]Device, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ds []Device
		if err := json.NewDecoder(resp.Body).Decode(&ds); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return ds, resp.Header.Get("X-Next-Cursor")
	}
	if ds, next := page(api(n, "/devices?edge=e1&limit=2")); len(ds) != 2 || next != "dev1" {
		t.Fatalf("page 1: %+v next %q", ds, next)
	}
	if ds, next := page(api(n, "/devices?edge=e1&limit=2&cursor=dev1")); len(ds) != 1 || next != "" {
		t.Fatalf("page 2: %+v next %q", ds, next)
	}
	var d Device
	if code := do(t, "GET", api(n, "/devices/dev0"), nil, &d); code != 200 || d.Parameters["A.B"].Value != "1" {
		t.Fatalf("show device: %d %+v", code, d)
	}
	// Idempotency-Key: a retried create returns the first task.
	create := func() fleet.Task {
		req, _ := http.NewRequest("POST", api(n, "/devices/dev0/tasks"), strings.NewReader(`{"name": "reboot"}`))
		req.Header.Set("Idempotency-Key", "abc")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tk fleet.Task
		decodeJSONBody(resp, &tk)
		return tk
	}
	a, b := create(), create()
	if a.ID == "" || a.ID != b.ID {
		t.Fatalf("idempotent create: %s vs %s", a.ID, b.ID)
	}
	if code := do(t, "DELETE", api(n, "/tasks/"+a.ID), nil, nil); code != 204 {
		t.Fatalf("cancel: %d", code)
	}
	if code := do(t, "PUT", api(n, "/presets/p1"), `{"_id": "p1", "weight": 2, "provisions": [["value", "A.B", 5]]}`, nil); code != 200 {
		t.Fatalf("put preset: %d", code)
	}
	var ps []fleet.Preset
	// The cluster's defaults (bootstrap, inform), and p1.
	if code := do(t, "GET", api(n, "/presets"), nil, &ps); code != 200 || len(ps) != 3 || ps[2].Name != "p1" || ps[2].Weight != 2 {
		t.Fatalf("list presets: %d %+v", code, ps)
	}
	if code := do(t, "DELETE", api(n, "/presets/p1"), nil, nil); code != 204 {
		t.Fatalf("delete preset: %d", code)
	}
	mustApplyNode(t, n, Command{Op: OpEdgeSeen, Name: "e1", Time: time.Now().UTC()})
	var es []map[string]any
	if code := do(t, "GET", api(n, "/edges"), nil, &es); code != 200 || len(es) != 1 || es[0]["status"] != "online" {
		t.Fatalf("edges: %d %+v", code, es)
	}
	if code := do(t, "DELETE", api(n, "/devices/dev4"), nil, nil); code != 204 {
		t.Fatalf("delete device: %d", code)
	}
}

func TestBatcherGroupsConcurrentWriters(t *testing.T) {
	nodes := newCluster(t, 1, func(c *Config) { c.MaxBatchDelay = 20 * time.Millisecond })
	n := nodes[0]
	start := n.fsm.AppliedIndex()
	const writers = 200
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			r := n.Apply(context.Background(), Command{Op: OpDeviceDelta, Delta: delta("dev"+itoa(i), "e1")})
			errs <- r.Err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	entries := n.fsm.AppliedIndex() - start
	if entries >= writers/2 {
		t.Fatalf("%d writers took %d log entries: not batched", writers, entries)
	}
	ds, _, _ := n.fsm.Devices(DeviceFilter{}, "", 0)
	if len(ds) != writers {
		t.Fatalf("%d devices, want %d", len(ds), writers)
	}
	// Each writer gets its own result: a bad command fails alone.
	bad := n.Apply(context.Background(), Command{Op: OpTag, Name: "nope", Tag: "x"})
	if bad.Err == nil {
		t.Fatal("tag of unknown device succeeded")
	}
}

func itoa(i int) string { return ulidSuffix(i) }

// TestDeviceListTotal: the unfiltered device list carries X-Total-Count
// (as the edge's does) beside the next page's cursor; a filtered list,
// whose count would need a full scan, carries none.
func TestDeviceListTotal(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	for _, id := range []string{"001122-A-1", "001122-A-2", "001122-B-3"} {
		mustApplyNode(t, n, Command{Op: OpPutDevice, Device: &Device{ID: id}})
	}
	code, h, body := httpDo(t, "GET", api(n, "/devices?limit=2"), "", nil)
	if code != 200 || h.Get("X-Total-Count") != "3" || h.Get("X-Next-Cursor") == "" {
		t.Fatalf("unfiltered: %d total %q next %q %s", code, h.Get("X-Total-Count"), h.Get("X-Next-Cursor"), body)
	}
	code, h, body = httpDo(t, "GET", api(n, "/devices?id=001122-A"), "", nil)
	if code != 200 || h.Get("X-Total-Count") != "" || !strings.Contains(body, "001122-A-2") || strings.Contains(body, "001122-B-3") {
		t.Fatalf("filtered: %d total %q %s", code, h.Get("X-Total-Count"), body)
	}
}
