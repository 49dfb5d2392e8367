package core

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestFSMVirtualParameters: put, replace, delete and the shared downlink
// records each change appends; a bad name is refused by the FSM too.
func TestFSMVirtualParameters(t *testing.T) {
	f := mustFSM(t)
	v := &fleet.VirtualParameter{Name: "MAC", Script: "return {writable: false, value: ['x', 'xsd:string']};"}
	mustApply(t, f, Command{Op: OpPutVirtualParameter, VirtualParameter: v})
	v2 := &fleet.VirtualParameter{Name: "MAC", Script: "return {writable: false, value: 'y'};"}
	mustApply(t, f, Command{Op: OpPutVirtualParameter, VirtualParameter: v2},
		Command{Op: OpPutVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "a_b"}})
	vs, err := f.VirtualParameters()
	if err != nil || len(vs) != 2 || *vs[0] != *v2 || vs[1].Name != "a_b" {
		t.Fatalf("VirtualParameters = %+v, %v", vs, err)
	}
	mustApply(t, f, Command{Op: OpDeleteVirtualParameter, Name: "a_b"})
	if _, err := f.VirtualParameter("a_b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	for _, tt := range []struct {
		name string
		cmd  Command
		want error
	}{
		{"delete missing", Command{Op: OpDeleteVirtualParameter, Name: "a_b"}, ErrNotFound},
		{"put without one", Command{Op: OpPutVirtualParameter}, ErrBadRequest},
		{"dotted name", Command{Op: OpPutVirtualParameter, VirtualParameter: &fleet.VirtualParameter{Name: "a.b"}}, ErrBadRequest},
	} {
		if r := applyAt(t, f, tt.cmd)[0]; !errors.Is(r.Err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, r.Err, tt.want)
		}
	}
	rs, err := f.Downlink("e1", 0, 0, 0)
	if err != nil || kinds(rs) != "virtual-parameter virtual-parameter virtual-parameter virtual-parameter-delete" {
		t.Fatalf("shared log %s %v", kinds(rs), err)
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAPIVirtualParameters: the REST routes and the GenieACS NBI's
// /virtual_parameters/{name} store the body as the script, compiled (a
// syntax error is 400 with where), and list, read and delete it.
func TestAPIVirtualParameters(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	src := "let m = declare('Device.Ethernet.Interface.1.MACAddress', {value: Date.now()});\nreturn {writable: false, value: [m.value[0], 'xsd:string']};\n"
	var got fleet.VirtualParameter
	if code := do(t, "PUT", api(n, "/virtual-parameters/MAC"), src, &got); code != 200 || got.Name != "MAC" || got.Script != src {
		t.Fatalf("PUT: %d %+v", code, got)
	}
	var bad struct {
		Error        string
		Line, Column int
	}
	if code := do(t, "PUT", api(n, "/virtual-parameters/broken"), "return {\n  value: (1 +;\n};", &bad); code != 400 || bad.Line != 2 {
		t.Fatalf("syntax error: %d %+v", code, bad)
	}
	if code := do(t, "PUT", api(n, "/virtual-parameters/a.b"), "return {};", &bad); code != 400 || !strings.Contains(bad.Error, "name") {
		t.Fatalf("dotted name: %d %+v", code, bad)
	}
	if code := do(t, "PUT", "http://"+n.APIAddr()+"/virtual_parameters/WanIP", "return {writable: false, value: '1.2.3.4'};", nil); code != 200 {
		t.Fatalf("NBI PUT: %d", code)
	}
	var all []fleet.VirtualParameter
	if code := do(t, "GET", api(n, "/virtual-parameters"), nil, &all); code != 200 || len(all) != 2 || all[0] != got || all[1].Name != "WanIP" {
		t.Fatalf("list: %d %+v", code, all)
	}
	if code := do(t, "DELETE", "http://"+n.APIAddr()+"/virtual_parameters/WanIP", nil, nil); code != 200 {
		t.Fatalf("NBI DELETE: %d", code)
	}
	if code := do(t, "DELETE", api(n, "/virtual-parameters/MAC"), nil, nil); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	if code := do(t, "GET", api(n, "/virtual-parameters/MAC"), nil, nil); code != 404 {
		t.Fatalf("GET deleted: %d", code)
	}
}
