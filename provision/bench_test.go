package provision

import (
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// benchProvisions are ten declarations of a typical preset set: five
// values, three refreshes of fresh parameters, two instance counts.
func benchProvisions(differ bool) [][]any {
	interval := 300.0
	if differ {
		interval = 600
	}
	return [][]any{
		{"value", pii98, interval},
		{"value", ms98 + "PeriodicInformEnable", true},
		{"value", ms98 + "STUNEnable", false},
		{"value", igd + "Time.NTPServer1", "pool.ntp.org"},
		{"value", wlan + "*.SSIDAdvertisementEnabled", true},
		{"refresh", ms98 + "ParameterKey", 3600.0},
		{"refresh", igd + "DeviceInfo.SoftwareVersion", 3600.0},
		{"refresh", wlan + "1.Channel", 3600.0},
		{"instances", wlan + "*", 2.0},
		{"instances", ppp + "[Name:internet]", 1.0},
	}
}

// BenchmarkPlan measures one planning pass (a new run, its ten
// declarations, one Next) over a warm TR-098 tree of ~200 parameters.
func BenchmarkPlan(b *testing.B) {
	h := newHarness(b, "tr098").discover(t0.Add(-10 * time.Second))
	for _, bc := range []struct {
		name   string
		differ bool
	}{{"settled", false}, {"one-SPV", true}} {
		b.Run(bc.name, func(b *testing.B) {
			provs := benchProvisions(bc.differ)
			b.ReportAllocs()
			for b.Loop() {
				r := NewRun(Options{Now: t0, DeviceID: "bench"})
				c, _ := r.Channel("")
				if err := c.Provisions(provs); err != nil {
					b.Fatal(err)
				}
				msgs, done := r.Next(h.cache)
				if bc.differ != !done {
					b.Fatalf("done = %v, RPCs %v", done, msgs)
				}
				if bc.differ {
					if _, ok := msgs[0].(*cwmp.SetParameterValues); !ok || len(msgs) != 1 {
						b.Fatalf("planned %v", msgs)
					}
				}
			}
		})
	}
	b.Run("replan", func(b *testing.B) {
		r := NewRun(Options{Now: t0, DeviceID: "bench"})
		c, _ := r.Channel("")
		if err := c.Provisions(benchProvisions(false)); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			r.done = false
			if _, done := r.Next(h.cache); !done {
				b.Fatal("not settled")
			}
		}
	})
}
