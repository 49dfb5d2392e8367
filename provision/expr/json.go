package expr

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// FromJSON converts an expression in the array form GenieACS stores and
// passes around (lib/common/expression: ["=", ["PARAM", "Tags.x"], true],
// ["FUNC", "NOW"], n-ary ["AND", a, b, c]) into an Expr. A scalar (nil,
// bool, number, string) is that literal. It accepts what encoding/json and
// the CBOR decoder produce (float64, json.Number, integers, []any) and
// holds the result to the same bounds as Parse. Errors wrap ErrSyntax and
// say where in the array the problem is, e.g. "[2][1]".
func FromJSON(v any) (*Expr, error) {
	c := &jsonConv{}
	n, err := c.conv(v, "", 0)
	if err != nil {
		return nil, err
	}
	return newExpr(n), nil
}

type jsonConv struct{ nodes int }

func (c *jsonConv) fail(at, format string, args ...any) error {
	if at == "" {
		at = "expression"
	}
	return fmt.Errorf("%w: %s: %s", ErrSyntax, at, fmt.Sprintf(format, args...))
}

func (c *jsonConv) conv(v any, at string, depth int) (*node, error) {
	c.nodes++
	if c.nodes > MaxNodes {
		return nil, c.fail(at, "more than %d terms", MaxNodes)
	}
	if depth > MaxDepth {
		return nil, c.fail(at, "nested more than %d deep", MaxDepth)
	}
	if lit, ok, err := jsonScalar(v); ok {
		return &node{op: opLit, val: lit}, nil
	} else if err != nil {
		return nil, c.fail(at, "%v", err)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, c.fail(at, "%T is neither a literal nor an [operator, ...] array", v)
	}
	if len(arr) == 0 {
		return nil, c.fail(at, "empty array")
	}
	name, ok := arr[0].(string)
	if !ok {
		return nil, c.fail(at+"[0]", "the operator must be a string")
	}
	args := arr[1:]
	kids := func(from int) ([]*node, error) {
		out := make([]*node, 0, len(args)-from)
		for i := from; i < len(args); i++ {
			k, err := c.conv(args[i], fmt.Sprintf("%s[%d]", at, i+1), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		return out, nil
	}
	want := func(lo, hi int) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			return c.fail(at, "%s takes %s, not %d", name, arityText(lo, hi), len(args))
		}
		return nil
	}
	opName := strings.ToUpper(name)
	switch opName {
	case "PARAM":
		if err := want(1, 1); err != nil {
			return nil, err
		}
		p, ok := args[0].(string)
		if !ok {
			return nil, c.fail(at+"[1]", "a parameter path must be a string")
		}
		if err := checkPath(p); err != nil {
			return nil, c.fail(at+"[1]", "%v", err)
		}
		return &node{op: opParam, name: p}, nil
	case "FUNC":
		if len(args) == 0 {
			return nil, c.fail(at, "FUNC needs a function name")
		}
		fn, ok := args[0].(string)
		if !ok {
			return nil, c.fail(at+"[1]", "a function name must be a string")
		}
		fn = strings.ToUpper(fn)
		arity, known := funcs[fn]
		if !known {
			return nil, c.fail(at+"[1]", "unknown function %s", clip(fn))
		}
		ks, err := kids(1)
		if err != nil {
			return nil, err
		}
		if len(ks) < arity.min || (arity.max >= 0 && len(ks) > arity.max) {
			return nil, c.fail(at, "%s takes %s, not %d", fn, arityText(arity.min, arity.max), len(ks))
		}
		return &node{op: opFunc, name: fn, kids: ks}, nil
	case "AND", "OR":
		if err := want(1, -1); err != nil {
			return nil, err
		}
		ks, err := kids(0)
		if err != nil {
			return nil, err
		}
		if len(ks) == 1 {
			return ks[0], nil
		}
		o := opAnd
		if opName == "OR" {
			o = opOr
		}
		return &node{op: o, kids: ks}, nil
	case "NOT", "IS NULL", "IS NOT NULL":
		if err := want(1, 1); err != nil {
			return nil, err
		}
		ks, err := kids(0)
		if err != nil {
			return nil, err
		}
		return &node{op: map[string]op{"NOT": opNot, "IS NULL": opIsNull, "IS NOT NULL": opIsNotNull}[opName], kids: ks}, nil
	case "=", "<>", "<", "<=", ">", ">=":
		if err := want(2, 2); err != nil {
			return nil, err
		}
		ks, err := kids(0)
		if err != nil {
			return nil, err
		}
		return &node{op: cmpOps[opName], kids: ks}, nil
	case "LIKE", "NOT LIKE":
		if err := want(2, 3); err != nil {
			return nil, err
		}
		ks, err := kids(0)
		if err != nil {
			return nil, err
		}
		if len(ks) == 3 && ks[2].op == opLit {
			if s := ks[2].val; s.kind != KindString || len([]rune(s.s)) != 1 {
				return nil, c.fail(at+"[3]", "ESCAPE takes a string of one character")
			}
		}
		o := opLike
		if opName == "NOT LIKE" {
			o = opNotLike
		}
		return &node{op: o, kids: ks}, nil
	case "||", "+", "-", "*", "/", "%":
		if err := want(2, -1); err != nil {
			return nil, err
		}
		ks, err := kids(0)
		if err != nil {
			return nil, err
		}
		o := map[string]op{"||": opConcat, "+": opAdd, "-": opSub, "*": opMul, "/": opDiv, "%": opMod}[opName]
		n := ks[0]
		for _, k := range ks[1:] {
			n = &node{op: o, kids: []*node{n, k}}
		}
		return n, nil
	case "CASE":
		if len(args) < 2 || len(args)%2 != 0 {
			return nil, c.fail(at, "CASE takes condition/result pairs")
		}
		ks, err := kids(0)
		if err != nil {
			return nil, err
		}
		return &node{op: opCase, kids: ks}, nil
	}
	return nil, c.fail(at+"[0]", "unknown operator %q", clip(name))
}

