package core

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// GenieACS's API reference examples, as devices in the core's FSM: the
// device IDs and parameters of docs/api-reference.rst.
const (
	nbiDev1 = "202BC1-BM632w-0000000"
	nbiDev2 = "00236a-96318REF-SR360NA0A4%2D0003196"
	nbiMAC  = "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.MACAddress"
	nbiPSK  = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.PreSharedKey"
)

// nbiURL is a GenieACS path on n's API.
func nbiURL(n *testNode, path string) string { return "http://" + n.APIAddr() + path }

// nbiQuery is /devices/?query=<q>&<more>.
func nbiQuery(collection, q string, more ...string) string {
	s := "/" + collection + "/?query=" + url.QueryEscape(q)
	for _, m := range more {
		s += "&" + m
	}
	return s
}

// nbiDo sends a request (the admin token rides along, see TestMain) and
// returns the status, headers and body.
func nbiDo(t *testing.T, method, u, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, b
}

// nbiSetup loads two devices of the API reference, one tagged "test" with
// an older inform, and a faulted task on the first.
func nbiSetup(t *testing.T) (*testNode, string) {
	t.Helper()
	n := newCluster(t, 1, nil)[0]
	d1 := &fleet.DeviceDelta{Device: nbiDev1, Edge: "e1", OUI: "202BC1", ProductClass: "BM632w", SerialNumber: "0000000",
		Manufacturer: "Broadcom", LastInform: t0, Events: []string{"1 BOOT"}, Parameters: []fleet.ParameterValue{
			{Name: nbiMAC, Value: "20:2B:C1:E0:06:65", Type: "xsd:string"},
			{Name: "InternetGatewayDevice.DeviceInfo.ModelName", Value: "BM632w", Type: "xsd:string"},
			{Name: "InternetGatewayDevice.DeviceInfo.Manufacturer", Value: "Broadcom", Type: "xsd:string"},
			{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "3600", Type: "xsd:unsignedInt"},
			{Name: nbiPSK, Value: "hello world", Type: "xsd:string"},
		}}
	d2 := &fleet.DeviceDelta{Device: nbiDev2, Edge: "e1", OUI: "00236a", ProductClass: "96318REF", SerialNumber: "SR360NA0A4-0003196",
		LastInform: t0.Add(-30 * 24 * time.Hour), Events: []string{"2 PERIODIC"}, Parameters: []fleet.ParameterValue{
			{Name: nbiMAC, Value: "00:23:6A:00:00:01", Type: "xsd:string"},
			{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "60", Type: "xsd:unsignedInt"},
		}}
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: d1})
	mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: d2})
	mustApplyNode(t, n, Command{Op: OpTag, Name: nbiDev2, Tag: "test"})
	tk := &fleet.Task{ID: "01J00000000000000000000001", Device: nbiDev1, Name: fleet.TaskReboot, Status: fleet.StatusPending, Timestamp: t0}
	mustApplyNode(t, n, Command{Op: OpCreateTasks, Time: t0, Tasks: []*fleet.Task{tk}})
	mustApplyNode(t, n, Command{Op: OpTaskResult, TaskID: tk.ID, Status: fleet.StatusFault, Time: t0.Add(time.Second),
		Fault: &fleet.TaskFault{Code: "9002", Message: "Internal error"}})
	return n, tk.ID
}

