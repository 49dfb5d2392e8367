package expr

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds a Value can take. NULL is the zero Value: what a parameter the
// device does not have evaluates to.
const (
	KindNull Kind = iota
	KindBool
	KindNumber
	KindString
	KindTime
)

// String names the kind: "null", "bool", "number", "string", "time".
func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindBool:
		return "bool"
	case KindNumber:
		return "number"
	case KindString:
		return "string"
	case KindTime:
		return "time"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is the result of evaluating an expression, or a parameter's value
// handed to one. Numbers are float64, as in the JavaScript GenieACS
// evaluates with; times keep their own kind so that a dateTime parameter
// compares with a date string, and count as milliseconds since the epoch
// in arithmetic and against numbers, which is how GenieACS stores them.
// The zero Value is NULL.
type Value struct {
	kind Kind
	b    bool
	n    float64
	s    string
	t    time.Time
}

// NullValue returns NULL.
func NullValue() Value { return Value{} }

// BoolValue returns a boolean.
func BoolValue(b bool) Value { return Value{kind: KindBool, b: b} }

// NumberValue returns a number, or NULL for NaN and infinities, which the
// language has no way to write and no operator may produce.
func NumberValue(f float64) Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Value{}
	}
	if f == 0 {
		f = 0 // no negative zero: it would print as "-0"
	}
	return Value{kind: KindNumber, n: f}
}

// StringValue returns a string.
func StringValue(s string) Value { return Value{kind: KindString, s: s} }

// TimeValue returns a time; the zero time is NULL.
func TimeValue(t time.Time) Value {
	if t.IsZero() {
		return Value{}
	}
	return Value{kind: KindTime, t: t}
}

// FromCWMP types a parameter value as a CPE reports it: a string with an
// xsd type ("xsd:unsignedInt", "int", "cwmp:boolean", ...). Numeric types
// become numbers, xsd:boolean a boolean ("true"/"false"/"1"/"0"), and
// xsd:dateTime a time. A value that does not parse as its type, and every
// other or missing type, stays a string: comparisons still treat a numeric
// string as a number against a number, so an untyped "10" > 9 holds. The
// CWMP "unknown time" 0001-01-01T00:00:00Z is NULL.
func FromCWMP(value, xsdType string) Value {
	t := xsdType
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		t = t[i+1:]
	}
	switch strings.ToLower(t) {
	case "int", "long", "short", "byte", "integer", "unsignedint", "unsignedlong",
		"unsignedshort", "unsignedbyte", "decimal", "double", "float":
		if f, ok := parseDecimal(strings.TrimSpace(value)); ok {
			return NumberValue(f)
		}
	case "boolean":
		if b, ok := parseBool(strings.TrimSpace(value)); ok {
			return BoolValue(b)
		}
	case "datetime":
		if tm, ok := parseDate(strings.TrimSpace(value)); ok {
			return TimeValue(tm)
		}
	}
	return StringValue(value)
}

// Kind returns v's kind.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is NULL.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Truth is v as a condition, the way GenieACS (JavaScript) reads one: a
// boolean is itself, a number is true unless 0, a string unless empty, a
// time always. NULL is unknown (known is false), as in SQL.
func (v Value) Truth() (val, known bool) {
	switch v.kind {
	case KindBool:
		return v.b, true
	case KindNumber:
		return v.n != 0, true
	case KindString:
		return v.s != "", true
	case KindTime:
		return true, true
	}
	return false, false
}

// IsTrue reports whether v holds as a condition: known and true. A
// precondition matches only then; NULL and false both fail it.
func (v Value) IsTrue() bool {
	b, known := v.Truth()
	return known && b
}

// Bool returns v if it is a boolean.
func (v Value) Bool() (bool, bool) { return v.b, v.kind == KindBool }

// Number returns v as a number: numbers, booleans (0/1), times
// (milliseconds since the epoch) and strings holding a decimal number.
func (v Value) Number() (float64, bool) {
	switch v.kind {
	case KindNumber:
		return v.n, true
	case KindBool:
		if v.b {
			return 1, true
		}
		return 0, true
	case KindTime:
		return float64(v.t.UnixMilli()), true
	case KindString:
		return parseDecimal(strings.TrimSpace(v.s))
	}
	return 0, false
}

// Time returns v as a time: times, and strings holding an RFC 3339 or
// "2006-01-02 15:04:05" date (no zone means UTC).
func (v Value) Time() (time.Time, bool) {
	switch v.kind {
	case KindTime:
		return v.t, true
	case KindString:
		return parseDate(strings.TrimSpace(v.s))
	}
	return time.Time{}, false
}

