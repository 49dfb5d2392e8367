package sim

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestDiagResults: the simulated tests are deterministic in their seed
// and follow the documented failure rules.
func TestDiagResults(t *testing.T) {
	now := time.Unix(1e9, 0)
	run := func(k diagKind, target string) diagOutcome {
		return diagResults(k, target, 4, 30, 1<<20, rand.New(rand.NewPCG(1, 2)), now)
	}
	if a, b := run(diagPing, "acs.example.com"), run(diagPing, "acs.example.com"); a.values["AverageResponseTime"] != b.values["AverageResponseTime"] || a.state != "Complete" {
		t.Fatalf("ping not deterministic or not complete: %+v %+v", a, b)
	}
	cases := []struct {
		kind   diagKind
		target string
		state  string
		check  func(o diagOutcome) bool
	}{
		{diagPing, "x.invalid", "Error_CannotResolveHostName", nil},
		{diagPing, "unreachable.example.net", "Complete", func(o diagOutcome) bool { return o.values["SuccessCount"] == "0" && o.values["FailureCount"] == "4" }},
		{diagPing, "192.0.2.1", "Complete", func(o diagOutcome) bool { return o.values["SuccessCount"] == "0" }},
		{diagTrace, "192.0.2.1", "Error_MaxHopCountExceeded", func(o diagOutcome) bool { return len(o.hops) == 30 && o.hops[29][0] == "" }},
		{diagTrace, "example.com", "Complete", func(o diagOutcome) bool { return o.hops[len(o.hops)-1][0] == "example.com" }},
		{diagDownload, "http://speed.example.net/10MB.bin", "Completed", func(o diagOutcome) bool { return o.values["TestBytesReceived"] == "10485760" }},
		{diagDownload, "http://speed.invalid/", "Error_InitConnectionFailed", nil},
		{diagUpload, "http://unreachable.example.net/", "Error_NoResponse", nil},
		{diagNSLookup, "a.invalid", "Complete", func(o diagOutcome) bool { return strings.HasPrefix(o.answers[0][0], "Error_") }},
	}
	for _, c := range cases {
		o := run(c.kind, c.target)
		if o.state != c.state || (c.check != nil && !c.check(o)) {
			t.Errorf("%d %s: state %s, outcome %+v", c.kind, c.target, o.state, o)
		}
	}
}
