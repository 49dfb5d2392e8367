package provision

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	lit := func(n string) Segment { return Segment{Name: n} }
	star := Segment{Kind: Wildcard}
	tests := []struct {
		in    string
		want  Path
		canon string
	}{
		{"", Path{}, ""},
		{"Device", Path{Segments: []Segment{lit("Device")}}, "Device"},
		{"Device.", Path{Segments: []Segment{lit("Device")}, Object: true}, "Device."},
		{"InternetGatewayDevice.LANDevice.*.Hosts.Host.*.MACAddress",
			Path{Segments: []Segment{lit("InternetGatewayDevice"), lit("LANDevice"), star, lit("Hosts"), lit("Host"), star, lit("MACAddress")}},
			"InternetGatewayDevice.LANDevice.*.Hosts.Host.*.MACAddress"},
		{"Device.WiFi.SSID.[SSID:guest,Enable:true].Enable",
			Path{Segments: []Segment{lit("Device"), lit("WiFi"), lit("SSID"),
				{Kind: Alias, Terms: []AliasTerm{{"Enable", "true"}, {"SSID", "guest"}}}, lit("Enable")}},
			`Device.WiFi.SSID.[Enable:"true",SSID:"guest"].Enable`},
		{`X.T.[Name:"a,b]\"c", Stats.Mode : x y ]`,
			Path{Segments: []Segment{lit("X"), lit("T"),
				{Kind: Alias, Terms: []AliasTerm{{"Name", `a,b]"c`}, {"Stats.Mode", "x y"}}}}},
			`X.T.[Name:"a,b]\"c",Stats.Mode:"x y"]`},
		{"X.T.[MAC:aa:bb:cc:dd:ee:ff]",
			Path{Segments: []Segment{lit("X"), lit("T"), {Kind: Alias, Terms: []AliasTerm{{"MAC", "aa:bb:cc:dd:ee:ff"}}}}},
			`X.T.[MAC:"aa:bb:cc:dd:ee:ff"]`},
		{"X.T.[]", Path{Segments: []Segment{lit("X"), lit("T"), {Kind: Alias, Terms: []AliasTerm{}}}}, "X.T.[]"},
		{"X.T.[Name:]", Path{Segments: []Segment{lit("X"), lit("T"), {Kind: Alias, Terms: []AliasTerm{{"Name", ""}}}}}, `X.T.[Name:""]`},
		{" X . Y ", Path{Segments: []Segment{lit("X"), lit("Y")}}, "X.Y"},
		{"X_00D09E_Vendor-Thing.1", Path{Segments: []Segment{lit("X_00D09E_Vendor-Thing"), lit("1")}}, "X_00D09E_Vendor-Thing.1"},
	}
	for _, tc := range tests {
		got, err := ParsePath(tc.in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePath(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.canon {
			t.Errorf("ParsePath(%q).String() = %q, want %q", tc.in, s, tc.canon)
		}
	}
}

func TestParsePathErrors(t *testing.T) {
	bad := []string{
		"A..B", ".A", "A.B*", "A.[", "A.[x]", "A.[x:1", `A.[x:"1]`, "A.[x:1,]", "A.[x:1]y",
		"A.[x:1,x:2]", "A.[:1]", "A.[x.:1]", "A.[x:a\"b]", "A.b c", "A.\x01", "A.[x:1].[y:2", "\xff",
		strings.Repeat("a", MaxPathLen+1),
		strings.Repeat("a.", MaxSegments) + "a",
		"A.[a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9]",
	}
	for _, s := range bad {
		if p, err := ParsePath(s); !errors.Is(err, ErrBadPath) {
			t.Errorf("ParsePath(%q) = %v, %v; want ErrBadPath", clip(s), p, err)
		}
	}
	if _, err := ParsePath(strings.Repeat("a.", MaxSegments-1) + "a"); err != nil {
		t.Errorf("%d segments: %v", MaxSegments, err)
	}
}

func TestPathHelpers(t *testing.T) {
	for _, tc := range []struct{ in, parent, last string }{
		{"A.B.C", "A.B.", "C"}, {"A.B.", "A.", "B"}, {"A.", "", "A"}, {"A", "", "A"},
	} {
		if p := parentPath(tc.in); p != tc.parent {
			t.Errorf("parentPath(%q) = %q, want %q", tc.in, p, tc.parent)
		}
		if l := lastSegment(tc.in); l != tc.last {
			t.Errorf("lastSegment(%q) = %q, want %q", tc.in, l, tc.last)
		}
	}
	if d := depth("A.B.C."); d != 3 {
		t.Errorf("depth = %d", d)
	}
	if n := instanceNumber("X.Host.12."); n != 12 {
		t.Errorf("instanceNumber = %d", n)
	}
}

// FuzzParsePath checks that the parser never panics, respects its bounds,
// and that a parsed path's canonical string parses back to the same path.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"", "Device.", "A.*.B", "A.[K:V,L:\"x,y\"].C", "A.[]", "X.T.[MAC:aa:bb]", "A..B", "A.[x:\"\\u0001\"]",
		"InternetGatewayDevice.LANDevice.1.WLANConfiguration.[SSID:guest].Enable",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("ParsePath(%q): error %v does not wrap ErrBadPath", s, err)
			}
			return
		}
		if len(p.Segments) > MaxSegments {
			t.Fatalf("ParsePath(%q): %d segments", s, len(p.Segments))
		}
		canon := p.String()
		q, err := ParsePath(canon)
		if err != nil {
			t.Fatalf("ParsePath(%q) ok but its String %q fails: %v", s, canon, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip of %q via %q: %+v != %+v", s, canon, p, q)
		}
		if q.String() != canon {
			t.Fatalf("String not stable: %q then %q", canon, q.String())
		}
	})
}
