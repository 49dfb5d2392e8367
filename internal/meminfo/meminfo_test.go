package meminfo

import "testing"

func TestParseTotal(t *testing.T) {
	for in, want := range map[string]uint64{
		"MemTotal:       24683828 kB\nMemFree: 1 kB\n": 24683828 << 10,
		"MemFree: 1 kB\nMemTotal: 2048 kB":             2 << 20,
		"MemFree: 1 kB\n":                              0,
		"MemTotal: lots kB\n":                          0,
		"MemTotal:\n":                                  0,
	} {
		if got := parseTotal([]byte(in)); got != want {
			t.Errorf("parseTotal(%q) = %d; want %d", in, got, want)
		}
	}
}
