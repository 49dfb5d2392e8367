package cwmp

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// fastDecode reads the messages a bootstrap storm is made of (the Inform,
// GetParameterNamesResponse, GetParameterValuesResponse and
// SetParameterValuesResponse, and the simulator's InformResponse,
// GetParameterNames, GetParameterValues and SetParameterValues) straight
// from the bytes into the typed structs, without building the etree
// document fastParse builds and decodeDoc then walks: for a 25 KB answer
// that document was ~1,500 elements, most of a bootstrap's parse time and
// allocations.
//
// It accepts a subset of what fastParse accepts (same lexical rules: the
// same names, attribute values, text and entities), narrowed to the plain
// shape: namespace declarations on the Envelope only, no comments, an
// optional Header of text-only fields, a Body holding one of those RPCs,
// and leaf fields without child elements. For those it returns exactly
// what decodeDoc(fastParse(data)) returns (TestFastDecodeMatches,
// FuzzFastDecode), skipped entries included. Anything else, including
// every error, reports false and the caller takes the DOM path, whose
// leniency and error messages then apply unchanged.
func fastDecode(data []byte, maxDepth int) (*Envelope, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	d := fastDecoder{s: scanner{fastParser: fastParser{data: data}, maxDepth: maxDepth}}
	env, ok := d.envelope()
	if !ok || !d.s.atEnd() {
		return nil, false
	}
	return env, true
}

type tokKind int

const (
	tokStart tokKind = iota // a start tag (selfClosing if <x/>)
	tokEnd                  // an end tag
	tokText                 // character data, raw (escaped)
	tokEOF                  // past the root element
)

// rawAttr is one attribute of the current start tag, its value still
// escaped (checked already).
type rawAttr struct {
	space, key, raw []byte
}

// scanner is a pull tokenizer with fastParse's lexical rules; it checks
// what fastParse checks (tags balanced, text and attribute values valid)
// so that whatever it accepts fastParse accepts too.
type scanner struct {
	fastParser
	maxDepth int
	// stack holds the open elements' names, prefix included. Names are
	// the bytes of data, never strings: a string per tag (or a lookup in
	// fastParse's intern table) was a fifth of the decode.
	stack    [][]byte
	rootSeen bool

	kind        tokKind
	name        []byte // prefixed name of a start or end tag
	selfClosing bool
	attrs       []rawAttr
	text        []byte
}

// prolog reads the optional XML declaration and the whitespace before
// the root element.
func (s *scanner) prolog() bool {
	s.skipSpace()
	if bytes.HasPrefix(s.data[s.i:], []byte("<?xml")) {
		end := bytes.Index(s.data[s.i:], []byte("?>"))
		if end < 0 {
			return false
		}
		decl := s.data[s.i+5 : s.i+end]
		// No '<' inside either: decode runs refuseDirectives only when
		// this path refuses, so nothing it accepts may hold a "<!".
		if len(decl) > 0 && !isSpace(decl[0]) || !plainDecl(decl) || bytes.IndexByte(decl, '<') >= 0 {
			return false
		}
		s.i += end + 2
	}
	return s.misc() && s.i < len(s.data)
}

// comment consumes the comment at s.i, checked as fastParse checks it.
func (s *scanner) comment() bool {
	body := s.i + 4
	end := bytes.Index(s.data[body:], []byte("--"))
	if end < 0 || body+end+2 >= len(s.data) || s.data[body+end+2] != '>' {
		return false
	}
	if _, ok := unescapeNone(s.data[body : body+end]); !ok {
		return false
	}
	s.i = body + end + 3
	return true
}

// misc skips whitespace and comments outside the root element and
// reports whether it ended at the end of the input or before a '<'
// that starts no comment.
func (s *scanner) misc() bool {
	for {
		s.skipSpace()
		if s.i == len(s.data) {
			return true
		}
		if !bytes.HasPrefix(s.data[s.i:], []byte("<!--")) {
			return s.data[s.i] == '<'
		}
		if !s.comment() {
			return false
		}
	}
}

// atEnd reports whether only whitespace and comments follow the root
// element.
func (s *scanner) atEnd() bool {
	return s.rootSeen && len(s.stack) == 0 && s.misc() && s.i == len(s.data)
}

