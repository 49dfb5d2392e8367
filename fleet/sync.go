package fleet

import (
	"fmt"
	"time"
)

// SeqRecord is one record of an edge's uplink outbox: a fleet record
// (Marshal's bytes: *DeviceDelta, *Task or *TaskDrop) under the sequence
// number the edge gave it. Sequences a reader sees only grow, across
// restarts; the core applies each (edge, sequence) at most once.
type SeqRecord struct {
	Seq  uint64 `cbor:"1,keyasint"`
	Data []byte `cbor:"2,keyasint"`
}

// TaskDrop is an edge's answer to DownDrop: the task was still pending
// there and the edge deleted it unexecuted, so the core may hand it to the
// device's new home edge.
type TaskDrop struct {
	Task   string `cbor:"1,keyasint"`
	Device string `cbor:"2,keyasint"`
	Edge   string `cbor:"3,keyasint"`
}

// DownKind says what a DownRecord asks of an edge. Values are part of the
// wire and storage format: never reuse one.
type DownKind uint8

// Downlink record kinds.
const (
	// DownTask: store Task and run it in the device's next session (Wake:
	// send a connection request as soon as it is stored).
	DownTask DownKind = 1
	// DownCancel: the operator deleted task TaskID; delete it unless it is
	// already running or final.
	DownCancel DownKind = 2
	// DownDrop: device Device moved to another edge; delete task TaskID if
	// it never started and confirm with a TaskDrop record on the uplink.
	// A task that started or ended reports its result instead.
	DownDrop DownKind = 3
	// DownPreset / DownPresetDelete: a fleet-wide preset changed.
	DownPreset       DownKind = 4
	DownPresetDelete DownKind = 5
	// DownFile / DownFileDelete: a fleet-wide file's metadata changed.
	DownFile       DownKind = 6
	DownFileDelete DownKind = 7
	// DownRevoke: the edge named Name was revoked (fleet-wide).
	DownRevoke DownKind = 8
	// DownToken / DownTokenRevoke: an API token was created (Token, which
	// holds only the secret's hash) or revoked (Name), fleet-wide, so an
	// edge's local API accepts the fleet's tokens with the backhaul down.
	DownToken       DownKind = 9
	DownTokenRevoke DownKind = 10
	// DownProvision / DownProvisionDelete: a fleet-wide provision script
	// was stored (Provision) or deleted (Name).
	DownProvision       DownKind = 11
	DownProvisionDelete DownKind = 12
	// DownFaultClear: a preset channel's fault was deleted at the core
	// (Fault: the device, the channel and the fault's time); the edge
	// that recorded it deletes it, unless it has a newer one.
	DownFaultClear DownKind = 13
	// DownVirtualParameter / DownVirtualParameterDelete: a fleet-wide
	// virtual parameter script was stored (VirtualParameter) or deleted
	// (Name).
	DownVirtualParameter       DownKind = 14
	DownVirtualParameterDelete DownKind = 15
)

// String names the kind for logs.
func (k DownKind) String() string {
	switch k {
	case DownTask:
		return "task"
	case DownCancel:
		return "cancel"
	case DownDrop:
		return "drop"
	case DownPreset:
		return "preset"
	case DownPresetDelete:
		return "preset-delete"
	case DownFile:
		return "file"
	case DownFileDelete:
		return "file-delete"
	case DownRevoke:
		return "revoke"
	case DownToken:
		return "token"
	case DownTokenRevoke:
		return "token-revoke"
	case DownProvision:
		return "provision"
	case DownProvisionDelete:
		return "provision-delete"
	case DownFaultClear:
		return "fault-clear"
	case DownVirtualParameter:
		return "virtual-parameter"
	case DownVirtualParameterDelete:
		return "virtual-parameter-delete"
	}
	return fmt.Sprintf("DownKind(%d)", uint8(k))
}

// DownRecord is one record of the downlink (core → edge). The core keeps
// one log per edge (tasks, cancellations, drops: Shared false) and one
// fleet-wide log (presets, provisions, virtual parameters, files,
// revocations: Shared true), each with its
// own sequence; an edge stores a record, and the position it reached, in
// one transaction before it acknowledges it, and storing the same record
// twice changes nothing.
type DownRecord struct {
	Seq    uint64    `cbor:"1,keyasint"`
	Shared bool      `cbor:"2,keyasint,omitempty"`
	Kind   DownKind  `cbor:"3,keyasint"`
	Task   *Task     `cbor:"4,keyasint,omitempty"`
	TaskID string    `cbor:"5,keyasint,omitempty"`
	Device string    `cbor:"6,keyasint,omitempty"`
	Wake   bool      `cbor:"7,keyasint,omitempty"`
	Preset *Preset   `cbor:"8,keyasint,omitempty"`
	File   *FileMeta `cbor:"9,keyasint,omitempty"`
	Name   string    `cbor:"10,keyasint,omitempty"`
	// Time is when the core committed the record.
	Time  time.Time `cbor:"11,keyasint,omitzero"`
	Token *Token    `cbor:"12,keyasint,omitempty"`
	// Provision is the script a DownProvision record stores.
	Provision *Provision `cbor:"13,keyasint,omitempty"`
	// Fault is the channel fault a DownFaultClear record clears.
	Fault *ChannelFault `cbor:"14,keyasint,omitempty"`
	// VirtualParameter is the script a DownVirtualParameter record stores.
	VirtualParameter *VirtualParameter `cbor:"15,keyasint,omitempty"`
}

