package httpapi

import (
	"fmt"
	"net/http"
	"strings"
)

// Router is what Fallback needs of a mux: which pattern would serve a
// request (http.ServeMux and apiauth.Mux have it).
type Router interface {
	Handler(r *http.Request) (h http.Handler, pattern string)
}

// probeMethods are the methods Fallback tries on a path to fill Allow.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// Fallback is the handler of an API's catch-all pattern "/": a path that
// some route serves with other methods is 405 with Allow listing them, any
// other is 404, both as JSON errors. (The catch-all matches every method,
// so net/http's own text 405 never fires: it has to be answered here.)
func Fallback(mux Router) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allow := AllowedMethods(mux, r); len(allow) > 0 {
			list := strings.Join(allow, ", ")
			w.Header().Set("Allow", list)
			WriteError(w, fmt.Errorf("%s %s: %w (allowed: %s)", r.Method, r.URL.Path, ErrMethodNotAllowed, list))
			return
		}
		WriteError(w, fmt.Errorf("%s %s: %w: no such route", r.Method, r.URL.Path, ErrNotFound))
	}
}

// AllowedMethods lists the methods mux serves r's path with, by asking it
// for each method in turn; the catch-all "/" does not count.
func AllowedMethods(mux Router, r *http.Request) []string {
	var allow []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}
