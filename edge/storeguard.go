package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/httpapi"
)

// Sentinel errors of the cache's store. The CWMP server answers a session
// that failed on either with 503 and Retry-After (the CPE comes back; what
// it was told was delivered never depended on the failed write), and the
// node stops on ErrStoreUnusable.
var (
	// ErrStoreFailed wraps a Badger write or fsync that failed. The API
	// answers it 503, as the CWMP server does.
	ErrStoreFailed = httpapi.Mark(errors.New("edge: cache store write failed"), httpapi.ErrUnavailable)
	// ErrStoreUnusable means the store must not be touched again: Badger
	// refused all writes (closed, blocked), lost its memtable, or writes
	// kept failing for StoreFailureLimit. The node stops with it.
	ErrStoreUnusable = httpapi.Mark(errors.New("edge: cache store unusable"), httpapi.ErrUnavailable)
)

// Store-failure policy defaults.
const (
	// DefaultStoreFailureLimit is how long writes may keep failing, with
	// no success in between, before the store is declared unusable and
	// the node stops. Long enough to ride out a full disk being cleaned
	// or a short fd spike; short enough that a broken node does not keep
	// answering 503 to a whole POP for minutes.
	DefaultStoreFailureLimit = 30 * time.Second
	// storeLogInterval bounds the log lines about failing writes: one per
	// interval with the latest cause and how many failed since.
	storeLogInterval = 10 * time.Second
)

// storeGuard watches the cache's writes. Every write path of a session
// (update, updateOutbox, durable) asks it first (before) and reports the
// outcome (after). It turns storage failures into ErrStoreFailed, logs
// them once per interval, counts them, keeps the state /healthz shows, and
// declares the store unusable when Badger can no longer be trusted:
// after Badger fails to make a memtable (its "too many open files" crash:
// the DB is left with no memtable, and its next write exits the process
// from inside Badger, its next Sync dereferences nil), once no further
// write may reach it.
type storeGuard struct {
	log   *slog.Logger
	limit time.Duration
	// onFailure counts a failure by operation (metrics; may be nil).
	onFailure func(op string)

	// inject, when set (tests), fails writes before they reach Badger:
	// fault injection around the cache.
	inject atomic.Pointer[func(op string) error]

	mu         sync.Mutex
	failing    bool      // the last write failed
	since      time.Time // first failure of the current run of failures
	lastErr    error
	failures   int64 // failures since the last log line
	lastLogged time.Time
	fatal      error
	dead       chan struct{} // closed when fatal is set
	bad        atomic.Bool   // fast path of fatal != nil
	// closing is set by Cache.Close: failures after it (a session
	// committing into a closed DB during shutdown) are not the store's.
	closing atomic.Bool
}

func newStoreGuard(log *slog.Logger, limit time.Duration) *storeGuard {
	if limit <= 0 {
		limit = DefaultStoreFailureLimit
	}
	return &storeGuard{log: log, limit: limit, dead: make(chan struct{})}
}

// before is called before a write reaches Badger: it refuses every write
// once the store is unusable, and fails the ones a test injects faults
// into.
func (g *storeGuard) before(op string) error {
	if g.bad.Load() {
		g.mu.Lock()
		err := g.fatal
		g.mu.Unlock()
		return err
	}
	if f := g.inject.Load(); f != nil {
		if err := (*f)(op); err != nil {
			return g.failed(op, err)
		}
	}
	return nil
}

// after reports a write's outcome. storeErr is the error Badger itself
// returned (a commit or fsync), nil on success; it returns the error to
// hand the caller, wrapped in ErrStoreFailed or ErrStoreUnusable.
func (g *storeGuard) after(op string, storeErr error) error {
	if storeErr == nil {
		g.ok()
		return nil
	}
	return g.failed(op, storeErr)
}

