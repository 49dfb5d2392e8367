package apiauth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

var t0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingStore counts lookups, to show which requests never reach one.
type countingStore struct {
	Store
	n atomic.Int64
}

func (s *countingStore) TokenByHash(h string) (fleet.Token, bool) {
	s.n.Add(1)
	return s.Store.TokenByHash(h)
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lines decodes the JSON log lines.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	a      *Authenticator
	h      http.Handler
	store  *MapStore
	calls  *countingStore
	clock  *fakeClock
	logs   *syncBuffer
	served atomic.Int64
	// secrets of the tokens put in the store, by token name
	secrets map[string]string
}

const (
	readTok    = "ops-read"
	writeTok   = "ops-write"
	adminTok   = "ops-admin"
	expiredTok = "old"
	soonTok    = "soon" // expires an hour after t0
)

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{store: &MapStore{}, clock: &fakeClock{now: t0}, logs: &syncBuffer{}, secrets: map[string]string{}}
	f.calls = &countingStore{Store: f.store}
	for _, tk := range []struct {
		name    string
		scope   fleet.Scope
		expires time.Time
	}{
		{readTok, fleet.ScopeRead, time.Time{}},
		{writeTok, fleet.ScopeWrite, time.Time{}},
		{adminTok, fleet.ScopeAdmin, time.Time{}},
		{expiredTok, fleet.ScopeAdmin, t0.Add(-time.Second)},
		{soonTok, fleet.ScopeRead, t0.Add(time.Hour)},
	} {
		f.secrets[tk.name] = f.put(t, tk.name, tk.scope, tk.expires)
	}
	cfg := Config{
		Store:  f.calls,
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.served.Add(1)
		body := map[string]string{"path": r.URL.Path}
		if tok, ok := FromContext(r.Context()); ok {
			body["token"], body["scope"] = tok.Name, string(tok.Scope)
		}
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
	f.a = New(cfg)
	f.h = f.a.Wrap(next)
	return f
}

func (f *fixture) put(t *testing.T, name string, scope fleet.Scope, expires time.Time) string {
	t.Helper()
	secret, err := fleet.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Put(fleet.Token{Name: name, Scope: scope, Hash: fleet.HashToken(secret), Created: t0, Expires: expires}); err != nil {
		t.Fatal(err)
	}
	return secret
}

type req struct {
	method, target string
	auth           []string // Authorization values
	remote         string   // default 192.0.2.1:40000
}

func (f *fixture) do(r req) *httptest.ResponseRecorder {
	hr := httptest.NewRequest(r.method, r.target, nil)
	for _, a := range r.auth {
		hr.Header.Add("Authorization", a)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	} else {
		hr.RemoteAddr = "192.0.2.1:40000"
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, hr)
	return rec
}

func (f *fixture) bearer(name string) []string { return []string{"Bearer " + f.secrets[name]} }

// errorOf checks an error response's shape and returns its message.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if len(body) != 1 || body["error"] == "" {
		t.Fatalf("body %q: want exactly {\"error\": \"...\"}", rec.Body)
	}
	return body["error"]
}

