package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/sim"
)

// system is a whole edgeacs on loopback, from the real binary: core nodes,
// edges and simulated CPEs, with a cluster CA made by `edgeacs ca`.
type system struct {
	t     *testing.T
	bin   string
	dir   string
	ca    string
	cores []*coreProc
	sync  map[string]string // core id → sync address
	edges map[string]*edgeProc
	// token is the founder's admin token, which the tests' requests and
	// commands carry.
	token string
}

type edgeProc struct {
	coreProc
	cwmp string
}

func newSystem(t *testing.T, cores int, edges ...string) *system {
	t.Helper()
	s := &system{t: t, bin: coreBuild(t), dir: t.TempDir(), sync: map[string]string{}, edges: map[string]*edgeProc{}}
	s.ca = filepath.Join(s.dir, "ca")
	s.run("ca", "init", "--dir", s.ca)
	for i := range cores {
		s.run("ca", "issue", "--dir", s.ca, "--name", fmt.Sprintf("n%d", i+1), "--role", "core")
	}
	for _, e := range edges {
		s.run("ca", "issue", "--dir", s.ca, "--name", e, "--role", "edge")
	}
	for i := range cores {
		id := fmt.Sprintf("n%d", i+1)
		p := &coreProc{id: id, api: coreFreeAddr(t), raft: coreFreeAddr(t), logPath: filepath.Join(s.dir, id+".log")}
		s.sync[id] = freeUDPAddr(t)
		p.args = []string{"core", "--id", id, "--data", filepath.Join(s.dir, id), "--raft-addr", p.raft, "--api-addr", p.api,
			"--sync-addr", s.sync[id], "--ca-dir", s.ca, "--heartbeat-timeout", "500ms", "--election-timeout", "500ms",
			"--raft-nosync"}
		if i == 0 {
			p.args = append(p.args, "--bootstrap")
		} else {
			p.args = append(p.args, "--join", s.cores[0].raft)
		}
		s.cores = append(s.cores, p)
	}
	t.Cleanup(func() {
		for _, e := range s.edges {
			e.stop()
		}
		for _, p := range s.cores {
			p.stop()
		}
		if t.Failed() {
			for _, p := range s.cores {
				b, _ := os.ReadFile(p.logPath)
				t.Logf("---- %s log ----\n%s", p.id, tail(string(b), 6000))
			}
			for _, e := range s.edges {
				b, _ := os.ReadFile(e.logPath)
				t.Logf("---- edge %s log ----\n%s", e.id, tail(string(b), 6000))
			}
		}
	})
	for _, p := range s.cores {
		p.start(t, s.bin)
	}
	s.useAdminToken()
	coreWait(t, "a core cluster with a leader", 30*time.Second, func() bool {
		var st coreStatus
		code, err := coreHTTP("GET", "http://"+s.cores[len(s.cores)-1].api+"/api/v1/cluster", "", &st)
		return err == nil && code == 200 && st.Leader != "" && len(st.Servers) == cores
	})
	return s
}

// useAdminToken reads the founder's admin token and makes the tests'
// requests to every core, and the commands they run, carry it.
func (s *system) useAdminToken() {
	s.t.Helper()
	s.token = readAdminToken(s.t, filepath.Join(s.dir, s.cores[0].id))
	s.t.Setenv("EDGEACS_TOKEN", s.token)
	for _, p := range s.cores {
		useToken(p.api, s.token)
	}
}

