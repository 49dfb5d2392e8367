package apiauth

import (
	"net/http"
	"strings"
	"sync"
)

// Mux is an http.ServeMux that remembers the patterns registered on it, so
// a test can walk every route an API serves. The zero value is ready.
type Mux struct {
	mux http.ServeMux

	mu       sync.Mutex
	patterns []string
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{} }

// Handle registers h for pattern, as http.ServeMux.Handle does (and
// panics as it does on a bad or conflicting pattern).
func (m *Mux) Handle(pattern string, h http.Handler) {
	m.mux.Handle(pattern, h) // first: a pattern it refuses is not recorded
	m.mu.Lock()
	m.patterns = append(m.patterns, pattern)
	m.mu.Unlock()
}

// HandleFunc registers fn for pattern, as http.ServeMux.HandleFunc does.
func (m *Mux) HandleFunc(pattern string, fn func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(fn))
}

// Patterns returns the registered patterns in the order they were
// registered.
func (m *Mux) Patterns() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.patterns...)
}

// Handler returns the handler and pattern r would be served by, as
// http.ServeMux.Handler does: an API uses it to list a path's methods.
func (m *Mux) Handler(r *http.Request) (h http.Handler, pattern string) {
	return m.mux.Handler(r)
}

// ServeHTTP dispatches r to the handler of the pattern it matches.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mux.ServeHTTP(w, r)
}

// Placeholder is the value ExamplePath puts in place of each wildcard.
const Placeholder = "x"

// ExamplePath turns a ServeMux pattern into a request that pattern serves:
// "GET /api/v1/devices/{id}/tags/{tag}" gives GET and
// "/api/v1/devices/x/tags/x". A pattern without a method gives GET; a host
// is dropped; a trailing slash or a {name...} wildcard gives one more
// segment "x" (a path strictly below it), and {$} ends the path at the
// slash before it.
func ExamplePath(pattern string) (method, path string) {
	method = http.MethodGet
	rest := strings.TrimSpace(pattern)
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		method, rest = rest[:i], strings.TrimLeft(rest[i:], " \t")
	}
	switch i := strings.IndexByte(rest, '/'); {
	case i < 0:
		rest = "/"
	default:
		rest = rest[i:] // drop the host
	}
	segs := strings.Split(rest[1:], "/")
	for i, s := range segs {
		switch {
		case s == "{$}":
			segs[i] = ""
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			segs[i] = Placeholder
		case s == "" && i == len(segs)-1:
			segs[i] = Placeholder // trailing slash: a subtree
		}
	}
	return method, "/" + strings.Join(segs, "/")
}
