package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct{ base, token string }{
		{"", ""},
		{"ftp://x", ""},
		{"http://", ""},
		{"127.0.0.1:1", "two words"},
		{"127.0.0.1:1", "line\nbreak"},
	} {
		if _, err := New(tc.base, Options{Token: tc.token}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("New(%q, token %q) = %v, want ErrBadRequest", tc.base, tc.token, err)
		}
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New("https://127.0.0.1:1", Options{CAFile: notPEM}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("CA file without PEM: %v, want ErrBadRequest", err)
	}
	if _, err := New("https://127.0.0.1:1", Options{CAFile: filepath.Join(dir, "absent")}); err == nil {
		t.Error("absent CA file accepted")
	}
}

func TestDoSendsTokenAndMapsErrors(t *testing.T) {
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		switch r.URL.Path {
		case "/api/v1/ok":
			w.Header().Set("X-Next-Cursor", "c2")
			w.Write([]byte(`{"name":"n"}`))
		case "/api/v1/text":
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("upstream down\n"))
		default:
			code := map[string]int{"/401": 401, "/403": 403, "/404": 404, "/409": 409, "/400": 400, "/503": 503, "/429": 429}[r.URL.Path]
			w.WriteHeader(code)
			w.Write([]byte(`{"error":"because"}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", Options{Token: "eacs_secret"})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Name string }
	h, err := c.DoHeader(context.Background(), http.MethodGet, "/api/v1/ok", nil, &out)
	if err != nil || out.Name != "n" || h.Get("X-Next-Cursor") != "c2" {
		t.Fatalf("ok: %v %+v %v", err, out, h)
	}
	if gotAuth != "Bearer eacs_secret" || gotPath != "/api/v1/ok" {
		t.Fatalf("sent Authorization %q path %q", gotAuth, gotPath)
	}
	for path, want := range map[string]error{"/401": ErrUnauthorized, "/403": ErrForbidden, "/404": ErrNotFound, "/409": ErrConflict, "/400": ErrBadRequest, "/503": ErrUnavailable, "/429": ErrUnavailable} {
		err := c.Do(context.Background(), http.MethodGet, path, nil, nil)
		var ae *APIError
		if !errors.Is(err, want) || !errors.As(err, &ae) || ae.Message != "because" {
			t.Errorf("%s: %v, want %v with the API's message", path, err, want)
		}
	}
	err = c.Do(context.Background(), http.MethodGet, "/api/v1/text", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Message != "upstream down" {
		t.Errorf("text error: %v", err)
	}
	if err := c.Do(context.Background(), http.MethodGet, "no-slash", nil, nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("relative path: %v", err)
	}
}

func TestNoTokenSendsNoHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Errorf("Authorization sent without a token: %q", r.Header.Get("Authorization"))
		}
		w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	c, err := New(strings.TrimPrefix(srv.URL, "http://"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tokens(context.Background()); err != nil {
		t.Fatal(err)
	}
}
