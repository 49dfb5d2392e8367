package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Limits on a declared path. Paths come from presets, tasks and scripts
// that operators write; the bounds keep one declaration's planning cost
// (segments walked, alias keys compared) small whatever it says.
const (
	// MaxPathLen bounds a path's length in bytes.
	MaxPathLen = 1024
	// MaxSegments bounds the number of dotted segments (TR-181 paths are
	// rarely deeper than 10).
	MaxSegments = 32
	// MaxAliasTerms bounds the Key:Value terms of one alias segment.
	MaxAliasTerms = 8
)

// ErrBadPath means a declared path does not parse. Callers answer the
// preset, task or script that sent it with the wrapped message.
var ErrBadPath = errors.New("provision: bad path")

// SegmentKind says how a path segment selects the children of an object.
type SegmentKind uint8

// Segment kinds.
const (
	// Literal selects the child with exactly that name.
	Literal SegmentKind = iota
	// Wildcard ("*") selects every child.
	Wildcard
	// Alias ("[Key:Value,...]") selects the instances whose parameters
	// named by the keys hold the given values.
	Alias
)

// AliasTerm is one Key:Value condition of an alias segment. Key is a
// dotted path relative to the instance ("Enable", "Stats.Name").
type AliasTerm struct {
	Key   string
	Value string
}

// Segment is one dotted component of a Path.
type Segment struct {
	Kind SegmentKind
	// Name is the child's name for a Literal segment.
	Name string
	// Terms are an Alias segment's conditions, sorted by key, so equal
	// aliases have equal strings. An empty alias ("[]") selects every
	// instance.
	Terms []AliasTerm
}

// Path is a parsed GenieACS declare path: dotted segments, each a name, a
// "*" wildcard or an "[Key:Value,...]" alias. The empty path is the root.
type Path struct {
	Segments []Segment
	// Object records a trailing dot: the path names objects only.
	Object bool
}

// ParsePath parses a declare path such as
// "InternetGatewayDevice.LANDevice.*.WLANConfiguration.[SSID:guest].Enable"
// or "Device.IP.Interface.1." (trailing dot: an object). Alias values may
// be bare ("[Enable:true]") or JSON strings ("[Name:\"a,b\"]"); spaces
// around names, keys and bare values are ignored, as GenieACS ignores them.
// Errors wrap ErrBadPath.
func ParsePath(s string) (Path, error) {
	p, _, err := parsePath(s)
	return p, err
}

// parsed is a cached parse: a Path is never written to once parsed, so
// callers may share one.
type parsed struct {
	p     Path
	canon string
}

// pathCache remembers the paths parsed, by source: presets and scripts
// declare the same few paths in every session of every device, and a
// parse allocates. Bounded (pathCacheMax entries, then no more are added)
// since a script may build paths from device values.
var pathCache struct {
	m sync.Map // string → *parsed
	n atomic.Int64
}

const pathCacheMax = 1 << 14

// parsePath is ParsePath that also returns the canonical string, which
// it computes anyway to check its length.
func parsePath(s string) (Path, string, error) {
	if v, ok := pathCache.m.Load(s); ok {
		pc := v.(*parsed)
		return pc.p, pc.canon, nil
	}
	p, err := parseSegments(s)
	if err != nil {
		return Path{}, "", err
	}
	canon := p.String()
	if len(canon) > MaxPathLen {
		return Path{}, "", fmt.Errorf("%w: %q is %d bytes written out, longer than %d", ErrBadPath, clip(s), len(canon), MaxPathLen)
	}
	if pathCache.n.Load() < pathCacheMax {
		if _, loaded := pathCache.m.LoadOrStore(s, &parsed{p: p, canon: canon}); !loaded {
			pathCache.n.Add(1)
		}
	}
	return p, canon, nil
}

