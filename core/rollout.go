package core

import (
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// Firmware rollouts: the model, the wave planner, the maintenance window
// and the fault-rate rule. The FSM side is rolloutfsm.go, the leader's
// loop rolloutloop.go, the API rolloutapi.go.

// Rollout states.
const (
	RolloutRunning = "running"
	RolloutPaused  = "paused"
	RolloutAborted = "aborted"
	RolloutDone    = "done"
)

// Rollout device states. A device is pending until its download task is
// created, downloading until the task ends, notBack from a successful
// transfer until it is seen on the new version (done), and faulted or
// cancelled when it will not get there in this attempt.
const (
	RDPending     = "pending"
	RDDownloading = "downloading"
	RDNotBack     = "notBack"
	RDDone        = "done"
	RDFaulted     = "faulted"
	RDCancelled   = "cancelled"
)

// Rollout fault codes the core gives (a download's own faults keep the
// CPE's or the edge's code, "9010", "timeout", ...).
const (
	// FaultVersionUnchanged: the transfer succeeded but the device came
	// back (informed again) on another version than the file's.
	FaultVersionUnchanged = "version-unchanged"
	// FaultNotBack: the transfer succeeded but the device was not seen on
	// the new version within the rollout's timeout.
	FaultNotBack = "not-back"
	// FaultRolloutTimeout: the download task did not end within the
	// rollout's timeout (the device never came for it); it is cancelled.
	FaultRolloutTimeout = "rollout-timeout"
	// FaultTaskGone: the download task was cancelled or deleted by
	// someone else, or its device was deleted.
	FaultTaskGone = "task-gone"
)

// Rollout modes: how a device learns of its download.
const (
	RolloutModeWake       = "wake"        // a connection request at once
	RolloutModeNextInform = "next-inform" // whenever it next informs
)

// Defaults and bounds of a rollout spec.
const (
	DefaultRolloutTimeout = 30 * time.Minute
	maxRolloutWaves       = 20
	// maxRolloutDevices bounds one rollout's snapshot of devices: it is
	// one raft entry.
	maxRolloutDevices = 100000
)

// SoftwareVersionParams are where a device reports its firmware version:
// TR-098 and TR-181.
var SoftwareVersionParams = []string{
	"InternetGatewayDevice.DeviceInfo.SoftwareVersion",
	"Device.DeviceInfo.SoftwareVersion",
}

// Rollout is a firmware rollout as the FSM stores it (ro/<name>): the
// spec as accepted, the plan made at creation and where it stands. Every
// change is a command; the leader proposes them (rolloutloop.go).
type Rollout struct {
	Name     string `json:"name" cbor:"1,keyasint"`
	File     string `json:"file" cbor:"2,keyasint"`
	Version  string `json:"version" cbor:"3,keyasint"`
	FileType string `json:"fileType,omitempty" cbor:"4,keyasint,omitempty"`
	Filter   string `json:"filter" cbor:"5,keyasint"`
	// Percents are the waves' cumulative shares of the devices, as asked;
	// WaveSizes the device counts the plan gave each (a wave that got no
	// device is dropped from both).
	Percents     []float64     `json:"percents" cbor:"6,keyasint"`
	WaveSizes    []int         `json:"waveSizes" cbor:"7,keyasint"`
	MaxFaultRate float64       `json:"maxFaultRate" cbor:"8,keyasint"`
	MinWaveSize  int           `json:"minWaveSize" cbor:"9,keyasint"`
	Soak         time.Duration `json:"-" cbor:"10,keyasint"`
	Window       string        `json:"window,omitempty" cbor:"11,keyasint,omitempty"`
	PerEdge      int           `json:"perEdge" cbor:"12,keyasint"`
	Mode         string        `json:"mode" cbor:"13,keyasint"`
	Timeout      time.Duration `json:"-" cbor:"14,keyasint"`
	Created      time.Time     `json:"created" cbor:"15,keyasint"`
	// Skipped counts the devices the filter selected that were already
	// on the target version.
	Skipped int    `json:"skipped" cbor:"16,keyasint"`
	State   string `json:"state" cbor:"17,keyasint"`
	// Reason says why the rollout is paused, aborted or done.
	Reason string `json:"reason,omitempty" cbor:"18,keyasint,omitempty"`
	// Wave is the index of the latest wave started; -1 before the first.
	Wave int `json:"wave" cbor:"19,keyasint"`
	// WaveStarted and WaveFinished (all its devices done, faulted or
	// cancelled) are per wave; zero until then.
	WaveStarted  []time.Time `json:"-" cbor:"20,keyasint"`
	WaveFinished []time.Time `json:"-" cbor:"21,keyasint"`
	// Tolerated is, per wave, the faults an operator's resume accepted:
	// the fault-rate rule counts only faults beyond them.
	Tolerated []int     `json:"-" cbor:"22,keyasint"`
	Updated   time.Time `json:"updated" cbor:"23,keyasint"`
}

// RolloutDevice is one device of a rollout (rd/<rollout>\0<device>); the
// type is fleet's because the API shows it as stored.
type RolloutDevice = fleet.RolloutDevice

// rdTerminal reports whether the device is out of its wave's work: done,
// faulted or cancelled.
func rdTerminal(d *RolloutDevice) bool {
	return d.State == RDDone || d.State == RDFaulted || d.State == RDCancelled
}

// parseRolloutDuration reads a Go duration ("30m", "90s"); empty is def.
func parseRolloutDuration(field, s string, def time.Duration) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %s %q is not a duration such as 30m or 90s", ErrBadRequest, field, s)
	}
	return d, nil
}