// next reads one token. ok is false for anything fastDecode leaves to
// the DOM path (comments, CDATA, processing instructions, malformed
// markup).
func (s *scanner) next() bool {
	if len(s.stack) == 0 && s.rootSeen {
		s.kind = tokEOF
		return true
	}
	if s.i >= len(s.data) {
		return false
	}
	if s.data[s.i] != '<' {
		end := bytes.IndexByte(s.data[s.i:], '<')
		if end < 0 {
			end = len(s.data) - s.i
		}
		s.text = s.data[s.i : s.i+end]
		s.i += end
		if !validText(s.text) || len(s.stack) == 0 && !isWhitespaceText(string(s.text)) {
			return false
		}
		s.kind = tokText
		return true
	}
	if bytes.HasPrefix(s.data[s.i:], []byte("<!--")) {
		// Skipped as fastParse reads it (Text ignores comments); a
		// leaf whose text a comment splits leaves the fast path (leaf).
		if !s.comment() {
			return false
		}
		return s.next()
	}
	s.i++
	if s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '/':
		s.i++
		name, ok := s.rawName()
		if !ok || len(s.stack) == 0 {
			return false
		}
		s.skipSpace()
		if s.i >= len(s.data) || s.data[s.i] != '>' {
			return false
		}
		s.i++
		if !bytes.Equal(s.stack[len(s.stack)-1], name) {
			return false
		}
		s.stack = s.stack[:len(s.stack)-1]
		s.kind, s.name = tokEnd, name
		return true
	case c == '!' || c == '?':
		return false
	}
	if len(s.stack) == 0 && s.rootSeen || len(s.stack)+1 > s.maxDepth {
		return false
	}
	name, ok := s.rawName()
	if !ok {
		return false
	}
	s.rootSeen = true
	s.kind, s.name, s.selfClosing = tokStart, name, false
	s.attrs = s.attrs[:0]
	for {
		sp := s.skipSpace()
		if s.i >= len(s.data) {
			return false
		}
		if s.data[s.i] == '>' {
			s.i++
			break
		}
		if s.data[s.i] == '/' {
			if s.i+1 >= len(s.data) || s.data[s.i+1] != '>' {
				return false
			}
			s.i += 2
			s.selfClosing = true
			break
		}
		if !sp {
			return false
		}
		key, ok := s.rawName()
		if !ok {
			return false
		}
		s.skipSpace()
		if s.i >= len(s.data) || s.data[s.i] != '=' {
			return false
		}
		s.i++
		s.skipSpace()
		raw, ok := s.rawAttrValue()
		if !ok {
			return false
		}
		space, local := splitRaw(key)
		for _, a := range s.attrs {
			// fastParse's duplicate test is etree's SelectAttr, where an
			// unprefixed key matches that key under any prefix (so
			// `p:s="" s=""` is refused but `s="" p:s=""` is not).
			if bytes.Equal(a.key, local) && (len(space) == 0 || bytes.Equal(a.space, space)) {
				return false
			}
		}
		s.attrs = append(s.attrs, rawAttr{space: space, key: local, raw: raw})
	}
	if !s.selfClosing {
		s.stack = append(s.stack, name)
	}
	return true
}

// rawAttrValue reads a quoted attribute value and checks it as
// attrValue does, without unescaping it.
func (s *scanner) rawAttrValue() ([]byte, bool) {
	if s.i >= len(s.data) {
		return nil, false
	}
	q := s.data[s.i]
	if q != '"' && q != '\'' {
		return nil, false
	}
	end := bytes.IndexByte(s.data[s.i+1:], q)
	if end < 0 {
		return nil, false
	}
	raw := s.data[s.i+1 : s.i+1+end]
	s.i += end + 2
	if bytes.IndexByte(raw, '<') >= 0 || !validText(raw) {
		return nil, false
	}
	return raw, true
}

// isPlain reports whether raw is text unescape returns as it is.
func isPlain(raw []byte) bool {
	for _, c := range raw[plainTextPrefix(raw):] {
		if c == '&' || c == '\r' || c < 0x20 && c != '\t' && c != '\n' || c == ']' || c >= 0x80 {
			return false
		}
	}
	return true
}

// validText reports whether unescape accepts raw, allocating only for
// text that is not plain.
func validText(raw []byte) bool {
	if isPlain(raw) {
		return true
	}
	_, ok := unescape(raw)
	return ok
}

// textOf is the unescaped raw text (checked already by the scanner).
func textOf(raw []byte) string {
	s, _ := unescape(raw)
	return s
}