func (g *storeGuard) ok() {
	if g.bad.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.failing {
		return
	}
	g.failing = false
	g.log.Warn("cache store writes succeed again", "failed_for", time.Since(g.since).Round(time.Millisecond).String(),
		"failures_not_logged", g.failures)
	g.failures, g.lastErr, g.lastLogged = 0, nil, time.Time{}
}

func (g *storeGuard) failed(op string, cause error) error {
	if g.closing.Load() {
		return fmt.Errorf("%w: %s: %w", ErrStoreFailed, op, cause)
	}
	if g.onFailure != nil {
		g.onFailure(op)
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fatal != nil {
		return g.fatal
	}
	if !g.failing {
		g.failing, g.since = true, now
	}
	g.lastErr = cause
	g.failures++
	if reason := unusableReason(cause); reason != "" {
		g.dieLocked(fmt.Errorf("%w: %s: %w", ErrStoreUnusable, reason, cause))
		return g.fatal
	}
	if now.Sub(g.since) >= g.limit {
		g.dieLocked(fmt.Errorf("%w: writes failed for %s with no success (last: %w)", ErrStoreUnusable, now.Sub(g.since).Round(time.Second), cause))
		return g.fatal
	}
	if now.Sub(g.lastLogged) >= storeLogInterval {
		g.log.Error("cache store write failed; sessions get 503 until writes succeed", "op", op, "err", cause,
			"failures", g.failures, "failing_for", now.Sub(g.since).Round(time.Millisecond).String())
		g.lastLogged, g.failures = now, 0
	}
	return fmt.Errorf("%w: %s: %w", ErrStoreFailed, op, cause)
}

func (g *storeGuard) dieLocked(err error) {
	g.fatal = err
	g.bad.Store(true)
	close(g.dead)
	g.log.Error("cache store unusable: the edge stops; no further write reaches the store, so what it holds is what was committed", "err", err)
}

// unusableReason says why a storage error leaves Badger unusable at once,
// or "" when it may be passing.
func unusableReason(err error) string {
	switch {
	case errors.Is(err, badger.ErrDBClosed), errors.Is(err, badger.ErrBlockedWrites):
		return "the store refuses writes"
	}
	// Badger gives no typed error for it, but after a failed memtable
	// allocation its DB holds no memtable: the next write exits the
	// process (y.AssertTrue), the next Sync panics.
	s := strings.ToLower(err.Error())
	if strings.Contains(s, "mem table") || strings.Contains(s, "memtable") {
		return "badger could not make a memtable"
	}
	return ""
}

// health is the store's state for /healthz: nil when writes succeed.
func (g *storeGuard) health() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fatal != nil {
		return g.fatal
	}
	if g.failing {
		return fmt.Errorf("%w since %s: %w", ErrStoreFailed, g.since.UTC().Format(time.RFC3339), g.lastErr)
	}
	return nil
}

// isStoreError reports whether err is a storage failure (not a domain
// error such as ErrNotFound returned from inside a transaction).
func isStoreError(err error) bool {
	return errors.Is(err, ErrStoreFailed) || errors.Is(err, ErrStoreUnusable)
}

// StoreHealth is nil while the cache's writes succeed; otherwise the
// failure /healthz reports (ErrStoreFailed, or ErrStoreUnusable once the
// node must stop).
func (c *Cache) StoreHealth() error { return c.guard.health() }

// StoreFailed is closed when the store became unusable (StoreHealth then
// says why); the node stops on it.
func (c *Cache) StoreFailed() <-chan struct{} { return c.guard.dead }

// unusable reports whether the store must not be touched any more.
func (c *Cache) unusable() bool { return c.guard.bad.Load() }

// refuseUnusable is the gate of the paths that read or write Badger
// outside a session (the sync link's outbox and downlink): once the store
// is unusable they must not touch it (a DB without a memtable panics on a
// read too).
func (c *Cache) refuseUnusable() error {
	if c.unusable() {
		return c.guard.health()
	}
	return nil
}
