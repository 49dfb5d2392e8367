package expr

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const swv = "InternetGatewayDevice.DeviceInfo.SoftwareVersion"

func TestParseValid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Literals.
		{`1`, `1`},
		{`0`, `0`},
		{`-1.5`, `-1.5`},
		{`1e3`, `1000`},
		{`2.5E-3`, `0.0025`},
		{`1e21`, `1e+21`},
		{`1e-7`, `1e-07`},
		{`-0`, `0`},
		{`'it''s'`, `"it's"`},
		{`''`, `""`},
		{`"a\"b\\c\n\t\u00e9\/"`, `"a\"b\\c\n\té/"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`"\q"`, `"q"`},
		{`'multi
line'`, `"multi\nline"`},
		{`"\u0001"`, `"\u0001"`},
		{`true`, `true`}, {`FALSE`, `false`}, {`null`, `NULL`}, {`Null`, `NULL`},
		// Paths.
		{swv, swv},
		{`DeviceID.SerialNumber`, `DeviceID.SerialNumber`},
		{`Tags.my-tag`, `Tags.my-tag`},
		{`Events.0_BOOTSTRAP`, `Events.0_BOOTSTRAP`},
		{`Device.WiFi.SSID.*.SSID`, `Device.WiFi.SSID.*.SSID`},
		{`Device.WiFi.SSID.*`, `Device.WiFi.SSID.*`},
		{`Device.IP.Interface.[Name:wan].Enable`, `Device.IP.Interface.[Name:wan].Enable`},
		{`Device.X.[A:1,B:"x]y"].C`, `Device.X.[A:1,B:"x]y"].C`},
		{`Device.X.[SSID:My Net]`, `Device.X.[SSID:My Net]`},
		{`_x`, `_x`},
		{`null.x`, `null.x`},
		{`a-1`, `a-1`},
		// Comparisons and logic.
		{`a=1`, `a = 1`},
		{`a <> 'x'`, `a <> "x"`},
		{`a<1 and b>=2 OR c<=3`, `a < 1 AND b >= 2 OR c <= 3`},
		{`a > 1 AND (b = 2 OR c = 3)`, `a > 1 AND (b = 2 OR c = 3)`},
		{`(a = 1 AND b = 2) AND c = 3`, `(a = 1 AND b = 2) AND c = 3`},
		{`a = 1 AND b = 2 AND c = 3`, `a = 1 AND b = 2 AND c = 3`},
		{`NOT a = 1`, `NOT a = 1`},
		{`NOT (a = 1 OR b = 2)`, `NOT (a = 1 OR b = 2)`},
		{`not not a`, `NOT NOT a`},
		{`NOT(a)`, `NOT a`},
		{`(NOT a) = false`, `(NOT a) = false`},
		{`(a = 1) = true`, `(a = 1) = true`},
		{`a IS NULL`, `a IS NULL`},
		{`a is   not
		null`, `a IS NOT NULL`},
		{`a LIKE 'HG8%'`, `a LIKE "HG8%"`},
		{`a not like '_x'`, `a NOT LIKE "_x"`},
		{`a LIKE '5!%' ESCAPE '!'`, `a LIKE "5!%" ESCAPE "!"`},
		{`a LIKE b ESCAPE c`, `a LIKE b ESCAPE c`},
		// Arithmetic and concatenation.
		{`1+2*3`, `1 + 2 * 3`},
		{`(1+2)*3`, `(1 + 2) * 3`},
		{`1-2-3`, `1 - 2 - 3`},
		{`1-(2-3)`, `1 - (2 - 3)`},
		{`a - -1`, `a - -1`},
		{`2*3`, `2 * 3`},
		{`a % 2 = 1`, `a % 2 = 1`},
		{`a / (b * c)`, `a / (b * c)`},
		{`'a' || b || 1`, `"a" || b || 1`},
		{`'a' || (b || 1)`, `"a" || (b || 1)`},
		{`a || b = 'xy'`, `a || b = "xy"`},
		{`(a = 1) || 'x'`, `(a = 1) || "x"`},
		{`a + b || c`, `a + b || c`},
		{`a + (b || c)`, `a + (b || c)`},
		// Functions and CASE.
		{`NOW()`, `NOW()`},
		{`now ( )`, `NOW()`},
		{`Events.Inform > NOW() - 3600000`, `Events.Inform > NOW() - 3600000`},
		{`upper(a) = 'X'`, `UPPER(a) = "X"`},
		{`LOWER(a || 'B')`, `LOWER(a || "B")`},
		{`COALESCE(a, b, 'x')`, `COALESCE(a, b, "x")`},
		{`ROUND(a / 3, 2)`, `ROUND(a / 3, 2)`},
		{`COALESCE(a = 1 OR b, false)`, `COALESCE(a = 1 OR b, false)`},
		{`CASE WHEN a = 1 THEN 'one' WHEN a = 2 THEN 'two' ELSE 'many' END`,
			`CASE WHEN a = 1 THEN "one" WHEN a = 2 THEN "two" ELSE "many" END`},
		{`case when a then 1 end = 1`, `CASE WHEN a THEN 1 END = 1`},
		// Whitespace and layout.
		{"  a\n=\t1  ", `a = 1`},
	} {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %s, want %s", tc.in, got, tc.want)
			continue
		}
		e2, err := Parse(e.String())
		if err != nil {
			t.Errorf("re-parse of %q: %v", e.String(), err)
			continue
		}
		if e2.String() != e.String() {
			t.Errorf("round trip of %q: %s", e.String(), e2.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in        string
		line, col int
		msg       string
	}{
		{``, 1, 1, "empty expression"},
		{`   `, 1, 4, "empty expression"},
		{`a =`, 1, 4, "unexpected end of expression"},
		{`a = 1 b`, 1, 7, "unexpected parameter b after a complete expression"},
		{`a = = 1`, 1, 5, "unexpected '=' where a value belongs"},
		{`a != 1`, 1, 3, "not equal is written <>"},
		{`a == 1`, 1, 3, "equality is written ="},
		{`a && b`, 1, 3, "use AND"},
		{`a | b`, 1, 3, "concatenation is written ||"},
		{`a = 1 = 2`, 1, 7, "comparisons do not chain"},
		{`a IS NULL IS NULL`, 1, 11, "comparisons do not chain"},
		{`a = 1 LIKE 'x'`, 1, 7, "comparisons do not chain"},
		{`a IS 1`, 1, 6, "expected NULL after IS, found number 1"},
		{`a IS NOT 'x'`, 1, 10, `expected NULL after IS, found string 'x'`},
		{`a NOT 1`, 1, 3, "did you mean NOT LIKE or IS NOT NULL"},
		{`(a = 1`, 1, 7, "expected ')' to close the '(' at column 1, found end of expression"},
		{`a = 1)`, 1, 6, "unexpected ')' after a complete expression"},
		{`()`, 1, 2, "unexpected ')' where a value belongs"},
		{`'abc`, 1, 1, "unterminated string"},
		{`a = "abc`, 1, 5, "unterminated string"},
		{`a = "abc\`, 1, 5, "unterminated string"},
		{`"\u12"`, 1, 2, `bad \u escape`},
		{`a = 1.2.3`, 1, 5, "malformed number 1.2.3 (quote it"},
		{`a = 10abc`, 1, 5, "malformed number 10abc"},
		{`a = 007`, 1, 5, "malformed number 007"},
		{`a = 1.`, 1, 5, "malformed number 1."},
		{`a = 1e`, 1, 5, "malformed number 1e"},
		{`a = 1e999`, 1, 5, "number 1e999 is out of range"},
		{`a..b = 1`, 1, 3, `empty segment in parameter path "a.."`},
		{`a. = 1`, 1, 2, `parameter path "a." ends with '.'`},
		{`x*2 = 4`, 1, 2, "'*' must be a whole path segment"},
		{`a.b*.c`, 1, 4, "'*' must be a whole path segment"},
		{`a[x:1]`, 1, 2, "alias filter [...] must be a whole path segment"},
		{`a.[x:1]b`, 1, 8, "alias filter [...] must be a whole path segment"},
		{`a.[] = 1`, 1, 3, "empty alias filter"},
		{`a.[x] = 1`, 1, 3, "needs Key:Value"},
		{`a.[x:1`, 1, 3, "unterminated alias filter"},
		{`a.[x:"1]`, 1, 3, "unterminated alias filter"},
		{`a.[x:[1]]`, 1, 6, "unexpected character '[' in alias filter"},
		{`Device.{a}`, 1, 8, "{...}) are not supported"},
		{`- a`, 1, 1, "a minus sign is only allowed directly before a number"},
		{`-a`, 1, 1, "a minus sign is only allowed directly before a number"},
		{`a = #`, 1, 5, "unexpected character '#'"},
		{"a = \x01", 1, 5, "unexpected character U+0001"},
		{`.5 = a`, 1, 1, "unexpected character '.'"},
		{`FOO(a)`, 1, 1, "unknown function FOO"},
		{`NOW(1)`, 1, 1, "NOW takes 0 arguments, not 1"},
		{`UPPER()`, 1, 1, "UPPER takes 1 argument, not 0"},
		{`ROUND(1, 2, 3)`, 1, 1, "ROUND takes 1 to 2 arguments, not 3"},
		{`COALESCE()`, 1, 1, "COALESCE takes at least 1 argument, not 0"},
		{`UPPER(a b)`, 1, 9, "expected ',' or ')' in the call to UPPER, found parameter b"},
		{`a LIKE 'x' ESCAPE 'ab'`, 1, 19, "ESCAPE takes a string of one character"},
		{`a LIKE 'x' ESCAPE 1`, 1, 19, "ESCAPE takes a string of one character"},
		{`AND`, 1, 1, "unexpected AND where a value belongs"},
		{`a = OR`, 1, 5, "unexpected OR where a value belongs"},
		{`a = NOT b`, 1, 5, "unexpected NOT where a value belongs"},
		{`CASE END`, 1, 6, "CASE needs at least one WHEN"},
		{`CASE WHEN a 1 END`, 1, 13, "expected THEN, found number 1"},
		{`CASE WHEN a THEN 1`, 1, 19, "expected WHEN, ELSE or END in CASE"},
		{"a = 1 AND\n  b = = 2", 2, 7, "unexpected '='"},
		{"'é' = x y", 1, 9, "unexpected parameter y"},
		{"a = '\xff'", 1, 6, "not valid UTF-8"},
	} {
		_, err := Parse(tc.in)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want an *Error", tc.in, err)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v does not wrap ErrSyntax", tc.in, err)
		}
		if pe.Line != tc.line || pe.Column != tc.col || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %d:%d %q, want %d:%d containing %q", tc.in, pe.Line, pe.Column, pe.Msg, tc.line, tc.col, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), "line ") {
			t.Errorf("Error() = %q", err.Error())
		}
	}
}

