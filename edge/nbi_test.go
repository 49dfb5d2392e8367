package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

const (
	nbiPSK = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.PreSharedKey"
	nbiIP  = "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ExternalIPAddress"
	nbiDev = "00AABB-Router%20X-Z1"
)

// nbiCPE is the device behind a connection request: it runs a session of
// devID in another goroutine, answering each RPC with respond.
type nbiCPE struct {
	t       *testing.T
	c       *Cache
	wg      sync.WaitGroup
	mu      sync.Mutex
	fail    error
	respond func(cwmp.Message) cwmp.Message
}

func (p *nbiCPE) set(fail error, respond func(cwmp.Message) cwmp.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.respond = fail, respond
}

func (p *nbiCPE) ConnectionRequest(ctx context.Context, id string) error {
	p.mu.Lock()
	fail, respond := p.fail, p.respond
	p.mu.Unlock()
	if fail != nil {
		return fail
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w, err := p.c.BeginSession(tr098("SN1", cwmp.EventConnectionRequest), InformMeta{Now: time.Now()})
		if err != nil {
			p.t.Errorf("CPE: %v", err)
			return
		}
		for req := w.Next(); req != nil; req = w.Next() {
			resp := respond(req)
			w.Answer(&cwmp.Answer{Request: req, Response: resp,
				Mismatch: resp.Method() != cwmp.MethodFault && resp.Method() != req.Method()+"Response"})
		}
		if err := w.End(true); err != nil {
			p.t.Errorf("CPE End: %v", err)
		}
	}()
	return nil
}

// nbiOK answers every RPC as the CPE should.
func nbiOK(req cwmp.Message) cwmp.Message {
	switch req.(type) {
	case *cwmp.Reboot:
		return &cwmp.RebootResponse{}
	case *cwmp.FactoryReset:
		return &cwmp.FactoryResetResponse{}
	case *cwmp.SetParameterValues:
		return &cwmp.SetParameterValuesResponse{}
	}
	return &cwmp.GetRPCMethodsResponse{MethodList: []string{"Inform"}}
}

type nbiEnv struct {
	c       *Cache
	cpe     *nbiCPE
	srv     *httptest.Server
	faulted string // a task of devID that ended in fault 9002
	cpeFlt  string // the ID of a fault devID reported on its own
}

