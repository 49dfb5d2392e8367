package apiauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// MaxAuthorizationHeader bounds the Authorization header (all its values
// together): a longer one is answered 431 before anything else is done.
const MaxAuthorizationHeader = 1024

// Realm is the realm named in WWW-Authenticate.
const Realm = "edgeacs"

// Defaults of the failure limiter: 20 failures in a row, then one every
// 3 s, remembered for up to 65536 sources.
const (
	DefaultFailBurst  = 20
	DefaultFailRefill = 3 * time.Second
	DefaultMaxSources = 65536
)

const (
	challenge     = `Bearer realm="` + Realm + `"`
	msgTokenInURL = "tokens go in the Authorization header, not the URL"
)

// Config configures an Authenticator.
type Config struct {
	// Store finds tokens by the hash of their secret. Required.
	Store Store
	// Policy says what each request needs; nil means DefaultPolicy(false).
	Policy Policy
	// Logger receives audit lines and failed authentications; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time

	// FailBurst is how many failed authentications a source may make in a
	// row (default DefaultFailBurst); FailRefill is how often it earns one
	// more (default DefaultFailRefill).
	FailBurst  int
	FailRefill time.Duration
	// MaxSources bounds how many sources the limiter remembers (default
	// DefaultMaxSources); past it, the one that failed least recently is
	// forgotten.
	MaxSources int
}

// Authenticator checks API tokens in front of an API's handler.
type Authenticator struct {
	store  Store
	policy Policy
	log    *slog.Logger
	now    func() time.Time
	fails  *failLimiter
}

// New returns an Authenticator. It panics if cfg.Store is nil: an API with
// nowhere to look tokens up is a wiring mistake, not a state to serve in.
func New(cfg Config) *Authenticator {
	if cfg.Store == nil {
		panic("apiauth: Config.Store is nil")
	}
	a := &Authenticator{store: cfg.Store, policy: cfg.Policy, log: cfg.Logger, now: cfg.Now}
	if a.policy == nil {
		a.policy = DefaultPolicy(false)
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.FailBurst <= 0 {
		cfg.FailBurst = DefaultFailBurst
	}
	if cfg.FailRefill <= 0 {
		cfg.FailRefill = DefaultFailRefill
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	a.fails = newFailLimiter(cfg.FailBurst, cfg.FailRefill, cfg.MaxSources)
	return a
}

type tokenKey struct{}

// FromContext returns the token a request was authenticated with. It is
// absent on public routes.
func FromContext(ctx context.Context) (fleet.Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(fleet.Token)
	return t, ok
}

// NewContext returns ctx carrying t, as Wrap passes it to handlers: for
// tests of handlers that read FromContext.
func NewContext(ctx context.Context, t fleet.Token) context.Context {
	return context.WithValue(ctx, tokenKey{}, t)
}

// Wrap returns next behind authentication: each request is checked against
// the policy, and reaches next only if its route is public or it carries a
// live token with the scope the route needs.
func (a *Authenticator) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := remoteHost(r.RemoteAddr)
		values := r.Header.Values("Authorization")
		if headerTooLarge(values) {
			a.logFailure(r, host, "Authorization header too large")
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, errHeaderTooLarge.Error())
			return
		}
		if name, ok := tokenInQuery(r.URL.RawQuery); ok {
			// Refused even with a good header: the secret is already in
			// proxy and access logs, and serving would teach the habit.
			a.logFailure(r, host, "token in query parameter "+strconv.Quote(name))
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s (query parameter %q)", msgTokenInURL, name))
			return
		}
		need := a.policy(r)
		if need.Public {
			a.serve(w, r, next, host, nil)
			return
		}
		if _, err := fleet.ParseScope(string(need.Scope)); err != nil {
			need.Scope = fleet.ScopeAdmin
		}

		key := sourceKey(host)
		now := a.now()
		if wait := a.fails.wait(key, now); wait > 0 {
			secs := retryAfterSeconds(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, http.StatusTooManyRequests,
				fmt.Sprintf("too many failed authentications from %s; retry in %d s", host, secs))
			return
		}
		secret, err := parseAuthorization(values)
		if err != nil {
			errCode := "invalid_request"
			if errors.Is(err, errNoAuthorization) {
				errCode = ""
			}
			a.unauthorized(w, r, host, key, now, errCode, err.Error())
			return
		}
		tok, ok := a.store.TokenByHash(fleet.HashToken(secret))
		if !ok {
			// Unknown and revoked look alike: a revoked token is deleted,
			// and telling them apart would confirm a once-valid secret.
			a.unauthorized(w, r, host, key, now, "invalid_token", "unknown or revoked token")
			return
		}
		if tok.Expired(now) {
			a.unauthorized(w, r, host, key, now, "invalid_token", "token expired")
			return
		}
		if !tok.Scope.Allows(need.Scope) {
			a.log.LogAttrs(r.Context(), slog.LevelWarn, "access denied",
				slog.String("token", tok.Name), slog.String("scope", string(tok.Scope)),
				slog.String("need", string(need.Scope)), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.String("remote", host))
			w.Header().Set("WWW-Authenticate", challenge+`, error="insufficient_scope", scope="`+string(need.Scope)+`"`)
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s %s needs scope %s; token %s has scope %s",
				r.Method, r.URL.Path, need.Scope, tok.Name, tok.Scope))
			return
		}
		a.serve(w, r.WithContext(NewContext(r.Context(), tok)), next, host, &tok)
	})
}

