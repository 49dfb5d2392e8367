package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem is the body of every error answer: {"error": "..."}. Scripts
// read it, so the shape is kept as it is.
type Problem struct {
	Error string `json:"error"`
}

// WriteJSON answers code with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // an error means the client went away
}

// WriteError answers err with its status (Status) and a Problem naming it.
// A 503 carries Retry-After; a 405 should carry Allow, which only the
// caller knows (MethodNotAllowed sets it).
func WriteError(w http.ResponseWriter, err error) {
	code := Status(err)
	if code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", RetryAfter)
	}
	WriteJSON(w, code, Problem{Error: err.Error()})
}

// WriteList answers a page of a list: the items as a bare JSON array (as
// GenieACS's NBI answers), the next page's cursor in X-Next-Cursor (absent
// on the last page) and, when total is not negative, the size of the
// whole list in X-Total-Count. items must not be a nil slice: an empty
// list is [], not null.
func WriteList(w http.ResponseWriter, items any, next string, total int) {
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	if total >= 0 {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	WriteJSON(w, http.StatusOK, items)
}
