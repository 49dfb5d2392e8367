package edge

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Admission control: what keeps an edge standing when every CPE of a POP
// informs at once (a power cut ends). Two bounds, both derived at start
// from the process's file-descriptor limit and the box's memory unless
// configured (capacity.go):
//
//   - connections (Config.MaxConnections): the CWMP listener accepts no
//     more (limitListener); the kernel's backlog holds the rest, and idle
//     keep-alive connections are closed to make room. This is what keeps
//     Badger's files openable: the reported crash was Badger failing to
//     open a memtable at the fd limit.
//   - sessions (Config.MaxConcurrentSessions): an Inform above it gets 503
//     with a Retry-After spread at random over a window, so the refused
//     CPEs come back spread out rather than as the same wave.
//
// A slice of the sessions (a tenth) is kept for priority sessions: the
// device already has a session (a new Inform replaces it and takes no new
// slot), the edge has just sent it a connection request (an operator or
// the core is waiting), or it reports a transfer (TransferComplete, or a
// Download/Upload it was told to do: the CPE is mid-firmware-upgrade and a
// refusal costs a retry of the whole transfer report). A first-time
// bootstrap or a periodic Inform waits for capacity; it loses nothing by
// coming back.

// Admission outcomes, the reason label of StormMetrics.Admission.
const (
	admitNormal    = "admitted"
	admitPriority  = "admitted_priority"
	admitReplacing = "admitted_replacing"
	rejectFull     = "rejected_full"
	rejectDraining = "rejected_draining"
	rejectStore    = "rejected_store"
)

// Retry-After window of a refused session (Config.RetryAfterMin/Max):
// the floor of every Retry-After, and the window of those not sent by the
// calendar (shutting down, a store failure).
const (
	DefaultRetryAfterMin = 10 * time.Second
	DefaultRetryAfterMax = 60 * time.Second
)

// The retry calendar (retryCalendar): how far ahead it books returns
// (calendarHorizon times the window's top: 10 min by default; a 100k
// storm at 500 sessions/s needs 200 s), its ring of one-second slots, the
// overbooking of the measured rate (so the rate it books can rise to
// what the edge can do, rather than stay at what it was offered) and the
// fewest returns a second it books.
const (
	calendarHorizon = 10
	calendarSlots   = 1024
	calendarMinRate = 16
	// calendarOverbook is the overbooking of a flood's rate (the prior,
	// or the peak-held rate admitted while refusing one): none. A return
	// booked above what the edge then takes is refused again (~0.3 ms of
	// CPU between the edge and a CPE on a shared box) and booked anew; one
	// booked below would leave the edge idle, but the calendar refills
	// seconds booked at a lower rate once the rate measured rises (book),
	// so the steady rate's fifth more is what lets it climb. At 2 a 100k
	// storm refused each CPE 2.3 times; at 1.5 (booking 768 a second
	// against the ~450 this shared 2-core box then took) 1.6-1.85 times;
	// at 1 with the refill 1.44-1.54 times, and no slower.
	calendarOverbook = 1.0
	// calendarSteadyOverbook is the overbooking once no flood is being
	// refused: the rate measured then is the edge's own (it is busy with
	// sessions, not refusals), so a fifth more is enough for the rate to
	// climb and returns booked at half again it were refused again by the
	// third (a 100k storm on a shared 2-core box refused each CPE 3
	// times, at a prior 2.5 times what the edge admitted).
	calendarSteadyOverbook = 1.2
	// calendarFloodRatio: a sample with more refusals than this many
	// times its admissions is a flood's (first attempts by the
	// thousand); fewer, and the refusals are returns booked too early.
	calendarFloodRatio = 4
	// calendarSteadyTau is the time constant of the steady rate's moving
	// average: seconds, not one sample, because returns come in bursts.
	calendarSteadyTau = 2 * time.Second
	// calendarFloor is the soonest a refused CPE is booked back (the
	// Retry-After window's floor when that is sooner). Returns queue
	// behind the ones booked already, so a flood's are spread over the
	// minutes it needs whatever the floor; a short one matters once the
	// edge has room again: a CPE refused in a passing burst comes back in
	// seconds, not at the 10 s floor (a 10k storm sat a third idle
	// waiting for its last returns).
	calendarFloor = 2 * time.Second
	// calendarRatePerBusy is the admission rate the calendar assumes at
	// least, per request the busy bound lets run at once (busyPerCPU per
	// CPU): 384 sessions a second per CPU, about 2.6 ms of CPU per
	// bootstrap, where this edge needs 2-3 ms on a shared core and about
	// 2 on its own. The prior is what a storm's flood is booked at: the
	// rate admitted while refusing thousands a second is a fraction of
	// the edge's (a 100k storm's simulated CPEs, starved of CPU
	// themselves, completed 50 sessions a second in its first 13 s).
	//
	// Booking too low costs idle time nothing gets back; too high, one
	// more refusal of the CPEs booked above what the edge takes, which
	// the admission queue's overflow refuses before reading a byte of the
	// body. At the old prior of 96 a second per CPU a 100k storm's flood
	// was booked over 250 s and the edge averaged 0.8 of a core; at 256
	// the box (edge and simulated CPEs) was still 15-27 % idle in the
	// two minutes after the flood, taking ~490 sessions a second. At 384
	// it was 3-5 % idle and the storm ended ~20 s sooner, for 10-25 %
	// more refusals (round 19's note).
	calendarRatePerBusy = 12
)

