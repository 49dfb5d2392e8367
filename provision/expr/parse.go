package expr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Bounds on what Parse accepts. An expression is evaluated once per preset
// per session on an edge serving many devices, so its size is capped: at
// these bounds one evaluation costs a few thousand steps.
const (
	MaxLen   = 16 << 10 // bytes of source
	MaxDepth = 64       // nested parentheses, NOT, function calls and CASE
	MaxNodes = 4096     // literals, parameters, operators and calls
)

// ErrSyntax is wrapped by every error Parse and FromJSON return, so a
// caller can answer 400 for all of them with one errors.Is.
var ErrSyntax = errors.New("invalid expression")

// Error is a parse error with its position in the source. Offset is the
// 0-based byte offset (for slicing); Line and Column are 1-based, the
// column counted in characters, for people.
type Error struct {
	Offset, Line, Column int
	Msg                  string
}

// Error formats the position for people: "line 2, column 5: ...".
func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Unwrap makes errors.Is(err, ErrSyntax) hold.
func (e *Error) Unwrap() error { return ErrSyntax }

func newError(src string, off int, msg string) *Error {
	off = min(max(off, 0), len(src))
	line, col := 1, 1
	for _, r := range src[:off] {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Offset: off, Line: line, Column: col, Msg: msg}
}

type op uint8

const (
	opLit op = iota
	opParam
	opFunc
	opNot
	opAnd
	opOr
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opIsNull
	opIsNotNull
	opLike
	opNotLike
	opConcat
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opCase
)

var opText = map[op]string{
	opAnd: "AND", opOr: "OR", opNot: "NOT",
	opEq: "=", opNe: "<>", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=",
	opIsNull: "IS NULL", opIsNotNull: "IS NOT NULL", opLike: "LIKE", opNotLike: "NOT LIKE",
	opConcat: "||", opAdd: "+", opSub: "-", opMul: "*", opDiv: "/", opMod: "%",
}

var cmpOps = map[string]op{"=": opEq, "<>": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}

// node is one expression node. Literals hold val, parameters and calls
// name; LIKE's kids are subject, pattern and an optional escape; CASE's
// are condition/result pairs and an optional trailing ELSE result.
type node struct {
	op   op
	val  Value
	name string
	kids []*node
}

// funcs are the functions the language knows, with their arity (max -1:
// any number).
var funcs = map[string]struct{ min, max int }{
	"NOW":      {0, 0},
	"UPPER":    {1, 1},
	"LOWER":    {1, 1},
	"COALESCE": {1, -1},
	"ROUND":    {1, 2},
}

// Expr is a parsed expression. It is immutable and safe for concurrent use.
type Expr struct {
	root  *node
	paths []string
}

// bail is what the parser panics with; Parse recovers only this.
type bail struct{ err *Error }

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
	nodes int
}

// Parse parses a GenieACS expression (a preset precondition, a provision
// argument). Every error is an *Error with the position of the problem and
// wraps ErrSyntax.
func Parse(s string) (e *Expr, err error) {
	if len(s) > MaxLen {
		return nil, newError(s, MaxLen, fmt.Sprintf("expression is longer than %d bytes", MaxLen))
	}
	if !utf8.ValidString(s) {
		off := 0
		for off < len(s) {
			r, size := utf8.DecodeRuneInString(s[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		return nil, newError(s, off, "expression is not valid UTF-8")
	}
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				panic(r)
			}
			e, err = nil, b.err
		}
	}()
	p := &parser{src: s}
	p.toks = lexAll(s)
	if p.peek().kind == tEOF {
		p.fail(p.peek().pos, "empty expression")
	}
	root := p.parseOr()
	if t := p.peek(); t.kind != tEOF {
		p.fail(t.pos, "unexpected %s after a complete expression", t.describe())
	}
	return newExpr(root), nil
}

// MustParse is Parse for expressions known to be valid (tests, constants);
// it panics on an error.
func MustParse(s string) *Expr {
	e, err := Parse(s)
	if err != nil {
		panic(fmt.Sprintf("expr.MustParse(%q): %v", s, err))
	}
	return e
}

// lexAll runs the lexer, turning its panic into the parser's.
func lexAll(s string) []token {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(*Error); ok {
				panic(bail{e})
			}
			panic(r)
		}
	}()
	return lex(s)
}

