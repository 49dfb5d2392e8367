package edge

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// benchCPEs are hand-rolled CPEs with pre-encoded Informs, so that the
// client side costs as little CPU as possible and the numbers measure the
// edge (the client still shares the two cores).
type benchCPEs struct {
	ids     []string
	informs [][]byte
	clients []*http.Client // per device: each CPE has its own digest nonce and count
	url     string
}

func newBenchCPEs(b *testing.B, e *testEdge, n int) *benchCPEs {
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	bc := &benchCPEs{url: e.acs}
	shared := &http.Client{Transport: tr}
	for i := 0; i < n; i++ {
		c := &cpe{t: b, oui: "B0B0B0", pc: "Bench", serial: fmt.Sprintf("BENCH%06d", i)}
		bc.ids = append(bc.ids, c.id())
		bc.informs = append(bc.informs, c.informBody([]string{cwmp.EventPeriodic}))
		client := shared
		if e.cfg.CPEAuth == AuthDigest {
			// Answers the first challenge, then authenticates
			// pre-emptively with the cached nonce and a rising count, as
			// CPEs that keep a nonce do. One per device, over the shared
			// connections: a nonce count shared by concurrent clients
			// arrives out of order, which the edge refuses as a replay.
			client = &http.Client{Transport: &cwmp.DigestTransport{Username: testUser, Password: testPass, Base: tr}}
		}
		bc.clients = append(bc.clients, client)
	}
	// Register every device first: the first Inform of a device costs more
	// (registration) and is not what a steady-state session looks like.
	for i := range bc.informs {
		if err := bc.session(i, nil); err != nil {
			b.Fatal(err)
		}
	}
	return bc
}

// session runs one CWMP session for device i. answer, when not nil,
// answers each ACS request.
func (bc *benchCPEs) session(i int, answer func(cwmp.Message) cwmp.Message) error {
	code, body, cookie, err := bc.post(i, bc.informs[i], "")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("inform: HTTP %d: %s", code, body)
	}
	var next []byte
	for k := 0; k < 10; k++ {
		code, body, _, err = bc.post(i, next, cookie)
		if err != nil {
			return err
		}
		if code == http.StatusNoContent {
			return nil
		}
		if code != http.StatusOK || answer == nil {
			return fmt.Errorf("HTTP %d: %s", code, body)
		}
		env, err := cwmp.Decode(body)
		if err != nil {
			return err
		}
		next, err = cwmp.Encode(&cwmp.Envelope{Namespace: cwmp.NS10, ID: env.ID, HasID: true, Body: answer(env.Body)})
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("session did not end")
}

