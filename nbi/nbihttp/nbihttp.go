// Package nbihttp holds the HTTP side of GenieACS's NBI that the edge's and
// the core's APIs share, so both answer a script alike: how a collection
// query is written (the total header, HEAD, a streamed JSON array), how a
// task's outcome maps to GenieACS's status codes, and the answers for what
// edgeacs does not implement. Package nbi keeps the semantics; each API
// keeps its own routing, storage and error mapping.
package nbihttp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/nbi"
)

// WriteList answers a collection query (GET or HEAD /<collection>/): the
// total header GenieACS sends, and X-Total-Count as edgeacs's /api/v1
// lists send it, both the match count; nothing more for HEAD; else the
// documents of docs as a JSON array laid out as GenieACS streams it, each
// written as docs yields it, so a long list costs one document of memory.
//
// An error from docs before the first document is handed to fail (which
// writes the error answer); one after it cannot change the status any
// more, so it is logged and the response aborted: the client sees a cut
// connection, never a short list that looks whole.
func WriteList(w http.ResponseWriter, r *http.Request, total int, docs iter.Seq2[any, error], fail func(error), log *slog.Logger) {
	h := w.Header()
	n := strconv.Itoa(total)
	if r.Method == http.MethodHead {
		h.Set("total", n)
		h.Set("X-Total-Count", n)
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return
	}
	started := false
	start := func() {
		if !started {
			started = true
			h.Set("total", n)
			h.Set("X-Total-Count", n)
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "[")
		}
	}
	sep := "\n"
	for doc, err := range docs {
		if err == nil {
			var b []byte
			if b, err = json.Marshal(doc); err == nil {
				start()
				_, _ = io.WriteString(w, sep)
				_, _ = w.Write(b)
				sep = ",\n"
				continue
			}
		}
		if !started {
			fail(err)
			return
		}
		log.Error("nbi: list cut short", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	start()
	_, _ = io.WriteString(w, "\n]\n")
}

// Docs loads the documents of ids one at a time, as WriteList writes
// them: an ID whose load fails with an error gone reports (deleted since it
// matched) is skipped, any other error ends the list.
func Docs(ids []string, load func(id string) (any, error), gone func(error) bool) iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		for _, id := range ids {
			doc, err := load(id)
			if err != nil && gone(err) {
				continue
			}
			if !yield(doc, err) || err != nil {
				return
			}
		}
	}
}

// FlatDoc renders a flat document (a task or a fault) under a projection
// (nbi.SelectFields).
func FlatDoc(v any, p nbi.Projection) (any, error) {
	if p.All() {
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("render %T: %w", v, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("render %T: %w", v, err)
	}
	return nbi.SelectFields(m, p), nil
}

// TaskWriter turns an API's 200 that carries a task which did not end
// done into GenieACS's 202: GenieACS answers 200 only for a task it saw
// executed, and 202 ("Task faulted", "Task queued but not processed")
// for one that faulted, expired or is still waiting. Any other answer,
// including a 200 without a task, passes through. Call Finish after the
// handler.
type TaskWriter struct {
	http.ResponseWriter
	code int
	held bytes.Buffer
}

// NewTaskWriter wraps w.
func NewTaskWriter(w http.ResponseWriter) *TaskWriter { return &TaskWriter{ResponseWriter: w} }

// WriteHeader holds a 200 back until Finish; other codes go out at once.
func (g *TaskWriter) WriteHeader(code int) {
	if g.code != 0 {
		return
	}
	g.code = code
	if code != http.StatusOK {
		g.ResponseWriter.WriteHeader(code)
	}
}

// Write holds the body of a 200.
func (g *TaskWriter) Write(b []byte) (int, error) {
	if g.code == 0 {
		g.WriteHeader(http.StatusOK)
	}
	if g.code == http.StatusOK {
		return g.held.Write(b)
	}
	return g.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (a handler
// that waits clears its read deadline).
func (g *TaskWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// Finish sends a held 200, as 202 when it carries a task that is not done.
func (g *TaskWriter) Finish() {
	if g.code != http.StatusOK {
		return
	}
	var t struct {
		ID     string           `json:"_id"`
		Status fleet.TaskStatus `json:"status"`
	}
	code := http.StatusOK
	if json.Unmarshal(g.held.Bytes(), &t) == nil && t.ID != "" && t.Status != fleet.StatusDone {
		code = http.StatusAccepted
	}
	g.ResponseWriter.WriteHeader(code)
	_, _ = g.ResponseWriter.Write(g.held.Bytes())
}

// OK answers 200 where h answers 204: GenieACS's deletes answer 200, and
// scripts test for exactly that.
func OK(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { h(okWriter{w}, r) }
}

type okWriter struct{ http.ResponseWriter }

func (o okWriter) WriteHeader(code int) {
	if code == http.StatusNoContent {
		code = http.StatusOK
	}
	o.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (o okWriter) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// Error writes {"error": msg} with code, as both APIs write errors.
func Error(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
