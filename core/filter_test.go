package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
)

// filterFleet stores the devices the expression tests select from:
//
//	hg1  product class HG8245, tags blue, A.N = 1 (xsd:int), A.X.1.Name "eth0", 1 BOOT
//	hg2  product class HG8546, A.N = 2, A.X.2.Name "wlan0", 0 BOOTSTRAP, informed a day later
//	big  product class ONT, 80 parameters (its overlay spills to per-parameter keys), A.N = 3
//	bare pre-registered: no parameters, no inform
func filterFleet(t *testing.T, apply func(...Command)) {
	t.Helper()
	typed := func(d *fleet.DeviceDelta, name, value, typ string) {
		d.Parameters = append(d.Parameters, fleet.ParameterValue{Name: name, Value: value, Type: typ})
	}
	hg1 := delta("hg1", "e1", "A.X.1.Name", "eth0", "Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "hunter2")
	hg1.ProductClass = "HG8245"
	typed(hg1, "A.N", "1", "xsd:int")
	hg2 := delta("hg2", "e1", "A.X.2.Name", "wlan0")
	hg2.ProductClass, hg2.Events, hg2.LastInform = "HG8546", []string{"0 BOOTSTRAP"}, t0.Add(24*time.Hour)
	typed(hg2, "A.N", "2", "xsd:int")
	big := delta("big", "e2")
	big.ProductClass = "ONT"
	for i := range 80 {
		typed(big, fmt.Sprintf("B.P.%d.V", i+1), fmt.Sprint(i), "xsd:unsignedInt")
	}
	typed(big, "A.N", "3", "xsd:int")
	apply(Command{Op: OpDeviceDelta, Delta: hg1}, Command{Op: OpDeviceDelta, Delta: hg2}, Command{Op: OpDeviceDelta, Delta: big},
		Command{Op: OpPutDevice, Device: &Device{ID: "bare", OUI: "00AA11", SerialNumber: "bare"}},
		Command{Op: OpTag, Name: "hg1", Tag: "blue"})
	// A later delta for big: its newest values live in the overlay, over
	// the spilled keys.
	late := delta("big", "e2")
	late.ProductClass = "ONT"
	typed(late, "B.P.7.V", "700", "xsd:unsignedInt")
	apply(Command{Op: OpDeviceDelta, Delta: late})
}

// fsmApply applies commands to f directly.
func fsmApply(t *testing.T, f *FSM) func(...Command) {
	return func(cmds ...Command) { mustApply(t, f, cmds...) }
}

func TestFSMDevicesExprFilter(t *testing.T) {
	f := mustFSM(t)
	filterFleet(t, fsmApply(t, f))
	tests := []struct {
		expr string
		want []string
	}{
		{`DeviceID.ProductClass LIKE 'HG%'`, []string{"hg1", "hg2"}},
		{`DeviceID.SerialNumber = "big"`, []string{"big"}},
		{`DeviceID.ID = 'bare' AND DeviceID.OUI = '00AA11'`, []string{"bare"}},
		{`Tags.blue IS NOT NULL`, []string{"hg1"}},
		{`Tags.blue = true`, []string{"hg1"}},
		{`NOT Tags.blue`, nil}, // NULL for the untagged: NOT NULL is NULL
		{`Tags.blue IS NULL`, []string{"bare", "big", "hg2"}},
		{`A.N >= 2`, []string{"big", "hg2"}},
		{`A.N = '1'`, []string{"hg1"}}, // a numeric parameter compares as a number with a string too
		{`A.N IS NULL`, []string{"bare"}},
		{`A.X.*.Name = 'wlan0'`, []string{"hg2"}},
		{`A.X.[Name:eth0].Name IS NOT NULL`, []string{"hg1"}},
		{`B.P.80.V = 79`, []string{"big"}},                          // a spilled parameter
		{`B.P.7.V = 700`, []string{"big"}},                          // the overlay wins over the spilled key
		{`B.P.*.V = 0`, []string{"big"}},                            // a pattern reads the first match, as GenieACS
		{`B.P.[V:700].V = 700`, []string{"big"}},                    // an alias over the merged tree
		{`Events.Inform > '2026-01-02T12:00:00Z'`, []string{"hg2"}}, // a dateTime compares as a time
		{`Events.1_BOOT IS NOT NULL`, []string{"big", "hg1"}},
		{`Events.0_BOOTSTRAP IS NOT NULL`, []string{"hg2"}},
		{`Events.Registered IS NOT NULL AND Events.Inform IS NULL`, []string{"bare"}},
		{`Reboot IS NOT NULL`, nil},
		{`true`, []string{"bare", "big", "hg1", "hg2"}},
		{`  `, []string{"bare", "big", "hg1", "hg2"}}, // blank: no expression
	}
	for _, tt := range tests {
		ds, next, err := f.Devices(DeviceFilter{Expr: tt.expr}, "", 0)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.ID)
			if d.Parameters != nil {
				t.Errorf("%s: a listed device carries its parameters", tt.expr)
			}
		}
		if !slices.Equal(got, tt.want) || next != "" {
			t.Errorf("%s: %v (next %q), want %v", tt.expr, got, next, tt.want)
		}
	}
	// The expression ANDs with the other fields.
	if ds, _, _ := f.Devices(DeviceFilter{Expr: `A.N > 0`, Edge: "e2"}, "", 0); len(ds) != 1 || ds[0].ID != "big" {
		t.Errorf("expr and edge: %v", ds)
	}
}

