package edge

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// TestE2ETaskKinds runs every task kind end to end: API → connection
// request → the simulator's session through the real CWMP server → result
// in the cache, on a TR-098 and a TR-181 device.
func TestE2ETaskKinds(t *testing.T) {
	e := startEdge(t, "", nil)
	var uploads atomic.Int64
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			io.Copy(io.Discard, r.Body)
			uploads.Add(1)
		}
	}))
	defer upSrv.Close()
	f := startFleet(t, e, 2, nil)
	waitInformed(t, e, f)

	// Secrets that must never reach a log line: the CPE→ACS password and
	// every connection-request password the edge provisions.
	secrets := []string{testPass}
	collectSecrets := func() {
		for i := 0; i < f.Len(); i++ {
			if d := e.device(f.Device(i).ID()); d.CRPassword != "" {
				secrets = append(secrets, d.CRPassword)
			}
		}
	}
	collectSecrets()
	if len(secrets) != 1+f.Len() {
		t.Fatalf("provisioned connection-request passwords: %d of %d", len(secrets)-1, f.Len())
	}
	defer func() {
		collectSecrets()
		logs := e.logs.String()
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a secret (%d characters) reached the log", len(s))
			}
		}
	}()

	// A firmware file in the edge's store, for the download task.
	putFile(t, e, "fw_v9.9.9.bin", "1 Firmware Upgrade Image", strings.Repeat("firmware", 4096))

	for i := 0; i < f.Len(); i++ {
		d := f.Device(i)
		root := d.Root()
		ssid := root + "LANDevice.1.WLANConfiguration.1.SSID"
		wlan := root + "LANDevice.1.WLANConfiguration."
		if root == "Device." {
			ssid = "Device.WiFi.SSID.1.SSID"
			wlan = "Device.WiFi.SSID."
		}
		t.Run(d.Model(), func(t *testing.T) {
			id := d.ID()
			run := func(body string) *fleet.Task {
				t.Helper()
				task := e.postTask(id, body, "connection_request&wait=15s")
				if !task.Status.Final() {
					task = e.waitTask(task.ID, 15*time.Second)
				}
				if task.Status != fleet.StatusDone {
					t.Fatalf("%s: status %s fault %+v", body, task.Status, task.Fault)
				}
				return task
			}

			task := run(`{"name":"getParameterValues","parameterNames":["` + ssid + `"]}`)
			if task.Result == nil || len(task.Result.ParameterValues) != 1 {
				t.Fatalf("GPV result %+v", task.Result)
			}

			run(`{"name":"setParameterValues","parameterValues":[["` + ssid + `","e2e-ssid","xsd:string"]]}`)
			if v, _ := d.Get(ssid); v != "e2e-ssid" {
				t.Fatalf("device SSID = %q after SPV", v)
			}
			if p, err := e.node.Cache().Parameter(id, ssid); err != nil || p.Value != "e2e-ssid" {
				t.Fatalf("cached SSID = %+v, %v", p, err)
			}

			task = run(`{"name":"getParameterNames","parameterPath":"` + wlan + `","nextLevel":true}`)
			if task.Result == nil || len(task.Result.ParameterNames) == 0 {
				t.Fatalf("GPN result %+v", task.Result)
			}

			run(`{"name":"setParameterAttributes","parameterAttributes":[{"name":"` + ssid + `","notification":2}]}`)
			task = run(`{"name":"getParameterAttributes","parameterNames":["` + ssid + `"]}`)
			if task.Result == nil || len(task.Result.ParameterAttributes) != 1 || task.Result.ParameterAttributes[0].Notification == nil ||
				*task.Result.ParameterAttributes[0].Notification != 2 {
				t.Fatalf("GPA result %s", mustJSON(task.Result))
			}

			task = run(`{"name":"addObject","objectName":"` + wlan + `","parameterValues":[["SSID","guest"]]}`)
			if task.Result == nil || task.Result.InstanceNumber == 0 {
				t.Fatalf("AddObject result %+v", task.Result)
			}
			inst := wlan + itoa(task.Result.InstanceNumber) + "."
			if v, _ := d.Get(inst + "SSID"); v != "guest" {
				t.Fatalf("new instance's SSID = %q on the device", v)
			}
			run(`{"name":"deleteObject","objectName":"` + inst + `"}`)

			run(`{"name":"refreshObject","objectName":"` + wlan + `1."}`)
			if p, err := e.node.Cache().Parameter(id, ssid); err != nil || p.Value != "e2e-ssid" {
				t.Fatalf("cached SSID after refresh = %+v, %v", p, err)
			}

			task = run(`{"name":"getRPCMethods"}`)
			if task.Result == nil || !slices.Contains(task.Result.MethodList, "GetParameterValues") {
				t.Fatalf("GetRPCMethods result %+v", task.Result)
			}

			before := e.device(id).LastInform
			run(`{"name":"scheduleInform","delaySeconds":1}`)
			waitFor(t, 15*time.Second, "the scheduled Inform", func() bool {
				dev := e.device(id)
				return dev.LastInform.After(before) && slices.Contains(dev.LastEvents, cwmp.EventMScheduleInform)
			})

			run(`{"name":"reboot"}`)
			waitFor(t, 15*time.Second, "the Inform after Reboot", func() bool {
				return slices.Contains(e.device(id).LastEvents, cwmp.EventMReboot)
			})

			task = e.postTask(id, `{"name":"download","fileType":"1 Firmware Upgrade Image","fileName":"fw_v9.9.9.bin"}`, "connection_request")
			task = e.waitTask(task.ID, 20*time.Second)
			if task.Status != fleet.StatusDone {
				t.Fatalf("download: %s %+v", task.Status, task.Fault)
			}
			waitFor(t, 15*time.Second, "the new SoftwareVersion in an Inform", func() bool {
				return e.device(id).SoftwareVersion == "9.9.9"
			})

			n := uploads.Load()
			task = e.postTask(id, `{"name":"upload","fileType":"1 Vendor Configuration File","url":"`+upSrv.URL+`/cfg"}`, "connection_request")
			task = e.waitTask(task.ID, 20*time.Second)
			if task.Status != fleet.StatusDone || uploads.Load() != n+1 {
				t.Fatalf("upload: %s %+v, %d uploads", task.Status, task.Fault, uploads.Load()-n)
			}

			run(`{"name":"factoryReset"}`)
			waitFor(t, 15*time.Second, "the bootstrap Inform after FactoryReset", func() bool {
				return slices.Contains(e.device(id).LastEvents, cwmp.EventBootstrap) && e.device(id).LastBootstrap.After(before)
			})
		})
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func putFile(t testing.TB, e *testEdge, name, fileType, content string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, e.api+"/files/"+name+"?fileType="+url.QueryEscape(fileType), strings.NewReader(content))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT file: %s %s", resp.Status, raw)
	}
}

