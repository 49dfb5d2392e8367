package expr

import (
	"testing"
	"time"
)

var now = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func testEnv() Env {
	return MapEnv(map[string]Value{
		"T":                  BoolValue(true),
		"F":                  BoolValue(false),
		"N":                  NullValue(),
		"uptime":             FromCWMP("3600", "xsd:unsignedInt"),
		"untyped":            FromCWMP("10", ""),
		"strnum":             FromCWMP("10", "xsd:string"),
		"version":            FromCWMP("1.2.10", "xsd:string"),
		"enabled":            FromCWMP("1", "xsd:boolean"),
		"disabled":           FromCWMP("false", "boolean"),
		"lastBoot":           FromCWMP("2024-05-31T12:00:00Z", "xsd:dateTime"),
		"neg":                FromCWMP("-5", "xsd:int"),
		"empty":              StringValue(""),
		"pc":                 StringValue("HG8245H"),
		"Tags.beta":          BoolValue(true),
		"Events.0_BOOTSTRAP": TimeValue(now.Add(-time.Minute)),
		"Device.A.*.B":       StringValue("first"),
	}, now)
}

func TestEval(t *testing.T) {
	env := testEnv()
	for _, tc := range []struct {
		in   string
		want Value
	}{
		// Three-valued logic.
		{`T AND T`, BoolValue(true)},
		{`T AND F`, BoolValue(false)},
		{`T AND N`, NullValue()},
		{`F AND N`, BoolValue(false)},
		{`N AND F`, BoolValue(false)},
		{`N AND N`, NullValue()},
		{`T OR N`, BoolValue(true)},
		{`N OR T`, BoolValue(true)},
		{`F OR N`, NullValue()},
		{`F OR F`, BoolValue(false)},
		{`NOT N`, NullValue()},
		{`NOT T`, BoolValue(false)},
		{`NOT missing`, NullValue()},
		{`missing = 1`, NullValue()},
		{`missing <> 1`, NullValue()},
		{`NOT (missing = 1)`, NullValue()},
		{`missing IS NULL`, BoolValue(true)},
		{`missing IS NOT NULL`, BoolValue(false)},
		{`empty IS NULL`, BoolValue(false)},
		{`NULL = NULL`, NullValue()},
		{`N IS NULL AND T`, BoolValue(true)},
		// Numbers against numbers and numeric strings.
		{`uptime = 3600`, BoolValue(true)},
		{`uptime > 100`, BoolValue(true)},
		{`uptime = '3600'`, BoolValue(true)},
		{`uptime < '10000'`, BoolValue(true)},
		{`untyped > 9`, BoolValue(true)},
		{`untyped = 10.0`, BoolValue(true)},
		{`neg < 0`, BoolValue(true)},
		{`strnum > 9`, BoolValue(true)},
		// Two strings compare as strings, even numeric ones.
		{`strnum > '9'`, BoolValue(false)},
		{`version > '1.2.9'`, BoolValue(false)},
		{`version = "1.2.10"`, BoolValue(true)},
		{`'abc' < 'abd'`, BoolValue(true)},
		{`'B' < 'a'`, BoolValue(true)},
		// A number against a non-numeric string: the string is greater.
		{`pc = 5`, BoolValue(false)},
		{`pc <> 5`, BoolValue(true)},
		{`pc > 5`, BoolValue(true)},
		{`5 < pc`, BoolValue(true)},
		// Booleans.
		{`enabled = true`, BoolValue(true)},
		{`enabled = 1`, BoolValue(true)},
		{`enabled = 'true'`, BoolValue(true)},
		{`enabled = 'TRUE'`, BoolValue(true)},
		{`disabled = false`, BoolValue(true)},
		{`disabled = '0'`, BoolValue(true)},
		{`enabled = 'yes'`, BoolValue(false)},
		{`Tags.beta = true`, BoolValue(true)},
		{`Tags.beta`, BoolValue(true)},
		{`Tags.alpha IS NULL`, BoolValue(true)},
		{`true > false`, BoolValue(true)},
		// Times.
		{`lastBoot < '2024-06-01'`, BoolValue(true)},
		{`lastBoot = '2024-05-31 12:00:00'`, BoolValue(true)},
		{`lastBoot = '2024-05-31T14:00:00+02:00'`, BoolValue(true)},
		{`lastBoot > NOW() - 86400001`, BoolValue(true)},
		{`lastBoot > NOW() - 86400000`, BoolValue(false)},
		{`Events.0_BOOTSTRAP > NOW() - 3600 * 1000`, BoolValue(true)},
		{`NOW() > lastBoot`, BoolValue(true)},
		{`lastBoot = 1717156800000`, BoolValue(true)},
		{`lastBoot > 'soon'`, BoolValue(false)},
		// Wildcard paths are looked up as written.
		{`Device.A.*.B`, StringValue("first")},
		// LIKE.
		{`pc LIKE 'HG8%'`, BoolValue(true)},
		{`pc LIKE 'hg8%'`, BoolValue(false)},
		{`LOWER(pc) LIKE 'hg8%'`, BoolValue(true)},
		{`pc LIKE 'HG8245_'`, BoolValue(true)},
		{`pc LIKE 'HG8245__'`, BoolValue(false)},
		{`pc NOT LIKE '%45%'`, BoolValue(false)},
		{`missing LIKE '%'`, NullValue()},
		{`pc LIKE missing`, NullValue()},
		{`pc LIKE '%' ESCAPE missing`, NullValue()},
		{`uptime LIKE '36%'`, BoolValue(true)},
		{`'50%' LIKE '50!%' ESCAPE '!'`, BoolValue(true)},
		{`'500' LIKE '50!%' ESCAPE '!'`, BoolValue(false)},
		{`'a_c' LIKE 'a\_c' ESCAPE '\'`, BoolValue(true)},
		{`'abc' LIKE 'a\_c' ESCAPE '\'`, BoolValue(false)},
		{`'x' LIKE '%' ESCAPE pc`, NullValue()}, // escape is not one character
		{`'é' LIKE '_'`, BoolValue(true)},
		// Concatenation.
		{`'a' || 'b'`, StringValue("ab")},
		{`pc || '-' || uptime`, StringValue("HG8245H-3600")},
		{`'x' || missing`, NullValue()},
		{`'v' || 1.5 || true`, StringValue("v1.5true")},
		// Arithmetic.
		{`1 + 2 * 3`, NumberValue(7)},
		{`(1 + 2) * 3`, NumberValue(9)},
		{`10 - 2 - 3`, NumberValue(5)},
		{`7 / 2`, NumberValue(3.5)},
		{`7 % 3`, NumberValue(1)},
		{`-7 % 3`, NumberValue(-1)},
		{`7.5 % 2.9`, NumberValue(1.5)},
		{`1 / 0`, NullValue()},
		{`1 % 0.5`, NullValue()},
		{`uptime / 60`, NumberValue(60)},
		{`'10' + 1`, NumberValue(11)},
		{`pc + 1`, NullValue()},
		{`missing + 1`, NullValue()},
		{`true + 1`, NumberValue(2)},
		{`1e308 * 10`, NullValue()},
		{`(uptime + 0) = 3600`, BoolValue(true)},
		// Functions.
		{`UPPER(pc)`, StringValue("HG8245H")},
		{`LOWER(pc)`, StringValue("hg8245h")},
		{`UPPER(missing)`, NullValue()},
		{`UPPER(1)`, StringValue("1")},
		{`COALESCE(missing, N, 'x', 'y')`, StringValue("x")},
		{`COALESCE(missing)`, NullValue()},
		{`ROUND(2.5)`, NumberValue(3)},
		{`ROUND(1.2345, 2)`, NumberValue(1.23)},
		{`ROUND(1234, -2)`, NumberValue(1200)},
		{`ROUND(missing)`, NullValue()},
		{`ROUND(1, missing)`, NullValue()},
		{`ROUND(1.5, 99)`, NumberValue(1.5)},
		{`NOW()`, TimeValue(now)},
		// CASE.
		{`CASE WHEN uptime > 100 THEN 'up' ELSE 'down' END`, StringValue("up")},
		{`CASE WHEN missing THEN 1 WHEN F THEN 2 ELSE 3 END`, NumberValue(3)},
		{`CASE WHEN missing THEN 1 END`, NullValue()},
		{`CASE WHEN 'x' THEN 1 END`, NumberValue(1)},
	} {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := e.Eval(env); !got.Equal(tc.want) {
			t.Errorf("%s = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestHolds(t *testing.T) {
	env := testEnv()
	for in, want := range map[string]bool{
		`T`: true, `F`: false, `N`: false, `missing`: false,
		`pc`: true, `empty`: false, `0`: false, `1`: true, `uptime`: true,
		`lastBoot`: true, `'false'`: true, // a string, as in GenieACS
		`missing = 1 OR T`: true, `missing = 1 AND T`: false, `NOT (missing = 1)`: false,
	} {
		if got := MustParse(in).Holds(env); got != want {
			t.Errorf("Holds(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestEvalNilLookupAndZeroNow(t *testing.T) {
	var env Env
	if v := MustParse(`a`).Eval(env); !v.IsNull() {
		t.Fatal(v)
	}
	if v := MustParse(`NOW()`).Eval(env); !v.IsNull() {
		t.Fatal(v)
	}
	if MustParse(`Events.Inform > NOW() - 1000`).Holds(env) {
		t.Fatal("holds without a clock")
	}
}

func TestEvalShortCircuit(t *testing.T) {
	calls := 0
	env := Env{Lookup: func(p string) (Value, bool) { calls++; return BoolValue(p == "t"), true }}
	MustParse(`f AND x AND y`).Eval(env)
	if calls != 1 {
		t.Fatalf("AND looked up %d paths after a false one", calls)
	}
	calls = 0
	MustParse(`t OR x OR y`).Eval(env)
	if calls != 1 {
		t.Fatalf("OR looked up %d paths after a true one", calls)
	}
}

func TestLike(t *testing.T) {
	for _, tc := range []struct {
		s, pat string
		esc    rune
		want   bool
	}{
		{"", "", -1, true},
		{"a", "", -1, false},
		{"", "%", -1, true},
		{"abc", "%", -1, true},
		{"abc", "%%", -1, true},
		{"abc", "abc", -1, true},
		{"abc", "ab", -1, false},
		{"abc", "a%", -1, true},
		{"abc", "%c", -1, true},
		{"abc", "%b%", -1, true},
		{"abc", "a%c", -1, true},
		{"ac", "a%c", -1, true},
		{"a", "a%a", -1, false},
		{"aa", "a%a", -1, true},
		{"abcabc", "%bc%bc", -1, true},
		{"abcab", "%bc%bc", -1, false},
		{"abc", "_b_", -1, true},
		{"abc", "___", -1, true},
		{"abc", "____", -1, false},
		{"abc", "%_", -1, true},
		{"", "_%", -1, false},
		{"mississippi", "%iss%ipp%", -1, true},
		{"mississippi", "m%ss%ss%", -1, true},
		{"mississippi", "m%ss%ss%ss%", -1, false},
		{"x%y", "x!%y", '!', true},
		{"xzy", "x!%y", '!', false},
		{"x!y", "x!!y", '!', true},
		{"ab", "ab!", '!', true}, // a trailing escape is dropped, as GenieACS does
		{"a.b", "a.b", -1, true},
		{"aXb", "a.b", -1, false},
		{"日本語", "日_語", -1, true},
	} {
		if got := like(tc.s, tc.pat, tc.esc); got != tc.want {
			t.Errorf("like(%q, %q, %q) = %v, want %v", tc.s, tc.pat, tc.esc, got, tc.want)
		}
	}
}
