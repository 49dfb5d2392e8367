package fleet

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// Device online states, from the device's last Inform against its
// periodic inform interval (OnlineState).
const (
	DeviceOnline  = "online"
	DeviceLate    = "late"
	DeviceOffline = "offline"
)

// DeviceStates lists the online states in a stable order (metrics labels).
var DeviceStates = []string{DeviceOnline, DeviceLate, DeviceOffline}

// The online rule's constants. A device is online while its last Inform
// is at most one interval plus OnlineGrace old (the periodic Inform it
// owes is not overdue), late until OfflineIntervals intervals plus the
// grace (it missed one or two), offline after that or when it never
// informed. The grace covers the CPE's jitter and the session's own time.
// DefaultInformInterval stands for an interval the ACS has not read
// (ManagementServer.PeriodicInformInterval unknown, zero or unparsable):
// the interval the default "inform" preset holds CPEs to at most.
const (
	OnlineGrace           = 30 * time.Second
	OfflineIntervals      = 3
	DefaultInformInterval = 300 * time.Second
)

// InformIntervalSuffix ends the path of a data model's periodic inform
// interval (under InternetGatewayDevice. or Device.).
const InformIntervalSuffix = ".ManagementServer.PeriodicInformInterval"

// ParseInformInterval reads a PeriodicInformInterval value (seconds); 0
// when it is not a positive number.
func ParseInformInterval(v string) time.Duration {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// OnlineState is a device's state at now given its last Inform and its
// periodic inform interval (0: DefaultInformInterval).
func OnlineState(lastInform time.Time, interval time.Duration, now time.Time) string {
	if lastInform.IsZero() {
		return DeviceOffline
	}
	if interval <= 0 {
		interval = DefaultInformInterval
	}
	age := now.Sub(lastInform)
	switch {
	case age <= interval+OnlineGrace:
		return DeviceOnline
	case age <= OfflineIntervals*interval+OnlineGrace:
		return DeviceLate
	}
	return DeviceOffline
}

// StateCounts serves metrics scrapes a count of devices by online state
// (keyed as the caller likes: the core adds the edge). Counting scans
// every device record, so scrapes within MaxAge share one count; a failed
// count keeps the last good one. The core and the edges both export such
// a gauge.
//
// A count also serves for countDuty times as long as it took (and a failed
// one holds off the next try as long): the scan grows with the fleet, and
// at a fixed MaxAge a big one would keep a core busy. Counting 100,000
// edge records takes ~0.2 s on a small box, so a 15 s MaxAge is 1.2 % of a
// core there; at a million, or on a core holding ten million, the count
// would take longer than MaxAge and scrapes would count without pause.
// With the bound a count serves 20 s at 100,000 and ~3 minutes at a
// million: states change on the scale of inform intervals (minutes).
type StateCounts[K comparable] struct {
	// Count counts at now; MaxAge is how long a count serves.
	Count  func(now time.Time) (map[K]int, error)
	MaxAge time.Duration

	mu    sync.Mutex
	at    time.Time     // of the last good count
	tried time.Time     // of the last count, good or failed
	took  time.Duration // how long the last count ran
	last  map[K]int
	clock func() time.Time // times a count; nil is time.Now (tests set it)
}

// countDuty is how many times as long as a count took it serves: counting
// takes at most 1 % of a core.
const countDuty = 100

// Get returns the count at now, counting again when the last is older
// than MaxAge (or there is none) and the last count's duty bound has
// passed; nil while no count has succeeded. The map is shared: callers
// read it only.
func (c *StateCounts[K]) Get(now time.Time) map[K]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	stale := c.last == nil || now.Sub(c.at) >= c.MaxAge
	if !stale || (!c.tried.IsZero() && now.Sub(c.tried) < countDuty*c.took) {
		return c.last
	}
	clock := c.clock
	if clock == nil {
		clock = time.Now
	}
	start := clock()
	m, err := c.Count(now)
	c.took, c.tried = clock().Sub(start), now
	if err == nil {
		c.last, c.at = m, now
	}
	return c.last
}