// TestE2EFaultDoesNotBlock: an SPV of a read-only parameter ends as a CPE
// fault and the next task of the same session still runs.
func TestE2EFaultDoesNotBlock(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 1, func(c *sim.Config) { c.Model = sim.ModelTR098 })
	waitInformed(t, e, f)
	d := f.Device(0)
	bad := e.postTask(d.ID(), `{"name":"setParameterValues","parameterValues":[["InternetGatewayDevice.DeviceInfo.SoftwareVersion","6.6.6","xsd:string"]]}`, "")
	good := e.postTask(d.ID(), `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]}`, "connection_request")
	bad = e.waitTask(bad.ID, 15*time.Second)
	good = e.waitTask(good.ID, 15*time.Second)
	if bad.Status != fleet.StatusFault || bad.Fault == nil || (bad.Fault.Code != "9008" && bad.Fault.Code != "9003") {
		t.Fatalf("SPV of a read-only parameter: %s %+v", bad.Status, bad.Fault)
	}
	if good.Status != fleet.StatusDone || good.Result == nil || len(good.Result.ParameterValues) != 1 || good.Result.ParameterValues[0].Value == "6.6.6" {
		t.Fatalf("task after the fault: %s %s", good.Status, mustJSON(good.Result))
	}
	if m := e.metric(`edgeacs_edge_task_rpcs_total{method="SetParameterValues",outcome="fault"}`); !strings.HasSuffix(m, " 1") {
		t.Fatalf("fault metric %q", m)
	}
	for _, want := range []string{`edgeacs_edge_tasks_total{name="setParameterValues",outcome="fault"}`,
		`edgeacs_edge_tasks_total{name="getParameterValues",outcome="done"}`} {
		if m := e.metric(want); !strings.HasSuffix(m, " 1") {
			t.Errorf("task metric %s: %q", want, m)
		}
	}
}