func parseSegments(s string) (Path, error) {
	if len(s) > MaxPathLen {
		return Path{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrBadPath, len(s), MaxPathLen)
	}
	if !utf8.ValidString(s) {
		return Path{}, fmt.Errorf("%w: not UTF-8", ErrBadPath)
	}
	var p Path
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	p.Segments = make([]Segment, 0, min(strings.Count(s, ".")+1, MaxSegments))
	i := 0
	for {
		if len(p.Segments) == MaxSegments {
			return Path{}, fmt.Errorf("%w: more than %d segments in %q", ErrBadPath, MaxSegments, clip(s))
		}
		i = skipSpace(s, i)
		var seg Segment
		if i < len(s) && s[i] == '[' {
			var err error
			seg, i, err = parseAlias(s, i+1)
			if err != nil {
				return Path{}, fmt.Errorf("%w: %s in %q", ErrBadPath, err, clip(s))
			}
			i = skipSpace(s, i)
		} else {
			j := i
			for j < len(s) && s[j] != '.' {
				j++
			}
			name := strings.TrimSpace(s[i:j])
			switch {
			case name == "*":
				seg.Kind = Wildcard
			case validName(name):
				seg.Name = name
			case name == "":
				return Path{}, fmt.Errorf("%w: empty segment in %q", ErrBadPath, clip(s))
			default:
				return Path{}, fmt.Errorf("%w: bad segment %q", ErrBadPath, clip(name))
			}
			i = j
		}
		p.Segments = append(p.Segments, seg)
		if i == len(s) {
			return p, nil
		}
		if s[i] != '.' {
			return Path{}, fmt.Errorf("%w: unexpected %q after segment %d of %q", ErrBadPath, s[i], len(p.Segments), clip(s))
		}
		i++
		if strings.TrimSpace(s[i:]) == "" {
			p.Object = true
			return p, nil
		}
	}
}

// parseAlias reads the terms of an alias segment from s[i:], just after
// its "[", and returns the index just after its "]".
func parseAlias(s string, i int) (Segment, int, error) {
	seg := Segment{Kind: Alias, Terms: []AliasTerm{}}
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			return seg, i, errors.New("unterminated alias")
		}
		if s[i] == ']' && len(seg.Terms) == 0 {
			return seg, i + 1, nil
		}
		if len(seg.Terms) == MaxAliasTerms {
			return seg, i, fmt.Errorf("more than %d alias terms", MaxAliasTerms)
		}
		j := strings.IndexByte(s[i:], ':')
		if j < 0 {
			return seg, i, errors.New("alias term without ':'")
		}
		key := strings.TrimSpace(s[i : i+j])
		if !validKey(key) {
			return seg, i, fmt.Errorf("bad alias key %q", clip(key))
		}
		i = skipSpace(s, i+j+1)
		var val string
		if i < len(s) && s[i] == '"' {
			end := i + 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return seg, i, errors.New("unterminated alias value")
			}
			if err := json.Unmarshal([]byte(s[i:end+1]), &val); err != nil {
				return seg, i, fmt.Errorf("bad alias value %s", clip(s[i:end+1]))
			}
			i = skipSpace(s, end+1)
		} else {
			end := i
			for end < len(s) && s[end] != ',' && s[end] != ']' {
				end++
			}
			val = strings.TrimSpace(s[i:end])
			if strings.ContainsAny(val, "\"[") {
				return seg, i, fmt.Errorf("bare alias value %q must be quoted", clip(val))
			}
			i = end
		}
		for _, t := range seg.Terms {
			if t.Key == key {
				return seg, i, fmt.Errorf("alias key %q twice", key)
			}
		}
		seg.Terms = append(seg.Terms, AliasTerm{Key: key, Value: val})
		if i >= len(s) {
			return seg, i, errors.New("unterminated alias")
		}
		switch s[i] {
		case ',':
			i++
		case ']':
			slices.SortFunc(seg.Terms, func(a, b AliasTerm) int { return strings.Compare(a.Key, b.Key) })
			return seg, i + 1, nil
		default:
			return seg, i, fmt.Errorf("unexpected %q in alias", s[i])
		}
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// validName reports whether s can be a literal segment: TR-069 names are
// letters, digits, '_' and '-'; anything printable but the path syntax's
// own characters is accepted, for vendor names that stretch the rules.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".[]*:,\"\\", r) {
			return false
		}
	}
	return true
}