// defaultLatencyTarget is the average time of a request inside a session
// above which new sessions are refused: the admitted ones are then
// sharing the CPU (or the store) so thinly that each CPE waits seconds per
// exchange, and more would push them past their HTTP timeouts (the
// sessions' work then wasted). latencyFresh is how recent the average
// must be to count: with no request finishing, nothing is slow.
const (
	defaultLatencyTarget  = time.Second
	defaultLatencyMinOpen = 64
	latencyFresh          = time.Second
)

// observe adds a finished in-session request that began at start to the
// moving average (1/16 weight: a burst of slow requests moves it in
// tens of requests, not one).
func (a *admission) observe(start time.Time) {
	now := time.Now()
	d := int64(now.Sub(start))
	old := a.lat.Load()
	a.lat.Store(old + (d-old)/16)
	a.latAt.Store(now.UnixNano())
}

// slow reports whether sessions are slowing each other down: with at
// least latMinOpen open, requests take on average over factor times the
// target, measured within the last latencyFresh.
func (a *admission) slow(open, factor int64, now time.Time) bool {
	return a.latTarget > 0 && open >= a.latMinOpen.Load() && now.UnixNano()-a.latAt.Load() < int64(latencyFresh) &&
		a.lat.Load() > factor*int64(a.latTarget)
}

// wakeMemory is how long a device counts as just woken after the edge sent
// it a connection request; wakeMemoryMax bounds how many are remembered.
const (
	wakeMemory    = 2 * time.Minute
	wakeMemoryMax = 1 << 16
)

// StormMetrics count what admission control and the store guard did.
type StormMetrics struct {
	// Admission counts Informs by admission outcome: admitted,
	// admitted_priority, admitted_replacing, rejected_full,
	// rejected_draining, rejected_store (a store failure refused the
	// session after admission).
	Admission *prometheus.CounterVec
	// StoreFailures counts failed cache writes by operation (update,
	// sync).
	StoreFailures *prometheus.CounterVec
	// SessionLimit and ConnectionLimit are the bounds in force.
	SessionLimit    prometheus.Gauge
	ConnectionLimit prometheus.Gauge
	// OpenConnections is the number of CWMP connections held.
	OpenConnections prometheus.Gauge
}

func newStormMetrics(reg *prometheus.Registry) *StormMetrics {
	m := &StormMetrics{
		Admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "edgeacs", Subsystem: "edge", Name: "admission_total",
			Help: "CWMP Informs by admission outcome (admitted, admitted_priority, admitted_replacing, rejected_full, rejected_draining, rejected_store).",
		}, []string{"outcome"}),
		StoreFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "edgeacs", Subsystem: "edge", Name: "store_failures_total",
			Help: "Cache writes or fsyncs that failed, by operation.",
		}, []string{"op"}),
		SessionLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "edgeacs", Subsystem: "edge", Name: "session_limit",
			Help: "Concurrent CWMP sessions admitted before new ones get 503.",
		}),
		ConnectionLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "edgeacs", Subsystem: "edge", Name: "connection_limit",
			Help: "Concurrent CWMP connections accepted (0: unbounded).",
		}),
		OpenConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "edgeacs", Subsystem: "edge", Name: "open_connections",
			Help: "CWMP connections currently held.",
		}),
	}
	reg.MustRegister(m.Admission, m.StoreFailures, m.SessionLimit, m.ConnectionLimit, m.OpenConnections)
	return m
}

