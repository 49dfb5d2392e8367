package expr

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Env is what an expression is evaluated against.
type Env struct {
	// Lookup returns a parameter's value by the path as Paths lists it; ok
	// false (or a nil Lookup) makes it NULL. For a path with wildcards or
	// alias filters, GenieACS uses the first parameter that matches, so
	// should Lookup. DeviceID.* (ID, Manufacturer, OUI, ProductClass,
	// SerialNumber), Tags.<tag> (true when set), Events.<code> (the time of
	// the last such event, e.g. Events.0_BOOTSTRAP, Events.Inform) are
	// Lookup's to provide, as GenieACS does.
	Lookup func(path string) (Value, bool)
	// Now is what NOW() returns; the zero time makes NOW() NULL.
	Now time.Time
}

// MapEnv is an Env over a fixed map of values, for tests and callers that
// have fetched every path already.
func MapEnv(m map[string]Value, now time.Time) Env {
	return Env{Lookup: func(p string) (Value, bool) { v, ok := m[p]; return v, ok }, Now: now}
}

// Eval evaluates e with SQL's three-valued logic: NULL (a missing
// parameter) propagates through comparisons, arithmetic and functions;
// AND is false if any operand is false, else NULL if any is NULL; OR is
// true if any is true, else NULL if any is NULL. AND and OR stop at the
// first operand that decides them. Eval never fails: what cannot be
// computed (division by zero, arithmetic on a non-numeric string) is NULL.
func (e *Expr) Eval(env Env) Value { return eval(e.root, &env) }

// Holds evaluates e as a condition: true only if the result is known and
// true (NULL and false both fail). A non-boolean result counts as GenieACS
// counts it: a non-zero number, a non-empty string and a time are true.
func (e *Expr) Holds(env Env) bool { return e.Eval(env).IsTrue() }

func eval(n *node, env *Env) Value {
	switch n.op {
	case opLit:
		return n.val
	case opParam:
		if env.Lookup == nil {
			return Value{}
		}
		if v, ok := env.Lookup(n.name); ok {
			return v
		}
		return Value{}
	case opNot:
		b, known := eval(n.kids[0], env).Truth()
		if !known {
			return Value{}
		}
		return BoolValue(!b)
	case opAnd:
		unknown := false
		for _, k := range n.kids {
			b, known := eval(k, env).Truth()
			switch {
			case !known:
				unknown = true
			case !b:
				return BoolValue(false)
			}
		}
		if unknown {
			return Value{}
		}
		return BoolValue(true)
	case opOr:
		unknown := false
		for _, k := range n.kids {
			b, known := eval(k, env).Truth()
			switch {
			case !known:
				unknown = true
			case b:
				return BoolValue(true)
			}
		}
		if unknown {
			return Value{}
		}
		return BoolValue(false)
	case opEq, opNe, opLt, opLe, opGt, opGe:
		c, ok := Compare(eval(n.kids[0], env), eval(n.kids[1], env))
		if !ok {
			return Value{}
		}
		switch n.op {
		case opEq:
			return BoolValue(c == 0)
		case opNe:
			return BoolValue(c != 0)
		case opLt:
			return BoolValue(c < 0)
		case opLe:
			return BoolValue(c <= 0)
		case opGt:
			return BoolValue(c > 0)
		}
		return BoolValue(c >= 0)
	case opIsNull:
		return BoolValue(eval(n.kids[0], env).IsNull())
	case opIsNotNull:
		return BoolValue(!eval(n.kids[0], env).IsNull())
	case opLike, opNotLike:
		s, pat := eval(n.kids[0], env), eval(n.kids[1], env)
		if s.IsNull() || pat.IsNull() {
			return Value{}
		}
		var esc rune = -1
		if len(n.kids) == 3 {
			ev := eval(n.kids[2], env)
			if ev.IsNull() {
				return Value{}
			}
			t := ev.Text()
			r, size := utf8.DecodeRuneInString(t)
			if size == 0 || size != len(t) {
				return Value{}
			}
			esc = r
		}
		m := like(s.Text(), pat.Text(), esc)
		return BoolValue(m == (n.op == opLike))
	case opConcat:
		a, b := eval(n.kids[0], env), eval(n.kids[1], env)
		if a.IsNull() || b.IsNull() {
			return Value{}
		}
		return StringValue(a.Text() + b.Text())
	case opAdd, opSub, opMul, opDiv, opMod:
		return arith(n.op, eval(n.kids[0], env), eval(n.kids[1], env))
	case opFunc:
		return call(n, env)
	case opCase:
		k := n.kids
		for ; len(k) >= 2; k = k[2:] {
			if eval(k[0], env).IsTrue() {
				return eval(k[1], env)
			}
		}
		if len(k) == 1 {
			return eval(k[0], env)
		}
		return Value{}
	}
	panic("expr: unknown node")
}

