package fleet

import (
	"testing"
	"time"
)

func TestOnlineState(t *testing.T) {
	last := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	min := time.Minute
	cases := []struct {
		name     string
		last     time.Time
		interval time.Duration
		age      time.Duration
		want     string
	}{
		{"just informed", last, 5 * min, 0, DeviceOnline},
		{"due, within grace", last, 5 * min, 5*min + OnlineGrace, DeviceOnline},
		{"one inform missed", last, 5 * min, 5*min + OnlineGrace + time.Second, DeviceLate},
		{"two missed, still late", last, 5 * min, 15*min + OnlineGrace, DeviceLate},
		{"three missed", last, 5 * min, 15*min + OnlineGrace + time.Second, DeviceOffline},
		{"long interval keeps it online", last, 24 * time.Hour, 20 * time.Hour, DeviceOnline},
		{"unknown interval: the default", last, 0, DefaultInformInterval + OnlineGrace, DeviceOnline},
		{"unknown interval, late", last, 0, DefaultInformInterval + OnlineGrace + time.Second, DeviceLate},
		{"never informed", time.Time{}, 5 * min, 0, DeviceOffline},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := OnlineState(c.last, c.interval, last.Add(c.age)); got != c.want {
				t.Fatalf("OnlineState(age %s, interval %s) = %s, want %s", c.age, c.interval, got, c.want)
			}
		})
	}
}

func TestParseInformInterval(t *testing.T) {
	for in, want := range map[string]time.Duration{"300": 300 * time.Second, " 60 ": time.Minute, "": 0, "-5": 0, "x": 0, "0": 0} {
		if got := ParseInformInterval(in); got != want {
			t.Errorf("ParseInformInterval(%q) = %s, want %s", in, got, want)
		}
	}
}
