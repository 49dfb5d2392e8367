package fleet

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// FileMeta describes a firmware or configuration file. The content lives in a
// content-addressed blob store under its SHA256.
type FileMeta struct {
	Name         string    `json:"name" cbor:"1,keyasint"`
	FileType     string    `json:"fileType" cbor:"2,keyasint"`
	OUI          string    `json:"oui,omitempty" cbor:"3,keyasint,omitempty"`
	ProductClass string    `json:"productClass,omitempty" cbor:"4,keyasint,omitempty"`
	Version      string    `json:"version,omitempty" cbor:"5,keyasint,omitempty"`
	Size         int64     `json:"size" cbor:"6,keyasint"`
	SHA256       string    `json:"sha256" cbor:"7,keyasint"`
	Uploaded     time.Time `json:"uploaded" cbor:"8,keyasint"`
}

// ValidFileName reports whether name can name a firmware or configuration
// file anywhere in the fleet. Names travel in URL paths and Download
// requests and are stored by the core and every edge, so one rule serves
// all: not empty, not "." or "..", at most 255 bytes of UTF-8, no slash or
// backslash, no control characters.
func ValidFileName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 || !utf8.ValidString(name) ||
		strings.ContainsAny(name, "/\\") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Preset is a provisioning rule in GenieACS's preset shape: when a device's
// session matches Events and Precondition, its Provisions run. Presets are
// stored by the core and evaluated by the edges.
type Preset struct {
	Name         string          `json:"_id,omitempty" cbor:"1,keyasint"`
	Weight       int             `json:"weight" cbor:"2,keyasint"`
	Channel      string          `json:"channel" cbor:"3,keyasint"`
	Events       map[string]bool `json:"events,omitempty" cbor:"4,keyasint,omitempty"`
	Precondition string          `json:"precondition,omitempty" cbor:"5,keyasint,omitempty"`
	Provisions   [][]any         `json:"provisions" cbor:"6,keyasint"`
	Schedule     string          `json:"schedule,omitempty" cbor:"7,keyasint,omitempty"`
	// History names the parameters whose values the edges record per
	// device (see HistoryPoint): exact paths or "*" patterns.
	History []string `json:"history,omitempty" cbor:"20,keyasint,omitempty"`
}

// MaxProvisionScript bounds a provision script's source, in bytes: what
// the core accepts at PUT time and the script sandbox compiles
// (provision/script.MaxSource, which a core test keeps equal).
const MaxProvisionScript = 256 << 10

// maxProvisionName bounds a provision's name, as the core bounds preset names.
const maxProvisionName = 256

// Provision is a GenieACS provision script, in the shape of GenieACS's
// provisions collection: presets name it, and the edges run it in CWMP
// sessions. The core stores it and sends it to every edge.
type Provision struct {
	Name   string `json:"_id" cbor:"1,keyasint"`
	Script string `json:"script" cbor:"2,keyasint"`
}

// ValidProvisionName reports whether name can name a provision: the
// rule the core applies to preset names, since both travel in URL paths
// and become the last part of storage keys: not empty, not "." or "..",
// at most 256 bytes of UTF-8, no slash, no control characters.
func ValidProvisionName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > maxProvisionName || !utf8.ValidString(name) ||
		strings.Contains(name, "/") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Validate checks the bounds every holder of a provision relies on: a
// valid name and a script of at most MaxProvisionScript bytes. Whether
// the script compiles is the core's check at PUT time.
func (p *Provision) Validate() error {
	if !ValidProvisionName(p.Name) {
		return fmt.Errorf("%w: bad provision name %q (1–%d bytes of UTF-8; no '/', control characters, '.' or '..')", ErrBadRecord, p.Name, maxProvisionName)
	}
	if len(p.Script) > MaxProvisionScript {
		return fmt.Errorf("%w: provision %s: script of %d bytes, more than %d", ErrBadRecord, p.Name, len(p.Script), MaxProvisionScript)
	}
	return nil
}

// VirtualParameter is a GenieACS virtual parameter script, in the shape
// of GenieACS's virtualParameters collection: presets, scripts and tasks
// read or set VirtualParameters.<name>, and the edge runs the script to
// compute or apply it. The core stores it and sends it to every edge.
type VirtualParameter struct {
	Name   string `json:"_id" cbor:"1,keyasint"`
	Script string `json:"script" cbor:"2,keyasint"`
}

// ValidVirtualParameterName reports whether name can name a virtual
// parameter: a name a parameter path and a precondition can both spell
// (a letter or '_', then letters, digits, '_' and '-'), at most 128 bytes.
func ValidVirtualParameterName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && (r == '-' || (r >= '0' && r <= '9')):
		default:
			return false
		}
	}
	return true
}

// Validate checks the bounds every holder of a virtual parameter relies
// on: a valid name and a script of at most MaxProvisionScript bytes.
// Whether the script compiles is the core's check at PUT time.
func (v *VirtualParameter) Validate() error {
	if !ValidVirtualParameterName(v.Name) {
		return fmt.Errorf("%w: bad virtual parameter name %q (a letter or '_', then letters, digits, '_' or '-'; at most 128 bytes)", ErrBadRecord, v.Name)
	}
	if len(v.Script) > MaxProvisionScript {
		return fmt.Errorf("%w: virtual parameter %s: script of %d bytes, more than %d", ErrBadRecord, v.Name, len(v.Script), MaxProvisionScript)
	}
	return nil
}

