package cwmp

import "bytes"

// A GetParameterValues or GetParameterNames answer is a few hundred list
// entries of one shape, which every CPE of a make writes the same way:
//
//	<ParameterValueStruct><Name>…</Name><Value xsi:type="…">…</Value></ParameterValueStruct>
//
// Read token by token (scanner.next, fields, leaf) an entry costs seven
// tokens, each with its name scanned, its attributes parsed and its text
// checked; that was most of decoding such an answer, a seventh of the
// edge's CPU in a bootstrap storm. quickPair reads that shape with a few
// prefix tests instead, and leaves anything else (another field order, a
// prefix, an entity, a comment, a non-ASCII byte) to the token path, so
// what it accepts decodes exactly as the token path would decode it
// (FuzzFastDecode compares both with the DOM path).

// quickPair reads, just after an entry's start tag, the rest of an entry
// made of two leaf fields named first and second in that order, with
// whitespace only between the tags and plain text (isPlain) in them;
// second's start tag may carry one xsi:type attribute when typed (typ is
// its value, nil when absent). It consumes the entry's end tag. ok is
// false, with the scanner unmoved, for any other shape.
func (s *scanner) quickPair(first, second string, typed bool) (a, b, typ []byte, ok bool) {
	if s.selfClosing || len(s.stack) == 0 || len(s.stack)+1 > s.maxDepth {
		return nil, nil, nil, false
	}
	data := s.data
	i := skipSpaceAt(data, s.i)
	i, ok = openTag(data, i, first)
	if !ok {
		return nil, nil, nil, false
	}
	a, i, ok = plainLeaf(data, i, first)
	if !ok {
		return nil, nil, nil, false
	}
	i = skipSpaceAt(data, i)
	if !hasTagName(data, i, second) {
		return nil, nil, nil, false
	}
	i += 1 + len(second)
	if typed && bytes.HasPrefix(data[i:], []byte(` xsi:type="`)) {
		i += len(` xsi:type="`)
		end := bytes.IndexByte(data[i:], '"')
		if end < 0 {
			return nil, nil, nil, false
		}
		typ = data[i : i+end]
		if !isPlain(typ) || bytes.IndexByte(typ, '<') >= 0 {
			return nil, nil, nil, false
		}
		i += end + 1
	}
	if i >= len(data) || data[i] != '>' {
		return nil, nil, nil, false
	}
	b, i, ok = plainLeaf(data, i+1, second)
	if !ok {
		return nil, nil, nil, false
	}
	i = skipSpaceAt(data, i)
	top := s.stack[len(s.stack)-1]
	if !closeTag(data, i, top) {
		return nil, nil, nil, false
	}
	s.i = i + len(top) + 3
	s.stack = s.stack[:len(s.stack)-1]
	s.kind, s.name = tokEnd, top
	return a, b, typ, true
}

// hasTagName reports whether data[i:] begins "<name" followed by '>' or
// a space (a start tag, attributes to come).
func hasTagName(data []byte, i int, name string) bool {
	j := i + 1 + len(name)
	return j < len(data) && data[i] == '<' && string(data[i+1:j]) == name && (data[j] == '>' || data[j] == ' ')
}

// openTag reads "<name>" at i and returns the index after it.
func openTag(data []byte, i int, name string) (int, bool) {
	j := i + 1 + len(name)
	if !hasTagName(data, i, name) || data[j] != '>' {
		return i, false
	}
	return j + 1, true
}

// closeTag reports whether data[i:] begins "</name>".
func closeTag[T string | []byte](data []byte, i int, name T) bool {
	j := i + 2 + len(name)
	return j < len(data) && data[i] == '<' && data[i+1] == '/' && string(data[i+2:j]) == string(name) && data[j] == '>'
}

// plainLeaf reads the text at i up to the end tag of name, which must
// follow it; the text must be plain. It returns the text (empty, not
// nil, when there is none) and the index after the end tag.
func plainLeaf(data []byte, i int, name string) ([]byte, int, bool) {
	end := bytes.IndexByte(data[i:], '<')
	if end < 0 {
		return nil, i, false
	}
	text := data[i : i+end]
	if !isPlain(text) || !closeTag(data, i+end, name) {
		return nil, i, false
	}
	return text, i + end + len(name) + 3, true
}
