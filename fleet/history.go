package fleet

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Parameter history. A preset's History names parameters whose values an
// edge keeps a bounded series of, per device: each value that arrives
// changed (an Inform, a task's or a preset's read or write) is a point,
// stored at the edge and sent to the core on the same DeviceDelta, which
// keeps the same series. A series keeps its newest HistoryPoints points no
// older than HistoryMaxAge. The names are exact parameter paths, or
// patterns with "*" standing for one path segment (an instance number):
// "InternetGatewayDevice.WANDevice.*.WANConnectionDevice.*.WANIPConnection.*.Stats.EthernetBytesSent".
// A preset's precondition and events do not limit what it records: a
// device that has the parameter gets its history.

// History retention, per device and parameter: a day of 5-minute informs,
// and a week at most.
const (
	HistoryPoints = 288
	HistoryMaxAge = 7 * 24 * time.Hour
	// maxHistoryPaths bounds one preset's history list.
	maxHistoryPaths = 32
)

// HistoryPoint is one recorded value of a parameter.
type HistoryPoint struct {
	_     struct{} `cbor:",toarray"`
	Path  string
	Time  time.Time
	Value string
}

// HistorySample is a point as the APIs show it, in a series.
type HistorySample struct {
	Time  time.Time `json:"time"`
	Value string    `json:"value"`
}

// HistorySeries is one parameter's recorded values, oldest first, as GET
// /api/v1/devices/{id}/history answers them.
type HistorySeries struct {
	Path   string          `json:"path"`
	Points []HistorySample `json:"points"`
}

// HistoryMatch reports whether path is named by pattern (exact, or "*"
// for any one segment).
func HistoryMatch(pattern, path string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == path
	}
	for {
		ps, prest, pmore := strings.Cut(pattern, ".")
		s, rest, more := strings.Cut(path, ".")
		if (ps != "*" && ps != s) || pmore != more {
			return false
		}
		if !more {
			return true
		}
		pattern, path = prest, rest
	}
}

// ValidateHistory checks a preset's history list: parameter paths (not
// objects), "*" only as a whole segment, no secrets (a history of
// passwords would be a leak no API could hide), at most 32.
func ValidateHistory(paths []string) error {
	if len(paths) > maxHistoryPaths {
		return fmt.Errorf("history: at most %d paths, got %d", maxHistoryPaths, len(paths))
	}
	for i, p := range paths {
		switch {
		case p == "" || len(p) > maxPathLen:
			return fmt.Errorf("history: path %d is empty or longer than %d", i, maxPathLen)
		case strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".") || strings.Contains(p, ".."):
			return fmt.Errorf("history: %q must name a parameter, not an object", p)
		case strings.ContainsAny(p, " \t\r\n<>&\"'[]/"):
			return fmt.Errorf("history: invalid character in %q", p)
		case IsSecretParameter(p):
			return fmt.Errorf("history: %q is a secret parameter", p)
		case slices.Contains(paths[:i], p):
			return fmt.Errorf("history: %q listed twice", p)
		}
		for seg := range strings.SplitSeq(p, ".") {
			if strings.Contains(seg, "*") && seg != "*" {
				return fmt.Errorf("history: in %q, \"*\" must stand for a whole segment", p)
			}
		}
	}
	return nil
}

// TrimHistory keeps the points of a series (oldest first) that retention
// allows at now: no older than maxAge, at most max, the newest.
func TrimHistory(pts []HistorySample, now time.Time, max int, maxAge time.Duration) []HistorySample {
	cut := now.Add(-maxAge)
	i := 0
	for i < len(pts) && pts[i].Time.Before(cut) {
		i++
	}
	if len(pts)-i > max {
		i = len(pts) - max
	}
	return pts[i:]
}

// HistoryRecord is a stored point of a series, as the edge and the core
// keep it (a CBOR array: unix nanoseconds, value).
type HistoryRecord struct {
	_     struct{} `cbor:",toarray"`
	At    int64
	Value string
}

// AppendHistory adds pts to a stored series (oldest first) and trims it
// with TrimHistory at its newest point's time, so that every node that
// applies the same points keeps the same series. The result is in time
// order whatever order the points come in, and a point the series already
// holds (same time, same value: the same report applied again) is not
// added twice.
func AppendHistory(recs []HistoryRecord, pts []HistorySample, max int, maxAge time.Duration) []HistoryRecord {
	series := make([]HistorySample, 0, len(recs)+len(pts))
	for _, r := range recs {
		series = append(series, HistorySample{Time: time.Unix(0, r.At), Value: r.Value})
	}
	for _, p := range pts {
		dup := slices.ContainsFunc(series, func(s HistorySample) bool {
			return s.Time.Equal(p.Time) && s.Value == p.Value
		})
		if !dup {
			series = append(series, p)
		}
	}
	slices.SortStableFunc(series, func(a, b HistorySample) int { return a.Time.Compare(b.Time) })
	if len(series) == 0 {
		return recs[:0]
	}
	series = TrimHistory(series, series[len(series)-1].Time, max, maxAge)
	out := make([]HistoryRecord, len(series))
	for i, s := range series {
		out[i] = HistoryRecord{At: s.Time.UnixNano(), Value: s.Value}
	}
	return out
}

// SeriesSince is path's series as the APIs show it: the stored points no
// older than cut, in UTC. ok is false when none is left.
func SeriesSince(path string, recs []HistoryRecord, cut time.Time) (s HistorySeries, ok bool) {
	s = HistorySeries{Path: path, Points: []HistorySample{}}
	for _, r := range recs {
		if t := time.Unix(0, r.At).UTC(); !t.Before(cut) {
			s.Points = append(s.Points, HistorySample{Time: t, Value: r.Value})
		}
	}
	return s, len(s.Points) > 0
}
