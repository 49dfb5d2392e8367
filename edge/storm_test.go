package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/sim"
)

// Hooks for the storm tests: a tiny fd limit for the capacity derivation,
// a short Retry-After window, and fault injection around the cache.

func setTinyFDLimit(c *Config, fds uint64) { c.capacityFDLimit = fds }
func setRetryAfter(c *Config, lo, hi time.Duration) {
	c.retryAfterMin, c.retryAfterMax = lo, hi
}

// injectStoreFault makes every cache write fail with err before it
// reaches Badger (nil clears it).
func injectStoreFault(c *Cache, err error) {
	if err == nil {
		c.guard.inject.Store(nil)
		return
	}
	f := func(string) error { return err }
	c.guard.inject.Store(&f)
}

func (e *testEdge) admissions(outcome string) float64 {
	return e.metricValue(`edgeacs_edge_admission_total{outcome="` + outcome + `"}`)
}

// metricValue is the value of the sample name{labels} on /metrics, 0 when
// absent.
func (e *testEdge) metricValue(series string) float64 {
	e.t.Helper()
	l := e.metric(series + " ")
	if l == "" {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, series)), 64)
	if err != nil {
		e.t.Fatalf("metric line %q: %v", l, err)
	}
	return v
}

// TestDeriveCapacity: the bounds follow the fd limit (a fifth, at least
// 1024 or half a tiny limit, kept back) and memory; configured ones win.
func TestDeriveCapacity(t *testing.T) {
	for _, tt := range []struct {
		name                string
		conns, sess, cpus   int
		fds, mem            uint64
		wantConns, wantSess int
	}{
		{"the reported box, by fds", 0, 0, 64, 20000, 24 << 30, 16000, 12000},
		{"the reported box, by CPU", 0, 0, 2, 20000, 24 << 30, 16000, 512},
		{"tiny limit", 0, 0, 2, 64, 24 << 30, 32, 24},
		{"default soft limit", 0, 0, 2, 1024, 24 << 30, 512, 384},
		{"huge limit, memory bounds sessions", 0, 0, 64, 1 << 20, 1 << 30, 838861, 2048},
		{"configured", 100, 50, 2, 20000, 24 << 30, 100, 50},
		{"nothing known", 0, 0, 0, 0, 0, 0, DefaultMaxSessions},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := deriveCapacity(tt.conns, tt.sess, tt.fds, tt.mem, tt.cpus)
			if c.Connections != tt.wantConns || c.Sessions != tt.wantSess {
				t.Fatalf("got %d connections, %d sessions; want %d, %d", c.Connections, c.Sessions, tt.wantConns, tt.wantSess)
			}
		})
	}
	if fds, err := raiseFDLimit(); err != nil {
		t.Fatalf("raise fd limit: %v", err)
	} else if fds == 0 {
		t.Log("fd limit unknown on this platform")
	}
}