// Validate checks that a record carries what its kind needs, so an edge
// never stores half a record.
func (r *DownRecord) Validate() error {
	if r.Seq == 0 {
		return fmt.Errorf("%w: downlink record without a sequence", ErrBadRecord)
	}
	switch r.Kind {
	case DownTask:
		if r.Task == nil {
			return fmt.Errorf("%w: downlink task record %d without a task", ErrBadRecord, r.Seq)
		}
		if err := r.Task.Validate(); err != nil {
			return fmt.Errorf("%w: downlink task record %d: %v", ErrBadRecord, r.Seq, err)
		}
	case DownCancel, DownDrop:
		if r.TaskID == "" {
			return fmt.Errorf("%w: downlink %s record %d without a task ID", ErrBadRecord, r.Kind, r.Seq)
		}
	case DownPreset:
		if r.Preset == nil || r.Preset.Name == "" {
			return fmt.Errorf("%w: downlink preset record %d without a preset", ErrBadRecord, r.Seq)
		}
	case DownFile:
		if r.File == nil || !ValidFileName(r.File.Name) {
			return fmt.Errorf("%w: downlink file record %d without valid metadata", ErrBadRecord, r.Seq)
		}
	case DownToken:
		if r.Token == nil {
			return fmt.Errorf("%w: downlink token record %d without a token", ErrBadRecord, r.Seq)
		}
		if err := r.Token.Validate(); err != nil {
			return fmt.Errorf("%w: downlink token record %d: %v", ErrBadRecord, r.Seq, err)
		}
	case DownProvision:
		if r.Provision == nil {
			return fmt.Errorf("%w: downlink provision record %d without a provision", ErrBadRecord, r.Seq)
		}
		if err := r.Provision.Validate(); err != nil {
			return fmt.Errorf("%w: downlink provision record %d: %v", ErrBadRecord, r.Seq, err)
		}
	case DownProvisionDelete:
		if !ValidProvisionName(r.Name) {
			return fmt.Errorf("%w: downlink provision-delete record %d: bad name %q", ErrBadRecord, r.Seq, r.Name)
		}
	case DownVirtualParameter:
		if r.VirtualParameter == nil {
			return fmt.Errorf("%w: downlink virtual-parameter record %d without one", ErrBadRecord, r.Seq)
		}
		if err := r.VirtualParameter.Validate(); err != nil {
			return fmt.Errorf("%w: downlink virtual-parameter record %d: %v", ErrBadRecord, r.Seq, err)
		}
	case DownVirtualParameterDelete:
		if !ValidVirtualParameterName(r.Name) {
			return fmt.Errorf("%w: downlink virtual-parameter-delete record %d: bad name %q", ErrBadRecord, r.Seq, r.Name)
		}
	case DownFaultClear:
		if r.Fault == nil {
			return fmt.Errorf("%w: downlink fault-clear record %d without a fault", ErrBadRecord, r.Seq)
		}
		if err := r.Fault.Validate(); err != nil {
			return fmt.Errorf("%w: downlink fault-clear record %d: %v", ErrBadRecord, r.Seq, err)
		}
	case DownPresetDelete, DownFileDelete, DownRevoke, DownTokenRevoke:
		if r.Name == "" {
			return fmt.Errorf("%w: downlink %s record %d without a name", ErrBadRecord, r.Kind, r.Seq)
		}
	default:
		return fmt.Errorf("%w: unknown downlink kind %d", ErrBadRecord, r.Kind)
	}
	return nil
}

// EdgeHealth is what an edge reports about itself on every heartbeat.
type EdgeHealth struct {
	SessionsPerSec float64 `json:"sessionsPerSec" cbor:"1,keyasint"`
	OutboxLen      int64   `json:"outboxLen" cbor:"2,keyasint"`
	Devices        int64   `json:"devices" cbor:"3,keyasint"`
	// OldestUnsent is the age of the oldest record still in the outbox.
	OldestUnsent time.Duration `json:"oldestUnsentNs,omitempty" cbor:"4,keyasint,omitempty"`
}