func TestResponses(t *testing.T) {
	f := newFixture(t, nil)
	revoked := f.put(t, "gone", fleet.ScopeAdmin, time.Time{})
	f.store.Delete("gone")
	admin := f.secrets[adminTok]

	cases := []struct {
		name      string
		req       req
		status    int
		errHas    string // substring of the JSON error; "" = success
		challenge string // WWW-Authenticate, if any
		lookups   int64
	}{
		{"no header", req{"GET", "/api/v1/devices", nil, ""}, 401, "missing Authorization header", `Bearer realm="edgeacs"`, 0},
		{"basic", req{"GET", "/api/v1/devices", []string{"Basic dXNlcjpwYXNz"}, ""}, 401, `want "Bearer <token>"`, `Bearer realm="edgeacs", error="invalid_request"`, 0},
		{"bare secret", req{"GET", "/api/v1/devices", []string{admin}, ""}, 401, `want "Bearer <token>"`, `Bearer realm="edgeacs", error="invalid_request"`, 0},
		{"scheme only", req{"GET", "/api/v1/devices", []string{"Bearer"}, ""}, 401, "empty bearer token", "", 0},
		{"scheme and spaces", req{"GET", "/api/v1/devices", []string{"Bearer    "}, ""}, 401, "empty bearer token", "", 0},
		{"empty header", req{"GET", "/api/v1/devices", []string{""}, ""}, 401, `want "Bearer <token>"`, "", 0},
		{"secret too long", req{"GET", "/api/v1/devices", []string{"Bearer " + strings.Repeat("a", fleet.MaxTokenSecret+1)}, ""}, 401, "longer than 128 bytes", "", 0},
		{"space in secret", req{"GET", "/api/v1/devices", []string{"Bearer " + admin + " x"}, ""}, 401, "space, control or non-ASCII", "", 0},
		{"control byte", req{"GET", "/api/v1/devices", []string{"Bearer eacs_\x01abc"}, ""}, 401, "space, control or non-ASCII", "", 0},
		{"non-ASCII", req{"GET", "/api/v1/devices", []string{"Bearer eacs_é"}, ""}, 401, "space, control or non-ASCII", "", 0},
		{"two headers", req{"GET", "/api/v1/devices", []string{"Bearer " + admin, "Bearer " + admin}, ""}, 401, "more than one Authorization header", "", 0},
		{"header 1 KiB+", req{"GET", "/api/v1/devices", []string{"Bearer " + strings.Repeat("a", MaxAuthorizationHeader)}, ""}, 431, "longer than 1024 bytes", "", 0},
		{"two headers 1 KiB+", req{"GET", "/api/v1/devices", []string{"Bearer " + strings.Repeat("a", 600), "Bearer " + strings.Repeat("a", 600)}, ""}, 431, "longer than 1024 bytes", "", 0},
		{"header 1 KiB+ on a public route", req{"GET", "/healthz", []string{strings.Repeat("a", 2000)}, ""}, 431, "longer than 1024 bytes", "", 0},
		{"unknown", req{"GET", "/api/v1/devices", []string{"Bearer eacs_nosuchtoken"}, ""}, 401, "unknown or revoked token", `Bearer realm="edgeacs", error="invalid_token"`, 1},
		{"revoked", req{"GET", "/api/v1/devices", []string{"Bearer " + revoked}, ""}, 401, "unknown or revoked token", `Bearer realm="edgeacs", error="invalid_token"`, 1},
		{"expired", req{"GET", "/api/v1/devices", f.bearer(expiredTok), ""}, 401, "token expired", `Bearer realm="edgeacs", error="invalid_token"`, 1},
		{"insufficient scope", req{"POST", "/api/v1/devices/x/tasks", f.bearer(readTok), ""}, 403, "POST /api/v1/devices/x/tasks needs scope write; token ops-read has scope read",
			`Bearer realm="edgeacs", error="insufficient_scope", scope="write"`, 1},
		{"query token with good header", req{"GET", "/api/v1/devices?access_token=" + admin, f.bearer(adminTok), ""}, 400, msgTokenInURL, "", 0},
		{"query token alone", req{"GET", "/api/v1/devices?limit=5&token=" + admin, nil, ""}, 400, `not the URL (query parameter "token")`, "", 0},
		{"query token on a public route", req{"GET", "/healthz?api_key=abc", nil, ""}, 400, msgTokenInURL, "", 0},
		{"query token, odd spelling", req{"GET", "/api/v1/devices?X=1;API-Key=abc", nil, ""}, 400, `query parameter "api_key"`, "", 0},
		{"query token, escaped name", req{"GET", "/api/v1/devices?%6Bey=abc", nil, ""}, 400, `query parameter "key"`, "", 0},
		{"ok", req{"GET", "/api/v1/devices", f.bearer(readTok), ""}, 200, "", "", 1},
		{"ok, lower-case scheme", req{"GET", "/api/v1/devices", []string{"bearer " + f.secrets[readTok]}, ""}, 200, "", "", 1},
		{"ok, two spaces", req{"GET", "/api/v1/devices", []string{"Bearer  " + f.secrets[readTok]}, ""}, 200, "", "", 1},
		{"ok, other query", req{"GET", "/api/v1/devices?keys=1&tokens=2&limit=3", f.bearer(readTok), ""}, 200, "", "", 1},
		{"public healthz", req{"GET", "/healthz", nil, ""}, 200, "", "", 0},
		{"public readyz ignores a bad header", req{"GET", "/readyz", []string{"Basic junk"}, ""}, 200, "", "", 0},
		{"metrics not public by default", req{"GET", "/metrics", nil, ""}, 401, "missing Authorization header", `Bearer realm="edgeacs"`, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, served := f.calls.n.Load(), f.served.Load()
			rec := f.do(c.req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, c.status, rec.Body)
			}
			if got := f.calls.n.Load() - before; got != c.lookups {
				t.Errorf("%d store lookups, want %d", got, c.lookups)
			}
			if c.errHas == "" {
				if f.served.Load() != served+1 {
					t.Fatalf("handler not called")
				}
				return
			}
			if f.served.Load() != served {
				t.Fatalf("handler called on a refused request")
			}
			msg := errorOf(t, rec)
			if !strings.Contains(msg, c.errHas) {
				t.Errorf("error %q, want it to contain %q", msg, c.errHas)
			}
			for _, s := range f.secrets {
				if strings.Contains(rec.Body.String(), s) {
					t.Errorf("response body holds a secret: %s", rec.Body)
				}
			}
			ch := rec.Header().Get("WWW-Authenticate")
			switch {
			case c.challenge != "" && ch != c.challenge:
				t.Errorf("WWW-Authenticate %q, want %q", ch, c.challenge)
			case rec.Code == 401 && !strings.HasPrefix(ch, `Bearer realm="edgeacs"`):
				t.Errorf("401 without a Bearer challenge: %q", ch)
			}
		})
	}
	// Unknown and revoked must read the same.
	u := f.do(req{method: "GET", target: "/api/v1/devices", auth: []string{"Bearer eacs_nosuchtoken"}})
	r := f.do(req{method: "GET", target: "/api/v1/devices", auth: []string{"Bearer " + revoked}})
	if u.Body.String() != r.Body.String() || u.Header().Get("WWW-Authenticate") != r.Header().Get("WWW-Authenticate") {
		t.Errorf("unknown %q and revoked %q differ", u.Body, r.Body)
	}
}

