package edge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// The cache's memory is a budget the operator sets (Config.CacheMemory,
// `--cache-memory`), not Badger's library defaults. Those are sized for a
// database server: five 64 MiB memtables queued behind the one being
// written (each an arena on the Go heap plus its memory-mapped write-ahead
// log), a 256 MiB block cache and every table's index and Bloom filter
// held in memory whatever the data's size. With a budget, what the edge's
// memory is made of is known in advance (see DESIGN.md, "Memory").

// ByteSize is a size in bytes that reads, in YAML and on the command line,
// as a plain number or with a binary or decimal unit: 268435456, 256MiB,
// 256M, 1GiB, 1.5G.
type ByteSize int64

// ErrBadByteSize means a size that ParseByteSize cannot read.
var ErrBadByteSize = errors.New("edge: bad size")

// byteUnits are the suffixes ParseByteSize knows, longest first so "MiB"
// is not read as "B".
var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseByteSize reads a size such as "256MiB" (see ByteSize). A bare K, M,
// G or T is binary, as in most tools' flags.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range byteUnits {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			mult, t = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*mult >= 1<<62 {
		return 0, fmt.Errorf("%w: %q (want bytes, or a number with KiB, MiB, GiB...)", ErrBadByteSize, s)
	}
	return ByteSize(f * mult), nil
}

// UnmarshalText reads a ByteSize from YAML or an environment variable.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String prints the size in the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		n      ByteSize
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b >= u.n && b%u.n == 0 {
			return strconv.FormatInt(int64(b/u.n), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Cache memory budget bounds.
const (
	// DefaultCacheMemory is Config.CacheMemory's default: a small POP box
	// (a few GiB of RAM shared with the OS's page cache, which holds the
	// tables themselves).
	DefaultCacheMemory ByteSize = 256 << 20
	// MinCacheMemory is the smallest budget: below it the memtables get
	// so small that flushes and level-0 compactions dominate the writes.
	MinCacheMemory ByteSize = 64 << 20
)

// cacheMemtables is how many memtables may wait for their flush behind
// the one being written. Badger's default is five; two absorb a storm's
// bursts (a flush of a 32 MiB memtable takes well under a second) while
// bounding the worst case.
const cacheMemtables = 2

// budgetOptions sizes Badger's memory from budget:
//
//   - memtables: three eighths, split over the one being written and the
//     cacheMemtables queued for flush (32 MiB each at the default budget),
//     at least 8 MiB each: a transaction may hold 15 % of a memtable, and
//     a session's End writes a whole GetParameterValues answer (bodies go
//     up to 4 MiB) in one. Each also has a memory-mapped write-ahead log
//     of the same size, whose dirty pages are file-backed and written back
//     by the OS.
//   - block cache: half. Tables are Snappy-compressed, so every block read
//     is decompressed into this cache; the hot blocks are the devices that
//     informed recently (the key layout keeps a device's parameters in a
//     few adjacent blocks).
//   - index cache: an eighth, for the tables' block indexes and Bloom
//     filters, which Badger otherwise keeps in memory for every table, so
//     that memory grew with the fleet rather than with the budget.
//   - the value log only holds values over ValueThreshold (1 MiB: none of
//     the edge's records), so its files are kept small.
//   - two compactors instead of four: each builds its output tables in
//     memory, and a small box has few cores to run them anyway.
//
// Arenas, block and index cache add up to the budget; compaction buffers,
// iterators and the sessions themselves come on top (DESIGN.md, "Memory").
func budgetOptions(bo badger.Options, budget ByteSize) badger.Options {
	if budget < MinCacheMemory {
		budget = MinCacheMemory
	}
	b := int64(budget)
	mem := min(max(b*3/8/(cacheMemtables+1), 8<<20), 256<<20)
	return bo.
		WithMemTableSize(mem).
		WithNumMemtables(cacheMemtables).
		WithBlockCacheSize(b / 2).
		WithIndexCacheSize(b / 8).
		WithValueLogFileSize(min(max(b/4, 16<<20), 1<<30-1)).
		WithNumCompactors(2).
		// Level-0 tables are flushed memtables; stall writes only when
		// compaction is far behind, as the defaults do.
		WithNumLevelZeroTables(5).
		WithNumLevelZeroTablesStall(15)
}

// DeriveMemoryLimit is the soft limit on the Go runtime's memory the edge
// command sets (runtime/debug.SetMemoryLimit, GOMEMLIMIT's setting) when
// neither Config.MemoryLimit nor GOMEMLIMIT gives one: three times the
// cache budget plus 256 MiB (1 GiB at the default budget), at most three
// quarters of the memory the process may use.
//
// Why: the Go collector lets the heap grow to twice what is live before
// it runs, and what is live on an edge is mostly the budget's Badger
// memory, so the heap sat at about twice the budget whatever the fleet;
// after a storm, the runtime handed the sessions' memory back to the OS
// over minutes. Near the limit the collector runs sooner and returns
// freed memory promptly. Three budgets leave room for Badger's
// compaction buffers (table builders, about half the budget during a
// storm) and the sessions in flight, with headroom: at twice the budget
// plus 256 MiB a 100k storm's live heap (~620 MB) sat so close to the
// limit that collection took 15-18 % of the edge's CPU. The limit is
// soft: a heap that needs more gets it, at the cost of more frequent
// collections.
func DeriveMemoryLimit(budget ByteSize, c Capacity) ByteSize {
	if budget <= 0 {
		budget = DefaultCacheMemory
	}
	l := 3*budget + 256<<20
	if c.MemoryBytes > 0 {
		l = min(l, ByteSize(c.MemoryBytes/4*3))
	}
	return l
}
