package sim

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/cwmp"
)

// gpvDoc is a GetParameterValues of n names as an ACS encodes it.
func gpvDoc(t testing.TB, id string, hold bool, n int) []byte {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("InternetGatewayDevice.LANDevice.1.Hosts.Host.%d.IPAddress", i+1)
	}
	out, err := cwmp.Encode(&cwmp.Envelope{ID: id, HasID: true, HoldRequests: hold,
		Body: &cwmp.GetParameterValues{ParameterNames: names}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkMemo decodes doc through m and fails unless that is what
// cwmp.Decode makes of it.
func checkMemo(t testing.TB, m *replyMemo, doc []byte) {
	t.Helper()
	got, gerr := m.decode(doc)
	want, werr := cwmp.Decode(doc)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("error %v, want %v\n%s", gerr, werr, doc)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v\n%s", got, want, doc)
	}
}

func TestReplyMemo(t *testing.T) {
	base := gpvDoc(t, "1", false, 40)
	other := gpvDoc(t, "2", false, 41)
	tests := []struct {
		name string
		doc  []byte
		hit  bool // answered from the memo once base and other are in it
	}{
		{"same document", base, true},
		{"another ID", gpvDoc(t, "acs-7.x_9:1", false, 40), true},
		{"the other document, another ID", gpvDoc(t, "99", false, 41), true},
		{"a name changed", bytes.Replace(gpvDoc(t, "3", false, 40), []byte("Host.7."), []byte("Host.8."), 1), false},
		{"HoldRequests added", gpvDoc(t, "4", true, 40), false},
		{"an ID with an entity", gpvDoc(t, "a&b", false, 40), false},
		{"an ID with a space", bytes.Replace(gpvDoc(t, "5", false, 40), []byte(">5<"), []byte("> 5 <"), 1), false},
		{"an empty ID", bytes.Replace(gpvDoc(t, "5", false, 40), []byte(">5<"), []byte("><"), 1), false},
		{"ID markup", bytes.Replace(gpvDoc(t, "5", false, 40), []byte(">5<"), []byte("><x/>5<"), 1), false},
		{"truncated", base[:len(base)-20], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &replyMemo{}
			checkMemo(t, m, base)
			checkMemo(t, m, other)
			_, hit := m.lookup(tc.doc)
			if hit != tc.hit {
				t.Errorf("answered from the memo: %v, want %v", hit, tc.hit)
			}
			checkMemo(t, m, tc.doc)
		})
	}
}

// TestReplyMemoShared: what the memo answers does not share the envelope
// with another answer (a caller may set its fields), and small documents
// are not kept.
func TestReplyMemoShared(t *testing.T) {
	m := &replyMemo{}
	a, _ := m.decode(gpvDoc(t, "1", false, 40))
	b, _ := m.decode(gpvDoc(t, "2", false, 40))
	c, _ := m.decode(gpvDoc(t, "3", false, 40))
	if a == b || b == c || a.ID != "1" || b.ID != "2" || c.ID != "3" {
		t.Fatalf("envelopes shared or IDs wrong: %p %p %p, %q %q %q", a, b, c, a.ID, b.ID, c.ID)
	}
	small := &replyMemo{}
	checkMemo(t, small, gpvDoc(t, "1", false, 1))
	if _, hit := small.lookup(gpvDoc(t, "2", false, 1)); hit {
		t.Error("a document under replyMemoMin was kept")
	}
}

// TestReplyMemoEviction: the memo keeps replyMemoSize documents, and one
// looked up since the clock hand passed survives a wave of new ones.
func TestReplyMemoEviction(t *testing.T) {
	m := &replyMemo{}
	hot := gpvDoc(t, "1", false, 40)
	checkMemo(t, m, hot)
	for i := range 3 * replyMemoSize {
		checkMemo(t, m, gpvDoc(t, "x", false, 50+i))
		if _, hit := m.lookup(gpvDoc(t, fmt.Sprint(i), false, 40)); !hit {
			t.Fatalf("the document in use was evicted after %d others", i+1)
		}
	}
	if _, hit := m.lookup(gpvDoc(t, "y", false, 50)); hit {
		t.Error("the oldest unused document is still kept")
	}
}

func TestSplitAtID(t *testing.T) {
	tests := []struct {
		doc, id, pre string
		ok           bool
	}{
		{`<E><H><cwmp:ID a="1">7</cwmp:ID></H></E>`, "7", `<E><H><cwmp:ID a="1">`, true},
		{`<E><H><id>7</id></H></E>`, "7", `<E><H><id>`, true},
		{`<E><H><Hold>7</Hold><ID>7</ID></H></E>`, "7", `<E><H><Hold>7</Hold><ID>`, true},
		{`<E><!-- <ID>7</ID> --><H><ID>7</ID></H></E>`, "7", `<E><!-- <ID>7</ID> --><H><ID>`, true},
		{`<E><H><IDX>7</IDX></H></E>`, "7", "", false},
		{`<E><H><ID>7 </ID></H></E>`, "7", "", false},
		{`<E><H><ID/><ID>7</ID></H></E>`, "7", `<E><H><ID/><ID>`, true},
		{"<E><H><c:ID\n\ta=\"1\">7</c:ID></H><B><ID>7</ID></B></E>", "7", "<E><H><c:ID\n\ta=\"1\">", true},
	}
	for _, tc := range tests {
		pre, suf, ok := splitAtID([]byte(tc.doc), tc.id)
		if ok != tc.ok || ok && (string(pre) != tc.pre || string(pre)+tc.id+string(suf) != tc.doc) {
			t.Errorf("splitAtID(%q, %q) = %q, %q, %v; want %q, %v", tc.doc, tc.id, pre, suf, ok, tc.pre, tc.ok)
		}
	}
}

// FuzzReplyMemo: whatever the memo holds, it decodes a document as
// cwmp.Decode does.
func FuzzReplyMemo(f *testing.F) {
	base := gpvDoc(f, "1", false, 40)
	f.Add(base, gpvDoc(f, "2", false, 40))
	f.Add(base, gpvDoc(f, "2", true, 40))
	f.Add(base, bytes.Replace(base, []byte(">1<"), []byte(">1&amp;<"), 1))
	f.Add(base, []byte(strings.Replace(string(base), "Host.1.", "Host.2.", 1)))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		m := &replyMemo{}
		checkMemo(t, m, first)
		checkMemo(t, m, second)
	})
}

// TestDecodedRepliesOwnTheirBytes: what a reply decodes to, the memo's
// copy included, does not change when the buffer it was read from is
// reused (post reads every reply into a pooled buffer, replyBufs).
func TestDecodedRepliesOwnTheirBytes(t *testing.T) {
	var m replyMemo
	doc := gpvDoc(t, "1", false, 40)
	buf := bytes.Clone(doc)
	first, err := m.decode(buf)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cwmp.Decode(doc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'x'
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("the decode changed with its buffer: %+v, want %+v", first, want)
	}
	// The memo's copy answers the same document under another ID.
	next := gpvDoc(t, "2", false, 40)
	checkMemo(t, &m, next)
}
