package core

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/script"
	"github.com/hashicorp/raft"
)

// TestProvisionBoundsMatchTheSandbox: the fleet's bound on a script is
// the one the sandbox compiles, so nothing the core stores is refused
// by every edge for its size.
func TestProvisionBoundsMatchTheSandbox(t *testing.T) {
	if fleet.MaxProvisionScript != script.MaxSource {
		t.Fatalf("fleet.MaxProvisionScript %d, script.MaxSource %d", fleet.MaxProvisionScript, script.MaxSource)
	}
}

// TestFSMProvisions: put, replace, delete, a replayed entry, and the
// shared downlink records each change appends (none for a refused one).
func TestFSMProvisions(t *testing.T) {
	f := mustFSM(t)
	p := &fleet.Provision{Name: "inform", Script: `declare("Device.DeviceInfo.*", {value: 1});`}
	mustApply(t, f, Command{Op: OpPutProvision, Provision: p})
	if got, err := f.Provision("inform"); err != nil || *got != *p {
		t.Fatalf("Provision = %+v, %v", got, err)
	}
	p2 := &fleet.Provision{Name: "inform", Script: "log('v2');"}
	mustApply(t, f, Command{Op: OpPutProvision, Provision: p2}, Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: "b", Script: ""}})
	ps, err := f.Provisions()
	if err != nil || len(ps) != 2 || ps[0].Name != "b" || *ps[1] != *p2 {
		t.Fatalf("Provisions = %+v, %v", ps, err)
	}

	// A replayed entry (an index applied before) changes nothing.
	b, _ := EncodeCommands([]Command{{V: 1, Op: OpDeleteProvision, Name: "inform", Time: t0}})
	f.Apply(&raft.Log{Index: f.AppliedIndex(), Type: raft.LogCommand, Data: b})
	if _, err := f.Provision("inform"); err != nil {
		t.Fatalf("replayed delete applied: %v", err)
	}

	mustApply(t, f, Command{Op: OpDeleteProvision, Name: "inform"})
	if _, err := f.Provision("inform"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted provision: %v", err)
	}
	for _, tt := range []struct {
		name string
		cmd  Command
		want error
	}{
		{"delete missing", Command{Op: OpDeleteProvision, Name: "inform"}, ErrNotFound},
		{"put without provision", Command{Op: OpPutProvision}, ErrBadRequest},
		{"bad name", Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: "a/b"}}, ErrBadRequest},
		{"dot name", Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: ".."}}, ErrBadRequest},
		{"too big", Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: "big", Script: strings.Repeat(" ", fleet.MaxProvisionScript+1)}}, ErrBadRequest},
	} {
		if r := applyAt(t, f, tt.cmd)[0]; !errors.Is(r.Err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, r.Err, tt.want)
		}
	}
	// The FSM does not compile: what a newer compiler refuses still
	// applies from an old log.
	mustApply(t, f, Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: "old", Script: "this is ( not JavaScript"}})

	rs, err := f.Downlink("e9", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if kinds(rs) != "provision provision provision provision-delete provision" {
		t.Fatalf("shared log: %s", kinds(rs))
	}
	for i, r := range rs {
		if !r.Shared || r.Seq != uint64(i+1) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if *rs[0].Provision != *p || *rs[1].Provision != *p2 || rs[3].Name != "inform" {
		t.Fatalf("shared records: %+v", rs)
	}
}

// TestSnapshotCarriesProvisions: provisions, and the shared downlink
// records that carry them, survive a snapshot and restore.
func TestSnapshotCarriesProvisions(t *testing.T) {
	f := mustFSM(t)
	p := &fleet.Provision{Name: "inform", Script: "log('x');"}
	mustApply(t, f, Command{Op: OpPutProvision, Provision: p}, Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: "gone"}})
	mustApply(t, f, Command{Op: OpDeleteProvision, Name: "gone"})
	want := dumpDB(t, f.db)
	b := persist(t, f)

	g := mustFSM(t)
	mustApply(t, g, Command{Op: OpPutProvision, Provision: &fleet.Provision{Name: "stale"}})
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	sameDB(t, dumpDB(t, g.db), want)
	ps, err := g.Provisions()
	if err != nil || len(ps) != 1 || *ps[0] != *p {
		t.Fatalf("provisions after restore: %+v, %v", ps, err)
	}
	rs, _ := g.Downlink("e1", 0, 0, 0)
	if kinds(rs) != "provision provision provision-delete" {
		t.Fatalf("shared log after restore: %s", kinds(rs))
	}
}

// TestAPIProvisions: PUT takes the source as the body whatever its
// content type, compiles it (a syntax error is 400 with where), and GET,
// list and DELETE follow the preset routes' conventions.
func TestAPIProvisions(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	src := "const v = 300;\ndeclare(\"Device.ManagementServer.PeriodicInformInterval\", {value: 1}, {value: v});\n"
	var got fleet.Provision
	if code := do(t, "PUT", api(n, "/provisions/inform"), src, &got); code != 200 || got.Name != "inform" || got.Script != src {
		t.Fatalf("PUT: %d %+v", code, got)
	}

	var bad struct {
		Error        string `json:"error"`
		Line, Column int
	}
	if code := do(t, "PUT", api(n, "/provisions/broken"), "log('a');\nlet x = (1 +;\n", &bad); code != 400 {
		t.Fatalf("PUT syntax error: %d %+v", code, bad)
	}
	if bad.Line != 2 || bad.Column == 0 || !strings.Contains(bad.Error, "broken") {
		t.Fatalf("syntax error answer %+v, want line 2 and a column", bad)
	}
	// A built-in's name: a preset naming it would never run the script.
	if code := do(t, "PUT", api(n, "/provisions/refresh"), "log('x');", &bad); code != 400 || !strings.Contains(bad.Error, "built-in") {
		t.Fatalf("PUT under a built-in's name: %d %+v", code, bad)
	}
	for _, tt := range []struct{ name, path, body string }{
		{"slash", "/provisions/a%2Fb", "1"},
		{"control character", "/provisions/a%01b", "1"},
		{"not UTF-8", "/provisions/u", "\xff"},
	} {
		if code := do(t, "PUT", api(n, tt.path), tt.body, nil); code != 400 {
			t.Errorf("%s: %d, want 400", tt.name, code)
		}
	}

	var one fleet.Provision
	if code := do(t, "GET", api(n, "/provisions/inform"), nil, &one); code != 200 || one != got {
		t.Fatalf("GET: %d %+v", code, one)
	}
	var all []fleet.Provision
	if code := do(t, "GET", api(n, "/provisions?consistent=true"), nil, &all); code != 200 || len(all) != 1 || all[0] != got {
		t.Fatalf("list: %d %+v", code, all)
	}
	if code := do(t, "GET", api(n, "/provisions/broken"), nil, nil); code != 404 {
		t.Fatalf("GET refused provision: %d, want 404", code)
	}
	if code := do(t, "DELETE", api(n, "/provisions/inform"), nil, nil); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	if code := do(t, "DELETE", api(n, "/provisions/inform"), nil, nil); code != 404 {
		t.Fatalf("DELETE again: %d, want 404", code)
	}
	if code := do(t, "GET", api(n, "/provisions/inform"), nil, nil); code != 404 {
		t.Fatalf("GET deleted: %d, want 404", code)
	}
	all = nil
	if code := do(t, "GET", api(n, "/provisions"), nil, &all); code != 200 || all == nil || len(all) != 0 {
		t.Fatalf("empty list: %d %+v", code, all)
	}
}
