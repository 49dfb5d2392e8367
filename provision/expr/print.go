package expr

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Precedence levels, loosest first, as GenieACS's grammar has them.
const (
	lvOr = iota + 1
	lvAnd
	lvNot
	lvCmp
	lvConcat
	lvAdd
	lvMul
	lvPrimary
)

func level(n *node) int {
	switch n.op {
	case opOr:
		return lvOr
	case opAnd:
		return lvAnd
	case opNot:
		return lvNot
	case opEq, opNe, opLt, opLe, opGt, opGe, opIsNull, opIsNotNull, opLike, opNotLike:
		return lvCmp
	case opConcat:
		return lvConcat
	case opAdd, opSub:
		return lvAdd
	case opMul, opDiv, opMod:
		return lvMul
	}
	return lvPrimary
}

// String prints e in a normalized form: keywords and function names in
// upper case, strings double-quoted, numbers in their shortest form, one
// space around operators, parentheses only where precedence needs them.
// Parsing the result gives back an expression that prints the same.
func (e *Expr) String() string {
	var b strings.Builder
	write(&b, e.root)
	return b.String()
}

// writeIn writes n, parenthesized if its level is below min.
func writeIn(b *strings.Builder, n *node, min int) {
	if level(n) < min {
		b.WriteByte('(')
		write(b, n)
		b.WriteByte(')')
		return
	}
	write(b, n)
}

func write(b *strings.Builder, n *node) {
	switch n.op {
	case opLit:
		writeLit(b, n.val)
	case opParam:
		b.WriteString(n.name)
	case opFunc:
		b.WriteString(n.name)
		b.WriteByte('(')
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(", ")
			}
			write(b, k)
		}
		b.WriteByte(')')
	case opAnd, opOr:
		lv := level(n)
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(" " + opText[n.op] + " ")
			}
			writeIn(b, k, lv+1)
		}
	case opNot:
		b.WriteString("NOT ")
		writeIn(b, n.kids[0], lvNot)
	case opEq, opNe, opLt, opLe, opGt, opGe:
		writeIn(b, n.kids[0], lvCmp+1)
		b.WriteString(" " + opText[n.op] + " ")
		writeIn(b, n.kids[1], lvCmp+1)
	case opIsNull, opIsNotNull:
		writeIn(b, n.kids[0], lvCmp+1)
		b.WriteString(" " + opText[n.op])
	case opLike, opNotLike:
		writeIn(b, n.kids[0], lvCmp+1)
		b.WriteString(" " + opText[n.op] + " ")
		writeIn(b, n.kids[1], lvCmp+1)
		if len(n.kids) == 3 {
			b.WriteString(" ESCAPE ")
			writeIn(b, n.kids[2], lvCmp+1)
		}
	case opConcat, opAdd, opSub, opMul, opDiv, opMod:
		lv := level(n)
		writeIn(b, n.kids[0], lv) // left-associative: a - b - c
		b.WriteString(" " + opText[n.op] + " ")
		writeIn(b, n.kids[1], lv+1)
	case opCase:
		b.WriteString("CASE")
		k := n.kids
		for ; len(k) >= 2; k = k[2:] {
			b.WriteString(" WHEN ")
			write(b, k[0])
			b.WriteString(" THEN ")
			write(b, k[1])
		}
		if len(k) == 1 {
			b.WriteString(" ELSE ")
			write(b, k[0])
		}
		b.WriteString(" END")
	}
}

func writeLit(b *strings.Builder, v Value) {
	switch v.kind {
	case KindNull:
		b.WriteString("NULL")
	case KindBool:
		b.WriteString(strconv.FormatBool(v.b))
	case KindNumber:
		b.WriteString(formatNumber(v.n))
	default:
		b.WriteString(quote(v.Text()))
	}
}

// quote writes s as a double-quoted string the lexer reads back: JSON
// escapes for quotes, backslashes and control characters, everything else
// as is.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\ufffd`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