// admission is the session side of admission control.
type admission struct {
	limit   int64 // sessions; 0 = unbounded
	maxBusy int64 // requests in progress; 0 = unbounded
	busy    atomic.Int64
	// lat is a moving average of how long requests inside sessions take
	// (ns), latAt when it last moved (unix ns): while it is above
	// latTarget, sessions are slowing each other down and new ones are
	// refused (see slow).
	lat, latAt atomic.Int64
	latTarget  time.Duration
	// latMinOpen is how many sessions must be open for the latency to
	// count: with a few, slow requests are not theirs to cause (a slow
	// disk, a busy neighbour), and refusing more would not help.
	latMinOpen atomic.Int64
	reserved   int64 // of limit, only for priority sessions

	// queue holds new sessions' first requests while the busy bound is
	// reached, in arrival order, each for at most queueWait (see
	// waitSlot); nqueued mirrors its length for the exit path's check.
	queueMu   sync.Mutex
	queue     []chan struct{}
	nqueued   atomic.Int64
	queueWait time.Duration
	retryMin  time.Duration
	retryMax  time.Duration
	metrics   *StormMetrics

	// pending counts sessions admitted and not yet in the session table
	// (their Inform is being recorded): admission counts them with the
	// open ones, under pendingMu, so a burst of Informs cannot all pass
	// the check before any of them is counted open.
	pendingMu sync.Mutex
	pending   int64

	mu    sync.Mutex
	woken map[string]time.Time // devices sent a connection request lately
	// wokenIPs are their last known addresses (several devices may share
	// one behind a NAT): a request from one has its body read while only
	// the reserved slice is left (bandRead).
	wokenIPs map[string]time.Time

	// bandMu guards the count of bodies read in the band this second
	// (bandRead); bandBudget is how many may be.
	bandMu     sync.Mutex
	bandSec    int64
	bandReads  int64
	bandBudget int64

	// admitted counts sessions admitted, for the calendar's rate.
	admitted atomic.Int64
	cal      retryCalendar

	// refusedFull and refused503 are the counters a storm's refusal
	// bumps, looked up once (a label lookup hashes the values each time).
	refusedFull, refused503 prometheus.Counter
}

// retryCalendar books the return of refused CPEs one second at a time,
// somewhat above the rate the edge admits sessions at per second (half
// again while it refuses a flood, a fifth once the refusals are returns:
// calRate), from calendarFloor on. A storm's refused CPEs then
// come back as fast as the edge takes them and no faster: a uniform
// window (the 10-60 s it replaces) sent 100k CPEs back within 50 s to an
// edge that takes a few hundred a second, and left it idle between
// waves when the storm was smaller than its window.
type retryCalendar struct {
	mu    sync.Mutex
	slots [calendarSlots]calSlot
	// next is the earliest second that may have room at a rate of at
	// most nextRate: every second before it was found full at that rate
	// (the lowest booked at since the last rescan). A booking at a
	// higher rate scans again from its floor, so seconds passed while
	// the rate was low are filled up to the new one.
	next     int64
	nextRate int
	rate     calRate
}

// calRate is the rate the calendar books at: sessions admitted per
// second, measured at refusals at least calendarSample apart (at, n: when
// and at what count it was last measured; refusals: refusals since),
// peak-held while a flood is refused, a moving average once not (flood:
// the last sample's verdict). Before the first measurement it is the
// prior the caller gives.
type calRate struct {
	perSec   float64
	at       int64
	n        int64
	refusals int64
	flood    bool
}

type calSlot struct {
	sec int64 // the unix second the count is for
	n   int
}

// calendarSample is the shortest interval the admission rate is measured
// over.
const calendarSample = 250 * time.Millisecond

// calendarStale is the longest interval without a refusal that still
// measures the rate: past it, the edge was not full.
const calendarStale = 2 * time.Second

