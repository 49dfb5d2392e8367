package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/edge"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// edgeUplink is the sync client as the edge node runs it.
type edgeUplink struct{ *fleetsync.Client }

// LinkStatus is shown in the edge's /healthz under "sync".
func (u edgeUplink) LinkStatus() any { return u.Status() }

// edgeSyncTLS loads the edge's certificate before anything else starts, so
// a wrong --ca-dir or --id fails at once with the reason.
func edgeSyncTLS(cfg edge.Config) (*tls.Config, error) {
	conf, err := fleetsync.ClientTLS(cfg.CADir, cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", cfg.ID, err)
	}
	return conf, nil
}

// newEdgeUplink wires the sync client to the edge's cache: the outbox up,
// the downlink into the cache, the node's health on heartbeats, and file
// content fetched from the core into the node's file store.
func newEdgeUplink(cfg edge.Config, tlsConf *tls.Config, node *edge.Node, log *slog.Logger) (edge.Uplink, error) {
	c, err := fleetsync.NewClient(fleetsync.ClientConfig{
		EdgeID: cfg.ID,
		Cores:  cfg.Core,
		TLS:    tlsConf,
		Outbox: node.Cache(),
		Inbox:  node.Cache(),
		Health: node,
		Log:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", cfg.ID, err)
	}
	// File content comes over the same link, on its own streams.
	node.SetBlobFetcher(c)
	return edgeUplink{c}, nil
}

// newEdgeNode builds an edge node as `edgeacs edge` runs it: with its
// sync client to the core unless cfg.Standalone. The edge's certificate
// is loaded first, so a wrong --ca-dir or --id fails at once with the
// reason. link is nil for a standalone edge.
func newEdgeNode(cfg edge.Config, log *slog.Logger) (node *edge.Node, link *fleetsync.Client, err error) {
	var syncTLS *tls.Config
	if !cfg.Standalone {
		if syncTLS, err = edgeSyncTLS(cfg); err != nil {
			return nil, nil, err
		}
	}
	if node, err = edge.New(cfg, log); err != nil {
		return nil, nil, err
	}
	if cfg.Standalone {
		return node, nil, nil
	}
	up, err := newEdgeUplink(cfg, syncTLS, node, log)
	if err != nil {
		// Run, which would close the cache, never runs: close it here.
		node.Cache().Close()
		return nil, nil, err
	}
	node.SetUplink(up)
	return node, up.(edgeUplink).Client, nil
}

// coreWithSync is a core node and, when its configuration names a CA
// directory, the sync server its edges connect to: built, bound, not yet
// running. `edgeacs core` runs one; `edgeacs dev` runs one beside an edge.
type coreWithSync struct {
	node *core.Node
	srv  *fleetsync.Server // nil without a CA directory
}

// newCoreWithSync builds a core node and its sync server. The certificate
// is loaded before the node starts, so a wrong --ca-dir fails at once.
func newCoreWithSync(cfg core.Config, log *slog.Logger) (*coreWithSync, error) {
	var node atomic.Pointer[core.Node]
	var tlsConf *tls.Config
	if cfg.CADir != "" {
		var err error
		tlsConf, err = fleetsync.ServerTLS(cfg.CADir, cfg.ID, func(name string) bool {
			n := node.Load()
			return n != nil && n.Revoked(name)
		})
		if err != nil {
			return nil, fmt.Errorf("core %s: %w", cfg.ID, err)
		}
	} else {
		log.Warn("no --ca-dir: the sync server is off and no edge can connect to this node")
	}
	n, err := core.New(cfg, log)
	if err != nil {
		return nil, err
	}
	node.Store(n)
	if tlsConf == nil {
		return &coreWithSync{node: n}, nil
	}
	srv, err := fleetsync.NewServer(fleetsync.ServerConfig{Addr: cfg.SyncAddr, TLS: tlsConf, Core: n, Log: log})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("core %s: %w", cfg.ID, err)
	}
	n.SetSyncAddr(srv.Addr())
	return &coreWithSync{node: n, srv: srv}, nil
}

// SyncAddr is the bound sync address ("" without a sync server).
func (c *coreWithSync) SyncAddr() string {
	if c.srv == nil {
		return ""
	}
	return c.srv.Addr()
}

// Run serves the node and its sync server until ctx ends or either fails,
// then stops both.
func (c *coreWithSync) Run(ctx context.Context) error {
	if c.srv == nil {
		return c.node.Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- c.srv.Serve(ctx) }()
	runErr := c.node.Run(ctx)
	cancel()
	if err := <-srvErr; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// runCoreWithSync runs a core node and, when cfg.CADir is set, its sync
// server for edges, until ctx ends or either fails.
func runCoreWithSync(ctx context.Context, cfg core.Config, log *slog.Logger) error {
	c, err := newCoreWithSync(cfg, log)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}