// nbiIDs reads the _id of each document of a JSON array.
func nbiIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var docs []map[string]any
	if err := json.Unmarshal(body, &docs); err != nil {
		t.Fatalf("not a JSON array of documents: %v: %s", err, body)
	}
	ids := []string{}
	for _, d := range docs {
		id, _ := d["_id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// TestNBIGenieACSExamples runs the API reference's curl examples against a
// core: status codes, headers and document shapes.
func TestNBIGenieACSExamples(t *testing.T) {
	n, faulted := nbiSetup(t)
	faultID := nbiDev1 + ":task_" + faulted

	type check func(t *testing.T, h http.Header, body []byte)
	ids := func(want ...string) check {
		return func(t *testing.T, h http.Header, body []byte) {
			if got := nbiIDs(t, body); !slices.Equal(got, want) {
				t.Errorf("ids %q, want %q", got, want)
			}
			if h.Get("total") != h.Get("X-Total-Count") || h.Get("total") == "" {
				t.Errorf("total %q, X-Total-Count %q", h.Get("total"), h.Get("X-Total-Count"))
			}
		}
	}
	total := func(want string) check {
		return func(t *testing.T, h http.Header, body []byte) {
			if h.Get("total") != want || h.Get("X-Total-Count") != want {
				t.Errorf("total %q / %q, want %s", h.Get("total"), h.Get("X-Total-Count"), want)
			}
		}
	}
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     int
		check                    []check
	}{
		{"find a device by its ID", "GET", nbiQuery("devices", `{"_id": "`+nbiDev1+`"}`), "", nil, 200, []check{ids(nbiDev1), total("1"),
			func(t *testing.T, _ http.Header, body []byte) {
				var docs []map[string]any
				_ = json.Unmarshal(body, &docs)
				d := docs[0]
				id, _ := d["_deviceId"].(map[string]any)
				if id["_OUI"] != "202BC1" || id["_ProductClass"] != "BM632w" || id["_SerialNumber"] != "0000000" || id["_Manufacturer"] != "Broadcom" {
					t.Errorf("_deviceId %v", d["_deviceId"])
				}
				if d["_lastInform"] != "2026-01-02T03:04:05.000Z" || d["_registered"] == nil {
					t.Errorf("times: %v %v", d["_lastInform"], d["_registered"])
				}
				up := d["InternetGatewayDevice"].(map[string]any)["DeviceInfo"].(map[string]any)["UpTime"].(map[string]any)
				if up["_value"] != 3600.0 || up["_type"] != "xsd:unsignedInt" || up["_object"] != false || up["_timestamp"] == nil {
					t.Errorf("UpTime %v", up)
				}
			}}},
		{"without the trailing slash", "GET", "/devices?query=" + url.QueryEscape(`{"_id": "`+nbiDev1+`"}`), "", nil, 200, []check{ids(nbiDev1)}},
		{"find a device by its MAC address", "GET", nbiQuery("devices", `{"`+nbiMAC+`": "20:2B:C1:E0:06:65"}`), "", nil, 200, []check{ids(nbiDev1)}},
		{"by parameter ._value", "GET", nbiQuery("devices", `{"`+nbiMAC+`._value": "00:23:6A:00:00:01"}`), "", nil, 200, []check{ids(nbiDev2)}},
		{"by tag", "GET", nbiQuery("devices", `{"_tags": "test"}`), "", nil, 200, []check{ids(nbiDev2)}},
		{"assign a tag", "POST", "/devices/" + nbiDev1 + "/tags/testing", "", nil, 200, nil},
		{"by the new tag", "GET", nbiQuery("devices", `{"_tags": {"$in": ["testing", "other"]}}`), "", nil, 200, []check{ids(nbiDev1)}},
		{"remove the tag", "DELETE", "/devices/" + nbiDev1 + "/tags/testing", "", nil, 200, nil},
		{"the tag is gone", "GET", nbiQuery("devices", `{"_tags": "testing"}`), "", nil, 200, []check{ids()}},
		{"no inform in the last 7 days", "GET", nbiQuery("devices", `{"_lastInform": {"$lt": "2025-12-26 13:16:23 +0000"}}`), "", nil, 200, []check{ids(nbiDev2)}},
		{"_lastInform range", "GET", nbiQuery("devices", `{"_lastInform": {"$gte": "2026-01-01", "$lt": "2026-01-03"}}`), "", nil, 200, []check{ids(nbiDev1)}},
		{"numeric comparison", "GET", nbiQuery("devices", `{"InternetGatewayDevice.DeviceInfo.UpTime": {"$gt": 100}}`), "", nil, 200, []check{ids(nbiDev1)}},
		{"every device, skip and limit", "GET", nbiQuery("devices", `{}`, "skip=1", "limit=1"), "", nil, 200, []check{ids(nbiDev1), total("2")}},
		{"no query", "GET", "/devices/", "", nil, 200, []check{ids(nbiDev2, nbiDev1), total("2")}},
		{"HEAD: the total only", "HEAD", nbiQuery("devices", `{"_tags": "test"}`), "", nil, 200, []check{total("1"),
			func(t *testing.T, _ http.Header, body []byte) {
				if len(body) != 0 {
					t.Errorf("HEAD body %q", body)
				}
			}}},
		{"projection", "GET", "/devices?query=" + url.QueryEscape(`{"_id": "`+nbiDev1+`"}`) +
			"&projection=InternetGatewayDevice.DeviceInfo.ModelName,InternetGatewayDevice.DeviceInfo.Manufacturer", "", nil, 200, []check{
			func(t *testing.T, _ http.Header, body []byte) {
				var docs []map[string]any
				_ = json.Unmarshal(body, &docs)
				if len(docs) != 1 {
					t.Fatalf("%s", body)
				}
				d := docs[0]
				info := d["InternetGatewayDevice"].(map[string]any)["DeviceInfo"].(map[string]any)
				if len(d) != 2 || len(info) != 2 || info["ModelName"].(map[string]any)["_value"] != "BM632w" || info["UpTime"] != nil {
					t.Errorf("projected %s", body)
				}
			}}},
		{"secret values hidden", "GET", nbiQuery("devices", `{"_id": "`+nbiDev1+`"}`, "projection="+nbiPSK), "", nil, 200, []check{
			func(t *testing.T, _ http.Header, body []byte) {
				if strings.Contains(string(body), "hello world") || !strings.Contains(string(body), `"PreSharedKey"`) {
					t.Errorf("secret shown (or its node gone): %s", body)
				}
			}}},
		{"pending tasks of a device", "GET", nbiQuery("tasks", `{"device": "`+nbiDev1+`"}`), "", nil, 200, []check{ids(faulted),
			func(t *testing.T, _ http.Header, body []byte) {
				var ts []fleet.Task
				if json.Unmarshal(body, &ts) != nil || ts[0].Name != "reboot" || ts[0].Device != nbiDev1 || ts[0].Timestamp.IsZero() {
					t.Errorf("task shape %s", body)
				}
			}}},
		{"tasks by name and time, projected", "GET", nbiQuery("tasks", `{"name": {"$in": ["reboot"]}, "timestamp": {"$gte": "2026-01-01"}}`, "projection=name"), "", nil, 200, []check{
			func(t *testing.T, _ http.Header, body []byte) {
				var ts []map[string]any
				if json.Unmarshal(body, &ts) != nil || len(ts) != 1 || len(ts[0]) != 2 || ts[0]["name"] != "reboot" {
					t.Errorf("projected tasks %s", body)
				}
			}}},
		{"faults", "GET", nbiQuery("faults", `{"device": "`+nbiDev1+`"}`), "", nil, 200, []check{ids(faultID),
			func(t *testing.T, _ http.Header, body []byte) {
				var fs []map[string]any
				_ = json.Unmarshal(body, &fs)
				f := fs[0]
				if f["channel"] != "task_"+faulted || f["code"] != "cwmp.9002" || f["message"] != "Internal error" || f["retries"] != 0.0 ||
					f["device"] != nbiDev1 || f["timestamp"] != "2026-01-02T03:04:06.000Z" {
					t.Errorf("fault shape %v", f)
				}
			}}},
		{"fault by _id", "GET", nbiQuery("faults", `{"_id": "`+faultID+`"}`), "", nil, 200, []check{ids(faultID)}},
		{"put a preset", "PUT", "/presets/inform", `{"weight": 0, "precondition": "{\"_tags\": \"test\"}", "provisions": [["value", "InternetGatewayDevice.ManagementServer.PeriodicInformInterval", 300]]}`, nil, 200, nil},
		{"put a legacy preset", "PUT", "/presets/legacy", `{"weight": 0, "configurations": [{"type": "value", "name": "A.B", "value": "1"}]}`, nil, 400, nil},
		{"delete the preset", "DELETE", "/presets/inform", "", nil, 200, nil},
		{"delete an unknown preset", "DELETE", "/presets/inform", "", nil, 404, nil},
		{"upload a firmware image", "PUT", "/files/new_firmware_v1.0.bin", "firmware bytes",
			map[string]string{"fileType": "1 Firmware Upgrade Image", "oui": "123456", "productClass": "ABC", "version": "1.0"}, 201, []check{
				func(t *testing.T, _ http.Header, body []byte) {
					var m fleet.FileMeta
					if json.Unmarshal(body, &m) != nil || m.OUI != "123456" || m.ProductClass != "ABC" || m.Version != "1.0" || m.Size != 14 {
						t.Errorf("file %s", body)
					}
				}}},
		{"delete the file", "DELETE", "/files/new_firmware_v1.0.bin", "", nil, 200, nil},
		{"queue a task", "POST", "/devices/" + url.PathEscape(nbiDev2) + "/tasks", `{"name": "refreshObject", "objectName": ""}`, nil, 202, []check{
			func(t *testing.T, _ http.Header, body []byte) {
				var tk fleet.Task
				if json.Unmarshal(body, &tk) != nil || tk.ID == "" || tk.Status != fleet.StatusPending {
					t.Errorf("queued %s", body)
				}
			}}},
		{"task for an unknown device", "POST", "/devices/nobody/tasks", `{"name": "reboot"}`, nil, 404, nil},
		{"task without a body", "POST", "/devices/" + url.PathEscape(nbiDev2) + "/tasks", "", nil, 400, nil},
		{"bare connection request", "POST", "/devices/" + url.PathEscape(nbiDev2) + "/tasks?connection_request", "", nil, 501, nil},
		{"provision", "PUT", "/provisions/mynewprovision", `log("Provision started at " + now);`, nil, 200, []check{
			func(t *testing.T, _ http.Header, body []byte) {
				var p fleet.Provision
				if json.Unmarshal(body, &p) != nil || p.Name != "mynewprovision" || p.Script != `log("Provision started at " + now);` {
					t.Errorf("provision %s", body)
				}
			}}},
		{"provision with a syntax error", "PUT", "/provisions/broken", "declare(\"A\", {value: 1}", nil, 400, nil},
		{"delete a provision", "DELETE", "/provisions/mynewprovision", "", nil, 200, nil},
		{"delete an unknown provision", "DELETE", "/provisions/mynewprovision", "", nil, 404, nil},
		{"delete an unknown fault", "DELETE", "/faults/" + nbiDev1 + ":default", "", nil, 404, nil},
		{"delete an unknown task fault", "DELETE", "/faults/" + nbiDev1 + ":task_01J00000000000000000000009", "", nil, 404, nil},
		{"delete the fault (and its task, as GenieACS)", "DELETE", "/faults/" + url.PathEscape(faultID), "", nil, 200, nil},
		{"the fault is gone", "GET", nbiQuery("faults", `{}`), "", nil, 200, []check{ids(), total("0")}},
		{"its task too", "GET", nbiQuery("tasks", `{"_id": "`+faulted+`"}`), "", nil, 200, []check{ids()}},
		{"delete an unknown task", "DELETE", "/tasks/01J00000000000000000000009", "", nil, 404, nil},
		{"delete a device", "DELETE", "/devices/" + url.PathEscape(nbiDev2), "", nil, 200, nil},
		{"delete it again", "DELETE", "/devices/" + url.PathEscape(nbiDev2), "", nil, 404, nil},
		{"method not allowed", "PATCH", "/presets/x", "", nil, 405, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := nbiDo(t, tt.method, nbiURL(n, tt.path), tt.body, tt.hdr)
			if code != tt.want {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, code, body, tt.want)
			}
			if code >= 400 {
				var e struct{ Error string }
				if json.Unmarshal(body, &e) != nil || e.Error == "" {
					t.Errorf("error answer without a JSON error: %s", body)
				}
			}
			for _, c := range tt.check {
				c(t, h, body)
			}
		})
	}
}

