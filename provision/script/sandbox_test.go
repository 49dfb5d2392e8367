package script

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/provision"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		src        string
		line, col  int
		msgContain string
	}{
		{"declare(\"A\", {value: 1}\n", 2, 1, ""},
		{"let x = 1;\nlet y = ;\n", 2, 9, ""},
		{"let x = 1; let x = 2;", 1, 16, "already been declared"},
		{"\n\n   }", 3, 5, ""}, // the stray brace closes the wrapper: reported at the end
	}
	for _, tc := range tests {
		_, err := Compile("p", tc.src)
		var ce *CompileError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCompile) {
			t.Errorf("Compile(%q) = %v, want a CompileError", tc.src, err)
			continue
		}
		if ce.Line != tc.line || ce.Column != tc.col || !strings.Contains(ce.Message, tc.msgContain) {
			t.Errorf("Compile(%q) = %d:%d %q, want %d:%d", tc.src, ce.Line, ce.Column, ce.Message, tc.line, tc.col)
		}
		if !strings.HasPrefix(ce.Error(), "p:") {
			t.Errorf("error %q does not name the script", ce.Error())
		}
	}
	if _, err := Compile("big", strings.Repeat(" ", MaxSource+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized script: %v", err)
	}
	// A top-level return is allowed: scripts run in a function, as in
	// GenieACS (virtual parameters return their value).
	if _, err := Compile("ret", "return {value: [1, 'xsd:int']};"); err != nil {
		t.Errorf("top-level return: %v", err)
	}
	// A source map comment is not followed (goja would read the file).
	if _, err := Compile("sm", "log(1);\n//# sourceMappingURL=/dev/zero\n"); err != nil {
		t.Errorf("source map comment: %v", err)
	}
}

// runOnce runs src once against a fresh run on h's cache and returns the
// result and the channel's collector.
func runOnce(t *testing.T, h *harness, src string, lim Limits, args ...any) (Result, *provision.Run) {
	t.Helper()
	run := provision.NewRun(provision.Options{Now: h.clock, DeviceID: h.id})
	ch, _ := run.Channel("c")
	res, err := mustCompile(t, "p", src).Run(context.Background(),
		Env{Collector: ch.Scope(), Tree: h.cache, Now: run.Now(), DeviceID: h.id, Args: args, Limits: testLimits(lim)})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, run
}

func TestSandboxReads(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	src := `
const pii = declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", {value: 1, writable: 1, object: 1});
const en = declare("InternetGatewayDevice.ManagementServer.PeriodicInformEnable", {value: 1});
const ssids = declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.*.SSID", {value: 1});
const wl = declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.*", {path: 1});
const t = declare("InternetGatewayDevice.ManagementServer.PeriodicInformTime", {value: 1});
const none = declare("InternetGatewayDevice.NoSuch.Thing", {value: 1});
const out = [];
out.push(JSON.stringify(pii.value), pii.writable, pii.object, pii.path, pii.size);
out.push(typeof en.value[0], en.value[0], en.value[1]);
out.push(ssids.size, [...ssids].map(p => p.path.split(".")[4] + ":" + p.value[0]).join(","));
out.push(wl.size, wl.path, wl.value);
out.push(typeof t.value[0]);
out.push(none.size, none.value, none.path);
out.push(Object.keys(pii).length, "value" in pii, pii.notDeclared);
out.push(args[0], args[1].k[1], args.length);
log(out.join("|"));
`
	res, _ := runOnce(t, h, src, Limits{}, "a", map[string]any{"k": []any{1.0, "two"}})
	if res.Status != Finished {
		t.Fatalf("status %v, fault %+v", res.Status, res.Fault)
	}
	got := strings.Split(res.Logs[0], "|")
	s1, s2 := h.devGet(wlan+"1.SSID"), h.devGet(wlan+"2.SSID")
	want := []string{`[300,"xsd:unsignedInt"]`, "true", "false", ms98 + "PeriodicInformInterval", "1",
		"boolean", "true", "xsd:boolean",
		"2", "1:" + s1 + ",2:" + s2,
		"2", igd + "LANDevice.1.WLANConfiguration.1", "",
		"number",
		"", "", "",
		"0", "true", "",
		"a", "two", "2"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d = %q, want %q (all: %q)", i, got[i], want[i], got)
		}
	}
}

