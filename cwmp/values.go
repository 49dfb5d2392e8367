package cwmp

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidValue means a parameter value does not parse as its xsd type.
// The simulator answers it with fault 9007.
var ErrInvalidValue = errors.New("cwmp: invalid parameter value")

// unknownTime is TR-069's "Unknown Time": the encoding of a zero time.Time.
const unknownTime = "0001-01-01T00:00:00Z"

// ParseBool parses an xsd:boolean the way CPEs actually write it: "true",
// "false", "1" or "0" in any case, surrounding whitespace ignored.
func ParseBool(s string) (bool, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "1" || strings.EqualFold(s, "true"):
		return true, nil
	case s == "0" || strings.EqualFold(s, "false"):
		return false, nil
	}
	return false, fmt.Errorf("parse boolean %q: %w", clip(s), ErrInvalidValue)
}

// FormatBool writes a boolean as "1" or "0". Both forms are valid
// xs:boolean, but some CPEs reject "true"/"false" (GenieACS issue #228,
// TP-Link) and GenieACS itself sends RPC booleans such as NextLevel as 1/0,
// so 1/0 is the form real CPEs are known to accept.
func FormatBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// NormalizeType maps an xsi:type as CPEs write it to the "xsd:" form the
// codec stores: the prefix is dropped and replaced by "xsd:" ("xs:int",
// "int" → "xsd:int"; "soap-enc:base64" → "xsd:base64"), the spec's type names
// are matched case-insensitively, and an empty type is "xsd:string".
func NormalizeType(t string) string {
	switch t {
	case TypeString, TypeInt, TypeUnsignedInt, TypeBoolean, TypeDateTime,
		TypeBase64, TypeHexBinary, TypeLong, TypeUnsignedLong:
		return t // already canonical: the common case, without allocating
	}
	t = strings.TrimSpace(t)
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		t = t[i+1:]
	}
	if t == "" {
		return TypeString
	}
	switch strings.ToLower(t) {
	case "string":
		return TypeString
	case "int":
		return TypeInt
	case "unsignedint":
		return TypeUnsignedInt
	case "boolean":
		return TypeBoolean
	case "datetime":
		return TypeDateTime
	case "base64", "base64binary":
		return TypeBase64
	case "hexbinary":
		return TypeHexBinary
	case "long":
		return TypeLong
	case "unsignedlong":
		return TypeUnsignedLong
	}
	return "xsd:" + t
}

// Bool parses the value as an xsd:boolean (see ParseBool).
func (p ParameterValue) Bool() (bool, error) {
	b, err := ParseBool(p.Value)
	if err != nil {
		return false, fmt.Errorf("parameter %s: %w", p.Name, err)
	}
	return b, nil
}

// Int parses the value as a signed decimal integer (xsd:int or xsd:long).
func (p ParameterValue) Int() (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(p.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: parse int %q: %w", p.Name, clip(p.Value), ErrInvalidValue)
	}
	return v, nil
}

// Uint parses the value as an unsigned decimal integer (xsd:unsignedInt or
// xsd:unsignedLong).
func (p ParameterValue) Uint() (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(p.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: parse unsigned %q: %w", p.Name, clip(p.Value), ErrInvalidValue)
	}
	return v, nil
}

// Time parses the value as an xsd:dateTime, in UTC. "Unknown Time"
// (0001-01-01T00:00:00Z) is the zero time.Time. Unlike the envelope decoder,
// which reads unparsable RPC times as zero, this reports an error.
func (p ParameterValue) Time() (time.Time, error) {
	t, err := parseTime(p.Value)
	if err != nil {
		return time.Time{}, fmt.Errorf("parameter %s: %w", p.Name, err)
	}
	return t, nil
}

// ValidateValue checks that value is a valid lexical form of the xsd type
// typ (normalized with NormalizeType): 32-bit range for xsd:int and
// xsd:unsignedInt, 64-bit for long and unsignedLong, the four boolean forms,
// a dateTime, base64 or hexBinary. Strings and types the codec does not know
// are accepted. Errors wrap ErrInvalidValue (fault 9007).
func ValidateValue(typ, value string) error {
	typ = NormalizeType(typ)
	s := strings.TrimSpace(value)
	var err error
	switch typ {
	case TypeInt:
		_, err = strconv.ParseInt(s, 10, 32)
	case TypeUnsignedInt:
		_, err = strconv.ParseUint(s, 10, 32)
	case TypeLong:
		_, err = strconv.ParseInt(s, 10, 64)
	case TypeUnsignedLong:
		_, err = strconv.ParseUint(s, 10, 64)
	case TypeBoolean:
		_, err = ParseBool(s)
	case TypeDateTime:
		_, err = parseTime(s)
	case TypeBase64:
		// Line breaks inside base64 text are legal in XML payloads.
		_, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	case TypeHexBinary:
		_, err = hex.DecodeString(s)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("value %q is not a valid %s: %w", clip(value), typ, ErrInvalidValue)
	}
	return nil
}

// timeLayouts are the dateTime forms accepted, tried in order. Go's parser
// accepts fractional seconds after "05" even when the layout has none.
var timeLayouts = []string{
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05Z0700",
}

// parseTime parses an xsd:dateTime strictly; the result is in UTC and
// "Unknown Time" is the zero time.Time.
func parseTime(s string) (time.Time, error) {
	t, ok := parseTimeOK(strings.TrimSpace(s))
	if !ok {
		return time.Time{}, fmt.Errorf("parse dateTime %q: %w", clip(s), ErrInvalidValue)
	}
	return t, nil
}

// parseTimeOK is parseTime without building errors, which time.Parse and
// fmt would allocate for every failed attempt; decoding calls it for every
// time field, most often with "" or Unknown Time.
func parseTimeOK(s string) (time.Time, bool) {
	if s == unknownTime {
		return time.Time{}, true
	}
	// Every accepted layout starts "YYYY-MM-DDThh:mm:ss".
	if len(s) < 19 || s[4] != '-' || s[10] != 'T' {
		return time.Time{}, false
	}
	for _, layout := range timeLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		t = t.UTC()
		if t.IsZero() {
			return time.Time{}, true
		}
		// Outside years 1..9999 RFC 3339 cannot write the time back.
		if y := t.Year(); y < 1 || y > 9999 {
			return time.Time{}, false
		}
		return t, true
	}
	return time.Time{}, false
}

// parseTimeLenient reads an RPC dateTime; CPEs send garbage here often
// enough (REFERENCE.md §5 item 7) that an unparsable time is read as
// Unknown Time rather than failing the whole envelope.
func parseTimeLenient(s string) time.Time {
	t, _ := parseTimeOK(s)
	return t
}

// appendTime appends t as RFC 3339 in UTC with only as many fractional
// digits as t has; the zero time is Unknown Time.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, unknownTime...)
	}
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// clip shortens s for error messages so a hostile envelope cannot blow up
// log lines.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
