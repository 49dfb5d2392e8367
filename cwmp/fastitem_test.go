package cwmp

import "testing"

// TestQuickPair: the shapes quickPair reads, and that it leaves the
// scanner where it was for any other (the token path then reads them;
// TestFastDecodeMatches checks that both decode alike).
func TestQuickPair(t *testing.T) {
	tests := []struct {
		in, second string
		typed      bool
		a, b, typ  string
		hasTyp, ok bool
	}{
		{`<Name>A.B</Name><Value xsi:type="xsd:int">5</Value></P>rest`, "Value", true, "A.B", "5", "xsd:int", true, true},
		{"\n\t<Name>A</Name>\n\t<Value>x y</Value>\n</P>rest", "Value", true, "A", "x y", "", false, true},
		{`<Name></Name><Value></Value></P>rest`, "Value", true, "", "", "", false, true},
		{`<Name>A.</Name><Writable>1</Writable></P>rest`, "Writable", false, "A.", "1", "", false, true},
		{`<Name>A</Name><Value xsi:type="xsd:int">5</Value></P>`, "Value", false, "", "", "", false, false},
		{`<Name>A</Name><Value xsi:type="xsd:int" >5</Value></P>`, "Value", true, "", "", "", false, false},
		{`<Name>A&amp;</Name><Value>5</Value></P>`, "Value", true, "", "", "", false, false},
		{`<Name>A</Name><Value>é</Value></P>`, "Value", true, "", "", "", false, false},
		{`<Name>A</Name><Value>5</Value></Q>`, "Value", true, "", "", "", false, false},
		{`<Name>A</Name><Value>5</Value><X/></P>`, "Value", true, "", "", "", false, false},
		{`<Value>5</Value><Name>A</Name></P>`, "Value", true, "", "", "", false, false},
		{`<Name>A</Name><Value>5</Value></P`, "Value", true, "", "", "", false, false},
		{`<Name>A</Name><!-- c --><Value>5</Value></P>`, "Value", true, "", "", "", false, false},
		{`<Name>A</Name><Valuex>5</Valuex></P>`, "Value", true, "", "", "", false, false},
	}
	for _, tc := range tests {
		s := scanner{fastParser: fastParser{data: []byte(tc.in)}, maxDepth: 8, stack: [][]byte{[]byte("P")}}
		a, b, typ, ok := s.quickPair("Name", tc.second, tc.typed)
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			if s.i != 0 || len(s.stack) != 1 {
				t.Errorf("%q: the scanner moved (at %d, %d open)", tc.in, s.i, len(s.stack))
			}
			continue
		}
		if string(a) != tc.a || string(b) != tc.b || string(typ) != tc.typ || (typ != nil) != tc.hasTyp {
			t.Errorf("%q: %q %q %q, want %q %q %q", tc.in, a, b, typ, tc.a, tc.b, tc.typ)
		}
		if string(s.data[s.i:]) != "rest" || len(s.stack) != 0 || s.kind != tokEnd {
			t.Errorf("%q: left at %q with %d open, want at \"rest\" after the entry's end tag", tc.in, s.data[s.i:], len(s.stack))
		}
	}
	deep := scanner{fastParser: fastParser{data: []byte(`<Name>A</Name><Value>5</Value></P>`)}, maxDepth: 1, stack: [][]byte{[]byte("P")}}
	if _, _, _, ok := deep.quickPair("Name", "Value", true); ok {
		t.Error("read fields past the depth bound")
	}
}