// TestStorm: an edge whose fd limit allows 16 CWMP connections and 12
// sessions, and ten times as many CPEs bootstrapping at once, each on its
// own connection as real CPEs do. The edge answers 503s with a spread
// Retry-After, never holds more sessions than its cap, the CPEs come back
// when told, and every device registers once the storm passes.
func TestStorm(t *testing.T) {
	e := startEdge(t, "", func(c *Config) {
		c.CPEAuth = AuthNone
		setTinyFDLimit(c, 32)
		setRetryAfter(c, time.Second, 5*time.Second)
	})
	capa := e.node.Capacity()
	if capa.Connections != 16 || capa.Sessions != 12 {
		t.Fatalf("capacity from a 32-fd limit: %+v", capa)
	}
	n := 10 * capa.Sessions
	// The default bootstrap preset refreshes the whole tree (four RPCs, a
	// quarter of a second per session under -race): this test is about
	// admission, so sessions are Inform, credentials, end.
	if err := e.node.Cache().DeletePreset("bootstrap"); err != nil {
		t.Fatal(err)
	}

	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if o := int64(e.node.Server().OpenSessions()); o > peak.Load() {
				peak.Store(o)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	start := time.Now()
	f := startFleet(t, e, n, func(c *sim.Config) {
		c.Username, c.Password = "", ""
		c.PoolConnections = false
		// Retry-After 1-5 s becomes 0.2-1 s; the back-off of a real
		// failure 1-2 s.
		c.TimeScale = 0.2
	})
	waitFor(t, 120*time.Second, "every device to register", func() bool { return e.node.Cache().DeviceCount() == n })
	took := time.Since(start)
	close(stop)
	wg.Wait()

	st := f.Stats()
	rejected := e.admissions(rejectFull)
	t.Logf("%d CPEs, cap %d sessions / %d connections: all registered in %s; %.0f Informs refused (503), peak %d sessions, sim: %d busy, %d errors, p50 %s",
		n, capa.Sessions, capa.Connections, took.Round(time.Millisecond), rejected, peak.Load(), st.SessionsBusy, st.SessionErrors, st.SessionP50)
	if rejected == 0 || st.SessionsBusy == 0 {
		t.Fatalf("no 503 under a storm of %d CPEs against a cap of %d (edge %v, sim %d)", n, capa.Sessions, rejected, st.SessionsBusy)
	}
	if p := peak.Load(); p > int64(capa.Sessions) {
		t.Fatalf("%d sessions open at the peak, above the cap of %d", p, capa.Sessions)
	}
	if st.SessionErrors != 0 {
		t.Errorf("%d sessions failed other than by 503", st.SessionErrors)
	}
	if strings.Contains(e.logs.String(), "panic") {
		t.Fatalf("the edge logged a panic:\n%s", e.logs.String())
	}
	// Every new device's Inform waited for a group fsync, and they shared
	// the rounds: at least one ran, never more than one per promised write.
	if syncs := e.metricValue("edgeacs_edge_store_syncs_total"); syncs < 1 || syncs > float64(2*n) {
		t.Errorf("edgeacs_edge_store_syncs_total = %v after %d new devices, want 1..%d", syncs, n, 2*n)
	}
}

// TestRetryAfterSpread: refused CPEs are told to come back at different
// times, within the window.
func TestRetryAfterSpread(t *testing.T) {
	a := newAdmission(10, 0, 10*time.Second, 60*time.Second, NewMetrics(nil).Storm)
	seen := map[int]bool{}
	for range 200 {
		v, err := strconv.Atoi(a.retryAfter())
		if err != nil || v < 10 || v > 60 {
			t.Fatalf("Retry-After %d (%v) outside 10-60", v, err)
		}
		seen[v] = true
	}
	if len(seen) < 20 {
		t.Fatalf("200 refusals got only %d distinct Retry-After values", len(seen))
	}
}

// TestRetryCalendar: refused CPEs are booked back from the floor on, at
// the admission rate per second while a flood is refused (the prior
// before a measurement and as a floor, then the measured, peak-held
// rate), a fifth more than the rate admitted (a moving average)
// once the refusals are returns, and drawn uniformly within the horizon
// once it is full.
func TestRetryCalendar(t *testing.T) {
	floor, horizon := 10*time.Second, 600*time.Second
	t0 := time.Unix(1_000_000, 0)
	book := func(c *retryCalendar, n int, at time.Duration, admitted int64) map[int]int {
		got := map[int]int{}
		for range n {
			got[c.book(t0.Add(at), admitted, 100, floor, horizon, false)]++
		}
		return got
	}
	// perSec is what the calendar would book a second for one more
	// refusal at t0+at, without counting it.
	perSec := func(c *retryCalendar, at time.Duration, admitted int64) int {
		probe := c.rate
		return probe.refused(t0.Add(at).UnixNano(), admitted, 100, false)
	}

	// Before a measurement: the prior (100/s), from the floor on.
	var c retryCalendar
	got := book(&c, 500, 0, 0)
	for s := 10; s < 15; s++ {
		if got[s] != 100 {
			t.Fatalf("second +%d booked %d, want 100 (all: %v)", s, got[s], got)
		}
	}
	if len(got) != 5 {
		t.Fatalf("bookings %v, want seconds +10..+14", got)
	}

	// A flood: 2,000 more refused within the second, 400 admitted. The
	// rate rises to 400/s at once (peak-hold); the next bookings refill
	// the seconds booked at the prior's 100.
	book(&c, 2000, 100*time.Millisecond, 0)
	if got := perSec(&c, time.Second, 400); got != 400 {
		t.Fatalf("flood at 400 admitted a second: %d a second, want 400", got)
	}
	book(&c, 1, time.Second, 400)
	if !c.rate.flood || c.rate.perSec != 400 {
		t.Fatalf("after 2,751 refusals and 400 admissions in a second: flood %v, rate %.0f; want a flood at 400/s", c.rate.flood, c.rate.perSec)
	}
	// A flood admitting less than the prior books at the prior's rate:
	// the rate admitted while refusing thousands a second is not what the
	// edge does once they are gone.
	book(&c, 2000, 1100*time.Millisecond, 400)
	if got := perSec(&c, 2*time.Second, 410); got != 361 {
		t.Fatalf("flood admitting 10 a second after a 400 peak: %d a second, want 361 (peak-held, a tenth's decay)", got)
	}
	var low retryCalendar
	book(&low, 1, 0, 0)
	book(&low, 1000, 100*time.Millisecond, 0)
	if got := perSec(&low, time.Second, 10); got != 100 {
		t.Fatalf("flood admitting 10 a second: %d a second, want the prior's 100", got)
	}

	// Returns: fewer refusals than four times the admissions. The edge
	// admits 300 a second; the rate moves to it (2 s time constant), the
	// prior no longer a floor, booked at a fifth more.
	var ret retryCalendar
	book(&ret, 1, 0, 0)
	admitted := int64(0)
	for i := 1; i <= 40; i++ {
		admitted += 75
		book(&ret, 100, time.Duration(i)*250*time.Millisecond, admitted)
	}
	if ret.rate.flood || ret.rate.perSec < 290 || ret.rate.perSec > 310 {
		t.Fatalf("10 s refusing 400 and admitting 300 a second: flood %v, rate %.0f; want no flood, ~300/s", ret.rate.flood, ret.rate.perSec)
	}
	if got := perSec(&ret, 10*time.Second+250*time.Millisecond, admitted+75); got < 350 || got > 370 {
		t.Fatalf("returns at 300 admitted a second: %d a second, want ~360", got)
	}
	// The same, refused by a full queue: at the rate admitted.
	queueFull := ret.rate
	if got := queueFull.refused(t0.Add(10*time.Second+250*time.Millisecond).UnixNano(), admitted+75, 100, true); got < 290 || got > 310 {
		t.Fatalf("returns refused by a full queue at 300 admitted a second: %d a second, want ~300", got)
	}
	// The same at 50 a second: below the prior, booked at 60.
	var slow retryCalendar
	book(&slow, 1, 0, 0)
	admitted = 0
	for i := 1; i <= 40; i++ {
		admitted += 12
		book(&slow, 20, time.Duration(i)*250*time.Millisecond, admitted)
	}
	if got := perSec(&slow, 10*time.Second+250*time.Millisecond, admitted+12); got < 55 || got > 65 {
		t.Fatalf("returns at 48 admitted a second, prior 100: %d a second, want ~58, not the prior's 100", got)
	}
	// Quiet for 10 s, then a refusal: a new burst, at the prior again
	// (what the edge admitted while it had room is not what it can do).
	book(&slow, 1, 20*time.Second, admitted+100)
	if !slow.rate.flood || slow.rate.perSec != 100 {
		t.Fatalf("a refusal after 10 s without one: flood %v, rate %.0f; want the prior's flood", slow.rate.flood, slow.rate.perSec)
	}

	// A horizon booked full: uniform within it.
	var small retryCalendar
	seen := map[int]bool{}
	for range 500 {
		ra := small.book(t0, 0, 1, time.Second, 5*time.Second, false)
		if ra < 1 || ra > 5 {
			t.Fatalf("Retry-After %d outside 1-5 s", ra)
		}
		seen[ra] = true
	}
	if len(seen) != 5 {
		t.Fatalf("a full calendar spread its refusals over %v", seen)
	}
}

// TestCalendarSaturatedGoesBehind: a return refused by a full admission
// queue is booked behind the returns booked already, while one refused
// with room in the queue goes into the seconds just ahead that a rate a
// fifth above what the edge admits leaves room in.
func TestCalendarSaturatedGoesBehind(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	floor, horizon := 2*time.Second, 600*time.Second
	var c retryCalendar
	for range 4000 { // a flood at the prior: +2..+11 s at 400 each
		c.book(t0, 0, 400, floor, horizon, false)
	}
	// The flood has passed; the edge admits 340 a second.
	c.rate = calRate{perSec: 340, at: t0.UnixNano()}
	now := t0.Add(100 * time.Millisecond)
	if got := c.book(now, 0, 400, floor, horizon, true); got != 12 {
		t.Fatalf("a return refused by a full queue booked at +%d s, want +12 (behind the flood's)", got)
	}
	if got := c.book(now, 0, 400, floor, horizon, false); got != 2 {
		t.Fatalf("a return refused with room in the queue booked at +%d s, want +2 (408 a second fits one more)", got)
	}
}

// TestRefuseFullWithBacklog: a refusal for capacity while new sessions
// wait in the admission queue books the return as saturated (behind the
// returns booked already); without a backlog, a fifth above the rate.
func TestRefuseFullWithBacklog(t *testing.T) {
	m := NewMetrics(nil)
	s := &Server{metrics: m, adm: newAdmission(10, 10, 10*time.Second, 60*time.Second, m.Storm)}
	s.adm.refused503 = m.HTTPErrors.WithLabelValues("503")
	a := s.adm
	now := time.Now()
	for range 1200 { // a flood at the prior, 120 a second: +2..+11 s
		a.retryAfterFullSec(now, false)
	}
	retryAfter := func() int {
		a.cal.rate = calRate{perSec: 110, at: time.Now().UnixNano()} // the edge admits 110 a second
		w := &headerOnly{h: http.Header{}}
		s.refuseFull(w)
		ra, err := strconv.Atoi(w.h.Get("Retry-After"))
		if err != nil {
			t.Fatal(err)
		}
		return ra
	}
	if got := retryAfter(); got > 3 {
		t.Fatalf("no backlog: Retry-After %d s, want 2 (132 a second fits one more)", got)
	}
	a.nqueued.Add(1)
	defer a.nqueued.Add(-1)
	if got := retryAfter(); got < 11 {
		t.Fatalf("with a backlog: Retry-After %d s, want 11-12 (behind the flood's)", got)
	}
}

// TestCalendarRefillsThinSeconds: seconds booked while the measured rate
// was low are filled up to a higher one once it rises, rather than left
// thin while later seconds take the returns (a 100k storm's flood,
// measured for a moment at 67 a second, left ten seconds at 80 returns
// each and the edge a third busy through them).
func TestCalendarRefillsThinSeconds(t *testing.T) {
	floor, horizon := 10*time.Second, 600*time.Second
	t0 := time.Unix(2_000_000, 0)
	var c retryCalendar
	// Within one sample (no new measurement): the rate set here is the
	// one booked at, a fifth over it.
	c.rate = calRate{perSec: 50, at: t0.UnixNano()}
	book := func(n int) map[int]int {
		got := map[int]int{}
		for range n {
			got[c.book(t0, 0, 100, floor, horizon, false)]++
		}
		return got
	}
	if got := book(180); got[10] != 60 || got[11] != 60 || got[12] != 60 || len(got) != 3 {
		t.Fatalf("at 50 a second: %v, want 60 in each of +10..+12", got)
	}
	c.rate.perSec = 200
	if got := book(500); got[10] != 180 || got[11] != 180 || got[12] != 140 || len(got) != 3 {
		t.Fatalf("after the rate rose to 200 a second: %v, want +10..+12 filled to 240 (180, 180, 140)", got)
	}
	// Falling again books on from the first second with room at the new
	// rate, not from the floor.
	c.rate.perSec = 50
	if got := book(60); got[13] != 60 || len(got) != 1 {
		t.Fatalf("back at 50 a second: %v, want 60 at +13", got)
	}
}

// TestCalendarFloor: a CPE refused for capacity is booked back from
// calendarFloor on, not from the 10 s floor of the uniform Retry-After
// (an edge with room again takes it in seconds), and from the window's
// floor when that is sooner.
func TestCalendarFloor(t *testing.T) {
	now := time.Unix(3_000_000, 0)
	a := newAdmission(10, 0, 10*time.Second, 60*time.Second, NewMetrics(nil).Storm)
	if got := a.retryAfterFullSec(now, false); got != int(calendarFloor/time.Second) {
		t.Fatalf("first refusal booked at +%d s, want +%d", got, int(calendarFloor/time.Second))
	}
	short := newAdmission(10, 0, time.Second, 5*time.Second, NewMetrics(nil).Storm)
	if got := short.retryAfterFullSec(now, false); got != 1 {
		t.Fatalf("with a 1 s window floor: +%d s, want +1", got)
	}
}

// TestAdmissionPriority: with the session table full but for the reserved
// tenth, a bootstrap is refused while a TransferComplete, a device the edge
// just woke and a device already in a session get in; at the full cap only
// the last does.
func TestAdmissionPriority(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.MaxConcurrentSessions = 10 })
	for i := range 9 {
		newCPE(t, e, fmt.Sprintf("FILL%02d", i)).open()
	}
	informCode := func(c *cpe, events ...string) int {
		c.cookie = ""
		code, _, _ := c.post(c.informBody(events))
		return code
	}
	boot := newCPE(t, e, "BOOTSTRAPPER")
	if code := informCode(boot, cwmp.EventBootstrap, cwmp.EventBoot); code != http.StatusServiceUnavailable {
		t.Fatalf("bootstrap into the reserved slice: %d, want 503", code)
	}
	tc := newCPE(t, e, "TRANSFERRER")
	if code := informCode(tc, cwmp.EventTransferComplete, cwmp.EventMDownload); code != http.StatusOK {
		t.Fatalf("TransferComplete into the reserved slice: %d, want 200", code)
	}
	// Full now (10). A device already in a session (its cookie) replaces
	// it; without the cookie it is refused before its body is read.
	if code, _, _ := tc.post(tc.informBody([]string{cwmp.EventTransferComplete})); code != http.StatusOK {
		t.Fatalf("a new Inform of a device in a session, with its cookie, at the cap: %d, want 200", code)
	}
	woken := newCPE(t, e, "WOKEN")
	e.node.Server().woke(woken.id(), "")
	if code := informCode(woken, cwmp.EventConnectionRequest); code != http.StatusServiceUnavailable {
		t.Fatalf("a woken device above the cap: %d, want 503", code)
	}
	// Make room in the reserved slice: end one filler's session.
	e.node.Server().sessions.each(func(s *session) {
		if s.deviceID == newCPE(t, e, "FILL00").id() {
			s.mu.Lock()
			e.node.Server().finishLocked(s, false, outcomeDropped, time.Now())
			s.mu.Unlock()
		}
	})
	stranger := newCPE(t, e, "STRANGER")
	if code := informCode(stranger, cwmp.EventConnectionRequest); code != http.StatusServiceUnavailable {
		t.Fatalf("a connection-request Inform the edge did not ask for, in the reserved slice: %d, want 503", code)
	}
	e.node.Server().woke(woken.id(), "")
	if code := informCode(woken, cwmp.EventConnectionRequest); code != http.StatusOK {
		t.Fatalf("a device the edge just woke, in the reserved slice: %d, want 200", code)
	}
	if e.admissions(admitPriority) != 2 || e.admissions(admitReplacing) != 1 || e.admissions(rejectFull) != 3 {
		t.Fatalf("admissions: priority %v replacing %v rejected %v", e.admissions(admitPriority), e.admissions(admitReplacing), e.admissions(rejectFull))
	}
}

