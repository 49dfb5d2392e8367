package nbi

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// isoMillis is JavaScript's Date.toISOString layout, which is how GenieACS
// writes every date in its JSON.
const isoMillis = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(isoMillis) }

// valueKind is how a CWMP type compares and renders.
type valueKind uint8

const (
	kindUntyped valueKind = iota // no type given: inferred from the text
	kindString                   // string, base64, hexBinary and unknown types
	kindInt
	kindUint
	kindFloat
	kindBool
	kindDate
)

// kindOf maps a CWMP type to its kind. CPEs write the type as "xsd:int",
// "int" or with another namespace prefix, in any case.
func kindOf(xsdType string) valueKind {
	if xsdType == "" {
		return kindUntyped
	}
	t := xsdType
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		t = t[i+1:]
	}
	switch strings.ToLower(t) {
	case "int", "long", "short", "byte", "integer":
		return kindInt
	case "unsignedint", "unsignedlong", "unsignedshort", "unsignedbyte":
		return kindUint
	case "decimal", "double", "float":
		return kindFloat
	case "boolean":
		return kindBool
	case "datetime":
		return kindDate
	default:
		return kindString
	}
}

// number is a parsed numeric value: exact when it is an integer that fits
// int64, a float64 otherwise (as in JavaScript, where GenieACS compares).
type number struct {
	i     int64
	f     float64
	isInt bool
}

func (a number) cmp(b number) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	return 0
}

// parseNumber accepts plain decimal numbers ("-12", "1.5", "2e3", "+.5"),
// nothing Go-specific (no hex, no underscores, no Inf or NaN), so a MAC
// address or a version string never compares as a number.
func parseNumber(s string) (number, bool) {
	if !decimalSyntax(s) {
		return number{}, false
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{i: i, f: float64(i), isInt: true}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return number{}, false
	}
	return number{f: f}, true
}

func decimalSyntax(s string) bool {
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
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// dateLayouts are the date forms accepted in queries and read from
// xsd:dateTime values: RFC 3339 as CPEs send it (with or without a zone;
// none means UTC), the "2017-12-11 13:16:23 +0000" form GenieACS's own API
// reference uses, and a bare date. Fractional seconds are accepted after
// the seconds in every layout that has them.
var dateLayouts = []string{
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

func parseDate(s string) (time.Time, bool) {
	// Every layout starts with a four-digit year and a dash: skip the
	// loop for the common case of a value that is not a date at all.
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

// typedValue is a parameter value as GenieACS's document holds it: a JSON
// number for numeric types, a boolean for xsd:boolean, an ISO string for
// xsd:dateTime. A value that does not parse as its type stays a string
// rather than being dropped: a CPE's data is shown as it was sent.
func typedValue(value, xsdType string) any {
	switch kindOf(xsdType) {
	case kindInt:
		if i, err := strconv.ParseInt(value, 10, 64); err == nil {
			return i
		}
	case kindUint:
		if u, err := strconv.ParseUint(value, 10, 64); err == nil {
			return u
		}
	case kindFloat:
		if n, ok := parseNumber(value); ok {
			if n.isInt {
				return n.i
			}
			return n.f
		}
	case kindBool:
		if b, ok := parseBool(value); ok {
			return b
		}
	case kindDate:
		if t, ok := parseDate(value); ok {
			return formatTime(t)
		}
	}
	return value
}
