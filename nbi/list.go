package nbi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/edgeacs/edgeacs/fleet"
)

// ErrSecret means a device query reads a parameter whose value is a secret
// (fleet.IsSecretParameter): a match would reveal the value one guess at a
// time, so the API refuses it (400) rather than answering.
var ErrSecret = errors.New("query on a secret parameter")

// List is what a GET /<collection>/ of GenieACS's NBI asks for, parsed
// once for both APIs so they accept and refuse the same requests.
type List struct {
	Query      *Query
	Projection Projection
	// Skip and Limit select the window of the matches to return; Limit 0
	// means no limit, as in GenieACS (and MongoDB).
	Skip, Limit int
}

// ParseList reads the query=, projection=, skip= and limit= parameters of
// a collection query. With fields nil the query is a device query (and may
// not read a secret parameter: ErrSecret); otherwise it is a record query
// on those fields (ParseRecordQuery). sort= is ErrUnsupported: results
// come in _id order, and silently ignoring a sort would hand a script the
// wrong first page. Other parameters are ignored, as GenieACS ignores
// them. Errors wrap ErrInvalid, ErrUnsupported, ErrInvalidProjection or
// ErrSecret.
func ParseList(v url.Values, fields []string) (List, error) {
	var l List
	var err error
	raw := []byte(v.Get("query"))
	if fields == nil {
		l.Query, err = ParseQuery(raw)
	} else {
		l.Query, err = ParseRecordQuery(raw, fields...)
	}
	if err != nil {
		return l, err
	}
	if fields == nil {
		for _, p := range l.Query.ParamPaths() {
			if fleet.IsSecretParameter(p) {
				return l, fmt.Errorf("%w: %s (its value is never shown, so it cannot be matched either)", ErrSecret, p)
			}
		}
	}
	if l.Projection, err = ParseProjection(v.Get("projection")); err != nil {
		return l, err
	}
	if v.Has("sort") {
		return l, fmt.Errorf("%w: sort (results come in _id order)", ErrUnsupported)
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"skip", &l.Skip}, {"limit", &l.Limit}} {
		s := v.Get(f.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return l, invalid("%s must be a non-negative integer, got %q", f.name, s)
		}
		*f.dst = n
	}
	return l, nil
}

// Window returns the part [lo, hi) of n matches that Skip and Limit select.
func (l List) Window(n int) (lo, hi int) {
	lo = min(l.Skip, n)
	hi = n
	if l.Limit > 0 && l.Limit < hi-lo {
		hi = lo + l.Limit
	}
	return lo, hi
}
