package edge

import (
	"errors"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/goccy/go-yaml"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{in: "268435456", want: 256 << 20},
		{in: "256MiB", want: 256 << 20},
		{in: "256mib", want: 256 << 20},
		{in: "256M", want: 256 << 20},
		{in: "256MB", want: 256_000_000},
		{in: " 1GiB ", want: 1 << 30},
		{in: "1.5G", want: 3 << 29},
		{in: "64KiB", want: 64 << 10},
		{in: "100B", want: 100},
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "-1MiB", err: true},
		{in: "lots", err: true},
		{in: "9999999TiB", err: true},
	} {
		got, err := ParseByteSize(tc.in)
		if tc.err {
			if !errors.Is(err, ErrBadByteSize) {
				t.Errorf("ParseByteSize(%q) = %d, %v; want ErrBadByteSize", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSizeStringAndYAML(t *testing.T) {
	for _, b := range []ByteSize{256 << 20, 1 << 30, 3 << 10, 1000, 0} {
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("%d prints %q, which reads back as %d, %v", b, b.String(), back, err)
		}
	}
	var cfg Config
	if err := yaml.UnmarshalWithOptions([]byte("cache_memory: 512MiB\n"), &cfg, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if cfg.CacheMemory != 512<<20 {
		t.Fatalf("cache_memory: 512MiB read as %d", cfg.CacheMemory)
	}
	if err := yaml.Unmarshal([]byte("cache_memory: 1048576000\n"), &cfg); err != nil || cfg.CacheMemory != 1048576000 {
		t.Fatalf("plain number read as %d, %v", cfg.CacheMemory, err)
	}
}

// TestBudgetOptions pins how the budget is split: the memtables, block and
// index cache add up to it, and Badger's memory-hungry defaults are gone.
func TestBudgetOptions(t *testing.T) {
	for _, tc := range []struct {
		budget   ByteSize
		memtable int64
	}{
		{budget: DefaultCacheMemory, memtable: 32 << 20},
		{budget: 1 << 30, memtable: 128 << 20},
		{budget: MinCacheMemory, memtable: 8 << 20},
		{budget: 1 << 20, memtable: 8 << 20}, // below the minimum: raised to it
		{budget: 64 << 30, memtable: 256 << 20},
	} {
		o := budgetOptions(badger.DefaultOptions(""), tc.budget)
		b := int64(max(tc.budget, MinCacheMemory))
		if o.MemTableSize != tc.memtable {
			t.Errorf("budget %s: memtable %d, want %d", tc.budget, o.MemTableSize, tc.memtable)
		}
		if o.BlockCacheSize != b/2 || o.IndexCacheSize != b/8 || o.NumMemtables != cacheMemtables {
			t.Errorf("budget %s: block cache %d, index cache %d, memtables %d", tc.budget, o.BlockCacheSize, o.IndexCacheSize, o.NumMemtables)
		}
		if sum := int64(o.NumMemtables+1)*o.MemTableSize + o.BlockCacheSize + o.IndexCacheSize; tc.budget >= MinCacheMemory && tc.budget < 8<<30 && sum > b {
			t.Errorf("budget %s: memtables and caches add up to %d", tc.budget, sum)
		}
	}
}

func TestConfigCacheMemory(t *testing.T) {
	cfg := Config{ID: "e", DataDir: t.TempDir(), Standalone: true, CPEAuth: AuthNone, CacheMemory: 1 << 20}
	cfg.SetDefaults()
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("1 MiB budget: %v, want ErrConfig", err)
	}
	cfg.CacheMemory = 0
	cfg.SetDefaults()
	if cfg.CacheMemory != DefaultCacheMemory {
		t.Fatalf("default budget %s", cfg.CacheMemory)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default budget: %v", err)
	}
}

// TestMemoryLimit: the derived soft limit is three budgets plus 256 MiB,
// at most three quarters of the memory the process may use; a configured
// limit that leaves no room beside the budget is a configuration error
// naming the flag.
func TestMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		budget ByteSize
		mem    uint64
		want   ByteSize
	}{
		{DefaultCacheMemory, 0, 1 << 30},
		{0, 0, 1 << 30},
		{1 << 30, 64 << 30, 3<<30 + 256<<20},
		{DefaultCacheMemory, 512 << 20, 384 << 20},
	} {
		if got := DeriveMemoryLimit(tt.budget, Capacity{MemoryBytes: tt.mem}); got != tt.want {
			t.Errorf("budget %s, memory %d: %s, want %s", tt.budget, tt.mem, got, tt.want)
		}
	}
	cfg := Config{ID: "e", DataDir: t.TempDir(), Standalone: true, CPEAuth: AuthNone, MemoryLimit: 300 << 20}
	cfg.SetDefaults()
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--memory-limit") {
		t.Fatalf("a 300 MiB limit beside a 256 MiB budget: %v, want ErrConfig naming --memory-limit", err)
	}
	cfg.MemoryLimit = 512 << 20
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a 512 MiB limit: %v", err)
	}
}
