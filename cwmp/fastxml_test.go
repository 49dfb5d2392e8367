package cwmp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// fastParseCases are envelopes and fragments that take or refuse the fast
// path: entities, line ends, attributes, names, declarations, nesting.
var fastParseCases = []string{
	`<Envelope><Body/></Envelope>`,
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:cwmp='urn:dslforum-org:cwmp-1-0'>\r\n <soap:Body>\r\n<cwmp:X a = \"1\" b='&lt;&amp;&#65;&#x42;'>t&gt;\r\nu\rv&quot;&apos;</cwmp:X></soap:Body></soap:Envelope>",
	`<?xml version="1.0"?><E><B><V>a]b</V><V>a]]>b</V></B></E>`,
	`<?xml version="1.0" encoding="ISO-8859-1"?><E/>`,
	`<?xml-stylesheet x?><E/>`,
	`<E><!-- c --><B/></E>`,
	`<E><B>a<!-- c -->b</B></E>`,
	`<E><!-- a -- b --></E>`,
	"<E><!-- a\r\nb --></E>",
	`<E><!-- a --->`,
	`<E><B><![CDATA[x]]></B></E>`,
	`<E><B>&nbsp;</B></E>`,
	`<E><B>a & b</B></E>`,
	`<E><B a=1/></E>`,
	`<E><B a="1" a="2"/></E>`,
	`<E><B></C></E>`,
	`<E><B>`,
	`<E/><F/>`,
	`<E/>x`,
	`<E/>  `,
	`<a:b:c/>`,
	`<:a/>`,
	`<a:/>`,
	`<E><B>é ü €</B></E>`,
	"<E><B>\x01</B></E>",
	`<E><B>&#0;</B></E>`,
	`<E><B>&#xFFFE;</B></E>`,
	"<E><B>\uFFFE</B></E>",
	`<E><B>&#-1;</B></E>`,
	`<E><B>&;</B></E>`,
	`<Eé/>`,
	`<E x="<"/>`,
	`<E x="a"y="b"/>`,
	`<E  x = 'a' / >`,
	`<E><B  /></E  >`,
	`<1E/>`,
	`<E.1-2_3/>`,
	"\t\n<E/>",
	`<?xml version="1.0"`,
}

// TestFastParseMatchesEtree: wherever the fast path accepts input, its
// document is etree's; the fixtures, the cases above and real simulator
// answers go through it.
func TestFastParseMatchesEtree(t *testing.T) {
	inputs, files := withFixtures(t, fastParseCases)
	fast := 0
	for _, in := range inputs {
		if checkFastParse(t, []byte(in)) {
			fast++
		}
	}
	t.Logf("%d of %d inputs took the fast path", fast, len(inputs))
	if fast < len(files) {
		t.Errorf("only %d of %d inputs took the fast path (%d fixtures)", fast, len(inputs), len(files))
	}
}

// checkFastParse compares the fast path with etree on in and reports
// whether the fast path took it.
func checkFastParse(t *testing.T, in []byte) bool {
	t.Helper()
	doc, ok := fastParse(in, DefaultMaxDepth)
	if !ok {
		return false
	}
	want, err := etreeParse(in, DefaultMaxDepth)
	if err != nil {
		t.Fatalf("fast path accepted what etree refuses (%v):\n%q", err, in)
	}
	if got, exp := dumpElement(doc.Root()), dumpElement(want.Root()); got != exp {
		t.Fatalf("fast path differs on %q:\n got %s\nwant %s", in, got, exp)
	}
	return true
}

func dumpElement(e *etree.Element) string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		fmt.Fprintf(&b, "<%q:%q", e.Space, e.Tag)
		for _, a := range e.Attr {
			fmt.Fprintf(&b, " %q:%q=%q", a.Space, a.Key, a.Value)
		}
		b.WriteString(">")
		for _, c := range e.Child {
			switch c := c.(type) {
			case *etree.Element:
				walk(c)
			case *etree.CharData:
				fmt.Fprintf(&b, "[%q %v]", c.Data, c.IsWhitespace())
			case *etree.Comment:
				fmt.Fprintf(&b, "{!%q}", c.Data)
			default:
				fmt.Fprintf(&b, "{%T}", c)
			}
		}
		b.WriteString("</>")
	}
	walk(e)
	return b.String()
}

func FuzzFastParse(f *testing.F) {
	for _, s := range fastParseCases {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.xml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkFastParse(t, in) })
}

// withFixtures is cases followed by every testdata/*.xml fixture's text,
// and the fixtures' names.
func withFixtures(t *testing.T, cases []string) (inputs, files []string) {
	t.Helper()
	inputs = append([]string(nil), cases...)
	files, _ = filepath.Glob("testdata/*.xml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	return inputs, files
}
