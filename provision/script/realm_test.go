package script

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// drainRealms empties the pool, so that the next runs share one realm.
func drainRealms() {
	for {
		select {
		case <-realms:
		default:
			return
		}
	}
}

// A run cannot leave anything for the next run on the same realm.
func TestRealmReuseLeaksNothing(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	drainRealms()
	stash := `
const tries = {
  global: () => { globalThis.leak = "A"; },
  globalDefine: () => Object.defineProperty(globalThis, "leak", {value: "A"}),
  objectProto: () => { Object.prototype.leak = "A"; },
  arrayProto: () => { Array.prototype.leak = "A"; },
  stringMethod: () => { String.prototype.trim = () => "A"; },
  math: () => { Math.leak = "A"; },
  json: () => { JSON.parse = () => "A"; },
  dateNow: () => { Date.now = () => 1; },
  random: () => { Math.random = () => 0.5; },
  seedLater: () => { Math.random.seed("A"); },
  eval: () => (0, eval)("var leak = 'A'; let leak2 = 'A'"),
  sloppyFunction: () => Function("leak = 'A'")(),
  iteratorProto: () => { Object.getPrototypeOf([][Symbol.iterator]()).leak = "A"; },
  generatorProto: () => { Object.getPrototypeOf(function* () {}).leak = "A"; },
  promiseProto: () => { Promise.prototype.leak = "A"; },
  errorProto: () => { Error.prototype.leak = "A"; },
  resultProto: () => { Object.getPrototypeOf(declare("X", null, null)).leak = "A"; },
  setProto: () => Object.setPrototypeOf(Object.prototype, {leak: "A"}),
  args: () => { args.push("A"); args = ["A"]; },
};
const ok = [];
for (const [k, f] of Object.entries(tries)) {
  try { f(); ok.push(k); } catch (e) {}
}
log(ok.join(","));
`
	res, _ := runOnce(t, h, stash, Limits{}, "x")
	if res.Status != Finished {
		t.Fatalf("%v %+v", res.Status, res.Fault)
	}
	// Only what is the run's own may change (and a sloppy-mode
	// assignment to the frozen global fails silently).
	if got := res.Logs[0]; got != "seedLater,sloppyFunction,args" {
		t.Errorf("writes that succeeded: %q, want only the run's own (seedLater,args)", got)
	}
	look := `
const found = [];
if (typeof leak !== "undefined") found.push("global");
if (({}).leak || [].leak || Math.leak || Error.prototype.leak || Promise.prototype.leak) found.push("proto");
if ("x".trim !== String.prototype.trim || " y ".trim() !== "y") found.push("trim");
if (Date.now() !== ` + itoa64(t0.UnixMilli()) + `) found.push("date");
if (Object.getPrototypeOf([][Symbol.iterator]()).leak || Object.getPrototypeOf(declare("X", null, null)).leak) found.push("hidden");
if (args.length !== 1 || args[0] !== "y") found.push("args");
log(found.join(",") + "|" + Math.random());
`
	res, _ = runOnce(t, h, look, Limits{}, "y")
	res2, _ := runOnce(t, h, look, Limits{}, "y")
	if res.Status != Finished || res.Logs[0] != res2.Logs[0] || !strings.HasPrefix(res.Logs[0], "|") {
		t.Errorf("second run saw %q (%v %+v), a fresh one %q", res.Logs, res.Status, res.Fault, res2.Logs)
	}
}

// Runs on many goroutines share the pool (go test -race checks them).
func TestConcurrentRuns(t *testing.T) {
	var wg sync.WaitGroup
	s := mustCompile(t, "c", `
const v = declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", {value: 1}).value[0];
let x = 0; for (let i = 0; i < 1000; i++) x += i;
declare("InternetGatewayDevice.ManagementServer.STUNEnable", null, {value: v > x});
log(String(Math.random()));`)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
			var first string
			for i := 0; i < 20; i++ {
				res, _ := runOnce(t, h, "", Limits{})
				_ = res
				x, _ := s.Start(Env{Collector: mustChannel(t, h), Tree: h.cache, Now: t0, DeviceID: h.id, Limits: testLimits(Limits{})})
				if _, err := x.Step(t.Context(), false); err != nil || x.Result().Status != Finished {
					t.Errorf("run %d: %v %+v", i, err, x.Result())
					return
				}
				if i == 0 {
					first = x.Result().Logs[0]
				} else if x.Result().Logs[0] != first {
					t.Errorf("Math.random differs between runs: %s, %s", first, x.Result().Logs[0])
				}
			}
		}()
	}
	wg.Wait()
}