// newNBIEnv holds devID (a TR-098 device with a Wi-Fi key, a numeric
// uptime, a faulted task and a failed autonomous transfer) and nbiDev (a
// TR-181 device that last informed 30 days earlier).
func newNBIEnv(t *testing.T) *nbiEnv {
	c := openTestCache(t, "")
	inf := tr098("SN1", cwmp.EventBoot)
	inf.ParameterList = append(inf.ParameterList, pv(nbiPSK, "hello world"),
		cwmp.ParameterValue{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "3600", Type: cwmp.TypeUnsignedInt})
	mustBegin(t, c, inf, t0).End(true)
	mustBegin(t, c, tr181("Z1"), t0.Add(-30*24*time.Hour)).End(true)
	tk := addTask(t, c, `{"name": "factoryReset"}`)
	w := mustBegin(t, c, tr098("SN1"), t0.Add(time.Minute))
	if err := w.CPERequest(&cwmp.AutonomousTransferComplete{FaultStruct: cwmp.FaultStruct{Code: 9010, String: "download failed"}}); err != nil {
		t.Fatal(err)
	}
	runCPE(t, w, func(cwmp.Message) cwmp.Message { return cwmp.NewFault(9002, "internal error") }, 1)
	fs, err := c.Faults(devID)
	if err != nil || len(fs) != 2 {
		t.Fatalf("faults %+v %v", fs, err)
	}
	e := &nbiEnv{c: c, faulted: tk.ID}
	for _, f := range fs {
		if f.Task == "" {
			e.cpeFlt = devID + ":" + f.ID
		}
	}
	files, err := OpenFileStore(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	e.cpe = &nbiCPE{t: t, c: c, respond: nbiOK}
	e.srv = serveAPI(t, APIConfig{Cache: c, Files: files, CR: e.cpe, Logger: quietLog, CRTimeout: time.Second})
	t.Cleanup(func() {
		e.srv.Close()
		e.cpe.wg.Wait()
	})
	return e
}

func (e *nbiEnv) do(t *testing.T, method, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func nbiQuery(collection, q string, more ...string) string {
	s := "/" + collection + "/?query=" + url.QueryEscape(q)
	for _, m := range more {
		s += "&" + m
	}
	return s
}

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

// TestNBIGenieACSExamples runs the GenieACS API reference's examples
// against an edge: status codes, headers and document shapes.
func TestNBIGenieACSExamples(t *testing.T) {
	e := newNBIEnv(t)
	taskFault := devID + ":task_" + e.faulted
	type check func(t *testing.T, h http.Header, body []byte)
	ids := func(want ...string) check {
		return func(t *testing.T, h http.Header, body []byte) {
			if got := nbiIDs(t, body); !slices.Equal(got, want) {
				t.Errorf("ids %q, want %q", got, want)
			}
			if h.Get("total") == "" || h.Get("total") != h.Get("X-Total-Count") {
				t.Errorf("total %q, X-Total-Count %q", h.Get("total"), h.Get("X-Total-Count"))
			}
		}
	}
	total := func(want string) check {
		return func(t *testing.T, h http.Header, _ []byte) {
			if h.Get("total") != want || h.Get("X-Total-Count") != want {
				t.Errorf("total %q / %q, want %s", h.Get("total"), h.Get("X-Total-Count"), want)
			}
		}
	}
	doc := func(fn func(t *testing.T, d map[string]any)) check {
		return func(t *testing.T, _ http.Header, body []byte) {
			var docs []map[string]any
			if err := json.Unmarshal(body, &docs); err != nil || len(docs) != 1 {
				t.Fatalf("want one document: %v %s", err, body)
			}
			fn(t, docs[0])
		}
	}
	node := func(d map[string]any, path string) map[string]any {
		var n any = d
		for seg := range strings.SplitSeq(path, ".") {
			m, _ := n.(map[string]any)
			n = m[seg]
		}
		m, _ := n.(map[string]any)
		return m
	}
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     int
		check                    []check
	}{
		{"find a device by its ID", "GET", nbiQuery("devices", `{"_id": "`+devID+`"}`), "", nil, 200, []check{ids(devID), total("1"),
			doc(func(t *testing.T, d map[string]any) {
				id, _ := d["_deviceId"].(map[string]any)
				if id["_OUI"] != "001122" || id["_ProductClass"] != "IGD" || id["_SerialNumber"] != "SN1" || id["_Manufacturer"] != "Acme" {
					t.Errorf("_deviceId %v", d["_deviceId"])
				}
				if d["_lastInform"] != "2026-11-25T12:01:00.000Z" || d["_registered"] != "2026-11-25T12:00:00.000Z" || d["_lastBoot"] != "2026-11-25T12:00:00.000Z" {
					t.Errorf("times: %v %v %v", d["_lastInform"], d["_registered"], d["_lastBoot"])
				}
				if up := node(d, "InternetGatewayDevice.DeviceInfo.UpTime"); up["_value"] != 3600.0 || up["_type"] != "xsd:unsignedInt" || up["_object"] != false {
					t.Errorf("UpTime %v", up)
				}
				if _, ok := d["_tags"]; ok {
					t.Errorf("an edge has no tags: %v", d["_tags"])
				}
			})}},
		{"without the trailing slash", "GET", "/devices?query=" + url.QueryEscape(`{"_id": "`+devID+`"}`), "", nil, 200, []check{ids(devID)}},
		{"by parameter value", "GET", nbiQuery("devices", `{"`+nbiIP+`": "203.0.113.5"}`), "", nil, 200, []check{ids(devID)}},
		{"by parameter ._value and $regex", "GET", nbiQuery("devices", `{"Device.DeviceInfo.SoftwareVersion._value": {"$regex": "^2\\."}}`), "", nil, 200, []check{ids(nbiDev)}},
		{"by tag: an edge has none", "GET", nbiQuery("devices", `{"_tags": "test"}`), "", nil, 200, []check{ids(), total("0")}},
		{"no inform in the last 7 days", "GET", nbiQuery("devices", `{"_lastInform": {"$lt": "2026-11-18 12:00:00 +0000"}}`), "", nil, 200, []check{ids(nbiDev)}},
		{"_lastInform range", "GET", nbiQuery("devices", `{"_lastInform": {"$gte": "2026-11-25", "$lt": "2026-11-26"}}`), "", nil, 200, []check{ids(devID)}},
		{"numeric comparison", "GET", nbiQuery("devices", `{"InternetGatewayDevice.DeviceInfo.UpTime": {"$gt": 100}}`), "", nil, 200, []check{ids(devID)}},
		{"by OUI with $or", "GET", nbiQuery("devices", `{"$or": [{"_deviceId._OUI": "00AABB"}, {"_id": "nobody"}]}`), "", nil, 200, []check{ids(nbiDev)}},
		{"skip and limit", "GET", nbiQuery("devices", `{}`, "skip=1", "limit=1"), "", nil, 200, []check{ids(nbiDev), total("2")}},
		{"no query", "GET", "/devices/", "", nil, 200, []check{ids(devID, nbiDev), total("2")}},
		{"HEAD: the total only", "HEAD", nbiQuery("devices", `{"_deviceId._OUI": "001122"}`), "", nil, 200, []check{total("1"),
			func(t *testing.T, _ http.Header, body []byte) {
				if len(body) != 0 {
					t.Errorf("HEAD body %q", body)
				}
			}}},
		{"projection", "GET", "/devices?query=" + url.QueryEscape(`{"_id": "`+devID+`"}`) + "&projection=InternetGatewayDevice.DeviceInfo.SoftwareVersion,_lastInform", "", nil, 200, []check{
			doc(func(t *testing.T, d map[string]any) {
				if len(d) != 3 || d["_lastInform"] == nil || node(d, "InternetGatewayDevice.DeviceInfo.SoftwareVersion")["_value"] != "1.0" ||
					len(node(d, "InternetGatewayDevice.DeviceInfo")) != 1 {
					t.Errorf("projected %v", d)
				}
			})}},
		{"secret values hidden", "GET", nbiQuery("devices", `{"_id": "`+devID+`"}`, "projection="+nbiPSK), "", nil, 200, []check{
			doc(func(t *testing.T, d map[string]any) {
				if n := node(d, nbiPSK); n == nil || n["_value"] != "" {
					t.Errorf("secret node %v", n)
				}
			})}},
		{"tasks of a device", "GET", nbiQuery("tasks", `{"device": "`+devID+`"}`), "", nil, 200, []check{ids(e.faulted),
			doc(func(t *testing.T, d map[string]any) {
				if d["name"] != "factoryReset" || d["device"] != devID || d["status"] != "fault" || d["timestamp"] == nil {
					t.Errorf("task %v", d)
				}
			})}},
		{"tasks by name, projected", "GET", nbiQuery("tasks", `{"name": {"$in": ["factoryReset", "reboot"]}}`, "projection=name"), "", nil, 200, []check{
			doc(func(t *testing.T, d map[string]any) {
				if len(d) != 2 || d["name"] != "factoryReset" {
					t.Errorf("projected task %v", d)
				}
			})}},
		{"faults", "GET", nbiQuery("faults", `{"device": "`+devID+`"}`), "", nil, 200, []check{total("2"),
			func(t *testing.T, _ http.Header, body []byte) {
				var fs []map[string]any
				_ = json.Unmarshal(body, &fs)
				byID := map[string]map[string]any{}
				for _, f := range fs {
					byID[f["_id"].(string)] = f
				}
				if f := byID[taskFault]; f["channel"] != "task_"+e.faulted || f["code"] != "cwmp.9002" || f["retries"] != 0.0 || f["timestamp"] == nil {
					t.Errorf("task fault %v", f)
				}
				if f := byID[e.cpeFlt]; f["code"] != "cwmp.9010" || f["message"] != "download failed" {
					t.Errorf("CPE fault %v", f)
				}
			}}},
		{"faults by code", "GET", nbiQuery("faults", `{"code": "cwmp.9002"}`), "", nil, 200, []check{ids(taskFault)}},
		{"fault by _id", "GET", nbiQuery("faults", `{"_id": "`+e.cpeFlt+`"}`), "", nil, 200, []check{ids(e.cpeFlt)}},
		{"put a preset", "PUT", "/presets/inform", `{"weight": 0, "provisions": []}`, nil, 405, nil},
		{"delete a preset", "DELETE", "/presets/inform", "", nil, 405, nil},
		{"upload a firmware image", "PUT", "/files/new_firmware_v1.0.bin", "firmware bytes",
			map[string]string{"fileType": "1 Firmware Upgrade Image", "oui": "123456", "productClass": "ABC", "version": "1.0"}, 201, []check{
				func(t *testing.T, _ http.Header, body []byte) {
					var m fleet.FileMeta
					if json.Unmarshal(body, &m) != nil || m.OUI != "123456" || m.ProductClass != "ABC" || m.Version != "1.0" || m.FileType != "1 Firmware Upgrade Image" {
						t.Errorf("file %s", body)
					}
				}}},
		{"delete the file", "DELETE", "/files/new_firmware_v1.0.bin", "", nil, 200, nil},
		{"delete it again", "DELETE", "/files/new_firmware_v1.0.bin", "", nil, 404, nil},
		{"provision", "PUT", "/provisions/mynewprovision", `log("Provision started at " + now);`, nil, 405, []check{
			func(t *testing.T, _ http.Header, body []byte) {
				if !strings.Contains(string(body), "provisions come from the core") {
					t.Errorf("answer %s", body)
				}
			}}},
		{"delete a provision", "DELETE", "/provisions/mynewprovision", "", nil, 405, nil},
		{"delete an unknown fault", "DELETE", "/faults/" + devID + ":default", "", nil, 404, nil},
		{"delete a malformed fault ID", "DELETE", "/faults/nocolon", "", nil, 404, nil},
		{"dismiss the CPE's fault", "DELETE", "/faults/" + url.PathEscape(e.cpeFlt), "", nil, 200, nil},
		{"delete the task's fault (and its task, as GenieACS)", "DELETE", "/faults/" + url.PathEscape(taskFault), "", nil, 200, nil},
		{"the faults are gone", "GET", "/faults/", "", nil, 200, []check{ids(), total("0")}},
		{"the task too", "GET", nbiQuery("tasks", `{"_id": "`+e.faulted+`"}`), "", nil, 200, []check{ids()}},
		{"task for an unknown device", "POST", "/devices/nobody/tasks", `{"name": "reboot"}`, nil, 404, nil},
		{"tag a device", "POST", "/devices/" + devID + "/tags/testing", "", nil, 405, nil},
		{"delete a device", "DELETE", "/devices/" + url.PathEscape(nbiDev), "", nil, 200, nil},
		{"delete it again", "DELETE", "/devices/" + url.PathEscape(nbiDev), "", nil, 404, nil},
		{"method not allowed", "PATCH", "/devices/", "", nil, 405, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := e.do(t, tt.method, tt.path, tt.body, tt.hdr)
			if code != tt.want {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, code, body, tt.want)
			}
			if code >= 400 {
				var m struct{ Error string }
				if json.Unmarshal(body, &m) != nil || m.Error == "" {
					t.Errorf("error answer without a JSON error: %s", body)
				}
			}
			for _, c := range tt.check {
				c(t, h, body)
			}
		})
	}
}

