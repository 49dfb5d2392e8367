package script

import (
	"context"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/provision"
)

// benchScript is a small provision: one read, one write, both settled
// on a warm cache.
const benchScript = `
const pii = declare("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", {value: Date.now(3600000)});
declare("InternetGatewayDevice.ManagementServer.PeriodicInformEnable", null, {value: pii.value[0] > 0});
`

// BenchmarkSession measures a session's provision script: a new run, the
// script's run (a new runtime), one Next that finds nothing to do.
func BenchmarkSession(b *testing.B) {
	h := newHarness(b, "tr098").discover(t0.Add(-time.Minute))
	s := mustCompile(b, "bench", benchScript)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		run := provision.NewRun(provision.Options{Now: t0, DeviceID: h.id})
		ch, _ := run.Channel("default")
		x, err := s.Start(Env{Collector: ch, Tree: h.cache, Now: t0, DeviceID: h.id})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := x.Step(ctx, false); err != nil || !x.Done() || x.Result().Status != Finished {
			b.Fatalf("step: %v %+v", err, x.Result())
		}
		if _, done := run.Next(h.cache); !done {
			b.Fatal("not settled")
		}
	}
}

// BenchmarkRealm measures preparing a realm: what a run would pay for a
// runtime of its own (the pool makes it rare).
func BenchmarkRealm(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newRealm()
	}
}