// book returns the Retry-After (seconds) of a CPE refused at now, given
// the sessions admitted so far and a rate (per second) a flood's booking
// never goes below, also the rate before the first measurement: the first
// second from now+floor with room for one more at the measured rate, or
// a uniform draw within the horizon when every second up to it is booked.
//
// Why a minimum rate: a storm's first seconds are spent refusing the flood
// (10,000 connections a second at 100k devices over 10 s), so the rate
// admitted then is a fraction of what the edge does once the flood has
// passed, and the whole storm is booked in those seconds. Booked at that
// rate, a 100k storm was spread over the 10-minute horizon and the edge
// sat 70 % idle from its third minute on. Booking above the edge's rate
// costs a second refusal; below it, idle time that nothing gets back.
//
// Why only a flood's: an edge sharing its box (or a slower one) admits
// less than the minimum, and returns booked above what it admits are
// refused again and booked again. Held at the minimum for a whole storm,
// a 2-core box shared with its simulated CPEs refused each CPE three
// times, each a new connection and an exchange for both sides. Once the
// refusals are returns, the rate the edge admits is its own, and the
// calendar books at that.
//
// saturated: the CPE was refused while new sessions waited in the
// admission queue or overflowed it, so the edge has more waiting than it
// takes (see calRate.refused).
func (c *retryCalendar) book(now time.Time, admitted int64, minRate float64, floor, horizon time.Duration, saturated bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	sec, ns := now.Unix(), now.UnixNano()
	perSec := c.rate.refused(ns, admitted, minRate, saturated)
	lo, hi := int64(floor/time.Second), int64(horizon/time.Second)
	if perSec > c.nextRate {
		// The seconds passed at a lower rate have room now. Without the
		// rescan they stayed at it: a 100k storm's flood, measured for a
		// moment at 67 admitted a second, booked ten seconds a minute
		// ahead at 80 returns each, and the edge sat a third busy
		// through them while the rest waited for later seconds.
		c.next, c.nextRate = 0, perSec
	}
	for s := max(c.next, sec+lo); s <= sec+hi; s++ {
		slot := &c.slots[s%calendarSlots]
		if slot.sec != s {
			slot.sec, slot.n = s, 0
		}
		if slot.n < perSec {
			slot.n++
			if s > c.next {
				c.next, c.nextRate = s, min(c.nextRate, perSec)
			}
			return int(s - sec)
		}
	}
	return int(lo + rand.Int64N(hi-lo+1))
}

// refused counts a refusal at ns (unix nanoseconds), with admitted
// sessions admitted so far, and returns how many returns a second to book.
//
// A return refused while the edge has a backlog (saturated: the queue
// was full, or new sessions were waiting in it) is booked at what the
// edge admits, not a fifth above it: the fifth is there so the rate can
// climb when the edge has room, and a backlog says it has none.
// Overbooked, such a return went back into the seconds just ahead (the
// higher rate rescans them), met the backlog again and was refused
// again: after a 100k storm's flood, booked above what the shared box
// took, 200-450 returns a second were refused. At the admitted rate it
// goes behind the returns booked already.
func (r *calRate) refused(ns, admitted int64, minRate float64, saturated bool) int {
	r.refusals++
	switch {
	case r.at == 0 || ns-r.at > int64(calendarStale):
		// The first refusal, or the first in seconds: the edge had room
		// until now, so what it admitted meanwhile is what it was
		// offered, not what it can do. A burst begins: the prior.
		*r = calRate{perSec: minRate, at: ns, n: admitted, flood: true}
	case ns-r.at >= int64(calendarSample):
		dt := float64(ns-r.at) / float64(time.Second)
		n := admitted - r.n
		inst := float64(n) / dt
		r.flood = r.refusals > calendarFloodRatio*max(n, 1)
		if r.flood {
			// Peak-hold, slow decay: the rate admitted while refusing
			// a flood is what the edge can do at most (less the
			// refusals' own cost, which the storm's first seconds are
			// full of), and booking too few returns leaves the edge
			// idle later, while booking too many costs a second 503.
			r.perSec = max(inst, r.perSec*0.9+inst*0.1)
		} else {
			// The edge is refusing returns it cannot take yet: what it
			// admits now is what it does. Peak-held, a 250 ms sample's
			// noise booked a third more than that.
			w := min(dt/calendarSteadyTau.Seconds(), 1)
			r.perSec += w * (inst - r.perSec)
		}
		r.at, r.n, r.refusals = ns, admitted, 0
	}
	switch {
	case r.flood:
		return max(int(max(r.perSec, minRate)*calendarOverbook), calendarMinRate)
	case saturated:
		return max(int(r.perSec), calendarMinRate)
	}
	return max(int(r.perSec*calendarSteadyOverbook), calendarMinRate)
}