func TestPublicMetrics(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Policy = DefaultPolicy(true) })
	if rec := f.do(req{method: "GET", target: "/metrics"}); rec.Code != 200 {
		t.Fatalf("GET /metrics: %d, want 200", rec.Code)
	}
	if rec := f.do(req{method: "POST", target: "/metrics"}); rec.Code != 401 {
		t.Fatalf("POST /metrics: %d, want 401", rec.Code)
	}
}

func TestScopeMatrix(t *testing.T) {
	f := newFixture(t, nil)
	type want struct{ read, write, admin int }
	const ok, no = 200, 403
	cases := []struct {
		method, path string
		want         want
	}{
		{"GET", "/api/v1/devices", want{ok, ok, ok}},
		{"HEAD", "/api/v1/devices/x", want{ok, ok, ok}},
		{"GET", "/api/v1/cluster", want{ok, ok, ok}},
		{"GET", "/api/v1/edges", want{ok, ok, ok}},
		{"GET", "/devices", want{ok, ok, ok}},
		{"POST", "/api/v1/devices/x/tasks", want{no, 201, 201}},
		{"PUT", "/api/v1/presets/x", want{no, ok, ok}},
		{"DELETE", "/api/v1/tasks/x", want{no, ok, ok}},
		{"PATCH", "/api/v1/devices/x", want{no, ok, ok}},
		{"OPTIONS", "/api/v1/devices", want{no, ok, ok}},
		{"PROPFIND", "/api/v1/devices", want{no, ok, ok}},
		{"GET", "/api/v1/tokens", want{no, no, ok}},
		{"GET", "/api/v1/tokens/x", want{no, no, ok}},
		{"POST", "/api/v1/tokens", want{no, no, 201}},
		{"DELETE", "/api/v1/tokens/x", want{no, no, ok}},
		{"POST", "/api/v1/cluster/join", want{no, no, 201}},
		{"POST", "/api/v1/edges/x/revoke", want{no, no, 201}},
		{"DELETE", "/api/v1/edges/x", want{no, no, ok}},
		{"PUT", "/api/v1/cluster", want{no, no, ok}},
		{"GET", "/api/v1/tokens/../tokens", want{no, no, ok}},
	}
	for _, c := range cases {
		for _, tc := range []struct {
			tok    string
			status int
		}{{readTok, c.want.read}, {writeTok, c.want.write}, {adminTok, c.want.admin}} {
			rec := f.do(req{method: c.method, target: c.path, auth: f.bearer(tc.tok)})
			if rec.Code != tc.status {
				t.Errorf("%s %s as %s: %d, want %d (%s)", c.method, c.path, tc.tok, rec.Code, tc.status, rec.Body)
			}
			if rec.Code == 403 {
				msg := errorOf(t, rec)
				if !strings.Contains(msg, "has scope "+strings.TrimPrefix(tc.tok, "ops-")) || !strings.Contains(msg, "needs scope ") {
					t.Errorf("403 %q should name both scopes", msg)
				}
			}
		}
	}
	// 403s are not failed authentications: they never lead to 429.
	for range 3 * DefaultFailBurst {
		f.do(req{method: "GET", target: "/api/v1/tokens", auth: f.bearer(readTok)})
	}
	if rec := f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(readTok)}); rec.Code != 200 {
		t.Fatalf("after many 403s: %d, want 200", rec.Code)
	}
}