// TestAdmissionBand: while only the reserved slice is left, a new
// session's body is read only within the second's budget or when it comes
// from the address of a device the edge just woke; the rest are refused
// before the body (an unparsable one gets the 503, not a 400), priority or
// not.
func TestAdmissionBand(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.MaxConcurrentSessions = 10 })
	for i := range 9 {
		newCPE(t, e, fmt.Sprintf("FILL%02d", i)).open()
	}
	s := e.node.Server()
	s.adm.bandMu.Lock()
	s.adm.bandBudget = 0
	s.adm.bandMu.Unlock()
	c := newCPE(t, e, "BANDED")
	code, _, body := c.post([]byte("<not-cwmp " + cwmp.EventTransferComplete))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), msgFull) {
		t.Fatalf("unparsable Inform in the band, budget spent: %d %q, want 503 %q", code, body, msgFull)
	}
	if code, _, _ := c.post(c.informBody([]string{cwmp.EventTransferComplete})); code != http.StatusServiceUnavailable {
		t.Fatalf("TransferComplete in the band from an unexpected address, budget spent: %d, want 503", code)
	}
	// The test's CPEs all come from 127.0.0.1: waking one device there
	// has every request from it read.
	s.woke(newCPE(t, e, "ELSEWHERE").id(), "127.0.0.1")
	if code, _, _ := c.post([]byte("<not-cwmp")); code != http.StatusBadRequest {
		t.Fatalf("unparsable Inform from a woken address, in the band: %d, want 400", code)
	}
	if code, _, _ := c.post(c.informBody([]string{cwmp.EventTransferComplete})); code != http.StatusOK {
		t.Fatalf("TransferComplete from a woken address, in the band: %d, want 200", code)
	}
}

