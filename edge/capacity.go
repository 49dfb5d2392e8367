package edge

import (
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/edgeacs/edgeacs/internal/meminfo"
)

// Capacity is what admission control allows, derived at start from the
// file-descriptor limit and memory unless configured.
type Capacity struct {
	// FDLimit is RLIMIT_NOFILE's soft limit after raising it to the hard
	// one (0: unknown).
	FDLimit uint64
	// MemoryBytes is the memory the derivation assumed (the box's, or the
	// cgroup's limit when lower; 0: unknown).
	MemoryBytes uint64
	// CPUs is GOMAXPROCS at start.
	CPUs int
	// Connections bounds the CWMP connections held (0: unbounded);
	// Sessions the concurrent sessions (0: unbounded).
	Connections int
	Sessions    int
	// Busy bounds the CWMP requests in progress before new sessions are
	// refused (0: unbounded): busyPerCPU per CPU.
	Busy int
}

// Sizing of the derivation.
const (
	// fdReserveMin and fdReserveShare keep descriptors for everything but
	// CPE connections: Badger's tables, value logs and memtables (a few
	// hundred for a large cache), the API, the sync link, connection
	// requests and file transfers. A fifth of the limit, at least 1024
	// (or half of a tiny limit).
	fdReserveMin   = 1024
	fdReserveShare = 5
	// sessionMemory is what one session in flight may cost (its
	// goroutine, the request and reply buffers, the parsed Inform, its
	// work), generously; sessions may use a quarter of memory.
	sessionMemory = 128 << 10
	memShare      = 4
	// sessionsPerCPU bounds the sessions in flight by CPU: past a few
	// hundred per core, more concurrency only makes every session slower
	// (a 20,000-CPE storm on two cores admitted 12,000 sessions by fds
	// alone and completed none within the CPEs' 30 s timeout). Real CPEs
	// spend most of a session on round trips, hence the generous share;
	// busyPerCPU is the finer bound.
	sessionsPerCPU = 256
	// busyPerCPU bounds the CWMP requests being processed at once (not
	// sessions waiting for their CPE) before new sessions are refused.
	// Sessions share the CPU: 1,000 of them on two busy cores each took
	// over a minute, completing together. Requests in progress measure
	// that load whatever the CPEs' round-trip time: on loopback every
	// session is always in a request, behind a slow access network
	// hardly any, and so the bound admits many sessions there and few
	// here.
	busyPerCPU = 32
)

// deriveCapacity computes the bounds. conns and sessions are the
// configured ones (0: derive). Sessions are three quarters of the
// connections, so the connections above them carry the 503s quickly
// instead of waiting in the kernel's backlog.
func deriveCapacity(conns, sessions int, fdLimit, mem uint64, cpus int) Capacity {
	c := Capacity{FDLimit: fdLimit, MemoryBytes: mem, CPUs: cpus, Connections: conns, Sessions: sessions, Busy: cpus * busyPerCPU}
	if c.Connections == 0 && fdLimit > 0 {
		reserve := max(fdLimit/fdReserveShare, min(fdReserveMin, fdLimit/2))
		c.Connections = int(min(fdLimit-reserve, 1<<30))
	}
	if c.Sessions == 0 {
		if c.Connections > 0 {
			c.Sessions = max(c.Connections*3/4, 1)
		}
		if mem > 0 {
			byMem := int(min(mem/memShare/sessionMemory, 1<<30))
			if c.Sessions == 0 || byMem < c.Sessions {
				c.Sessions = max(byMem, 1)
			}
		}
		if byCPU := cpus * sessionsPerCPU; byCPU > 0 && (c.Sessions == 0 || byCPU < c.Sessions) {
			c.Sessions = byCPU
		}
		if c.Sessions == 0 {
			c.Sessions = DefaultMaxSessions
		}
	}
	return c
}

// memoryBytes is the memory this process may use: the cgroup's limit
// (v2, then v1) when set and below the box's, else MemTotal; 0 when
// unknown (not Linux).
func memoryBytes() uint64 {
	total := meminfo.Total()
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && (total == 0 || v < total) {
			total = v
		}
		break
	}
	return total
}

// resolveCapacity raises the fd limit, derives the admission bounds the
// configuration leaves to derive, writes them into cfg and logs them.
func resolveCapacity(cfg *Config, log *slog.Logger) Capacity {
	fds, err := raiseFDLimit()
	if err != nil {
		log.Warn("cannot raise the open-file limit to its hard limit", "limit", fds, "err", err)
	}
	if cfg.capacityFDLimit > 0 {
		fds = cfg.capacityFDLimit
	}
	c := deriveCapacity(cfg.MaxConnections, cfg.MaxConcurrentSessions, fds, memoryBytes(), runtime.GOMAXPROCS(0))
	if cfg.MaxConnections == 0 && c.Connections > 0 && cfg.MaxConcurrentSessions > c.Connections {
		log.Warn("max concurrent sessions is above the connections the fd limit allows: sessions past it wait for a connection instead of getting 503",
			"max_sessions", cfg.MaxConcurrentSessions, "max_connections", c.Connections)
	}
	cfg.MaxConnections, cfg.MaxConcurrentSessions = c.Connections, c.Sessions
	if cfg.maxBusy == 0 {
		cfg.maxBusy = c.Busy
	}
	c.Busy = cfg.maxBusy
	log.Info("admission control", "fd_limit", c.FDLimit, "memory_mib", c.MemoryBytes>>20, "cpus", c.CPUs,
		"max_connections", c.Connections, "max_sessions", c.Sessions, "max_busy_requests", c.Busy)
	return c
}
