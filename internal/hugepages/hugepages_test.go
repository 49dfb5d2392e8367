package hugepages

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestSelected(t *testing.T) {
	for line, want := range map[string]string{
		"always [madvise] never\n": "madvise",
		"[always] madvise never":   "always",
		"always madvise [never]":   "never",
		"always madvise never":     "",
		"always [madvise never":    "",
		"":                         "",
	} {
		if got := selected(line); got != want {
			t.Errorf("selected(%q) = %q; want %q", line, got, want)
		}
	}
}

func TestCandidates(t *testing.T) {
	maps := `00400000-00a00000 r-xp 00000000 fd:01 1234  /usr/bin/edgeacs
c000000000-c004000000 rw-p 00000000 00:00 0
c004000000-c008000000 ---p 00000000 00:00 0
7f0000000000-7f0000400000 rw-p 00000000 00:00 0  [anon:Go: heap]
7f0000400000-7f0000401000 rw-p 00000000 00:00 0
7f1000000000-7f1002000000 rw-p 00000000 fd:01 99  /data/edge/00001.mem
7f2000000000-7f2000400000 rw-s 00000000 00:01 7  /dev/zero (deleted)
7ffc00000000-7ffc00400000 rw-p 00000000 00:00 0  [stack]
01000000-01400000 rw-p 00000000 00:00 0  [heap]
`
	got, err := candidates([]byte(maps))
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{0xc000000000, 0xc004000000},
		{0x7f0000000000, 0x7f0000400000},
		{0x01000000, 0x01400000},
	}
	if len(got) != len(want) {
		t.Fatalf("candidates = %x; want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("candidate %d = %x; want %x", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		"c000000000 rw-p 00000000 00:00 0\n",
		"zz-c004000000 rw-p 00000000 00:00 0\n",
		"c004000000-c000000000 rw-p 00000000 00:00 0\n",
	} {
		if _, err := candidates([]byte(bad)); err == nil {
			t.Errorf("candidates(%q): no error", bad)
		}
	}
}

// TestAdviserMarksNewOnly: each pass marks only the candidates the last
// pass did not leave marked (a madvise write-locks the process's memory
// map): a new mapping, one merged into a new range, one whose marking
// failed; not the rest again.
func TestAdviserMarksNewOnly(t *testing.T) {
	const (
		heap  = "c000000000-c004000000 rw-p 00000000 00:00 0\n"
		anon  = "7f0000000000-7f0000400000 rw-p 00000000 00:00 0  [anon:Go: heap]\n"
		grown = "7f0000000000-7f0000800000 rw-p 00000000 00:00 0  [anon:Go: heap]\n"
		fresh = "7f3000000000-7f3000400000 rw-p 00000000 00:00 0\n"
	)
	var a adviser
	var asked []uintptr
	fail := map[uintptr]bool{}
	advise := func(addr, n uintptr) error {
		asked = append(asked, addr)
		if fail[addr] {
			return syscall.ENOMEM
		}
		return nil
	}
	for _, pass := range []struct {
		name, maps string
		fail       []uintptr
		want       []uintptr
	}{
		{"first", heap + anon, nil, []uintptr{0xc000000000, 0x7f0000000000}},
		{"unchanged", heap + anon, nil, nil},
		{"new mapping, one failing", heap + anon + fresh, []uintptr{0x7f3000000000}, []uintptr{0x7f3000000000}},
		{"failed one again, merged range", heap + grown + fresh, nil, []uintptr{0x7f0000000000, 0x7f3000000000}},
		{"all marked", heap + grown + fresh, nil, nil},
	} {
		asked, fail = nil, map[uintptr]bool{}
		for _, f := range pass.fail {
			fail[f] = true
		}
		n, err := a.mark([]byte(pass.maps), advise)
		if err != nil {
			t.Fatalf("%s: %v", pass.name, err)
		}
		if !slices.Equal(asked, pass.want) || n != len(pass.want)-len(pass.fail) {
			t.Errorf("%s: asked %x, marked %d; want %x, %d", pass.name, asked, n, pass.want, len(pass.want)-len(pass.fail))
		}
	}
}

// overlapping sums the size and the resident memory of the process's
// mappings that overlap m, in KiB, and reports whether all of them are
// marked for huge pages (VmFlags "hg" in smaps).
func overlapping(t *testing.T, m mapping) (size, rss int, allMarked bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	kib := func(v string) int {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		if err != nil {
			t.Fatalf("smaps value %q: %v", v, err)
		}
		return n
	}
	allMarked = true
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, hi, _ := strings.Cut(f[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uintptr(start) < m.End && uintptr(end) > m.Start
			continue
		}
		if !in {
			continue
		}
		if v, ok := strings.CutPrefix(line, "Size:"); ok {
			size += kib(v)
		} else if v, ok := strings.CutPrefix(line, "Rss:"); ok {
			rss += kib(v)
		} else if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && !strings.Contains(" "+v+" ", " hg ") {
			allMarked = false
		}
	}
	return size, rss, allMarked
}

// TestReserve: reserve sets its bytes aside without touching them (a
// touch is a page fault per 4 KiB: 65,536 for 256 MiB), marks them for huge
// pages, and leaves none resident. (Resident memory is read for the
// mappings that hold them, not for the process: under the race detector
// their shadow is resident.)
func TestReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	const n = 256 << 20
	faults := func() int64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return ru.Minflt
	}
	before := faults()
	marked, at, err := reserve(n)
	if err != nil {
		t.Fatal(err)
	}
	// The collection and the runtime's own bookkeeping take a few hundred.
	if f := faults() - before; f > n/4096/8 {
		t.Errorf("reserving %d MiB took %d page faults: its bytes were touched", n>>20, f)
	}
	if marked == 0 {
		t.Skip("the kernel marked no mapping (no transparent huge pages)")
	}
	size, rss, allMarked := overlapping(t, at)
	if size < n>>10 || !allMarked {
		t.Errorf("the reserve's mappings: %d KiB, all marked %v; want at least %d KiB, all marked", size, allMarked, n>>10)
	}
	// What else the test's heap holds shares those mappings: a few MiB.
	if rss > 32<<10 {
		t.Errorf("%d KiB of the reserve's %d KiB of mappings are resident", rss, size)
	}
}