// TestNBITaskStatusCodes: POST /devices/{id}/tasks?connection_request
// answers as GenieACS: 200 when the task ran, 202 when it faulted or the
// connection request failed, and for a bare connection request 200 when
// it was sent, 504 when it failed; DELETE /tasks/{id} is 200.
func TestNBITaskStatusCodes(t *testing.T) {
	e := newNBIEnv(t)
	post := func(query, body string) (int, fleet.TaskView) {
		t.Helper()
		code, _, b := e.do(t, "POST", "/devices/"+devID+"/tasks"+query, body, nil)
		var tk fleet.TaskView
		if err := json.Unmarshal(b, &tk); err != nil {
			t.Fatalf("%s: %d %s", query, code, b)
		}
		return code, tk
	}
	if code, tk := post("?connection_request", `{"name": "reboot"}`); code != 200 || tk.Status != fleet.StatusDone {
		t.Errorf("executed: %d %+v", code, tk.Task)
	}
	e.cpe.set(nil, func(cwmp.Message) cwmp.Message { return cwmp.NewFault(cwmp.FaultRequestDenied, "no") })
	if code, tk := post("?timeout=10000&connection_request", `{"name": "reboot"}`); code != 202 || tk.Status != fleet.StatusFault {
		t.Errorf("faulted: %d %+v", code, tk.Task)
	}
	e.cpe.set(errors.New("device unreachable"), nil)
	code, tk := post("?connection_request", `{"name": "reboot"}`)
	if code != 202 || tk.Status != fleet.StatusPending || !strings.Contains(tk.Warning, "unreachable") {
		t.Errorf("CR failed: %d %+v %q", code, tk.Task, tk.Warning)
	}
	if code, _, b := e.do(t, "POST", "/devices/"+devID+"/tasks?connection_request", "", nil); code != 504 {
		t.Errorf("bare CR failed: %d %s", code, b)
	}
	if code, _, b := e.do(t, "DELETE", "/tasks/"+tk.ID, "", nil); code != 200 {
		t.Errorf("delete task: %d %s", code, b)
	}
	e.cpe.set(nil, nbiOK)
	if code, _, b := e.do(t, "POST", "/devices/"+devID+"/tasks?connection_request", "", nil); code != 200 {
		t.Errorf("bare CR: %d %s", code, b)
	}
	if code, tk := post("", `{"name": "getParameterValues", "parameterNames": ["InternetGatewayDevice.Time.NTPServer1"]}`); code != 202 || tk.Status != fleet.StatusPending {
		t.Errorf("queued: %d %+v", code, tk.Task)
	}
}

