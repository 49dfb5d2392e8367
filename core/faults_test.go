package core

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// TestFSMChannelFaults: an edge's channel faults are kept, the latest
// one per channel (an older report, or the clearing of an older fault,
// changes nothing); deleting one at the core tells the edge that
// recorded it, with the fault's time; a bootstrap of the device drops
// them, as the edge does.
func TestFSMChannelFaults(t *testing.T) {
	f := mustFSM(t)
	seq := uint64(0)
	up := func(edge string, v any) Result {
		t.Helper()
		seq++
		return applyAt(t, f, Command{Op: OpUplink, Edge: edge, Seq: seq, Record: record(t, v)})[0]
	}
	faults := func() []*Fault {
		t.Helper()
		fs, err := f.Faults("dev1")
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	up("e1", informAt("dev1", "e1", t0))
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	cf := &fleet.ChannelFault{Device: "dev1", Channel: "wifi", Code: "cwmp.9007", Message: "bad value", Timestamp: t1,
		Detail: map[string]string{"A.B": "9007 bad"}}
	if r := up("e1", cf); r.Err != nil {
		t.Fatal(r.Err)
	}
	fs := faults()
	if len(fs) != 1 || fs[0].Channel != "wifi" || fs[0].Edge != "e1" || fs[0].Fault.Code != "cwmp.9007" {
		t.Fatalf("faults %+v", fs)
	}
	if v := fs[0].view(); v.ID != "dev1:wifi" || v.Channel != "wifi" || v.Task != "" || !v.Timestamp.Equal(t1) {
		t.Fatalf("view %+v", v)
	}
	// The retry faulted again: the newer fault replaces it; a late copy
	// of the older one and the clearing of the older one change nothing.
	up("e1", &fleet.ChannelFault{Device: "dev1", Channel: "wifi", Code: "cwmp.9007", Timestamp: t2, Retries: 1})
	up("e1", cf)
	up("e1", &fleet.ChannelFault{Device: "dev1", Channel: "wifi", Timestamp: t1, Cleared: true})
	if fs := faults(); len(fs) != 1 || fs[0].Retries != 1 || !fs[0].Time.Equal(t2) {
		t.Fatalf("after older reports: %+v", fs)
	}
	// A bad report is refused and consumed.
	if r := up("e1", &fleet.ChannelFault{Device: "dev1", Channel: "a/b", Timestamp: t2}); !errors.Is(r.Err, ErrBadRequest) {
		t.Fatalf("bad channel: %v", r.Err)
	}

	// Deleted at the core: e1 is told, with the fault's time.
	mustApply(t, f, Command{Op: OpDeleteChannelFault, Name: "dev1:wifi"})
	if fs := faults(); len(fs) != 0 {
		t.Fatalf("after delete: %+v", fs)
	}
	log := ownLog(t, f, "e1")
	if len(log) != 1 || log[0].Kind != fleet.DownFaultClear || log[0].Fault.ID() != "dev1:wifi" || !log[0].Fault.Timestamp.Equal(t2) {
		t.Fatalf("e1's log %+v", log)
	}
	if err := log[0].Validate(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"dev1:wifi", "dev1:task_01ABC", "dev1", "nodevice:x"} {
		if r := applyAt(t, f, Command{Op: OpDeleteChannelFault, Name: id})[0]; !errors.Is(r.Err, ErrNotFound) {
			t.Errorf("delete %s: %v", id, r.Err)
		}
	}

	// A bootstrap drops the device's channel faults with its tree.
	up("e1", &fleet.ChannelFault{Device: "dev1", Channel: "voice", Code: "timeout", Timestamp: t2})
	boot := informAt("dev1", "e1", t2.Add(time.Minute))
	boot.Bootstrap = true
	up("e1", boot)
	if fs := faults(); len(fs) != 0 {
		t.Fatalf("after a bootstrap: %+v", fs)
	}
	// A fault of a device the core does not know is not kept.
	up("e1", &fleet.ChannelFault{Device: "ghost", Channel: "x", Timestamp: t2})
	if fs, _ := f.Faults("ghost"); len(fs) != 0 {
		t.Fatalf("ghost's faults %+v", fs)
	}
}

// TestAPIChannelFaults: GET /api/v1/faults and the NBI's /faults show an
// edge's channel faults; DELETE on either clears them (204 and 200), and
// a task's channel is not one (404).
func TestAPIChannelFaults(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	ctx := context.Background()
	recs := []fleet.SeqRecord{
		{Seq: 1, Data: record(t, informAt("dev1", "e1", t0))},
		{Seq: 2, Data: record(t, &fleet.ChannelFault{Device: "dev1", Channel: "wifi", Code: "script.Error", Message: "boom", Timestamp: t0})},
		{Seq: 3, Data: record(t, &fleet.ChannelFault{Device: "dev1", Channel: "voice", Code: "timeout", Timestamp: t0, Retries: 2})},
	}
	if _, err := n.ApplyUplink(ctx, "e1", recs); err != nil {
		t.Fatal(err)
	}
	var fs []fleet.FaultView
	if code := do(t, "GET", api(n, "/faults?device=dev1"), nil, &fs); code != 200 || len(fs) != 2 || fs[0].ID != "dev1:voice" || fs[0].Retries != 2 || fs[1].Code != "script.Error" {
		t.Fatalf("GET /faults: %d %+v", code, fs)
	}
	var docs []map[string]any
	if code := do(t, "GET", "http://"+n.APIAddr()+"/faults/?query="+url.QueryEscape(`{"_id":"dev1:wifi"}`), nil, &docs); code != 200 || len(docs) != 1 || docs[0]["channel"] != "wifi" {
		t.Fatalf("NBI GET /faults: %d %+v", code, docs)
	}
	if code := do(t, "DELETE", api(n, "/faults/dev1:wifi"), nil, nil); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	if code := do(t, "DELETE", api(n, "/faults/dev1:wifi"), nil, nil); code != 404 {
		t.Fatalf("DELETE again: %d", code)
	}
	if code := do(t, "DELETE", api(n, "/faults/dev1:task_01ABC"), nil, nil); code != 404 {
		t.Fatalf("DELETE a task channel: %d", code)
	}
	if code := do(t, "DELETE", "http://"+n.APIAddr()+"/faults/dev1:voice", nil, nil); code != 200 {
		t.Fatalf("NBI DELETE: %d", code)
	}
	if code := do(t, "GET", api(n, "/faults"), nil, &fs); code != 200 || len(fs) != 0 {
		t.Fatalf("after the deletes: %d %+v", code, fs)
	}
	if rs, _ := n.Downlink("e1", 0, 1<<62, 10); kinds(rs) != "fault-clear fault-clear" {
		t.Fatalf("e1's log: %s", kinds(rs))
	}
}