// validateRollout checks a request and returns the rollout it describes,
// without devices, file or plan.
func validateRollout(q *fleet.RolloutRequest) (*Rollout, error) {
	if err := checkName("rollout name", q.Name); err != nil {
		return nil, err
	}
	if strings.TrimSpace(q.File) == "" {
		return nil, fmt.Errorf("%w: file: name the firmware file to roll out", ErrBadRequest)
	}
	if strings.TrimSpace(q.Filter) == "" {
		return nil, fmt.Errorf("%w: filter: an expression must select the devices (\"true\" selects all)", ErrBadRequest)
	}
	if len(q.Waves) == 0 {
		q.Waves = []fleet.RolloutWaveSpec{{Percent: 100}}
	}
	if len(q.Waves) > maxRolloutWaves {
		return nil, fmt.Errorf("%w: waves: at most %d", ErrBadRequest, maxRolloutWaves)
	}
	pcts := make([]float64, len(q.Waves))
	for i, w := range q.Waves {
		switch {
		case math.IsNaN(w.Percent) || w.Percent <= 0 || w.Percent > 100:
			return nil, fmt.Errorf("%w: waves[%d].percent %v: must be above 0 and at most 100", ErrBadRequest, i, w.Percent)
		case i > 0 && w.Percent <= pcts[i-1]:
			return nil, fmt.Errorf("%w: waves[%d].percent %v: percents are cumulative and must increase", ErrBadRequest, i, w.Percent)
		}
		pcts[i] = w.Percent
	}
	if pcts[len(pcts)-1] != 100 {
		return nil, fmt.Errorf("%w: waves: the last wave must reach 100 percent, not %v", ErrBadRequest, pcts[len(pcts)-1])
	}
	if math.IsNaN(q.MaxFaultRate) || q.MaxFaultRate < 0 || q.MaxFaultRate > 1 {
		return nil, fmt.Errorf("%w: maxFaultRate %v: must be between 0 and 1 (0.02 is 2%%)", ErrBadRequest, q.MaxFaultRate)
	}
	if q.MinWaveSize < 0 {
		return nil, fmt.Errorf("%w: minWaveSize %d: must not be negative", ErrBadRequest, q.MinWaveSize)
	}
	var perEdge int
	if q.Concurrency != nil {
		perEdge = q.Concurrency.PerEdge
	}
	if perEdge < 0 {
		return nil, fmt.Errorf("%w: concurrency.perEdge %d: must not be negative (0: no cap)", ErrBadRequest, perEdge)
	}
	soak, err := parseRolloutDuration("soak", q.Soak, 0)
	if err != nil {
		return nil, err
	}
	timeout, err := parseRolloutDuration("timeout", q.Timeout, DefaultRolloutTimeout)
	if err != nil {
		return nil, err
	}
	if timeout == 0 {
		return nil, fmt.Errorf("%w: timeout must be above zero", ErrBadRequest)
	}
	if _, err := ParseWindow(q.Window); err != nil {
		return nil, fmt.Errorf("%w: window: %w", ErrBadRequest, err)
	}
	mode := q.Mode
	switch mode {
	case "":
		mode = RolloutModeWake
	case RolloutModeWake, RolloutModeNextInform:
	default:
		return nil, fmt.Errorf("%w: mode %q: want %s or %s", ErrBadRequest, q.Mode, RolloutModeWake, RolloutModeNextInform)
	}
	return &Rollout{
		Name: q.Name, File: q.File, Filter: q.Filter, Percents: pcts, MaxFaultRate: q.MaxFaultRate,
		MinWaveSize: max(q.MinWaveSize, 1), Soak: soak, Window: strings.Join(strings.Fields(q.Window), " "),
		PerEdge: perEdge, Mode: mode, Timeout: timeout, State: RolloutRunning, Wave: -1,
	}, nil
}

