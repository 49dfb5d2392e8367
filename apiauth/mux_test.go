package apiauth

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestExamplePath(t *testing.T) {
	for _, c := range []struct{ pattern, method, path string }{
		{"GET /api/v1/devices/{id}/tags/{tag}", "GET", "/api/v1/devices/x/tags/x"},
		{"POST /api/v1/devices/{id}/tasks", "POST", "/api/v1/devices/x/tasks"},
		{"/api/v1/devices", "GET", "/api/v1/devices"},
		{"/", "GET", "/x"},
		{"DELETE /files/", "DELETE", "/files/x"},
		{"GET /static/{rest...}", "GET", "/static/x"},
		{"GET /api/v1/tokens/{$}", "GET", "/api/v1/tokens/"},
		{"GET /{$}", "GET", "/"},
		{"GET example.com/a/{b}", "GET", "/a/x"},
		{"example.com/", "GET", "/x"},
		{"  PUT\t /a/{b}/c  ", "PUT", "/a/x/c"},
	} {
		m, p := ExamplePath(c.pattern)
		if m != c.method || p != c.path {
			t.Errorf("ExamplePath(%q) = %s %s, want %s %s", c.pattern, m, p, c.method, c.path)
		}
	}
}

func TestMux(t *testing.T) {
	m := NewMux()
	patterns := []string{
		"GET /healthz",
		"GET /api/v1/devices",
		"GET /api/v1/devices/{id}",
		"POST /api/v1/devices/{id}/tags/{tag}",
		"/api/v1/tasks",
		"GET /api/v1/tokens/{$}",
		"GET /api/v1/files/{name...}",
		"PUT /upload/",
		"/",
	}
	for _, p := range patterns {
		m.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.Pattern)) })
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("conflicting pattern accepted")
			}
		}()
		m.Handle("GET /api/v1/devices", http.NotFoundHandler())
	}()
	if got := m.Patterns(); !slices.Equal(got, patterns) {
		t.Fatalf("Patterns() = %q, want %q", got, patterns)
	}
	m.Patterns()[0] = "changed"
	if m.Patterns()[0] != patterns[0] {
		t.Fatal("Patterns() shares its slice")
	}
	// Every example path is served by its own pattern.
	for _, p := range m.Patterns() {
		method, path := ExamplePath(p)
		r := httptest.NewRequest(method, path, nil)
		if _, got := m.Handler(r); got != p {
			t.Errorf("%s %s routes to %q, want %q", method, path, got, p)
		}
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, r)
		if rec.Body.String() != p {
			t.Errorf("%s %s served by %q, want %q", method, path, rec.Body, p)
		}
	}
	var zero Mux
	zero.Handle("/", http.NotFoundHandler())
	if len(zero.Patterns()) != 1 {
		t.Fatal("zero Mux not usable")
	}
}

// TestEveryRouteNeedsAToken is the walk an API's own test does: each
// registered route, asked without a token, is refused unless public.
func TestEveryRouteNeedsAToken(t *testing.T) {
	m := NewMux()
	ok := func(w http.ResponseWriter, r *http.Request) {}
	for _, p := range []string{
		"GET /healthz", "GET /readyz", "GET /metrics",
		"GET /api/v1/devices", "DELETE /api/v1/devices/{id}", "POST /api/v1/devices/{id}/tasks",
		"GET /api/v1/tokens", "POST /api/v1/tokens", "DELETE /api/v1/tokens/{name}",
		"POST /api/v1/cluster/join", "GET /internal/v1/blobs/{sha256}", "/",
	} {
		m.HandleFunc(p, ok)
	}
	h := New(Config{Store: &MapStore{}, Logger: discard()}).Wrap(m)
	public := map[string]bool{"GET /healthz": true, "GET /readyz": true}
	for _, p := range m.Patterns() {
		method, path := ExamplePath(p)
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = "192.0.2.9:1"
		h.ServeHTTP(rec, r)
		want := http.StatusUnauthorized
		if public[p] {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Errorf("%s (%s %s) without a token: %d, want %d", p, method, path, rec.Code, want)
		}
	}
}
