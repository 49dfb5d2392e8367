package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// pprofEnv names the address (host:port) of an opt-in profiling listener
// for `edge`, `core` and `sim`: Go's net/http/pprof handlers under
// /debug/pprof/, with no authentication, so bind it to loopback. It is
// how a storm's stalls and CPU were found; nothing listens unless set.
const pprofEnv = "EDGEACS_PPROF"

// startPprof serves the profiling handlers on $EDGEACS_PPROF until ctx
// ends. An address that cannot be bound is logged, not fatal: profiling
// must not keep a node from starting.
func startPprof(ctx context.Context, log *slog.Logger) {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("profiling listener not started", "env", pprofEnv, "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Warn("profiling listener on (no authentication)", "env", pprofEnv, "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiling listener stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
}
