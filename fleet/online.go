package fleet

import (
	"strconv"
	"strings"
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
