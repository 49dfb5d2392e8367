package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// fakeCR plays the device's side of a connection request: it runs a
// session in another goroutine that answers every RPC.
type fakeCR struct {
	t    *testing.T
	c    *Cache
	fail error
	wg   sync.WaitGroup
	mu   sync.Mutex
	hits int
}

func (f *fakeCR) ConnectionRequest(ctx context.Context, id string) error {
	f.mu.Lock()
	f.hits++
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return fail
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		w, err := f.c.BeginSession(tr098("SN1", cwmp.EventConnectionRequest), InformMeta{Now: time.Now()})
		if err != nil {
			f.t.Errorf("fake CPE: %v", err)
			return
		}
		for req := w.Next(); req != nil; req = w.Next() {
			var resp cwmp.Message
			switch req.(type) {
			case *cwmp.SetParameterValues:
				resp = &cwmp.SetParameterValuesResponse{}
			case *cwmp.Reboot:
				resp = &cwmp.RebootResponse{}
			default:
				resp = &cwmp.GetRPCMethodsResponse{MethodList: []string{"Inform"}}
			}
			w.Answer(&cwmp.Answer{Request: req, Response: resp})
		}
		if err := w.End(true); err != nil {
			f.t.Errorf("fake CPE End: %v", err)
		}
	}()
	return nil
}

func (f *fakeCR) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

type apiEnv struct {
	c   *Cache
	fs  *FileStore
	cr  *fakeCR
	srv *httptest.Server
}

func newAPIEnv(t *testing.T) *apiEnv {
	c := newDevice(t)
	fs, err := OpenFileStore(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	cr := &fakeCR{t: t, c: c}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "edge_up 1\n") })
	srv := serveAPI(t, APIConfig{Cache: c, Files: fs, CR: cr, Metrics: metrics, Logger: quietLog,
		Ready: func() error { return nil }})
	t.Cleanup(func() {
		srv.Close()
		cr.wg.Wait()
	})
	return &apiEnv{c: c, fs: fs, cr: cr, srv: srv}
}

func (e *apiEnv) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
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
	return resp, b
}

// state summarizes what a bad request must leave unchanged.
func (e *apiEnv) state(t *testing.T) string {
	ts, _ := e.c.DeviceTasks(devID)
	files, _ := e.fs.List()
	params, _ := e.c.Parameters(devID)
	return fmt.Sprintf("devices=%d tasks=%d files=%d params=%d", e.c.DeviceCount(), len(ts), len(files), len(params))
}

func TestAPIBadInputs(t *testing.T) {
	e := newAPIEnv(t)
	big := strings.Repeat("x", fleet.MaxTaskBody+10)
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/api/v1/devices/" + devID + "/tasks", `{"name":`, 400},
		{"POST", "/api/v1/devices/" + devID + "/tasks", `{"name":"explode"}`, 400},
		{"POST", "/api/v1/devices/" + devID + "/tasks", `{"name":"reboot","bogus":1}`, 400},
		{"POST", "/api/v1/devices/" + devID + "/tasks", `{"name":"setParameterValues","parameterValues":[["A.B",1.5]]}`, 400},
		{"POST", "/api/v1/devices/" + devID + "/tasks", big, 413},
		{"POST", "/api/v1/devices/" + devID + "/tasks?wait=soon", `{"name":"reboot"}`, 400},
		{"POST", "/api/v1/devices/" + devID + "/tasks?timeout=-5", `{"name":"reboot"}`, 400},
		{"POST", "/api/v1/devices/nobody/tasks", `{"name":"reboot"}`, 404},
		{"POST", "/devices/nobody/tasks", `{"name":"reboot"}`, 404},
		{"GET", "/api/v1/devices/nobody", "", 404},
		{"GET", "/api/v1/devices/nobody/tasks", "", 404},
		{"GET", "/api/v1/devices/nobody/faults", "", 404},
		{"DELETE", "/api/v1/devices/nobody", "", 404},
		{"GET", "/api/v1/devices?lastInformAfter=yesterday", "", 400},
		{"GET", "/api/v1/devices?param=novalue", "", 400},
		{"GET", "/api/v1/devices?limit=0", "", 400},
		{"GET", "/api/v1/devices?limit=x", "", 400},
		{"GET", "/api/v1/devices?offset=-1", "", 400},
		{"GET", "/api/v1/devices?color=red", "", 400},
		{"GET", "/devices?query={bad", "", 400},
		{"GET", "/devices?query=" + url.QueryEscape(`{"_id":{"$where":"x"}}`), "", 400},
		{"GET", "/api/v1/tasks/01NOPE", "", 404},
		{"DELETE", "/api/v1/tasks/01NOPE", "", 404},
		{"GET", "/api/v1/files/nope.bin", "", 404},
		{"DELETE", "/api/v1/files/nope.bin", "", 404},
		{"PUT", "/api/v1/files/a%0Ab", "x", 400},
		{"PUT", "/api/v1/files/a%2Fb", "x", 400},
		{"PATCH", "/api/v1/devices/" + devID, "", 405},
		{"POST", "/api/v1/devices", "", 405},
		{"GET", "/api/v2/whatever", "", 404},
	}
	before := e.state(t)
	for _, tt := range tests {
		resp, body := e.do(t, tt.method, tt.path, strings.NewReader(tt.body))
		var m map[string]string
		if resp.StatusCode != tt.status || json.Unmarshal(body, &m) != nil || m["error"] == "" {
			t.Errorf("%s %s: %d %s; want %d with a JSON error", tt.method, tt.path, resp.StatusCode, body, tt.status)
		}
		if after := e.state(t); after != before {
			t.Errorf("%s %s changed state: %s → %s", tt.method, tt.path, before, after)
		}
	}
}