// fastDecoder reads the envelope's structure from the scanner.
type fastDecoder struct {
	s  scanner
	ns map[string]string // the Envelope's prefix bindings; "" is the default
	// rootNS lists the Envelope's namespace declarations in order, for
	// findNamespace's last resort.
	rootNS []string
	r      reader
}

// isNSDecl reports whether a declares a namespace.
func (a rawAttr) isNSDecl() bool {
	return string(a.space) == "xmlns" || len(a.space) == 0 && string(a.key) == "xmlns"
}

// uri resolves the prefix of the element named name.
func (d *fastDecoder) uri(name []byte) string {
	space, _ := splitRaw(name)
	return d.ns[string(space)]
}

// noNSDecl reports whether the current start tag declares no namespace:
// only the Envelope's are resolved here.
func (d *fastDecoder) noNSDecl() bool {
	for _, a := range d.s.attrs {
		if a.isNSDecl() {
			return false
		}
	}
	return true
}

// splitRaw is splitName on bytes.
func splitRaw(n []byte) (space, local []byte) {
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		return n[:i], n[i+1:]
	}
	return nil, n
}

func localName(name []byte) []byte {
	_, local := splitRaw(name)
	return local
}

func (d *fastDecoder) envelope() (*Envelope, bool) {
	s := &d.s
	if !s.prolog() || !s.next() || s.kind != tokStart || string(localName(s.name)) != "Envelope" || s.selfClosing {
		return nil, false
	}
	for _, a := range s.attrs {
		if !a.isNSDecl() {
			continue
		}
		if !isPlain(a.raw) {
			return nil, false
		}
		v := string(a.raw)
		if d.ns == nil {
			d.ns = make(map[string]string, 4)
		}
		prefix := string(a.key)
		if len(a.space) == 0 {
			prefix = ""
		}
		if _, dup := d.ns[prefix]; dup {
			return nil, false
		}
		d.ns[prefix] = v
		d.rootNS = append(d.rootNS, v)
	}
	if ns := d.uri(s.name); ns != "" && ns != SOAPEnvNS {
		return nil, false
	}
	env := new(Envelope)
	var idSpace string
	hasHeader, hasBody := false, false
	for {
		if !s.next() {
			return nil, false
		}
		switch s.kind {
		case tokText:
			continue
		case tokEnd:
			if !hasBody {
				return nil, false
			}
			return env, true
		case tokStart:
		default:
			return nil, false
		}
		if !d.noNSDecl() {
			return nil, false
		}
		switch string(localName(s.name)) {
		case "Header":
			if hasHeader || hasBody {
				return nil, false
			}
			hasHeader = true
			if !s.selfClosing {
				var ok bool
				if idSpace, ok = d.header(env); !ok {
					return nil, false
				}
			}
		case "Body":
			if hasBody || s.selfClosing {
				return nil, false
			}
			hasBody = true
			if ns := d.uri(s.name); ns != "" && ns != SOAPEnvNS {
				return nil, false
			}
			if !d.body(env, idSpace) {
				return nil, false
			}
		default:
			return nil, false
		}
	}
}

// header reads the Header's fields as decodeHeader does; it returns the
// prefix of the first cwmp:ID ("" when none, which resolves to nothing
// only if no default namespace is declared: hasID tells).
func (d *fastDecoder) header(env *Envelope) (string, bool) {
	s := &d.s
	idSpace := ""
	for {
		if !s.next() {
			return "", false
		}
		switch s.kind {
		case tokText:
			continue
		case tokEnd:
			return idSpace, true
		case tokStart:
		default:
			return "", false
		}
		if !d.noNSDecl() {
			return "", false
		}
		tag := s.name
		raw, ok := d.leaf()
		if !ok {
			return "", false
		}
		v := strings.TrimSpace(textOf(raw))
		switch lname := strings.ToLower(string(localName(tag))); lname {
		case "id":
			if !env.HasID {
				space, _ := splitRaw(tag)
				idSpace = string(space)
				env.ID, env.HasID = v, true
			}
		default:
			setHeaderField(env, lname, v)
		}
	}
}

// leaf reads the rest of the element just started, which must hold text
// only, and returns that text raw ("" for an empty element).
func (d *fastDecoder) leaf() ([]byte, bool) {
	s := &d.s
	if s.selfClosing {
		return nil, true
	}
	var raw []byte
	for {
		if !s.next() {
			return nil, false
		}
		switch s.kind {
		case tokText:
			if raw != nil {
				return nil, false // cannot happen without a comment between
			}
			raw = s.text
		case tokEnd:
			return raw, true
		default:
			return nil, false
		}
	}
}

