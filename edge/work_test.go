package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// runCPE drives one session's ACS-request phase against a fake CPE and
// ends it; it fails the test unless exactly wantRPCs RPCs were sent.
func runCPE(t testing.TB, w *SessionWork, cpe func(cwmp.Message) cwmp.Message, wantRPCs int) []cwmp.Message {
	t.Helper()
	var sent []cwmp.Message
	for req := w.Next(); req != nil; req = w.Next() {
		sent = append(sent, req)
		if len(sent) > 1000 {
			t.Fatal("session does not end")
		}
		resp := cpe(req)
		w.Answer(&cwmp.Answer{Request: req, Response: resp,
			Mismatch: resp.Method() != cwmp.MethodFault && resp.Method() != req.Method()+"Response"})
	}
	if err := w.End(true); err != nil {
		t.Fatalf("End: %v", err)
	}
	if len(sent) != wantRPCs {
		t.Fatalf("sent %d RPCs (%v), want %d", len(sent), methods(sent), wantRPCs)
	}
	return sent
}

func methods(ms []cwmp.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Method())
	}
	return out
}

const devID = "001122-IGD-SN1"

func newDevice(t testing.TB) *Cache {
	c := openTestCache(t, "")
	mustBegin(t, c, tr098("SN1"), t0).End(true)
	return c
}

func addTask(t testing.TB, c *Cache, body string) *fleet.Task {
	t.Helper()
	return addTaskFor(t, c, devID, body)
}

