package expr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF  tokKind = iota
	tNum          // an unsigned number literal (a leading '-' is its own token)
	tStr          // a quoted string, decoded into str
	tWord         // a keyword, function name or parameter path
	tOp           // an operator or punctuation, in text
)

type token struct {
	kind     tokKind
	pos, end int // byte offsets into the source
	text     string
	str      string
	num      float64
}

// describe names a token in an error message.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tNum:
		return "number " + t.text
	case tStr:
		return "string " + clip(t.text)
	case tWord:
		if isSimpleWord(t.text) && keywords[strings.ToUpper(t.text)] {
			return strings.ToUpper(t.text)
		}
		return "parameter " + clip(t.text)
	}
	return "'" + t.text + "'"
}

func clip(s string) string {
	if utf8.RuneCountInString(s) > 40 {
		r := []rune(s)
		return string(r[:37]) + "..."
	}
	return s
}

// keywords are reserved in every letter case; a path that is exactly one
// of them cannot be named (none of the TR-069 roots is).
var keywords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "IS": true, "NULL": true, "LIKE": true,
	"ESCAPE": true, "TRUE": true, "FALSE": true, "CASE": true, "WHEN": true,
	"THEN": true, "ELSE": true, "END": true,
}

func isSimpleWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return s != ""
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isPathStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

type lexer struct {
	src  string
	i    int
	toks []token
}

// lex splits src into tokens. It panics with a *Error on a malformed one;
// Parse recovers it.
func lex(src string) []token {
	l := &lexer{src: src}
	for {
		l.skipSpace()
		if l.i >= len(src) {
			l.toks = append(l.toks, token{kind: tEOF, pos: len(src), end: len(src)})
			return l.toks
		}
		c := src[l.i]
		switch {
		case isPathStart(c):
			l.word()
		case c >= '0' && c <= '9':
			l.number()
		case c == '\'':
			l.sqlString()
		case c == '"':
			l.jsString()
		default:
			l.operator()
		}
	}
}

func (l *lexer) fail(pos int, format string, args ...any) {
	panic(newError(l.src, pos, fmt.Sprintf(format, args...)))
}