func newAdmission(limit, maxBusy int, retryMin, retryMax time.Duration, m *StormMetrics) *admission {
	a := &admission{limit: int64(limit), maxBusy: int64(max(maxBusy, 0)), retryMin: retryMin, retryMax: retryMax, metrics: m, woken: map[string]time.Time{}, wokenIPs: map[string]time.Time{}}
	if limit >= 10 {
		a.reserved = int64(limit / 10)
	}
	a.bandBudget = max(a.reserved*bandReadsPerReserved, bandReadsMin)
	a.latTarget = defaultLatencyTarget
	a.queueWait = defaultQueueWait
	a.latMinOpen.Store(defaultLatencyMinOpen)
	if a.retryMin <= 0 {
		a.retryMin = DefaultRetryAfterMin
	}
	if a.retryMax < a.retryMin {
		a.retryMax = max(a.retryMin, DefaultRetryAfterMax)
	}
	m.SessionLimit.Set(float64(limit))
	a.refusedFull = m.Admission.WithLabelValues(rejectFull)
	return a
}

// woke records that the edge is sending deviceID a connection request: its
// next Inform is one an operator or the core waits for. ip is the
// device's last known address ("" if none).
func (a *admission) woke(deviceID, ip string) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	remember(a.woken, deviceID, now)
	if ip != "" {
		remember(a.wokenIPs, ip, now)
	}
}

// remember sets m[key] = now, first forgetting what is older than
// wakeMemory if m holds wakeMemoryMax keys, and everything if that is not
// enough: a flood of wake-ups, where none is special any more.
func remember(m map[string]time.Time, key string, now time.Time) {
	if len(m) >= wakeMemoryMax {
		for k, at := range m {
			if now.Sub(at) > wakeMemory {
				delete(m, k)
			}
		}
		if len(m) >= wakeMemoryMax {
			clear(m)
		}
	}
	m[key] = now
}

// wokenIPLately reports whether a device last seen at ip was sent a
// connection request lately. Unlike wokenLately it forgets nothing: other
// devices may share the address.
func (a *admission) wokenIPLately(ip string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.wokenIPs[ip]
	return ok && now.Sub(at) <= wakeMemory
}

// wokenLately reports (and forgets) a recent connection request to deviceID.
func (a *admission) wokenLately(deviceID string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.woken[deviceID]
	if ok {
		delete(a.woken, deviceID)
	}
	return ok && now.Sub(at) <= wakeMemory
}

// priority reports whether an Inform may use the reserved slice.
func (a *admission) priority(inf *cwmp.Inform, deviceID string, now time.Time) bool {
	woke := false
	for _, e := range inf.Event {
		switch e.Code {
		case cwmp.EventTransferComplete, cwmp.EventMDownload, cwmp.EventMUpload, cwmp.EventMScheduleDownload, cwmp.EventAutonomousTransferComplete:
			return true
		case cwmp.EventConnectionRequest:
			woke = true
		}
	}
	return woke && a.wokenLately(deviceID, now)
}

// retryAfterFullSec is the Retry-After (seconds) of a CPE refused for
// capacity (saturated: with a backlog in the admission queue): booked in
// the calendar.
func (a *admission) retryAfterFullSec(now time.Time, saturated bool) int {
	minRate := float64(max(a.maxBusy*calendarRatePerBusy, calendarMinRate))
	return a.cal.book(now, a.admitted.Load(), minRate, min(a.retryMin, calendarFloor), calendarHorizon*a.retryMax, saturated)
}

// retryAfter is a Retry-After value in whole seconds drawn uniformly from
// the window, so refused CPEs come back spread out.
func (a *admission) retryAfter() string {
	lo, hi := a.retryMin.Seconds(), a.retryMax.Seconds()
	return strconv.Itoa(int(lo + rand.Float64()*(hi-lo+1)))
}

