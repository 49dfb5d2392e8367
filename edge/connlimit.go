package edge

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/internal/slotconn"
)

// limitListener bounds the connections a listener hands out: at the bound
// Accept waits (the kernel's backlog holds the callers) and, to make room,
// closes idle keep-alive connections, which otherwise hold a descriptor
// for IdleTimeout. Accept errors pass through unchanged, so net/http keeps
// its back-off on temporary ones (EMFILE, ENFILE) instead of stopping.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	metrics *StormMetrics

	mu   sync.Mutex
	idle map[net.Conn]time.Time // by the conn net/http reports in ConnState

	done      chan struct{}
	closeOnce sync.Once
	// releaseSlot is release, bound once: each accepted connection's
	// slotconn calls it at its first Close.
	releaseSlot func()
}

// evictPoll is how often a full listener looks again for idle connections
// to close while it waits for a slot; evictMinIdle is how long a
// connection must have been idle to be closed: a CPE in a session sends
// its next request on it at once, and cutting that would fail the
// session the storm most needs to finish.
const (
	evictPoll    = 100 * time.Millisecond
	evictMinIdle = 5 * time.Second
)

func newLimitListener(ln net.Listener, n int, m *StormMetrics) *limitListener {
	m.ConnectionLimit.Set(float64(n))
	l := &limitListener{Listener: ln, sem: make(chan struct{}, n), metrics: m,
		idle: map[net.Conn]time.Time{}, done: make(chan struct{})}
	l.releaseSlot = l.release
	return l
}

// Accept waits for a free slot, then accepts.
func (l *limitListener) Accept() (net.Conn, error) {
	if !l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	l.metrics.OpenConnections.Set(float64(len(l.sem)))
	return slotconn.New(c, l.releaseSlot), nil
}

func (l *limitListener) acquire() bool {
	select {
	case l.sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTicker(evictPoll)
	defer t.Stop()
	for {
		l.evictIdle()
		select {
		case l.sem <- struct{}{}:
			return true
		case <-l.done:
			return false
		case <-t.C:
		}
	}
}

// evictIdle closes the keep-alive connection idle longest, if it has been
// idle for evictMinIdle.
func (l *limitListener) evictIdle() {
	l.mu.Lock()
	var oldest net.Conn
	at := time.Now().Add(-evictMinIdle)
	for c, t := range l.idle {
		if t.Before(at) {
			oldest, at = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

// connState is the http.Server's ConnState hook: it tracks which
// connections are idle between requests.
func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	if st == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
	l.mu.Unlock()
}

// Close closes the listener and wakes a waiting Accept.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// release gives back a closed connection's slot.
func (l *limitListener) release() {
	<-l.sem
	l.metrics.OpenConnections.Set(float64(len(l.sem)))
}