func newExpr(root *node) *Expr {
	e := &Expr{root: root}
	var walk func(n *node)
	walk = func(n *node) {
		if n.op == opParam && !slices.Contains(e.paths, n.name) {
			e.paths = append(e.paths, n.name)
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	walk(root)
	return e
}

func (p *parser) fail(pos int, format string, args ...any) {
	panic(bail{newError(p.src, pos, fmt.Sprintf(format, args...))})
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// isKw reports whether t is the keyword kw (given in upper case).
func isKw(t token, kw string) bool {
	return t.kind == tWord && len(t.text) == len(kw) && strings.EqualFold(t.text, kw)
}

func isOp(t token, text string) bool { return t.kind == tOp && t.text == text }

func (p *parser) node(pos int, n *node) *node {
	p.nodes++
	if p.nodes > MaxNodes {
		p.fail(pos, "expression has more than %d terms", MaxNodes)
	}
	return n
}

func (p *parser) enter(pos int) {
	p.depth++
	if p.depth > MaxDepth {
		p.fail(pos, "expression is nested more than %d deep", MaxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseOr() *node {
	first := p.peek().pos
	n := p.parseAnd()
	if !isKw(p.peek(), "OR") {
		return n
	}
	kids := []*node{n}
	for isKw(p.peek(), "OR") {
		p.next()
		kids = append(kids, p.parseAnd())
	}
	return p.node(first, &node{op: opOr, kids: kids})
}

func (p *parser) parseAnd() *node {
	first := p.peek().pos
	n := p.parseNot()
	if !isKw(p.peek(), "AND") {
		return n
	}
	kids := []*node{n}
	for isKw(p.peek(), "AND") {
		p.next()
		kids = append(kids, p.parseNot())
	}
	return p.node(first, &node{op: opAnd, kids: kids})
}

func (p *parser) parseNot() *node {
	t := p.peek()
	if !isKw(t, "NOT") {
		return p.parseCmp()
	}
	p.next()
	p.enter(t.pos)
	operand := p.parseNot()
	p.leave()
	return p.node(t.pos, &node{op: opNot, kids: []*node{operand}})
}

// parseCmp reads one comparison: GenieACS's comparisons do not chain.
func (p *parser) parseCmp() *node {
	left := p.parseConcat()
	t := p.peek()
	var n *node
	switch {
	case t.kind == tOp && cmpOps[t.text] != 0:
		p.next()
		n = &node{op: cmpOps[t.text], kids: []*node{left, p.parseConcat()}}
	case isKw(t, "IS"):
		p.next()
		o := opIsNull
		if isKw(p.peek(), "NOT") {
			p.next()
			o = opIsNotNull
		}
		if nt := p.next(); !isKw(nt, "NULL") {
			p.fail(nt.pos, "expected NULL after IS, found %s", nt.describe())
		}
		n = &node{op: o, kids: []*node{left}}
	case isKw(t, "NOT") && isKw(p.peekAt(1), "LIKE"):
		p.next()
		p.next()
		n = p.likeRest(opNotLike, left)
	case isKw(t, "LIKE"):
		p.next()
		n = p.likeRest(opLike, left)
	case isKw(t, "NOT"):
		p.fail(t.pos, "unexpected NOT after a value (did you mean NOT LIKE or IS NOT NULL?)")
	default:
		return left
	}
	n = p.node(t.pos, n)
	if nt := p.peek(); (nt.kind == tOp && cmpOps[nt.text] != 0) || isKw(nt, "IS") || isKw(nt, "LIKE") ||
		(isKw(nt, "NOT") && isKw(p.peekAt(1), "LIKE")) {
		p.fail(nt.pos, "comparisons do not chain: combine them with AND, or parenthesize one")
	}
	return n
}

func (p *parser) likeRest(o op, subject *node) *node {
	kids := []*node{subject, p.parseConcat()}
	if t := p.peek(); isKw(t, "ESCAPE") {
		p.next()
		et := p.peek()
		esc := p.parseConcat()
		if esc.op == opLit {
			if s, ok := esc.val.s, esc.val.kind == KindString; !ok || utf8.RuneCountInString(s) != 1 {
				p.fail(et.pos, "ESCAPE takes a string of one character")
			}
		}
		kids = append(kids, esc)
	}
	return &node{op: o, kids: kids}
}

func (p *parser) parseConcat() *node {
	n := p.parseAdd()
	for t := p.peek(); isOp(t, "||"); t = p.peek() {
		p.next()
		n = p.node(t.pos, &node{op: opConcat, kids: []*node{n, p.parseAdd()}})
	}
	return n
}

func (p *parser) parseAdd() *node {
	n := p.parseMul()
	for t := p.peek(); isOp(t, "+") || isOp(t, "-"); t = p.peek() {
		p.next()
		o := opAdd
		if t.text == "-" {
			o = opSub
		}
		n = p.node(t.pos, &node{op: o, kids: []*node{n, p.parseMul()}})
	}
	return n
}

func (p *parser) parseMul() *node {
	n := p.parsePrimary()
	for t := p.peek(); isOp(t, "*") || isOp(t, "/") || isOp(t, "%"); t = p.peek() {
		p.next()
		o := opMul
		switch t.text {
		case "/":
			o = opDiv
		case "%":
			o = opMod
		}
		n = p.node(t.pos, &node{op: o, kids: []*node{n, p.parsePrimary()}})
	}
	return n
}

func (p *parser) parsePrimary() *node {
	t := p.next()
	switch t.kind {
	case tNum:
		return p.node(t.pos, &node{op: opLit, val: NumberValue(t.num)})
	case tStr:
		return p.node(t.pos, &node{op: opLit, val: StringValue(t.str)})
	case tEOF:
		p.fail(t.pos, "unexpected end of expression (a value is missing)")
	case tOp:
		switch t.text {
		case "-":
			// GenieACS has negative number literals, not a unary minus.
			if nt := p.peek(); nt.kind == tNum && nt.pos == t.end {
				p.next()
				return p.node(t.pos, &node{op: opLit, val: NumberValue(-nt.num)})
			}
			p.fail(t.pos, "a minus sign is only allowed directly before a number (write 0 - x to negate)")
		case "(":
			p.enter(t.pos)
			n := p.parseOr()
			if ct := p.next(); !isOp(ct, ")") {
				p.fail(ct.pos, "expected ')' to close the '(' at column %d, found %s",
					newError(p.src, t.pos, "").Column, ct.describe())
			}
			p.leave()
			return n
		}
		p.fail(t.pos, "unexpected %s where a value belongs", t.describe())
	case tWord:
		if isSimpleWord(t.text) {
			switch kw := strings.ToUpper(t.text); {
			case kw == "TRUE" || kw == "FALSE":
				return p.node(t.pos, &node{op: opLit, val: BoolValue(kw == "TRUE")})
			case kw == "NULL":
				return p.node(t.pos, &node{op: opLit})
			case kw == "CASE":
				return p.parseCase(t)
			case keywords[kw]:
				p.fail(t.pos, "unexpected %s where a value belongs", kw)
			case isOp(p.peek(), "("):
				return p.parseCall(t)
			}
		}
		return p.node(t.pos, &node{op: opParam, name: t.text})
	}
	panic("unreachable")
}

func (p *parser) parseCall(name token) *node {
	fn := strings.ToUpper(name.text)
	arity, ok := funcs[fn]
	if !ok {
		p.fail(name.pos, "unknown function %s (known: COALESCE, LOWER, NOW, ROUND, UPPER)", clip(name.text))
	}
	p.next() // (
	p.enter(name.pos)
	var args []*node
	if !isOp(p.peek(), ")") {
		for {
			args = append(args, p.parseOr())
			if !isOp(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	if t := p.next(); !isOp(t, ")") {
		p.fail(t.pos, "expected ',' or ')' in the call to %s, found %s", fn, t.describe())
	}
	p.leave()
	if len(args) < arity.min || (arity.max >= 0 && len(args) > arity.max) {
		p.fail(name.pos, "%s takes %s, not %d", fn, arityText(arity.min, arity.max), len(args))
	}
	return p.node(name.pos, &node{op: opFunc, name: fn, kids: args})
}

func arityText(lo, hi int) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case lo == hi:
		return plural(lo)
	case hi < 0:
		return "at least " + plural(lo)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

func (p *parser) parseCase(kw token) *node {
	p.enter(kw.pos)
	var kids []*node
	for isKw(p.peek(), "WHEN") {
		p.next()
		kids = append(kids, p.parseOr())
		if t := p.next(); !isKw(t, "THEN") {
			p.fail(t.pos, "expected THEN, found %s", t.describe())
		}
		kids = append(kids, p.parseOr())
	}
	if len(kids) == 0 {
		p.fail(p.peek().pos, "CASE needs at least one WHEN ... THEN ...")
	}
	if isKw(p.peek(), "ELSE") {
		p.next()
		kids = append(kids, p.parseOr())
	}
	if t := p.next(); !isKw(t, "END") {
		p.fail(t.pos, "expected WHEN, ELSE or END in CASE, found %s", t.describe())
	}
	p.leave()
	return p.node(kw.pos, &node{op: opCase, kids: kids})
}

// Paths returns the parameter paths e reads, each once, in order of first
// appearance, as written (wildcards and alias filters included). The edge
// fetches the missing ones from the CPE before evaluating.
func (e *Expr) Paths() []string { return slices.Clone(e.paths) }

// Literal returns e's value if e is a single literal.
func (e *Expr) Literal() (Value, bool) {
	if e.root.op == opLit {
		return e.root.val, true
	}
	return Value{}, false
}

// Lit returns the expression that is the literal v. A time prints (and so
// re-parses) as its ISO 8601 string.
func Lit(v Value) *Expr { return newExpr(&node{op: opLit, val: v}) }