// skip reads the rest of the element just started, whatever it holds.
func (d *fastDecoder) skip() bool {
	s := &d.s
	if s.selfClosing {
		return true
	}
	depth := len(s.stack)
	for {
		if !s.next() {
			return false
		}
		if s.kind == tokStart && !d.noNSDecl() {
			return false
		}
		if s.kind == tokEnd && len(s.stack) < depth {
			return true
		}
	}
}

// body reads the Body: one RPC of the kinds fastDecode knows, then
// anything (decodeDoc reads the first element only).
func (d *fastDecoder) body(env *Envelope, idSpace string) bool {
	s := &d.s
	for {
		if !s.next() {
			return false
		}
		if s.kind == tokText {
			continue
		}
		if s.kind != tokStart || !d.noNSDecl() {
			return false // an empty Body, or a declaration inside
		}
		break
	}
	rpc := s.name
	var msg Message
	ok := false
	switch string(localName(rpc)) {
	case MethodInform:
		d.r.method = MethodInform
		m := new(Inform)
		msg, ok = m, d.inform(m)
	case MethodGetParameterNamesResponse:
		d.r.method = MethodGetParameterNamesResponse
		m := new(GetParameterNamesResponse)
		msg, ok = m, d.gpnResponse(m)
	case MethodGetParameterValuesResponse:
		d.r.method = MethodGetParameterValuesResponse
		m := new(GetParameterValuesResponse)
		msg, ok = m, d.parameterValuesOf(&m.ParameterList)
	case MethodGetParameterValues:
		d.r.method = MethodGetParameterValues
		m := new(GetParameterValues)
		msg, ok = m, d.parameterNamesOf(&m.ParameterNames)
	case MethodGetParameterNames:
		d.r.method = MethodGetParameterNames
		var raw [2][]byte
		if ok = d.scalars([]string{"ParameterPath", "NextLevel"}, raw[:]); ok {
			msg = &GetParameterNames{ParameterPath: trimmed(raw[0]), NextLevel: d.r.parseBool("NextLevel", trimmed(raw[1]))}
		}
	case MethodInformResponse:
		d.r.method = MethodInformResponse
		var raw [1][]byte
		if ok = d.scalars([]string{"MaxEnvelopes"}, raw[:]); ok {
			msg = &InformResponse{MaxEnvelopes: d.r.parseUint32("MaxEnvelopes", trimmed(raw[0]))}
		}
	case MethodSetParameterValuesResponse:
		d.r.method = MethodSetParameterValuesResponse
		var raw [1][]byte
		if ok = d.scalars([]string{"Status"}, raw[:]); ok {
			msg = &SetParameterValuesResponse{Status: d.r.parseInt("Status", trimmed(raw[0]))}
		}
	case MethodSetParameterValues:
		d.r.method = MethodSetParameterValues
		m := new(SetParameterValues)
		msg, ok = m, d.setParameterValues(m)
	}
	if !ok || d.r.err != nil {
		return false
	}
	env.Body = msg
	env.Skipped, env.SkippedTotal = d.r.skipped, d.r.skippedTotal
	// findNamespace's order: the RPC's, the ID's, the Envelope's.
	switch {
	case isCWMPNamespace(d.uri(rpc)):
		env.Namespace = d.uri(rpc)
	case env.HasID && isCWMPNamespace(d.ns[idSpace]):
		env.Namespace = d.ns[idSpace]
	default:
		for _, u := range d.rootNS {
			if isCWMPNamespace(u) {
				env.Namespace = u
				break
			}
		}
	}
	for {
		if !s.next() {
			return false
		}
		switch s.kind {
		case tokEnd:
			return true
		case tokStart:
			if !d.noNSDecl() || !d.skip() {
				return false
			}
		}
	}
}

// fields reads the children of the element just started (a struct):
// fn is called at each child's start tag and must consume the child
// (leaf or skip). Text between children is ignored, as decodeDoc does.
func (d *fastDecoder) fields(fn func(local []byte) bool) bool {
	s := &d.s
	if s.selfClosing {
		return true
	}
	for {
		if !s.next() {
			return false
		}
		switch s.kind {
		case tokText:
			continue
		case tokEnd:
			return true
		case tokStart:
			if !d.noNSDecl() || !fn(localName(s.name)) {
				return false
			}
		default:
			return false
		}
	}
}

