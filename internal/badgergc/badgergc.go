// Package badgergc runs Badger's value-log garbage collection on a ticker,
// the loop every Badger-backed store of edgeacs (raft log, core FSM, edge
// cache) needs.
package badgergc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DiscardRatio is the share of a value-log file that must be stale before
// GC rewrites it.
const DiscardRatio = 0.5

// Run calls gc every interval until ctx is done. Each round keeps calling
// it while it returns nil (a file was rewritten and another may be worth
// it); Badger's "nothing to do" answers end the round quietly, anything
// else is logged. gc is normally db.RunValueLogGC; a store whose DB can be
// swapped passes a closure that takes its lock.
func Run(ctx context.Context, every time.Duration, gc func(discardRatio float64) error, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			err := gc(DiscardRatio)
			if err == nil {
				continue
			}
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) &&
				!errors.Is(err, badger.ErrGCInMemoryMode) {
				log.Warn("badger value-log GC", "err", err)
			}
			break
		}
	}
}
