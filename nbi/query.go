package nbi

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds on what ParseQuery accepts. A query is evaluated against every
// candidate device, so its cost is bounded up front rather than by a
// timeout.
const (
	// MaxQueryBytes bounds the query's JSON text.
	MaxQueryBytes = 64 << 10
	// MaxDepth bounds JSON nesting (the top-level object is depth 1).
	MaxDepth = 16
	// MaxClauses bounds field conditions, operators, and string values
	// that GenieACS also reads as a pattern ("ZTE*", "/^ZTE/").
	MaxClauses = 256
	// MaxListLen bounds the values of one $in or $nin.
	MaxListLen = 1024
	// MaxRegexLen bounds a $regex pattern, and a "/pattern/" string.
	MaxRegexLen = 256
	// MaxPathLen bounds a field name.
	MaxPathLen = 1024
)

var (
	// ErrInvalid means a query or a projection is malformed or exceeds a
	// bound (the API answers 400).
	ErrInvalid = errors.New("invalid query")
	// ErrUnsupported means a well-formed query uses something this package
	// does not evaluate; the error names it (e.g. "$where").
	ErrUnsupported = errors.New("unsupported")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("query: %w "+format, append([]any{ErrUnsupported}, args...)...)
}

// Query is a parsed device query. It is immutable and safe for concurrent
// use.
type Query struct {
	root  *node
	ids   []string
	idsOK bool
	paths []string
}

// ParseQuery parses a GenieACS device query (MongoDB query syntax, as in
// GET /devices?query=...). Empty input (or only white space) matches every
// device, as GenieACS treats a missing query.
//
// Fields: _id, _tags (membership), _lastInform, _registered, _lastBoot,
// _lastBootstrap, _deviceId._Manufacturer/_OUI/_ProductClass/_SerialNumber,
// and any parameter path, with or without a "._value" suffix. Operators:
// $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $regex (with $options i, m, s),
// $exists, $not, and at the top $and, $or, $nor; keys of one object AND
// together. As in GenieACS, a plain string containing '*' also matches as a
// wildcard ("ZTE*") and a "/pattern/flags" string also as a regex.
//
// Errors wrap ErrInvalid (malformed, duplicate key, over a bound) or
// ErrUnsupported (naming the operator or field).
func ParseQuery(b []byte) (*Query, error) {
	if len(b) > MaxQueryBytes {
		return nil, invalid("query is %d bytes, more than %d", len(b), MaxQueryBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &Query{root: &node{op: opAnd}}, nil
	}
	v, err := decodeJSON(b, MaxDepth)
	if err != nil {
		return nil, err
	}
	if v.kind != jObject {
		return nil, invalid("query must be a JSON object")
	}
	c := compiler{paths: map[string]bool{}}
	root, err := c.object(v)
	if err != nil {
		return nil, err
	}
	q := &Query{root: root}
	q.ids, q.idsOK = root.idSet()
	for p := range c.paths {
		q.paths = append(q.paths, p)
	}
	slices.Sort(q.paths)
	return q, nil
}

// Match reports whether the device satisfies the query.
func (q *Query) Match(d Device) bool { return q.root.match(d) }

// IDs returns the device IDs outside which nothing can match, sorted, when
// the query pins _id (by equality or $in, possibly ANDed with other
// conditions or ORed with other pinned branches). Callers fetch those
// devices instead of scanning, and still call Match on each: for a query
// that is only _id equality or $in the set is exact, otherwise it is a
// superset. ok is false when the query does not pin _id.
func (q *Query) IDs() (ids []string, ok bool) {
	if !q.idsOK {
		return nil, false
	}
	return slices.Clone(q.ids), true
}

// ParamPaths returns the parameter paths the query reads (without
// "._value"), sorted. Callers refuse queries on secret parameters (a match
// would reveal the value one guess at a time), and skip loading parameters
// when there are none.
func (q *Query) ParamPaths() []string { return slices.Clone(q.paths) }

type nodeOp uint8

const (
	opAnd nodeOp = iota
	opOr
	opNor
	opField
)

// node is a logical operator over kids, or one condition on a field.
type node struct {
	op    nodeOp
	kids  []*node
	field field
	pred  *pred
}

type fieldKind uint8

const (
	fParam fieldKind = iota
	fID
	fTags
	fLastInform
	fRegistered
	fLastBoot
	fLastBootstrap
	fManufacturer
	fOUI
	fProductClass
	fSerialNumber
)

type field struct {
	kind fieldKind
	path string // fParam only
	name string // as written, for errors
}

func (f field) isTime() bool {
	switch f.kind {
	case fLastInform, fRegistered, fLastBoot, fLastBootstrap:
		return true
	}
	return false
}

var metaFields = map[string]fieldKind{
	"_id":                     fID,
	"_tags":                   fTags,
	"_lastInform":             fLastInform,
	"_registered":             fRegistered,
	"_lastBoot":               fLastBoot,
	"_lastBootstrap":          fLastBootstrap,
	"_deviceId._Manufacturer": fManufacturer,
	"_deviceId._OUI":          fOUI,
	"_deviceId._ProductClass": fProductClass,
	"_deviceId._SerialNumber": fSerialNumber,
}

type predOp uint8

const (
	pEq predOp = iota
	pNe
	pGt
	pGte
	pLt
	pLte
	pIn
	pNin
	pRegex
	pExists
	pNot
	pAll // every kid: several operators on one field
)

// pred is a condition on one field's values.
type pred struct {
	op   predOp
	lit  literal
	lits []literal
	re   *regexp.Regexp
	want bool // $exists
	kids []*pred
}

// literal is a query value, pre-parsed into every form it can compare in.
type literal struct {
	null   bool
	str    string
	num    number
	isNum  bool
	t      time.Time
	isDate bool
	b      bool
	isBool bool
	// pattern is the wildcard ("ZTE*") or "/re/" reading of a string,
	// which GenieACS tries besides the string itself.
	pattern *regexp.Regexp
}

type compiler struct {
	clauses int
	paths   map[string]bool
}

func (c *compiler) count() error {
	c.clauses++
	if c.clauses > MaxClauses {
		return invalid("more than %d clauses", MaxClauses)
	}
	return nil
}

// object compiles a query object: its keys AND together.
func (c *compiler) object(v *jvalue) (*node, error) {
	n := &node{op: opAnd}
	for i, k := range v.keys {
		kid, err := c.key(k, v.vals[i])
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, kid)
	}
	if len(n.kids) == 1 {
		return n.kids[0], nil
	}
	return n, nil
}

