//go:build unix

package edge

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time: on shared cores the
// apply path's cost is CPU, not wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