// jsonScalar converts a decoded JSON or CBOR scalar. ok is false for
// arrays and maps; err is set for a scalar that is not a usable number.
func jsonScalar(v any) (lit Value, ok bool, err error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return Value{}, true, nil
	case bool:
		return BoolValue(x), true, nil
	case string:
		return StringValue(x), true, nil
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case json.Number:
		g, perr := x.Float64()
		if perr != nil {
			return Value{}, false, fmt.Errorf("number %s is out of range", clip(x.String()))
		}
		f = g
	default:
		return Value{}, false, nil
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Value{}, false, fmt.Errorf("number is not finite")
	}
	return NumberValue(f), true, nil
}

// LiteralJSON converts a decoded JSON or CBOR scalar (nil, bool, number,
// string) to a Value; ok is false for anything else.
func LiteralJSON(v any) (Value, bool) {
	lit, ok, err := jsonScalar(v)
	return lit, ok && err == nil
}

// CheckPath reports whether p is a parameter path an expression can name,
// with the same rules Parse applies.
func CheckPath(p string) error { return checkPath(p) }

func checkPath(p string) (err error) {
	if p == "" {
		return fmt.Errorf("empty parameter path")
	}
	if len(p) > MaxLen {
		return fmt.Errorf("parameter path is longer than %d bytes", MaxLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("parameter path is not valid UTF-8")
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("parameter path %q: %s (at byte %d)", clip(p), e.Msg, e.Offset)
		}
	}()
	if !isPathStart(p[0]) {
		return fmt.Errorf("parameter path %q must start with a letter or '_'", clip(p))
	}
	toks := lex(p)
	if len(toks) != 2 || toks[0].kind != tWord || toks[0].end != len(p) {
		return fmt.Errorf("%q is not a parameter path", clip(p))
	}
	if isSimpleWord(p) && keywords[strings.ToUpper(p)] {
		return fmt.Errorf("%q is a keyword, not a parameter path", p)
	}
	return nil
}