func TestPolicyUnknownScopeFailsClosed(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Policy = func(*http.Request) Access { return Access{} } // forgot the scope
	})
	if rec := f.do(req{method: "GET", target: "/x", auth: f.bearer(writeTok)}); rec.Code != 403 {
		t.Fatalf("write token: %d, want 403", rec.Code)
	}
	if rec := f.do(req{method: "GET", target: "/x", auth: f.bearer(adminTok)}); rec.Code != 200 {
		t.Fatalf("admin token: %d, want 200", rec.Code)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t, nil)
	get := func() *httptest.ResponseRecorder {
		return f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(soonTok)})
	}
	if rec := get(); rec.Code != 200 {
		t.Fatalf("before expiry: %d", rec.Code)
	}
	f.clock.Add(time.Hour - time.Nanosecond)
	if rec := get(); rec.Code != 200 {
		t.Fatalf("just before expiry: %d", rec.Code)
	}
	f.clock.Add(time.Nanosecond)
	rec := get()
	if rec.Code != 401 || !strings.Contains(errorOf(t, rec), "expired") {
		t.Fatalf("at expiry: %d %s, want 401 expired", rec.Code, rec.Body)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, nil)
	bad := req{method: "GET", target: "/api/v1/devices", auth: []string{"Bearer eacs_guess"}}
	good := req{method: "GET", target: "/api/v1/devices", auth: f.bearer(readTok)}

	// Successes cost nothing.
	for range 3 * DefaultFailBurst {
		if rec := f.do(good); rec.Code != 200 {
			t.Fatalf("good: %d", rec.Code)
		}
	}
	start := f.calls.n.Load()
	for i := range DefaultFailBurst {
		if rec := f.do(bad); rec.Code != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, rec.Code)
		}
	}
	if got := f.calls.n.Load() - start; got != DefaultFailBurst {
		t.Fatalf("%d lookups for %d failures", got, DefaultFailBurst)
	}

	limited := f.calls.n.Load()
	for _, r := range []req{bad, good, {method: "GET", target: "/api/v1/devices"}, {method: "GET", target: "/api/v1/devices", auth: []string{"Basic x"}}} {
		rec := f.do(r)
		if rec.Code != 429 {
			t.Fatalf("while limited: %d, want 429", rec.Code)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "3" {
			t.Fatalf("Retry-After %q, want 3", ra)
		}
		if msg := errorOf(t, rec); !strings.Contains(msg, "too many failed authentications") {
			t.Fatalf("429 error %q", msg)
		}
	}
	if got := f.calls.n.Load(); got != limited {
		t.Fatalf("store looked up %d times while limited", got-limited)
	}
	// Public routes and other sources are not limited.
	if rec := f.do(req{method: "GET", target: "/healthz"}); rec.Code != 200 {
		t.Fatalf("public while limited: %d", rec.Code)
	}
	if rec := f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(readTok), remote: "198.51.100.7:1"}); rec.Code != 200 {
		t.Fatalf("other source: %d", rec.Code)
	}
	// Same host, other port: same source.
	if rec := f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(readTok), remote: "192.0.2.1:1"}); rec.Code != 429 {
		t.Fatalf("same host, other port: %d, want 429", rec.Code)
	}

	f.clock.Add(time.Second)
	if ra := f.do(good).Header().Get("Retry-After"); ra != "2" {
		t.Fatalf("a second later, Retry-After %q, want 2", ra)
	}
	f.clock.Add(2 * time.Second) // one token back
	if rec := f.do(good); rec.Code != 200 {
		t.Fatalf("after refill, good: %d, want 200", rec.Code)
	}
	if rec := f.do(bad); rec.Code != 401 {
		t.Fatalf("after refill, bad: %d, want 401", rec.Code)
	}
	if rec := f.do(bad); rec.Code != 429 {
		t.Fatalf("refill spent, bad: %d, want 429", rec.Code)
	}

	f.clock.Add(DefaultFailBurst * DefaultFailRefill) // full again
	for i := range DefaultFailBurst {
		if rec := f.do(bad); rec.Code != 401 {
			t.Fatalf("after full refill, failure %d: %d, want 401", i+1, rec.Code)
		}
	}
	if rec := f.do(bad); rec.Code != 429 {
		t.Fatalf("burst spent again: %d, want 429", rec.Code)
	}
}

