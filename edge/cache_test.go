package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

var (
	quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
	t0       = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

func openTestCache(t testing.TB, dir string) *Cache {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := OpenCache(dir, CacheOptions{SyncWrites: false, Logger: quietLog, EdgeID: "e1", ScriptLimits: testScriptLimits})
	if err != nil {
		t.Fatalf("OpenCache: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pv(name, value string) cwmp.ParameterValue {
	return cwmp.ParameterValue{Name: name, Value: value, Type: cwmp.TypeString}
}

// tr098 and tr181 build Informs as the two data-model roots send them.
func tr098(serial string, events ...string) *cwmp.Inform {
	inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{Manufacturer: "Acme", OUI: "001122", ProductClass: "IGD", SerialNumber: serial},
		ParameterList: []cwmp.ParameterValue{
			pv("InternetGatewayDevice.DeviceSummary", "InternetGatewayDevice:1.4[](Baseline:1)"),
			pv("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "1.0"),
			pv("InternetGatewayDevice.ManagementServer.ConnectionRequestURL", "http://10.0.0.2:7547/cr"),
			pv("InternetGatewayDevice.ManagementServer.UDPConnectionRequestAddress", "203.0.113.5:7547"),
			pv("InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", "cruser"),
			pv("InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ExternalIPAddress", "203.0.113.5"),
		}}
	for _, e := range events {
		inf.Event = append(inf.Event, cwmp.Event{Code: e})
	}
	return inf
}

func tr181(serial string, events ...string) *cwmp.Inform {
	inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{Manufacturer: "Acme", OUI: "00AABB", ProductClass: "Router X", SerialNumber: serial},
		ParameterList: []cwmp.ParameterValue{
			pv("Device.RootDataModelVersion", "2.11"),
			pv("Device.DeviceInfo.SoftwareVersion", "2.0"),
			pv("Device.ManagementServer.ConnectionRequestURL", "http://10.0.0.3:7547/"),
			{Name: "Device.ManagementServer.STUNEnable", Value: "1", Type: cwmp.TypeBoolean},
		}}
	for _, e := range events {
		inf.Event = append(inf.Event, cwmp.Event{Code: e})
	}
	return inf
}

func mustBegin(t testing.TB, c *Cache, inf *cwmp.Inform, now time.Time) *SessionWork {
	t.Helper()
	w, err := c.BeginSession(inf, InformMeta{RemoteAddr: "192.0.2.1:5000", FilesBaseURL: "http://edge:7547/files/", Now: now})
	if err != nil {
		t.Fatalf("BeginSession: %v", err)
	}
	return w
}

func TestBeginSessionRecordsInform(t *testing.T) {
	tests := []struct {
		name     string
		inf      *cwmp.Inform
		id, root string
		check    func(*Device) error
	}{
		{"tr098", tr098("SN1", cwmp.EventBootstrap, cwmp.EventBoot), "001122-IGD-SN1", "InternetGatewayDevice.", func(d *Device) error {
			if d.ConnectionRequestURL != "http://10.0.0.2:7547/cr" || d.UDPConnectionRequestAddress != "203.0.113.5:7547" ||
				d.CRUsername != "cruser" || d.SoftwareVersion != "1.0" || !d.LastBoot.Equal(t0) || !d.LastBootstrap.Equal(t0) {
				return fmt.Errorf("reachability not recorded: %+v", d)
			}
			return nil
		}},
		{"tr181", tr181("SN2", cwmp.EventPeriodic), "00AABB-Router%20X-SN2", "Device.", func(d *Device) error {
			if !d.STUNEnable || d.SoftwareVersion != "2.0" || !d.LastBoot.IsZero() {
				return fmt.Errorf("tr181 fields: %+v", d)
			}
			return nil
		}},
	}
	c := openTestCache(t, "")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustBegin(t, c, tt.inf, t0)
			if w.DeviceID() != tt.id {
				t.Fatalf("DeviceID = %q, want %q", w.DeviceID(), tt.id)
			}
			if err := w.End(true); err != nil {
				t.Fatal(err)
			}
			d, err := c.Device(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if d.Root != tt.root || d.RemoteAddr != "192.0.2.1:5000" || !d.LastInform.Equal(t0) || !d.Registered.Equal(t0) {
				t.Errorf("device = %+v", d)
			}
			if err := tt.check(d); err != nil {
				t.Error(err)
			}
			params, err := c.Parameters(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.inf.ParameterList {
				if got := params[p.Name]; got.Value != p.Value || got.Type != p.Type || !got.Timestamp.Equal(t0) {
					t.Errorf("param %s = %+v, want %q", p.Name, got, p.Value)
				}
			}
			if c.DeviceCount() != i+1 || c.OutboxLen() != i+1 {
				t.Errorf("DeviceCount=%d OutboxLen=%d, want %d", c.DeviceCount(), c.OutboxLen(), i+1)
			}
		})
	}
	// A second Inform keeps Registered and changes only what changed.
	inf := tr098("SN1", cwmp.EventPeriodic)
	inf.ParameterList[1].Value = "1.1"
	w := mustBegin(t, c, inf, t0.Add(time.Hour))
	w.End(true)
	d, _ := c.Device("001122-IGD-SN1")
	if !d.Registered.Equal(t0) || !d.LastInform.Equal(t0.Add(time.Hour)) || d.SoftwareVersion != "1.1" || c.DeviceCount() != 2 {
		t.Errorf("second inform: %+v count %d", d, c.DeviceCount())
	}
	recs, _ := c.ReadOutbox(0, 100)
	var delta fleet.DeviceDelta
	if err := fleet.Unmarshal(recs[len(recs)-1].Data, &delta); err != nil {
		t.Fatal(err)
	}
	if len(delta.Parameters) != 1 || delta.Parameters[0].Value != "1.1" || delta.Edge != "e1" {
		t.Errorf("delta of a periodic inform = %+v, want only the changed parameter", delta)
	}
	if _, err := c.BeginSession(&cwmp.Inform{DeviceId: cwmp.DeviceID{OUI: "X"}}, InformMeta{}); !errors.Is(err, fleet.ErrBadDeviceID) {
		t.Errorf("inform without serial: %v", err)
	}
}

func TestBootstrapClearsOldLife(t *testing.T) {
	c := openTestCache(t, "")
	id := "001122-IGD-SN1"
	w := mustBegin(t, c, tr098("SN1", cwmp.EventBootstrap), t0)
	w.End(true)
	// An extra cached node, a finished (faulted) task and a pending task.
	done := &fleet.Task{Device: id, Name: fleet.TaskReboot}
	pending := &fleet.Task{Device: id, Name: fleet.TaskGetRPCMethods}
	for _, tk := range []*fleet.Task{done, pending} {
		if err := c.AddTask(tk); err != nil {
			t.Fatal(err)
		}
	}
	w = mustBegin(t, c, tr098("SN1"), t0)
	runCPE(t, w, func(m cwmp.Message) cwmp.Message {
		if _, ok := m.(*cwmp.Reboot); ok {
			return cwmp.NewFault(cwmp.FaultRequestDenied, "")
		}
		return &cwmp.GetRPCMethodsResponse{}
	}, 2)
	extra := tr098("SN1")
	extra.ParameterList = append(extra.ParameterList, pv("InternetGatewayDevice.X_Old.Value", "stale"))
	mustBegin(t, c, extra, t0).End(true)
	if f, _ := c.Faults(id); len(f) != 1 {
		t.Fatalf("faults before bootstrap = %v", f)
	}
	pending2 := &fleet.Task{Device: id, Name: fleet.TaskGetRPCMethods}
	c.AddTask(pending2)

	w = mustBegin(t, c, tr098("SN1", cwmp.EventBootstrap), t0.Add(time.Hour))
	w.End(false)
	params, _ := c.Parameters(id)
	if _, ok := params["InternetGatewayDevice.X_Old.Value"]; ok {
		t.Error("bootstrap kept a stale parameter")
	}
	if len(params) != len(tr098("x").ParameterList) {
		t.Errorf("after bootstrap %d params, want the inform's %d", len(params), len(tr098("x").ParameterList))
	}
	if f, _ := c.Faults(id); len(f) != 0 {
		t.Errorf("faults after bootstrap = %v", f)
	}
	if _, err := c.Task(done.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("finished task after bootstrap: %v", err)
	}
	if tk, err := c.Task(pending2.ID); err != nil || tk.Status != fleet.StatusPending {
		t.Errorf("pending task after bootstrap: %+v %v", tk, err)
	}
	d, _ := c.Device(id)
	if !d.LastBootstrap.Equal(t0.Add(time.Hour)) || !d.Registered.Equal(t0) {
		t.Errorf("device after bootstrap: %+v", d)
	}
}

func TestCacheCRUD(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	for i := range 5 {
		mustBegin(t, c, tr098("SN"+strconv.Itoa(i)), t0.Add(time.Duration(i)*time.Minute)).End(true)
	}
	mustBegin(t, c, tr181("Z1"), t0).End(true)

	if _, err := c.Device("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := c.Device("a/b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("device id with slash: %v", err)
	}
	if err := c.SetDeviceCredentials("001122-IGD-SN0", "cpe", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeviceCredentials("001122-IGD-NEW", "pre", "prov"); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.Device("001122-IGD-SN0"); d.Username != "cpe" || d.Password != "secret" {
		t.Errorf("credentials not in device: %+v", d)
	}
	if u, p, err := c.Credentials("001122-IGD-NEW"); u != "pre" || p != "prov" || err != nil {
		t.Errorf("pre-provisioned credentials: %q %q %v", u, p, err)
	}
	// A device's first session sees pre-provisioned credentials.
	if w := mustBegin(t, c, tr098("NEW"), t0); w.Device().Username != "pre" {
		t.Errorf("session device credentials: %+v", w.Device())
	}

	tests := []struct {
		q    DeviceQuery
		want []string
		next string
	}{
		{DeviceQuery{}, []string{"001122-IGD-NEW", "001122-IGD-SN0", "001122-IGD-SN1", "001122-IGD-SN2", "001122-IGD-SN3", "001122-IGD-SN4", "00AABB-Router%20X-Z1"}, ""},
		{DeviceQuery{Limit: 2}, []string{"001122-IGD-NEW", "001122-IGD-SN0"}, "001122-IGD-SN0"},
		{DeviceQuery{Limit: 2, Cursor: "001122-IGD-SN0"}, []string{"001122-IGD-SN1", "001122-IGD-SN2"}, "001122-IGD-SN2"},
		{DeviceQuery{Limit: 2, Offset: 5}, []string{"001122-IGD-SN4", "00AABB-Router%20X-Z1"}, ""},
		{DeviceQuery{IDPrefix: "00AABB"}, []string{"00AABB-Router%20X-Z1"}, ""},
		{DeviceQuery{IDPrefix: "00AABB", Cursor: "0000"}, []string{"00AABB-Router%20X-Z1"}, ""},
		{DeviceQuery{LastInformAfter: t0.Add(2*time.Minute + time.Second)}, []string{"001122-IGD-SN3", "001122-IGD-SN4"}, ""},
		{DeviceQuery{LastInformBefore: t0.Add(time.Second), IDPrefix: "001122-IGD-S"}, []string{"001122-IGD-SN0"}, ""},
		{DeviceQuery{Param: "Device.DeviceInfo.SoftwareVersion", Value: "2.0"}, []string{"00AABB-Router%20X-Z1"}, ""},
		{DeviceQuery{Param: "Device.DeviceInfo.SoftwareVersion", Value: "9"}, nil, ""},
	}
	for _, tt := range tests {
		got, next, err := c.ListDevices(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range got {
			ids = append(ids, d.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tt.want) || next != tt.next {
			t.Errorf("ListDevices(%+v) = %v next %q; want %v next %q", tt.q, ids, next, tt.want, tt.next)
		}
	}

	tk := &fleet.Task{Device: "001122-IGD-SN1", Name: fleet.TaskReboot}
	if err := c.AddTask(tk); err != nil || len(tk.ID) != 26 {
		t.Fatalf("AddTask: %v id %q", err, tk.ID)
	}
	if err := c.AddTask(&fleet.Task{Device: "001122-IGD-SN1", Name: "explode"}); !errors.Is(err, fleet.ErrBadTask) {
		t.Errorf("AddTask(bad kind) = %v", err)
	}
	if err := c.DeleteDevice("001122-IGD-SN1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Task(tk.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("task of deleted device: %v", err)
	}
	if p, err := c.Parameters("001122-IGD-SN1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("parameters of deleted device: %v %v", p, err)
	}
	if err := c.DeleteDevice("001122-IGD-SN1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if c.DeviceCount() != 6 {
		t.Errorf("DeviceCount = %d, want 6", c.DeviceCount())
	}

	// Outbox: read in order, ack a prefix.
	n := c.OutboxLen()
	recs, err := c.ReadOutbox(0, 3)
	if err != nil || len(recs) != 3 || recs[0].Seq >= recs[1].Seq {
		t.Fatalf("ReadOutbox = %v, %v", recs, err)
	}
	if err := c.AckOutbox(recs[2].Seq); err != nil {
		t.Fatal(err)
	}
	if c.OutboxLen() != n-3 {
		t.Errorf("OutboxLen after ack = %d, want %d", c.OutboxLen(), n-3)
	}

	// Counters survive a clean reopen.
	c.Close()
	c2 := openTestCache(t, dir)
	if c2.DeviceCount() != 6 || c2.OutboxLen() != n-3 {
		t.Errorf("after reopen DeviceCount=%d OutboxLen=%d", c2.DeviceCount(), c2.OutboxLen())
	}
	mustBegin(t, c2, tr098("BRANDNEW"), t0).End(true)
	if recs, _ := c2.ReadOutbox(0, 1000); recs[len(recs)-1].Seq <= recs[0].Seq {
		t.Error("outbox sequence went backwards after reopen")
	}
}

// TestCrashDurability re-runs this test binary as a child that writes what
// a CPE is told is delivered and exits without Close; the parent reopens
// and must find all of it.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv("EDGE_CRASH_CHILD_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "cache")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), "EDGE_CRASH_CHILD_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	c := openTestCache(t, dir)
	if c.DeviceCount() != 2 {
		t.Errorf("DeviceCount after crash = %d, want 2 (recounted)", c.DeviceCount())
	}
	d, err := c.Device("001122-IGD-SN1")
	if err != nil || len(d.LastEvents) != 1 || d.LastEvents[0] != cwmp.EventBoot {
		t.Fatalf("device after crash: %+v %v", d, err)
	}
	ts, _ := c.DeviceTasks("001122-IGD-SN1")
	if len(ts) != 2 || ts[0].Status != fleet.StatusDone || ts[1].Status != fleet.StatusDone {
		t.Fatalf("tasks after crash: %+v", ts)
	}
	if p, _ := c.Parameter("001122-IGD-SN1", "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"); p.Value != "home" {
		t.Errorf("SPV result after crash: %+v", p)
	}
	if c.OutboxLen() < 4 {
		t.Errorf("OutboxLen after crash = %d", c.OutboxLen())
	}
}

func crashChild(dir string) {
	c, err := OpenCache(dir, CacheOptions{SyncWrites: true, Logger: quietLog})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	id := "001122-IGD-SN1"
	w, _ := c.BeginSession(tr098("SN1"), InformMeta{FilesBaseURL: "http://x/", Now: t0})
	w.End(true)
	mustOK := func(err error) {
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
	}
	os.MkdirAll(filepath.Join(dir, "..", "files"), 0o755)
	dl := &fleet.Task{Device: id, Name: fleet.TaskDownload, URL: "http://elsewhere/fw.bin", FileType: "1 Firmware Upgrade Image"}
	spv := &fleet.Task{Device: id, Name: fleet.TaskSetParameterValues,
		ParameterValues: []fleet.ParameterValue{{Name: "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", Value: "home", Type: "xsd:string"}}}
	mustOK(c.AddTask(dl))
	mustOK(c.AddTask(spv))
	w, err = c.BeginSession(tr098("SN1"), InformMeta{Now: t0})
	mustOK(err)
	w.Next()
	w.Answer(&cwmp.Answer{Response: &cwmp.DownloadResponse{Status: 1}})
	w.Next()
	w.Answer(&cwmp.Answer{Response: &cwmp.SetParameterValuesResponse{}})
	mustOK(w.End(true))
	// Next session: the Inform (told delivered) and TransferComplete (told
	// delivered) must survive; the process dies right after.
	w, err = c.BeginSession(tr098("SN1", cwmp.EventBoot), InformMeta{Now: t0})
	mustOK(err)
	mustOK(w.CPERequest(&cwmp.TransferComplete{CommandKey: dl.ID}))
	w2, err := c.BeginSession(tr181("Q"), InformMeta{Now: t0})
	mustOK(err)
	_ = w2
	os.Exit(3)
}

// BenchmarkOpenCache100k fills a cache with 100k devices of 30 parameters
// each (through BeginSession, as CPEs would), then times OpenCache after a
// clean Close and after a crash (no device counter: key-only recount).
// Run with -benchtime=1x; filling takes a while.
func BenchmarkOpenCache100k(b *testing.B) {
	const devices = 100_000
	dir := b.TempDir()
	c, err := OpenCache(dir, CacheOptions{Logger: quietLog, DisableOutbox: true})
	if err != nil {
		b.Fatal(err)
	}
	fill := time.Now()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < devices; i += 4 {
				inf := tr098("SN" + strconv.Itoa(i))
				for j := len(inf.ParameterList); j < 30; j++ {
					inf.ParameterList = append(inf.ParameterList, pv("InternetGatewayDevice.X_Bench.P"+strconv.Itoa(j), strconv.Itoa(i)))
				}
				w, err := c.BeginSession(inf, InformMeta{})
				if err != nil {
					b.Error(err)
					return
				}
				w.End(true)
			}
		}()
	}
	wg.Wait()
	b.Logf("filled %d devices x 30 params in %v", devices, time.Since(fill))
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		c, err := OpenCache(dir, CacheOptions{Logger: quietLog})
		if err != nil {
			b.Fatal(err)
		}
		clean := time.Since(start)
		if c.DeviceCount() != devices {
			b.Fatalf("DeviceCount = %d", c.DeviceCount())
		}
		// Close Badger without writing the counter: a crash, as the next open sees it.
		c.db.Close()
		start = time.Now()
		c, err = OpenCache(dir, CacheOptions{Logger: quietLog})
		if err != nil {
			b.Fatal(err)
		}
		crash := time.Since(start)
		if c.DeviceCount() != devices {
			b.Fatalf("DeviceCount after crash = %d", c.DeviceCount())
		}
		c.Close()
		b.ReportMetric(clean.Seconds(), "s-open-clean")
		b.ReportMetric(crash.Seconds(), "s-open-crash")
	}
}

