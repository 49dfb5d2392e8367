package provision

import (
	"testing"
	"time"
)

// TestVirtualNeeds: VirtualParameters declarations plan no RPC; Virtual
// says which scripts to run (a read fresher than the tree holds, a value
// to set not yet tried); recording the value or the try settles them;
// FaultVirtual faults the channels that asked; an unknown name is a
// warning; "*" selects every known name.
func TestVirtualNeeds(t *testing.T) {
	tree := NewMemTree()
	r := NewRun(Options{Now: t0, VirtualParameters: []string{"MAC", "SSID", "Up"}})
	a, _ := r.Channel("a")
	b, _ := r.Channel("b")
	c, _ := r.Channel("c")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Declare("VirtualParameters.MAC", Timestamps{Value: t0}, Values{}))
	must(b.Declare("VirtualParameters.SSID", Timestamps{}, Values{Value: &Value{Value: "guest"}}))
	must(c.Declare("VirtualParameters.Nope", Timestamps{Value: t0}, Values{}))
	if msgs, done := r.Next(tree); !done || len(msgs) != 0 {
		t.Fatalf("Next planned %v for virtual parameters", msgs)
	}
	needs := r.Virtual(tree)
	if len(needs) != 2 || needs[0].Name != "MAC" || !needs[0].ValueTime.Equal(t0) || needs[0].Value != nil ||
		needs[1].Name != "SSID" || needs[1].Value == nil || needs[1].Value.Value != "guest" {
		t.Fatalf("needs %+v", needs)
	}
	if settled, _ := a.ScopeSettled(tree, "VirtualParameters.MAC"); settled {
		t.Fatal("a read of an uncomputed virtual parameter is settled")
	}
	// The scripts ran: MAC computed, SSID's value tried (the script
	// returned another one: it stands, nothing runs again).
	w := false
	PutVirtualParameter(tree, "MAC", Value{Value: "00:11:22:33:44:55", Type: "xsd:string"}, &w, t0.Add(time.Millisecond))
	PutVirtualParameter(tree, "SSID", Value{Value: "guest-2", Type: "xsd:string"}, nil, t0.Add(time.Millisecond))
	r.SetVirtual("SSID", &Value{Value: "guest"})
	if needs := r.Virtual(tree); len(needs) != 0 {
		t.Fatalf("needs after the runs: %+v", needs)
	}
	if e, ok := tree.Get("VirtualParameters.MAC"); !ok || e.Value != "00:11:22:33:44:55" || e.Writable || e.WritableTime.IsZero() {
		t.Fatalf("tree entry %+v", e)
	}
	if len(r.Outcome().Warnings) != 1 || r.Outcome().Warnings[0].Path != "VirtualParameters.Nope" {
		t.Fatalf("warnings %+v", r.Outcome().Warnings)
	}

	// "*": every known name; a failed script faults its askers only.
	r2 := NewRun(Options{Now: t0.Add(time.Hour), VirtualParameters: []string{"MAC", "SSID", "Up"}})
	all, _ := r2.Channel("all")
	one, _ := r2.Channel("one")
	must(all.Declare("VirtualParameters.*", Timestamps{Value: t0.Add(time.Hour)}, Values{}))
	must(one.Declare("VirtualParameters.MAC", Timestamps{Value: Ever}, Values{}))
	if needs := r2.Virtual(tree); len(needs) != 3 {
		t.Fatalf("needs of *: %+v", needs)
	}
	r2.FaultVirtual("Up", Fault{Code: "script.Error"})
	if _, ok := r2.Outcome().Faults["all"]; !ok {
		t.Fatal("the channel that asked for Up did not fault")
	}
	if _, ok := r2.Outcome().Faults["one"]; ok {
		t.Fatal("a channel that did not ask for Up faulted")
	}
}
