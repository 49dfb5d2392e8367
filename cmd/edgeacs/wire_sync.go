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

// runCoreWithSync runs a core node and, when cfg.CADir is set, its sync
// server for edges, until ctx ends or either fails. The certificate is
// loaded before the node starts, so a wrong --ca-dir fails at once.
func runCoreWithSync(ctx context.Context, cfg core.Config, log *slog.Logger) error {
	var node atomic.Pointer[core.Node]
	var tlsConf *tls.Config
	if cfg.CADir != "" {
		var err error
		tlsConf, err = fleetsync.ServerTLS(cfg.CADir, cfg.ID, func(name string) bool {
			n := node.Load()
			return n != nil && n.Revoked(name)
		})
		if err != nil {
			return fmt.Errorf("core %s: %w", cfg.ID, err)
		}
	} else {
		log.Warn("no --ca-dir: the sync server is off and no edge can connect to this node")
	}
	n, err := core.New(cfg, log)
	if err != nil {
		return err
	}
	node.Store(n)
	if tlsConf == nil {
		return n.Run(ctx)
	}
	srv, err := fleetsync.NewServer(fleetsync.ServerConfig{Addr: cfg.SyncAddr, TLS: tlsConf, Core: n, Log: log})
	if err != nil {
		n.Close()
		return fmt.Errorf("core %s: %w", cfg.ID, err)
	}
	n.SetSyncAddr(srv.Addr())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ctx) }()
	runErr := n.Run(ctx)
	cancel()
	if err := <-srvErr; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
