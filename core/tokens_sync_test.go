package core

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/edge"
	"github.com/edgeacs/edgeacs/fleet"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// syncEdge is an edge's cache linked to a core over the real sync link.
type syncEdge struct {
	cache *edge.Cache
	stop  func() // ends the link (the cache stays open)
}

// linkEdge connects cache, as edge id, to the sync server at addr.
func linkEdge(t *testing.T, caDir, id, addr string, cache *edge.Cache) *syncEdge {
	t.Helper()
	tlsConf, err := fleetsync.ClientTLS(caDir, id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fleetsync.NewClient(fleetsync.ClientConfig{EdgeID: id, Cores: []string{addr}, TLS: tlsConf,
		Outbox: cache, Inbox: cache, Log: testLogger(), BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	stopped := false
	e := &syncEdge{cache: cache, stop: func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}}
	t.Cleanup(e.stop)
	return e
}

// TestTokensReachEdgesOverSync runs a core node with its sync server and
// edges on the real link: a connected edge receives a token and its
// revocation; an edge that was away gets what it missed when it comes
// back; an edge that connects for the first time gets the tokens that
// exist (the bootstrap admin token among them) and none that were revoked.
func TestTokensReachEdgesOverSync(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	if err := fleetsync.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	for id, role := range map[string]fleetsync.Role{"n1": fleetsync.RoleCore, "e1": fleetsync.RoleEdge, "e2": fleetsync.RoleEdge} {
		if err := fleetsync.IssueCert(caDir, id, role, ""); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, "n1")
	cfg.Bootstrap, cfg.CADir = true, caDir
	n := startNode(t, cfg)
	srvTLS, err := fleetsync.ServerTLS(caDir, "n1", n.Revoked)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fleetsync.NewServer(fleetsync.ServerConfig{Addr: "127.0.0.1:0", TLS: srvTLS, Core: n.Node, Log: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		_ = srv.Serve(ctx)
	}()
	t.Cleanup(func() { cancel(); <-srvDone })
	n.SetSyncAddr(srv.Addr())
	waitFor(t, "leadership", 15*time.Second, n.IsLeader)

	var adminHash string
	waitFor(t, "the bootstrap admin token", 15*time.Second, func() bool {
		b, err := os.ReadFile(n.AdminTokenPath())
		adminHash = fleet.HashToken(strings.TrimSpace(string(b)))
		return err == nil
	})

	openCache := func(id string) *edge.Cache {
		c, err := edge.OpenCache(t.TempDir(), edge.CacheOptions{EdgeID: id, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	has := func(c *edge.Cache, hash string) bool { _, ok := c.TokenByHash(hash); return ok }

	e1 := linkEdge(t, caDir, "e1", srv.Addr(), openCache("e1"))
	waitFor(t, "e1 to hold the admin token", 15*time.Second, func() bool { return has(e1.cache, adminHash) })

	ci, tok, err := n.CreateToken(ctx, "ci", fleet.ScopeWrite, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "e1 to receive ci", 15*time.Second, func() bool {
		got, ok := e1.cache.TokenByHash(fleet.HashToken(ci))
		return ok && got.Name == "ci" && got.Scope == fleet.ScopeWrite && got.Hash == tok.Hash
	})
	if err := n.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "e1 to drop ci", 15*time.Second, func() bool { return !has(e1.cache, tok.Hash) })

	// e1 goes away; tokens come and go meanwhile.
	e1.stop()
	late, _, err := n.CreateToken(ctx, "late", fleet.ScopeRead, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := n.CreateToken(ctx, "gone", fleet.ScopeAdmin, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.RevokeToken(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if has(e1.cache, fleet.HashToken(late)) {
		t.Fatal("a stopped edge received a token")
	}
	e1 = linkEdge(t, caDir, "e1", srv.Addr(), e1.cache)
	waitFor(t, "e1 to catch up", 15*time.Second, func() bool {
		return has(e1.cache, fleet.HashToken(late)) && !has(e1.cache, fleet.HashToken(gone)) && has(e1.cache, adminHash)
	})

	// A new edge gets the tokens that exist, not the ones revoked.
	e2 := linkEdge(t, caDir, "e2", srv.Addr(), openCache("e2"))
	waitFor(t, "e2 to hold the fleet's tokens", 15*time.Second, func() bool {
		names := []string{}
		for _, tk := range e2.cache.Tokens() {
			names = append(names, tk.Name)
		}
		_, s, _ := e2.cache.DownlinkAcked()
		_, s1, _ := e1.cache.DownlinkAcked()
		return strings.Join(names, ",") == "admin,late" && s == s1
	})
	if !has(e2.cache, adminHash) || !has(e2.cache, fleet.HashToken(late)) {
		t.Fatal("e2's tokens do not resolve by hash")
	}
}
