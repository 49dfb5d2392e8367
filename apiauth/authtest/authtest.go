// Package authtest checks that an API wrapped by apiauth answers every
// route it registered as its policy says: 401 without a token or with a
// revoked one, 403 with too small a scope, and served otherwise. Both
// management APIs (edge and core) run it over all their routes, so a route
// added later without authentication fails their tests.
package authtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
)

// Tokens are the secrets CheckRoutes sends: Read is a live read token,
// Revoked one that was revoked (or never existed).
type Tokens struct {
	Read, Revoked string
}

var source atomic.Uint32

// request builds a request from a fresh source address, so the failed
// authentications of one check never rate-limit the next.
func request(method, path, secret string) *http.Request {
	var body *strings.Reader
	if method != http.MethodGet && method != http.MethodHead {
		body = strings.NewReader("{}")
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, path, body)
	n := source.Add(1)
	r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", byte(n>>16), byte(n>>8), byte(n))
	if secret != "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	return r
}

// CheckRoutes sends each pattern's example request (apiauth.ExamplePath)
// to h without a token, with tok.Revoked and with tok.Read, and checks the
// answers against policy.
func CheckRoutes(t *testing.T, h http.Handler, patterns []string, policy apiauth.Policy, tok Tokens) {
	t.Helper()
	if len(patterns) == 0 {
		t.Fatal("no routes to check")
	}
	for _, p := range patterns {
		method, path := apiauth.ExamplePath(p)
		acc := policy(request(method, path, ""))
		serve := func(secret string) (int, string) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, request(method, path, secret))
			return w.Code, w.Body.String()
		}
		if acc.Public {
			if code, body := serve(""); code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s (%s %s) is public but answered %d without a token: %s", p, method, path, code, body)
			}
			continue
		}
		for _, c := range []struct{ name, secret string }{{"no token", ""}, {"a revoked token", tok.Revoked}} {
			code, body := serve(c.secret)
			if code != http.StatusUnauthorized || !isJSONError(body) {
				t.Errorf("%s (%s %s) with %s: %d %q, want 401 with a JSON error", p, method, path, c.name, code, body)
			}
		}
		code, body := serve(tok.Read)
		if fleet.ScopeRead.Allows(acc.Scope) {
			if code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s (%s %s) needs read, but a read token got %d: %s", p, method, path, code, body)
			}
		} else if code != http.StatusForbidden || !isJSONError(body) {
			t.Errorf("%s (%s %s) needs %s, but a read token got %d %q, want 403", p, method, path, acc.Scope, code, body)
		}
	}
}

func isJSONError(body string) bool {
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal([]byte(body), &e) == nil && e.Error != ""
}