// addTaskFor queues the task body (API JSON) for device id, as the API
// does.
func addTaskFor(t testing.TB, c *Cache, id, body string) *fleet.Task {
	t.Helper()
	tk, err := fleet.ParseTask([]byte(body), id, t0)
	if err != nil {
		t.Fatalf("ParseTask(%s): %v", body, err)
	}
	if err := c.AddTask(tk); err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestTaskKinds(t *testing.T) {
	const ssid = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
	const wifiKey = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.PreSharedKey"
	tests := []struct {
		name   string
		body   string
		cpe    func(cwmp.Message) cwmp.Message
		rpcs   int
		status fleet.TaskStatus
		check  func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message)
	}{
		{"getParameterValues", `{"name":"getParameterValues","parameterNames":["` + ssid + `"]}`,
			func(cwmp.Message) cwmp.Message {
				return &cwmp.GetParameterValuesResponse{ParameterList: []cwmp.ParameterValue{pv(ssid, "cafe")}}
			}, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if p, _ := c.Parameter(devID, ssid); p.Value != "cafe" || tk.Result.ParameterValues[0].Value != "cafe" {
					t.Errorf("GPV not cached: %+v %+v", p, tk.Result)
				}
			}},
		{"setParameterValues", `{"name":"setParameterValues","parameterValues":[["` + ssid + `","home","xsd:string"]]}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.SetParameterValuesResponse{Status: 1} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message) {
				spv := sent[0].(*cwmp.SetParameterValues)
				if spv.ParameterKey != tk.ID || spv.ParameterList[0] != (cwmp.ParameterValue{Name: ssid, Value: "home", Type: "xsd:string"}) {
					t.Errorf("SPV sent %+v", spv)
				}
				if p, _ := c.Parameter(devID, ssid); p.Value != "home" || tk.Result.Status != 1 {
					t.Errorf("SPV not cached: %+v %+v", p, tk.Result)
				}
			}},
		{"getParameterNames", `{"name":"getParameterNames","parameterPath":"InternetGatewayDevice.LANDevice.","nextLevel":true}`,
			func(cwmp.Message) cwmp.Message {
				return &cwmp.GetParameterNamesResponse{ParameterList: []cwmp.ParameterInfo{{Name: "InternetGatewayDevice.LANDevice.1.", Writable: false}}}
			}, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message) {
				if g := sent[0].(*cwmp.GetParameterNames); !g.NextLevel || g.ParameterPath != "InternetGatewayDevice.LANDevice." {
					t.Errorf("GPN sent %+v", g)
				}
				p, err := c.Parameter(devID, "InternetGatewayDevice.LANDevice.1.")
				if err != nil || !p.Object || p.Writable == nil || *p.Writable {
					t.Errorf("GPN node: %+v %v", p, err)
				}
			}},
		{"getParameterAttributes", `{"name":"getParameterAttributes","parameterNames":["` + ssid + `"]}`,
			func(cwmp.Message) cwmp.Message {
				return &cwmp.GetParameterAttributesResponse{ParameterList: []cwmp.ParameterAttribute{{Name: ssid, Notification: 2, AccessList: []string{"Subscriber"}}}}
			}, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				p, _ := c.Parameter(devID, ssid)
				if p.Notification == nil || *p.Notification != 2 || len(p.AccessList) != 1 || *tk.Result.ParameterAttributes[0].Notification != 2 {
					t.Errorf("GPA: %+v %+v", p, tk.Result)
				}
			}},
		{"setParameterAttributes", `{"name":"setParameterAttributes","parameterAttributes":[{"name":"` + ssid + `","notification":1}]}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.SetParameterAttributesResponse{} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message) {
				spa := sent[0].(*cwmp.SetParameterAttributes).ParameterList[0]
				if !spa.NotificationChange || spa.Notification != 1 || spa.AccessListChange {
					t.Errorf("SPA sent %+v", spa)
				}
				if p, _ := c.Parameter(devID, ssid); p.Notification == nil || *p.Notification != 1 {
					t.Errorf("SPA not cached: %+v", p)
				}
			}},
		{"addObject", `{"name":"addObject","objectName":"InternetGatewayDevice.LANDevice.1.WLANConfiguration."}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.AddObjectResponse{InstanceNumber: 3} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if p, err := c.Parameter(devID, "InternetGatewayDevice.LANDevice.1.WLANConfiguration.3."); err != nil || !p.Object || tk.Result.InstanceNumber != 3 {
					t.Errorf("addObject: %+v %v %+v", p, err, tk.Result)
				}
			}},
		{"deleteObject", `{"name":"deleteObject","objectName":"InternetGatewayDevice.WANDevice.1."}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.DeleteObjectResponse{} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if _, err := c.Parameter(devID, "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ExternalIPAddress"); !errors.Is(err, ErrNotFound) {
					t.Errorf("deleteObject left the subtree: %v", err)
				}
				if _, err := c.Parameter(devID, "InternetGatewayDevice.DeviceInfo.SoftwareVersion"); err != nil {
					t.Errorf("deleteObject removed too much: %v", err)
				}
			}},
		{"reboot", `{"name":"reboot"}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.RebootResponse{} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message) {
				if sent[0].(*cwmp.Reboot).CommandKey != tk.ID {
					t.Errorf("reboot CommandKey %q", sent[0].(*cwmp.Reboot).CommandKey)
				}
			}},
		{"factoryReset", `{"name":"factoryReset"}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.FactoryResetResponse{} }, 1, fleet.StatusDone, nil},
		{"download status 0", `{"name":"download","fileName":"fw 1.bin"}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.DownloadResponse{Status: 0} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message) {
				d := sent[0].(*cwmp.Download)
				if d.URL != "http://edge:7547/files/fw%201.bin" || d.FileSize != 5 || d.CommandKey != tk.ID || d.FileType != "1 Firmware Upgrade Image" {
					t.Errorf("Download sent %+v", d)
				}
			}},
		{"download unknown file", `{"name":"download","fileName":"nope.bin"}`,
			nil, 0, fleet.StatusFault,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if tk.Fault.Code != FaultCodeFileNotFound {
					t.Errorf("fault %+v", tk.Fault)
				}
			}},
		{"upload", `{"name":"upload","fileType":"1 Vendor Configuration File","url":"http://up/x"}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.UploadResponse{Status: 0} }, 1, fleet.StatusDone, nil},
		{"scheduleInform", `{"name":"scheduleInform","delaySeconds":5}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.ScheduleInformResponse{} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, sent []cwmp.Message) {
				if s := sent[0].(*cwmp.ScheduleInform); s.DelaySeconds != 5 || s.CommandKey != tk.ID {
					t.Errorf("ScheduleInform sent %+v", s)
				}
			}},
		{"getRPCMethods", `{"name":"getRPCMethods"}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.GetRPCMethodsResponse{MethodList: []string{"Reboot"}} }, 1, fleet.StatusDone,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if len(tk.Result.MethodList) != 1 {
					t.Errorf("result %+v", tk.Result)
				}
			}},
		{"cpe fault", `{"name":"setParameterValues","parameterValues":[["` + ssid + `","x","xsd:string"]]}`,
			func(cwmp.Message) cwmp.Message {
				f := cwmp.NewFault(cwmp.FaultInvalidArguments, "")
				f.SetParameterValuesFaults = []cwmp.SetParameterValuesFault{{ParameterName: ssid, FaultCode: 9007, FaultString: "too long"}}
				return f
			}, 1, fleet.StatusFault,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if tk.Fault.Code != "9003" || tk.Fault.Detail[ssid] != "9007 too long" {
					t.Errorf("fault %+v", tk.Fault)
				}
				if p, _ := c.Parameter(devID, ssid); p.Value == "x" {
					t.Error("faulted SPV wrote the cache")
				}
				if f, _ := c.Faults(devID); len(f) != 1 || f[0].Task != tk.ID || f[0].Code != "9003" {
					t.Errorf("device faults %+v", f)
				}
			}},
		{"cpe fault quoting a secret", `{"name":"setParameterValues","parameterValues":[["` + ssid + `","x","xsd:string"],["` + wifiKey + `","hunter2-secret","xsd:hexBinary"]]}`,
			func(cwmp.Message) cwmp.Message {
				f := cwmp.NewFault(cwmp.FaultInvalidArguments, "refused hunter2-secret")
				f.SetParameterValuesFaults = []cwmp.SetParameterValuesFault{{ParameterName: wifiKey, FaultCode: 9007, FaultString: `value "hunter2-secret" is not hex`}}
				return f
			}, 1, fleet.StatusFault,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if tk.Fault.Message != "refused ********" || tk.Fault.Detail[wifiKey] != `9007 value "********" is not hex` {
					t.Errorf("fault %+v, want the CPE's words without the secret", tk.Fault)
				}
				f, _ := c.Faults(devID)
				if b, _ := json.Marshal(f); len(f) != 1 || strings.Contains(string(b), "hunter2") {
					t.Errorf("device faults %s, want one, without the secret", b)
				}
			}},
		{"mismatching response", `{"name":"getRPCMethods"}`,
			func(cwmp.Message) cwmp.Message { return &cwmp.RebootResponse{} }, 1, fleet.StatusFault,
			func(t *testing.T, c *Cache, tk *fleet.Task, _ []cwmp.Message) {
				if tk.Fault.Code != FaultCodeInvalidResponse {
					t.Errorf("fault %+v", tk.Fault)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newDevice(t)
			fs, err := OpenFileStore(t.TempDir(), c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Put("fw 1.bin", fleet.FileMeta{FileType: "1 Firmware Upgrade Image"}, strings.NewReader("12345")); err != nil {
				t.Fatal(err)
			}
			tk := addTask(t, c, tt.body)
			w := mustBegin(t, c, tr098("SN1"), t0)
			sent := runCPE(t, w, tt.cpe, tt.rpcs)
			got, err := c.Task(tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status || (tt.rpcs > 0 && got.Attempts != 1) {
				t.Fatalf("task = %+v (fault %+v), want status %s", got, got.Fault, tt.status)
			}
			if tt.check != nil {
				tt.check(t, c, got, sent)
			}
			if open, _ := c.PendingTasks(devID); len(open) != 0 {
				t.Errorf("finished task still open: %+v", open)
			}
		})
	}
}

func TestSessionOrderAndStops(t *testing.T) {
	c := newDevice(t)
	a := addTask(t, c, `{"name":"getRPCMethods"}`)
	bad := addTask(t, c, `{"name":"reboot"}`)
	expired := addTask(t, c, `{"name":"getRPCMethods","expiry":1}`)
	b := addTask(t, c, `{"name":"getRPCMethods"}`)
	after := addTask(t, c, `{"name":"reboot"}`)
	never := addTask(t, c, `{"name":"getRPCMethods"}`)
	w := mustBegin(t, c, tr098("SN1"), t0.Add(time.Hour))
	n := 0
	sent := runCPE(t, w, func(m cwmp.Message) cwmp.Message {
		n++
		switch {
		case n == 2:
			return cwmp.NewFault(cwmp.FaultRequestDenied, "") // a fault does not block the next task
		case m.Method() == cwmp.MethodReboot:
			return &cwmp.RebootResponse{}
		}
		return &cwmp.GetRPCMethodsResponse{}
	}, 4)
	if fmt.Sprint(methods(sent)) != "[GetRPCMethods Reboot GetRPCMethods Reboot]" {
		t.Errorf("sent %v", methods(sent))
	}
	want := map[string]fleet.TaskStatus{a.ID: fleet.StatusDone, bad.ID: fleet.StatusFault, expired.ID: fleet.StatusExpired,
		b.ID: fleet.StatusDone, after.ID: fleet.StatusDone, never.ID: fleet.StatusPending}
	for id, st := range want {
		if tk, _ := c.Task(id); tk.Status != st {
			t.Errorf("task %s: %s, want %s", tk.Name, tk.Status, st)
		}
	}
	// The task held back by the reboot runs in the next session.
	runCPE(t, mustBegin(t, c, tr098("SN1", cwmp.EventBoot), t0), func(cwmp.Message) cwmp.Message { return &cwmp.GetRPCMethodsResponse{} }, 1)
}

func TestDroppedSessionKeepsCommandKey(t *testing.T) {
	c := newDevice(t)
	tk := addTask(t, c, `{"name":"download","url":"http://files/fw.bin","username":"u","password":"ftp-secret-9"}`)
	w := mustBegin(t, c, tr098("SN1"), t0)
	first := w.Next().(*cwmp.Download)
	if got, _ := c.Task(tk.ID); got.Status != fleet.StatusRunning {
		t.Errorf("in-flight task reads %s", got.Status)
	}
	if err := c.DeleteTask(tk.ID); !errors.Is(err, ErrTaskRunning) {
		t.Errorf("DeleteTask(in flight) = %v", err)
	}
	if err := w.End(false); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Task(tk.ID)
	if got.Status != fleet.StatusPending || got.Attempts != 1 || got.CommandKey != first.CommandKey {
		t.Fatalf("after drop: %+v", got)
	}
	// Resent with the same key; the CPE accepts (status 1): running until
	// TransferComplete in a later session.
	w = mustBegin(t, c, tr098("SN1"), t0)
	second := runCPE(t, w, func(cwmp.Message) cwmp.Message { return &cwmp.DownloadResponse{Status: 1} }, 1)[0].(*cwmp.Download)
	if second.CommandKey != first.CommandKey {
		t.Errorf("resend CommandKey %q, first %q", second.CommandKey, first.CommandKey)
	}
	if got, _ := c.Task(tk.ID); got.Status != fleet.StatusRunning || got.Attempts != 2 {
		t.Fatalf("after DownloadResponse 1: %+v", got)
	}
	if err := c.DeleteTask(tk.ID); !errors.Is(err, ErrTaskRunning) {
		t.Errorf("DeleteTask(accepted transfer) = %v", err)
	}
	// A session in between does not resend it.
	runCPE(t, mustBegin(t, c, tr098("SN1"), t0), nil, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waited := make(chan *fleet.Task, 1)
	go func() {
		tk, _ := c.WaitTask(ctx, tk.ID)
		waited <- tk
	}()
	w = mustBegin(t, c, tr098("SN1", cwmp.EventBoot, cwmp.EventTransferComplete), t0)
	if err := w.CPERequest(&cwmp.TransferComplete{CommandKey: "unknown"}); err != nil {
		t.Fatal(err)
	}
	if err := w.CPERequest(&cwmp.TransferComplete{CommandKey: first.CommandKey, FaultStruct: cwmp.FaultStruct{Code: 9010, String: "bad image from u:ftp-secret-9@files"}}); err != nil {
		t.Fatal(err)
	}
	// Visible at once, before the session ends: the CPE was told it is
	// delivered. The CPE's words keep the transfer password out.
	if got, _ := c.Task(tk.ID); got.Status != fleet.StatusFault || got.Fault.Code != "9010" || got.Fault.Message != "bad image from u:********@files" {
		t.Fatalf("after TransferComplete: %+v", got)
	}
	if got := <-waited; got == nil || got.Status != fleet.StatusFault {
		t.Errorf("WaitTask returned %+v", got)
	}
	runCPE(t, w, nil, 0)
}

func TestRefreshObject(t *testing.T) {
	c := newDevice(t)
	stale := tr098("SN1")
	stale.ParameterList = append(stale.ParameterList, pv("InternetGatewayDevice.LANDevice.1.Hosts.Host.9.IP", "old"))
	mustBegin(t, c, stale, t0).End(true)
	const root = "InternetGatewayDevice.LANDevice.1.Hosts."
	var infos []cwmp.ParameterInfo
	infos = append(infos, cwmp.ParameterInfo{Name: root}, cwmp.ParameterInfo{Name: root + "Host."})
	// Two batches: the first full, the second not.
	hosts := refreshBatch + refreshBatch/2
	for i := range hosts {
		infos = append(infos, cwmp.ParameterInfo{Name: root + "Host." + strconv.Itoa(i+1) + ".IP", Writable: i%2 == 0})
	}
	tk := addTask(t, c, `{"name":"refreshObject","objectName":"`+root+`"}`)
	sent := runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(m cwmp.Message) cwmp.Message {
		switch r := m.(type) {
		case *cwmp.GetParameterNames:
			if r.ParameterPath != root || r.NextLevel {
				t.Errorf("GPN %+v", r)
			}
			return &cwmp.GetParameterNamesResponse{ParameterList: infos}
		case *cwmp.GetParameterValues:
			if len(r.ParameterNames) > refreshBatch {
				t.Errorf("GPV of %d names", len(r.ParameterNames))
			}
			var out []cwmp.ParameterValue
			for _, n := range r.ParameterNames {
				out = append(out, pv(n, "v-"+n[len(root):]))
			}
			return &cwmp.GetParameterValuesResponse{ParameterList: out}
		}
		return nil
	}, 3)
	if sent[1].(*cwmp.GetParameterValues).ParameterNames[0] != root+"Host.1.IP" {
		t.Errorf("first GPV: %v", sent[1])
	}
	if got, _ := c.Task(tk.ID); got.Status != fleet.StatusDone || got.Attempts != 1 {
		t.Errorf("refresh task: %+v", got)
	}
	params, _ := c.Parameters(devID)
	last := "Host." + strconv.Itoa(hosts) + ".IP"
	if p := params[root+last]; p.Value != "v-"+last || p.Writable == nil || *p.Writable {
		t.Errorf("refreshed leaf: %+v", p)
	}
	if p := params[root+"Host."]; !p.Object {
		t.Errorf("object node: %+v", p)
	}
	if _, ok := params[root+"Host.9.IP"]; !ok {
		t.Error("refresh lost a listed node")
	}
	if _, ok := params["InternetGatewayDevice.LANDevice.1.Hosts.Host.9.IP"]; !ok {
		t.Error("missing")
	}
	if p := params["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]; p.Value != "1.0" {
		t.Error("refresh touched nodes outside its object")
	}
}

func TestRefreshPrunesVanished(t *testing.T) {
	c := newDevice(t)
	const root = "InternetGatewayDevice.LANDevice.1.Hosts."
	stale := tr098("SN1")
	stale.ParameterList = append(stale.ParameterList, pv(root+"Host.9.IP", "old"))
	mustBegin(t, c, stale, t0).End(true)
	addTask(t, c, `{"name":"refreshObject","objectName":"`+root+`"}`)
	runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(m cwmp.Message) cwmp.Message {
		if _, ok := m.(*cwmp.GetParameterNames); ok {
			return &cwmp.GetParameterNamesResponse{ParameterList: []cwmp.ParameterInfo{{Name: root}, {Name: root + "Host.1.IP"}}}
		}
		return &cwmp.GetParameterValuesResponse{ParameterList: []cwmp.ParameterValue{pv(root+"Host.1.IP", "new")}}
	}, 2)
	if _, err := c.Parameter(devID, root+"Host.9.IP"); !errors.Is(err, ErrNotFound) {
		t.Errorf("vanished instance kept: %v", err)
	}
	if p, _ := c.Parameter(devID, root+"Host.1.IP"); p.Value != "new" {
		t.Errorf("refreshed value %+v", p)
	}
}

