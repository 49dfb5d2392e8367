package nbihttp

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func docs(items ...any) func(func(any, error) bool) {
	return func(yield func(any, error) bool) {
		for _, it := range items {
			err, _ := it.(error)
			if err != nil {
				it = nil
			}
			if !yield(it, err) {
				return
			}
		}
	}
}

func TestWriteList(t *testing.T) {
	fail := func(w http.ResponseWriter) func(error) {
		return func(err error) { Error(w, http.StatusInternalServerError, err.Error()) }
	}
	log := slog.New(slog.DiscardHandler)

	w := httptest.NewRecorder()
	WriteList(w, httptest.NewRequest("GET", "/devices/", nil), 5, docs(map[string]any{"_id": "a"}, map[string]any{"_id": "b"}), fail(w), log)
	var got []map[string]string
	if w.Code != 200 || w.Header().Get("total") != "5" || w.Header().Get("X-Total-Count") != "5" ||
		json.Unmarshal(w.Body.Bytes(), &got) != nil || len(got) != 2 || got[1]["_id"] != "b" {
		t.Errorf("list: %d %v %q", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	WriteList(w, httptest.NewRequest("GET", "/devices/", nil), 0, docs(), fail(w), log)
	if w.Body.String() != "[\n]\n" || w.Header().Get("total") != "0" {
		t.Errorf("empty list: %q %v", w.Body, w.Header())
	}
	w = httptest.NewRecorder()
	WriteList(w, httptest.NewRequest("HEAD", "/devices/", nil), 3, docs(map[string]any{"_id": "a"}), fail(w), log)
	if w.Code != 200 || w.Header().Get("total") != "3" || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d %v %q", w.Code, w.Header(), w.Body)
	}
	// An error before the first document is an error answer.
	w = httptest.NewRecorder()
	WriteList(w, httptest.NewRequest("GET", "/devices/", nil), 3, docs(errors.New("disk on fire")), fail(w), log)
	if w.Code != 500 || w.Header().Get("total") != "" {
		t.Errorf("early error: %d %v %q", w.Code, w.Header(), w.Body)
	}
	// After it, the response is aborted, not cut short quietly.
	w = httptest.NewRecorder()
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("late error: recovered %v, want http.ErrAbortHandler", r)
			}
		}()
		WriteList(w, httptest.NewRequest("GET", "/devices/", nil), 3, docs(map[string]any{"_id": "a"}, errors.New("disk on fire")), fail(w), log)
	}()
}

func TestTaskWriter(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		want int
	}{
		{200, `{"_id": "t1", "status": "done"}`, 200},
		{200, `{"_id": "t1", "status": "fault"}`, 202},
		{200, `{"_id": "t1", "status": "expired"}`, 202},
		{200, `{"_id": "t1", "status": "pending"}`, 202},
		{202, `{"_id": "t1", "status": "pending"}`, 202},
		{200, `{"status": "connection request sent"}`, 200},
		{404, `{"error": "no such device"}`, 404},
	} {
		rec := httptest.NewRecorder()
		tw := NewTaskWriter(rec)
		tw.WriteHeader(tc.code)
		_, _ = tw.Write([]byte(tc.body))
		tw.Finish()
		if rec.Code != tc.want || rec.Body.String() != tc.body {
			t.Errorf("%d %s: %d %q, want %d", tc.code, tc.body, rec.Code, rec.Body, tc.want)
		}
	}
}

func TestOK(t *testing.T) {
	rec := httptest.NewRecorder()
	OK(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })(rec, httptest.NewRequest("DELETE", "/tasks/x", nil))
	if rec.Code != 200 {
		t.Errorf("204 → %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	OK(func(w http.ResponseWriter, _ *http.Request) { Error(w, 404, "no") })(rec, httptest.NewRequest("DELETE", "/tasks/x", nil))
	if rec.Code != 404 {
		t.Errorf("404 → %d", rec.Code)
	}
}