func TestAPIDevicesAndTasks(t *testing.T) {
	e := newAPIEnv(t)
	mustBegin(t, e.c, tr181("Z1"), t0).End(true)

	resp, body := e.do(t, "GET", "/api/v1/devices?limit=1", nil)
	var devs []Device
	if resp.StatusCode != 200 || json.Unmarshal(body, &devs) != nil || len(devs) != 1 || devs[0].ID != devID ||
		resp.Header.Get("X-Total-Count") != "2" || resp.Header.Get("X-Next-Cursor") != devID {
		t.Fatalf("list: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = e.do(t, "GET", "/api/v1/devices?cursor="+devID, nil)
	if json.Unmarshal(body, &devs) != nil || len(devs) != 1 || devs[0].ID != "00AABB-Router%20X-Z1" || resp.Header.Get("X-Next-Cursor") != "" {
		t.Errorf("page 2: %s", body)
	}
	_, body = e.do(t, "GET", "/api/v1/devices?param="+url.QueryEscape("Device.DeviceInfo.SoftwareVersion=2.0"), nil)
	if json.Unmarshal(body, &devs) != nil || len(devs) != 1 || devs[0].ID != "00AABB-Router%20X-Z1" {
		t.Errorf("param filter: %s", body)
	}
	_, body = e.do(t, "GET", "/devices?query="+url.QueryEscape(`{"_id":"`+devID+`"}`), nil)
	if json.Unmarshal(body, &devs) != nil || len(devs) != 1 || devs[0].ID != devID {
		t.Errorf("genieacs query: %s", body)
	}
	// IDs with escapes travel percent-encoded once more in the path.
	resp, body = e.do(t, "GET", "/api/v1/devices/"+url.PathEscape("00AABB-Router%20X-Z1"), nil)
	var view fleet.DeviceView
	if resp.StatusCode != 200 || json.Unmarshal(body, &view) != nil || view.ID != "00AABB-Router%20X-Z1" ||
		view.Parameters["Device.DeviceInfo.SoftwareVersion"].Value != "2.0" {
		t.Fatalf("get device: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "crpassword") || strings.Contains(strings.ToLower(string(body)), `"password"`) {
		t.Errorf("device JSON leaks a password: %s", body)
	}

	// Queued without wait: 202, pending.
	resp, body = e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks", strings.NewReader(`{"name":"getRPCMethods"}`))
	var queued fleet.Task
	if resp.StatusCode != 202 || json.Unmarshal(body, &queued) != nil || queued.Status != fleet.StatusPending || queued.ID == "" {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/api/v1/tasks/"+queued.ID, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"pending"`) {
		t.Errorf("get task: %d %s", resp.StatusCode, body)
	}
	resp, _ = e.do(t, "DELETE", "/api/v1/tasks/"+queued.ID, nil)
	if resp.StatusCode != 204 {
		t.Errorf("delete task: %d", resp.StatusCode)
	}
	if _, err := e.c.Task(queued.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted task: %v", err)
	}

	// With a connection request and ?wait: the fake CPE runs it; 200 final.
	resp, body = e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks?connection_request&wait=10s",
		strings.NewReader(`{"name":"setParameterValues","parameterValues":[["InternetGatewayDevice.X.Y","z","xsd:string"]]}`))
	var done fleet.Task
	if resp.StatusCode != 200 || json.Unmarshal(body, &done) != nil || done.Status != fleet.StatusDone {
		t.Fatalf("post with CR and wait: %d %s", resp.StatusCode, body)
	}
	if p, _ := e.c.Parameter(devID, "InternetGatewayDevice.X.Y"); p.Value != "z" {
		t.Errorf("SPV through the API not cached: %+v", p)
	}
	// GenieACS alias with timeout in ms.
	resp, body = e.do(t, "POST", "/devices/"+devID+"/tasks?connection_request&timeout=10000", strings.NewReader(`{"name":"reboot"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"done"`) {
		t.Errorf("genieacs alias: %d %s", resp.StatusCode, body)
	}
	// A device that never answers: 202 at the deadline, still pending.
	e.cr.setFail(errors.New("device unreachable"))
	resp, body = e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks?connection_request&wait=50ms", strings.NewReader(`{"name":"getRPCMethods"}`))
	var warned struct {
		fleet.Task
		Warning string
	}
	if resp.StatusCode != 202 || json.Unmarshal(body, &warned) != nil || !strings.Contains(warned.Warning, "unreachable") || warned.Status != fleet.StatusPending {
		t.Errorf("CR failure: %d %s", resp.StatusCode, body)
	}
	e.cr.setFail(nil)
	resp, body = e.do(t, "POST", "/api/v1/devices/"+devID+"/tasks?wait=50ms", strings.NewReader(`{"name":"getRPCMethods"}`))
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"pending"`) {
		t.Errorf("wait deadline: %d %s", resp.StatusCode, body)
	}

	resp, body = e.do(t, "GET", "/api/v1/devices/"+devID+"/tasks", nil)
	var ts []fleet.Task
	if resp.StatusCode != 200 || json.Unmarshal(body, &ts) != nil || len(ts) != 4 {
		t.Errorf("device tasks: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/api/v1/tasks?limit=2", nil)
	if resp.StatusCode != 200 || json.Unmarshal(body, &ts) != nil || len(ts) != 2 || resp.Header.Get("X-Next-Cursor") == "" {
		t.Errorf("list tasks: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/api/v1/devices/"+devID+"/faults", nil)
	if resp.StatusCode != 200 || string(body) != "[]\n" {
		t.Errorf("faults: %d %s", resp.StatusCode, body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, _ := e.do(t, "GET", p, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	resp, _ = e.do(t, "DELETE", "/api/v1/devices/"+devID, nil)
	if resp.StatusCode != 204 || e.c.DeviceCount() != 1 {
		t.Errorf("delete device: %d count %d", resp.StatusCode, e.c.DeviceCount())
	}
}

func TestAPIRunningTaskConflict(t *testing.T) {
	e := newAPIEnv(t)
	tk := addTask(t, e.c, `{"name":"reboot"}`)
	w := mustBegin(t, e.c, tr098("SN1"), t0)
	if w.Next() == nil {
		t.Fatal("no RPC")
	}
	resp, body := e.do(t, "DELETE", "/api/v1/tasks/"+tk.ID, nil)
	if resp.StatusCode != 409 {
		t.Errorf("delete running: %d %s", resp.StatusCode, body)
	}
	w.End(false)
	if got, _ := e.c.Task(tk.ID); got.Status != fleet.StatusPending {
		t.Errorf("after drop: %s", got.Status)
	}
}

func TestAPIReadyz(t *testing.T) {
	c := newDevice(t)
	srv := serveAPI(t, APIConfig{Cache: c, Logger: quietLog, Ready: func() error { return errors.New("cache warming") }})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("readyz: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/api/v1/files")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("files without a store: %d", resp.StatusCode)
	}
}

// heldCR is a connection requester that, like the Reacher inside its
// per-device interval, holds the request back; if it is still wanted when
// the hold ends, the device answers 401 (it factory-reset meanwhile).
type heldCR struct {
	hold      time.Duration
	sent      atomic.Bool
	cancelled atomic.Bool
}

func (h *heldCR) ConnectionRequest(ctx context.Context, _ string) error {
	t := time.NewTimer(h.hold)
	defer t.Stop()
	select {
	case <-ctx.Done():
		h.cancelled.Store(true)
		return ctx.Err()
	case <-t.C:
		h.sent.Store(true)
		return errors.New("cwmp: connection request authentication failed: answered 401")
	}
}

// TestAPITaskRunsBeforeItsConnectionRequest is the regression test for the
// 401 after an Upload in TestE2ETaskKinds: the device was still in the
// session of the Upload's TransferComplete, so a task posted then ran in
// that session at once, while the Reacher held the connection request
// back for its 1 s per-device interval; the FactoryReset reset the CPE's
// connection-request password, and the late request got a 401. A task
// that finishes while its connection request waits is a success, and the
// request is cancelled, not sent.
func TestAPITaskRunsBeforeItsConnectionRequest(t *testing.T) {
	c := newDevice(t)
	cr := &heldCR{hold: 5 * time.Second}
	srv := serveAPI(t, APIConfig{Cache: c, CR: cr, Logger: quietLog, Ready: func() error { return nil }})
	defer srv.Close()

	// The device's open session picks the task up as soon as it is queued.
	sessionDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if ts, err := c.PendingTasks(devID); err == nil && len(ts) > 0 {
				w, err := c.BeginSession(tr098("SN1", cwmp.EventTransferComplete), InformMeta{Now: time.Now()})
				if err != nil {
					sessionDone <- err
					return
				}
				for req := w.Next(); req != nil; req = w.Next() {
					w.Answer(&cwmp.Answer{Request: req, Response: &cwmp.FactoryResetResponse{}})
				}
				sessionDone <- w.End(true)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		sessionDone <- errors.New("task never queued")
	}()
	start := time.Now()
	resp, err := srv.Client().Post(srv.URL+"/api/v1/devices/"+devID+"/tasks?connection_request&wait=10s", "application/json",
		strings.NewReader(`{"name":"factoryReset"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-sessionDone; err != nil {
		t.Fatalf("session: %v", err)
	}
	var got struct {
		fleet.Task
		Warning string
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || got.Status != fleet.StatusDone || got.Warning != "" {
		t.Fatalf("POST answered %d %s", resp.StatusCode, body)
	}
	if elapsed := time.Since(start); elapsed >= cr.hold {
		t.Errorf("POST took %s: it waited for the held connection request", elapsed)
	}
	if cr.sent.Load() || !cr.cancelled.Load() {
		t.Errorf("connection request sent=%v cancelled=%v; want it cancelled unsent", cr.sent.Load(), cr.cancelled.Load())
	}
}

func TestAPIDeviceCredentials(t *testing.T) {
	e := newAPIEnv(t)
	path := "/api/v1/devices/" + url.PathEscape(devID) + "/credentials"
	bad := []struct {
		method, path, body string
		status             int
	}{
		{"PUT", path, `not json`, 400},
		{"PUT", path, `{"username": "u"}`, 400},
		{"PUT", path, `{"username": "u", "password": "p", "role": "admin"}`, 400},
		{"PUT", path, `{"username": "u", "password": "` + strings.Repeat("p", 8<<10) + `"}`, 413},
		{"PUT", "/api/v1/devices/a%2Fb/credentials", `{"username": "u", "password": "p"}`, 400},
		{"GET", path, ``, 405},
	}
	for _, tt := range bad {
		resp, body := e.do(t, tt.method, tt.path, strings.NewReader(tt.body))
		if resp.StatusCode != tt.status || !strings.Contains(string(body), "error") {
			t.Errorf("%s %s %.40q: %d %s, want %d", tt.method, tt.path, tt.body, resp.StatusCode, body, tt.status)
		}
		if _, _, err := e.c.Credentials(devID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s %.40q stored credentials", tt.method, tt.body)
		}
	}
	// A device that has not informed yet can be given credentials too.
	for _, id := range []string{devID, "00AA11-New-S9"} {
		p := "/api/v1/devices/" + url.PathEscape(id) + "/credentials"
		if resp, body := e.do(t, "PUT", p, strings.NewReader(`{"username": "cpe-`+id+`", "password": "s3cret"}`)); resp.StatusCode != 204 {
			t.Fatalf("PUT %s: %d %s", p, resp.StatusCode, body)
		}
		if u, pw, err := e.c.Credentials(id); err != nil || u != "cpe-"+id || pw != "s3cret" {
			t.Fatalf("stored %q %q %v", u, pw, err)
		}
	}
	if resp, _ := e.do(t, "DELETE", path, nil); resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if _, _, err := e.c.Credentials(devID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after DELETE: %v", err)
	}
	// The password never comes back through the API.
	if _, body := e.do(t, "GET", "/api/v1/devices/00AA11-New-S9", nil); strings.Contains(string(body), "s3cret") {
		t.Fatalf("password leaked: %s", body)
	}
}
