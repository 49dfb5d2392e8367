package cwmp

import (
	"strings"
	"testing"
)

// specialText is what plainTextPrefix must stop at (unescape's special
// bytes, TAB and LF included).
func specialText(c byte) bool { return c == '&' || c == ']' || c < 0x20 || c >= 0x80 }

// TestPlainPrefixExact puts every byte value at every position of a word
// and checks both scans flag the word exactly when the byte is one their
// callers must look at, and take a word of plain bytes whole.
func TestPlainPrefixExact(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			for _, fill := range []byte{'a', ' ', '.', '=', '%', '\\', '0'} {
				w := []byte(strings.Repeat(string(fill), 24))
				w[8+pos] = byte(c)
				want := 24
				if specialText(byte(c)) {
					want = 8
				}
				if got := plainTextPrefix(w); got != want {
					t.Errorf("plainTextPrefix with %#x at %d in %q: %d, want %d", c, pos, fill, got, want)
				}
				want = 24
				if needsEscape[c] {
					want = 8
				}
				if got := plainMarkupPrefix(string(w)); got != want {
					t.Errorf("plainMarkupPrefix with %#x at %d in %q: %d, want %d", c, pos, fill, got, want)
				}
			}
		}
	}
}

// TestPlainPrefixShort checks text shorter than a word is left to the
// byte loop.
func TestPlainPrefixShort(t *testing.T) {
	for n := range 8 {
		s := strings.Repeat("a", n)
		if plainTextPrefix([]byte(s)) != 0 || plainMarkupPrefix(s) != 0 {
			t.Errorf("%d bytes: a prefix longer than the text", n)
		}
	}
}

// FuzzPlainPrefix checks the scans never pass over a byte their callers
// must see, and that the codec's results do not depend on them: the
// escaped text reads back as it was written (for text XML can carry).
func FuzzPlainPrefix(f *testing.F) {
	for _, s := range []string{"", "InternetGatewayDevice.DeviceInfo.SerialNumber", "a&b<c>d\"e'f\r\n\tg]h",
		"Résidentiel Gateway 1.0 ]]> &amp;", "\x00\x01\x1f\x7f\x80\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := plainTextPrefix([]byte(s))
		if n%8 != 0 || n > len(s) {
			t.Fatalf("plainTextPrefix(%q) = %d", s, n)
		}
		for i := range n {
			if specialText(s[i]) {
				t.Fatalf("plainTextPrefix(%q) = %d passes %#x at %d", s, n, s[i], i)
			}
		}
		n = plainMarkupPrefix(s)
		if n%8 != 0 || n > len(s) {
			t.Fatalf("plainMarkupPrefix(%q) = %d", s, n)
		}
		for i := range n {
			if needsEscape[s[i]] {
				t.Fatalf("plainMarkupPrefix(%q) = %d passes %#x at %d", s, n, s[i], i)
			}
		}
		// Escaped and read back, text without controls, CR or invalid
		// UTF-8 is unchanged.
		esc := appendEscaped(nil, s, false)
		got, ok := unescape(esc)
		if clean := strings.ToValidUTF8(s, "") == s && !strings.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 && r != '\t' && r != '\n' || r == 0xFFFE || r == 0xFFFF
		}); clean && (!ok || got != s) {
			t.Fatalf("appendEscaped(%q) = %q reads back as %q, %v", s, esc, got, ok)
		}
	})
}
