package hugepages

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
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
	want := []Mapping{
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

// rssKiB is the process's resident memory.
func rssKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// markedKiB is the size of the process's mappings marked for huge pages
// (VmFlags "hg" in smaps).
func markedKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	total, size := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Size:"); ok {
			size, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && strings.Contains(" "+v+" ", " hg ") {
			total += size
		}
	}
	return total
}

// TestReserve: Reserve marks at least what it set aside and costs no
// resident memory for it.
func TestReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	const reserve = 256 << 20
	before := rssKiB(t)
	n, err := Reserve(reserve)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("the kernel marked no mapping (no transparent huge pages)")
	}
	if grew := rssKiB(t) - before; grew > 64<<10 {
		t.Errorf("resident memory grew by %d KiB for a %d MiB reserve", grew, reserve>>20)
	}
	if m := markedKiB(t); m < reserve>>10 {
		t.Errorf("%d KiB marked for huge pages; want at least the %d KiB reserved", m, reserve>>10)
	}
}

func TestMemTotal(t *testing.T) {
	for in, want := range map[string]int{
		"MemTotal:       24683828 kB\nMemFree: 1 kB\n": 24683828 << 10,
		"MemFree: 1 kB\n":     0,
		"MemTotal: lots kB\n": 0,
	} {
		if got := memTotal([]byte(in)); got != want {
			t.Errorf("memTotal(%q) = %d; want %d", in, got, want)
		}
	}
}
