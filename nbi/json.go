package nbi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/edgeacs/edgeacs/fleet"
)

// jkind is the kind of a decoded JSON value.
type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

// jvalue is a decoded JSON value that keeps what encoding/json's any
// loses: the key order of objects (so errors and evaluation follow the
// query as written) and the exact text of numbers.
type jvalue struct {
	kind jkind
	b    bool
	s    string // string, or a number's text
	keys []string
	vals []*jvalue // object values (parallel to keys) or array elements
}

// decodeJSON reads exactly one JSON value from b, refusing nesting deeper
// than maxDepth and objects that name a key twice (encoding/json would let
// the last one win, so {"_id": "a", "_id": "b"} would silently mean "b").
func decodeJSON(b []byte, maxDepth int) (*jvalue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 1, maxDepth)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth, maxDepth int) (*jvalue, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed(err)
	}
	switch t := tok.(type) {
	case nil:
		return &jvalue{kind: jNull}, nil
	case bool:
		return &jvalue{kind: jBool, b: t}, nil
	case json.Number:
		return &jvalue{kind: jNumber, s: string(t)}, nil
	case string:
		return &jvalue{kind: jString, s: t}, nil
	case json.Delim:
		if t != '{' && t != '[' {
			return nil, invalid("malformed JSON: unexpected %q", rune(t))
		}
		if depth > maxDepth {
			return nil, invalid("nesting deeper than %d levels", maxDepth)
		}
		v := &jvalue{kind: jArray}
		var seen map[string]bool
		if t == '{' {
			v.kind = jObject
			seen = map[string]bool{}
		}
		for dec.More() {
			if v.kind == jObject {
				kt, err := dec.Token()
				if err != nil {
					return nil, malformed(err)
				}
				k, _ := kt.(string)
				if seen[k] {
					return nil, fmt.Errorf("%w: %w %q", ErrInvalid, fleet.ErrDuplicateKey, k)
				}
				seen[k] = true
				v.keys = append(v.keys, k)
			}
			e, err := decodeValue(dec, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			v.vals = append(v.vals, e)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, malformed(err)
		}
		return v, nil
	}
	return nil, invalid("malformed JSON")
}

func malformed(err error) error {
	if errors.Is(err, io.EOF) {
		return invalid("malformed JSON: unexpected end of input")
	}
	return invalid("malformed JSON: %v", err)
}