// TestBandRead: the band's budget is per second, at least bandReadsMin,
// and woken addresses are outside it until the wake is old.
func TestBandRead(t *testing.T) {
	m := NewMetrics(nil)
	a := newAdmission(200, 0, time.Second, time.Minute, m.Storm) // 20 reserved
	if a.bandBudget != 20*bandReadsPerReserved {
		t.Fatalf("budget %d, want %d", a.bandBudget, 20*bandReadsPerReserved)
	}
	if small := newAdmission(10, 0, time.Second, time.Minute, m.Storm); small.bandBudget != bandReadsMin {
		t.Fatalf("budget with 1 reserved: %d, want %d", small.bandBudget, bandReadsMin)
	}
	now := time.Unix(1_000_000, 0)
	for i := range a.bandBudget {
		if !a.bandRead("192.0.2.1", now.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("read %d of a budget of %d refused", i+1, a.bandBudget)
		}
	}
	if a.bandRead("192.0.2.1", now.Add(999*time.Millisecond)) {
		t.Fatal("a read past the second's budget allowed")
	}
	a.woke("dev", "192.0.2.7")
	if !a.bandRead("192.0.2.7", now.Add(999*time.Millisecond)) {
		t.Fatal("a woken address refused with the budget spent")
	}
	if !a.bandRead("192.0.2.1", now.Add(time.Second)) {
		t.Fatal("the next second's first read refused")
	}
	if a.wokenIPLately("192.0.2.7", time.Now().Add(2*wakeMemory)) {
		t.Fatal("a wake older than wakeMemory still counts")
	}
}