func TestFSMDevicesExprRefused(t *testing.T) {
	f := mustFSM(t)
	filterFleet(t, fsmApply(t, f))
	for _, tt := range []struct {
		expr      string
		line, col int
	}{
		{`A.N = `, 1, 7},
		{`DeviceID.ID = 'x' AND\n  A.N != 2`, 2, 7},
		{`A.N = 'unterminated`, 1, 7},
	} {
		src := strings.ReplaceAll(tt.expr, `\n`, "\n")
		_, _, err := f.Devices(DeviceFilter{Expr: src}, "", 0)
		var pe *expr.Error
		if !errors.Is(err, ErrBadRequest) || !errors.As(err, &pe) || pe.Line != tt.line || pe.Column != tt.col {
			t.Errorf("%q: %v, want ErrBadRequest at line %d column %d", src, err, tt.line, tt.col)
		}
	}
	_, _, err := f.Devices(DeviceFilter{Expr: `Device.WiFi.AccessPoint.1.Security.KeyPassphrase = 'hunter2'`}, "", 0)
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "secret") {
		t.Errorf("a filter on a secret: %v", err)
	}
}

// TestFSMDevicesExprPaging: with an expression that skips devices, every
// page but the last is full, the cursor continues the scan after the
// page's last device, and the pages together are the matches, once each.
func TestFSMDevicesExprPaging(t *testing.T) {
	f := mustFSM(t)
	var cmds []Command
	var want []string
	for i := range 23 {
		id := fmt.Sprintf("d%02d", i)
		d := delta(id, "e1")
		d.Parameters = []fleet.ParameterValue{{Name: "A.N", Value: fmt.Sprint(i), Type: "xsd:int"}}
		cmds = append(cmds, Command{Op: OpDeviceDelta, Delta: d})
		if i%3 == 0 {
			want = append(want, id)
		}
	}
	mustApply(t, f, cmds...)
	for _, limit := range []int{1, 2, 3, 8, 100} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > 30 {
				t.Fatalf("limit %d: no end of pages", limit)
			}
			ds, next, err := f.Devices(DeviceFilter{Expr: `A.N % 3 = 0`}, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if next == "" {
				break
			}
			if len(ds) != limit || next != ds[len(ds)-1].ID {
				t.Fatalf("limit %d: a page of %d ending at %v, next %q", limit, len(ds), got, next)
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %v, want %v", limit, got, want)
		}
	}
}

