package sim

import (
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a fleet's counters.
type Stats struct {
	// Devices is the number of simulated devices.
	Devices int
	// SessionsStarted counts Inform attempts; SessionsCompleted those that
	// ended with the ACS's 204 (or empty 200); SessionErrors those that
	// failed (ACS unreachable, HTTP error, bad reply, auth refused).
	SessionsStarted   uint64
	SessionsCompleted uint64
	SessionErrors     uint64
	// SessionsBusy counts sessions the ACS refused with 503 (not in
	// SessionErrors): the device came back after its Retry-After.
	SessionsBusy uint64
	// Faults counts CWMP faults the devices answered ACS requests with.
	Faults uint64
	// Retries counts sessions started with RetryCount > 0.
	Retries uint64
	// ConnectionRequests counts accepted connection requests (HTTP and UDP).
	ConnectionRequests uint64
	// RPCs counts the requests the ACS sent, by method name.
	RPCs map[string]uint64
	// Events counts the event codes sent in Informs.
	Events map[string]uint64
	// SessionP50 and SessionP99 are quantiles of completed session
	// durations (from the Inform POST to the final 204), from a
	// logarithmic histogram: within 5 %.
	SessionP50 time.Duration
	SessionP99 time.Duration
	// Histogram is the completed sessions' duration histogram (400
	// logarithmic buckets of 5 % from 10 µs), so that the Stats of fleets
	// run apart (processes of `edgeacs sim --processes`) merge into exact
	// quantiles (Merge).
	Histogram []uint64 `json:",omitempty"`
}

// Merge returns the sum of s and o: counters and histograms added,
// quantiles recomputed from the merged histogram.
func (s Stats) Merge(o Stats) Stats {
	m := Stats{
		Devices:            s.Devices + o.Devices,
		SessionsStarted:    s.SessionsStarted + o.SessionsStarted,
		SessionsCompleted:  s.SessionsCompleted + o.SessionsCompleted,
		SessionErrors:      s.SessionErrors + o.SessionErrors,
		SessionsBusy:       s.SessionsBusy + o.SessionsBusy,
		Faults:             s.Faults + o.Faults,
		Retries:            s.Retries + o.Retries,
		ConnectionRequests: s.ConnectionRequests + o.ConnectionRequests,
		RPCs:               map[string]uint64{},
		Events:             map[string]uint64{},
	}
	for _, src := range []Stats{s, o} {
		for k, v := range src.RPCs {
			m.RPCs[k] += v
		}
		for k, v := range src.Events {
			m.Events[k] += v
		}
	}
	h := &stats{}
	for _, src := range [][]uint64{s.Histogram, o.Histogram} {
		for i, c := range src {
			if i < histBuckets {
				h.hist[i] += c
				h.n += c
			}
		}
	}
	if h.n > 0 {
		m.Histogram = slices.Clone(h.hist[:])
	}
	m.SessionP50 = h.quantile(0.50)
	m.SessionP99 = h.quantile(0.99)
	return m
}

// histogram buckets: bucket i holds durations in [base·g^i, base·g^(i+1)).
const (
	histBase    = float64(10 * time.Microsecond)
	histGrowth  = 1.05
	histBuckets = 400 // 10µs · 1.05^400 ≈ 3 hours
)

// stats is the fleet's live counters; safe for concurrent use.
type stats struct {
	started, completed, errors, faults, retries, crs, busy atomic.Uint64

	mu     sync.Mutex
	rpcs   map[string]uint64
	events map[string]uint64
	hist   [histBuckets]uint64
	n      uint64
}

func newStats() *stats {
	return &stats{rpcs: map[string]uint64{}, events: map[string]uint64{}}
}

func (s *stats) rpc(method string) {
	s.mu.Lock()
	s.rpcs[method]++
	s.mu.Unlock()
}

func (s *stats) informEvents(codes []string) {
	s.mu.Lock()
	for _, c := range codes {
		s.events[c]++
	}
	s.mu.Unlock()
}

func (s *stats) sessionDone(d time.Duration) {
	s.completed.Add(1)
	b := 0
	if float64(d) > histBase {
		b = int(math.Log(float64(d)/histBase) / math.Log(histGrowth))
	}
	b = min(max(b, 0), histBuckets-1)
	s.mu.Lock()
	s.hist[b]++
	s.n++
	s.mu.Unlock()
}

// quantile returns the upper bound of the bucket holding quantile q; the
// caller holds mu.
func (s *stats) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(s.n)))
	var acc uint64
	for i, c := range s.hist {
		acc += c
		if acc >= target {
			return time.Duration(histBase * math.Pow(histGrowth, float64(i+1)))
		}
	}
	return 0
}

func (s *stats) snapshot(devices int) Stats {
	st := Stats{
		Devices:            devices,
		SessionsStarted:    s.started.Load(),
		SessionsCompleted:  s.completed.Load(),
		SessionErrors:      s.errors.Load(),
		SessionsBusy:       s.busy.Load(),
		Faults:             s.faults.Load(),
		Retries:            s.retries.Load(),
		ConnectionRequests: s.crs.Load(),
		RPCs:               map[string]uint64{},
		Events:             map[string]uint64{},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.rpcs {
		st.RPCs[k] = v
	}
	for k, v := range s.events {
		st.Events[k] = v
	}
	st.SessionP50 = s.quantile(0.50)
	st.SessionP99 = s.quantile(0.99)
	if s.n > 0 {
		st.Histogram = slices.Clone(s.hist[:])
	}
	return st
}

// SortedRPCs returns the RPC method names in s.RPCs, sorted.
func (s Stats) SortedRPCs() []string {
	names := make([]string, 0, len(s.RPCs))
	for k := range s.RPCs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