func (l *lexer) skipSpace() {
	for l.i < len(l.src) {
		switch l.src[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

func (l *lexer) emit(t token) { l.toks = append(l.toks, t) }

// word reads a keyword, function name or parameter path. Paths follow
// GenieACS's lexical rule (letters, digits, '_', '-', '.', '*'), so "a-b"
// is one path, not a subtraction; edgeacs is stricter about their shape:
// no empty segments, '*' only as a whole segment, and "[Key:Value,...]"
// alias filters as whole segments.
func (l *lexer) word() {
	src, start := l.src, l.i
	segStart := l.i
	checkSeg := func(end int) {
		seg := src[segStart:end]
		switch {
		case seg == "":
			if end == len(src) || src[end] != '.' {
				l.fail(end-1, "parameter path %q ends with '.'", src[start:end])
			}
			l.fail(end, "empty segment in parameter path %q", src[start:end+1])
		case seg == "*" || seg[0] == '[':
		case strings.IndexByte(seg, '*') >= 0:
			l.fail(segStart+strings.IndexByte(seg, '*'),
				"'*' must be a whole path segment (put spaces around '*' to multiply)")
		}
	}
	for l.i < len(src) {
		c := src[l.i]
		switch {
		case isWordByte(c) || c == '-' || c == '*':
			l.i++
		case c == '.':
			checkSeg(l.i)
			l.i++
			segStart = l.i
		case c == '[':
			if l.i != segStart {
				l.fail(l.i, "an alias filter [...] must be a whole path segment")
			}
			l.alias()
			if l.i < len(src) && src[l.i] != '.' && (isWordByte(src[l.i]) || src[l.i] == '-' || src[l.i] == '*' || src[l.i] == '[') {
				l.fail(l.i, "an alias filter [...] must be a whole path segment")
			}
		default:
			goto done
		}
	}
done:
	if l.i < len(src) && src[l.i] == '{' {
		l.fail(l.i, "parameter names built from expressions ({...}) are not supported")
	}
	checkSeg(l.i)
	l.emit(token{kind: tWord, pos: start, end: l.i, text: src[start:l.i]})
}

// alias skips an alias filter "[Key:Value,...]". Values may be quoted
// (JSON style) to hold ']' or ','; the text is kept as written and left to
// whoever resolves the path.
func (l *lexer) alias() {
	src, open := l.src, l.i
	l.i++
	colon := false
	for l.i < len(src) {
		c := src[l.i]
		switch {
		case c == ']':
			if l.i == open+1 {
				l.fail(open, "empty alias filter []")
			}
			if !colon {
				l.fail(open, "alias filter %s needs Key:Value", src[open:l.i+1])
			}
			l.i++
			return
		case c == '"':
			l.i++
			for l.i < len(src) && src[l.i] != '"' {
				if src[l.i] == '\\' {
					l.i++
				}
				l.i++
			}
			if l.i >= len(src) {
				l.fail(open, "unterminated alias filter")
			}
			l.i++
		case c == ':':
			colon = true
			l.i++
		case c < 0x20 || c == 0x7f || c == '[':
			l.fail(l.i, "unexpected %s in alias filter", describeByte(src, l.i))
		default:
			l.i++
		}
	}
	l.fail(open, "unterminated alias filter")
}

// number reads an unsigned decimal literal as GenieACS writes them:
// 0 or a digit run without leading zeros, an optional fraction and
// exponent. A literal running into letters, digits or dots ("1.2.3",
// "10abc") is refused whole: such text is meant as a string.
func (l *lexer) number() {
	src, start := l.src, l.i
	digits := func() int {
		n := 0
		for l.i < len(src) && src[l.i] >= '0' && src[l.i] <= '9' {
			l.i++
			n++
		}
		return n
	}
	ok := true
	if n := digits(); n > 1 && src[start] == '0' {
		ok = false
	}
	if l.i < len(src) && src[l.i] == '.' {
		l.i++
		if digits() == 0 {
			ok = false
		}
	}
	if l.i < len(src) && (src[l.i] == 'e' || src[l.i] == 'E') {
		l.i++
		if l.i < len(src) && (src[l.i] == '+' || src[l.i] == '-') {
			l.i++
		}
		if digits() == 0 {
			ok = false
		}
	}
	for l.i < len(src) && (isWordByte(src[l.i]) || src[l.i] == '.') {
		l.i++
		ok = false
	}
	text := src[start:l.i]
	if !ok {
		l.fail(start, "malformed number %s (quote it if it is a string, e.g. '%s')", clip(text), clip(text))
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		l.fail(start, "number %s is out of range", clip(text))
	}
	l.emit(token{kind: tNum, pos: start, end: l.i, text: text, num: f})
}

// sqlString reads a 'single-quoted' string, where ” stands for a quote.
func (l *lexer) sqlString() {
	src, start := l.src, l.i
	var b strings.Builder
	l.i++
	for {
		j := strings.IndexByte(src[l.i:], '\'')
		if j < 0 {
			l.fail(start, "unterminated string")
		}
		b.WriteString(src[l.i : l.i+j])
		l.i += j + 1
		if l.i < len(src) && src[l.i] == '\'' {
			b.WriteByte('\'')
			l.i++
			continue
		}
		break
	}
	l.emit(token{kind: tStr, pos: start, end: l.i, text: src[start:l.i], str: b.String()})
}

// jsString reads a "double-quoted" string with JavaScript escapes: \b \f
// \n \r \t, \uXXXX (surrogate pairs combine), and a backslash before any
// other character stands for that character.
func (l *lexer) jsString() {
	src, start := l.src, l.i
	var b strings.Builder
	l.i++
	for {
		if l.i >= len(src) {
			l.fail(start, "unterminated string")
		}
		c := src[l.i]
		switch c {
		case '"':
			l.i++
			l.emit(token{kind: tStr, pos: start, end: l.i, text: src[start:l.i], str: b.String()})
			return
		case '\\':
			if l.i+1 >= len(src) {
				l.fail(start, "unterminated string")
			}
			esc := src[l.i+1]
			switch esc {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := hex4(src, l.i+2)
				if !ok {
					l.fail(l.i, `bad \u escape (want \u and four hex digits)`)
				}
				l.i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4(src, l.i+2); ok && l.i+1 < len(src) && src[l.i] == '\\' && src[l.i+1] == 'u' {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							l.i += 6
							r = d
						}
					}
				}
				b.WriteRune(r)
				continue
			default:
				_, size := utf8.DecodeRuneInString(src[l.i+1:])
				b.WriteString(src[l.i+1 : l.i+1+size])
				l.i += 1 + size
				continue
			}
			l.i += 2
		default:
			b.WriteByte(c)
			l.i++
		}
	}
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[i:i+4], 16, 16)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

func (l *lexer) operator() {
	src, start := l.src, l.i
	two := ""
	if l.i+1 < len(src) {
		two = src[l.i : l.i+2]
	}
	switch two {
	case "||", "<>", "<=", ">=":
		l.i += 2
		l.emit(token{kind: tOp, pos: start, end: l.i, text: two})
		return
	case "!=":
		l.fail(start, "unexpected '!=' (not equal is written <>)")
	case "==":
		l.fail(start, "unexpected '==' (equality is written =)")
	case "&&":
		l.fail(start, "unexpected '&&' (use AND)")
	}
	switch c := src[l.i]; c {
	case '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', ',':
		l.i++
		l.emit(token{kind: tOp, pos: start, end: l.i, text: string(c)})
	case '|':
		l.fail(start, "unexpected '|' (concatenation is written ||, disjunction OR)")
	case '{':
		l.fail(start, "parameter names built from expressions ({...}) are not supported")
	default:
		l.fail(start, "unexpected %s", describeByte(src, start))
	}
}

func describeByte(src string, i int) string {
	r, _ := utf8.DecodeRuneInString(src[i:])
	if r < 0x20 || r == 0x7f || r == utf8.RuneError {
		return fmt.Sprintf("character %U", r)
	}
	return fmt.Sprintf("character %q", r)
}
