package fleet

import (
	"errors"
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

func TestTrimHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pts := func(ages ...time.Duration) []HistorySample {
		var out []HistorySample
		for i, a := range ages {
			out = append(out, HistorySample{Time: t0.Add(-a), Value: string(rune('a' + i))})
		}
		return out
	}
	vals := func(ps []HistorySample) string {
		s := ""
		for _, p := range ps {
			s += p.Value
		}
		return s
	}
	cases := []struct {
		name   string
		in     []HistorySample
		max    int
		maxAge time.Duration
		want   string
	}{
		{"all kept", pts(3*time.Hour, 2*time.Hour, time.Hour), 5, 24 * time.Hour, "abc"},
		{"count", pts(3*time.Hour, 2*time.Hour, time.Hour, 0), 2, 24 * time.Hour, "cd"},
		{"age", pts(50*time.Hour, 30*time.Hour, time.Hour), 5, 24 * time.Hour, "c"},
		{"age then count", pts(50*time.Hour, 3*time.Hour, 2*time.Hour, time.Hour), 2, 24 * time.Hour, "cd"},
		{"on the edge of the age", pts(24*time.Hour, time.Hour), 5, 24 * time.Hour, "ab"},
		{"empty", nil, 5, time.Hour, ""},
	}
	for _, c := range cases {
		if got := vals(TrimHistory(c.in, t0, c.max, c.maxAge)); got != c.want {
			t.Errorf("%s: kept %q, want %q", c.name, got, c.want)
		}
	}
}

func TestAppendHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int, v string) HistorySample {
		return HistorySample{Time: t0.Add(time.Duration(h) * time.Hour), Value: v}
	}
	vals := func(recs []HistoryRecord) string {
		s := ""
		for _, r := range recs {
			s += r.Value
		}
		return s
	}
	var recs []HistoryRecord
	recs = AppendHistory(recs, []HistorySample{at(1, "a"), at(2, "b")}, 3, 24*time.Hour)
	if got := vals(recs); got != "ab" {
		t.Fatalf("first points: %q", got)
	}
	// The same report applied again adds nothing.
	if got := vals(AppendHistory(recs, []HistorySample{at(1, "a"), at(2, "b")}, 3, 24*time.Hour)); got != "ab" {
		t.Fatalf("the same points again: %q, want ab", got)
	}
	// A late point goes in time order; the same time with another value is a point.
	recs = AppendHistory(recs, []HistorySample{at(3, "d"), at(0, "z"), at(2, "c")}, 10, 24*time.Hour)
	if got := vals(recs); got != "zabcd" {
		t.Fatalf("late points: %q, want zabcd", got)
	}
	// Trimmed at the newest point's time: by count, then by age.
	if got := vals(AppendHistory(recs, nil, 2, 24*time.Hour)); got != "cd" {
		t.Fatalf("count: %q, want cd", got)
	}
	if got := vals(AppendHistory(recs, []HistorySample{at(26, "e")}, 10, 24*time.Hour)); got != "bcde" {
		t.Fatalf("age: %q, want bcde (b and c at the cut)", got)
	}
	s, ok := SeriesSince("P", recs, t0.Add(2*time.Hour))
	if !ok || len(s.Points) != 3 || s.Points[0].Value != "b" || s.Path != "P" {
		t.Fatalf("SeriesSince: %+v %v", s, ok)
	}
	if _, ok := SeriesSince("P", recs, t0.Add(4*time.Hour)); ok {
		t.Fatal("SeriesSince past the newest point found points")
	}
}