// ParseWindow parses a rollout's maintenance window; an empty one is
// always open (nil). Two forms are accepted:
//
//   - "<cron>/<duration>": a cron expression of five fields (minute hour
//     day-of-month month day-of-week) or six (seconds first), whose last
//     field is followed by "/" and a Go duration with a unit: the window
//     opens at each tick (second 0 of the minute, with five fields) and
//     stays open that long. "0 2 * * */4h" is 02:00:00 to 05:59:59 UTC
//     every day; "30 1 * * SAT,SUN/2h30m" weekends
//     from 01:30 for two and a half hours.
//   - a preset schedule in GenieACS's form, "<seconds> <cron>"
//     ("14400 0 2 * * *" is the same window as the first example).
//
// The cron fields are those of preset schedules (preset.ParseSchedule):
// *, numbers, ranges, lists, steps, JAN-DEC and SUN-SAT, times in UTC.
// The duration is whole seconds, at least one, at most 366 days.
func ParseWindow(s string) (*preset.Schedule, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, nil
	}
	last := fields[len(fields)-1]
	if i := strings.LastIndexByte(last, '/'); i > 0 {
		if d, err := time.ParseDuration(last[i+1:]); err == nil && strings.ContainsAny(last[i+1:], "hms") {
			if d < time.Second || d%time.Second != 0 {
				return nil, fmt.Errorf("window %q: the duration %s must be whole seconds, at least 1s", s, last[i+1:])
			}
			cron := append(slices.Clone(fields[:len(fields)-1]), last[:i])
			if len(cron) != 5 && len(cron) != 6 {
				return nil, fmt.Errorf("window %q: the cron expression has %d fields, want 5 (minute hour day month weekday) or 6 (second first), then /<duration>", s, len(cron))
			}
			if len(cron) == 5 {
				// The window opens at the minute's first second, so
				// "0 2 * * */4h" closes at 06:00:00 (a preset schedule's
				// five fields match every second of the minute).
				cron = append([]string{"0"}, cron...)
			}
			return preset.ParseSchedule(strconv.FormatInt(int64(d/time.Second), 10) + " " + strings.Join(cron, " "))
		}
	}
	sch, err := preset.ParseSchedule(s)
	if err != nil {
		return nil, fmt.Errorf("%w (or \"<cron>/<duration>\", e.g. \"0 2 * * */4h\")", err)
	}
	return sch, nil
}

// windowOpen reports whether the rollout may start work at now.
func windowOpen(window string, now time.Time) bool {
	sch, err := ParseWindow(window)
	if err != nil || sch == nil {
		return err == nil
	}
	return sch.InWindow(now)
}

// planWaves splits devices into waves: devices are put in an order that
// depends only on the rollout's name and their IDs (a hash, so a first
// wave spreads over models, edges and serial ranges instead of taking the
// lowest IDs), then wave i takes the devices up to its cumulative percent
// of the total, rounded up, and at least minSize more than the wave
// before (fewer only when the devices run out). Waves that get no device
// are dropped. It returns each device's wave and place, and the sizes and
// percents of the waves kept.
func planWaves(name string, ids []string, percents []float64, minSize int) (wave, order map[string]int, sizes []int, kept []float64) {
	type item struct {
		id string
		h  [32]byte
	}
	items := make([]item, len(ids))
	for i, id := range ids {
		items[i] = item{id: id, h: sha256.Sum256([]byte(name + "\x00" + id))}
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(string(a.h[:]), string(b.h[:])); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	n := len(items)
	wave, order = make(map[string]int, n), make(map[string]int, n)
	prev := 0
	for _, p := range percents {
		end := int(math.Ceil(float64(n)*p/100 - 1e-9))
		end = min(max(end, prev+max(minSize, 1)), n)
		if end <= prev {
			continue
		}
		for i := prev; i < end; i++ {
			wave[items[i].id], order[items[i].id] = len(sizes), i
		}
		sizes, kept = append(sizes, end-prev), append(kept, p)
		prev = end
	}
	return wave, order, sizes, kept
}

// faultRateExceeded is the pause rule: a wave pauses its rollout when its
// faults beyond those an operator accepted (tolerated) exceed maxRate of
// its size. Equal to the rate is still allowed.
func faultRateExceeded(faulted, tolerated, size int, maxRate float64) bool {
	if size <= 0 {
		return false
	}
	return float64(faulted-tolerated)/float64(size) > maxRate+1e-12
}