// admit decides whether an Inform for deviceID may open a session (before
// anything is recorded); on refusal it has answered 503. An admitted
// session holds a slot until the returned release is called, once it is
// in the session table (counted open) or given up.
//
// held: the admission queue handed the request a request slot, so the
// busy bound has been applied already. Requests inside sessions pass the
// bound without queueing (finishing a session comes first), so by the time
// the body was read and decoded they had often pushed the count over it
// again: a 100k storm refused 60-200 such sessions a second after its
// flood, each after the queue had chosen it and the edge had parsed its
// Inform, each booked to come back. The session limit and the latency
// bound still apply.
func (s *Server) admit(w http.ResponseWriter, inf *cwmp.Inform, deviceID string, replacing, held bool, now time.Time) (release func(), ok bool) {
	a := s.adm
	outcome := admitNormal
	switch {
	case replacing:
		// The old session is ended first: no new slot is taken.
		a.metrics.Admission.WithLabelValues(admitReplacing).Inc()
		return func() {}, true
	case s.draining.Load():
		s.refuseBusy(w, rejectDraining, "shutting down, retry later")
		return nil, false
	case a.limit <= 0 && a.maxBusy <= 0 && a.latTarget <= 0:
		a.metrics.Admission.WithLabelValues(outcome).Inc()
		return func() {}, true
	}
	a.pendingMu.Lock()
	used := s.open.Load() + a.pending
	busy := (!held && a.overBusy()) || a.slow(used, 1, now)
	if busy || (a.limit > 0 && used >= a.limit-a.reserved) {
		// priority may take the woken mark: only ask when it matters.
		if (a.limit > 0 && used >= a.limit) || !a.priority(inf, deviceID, now) {
			a.pendingMu.Unlock()
			s.refuseFull(w)
			return nil, false
		}
		outcome = admitPriority
	}
	a.pending++
	a.pendingMu.Unlock()
	a.admitted.Add(1)
	a.metrics.Admission.WithLabelValues(outcome).Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.pendingMu.Lock()
			a.pending--
			a.pendingMu.Unlock()
		})
	}, true
}

// full reports whether a request from ip that would open a session is
// refused before its body is read (a storm's refusals cost headers only):
// no session can be admitted but one replacing a device's own, or only a
// priority session can be and the request is unlikely to be one (see
// bandRead). Only a priority session can be while only the reserved slice
// is left, or while the busy bound is passed for a request the queue did
// not hand a slot (held false: its wait ran out), as in admit.
//
// Past twice the busy bound too: a few priority sessions still get their
// bodies read between the bound and twice it.
func (s *Server) full(ip string, held bool, now time.Time) bool {
	a := s.adm
	if (a.maxBusy > 0 && a.busy.Load() > 2*a.maxBusy) || a.slow(s.open.Load(), 2, now) {
		return true
	}
	onlyPriority := !held && a.overBusy()
	if a.limit > 0 {
		a.pendingMu.Lock()
		used := s.open.Load() + a.pending
		a.pendingMu.Unlock()
		if used >= a.limit {
			return true
		}
		onlyPriority = onlyPriority || used >= a.limit-a.reserved
	}
	return onlyPriority && !a.bandRead(ip, now)
}

// overBusy reports whether more requests are in progress than the busy
// bound.
func (a *admission) overBusy() bool {
	return a.maxBusy > 0 && a.busy.Load() > a.maxBusy
}

// bandRead reports whether a new session's request from ip may have its
// body read while only the reserved slice of sessions is left (the band):
// only a priority session can be admitted then, and which one is priority
// is in the Inform. Reading and decoding every Inform in the band only to
// refuse it was most of what a storm's flood cost the edge: the sessions
// sit in the band while thousands of CPEs a second knock (a 100k storm
// read and refused ~5,000 Informs a second for 20 s, ten times those its
// full queue refused before the body). So the edge reads in the band:
//
//   - every request from an address it has just sent a connection request
//     to (the device's last known address: an operator or the core is
//     waiting for it);
//   - at most bandReadsPerReserved per reserved session a second of the
//     others (a CPE reporting a transfer, from an address the edge cannot
//     expect), the rest refused before the body with a booked return.
func (a *admission) bandRead(ip string, now time.Time) bool {
	if a.wokenIPLately(ip, now) {
		return true
	}
	sec := now.Unix()
	a.bandMu.Lock()
	defer a.bandMu.Unlock()
	if a.bandSec != sec {
		a.bandSec, a.bandReads = sec, 0
	}
	if a.bandReads >= a.bandBudget {
		return false
	}
	a.bandReads++
	return true
}