// DeviceDelta is what one session changed about a device, as an edge
// reports it upstream: identity, the inform, and the parameters written.
type DeviceDelta struct {
	Device       string           `cbor:"1,keyasint"`
	Edge         string           `cbor:"2,keyasint"`
	OUI          string           `cbor:"3,keyasint,omitempty"`
	ProductClass string           `cbor:"4,keyasint,omitempty"`
	SerialNumber string           `cbor:"5,keyasint,omitempty"`
	Manufacturer string           `cbor:"6,keyasint,omitempty"`
	LastInform   time.Time        `cbor:"7,keyasint,omitzero"`
	Events       []string         `cbor:"8,keyasint,omitempty"`
	Parameters   []ParameterValue `cbor:"9,keyasint,omitempty"`
	Removed      []string         `cbor:"10,keyasint,omitempty"`
	// Bootstrap tells the receiver to drop what it knew of the device first.
	Bootstrap bool `cbor:"11,keyasint,omitempty"`
	// History are the points the edge recorded from this delta's values
	// (the parameters a preset's history names), for the core's series.
	History []HistoryPoint `cbor:"25,keyasint,omitempty"`
}

// RecordKind tags a versioned CBOR record.
type RecordKind uint8

// Record kinds. Values are part of the wire and storage format: never reuse one.
const (
	KindTask        RecordKind = 1
	KindFileMeta    RecordKind = 2
	KindPreset      RecordKind = 3
	KindDeviceDelta RecordKind = 4
	KindTaskDrop    RecordKind = 5
	KindProvision   RecordKind = 6
	// KindChannelFault is a preset channel's fault (ChannelFault), from
	// an edge's outbox.
	KindChannelFault RecordKind = 7
	// KindVirtualParameter is a virtual parameter script.
	KindVirtualParameter RecordKind = 8
)

// KindOf returns the kind of a record written by Marshal, or an error
// wrapping ErrBadRecord when b is not one this version reads.
func KindOf(b []byte) (RecordKind, error) {
	if len(b) < 2 || b[0] != recordVersion {
		return 0, fmt.Errorf("%w: unknown version or short record", ErrBadRecord)
	}
	switch k := RecordKind(b[1]); k {
	case KindTask, KindFileMeta, KindPreset, KindDeviceDelta, KindTaskDrop, KindProvision, KindChannelFault, KindVirtualParameter:
		return k, nil
	default:
		return 0, fmt.Errorf("%w: unknown kind %d", ErrBadRecord, k)
	}
}

// recordVersion is the encoding version written in every record's first byte.
const recordVersion = 1

// ErrBadRecord means bytes are not a record this version can read.
var ErrBadRecord = errors.New("fleet: bad record")

// CBOR is the one CBOR profile of edgeacs, for the wire and for storage:
// deterministic encoding (Core Deterministic), times as RFC 3339 with
// nanoseconds (keeps UTC and precision through a round trip), bounded
// decoding, maps decoded into any as map[string]any (what JSON can hold),
// and strings decoded as they are even when not valid UTF-8: a CPE's
// parameter value can hold anything, and refusing it would make a whole
// record (or a whole batch of Raft commands) unreadable.
var CBOR struct {
	Enc cbor.EncMode
	Dec cbor.DecMode
}

func init() {
	opts := cbor.CoreDetEncOptions()
	opts.Time = cbor.TimeRFC3339Nano
	var err error
	if CBOR.Enc, err = opts.EncMode(); err != nil {
		panic(err)
	}
	CBOR.Dec, err = cbor.DecOptions{
		MaxArrayElements: 1 << 20, MaxMapPairs: 1 << 20, MaxNestedLevels: 32,
		DefaultMapType: reflect.TypeOf(map[string]any(nil)),
		UTF8:           cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v as a record: version byte, kind byte, deterministic CBOR.
// v must be one of *Task, *FileMeta, *Preset, *DeviceDelta, *TaskDrop,
// *Provision, *ChannelFault, *VirtualParameter.
func Marshal(v any) ([]byte, error) {
	var kind RecordKind
	switch v.(type) {
	case *Task:
		kind = KindTask
	case *FileMeta:
		kind = KindFileMeta
	case *Preset:
		kind = KindPreset
	case *DeviceDelta:
		kind = KindDeviceDelta
	case *TaskDrop:
		kind = KindTaskDrop
	case *Provision:
		kind = KindProvision
	case *ChannelFault:
		kind = KindChannelFault
	case *VirtualParameter:
		kind = KindVirtualParameter
	default:
		return nil, fmt.Errorf("fleet: marshal %T: not a record type", v)
	}
	body, err := CBOR.Enc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("fleet: marshal %T: %w", v, err)
	}
	return append([]byte{recordVersion, byte(kind)}, body...), nil
}

// Unmarshal decodes a record written by Marshal into v, which must be a
// pointer to the record's type.
func Unmarshal(b []byte, v any) error {
	if len(b) < 2 || b[0] != recordVersion {
		return fmt.Errorf("%w: unknown version or short record", ErrBadRecord)
	}
	var want RecordKind
	switch v.(type) {
	case *Task:
		want = KindTask
	case *FileMeta:
		want = KindFileMeta
	case *Preset:
		want = KindPreset
	case *DeviceDelta:
		want = KindDeviceDelta
	case *TaskDrop:
		want = KindTaskDrop
	case *Provision:
		want = KindProvision
	case *ChannelFault:
		want = KindChannelFault
	case *VirtualParameter:
		want = KindVirtualParameter
	default:
		return fmt.Errorf("fleet: unmarshal into %T: not a record type", v)
	}
	if RecordKind(b[1]) != want {
		return fmt.Errorf("%w: kind %d, want %d", ErrBadRecord, b[1], want)
	}
	if err := CBOR.Dec.Unmarshal(b[2:], v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	return nil
}
