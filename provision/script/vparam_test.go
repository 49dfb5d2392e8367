package script

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/provision"
)

// unifiedMAC is the first example of GenieACS's virtual parameters
// documentation, unchanged (testdata/genieacs, shared with edge's tests).
var unifiedMAC = seedScript("unified-mac")

func TestVirtualParameterUnifiedMAC(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	args := VirtualArgs{Declared: VirtualAttributes{ValueTime: t0}}
	s := h.session(prov{channel: "vp", script: mustCompile(t, "mac", unifiedMAC), virtual: &args})
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v", s.out.Faults)
	}
	v, ok := s.execs[0].Virtual()
	if !ok || v.Value == nil || v.Writable == nil || *v.Writable {
		t.Fatalf("Virtual() = %+v, %v", v, ok)
	}
	want := h.devGet(igd + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.MACAddress")
	if v.Value.Value != want || v.Value.Type != "xsd:string" {
		t.Errorf("value %+v, want %s", v.Value, want)
	}
	if s.execs[0].Runs() != 2 {
		t.Errorf("runs %d, want 2 (the MACs read from the CPE once)", s.execs[0].Runs())
	}
}

func TestVirtualParameterArgsAndChecks(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	w := true
	args := VirtualArgs{
		Declared: VirtualAttributes{ValueTime: t0, Value: &provision.Value{Value: "new"}},
		Current:  VirtualAttributes{ValueTime: t0.Add(-time.Hour), Value: &provision.Value{Value: "7", Type: "xsd:int"}, Writable: &w},
	}
	run := provision.NewRun(provision.Options{Now: t0})
	ch, _ := run.Channel("vp")
	env := Env{Collector: ch.Scope(), Tree: h.cache, Now: t0, DeviceID: h.id}
	check := func(src string) (VirtualValue, Result) {
		t.Helper()
		v, res, err := mustCompile(t, "vp", src).RunVirtualParameter(context.Background(), env, args)
		if err != nil {
			t.Fatal(err)
		}
		return v, res
	}
	v, res := check(`return {writable: true, value: JSON.stringify(args)};`)
	if res.Status != Finished || v.Value == nil {
		t.Fatalf("%v %+v", res.Status, res.Fault)
	}
	wantArgs := `[{"value":` + itoa64(t0.UnixMilli()) + `},{"value":["new"]},{"value":` + itoa64(t0.Add(-time.Hour).UnixMilli()) +
		`},{"value":[7,"xsd:int"],"writable":true}]`
	if v.Value.Value != wantArgs || v.Value.Type != "xsd:string" || !*v.Writable {
		t.Errorf("args seen %s (%s)\nwant        %s", v.Value.Value, v.Value.Type, wantArgs)
	}
	for src, want := range map[string]string{
		`return {writable: true, value: 42};`:                               "42 xsd:int",
		`return {writable: true, value: 4.7};`:                              "4 xsd:int",
		`return {writable: true, value: false};`:                            "false xsd:boolean",
		`return {writable: true, value: new Date(0)};`:                      "1970-01-01T00:00:00.000Z xsd:dateTime",
		`return {writable: true, value: [5, "xsd:unsignedInt"]};`:           "5 xsd:unsignedInt",
		`return {writable: true, value: [args[1].value[0], "xsd:string"]};`: "new xsd:string",
	} {
		v, res := check(src)
		if res.Status != Finished || v.Value == nil || v.Value.Value+" "+v.Value.Type != want {
			t.Errorf("%s: %v %+v %+v, want %s", src, res.Status, res.Fault, v.Value, want)
		}
	}
	for src, msg := range map[string]string{
		`return 5;`:                               "Invalid virtual parameter return value",
		`return null;`:                            "Invalid virtual parameter return value",
		`return {writable: true};`:                "must provide 'value' attribute",
		`return {value: ["x", "xsd:nope"]};`:      "Invalid virtual parameter value attribute",
		`return {writable: true, value: [null]};`: "Invalid virtual parameter value attribute",
	} {
		_, res := check(src)
		if res.Status != Failed || res.Fault.Code != FaultScript || !strings.Contains(res.Fault.Message, msg) {
			t.Errorf("%s: %v %+v, want %q", src, res.Status, res.Fault, msg)
		}
	}
	// writable declared: it must come back.
	args.Declared.WritableTime = t0
	if _, res := check(`return {value: 1};`); res.Status != Failed || !strings.Contains(res.Fault.Message, "'writable'") {
		t.Errorf("missing writable: %v %+v", res.Status, res.Fault)
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