// TestAdmitHeld: a new session the admission queue handed a request slot
// is not refused for the busy bound again (requests inside sessions pushed
// the count over it while its body was read); one that waited in vain is.
func TestAdmitHeld(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.maxBusy = 1 })
	s := e.node.Server()
	s.adm.busy.Add(5)
	defer s.adm.busy.Add(-5)
	inf := &cwmp.Inform{Event: []cwmp.Event{{Code: cwmp.EventBootstrap}}}
	w := &headerOnly{h: http.Header{}}
	if _, ok := s.admit(w, inf, "dev-waited", false, false, time.Now()); ok {
		t.Fatal("a bootstrap above the busy bound, without a slot, admitted")
	}
	release, ok := s.admit(w, inf, "dev-held", false, true, time.Now())
	if !ok {
		t.Fatal("a bootstrap handed a slot by the queue refused for the busy bound")
	}
	release()
}

func healthz(t *testing.T, e *testEdge) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(e.api, "/api/v1") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

var errDiskGone = errors.New("injected: no space left on device")

// TestStoreFaults: the cache starts failing writes. Sessions fail cleanly
// (503 with Retry-After, nothing recorded), /healthz goes red, the cause
// is logged once per interval rather than per request, and nothing
// panics; once writes succeed again, so do sessions, and the CPEs refused
// meanwhile register. When writes keep failing past the limit the edge
// stops with a clear error, and a restart finds every device it had
// acknowledged.
func TestStoreFaults(t *testing.T) {
	dir := t.TempDir()
	e := startEdge(t, dir, func(c *Config) {
		c.CPEAuth = AuthNone
		c.StoreFailureLimit = time.Hour
		setRetryAfter(c, time.Second, 2*time.Second)
	})
	var acked []string
	for i := range 5 {
		c := newCPE(t, e, fmt.Sprintf("BEFORE%02d", i))
		c.open(cwmp.EventBootstrap, cwmp.EventBoot)
		acked = append(acked, c.id())
	}
	if code, _ := healthz(t, e); code != http.StatusOK {
		t.Fatalf("healthz before the fault: %d", code)
	}

	injectStoreFault(e.node.Cache(), errDiskGone)
	var refused []*cpe
	for i := range 20 {
		c := newCPE(t, e, fmt.Sprintf("DURING%02d", i))
		req, _ := http.NewRequest(http.MethodPost, e.acs, strings.NewReader(string(c.informBody([]string{cwmp.EventBootstrap}))))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("Inform while writes fail: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		refused = append(refused, c)
	}
	// The API's writes fail the same way: 503, not 500.
	resp, err := http.Post(e.api+"/devices/"+url.PathEscape(acked[0])+"/tasks", "application/json", strings.NewReader(`{"name":"reboot"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("API task while writes fail: %d, want 503", resp.StatusCode)
	}
	code, body := healthz(t, e)
	if code != http.StatusServiceUnavailable || body["status"] != "unhealthy" || !strings.Contains(fmt.Sprint(body["store"]), "no space left") {
		t.Fatalf("healthz while writes fail: %d %v", code, body)
	}
	if n := strings.Count(e.logs.String(), "cache store write failed"); n != 1 {
		t.Fatalf("%d log lines for 20 failed writes within one interval, want 1", n)
	}
	if v := e.metricValue(`edgeacs_edge_store_failures_total{op="update"}`); v < 20 {
		t.Fatalf("store_failures_total{op=update} = %v after 20 failed Informs", v)
	}
	for _, c := range refused {
		if _, err := e.node.Cache().Device(c.id()); err == nil {
			t.Fatalf("%s was recorded though its Inform was refused", c.id())
		}
	}

	// A fleet arriving during the fault keeps being refused until it clears.
	f := startFleet(t, e, 20, func(c *sim.Config) {
		c.Username, c.Password = "", ""
		c.TimeScale = 0.2 // Retry-After 1-2 s → 0.2-0.4 s
	})
	waitFor(t, 10*time.Second, "the fleet to be refused", func() bool { return f.Stats().SessionsBusy >= 20 })
	injectStoreFault(e.node.Cache(), nil)
	for _, c := range refused {
		c.open(cwmp.EventBootstrap)
	}
	waitFor(t, 30*time.Second, "every device to register after the fault", func() bool {
		return e.node.Cache().DeviceCount() == len(acked)+len(refused)+f.Len()
	})
	if code, _ := healthz(t, e); code != http.StatusOK {
		t.Fatalf("healthz after the fault cleared: %d", code)
	}
	if !strings.Contains(e.logs.String(), "cache store writes succeed again") {
		t.Fatal("the recovery was not logged")
	}
	if st := f.Stats(); st.SessionErrors != 0 {
		t.Fatalf("%d fleet sessions failed other than by 503", st.SessionErrors)
	}
	f.Close()

	// Writes that keep failing past the limit stop the edge cleanly.
	e.node.Cache().guard.limit = 200 * time.Millisecond
	injectStoreFault(e.node.Cache(), errDiskGone)
	late := newCPE(t, e, "LATE")
	deadline := time.Now().Add(10 * time.Second)
	var runErr error
	for runErr == nil {
		if time.Now().After(deadline) {
			t.Fatal("the edge did not stop while its writes kept failing")
		}
		req, _ := http.NewRequest(http.MethodPost, e.acs, strings.NewReader(string(late.informBody([]string{cwmp.EventBootstrap}))))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		select {
		case runErr = <-e.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	e.cancel()
	e.cancel = nil // stopped already
	if !errors.Is(runErr, ErrStoreUnusable) || !strings.Contains(runErr.Error(), "no space left") {
		t.Fatalf("Run returned %v, want ErrStoreUnusable naming the cause", runErr)
	}
	if strings.Contains(e.logs.String(), "panic") {
		t.Fatalf("the edge logged a panic:\n%s", e.logs.String())
	}

	// Restarted on the same data, it has every device it acknowledged.
	e2 := startEdge(t, dir, func(c *Config) { c.CPEAuth = AuthNone })
	for _, id := range append(acked, refused[0].id(), f.Device(0).ID()) {
		if _, err := e2.node.Cache().Device(id); err != nil {
			t.Fatalf("after restart, %s: %v", id, err)
		}
	}
	late.url = e2.acs
	late.open(cwmp.EventBootstrap)
}

// TestStoreUnusableErrors: which Badger failures stop the node at once.
func TestStoreUnusableErrors(t *testing.T) {
	for _, tt := range []struct {
		err   error
		fatal bool
	}{
		{errors.New("writeRequests: cannot create new mem table: open 000042.mem: too many open files"), true},
		{fmt.Errorf("commit: %w", badger.ErrDBClosed), true},
		{errors.New("write: no space left on device"), false},
	} {
		if got := unusableReason(tt.err) != ""; got != tt.fatal {
			t.Errorf("%v: fatal %v, want %v", tt.err, got, tt.fatal)
		}
	}
}

// TestLogSync: the group fsync syncs the store's logs through its own
// descriptors, never taking Badger's lock: it succeeds beside a commit in
// progress, picks up a log made since the last round, lets go of one
// deleted, and fails (a store failure for the guard) when the directory
// is gone.
func TestLogSync(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenCache(dir, CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x/1"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	if len(mems) == 0 {
		t.Fatalf("no memtable log in %s: the sync would sync nothing", dir)
	}
	if err := c.durable(); err != nil {
		t.Fatalf("durable: %v", err)
	}
	kept := func() []string {
		c.logs.mu.Lock()
		defer c.logs.mu.Unlock()
		return slices.Sorted(maps.Keys(c.logs.logs))
	}
	before := kept()
	if !slices.Contains(before, filepath.Base(mems[0])) {
		t.Fatalf("kept %v, want %s among them", before, filepath.Base(mems[0]))
	}
	// A new memtable's log (as Badger makes one when the last is full),
	// then gone (flushed).
	extra := filepath.Join(dir, "000999.mem")
	if err := os.WriteFile(extra, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.logs.sync(); err != nil {
		t.Fatal(err)
	}
	if got := kept(); !slices.Contains(got, "000999.mem") {
		t.Fatalf("a log made since the last round not synced: kept %v", got)
	}
	if err := os.Remove(extra); err != nil {
		t.Fatal(err)
	}
	if err := c.logs.sync(); err != nil {
		t.Fatalf("a log flushed away since the last round: %v", err)
	}
	if got := kept(); !slices.Equal(got, before) {
		t.Fatalf("kept %v after the extra log went, want %v", got, before)
	}
	if err := newLogSyncer(filepath.Join(dir, "gone")).sync(); err == nil {
		t.Fatal("a sync of a missing directory succeeded")
	}
}

// TestAdmissionBusy: with more CWMP requests in progress than the busy
// bound, new sessions are refused but priority ones; past twice the bound,
// every new session is refused before its body is read.
func TestAdmissionBusy(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.maxBusy = 2 })
	busy := &e.node.Server().adm.busy
	busy.Add(2) // with the request itself, 3 in progress
	inform := func(serial string, events ...string) int {
		c := newCPE(t, e, serial)
		code, _, _ := c.post(c.informBody(events))
		return code
	}
	if code := inform("BUSY1", cwmp.EventBootstrap); code != http.StatusServiceUnavailable {
		t.Fatalf("bootstrap above the busy bound: %d, want 503", code)
	}
	if code := inform("BUSY2", cwmp.EventTransferComplete); code != http.StatusOK {
		t.Fatalf("TransferComplete above the busy bound: %d, want 200", code)
	}
	busy.Add(2) // 5 > 2×2
	if code := inform("BUSY3", cwmp.EventTransferComplete); code != http.StatusServiceUnavailable {
		t.Fatalf("TransferComplete above twice the busy bound: %d, want 503", code)
	}
	busy.Add(-4)
	if code := inform("BUSY4", cwmp.EventBootstrap); code != http.StatusOK {
		t.Fatalf("bootstrap once the load fell: %d, want 200", code)
	}
}

// TestAdmissionQueue: a new session arriving at the busy bound waits for
// a request slot instead of being refused at once, and gets it when one is
// freed; past the queue's wait it is judged as before (refused, not
// priority). Sessions already open never queue. A full queue refuses a
// new session before its body is read.
func TestAdmissionQueue(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.maxBusy = 1 })
	adm := e.node.Server().adm
	adm.queueWait = 30 * time.Second
	adm.busy.Add(1) // the bound is reached
	done := make(chan int, 1)
	go func() {
		c := newCPE(t, e, "QUEUED1")
		code, _, _ := c.post(c.informBody([]string{cwmp.EventBootstrap}))
		done <- code
	}()
	deadline := time.Now().Add(10 * time.Second)
	for adm.nqueued.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the bootstrap did not queue at the busy bound")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("the queued bootstrap was answered %d while the bound held", code)
	default:
	}
	adm.exit() // the request holding the slot ends
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the queued bootstrap once a slot was free: %d, want 200", code)
	}
	if n := adm.nqueued.Load(); n != 0 {
		t.Fatalf("%d still queued", n)
	}
	// A wait that runs out: refused as a bootstrap above the bound was.
	adm.queueWait = 50 * time.Millisecond
	adm.busy.Add(1)
	defer adm.busy.Add(-1)
	c := newCPE(t, e, "QUEUED2")
	if code, _, _ := c.post(c.informBody([]string{cwmp.EventBootstrap})); code != http.StatusServiceUnavailable {
		t.Fatalf("bootstrap after the queue's wait ran out: %d, want 503", code)
	}
	if n := adm.nqueued.Load(); n != 0 {
		t.Fatalf("%d left queued after the wait ran out", n)
	}
	// With the band's budget spent, such a request is refused before its
	// body is read: an unparsable one gets the 503, not a 400.
	adm.bandMu.Lock()
	budget := adm.bandBudget
	adm.bandBudget = 0
	adm.bandMu.Unlock()
	if code, _, body := c.post([]byte("<not-cwmp")); code != http.StatusServiceUnavailable || !strings.Contains(string(body), msgFull) {
		t.Fatalf("unparsable Inform after the wait ran out, budget spent: %d %q, want 503 %q", code, body, msgFull)
	}
	adm.bandMu.Lock()
	adm.bandBudget = budget
	adm.bandMu.Unlock()

	// A full queue: a new session is refused before its body is read, so
	// a body that does not parse gets the 503 (and a priority event no
	// priority), where with room in the queue it got a 400.
	adm.queueMu.Lock()
	for int64(len(adm.queue)) < adm.maxBusy*queuePerBusy {
		adm.queue = append(adm.queue, make(chan struct{}))
	}
	adm.queueMu.Unlock()
	c = newCPE(t, e, "OVERFLOW1")
	code, _, body := c.post([]byte("<not-cwmp " + cwmp.EventTransferComplete))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), msgFull) {
		t.Fatalf("unparsable Inform with the queue full: %d %q, want 503 %q", code, body, msgFull)
	}
	adm.queueMu.Lock()
	adm.queue = nil
	adm.queueMu.Unlock()
	if code, _, _ := c.post([]byte("<not-cwmp")); code != http.StatusBadRequest {
		t.Fatalf("unparsable Inform with room in the queue: %d, want 400", code)
	}
}

// TestAdmissionSlow: while requests inside sessions take over the latency
// target on average, new sessions are refused but priority ones (past
// twice the target, those too); an average nobody refreshed lately does
// not count.
func TestAdmissionSlow(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	a := e.node.Server().adm
	a.latMinOpen.Store(0)
	set := func(lat time.Duration, at time.Time) {
		a.lat.Store(int64(lat))
		a.latAt.Store(at.UnixNano())
	}
	inform := func(serial string, events ...string) int {
		c := newCPE(t, e, serial)
		code, _, _ := c.post(c.informBody(events))
		return code
	}
	set(3*a.latTarget/2, time.Now().Add(time.Hour)) // fresh for the test's length
	if code := inform("SLOW1", cwmp.EventBootstrap); code != http.StatusServiceUnavailable {
		t.Fatalf("bootstrap while sessions are slow: %d, want 503", code)
	}
	if code := inform("SLOW2", cwmp.EventTransferComplete); code != http.StatusOK {
		t.Fatalf("TransferComplete while sessions are slow: %d, want 200", code)
	}
	set(3*a.latTarget, time.Now().Add(time.Hour))
	if code := inform("SLOW3", cwmp.EventTransferComplete); code != http.StatusServiceUnavailable {
		t.Fatalf("TransferComplete while sessions are very slow: %d, want 503", code)
	}
	set(3*a.latTarget, time.Now().Add(-time.Minute))
	if code := inform("SLOW4", cwmp.EventBootstrap); code != http.StatusOK {
		t.Fatalf("bootstrap with a stale average: %d, want 200", code)
	}
}

// headerOnly is a ResponseWriter that keeps its header map between
// responses and discards the rest, for counting a handler's allocations.
type headerOnly struct{ h http.Header }

func (w *headerOnly) Header() http.Header         { return w.h }
func (w *headerOnly) Write(p []byte) (int, error) { return len(p), nil }
func (w *headerOnly) WriteHeader(int)             {}

// TestRefuseFull: a refusal for capacity is a 503 with a booked
// Retry-After, Connection: close and http.Error's headers and body,
// counted as rejected_full and as a 503; and it allocates nothing, since
// a storm's CPEs get thousands a second.
func TestRefuseFull(t *testing.T) {
	m := NewMetrics(nil)
	s := &Server{metrics: m, adm: newAdmission(10, 0, 10*time.Second, 60*time.Second, m.Storm)}
	s.adm.refused503 = m.HTTPErrors.WithLabelValues("503")
	rec := httptest.NewRecorder()
	s.refuseFull(rec)
	res := rec.Result()
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	for _, c := range []struct{ name, got, want string }{
		{"status", strconv.Itoa(res.StatusCode), "503"},
		{"Connection", res.Header.Get("Connection"), "close"},
		{"Content-Type", res.Header.Get("Content-Type"), "text/plain; charset=utf-8"},
		{"X-Content-Type-Options", res.Header.Get("X-Content-Type-Options"), "nosniff"},
		{"body", rec.Body.String(), "too many sessions, retry later\n"},
		{"Retry-After in 2-600 s (calendarFloor to the horizon)", strconv.FormatBool(err == nil && ra >= int(calendarFloor/time.Second) && ra <= 600), "true"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	w := &headerOnly{h: http.Header{}}
	if n := testing.AllocsPerRun(200, func() { s.refuseFull(w) }); n != 0 {
		t.Errorf("refuseFull allocates %.1f times per refusal, want 0", n)
	}
	// One refusal above, and AllocsPerRun's 200 runs after a warm-up.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			series := mf.GetName()
			for _, l := range mt.GetLabel() {
				series += "," + l.GetName() + "=" + l.GetValue()
			}
			counted[series] = mt.GetCounter().GetValue()
		}
	}
	for _, series := range []string{"edgeacs_edge_admission_total,outcome=rejected_full", "edgeacs_edge_cwmp_http_errors_total,code=503"} {
		if counted[series] != 202 {
			t.Errorf("%s = %v, want 202", series, counted[series])
		}
	}
}
