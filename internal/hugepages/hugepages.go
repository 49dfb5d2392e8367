// Package hugepages asks Linux to back the process's anonymous memory (the
// Go heap, goroutine stacks) with transparent huge pages, on systems that
// leave that to each process (/sys/kernel/mm/transparent_hugepage/enabled
// set to "madvise", the default of many distributions).
//
// Why: the Go runtime maps its heap without asking for huge pages (it
// stopped doing so in Go 1.21.1), so under "madvise" every 4 KiB page it
// touches for the first time, or again after returning it to the OS, is a
// page fault. In a virtual machine a fault can cost tens of times what it
// does on bare metal (~10.5 µs on the paravirtualised box the storm
// benchmarks run on), and a process that churns memory takes hundreds of
// thousands of them: Badger's memtable arenas and table builders, a
// storm's sessions, a simulator's replies. With huge pages a 2 MiB region
// costs one fault. Two alternated pairs of 100k-device storms by hand on
// that box, the edge and its two simulators asking against neither: the
// edge took 0.50-0.54 million faults instead of 1.05 and the simulators
// 28-54 thousand instead of 0.79-0.81 million; the edge used 192-200 CPU-s
// instead of 212-251, the simulators 92-93 instead of 112-141, and the
// storm took 171.5 and 179.0 s against 233.7 and 195.9 s.
//
// Advise marks each private anonymous writable mapping. The heap grows by
// new mappings, which the runtime touches as soon as it maps them, before
// any later mark: so Reserve first grows the heap by what the process
// expects to use, untouched, and gives it back, leaving it mapped and
// marked for the heap to grow into; Keep marks what grows beyond it.
package hugepages

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/edgeacs/edgeacs/internal/meminfo"
)

// Interval is how often Keep marks new mappings, those the heap grows by
// beyond what Reserve set aside.
const Interval = time.Second

// hugePageSize is the x86-64 and arm64 (4 KiB pages) huge page size: a
// mapping smaller than one cannot hold one.
const hugePageSize = 2 << 20

// modeFile is where Linux says which mappings get transparent huge pages.
const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// Wanted reports whether asking helps: the system gives huge pages only to
// mappings that ask ("madvise"). Under "always" every mapping gets them
// already; under "never", or where there is no such setting, none can.
// Only 64-bit processes ask: a 32-bit one has no address space to set
// aside.
func Wanted() bool {
	if strconv.IntSize < 64 {
		return false
	}
	b, err := os.ReadFile(modeFile)
	return err == nil && selected(string(b)) == "madvise"
}

// selected is the bracketed choice of a sysfs mode line such as
// "always [madvise] never".
func selected(line string) string {
	_, after, ok := strings.Cut(line, "[")
	if !ok {
		return ""
	}
	mode, _, ok := strings.Cut(after, "]")
	if !ok {
		return ""
	}
	return mode
}

// mapping is one line of /proc/self/maps that Advise may mark.
type mapping struct{ Start, End uintptr }

// candidates parses /proc/<pid>/maps text and returns the private anonymous
// writable mappings that can hold a huge page: the Go heap, its stacks and
// the runtime's other anonymous memory, not files (Badger's write-ahead
// logs and tables), the process's main stack or the kernel's special ones.
func candidates(maps []byte) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1] != "rw-p" || f[4] != "0" {
			continue
		}
		if len(f) > 5 && !strings.HasPrefix(f[5], "[anon:") && f[5] != "[heap]" {
			continue // [stack], [vvar], a deleted file's name
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps line %q: no address range", sc.Text())
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("maps line %q: bad address range", sc.Text())
		}
		if end-start >= hugePageSize {
			out = append(out, mapping{Start: uintptr(start), End: uintptr(end)})
		}
	}
	return out, sc.Err()
}

// Advise marks every candidate mapping of the process for huge pages and
// returns how many it marked. Marking one already marked changes nothing.
func Advise() (int, error) {
	var a adviser
	return a.advise()
}

