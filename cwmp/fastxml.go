package cwmp

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// fastParse builds the etree document of a plain envelope without
// encoding/xml: what nearly every CPE sends (UTF-8 or ASCII, elements,
// attributes in quotes, text with the five predefined entities and
// character references, comments, an optional <?xml?> declaration). On anything
// else (CDATA, other encodings, HTML entities, a bare "&",
// unquoted attributes, mismatched tags, odd names, too deep) it reports
// false and the caller parses with etree, whose permissive reading and
// error messages then apply. The document is the one etree would build
// from the same input (TestFastParseMatchesEtree): the decoder downstream
// cannot tell them apart.
//
// Why: a bootstrap's GetParameterNames and GetParameterValues answers
// are 20-40 KB each, and encoding/xml reads about 10 MB/s: parsing was
// 40 % of the edge's CPU in a bootstrap storm.
func fastParse(data []byte, maxDepth int) (*etree.Document, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	doc := etree.NewDocument()
	p := fastParser{data: data}
	p.skipSpace()
	if bytes.HasPrefix(p.data[p.i:], []byte("<?xml")) {
		end := bytes.Index(p.data[p.i:], []byte("?>"))
		if end < 0 {
			return nil, false
		}
		decl := p.data[p.i+5 : p.i+end]
		if len(decl) > 0 && !isSpace(decl[0]) {
			return nil, false // <?xml-stylesheet or the like
		}
		if !plainDecl(decl) {
			return nil, false
		}
		doc.CreateProcInst("xml", strings.TrimLeft(string(decl), " \t\r\n"))
		p.i += end + 2
	}
	// Whitespace before the root element is text of the document, as
	// etree keeps it.
	start := p.i
	if p.skipSpace() {
		doc.CreateText(string(p.data[start:p.i]))
	}
	stack := make([]*etree.Element, 1, 16)
	stack[0] = &doc.Element
	rootSeen := false
	for p.i < len(p.data) {
		top := stack[len(stack)-1]
		if p.data[p.i] != '<' {
			text, ok := p.text()
			if !ok {
				return nil, false
			}
			if len(stack) == 1 && !isWhitespaceText(text) {
				return nil, false
			}
			cd := top.CreateText("")
			cd.SetData(text)
			continue
		}
		p.i++
		if p.i >= len(p.data) {
			return nil, false
		}
		switch c := p.data[p.i]; {
		case c == '/':
			p.i++
			name, ok := p.name()
			if !ok || len(stack) == 1 {
				return nil, false
			}
			p.skipSpace()
			if p.i >= len(p.data) || p.data[p.i] != '>' {
				return nil, false
			}
			p.i++
			space, local := splitName(name)
			if top.Space != space || top.Tag != local {
				return nil, false
			}
			stack = stack[:len(stack)-1]
		case c == '!' && bytes.HasPrefix(p.data[p.i:], []byte("!--")):
			end := bytes.Index(p.data[p.i+3:], []byte("--"))
			if end < 0 || p.i+3+end+2 >= len(p.data) || p.data[p.i+3+end+2] != '>' {
				return nil, false // unterminated, or "--" inside
			}
			body := p.data[p.i+3 : p.i+3+end]
			if text, ok := unescapeNone(body); ok {
				top.CreateComment(text)
			} else {
				return nil, false
			}
			p.i += 3 + end + 3
		case c == '!' || c == '?':
			return nil, false // CDATA, directive, processing instruction
		default:
			if len(stack) == 1 && rootSeen {
				return nil, false // a second root
			}
			if len(stack) > maxDepth {
				return nil, false
			}
			name, ok := p.name()
			if !ok {
				return nil, false
			}
			e := top.CreateElement(name)
			if len(stack) == 1 {
				rootSeen = true
			}
			closed := false
			for {
				sp := p.skipSpace()
				if p.i >= len(p.data) {
					return nil, false
				}
				if p.data[p.i] == '>' {
					p.i++
					break
				}
				if p.data[p.i] == '/' {
					if p.i+1 >= len(p.data) || p.data[p.i+1] != '>' {
						return nil, false
					}
					p.i += 2
					closed = true
					break
				}
				if !sp {
					return nil, false // attributes are separated by space
				}
				key, ok := p.name()
				if !ok {
					return nil, false
				}
				p.skipSpace()
				if p.i >= len(p.data) || p.data[p.i] != '=' {
					return nil, false
				}
				p.i++
				p.skipSpace()
				val, ok := p.attrValue()
				if !ok {
					return nil, false
				}
				if e.SelectAttr(key) != nil {
					return nil, false // duplicates: etree keeps the last
				}
				e.CreateAttr(key, val)
			}
			if !closed {
				stack = append(stack, e)
			}
		}
	}
	return doc, len(stack) == 1 && rootSeen
}

