package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// Bounds both APIs share. A client may ask for less, never for more: a
// larger limit or wait is refused (400) rather than silently cut, so a
// script learns the bound instead of missing items or waiting less than
// it thinks.
const (
	// DefaultLimit is a list page's size when the request names none.
	DefaultLimit = 100
	// MaxLimit is the largest page a client may ask for.
	MaxLimit = 10000
	// MaxWait bounds ?wait= and ?timeout= (the longest a request waits
	// for a task to end).
	MaxWait = 5 * time.Minute
)

// ParseLimit reads ?limit=: DefaultLimit when absent, else 1..MaxLimit.
func ParseLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Errorf("%w: limit must be 1..%d, got %q", ErrBadRequest, MaxLimit, s)
	}
	return n, nil
}

// Page is where a list request starts and how much it wants.
type Page struct {
	// Cursor is the X-Next-Cursor of the previous page; "" for the first.
	Cursor string
	Limit  int
}

// ParsePage reads ?cursor= and ?limit= (see ParseLimit).
func ParsePage(q url.Values) (Page, error) {
	limit, err := ParseLimit(q)
	if err != nil {
		return Page{}, err
	}
	return Page{Cursor: q.Get("cursor"), Limit: limit}, nil
}

// ParseWait reads ?wait=<duration> ("30s") or GenieACS's
// ?timeout=<milliseconds>; given reports whether either was present. A
// wait over MaxWait is refused.
func ParseWait(q url.Values) (d time.Duration, given bool, err error) {
	return parseWait(q, false)
}

// ParseWaitClamped is ParseWait for the GenieACS-compatible routes outside
// /api/v1: a wait over MaxWait is cut to MaxWait instead of refused, as
// scripts written for GenieACS send timeouts without knowing this bound.
func ParseWaitClamped(q url.Values) (d time.Duration, given bool, err error) {
	return parseWait(q, true)
}

func parseWait(q url.Values, clamp bool) (time.Duration, bool, error) {
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if clamp && err == nil && d > MaxWait {
			d = MaxWait
		}
		if err != nil || d < 0 || d > MaxWait {
			return 0, false, fmt.Errorf("%w: wait must be a duration such as 30s, up to %v; got %q", ErrBadRequest, MaxWait, s)
		}
		return d, true, nil
	}
	if s := q.Get("timeout"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		// Compare in milliseconds: converting first overflows a huge
		// value into a small or negative duration.
		if clamp && err == nil && ms > MaxWait.Milliseconds() {
			ms = MaxWait.Milliseconds()
		}
		if err != nil || ms < 0 || ms > MaxWait.Milliseconds() {
			return 0, false, fmt.Errorf("%w: timeout must be milliseconds, up to %d; got %q", ErrBadRequest, MaxWait.Milliseconds(), s)
		}
		return time.Duration(ms) * time.Millisecond, true, nil
	}
	return 0, false, nil
}

// ReadBody reads r's body, at most max bytes: more is an error that
// WriteError answers 413.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

// DecodeStrict decodes one JSON value from b into v, refusing unknown
// fields, duplicate keys (encoding/json would let the last one win) and
// trailing data, all as ErrBadRequest.
func DecodeStrict(b []byte, v any) error {
	if err := fleet.RejectDuplicateKeys(b); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: bad JSON: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON value", ErrBadRequest)
	}
	return nil
}

// CheckQuery refuses a query parameter not in known, naming it: a
// misspelt filter (?stauts=done) must not silently list everything.
func CheckQuery(q url.Values, known []string) error {
	var unknown []string
	for k := range q {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	accepted := "none"
	if len(known) > 0 {
		accepted = strings.Join(known, ", ")
	}
	return fmt.Errorf("%w: unknown query parameter %q (accepted here: %s)", ErrBadRequest, unknown[0], accepted)
}