func (c *compiler) key(k string, v *jvalue) (*node, error) {
	if err := c.count(); err != nil {
		return nil, err
	}
	if strings.HasPrefix(k, "$") {
		var op nodeOp
		switch k {
		case "$and":
			op = opAnd
		case "$or":
			op = opOr
		case "$nor":
			op = opNor
		default:
			return nil, unsupported("operator %s", k)
		}
		if v.kind != jArray || len(v.vals) == 0 {
			return nil, invalid("%s needs a non-empty array of queries", k)
		}
		n := &node{op: op}
		for _, e := range v.vals {
			if e.kind != jObject {
				return nil, invalid("%s needs a non-empty array of queries", k)
			}
			kid, err := c.object(e)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, kid)
		}
		return n, nil
	}
	f, err := c.field(k)
	if err != nil {
		return nil, err
	}
	p, err := c.condition(f, v)
	if err != nil {
		return nil, err
	}
	return &node{op: opField, field: f, pred: p}, nil
}

// field classifies a key: a GenieACS meta field, or a parameter path.
func (c *compiler) field(k string) (field, error) {
	if len(k) > MaxPathLen {
		return field{}, invalid("field name longer than %d bytes", MaxPathLen)
	}
	if kind, ok := metaFields[k]; ok {
		return field{kind: kind, name: k}, nil
	}
	path := strings.TrimSuffix(k, "._value")
	if path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
		return field{}, invalid("bad field name %q", k)
	}
	last := path[strings.LastIndexByte(path, '.')+1:]
	switch {
	case path == "_deviceId":
		return field{}, unsupported("whole-object match on _deviceId (use _deviceId._OUI and the like)")
	case strings.HasPrefix(path, "_"):
		return field{}, unsupported("field %s", k)
	case strings.HasPrefix(last, "_"):
		// _timestamp, _writable, _type, ... of a parameter.
		return field{}, unsupported("attribute %s of %s", last, strings.TrimSuffix(path, "."+last))
	case strings.ContainsRune(path, '$'):
		return field{}, invalid("bad field name %q", k)
	}
	c.paths[path] = true
	return field{kind: fParam, path: path, name: k}, nil
}

