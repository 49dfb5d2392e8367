package cwmp

import "encoding/binary"

// Word-at-a-time scans for text that needs no escaping. Nearly every byte
// of a bootstrap's largest messages (the GetParameterNames and
// GetParameterValues answers, 30-45 KB each) is a parameter name or value
// that goes through unchanged, and the codec looked at each byte on its
// own, twice when decoding (the scanner's check, then unescape): the
// encoder's loop was ~7 % of a simulator's CPU in a storm. These test
// eight bytes at once (SWAR) and stop at the first word that may hold a
// byte the caller treats specially; the tests may flag a word that holds
// none (TAB and LF, say), which the caller's byte loop then looks at, so a
// flag costs speed, never correctness.

const (
	wordOnes  = 0x0101010101010101
	wordHighs = 0x8080808080808080
)

// anyZero is non-zero when a byte of x is zero.
func anyZero(x uint64) uint64 { return (x - wordOnes) &^ x & wordHighs }

// anyBelow is non-zero when a byte of x is below n (n ≤ 128).
func anyBelow(x uint64, n byte) uint64 { return (x - wordOnes*uint64(n)) &^ x & wordHighs }

// anyIs is non-zero when a byte of x is c.
func anyIs(x uint64, c byte) uint64 { return anyZero(x ^ wordOnes*uint64(c)) }

// plainTextPrefix is the length of the longest run of whole 8-byte words
// at the start of b holding none of '&', ']', C0 controls (TAB and LF
// included) and non-ASCII bytes: text unescape returns as it is.
func plainTextPrefix(b []byte) int {
	i := 0
	for ; len(b)-i >= 8; i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if x&wordHighs|anyBelow(x, 0x20)|anyIs(x, '&')|anyIs(x, ']') != 0 {
			break
		}
	}
	return i
}

// plainMarkupPrefix is the length of the longest run of whole 8-byte
// words at the start of s holding none of the bytes appendEscaped must
// look at (needsEscape): the five markup characters, C0 controls and
// non-ASCII bytes.
func plainMarkupPrefix(s string) int {
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		_ = s[i+7]
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// '&' (0x26) and '\'' (0x27) are the bytes whose value with the
		// low bit set is 0x27; '<' (0x3c) and '>' (0x3e) the ones whose
		// value with bit 1 set is 0x3e.
		if x&wordHighs|anyBelow(x, 0x20)|anyIs(x, '"')|anyIs(x|wordOnes, 0x27)|anyIs(x|2*wordOnes, 0x3e) != 0 {
			break
		}
	}
	return i
}
