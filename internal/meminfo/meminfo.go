// Package meminfo reads how much memory the machine has, from Linux's
// /proc/meminfo: the edge sizes its admission bounds from it, and
// internal/hugepages bounds how much heap it sets aside.
package meminfo

import (
	"os"
	"strconv"
	"strings"
)

// Total is the machine's memory in bytes (MemTotal), 0 when unknown (not
// Linux, or no such line).
func Total() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseTotal(b)
}

// parseTotal is MemTotal's value in bytes from /proc/meminfo text, 0 if it
// has none.
func parseTotal(meminfo []byte) uint64 {
	for line := range strings.Lines(string(meminfo)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
			return 0
		}
	}
	return 0
}