// validKey reports whether s is a dotted relative path of names.
func validKey(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if !validName(part) {
			return false
		}
	}
	return true
}

// String is the canonical form of p: alias terms sorted, alias values as
// JSON strings, a trailing dot for an object path. ParsePath(p.String())
// gives p back.
func (p Path) String() string {
	var b strings.Builder
	b.Grow(32 * len(p.Segments))
	for i, seg := range p.Segments {
		if i > 0 {
			b.WriteByte('.')
		}
		switch seg.Kind {
		case Wildcard:
			b.WriteByte('*')
		case Alias:
			b.WriteByte('[')
			for k, t := range seg.Terms {
				if k > 0 {
					b.WriteByte(',')
				}
				b.WriteString(t.Key)
				b.WriteByte(':')
				b.WriteString(quote(t.Value))
			}
			b.WriteByte(']')
		default:
			b.WriteString(seg.Name)
		}
	}
	if p.Object && len(p.Segments) > 0 {
		b.WriteByte('.')
	}
	return b.String()
}

// quote writes v as a JSON string that json.Unmarshal reads back as v.
func quote(v string) string {
	b := make([]byte, 0, len(v)+2)
	b = append(b, '"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == 0x7f:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return string(append(b, '"'))
}

// Pattern reports whether p has a wildcard or alias segment, that is
// whether it may match more than one node.
func (p Path) Pattern() bool {
	for _, s := range p.Segments {
		if s.Kind != Literal {
			return true
		}
	}
	return false
}

// Root returns the first segment's name ("" for a root or pattern start).
func (p Path) Root() string {
	if len(p.Segments) == 0 || p.Segments[0].Kind != Literal {
		return ""
	}
	return p.Segments[0].Name
}

// literal returns the CWMP name of a path without patterns ("A.B.C" or,
// for an object, "A.B.C.").
func (p Path) literal() string {
	s := p.literalN(len(p.Segments))
	if !p.Object && s != "" {
		s = s[:len(s)-1]
	}
	return s
}

// literalN returns the first n segments' names as an object path "A.B.".
func (p Path) literalN(n int) string {
	size := 0
	for _, s := range p.Segments[:n] {
		size += len(s.Name) + 1
	}
	b := make([]byte, 0, size)
	for _, s := range p.Segments[:n] {
		b = append(b, s.Name...)
		b = append(b, '.')
	}
	return string(b)
}

// instanceNumber returns the numeric value of an instance path's last
// segment ("X.Host.12." → 12), or -1.
func instanceNumber(path string) int {
	seg := lastSegment(path)
	n, err := strconv.Atoi(seg)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// lastSegment returns the last name of a CWMP path ("A.B." → "B", "A.B" → "B").
func lastSegment(path string) string {
	path = strings.TrimSuffix(path, ".")
	return path[strings.LastIndexByte(path, '.')+1:]
}

// parentPath returns the object that holds path: "A.B.C" → "A.B.",
// "A.B." → "A.", "A." → "".
func parentPath(path string) string {
	path = strings.TrimSuffix(path, ".")
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return ""
	}
	return path[:i+1]
}

// depth counts the segments of a CWMP path ("" → 0, "A." → 1, "A.B" → 2).
func depth(path string) int {
	path = strings.TrimSuffix(path, ".")
	if path == "" {
		return 0
	}
	return strings.Count(path, ".") + 1
}

// clip shortens s for error messages so a hostile path cannot blow up a
// fault record or a log line.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
