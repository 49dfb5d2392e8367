package core

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics lives in the node's own registry, so several nodes in one test
// process do not collide.
type metrics struct {
	reg       *prometheus.Registry
	applyLat  prometheus.Histogram
	batchSize prometheus.Histogram
	apiLat    *prometheus.HistogramVec
	forwarded prometheus.Counter
	// Rollouts (rolloutloop.go): set by the leader on each step.
	rolloutDev   *prometheus.GaugeVec
	rolloutTasks prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		applyLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgeacs_core_apply_seconds", Help: "Time from proposing a batch to its apply result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgeacs_core_batch_commands", Help: "Commands per raft log entry.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		apiLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgeacs_core_api_seconds", Help: "REST API latency by route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route", "code"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeacs_core_api_forwarded_total", Help: "Requests forwarded to the leader.",
		}),
	}
	m.rolloutDev = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "edgeacs_rollout_devices", Help: "Devices of each live rollout by state, as the leader last saw them.",
	}, []string{"rollout", "state"})
	m.rolloutTasks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeacs_rollout_tasks_created_total", Help: "Download tasks rollouts created (on the leader that proposed them).",
	})
	m.reg.MustRegister(m.rolloutDev, m.rolloutTasks)
	state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgeacs_core_raft_state", Help: "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
	}, func() float64 {
		if n.raft == nil {
			return float64(raft.Shutdown)
		}
		return float64(n.raft.State())
	})
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgeacs_core_fsm_applied_index", Help: "Highest raft index applied to the FSM.",
	}, func() float64 { return float64(n.fsm.AppliedIndex()) })
	lastContact := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgeacs_core_raft_last_contact_seconds", Help: "Time since this follower last heard from the leader (0 on the leader).",
	}, func() float64 {
		if n.raft == nil || n.raft.State() == raft.Leader {
			return 0
		}
		return time.Since(n.raft.LastContact()).Seconds()
	})
	m.reg.MustRegister(m.applyLat, m.batchSize, m.apiLat, m.forwarded, state, applied, lastContact)
	m.reg.MustRegister(newStateCollector(func(now time.Time) (map[EdgeState]int, error) { return n.fsm.DeviceStates(now) }))
	return m
}

func (m *metrics) observeBatch(size int, d time.Duration) {
	m.batchSize.Observe(float64(size))
	m.applyLat.Observe(d.Seconds())
}

// rolloutDevices sets the rollout's device gauges as they stand after
// step s.
func (m *metrics) rolloutDevices(r *Rollout, devs []*RolloutDevice, s *RolloutStep) {
	counts := map[string]int{RDPending: 0, RDDownloading: 0, RDNotBack: 0, RDDone: 0, RDFaulted: 0, RDCancelled: 0}
	moved := make(map[string]string, len(s.Moves))
	for _, mv := range s.Moves {
		moved[mv.Device] = mv.To
	}
	for _, d := range devs {
		st := d.State
		if to, ok := moved[d.Device]; ok {
			st = to
		}
		counts[st]++
	}
	counts[RDPending] -= len(s.Dispatch)
	counts[RDDownloading] += len(s.Dispatch)
	for st, n := range counts {
		m.rolloutDev.WithLabelValues(r.Name, st).Set(float64(n))
	}
}
