package edge

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// TestDiagnostics runs every diagnostic against a simulated TR-098 and a
// TR-181 device: the successes with their typed results, the failures the
// simulator's rules make (a host that does not resolve, one that never
// answers), NSLookup where the model lacks it, and the timeout when the
// CPE never informs 8 DIAGNOSTICS COMPLETE.
func TestDiagnostics(t *testing.T) {
	const diagTimeout = 1500 * time.Millisecond
	e := startEdge(t, "", func(c *Config) { c.DiagnosticsTimeout = diagTimeout })
	f := startFleet(t, e, 2, func(c *sim.Config) { c.Model = "tr098,tr181" })
	waitInformed(t, e, f)

	type check func(t *testing.T, task *fleet.Task, tr181 bool)
	done := func(more func(t *testing.T, d *fleet.Diagnostic)) check {
		return func(t *testing.T, task *fleet.Task, _ bool) {
			t.Helper()
			if task.Status != fleet.StatusDone || task.Result == nil || task.Result.Diagnostic == nil {
				t.Fatalf("status %s, fault %+v, result %+v: want done with a diagnostic", task.Status, task.Fault, task.Result)
			}
			more(t, task.Result.Diagnostic)
		}
	}
	fault := func(code, state string) check {
		return func(t *testing.T, task *fleet.Task, _ bool) {
			t.Helper()
			if task.Status != fleet.StatusFault || task.Fault == nil || task.Fault.Code != code {
				t.Fatalf("status %s, fault %+v: want fault %s", task.Status, task.Fault, code)
			}
			if state != "" && (!strings.Contains(task.Fault.Message, state) || task.Result == nil ||
				task.Result.Diagnostic == nil || task.Result.Diagnostic.State != state) {
				t.Fatalf("fault %+v, result %+v: want state %s in both", task.Fault, task.Result, state)
			}
		}
	}
	cases := []struct {
		name  string
		body  string
		check check
		// tr098 overrides check on TR-098 devices (NSLookup is TR-181's).
		tr098 check
	}{
		{"ping", `{"name":"ping","host":"acs.example.com","count":5}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			p := d.Ping
			if d.State != "Complete" || p == nil || p.Host != "acs.example.com" || p.SuccessCount+p.FailureCount != 5 ||
				p.SuccessCount == 0 || p.MinRTTms == 0 || p.MinRTTms > p.AvgRTTms || p.AvgRTTms > p.MaxRTTms {
				t.Fatalf("ping result %+v %+v", d, p)
			}
		}), nil},
		{"ping-unresolvable", `{"name":"ping","host":"unreachable.invalid"}`,
			fault(FaultCodeDiagnosticsError, "Error_CannotResolveHostName"), nil},
		{"ping-no-answer", `{"name":"ping","host":"unreachable.example.net","count":3}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			if p := d.Ping; p == nil || p.SuccessCount != 0 || p.FailureCount != 3 {
				t.Fatalf("ping result %+v: want 0 of 3", p)
			}
		}), nil},
		{"traceroute", `{"name":"traceroute","host":"acs.example.com"}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			r := d.TraceRoute
			if r == nil || len(r.Hops) < 3 || r.Hops[len(r.Hops)-1].Host != "acs.example.com" || len(r.Hops[0].RTTimesMs) != 3 || r.ResponseTimeMs == 0 {
				t.Fatalf("traceroute result %+v", r)
			}
		}), nil},
		{"traceroute-max-hops", `{"name":"traceroute","host":"192.0.2.7","maxHopCount":6}`,
			fault(FaultCodeDiagnosticsError, "Error_MaxHopCountExceeded"), nil},
		{"download", `{"name":"downloadDiagnostics","url":"http://speed.example.net/10MB.bin"}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			r := d.Transfer
			if d.State != "Completed" || r == nil || r.URL != "http://speed.example.net/10MB.bin" || r.TestBytes < 1<<20 ||
				r.TotalBytes < r.TestBytes || r.ThroughputBps == 0 || !r.EOMTime.After(r.BOMTime) || r.ROMTime.IsZero() {
				t.Fatalf("download result %+v %+v", d, r)
			}
		}), nil},
		{"download-unresolvable", `{"name":"downloadDiagnostics","url":"http://speed.invalid/x"}`,
			fault(FaultCodeDiagnosticsError, "Error_InitConnectionFailed"), nil},
		{"upload", `{"name":"uploadDiagnostics","url":"http://speed.example.net/up","testFileLength":2000000}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			if r := d.Transfer; r == nil || r.TestBytes != 2000000 || r.ThroughputBps == 0 {
				t.Fatalf("upload result %+v", r)
			}
		}), nil},
		{"nslookup", `{"name":"nslookup","host":"www.example.org","count":2}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			r := d.NSLookup
			if r == nil || r.SuccessCount != 2 || len(r.Answers) != 2 || r.Answers[0].Status != "Success" || len(r.Answers[0].IPAddresses) == 0 {
				t.Fatalf("nslookup result %+v", r)
			}
		}), fault(FaultCodeDiagnosticsUnsupported, "")},
		{"nslookup-nxdomain", `{"name":"nslookup","host":"nothing.invalid"}`, done(func(t *testing.T, d *fleet.Diagnostic) {
			if r := d.NSLookup; r == nil || r.SuccessCount != 0 || len(r.Answers) != 1 || r.Answers[0].Status != "Error_HostNameNotResolved" {
				t.Fatalf("nslookup result %+v", r)
			}
		}), fault(FaultCodeDiagnosticsUnsupported, "")},
	}
	for i := 0; i < f.Len(); i++ {
		dev := f.Device(i)
		tr181 := dev.Root() == "Device."
		t.Run(dev.Model(), func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					task := e.postTask(dev.ID(), c.body, "connection_request&wait=15s")
					if !task.Status.Final() {
						task = e.waitTask(task.ID, 15*time.Second)
					}
					check := c.check
					if !tr181 && c.tr098 != nil {
						check = c.tr098
					}
					check(t, task, tr181)
				})
			}
			t.Run("timeout", func(t *testing.T) {
				dev.SetNoDiagnosticsComplete(true)
				defer dev.SetNoDiagnosticsComplete(false)
				start := time.Now()
				task := e.postTask(dev.ID(), `{"name":"ping","host":"acs.example.com"}`, "connection_request")
				task = e.waitTask(task.ID, 15*time.Second)
				fault(FaultCodeDiagnosticsTimeout, "")(t, task, tr181)
				if el := time.Since(start); el < diagTimeout {
					t.Fatalf("timed out after %s, before the %s timeout", el, diagTimeout)
				}
				if !strings.Contains(task.Fault.Message, "8 DIAGNOSTICS COMPLETE") {
					t.Fatalf("fault message %q does not say what was missing", task.Fault.Message)
				}
			})
		})
	}
}

