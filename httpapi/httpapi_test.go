package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/blob"
	"github.com/edgeacs/edgeacs/fleet"
)

func TestStatus(t *testing.T) {
	errConflictOwn := Mark(errors.New("edge: task is running"), ErrConflict)
	errUnavailOwn := Mark(errors.New("not the raft leader"), ErrUnavailable)
	errUnknownOwn := Mark(errors.New("outcome unknown"), ErrGatewayTimeout)
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 200},
		{"bad request", fmt.Errorf("x: %w", ErrBadRequest), 400},
		{"bad task", fmt.Errorf("x: %w", fleet.ErrBadTask), 400},
		{"bad token", fleet.ErrBadToken, 400},
		{"duplicate key", fmt.Errorf("%w: %w", fleet.ErrBadTask, fleet.ErrDuplicateKey), 400},
		{"bad device id", fleet.ErrBadDeviceID, 400},
		{"bad sum", blob.ErrBadSum, 400},
		{"forbidden", ErrForbidden, 403},
		{"not found", fmt.Errorf("device d: %w", ErrNotFound), 404},
		{"blob not found", blob.ErrNotFound, 404},
		{"method", ErrMethodNotAllowed, 405},
		{"body timeout", ErrRequestTimeout, 408},
		{"read deadline", fmt.Errorf("read body: %w", os.ErrDeadlineExceeded), 408},
		{"conflict", ErrConflict, 409},
		{"marked conflict", fmt.Errorf("task t: %w", errConflictOwn), 409},
		{"too large", ErrTooLarge, 413},
		{"blob too large", blob.ErrTooLarge, 413},
		{"max bytes", fmt.Errorf("read body: %w", &http.MaxBytesError{Limit: 1}), 413},
		{"too many", ErrTooManyRequests, 429},
		{"unavailable", errUnavailOwn, 503},
		{"gateway timeout", ErrGatewayTimeout, 504},
		{"context deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), 504},
		// Both: the outcome is unknown, so not a blind-retry 503.
		{"unknown beats unavailable", fmt.Errorf("%w: %w", errUnknownOwn, errUnavailOwn), 504},
		{"too large beats bad request", fmt.Errorf("%w: %w", ErrBadRequest, ErrTooLarge), 413},
		{"unknown error", errors.New("disk on fire"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Status(tt.err); got != tt.want {
				t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestMark(t *testing.T) {
	inner := errors.New("edge: task is running")
	e := Mark(inner, ErrConflict)
	wrapped := fmt.Errorf("task t1: %w", e)
	if !errors.Is(wrapped, e) || !errors.Is(wrapped, inner) || !errors.Is(wrapped, ErrConflict) || errors.Is(wrapped, ErrNotFound) {
		t.Fatal("a marked error matches itself, its error and its kind, nothing else")
	}
	if wrapped.Error() != "task t1: edge: task is running" {
		t.Fatalf("message %q: the kind must not show", wrapped.Error())
	}
	if other := Mark(errors.New("edge: task is running"), ErrConflict); errors.Is(other, e) {
		t.Fatal("two marked errors with one message are still two sentinels")
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err        error
		code       int
		retryAfter string
	}{
		{fmt.Errorf("device x: %w", ErrNotFound), 404, ""},
		{Mark(errors.New("no raft leader"), ErrUnavailable), 503, RetryAfter},
		{errors.New("boom"), 500, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteError(rec, tt.err)
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%v: body %q: %v", tt.err, rec.Body, err)
		}
		var raw map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &raw)
		if rec.Code != tt.code || p.Error != tt.err.Error() || len(raw) != 1 ||
			rec.Header().Get("Retry-After") != tt.retryAfter || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %v %s", tt.err, rec.Code, rec.Header(), rec.Body)
		}
	}
}

func TestWriteList(t *testing.T) {
	tests := []struct {
		items       any
		next        string
		total       int
		body        string
		hNext, hTot string
	}{
		{[]int{}, "", -1, "[]\n", "", ""},
		{[]int{1, 2}, "b", 7, "[1,2]\n", "b", "7"},
		{[]string{"a"}, "", 0, "[\"a\"]\n", "", "0"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteList(rec, tt.items, tt.next, tt.total)
		h := rec.Header()
		if rec.Code != 200 || rec.Body.String() != tt.body || h.Get("X-Next-Cursor") != tt.hNext || h.Get("X-Total-Count") != tt.hTot {
			t.Errorf("%v: %d %q %v", tt.items, rec.Code, rec.Body, h)
		}
	}
}

func TestParsePage(t *testing.T) {
	tests := []struct {
		query string
		want  Page
		bad   bool
	}{
		{"", Page{Limit: DefaultLimit}, false},
		{"limit=1&cursor=dev9", Page{Cursor: "dev9", Limit: 1}, false},
		{fmt.Sprintf("limit=%d", MaxLimit), Page{Limit: MaxLimit}, false},
		{fmt.Sprintf("limit=%d", MaxLimit+1), Page{}, true},
		{"limit=0", Page{}, true},
		{"limit=-3", Page{}, true},
		{"limit=ten", Page{}, true},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := ParsePage(q)
		if (err != nil) != tt.bad || got != tt.want || (err != nil && (!errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "limit"))) {
			t.Errorf("%q: %+v %v", tt.query, got, err)
		}
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		query string
		want  time.Duration
		given bool
		bad   bool
	}{
		{"", 0, false, false},
		{"wait=30s", 30 * time.Second, true, false},
		{"wait=0s", 0, true, false},
		{"wait=" + MaxWait.String(), MaxWait, true, false},
		{"wait=" + (MaxWait + time.Second).String(), 0, false, true},
		{"wait=soon", 0, false, true},
		{"wait=-1s", 0, false, true},
		{"timeout=1500", 1500 * time.Millisecond, true, false},
		{fmt.Sprintf("timeout=%d", MaxWait.Milliseconds()+1), 0, false, true},
		{"timeout=9223372036854775807", 0, false, true}, // would overflow as a Duration
		{"timeout=-5", 0, false, true},
		{"wait=2s&timeout=9000", 2 * time.Second, true, false}, // wait wins
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, given, err := ParseWait(q)
		if (err != nil) != tt.bad || got != tt.want || given != tt.given || (err != nil && !errors.Is(err, ErrBadRequest)) {
			t.Errorf("%q: %v %v %v", tt.query, got, given, err)
		}
	}
}

func TestParseWaitClamped(t *testing.T) {
	tests := []struct {
		query string
		want  time.Duration
		bad   bool
	}{
		{"wait=30s", 30 * time.Second, false},
		{"wait=1h", MaxWait, false},
		{"timeout=9223372036854775807", MaxWait, false},
		{"timeout=1500", 1500 * time.Millisecond, false},
		{"timeout=-5", 0, true},
		{"wait=soon", 0, true},
		{"wait=-1s", 0, true},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, given, err := ParseWaitClamped(q)
		if (err != nil) != tt.bad || got != tt.want || given == tt.bad {
			t.Errorf("%q: %v %v %v", tt.query, got, given, err)
		}
	}
}

func TestReadBody(t *testing.T) {
	tests := []struct {
		body string
		max  int64
		code int
	}{
		{"hello", 5, 200},
		{"hello!", 5, 413},
		{"", 5, 200},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/x", strings.NewReader(tt.body))
		b, err := ReadBody(rec, r, tt.max)
		if Status(err) != tt.code || (err == nil && string(b) != tt.body) {
			t.Errorf("%q max %d: %q %v", tt.body, tt.max, b, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	type req struct {
		ID string `json:"id"`
	}
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"id": "a"}`, true},
		{`{"id": "a", "id": "b"}`, false},
		{`{"id": "a", "colour": 1}`, false},
		{`{"id": "a"} {}`, false},
		{`{"id": `, false},
		{`{"id": 5}`, false},
	}
	for _, tt := range tests {
		var v req
		err := DecodeStrict([]byte(tt.body), &v)
		if (err == nil) != tt.ok || (err != nil && Status(err) != 400) {
			t.Errorf("%s: %v", tt.body, err)
		}
	}
}

func TestCheckQuery(t *testing.T) {
	tests := []struct {
		query   string
		known   []string
		unknown string
	}{
		{"", nil, ""},
		{"limit=1&cursor=a", []string{"limit", "cursor"}, ""},
		{"limit=1&stauts=done", []string{"limit", "status"}, "stauts"},
		{"a=1&b=2", nil, "a"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		err := CheckQuery(q, tt.known)
		if tt.unknown == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.query, err)
			}
			continue
		}
		if Status(err) != 400 || !strings.Contains(fmt.Sprint(err), `"`+tt.unknown+`"`) {
			t.Errorf("%q: %v, want a 400 naming %q", tt.query, err, tt.unknown)
		}
	}
}

func TestFallback(t *testing.T) {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }
	mux.HandleFunc("GET /things/{id}", ok)
	mux.HandleFunc("DELETE /things/{id}", ok)
	mux.HandleFunc("POST /things", ok)
	mux.HandleFunc("/", Fallback(mux))
	tests := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/things/a", 204, ""},
		{"PATCH", "/things/a", 405, "GET, HEAD, DELETE"},
		{"GET", "/things", 405, "POST"},
		{"GET", "/nothing", 404, ""},
		{"DELETE", "/", 404, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		var p Problem
		if rec.Code != tt.code || rec.Header().Get("Allow") != tt.allow ||
			(tt.code >= 400 && (json.Unmarshal(rec.Body.Bytes(), &p) != nil || !strings.Contains(p.Error, tt.path))) {
			t.Errorf("%s %s: %d Allow %q %s", tt.method, tt.path, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
}

const testSpec = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/api/v1/things": {
      "get": {"parameters": [{"$ref": "#/components/parameters/limit"}, {"name": "colour", "in": "query"}], "responses": {"200": {"description": "ok"}}}
    },
    "/api/v1/things/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true}],
      "get": {"responses": {"200": {"description": "ok"}}},
      "delete": {"responses": {"204": {"description": "gone"}}}
    }
  },
  "components": {"parameters": {"limit": {"name": "limit", "in": "query"}}}
}`

func TestSpec(t *testing.T) {
	s, err := LoadSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	if ops := s.Operations(); !slices.Equal(ops, []string{"DELETE /api/v1/things/{id}", "GET /api/v1/things", "GET /api/v1/things/{id}"}) {
		t.Fatalf("operations %v", ops)
	}
	if q, ok := s.Query("GET /api/v1/things"); !ok || !slices.Equal(q, []string{"limit", "colour"}) {
		t.Fatalf("query %v %v", q, ok)
	}
	missing, extra := s.Compare([]string{"GET /api/v1/things", "GET /api/v1/things/{id}", "POST /api/v1/things", "/api/v1/any", "GET /healthz"}, "/api/v1/")
	if !slices.Equal(missing, []string{"/api/v1/any", "POST /api/v1/things"}) || !slices.Equal(extra, []string{"DELETE /api/v1/things/{id}"}) {
		t.Fatalf("compare: missing %v extra %v", missing, extra)
	}

	h := s.Strict("GET /api/v1/things", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	for _, tt := range []struct {
		query string
		code  int
	}{{"", 200}, {"limit=5&colour=red", 200}, {"color=red", 400}} {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/api/v1/things?"+tt.query, nil))
		if rec.Code != tt.code {
			t.Errorf("?%s: %d %s", tt.query, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	s.Strict("GET /undocumented", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })(rec, httptest.NewRequest("GET", "/undocumented?x=1", nil))
	if rec.Code != 200 {
		t.Errorf("an undocumented route is not held to the document: %d", rec.Code)
	}

	for name, doc := range map[string]string{
		"not json":         `{`,
		"swagger 2":        `{"swagger": "2.0", "paths": {}}`,
		"undeclared param": `{"openapi": "3.0.3", "paths": {"/x/{id}": {"get": {}}}}`,
		"dangling ref":     `{"openapi": "3.0.3", "paths": {"/x": {"get": {"parameters": [{"$ref": "#/components/parameters/nope"}]}}}}`,
	} {
		if _, err := LoadSpec([]byte(doc)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
