package preset

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduleWindows(t *testing.T) {
	for _, tc := range []struct {
		sched string
		in    []string
		out   []string
	}{
		// Five fields: every second of 02:00 is a tick (GenieACS prepends
		// "*"), so an hour's window closes at 03:00:59.
		{"3600 0 2 * * *",
			[]string{"2024-06-01T02:00:00Z", "2024-06-01T02:30:00Z", "2024-06-01T03:00:30Z", "2024-06-01T03:00:58.999Z"},
			[]string{"2024-06-01T01:59:59.999Z", "2024-06-01T03:00:59Z", "2024-06-01T12:00:00Z"}},
		// Six fields: one tick at 02:00:00, a window of exactly an hour.
		{"3600 0 0 2 * * *",
			[]string{"2024-06-01T02:00:00Z", "2024-06-01T02:59:59.999Z"},
			[]string{"2024-06-01T03:00:00Z", "2024-06-01T01:59:59Z"}},
		// Across midnight.
		{"7200 0 0 23 * * *",
			[]string{"2024-06-01T23:00:00Z", "2024-06-02T00:30:00Z", "2024-06-02T00:59:59Z"},
			[]string{"2024-06-02T01:00:00Z", "2024-06-01T22:59:59Z"}},
		// Across a month and a year end.
		{"7200 0 0 23 31 12 *",
			[]string{"2024-12-31T23:30:00Z", "2025-01-01T00:59:59Z"},
			[]string{"2025-01-01T01:00:00Z", "2024-11-30T23:30:00Z"}},
		// Steps.
		{"60 0 */15 * * * *",
			[]string{"2024-06-01T10:00:00Z", "2024-06-01T10:15:30Z", "2024-06-01T10:45:59Z"},
			[]string{"2024-06-01T10:16:00Z", "2024-06-01T10:14:59Z"}},
		{"60 0 5/20 * * * *",
			[]string{"2024-06-01T10:05:00Z", "2024-06-01T10:25:00Z", "2024-06-01T10:45:00Z"},
			[]string{"2024-06-01T10:00:00Z", "2024-06-01T10:15:00Z"}},
		{"1 0 10-20/5 * * * *",
			[]string{"2024-06-01T10:10:00Z", "2024-06-01T10:15:00Z", "2024-06-01T10:20:00Z"},
			[]string{"2024-06-01T10:25:00Z", "2024-06-01T10:05:00Z", "2024-06-01T10:11:00Z"}},
		// Lists and ranges of hours, names of months, lower case.
		{"3600 0 0 1,13-14 * jan,Jul *",
			[]string{"2024-01-05T01:30:00Z", "2024-07-09T14:59:00Z"},
			[]string{"2024-06-05T01:30:00Z", "2024-01-05T03:00:00Z", "2024-07-09T15:00:00Z"}},
		// Weekdays: Monday all day.
		{"86400 0 0 0 * * MON",
			[]string{"2024-06-03T00:00:00Z", "2024-06-03T23:59:59Z"},
			[]string{"2024-06-02T23:59:59Z", "2024-06-04T00:00:00Z"}},
		// Day of month AND day of week (later.js): 1 July 2024 is a Monday,
		// 1 June a Saturday, 3 June a Monday.
		{"86400 0 0 0 1 * 1",
			[]string{"2024-07-01T10:00:00Z"},
			[]string{"2024-06-01T10:00:00Z", "2024-06-03T10:00:00Z"}},
		// ? is *; Sunday is 0.
		{"3600 0 0 12 ? * 0",
			[]string{"2024-06-02T12:30:00Z"},
			[]string{"2024-06-03T12:30:00Z"}},
		// A window as long as the period is always open.
		{"604800 0 0 0 * * SUN",
			[]string{"2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z", "2024-06-08T23:59:59Z"},
			nil},
		// Leap day: the window looks back far enough to find it.
		{"31622400 0 0 0 29 2 *",
			[]string{"2024-02-29T00:00:00Z", "2025-02-28T12:00:00Z"},
			[]string{"2024-02-28T23:59:59Z", "2025-03-01T00:00:00Z"}},
		// Every second.
		{"1 * * * * * *", []string{"2024-06-01T10:00:00.5Z"}, nil},
	} {
		s, err := ParseSchedule(tc.sched)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tc.sched, err)
			continue
		}
		for _, ts := range tc.in {
			if !s.InWindow(at(ts)) {
				t.Errorf("%q: %s should be in the window", tc.sched, ts)
			}
		}
		for _, ts := range tc.out {
			if s.InWindow(at(ts)) {
				t.Errorf("%q: %s should be outside the window", tc.sched, ts)
			}
		}
	}
}

func TestScheduleUTC(t *testing.T) {
	s, err := ParseSchedule("3600 0 0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	// 04:30 at UTC+2 is 02:30 UTC.
	if !s.InWindow(time.Date(2024, 6, 1, 4, 30, 0, 0, time.FixedZone("CEST", 2*3600))) {
		t.Fatal("not evaluated in UTC")
	}
	if s.String() != "3600 0 0 2 * * *" || s.Duration != time.Hour {
		t.Fatal(s.String(), s.Duration)
	}
	if s, _ := ParseSchedule("  60\t0  2 * * *  "); s.String() != "60 0 2 * * *" {
		t.Fatal(s.String())
	}
}

func TestScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty schedule"},
		{"abc 0 2 * * *", `duration "abc" must be a positive whole number of seconds`},
		{"0 0 2 * * *", `duration "0" must be`},
		{"-5 0 2 * * *", `duration "-5"`},
		{"1.5 0 2 * * *", `duration "1.5"`},
		{"0 2 * * * 3600", "the duration comes first"},
		{"99999999 0 2 * * *", "longer than 366 days"},
		{"3600 0 2 * *", "has 4 fields, want 5"},
		{"3600 0 0 2 * * * *", "has 7 fields"},
		{"3600 60 * * * *", "minute field: 60 is out of range 0-59"},
		{"3600 * 24 * * *", "hour field: 24 is out of range 0-23"},
		{"3600 * * 0 * *", "day of month field: 0 is out of range 1-31"},
		{"3600 * * * 13 *", "month field: 13 is out of range 1-12"},
		{"3600 * * * * 7", "day of week field: 7 is out of range 0-6; Sunday is 0"},
		{"3600 60 * * * * *", "second field: 60 is out of range"},
		{"3600 5-1 * * * *", `minute field "5-1": range runs backwards`},
		{"3600 */0 * * * *", "step must be a positive number"},
		{"3600 */x * * * *", "step must be a positive number"},
		{"3600 1,,2 * * * *", `minute field: "" is not a number`},
		{"3600 * * L * *", "L, W and # are not supported"},
		{"3600 * * * * 5#3", "L, W and # are not supported"},
		{"3600 * * * FOO *", `month field: "FOO" is not a number or a name`},
		{"3600 * * * * +1", `"+1" is not a number`},
		{"3600 0 0 30 2 *", "never matches"},
		{"3600 0 0 31 4,6 *", "never matches"},
	} {
		_, err := ParseSchedule(tc.in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSchedule(%q) = %v, want ErrInvalid containing %q", tc.in, err, tc.msg)
		}
	}
}
