package sim

import (
	"reflect"
	"testing"
	"time"
)

// TestOffsetSplitsFleet: two fleets with the same seed and disjoint
// ranges are the devices of one fleet over the whole range.
func TestOffsetSplitsFleet(t *testing.T) {
	whole, err := New(Config{ACSURL: "http://127.0.0.1:1/", Count: 7, Model: ModelMixed, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	part, err := New(Config{ACSURL: "http://127.0.0.1:1/", Count: 3, Offset: 4, Model: ModelMixed, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer part.Close()
	for i := range 3 {
		w, p := whole.Device(4+i), part.Device(i)
		if w.ID() != p.ID() || w.Model() != p.Model() || w.Index() != p.Index() {
			t.Errorf("device %d of the part is %s (%s, index %d), of the whole %s (%s, index %d)",
				i, p.ID(), p.Model(), p.Index(), w.ID(), w.Model(), w.Index())
		}
	}
	for i := range 7 {
		if id, err := DeviceIDAt(ModelMixed, 3, i); err != nil || id != whole.Device(i).ID() {
			t.Errorf("DeviceIDAt(mixed, 3, %d) = %q, %v; the fleet's device is %s", i, id, err, whole.Device(i).ID())
		}
	}
	if _, err := New(Config{ACSURL: "http://127.0.0.1:1/", Count: 1, Offset: -1}); err == nil {
		t.Fatal("negative offset accepted")
	}
}

func TestStatsMerge(t *testing.T) {
	a, b := newStats(), newStats()
	for range 99 {
		a.sessionDone(time.Millisecond)
	}
	b.sessionDone(time.Second)
	a.rpc("GetParameterValues")
	b.rpc("GetParameterValues")
	b.informEvents([]string{"0 BOOTSTRAP"})
	a.started.Add(99)
	b.started.Add(2)
	b.errors.Add(1)
	a.busy.Add(3)
	b.busy.Add(4)
	m := a.snapshot(10).Merge(b.snapshot(5))
	if m.Devices != 15 || m.SessionsStarted != 101 || m.SessionsCompleted != 100 || m.SessionErrors != 1 || m.SessionsBusy != 7 ||
		m.RPCs["GetParameterValues"] != 2 || m.Events["0 BOOTSTRAP"] != 1 {
		t.Fatalf("merged %+v", m)
	}
	// 99 sessions of 1 ms and one of 1 s: the p50 and p99 are 1 ms (within
	// the histogram's 5 %), as one fleet holding all of them would say.
	for name, q := range map[string]time.Duration{"p50": m.SessionP50, "p99": m.SessionP99} {
		if q < time.Millisecond || q > 1050*time.Microsecond {
			t.Errorf("%s %s, want 1 ms", name, q)
		}
	}
	if got := (Stats{}).Merge(Stats{}); got.SessionP99 != 0 || got.Histogram != nil {
		t.Errorf("empty merge %+v", got)
	}
}

// TestStatsMergeAddsEveryCounter sets every counter of two Stats and
// checks Merge adds each: a counter Merge forgot (SessionsBusy once) read
// zero in `edgeacs sim --processes`'s summary and the storm benchmark.
func TestStatsMergeAddsEveryCounter(t *testing.T) {
	var a, b Stats
	va, vb := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	typ := va.Type()
	n := 0
	for i := range typ.NumField() {
		f := va.Field(i)
		switch f.Kind() {
		case reflect.Uint64:
			f.SetUint(uint64(10 + i))
			vb.Field(i).SetUint(uint64(100 * (i + 1)))
			n++
		case reflect.Int:
			f.SetInt(int64(10 + i))
			vb.Field(i).SetInt(int64(100 * (i + 1)))
			n++
		}
	}
	if n < 8 {
		t.Fatalf("only %d counters in Stats", n)
	}
	m := reflect.ValueOf(a.Merge(b))
	for i := range typ.NumField() {
		var got, want int64
		switch m.Field(i).Kind() {
		case reflect.Uint64:
			got, want = int64(m.Field(i).Uint()), int64(10+i+100*(i+1))
		case reflect.Int:
			got, want = m.Field(i).Int(), int64(10+i+100*(i+1))
		default:
			continue
		}
		if got != want {
			t.Errorf("Merge: %s = %d, want %d", typ.Field(i).Name, got, want)
		}
	}
}
