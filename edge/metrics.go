package edge

import (
	"net/http"
	"time"

	"github.com/edgeacs/edgeacs/fleet"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the edge's Prometheus instrumentation. It owns its own
// Registry rather than the global one so that several nodes can live in one
// process (tests, the dev command) without colliding.
type Metrics struct {
	reg *prometheus.Registry

	// Sessions counts finished CWMP sessions by outcome: "completed",
	// "timeout", "replaced", "dropped" (shutdown), "error".
	Sessions *prometheus.CounterVec
	// SessionDuration observes the wall time from Inform to the 204.
	SessionDuration prometheus.Histogram
	// TaskRPCs counts the CPE's answers to the RPCs the edge sent for
	// tasks, by method and outcome ("ok", "fault", "invalid_response",
	// "empty"). Nearly every task is one RPC; refreshObject is several and
	// a download finishes later with TransferComplete.
	TaskRPCs *prometheus.CounterVec
	// Tasks counts tasks that reached a final status, by task name and
	// outcome ("done", "fault", "expired"), once per task.
	Tasks *prometheus.CounterVec
	// ConnectionRequests counts connection requests by transport
	// ("http", "udp") and outcome ("ok", "error", "rate_limited", "offline").
	ConnectionRequests *prometheus.CounterVec
	// AuthFailures counts refused CPE credentials by reason.
	AuthFailures *prometheus.CounterVec
	// OpenSessions is the number of sessions in the session table.
	OpenSessions prometheus.Gauge
	// HTTPErrors counts CWMP requests refused with an HTTP error, by status.
	HTTPErrors *prometheus.CounterVec
	// STUNRequests counts Binding Requests answered by the STUN server.
	STUNRequests prometheus.Counter
	// SessionLingers counts sessions held open for an API client's
	// follow-up task (Server.linger), by outcome: "task" (one came and ran
	// in the session) or "idle" (none came; the session ended).
	SessionLingers *prometheus.CounterVec
	// RejectedMessages counts CPE messages refused as unreadable (400, or
	// fault 8000 for an unknown method), by reason: "malformed",
	// "not_envelope", "too_deep", "too_large", "too_long",
	// "unknown_method", "bad_encoding".
	RejectedMessages *prometheus.CounterVec
	// SkippedEntries counts malformed list entries left out of messages
	// that were otherwise used, by reason ("invalid_boolean",
	// "invalid_int", "missing_name", "name_too_long", ...).
	SkippedEntries *prometheus.CounterVec
	// Storm counts admission control and store failures (admission.go).
	Storm *StormMetrics
}

// NewMetrics builds the edge metrics on a fresh registry. outbox, when not
// nil, is sampled at scrape time for the outbox length gauge so the cache
// need not push updates.
func NewMetrics(outbox func() float64) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.Sessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "sessions_total",
		Help: "CWMP sessions finished, by outcome.",
	}, []string{"outcome"})
	m.SessionDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "session_duration_seconds",
		Help:    "Duration of completed CWMP sessions, Inform to end.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.TaskRPCs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "task_rpcs_total",
		Help: "CPE answers to task RPCs, by method and outcome.",
	}, []string{"method", "outcome"})
	m.Tasks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "tasks_total",
		Help: "Tasks that reached a final status, by name and outcome.",
	}, []string{"name", "outcome"})
	m.ConnectionRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "connection_requests_total",
		Help: "Connection requests sent to CPEs, by transport and outcome.",
	}, []string{"transport", "outcome"})
	m.AuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "auth_failures_total",
		Help: "CPE authentication failures, by reason.",
	}, []string{"reason"})
	m.OpenSessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "open_sessions",
		Help: "CWMP sessions currently open.",
	})
	m.HTTPErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "cwmp_http_errors_total",
		Help: "CWMP requests answered with an HTTP error, by status code.",
	}, []string{"code"})
	m.STUNRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "stun_requests_total",
		Help: "STUN Binding Requests answered.",
	})
	m.SessionLingers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "session_lingers_total",
		Help: "Sessions held open for an API client's follow-up task, by outcome.",
	}, []string{"outcome"})
	m.RejectedMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "cwmp_rejected_messages_total",
		Help: "CPE messages refused as unreadable, by reason.",
	}, []string{"reason"})
	m.SkippedEntries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "cwmp_skipped_entries_total",
		Help: "Malformed list entries left out of CPE messages that were otherwise used, by reason.",
	}, []string{"reason"})
	m.reg.MustRegister(m.Sessions, m.SessionDuration, m.TaskRPCs, m.Tasks, m.ConnectionRequests,
		m.AuthFailures, m.OpenSessions, m.HTTPErrors, m.STUNRequests, m.SessionLingers,
		m.RejectedMessages, m.SkippedEntries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Storm = newStormMetrics(m.reg)
	if outbox != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "edgeacs", Subsystem: "edge", Name: "outbox_length",
			Help: "Records waiting in the outbox for the core.",
		}, outbox))
	}
	return m
}

// watchOutboxAge adds the gauge of the oldest unsent record's age, sampled
// at scrape time: with outbox_length it says how far behind the core the
// edge is (a backhaul outage shows as a growing age).
func (m *Metrics) watchOutboxAge(age func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "outbox_oldest_unsent_seconds",
		Help: "Age of the oldest record still waiting in the outbox (0 when empty).",
	}, age))
}

// watchStoreSyncs adds the counter of the cache's fsync rounds, read at
// scrape time: against the sessions it says how well promised writes
// share their fsyncs.
func (m *Metrics) watchStoreSyncs(rounds func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "edgeacs", Subsystem: "edge", Name: "store_syncs_total",
		Help: "Fsync rounds run for writes promised durable (shared by the writes made meanwhile).",
	}, rounds))
}

// TaskFinal counts a task that reached a final status; it is the cache's
// CacheOptions.OnTaskFinal hook.
func (m *Metrics) TaskFinal(t *fleet.Task) {
	m.Tasks.WithLabelValues(t.Name, string(t.Status)).Inc()
}

// Registry is the registry the metrics live in, for callers that add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// watchDeviceStates exports the devices by online state, counted by
// count at scrape time (at most every statesMaxAge).
func (m *Metrics) watchDeviceStates(count func(time.Time) (map[string]int, error)) {
	m.reg.MustRegister(newStateCollector(count))
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