func (s *system) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.bin, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("edgeacs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// syncAddrs lists every core's sync address, the edges' --core.
func (s *system) syncAddrs() string {
	var out []string
	for _, p := range s.cores {
		out = append(out, s.sync[p.id])
	}
	return strings.Join(out, ",")
}

// startEdge starts edge name against the given core sync addresses.
func (s *system) startEdge(name, cores string) *edgeProc {
	s.t.Helper()
	e := s.edges[name]
	if e == nil {
		e = &edgeProc{coreProc: coreProc{id: name, api: coreFreeAddr(s.t), logPath: filepath.Join(s.dir, "edge-"+name+".log")},
			cwmp: coreFreeAddr(s.t)}
		e.args = []string{"edge", "--id", name, "--data", filepath.Join(s.dir, "edge-"+name), "--cwmp-addr", e.cwmp,
			"--api-addr", e.api, "--core", cores, "--ca-dir", s.ca, "--username", "cpe", "--password", "cpe-secret"}
		s.edges[name] = e
	}
	e.start(s.t, s.bin)
	coreWait(s.t, "edge "+name+" to serve /healthz", 30*time.Second, func() bool {
		code, err := coreHTTP("GET", "http://"+e.api+"/healthz", "", nil)
		return err == nil && code == 200
	})
	// The edge learns the fleet's tokens from the core over the sync
	// link; its API accepts the admin token once it has.
	useToken(e.api, s.token)
	coreWait(s.t, "edge "+name+" to accept the fleet's admin token", 30*time.Second, func() bool {
		code, err := coreHTTP("GET", "http://"+e.api+"/api/v1/devices?limit=1", "", nil)
		return err == nil && code == 200
	})
	return e
}

// simulate runs n simulated CPEs against edge e until the test ends.
func (s *system) simulate(e *edgeProc, n int, seed int64) *sim.Fleet {
	s.t.Helper()
	f, err := sim.New(sim.Config{
		ACSURL: "http://" + e.cwmp + "/", Count: n, Model: sim.ModelMixed, Seed: seed,
		Username: "cpe", Password: "cpe-secret", PoolConnections: true, TimeScale: 0.01,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { f.Close() })
	return f
}

type coreDevice struct {
	ID         string    `json:"_id"`
	Edge       string    `json:"edge"`
	LastInform time.Time `json:"lastInform"`
	Parameters map[string]struct {
		Value string `json:"value"`
	} `json:"parameters"`
}

type coreTask struct {
	ID     string `json:"_id"`
	Device string `json:"device"`
	Status string `json:"status"`
	Edge   string `json:"edge"`
}

func devicePath(id string) string { return "/api/v1/devices/" + url.PathEscape(id) }

// spv is a setParameterValues task body for the device's SSID.
func spv(d *sim.Device, value string) string {
	ssid := d.Root() + "LANDevice.1.WLANConfiguration.1.SSID"
	if d.Root() == "Device." {
		ssid = "Device.WiFi.SSID.1.SSID"
	}
	return fmt.Sprintf(`{"name": "setParameterValues", "parameterValues": [[%q, %q, "xsd:string"]]}`, ssid, value)
}

func ssidOf(d *sim.Device) string {
	if d.Root() == "Device." {
		return "Device.WiFi.SSID.1.SSID"
	}
	return d.Root() + "LANDevice.1.WLANConfiguration.1.SSID"
}

// TestSyncCoreEdgeCPE is issue 9's done-line: three core processes and two
// edges, started from the CLI with a CA made by `edgeacs ca`, run tasks
// created on any core node on the right edge's CPEs; results are visible on
// every core node and the core's device state equals the edge's.
func TestSyncCoreEdgeCPE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs five processes")
	}
	s := newSystem(t, 3, "popA", "popB")
	a := s.startEdge("popA", s.syncAddrs())
	b := s.startEdge("popB", s.syncAddrs())
	fa, fb := s.simulate(a, 10, 1), s.simulate(b, 10, 2)

	homes := map[string]string{}
	for i := range 10 {
		homes[fa.Device(i).ID()] = "popA"
		homes[fb.Device(i).ID()] = "popB"
	}
	for _, c := range s.cores {
		coreWait(t, "20 devices at core "+c.id+" homed at their edges", 60*time.Second, func() bool {
			var devs []coreDevice
			code, err := coreHTTP("GET", "http://"+c.api+"/api/v1/devices?limit=100", "", &devs)
			if err != nil || code != 200 || len(devs) != 20 {
				return false
			}
			for _, d := range devs {
				if homes[d.ID] != d.Edge {
					return false
				}
			}
			return true
		})
	}

	// A task through each core node, alternating edges, each waited for.
	var lat []time.Duration
	var done []coreTask
	for i := range 6 {
		c := s.cores[i%3]
		d := fa.Device(i)
		if i%2 == 1 {
			d = fb.Device(i)
		}
		value := fmt.Sprintf("via-%s-%d", c.id, i)
		start := time.Now()
		var task coreTask
		code, err := coreRetry("POST", "http://"+c.api+devicePath(d.ID())+"/tasks?connection_request&wait=20s", spv(d, value), &task)
		lat = append(lat, time.Since(start))
		if err != nil || code != 200 || task.Status != "done" {
			t.Fatalf("task %d through %s for %s: %d %v %+v", i, c.id, d.ID(), code, err, task)
		}
		if task.Edge != homes[d.ID()] {
			t.Fatalf("task went to edge %q, the device is homed at %q", task.Edge, homes[d.ID()])
		}
		if got, _ := d.Get(ssidOf(d)); got != value {
			t.Fatalf("the CPE's SSID is %q, want %q", got, value)
		}
		done = append(done, task)
	}
	slices.Sort(lat)
	t.Logf("task round trip core API → edge → CPE → core: min %v, median %v, max %v", lat[0], lat[len(lat)/2], lat[len(lat)-1])

	// Results are on every core node, and the core's state is the edge's.
	for _, task := range done {
		for _, c := range s.cores {
			coreWait(t, "task "+task.ID+" done at "+c.id, 20*time.Second, func() bool {
				var got coreTask
				code, err := coreHTTP("GET", "http://"+c.api+"/api/v1/tasks/"+task.ID, "", &got)
				return err == nil && code == 200 && got.Status == "done"
			})
		}
	}
	for i := range 6 {
		d := fa.Device(i)
		e := a
		if i%2 == 1 {
			d, e = fb.Device(i), b
		}
		want := getDevice(t, "http://"+e.api+devicePath(d.ID())).Parameters[ssidOf(d)].Value
		for _, c := range s.cores {
			coreWait(t, "device state at "+c.id+" equal to the edge's", 20*time.Second, func() bool {
				var cd coreDevice
				code, err := coreHTTP("GET", "http://"+c.api+devicePath(d.ID()), "", &cd)
				return err == nil && code == 200 && cd.Parameters[ssidOf(d)].Value == want
			})
		}
	}

	// The edges show up, connected, in `edgeacs edges list`.
	out := s.run("edges", "list", "--api", s.cores[1].api, "--json")
	var edges []map[string]any
	if err := json.Unmarshal([]byte(out), &edges); err != nil || len(edges) != 2 {
		t.Fatalf("edges list: %v\n%s", err, out)
	}
	for _, e := range edges {
		if e["connected"] != true {
			t.Fatalf("edge not shown connected: %v", e)
		}
	}
}

