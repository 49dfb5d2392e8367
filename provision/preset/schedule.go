package preset

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// MaxScheduleDuration bounds a schedule's window. Checking a window looks
// back at most this far, one calendar day at a time.
const MaxScheduleDuration = 366 * 24 * time.Hour

// Schedule is a preset's time window in GenieACS's form: a duration in
// seconds, then a cron expression, e.g. "3600 0 2 * * *" (from 02:00 for an
// hour, daily). The cron part has five fields (minute hour day-of-month
// month day-of-week) or six (a seconds field first). With five, every
// second of a matching minute matches (GenieACS prepends "*"), so
// "3600 0 2 * * *" is open from 02:00:00 until 03:00:59. Fields take *, ?,
// numbers, ranges a-b, lists, steps */n, a/n and a-b/n, and the names
// JAN-DEC and SUN-SAT; day-of-week is 0-6 with 0 = Sunday. As in later.js,
// which GenieACS uses, a day must match both day-of-month and day-of-week
// when both are restricted (Vixie cron would take either). Times are UTC.
type Schedule struct {
	// Duration is how long the window stays open after each cron tick.
	Duration time.Duration
	text     string

	sec, min uint64 // bit i: second/minute i
	hour     uint32
	dom      uint32 // bit d: day of month d (1-31)
	month    uint16 // bit m: month m (1-12)
	dow      uint8  // bit d: weekday d (0 = Sunday)
}

type cronField struct {
	name   string
	lo, hi int
	names  map[string]int
}

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
		"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

	fieldSec   = cronField{name: "second", lo: 0, hi: 59}
	fieldMin   = cronField{name: "minute", lo: 0, hi: 59}
	fieldHour  = cronField{name: "hour", lo: 0, hi: 23}
	fieldDom   = cronField{name: "day of month", lo: 1, hi: 31}
	fieldMonth = cronField{name: "month", lo: 1, hi: 12, names: monthNames}
	fieldDow   = cronField{name: "day of week", lo: 0, hi: 6, names: dayNames}
)

const scheduleForm = `GenieACS's form is "<seconds> <cron>", e.g. "3600 0 2 * * *"`

// ParseSchedule parses a schedule; errors wrap ErrInvalid.
func ParseSchedule(s string) (*Schedule, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty schedule (%s)", ErrInvalid, scheduleForm)
	}
	secs, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil || secs == 0 {
		hint := ""
		if _, err := strconv.ParseUint(fields[len(fields)-1], 10, 32); err == nil && len(fields) > 1 {
			hint = "; the duration comes first"
		} else if len(fields) == 5 || len(fields) == 6 {
			hint = "; this looks like a cron expression without the duration"
		}
		return nil, fmt.Errorf("%w: schedule duration %q must be a positive whole number of seconds (%s%s)",
			ErrInvalid, clip(fields[0]), scheduleForm, hint)
	}
	d := time.Duration(secs) * time.Second
	if d > MaxScheduleDuration {
		return nil, fmt.Errorf("%w: schedule duration %ds is longer than %d days", ErrInvalid, secs, MaxScheduleDuration/(24*time.Hour))
	}
	cron := fields[1:]
	if len(cron) != 5 && len(cron) != 6 {
		return nil, fmt.Errorf("%w: schedule %q: the cron expression has %d fields, want 5 (minute hour day month weekday) or 6 (second first) (%s)",
			ErrInvalid, clip(s), len(cron), scheduleForm)
	}
	sch := &Schedule{Duration: d, text: strings.Join(fields, " ")}
	if err := sch.parseCron(cron); err != nil {
		return nil, fmt.Errorf("%w: schedule %q: %v", ErrInvalid, clip(s), err)
	}
	return sch, nil
}

// ParseCron parses a bare cron expression of five or six fields, as in a
// schedule, for a provision script's Date.now(cron): the Schedule's
// Duration is zero, and Prev gives its ticks. Errors wrap ErrInvalid.
func ParseCron(s string) (*Schedule, error) {
	fields := strings.Fields(s)
	if len(fields) != 5 && len(fields) != 6 {
		return nil, fmt.Errorf("%w: cron expression %q has %d fields, want 5 (minute hour day month weekday) or 6 (second first)",
			ErrInvalid, clip(s), len(fields))
	}
	sch := &Schedule{text: strings.Join(fields, " ")}
	if err := sch.parseCron(fields); err != nil {
		return nil, fmt.Errorf("%w: cron expression %q: %v", ErrInvalid, clip(s), err)
	}
	return sch, nil
}