func TestSandboxBlocksOnUnsettledRead(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	src := `
declare("InternetGatewayDevice.ManagementServer.PeriodicInformEnable", null, {value: true});
const v = declare("InternetGatewayDevice.Time.NTPServer1", {value: 1}).value[0];
declare("InternetGatewayDevice.ManagementServer.STUNEnable", null, {value: v === "x"});
log("never reached before the fetch");
`
	res, run := runOnce(t, h, src, Limits{})
	if res.Status != Blocked || res.Waiting != "declare(InternetGatewayDevice.Time.NTPServer1)" {
		t.Fatalf("status %v waiting %q fault %+v", res.Status, res.Waiting, res.Fault)
	}
	if res.Declared != 2 || len(res.Logs) != 0 {
		t.Errorf("declared %d, logs %q: the run must stop at the read", res.Declared, res.Logs)
	}
	if run.Outcome().Faults["c"].Code != "" {
		t.Errorf("a blocked run faulted: %v", run.Outcome().Faults)
	}

	// A try/catch cannot swallow the stop.
	res, _ = runOnce(t, h, `try { declare("InternetGatewayDevice.Time.NTPServer1", {value: 1}).value } catch (e) { log("caught") } finally { log("finally") }`, Limits{})
	if res.Status != Blocked || len(res.Logs) != 0 {
		t.Errorf("status %v logs %q", res.Status, res.Logs)
	}

	// commit() waits for every declaration; reads of unrelated paths
	// do not wait for a pending write.
	h = newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	res, _ = runOnce(t, h, `
declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", null, {value: 60});
log(declare("InternetGatewayDevice.DeviceInfo.SoftwareVersion", {value: 1}).value[0]);
commit();
log("after commit");`, Limits{})
	if res.Status != Blocked || res.Waiting != "commit()" || len(res.Logs) != 1 {
		t.Errorf("status %v waiting %q logs %q", res.Status, res.Waiting, res.Logs)
	}
}

func TestCommitOrdersWrites(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	src := `
declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", null, {value: 60});
commit();
declare("InternetGatewayDevice.ManagementServer.STUNEnable", null, {value: true});
`
	s := h.session(prov{channel: "c", script: mustCompile(t, "p", src)})
	want := []string{"SPV " + ms98 + "PeriodicInformInterval=60", "SPV " + ms98 + "STUNEnable=1"}
	if strings.Join(s.rpcs, ";") != strings.Join(want, ";") || s.execs[0].Runs() != 2 {
		t.Errorf("RPCs %q in %d runs, want %q in 2", s.rpcs, s.execs[0].Runs(), want)
	}
}

func TestDateAndRandom(t *testing.T) {
	h := newHarness(t, "tr098")
	src := `
const out = [Date.now(), new Date().getTime(), Date.now(3600000), Date.now(3600000, 0), Date.now("0 3 * * *"),
  Date.now(86400000) % 86400000 === Date.now(86400000, 86400000) % 86400000,
  new Date(2020, 0, 1).getFullYear(), Date.UTC(2020, 0, 1)];
const r1 = [Math.random(), Math.random()];
Math.random.seed("hello.");
out.push(Math.random(), Math.random());
log(JSON.stringify([out, r1]));
`
	res1, _ := runOnce(t, h, src, Limits{})
	res2, _ := runOnce(t, h, src, Limits{})
	if res1.Status != Finished {
		t.Fatalf("%v %+v", res1.Status, res1.Fault)
	}
	if res1.Logs[0] != res2.Logs[0] {
		t.Errorf("two runs differ:\n%s\n%s", res1.Logs, res2.Logs)
	}
	var got [][]any
	if err := jsonUnmarshal(res1.Logs[0], &got); err != nil {
		t.Fatal(err)
	}
	out, r := got[0], got[1]
	now := float64(t0.UnixMilli())
	offset := float64(md532(h.id) % 3600000)
	want := []any{now, now, math.Trunc((now+offset)/3600000)*3600000 - offset, now - math.Mod(now, 3600000),
		// A five-field cron matches every second of its minute, as in
		// GenieACS: the latest tick is 03:00:59 today.
		float64(t0.Truncate(24 * time.Hour).Add(3*time.Hour + 59*time.Second).UnixMilli()),
		true, 2020.0, float64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()),
		0.9282578795792454, 0.3752569768646784}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("out[%d] = %v, want %v", i, out[i], want[i])
		}
	}
	if r[0] == r[1] || r[0].(float64) < 0 || r[0].(float64) >= 1 {
		t.Errorf("Math.random gave %v", r)
	}
	// Another device draws other numbers.
	h.id = "other"
	res3, _ := runOnce(t, h, src, Limits{})
	if res3.Logs[0] == res1.Logs[0] {
		t.Error("two devices drew the same numbers")
	}
}