// condition compiles the value of a field key: a literal (equality) or an
// operator object.
func (c *compiler) condition(f field, v *jvalue) (*pred, error) {
	if v.kind != jObject || isDateObject(v) {
		lit, err := c.literal(f, v, true)
		if err != nil {
			return nil, err
		}
		return &pred{op: pEq, lit: lit}, nil
	}
	if len(v.keys) == 0 || !strings.HasPrefix(v.keys[0], "$") {
		for _, k := range v.keys {
			if strings.HasPrefix(k, "$") {
				return nil, invalid("%s mixes operators and fields", f.name)
			}
		}
		return nil, unsupported("whole-object match on %s (use dotted paths)", f.name)
	}
	all := &pred{op: pAll}
	var regex, options *jvalue
	for i, k := range v.keys {
		e := v.vals[i]
		if !strings.HasPrefix(k, "$") {
			return nil, invalid("%s mixes operators and fields", f.name)
		}
		switch k {
		case "$regex":
			regex = e
			continue
		case "$options":
			options = e
			continue
		}
		if err := c.count(); err != nil {
			return nil, err
		}
		p, err := c.operator(f, k, e)
		if err != nil {
			return nil, err
		}
		all.kids = append(all.kids, p)
	}
	if options != nil && regex == nil {
		return nil, invalid("$options without $regex on %s", f.name)
	}
	if regex != nil {
		if err := c.count(); err != nil {
			return nil, err
		}
		p, err := regexPred(f, regex, options)
		if err != nil {
			return nil, err
		}
		all.kids = append(all.kids, p)
	}
	if len(all.kids) == 1 {
		return all.kids[0], nil
	}
	return all, nil
}

func (c *compiler) operator(f field, op string, v *jvalue) (*pred, error) {
	var po predOp
	switch op {
	case "$eq":
		po = pEq
	case "$ne":
		po = pNe
	case "$gt":
		po = pGt
	case "$gte":
		po = pGte
	case "$lt":
		po = pLt
	case "$lte":
		po = pLte
	case "$in", "$nin":
		if v.kind != jArray {
			return nil, invalid("%s on %s needs an array", op, f.name)
		}
		if len(v.vals) > MaxListLen {
			return nil, invalid("%s on %s has more than %d values", op, f.name, MaxListLen)
		}
		p := &pred{op: pIn}
		if op == "$nin" {
			p.op = pNin
		}
		for _, e := range v.vals {
			lit, err := c.literal(f, e, true)
			if err != nil {
				return nil, err
			}
			p.lits = append(p.lits, lit)
		}
		return p, nil
	case "$exists":
		switch {
		case v.kind == jBool:
			return &pred{op: pExists, want: v.b}, nil
		case v.kind == jNumber:
			n, ok := parseNumber(v.s)
			if ok {
				return &pred{op: pExists, want: n.f != 0}, nil
			}
		}
		return nil, invalid("$exists on %s needs true or false", f.name)
	case "$not":
		if v.kind != jObject || len(v.keys) == 0 || !strings.HasPrefix(v.keys[0], "$") || isDateObject(v) {
			return nil, invalid("$not on %s needs an operator object", f.name)
		}
		inner, err := c.condition(f, v)
		if err != nil {
			return nil, err
		}
		return &pred{op: pNot, kids: []*pred{inner}}, nil
	case "$and", "$or", "$nor":
		return nil, invalid("%s belongs at the top of a query, not inside the condition on %s", op, f.name)
	default:
		return nil, unsupported("operator %s", op)
	}
	// Only equality gets GenieACS's wildcard and /re/ readings of strings:
	// an ordering against a pattern means nothing.
	lit, err := c.literal(f, v, po == pEq || po == pNe)
	if err != nil {
		return nil, err
	}
	return &pred{op: po, lit: lit}, nil
}

func isDateObject(v *jvalue) bool {
	return v.kind == jObject && len(v.keys) == 1 && v.keys[0] == "$date"
}