// TestE2ERebootMidTasks: tasks queued behind a Reboot wait for the session
// after the reboot (nothing follows a Reboot in its session) and run there.
func TestE2ERebootMidTasks(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 1, func(c *sim.Config) { c.Model = sim.ModelTR181; c.RebootDelay = 300 * time.Millisecond })
	waitInformed(t, e, f)
	d := f.Device(0)
	reboot := e.postTask(d.ID(), `{"name":"reboot"}`, "")
	spv := e.postTask(d.ID(), `{"name":"setParameterValues","parameterValues":[["Device.WiFi.SSID.1.SSID","after-reboot","xsd:string"]]}`, "connection_request")
	reboot = e.waitTask(reboot.ID, 15*time.Second)
	spv = e.waitTask(spv.ID, 15*time.Second)
	if reboot.Status != fleet.StatusDone || spv.Status != fleet.StatusDone {
		t.Fatalf("reboot %s %+v, spv %s %+v", reboot.Status, reboot.Fault, spv.Status, spv.Fault)
	}
	if !slices.Contains(e.device(d.ID()).LastEvents, cwmp.EventMReboot) && !slices.Contains(e.device(d.ID()).LastEvents, cwmp.EventBoot) {
		t.Fatalf("last events %v: the SPV did not run after the reboot", e.device(d.ID()).LastEvents)
	}
	if v, _ := d.Get("Device.WiFi.SSID.1.SSID"); v != "after-reboot" {
		t.Fatalf("SSID %q", v)
	}
}

// TestE2EDroppedSession: a CPE that vanishes mid-session leaves its task
// pending; the next session resends it with the same CommandKey.
func TestE2EDroppedSession(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.SessionTimeout = time.Second })
	c := newCPE(t, e, "DROP0001")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)

	task := e.postTask(c.id(), `{"name":"reboot"}`, "")
	c.open(cwmp.EventPeriodic)
	code, env := c.emptyPost()
	if code != http.StatusOK || env == nil {
		t.Fatalf("expected the Reboot, got %d", code)
	}
	r1, ok := env.Body.(*cwmp.Reboot)
	if !ok {
		t.Fatalf("expected Reboot, got %s", env.Body.Method())
	}
	// The CPE disappears: no answer. The janitor ends the session.
	waitFor(t, 10*time.Second, "the idle session to be dropped", func() bool { return e.node.Server().OpenSessions() == 0 })
	if cur, err := e.node.Cache().Task(task.ID); err != nil || cur.Status != fleet.StatusPending {
		t.Fatalf("after the drop the task is %+v, %v; want pending", cur, err)
	}
	c.open(cwmp.EventPeriodic)
	code, env = c.emptyPost()
	if code != http.StatusOK || env == nil {
		t.Fatalf("expected the Reboot again, got %d", code)
	}
	r2, ok := env.Body.(*cwmp.Reboot)
	if !ok || r2.CommandKey != r1.CommandKey || r1.CommandKey == "" {
		t.Fatalf("resent %+v, first %+v: want the same CommandKey", env.Body, r1)
	}
	code, _, raw := c.post(envelope(t, env.ID, &cwmp.RebootResponse{}))
	if code != http.StatusNoContent {
		t.Fatalf("after RebootResponse: %d %s", code, raw)
	}
	if got := e.waitTask(task.ID, 5*time.Second); got.Status != fleet.StatusDone || got.Attempts != 2 {
		t.Fatalf("task %s attempts %d", got.Status, got.Attempts)
	}
}

// finishSession answers every request of the edge with a generic success
// until the session ends.
func finishSession(t testing.TB, c *cpe) {
	t.Helper()
	var env *cwmp.Envelope
	code := 0
	for i := 0; i < 20; i++ {
		var body []byte
		if env != nil {
			body = envelope(t, env.ID, genericAnswer(env.Body))
		}
		code, env, _ = c.post(body)
		if code == http.StatusNoContent {
			return
		}
		if code != http.StatusOK || env == nil {
			t.Fatalf("session: HTTP %d", code)
		}
	}
	t.Fatal("session did not end after 20 exchanges")
}

func genericAnswer(m cwmp.Message) cwmp.Message {
	switch m.(type) {
	case *cwmp.SetParameterValues:
		return &cwmp.SetParameterValuesResponse{}
	case *cwmp.GetParameterValues:
		return &cwmp.GetParameterValuesResponse{}
	case *cwmp.Reboot:
		return &cwmp.RebootResponse{}
	}
	return cwmp.NewFault(cwmp.FaultMethodNotSupported, "")
}