// items is fields for a SOAP-ENC array: every child element is an entry.
func (d *fastDecoder) items(fn func(i int) bool) (int, bool) {
	n := 0
	ok := d.fields(func([]byte) bool {
		n++
		return fn(n - 1)
	})
	return n, ok
}

// leafField reads the child just started as a text field into *dst
// unless one of its name was read already (child takes the first).
func (d *fastDecoder) leafField(dst *[]byte, seen *bool) bool {
	if *seen {
		return d.skip()
	}
	raw, ok := d.leaf()
	*dst, *seen = raw, true
	return ok
}

// pairFields reads the children of the struct just started into the
// text fields named first and second (the first of each name), skipping
// any other child.
func (d *fastDecoder) pairFields(first, second string, a, b *[]byte) bool {
	var hasA, hasB bool
	return d.fields(func(local []byte) bool {
		switch string(local) {
		case first:
			return d.leafField(a, &hasA)
		case second:
			return d.leafField(b, &hasB)
		}
		return d.skip()
	})
}

// trimmed is r.str's value for a field read raw.
func trimmed(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	return strings.TrimSpace(textOf(raw))
}

func (d *fastDecoder) gpnResponse(m *GetParameterNamesResponse) bool {
	seen := false
	return d.fields(func(local []byte) bool {
		if string(local) != "ParameterList" || seen {
			return d.skip()
		}
		seen = true
		n, ok := d.items(func(i int) bool {
			name, writable, _, ok := d.s.quickPair("Name", "Writable", false)
			if !ok && !d.pairFields("Name", "Writable", &name, &writable) {
				return false
			}
			v, ok := item(&d.r, "ParameterList", i, func() ParameterInfo {
				return ParameterInfo{Name: d.r.parseName(trimmed(name)), Writable: d.r.parseBool("Writable", trimmed(writable))}
			})
			if ok {
				m.ParameterList = append(m.ParameterList, v)
			}
			return true
		})
		if n > 0 && m.ParameterList == nil {
			m.ParameterList = []ParameterInfo{}
		}
		return ok
	})
}

// parameterValuesOf reads the RPC's first ParameterList of
// ParameterValueStructs into *list, as reader.parameterValues does.
func (d *fastDecoder) parameterValuesOf(list *[]ParameterValue) bool {
	seen := false
	return d.fields(func(local []byte) bool {
		if string(local) != "ParameterList" || seen {
			return d.skip()
		}
		seen = true
		return d.parameterValueList(list)
	})
}

// parameterValueList reads the ParameterList just started.
func (d *fastDecoder) parameterValueList(list *[]ParameterValue) bool {
	n, ok := d.items(func(i int) bool {
		typ := TypeString
		name, value, rawType, ok := d.s.quickPair("Name", "Value", true)
		hasValue := ok
		if ok && rawType != nil {
			typ = NormalizeType(d.s.intern(rawType))
		}
		if !ok {
			var hasName bool
			ok = d.fields(func(local []byte) bool {
				switch string(local) {
				case "Name":
					return d.leafField(&name, &hasName)
				case "Value":
					if !hasValue {
						for _, a := range d.s.attrs {
							if string(a.key) == "type" && string(a.space) != "xmlns" {
								typ = NormalizeType(d.s.intern(a.raw))
								break
							}
						}
					}
					return d.leafField(&value, &hasValue)
				}
				return d.skip()
			})
			if !ok {
				return false
			}
		}
		v, ok := item(&d.r, "ParameterList", i, func() ParameterValue {
			pv := ParameterValue{Name: d.r.parseName(trimmed(name)), Type: TypeString}
			if hasValue {
				// Byte-exact, as reader.parameterValues keeps it.
				if len(value) > 0 {
					pv.Value = textOf(value)
				}
				pv.Type = typ
			}
			return pv
		})
		if ok {
			*list = append(*list, v)
		}
		return true
	})
	if n > 0 && *list == nil {
		*list = []ParameterValue{}
	}
	return ok
}