func TestRateLimitConfig(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.FailBurst, c.FailRefill = 2, time.Minute })
	bad := req{method: "GET", target: "/api/v1/devices", remote: "[2001:db8::1]:5"}
	f.do(bad)
	bad.remote = "[2001:db8::2]:5" // same /64
	f.do(bad)
	rec := f.do(bad)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "60" {
		t.Fatalf("%d Retry-After %q, want 429 and 60", rec.Code, rec.Header().Get("Retry-After"))
	}
	bad.remote = "[2001:db8:0:1::1]:5" // next /64
	if rec := f.do(bad); rec.Code != 401 {
		t.Fatalf("other /64: %d, want 401", rec.Code)
	}
}

func TestLimiterBound(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.FailBurst, c.MaxSources = 1, 4 })
	from := func(i int) req {
		return req{method: "GET", target: "/api/v1/devices", remote: fmt.Sprintf("203.0.113.%d:9", i)}
	}
	for i := 1; i <= 6; i++ {
		if rec := f.do(from(i)); rec.Code != 401 {
			t.Fatalf("source %d: %d", i, rec.Code)
		}
	}
	if n := f.a.fails.len(); n != 4 {
		t.Fatalf("limiter holds %d sources, want 4", n)
	}
	// The two least recent sources were forgotten; the last four are held
	// (source 1 last: its new failure forgets source 3).
	for _, c := range []struct{ src, want int }{{3, 429}, {4, 429}, {5, 429}, {6, 429}, {2, 401}, {1, 401}, {3, 401}} {
		if rec := f.do(from(c.src)); rec.Code != c.want {
			t.Errorf("source %d: %d, want %d", c.src, rec.Code, c.want)
		}
	}
}