func TestTaskDeletedDuringSession(t *testing.T) {
	c := newDevice(t)
	a := addTask(t, c, `{"name":"getRPCMethods"}`)
	b := addTask(t, c, `{"name":"getRPCMethods"}`)
	w := mustBegin(t, c, tr098("SN1"), t0)
	req := w.Next()
	if err := c.DeleteTask(b.ID); err != nil { // not yet in flight
		t.Fatal(err)
	}
	w.Answer(&cwmp.Answer{Request: req, Response: &cwmp.GetRPCMethodsResponse{}})
	if w.Next() != nil {
		t.Error("deleted task was sent")
	}
	w.End(true)
	if _, err := c.Task(b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted task came back: %v", err)
	}
	if tk, _ := c.Task(a.ID); tk.Status != fleet.StatusDone {
		t.Errorf("task a %s", tk.Status)
	}
}

// BenchmarkSession30Params times BeginSession+Next+End of a periodic
// 30-parameter Inform with 64 sessions in flight (a loaded edge), fsync on
// and off. Badger groups concurrent commits into one write and one fsync.
func BenchmarkSession30Params(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run("sync="+strconv.FormatBool(sync), func(b *testing.B) { benchSession(b, sync) })
	}
}

func benchSession(b *testing.B, sync bool) {
	c, err := OpenCache(b.TempDir(), CacheOptions{SyncWrites: sync, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetParallelism(32)
	infs := make([]*cwmp.Inform, 2000)
	for i := range infs {
		inf := tr098("SN" + strconv.Itoa(i))
		for j := len(inf.ParameterList); j < 30; j++ {
			inf.ParameterList = append(inf.ParameterList, pv("InternetGatewayDevice.X_Bench.P"+strconv.Itoa(j), "v"))
		}
		infs[i] = inf
	}
	// Registered already: the timed sessions are periodic Informs, most
	// values unchanged, the common case on a running edge.
	for _, inf := range infs {
		w, err := c.BeginSession(inf, InformMeta{})
		if err != nil {
			b.Fatal(err)
		}
		w.End(true)
	}
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Each device is in one session at a time, as on a real edge.
			inf := infs[next.Add(1)%int64(len(infs))]
			w, err := c.BeginSession(inf, InformMeta{})
			if err != nil {
				b.Fatal(err)
			}
			if w.Next() != nil {
				b.Fatal("unexpected task")
			}
			if err := w.End(true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAddTask(b *testing.B) {
	c, err := OpenCache(b.TempDir(), CacheOptions{SyncWrites: true, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.AddTask(&fleet.Task{Device: devID, Name: fleet.TaskReboot}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCRCredentialsFromTasks: a successful setParameterValues of the
// connection-request credentials (the provisioning task or any other)
// puts them on the device record, where the Reacher reads them; a faulted
// one does not; 0 BOOTSTRAP forgets them (the CPE is back to defaults).
func TestCRCredentialsFromTasks(t *testing.T) {
	const (
		user = "InternetGatewayDevice.ManagementServer.ConnectionRequestUsername"
		pass = "InternetGatewayDevice.ManagementServer.ConnectionRequestPassword"
	)
	ok := func(cwmp.Message) cwmp.Message { return &cwmp.SetParameterValuesResponse{} }
	fault := func(cwmp.Message) cwmp.Message { return cwmp.NewFault(9002, "internal error") }
	creds := func(t *testing.T, c *Cache) (string, string) {
		t.Helper()
		d, err := c.Device(devID)
		if err != nil {
			t.Fatal(err)
		}
		return crCredentials(d)
	}
	tests := []struct {
		name     string
		body     string
		cpe      func(cwmp.Message) cwmp.Message
		user, pw string
	}{
		{"both", `{"name":"setParameterValues","parameterValues":[["` + user + `","u1","xsd:string"],["` + pass + `","p1","xsd:string"]]}`, ok, "u1", "p1"},
		{"password only keeps the Inform's username", `{"name":"setParameterValues","parameterValues":[["` + pass + `","p2","xsd:string"]]}`, ok, "cruser", "p2"},
		{"fault changes nothing", `{"name":"setParameterValues","parameterValues":[["` + pass + `","p3","xsd:string"]]}`, fault, "cruser", ""},
		{"other parameters change nothing", `{"name":"setParameterValues","parameterValues":[["InternetGatewayDevice.ManagementServer.Password","p4","xsd:string"]]}`, ok, "cruser", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newDevice(t)
			addTask(t, c, tc.body)
			runCPE(t, mustBegin(t, c, tr098("SN1"), t0), tc.cpe, 1)
			if u, p := creds(t, c); u != tc.user || p != tc.pw {
				t.Fatalf("credentials (%q, %q), want (%q, %q)", u, p, tc.user, tc.pw)
			}
			// A periodic Inform (password read back empty) keeps the
			// password; the username is what the CPE reports.
			runCPE(t, mustBegin(t, c, tr098("SN1", cwmp.EventPeriodic), t0), nil, 0)
			if _, p := creds(t, c); p != tc.pw {
				t.Fatalf("after a periodic Inform: password %q, want %q", p, tc.pw)
			}
		})
	}
	t.Run("bootstrap forgets them", func(t *testing.T) {
		c := newDevice(t)
		addTask(t, c, tests[0].body)
		runCPE(t, mustBegin(t, c, tr098("SN1"), t0), ok, 1)
		runCPE(t, mustBegin(t, c, tr098("SN1", cwmp.EventBootstrap), t0), nil, 0)
		if u, p := creds(t, c); u != "cruser" || p != "" {
			t.Fatalf("after 0 BOOTSTRAP: (%q, %q)", u, p)
		}
	})
}

// TestOnTaskFinal: the hook sees every task exactly once, when it becomes
// final (at End, or at TransferComplete), and never for a dropped session
// or an accepted transfer still running.
func TestOnTaskFinal(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, OnTaskFinal: func(tk *fleet.Task) {
		mu.Lock()
		defer mu.Unlock()
		seen[tk.Name+" "+string(tk.Status)]++
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	check := func(when string, want map[string]int) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if !maps.Equal(seen, want) {
			t.Fatalf("%s: final tasks %v, want %v", when, seen, want)
		}
	}
	mustBegin(t, c, tr098("SN1"), t0).End(true)
	addTask(t, c, `{"name":"getRPCMethods"}`)
	addTask(t, c, `{"name":"setParameterValues","parameterValues":[["InternetGatewayDevice.X","1"]]}`)
	exp, err := fleet.ParseTask([]byte(`{"name":"reboot"}`), devID, t0)
	if err != nil {
		t.Fatal(err)
	}
	exp.Expiry = t0.Add(-time.Second)
	if err := c.AddTask(exp); err != nil {
		t.Fatal(err)
	}
	addTask(t, c, `{"name":"download","url":"http://files/fw.bin"}`)

	// A dropped session ends nothing.
	w := mustBegin(t, c, tr098("SN1"), t0)
	w.Next()
	if err := w.End(false); err != nil {
		t.Fatal(err)
	}
	check("dropped session", map[string]int{})

	var dlKey string
	runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(m cwmp.Message) cwmp.Message {
		switch r := m.(type) {
		case *cwmp.SetParameterValues:
			return cwmp.NewFault(9005, "invalid parameter name")
		case *cwmp.Download:
			dlKey = r.CommandKey
			return &cwmp.DownloadResponse{Status: 1}
		}
		return &cwmp.GetRPCMethodsResponse{}
	}, 3)
	want := map[string]int{"getRPCMethods done": 1, "setParameterValues fault": 1, "reboot expired": 1}
	check("after the session", want)

	w = mustBegin(t, c, tr098("SN1", cwmp.EventTransferComplete), t0)
	for range 2 { // a repeated TransferComplete matches nothing the second time
		if err := w.CPERequest(&cwmp.TransferComplete{CommandKey: dlKey}); err != nil {
			t.Fatal(err)
		}
	}
	runCPE(t, w, nil, 0)
	want["download done"] = 1
	check("after TransferComplete", want)
}

// TestTransferTimeout: a Download the CPE accepted (status 1) but never
// completed ends as fault "timeout" in the first session that starts
// after DownloadTimeout (1 h by default); before that it waits, unsent.
func TestTransferTimeout(t *testing.T) {
	c := newDevice(t)
	tk := addTask(t, c, `{"name":"download","url":"http://files/fw.bin"}`)
	other := addTask(t, c, `{"name":"getRPCMethods"}`)
	runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(m cwmp.Message) cwmp.Message {
		if _, ok := m.(*cwmp.Download); ok {
			return &cwmp.DownloadResponse{Status: 1}
		}
		return &cwmp.GetRPCMethodsResponse{}
	}, 2)
	for _, tc := range []struct {
		after time.Duration
		want  fleet.TaskStatus
	}{
		{30 * time.Minute, fleet.StatusRunning},
		{time.Hour, fleet.StatusRunning},
		{time.Hour + time.Second, fleet.StatusFault},
	} {
		runCPE(t, mustBegin(t, c, tr098("SN1", cwmp.EventPeriodic), t0.Add(tc.after)), nil, 0)
		got, err := c.Task(tk.ID)
		if err != nil || got.Status != tc.want {
			t.Fatalf("after %s: %+v, %v; want %s", tc.after, got, err, tc.want)
		}
	}
	got, _ := c.Task(tk.ID)
	if got.Fault == nil || got.Fault.Code != FaultCodeTimeout || got.Result == nil || got.Result.Status != 1 {
		t.Errorf("timed-out download: %s", mustJSON(got))
	}
	if got, _ := c.Task(other.ID); got.Status != fleet.StatusDone {
		t.Errorf("other task: %+v", got)
	}
	if pending, _ := c.PendingTasks(devID); len(pending) != 0 {
		t.Errorf("open tasks left: %d", len(pending))
	}
	// A TransferComplete that comes after all changes nothing.
	w := mustBegin(t, c, tr098("SN1", cwmp.EventTransferComplete), t0.Add(2*time.Hour))
	if err := w.CPERequest(&cwmp.TransferComplete{CommandKey: got.CommandKey}); err != nil {
		t.Fatal(err)
	}
	runCPE(t, w, nil, 0)
	if got, _ := c.Task(tk.ID); got.Status != fleet.StatusFault || got.Fault.Code != FaultCodeTimeout {
		t.Errorf("after a late TransferComplete: %s", mustJSON(got))
	}
}

// TestAddObjectWithValues: an addObject task with GenieACS-style
// parameterValues (relative to the new instance) sends AddObject, then one
// SetParameterValues for <object>.<n>.<name>; it is done when both are.
func TestAddObjectWithValues(t *testing.T) {
	const obj = "InternetGatewayDevice.LANDevice.1.WLANConfiguration."
	body := `{"name":"addObject","objectName":"` + obj + `","parameterValues":[["SSID","guest"],["BeaconType","WPA","xsd:string"]]}`
	added := func(m cwmp.Message) cwmp.Message { return &cwmp.AddObjectResponse{InstanceNumber: 3} }
	tests := []struct {
		name       string
		spv        cwmp.Message // the CPE's answer to the SPV
		wantStatus fleet.TaskStatus
		wantSSID   string
	}{
		{"both succeed", &cwmp.SetParameterValuesResponse{Status: 1}, fleet.StatusDone, "guest"},
		{"values refused", cwmp.NewFault(9007, "invalid parameter value"), fleet.StatusFault, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newDevice(t)
			tk := addTask(t, c, body)
			var spv *cwmp.SetParameterValues
			sent := runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(m cwmp.Message) cwmp.Message {
				if r, ok := m.(*cwmp.SetParameterValues); ok {
					spv = r
					return tc.spv
				}
				return added(m)
			}, 2)
			add := sent[0].(*cwmp.AddObject)
			if spv == nil || len(spv.ParameterList) != 2 || spv.ParameterList[0].Name != obj+"3.SSID" ||
				spv.ParameterList[0].Type != cwmp.TypeString || spv.ParameterList[1].Name != obj+"3.BeaconType" ||
				spv.ParameterKey != add.ParameterKey {
				t.Fatalf("SPV after AddObject: %+v (AddObject key %q)", spv, add.ParameterKey)
			}
			got, _ := c.Task(tk.ID)
			if got.Status != tc.wantStatus || got.Result == nil || got.Result.InstanceNumber != 3 {
				t.Fatalf("task: %s", mustJSON(got))
			}
			if tc.wantStatus == fleet.StatusDone && got.Result.Status != 1 {
				t.Errorf("result status %d, want 1 (the SPV's)", got.Result.Status)
			}
			if p, err := c.Parameter(devID, obj+"3."); err != nil || !p.Object {
				t.Errorf("new instance not cached: %+v, %v", p, err)
			}
			if p, _ := c.Parameter(devID, obj+"3.SSID"); p.Value != tc.wantSSID {
				t.Errorf("cached SSID %q, want %q", p.Value, tc.wantSSID)
			}
		})
	}
	t.Run("dropped between AddObject and SPV", func(t *testing.T) {
		c := newDevice(t)
		tk := addTask(t, c, body)
		w := mustBegin(t, c, tr098("SN1"), t0)
		req := w.Next()
		w.Answer(&cwmp.Answer{Request: req, Response: added(req)})
		if _, ok := w.Next().(*cwmp.SetParameterValues); !ok {
			t.Fatal("no SPV after AddObjectResponse")
		}
		if err := w.End(false); err != nil {
			t.Fatal(err)
		}
		// The next session sets the values on the instance that exists
		// instead of creating another one.
		sent := runCPE(t, mustBegin(t, c, tr098("SN1"), t0), func(cwmp.Message) cwmp.Message {
			return &cwmp.SetParameterValuesResponse{}
		}, 1)
		if spv, ok := sent[0].(*cwmp.SetParameterValues); !ok || spv.ParameterList[0].Name != obj+"3.SSID" {
			t.Fatalf("resent %v", methods(sent))
		}
		if got, _ := c.Task(tk.ID); got.Status != fleet.StatusDone || got.Result.InstanceNumber != 3 {
			t.Fatalf("task: %s", mustJSON(got))
		}
	})
	t.Run("bad values refused", func(t *testing.T) {
		c := newDevice(t)
		for _, pvs := range []string{`[[".SSID","x"]]`, `[["SSID.","x"]]`, `[["a..b","x"]]`, `[["",""]]`, `[["SS ID","x"]]`, `[["SSID","x","xsd:nope"]]`} {
			tk, err := fleet.ParseTask([]byte(`{"name":"addObject","objectName":"`+obj+`","parameterValues":`+pvs+`}`), devID, t0)
			if err != nil {
				continue // refused by fleet already
			}
			if err := c.AddTask(tk); !errors.Is(err, fleet.ErrBadTask) {
				t.Errorf("AddTask(%s) = %v, want ErrBadTask", pvs, err)
			}
		}
		if ts, _ := c.DeviceTasks(devID); len(ts) != 0 {
			t.Errorf("%d tasks queued", len(ts))
		}
	})
}

// TestTaskAddedMidSession: BeginSession reads the device's open tasks and
// later Nexts read them again only once a task was added (Cache.taskGen).
// A task queued through the API or the downlink after the session began,
// even after a Next that found nothing, is still sent in that session,
// and a task queued before BeginSession is sent without another read.
func TestTaskAddedMidSession(t *testing.T) {
	tests := []struct {
		name string
		add  func(t *testing.T, c *Cache)
	}{
		{"api", func(t *testing.T, c *Cache) { addTask(t, c, `{"name":"reboot"}`) }},
		{"downlink", func(t *testing.T, c *Cache) { mustStore(t, c, downTask(1, "T1", false)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newDevice(t)
			w := mustBegin(t, c, tr098("SN1", cwmp.EventPeriodic), t0.Add(time.Minute))
			if m := w.Next(); m != nil {
				t.Fatalf("no task queued, Next = %s", m.Method())
			}
			tt.add(t, c)
			m := w.Next()
			if m == nil || m.Method() != cwmp.MethodReboot {
				t.Fatalf("a task added mid-session: Next = %v, want Reboot", m)
			}
			w.Answer(&cwmp.Answer{Request: m, Response: &cwmp.RebootResponse{}})
			if err := w.End(true); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("before", func(t *testing.T) {
		c := newDevice(t)
		addTask(t, c, `{"name":"getRPCMethods"}`)
		w := mustBegin(t, c, tr098("SN1", cwmp.EventPeriodic), t0.Add(time.Minute))
		if !w.tasksRead || len(w.queue) != 1 {
			t.Fatalf("BeginSession read %d open tasks (read %v), want the one queued", len(w.queue), w.tasksRead)
		}
		sent := runCPE(t, w, func(cwmp.Message) cwmp.Message { return &cwmp.GetRPCMethodsResponse{} }, 1)
		if fmt.Sprint(methods(sent)) != "[GetRPCMethods]" {
			t.Fatalf("sent %v", methods(sent))
		}
	})
}

// TestHeldSessionStampsTaskWhenPicked: a session held open restamps its
// clock when it looks for a follow-up task, and again when it picks one
// up: a task queued after the look began is found all the same, and must
// not be stamped as started before it was queued (under load,
// TestOperatorSequenceRidesOneSession saw a task updated 0.9 ms before it
// was posted).
func TestHeldSessionStampsTaskWhenPicked(t *testing.T) {
	c := newDevice(t)
	w := mustBegin(t, c, tr098("SN1"), t0)
	if m := w.Next(); m != nil {
		t.Fatalf("nothing queued, the session sent %s", m.Method())
	}
	w.restamp(time.Now().Add(-time.Second)) // the hold looked a second ago
	posted := time.Now()
	tk := addTask(t, c, `{"name":"reboot"}`)
	if m := w.Next(); m == nil || m.Method() != "Reboot" {
		t.Fatalf("the held session sent %v, want the queued Reboot", m)
	}
	if w.cur == nil || w.cur.t.ID != tk.ID {
		t.Fatalf("running %+v, want task %s", w.cur, tk.ID)
	}
	if got := w.cur.t.Updated; got.Before(posted) {
		t.Fatalf("task stamped %s, before it was posted at %s", got.Format(time.RFC3339Nano), posted.UTC().Format(time.RFC3339Nano))
	}
}
