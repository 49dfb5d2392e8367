package edge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/apiauth/authtest"
	"github.com/edgeacs/edgeacs/fleet"
)

// TestAPIRoutesNeedTokens walks every route the edge's API registers: none
// but health (and public metrics) answers without a valid token, and a
// read token cannot write.
func TestAPIRoutesNeedTokens(t *testing.T) {
	c := openTestCache(t, "")
	read := addTestToken(t, c, "reader", fleet.ScopeRead)
	revoked := addTestToken(t, c, "gone", fleet.ScopeWrite)
	if err := c.RevokeToken("gone"); err != nil {
		t.Fatal(err)
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("m 1\n")) })
	for _, private := range []bool{false, true} {
		mux, h := newAPI(APIConfig{Cache: c, Logger: quietLog, Metrics: metrics, MetricsAuth: private})
		authtest.CheckRoutes(t, h, mux.Patterns(), apiauth.DefaultPolicy(!private), authtest.Tokens{Read: read, Revoked: revoked})
	}
}

// TestAPITokenBadInput: what a client gets for tokens in the wrong place
// or shape.
func TestAPITokenBadInput(t *testing.T) {
	c := openTestCache(t, "")
	read := addTestToken(t, c, "reader", fleet.ScopeRead)
	h := NewAPI(APIConfig{Cache: c, Logger: quietLog})
	for _, tc := range []struct {
		name, target, auth string
		want               int
	}{
		{"token in the query", "/api/v1/devices?access_token=" + read, "", http.StatusBadRequest},
		{"token in the query beside a good header", "/api/v1/devices?token=" + read, "Bearer " + read, http.StatusBadRequest},
		{"basic instead of bearer", "/api/v1/devices", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"bearer without a secret", "/api/v1/devices", "Bearer ", http.StatusUnauthorized},
		{"secret too long", "/api/v1/devices", "Bearer " + strings.Repeat("a", 200), http.StatusUnauthorized},
		{"header too large", "/api/v1/devices", "Bearer " + strings.Repeat("a", 2000), http.StatusRequestHeaderFieldsTooLarge},
		{"control bytes", "/api/v1/devices", "Bearer eacs_\x01x", http.StatusUnauthorized},
		{"good token", "/api/v1/devices", "Bearer " + read, http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		r.RemoteAddr = "192.0.2.7:1234"
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want || !strings.Contains(w.Header().Get("Content-Type"), "json") {
			t.Errorf("%s: %d %s, want %d with JSON", tc.name, w.Code, w.Body, tc.want)
		}
		if strings.Contains(w.Body.String(), read) {
			t.Errorf("%s: the answer echoes the secret", tc.name)
		}
	}
}