func TestFailLimiter(t *testing.T) {
	l := newFailLimiter(2, time.Second, 3)
	now := t0
	for _, k := range []string{"a", "b", "c"} {
		l.charge(k, now)
	}
	l.charge("a", now) // a: limited, and now most recent
	if w := l.wait("a", now); w != time.Second {
		t.Fatalf("a waits %v, want 1s", w)
	}
	if w := l.wait("b", now); w != 0 {
		t.Fatalf("b waits %v, want 0", w)
	}
	l.charge("d", now) // evicts b, the least recently charged
	if l.len() != 3 {
		t.Fatalf("len %d, want 3", l.len())
	}
	if _, ok := l.m["b"]; ok {
		t.Fatalf("b kept; a, c, d should be")
	}
	// Buckets that have refilled are dropped when looked at.
	now = now.Add(2 * time.Second)
	for _, k := range []string{"a", "c", "d"} {
		if w := l.wait(k, now); w != 0 {
			t.Fatalf("%s waits %v after refill", k, w)
		}
	}
	if l.len() != 0 {
		t.Fatalf("len %d after refill, want 0", l.len())
	}
	// A clock that steps back does not underflow.
	l.charge("e", now)
	if w := l.wait("e", now.Add(-time.Hour)); w <= 0 {
		t.Fatalf("clock stepped back: wait %v", w)
	}
}

func TestSourceKey(t *testing.T) {
	for _, c := range []struct{ remote, host, key string }{
		{"192.0.2.1:5000", "192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:5000", "::ffff:192.0.2.1", "192.0.2.1"},
		{"[2001:db8::1]:443", "2001:db8::1", "2001:db8::/64"},
		{"[2001:db8::ffff:1]:443", "2001:db8::ffff:1", "2001:db8::/64"},
		{"[fe80::1%eth0]:1", "fe80::1%eth0", "fe80::/64"},
		{"pipe", "pipe", "pipe"},
		{"", "", ""},
	} {
		h := remoteHost(c.remote)
		if h != c.host || sourceKey(h) != c.key {
			t.Errorf("%q: host %q key %q, want %q %q", c.remote, h, sourceKey(h), c.host, c.key)
		}
	}
}

func TestAuditLog(t *testing.T) {
	f := newFixture(t, nil)
	secret := f.secrets[writeTok]
	f.do(req{method: "POST", target: "/api/v1/devices/x/tasks", auth: f.bearer(writeTok)})
	f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(writeTok)})
	f.do(req{method: "HEAD", target: "/api/v1/devices", auth: f.bearer(writeTok)})
	f.do(req{method: "OPTIONS", target: "/api/v1/devices", auth: f.bearer(writeTok)})
	f.do(req{method: "DELETE", target: "/api/v1/tasks/t1", auth: f.bearer(adminTok)})
	f.do(req{method: "GET", target: "/api/v1/devices", auth: []string{"Bearer eacs_wrong-" + secret[5:20]}})
	f.do(req{method: "GET", target: "/api/v1/devices", auth: []string{"Token " + secret}})
	f.do(req{method: "GET", target: "/api/v1/devices?token=" + secret})

	var audits, fails []map[string]any
	for _, l := range f.logs.lines(t) {
		switch l["msg"] {
		case "audit":
			audits = append(audits, l)
		case "auth failed":
			fails = append(fails, l)
		}
	}
	want := []map[string]any{
		{"level": "INFO", "token": writeTok, "scope": "write", "method": "POST", "path": "/api/v1/devices/x/tasks", "status": 201.0, "remote": "192.0.2.1"},
		{"level": "INFO", "token": adminTok, "scope": "admin", "method": "DELETE", "path": "/api/v1/tasks/t1", "status": 200.0, "remote": "192.0.2.1"},
	}
	if len(audits) != len(want) {
		t.Fatalf("%d audit lines, want %d: %s", len(audits), len(want), f.logs)
	}
	for i, w := range want {
		for k, v := range w {
			if audits[i][k] != v {
				t.Errorf("audit %d: %s = %v, want %v", i, k, audits[i][k], v)
			}
		}
	}
	if len(fails) != 3 {
		t.Fatalf("%d auth-failed lines, want 3: %s", len(fails), f.logs)
	}
	for _, l := range fails {
		if l["level"] != "WARN" || l["remote"] != "192.0.2.1" || l["reason"] == "" {
			t.Errorf("auth-failed line %v", l)
		}
	}
	logs := f.logs.String()
	for _, leak := range []string{secret, secret[5:20], "Token "} {
		if strings.Contains(logs, leak) {
			t.Errorf("log holds %q:\n%s", leak, logs)
		}
	}
}

