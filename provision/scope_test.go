package provision

import (
	"testing"
	"time"
)

func TestScopeRetractAndSettled(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-time.Minute))
	r := h.newRun(Options{})
	ch, _ := r.Channel("c")
	other := ch.Scope()
	s := ch.Scope()
	if err := other.Provision("tag", "kept", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Declare(pii98, Timestamps{}, Values{Value: &Value{Value: "60"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision("tag", "dropped", true); err != nil {
		t.Fatal(err)
	}
	check := func(path string, want bool) {
		t.Helper()
		if got, err := s.ScopeSettled(h.cache, path); err != nil || got != want {
			t.Errorf("ScopeSettled(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
	// The pending write concerns its own path, its ancestors and ""; not
	// another parameter.
	check(pii98, false)
	check(ms98, false)
	check("", false)
	check(ms98+"STUNEnable", true)
	check(igd+"DeviceInfo.SoftwareVersion", true)
	if !s.ScopeFetched(h.cache) {
		t.Error("a write made the scope unfetched")
	}
	if err := s.Declare(igd+"Time.NTPServer1", Timestamps{Value: t0}, Values{}); err != nil {
		t.Fatal(err)
	}
	if s.ScopeFetched(h.cache) {
		t.Error("a read to send, yet fetched")
	}
	if _, err := s.ScopeSettled(h.cache, "A.[B"); err == nil {
		t.Error("bad path accepted")
	}

	s.Retract()
	check("", true)
	h.drive(r)
	out := r.Outcome()
	if len(out.Changed) != 0 || !out.Tags["kept"] || out.Tags["dropped"] {
		t.Errorf("after Retract: changed %v, tags %v", out.Changed, out.Tags)
	}
	s.Fault(Fault{Code: "script.Error", Message: "x"})
	if !ch.Faulted() || r.Outcome().Faults["c"].Code != "script.Error" {
		t.Errorf("Fault: %v", r.Outcome().Faults)
	}
	check(pii98, true) // a faulted channel has nothing left to do
}

func TestDateTimeMillis(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"86400000", "1970-01-02T00:00:00Z"},
		{" 1000 ", "1970-01-01T00:00:01.000Z"},
	} {
		if !sameValue("xsd:dateTime", tc.a, tc.b) {
			t.Errorf("%q and %q differ", tc.a, tc.b)
		}
	}
	if got := wireValue("xsd:dateTime", "1500"); got != "1970-01-01T00:00:01.500Z" {
		t.Errorf("wireValue = %q", got)
	}
	if got := wireValue("xsd:dateTime", "2026-01-02T03:04:05Z"); got != "2026-01-02T03:04:05Z" {
		t.Errorf("wireValue = %q", got)
	}
	if sameValue("xsd:string", "1000", "1970-01-01T00:00:01Z") {
		t.Error("a string compared as a dateTime")
	}
}