// adviser marks candidate mappings it has not marked before. Keep runs
// one every second for the process's life: a madvise takes the process's
// memory map lock for writing (stalling page faults on its other
// threads), and a process with Badger's files open has dozens of
// candidates, nearly all of them marked by the last pass.
type adviser struct {
	// marked is the mappings the last pass saw marked, by their exact
	// range: one the kernel has since merged with a new neighbour is a
	// new range, marked again once.
	marked map[mapping]bool
}

// advise marks the candidate mappings not marked by the last pass and
// returns how many it marked.
func (a *adviser) advise() (int, error) {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("read mappings: %w", err)
	}
	return a.mark(b, adviseHuge)
}

// mark is advise on /proc/self/maps text maps, asking with adviseFn.
func (a *adviser) mark(maps []byte, adviseFn func(addr, n uintptr) error) (int, error) {
	ms, err := candidates(maps)
	if err != nil {
		return 0, err
	}
	seen := make(map[mapping]bool, len(ms))
	n := 0
	for _, m := range ms {
		if a.marked[m] {
			seen[m] = true
			continue
		}
		// A mapping unmapped since the read fails with ENOMEM: skip it.
		if adviseFn(m.Start, m.End-m.Start) == nil {
			seen[m] = true
			n++
		}
	}
	a.marked = seen
	return n, nil
}

// Reserve grows the heap by n bytes without touching them, marks the
// process's mappings (Advise), and returns the bytes to the OS: they stay
// mapped and marked, costing no memory until the heap uses them, and the
// heap grows into them before it maps more. A fresh allocation of that
// size is not zeroed (the OS's pages are), so nothing is touched; the
// full collection that returns it (debug.FreeOSMemory) is a few ms while
// the heap is small, as at start.
//
// n is cut to what the system will surely grant (reservable): under
// strict overcommit a mapping the system refuses would be a fatal out of
// memory, not an error.
func Reserve(n int) (int, error) {
	marked, _, err := reserve(reservable(n))
	return marked, err
}

// reserve is Reserve without the cut; it also returns where the n bytes
// were (tests look at them).
func reserve(n int) (int, mapping, error) {
	b := make([]byte, n)
	at := mapping{Start: uintptr(unsafe.Pointer(unsafe.SliceData(b)))}
	at.End = at.Start + uintptr(n)
	marked, err := Advise()
	runtime.KeepAlive(b)
	b = nil
	debug.FreeOSMemory()
	return marked, at, err
}

// reservable is n, or less so that the system surely grants it: nothing
// under strict overcommit (vm.overcommit_memory 2, which counts a mapping
// against a commit limit when it is made), at most half the machine's
// memory otherwise (the default heuristic refuses a mapping beyond memory
// and swap together).
func reservable(n int) int {
	if b, err := os.ReadFile("/proc/sys/vm/overcommit_memory"); err != nil || strings.TrimSpace(string(b)) == "2" {
		return 0
	}
	return min(n, int(meminfo.Total()/2))
}

// Keep marks the process's new candidate mappings every interval until
// ctx ends (Advise, skipping those it marked before). A failure is logged,
// and Keep stops: a kernel that refused the advice once will again.
func Keep(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var a adviser
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := a.advise(); err != nil {
			log.Warn("huge pages: cannot mark the heap's new mappings", "err", err)
			return
		}
	}
}

// Start sets reserve bytes of heap aside for huge pages (Reserve) and
// marks what the heap grows by beyond them until ctx ends (Keep, on a
// goroutine ctx stops), when the system leaves huge pages to the process
// (Wanted); otherwise it does nothing.
func Start(ctx context.Context, reserve int, log *slog.Logger) {
	if !Wanted() {
		return
	}
	if _, err := Reserve(reserve); err != nil {
		log.Warn("huge pages: cannot mark the heap; running with small pages", "err", err)
		return
	}
	go Keep(ctx, Interval, log)
}