// TestE2ERestart: stopping the edge and reopening its data directory loses
// neither devices, nor parameters, nor pending tasks, and the pending task
// runs after the restart.
func TestE2ERestart(t *testing.T) {
	dir := t.TempDir()
	e := startEdge(t, dir, nil)
	f := startFleet(t, e, 4, nil)
	waitInformed(t, e, f)
	d := f.Device(1)
	ssid := "Device.WiFi.SSID.1.SSID"
	if d.Root() != "Device." {
		ssid = d.Root() + "LANDevice.1.WLANConfiguration.1.SSID"
	}
	done := e.postTask(d.ID(), `{"name":"setParameterValues","parameterValues":[["`+ssid+`","before-restart","xsd:string"]]}`, "connection_request&wait=15s")
	if done.Status != fleet.StatusDone {
		t.Fatalf("SPV before restart: %s", done.Status)
	}
	f.Close()
	// The task is to stay pending across the restart: not picked up by the
	// session that ran the SPV, which lingers for follow-ups.
	waitFor(t, 15*time.Second, "the device's session to end", func() bool { return e.node.Server().OpenSessions() == 0 })
	pending := e.postTask(d.ID(), `{"name":"getParameterValues","parameterNames":["`+ssid+`"]}`, "")
	snap := e.snapshot(d.ID())
	count := e.node.Cache().DeviceCount()
	e.stop()

	e2 := startEdge(t, dir, nil)
	if got := e2.node.Cache().DeviceCount(); got != count {
		t.Fatalf("device count %d after restart, want %d", got, count)
	}
	if after := e2.snapshot(d.ID()); !after.equal(snap) {
		t.Fatalf("device state changed across the restart:\nbefore %s\nafter  %s", mustJSON(snap), mustJSON(after))
	}
	f2 := startFleet(t, e2, 4, nil) // same seed: the same devices come back
	_ = f2
	got := e2.waitTask(pending.ID, 20*time.Second)
	if got.Status != fleet.StatusDone || got.Result == nil || len(got.Result.ParameterValues) != 1 {
		t.Fatalf("pending task after restart: %s %s", got.Status, mustJSON(got.Result))
	}
}

// TestE2ESetWithoutType: a setParameterValues value without a type takes
// the device's type for the parameter, as GenieACS does: fetched from the
// CPE first when the cache has none (a device whose tree was not refreshed) (the simulator, like a real CPE,
// refuses "6" as xsd:string for an unsignedInt with 9006), from the
// cache the next time.
func TestE2ESetWithoutType(t *testing.T) {
	e := startEdge(t, "", nil)
	// Without the default bootstrap preset's full refresh, the port is
	// known only once a task asks for it.
	if err := e.node.Cache().DeletePreset("bootstrap"); err != nil {
		t.Fatal(err)
	}
	f := startFleet(t, e, 1, func(c *sim.Config) { c.Model = sim.ModelTR181 })
	waitInformed(t, e, f)
	d := f.Device(0)
	const port = "Device.WiFi.Radio.1.Channel" // an unsignedInt
	if _, err := e.node.Cache().Parameter(d.ID(), port); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s cached before any task (%v): the test would not exercise the fetch", port, err)
	}
	gpvs := func() string {
		m := e.metric(`edgeacs_edge_task_rpcs_total{method="GetParameterValues",outcome="ok"}`)
		return m[strings.LastIndexByte(m, ' ')+1:]
	}
	before, _ := strconv.Atoi(gpvs())
	for i, want := range []string{"6", "11"} {
		task := e.postTask(d.ID(), `{"name":"setParameterValues","parameterValues":[["`+port+`","`+want+`"]]}`, "connection_request")
		task = e.waitTask(task.ID, 15*time.Second)
		if task.Status != fleet.StatusDone {
			t.Fatalf("set %d: %s %+v", i, task.Status, task.Fault)
		}
		if got := task.ParameterValues[0].Type; got != "xsd:unsignedInt" {
			t.Fatalf("set %d sent type %q, want the device's xsd:unsignedInt", i, got)
		}
		if v, _ := d.Get(port); v != want {
			t.Fatalf("set %d: CPE holds %q, want %q", i, v, want)
		}
		if p, err := e.node.Cache().Parameter(d.ID(), port); err != nil || p.Value != want || p.Type != "xsd:unsignedInt" {
			t.Fatalf("set %d: cached %+v, %v", i, p, err)
		}
	}
	// The first set fetched the type (one GPV), the second read it from
	// the cache: one GPV in all.
	if after, _ := strconv.Atoi(gpvs()); after-before != 1 {
		t.Errorf("the two sets sent %d GPVs, want 1", after-before)
	}
}