func TestAuditPanicAndSilentHandler(t *testing.T) {
	logs := &syncBuffer{}
	store := &MapStore{}
	secret, _ := fleet.NewTokenSecret()
	if err := store.Put(fleet.Token{Name: "w", Scope: fleet.ScopeWrite, Hash: fleet.HashToken(secret)}); err != nil {
		t.Fatal(err)
	}
	a := New(Config{Store: store, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
	}))
	do := func(path string) {
		r := httptest.NewRequest("PUT", path, nil)
		r.Header.Set("Authorization", "Bearer "+secret)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	do("/silent")
	func() {
		defer func() {
			if recover() != http.ErrAbortHandler {
				t.Errorf("panic not passed on")
			}
		}()
		do("/panic")
	}()
	lines := logs.lines(t)
	if len(lines) != 2 || lines[0]["status"] != 200.0 || lines[1]["status"] != 500.0 {
		t.Fatalf("audit lines %v, want status 200 then 500", lines)
	}
}

func TestStatusWriterFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	var w http.ResponseWriter = sw
	w.(http.Flusher).Flush()
	if !rec.Flushed || sw.status != 200 {
		t.Fatalf("flushed %v status %d", rec.Flushed, sw.status)
	}
	sw2 := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	sw2.WriteHeader(http.StatusEarlyHints)
	sw2.WriteHeader(http.StatusNoContent)
	if sw2.status != http.StatusNoContent {
		t.Fatalf("status %d after 103 then 204", sw2.status)
	}
}

func TestFromContext(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(writeTok)})
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["token"] != writeTok || body["scope"] != "write" {
		t.Fatalf("handler saw %v", body)
	}
	rec = f.do(req{method: "GET", target: "/healthz", auth: f.bearer(writeTok)})
	body = nil
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if _, ok := body["token"]; ok {
		t.Fatalf("public route got a token: %v", body)
	}
	if _, ok := FromContext(t.Context()); ok {
		t.Fatal("token in a bare context")
	}
	ctx := NewContext(t.Context(), fleet.Token{Name: "n"})
	if tok, ok := FromContext(ctx); !ok || tok.Name != "n" {
		t.Fatalf("NewContext round trip: %v %v", tok, ok)
	}
}

func TestNewNeedsStore(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New without a Store did not panic")
		}
	}()
	New(Config{})
}

func TestConcurrent(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxSources = 16 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				remote := fmt.Sprintf("10.0.%d.%d:1", g, i%40)
				switch i % 3 {
				case 0:
					f.do(req{method: "GET", target: "/api/v1/devices", remote: remote})
				case 1:
					f.do(req{method: "POST", target: "/api/v1/devices/x/tasks", auth: f.bearer(writeTok), remote: remote})
				default:
					if i%30 == 2 {
						secret := fmt.Sprintf("eacs_%d_%d", g, i)
						tok := fleet.Token{Name: fmt.Sprintf("t%d-%d", g, i), Scope: fleet.ScopeRead, Hash: fleet.HashToken(secret)}
						if err := f.store.Put(tok); err != nil {
							t.Error(err)
						}
						f.do(req{method: "GET", target: "/api/v1/devices", auth: []string{"Bearer " + secret}, remote: remote})
					}
					f.do(req{method: "GET", target: "/api/v1/devices", auth: f.bearer(readTok), remote: remote})
				}
			}
		})
	}
	wg.Wait()
	if n := f.a.fails.len(); n > 16 {
		t.Fatalf("limiter holds %d sources, bound 16", n)
	}
}

// TestRefusalDoesNotWaitForTheBody: a client without a token that sends
// headers and then stalls its body gets its 401 at once, and the
// connection closes; the server never reads the body.
func TestRefusalDoesNotWaitForTheBody(t *testing.T) {
	a := New(Config{Store: &MapStore{}, Policy: DefaultPolicy(true), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler ran for a request without a token")
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /api/v1/presets/p HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer while the body stalls: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%d, want 401", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection still open after the refusal: %v", err)
	}
}
