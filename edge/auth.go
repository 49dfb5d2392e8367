package edge

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// CPE authentication modes (Config.CPEAuth).
const (
	AuthNone   = "none"
	AuthBasic  = "basic"
	AuthDigest = "digest"
)

// Limits of the authenticator's in-memory state. Both stores are bounded so
// that a flood of requests from many addresses cannot grow memory.
const (
	nonceLifetime   = 5 * time.Minute
	maxNonces       = 1 << 17
	maxFailIPs      = 1 << 16
	failWindow      = time.Minute
	failCooldown    = time.Minute
	defaultFailures = 10
)

// authenticator checks CPE credentials (HTTP basic or digest) and
// rate-limits failures per source address.
type authenticator struct {
	mode     string
	realm    string
	maxFails int
	metrics  *Metrics
	log      *slog.Logger
	nonces   nonceStore
	fails    failLimiter
}

func newAuthenticator(cfg Config, m *Metrics, log *slog.Logger) *authenticator {
	a := &authenticator{mode: cfg.CPEAuth, realm: cfg.Realm, maxFails: cfg.AuthFailuresPerMinute, metrics: m, log: log}
	if a.maxFails <= 0 {
		a.maxFails = defaultFailures
	}
	a.nonces.m = make(map[string]time.Time)
	a.fails.m = make(map[string]*failRecord)
	return a
}

func (a *authenticator) enabled() bool { return a.mode != AuthNone && a.mode != "" }

// blocked reports whether ip is cooling down after too many failures.
func (a *authenticator) blocked(ip string, now time.Time) bool {
	if !a.enabled() {
		return false
	}
	return a.fails.blocked(ip, now)
}

// check authenticates r against username/password. On failure it writes
// the response (401 with a challenge, or 429 once the address crossed the
// failure limit) and returns false.
func (a *authenticator) check(w http.ResponseWriter, r *http.Request, username, password, ip string) bool {
	now := time.Now()
	h := r.Header.Get("Authorization")
	if h == "" {
		// The normal first leg of the handshake, not a failure.
		a.challenge(w, now, false)
		return false
	}
	switch a.mode {
	case AuthBasic:
		u, p, ok := r.BasicAuth()
		if !ok {
			return a.fail(w, ip, now, "malformed")
		}
		if !equalConst(u, username) || !equalConst(p, password) {
			return a.fail(w, ip, now, "bad_credentials")
		}
		return true
	case AuthDigest:
		d, err := cwmp.ParseDigestAuthorization(h)
		if err != nil {
			return a.fail(w, ip, now, "malformed")
		}
		if d.Realm != a.realm || !equalConst(d.Username, username) || !sameURI(d.URI, r) {
			return a.fail(w, ip, now, "bad_credentials")
		}
		if !d.Verify(r.Method, password) {
			return a.fail(w, ip, now, "bad_credentials")
		}
		if !a.nonces.valid(d.Nonce, now) {
			// Right credentials on an expired or unknown nonce (for
			// example one issued before a restart): ask again with
			// stale=true so the CPE retries without treating it as a
			// password error.
			a.challenge(w, now, true)
			return false
		}
		return true
	}
	return true
}

func (a *authenticator) fail(w http.ResponseWriter, ip string, now time.Time, reason string) bool {
	a.metrics.AuthFailures.WithLabelValues(reason).Inc()
	if a.fails.fail(ip, now, a.maxFails) {
		a.log.Warn("CPE auth failures over the limit; cooling down", "ip", ip, "limit_per_minute", a.maxFails)
		w.Header()["Connection"] = hdrClose
		w.Header()["Retry-After"] = hdrRetryAfter
		http.Error(w, "too many failed authentications", http.StatusTooManyRequests)
		return false
	}
	// One line per failure so an operator can see why a CPE does not get
	// in; the per-address limit above bounds how many a flood can write.
	a.log.Info("CPE authentication failed", "ip", ip, "reason", reason)
	a.challenge(w, now, false)
	return false
}

// challenge answers 401 with the scheme's challenge. Digest offers MD5
// first (what nearly every CPE implements) and SHA-256 second.
func (a *authenticator) challenge(w http.ResponseWriter, now time.Time, stale bool) {
	h := w.Header()
	if a.mode == AuthBasic {
		h.Set("WWW-Authenticate", `Basic realm="`+a.realm+`"`)
	} else {
		nonce := a.nonces.issue(now)
		ch := cwmp.DigestChallenge{Realm: a.realm, Nonce: nonce, QOP: "auth", Algorithm: cwmp.DigestMD5, Stale: stale}
		h["WWW-Authenticate"] = []string{ch.String()}
		ch.Algorithm = cwmp.DigestSHA256
		h.Add("WWW-Authenticate", ch.String())
	}
	http.Error(w, "authentication required", http.StatusUnauthorized)
}

// sameURI checks the digest uri against the request target, accepting the
// absolute form some CPEs send.
func sameURI(uri string, r *http.Request) bool {
	if uri == r.RequestURI || uri == r.URL.Path {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	want := r.URL.Path
	if want == "" {
		want = "/"
	}
	return p == want
}

func equalConst(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// nonceStore remembers the digest nonces issued and when they expire.
type nonceStore struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (n *nonceStore) issue(now time.Time) string {
	nonce := cwmp.NewNonce()
	n.mu.Lock()
	if len(n.m) >= maxNonces {
		n.sweep(now)
	}
	n.m[nonce] = now.Add(nonceLifetime)
	n.mu.Unlock()
	return nonce
}

// valid reports whether nonce was issued here and has not expired. A nonce
// stays usable for its lifetime because CPEs reuse it across the requests
// of a session and sometimes across sessions.
func (n *nonceStore) valid(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.m[nonce]
	if !ok {
		return false
	}
	if now.After(exp) {
		delete(n.m, nonce)
		return false
	}
	return true
}

// sweep drops expired nonces, and if the store is still full, an eighth of
// the rest (map order is random, so this evicts arbitrary ones).
func (n *nonceStore) sweep(now time.Time) {
	for k, exp := range n.m {
		if now.After(exp) {
			delete(n.m, k)
		}
	}
	drop := len(n.m) - maxNonces + maxNonces/8
	for k := range n.m {
		if drop <= 0 {
			break
		}
		delete(n.m, k)
		drop--
	}
}

// failLimiter counts authentication failures per source address in fixed
// one-minute windows; an address over the limit is blocked for a cool-down.
type failLimiter struct {
	mu sync.Mutex
	m  map[string]*failRecord
}

type failRecord struct {
	windowStart  time.Time
	count        int
	blockedUntil time.Time
}

func (f *failLimiter) blocked(ip string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.m[ip]
	return ok && now.Before(r.blockedUntil)
}

// fail records a failure and reports whether ip is now blocked.
func (f *failLimiter) fail(ip string, now time.Time, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.m[ip]
	if !ok {
		if len(f.m) >= maxFailIPs {
			for k, v := range f.m {
				if now.Sub(v.windowStart) > failWindow && now.After(v.blockedUntil) {
					delete(f.m, k)
				}
			}
		}
		r = &failRecord{windowStart: now}
		f.m[ip] = r
	}
	if now.Sub(r.windowStart) > failWindow {
		r.windowStart, r.count = now, 0
	}
	r.count++
	if r.count >= limit {
		r.blockedUntil = now.Add(failCooldown)
		r.windowStart, r.count = now, 0
		return true
	}
	return false
}