// bandReadsPerReserved is the band's reads a second per reserved session
// (bandRead), bandReadsMin the fewest: a priority session in a storm is
// read at once or after a few returns, while the flood costs the edge a
// few dozen Informs a second instead of thousands.
const (
	bandReadsPerReserved = 1
	bandReadsMin         = 8
)

// Admission queue: how long a new session's first request waits for a
// request slot before it is judged as before (refused unless priority),
// and how many may wait, per request of the busy bound. The depth is what
// absorbs the returns the calendar books for one second, which arrive as
// bursts (each second's were refused in bursts): at 8 per busy request
// and a 1 s wait, the queue overflowed in bursts of hundreds while the
// box sat a tenth idle, and each overflowed CPE was booked again. At 32,
// a full queue drains in ~3 s at the ~600 sessions a second this shared
// 2-core box takes, so the wait matches it. A waiting request costs a
// descriptor and a parked goroutine, no CPU.
const (
	defaultQueueWait = 3 * time.Second
	queuePerBusy     = 32
)

// enter counts a CWMP request in progress until the returned func runs.
func (s *Server) enter() func() {
	s.adm.busy.Add(1)
	return s.adm.exit
}

// enterNew counts the first request of a new session in progress, after
// waiting in the queue for a request slot if the busy bound is reached,
// and reports how the wait ended (slotOverflow: the queue was full, and
// the caller refuses the request before reading its body; slotHeld: the
// queue handed it a slot, and admit does not apply the busy bound again).
// Without the queue, CPEs returning at their booked second arrived as a
// burst: the first few dozen took every slot and the rest were refused in
// the same millisecond, to come back 10 s later, while the edge went idle
// for the rest of the second (a 100k storm ran with the box two-thirds
// idle). Queued, the burst is served at the edge's pace. A request that
// waited queueWait in vain goes on all the same, to be judged by admit as
// before (only a priority session gets in past the bound); while the bound
// is still passed its body is read only when bandRead allows (a 100k
// storm read and refused ~6,000 such Informs).
//
// One that finds the queue full is refused without its body: thousands
// are waiting already, so the edge is at its busy bound, and reading and
// decoding an Inform only to refuse it was most of what a storm's flood
// cost the edge (a 100k storm refused ~5,000 a second that way while it
// admitted ~160). A priority session loses its priority there, as it does
// past twice the busy bound (full).
func (s *Server) enterNew(r *http.Request) (exit func(), wait slotWait) {
	a := s.adm
	wait = a.waitSlot(r)
	if wait != slotHeld {
		a.busy.Add(1)
	}
	return a.exit, wait
}

// exit ends a request counted in progress and hands its slot to the
// longest-waiting new session, if any.
func (a *admission) exit() {
	a.busy.Add(-1)
	if a.nqueued.Load() > 0 {
		a.queueMu.Lock()
		a.handoffLocked()
		a.queueMu.Unlock()
	}
}

// handoffLocked gives free request slots to queued requests, oldest first,
// counting each in progress. The caller holds queueMu.
func (a *admission) handoffLocked() {
	for len(a.queue) > 0 && a.busy.Load() < a.maxBusy {
		ch := a.queue[0]
		a.queue[0] = nil
		a.queue = a.queue[1:]
		a.nqueued.Add(-1)
		a.busy.Add(1)
		close(ch)
	}
}

// slotWait is how waitSlot ended.
type slotWait int

const (
	// slotHeld: the request holds a request slot, counted in busy.
	slotHeld slotWait = iota
	// slotNone: nothing counted; the busy bound is off, the wait ran
	// out or the client went away.
	slotNone
	// slotOverflow: nothing counted; the queue was full.
	slotOverflow
)