func TestErrorOffset(t *testing.T) {
	_, err := Parse("ab = 'é' AND = 1")
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	// Byte offset 14 ('é' is two bytes), column 14 in characters.
	if pe.Offset != 14 || pe.Column != 14 {
		t.Fatalf("offset %d column %d", pe.Offset, pe.Column)
	}
}

func TestBounds(t *testing.T) {
	long := "a = '" + strings.Repeat("x", MaxLen) + "'"
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("long: %v", err)
	}
	deep := strings.Repeat("(", MaxDepth) + "a" + strings.Repeat(")", MaxDepth)
	if _, err := Parse(deep); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	deeper := "(" + deep + ")"
	var pe *Error
	if _, err := Parse(deeper); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "nested more than") || pe.Offset != MaxDepth {
		t.Fatalf("depth %d: %v", MaxDepth+1, err)
	}
	if _, err := Parse(strings.Repeat("NOT ", MaxDepth+1) + "a"); err == nil {
		t.Fatal("NOT chain accepted")
	}
	if _, err := Parse(strings.Repeat("UPPER(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1)); err == nil {
		t.Fatal("call chain accepted")
	}
	// MaxNodes: a long sum of ones, short enough for MaxLen.
	many := "1" + strings.Repeat("+1", MaxNodes/2)
	if _, err := Parse(many); err == nil || !strings.Contains(err.Error(), "more than 4096 terms") {
		t.Fatalf("nodes: %v", err)
	}
	ok := "1" + strings.Repeat("+1", MaxNodes/2-1)
	if _, err := Parse(ok); err != nil {
		t.Fatalf("nodes at the limit: %v", err)
	}
}

