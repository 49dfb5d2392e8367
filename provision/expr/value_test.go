package expr

import (
	"math"
	"testing"
	"time"
)

func TestFromCWMP(t *testing.T) {
	for _, tc := range []struct {
		value, typ string
		want       Value
	}{
		{"42", "xsd:unsignedInt", NumberValue(42)},
		{"-42", "int", NumberValue(-42)},
		{" 7 ", "xsd:long", NumberValue(7)},
		{"1.5", "xsd:decimal", NumberValue(1.5)},
		{"abc", "xsd:int", StringValue("abc")},
		{"0x10", "xsd:int", StringValue("0x10")},
		{"1", "xsd:boolean", BoolValue(true)},
		{"False", "cwmp:boolean", BoolValue(false)},
		{"maybe", "xsd:boolean", StringValue("maybe")},
		{"2024-01-02T03:04:05Z", "xsd:dateTime", TimeValue(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))},
		{"2024-01-02T03:04:05", "XSD:DATETIME", TimeValue(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))},
		{"0001-01-01T00:00:00Z", "xsd:dateTime", NullValue()},
		{"yesterday", "xsd:dateTime", StringValue("yesterday")},
		{"10", "xsd:string", StringValue("10")},
		{"10", "", StringValue("10")},
		{"AAEC", "xsd:base64", StringValue("AAEC")},
	} {
		if got := FromCWMP(tc.value, tc.typ); !got.Equal(tc.want) {
			t.Errorf("FromCWMP(%q, %q) = %v (%v), want %v", tc.value, tc.typ, got, got.Kind(), tc.want)
		}
	}
}

func TestValueConversions(t *testing.T) {
	if v := NumberValue(math.NaN()); !v.IsNull() {
		t.Fatal("NaN is not NULL")
	}
	if v := NumberValue(math.Inf(1)); !v.IsNull() {
		t.Fatal("Inf is not NULL")
	}
	if v := TimeValue(time.Time{}); !v.IsNull() {
		t.Fatal("zero time is not NULL")
	}
	tm := time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		v    Value
		text string
		str  string
		any  any
	}{
		{NullValue(), "", "NULL", nil},
		{BoolValue(true), "true", "true", true},
		{NumberValue(1.5), "1.5", "1.5", 1.5},
		{NumberValue(1e21), "1e+21", "1e+21", 1e21},
		{NumberValue(123456789012), "123456789012", "123456789012", 123456789012.0},
		{NumberValue(0.000001), "0.000001", "0.000001", 0.000001},
		{StringValue(`a"b`), `a"b`, `"a\"b"`, `a"b`},
		{TimeValue(tm), "2024-01-02T02:04:05.006Z", "2024-01-02T02:04:05.006Z", tm},
	} {
		if got := tc.v.Text(); got != tc.text {
			t.Errorf("%v.Text() = %q, want %q", tc.v, got, tc.text)
		}
		if got := tc.v.String(); got != tc.str {
			t.Errorf("String() = %q, want %q", got, tc.str)
		}
		if got := tc.v.Any(); got != tc.any {
			t.Errorf("Any() = %#v, want %#v", got, tc.any)
		}
	}
	if n, ok := TimeValue(tm).Number(); !ok || n != float64(tm.UnixMilli()) {
		t.Fatal("time as number", n, ok)
	}
	if n, ok := BoolValue(true).Number(); !ok || n != 1 {
		t.Fatal("bool as number")
	}
	if _, ok := StringValue("1.2.3").Number(); ok {
		t.Fatal("version string read as a number")
	}
	if _, ok := StringValue("Inf").Number(); ok {
		t.Fatal("Inf read as a number")
	}
	if _, ok := NullValue().Time(); ok {
		t.Fatal("NULL as time")
	}
	if k := KindTime.String(); k != "time" {
		t.Fatal(k)
	}
}

func TestCompare(t *testing.T) {
	if _, ok := Compare(NullValue(), NumberValue(1)); ok {
		t.Fatal("NULL compared")
	}
	for _, tc := range []struct {
		a, b Value
		want int
	}{
		{NumberValue(1), NumberValue(2), -1},
		{NumberValue(2), StringValue("10"), -1},
		{StringValue("2"), StringValue("10"), 1},
		{StringValue("x"), NumberValue(1), 1},
		{NumberValue(1), StringValue("x"), -1},
		{BoolValue(false), BoolValue(true), -1},
		{BoolValue(true), StringValue("true"), 0},
		{BoolValue(true), StringValue("x"), -1},
		{StringValue("x"), BoolValue(true), 1},
		{TimeValue(now), StringValue("2024-06-01T12:00:00Z"), 0},
		{StringValue("2024-06-01"), TimeValue(now), -1},
		{TimeValue(now), NumberValue(float64(now.UnixMilli()) + 1), -1},
		{TimeValue(now), StringValue("later"), -1},
	} {
		if c, ok := Compare(tc.a, tc.b); !ok || c != tc.want {
			t.Errorf("Compare(%v, %v) = %d, %v, want %d", tc.a, tc.b, c, ok, tc.want)
		}
	}
}
