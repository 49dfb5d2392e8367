package script

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/sim"
)

// t0 is the first session's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// harness is a simulated CPE and the edge's cache of it: sessions run
// provision scripts through Exec and the engine, the device answering.
type harness struct {
	t     testing.TB
	dev   *sim.Tree
	cache *provision.MemTree
	id    string
	clock time.Time
	// log describes every RPC sent, in order ("GPN <path> next|all",
	// "GPV <n>", "SPV <name>=<value>,...", "Add <obj>", "Del <obj>").
	log []string
	// scriptLog gets the scripts' log() lines.
	scriptLog []string
}

func newHarness(t testing.TB, model string) *harness {
	t.Helper()
	m, err := sim.LoadModel(model)
	if err != nil {
		t.Fatalf("LoadModel(%s): %v", model, err)
	}
	dev := sim.NewTree(m, sim.Identity{Seed: 7, Index: 3, ConnectionRequestURL: "http://10.0.0.1:7547/cr"})
	h := &harness{t: t, dev: dev, cache: provision.NewMemTree(), clock: t0}
	oui, class := "00D09E", "HG2000"
	h.id = oui + "-" + class + "-" + dev.Serial()
	// The device record's own parameters, as the edge writes them at the
	// Inform (GenieACS's DeviceID.*).
	for k, v := range map[string]string{"ID": h.id, "OUI": oui, "ProductClass": class,
		"SerialNumber": dev.Serial(), "Manufacturer": "EdgeSim"} {
		h.putVirtual("DeviceID."+k, v, cwmp.TypeString)
	}
	return h
}

func (h *harness) putVirtual(path, value, typ string) {
	h.cache.Put(provision.Entry{Path: path, Value: value, Type: typ, PathTime: t0.Add(-time.Hour),
		ValueTime: t0.Add(-time.Hour), WritableTime: t0.Add(-time.Hour)})
}

// inform records the Inform's parameters: a cold cache knows only these.
func (h *harness) inform(at time.Time) *harness {
	provision.RecordValues(h.cache, h.dev.Forced(), at)
	return h
}

// discover fills the cache with the whole tree as learnt at `at`.
func (h *harness) discover(at time.Time) *harness {
	h.t.Helper()
	gpn := &cwmp.GetParameterNames{ParameterPath: "", NextLevel: false}
	if err := provision.ApplyResponse(h.cache, gpn, cpeAnswer(h.dev, gpn), at); err != nil {
		h.t.Fatalf("discover names: %v", err)
	}
	gpv := &cwmp.GetParameterValues{ParameterNames: []string{""}}
	if err := provision.ApplyResponse(h.cache, gpv, cpeAnswer(h.dev, gpv), at); err != nil {
		h.t.Fatalf("discover values: %v", err)
	}
	return h
}

// prov is one provision script of a session, on a channel.
type prov struct {
	channel string
	script  *Script
	args    []any
	limits  Limits
	// virtual, when set, runs the script as a virtual parameter.
	virtual *VirtualArgs
}

// session is the outcome of one CWMP session.
type session struct {
	out   *provision.Outcome
	execs []*Exec
	rpcs  []string
}

// session runs the provisions in one CWMP session at h.clock: Exec steps
// before each Next, the device answers each RPC, tags are stored at the
// end. It fails the test if the session does not end within 100 rounds.
func (h *harness) session(provs ...prov) session {
	h.t.Helper()
	ctx := context.Background()
	run := provision.NewRun(provision.Options{Now: h.clock, DeviceID: h.id})
	var s session
	for _, p := range provs {
		ch, err := run.Channel(p.channel)
		if err != nil {
			h.t.Fatal(err)
		}
		env := Env{Collector: ch, Tree: h.cache, Now: run.Now(), DeviceID: h.id, Args: p.args,
			Limits: testLimits(p.limits), Log: func(msg string) { h.scriptLog = append(h.scriptLog, msg) }}
		var x *Exec
		if p.virtual != nil {
			x, err = p.script.StartVirtualParameter(env, *p.virtual)
		} else {
			x, err = p.script.Start(env)
		}
		if err != nil {
			h.t.Fatal(err)
		}
		s.execs = append(s.execs, x)
	}
	start := len(h.log)
	step := func(idle bool) {
		for _, x := range s.execs {
			if _, err := x.Step(ctx, idle); err != nil {
				h.t.Fatalf("Step: %v", err)
			}
		}
	}
	for round := 0; round < 100; round++ {
		step(false)
		rpcs, done := run.Next(h.cache)
		if done {
			finished := true
			for _, x := range s.execs {
				finished = finished && x.Done()
			}
			if finished {
				s.out = run.Outcome()
				s.rpcs = h.log[start:]
				provision.ApplyTags(h.cache, s.out.Tags, h.clock)
				for _, x := range s.execs {
					h.t.Logf("session at %v: %s ran %d times; RPCs %v", h.clock.Format("15:04:05"), x.s.name, x.Runs(), s.rpcs)
				}
				h.clock = h.clock.Add(time.Hour)
				return s
			}
			step(true)
			continue
		}
		for _, m := range rpcs {
			h.clock = h.clock.Add(10 * time.Millisecond)
			h.log = append(h.log, describeRPC(m))
			if err := run.Answer(h.cache, &cwmp.Answer{Request: m, Response: cpeAnswer(h.dev, m)}, h.clock); err != nil {
				h.t.Fatalf("Answer(%s): %v", describeRPC(m), err)
			}
		}
	}
	h.t.Fatalf("session did not end in 100 rounds; RPCs: %v", h.log[start:])
	return s
}

