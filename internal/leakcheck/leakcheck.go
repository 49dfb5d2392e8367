// Package leakcheck lets tests assert that a stopped system left no
// goroutine of its own behind.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// NoGoroutines fails t unless, within wait, no goroutine other than the
// test's own has a stack mentioning one of the given package paths (for
// example "edgeacs/edge." or "dgraph-io/badger"). It polls, so goroutines
// still unwinding after a shutdown get their time.
func NoGoroutines(t testing.TB, wait time.Duration, packages ...string) {
	t.Helper()
	var leaked []string
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			// The test's own goroutine, this one, and the binary's main
			// goroutine waiting in a package's TestMain for the tests.
			if strings.Contains(g, t.Name()) || strings.Contains(g, "leakcheck.NoGoroutines") || strings.Contains(g, ".TestMain(") {
				continue
			}
			for _, p := range packages {
				if strings.Contains(g, p) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines outlived the test's system:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
