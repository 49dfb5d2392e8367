// Package testauth lets tests' plain HTTP helpers carry API bearer tokens:
// every management API route but health answers 401 without one, and
// tests talk to those APIs through many small helpers that should not
// each have to know about tokens.
package testauth

import (
	"net/http"
	"net/url"
	"sync"
)

// Transport adds "Authorization: Bearer <token>" to requests that carry no
// Authorization header, with the token Token returns ("" adds nothing).
type Transport struct {
	Base  http.RoundTripper
	Token func(r *http.Request) string
}

// RoundTrip implements http.RoundTripper.
func (t Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := r.Header["Authorization"]; !ok {
		if tok := t.Token(r); tok != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return t.Base.RoundTrip(r)
}

// CloseIdleConnections lets clients (and httptest.Server.Close) reach the
// base transport's.
func (t Transport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Install wraps http.DefaultTransport in a Transport (call it from
// TestMain, before any test runs).
func Install(token func(r *http.Request) string) {
	http.DefaultTransport = Transport{Base: http.DefaultTransport, Token: token}
}

// Hosts maps API addresses (host:port) to the tokens to send them.
type Hosts struct{ m sync.Map }

// Use makes requests to the API at base (a URL or host:port) carry token.
func (h *Hosts) Use(base, token string) {
	host := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	h.m.Store(host, token)
}

// Token returns the token registered for r's host, or "".
func (h *Hosts) Token(r *http.Request) string {
	if tok, ok := h.m.Load(r.URL.Host); ok {
		return tok.(string)
	}
	return ""
}