func TestRunGCStopsOnCancel(t *testing.T) {
	c := openTestCache(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.runGC(ctx, time.Millisecond)
	}()
	mustBegin(t, c, tr098("GC"), t0).End(true) // GC ticks alongside writes
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunGC did not stop after cancel")
	}
}

// TestCloseWithDirectoryGone: a cache whose directory was removed while
// it held unflushed writes closes with an error naming the directory
// within cacheCloseTimeout, where Badger alone retried writing its
// memtable out every second for ever and the edge never exited. In a
// child process: the Badger it leaves retrying goes with it.
func TestCloseWithDirectoryGone(t *testing.T) {
	if dir := os.Getenv("EDGE_GONE_CHILD_DIR"); dir != "" {
		goneChild(dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "cache")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCloseWithDirectoryGone$")
	cmd.Env = append(os.Environ(), "EDGE_GONE_CHILD_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), "did not close") || !strings.Contains(string(out), dir) {
		t.Fatalf("child: %v (want exit 4 and the close error naming %s)\n%s", err, dir, out)
	}
}

func goneChild(dir string) {
	c, err := OpenCache(dir, CacheOptions{Logger: quietLog})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	for i := range 20 {
		w, err := c.BeginSession(tr098("SN"+strconv.Itoa(i)), InformMeta{Now: t0})
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		w.End(true)
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	cacheCloseTimeout = 2 * time.Second
	err = c.Close()
	fmt.Println(err)
	if err == nil {
		os.Exit(3)
	}
	os.Exit(4)
}
