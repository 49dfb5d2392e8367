package sim

import (
	"bytes"
	"strings"
	"sync"

	"github.com/edgeacs/edgeacs/cwmp"
)

// An ACS asks every device of a model the same thing: in a bootstrap
// storm, the GetParameterValues of a gateway's whole tree (256 names,
// ~15 KB) reaches tens of thousands of devices byte for byte the same but
// for the envelope's cwmp:ID. Decoding it, a string per name, was a tenth
// of the simulator's CPU in a storm (by profile). replyMemo keeps the last
// few large requests decoded and answers a document that differs from one
// of them only in the ID's text with a copy of that decode: the Body is
// shared, read-only (Device.handle reads requests, never writes them).

// Bounds of the memo: how many documents it keeps, and the smallest it
// keeps (smaller ones cost little to decode and would only push the
// large ones out).
const (
	replyMemoSize = 16
	replyMemoMin  = 1 << 10
)

// replyMemo is a fleet's memo of decoded ACS requests. Safe for
// concurrent use.
type replyMemo struct {
	mu   sync.Mutex
	ents [replyMemoSize]memoEntry
	hand int // the clock hand: the next entry eviction considers
}

// memoEntry is one decoded document, split around the text of its
// cwmp:ID: pre ends with the ID's start tag, suf begins with its end tag.
type memoEntry struct {
	pre, suf []byte
	env      *cwmp.Envelope
	// used: looked up since the clock hand last passed (second chance).
	used bool
}

// decode is cwmp.Decode, from the memo when data is a document it holds
// with another ID.
func (m *replyMemo) decode(data []byte) (*cwmp.Envelope, error) {
	if m == nil || len(data) < replyMemoMin {
		return cwmp.Decode(data)
	}
	if env, ok := m.lookup(data); ok {
		return env, nil
	}
	env, err := cwmp.Decode(data)
	if err != nil || !env.HasID || env.SkippedTotal > 0 {
		return env, err
	}
	if pre, suf, ok := splitAtID(data, env.ID); ok {
		cp := *env
		m.mu.Lock()
		m.put(memoEntry{pre: bytes.Clone(pre), suf: bytes.Clone(suf), env: &cp})
		m.mu.Unlock()
	}
	return env, nil
}

func (m *replyMemo) lookup(data []byte) (*cwmp.Envelope, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.ents {
		e := &m.ents[i]
		if e.env == nil || len(data) <= len(e.pre)+len(e.suf) ||
			!bytes.HasPrefix(data, e.pre) || !bytes.HasSuffix(data, e.suf) {
			continue
		}
		id := data[len(e.pre) : len(data)-len(e.suf)]
		if !plainID(id) {
			continue
		}
		e.used = true
		env := *e.env
		env.ID = string(id)
		return &env, true
	}
	return nil, false
}

// put adds e, in place of the first entry the clock hand finds unused.
func (m *replyMemo) put(e memoEntry) {
	for {
		old := &m.ents[m.hand]
		m.hand = (m.hand + 1) % len(m.ents)
		if old.env != nil && old.used {
			old.used = false
			continue
		}
		*old = e
		return
	}
}

// splitAtID finds the text of the document's first element named ID
// (the header's cwmp:ID, as the decoder reads it: the first, any prefix,
// any case) and returns what comes before and after it. ok is false
// unless that text is id and plainID: a document that differs from this
// one only there then decodes the same but for the ID.
func splitAtID(data []byte, id string) (pre, suf []byte, ok bool) {
	if !plainID([]byte(id)) {
		return nil, nil, false
	}
	for i := 0; i < len(data); {
		lt := bytes.IndexByte(data[i:], '<')
		if lt < 0 {
			return nil, nil, false
		}
		start := i + lt + 1
		gt := bytes.IndexByte(data[start:], '>')
		if gt < 0 {
			return nil, nil, false
		}
		tag := data[start : start+gt]
		i = start + gt + 1
		name := tag
		if sp := bytes.IndexAny(tag, " \t\r\n"); sp >= 0 {
			name = tag[:sp]
		}
		if len(name) == 0 || name[0] == '/' || name[0] == '?' || name[0] == '!' || name[len(name)-1] == '/' {
			continue
		}
		local := name
		if c := bytes.LastIndexByte(name, ':'); c >= 0 {
			local = name[c+1:]
		}
		if !strings.EqualFold(string(local), "id") {
			continue
		}
		end := "</" + string(name) + ">"
		if !bytes.HasPrefix(data[i:], []byte(id+end)) {
			return nil, nil, false
		}
		return data[:i], data[i+len(id):], true
	}
	return nil, nil, false
}

// plainID reports whether an ID's text is one that reads as itself in
// any document: not empty, no markup, entity, space or non-ASCII byte.
func plainID(id []byte) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