// TestAPIDeviceFilter: GET /api/v1/devices?filter= and POST /api/v1/tasks
// with filter.expr select by expression; one that does not parse is 400
// with the input at fault and its position; DELETE /api/v1/faults/{id}
// clears a fault.
func TestAPIDeviceFilter(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	filterFleet(t, func(cmds ...Command) {
		for _, c := range cmds {
			mustApplyNode(t, n, c)
		}
	})

	list := func(q string) ([]string, string) {
		t.Helper()
		code, hdr, body := httpDo(t, "GET", api(n, "/devices?"+q), "", nil)
		var ds []fleet.DeviceView
		if code != 200 || json.Unmarshal([]byte(body), &ds) != nil {
			t.Fatalf("GET /devices?%s: %d %s", q, code, body)
		}
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		return ids, hdr.Get("X-Next-Cursor")
	}
	hg := "filter=" + url.QueryEscape(`DeviceID.ProductClass LIKE 'HG%'`)
	if ids, next := list(hg + "&limit=1"); !slices.Equal(ids, []string{"hg1"}) || next != "hg1" {
		t.Fatalf("filter page 1: %v next %q", ids, next)
	}
	if ids, next := list(hg + "&limit=1&cursor=hg1"); !slices.Equal(ids, []string{"hg2"}) || next != "" {
		t.Fatalf("filter page 2: %v next %q", ids, next)
	}
	if ids, _ := list("filter=" + url.QueryEscape(`A.N > 1`) + "&edge=e1"); !slices.Equal(ids, []string{"hg2"}) {
		t.Fatalf("filter and edge: %v", ids)
	}

	type problem struct {
		Error                string
		Field                string
		Line, Column, Offset int
	}
	code, _, body := httpDo(t, "GET", api(n, "/devices?filter="+url.QueryEscape(`A.N >`)), "", nil)
	var p problem
	if code != 400 || json.Unmarshal([]byte(body), &p) != nil || p.Field != "filter" || p.Line != 1 || p.Column != 6 ||
		!strings.Contains(p.Error, "line 1, column 6") {
		t.Fatalf("bad filter: %d %s", code, body)
	}
	code, _, body = httpDo(t, "GET", api(n, "/devices?filter="+url.QueryEscape(`A.Password = 'x'`)), "", nil)
	if code != 400 || !strings.Contains(body, "secret") {
		t.Fatalf("filter on a secret: %d %s", code, body)
	}

	code, _, body = httpDo(t, "POST", api(n, "/tasks"), `{"filter": {"expr": "Tags.blue = "}, "task": {"name": "reboot"}}`, nil)
	p = problem{}
	if code != 400 || json.Unmarshal([]byte(body), &p) != nil || p.Field != "filter.expr" || p.Column != 13 {
		t.Fatalf("bad filter.expr: %d %s", code, body)
	}
	var created struct {
		Count int
		IDs   []string
	}
	if code := do(t, "POST", api(n, "/tasks"), `{"filter": {"expr": "A.N >= 2"}, "task": {"name": "reboot"}}`, &created); code != 202 || created.Count != 2 || len(created.IDs) != 2 {
		t.Fatalf("filter tasks: %d %+v", code, created)
	}
	var devs []string
	for _, id := range created.IDs {
		var tk fleet.TaskView
		if code := do(t, "GET", api(n, "/tasks/"+id), nil, &tk); code != 200 {
			t.Fatalf("task %s: %d", id, code)
		}
		devs = append(devs, tk.Device)
	}
	if slices.Sort(devs); !slices.Equal(devs, []string{"big", "hg2"}) {
		t.Fatalf("filter tasks went to %v", devs)
	}

	// A fault is cleared by its ID (its task's); the task goes with it.
	faulted := created.IDs[0]
	mustApplyNode(t, n, Command{Op: OpTaskResult, TaskID: faulted, Status: fleet.StatusFault, Fault: &fleet.TaskFault{Code: "9002", Message: "Internal error"}})
	if code, _, body := httpDo(t, "DELETE", api(n, "/faults/"+created.IDs[1]), "", nil); code != 404 || !strings.Contains(body, "pending") {
		t.Fatalf("clear the fault of a pending task: %d %s", code, body)
	}
	if code, _, body := httpDo(t, "DELETE", api(n, "/faults/"+faulted), "", nil); code != 204 {
		t.Fatalf("clear fault: %d %s", code, body)
	}
	var faults []fleet.FaultView
	if code := do(t, "GET", api(n, "/faults"), nil, &faults); code != 200 || len(faults) != 0 {
		t.Fatalf("faults after clear: %d %v", code, faults)
	}
	if code, _, _ := httpDo(t, "DELETE", api(n, "/faults/"+faulted), "", nil); code != 404 {
		t.Fatalf("clear twice: %d", code)
	}
}