// unauthorized answers 401 and charges the source's failure bucket.
func (a *Authenticator) unauthorized(w http.ResponseWriter, r *http.Request, host, key string, now time.Time, errCode, msg string) {
	a.fails.charge(key, now)
	a.logFailure(r, host, msg)
	c := challenge
	if errCode != "" {
		c += `, error="` + errCode + `"`
	}
	w.Header().Set("WWW-Authenticate", c)
	writeError(w, http.StatusUnauthorized, msg)
}

// logFailure logs a refused authentication. reason is always one of this
// package's fixed messages, never text from the request's header.
func (a *Authenticator) logFailure(r *http.Request, host, reason string) {
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "auth failed",
		slog.String("remote", host), slog.String("reason", reason),
		slog.String("method", r.Method), slog.String("path", r.URL.Path))
}

// serve runs next, and for a request that may change state writes one
// audit line after it returns (or panics).
func (a *Authenticator) serve(w http.ResponseWriter, r *http.Request, next http.Handler, host string, tok *fleet.Token) {
	if !audited(r.Method) {
		next.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	returned := false
	defer func() {
		status := sw.status
		if status == 0 {
			status = http.StatusOK // net/http's answer to a handler that wrote nothing
			if !returned {
				status = http.StatusInternalServerError
			}
		}
		name, scope := "-", "public"
		if tok != nil {
			name, scope = tok.Name, string(tok.Scope)
		}
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "audit",
			slog.String("token", name), slog.String("scope", scope),
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.String("remote", host))
	}()
	next.ServeHTTP(sw, r)
	returned = true
}

// statusWriter records the final status for the audit line. Unwrap lets
// http.ResponseController (flushing, deadlines) reach the original.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are interim
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush serves handlers that assert http.Flusher rather than use
// http.ResponseController.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush() // unflushable: nothing to do
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	errNoAuthorization = errors.New("missing Authorization header: want \"Authorization: Bearer <token>\"")
	errHeaderTooLarge  = fmt.Errorf("the Authorization header is longer than %d bytes", MaxAuthorizationHeader)
	errMalformed       = errors.New("malformed Authorization header")
)

func headerTooLarge(values []string) bool {
	n := 0
	for _, v := range values {
		n += len(v)
	}
	return n > MaxAuthorizationHeader
}

// parseAuthorization returns the secret of "Authorization: Bearer
// <secret>". Its errors name the problem without quoting the header, which
// may hold a secret.
func parseAuthorization(values []string) (string, error) {
	if len(values) == 0 {
		return "", errNoAuthorization
	}
	if headerTooLarge(values) {
		return "", errHeaderTooLarge
	}
	if len(values) > 1 {
		return "", fmt.Errorf("%w: more than one Authorization header", errMalformed)
	}
	scheme, rest, ok := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: want \"Bearer <token>\"", errMalformed)
	}
	secret := strings.TrimLeft(rest, " ")
	if !ok || secret == "" {
		return "", fmt.Errorf("%w: empty bearer token", errMalformed)
	}
	if len(secret) > fleet.MaxTokenSecret {
		return "", fmt.Errorf("%w: bearer token longer than %d bytes", errMalformed, fleet.MaxTokenSecret)
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("%w: bearer token has a space, control or non-ASCII byte", errMalformed)
		}
	}
	return secret, nil
}

// queryTokenNames are query parameters that carry a token in the APIs of
// other tools; a client using one of them meant to authenticate. Compared
// lower-cased, with '-' read as '_'.
var queryTokenNames = map[string]bool{
	"access_token": true, "token": true, "api_key": true, "apikey": true,
	"key": true, "api_token": true, "apitoken": true, "auth": true,
	"auth_token": true, "authorization": true, "bearer": true, "secret": true,
}

// tokenInQuery reports the first query parameter that looks like a token.
// It reads the raw query itself, taking ';' as a separator too, so a
// parameter is found even where url.ParseQuery would drop it: the secret
// is in the URL either way.
func tokenInQuery(raw string) (string, bool) {
	for _, kv := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		k, _, _ := strings.Cut(kv, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		norm := strings.ReplaceAll(strings.ToLower(k), "-", "_")
		if queryTokenNames[norm] {
			return norm, true
		}
	}
	return "", false
}

// retryAfterSeconds rounds up, so a client that waits as told finds a
// token in its bucket.
func retryAfterSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// A refused request's body is never read; without this, net/http
	// would read what is left of it before answering, and an
	// unauthenticated client that stalls its body would hold the
	// connection (and get no answer) for as long as it likes.
	h.Set("Connection", "close")
	// And once answered, the server would still read up to 256 KiB of
	// that body before closing: expire the connection's reads instead.
	// (An error means a writer without deadlines, e.g. a test recorder.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// "Bearer <token>" reads better than \u003ctoken\u003e; the body is
	// never HTML.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]string{"error": msg}) // the client went away
}
