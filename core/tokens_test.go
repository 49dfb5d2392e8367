package core

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
	"github.com/hashicorp/raft"
)

// testToken is a token named name whose secret is "eacs_" + name.
func testToken(name string, scope fleet.Scope) *fleet.Token {
	return &fleet.Token{Name: name, Scope: scope, Hash: fleet.HashToken(fleet.TokenPrefix + name), Created: t0}
}

// sharedLog returns every record of the fleet-wide downlink.
func sharedLog(t *testing.T, f *FSM) []fleet.DownRecord {
	t.Helper()
	rs, err := f.Downlink("e-any", math.MaxUint64, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestFSMTokens applies token puts and revocations: the index follows,
// names and (with IfNone) any token at all conflict, a bad token or name
// changes nothing, a revocation of a name not there is ErrNotFound and
// changes nothing, replays change nothing, every change reaches the
// shared downlink, and a reopened FSM finds the same tokens.
func TestFSMTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fsm")
	f, err := OpenFSM(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close() }()

	if f.HasTokens() || len(f.Tokens()) != 0 {
		t.Fatal("a new FSM has tokens")
	}
	// IfNone on an empty store wins.
	admin := testToken("admin", fleet.ScopeAdmin)
	mustApply(t, f, Command{Op: OpPutToken, Token: admin, IfNone: true})
	if got, ok := f.TokenByHash(admin.Hash); !ok || got.Name != "admin" || got.Scope != fleet.ScopeAdmin {
		t.Fatalf("TokenByHash(admin) = %+v %v", got, ok)
	}
	// A second founder's IfNone loses, whatever its name.
	other := testToken("admin2", fleet.ScopeAdmin)
	if r := applyAt(t, f, Command{Op: OpPutToken, Token: other, IfNone: true})[0]; !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("IfNone with a token present: %v", r.Err)
	}
	// A name in use conflicts; so does another token's hash.
	dup := testToken("admin", fleet.ScopeRead)
	dup.Hash = fleet.HashToken("eacs_other")
	if r := applyAt(t, f, Command{Op: OpPutToken, Token: dup})[0]; !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("taken name: %v", r.Err)
	}
	same := testToken("ci", fleet.ScopeRead)
	same.Hash = admin.Hash
	if r := applyAt(t, f, Command{Op: OpPutToken, Token: same})[0]; !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("taken hash: %v", r.Err)
	}
	// Bad tokens are domain errors: refused, nothing stored, the FSM runs on.
	for _, bad := range []*fleet.Token{
		nil,
		{Name: "bad name", Scope: fleet.ScopeRead, Hash: admin.Hash},
		{Name: "ci", Scope: "root", Hash: fleet.HashToken("x")},
		{Name: "ci", Scope: fleet.ScopeRead, Hash: "abc"},
	} {
		if r := applyAt(t, f, Command{Op: OpPutToken, Token: bad})[0]; !errors.Is(r.Err, ErrBadRequest) {
			t.Fatalf("bad token %+v: %v", bad, r.Err)
		}
	}
	if r := applyAt(t, f, Command{Op: OpRevokeToken, Name: "bad/name"})[0]; !errors.Is(r.Err, ErrBadRequest) {
		t.Fatalf("revoke of a bad name: %v", r.Err)
	}
	if err := f.Err(); err != nil {
		t.Fatalf("a domain error stopped the FSM: %v", err)
	}

	ci := testToken("ci", fleet.ScopeWrite)
	ci.Expires = t0.Add(time.Hour)
	mustApply(t, f, Command{Op: OpPutToken, Token: ci})
	if got := f.Tokens(); len(got) != 2 || got[0].Name != "admin" || got[1].Name != "ci" || !got[1].Expires.Equal(ci.Expires) {
		t.Fatalf("Tokens() = %+v", got)
	}
	mustApply(t, f, Command{Op: OpRevokeToken, Name: "ci"})
	if _, ok := f.TokenByHash(ci.Hash); ok {
		t.Fatal("revoked token still found")
	}
	// A revocation of a name not there (a replay, a second click) changes
	// nothing and appends nothing.
	before := len(sharedLog(t, f))
	if r := applyAt(t, f, Command{Op: OpRevokeToken, Name: "ci"})[0]; !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("second revoke: %v", r.Err)
	}
	if after := len(sharedLog(t, f)); after != before {
		t.Fatalf("a refused revoke appended %d records", after-before)
	}

	// A replayed entry (at or below the applied index) changes nothing.
	b, _ := EncodeCommands([]Command{{V: CommandVersion, Op: OpPutToken, Time: t0, Token: ci}})
	f.Apply(&raft.Log{Index: f.AppliedIndex(), Type: raft.LogCommand, Data: b})
	if _, ok := f.TokenByHash(ci.Hash); ok {
		t.Fatal("a replayed put brought a revoked token back")
	}

	rs := sharedLog(t, f)
	if kinds(rs) != "token token token-revoke" {
		t.Fatalf("shared log: %s", kinds(rs))
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if rs[0].Token.Hash != admin.Hash || rs[1].Token.Name != "ci" || rs[2].Name != "ci" {
		t.Fatalf("shared records: %+v", rs)
	}

	// The index is rebuilt from the DB on open.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = OpenFSM(dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.Tokens(); len(got) != 1 || got[0].Name != "admin" {
		t.Fatalf("after reopen: %+v", got)
	}
	if _, ok := f.TokenByHash(admin.Hash); !ok {
		t.Fatal("after reopen: admin not found by hash")
	}
}