func TestPaths(t *testing.T) {
	e := MustParse(`Tags.a IS NULL AND (Device.WiFi.SSID.*.SSID = 'x' OR Device.IP.Interface.[Name:wan].Enable) AND Tags.a = true AND UPPER(DeviceID.OUI) = 'AB' AND NOW() > Events.Inform`)
	want := []string{"Tags.a", "Device.WiFi.SSID.*.SSID", "Device.IP.Interface.[Name:wan].Enable", "DeviceID.OUI", "Events.Inform"}
	if got := e.Paths(); !slices.Equal(got, want) {
		t.Fatalf("Paths() = %q, want %q", got, want)
	}
	got := e.Paths()
	got[0] = "mutated"
	if e.Paths()[0] != "Tags.a" {
		t.Fatal("Paths shares its slice")
	}
	if p := MustParse(`1 = 1`).Paths(); len(p) != 0 {
		t.Fatalf("literal paths %q", p)
	}
}

func TestLiteral(t *testing.T) {
	if v, ok := MustParse(`'x'`).Literal(); !ok || !v.Equal(StringValue("x")) {
		t.Fatal(v, ok)
	}
	if _, ok := MustParse(`a`).Literal(); ok {
		t.Fatal("a path is not a literal")
	}
	if s := Lit(NumberValue(2.5)).String(); s != "2.5" {
		t.Fatal(s)
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"a", "Device.WiFi.SSID.1.SSID", "Tags.x-y", "A.*.B", "A.[K:V].B", "Events.0_BOOTSTRAP"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q): %v", p, err)
		}
	}
	for _, p := range []string{"", " a", "a ", "1a", "a..b", "a.", "a b", "AND", "null", "a=1", "x*2", "a.[x]", "\xff"} {
		if err := CheckPath(p); err == nil {
			t.Errorf("CheckPath(%q) accepted", p)
		}
	}
}
