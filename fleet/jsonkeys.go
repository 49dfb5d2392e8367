package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrDuplicateKey means a JSON object names the same key twice.
// encoding/json lets the last one win, so {"name": "reboot", "name":
// "factoryReset"} would silently become a factory reset; requests that do
// this are refused instead.
var ErrDuplicateKey = errors.New("duplicate JSON key")

// RejectDuplicateKeys checks the first JSON value in b for an object that
// names a key twice, and returns an error wrapping ErrDuplicateKey that
// names it (with its path, e.g. "task.name"). It reports nothing else:
// malformed JSON returns nil here and is left to the decoder that follows,
// which words that error itself. It walks tokens, not a tree, so it
// allocates little beyond the keys.
func RejectDuplicateKeys(b []byte) error {
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool            // in an object: the next token is a key
		path    string          // where this container is
		lastKey string          // in an object: the key whose value comes next
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // no float parsing: only the structure matters
	var stack []*frame
	// valueDone marks the end of a value in the enclosing container.
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].keys != nil {
			stack[len(stack)-1].wantKey = true
		}
	}
	childPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if top.keys == nil {
			return top.path + "[]"
		}
		if top.path == "" {
			return top.lastKey
		}
		return top.path + "." + top.lastKey
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // end of input or malformed: the real decoder decides
		}
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; top.keys != nil && top.wantKey {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					if len(stack) == 0 {
						return nil
					}
					valueDone()
					continue
				}
				k, _ := tok.(string)
				if top.keys[k] {
					name := k
					if top.path != "" {
						name = top.path + "." + k
					}
					return fmt.Errorf("%w %q", ErrDuplicateKey, name)
				}
				top.keys[k], top.wantKey, top.lastKey = true, false, k
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true, path: childPath()})
		case json.Delim('['):
			stack = append(stack, &frame{path: childPath()})
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil
			}
			valueDone()
		default:
			if len(stack) == 0 {
				return nil // a scalar at the top: no object to check
			}
			valueDone()
		}
	}
}
