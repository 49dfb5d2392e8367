package fleet

import "time"

// Firmware rollouts as the core's API reads and shows them
// (/api/v1/rollouts; core/openapi.json has the schemas of the same names).
// The core answers with these types and the client decodes into them, so
// the two cannot drift; only RolloutDevice is also the core's stored
// record.

// RolloutRequest is the body of POST /api/v1/rollouts. The core fills in
// the defaults of what is left out (one wave of 100%, minWaveSize 1,
// timeout 30m, mode wake), so a client may omit them.
type RolloutRequest struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Filter string `json:"filter"`
	// Waves are cumulative percents, increasing, the last 100.
	Waves        []RolloutWaveSpec `json:"waves,omitempty"`
	MaxFaultRate float64           `json:"maxFaultRate"`
	MinWaveSize  int               `json:"minWaveSize,omitempty"`
	Soak         string            `json:"soak,omitempty"`
	Window       string            `json:"window,omitempty"`
	// Concurrency is a pointer so that a client that sets no cap sends no
	// object; nil and a zero PerEdge both mean no cap.
	Concurrency *RolloutConcurrency `json:"concurrency,omitempty"`
	Mode        string              `json:"mode,omitempty"`
	// Timeout bounds each device's attempt, from its task's creation to
	// being seen on the new version; default 30m.
	Timeout string `json:"timeout,omitempty"`
}

// RolloutWaveSpec is one wave of a request: the cumulative share of the
// devices it brings the rollout to.
type RolloutWaveSpec struct {
	Percent float64 `json:"percent"`
}

// RolloutConcurrency caps how many devices download at once.
type RolloutConcurrency struct {
	// PerEdge caps the devices of one edge downloading at once (0: no cap),
	// so a POP's uplink is not flooded.
	PerEdge int `json:"perEdge"`
}

// RolloutCounts counts a rollout's devices (or a wave's, or an edge's) by
// state.
type RolloutCounts struct {
	Total       int `json:"total"`
	Pending     int `json:"pending"`
	Downloading int `json:"downloading"`
	NotBack     int `json:"notBack"`
	Done        int `json:"done"`
	Faulted     int `json:"faulted"`
	Cancelled   int `json:"cancelled"`
}

// RolloutWaveView is one wave in a rollout's status.
type RolloutWaveView struct {
	// Wave counts from 1.
	Wave    int     `json:"wave"`
	Percent float64 `json:"percent"`
	// State is waiting, running, soaking (finished, the soak not over) or
	// finished.
	State    string    `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// FaultRate is faulted / total, the share the pause rule compares
	// with maxFaultRate (less the faults a resume accepted: Tolerated).
	FaultRate float64 `json:"faultRate"`
	Tolerated int     `json:"tolerated,omitempty"`
	RolloutCounts
}

// RolloutView is a rollout as the API shows it.
type RolloutView struct {
	Name         string    `json:"name"`
	File         string    `json:"file"`
	Version      string    `json:"version"`
	Filter       string    `json:"filter"`
	State        string    `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	Mode         string    `json:"mode"`
	Window       string    `json:"window,omitempty"`
	Soak         string    `json:"soak"`
	Timeout      string    `json:"timeout"`
	MaxFaultRate float64   `json:"maxFaultRate"`
	MinWaveSize  int       `json:"minWaveSize"`
	PerEdge      int       `json:"perEdge"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	// Wave is the latest wave started, from 1; 0 before the first.
	Wave int `json:"wave"`
	// Skipped counts the devices the filter selected that were already on
	// the version.
	Skipped int `json:"skipped"`
	RolloutCounts
	Waves []RolloutWaveView `json:"waves"`
	// Edges counts devices by the edge they were dispatched to (or were
	// homed at when planned); "" for devices with no home.
	Edges map[string]RolloutCounts `json:"edges"`
	// Faults counts faulted devices by fault code.
	Faults map[string]int `json:"faults"`
	// Devices lists the devices by state (only for a single rollout).
	Devices map[string][]*RolloutDevice `json:"devices,omitempty"`
}

// Finished reports whether the rollout will not change by itself any
// more: done or aborted.
func (r RolloutView) Finished() bool { return r.State == "done" || r.State == "aborted" }

// RolloutDevice is one device of a rollout: the core stores it as is
// (rd/<rollout>\0<device>, CBOR) and the API lists it in a rollout's
// Devices (JSON), so the two encodings are both part of its contract.
type RolloutDevice struct {
	Device string `json:"device" cbor:"1,keyasint"`
	Wave   int    `json:"wave" cbor:"2,keyasint"`
	// Order is the device's place in the plan: waves are cut from it and
	// devices are dispatched in it. The core's business, not shown.
	Order int `json:"-" cbor:"3,keyasint"`
	// Edge is the device's home when it was dispatched (or planned).
	Edge  string `json:"edge,omitempty" cbor:"4,keyasint,omitempty"`
	State string `json:"state" cbor:"5,keyasint"`
	// From is the version the device was on when the rollout was created.
	From     string `json:"from,omitempty" cbor:"6,keyasint,omitempty"`
	Task     string `json:"task,omitempty" cbor:"7,keyasint,omitempty"`
	Attempts int    `json:"attempts,omitempty" cbor:"8,keyasint,omitempty"`
	// Dispatched is when the current task was created; Transferred when
	// it ended without a fault.
	Dispatched  time.Time `json:"dispatched,omitzero" cbor:"9,keyasint,omitzero"`
	Transferred time.Time `json:"transferred,omitzero" cbor:"10,keyasint,omitzero"`
	Fault       string    `json:"fault,omitempty" cbor:"11,keyasint,omitempty"`
	Message     string    `json:"message,omitempty" cbor:"12,keyasint,omitempty"`
	Updated     time.Time `json:"updated,omitzero" cbor:"13,keyasint,omitzero"`
}