// waitSlot waits until the request holds a request slot (counted in
// busy), or gives up with nothing counted (see slotWait).
func (a *admission) waitSlot(r *http.Request) slotWait {
	if a.maxBusy <= 0 || a.queueWait <= 0 {
		return slotNone
	}
	a.queueMu.Lock()
	if len(a.queue) == 0 && a.busy.Load() < a.maxBusy {
		a.busy.Add(1)
		a.queueMu.Unlock()
		return slotHeld
	}
	if int64(len(a.queue)) >= a.maxBusy*queuePerBusy {
		a.queueMu.Unlock()
		return slotOverflow
	}
	ch := make(chan struct{})
	a.queue = append(a.queue, ch)
	a.nqueued.Add(1)
	// A slot freed between the check above and the append found no one
	// queued: look again, now that this request is.
	a.handoffLocked()
	a.queueMu.Unlock()
	t := time.NewTimer(a.queueWait)
	defer t.Stop()
	select {
	case <-ch:
		return slotHeld
	case <-t.C:
	case <-r.Context().Done():
	}
	a.queueMu.Lock()
	defer a.queueMu.Unlock()
	for i, c := range a.queue {
		if c == ch {
			a.queue = append(a.queue[:i], a.queue[i+1:]...)
			a.nqueued.Add(-1)
			return slotNone
		}
	}
	// Handed a slot as the wait ran out.
	return slotHeld
}

// refuseBusy answers 503 with a jittered Retry-After (shutting down, a
// store failure; a full edge answers with refuseFull) and closes the
// connection: a refused CPE should not hold a descriptor while it waits.
func (s *Server) refuseBusy(w http.ResponseWriter, outcome, msg string) {
	s.adm.metrics.Admission.WithLabelValues(outcome).Inc()
	h := w.Header()
	h["Retry-After"] = []string{s.adm.retryAfter()}
	h["Connection"] = hdrClose
	s.httpError(w, http.StatusServiceUnavailable, msg)
}

// msgFull is the body of a refusal for capacity.
const msgFull = "too many sessions, retry later"

// Canned parts of refuseFull's response, shared (net/http only reads
// header values).
var (
	bodyFull         = []byte(msgFull + "\n")
	hdrTextPlain     = []string{"text/plain; charset=utf-8"}
	hdrNosniff       = []string{"nosniff"}
	hdrRetryAfterSec [calendarSlots][]string
)

func init() {
	for i := range hdrRetryAfterSec {
		hdrRetryAfterSec[i] = []string{strconv.Itoa(i)}
	}
}

// refuseFull answers a request the edge has no capacity for: 503 with a
// Retry-After booked in the calendar, and the connection closed. It is the
// response a storm's CPEs get by the thousand, so it writes what
// http.Error would without allocating: the Retry-After comes from a table
// of the calendar's seconds, the counters are looked up once.
//
// With new sessions waiting in the admission queue (a request that found
// it full included), the edge has a backlog: the return is booked as
// saturated (see calRate.refused).
func (s *Server) refuseFull(w http.ResponseWriter) {
	a := s.adm
	a.refusedFull.Inc()
	a.refused503.Inc()
	h := w.Header()
	if sec := a.retryAfterFullSec(time.Now(), a.nqueued.Load() > 0); sec >= 0 && sec < len(hdrRetryAfterSec) {
		h["Retry-After"] = hdrRetryAfterSec[sec]
	} else {
		h["Retry-After"] = []string{strconv.Itoa(sec)}
	}
	h["Connection"] = hdrClose
	delete(h, "Content-Length")
	h["Content-Type"] = hdrTextPlain
	h["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(bodyFull)
}

// storeFailure answers a request whose write failed. A store failure is
// 503 with Retry-After (the store guard logged it, once per interval, and
// counted it); anything else is logged here and answered 500, as before.
func (s *Server) storeFailure(w http.ResponseWriter, err error, msg string, logArgs ...any) {
	if isStoreError(err) {
		s.refuseBusy(w, rejectStore, msg+": store unavailable, retry later")
		return
	}
	s.log.Error(msg, append(logArgs, "err", err)...)
	s.httpError(w, http.StatusInternalServerError, msg)
}

// woke is the Reacher's hook (wakeRecorder): a connection request is going
// to deviceID.
func (s *Server) woke(deviceID, ip string) { s.adm.woke(deviceID, ip) }

// wakeRecorder is told of every connection request the Reacher sends, with
// the device's last known address; the Server is one, so the woken
// device's Inform gets priority.
type wakeRecorder interface{ woke(deviceID, ip string) }
