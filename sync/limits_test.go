package sync

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestServerMaxConns: past MaxConns the core closes a new edge connection
// at once with codeBusy; the edge backs off and gets in once a slot frees.
func TestServerMaxConns(t *testing.T) {
	p := newPKI(t)
	core := newMemCore(true)
	tlsConf, err := ServerTLS(p.dir, "c1", core.Revoked)
	must(t, err)
	logs := &logBuf{}
	s, err := NewServer(ServerConfig{Addr: "127.0.0.1:0", TLS: tlsConf, Core: core, Log: slog.New(slog.NewTextHandler(logs, nil)),
		HeartbeatInterval: 200 * time.Millisecond, MaxConns: 1})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	e1 := startClient(t, p, "e1", s.Addr())
	waitFor(t, "e1 to connect", func() bool { return e1.Status().Connected })
	e2 := startClient(t, p, "e2", s.Addr())
	waitFor(t, "e2 to be refused", func() bool { return strings.Contains(logs.String(), "limit of 1 edge connections") })
	if e2.Status().Connected || !e1.Status().Connected {
		t.Fatalf("at the limit: e1 connected %v, e2 connected %v", e1.Status().Connected, e2.Status().Connected)
	}
	e1.cancel()
	<-e1.done
	waitFor(t, "e2 to connect once e1 left", func() bool { return e2.Status().Connected })
}
