package core

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// Device is the core's record of one CPE: identity, home edge, last inform
// and tags. The parameter tree is stored beside it, one key per parameter,
// so a delta writes only what changed; Parameters is filled on reads that
// ask for it.
type Device struct {
	ID           string    `json:"_id" cbor:"1,keyasint"`
	OUI          string    `json:"oui,omitempty" cbor:"2,keyasint,omitempty"`
	ProductClass string    `json:"productClass,omitempty" cbor:"3,keyasint,omitempty"`
	SerialNumber string    `json:"serialNumber,omitempty" cbor:"4,keyasint,omitempty"`
	Manufacturer string    `json:"manufacturer,omitempty" cbor:"5,keyasint,omitempty"`
	Edge         string    `json:"edge,omitempty" cbor:"6,keyasint,omitempty"`
	LastInform   time.Time `json:"lastInform,omitzero" cbor:"7,keyasint,omitzero"`
	Registered   time.Time `json:"registered,omitzero" cbor:"8,keyasint,omitzero"`
	Tags         []string  `json:"tags,omitempty" cbor:"9,keyasint,omitempty"`
	// LastEvents are the event codes of the last inform ("1 BOOT", ...).
	LastEvents []string `json:"lastEvents,omitempty" cbor:"10,keyasint,omitempty"`

	Parameters map[string]Param `json:"parameters,omitempty" cbor:"-"`
}

// Param is one leaf of a device's parameter tree.
type Param struct {
	Value   string    `json:"value" cbor:"1,keyasint"`
	Type    string    `json:"type,omitempty" cbor:"2,keyasint,omitempty"`
	Updated time.Time `json:"updated,omitzero" cbor:"3,keyasint,omitzero"`
}

// Edge is the core's record of one edge node and where its sync link stands.
type Edge struct {
	ID        string    `json:"id" cbor:"1,keyasint"`
	Addr      string    `json:"addr,omitempty" cbor:"2,keyasint,omitempty"`
	FirstSeen time.Time `json:"firstSeen,omitzero" cbor:"3,keyasint,omitzero"`
	LastSeen  time.Time `json:"lastSeen,omitzero" cbor:"4,keyasint,omitzero"`
	// UplinkAcked is the highest uplink sequence applied; resends at or
	// below it are no-ops.
	UplinkAcked uint64 `json:"uplinkAcked" cbor:"5,keyasint"`
	// DownlinkAcked is the highest downlink sequence the edge persisted.
	DownlinkAcked uint64 `json:"downlinkAcked" cbor:"6,keyasint"`
}

// NodeInfo maps a Raft server ID to the API address it serves, so a follower
// knows where to forward writes.
type NodeInfo struct {
	ID      string `json:"id" cbor:"1,keyasint"`
	APIAddr string `json:"apiAddr" cbor:"2,keyasint"`
}

// Fault is a task fault kept for listing: which device, which task, what
// the CPE answered and when.
type Fault struct {
	Device string          `json:"device" cbor:"1,keyasint"`
	TaskID string          `json:"task" cbor:"2,keyasint"`
	Fault  fleet.TaskFault `json:"fault" cbor:"3,keyasint"`
	Time   time.Time       `json:"timestamp" cbor:"4,keyasint"`
}

// paramFormat prefixes a parameter value. Parameters are the bulk of all
// writes (every delta carries several), so they skip CBOR: format byte,
// updated time (unix nanoseconds, 8 bytes big-endian), type length (1 byte),
// type, value.
const paramFormat = 2

func encodeParam(p Param) []byte {
	typ := p.Type
	if len(typ) > 255 {
		typ = typ[:255]
	}
	b := make([]byte, 0, 10+len(typ)+len(p.Value))
	b = append(b, paramFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Updated.UnixNano()))
	b = append(b, byte(len(typ)))
	b = append(b, typ...)
	return append(b, p.Value...)
}

func decodeParam(b []byte) (Param, error) {
	if len(b) < 10 || b[0] != paramFormat || len(b) < 10+int(b[9]) {
		return Param{}, fmt.Errorf("decode parameter: bad record")
	}
	n := int(b[9])
	return Param{
		Updated: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))).UTC(),
		Type:    string(b[10 : 10+n]),
		Value:   string(b[10+n:]),
	}, nil
}

// recordVersion prefixes every core-only record stored in Badger.
const recordVersion = 1

func encodeRecord(v any) ([]byte, error) {
	body, err := cmdEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return append([]byte{recordVersion}, body...), nil
}

func decodeRecord(b []byte, v any) error {
	if len(b) < 1 || b[0] != recordVersion {
		return fmt.Errorf("decode %T: unknown record version", v)
	}
	if err := cmdDec.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}