// TestNBIBadInput: what GenieACS would run but edgeacs refuses, and
// malformed input, is a 400 naming the problem; nothing changes.
func TestNBIBadInput(t *testing.T) {
	n, _ := nbiSetup(t)
	before := summarize(t, n)
	for _, tc := range []struct{ path, want string }{
		{nbiQuery("devices", `{"$where": "this.x == 1"}`), "$where"},
		{nbiQuery("devices", `{"_id": {"$elemMatch": {}}}`), "$elemMatch"},
		{nbiQuery("devices", `{"_id": `), "JSON"},
		{nbiQuery("devices", `{"_id": "a", "_id": "b"}`), "duplicate"},
		{nbiQuery("devices", `["_id"]`), "object"},
		{nbiQuery("devices", `{}`, "projection=a..b"), "projection"},
		{nbiQuery("devices", `{}`, "projection="+url.QueryEscape("a.$b")), "projection"},
		{nbiQuery("devices", `{"`+nbiPSK+`": "hello world"}`), "secret"},
		{nbiQuery("devices", `{"`+nbiPSK+`._value": {"$regex": "^h"}}`), "secret"},
		{nbiQuery("devices", `{}`, "sort="+url.QueryEscape(`{"_lastInform": -1}`)), "sort"},
		{nbiQuery("devices", `{}`, "limit=-1"), "limit"},
		{nbiQuery("devices", `{}`, "skip=x"), "skip"},
		{nbiQuery("tasks", `{"_tags": "x"}`), "_tags"},
		{nbiQuery("tasks", `{"parameterNames": "x"}`), "fields are"},
		{nbiQuery("faults", `{"code": {"$where": 1}}`), "$where"},
		{"/devices/" + url.PathEscape(nbiDev1) + "/tasks?connection_request=maybe", "connection_request"},
	} {
		method, body := "GET", ""
		if strings.Contains(tc.path, "/tasks?") {
			method, body = "POST", `{"name": "reboot"}`
		}
		code, _, b := nbiDo(t, method, nbiURL(n, tc.path), body, nil)
		var e struct{ Error string }
		if code != 400 || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.path, code, b, tc.want)
		}
	}
	after := summarize(t, n)
	after.applied, before.applied = 0, 0
	if after != before {
		t.Fatalf("bad input changed state: %+v → %+v", before, after)
	}
}