// TestSyncBackhaulCut cuts the edge's backhaul (a relay that drops every
// datagram) for longer than the keep-alive: the edge keeps serving its
// CPEs, runs the tasks it holds and a task created on its local API, and
// after the link is back every result reaches the core exactly once.
func TestSyncBackhaulCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two processes")
	}
	s := newSystem(t, 1, "pop")
	relay := newUDPRelay(t, s.sync["n1"])
	e := s.startEdge("pop", relay.Addr())
	f := s.simulate(e, 4, 7)
	core := "http://" + s.cores[0].api
	coreWait(t, "4 devices at the core", 60*time.Second, func() bool {
		var devs []coreDevice
		code, err := coreHTTP("GET", core+"/api/v1/devices", "", &devs)
		return err == nil && code == 200 && len(devs) == 4
	})
	// Tasks the edge will hold: queued at the core without waking the CPE.
	d := f.Device(0)
	var held []coreTask
	for i := range 3 {
		var task coreTask
		code, err := coreHTTP("POST", core+devicePath(d.ID())+"/tasks", spv(d, fmt.Sprint("held-", i)), &task)
		if err != nil || code != 202 {
			t.Fatalf("queue task: %d %v", code, err)
		}
		held = append(held, task)
	}
	// Each held task by ID: the device's list also holds the edge's own
	// connection-request credential task, so a count could pass early.
	for _, h := range held {
		coreWait(t, "held task "+h.ID+" at the edge", 20*time.Second, func() bool {
			code, err := coreHTTP("GET", "http://"+e.api+"/api/v1/tasks/"+h.ID, "", nil)
			return err == nil && code == 200
		})
	}

	relay.SetCut(true)
	coreWait(t, "the edge to see the link down", 20*time.Second, func() bool {
		var h map[string]any
		code, err := coreHTTP("GET", "http://"+e.api+"/healthz", "", &h)
		sync, _ := h["sync"].(map[string]any)
		return err == nil && code == 200 && sync != nil && sync["connected"] == false
	})
	// A held task may have run before the cut: the device can open a
	// session of its own (a retry after a session that failed on a busy
	// box) and the result then reached the core legitimately. What ran
	// before the edge saw the link down is known at the core by now.
	ranBefore := map[string]bool{}
	for _, h := range held {
		var got coreTask
		if code, err := coreHTTP("GET", core+"/api/v1/tasks/"+h.ID, "", &got); err == nil && code == 200 && got.Status == "done" {
			ranBefore[h.ID] = true
		}
	}
	// The edge serves its CPEs: a local task with a connection request
	// opens a session that also runs the held tasks.
	local := postTask(t, "http://"+e.api+devicePath(d.ID()), spv(d, "local"))
	if local.Status != "done" {
		t.Fatalf("local task during the outage: %+v", local)
	}
	for _, h := range held {
		var got edgeTask
		code, err := coreHTTP("GET", "http://"+e.api+"/api/v1/tasks/"+h.ID+"?wait=10s", "", &got)
		if err != nil || code != 200 || got.Status != "done" {
			t.Fatalf("held task %s at the edge during the outage: %d %v %+v", h.ID, code, err, got)
		}
	}
	for _, h := range held {
		var got coreTask
		coreHTTP("GET", core+"/api/v1/tasks/"+h.ID, "", &got)
		if got.Status == "done" && !ranBefore[h.ID] {
			t.Fatalf("the core learnt held task %s's result through a cut backhaul", h.ID)
		}
	}
	// The local task exists only at the edge until the link is back.
	if code, err := coreHTTP("GET", core+"/api/v1/tasks/"+local.ID, "", nil); err != nil || code != 404 {
		t.Fatalf("the core knows the local task %s during the outage: %d %v", local.ID, code, err)
	}

	relay.SetCut(false)
	ids := append([]string{local.ID}, held[0].ID, held[1].ID, held[2].ID)
	for _, id := range ids {
		coreWait(t, "result "+id+" at the core", 30*time.Second, func() bool {
			var got coreTask
			code, err := coreHTTP("GET", core+"/api/v1/tasks/"+id, "", &got)
			return err == nil && code == 200 && got.Status == "done"
		})
	}
	// Exactly once: the device's task list at the core has each ID once.
	var all []coreTask
	if code, err := coreHTTP("GET", core+devicePath(d.ID())+"/tasks", "", &all); err != nil || code != 200 {
		t.Fatalf("list tasks: %d %v", code, err)
	}
	seen := map[string]int{}
	for _, task := range all {
		seen[task.ID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("task %s appears %d times at the core", id, seen[id])
		}
	}
	if got, _ := d.Get(ssidOf(d)); got != "local" {
		t.Fatalf("CPE SSID %q", got)
	}
}