// parameterNamesOf reads GetParameterValues' ParameterNames.
func (d *fastDecoder) parameterNamesOf(names *[]string) bool {
	seen := false
	return d.fields(func(local []byte) bool {
		if string(local) != "ParameterNames" || seen {
			return d.skip()
		}
		seen = true
		n, ok := d.items(func(int) bool {
			raw, ok := d.leaf()
			if ok {
				*names = append(*names, trimmed(raw))
			}
			return ok
		})
		if n > 0 && *names == nil {
			*names = []string{}
		}
		return ok
	})
}

// scalars reads the RPC's text fields names into raws (the first of
// each name, as child finds it), skipping every other child.
func (d *fastDecoder) scalars(names []string, raws [][]byte) bool {
	var seen [4]bool
	return d.fields(func(local []byte) bool {
		for i, n := range names {
			if string(local) == n {
				return d.leafField(&raws[i], &seen[i])
			}
		}
		return d.skip()
	})
}

func (d *fastDecoder) setParameterValues(m *SetParameterValues) bool {
	var key []byte
	var seenList, seenKey bool
	ok := d.fields(func(local []byte) bool {
		switch string(local) {
		case "ParameterList":
			if seenList {
				return d.skip()
			}
			seenList = true
			return d.parameterValueList(&m.ParameterList)
		case "ParameterKey":
			return d.leafField(&key, &seenKey)
		}
		return d.skip()
	})
	m.ParameterKey = trimmed(key)
	return ok
}

func (d *fastDecoder) inform(m *Inform) bool {
	var seenDev, seenEvent, seenMax, seenTime, seenRetry, seenList bool
	var maxEnv, curTime, retry []byte
	ok := d.fields(func(local []byte) bool {
		switch string(local) {
		case "DeviceId":
			if seenDev {
				return d.skip()
			}
			seenDev = true
			var man, oui, pc, sn []byte
			var hMan, hOUI, hPC, hSN bool
			ok := d.fields(func(local []byte) bool {
				switch string(local) {
				case "Manufacturer":
					return d.leafField(&man, &hMan)
				case "OUI":
					return d.leafField(&oui, &hOUI)
				case "ProductClass":
					return d.leafField(&pc, &hPC)
				case "SerialNumber":
					return d.leafField(&sn, &hSN)
				}
				return d.skip()
			})
			m.DeviceId = DeviceID{Manufacturer: trimmed(man), OUI: trimmed(oui), ProductClass: trimmed(pc), SerialNumber: trimmed(sn)}
			return ok
		case "Event":
			if seenEvent {
				return d.skip()
			}
			seenEvent = true
			if seenList && d.r.skippedTotal > 0 {
				return false // skipped entries would be listed out of decodeDoc's order
			}
			n, ok := d.items(func(i int) bool {
				var code, key []byte
				if !d.pairFields("EventCode", "CommandKey", &code, &key) {
					return false
				}
				v, ok := item(&d.r, "Event", i, func() Event {
					c := CanonicalEventCode(trimmed(code))
					if c == "" {
						d.r.missing("EventCode")
					}
					return Event{Code: c, CommandKey: trimmed(key)}
				})
				if ok {
					m.Event = append(m.Event, v)
				}
				return true
			})
			if n > 0 && m.Event == nil {
				m.Event = []Event{}
			}
			return ok
		case "MaxEnvelopes":
			return d.leafField(&maxEnv, &seenMax)
		case "CurrentTime":
			return d.leafField(&curTime, &seenTime)
		case "RetryCount":
			return d.leafField(&retry, &seenRetry)
		case "ParameterList":
			if seenList {
				return d.skip()
			}
			seenList = true
			before := d.r.skippedTotal
			if !d.parameterValueList(&m.ParameterList) {
				return false
			}
			// decodeDoc lists the Event's skipped entries first.
			return !(d.r.skippedTotal > before && !seenEvent)
		}
		return d.skip()
	})
	if !ok {
		return false
	}
	m.MaxEnvelopes = d.r.parseUint32("MaxEnvelopes", trimmed(maxEnv))
	m.CurrentTime = parseTimeLenient(trimmed(curTime))
	m.RetryCount = d.r.parseUint32("RetryCount", trimmed(retry))
	return true
}

// intern returns raw as a string from the scanner's name table, so the
// few type attribute values of a document are allocated once.
func (p *fastParser) intern(raw []byte) string {
	if !isPlain(raw) {
		return textOf(raw)
	}
	if s, ok := p.names[string(raw)]; ok {
		return s
	}
	if p.names == nil {
		p.names = make(map[string]string, 16)
	}
	s := string(raw)
	p.names[s] = s
	return s
}
