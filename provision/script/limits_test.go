package script

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/provision"
)

// A short time limit keeps these tests fast; the defaults are tested for
// what they are.
var fast = Limits{Time: 20 * time.Millisecond}

func TestLimitDefaults(t *testing.T) {
	l := Limits{}.withDefaults()
	if l.Time != 50*time.Millisecond || l.Declarations != 1024 || l.Replays != 8 || l.Alloc != 64<<20 {
		t.Errorf("defaults %+v", l)
	}
	if l := (Limits{Time: time.Hour}).withDefaults(); l.Time != maxTime {
		t.Errorf("Time %v not capped at %v", l.Time, maxTime)
	}
}

func TestScriptFaults(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	tests := []struct {
		name, src string
		lim       Limits
		code, msg string
		stack     string
	}{
		{name: "infinite loop", src: "while (true) {}", lim: fast, code: FaultTimeout, msg: "ran longer than 20ms"},
		{name: "default time limit", src: "while (true) {}", lim: Limits{Time: 50 * time.Millisecond}, code: FaultTimeout, msg: "50ms"},
		{name: "loop in a catch", src: "for (;;) { try { while (true) {} } catch (e) {} }", lim: fast, code: FaultTimeout},
		{name: "string doubling", src: `let s = "x"; for (;;) s = s + s;`, code: FaultLimit + "|" + FaultTimeout},
		{name: "array growth", src: `const a = []; for (;;) a.push({x: a.length});`, lim: Limits{Time: time.Second}, code: FaultLimit + "|" + FaultTimeout},
		{name: "throw an Error", src: "const x = 1;\nfunction f() { throw new TypeError('bad ' + x); }\nf();",
			code: "script.TypeError", msg: "bad 1", stack: "at f (p:2:22)"},
		{name: "throw a string", src: `throw "oops"`, code: FaultScript, msg: "oops"},
		{name: "throw an object with a hostile toString", src: `throw {toString() { for (;;) {} }}`, lim: fast, code: FaultScript},
		{name: "error with a looping name getter", src: `const e = new Error("m"); Object.defineProperty(e, "name", {get() { for (;;) {} }}); throw e;`,
			lim: fast, code: FaultScript},
		{name: "undefined variable", src: `nope.x = 1`, code: "script.ReferenceError", msg: "nope is not defined"},
		{name: "deep recursion", src: `function f(n) { return f(n + 1) + 1; } f(0);`, code: "script.RangeError", msg: "call stack"},
		{name: "too many declarations", src: `for (let i = 0; ; i++) declare("A.B" + i, {value: 1});`,
			lim: Limits{Declarations: 10}, code: FaultLimit, msg: "more than 10 declare()"},
		{name: "declarations caught", src: `for (let i = 0; ; i++) try { declare("A.B" + i, {value: 1}) } catch (e) {}`,
			lim: Limits{Declarations: 10}, code: FaultLimit},
		{name: "repeat", src: `"abc".repeat(1 << 28)`, code: "script.RangeError", msg: "String.prototype.repeat"},
		{name: "padEnd", src: `"".padEnd(2 ** 30)`, code: "script.RangeError", msg: "padEnd"},
		{name: "sparse indexOf", src: `const a = []; a.length = 2 ** 32 - 1; a.indexOf(1)`, code: "script.RangeError", msg: "indexOf"},
		{name: "sparse spread", src: `const a = []; a.length = 2 ** 32 - 1; [...a]`, lim: fast, code: FaultTimeout},
		{name: "sparse Set", src: `const a = []; a.length = 2 ** 32 - 1; new Set(a)`, lim: fast, code: FaultTimeout},
		{name: "sparse JSON", src: `const a = []; a.length = 2 ** 32 - 1; JSON.stringify(a)`, code: "script.RangeError|" + FaultTimeout},
		{name: "JSON of a shared string", src: `const s = "x".repeat(1 << 20); let a = [s]; for (let i = 0; i < 20; i++) a = [a, a]; JSON.stringify(a)`,
			code: "script.RangeError|" + FaultTimeout},
		// RangeError at once; under -race on a loaded box the 1 s of wall
		// time can pass first, and the timeout stops it as well.
		{name: "join of a shared string", src: `const s = "x".repeat(1 << 20); Array(1000).fill(s).join("")`,
			lim: Limits{Time: time.Second}, code: "script.RangeError|" + FaultTimeout},
		{name: "apply", src: `Math.max.apply(null, {length: 1e9})`, code: "script.RangeError", msg: "apply"},
		{name: "Array.from", src: `Array.from({length: 1e9})`, code: "script.RangeError", msg: "Array.from"},
		{name: "String.raw", src: `String.raw({raw: {length: 1e9}})`, code: "script.RangeError", msg: "String.raw"},
		{name: "replace", src: `const s = "x".repeat(1 << 20); s.replace(/x/g, "yyyyyy")`,
			lim: Limits{Time: time.Second}, code: "script.RangeError", msg: "replace"},
		{name: "typed arrays are gone", src: `new Uint8Array(1 << 30)`, code: "script.ReferenceError"},
		{name: "backtracking regexp", src: `/^(a+)+\1b$/.test("a".repeat(40) + "c")`, lim: fast, code: FaultTimeout},
		{name: "eval is not available", src: `eval("1")`, code: "script.Error", msg: "eval is not available"},
		{name: "Function loops", src: `new Function("while (true) {}")()`, lim: fast, code: FaultTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, _ := runOnce(t, h, tc.src, tc.lim)
			if res.Status != Failed || res.Fault == nil {
				t.Fatalf("status %v, fault %+v", res.Status, res.Fault)
			}
			codeOK := false
			for _, c := range strings.Split(tc.code, "|") {
				codeOK = codeOK || res.Fault.Code == c
			}
			if !codeOK || !strings.Contains(res.Fault.Message, tc.msg) {
				t.Errorf("fault %s %q, want %s %q", res.Fault.Code, res.Fault.Message, tc.code, tc.msg)
			}
			if tc.stack != "" && !strings.Contains(res.Fault.Detail["stack"], tc.stack) {
				t.Errorf("stack %q, want %q", res.Fault.Detail["stack"], tc.stack)
			}
			// Every limit here is 1 s or less: a run this long means a limit
			// did not stop the script (generous, for -race on a busy box).
			if el := time.Since(start); el > 30*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

func TestLogBounded(t *testing.T) {
	h := newHarness(t, "tr098")
	res, _ := runOnce(t, h, `for (let i = 0; i < 1000; i++) log("line " + i + " " + "x".repeat(100));`, Limits{LogBytes: 1000})
	n := 0
	for _, l := range res.Logs {
		n += len(l) + 1
	}
	if res.Status != Finished || n > 1000+len("…")+1 || len(res.Logs) == 0 {
		t.Errorf("status %v, %d lines, %d bytes", res.Status, len(res.Logs), n)
	}
}

func TestContextCancel(t *testing.T) {
	h := newHarness(t, "tr098")
	ctx, cancel := context.WithCancel(context.Background())
	run := provision.NewRun(provision.Options{Now: t0})
	ch, _ := run.Channel("c")
	done := make(chan error, 1)
	go func() {
		_, err := mustCompile(t, "p", "for (;;) {}").Run(ctx, Env{Collector: ch, Tree: h.cache, Limits: Limits{Time: time.Second}})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not stop the run")
	}
	if _, err := mustCompile(t, "p", "1").Run(ctx, Env{Collector: ch, Tree: h.cache}); !errors.Is(err, context.Canceled) {
		t.Errorf("run on a done context: %v", err)
	}
	if _, err := mustCompile(t, "p", "1").Run(context.Background(), Env{}); !errors.Is(err, ErrEnv) {
		t.Errorf("empty env: %v", err)
	}
}

// A failing script faults its channel only: the session goes on, the
// other channels' scripts run, the process is unharmed.
func TestFaultStaysInChannel(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	loop := prov{channel: "bad", script: mustCompile(t, "loop", `declare("InternetGatewayDevice.ManagementServer.STUNEnable", null, {value: true}); for (;;) {}`), limits: fast}
	throw := prov{channel: "bad2", script: mustCompile(t, "throw", `throw new RangeError("no")`)}
	good := prov{channel: "good", script: mustCompile(t, "good", `declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", null, {value: 900});`)}
	s := h.session(loop, throw, good)
	if f := s.out.Faults["bad"]; f.Code != FaultTimeout {
		t.Errorf("bad: %+v", f)
	}
	if f := s.out.Faults["bad2"]; f.Code != "script.RangeError" || f.Message != "no" || f.Detail["name"] != "RangeError" {
		t.Errorf("bad2: %+v", f)
	}
	if _, ok := s.out.Faults["good"]; ok {
		t.Errorf("good faulted: %v", s.out.Faults)
	}
	if got := h.devGet(ms98 + "PeriodicInformInterval"); got != "900" {
		t.Errorf("the good channel's value was not set: %s", got)
	}
	// The looping script's declaration before the loop is dropped with
	// its channel.
	if got := h.devGet(ms98 + "STUNEnable"); got != "false" {
		t.Errorf("STUNEnable = %s: a faulted channel's declaration was carried out", got)
	}
}

func TestReplayBound(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	// Each read depends on the one before: four runs on a cold cache.
	src := `
const a = declare("InternetGatewayDevice.Time.NTPServer1", {value: 1}).value[0];
const b = declare("InternetGatewayDevice.Time.LocalTimeZoneName", {value: 1}).value[0];
const c = declare("InternetGatewayDevice.ManagementServer.STUNServerPort", {value: 1}).value[0];
log(a + b + c);
`
	p := prov{channel: "c", script: mustCompile(t, "p", src), limits: Limits{Replays: 2}}
	s := h.session(p)
	if f := s.out.Faults["c"]; f.Code != provision.FaultTooManyCommits || !strings.Contains(f.Message, "after 2 replays") {
		t.Errorf("fault %+v", f)
	}
	if s.execs[0].Runs() != 3 {
		t.Errorf("runs %d, want 3", s.execs[0].Runs())
	}
	p.limits = Limits{}
	h.clock = t0.Add(time.Minute)
	// The faulted run's reads were carried out: the cache has them now.
	if s = h.session(p); len(s.out.Faults) != 0 || s.execs[0].Runs() != 1 {
		t.Errorf("faults %v, runs %d", s.out.Faults, s.execs[0].Runs())
	}
}