func TestHistoryMatchAndValidate(t *testing.T) {
	const p = "InternetGatewayDevice.WANDevice.*.WANConnectionDevice.*.WANIPConnection.*.Stats.EthernetBytesSent"
	for path, want := range map[string]bool{
		"InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.2.Stats.EthernetBytesSent":   true,
		"InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.2.Stats":                     false,
		"InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.2.Stats.EthernetBytesSent.X": false,
		"Device.WANDevice.1.WANConnectionDevice.1.WANIPConnection.2.Stats.EthernetBytesSent":                  false,
	} {
		if HistoryMatch(p, path) != want {
			t.Errorf("HistoryMatch(%s) = %v", path, !want)
		}
	}
	if !HistoryMatch("Device.DeviceInfo.UpTime", "Device.DeviceInfo.UpTime") || HistoryMatch("Device.DeviceInfo.UpTime", "Device.DeviceInfo.UpTim") {
		t.Error("exact paths")
	}
	for _, bad := range [][]string{{"Device.DeviceInfo."}, {""}, {"Device.X*.Y"}, {"Device.WiFi.AccessPoint.1.Security.KeyPassphrase"},
		{"Device.A", "Device.A"}, {"Device..A"}} {
		if ValidateHistory(bad) == nil {
			t.Errorf("ValidateHistory(%q) accepted", bad)
		}
	}
	if err := ValidateHistory([]string{p, "Device.DeviceInfo.UpTime"}); err != nil {
		t.Error(err)
	}
}

// TestStateCounts: a count serves until MaxAge, is redone after it, and a
// failed count keeps the last good one.
func TestStateCounts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	calls, fail := 0, false
	c := StateCounts[string]{MaxAge: 15 * time.Second, Count: func(time.Time) (map[string]int, error) {
		calls++
		if fail {
			return nil, errors.New("scan failed")
		}
		return map[string]int{DeviceOnline: calls}, nil
	}}
	steps := []struct {
		at        time.Duration
		fail      bool
		want      int
		wantCalls int
	}{
		{0, false, 1, 1},
		{14 * time.Second, false, 1, 1},
		{15 * time.Second, false, 2, 2},
		{40 * time.Second, true, 2, 3},
		{41 * time.Second, false, 4, 4},
	}
	for i, st := range steps {
		fail = st.fail
		got := c.Get(t0.Add(st.at))[DeviceOnline]
		if got != st.want || calls != st.wantCalls {
			t.Errorf("step %d at %v: count %d after %d calls; want %d after %d", i, st.at, got, calls, st.want, st.wantCalls)
		}
	}
}

// TestStateCountsDuty: a count that took long serves countDuty times as
// long as it took, past MaxAge, and a slow failed count holds off the
// next try as long; a fast one changes nothing.
func TestStateCountsDuty(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	calls, fail := 0, false
	var took time.Duration // how long the next count takes
	var clockAt time.Time
	c := StateCounts[string]{MaxAge: 15 * time.Second, Count: func(time.Time) (map[string]int, error) {
		calls++
		clockAt = clockAt.Add(took)
		if fail {
			return nil, errors.New("scan failed")
		}
		return map[string]int{DeviceOnline: calls}, nil
	}}
	c.clock = func() time.Time { return clockAt }
	steps := []struct {
		at        time.Duration
		took      time.Duration
		fail      bool
		want      int
		wantCalls int
	}{
		{0, 100 * time.Millisecond, false, 1, 1},     // serves max(15 s, 10 s)
		{15 * time.Second, time.Second, false, 2, 2}, // took 1 s: serves 100 s
		{16 * time.Second, 0, false, 2, 2},
		{114 * time.Second, 0, false, 2, 2},
		{115 * time.Second, 500 * time.Millisecond, true, 2, 3}, // failed after 0.5 s: no try for 50 s
		{130 * time.Second, 0, false, 2, 3},
		{164 * time.Second, 0, false, 2, 3},
		{165 * time.Second, 0, false, 4, 4},
		{180 * time.Second, 0, false, 5, 5}, // fast again: MaxAge rules
	}
	for i, st := range steps {
		took, fail = st.took, st.fail
		got := c.Get(t0.Add(st.at))[DeviceOnline]
		if got != st.want || calls != st.wantCalls {
			t.Errorf("step %d at %v: count %d after %d calls; want %d after %d", i, st.at, got, calls, st.want, st.wantCalls)
		}
	}
}
