package core

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// paramValues is a device's parameter tree as name → value.
func paramValues(t *testing.T, f *FSM, dev string) map[string]string {
	t.Helper()
	d, err := f.Device(dev, true)
	if err != nil {
		t.Fatalf("device %s: %v", dev, err)
	}
	out := make(map[string]string, len(d.Parameters))
	for k, p := range d.Parameters {
		out[k] = p.Value + "|" + p.Type + "|" + p.Updated.Format(time.RFC3339Nano)
	}
	return out
}

// storedDeviceSize is the size of the device's own value (d/).
func storedDeviceSize(t *testing.T, f *FSM, dev string) int {
	t.Helper()
	n := 0
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pDevice, dev))
		n = len(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFSMColdParametersSpill checks which overlay entries a delta moves
// to per-parameter keys (those neither it nor the delta before it wrote,
// once they reach coldSpillBytes) and that reads never see a difference.
func TestFSMColdParametersSpill(t *testing.T) {
	long := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("InternetGatewayDevice.%s.SomeRatherLongObjectName.%d.Parameter", prefix, i))
		}
		return out
	}
	static, counters, other := long("Static", 5), long("Counter", 5), long("Other", 5)
	type step struct {
		names     []string // parameters the delta sets (to the step's number)
		bootstrap bool
		wantKeys  int // per-parameter keys after the step
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{name: "static parameters spill at the second delta without them", steps: []step{
			{names: append(append([]string{}, static...), counters...), bootstrap: true, wantKeys: 0},
			{names: counters, wantKeys: 0},
			{names: counters, wantKeys: 5},
			{names: counters, wantKeys: 5},
		}},
		{name: "alternating sets never spill", steps: []step{
			{names: static}, {names: other}, {names: static}, {names: other}, {names: static},
		}},
		{name: "a small cold part stays", steps: []step{
			{names: append([]string{"A.B"}, counters...)}, {names: counters}, {names: counters}, {names: counters},
		}},
		{name: "a spilled parameter written again returns to the overlay", steps: []step{
			{names: append(append([]string{}, static...), counters...)},
			{names: counters},
			{names: counters, wantKeys: 5},
			{names: static[:1], wantKeys: 5},
			// The counters, now two deltas old, go too (static[0]'s
			// key stays, older than its overlay entry).
			{names: static[:1], wantKeys: 10},
		}},
		{name: "a bootstrap drops spilled keys", steps: []step{
			{names: append(append([]string{}, static...), counters...)},
			{names: counters},
			{names: counters, wantKeys: 5},
			{names: counters[:2], bootstrap: true, wantKeys: 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFSM(t)
			want := map[string]string{}
			keys, size := 0, 0
			for i, st := range tc.steps {
				at := t0.Add(time.Duration(i) * time.Minute)
				var kv []string
				for _, n := range st.names {
					kv = append(kv, n, fmt.Sprint(i))
				}
				dd := informAt("dev1", "e1", at, kv...)
				dd.Bootstrap = st.bootstrap
				mustApply(t, f, Command{Op: OpDeviceDelta, Delta: dd})
				if st.bootstrap {
					clear(want)
				}
				for _, n := range st.names {
					want[n] = fmt.Sprint(i) + "|xsd:string|" + at.Format(time.RFC3339Nano)
				}
				if got := paramValues(t, f, "dev1"); !maps.Equal(got, want) {
					t.Fatalf("step %d: parameters\n got %v\nwant %v", i, got, want)
				}
				n := paramKeys(t, f, "dev1")
				if n != st.wantKeys {
					t.Fatalf("step %d: %d per-parameter keys, want %d", i, n, st.wantKeys)
				}
				// What spilled left the device's value, which every
				// delta rewrites.
				sz := storedDeviceSize(t, f, "dev1")
				if n > keys && sz >= size {
					t.Fatalf("step %d: spilled, but the device's value grew from %d to %d bytes", i, size, sz)
				}
				keys, size = n, sz
			}
		})
	}
}
