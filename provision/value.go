package provision

import (
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// sameValue reports whether two lexical forms mean the same value of xsd
// type typ: "1" and "true" are the same boolean, " 300" and "300" the same
// integer, two spellings of one instant the same dateTime. A form that
// does not parse as typ compares as text.
func sameValue(typ, a, b string) bool {
	if a == b {
		return true
	}
	return canonical(typ, a) == canonical(typ, b)
}

// canonical returns one spelling for each value of typ.
func canonical(typ, v string) string {
	switch cwmp.NormalizeType(typ) {
	case cwmp.TypeBoolean:
		if b, err := cwmp.ParseBool(v); err == nil {
			return strconv.FormatBool(b)
		}
	case cwmp.TypeInt, cwmp.TypeLong:
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return strconv.FormatInt(n, 10)
		}
	case cwmp.TypeUnsignedInt, cwmp.TypeUnsignedLong:
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			return strconv.FormatUint(n, 10)
		}
	case cwmp.TypeDateTime:
		if t, ok := msStamp(v); ok {
			return t.UTC().Format(time.RFC3339Nano)
		}
		pv := cwmp.ParameterValue{Value: v}
		if t, err := pv.Time(); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// msStamp reads a dateTime written as milliseconds since the epoch, as a
// script declares one (GenieACS takes a number for an xsd:dateTime so).
func msStamp(v string) (time.Time, bool) {
	s := strings.TrimSpace(v)
	if s == "" || len(s) > 16 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

// wireValue is the form of v sent in SetParameterValues for type typ:
// booleans as 1/0 (cwmp.FormatBool says why), integers trimmed, anything
// else as declared.
func wireValue(typ, v string) string {
	switch cwmp.NormalizeType(typ) {
	case cwmp.TypeBoolean:
		if b, err := cwmp.ParseBool(v); err == nil {
			return cwmp.FormatBool(b)
		}
	case cwmp.TypeInt, cwmp.TypeLong, cwmp.TypeUnsignedInt, cwmp.TypeUnsignedLong:
		return canonical(typ, v)
	case cwmp.TypeDateTime:
		if t, ok := msStamp(v); ok {
			return formatStamp(t)
		}
	}
	return v
}

// isInteger reports whether typ is one of the four xsd integer types.
func isInteger(typ string) bool {
	switch cwmp.NormalizeType(typ) {
	case cwmp.TypeInt, cwmp.TypeUnsignedInt, cwmp.TypeLong, cwmp.TypeUnsignedLong:
		return true
	}
	return false
}

// setType chooses the xsd type a SetParameterValues sends. A declared type
// states intent and wins, except between integer types: a task's JSON
// number says "integer", not which width the CPE wants, so the CPE's own
// reported width is kept. Without either, the value is a string.
func setType(declared, cached string) string {
	switch {
	case declared == "":
		if cached == "" {
			return cwmp.TypeString
		}
		return cwmp.NormalizeType(cached)
	case cached != "" && isInteger(declared) && isInteger(cached):
		return cwmp.NormalizeType(cached)
	}
	return cwmp.NormalizeType(declared)
}

// parseStamp reads a virtual parameter's xsd:dateTime (as ApplyResponse
// writes Reboot, FactoryReset and Downloads.<n>.Download); zero if unset.
func parseStamp(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := cwmp.ParameterValue{Value: v}.Time()
	if err != nil {
		return time.Time{}
	}
	return t
}

// formatStamp writes t as an xsd:dateTime with millisecond precision, the
// resolution of GenieACS timestamps.
func formatStamp(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}