type fastParser struct {
	data []byte
	i    int
	// names interns the document's element and attribute names: a
	// GetParameterValuesResponse repeats the same few hundreds of times,
	// and a string allocation each cost more than the lookup.
	names map[string]string
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isWhitespaceText(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}

// skipSpace skips whitespace and reports whether there was any.
func (p *fastParser) skipSpace() bool {
	start := p.i
	p.i = skipSpaceAt(p.data, p.i)
	return p.i > start
}

// skipSpaceAt is the first index at or after i that is not XML whitespace.
func skipSpaceAt(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// name reads an ASCII XML name with at most one colon, not at either
// end (encoding/xml splits others differently from etree).
func (p *fastParser) name() (string, bool) {
	n, ok := p.rawName()
	if !ok {
		return "", false
	}
	if s, ok := p.names[string(n)]; ok {
		return s, true
	}
	if p.names == nil {
		p.names = make(map[string]string, 16)
	}
	s := string(n)
	p.names[s] = s
	return s, true
}

// rawName is name without the string: the bytes of the name in data.
func (p *fastParser) rawName() ([]byte, bool) {
	// Indexes in locals and a class table: every tag of a few-hundred
	// item answer passes here (a sixth of decoding a GetParameterValues
	// answer went to this loop when it stepped p.i).
	data, start := p.data, p.i
	i, colons := start, 0
	for i < len(data) {
		c := nameClass[data[i]]
		if c == nameColon {
			colons++
		} else if c == 0 || c == nameRest && i == start {
			break
		}
		i++
	}
	p.i = i
	n := data[start:i]
	if len(n) == 0 || colons > 1 || n[0] == ':' || n[len(n)-1] == ':' {
		return nil, false
	}
	return n, true
}

// Classes of the bytes of a name (rawName): one that may start it, one
// that may only follow (digits, '-', '.'), and the prefix separator.
const (
	nameStart = 1 + iota
	nameRest
	nameColon
)

var nameClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = nameStart, nameStart
	}
	t['_'] = nameStart
	for c := '0'; c <= '9'; c++ {
		t[c] = nameRest
	}
	t['-'], t['.'] = nameRest, nameRest
	t[':'] = nameColon
	return t
}()

func splitName(n string) (space, local string) {
	if s, l, ok := strings.Cut(n, ":"); ok {
		return s, l
	}
	return "", n
}

// text reads character data up to the next '<'.
func (p *fastParser) text() (string, bool) {
	end := bytes.IndexByte(p.data[p.i:], '<')
	if end < 0 {
		end = len(p.data) - p.i
	}
	raw := p.data[p.i : p.i+end]
	p.i += end
	return unescape(raw)
}

// attrValue reads a quoted attribute value.
func (p *fastParser) attrValue() (string, bool) {
	if p.i >= len(p.data) {
		return "", false
	}
	q := p.data[p.i]
	if q != '"' && q != '\'' {
		return "", false
	}
	end := bytes.IndexByte(p.data[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	raw := p.data[p.i+1 : p.i+1+end]
	p.i += end + 2
	if bytes.IndexByte(raw, '<') >= 0 {
		return "", false
	}
	return unescape(raw)
}

// unescape decodes the predefined entities and character references and
// turns CR LF and lone CR into LF, as encoding/xml does; control
// characters and anything else fall back.
func unescape(raw []byte) (string, bool) {
	if isPlain(raw) {
		return string(raw), true
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\r':
			b.WriteByte('\n')
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
		case c < 0x20 && c != '\t' && c != '\n':
			return "", false
		case c >= 0x80:
			r, n := utf8.DecodeRune(raw[i:])
			if !xmlChar(r) {
				return "", false
			}
			b.Write(raw[i : i+n])
			i += n - 1
		case c == ']':
			if bytes.HasPrefix(raw[i:], []byte("]]>")) {
				return "", false
			}
			b.WriteByte(c)
		case c == '&':
			end := bytes.IndexByte(raw[i:], ';')
			if end < 0 {
				return "", false
			}
			ent := string(raw[i+1 : i+end])
			i += end
			switch ent {
			case "lt":
				b.WriteByte('<')
			case "gt":
				b.WriteByte('>')
			case "amp":
				b.WriteByte('&')
			case "apos":
				b.WriteByte('\'')
			case "quot":
				b.WriteByte('"')
			default:
				r, ok := charRef(ent)
				if !ok {
					return "", false
				}
				b.WriteRune(r)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// unescapeNone checks a comment's characters (taken as they are).
func unescapeNone(raw []byte) (string, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return "", false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(raw[i:])
		if !xmlChar(r) {
			return "", false
		}
		i += n
	}
	return string(raw), true
}

// charRef decodes "#123" or "#x7B" to a character XML allows.
func charRef(ent string) (rune, bool) {
	s, ok := strings.CutPrefix(ent, "#")
	if !ok || s == "" {
		return 0, false
	}
	base := 10
	if h, ok := strings.CutPrefix(s, "x"); ok {
		s, base = h, 16
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 32)
	if err != nil {
		return 0, false
	}
	r := rune(n)
	return r, xmlChar(r)
}

// xmlChar reports whether XML allows r (encoding/xml refuses the rest).
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// plainDecl reports whether an XML declaration's pseudo-attributes are
// version 1.0 (or none, as encoding/xml takes it) and no encoding or
// UTF-8 / US-ASCII (what the fast path reads as is).
func plainDecl(decl []byte) bool {
	s := string(decl)
	if v, ok := declParam(s, "version"); ok && v != "1.0" || !ok && strings.Contains(s, "version") {
		return false
	}
	v, ok := declParam(s, "encoding")
	if !ok {
		return !strings.Contains(s, "encoding")
	}
	switch strings.ToLower(v) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// declParam is the quoted value of name="..." in an XML declaration; ok
// is false when name is absent or not followed by a quoted value.
func declParam(s, name string) (string, bool) {
	i := strings.Index(s, name)
	if i < 0 {
		return "", false
	}
	rest := strings.TrimLeft(s[i+len(name):], " \t\r\n")
	rest, ok := strings.CutPrefix(rest, "=")
	if !ok {
		return "", false
	}
	rest = strings.TrimLeft(rest, " \t\r\n")
	if rest == "" || rest[0] != '"' && rest[0] != '\'' {
		return "", false
	}
	end := strings.IndexByte(rest[1:], rest[0])
	if end < 0 {
		return "", false
	}
	return rest[1 : 1+end], true
}
