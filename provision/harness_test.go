package provision

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/sim"
)

// t0 is every test run's session start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newDevice builds a simulated CPE of a model: the device side of the tests.
func newDevice(t testing.TB, model string) *sim.Tree {
	t.Helper()
	m, err := sim.LoadModel(model)
	if err != nil {
		t.Fatalf("LoadModel(%s): %v", model, err)
	}
	return sim.NewTree(m, sim.Identity{Seed: 7, Index: 3, ConnectionRequestURL: "http://10.0.0.1:7547/cr"})
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
	case *cwmp.Download:
		return &cwmp.DownloadResponse{Status: 1}
	}
	return cwmp.NewFault(cwmp.FaultMethodNotSupported, "")
}

// harness drives runs against a simulated device and a cache of it.
type harness struct {
	t     testing.TB
	dev   *sim.Tree
	cache *MemTree
	clock time.Time
	// log describes every RPC sent, in order (see describeRPC).
	log []string
	// answer, when set, replaces the device's answer.
	answer func(m cwmp.Message) cwmp.Message
}

func newHarness(t testing.TB, model string) *harness {
	return &harness{t: t, dev: newDevice(t, model), cache: NewMemTree(), clock: t0}
}

// inform records the Inform's forced parameters at `at`, as the edge does
// when a session starts: a cold cache knows only these.
func (h *harness) inform(at time.Time) *harness {
	RecordValues(h.cache, h.dev.Forced(), at)
	return h
}

// discover fills the cache with the whole tree (names, writable flags,
// values) as learnt at `at`: a warm cache.
func (h *harness) discover(at time.Time) *harness {
	h.t.Helper()
	gpn := &cwmp.GetParameterNames{ParameterPath: "", NextLevel: false}
	if err := ApplyResponse(h.cache, gpn, cpeAnswer(h.dev, gpn), at); err != nil {
		h.t.Fatalf("discover names: %v", err)
	}
	gpv := &cwmp.GetParameterValues{ParameterNames: []string{""}}
	if err := ApplyResponse(h.cache, gpv, cpeAnswer(h.dev, gpv), at); err != nil {
		h.t.Fatalf("discover values: %v", err)
	}
	return h
}

func (h *harness) newRun(opts Options) *Run {
	if opts.Now.IsZero() {
		opts.Now = t0
	}
	if opts.DeviceID == "" {
		opts.DeviceID = "00D09E-HG2000-ESG0000003"
	}
	return NewRun(opts)
}

// drive runs r to the end and returns the RPCs it sent; it fails the test
// if the run does not end within limit rounds.
func (h *harness) drive(r *Run) []string {
	h.t.Helper()
	start := len(h.log)
	for round := 0; round < 200; round++ {
		msgs, done := r.Next(h.cache)
		if done {
			return h.log[start:]
		}
		for _, m := range msgs {
			h.clock = h.clock.Add(10 * time.Millisecond)
			h.log = append(h.log, describeRPC(m))
			var resp cwmp.Message
			if h.answer != nil {
				resp = h.answer(m)
			}
			if resp == nil {
				resp = cpeAnswer(h.dev, m)
			}
			if err := r.Answer(h.cache, &cwmp.Answer{Request: m, Response: resp}, h.clock); err != nil {
				h.t.Fatalf("Answer(%s): %v", describeRPC(m), err)
			}
		}
	}
	h.t.Fatalf("run did not end in 200 rounds; RPCs: %v", h.log[start:])
	return nil
}

// describeRPC is a short text form of an RPC for assertions:
// "GPN <path> next|all", "GPV <n>", "SPV <name>=<value>,...", "Add <obj>",
// "Del <obj>", "Download <type> <url>", "Reboot", "FactoryReset".
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
	case *cwmp.Download:
		return "Download " + r.FileType + " " + r.URL
	case *cwmp.Reboot:
		return "Reboot"
	case *cwmp.FactoryReset:
		return "FactoryReset"
	}
	return m.Method()
}

// methods reduces RPC descriptions to their first word.
func methods(log []string) []string {
	out := make([]string, len(log))
	for i, l := range log {
		out[i], _, _ = strings.Cut(l, " ")
	}
	return out
}

// provisions declares provs on channel ch of r.
func provisions(t testing.TB, r *Run, ch string, provs ...[]any) {
	t.Helper()
	c, err := r.Channel(ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Provisions(provs); err != nil {
		t.Fatalf("Provisions(%v): %v", provs, err)
	}
}

func (h *harness) devGet(name string) string {
	h.t.Helper()
	v, ok := h.dev.Get(name)
	if !ok {
		h.t.Fatalf("device has no %s", name)
	}
	return v
}
