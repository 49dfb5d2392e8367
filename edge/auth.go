package edge

import (
	"crypto/subtle"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
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

// Limits of the authenticator's in-memory state. Every store is bounded so
// that a flood of requests from many addresses cannot grow memory.
const (
	// nonceLifetime is short: a CPE answers a challenge within a round
	// trip, and requests later in a session are bound by the session
	// cookie (see authenticate's session argument). A CPE that reuses a nonce
	// across sessions gets stale=true and one more round trip.
	nonceLifetime   = time.Minute
	maxNonces       = 1 << 17
	maxFailIPs      = 1 << 16
	failWindow      = time.Minute
	failCooldown    = time.Minute
	defaultFailures = 10
	// challengeGrace is how long a challenge answered to a request without
	// credentials may stay unanswered before it counts against its
	// address: a CPE answers within a round trip, so a burst of CPEs
	// behind one address (NAT, a proxy) starting sessions together is
	// never counted, while an address that never answers is.
	challengeGrace = 10 * time.Second
	// maxPendingChallenges bounds the unanswered challenges remembered
	// per address; past it the oldest is forgotten (never counted).
	maxPendingChallenges = 32
)

// credentialSource finds per-device credentials by username (the Cache).
type credentialSource interface {
	credentialsByUsername(username string) ([]credRef, error)
}

// identity is who a request's credentials authenticate: the shared
// credentials, the devices whose own credentials they are (nearly always
// one), or both when a device's own credentials equal the shared ones.
type identity struct {
	shared  bool
	devices []string
	// username and password are the credentials that matched, kept so a
	// session's later requests that repeat them are checked without a
	// store read. Never logged.
	username, password string
	// nonce is the digest nonce the request used; fresh says it passed
	// the replay check (a first use, or a nonce count above the last
	// one). Only a fresh nonce may open a session.
	nonce string
	fresh bool
}

func (id identity) any() bool { return id.shared || len(id.devices) > 0 }

// mayBe reports whether these credentials may speak for device, which
// has credentials of its own (own) or not: a device's own credentials
// authenticate that device only, and the shared ones any device that has
// none of its own.
func (id identity) mayBe(device string, own bool) bool {
	return slices.Contains(id.devices, device) || (id.shared && !own)
}

// authenticator checks CPE credentials (HTTP basic or digest) from the
// request headers alone, tracks digest nonce use against replay, and
// rate-limits failures per source address.
type authenticator struct {
	mode       string
	realm      string
	username   string // the shared credentials
	password   string
	allowNoQOP bool
	// algorithms are the digest algorithms offered, in order, and the
	// only ones accepted (Config.DigestAlgorithms).
	algorithms []string
	maxFails   int
	grace      time.Duration // challengeGrace; tests shorten it
	creds      credentialSource
	metrics    *Metrics
	log        *slog.Logger
	nonces     nonceStore
	fails      failLimiter
}

func newAuthenticator(cfg Config, creds credentialSource, m *Metrics, log *slog.Logger) *authenticator {
	a := &authenticator{mode: cfg.CPEAuth, realm: cfg.Realm, username: cfg.Username, password: cfg.Password,
		allowNoQOP: cfg.AllowDigestWithoutQOP, algorithms: cfg.DigestAlgorithms, maxFails: cfg.AuthFailuresPerMinute, creds: creds, metrics: m, log: log}
	if len(a.algorithms) == 0 {
		a.algorithms = []string{cwmp.DigestMD5}
	}
	if a.maxFails <= 0 {
		a.maxFails = defaultFailures
	}
	a.grace = challengeGrace
	if cfg.challengeGrace > 0 {
		a.grace = cfg.challengeGrace
	}
	a.nonces.m = make(map[string]nonceState)
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

// authenticate checks r's credentials from its headers alone, so that it
// can run before a byte of the body is read. session, when not nil, is who
// opened the session the request's cookie names: credentials equal to
// theirs are recognised without a store read, and a CPE that repeats its
// Authorization header on every request of a session (same nonce count,
// or a nonce expired meanwhile) is not refused for it, since the cookie
// already binds those requests; the identity is then not fresh.
//
// On failure it writes the response (401 with a challenge, 429 once the
// address crossed the failure limit, 500 when the credential store fails)
// and returns false.
func (a *authenticator) authenticate(w http.ResponseWriter, r *http.Request, ip string, now time.Time, session *identity) (identity, bool) {
	sessNonce := ""
	if session != nil {
		sessNonce = session.nonce
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		// The normal first leg of the handshake, not a failure, unless
		// this address keeps asking without ever answering a challenge.
		if a.fails.challenged(ip, now, a.maxFails, a.grace) {
			return identity{}, a.fail(w, ip, now, "no_credentials")
		}
		a.challenge(w, now, false)
		return identity{}, false
	}
	switch a.mode {
	case AuthBasic:
		u, p, ok := r.BasicAuth()
		if !ok {
			return identity{}, a.fail(w, ip, now, "malformed")
		}
		id, err := a.match(u, func(pass string) bool { return equalConst(p, pass) }, session)
		if err != nil {
			return identity{}, a.storeError(w, err)
		}
		if !id.any() {
			return identity{}, a.fail(w, ip, now, "bad_credentials")
		}
		id.fresh = true
		a.fails.succeeded(ip, now)
		return id, true
	case AuthDigest:
		d, err := cwmp.ParseDigestAuthorization(h)
		if err != nil {
			return identity{}, a.fail(w, ip, now, "malformed")
		}
		if d.Realm != a.realm || !sameURI(d.URI, r) {
			return identity{}, a.fail(w, ip, now, "bad_credentials")
		}
		if !a.offers(d.Algorithm) {
			// Not one of the challenges: a client that mixed them up
			// (or a stale one from another ACS).
			return identity{}, a.fail(w, ip, now, "algorithm")
		}
		nc, counted := d.NonceCount()
		switch {
		case d.QOP == "" && !a.allowNoQOP:
			// RFC 2069: no nonce count, so a replay cannot be told
			// from a new request. The challenge asks for qop=auth.
			return identity{}, a.fail(w, ip, now, "no_qop")
		case d.QOP != "" && !counted:
			return identity{}, a.fail(w, ip, now, "malformed")
		}
		id, err := a.match(d.Username, func(pass string) bool { return d.Verify(r.Method, pass) }, session)
		if err != nil {
			return identity{}, a.storeError(w, err)
		}
		if !id.any() {
			return identity{}, a.fail(w, ip, now, "bad_credentials")
		}
		// The response is right; now, is it new? Only then does it
		// count as a success (a replay must not pay off failures).
		id.nonce = d.Nonce
		switch a.nonces.use(d.Nonce, nc, d.QOP != "", now) {
		case nonceOK:
			id.fresh = true
		case nonceReplay:
			if sessNonce == "" || d.Nonce != sessNonce {
				// Someone resent a header already used. Not counted as
				// a failure (the password was right: a CPE that repeats
				// its count by mistake must not lock out its address),
				// but answered like a stale nonce, so a genuine CPE
				// simply retries with a new one.
				a.metrics.AuthFailures.WithLabelValues("replay").Inc()
				a.log.Info("CPE digest response replayed (nonce count not above the last one); asking again", "ip", ip)
				a.challenge(w, now, true)
				return identity{}, false
			}
		case nonceUnknown:
			if sessNonce == "" || d.Nonce != sessNonce {
				// Right credentials on an expired or unknown nonce (for
				// example one issued before a restart): ask again with
				// stale=true so the CPE retries without treating it as
				// a password error.
				a.challenge(w, now, true)
				return identity{}, false
			}
		}
		a.fails.succeeded(ip, now)
		return id, true
	}
	return identity{shared: true, fresh: true}, true
}

// match returns who the credentials of username are: verify is asked
// about the shared password (when username is the shared one) and about
// the password of every device whose own credentials use username. When
// they are the ones that opened session, that session's identity is
// returned without a store read.
func (a *authenticator) match(username string, verify func(password string) bool, session *identity) (identity, error) {
	if session != nil && session.username != "" && equalConst(username, session.username) && verify(session.password) {
		return identity{shared: session.shared, devices: session.devices, username: session.username, password: session.password}, nil
	}
	id := identity{username: username}
	if equalConst(username, a.username) && verify(a.password) {
		id.shared, id.password = true, a.password
	}
	refs, err := a.creds.credentialsByUsername(username)
	if err != nil {
		return identity{}, err
	}
	for _, ref := range refs {
		if verify(ref.Password) {
			id.devices = append(id.devices, ref.Device)
			id.password = ref.Password
		}
	}
	return id, nil
}

func (a *authenticator) storeError(w http.ResponseWriter, err error) bool {
	a.log.Error("load CPE credentials", "err", err)
	http.Error(w, "cannot check credentials", http.StatusInternalServerError)
	return false
}

// fail counts a failed authentication and answers it: 401 with a
// challenge, or 429 once the address crossed the limit.
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

// challenge answers 401 with the scheme's challenge. Digest offers one
// challenge per configured algorithm, in the configured order (MD5 alone
// by default: see Config.DigestAlgorithms), all with the same nonce.
func (a *authenticator) challenge(w http.ResponseWriter, now time.Time, stale bool) {
	h := w.Header()
	if a.mode == AuthBasic {
		h.Set("WWW-Authenticate", `Basic realm="`+a.realm+`"`)
	} else {
		nonce := a.nonces.issue(now)
		chs := make([]string, len(a.algorithms))
		for i, alg := range a.algorithms {
			chs[i] = cwmp.DigestChallenge{Realm: a.realm, Nonce: nonce, QOP: "auth", Algorithm: alg, Stale: stale}.String()
		}
		h["WWW-Authenticate"] = chs
	}
	http.Error(w, "authentication required", http.StatusUnauthorized)
}

// offers reports whether a digest response's algorithm (MD5 when absent;
// a "-sess" variant counts as its base) is one the edge offers.
func (a *authenticator) offers(alg string) bool {
	if alg == "" {
		alg = cwmp.DigestMD5
	}
	if len(alg) > 5 && strings.EqualFold(alg[len(alg)-5:], "-sess") {
		alg = alg[:len(alg)-5]
	}
	for _, o := range a.algorithms {
		if strings.EqualFold(o, alg) {
			return true
		}
	}
	return false
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

// nonceStore remembers the digest nonces issued, until they expire, with
// the highest nonce count accepted for each: a request must carry a count
// above it, so a captured Authorization header is good for nothing. All
// nonces live equally long and are issued in time order, so a FIFO of them
// is also their expiry order: expiring and evicting are both a pop, and
// when the store is full the oldest nonce (not a random one) goes first.
type nonceStore struct {
	mu    sync.Mutex
	m     map[string]nonceState
	order []string // issue order; order[head:] are the live nonces
	head  int
}

type nonceState struct {
	exp int64 // unix nanoseconds
	// nc is the highest nonce count accepted; math.MaxUint32 once a
	// response without qop (no count) used the nonce.
	nc uint32
}

// Outcomes of nonceStore.use.
type nonceResult int

const (
	nonceOK      nonceResult = iota // first use of this count
	nonceUnknown                    // never issued here, expired or evicted
	nonceReplay                     // count not above the last one accepted
)

func (n *nonceStore) issue(now time.Time) string {
	nonce := cwmp.NewNonce()
	n.mu.Lock()
	n.expireLocked(now)
	for len(n.m) >= maxNonces {
		n.popLocked()
	}
	n.m[nonce] = nonceState{exp: now.Add(nonceLifetime).UnixNano()}
	n.order = append(n.order, nonce)
	n.mu.Unlock()
	return nonce
}

// use records a response on nonce: with a count (counted), nc must exceed
// every count accepted before; without one (RFC 2069, when allowed), the
// nonce must never have been used, and is then spent.
func (n *nonceStore) use(nonce string, nc uint32, counted bool, now time.Time) nonceResult {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.m[nonce]
	if !ok || now.UnixNano() > st.exp {
		// An expired nonce stays in the map until its turn to be popped,
		// so the map and the FIFO always hold the same nonces.
		return nonceUnknown
	}
	if counted {
		if nc <= st.nc {
			return nonceReplay
		}
		st.nc = nc
	} else {
		if st.nc != 0 {
			return nonceReplay
		}
		st.nc = math.MaxUint32
	}
	n.m[nonce] = st
	return nonceOK
}

// expireLocked pops the expired nonces at the head of the FIFO.
func (n *nonceStore) expireLocked(now time.Time) {
	t := now.UnixNano()
	for n.head < len(n.order) {
		if st, ok := n.m[n.order[n.head]]; ok && st.exp >= t {
			return
		}
		n.popLocked()
	}
}

// popLocked forgets the oldest nonce, compacting the FIFO now and then so
// its backing array stays proportional to the live nonces.
func (n *nonceStore) popLocked() {
	delete(n.m, n.order[n.head])
	n.order[n.head] = ""
	n.head++
	if n.head == len(n.order) {
		n.order, n.head = n.order[:0], 0
	} else if n.head > 1024 && n.head > len(n.order)/2 {
		n.order = append(n.order[:0], n.order[n.head:]...)
		n.head = 0
	}
}

// failLimiter counts authentication failures per source address in fixed
// one-minute windows; an address over the limit is blocked for a
// cool-down. It also remembers the challenges answered to requests without
// credentials, oldest first: each successful authentication from the
// address pays back the oldest, and a request without credentials counts
// as a failure once limit earlier ones from its address have gone
// unanswered for longer than a grace period. A CPE's usual "first request
// without credentials, then the right ones" thus costs nothing, even for
// many CPEs behind one address starting together, while an address that
// only ever sends requests without credentials is blocked soon after.
type failLimiter struct {
	mu sync.Mutex
	m  map[string]*failRecord
}

type failRecord struct {
	windowStart  time.Time
	count        int
	blockedUntil time.Time
	// pending holds when each unanswered challenge was sent (unix
	// nanoseconds), oldest first, at most maxPendingChallenges.
	pending []int64
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
	r := f.recordLocked(ip, now)
	if r == nil {
		return false
	}
	r.count++
	if r.count >= limit {
		r.blockedUntil = now.Add(failCooldown)
		r.windowStart, r.count, r.pending = now, 0, r.pending[:0]
		return true
	}
	return false
}

// challenged records a challenge answered to a request without
// credentials, and reports whether the request counts as a failure: it
// does when at least limit earlier challenges to the address have gone
// unanswered for longer than grace (and less than the failure window).
func (f *failLimiter) challenged(ip string, now time.Time, limit int, grace time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.recordLocked(ip, now)
	if r == nil {
		return false
	}
	t := now.UnixNano()
	forgotten := now.Add(-failWindow).UnixNano()
	for len(r.pending) > 0 && r.pending[0] < forgotten {
		r.pending = r.pending[1:]
	}
	overdue := now.Add(-grace).UnixNano()
	old := 0
	for _, p := range r.pending {
		if p >= overdue {
			break
		}
		old++
	}
	if len(r.pending) == maxPendingChallenges {
		r.pending = r.pending[1:]
	}
	r.pending = append(r.pending, t)
	return old >= limit
}

// succeeded records a successful authentication from ip: it pays back the
// oldest unanswered challenge, and forgets an address with nothing left
// against it.
func (f *failLimiter) succeeded(ip string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.m[ip]
	if !ok {
		return
	}
	if len(r.pending) > 0 {
		r.pending = r.pending[1:]
	}
	if now.Sub(r.windowStart) > failWindow {
		r.windowStart, r.count = now, 0
	}
	if r.count == 0 && len(r.pending) == 0 && !now.Before(r.blockedUntil) {
		delete(f.m, ip)
	}
}

// recordLocked returns ip's record in its current window, creating it.
// When the table is full it drops what blocks nobody; if it is still full
// (a flood of blocked addresses) the new address is not tracked (nil):
// memory stays bounded, and what is lost is only a block.
func (f *failLimiter) recordLocked(ip string, now time.Time) *failRecord {
	r, ok := f.m[ip]
	if !ok {
		if len(f.m) >= maxFailIPs {
			for k, v := range f.m {
				stale := len(v.pending) == 0 || now.Sub(time.Unix(0, v.pending[len(v.pending)-1])) > failWindow
				if now.Sub(v.windowStart) > failWindow && !now.Before(v.blockedUntil) && stale {
					delete(f.m, k)
				}
			}
			// Map order is random: this evicts arbitrary unblocked ones.
			for k, v := range f.m {
				if len(f.m) < maxFailIPs-maxFailIPs/8 {
					break
				}
				if !now.Before(v.blockedUntil) {
					delete(f.m, k)
				}
			}
			if len(f.m) >= maxFailIPs {
				return nil
			}
		}
		r = &failRecord{windowStart: now}
		f.m[ip] = r
	}
	if now.Sub(r.windowStart) > failWindow {
		r.windowStart, r.count = now, 0
	}
	return r
}

// inflightLimiter bounds the requests one source address has in flight
// before they are authenticated (Config.MaxUnauthenticatedPerIP).
type inflightLimiter struct {
	mu  sync.Mutex
	m   map[string]int
	max int
}

// acquire takes a slot for ip; false means the address is at its limit.
func (l *inflightLimiter) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.m[ip]
	if n >= l.max {
		return false
	}
	l.m[ip] = n + 1
	return true
}

// release gives back a slot taken by acquire.
func (l *inflightLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.m[ip] - 1; n > 0 {
		l.m[ip] = n
	} else {
		delete(l.m, ip)
	}
}