// literal parses a query value for field f. patterns enables GenieACS's
// wildcard and "/re/" readings of a string.
func (c *compiler) literal(f field, v *jvalue, patterns bool) (literal, error) {
	var l literal
	switch v.kind {
	case jNull:
		l.null = true
		return l, nil
	case jBool:
		l.b, l.isBool = v.b, true
		l.str = strconv.FormatBool(v.b)
	case jNumber:
		l.str = v.s
		l.num, l.isNum = parseNumber(v.s)
		if !l.isNum {
			return l, invalid("number %s on %s is out of range", v.s, f.name)
		}
		if l.num.isInt && (l.num.i == 0 || l.num.i == 1) {
			l.b, l.isBool = l.num.i == 1, true
		}
	case jString:
		l.str = v.s
		l.num, l.isNum = parseNumber(v.s)
		l.t, l.isDate = parseDate(v.s)
		l.b, l.isBool = parseBool(v.s)
		if patterns && !f.isTime() {
			// A pattern costs a compiled regex: it counts as a clause,
			// or a $in of short wildcards could compile thousands.
			if l.pattern = stringPattern(v.s); l.pattern != nil {
				if err := c.count(); err != nil {
					return l, err
				}
			}
		}
	case jObject:
		if !isDateObject(v) {
			return l, unsupported("object value on %s (only {\"$date\": ...})", f.name)
		}
		t, err := dateObject(v)
		if err != nil {
			return l, fmt.Errorf("%s: %w", f.name, err)
		}
		l.t, l.isDate = t, true
		l.str = formatTime(t)
	default:
		return l, invalid("%s: arrays are only allowed in $in and $nin", f.name)
	}
	if f.isTime() && !l.isDate {
		return l, invalid("%s compares with dates: %q is not one (use ISO 8601 or {\"$date\": ...})", f.name, l.str)
	}
	return l, nil
}

// dateObject reads MongoDB extended JSON's {"$date": ...}: an ISO string,
// milliseconds since the epoch, or {"$numberLong": "<ms>"}.
func dateObject(v *jvalue) (time.Time, error) {
	d := v.vals[0]
	if d.kind == jObject && len(d.keys) == 1 && d.keys[0] == "$numberLong" && d.vals[0].kind == jString {
		d = &jvalue{kind: jNumber, s: d.vals[0].s}
	}
	switch d.kind {
	case jString:
		if t, ok := parseDate(d.s); ok {
			return t, nil
		}
	case jNumber:
		if ms, err := strconv.ParseInt(d.s, 10, 64); err == nil && ms > -1<<53 && ms < 1<<53 {
			return time.UnixMilli(ms).UTC(), nil
		}
	}
	return time.Time{}, invalid("$date needs an ISO 8601 string or milliseconds since 1970")
}

// stringPattern returns the extra regex GenieACS matches a plain string
// with: a wildcard when it contains '*' (anchored at each end without a
// '*'), or the pattern of a "/re/flags" string. A string longer than
// MaxRegexLen, or a "/re/" that does not compile, is only a string.
func stringPattern(s string) *regexp.Regexp {
	if len(s) > MaxRegexLen {
		return nil
	}
	if m := slashRegex.FindStringSubmatch(s); m != nil {
		flags := ""
		if strings.Contains(m[2], "i") {
			flags += "i"
		}
		if strings.Contains(m[2], "m") {
			flags += "m"
		}
		expr := m[1]
		if flags != "" {
			expr = "(?" + flags + ")" + expr
		}
		if re, err := regexp.Compile(expr); err == nil {
			return re
		}
	}
	if !strings.Contains(s, "*") {
		return nil
	}
	parts := strings.Split(s, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	expr := strings.Join(parts, ".*")
	if !strings.HasPrefix(s, "*") {
		expr = "^" + expr
	}
	if !strings.HasSuffix(s, "*") {
		expr += "$"
	}
	re, err := regexp.Compile("(?s)" + expr)
	if err != nil {
		return nil
	}
	return re
}

// slashRegex is GenieACS's test for a "/pattern/flags" query string.
var slashRegex = regexp.MustCompile(`^/(.*?)/(g?i?m?y?)$`)

func regexPred(f field, pattern, options *jvalue) (*pred, error) {
	if f.isTime() {
		return nil, invalid("$regex on %s: it holds dates, not strings", f.name)
	}
	if pattern.kind != jString {
		return nil, invalid("$regex on %s needs a string", f.name)
	}
	if len(pattern.s) > MaxRegexLen {
		return nil, invalid("$regex on %s is longer than %d bytes", f.name, MaxRegexLen)
	}
	expr := pattern.s
	if options != nil {
		if options.kind != jString {
			return nil, invalid("$options on %s needs a string", f.name)
		}
		for _, r := range options.s {
			if r != 'i' && r != 'm' && r != 's' {
				return nil, unsupported("$regex option %q on %s (only i, m, s)", r, f.name)
			}
		}
		if options.s != "" {
			expr = "(?" + options.s + ")" + expr
		}
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, invalid("$regex on %s: %v", f.name, err)
	}
	return &pred{op: pRegex, re: re}, nil
}