// TestDiagnosticsOneAtATime: a second diagnostic queued while one awaits
// its 8 DIAGNOSTICS COMPLETE is not sent (it would cancel the first on
// the CPE); it runs after, and both finish with their own results.
func TestDiagnosticsOneAtATime(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 1, func(c *sim.Config) { c.Model = sim.ModelTR181 })
	waitInformed(t, e, f)
	id := f.Device(0).ID()
	a := e.postTask(id, `{"name":"ping","host":"a.example.com","count":2}`, "")
	b := e.postTask(id, `{"name":"traceroute","host":"b.example.com"}`, "connection_request")
	ta, tb := e.waitTask(a.ID, 15*time.Second), e.waitTask(b.ID, 15*time.Second)
	if ta.Status != fleet.StatusDone || ta.Result.Diagnostic.Ping == nil || ta.Result.Diagnostic.Ping.Host != "a.example.com" {
		t.Fatalf("ping: %s %+v %+v", ta.Status, ta.Fault, ta.Result)
	}
	if tb.Status != fleet.StatusDone || tb.Result.Diagnostic.TraceRoute == nil || tb.Result.Diagnostic.TraceRoute.Host != "b.example.com" {
		t.Fatalf("traceroute: %s %+v %+v", tb.Status, tb.Fault, tb.Result)
	}
}

// TestDeferredDiagnosticSameSession: a diagnostic queued behind another
// waits while that one runs, and runs in the session that reads the first
// one's results (8 DIAGNOSTICS COMPLETE), not a session later: ending the
// first makes the session read the device's open tasks again.
func TestDeferredDiagnosticSameSession(t *testing.T) {
	cpe := pingThenTraceroute(t, 3)
	first := cpe.session(cwmp.EventPeriodic)
	// The CPE ran the ping.
	if _, err := cpe.dev.SetLocal("Device.IP.Diagnostics.IPPing.DiagnosticsState", "Complete"); err != nil {
		t.Fatal(err)
	}
	second := cpe.session(cwmp.EventDiagnosticsComplete)
	if n := countPrefix(first, "SPV"); n != 1 {
		t.Fatalf("first session %q: want the ping's one SetParameterValues, the traceroute held back", first)
	}
	if len(second) < 2 || !strings.HasPrefix(second[0], "GPV") || countPrefix(second, "SPV") != 1 {
		t.Fatalf("results session %q: want the ping's results read, then the traceroute's SetParameterValues", second)
	}
}

// TestDeferredDiagnosticAfterFault: a diagnostic held back behind one the
// CPE refused in the same session runs in that session.
func TestDeferredDiagnosticAfterFault(t *testing.T) {
	cpe := pingThenTraceroute(t, 4)
	cpe.answer = func(m cwmp.Message) cwmp.Message {
		if spv, ok := m.(*cwmp.SetParameterValues); ok && strings.Contains(spv.ParameterList[0].Name, "IPPing") {
			return cwmp.NewFault(cwmp.FaultRequestDenied, "no ping here")
		}
		return nil
	}
	log := cpe.session(cwmp.EventPeriodic)
	if len(log) != 2 || !strings.Contains(log[0], "IPPing") || !strings.Contains(log[1], "TraceRoute") {
		t.Fatalf("session %q: want the ping refused, then the traceroute sent", log)
	}
}

// pingThenTraceroute is a bootstrapped TR-181 device (index) with a ping
// and then a traceroute queued.
func pingThenTraceroute(t *testing.T, index int) *simCPE {
	t.Helper()
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR181, index)
	cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
	addTaskFor(t, c, cpe.id(), `{"name":"ping","host":"a.example.com","count":2}`)
	addTaskFor(t, c, cpe.id(), `{"name":"traceroute","host":"b.example.com"}`)
	return cpe
}

func countPrefix(log []string, prefix string) int {
	n := 0
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