func (bc *benchCPEs) post(i int, body []byte, cookie string) (int, []byte, string, error) {
	req, err := http.NewRequest(http.MethodPost, bc.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	if cookie != "" {
		req.Header["Cookie"] = []string{cookie}
	}
	resp, err := bc.clients[i].Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if c := resp.Header.Get("Set-Cookie"); c != "" {
		cookie, _, _ = strings.Cut(c, ";")
	}
	return resp.StatusCode, raw, cookie, err
}

func runSessions(b *testing.B, bc *benchCPEs, before func(i int), answer func(cwmp.Message) cwmp.Message) {
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % len(bc.ids)
			if before != nil {
				before(i)
			}
			if err := bc.session(i, answer); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkPlainSessions: Inform → InformResponse → empty POST → 204, many
// devices in parallel against the real server on loopback.
func BenchmarkPlainSessions(b *testing.B) {
	for _, auth := range []string{AuthNone, AuthDigest} {
		b.Run("auth="+auth, func(b *testing.B) {
			e := startEdge(b, "", func(c *Config) { c.CPEAuth = auth })
			bc := newBenchCPEs(b, e, 2000)
			runSessions(b, bc, nil, nil)
		})
	}
}

// BenchmarkGPVSessions: each session carries one getParameterValues task
// (queued just before the session, answered by the CPE, recorded).
func BenchmarkGPVSessions(b *testing.B) {
	e := startEdge(b, "", func(c *Config) { c.CPEAuth = AuthNone })
	bc := newBenchCPEs(b, e, 2000)
	answer := func(m cwmp.Message) cwmp.Message {
		if gpv, ok := m.(*cwmp.GetParameterValues); ok {
			return &cwmp.GetParameterValuesResponse{ParameterList: []cwmp.ParameterValue{{Name: gpv.ParameterNames[0], Value: "bench", Type: cwmp.TypeString}}}
		}
		return cwmp.NewFault(cwmp.FaultMethodNotSupported, "")
	}
	before := func(i int) {
		t := &fleet.Task{Device: bc.ids[i], Name: fleet.TaskGetParameterValues, Status: fleet.StatusPending,
			Timestamp: time.Now().UTC(), ParameterNames: []string{"InternetGatewayDevice.DeviceInfo.SoftwareVersion"}}
		if err := e.node.Cache().AddTask(t); err != nil {
			b.Error(err)
		}
	}
	runSessions(b, bc, before, answer)
}

// BenchmarkTaskRoundTrip: POST a task with ?connection_request&wait
// through the local API; the simulated device is woken, runs it, and the
// API answers with the result. Reports p50 and p99.
func BenchmarkTaskRoundTrip(b *testing.B) {
	e := startEdge(b, "", nil)
	f := startFleet(b, e, 20, nil)
	waitInformed(b, e, f)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := f.Device(i % f.Len())
		name := d.Root() + "DeviceInfo.SoftwareVersion"
		start := time.Now()
		task := e.postTask(d.ID(), `{"name":"getParameterValues","parameterNames":["`+name+`"]}`, "connection_request&wait=10s")
		if task.Status != fleet.StatusDone {
			b.Fatalf("task %s", task.Status)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkSimSessions: the built-in simulator (real TR-098/TR-181 Informs,
// cookie handling, its own XML encode/decode) against the edge on the same
// two cores, every device informing as fast as it can. The first session of
// each device (BOOTSTRAP, registration, connection-request credentials) is
// part of the run.
func BenchmarkSimSessions(b *testing.B) {
	for _, auth := range []string{AuthNone, AuthDigest} {
		b.Run("auth="+auth, func(b *testing.B) {
			e := startEdge(b, "", func(c *Config) { c.CPEAuth = auth; c.ManualCRCredentials = true })
			b.ResetTimer()
			start := time.Now()
			f := startFleet(b, e, 128, func(c *sim.Config) { c.InformInterval = time.Millisecond; c.TimeScale = 1 })
			for f.Stats().SessionsCompleted < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			st := f.Stats()
			b.ReportMetric(float64(st.SessionsCompleted)/el.Seconds(), "sessions/s")
			b.ReportMetric(float64(st.SessionP99.Microseconds())/1000, "p99-ms")
			if st.SessionErrors > 0 {
				b.Errorf("%d session errors", st.SessionErrors)
			}
		})
	}
}

// BenchmarkBackToBackTasks: an operator's sequence on one device, 30
// tasks (get, set, get, ...) each posted with ?connection_request&wait as
// soon as the previous one answered, through the local API to one
// simulated device, with the production connection-request limits. One op
// is the whole sequence, started on an idle device (no session open);
// p50/p99/max are per task; crs/op and sessions/op count what reached the
// device. "defaults" is the shipped configuration; "no-linger" the token
// bucket alone; "interval-only" what the edge did before both (one
// request per CRMinInterval, every session ending at once).
func BenchmarkBackToBackTasks(b *testing.B) {
	for _, bc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"defaults", nil},
		{"no-linger", func(c *Config) { c.SessionLinger = -1 }},
		{"interval-only", func(c *Config) { c.SessionLinger, c.CRBurst = -1, 1 }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := startEdge(b, "", func(c *Config) {
				c.CRMinInterval = 0 // the default
				if bc.mutate != nil {
					bc.mutate(c)
				}
			})
			f := startFleet(b, e, 1, nil)
			waitInformed(b, e, f)
			benchSequence(b, e, f.Device(0), f)
		})
	}
}

func benchSequence(b *testing.B, e *testEdge, d *sim.Device, f *sim.Fleet) {
	get := `{"name":"getParameterValues","parameterNames":["` + d.Root() + `DeviceInfo.SoftwareVersion"]}`
	const seq = 30
	lat := make([]time.Duration, 0, seq*b.N)
	st0 := f.Stats()
	var began time.Time
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each sequence starts on an idle device, as an operator's does:
		// the previous one's session has ended, and the device's
		// connection-request allowance is what one sequence a second
		// leaves (not part of the time).
		b.StopTimer()
		waitFor(b, 10*time.Second, "the device's session to end", func() bool { return e.node.Server().OpenSessions() == 0 })
		if !began.IsZero() {
			time.Sleep(time.Until(began.Add(e.node.cfg.CRMinInterval)))
		}
		began = time.Now()
		b.StartTimer()
		for k := range seq {
			body := get
			if k%3 == 1 {
				body = `{"name":"setParameterValues","parameterValues":[["` + d.Root() + `DeviceInfo.ProvisioningCode","bench-` + fmt.Sprint(i*seq+k) + `","xsd:string"]]}`
			}
			start := time.Now()
			task := e.postTask(d.ID(), body, "connection_request&wait=10s")
			if task.Status != fleet.StatusDone {
				b.Fatalf("task %d: %s %+v", k, task.Status, task.Fault)
			}
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	st := f.Stats()
	b.ReportMetric(float64(st.ConnectionRequests-st0.ConnectionRequests)/float64(b.N), "crs/op")
	b.ReportMetric(float64(st.SessionsCompleted-st0.SessionsCompleted)/float64(b.N), "sessions/op")
}

// BenchmarkBootstrapSessions: b.N simulated devices (mixed TR-098 and
// TR-181) bootstrap once each against a standalone edge with its default
// presets (bootstrap refresh, inform credentials), 256 at a time: what one
// bootstrap session costs the edge and the simulator in CPU and in RPCs.
// The in-process counterpart of cmd/edgeacs BenchmarkBootstrapStorm, for
// profiles (-cpuprofile).
func BenchmarkBootstrapSessions(b *testing.B) {
	e := startEdge(b, "", func(c *Config) { c.CPEAuth = AuthNone })
	cpu0 := cpuTime()
	b.ResetTimer()
	f := startFleet(b, e, b.N, func(c *sim.Config) {
		c.InformInterval = time.Hour
		c.Ramp = time.Duration(b.N) * time.Second / 2000
		c.PoolConnections = false
		c.Logger = slog.New(slog.DiscardHandler)
	})
	for f.Stats().SessionsCompleted < uint64(b.N) {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	st := f.Stats()
	var rpcs uint64
	for _, v := range st.RPCs {
		rpcs += v
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/session")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	b.ReportMetric(float64(rpcs)/float64(b.N), "rpcs/session")
	b.ReportMetric(float64(st.SessionErrors), "errors")
	b.Logf("RPCs %v, p50 %s p99 %s", st.RPCs, st.SessionP50, st.SessionP99)
}

// BenchmarkDeviceStates measures counting 10,000 devices by online state
// (what a /metrics scrape pays at most every statesMaxAge): ns/op is the
// whole count.
func BenchmarkDeviceStates(b *testing.B) {
	c := openTestCache(b, b.TempDir())
	now := time.Now()
	err := c.db.Update(func(txn *badger.Txn) error {
		for i := range 10_000 {
			d := Device{ID: fmt.Sprintf("00D09E-IGD-SIM%07d", i), OUI: "00D09E", ProductClass: "IGD", SerialNumber: fmt.Sprintf("SIM%07d", i),
				Manufacturer: "Simulated", Root: "InternetGatewayDevice.", Registered: now, LastInform: now, LastBoot: now, LastBootstrap: now,
				LastEvents: []string{"0 BOOTSTRAP", "1 BOOT"}, RemoteAddr: "127.0.0.1", ConnectionRequestURL: fmt.Sprintf("http://10.0.%d.%d:7547/cr", i/256, i%256),
				CRUsername: "cr-user", CRPassword: "secret", SoftwareVersion: "1.0.0", RootListed: now, InformInterval: 300 * time.Second}
			if err := setCBOR(txn, pDevice+d.ID, &d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		got, err := c.DeviceStates(now)
		if err != nil || got[fleet.DeviceOnline] != 10_000 {
			b.Fatalf("states %v, %v", got, err)
		}
	}
}
