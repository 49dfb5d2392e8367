package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// Cookie names. The session cookie maps to the server-side session; the
// sign-in cookie carries the sign-in form's CSRF token before there is a
// session (double submit), so a foreign page cannot sign a browser in
// with the attacker's token.
const (
	sessionCookie = "edgeacs_console"
	signInCookie  = "edgeacs_console_signin"
)

// session is one signed-in browser. The token's secret lives only here,
// in memory: the browser holds a random session ID.
type session struct {
	key     string // SHA-256 of the cookie value, the map key
	secret  string
	hash    string // fleet.HashToken(secret): the token store's key
	name    string
	scope   fleet.Scope
	csrf    string
	api     *client.Client
	created time.Time
	seen    time.Time
}

// checkCSRF compares a request's CSRF token with the session's in
// constant time.
func (s *session) checkCSRF(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) == 1
}

// sessions is the server-side session map, bounded in size and age.
// Sessions are per node: a browser sent to another core node signs in
// again.
type sessions struct {
	mu            sync.Mutex
	m             map[string]*session
	idle, maxAge  time.Duration
	max           int
	now           func() time.Time
	lastPrune     time.Time
	pruneInterval time.Duration
}

func newSessions(idle, maxAge time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, idle: idle, maxAge: maxAge, max: max, now: now, pruneInterval: time.Minute}
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func cookieKey(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// add stores s and returns the cookie value that names it.
func (ss *sessions) add(s *session) string {
	id := randomToken()
	s.key = cookieKey(id)
	now := ss.now()
	s.created, s.seen = now, now
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.pruneLocked(now, true)
	if len(ss.m) >= ss.max {
		var oldest *session
		for _, o := range ss.m {
			if oldest == nil || o.seen.Before(oldest.seen) {
				oldest = o
			}
		}
		delete(ss.m, oldest.key)
	}
	ss.m[s.key] = s
	return id
}

// get returns the live session a cookie value names, or nil.
func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	k := cookieKey(id)
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.pruneLocked(now, false)
	s := ss.m[k]
	if s == nil {
		return nil
	}
	if now.Sub(s.seen) > ss.idle || now.Sub(s.created) > ss.maxAge {
		delete(ss.m, k)
		return nil
	}
	s.seen = now
	return s
}

func (ss *sessions) drop(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
}

// pruneLocked drops expired sessions, at most once a pruneInterval
// unless forced.
func (ss *sessions) pruneLocked(now time.Time, force bool) {
	if !force && now.Sub(ss.lastPrune) < ss.pruneInterval {
		return
	}
	ss.lastPrune = now
	for k, s := range ss.m {
		if now.Sub(s.seen) > ss.idle || now.Sub(s.created) > ss.maxAge {
			delete(ss.m, k)
		}
	}
}

// current is the request's session, if its cookie names a live one whose
// token still exists and has not expired (a revoked token ends every
// session signed in with it at the next click).
func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s := c.sess.get(ck.Value)
	if s == nil {
		return nil
	}
	tok, ok := c.cfg.Tokens.TokenByHash(s.hash)
	if !ok || tok.Expired(c.now()) {
		c.sess.drop(s)
		return nil
	}
	s.scope, s.name = tok.Scope, tok.Name
	return s
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// signInData is the sign-in page's.
type signInData struct {
	CSRF, Next, Error string
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if c.current(r) != nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.showSignIn(w, r, http.StatusOK, "")
}

func (c *Console) showSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	setCookie(w, r, signInCookie, tok, 3600)
	next := r.FormValue("next")
	if !safeNext(next) {
		next = ""
	}
	v := view{Title: "Sign in", Node: c.cfg.Title, Has: c.has, Data: signInData{CSRF: tok, Next: next, Error: msg}}
	if err := c.write(w, status, "signin", "layout", v); err != nil {
		c.log.Error("console: render sign-in", "err", err)
	}
}

// safeNext reports whether next is a console path to return to after
// signing in (not another site).
func safeNext(next string) bool {
	return strings.HasPrefix(next, Prefix) && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n")
}

// signIn checks a token by asking the API with it (so a wrong one is
// charged to the source's failure budget like any API call), then opens a
// session.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(signInCookie)
	if err != nil || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.showSignIn(w, r, http.StatusForbidden, "The sign-in form expired; try again.")
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	if secret == "" {
		c.showSignIn(w, r, http.StatusBadRequest, "Paste an API token (edgeacs token create, or the admin token in data/cli.yaml).")
		return
	}
	api, err := client.New("http://console.invalid", client.Options{Token: secret, Transport: inProcess{c.cfg.API}})
	if err != nil {
		c.showSignIn(w, r, http.StatusBadRequest, "That is not a token: "+err.Error())
		return
	}
	ctx := withRemote(r.Context(), r.RemoteAddr)
	if _, _, err := api.Devices(ctx, client.DeviceQuery{Limit: 1}); err != nil {
		var ae *client.APIError
		msg := "The API refused the token."
		status := http.StatusUnauthorized
		if errors.As(err, &ae) {
			msg, status = "The API refused the token: "+ae.Message, ae.Status
		}
		c.showSignIn(w, r, status, msg)
		return
	}
	hash := fleet.HashToken(secret)
	tok, ok := c.cfg.Tokens.TokenByHash(hash)
	if !ok {
		c.showSignIn(w, r, http.StatusUnauthorized, "The API refused the token: unknown or revoked token")
		return
	}
	s := &session{secret: secret, hash: hash, name: tok.Name, scope: tok.Scope, csrf: randomToken(), api: api}
	id := c.sess.add(s)
	setCookie(w, r, sessionCookie, id, 0)
	setCookie(w, r, signInCookie, "", -1)
	c.log.Info("console sign-in", "token", tok.Name, "scope", tok.Scope, "remote", r.RemoteAddr)
	next := r.PostFormValue("next")
	if !safeNext(next) {
		next = Prefix
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, q *req) error {
	c.sess.drop(q.s)
	setCookie(w, q.Request, sessionCookie, "", -1)
	c.log.Info("console sign-out", "token", q.s.name, "remote", q.RemoteAddr)
	http.Redirect(w, q.Request, Prefix+"signin", http.StatusSeeOther)
	return nil
}

// remoteKey carries the browser's address to the in-process API call, so
// the API's per-source limits and logs see the operator, not the console.
type remoteKey struct{}

func withRemote(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteKey{}, addr)
}

// inProcess is an http.RoundTripper that serves each request with the
// node's API handler in this process: the console's calls take the API's
// whole path (authentication, scopes, limits, forwarding to the leader)
// without a socket.
type inProcess struct{ h http.Handler }

// RoundTrip serves req with the handler and returns its buffered answer.
func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	sr := req.Clone(req.Context())
	sr.RequestURI = req.URL.RequestURI()
	sr.Host = req.URL.Host
	sr.RemoteAddr, _ = req.Context().Value(remoteKey{}).(string)
	if sr.RemoteAddr == "" {
		sr.RemoteAddr = "127.0.0.1:0"
	}
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, sr)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		Status: http.StatusText(rec.code), StatusCode: rec.code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

// recorder is the ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}

// Flush is a no-op: the answer is read once the handler returns.
func (r *recorder) Flush() {}