// TestNBIBadInput: unsupported operators, malformed JSON, projection
// errors and filters on secret parameters are 400s naming the problem.
func TestNBIBadInput(t *testing.T) {
	e := newNBIEnv(t)
	for _, tc := range []struct{ path, want string }{
		{nbiQuery("devices", `{"$where": "this.x == 1"}`), "$where"},
		{nbiQuery("devices", `{"_id": {"$elemMatch": {}}}`), "$elemMatch"},
		{nbiQuery("devices", `{"_id": `), "JSON"},
		{nbiQuery("devices", `{"_id": "a", "_id": "b"}`), "duplicate"},
		{nbiQuery("devices", `{}`, "projection=a..b"), "projection"},
		{nbiQuery("devices", `{"`+nbiPSK+`": "hello world"}`), "secret"},
		{nbiQuery("devices", `{"$or": [{"_id": "x"}, {"`+nbiPSK+`._value": {"$regex": "^h"}}]}`), "secret"},
		{nbiQuery("devices", `{}`, "sort="+url.QueryEscape(`{"_lastInform": -1}`)), "sort"},
		{nbiQuery("devices", `{}`, "limit=-1"), "limit"},
		{nbiQuery("tasks", `{"_tags": "x"}`), "_tags"},
		{nbiQuery("faults", `{"code": {"$where": 1}}`), "$where"},
	} {
		code, _, b := e.do(t, "GET", tc.path, "", nil)
		var m struct{ Error string }
		if code != 400 || json.Unmarshal(b, &m) != nil || !strings.Contains(m.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.path, code, b, tc.want)
		}
	}
	defer func(v int) { nbiScanLimit = v }(nbiScanLimit)
	nbiScanLimit = 1
	if code, _, b := e.do(t, "GET", nbiQuery("devices", `{"_deviceId._OUI": "001122"}`), "", nil); code != 400 || !strings.Contains(string(b), "more than 1 devices") {
		t.Errorf("scan over the bound: %d %s", code, b)
	}
	if code, _, b := e.do(t, "GET", nbiQuery("devices", `{"_id": {"$in": ["`+devID+`", "`+nbiDev+`"]}}`), "", nil); code != 200 || len(nbiIDs(t, b)) != 2 {
		t.Errorf("pinned _id: %d %s", code, b)
	}
}