// TestNBIScanLimit: a query that would examine more devices than the bound
// is refused, one that pins _id is not.
func TestNBIScanLimit(t *testing.T) {
	n, _ := nbiSetup(t)
	defer func(v int) { nbiScanLimit = v }(nbiScanLimit)
	nbiScanLimit = 1
	if code, _, b := nbiDo(t, "GET", nbiURL(n, nbiQuery("devices", `{"_tags": "test"}`)), "", nil); code != 400 || !strings.Contains(string(b), "more than 1 devices") {
		t.Errorf("scan over the bound: %d %s", code, b)
	}
	if code, _, b := nbiDo(t, "GET", nbiURL(n, nbiQuery("devices", `{"_id": {"$in": ["`+nbiDev1+`", "`+nbiDev2+`"]}}`)), "", nil); code != 200 || len(nbiIDs(t, b)) != 2 {
		t.Errorf("pinned _id: %d %s", code, b)
	}
}

// TestNBITaskStatusCodes: POST /devices/{id}/tasks?connection_request
// answers as GenieACS: 200 when the task ran, 202 when it faulted or is
// still queued at the timeout. An edge's results are applied as the sync
// server applies them.
func TestNBITaskStatusCodes(t *testing.T) {
	n, _ := nbiSetup(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	// The "edge": ends each new pending task of nbiDev1 as its name says.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			ch := n.fsm.Watch()
			ts, _, _ := n.fsm.Tasks(TaskFilter{Device: nbiDev1, Status: fleet.StatusPending}, "", 0)
			for _, tk := range ts {
				cmd := Command{Op: OpTaskResult, TaskID: tk.ID, Status: fleet.StatusDone, Time: time.Now().UTC(), Result: &fleet.TaskResult{}}
				if tk.Name == fleet.TaskFactoryReset {
					cmd.Status, cmd.Result, cmd.Fault = fleet.StatusFault, nil, &fleet.TaskFault{Code: "9001", Message: "Request denied"}
				}
				n.Apply(ctx, cmd)
			}
			select {
			case <-ch:
			case <-ctx.Done():
			}
		}
	}()
	post := func(dev, query, body string) (int, fleet.Task) {
		t.Helper()
		code, _, b := nbiDo(t, "POST", nbiURL(n, "/devices/"+url.PathEscape(dev)+"/tasks"+query), body, nil)
		var tk fleet.Task
		if err := json.Unmarshal(b, &tk); err != nil {
			t.Fatalf("%s: %d %s", query, code, b)
		}
		return code, tk
	}
	if code, tk := post(nbiDev1, "?connection_request", `{"name": "reboot"}`); code != 200 || tk.Status != fleet.StatusDone {
		t.Errorf("executed: %d %+v", code, tk)
	}
	if code, tk := post(nbiDev1, "?timeout=3000&connection_request", `{"name": "factoryReset"}`); code != 202 || tk.Status != fleet.StatusFault {
		t.Errorf("faulted: %d %+v", code, tk)
	}
	// nbiDev2 has no one to run its tasks.
	if code, tk := post(nbiDev2, "?timeout=100&connection_request", `{"name": "reboot"}`); code != 202 || tk.Status != fleet.StatusPending {
		t.Errorf("queued at the timeout: %d %+v", code, tk)
	}
	if code, tk := post(nbiDev2, "", `{"name": "getParameterValues", "parameterNames": ["InternetGatewayDevice.Time.NTPServer1"]}`); code != 202 || tk.Status != fleet.StatusPending {
		t.Errorf("queued: %d %+v", code, tk)
	}
}
