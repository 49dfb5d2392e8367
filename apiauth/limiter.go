package apiauth

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// failLimiter is a token bucket per source address, charged on every
// failed authentication. It keeps no goroutine: a bucket refills lazily,
// by the time that has passed when it is next looked at.
//
// A bucket is kept as the time at which it will be full again (GCRA): a
// failure pushes that time one refill interval further, and a source may
// try while the bucket holds at least one token, i.e. while full is less
// than burst-1 intervals away. A bucket already full is the same as none,
// so the map holds only sources that failed recently.
type failLimiter struct {
	burst  int
	refill time.Duration
	max    int

	mu  sync.Mutex
	m   map[string]*list.Element // of *failBucket
	lru list.List                // front: most recently charged
}

type failBucket struct {
	key  string
	full time.Time
}

func newFailLimiter(burst int, refill time.Duration, max int) *failLimiter {
	return &failLimiter{burst: burst, refill: refill, max: max, m: make(map[string]*list.Element)}
}

// wait returns how long key must wait before its next attempt; zero means
// it may try now.
func (l *failLimiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok {
		return 0
	}
	b := e.Value.(*failBucket)
	if !b.full.After(now) {
		l.remove(e)
		return 0
	}
	// Tokens held = burst - debt/refill; one is needed to try.
	debt := b.full.Sub(now)
	if w := debt - time.Duration(l.burst-1)*l.refill; w > 0 {
		return w
	}
	return 0
}

// charge takes one token from key's bucket.
func (l *failLimiter) charge(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[key]; ok {
		b := e.Value.(*failBucket)
		if b.full.Before(now) {
			b.full = now
		}
		// A limited source is refused before it could fail again, so the
		// debt stays near burst intervals (concurrent failures may each
		// pass wait before either charges).
		b.full = b.full.Add(l.refill)
		l.lru.MoveToFront(e)
		return
	}
	// Full: forget the source charged least recently. Its bucket is the
	// likeliest to have refilled, and forgetting a source only ever lets it
	// try sooner; it never locks anyone out.
	for len(l.m) >= l.max {
		l.remove(l.lru.Back())
	}
	l.m[key] = l.lru.PushFront(&failBucket{key: key, full: now.Add(l.refill)})
}

func (l *failLimiter) remove(e *list.Element) {
	delete(l.m, e.Value.(*failBucket).key)
	l.lru.Remove(e)
}

func (l *failLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// remoteHost is the host part of a RemoteAddr ("192.0.2.1:5000" ->
// "192.0.2.1"), or all of it when it has no port.
func remoteHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// sourceKey is what the limiter counts a host as. An IPv6 host counts as
// its /64: one subscriber usually holds a whole /64 and could otherwise
// try from 2^64 addresses, each with a fresh bucket.
func sourceKey(host string) string {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}