// cpeAnswer answers an ACS request as the simulated device does.
func cpeAnswer(dev *sim.Tree, m cwmp.Message) cwmp.Message {
	fault := func(f *cwmp.Fault, ok cwmp.Message) cwmp.Message {
		if f != nil {
			return f
		}
		return ok
	}
	switch r := m.(type) {
	case *cwmp.GetParameterNames:
		list, f := dev.GetNames(r.ParameterPath, r.NextLevel)
		return fault(f, &cwmp.GetParameterNamesResponse{ParameterList: list})
	case *cwmp.GetParameterValues:
		list, f := dev.GetValues(r.ParameterNames)
		return fault(f, &cwmp.GetParameterValuesResponse{ParameterList: list})
	case *cwmp.SetParameterValues:
		return fault(dev.SetValues(r.ParameterList, r.ParameterKey), &cwmp.SetParameterValuesResponse{})
	case *cwmp.AddObject:
		n, f := dev.AddObject(r.ObjectName, r.ParameterKey)
		return fault(f, &cwmp.AddObjectResponse{InstanceNumber: n})
	case *cwmp.DeleteObject:
		return fault(dev.DeleteObject(r.ObjectName, r.ParameterKey), &cwmp.DeleteObjectResponse{})
	case *cwmp.Reboot:
		return &cwmp.RebootResponse{}
	case *cwmp.FactoryReset:
		dev.Reset()
		return &cwmp.FactoryResetResponse{}
	}
	return cwmp.NewFault(cwmp.FaultMethodNotSupported, "")
}

func describeRPC(m cwmp.Message) string {
	switch r := m.(type) {
	case *cwmp.GetParameterNames:
		if r.NextLevel {
			return "GPN " + r.ParameterPath + " next"
		}
		return "GPN " + r.ParameterPath + " all"
	case *cwmp.GetParameterValues:
		return fmt.Sprintf("GPV %d", len(r.ParameterNames))
	case *cwmp.SetParameterValues:
		parts := make([]string, len(r.ParameterList))
		for i, pv := range r.ParameterList {
			parts[i] = pv.Name + "=" + pv.Value
		}
		return "SPV " + strings.Join(parts, ",")
	case *cwmp.AddObject:
		return "Add " + r.ObjectName
	case *cwmp.DeleteObject:
		return "Del " + r.ObjectName
	}
	return m.Method()
}

func (h *harness) devGet(name string) string {
	h.t.Helper()
	v, ok := h.dev.Get(name)
	if !ok {
		h.t.Fatalf("device has no %s", name)
	}
	return v
}

func (h *harness) cached(name string) provision.Entry {
	h.t.Helper()
	e, ok := h.cache.Get(name)
	if !ok {
		h.t.Fatalf("cache has no %s", name)
	}
	return e
}

func mustCompile(t testing.TB, name, src string) *Script {
	t.Helper()
	s, err := Compile(name, src)
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	return s
}

// count returns how many RPC descriptions start with prefix.
func count(rpcs []string, prefix string) int {
	n := 0
	for _, r := range rpcs {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// mustChannel returns a channel of a new run on h's clock.
func mustChannel(t testing.TB, h *harness) *provision.Collector {
	t.Helper()
	ch, err := provision.NewRun(provision.Options{Now: h.clock, DeviceID: h.id}).Channel("c")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// testLimits gives a test's runs a second unless it asks for a time
// limit: a loaded machine must not fail tests that are not about time.
func testLimits(l Limits) Limits {
	if l.Time == 0 {
		l.Time = time.Second
	}
	return l
}
