package sim

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// TestPeriodicInformTime: with a PeriodicInformTime set, the next
// periodic Inform falls on it plus a whole number of intervals, the first
// such time after now; with the unknown time (or one that does not
// parse) it is the interval from now, jittered by up to a tenth.
func TestPeriodicInformTime(t *testing.T) {
	now := time.Date(2026, 12, 5, 15, 30, 7, 250e6, time.UTC)
	const iv = 300 * time.Second
	tests := []struct {
		name string
		ref  string
		// want is the exact next Inform; zero: the jittered interval.
		want time.Time
	}{
		{"unknown time", "0001-01-01T00:00:00Z", time.Time{}},
		{"not a time", "soon", time.Time{}},
		{"offset in 1970", "1970-01-01T00:01:40Z", time.Date(2026, 12, 5, 15, 31, 40, 0, time.UTC)},
		{"offset with a zone", "1970-01-01T02:01:40+02:00", time.Date(2026, 12, 5, 15, 31, 40, 0, time.UTC)},
		{"in the future", "2099-01-01T00:04:59Z", time.Date(2026, 12, 5, 15, 34, 59, 0, time.UTC)},
		{"exactly now", "2026-12-05T15:30:07.25Z", now.Add(iv)},
		{"a moment ago", "2026-12-05T15:30:07Z", time.Date(2026, 12, 5, 15, 35, 7, 0, time.UTC)},
	}
	f, err := New(Config{ACSURL: "http://127.0.0.1:1/", Count: 1, Model: ModelTR098, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := f.Device(0)
	name := d.tree.m.Root + "ManagementServer.PeriodicInformTime"
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d.mu.Lock()
			_, err := d.tree.SetLocal(name, tc.ref)
			d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				got := d.periodicFrom(now, rng)
				if !tc.want.IsZero() {
					if !got.Equal(tc.want) {
						t.Fatalf("next Inform at %s, want %s", got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano))
					}
					continue
				}
				if wait := got.Sub(now); wait < iv*9/10 || wait > iv*11/10 {
					t.Fatalf("next Inform in %s, want the %s interval ±10 %%", wait, iv)
				}
			}
		})
	}

	// What an ACS sets is what the next Inform follows.
	d.mu.Lock()
	fault := d.tree.SetValues([]cwmp.ParameterValue{{Name: name, Value: "1970-01-01T00:00:30Z", Type: cwmp.TypeDateTime}}, "k")
	d.mu.Unlock()
	if fault != nil {
		t.Fatalf("SetParameterValues PeriodicInformTime: %+v", fault)
	}
	if got, want := d.periodicFrom(now, rng), time.Date(2026, 12, 5, 15, 30, 30, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("after SetParameterValues, next Inform at %s, want %s", got, want)
	}
}