// arith applies an arithmetic operator. Operands convert as Value.Number
// does (a time is its milliseconds, so NOW() - 3600000 is an hour ago);
// GenieACS reads a non-numeric string as 0, edgeacs as NULL, so that a
// typo never quietly compares against zero.
func arith(o op, a, b Value) Value {
	x, okA := a.Number()
	y, okB := b.Number()
	if !okA || !okB {
		return Value{}
	}
	switch o {
	case opAdd:
		return NumberValue(x + y)
	case opSub:
		return NumberValue(x - y)
	case opMul:
		return NumberValue(x * y)
	case opDiv:
		if y == 0 {
			return Value{}
		}
		return NumberValue(x / y)
	}
	// %, as GenieACS: the divisor truncated to an integer, the sign of the
	// dividend, NULL for a zero divisor.
	y = math.Trunc(y)
	if y == 0 {
		return Value{}
	}
	return NumberValue(math.Mod(x, y))
}

func call(n *node, env *Env) Value {
	switch n.name {
	case "NOW":
		return TimeValue(env.Now)
	case "COALESCE":
		for _, k := range n.kids {
			if v := eval(k, env); !v.IsNull() {
				return v
			}
		}
		return Value{}
	case "UPPER", "LOWER":
		v := eval(n.kids[0], env)
		if v.IsNull() {
			return v
		}
		if n.name == "UPPER" {
			return StringValue(strings.ToUpper(v.Text()))
		}
		return StringValue(strings.ToLower(v.Text()))
	case "ROUND":
		x, ok := eval(n.kids[0], env).Number()
		if !ok {
			return Value{}
		}
		digits := 0.0
		if len(n.kids) > 1 {
			d, ok := eval(n.kids[1], env).Number()
			if !ok {
				return Value{}
			}
			digits = math.Trunc(d)
		}
		if digits > 15 || digits < -15 {
			return NumberValue(x)
		}
		scale := math.Pow(10, digits)
		return NumberValue(math.Round(x*scale) / scale)
	}
	panic("expr: unknown function " + n.name)
}

// like matches s against a LIKE pattern: % is any run of characters, _
// exactly one, esc (if not -1) makes the next character literal. It is
// case-sensitive, as GenieACS's. Matching works on whole segments between
// %s (leftmost match of each is optimal), so it is linear in practice and
// O(len(s)·len(pattern)) at worst, both bounded.
func like(s, pattern string, esc rune) bool {
	type elem struct {
		r   rune
		any bool // '_'
	}
	// Split the pattern into segments separated by %.
	var segs [][]elem
	var cur []elem
	leadingPct, trailingPct := false, false
	pr := []rune(pattern)
	for i := 0; i < len(pr); i++ {
		c := pr[i]
		switch {
		case c == esc && esc >= 0:
			if i+1 < len(pr) {
				i++
				cur = append(cur, elem{r: pr[i]})
			}
			trailingPct = false
		case c == '%':
			if len(segs) == 0 && cur == nil {
				leadingPct = true
			}
			if cur != nil {
				segs = append(segs, cur)
				cur = nil
			}
			trailingPct = true
		case c == '_':
			cur = append(cur, elem{any: true})
			trailingPct = false
		default:
			cur = append(cur, elem{r: c})
			trailingPct = false
		}
	}
	if cur != nil {
		segs = append(segs, cur)
	}
	sr := []rune(s)
	matchAt := func(seg []elem, at int) bool {
		if at+len(seg) > len(sr) {
			return false
		}
		for j, e := range seg {
			if !e.any && sr[at+j] != e.r {
				return false
			}
		}
		return true
	}
	if len(segs) == 0 {
		return leadingPct || len(sr) == 0
	}
	pos := 0
	first, last := 0, len(segs)
	if !leadingPct {
		if !matchAt(segs[0], 0) {
			return false
		}
		pos = len(segs[0])
		first = 1
	}
	if !trailingPct {
		lastSeg := segs[len(segs)-1]
		if first == len(segs) {
			// One segment, anchored at both ends.
			return pos == len(sr)
		}
		end := len(sr) - len(lastSeg)
		if end < pos || !matchAt(lastSeg, end) {
			return false
		}
		sr = sr[:end]
		last--
	}
	for _, seg := range segs[first:last] {
		found := false
		for at := pos; at+len(seg) <= len(sr); at++ {
			if matchAt(seg, at) {
				pos = at + len(seg)
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
