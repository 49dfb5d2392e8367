package expr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestFromJSON(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`null`, `NULL`},
		{`true`, `true`},
		{`1.5`, `1.5`},
		{`"x"`, `"x"`},
		{`["PARAM", "Tags.a"]`, `Tags.a`},
		{`["=", ["PARAM", "a"], 1]`, `a = 1`},
		{`["AND", ["IS NULL", ["PARAM", "a"]], ["<>", ["PARAM", "b"], "x"], ["NOT", ["PARAM", "c"]]]`,
			`a IS NULL AND b <> "x" AND NOT c`},
		{`["OR", ["AND", true, false], ["or", true, false]]`, `true AND false OR (true OR false)`},
		{`["AND", ["PARAM", "a"]]`, `a`},
		{`[">", ["PARAM", "Events.Inform"], ["-", ["FUNC", "now"], 3600000]]`, `Events.Inform > NOW() - 3600000`},
		{`["+", 1, 2, 3]`, `1 + 2 + 3`},
		{`["-", 10, ["-", 2, 3]]`, `10 - (2 - 3)`},
		{`["||", "a", ["PARAM", "b"], 1]`, `"a" || b || 1`},
		{`["LIKE", ["PARAM", "a"], "x%"]`, `a LIKE "x%"`},
		{`["NOT LIKE", ["PARAM", "a"], "x!%", "!"]`, `a NOT LIKE "x!%" ESCAPE "!"`},
		{`["IS NOT NULL", ["FUNC", "UPPER", ["PARAM", "a"]]]`, `UPPER(a) IS NOT NULL`},
		{`["CASE", ["PARAM", "a"], 1, true, 2]`, `CASE WHEN a THEN 1 WHEN true THEN 2 END`},
		{`["=", ["=", 1, 1], true]`, `(1 = 1) = true`},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		e, err := FromJSON(v)
		if err != nil {
			t.Errorf("FromJSON(%s): %v", tc.in, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("FromJSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if _, err := Parse(e.String()); err != nil {
			t.Errorf("FromJSON(%s) printed %s, which does not parse: %v", tc.in, e.String(), err)
		}
	}
}

func TestFromJSONErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{`{}`, "map[string]interface {} is neither a literal"},
		{`[]`, "empty array"},
		{`[1, 2]`, "[0]: the operator must be a string"},
		{`["BOGUS", 1]`, `[0]: unknown operator "BOGUS"`},
		{`["PARAM"]`, "PARAM takes 1 argument, not 0"},
		{`["PARAM", 1]`, "[1]: a parameter path must be a string"},
		{`["PARAM", "a..b"]`, "empty segment"},
		{`["PARAM", "AND"]`, "is a keyword"},
		{`["PARAM", "a = 1"]`, "is not a parameter path"},
		{`["FUNC"]`, "FUNC needs a function name"},
		{`["FUNC", "EXT", 1]`, "unknown function EXT"},
		{`["FUNC", "NOW", 1]`, "NOW takes 0 arguments, not 1"},
		{`["=", 1]`, "= takes 2 arguments, not 1"},
		{`["AND"]`, "AND takes at least 1 argument, not 0"},
		{`["+", 1]`, "+ takes at least 2 arguments, not 1"},
		{`["LIKE", "a", "b", "cd"]`, "[3]: ESCAPE takes a string of one character"},
		{`["CASE", true]`, "CASE takes condition/result pairs"},
		{`["=", ["PARAM", "a"], ["BOGUS"]]`, `[2][0]: unknown operator`},
		{`["=", 1, {"a": 1}]`, `[2]: map[string]interface {}`},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		_, err := FromJSON(v)
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("FromJSON(%s) = %v, want an ErrSyntax containing %q", tc.in, err, tc.msg)
		}
	}
	// Bounds.
	deep := any(1.0)
	for range MaxDepth + 1 {
		deep = []any{"NOT", deep}
	}
	if _, err := FromJSON(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("deep: %v", err)
	}
	wide := []any{"+"}
	for range MaxNodes + 1 {
		wide = append(wide, 1.0)
	}
	if _, err := FromJSON(wide); err == nil || !strings.Contains(err.Error(), "more than 4096 terms") {
		t.Fatalf("wide: %v", err)
	}
	if _, err := FromJSON(json.Number("1e999")); err == nil {
		t.Fatal("1e999 accepted")
	}
	if e, err := FromJSON(json.Number("12")); err != nil || e.String() != "12" {
		t.Fatal(e, err)
	}
	if e, err := FromJSON(uint64(7)); err != nil || e.String() != "7" {
		t.Fatal(e, err)
	}
	if _, ok := LiteralJSON([]any{}); ok {
		t.Fatal("array is a literal")
	}
}