// parseCron sets the schedule's fields from five or six cron fields.
func (sch *Schedule) parseCron(cron []string) error {
	if len(cron) == 5 {
		cron = append([]string{"*"}, cron...)
	}
	var sets [6]uint64
	for i, f := range []cronField{fieldSec, fieldMin, fieldHour, fieldDom, fieldMonth, fieldDow} {
		set, err := parseCronField(cron[i], f)
		if err != nil {
			return err
		}
		sets[i] = set
	}
	sch.sec, sch.min, sch.hour = sets[0], sets[1], uint32(sets[2])
	sch.dom, sch.month, sch.dow = uint32(sets[3]), uint16(sets[4]), uint8(sets[5])
	if !sch.possible() {
		return errors.New("never matches: no month it names has those days")
	}
	return nil
}

// Prev returns the latest cron tick at or before t, whole seconds, UTC,
// looking back at most MaxScheduleDuration; false if there is none.
func (s *Schedule) Prev(t time.Time) (time.Time, bool) {
	t = t.UTC()
	return s.lastTick(t, t.Add(-MaxScheduleDuration))
}

// parseCronField returns the set of values a field matches as a bitset.
func parseCronField(text string, f cronField) (uint64, error) {
	if text == "*" || text == "?" {
		return bitRange(f.lo, f.hi, 1), nil
	}
	var set uint64
	for item := range strings.SplitSeq(text, ",") {
		lo, hi, step := f.lo, f.hi, 1
		rng, stepped := item, false
		if i := strings.IndexByte(item, '/'); i >= 0 {
			stepped = true
			n, err := strconv.Atoi(item[i+1:])
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("%s field %q: step must be a positive number", f.name, clip(item))
			}
			step = n
			rng = item[:i]
		}
		switch {
		case rng == "*" || rng == "?":
		case strings.IndexByte(rng, '-') > 0:
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("%s field %q: range runs backwards", f.name, clip(item))
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, err
			}
			lo = v
			if !stepped {
				hi = v // a single value; "a/n" runs from a to the end
			}
		}
		set |= bitRange(lo, hi, step)
	}
	return set, nil
}

func (f cronField) value(s string) (int, error) {
	if v, ok := f.names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		what := "a number"
		if f.names != nil {
			what = "a number or a name"
		}
		if strings.ContainsAny(s, "LW#") {
			return 0, fmt.Errorf("%s field: %q: L, W and # are not supported", f.name, clip(s))
		}
		return 0, fmt.Errorf("%s field: %q is not %s", f.name, clip(s), what)
	}
	if v < f.lo || v > f.hi {
		extra := ""
		if f.name == fieldDow.name && v == 7 {
			extra = "; Sunday is 0"
		}
		return 0, fmt.Errorf("%s field: %d is out of range %d-%d%s", f.name, v, f.lo, f.hi, extra)
	}
	return v, nil
}

func bitRange(lo, hi, step int) uint64 {
	var set uint64
	for v := lo; v <= hi; v += step {
		set |= 1 << v
	}
	return set
}

// daysIn is the most days each month can have (February: 29).
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// possible reports whether some month the schedule names has one of its
// days of the month; weekdays always line up eventually.
func (s *Schedule) possible() bool {
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) != 0 && s.dom&(1<<(daysIn[m]+1)-1) != 0 {
			return true
		}
	}
	return false
}

// String returns the schedule as written, its fields separated by single
// spaces.
func (s *Schedule) String() string { return s.text }

// InWindow reports whether t lies in a window: some cron tick τ ≤ t has
// τ + Duration > t (GenieACS's test).
func (s *Schedule) InWindow(t time.Time) bool {
	_, ok := s.lastTick(t.UTC(), t.UTC().Add(-s.Duration))
	return ok
}

// lastTick returns the latest matching second τ with after < τ ≤ t.
func (s *Schedule) lastTick(t, after time.Time) (time.Time, bool) {
	t = t.Truncate(time.Second)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for first := true; day.Add(24 * time.Hour).After(after); day, first = day.AddDate(0, 0, -1), false {
		if !s.dayMatches(day) {
			continue
		}
		hMax := 23
		if first {
			hMax = t.Hour()
		}
		for h := hMax; h >= 0; h-- {
			if s.hour&(1<<h) == 0 {
				continue
			}
			mMax := 59
			if first && h == t.Hour() {
				mMax = t.Minute()
			}
			for m := mMax; m >= 0; m-- {
				if s.min&(1<<m) == 0 {
					continue
				}
				sMax := 59
				if first && h == t.Hour() && m == t.Minute() {
					sMax = t.Second()
				}
				if x := s.sec & (1<<(sMax+1) - 1); x != 0 {
					sec := 63 - bits.LeadingZeros64(x)
					tick := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second)
					// The latest tick: if it is too old, every other is.
					return tick, tick.After(after)
				}
			}
		}
	}
	return time.Time{}, false
}

func (s *Schedule) dayMatches(day time.Time) bool {
	return s.month&(1<<int(day.Month())) != 0 && s.dom&(1<<day.Day()) != 0 && s.dow&(1<<int(day.Weekday())) != 0
}
