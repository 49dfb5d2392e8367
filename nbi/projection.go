package nbi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Bounds on what ParseProjection accepts.
const (
	// MaxProjectionBytes bounds the projection parameter.
	MaxProjectionBytes = 64 << 10
	// MaxProjectionPaths bounds the number of paths in it.
	MaxProjectionPaths = 256
)

// ErrInvalidProjection means a projection= parameter is malformed or
// exceeds a bound (the API answers 400).
var ErrInvalidProjection = errors.New("invalid projection")

// Projection selects the parts of a device document to return, as
// GenieACS's projection= parameter does (a MongoDB inclusion projection).
// The zero Projection selects everything.
type Projection struct {
	// paths are sorted, and none is a dotted prefix of another (the
	// longer one would add nothing). nil selects everything.
	paths []string
}

// ParseProjection parses a comma-separated list of paths:
// "_id,_lastInform,InternetGatewayDevice.DeviceInfo". A path selects that
// node and everything under it; "<path>._value" selects one attribute;
// "_deviceId._OUI" one identity field. _id is always included, as in
// MongoDB. Spaces around each path are ignored; an empty string selects
// everything. Errors wrap ErrInvalidProjection.
func ParseProjection(s string) (Projection, error) {
	if len(s) > MaxProjectionBytes {
		return Projection{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidProjection, len(s), MaxProjectionBytes)
	}
	if strings.TrimSpace(s) == "" {
		return Projection{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxProjectionPaths {
		return Projection{}, fmt.Errorf("%w: more than %d paths", ErrInvalidProjection, MaxProjectionPaths)
	}
	paths := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			return Projection{}, fmt.Errorf("%w: path %d is empty", ErrInvalidProjection, i+1)
		case len(p) > MaxPathLen:
			return Projection{}, fmt.Errorf("%w: path %d is longer than %d bytes", ErrInvalidProjection, i+1, MaxPathLen)
		case strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, ".."):
			return Projection{}, fmt.Errorf("%w: bad path %q", ErrInvalidProjection, p)
		case strings.ContainsRune(p, '$'):
			return Projection{}, fmt.Errorf("%w: operators are not allowed (%q)", ErrInvalidProjection, p)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	// Drop paths below another: they would add nothing.
	all := Projection{paths: paths}
	out := paths[:0:0]
	for _, p := range paths {
		if i := strings.LastIndexByte(p, '.'); i < 0 || !all.covers(p[:i]) {
			out = append(out, p)
		}
	}
	return Projection{paths: out}, nil
}

// All reports whether the projection selects everything.
func (p Projection) All() bool { return p.paths == nil }

// Paths returns the selected paths, sorted; nil when All. Callers may use
// it to load only the parameters under them.
func (p Projection) Paths() []string { return slices.Clone(p.paths) }

// covers reports whether path and everything under it is selected: path
// or one of its ancestors is in the list.
func (p Projection) covers(path string) bool {
	if p.paths == nil {
		return true
	}
	for {
		if _, found := slices.BinarySearch(p.paths, path); found {
			return true
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return false
		}
		path = path[:i]
	}
}

// reaches reports whether something strictly below path is selected.
func (p Projection) reaches(path string) bool {
	if p.paths == nil {
		return true
	}
	prefix := path + "."
	i, _ := slices.BinarySearch(p.paths, prefix)
	return i < len(p.paths) && strings.HasPrefix(p.paths[i], prefix)
}