// Text is v as a string, as || and LIKE see it: numbers in JavaScript's
// shortest form, booleans as "true"/"false", times in ISO 8601 with
// milliseconds (JavaScript's toISOString), NULL as "".
func (v Value) Text() string {
	switch v.kind {
	case KindBool:
		return strconv.FormatBool(v.b)
	case KindNumber:
		return formatNumber(v.n)
	case KindString:
		return v.s
	case KindTime:
		return v.t.UTC().Format(isoMillis)
	}
	return ""
}

// String renders v for logs: NULL, true, 12.5, a quoted string, or a time.
func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return "NULL"
	case KindString:
		return quote(v.s)
	}
	return v.Text()
}

// Any returns v as a plain Go value: nil, bool, float64, string or
// time.Time.
func (v Value) Any() any {
	switch v.kind {
	case KindBool:
		return v.b
	case KindNumber:
		return v.n
	case KindString:
		return v.s
	case KindTime:
		return v.t
	}
	return nil
}

// Equal reports whether a and b are the same value of the same kind (not
// the = operator, which converts; this is for tests and caches).
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case KindBool:
		return v.b == w.b
	case KindNumber:
		return v.n == w.n
	case KindString:
		return v.s == w.s
	case KindTime:
		return v.t.Equal(w.t)
	}
	return true
}

// Compare orders two values the way the comparison operators do; ok is
// false when either is NULL (the comparison is then NULL). Two strings
// compare as strings. Otherwise the richest form both share wins: two
// times, or a time and a date string, compare as times; a boolean and a
// "true"/"false"/"1"/"0" string as booleans; anything that reads as a
// number on both sides (a time counts as its milliseconds) as numbers.
// What is left (a number against a non-numeric string) orders the string
// after, as GenieACS does, and is never equal.
func Compare(a, b Value) (c int, ok bool) {
	if a.kind == KindNull || b.kind == KindNull {
		return 0, false
	}
	if a.kind == KindString && b.kind == KindString {
		return strings.Compare(a.s, b.s), true
	}
	if a.kind == KindTime || b.kind == KindTime {
		ta, okA := a.Time()
		tb, okB := b.Time()
		if okA && okB {
			return ta.Compare(tb), true
		}
	}
	if (a.kind == KindBool && b.kind == KindString) || (a.kind == KindString && b.kind == KindBool) {
		ba, okA := asBool(a)
		bb, okB := asBool(b)
		if okA && okB {
			return cmpBool(ba, bb), true
		}
	}
	na, okA := a.Number()
	nb, okB := b.Number()
	if okA && okB {
		switch {
		case na < nb:
			return -1, true
		case na > nb:
			return 1, true
		}
		return 0, true
	}
	// A string against a number, boolean or time it cannot be read as.
	if a.kind == KindString {
		return 1, true
	}
	return -1, true
}

func asBool(v Value) (bool, bool) {
	if v.kind == KindBool {
		return v.b, true
	}
	return parseBool(strings.TrimSpace(v.s))
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

// isoMillis is JavaScript's Date.toISOString layout.
const isoMillis = "2006-01-02T15:04:05.000Z"

// formatNumber writes f as JavaScript's Number.prototype.toString does
// (shortest round-trip digits, plain notation from 1e-6 to 1e21), except
// that exponents keep Go's two-digit form; both forms parse back the same.
func formatNumber(f float64) string {
	if a := math.Abs(f); f == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// parseDecimal accepts plain decimal numbers ("-12", "1.5", "2e3", "+.5"),
// nothing Go-specific (no hex, no underscores, no Inf or NaN), so a MAC
// address or a version string never reads as a number.
func parseDecimal(s string) (float64, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	n := digits()
	if i < len(s) && s[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// parseBool reads a CWMP boolean: "true"/"false" in any case, or "1"/"0".
func parseBool(s string) (v, ok bool) {
	switch {
	case s == "1" || strings.EqualFold(s, "true"):
		return true, true
	case s == "0" || strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// dateLayouts are the date forms read from xsd:dateTime values and date
// strings: RFC 3339 as CPEs send it (no zone means UTC), the
// "2017-12-11 13:16:23 +0000" form GenieACS's documentation uses, and a bare
// date. Fractional seconds are accepted after the seconds in every layout.
var dateLayouts = []string{
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

func parseDate(s string) (time.Time, bool) {
	// Every layout starts with a four-digit year and a dash: skip the loop
	// for the common case of a value that is not a date at all.
	if len(s) < 10 || s[4] != '-' || s[0] < '0' || s[0] > '9' {
		return time.Time{}, false
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
