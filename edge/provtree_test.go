package edge

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/sim"
)

// dump lists a tree from its root through Children: path, kind, value,
// writable, and whether each time is set, one line per node, sorted.
func dump(t provision.Tree) []string {
	var out []string
	var walk func(string)
	walk = func(obj string) {
		t.Children(obj, func(e provision.Entry) bool {
			line := e.Path
			if e.Object {
				line += " obj"
				if !e.ListTime.IsZero() {
					line += " listed"
				}
			} else {
				line += " =" + e.Value + " " + e.Type
				if !e.ValueTime.IsZero() {
					line += " read"
				}
			}
			if !e.WritableTime.IsZero() {
				line += " w=" + map[bool]string{true: "1", false: "0"}[e.Writable]
			}
			out = append(out, line)
			if e.Object {
				walk(e.Path)
			}
			return true
		})
	}
	walk("")
	slices.Sort(out)
	return out
}

// TestCacheTree: the Badger-backed tree the engine plans against reads
// and writes like provision.MemTree (the engine's reference tree), keeps
// the session's writes in its overlay until End, and reads back from the
// store what the conservative one-timestamp mapping keeps.
func TestCacheTree(t *testing.T) {
	c := openTestCache(t, "")
	m, err := sim.LoadModel(sim.ModelTR098)
	if err != nil {
		t.Fatal(err)
	}
	dev := sim.NewTree(m, sim.Identity{Seed: 1, Index: 1})
	inf := &cwmp.Inform{DeviceId: cwmp.DeviceID{OUI: m.OUI, ProductClass: m.ProductClass, SerialNumber: dev.Serial()},
		ParameterList: dev.Forced()}
	w := mustBegin(t, c, inf, t0)
	if err := w.End(true); err != nil {
		t.Fatal(err)
	}
	id := w.DeviceID()
	at := t0.Add(time.Minute)

	ct := newCacheTree(c, id, at, time.Time{}, nil)
	mem := provision.NewMemTree()
	provision.RecordValues(mem, dev.Forced(), t0)
	// The Inform's values: an object without a record exists as of its
	// first stored descendant.
	if e, ok := ct.Get("InternetGatewayDevice.DeviceInfo."); !ok || !e.Object || !e.PathTime.Equal(t0) {
		t.Fatalf("synthesized object: %+v %v", e, ok)
	}
	if got, want := dump(ct), dump(mem); !slices.Equal(got, want) {
		t.Fatalf("inform only:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Discovery (every name, every value), then a deleted instance and a
	// new one, applied to both trees.
	apply := func(req cwmp.Message) {
		t.Helper()
		resp := simAnswer(dev, req)
		for _, tr := range []provision.MutableTree{ct, mem} {
			if err := provision.ApplyResponse(tr, req, resp, at); err != nil {
				t.Fatalf("%s: %v", req.Method(), err)
			}
		}
	}
	apply(&cwmp.GetParameterNames{ParameterPath: "", NextLevel: false})
	apply(&cwmp.GetParameterValues{ParameterNames: []string{""}})
	wlan := "InternetGatewayDevice.LANDevice.1.WLANConfiguration."
	apply(&cwmp.DeleteObject{ObjectName: wlan + "2."})
	apply(&cwmp.AddObject{ObjectName: wlan})
	apply(&cwmp.GetParameterNames{ParameterPath: wlan, NextLevel: true})
	apply(&cwmp.SetParameterValues{ParameterList: []cwmp.ParameterValue{{Name: wlan + "1.SSID", Value: "x", Type: cwmp.TypeString}}})
	provision.ApplyTags(ct, map[string]bool{"seen": true}, at)
	provision.ApplyTags(mem, map[string]bool{"seen": true}, at)
	got, want := dump(ct), dump(mem)
	if !slices.Equal(got, want) {
		t.Fatalf("after discovery:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e, _ := ct.Get(wlan); !e.ListTime.Equal(at) {
		t.Fatalf("listed table %+v", e)
	}

	// Nothing is stored before End.
	if _, err := c.Parameter(id, wlan+"1.BSSID"); err == nil {
		t.Fatal("the overlay reached the store before End")
	}
	delta := &fleet.DeviceDelta{}
	if err := c.db.Update(func(txn *badger.Txn) error { return ct.commit(txn, delta) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(delta.Removed, wlan+"2.") || len(delta.Parameters) < 100 {
		t.Fatalf("delta: %d removed %v, %d values", len(delta.Removed), delta.Removed, len(delta.Parameters))
	}
	// Read back by a new session's tree: the same nodes, values, flags
	// and listings (times collapse to one per record).
	back := newCacheTree(c, id, at.Add(time.Hour), at, nil)
	if got := dump(back); !slices.Equal(got, want) {
		t.Fatalf("read back:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e, ok := back.Get(wlan + "1.SSID"); !ok || e.Value != "x" || !e.ValueTime.Equal(at) || !e.Writable {
		t.Fatalf("SSID read back: %+v", e)
	}
	if p, err := c.Parameter(id, "Tags.seen"); err != nil || p.Value != "true" {
		t.Fatalf("tag stored: %+v %v", p, err)
	}
	// A forgotten node (the CPE's 9005) is deleted at End.
	back.Put(provision.Entry{Path: wlan + "1.SSID", Value: "x"})
	delta = &fleet.DeviceDelta{}
	if err := c.db.Update(func(txn *badger.Txn) error { return back.commit(txn, delta) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Parameter(id, wlan+"1.SSID"); err == nil || !slices.Equal(delta.Removed, []string{wlan + "1.SSID"}) {
		t.Fatalf("forgotten parameter: %v, removed %v", err, delta.Removed)
	}
}

// TestCacheTreePathTimes: random puts and deletes, some with an older or
// no PathTime, leave every node of the session tree with the PathTime
// it would have had if every Put had walked to the root: what
// provision.MemTree gives it (an object no older than anything below it)
// over an empty store, and what a tree that never stops early gives it
// over a stored one (whose objects may be older than their children:
// the store keeps one time per record).
func TestCacheTreePathTimes(t *testing.T) {
	c := openTestCache(t, "")
	paths := []string{
		"A.", "A.B.", "A.B.c", "A.B.d", "A.B.1.", "A.B.1.x", "A.B.1.y", "A.B.2.", "A.B.2.x",
		"A.e", "A.F.", "A.F.g", "A.F.H.", "A.F.H.i", "K.", "K.l",
	}
	t0 := time.Unix(1_700_000_000, 0)
	// run applies n random operations to got and want, one in del a
	// delete, and compares every node's PathTime after each, and with
	// ordered (got's store is empty) every object's children: the same
	// as want's, in path order (the engine's walks, and End's, rely on
	// it).
	run := func(seed uint64, rng *rand.Rand, n, del int, got, want provision.MutableTree, ordered bool) {
		t.Helper()
		var log []string
		for range n {
			p := paths[rng.IntN(len(paths))]
			if rng.IntN(del) == 0 {
				log = append(log, "delete "+p)
				for _, tr := range []provision.MutableTree{got, want} {
					if _, ok := tr.Get(p); ok {
						tr.Delete(p)
					}
				}
			} else {
				// Mostly rising times, as a session's answers bring
				// them; now and then an older one or none (a forgotten
				// name).
				var at time.Time
				switch k := rng.IntN(10); {
				case k == 0:
				case k == 1:
					at = t0.Add(time.Duration(rng.IntN(5)) * time.Second)
				default:
					at = t0.Add(time.Duration(len(log)+rng.IntN(3)) * time.Second)
				}
				if rng.IntN(4) == 0 {
					// Read the node first, as the engine does before it
					// puts one back, now and then deleting another in
					// between.
					log = append(log, "get "+p)
					got.Get(p)
					want.Get(p)
					if q := paths[rng.IntN(len(paths))]; rng.IntN(2) == 0 {
						if _, ok := want.Get(q); ok {
							log = append(log, "delete "+q)
							got.Delete(q)
							want.Delete(q)
						}
					}
				}
				log = append(log, "put "+p+" "+at.Format(time.TimeOnly))
				got.Put(provision.Entry{Path: p, PathTime: at})
				want.Put(provision.Entry{Path: p, PathTime: at})
			}
			for _, p := range append(paths, "") {
				w, wok := want.Get(p)
				g, gok := got.Get(p)
				if wok != gok || !g.PathTime.Equal(w.PathTime) {
					t.Fatalf("seed %d: %q: got %v %v, want %v %v after\n%s", seed, p,
						g.PathTime.Format(time.TimeOnly), gok, w.PathTime.Format(time.TimeOnly), wok, strings.Join(log, "\n"))
				}
				if !ordered || !isObjectPath(p) {
					continue
				}
				gk, wk := childPaths(got, p), childPaths(want, p)
				if !slices.IsSorted(gk) || !slices.Equal(gk, slices.Sorted(slices.Values(wk))) {
					t.Fatalf("seed %d: children of %q: got %v, want %v in path order after\n%s", seed, p, gk, wk, strings.Join(log, "\n"))
				}
			}
		}
	}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		id := "dev-" + strconv.FormatUint(seed, 10)
		ct := newCacheTree(c, id, t0, time.Time{}, nil)
		run(seed, rng, 40, 8, ct, provision.NewMemTree(), true)

		// The same tree stored, with an object older than what is below
		// it (as a CPE's listing of it alone, or a clock step, leaves
		// it), then a session over it.
		ct.Put(provision.Entry{Path: "A.", PathTime: t0})
		if err := c.db.Update(func(txn *badger.Txn) error { return ct.commit(txn, &fleet.DeviceDelta{}) }); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(time.Hour)
		full := newCacheTree(c, id, later, time.Time{}, nil)
		full.lowered = true // walks every Put to the root
		// Few deletes: one of A. or A.B. hides the stored nodes.
		run(seed, rng, 40, 30, newCacheTree(c, id, later, time.Time{}, nil), full, false)
	}
}

// childPaths lists the paths Children gives for obj, in its order.
func childPaths(t provision.Tree, obj string) []string {
	var out []string
	t.Children(obj, func(e provision.Entry) bool {
		out = append(out, e.Path)
		return true
	})
	return out
}

// TestWrittenInOrder: commit's nodes to store come in path order, every
// one of them, whatever the session did: the walk down the overlay's
// sorted child lists where it reaches them all (a session that only
// puts, as a bootstrap's), the sort where it does not. The names include
// what sorts around the separator ('-' and '/' either side of '.') and
// instance numbers that do not sort as numbers.
func TestWrittenInOrder(t *testing.T) {
	c := openTestCache(t, "")
	paths := []string{
		"A.", "A.B.", "A.B.c", "A.B-x", "A.B/y", "A.B.1.", "A.B.1.x", "A.B.10.", "A.B.10.x", "A.B.2.",
		"A.B.2.x", "A.Bc", "A.e", "A.F.", "A.F.g", "A.F.H.", "A.F.H.i", "K.", "K.l", "K.l2",
	}
	t0 := time.Unix(1_700_000_000, 0)
	walked := 0
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 11))
		ct := newCacheTree(c, "dev-"+strconv.FormatUint(seed, 10), t0, time.Time{}, nil)
		del := 0 // no deletes: the walk must reach every node
		if seed%2 == 1 {
			del = 6
		}
		for i := range 30 {
			p := paths[rng.IntN(len(paths))]
			if del > 0 && rng.IntN(del) == 0 {
				if _, ok := ct.Get(p); ok {
					ct.Delete(p)
				}
				continue
			}
			e := provision.Entry{Path: p, PathTime: t0.Add(time.Duration(i) * time.Second)}
			if !isObjectPath(p) {
				e.Value, e.ValueTime = "v", e.PathTime
			}
			ct.Put(e)
			if rng.IntN(3) == 0 {
				ct.Children(parentOf(p), func(provision.Entry) bool { return true }) // sorts the list
			}
		}
		var want []string
		for p, o := range ct.over {
			if o.dirty && !o.deleted {
				want = append(want, p)
			}
		}
		slices.Sort(want)
		if ct.stores != len(want) {
			t.Fatalf("seed %d: the overlay counts %d nodes to store, holds %d", seed, ct.stores, len(want))
		}
		var got []string
		for _, w := range ct.writtenInOrder() {
			if ct.over[w.path] != w.o {
				t.Fatalf("seed %d: %q paired with another node", seed, w.path)
			}
			got = append(got, w.path)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: written\n%v\nwant\n%v", seed, got, want)
		}
		if _, ok := ct.writtenByWalk(); ok {
			walked++
		} else if del == 0 {
			t.Fatalf("seed %d: a session that only put nodes was not walked in order", seed)
		}
	}
	if walked < 150 {
		t.Fatalf("the walk served %d of 300 sessions, want at least the 150 without deletes", walked)
	}
}