func TestSeedRandomVector(t *testing.T) {
	// seedrandom's published vector for the seed "hello.".
	a := newARC4("hello.")
	for _, want := range []float64{0.9282578795792454, 0.3752569768646784} {
		if got := a.float(); got != want {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}

func TestDeclaredValues(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	src := `
const b = "InternetGatewayDevice.ManagementServer.";
declare(b + "PeriodicInformInterval", null, {value: 600});
declare(b + "STUNEnable", null, {value: true});
declare(b + "PeriodicInformTime", null, {value: [Date.UTC(2026, 0, 2, 3, 4, 5), "xsd:dateTime"]});
declare(b + "STUNServerAddress", null, {value: ["stun.example", "xsd:string"]});
`
	s := h.session(prov{channel: "c", script: mustCompile(t, "p", src)})
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v", s.out.Faults)
	}
	for name, want := range map[string]string{
		"PeriodicInformInterval": "600", "STUNEnable": "true",
		"PeriodicInformTime": "2026-01-02T03:04:05Z", "STUNServerAddress": "stun.example",
	} {
		if got := h.devGet(ms98 + name); got != want && !(strings.HasPrefix(got, "2026-01-02T03:04:05") && name == "PeriodicInformTime") {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	h.clock = t0.Add(time.Minute)
	s = h.session(prov{channel: "c", script: mustCompile(t, "p",
		`declare("InternetGatewayDevice.ManagementServer.PeriodicInformTime", null, {value: new Date(Date.UTC(2027, 5, 6))})`)})
	if got := h.devGet(ms98 + "PeriodicInformTime"); !strings.HasPrefix(got, "2027-06-06T00:00:00") {
		t.Errorf("PeriodicInformTime from a Date = %q", got)
	}

	for _, bad := range []struct{ src, code, msg string }{
		{`declare(1)`, "script.TypeError", "path must be a string"},
		{`declare("A.B", null, {value: undefined})`, "script.TypeError", "the value is undefined"},
		{`declare("A.B", null, {value: {}})`, "script.TypeError", "must be a string, number, boolean or Date"},
		{`declare("A.B", null, {path: -1})`, "script.TypeError", "instance count"},
		{`declare("A.B", {notification: 1})`, "script.Error", "notification attribute is not supported"},
		{`declare("A.B", null, {writable: true})`, "script.Error", "writable attribute is not supported"},
		{`declare("A.[B", {value: 1})`, "script.Error", "declare:"},
		{`declare("A.B", null, {value: "x".repeat(70000)})`, "script.RangeError", "more than 65536"},
		{`ext("ext-sample", "fn")`, "script.Error", "extensions are not supported"},
		{`clear(5)`, "script.TypeError", "path must be a string"},
		{`Date.now({})`, "script.Error", "Invalid Date.now() argument"},
		{`Date.now("not a cron")`, "script.Error", "cron expression"},
	} {
		res, run := runOnce(t, h, bad.src, Limits{})
		if res.Status != Failed || res.Fault.Code != bad.code || !strings.Contains(res.Fault.Message, bad.msg) {
			t.Errorf("%s: %v %+v, want %s %q", bad.src, res.Status, res.Fault, bad.code, bad.msg)
		}
		if len(run.Outcome().Faults) != 0 {
			t.Errorf("%s: Run recorded a fault; only Exec does", bad.src)
		}
	}
}

// A declaration on a path the device lacks: the run waits for the engine
// to prove it absent, then reads nothing; a preset channel gets a warning.
func TestMissingPath(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	src := `
const x = declare("InternetGatewayDevice.NoSuchObject.Param", {value: 1});
log(String(x.size) + " " + String(x.value) + " " + [...x].length);
`
	s := h.session(prov{channel: "c", script: mustCompile(t, "p", src)})
	if len(s.out.Faults) != 0 || len(s.out.Warnings) != 1 {
		t.Errorf("faults %v, warnings %v", s.out.Faults, s.out.Warnings)
	}
	if s.execs[0].Runs() != 2 || len(h.scriptLog) != 1 || h.scriptLog[0] != "undefined undefined 0" {
		t.Errorf("runs %d, log %q", s.execs[0].Runs(), h.scriptLog)
	}
}