// TestTokensReplicateAcrossCluster creates a token through one node's API
// (a follower, which forwards to the leader), finds it by hash on all
// three nodes, and revokes it through another: it is gone everywhere.
func TestTokensReplicateAcrossCluster(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leaderOf(t, nodes)
	f := followerOf(nodes)
	var created fleet.TokenCreated
	if code := do(t, "POST", api(f, "/tokens"), `{"name":"ci","scope":"write","expires":"720h"}`, &created); code != 201 {
		t.Fatalf("create via follower: %d %+v", code, created)
	}
	hash := fleet.HashToken(created.Token)
	for _, n := range nodes {
		waitFor(t, "the token on "+n.ID(), 10*time.Second, func() bool {
			tok, ok := n.TokenByHash(hash)
			return ok && tok.Name == "ci" && tok.Scope == fleet.ScopeWrite
		})
	}
	// Node.CreateToken on the leader, Node.RevokeToken too.
	secret, tok, err := leaderOf(t, nodes).CreateToken(context.Background(), "ops", fleet.ScopeRead, time.Time{})
	if err != nil || tok.Hash != fleet.HashToken(secret) || !tok.Expires.IsZero() {
		t.Fatalf("CreateToken: %+v %v", tok, err)
	}
	if _, _, err := followerOf(nodes).CreateToken(context.Background(), "x", fleet.ScopeRead, time.Time{}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("CreateToken on a follower: %v", err)
	}
	var other *testNode
	for _, n := range nodes {
		if n != f {
			other = n
		}
	}
	if code := do(t, "DELETE", api(other, "/tokens/ci"), nil, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	for _, n := range nodes {
		waitFor(t, "the revocation on "+n.ID(), 10*time.Second, func() bool {
			_, gone := n.TokenByHash(hash)
			_, ops := n.TokenByHash(tok.Hash)
			return !gone && ops
		})
	}
	if err := leaderOf(t, nodes).RevokeToken(context.Background(), "ci"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke again: %v", err)
	}
}

// TestTokenAPI checks the token routes' shapes and refusals.
func TestTokenAPI(t *testing.T) {
	nodes := newCluster(t, 1, nil)
	n := leaderOf(t, nodes)
	// The bootstrap admin token is there first.
	waitFor(t, "the admin token", 10*time.Second, func() bool { return len(n.Tokens()) == 1 })

	var raw map[string]any
	if code := do(t, "POST", api(n, "/tokens"), `{"name":"ci","scope":"read","expires":"2h"}`, &raw); code != 201 {
		t.Fatalf("create: %d %v", code, raw)
	}
	secret, _ := raw["token"].(string)
	if len(raw) != 4 || raw["name"] != "ci" || raw["scope"] != "read" || !strings.HasPrefix(secret, fleet.TokenPrefix) {
		t.Fatalf("201 body: %v", raw)
	}
	exp, err := time.Parse(time.RFC3339, fmt.Sprint(raw["expires"]))
	if err != nil || exp.Before(time.Now().Add(time.Hour)) || exp.After(time.Now().Add(3*time.Hour)) {
		t.Fatalf("expires %v: %v", raw["expires"], err)
	}
	if tok, ok := n.TokenByHash(fleet.HashToken(secret)); !ok || tok.Name != "ci" {
		t.Fatal("created secret does not resolve")
	}
	// No expiry: the key is absent; an RFC 3339 time is kept as given.
	raw = nil
	if code := do(t, "POST", api(n, "/tokens"), `{"name":"forever","scope":"admin"}`, &raw); code != 201 || raw["expires"] != nil {
		t.Fatalf("create without expiry: %d %v", code, raw)
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	var created fleet.TokenCreated
	if code := do(t, "POST", api(n, "/tokens"), fmt.Sprintf(`{"name":"dated","scope":"write","expires":%q}`, at.Format(time.RFC3339)), &created); code != 201 || !created.Expires.Equal(at) {
		t.Fatalf("create with a time: %d %+v", code, created)
	}

	for _, c := range []struct{ body, want string }{
		{`{"name":"bad name","scope":"read"}`, "name"},
		{`{"name":"","scope":"read"}`, "name"},
		{`{"name":"` + strings.Repeat("a", 65) + `","scope":"read"}`, "name"},
		{`{"name":"x","scope":"root"}`, "scope"},
		{`{"name":"x"}`, "scope"},
		{`{"name":"x","scope":"read","expires":"soon"}`, "expires"},
		{`{"name":"x","scope":"read","expires":"-1h"}`, "expires"},
		{`{"name":"x","scope":"read","expires":"2001-01-01T00:00:00Z"}`, "expires"},
		{`{"name":"x","scope":"read","secret":"mine"}`, "unknown field"},
		{`{"name":"x","name":"y","scope":"read"}`, "duplicate"},
		{`not json`, "JSON"},
	} {
		var e struct{ Error string }
		if code := do(t, "POST", api(n, "/tokens"), c.body, &e); code != 400 || !strings.Contains(e.Error, c.want) {
			t.Fatalf("%s: %d %q, want 400 naming %q", c.body, code, e.Error, c.want)
		}
	}
	var e struct{ Error string }
	if code := do(t, "POST", api(n, "/tokens"), `{"name":"ci","scope":"write"}`, &e); code != 409 || !strings.Contains(e.Error, "ci") {
		t.Fatalf("duplicate name: %d %q", code, e.Error)
	}
	if code := do(t, "DELETE", api(n, "/tokens/nope"), nil, &e); code != 404 {
		t.Fatalf("revoke of an unknown token: %d", code)
	}
	if code := do(t, "DELETE", api(n, "/tokens/bad%20name"), nil, &e); code != 400 {
		t.Fatalf("revoke of a bad name: %d", code)
	}

	// The list names tokens, never hashes or secrets.
	code, _, body := httpDo(t, "GET", api(n, "/tokens"), "", nil)
	if code != 200 || strings.Contains(body, secret) || strings.Contains(body, fleet.HashToken(secret)) || strings.Contains(strings.ToLower(body), "hash") {
		t.Fatalf("list: %d %s", code, body)
	}
	var list []map[string]any
	if err := decodeJSONString(body, &list); err != nil || len(list) != 4 {
		t.Fatalf("list: %s %v", body, err)
	}
	for i, want := range []string{"admin", "ci", "dated", "forever"} {
		if list[i]["name"] != want || list[i]["created"] == nil {
			t.Fatalf("list[%d] = %v, want %s", i, list[i], want)
		}
	}
	if code := do(t, "DELETE", api(n, "/tokens/ci"), nil, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if _, ok := n.TokenByHash(fleet.HashToken(secret)); ok {
		t.Fatal("revoked token still resolves")
	}
}

// TestBootstrapAdminToken: a --bootstrap node writes admin.token (0600,
// one line) whose secret resolves to the admin token; a restart leaves it
// as it is, a crash before the file was moved into place is completed, and
// a restart after the file is deleted makes no new one (tokens exist).
func TestBootstrapAdminToken(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.Bootstrap = true
	n := startNode(t, cfg)
	path := filepath.Join(cfg.DataDir, "admin.token")
	if n.AdminTokenPath() != path {
		t.Fatalf("AdminTokenPath %q", n.AdminTokenPath())
	}
	var secret string
	waitFor(t, "admin.token", 15*time.Second, func() bool {
		b, err := os.ReadFile(path)
		secret = string(b)
		return err == nil
	})
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode: %v %v", st.Mode(), err)
	}
	if !strings.HasSuffix(secret, "\n") || strings.Count(secret, "\n") != 1 {
		t.Fatalf("admin.token is not one line: %q", secret)
	}
	secret = strings.TrimSuffix(secret, "\n")
	tok, ok := n.TokenByHash(fleet.HashToken(secret))
	if !ok || tok.Name != "admin" || tok.Scope != fleet.ScopeAdmin || !tok.Expires.IsZero() {
		t.Fatalf("admin token: %+v %v", tok, ok)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staged file left behind: %v", err)
	}

	// keep: a plain restart. staged: a crash after the token committed
	// and before the file was moved into place. dropped: a restart after
	// the operator deleted the file (tokens exist: nothing is made).
	for _, step := range []string{"keep", "staged", "dropped"} {
		cfg.RaftAddr, cfg.APIAddr = n.RaftAddr(), n.APIAddr()
		n.stop()
		switch step {
		case "staged":
			if err := os.Rename(path, path+".tmp"); err != nil {
				t.Fatal(err)
			}
		case "dropped":
			os.Remove(path)
		}
		n = startNode(t, cfg)
		waitFor(t, "the restarted node to lead", 15*time.Second, n.IsLeader)
		// A write through the log: once it is applied, so are the tokens
		// before it, and the loop settles by them.
		mustApplyNode(t, n, Command{Op: OpDeviceDelta, Delta: delta("d", "e1")})
		waitFor(t, "the loop to settle", 10*time.Second, func() bool {
			_, err := os.Stat(path + ".tmp")
			return errors.Is(err, os.ErrNotExist)
		})
		b, err := os.ReadFile(path)
		switch {
		case step != "dropped" && (err != nil || strings.TrimSpace(string(b)) != secret):
			t.Fatalf("%s: admin.token is %q (%v), want the first secret", step, b, err)
		case step == "dropped" && err == nil:
			t.Fatalf("a restart with tokens present wrote admin.token again: %q", b)
		}
		if got := n.Tokens(); len(got) != 1 || got[0].Hash != tok.Hash {
			t.Fatalf("%s: tokens after restart: %+v", step, got)
		}
	}
}

// TestBootstrapExpectOneAdminToken founds a three-node cluster with
// bootstrap-expect: exactly one founder writes admin.token, and its
// secret resolves on every node.
func TestBootstrapExpectOneAdminToken(t *testing.T) {
	rafts := freeAddrs(t, 3)
	var nodes []*testNode
	for i := range 3 {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1))
		// Each founder makes its own secret here: one must win.
		if err := os.Remove(filepath.Join(cfg.DataDir, tokenfile.Name+".tmp")); err != nil {
			t.Fatal(err)
		}
		cfg.RaftAddr = rafts[i]
		cfg.BootstrapExpect = 3
		var others []string
		for j, a := range rafts {
			if j != i {
				others = append(others, a)
			}
		}
		cfg.Join = strings.Join(others, ",")
		nodes = append(nodes, startNode(t, cfg))
	}
	waitFor(t, "the three founders to form one cluster", 20*time.Second, func() bool { return clusterReady(nodes) })
	var holders []*testNode
	waitFor(t, "an admin.token", 15*time.Second, func() bool {
		holders = nil
		for _, n := range nodes {
			if _, err := os.Stat(n.AdminTokenPath()); err == nil {
				holders = append(holders, n)
			}
		}
		return len(holders) > 0
	})
	for _, n := range nodes {
		waitFor(t, "the loop on "+n.ID()+" to settle", 10*time.Second, func() bool {
			_, err := os.Stat(n.AdminTokenPath() + ".tmp")
			return errors.Is(err, os.ErrNotExist) && n.fsm.HasTokens()
		})
	}
	holders = nil
	for _, n := range nodes {
		if _, err := os.Stat(n.AdminTokenPath()); err == nil {
			holders = append(holders, n)
		}
	}
	if len(holders) != 1 {
		t.Fatalf("%d founders wrote admin.token", len(holders))
	}
	b, err := os.ReadFile(holders[0].AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	hash := fleet.HashToken(strings.TrimSpace(string(b)))
	for _, n := range nodes {
		waitFor(t, "the admin token on "+n.ID(), 10*time.Second, func() bool {
			tok, ok := n.TokenByHash(hash)
			return ok && tok.Name == "admin" && len(n.Tokens()) == 1
		})
	}
}

// TestAdminTokenReusesStagedSecret: a founder that staged a secret and
// stopped before proposing it proposes that same secret on its next
// start, so a proposal whose outcome it never learned cannot leave two
// secrets around.
func TestAdminTokenReusesStagedSecret(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.Bootstrap = true
	path := filepath.Join(cfg.DataDir, "admin.token")
	// The crash: a staged secret, nothing in the log, no file.
	secret := fleet.TokenPrefix + "staged"
	if err := os.WriteFile(path+".tmp", []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	waitFor(t, "admin.token", 15*time.Second, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != secret {
		t.Fatalf("admin.token holds %q, want the staged secret", b)
	}
	if _, ok := n.TokenByHash(fleet.HashToken(secret)); !ok {
		t.Fatal("staged secret does not resolve")
	}
}

// TestAdminTokenByAFounderThatLostTheLead: a founder that owes the cluster
// its first admin token makes it through the leader when it is not the
// leader itself (an election while the others joined used to leave the
// cluster with no token until the founder led again).
func TestAdminTokenByAFounderThatLostTheLead(t *testing.T) {
	rafts := freeAddrs(t, 3)
	nodes := newCluster(t, 3, func(c *Config) {
		c.RaftAddr = rafts[0]
		for i, id := range []string{"n1", "n2", "n3"} {
			if c.ID == id {
				c.RaftAddr = rafts[i]
			}
		}
	})
	n1 := nodes[0]
	// No token at all, and no file: what a founder sees before its loop
	// has made the first token.
	l := leaderOf(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.RevokeToken(ctx, adminTokenName); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no token on n1", 10*time.Second, func() bool { return !n1.fsm.HasTokens() })
	if err := os.Remove(n1.AdminTokenPath()); err != nil {
		t.Fatal(err)
	}
	if l == n1 {
		if err := n1.raft.LeadershipTransferToServer(raft.ServerID(nodes[1].ID()), raft.ServerAddress(nodes[1].RaftAddr())).Error(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "another leader", 10*time.Second, func() bool { _, id := n1.raft.LeaderWithID(); return id != "" && string(id) != n1.ID() })
	cfg := n1.cfg
	n1.stop()
	n1 = startNode(t, cfg) // a founder restarting as a follower, owing a token
	waitFor(t, "n1's admin.token", 20*time.Second, func() bool { _, err := os.Stat(n1.AdminTokenPath()); return err == nil })
	b, err := os.ReadFile(n1.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	hash := fleet.HashToken(strings.TrimSpace(string(b)))
	for _, n := range []*testNode{n1, nodes[1], nodes[2]} {
		waitFor(t, "the new admin token on "+n.ID(), 10*time.Second, func() bool { _, ok := n.TokenByHash(hash); return ok })
	}
	if n1.IsLeader() {
		t.Log("n1 led again before it made the token; the test proved less")
	}
}
