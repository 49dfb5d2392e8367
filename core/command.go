package core

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// Op names the state change a Command asks for. Values are part of the
// replicated log format: never reuse or renumber one.
type Op uint8

// Operations the FSM applies.
const (
	OpPutDevice      Op = 1
	OpDeviceDelta    Op = 2
	OpDeleteDevice   Op = 3
	OpTag            Op = 4
	OpUntag          Op = 5
	OpCreateTasks    Op = 6
	OpTaskResult     Op = 7
	OpCancelTask     Op = 8
	OpPutPreset      Op = 9
	OpDeletePreset   Op = 10
	OpPutFileMeta    Op = 11
	OpDeleteFileMeta Op = 12
	OpEdgeSeen       Op = 13
	OpEdgeAck        Op = 14
	OpRegisterNode   Op = 15
	OpRemoveNode     Op = 16
	// OpUplink applies one record of an edge's uplink (Record: fleet.Marshal
	// bytes of a DeviceDelta, Task or TaskDrop) under Edge and Seq.
	OpUplink Op = 17
	// OpRevokeEdge puts the edge Name on the revocation list.
	OpRevokeEdge Op = 18
	// OpPutToken creates the API token Token (which holds only the
	// secret's hash); a name in use is ErrConflict, and so, with IfNone,
	// is any token at all.
	OpPutToken Op = 19
	// OpRevokeToken deletes the API token Name.
	OpRevokeToken Op = 20
	// OpPutProvision stores the provision script Provision (fleet-wide).
	OpPutProvision Op = 21
	// OpDeleteProvision deletes the provision script Name.
	OpDeleteProvision Op = 22
	// OpSeedPresets stores Presets, the defaults a fresh cluster starts
	// with, once in the cluster's life: a later one changes nothing, so
	// an operator's edit or delete of a default sticks.
	OpSeedPresets Op = 23
	// OpDeleteChannelFault deletes the preset channel fault Name
	// ("<device>:<channel>") and tells the edge that recorded it.
	OpDeleteChannelFault Op = 24
	// OpPutVirtualParameter stores the virtual parameter script
	// VirtualParameter (fleet-wide).
	OpPutVirtualParameter Op = 25
	// OpDeleteVirtualParameter deletes the virtual parameter Name.
	OpDeleteVirtualParameter Op = 26

	// Firmware rollouts (40-49, rolloutfsm.go).

	// OpRolloutCreate stores Rollout and its planned RolloutDevices; a
	// name in use is ErrConflict.
	OpRolloutCreate Op = 40
	// OpRolloutStep applies one step the leader decided (RolloutStep) to
	// the rollout Name; every part is checked against the stored state,
	// so a step proposed twice (a leader change) changes nothing twice.
	OpRolloutStep Op = 41
	// OpRolloutControl applies an operator's Action (pause, resume, abort,
	// retry) to the rollout Name.
	OpRolloutControl Op = 42
	// OpRolloutDelete removes the rollout Name and its devices' records;
	// only a done or aborted rollout can go (ErrConflict otherwise).
	OpRolloutDelete Op = 43
)

var opNames = map[Op]string{
	OpPutDevice: "PutDevice", OpDeviceDelta: "DeviceDelta", OpDeleteDevice: "DeleteDevice",
	OpTag: "Tag", OpUntag: "Untag", OpCreateTasks: "CreateTasks", OpTaskResult: "TaskResult",
	OpCancelTask: "CancelTask", OpPutPreset: "PutPreset", OpDeletePreset: "DeletePreset",
	OpPutFileMeta: "PutFileMeta", OpDeleteFileMeta: "DeleteFileMeta", OpEdgeSeen: "EdgeSeen",
	OpEdgeAck: "EdgeAck", OpRegisterNode: "RegisterNode", OpRemoveNode: "RemoveNode",
	OpUplink: "Uplink", OpRevokeEdge: "RevokeEdge", OpPutToken: "PutToken", OpRevokeToken: "RevokeToken",
	OpPutProvision: "PutProvision", OpDeleteProvision: "DeleteProvision", OpSeedPresets: "SeedPresets",
	OpDeleteChannelFault: "DeleteChannelFault", OpPutVirtualParameter: "PutVirtualParameter",
	OpDeleteVirtualParameter: "DeleteVirtualParameter",
	OpRolloutCreate:          "RolloutCreate", OpRolloutStep: "RolloutStep", OpRolloutControl: "RolloutControl",
	OpRolloutDelete: "RolloutDelete",
}

// String returns the operation's name for logs and metrics.
func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// CommandVersion is the envelope version this code writes and reads.
const CommandVersion = 1

// entryFormat is the first byte of every log entry the core writes: a CBOR
// array of Commands follows. A new framing gets a new byte so old logs stay
// readable.
const entryFormat = 1

// Command is one replicated state change: a versioned CBOR envelope with the
// operation and its payload. Everything Apply needs, including the time, is
// in the command, so applying it is deterministic on every node.
type Command struct {
	V  uint8 `cbor:"1,keyasint"`
	Op Op    `cbor:"2,keyasint"`
	// Time is when the proposer accepted the write; Apply stamps records with it.
	Time time.Time `cbor:"3,keyasint,omitzero"`
	// Key, when set, makes the command idempotent: a second command with the
	// same key changes nothing and returns the first one's value.
	Key string `cbor:"4,keyasint,omitempty"`
	// Edge and Seq identify an uplink record from an edge. A command whose
	// Seq is at or below the edge's acked uplink sequence is a no-op, so a
	// resend after a crash changes nothing.
	Edge string `cbor:"5,keyasint,omitempty"`
	Seq  uint64 `cbor:"6,keyasint,omitempty"`

	Device      *Device            `cbor:"10,keyasint,omitempty"`
	Delta       *fleet.DeviceDelta `cbor:"11,keyasint,omitempty"`
	Tasks       []*fleet.Task      `cbor:"12,keyasint,omitempty"`
	TaskID      string             `cbor:"13,keyasint,omitempty"`
	Status      fleet.TaskStatus   `cbor:"14,keyasint,omitempty"`
	Result      *fleet.TaskResult  `cbor:"15,keyasint,omitempty"`
	Fault       *fleet.TaskFault   `cbor:"16,keyasint,omitempty"`
	Preset      *fleet.Preset      `cbor:"17,keyasint,omitempty"`
	File        *fleet.FileMeta    `cbor:"18,keyasint,omitempty"`
	Name        string             `cbor:"19,keyasint,omitempty"`
	Tag         string             `cbor:"20,keyasint,omitempty"`
	Node        *NodeInfo          `cbor:"21,keyasint,omitempty"`
	SkipMissing bool               `cbor:"22,keyasint,omitempty"`
	Addr        string             `cbor:"23,keyasint,omitempty"`
	// Record is an uplink record as the edge wrote it (OpUplink).
	Record []byte `cbor:"24,keyasint,omitempty"`
	// Wake asks the edge to send a connection request as soon as it stores
	// the tasks (OpCreateTasks; the API's ?connection_request).
	Wake bool `cbor:"25,keyasint,omitempty"`
	// SharedSeq is the fleet-wide downlink position an edge stored
	// (OpEdgeAck; Seq is the position in the edge's own log).
	SharedSeq uint64 `cbor:"26,keyasint,omitempty"`
	// KeyWhilePending limits Key (OpCreateTasks) to while a task it names
	// is not final: the API's derived key for a request without an
	// Idempotency-Key, so a retry of an identical request does not queue
	// a second copy, yet the same request once the first has ended does.
	KeyWhilePending bool `cbor:"27,keyasint,omitempty"`
	// Token is the API token OpPutToken creates.
	Token *fleet.Token `cbor:"28,keyasint,omitempty"`
	// IfNone makes OpPutToken refuse (ErrConflict) when any token exists:
	// founding members race to create the bootstrap admin token, and
	// exactly one wins.
	IfNone bool `cbor:"29,keyasint,omitempty"`
	// Provision is the provision script OpPutProvision stores.
	Provision *fleet.Provision `cbor:"30,keyasint,omitempty"`
	// Presets are the default presets OpSeedPresets stores.
	Presets []*fleet.Preset `cbor:"31,keyasint,omitempty"`
	// VirtualParameter is the script OpPutVirtualParameter stores.
	VirtualParameter *fleet.VirtualParameter `cbor:"32,keyasint,omitempty"`
	// Prev is, for an uplink record (OpUplink), the sequence its link sent
	// just before it (for a link's first record, the UplinkAcked the link
	// resumed from). The record applies only once the edge's UplinkAcked
	// has reached Prev; until then it is refused with ErrUplinkGap and not
	// consumed. The core keeps several uplink batches of a link in flight,
	// and a batch that failed on its way into the log (a raft error) must
	// not let the one behind it apply, or the failed records would be
	// taken for resends and lost. Zero checks nothing.
	Prev uint64 `cbor:"33,keyasint,omitempty"`

	// Rollout is the rollout OpRolloutCreate stores, RolloutDevices its
	// planned devices.
	Rollout        *Rollout         `cbor:"40,keyasint,omitempty"`
	RolloutDevices []*RolloutDevice `cbor:"41,keyasint,omitempty"`
	// RolloutStep is what OpRolloutStep applies.
	RolloutStep *RolloutStep `cbor:"42,keyasint,omitempty"`
	// Action is OpRolloutControl's: pause, resume, abort or retry.
	Action string `cbor:"43,keyasint,omitempty"`

	// rawParams, when set by the apply path's decoder, holds Delta's
	// parameters undecoded (Delta.Parameters is then empty).
	rawParams rawParams
	// uplinkOnly says that the command was built with nothing but an
	// uplink record's fields (V, Op, Time, Edge, Seq, Record, Prev), as
	// SubmitUplink builds it, so EncodeCommands may write it by hand.
	uplinkOnly bool
}

// Result is what applying one Command produced: a value (created task IDs,
// for example) or a domain error such as ErrNotFound. Domain errors are
// results, not failures of the log: the entry is committed either way.
type Result struct {
	Value any
	Err   error
	// Noop is true when the command was recognised as a replay and changed nothing.
	Noop bool
}

// cmdEnc and cmdDec are the project's one CBOR profile (fleet.CBOR): it
// decodes strings that are not valid UTF-8 as they are, because refusing
// one CPE value would fail every command batched with it, on every node.
var (
	cmdEnc = fleet.CBOR.Enc
	cmdDec = fleet.CBOR.Dec
)

// EncodeCommands frames commands as one log entry.
func EncodeCommands(cmds []Command) ([]byte, error) {
	if b, ok := encodeUplinkEntry(cmds); ok {
		return b, nil
	}
	body, err := cmdEnc.Marshal(cmds)
	if err != nil {
		return nil, fmt.Errorf("encode %d commands: %w", len(cmds), err)
	}
	out := make([]byte, 0, len(body)+1)
	out = append(out, entryFormat)
	return append(out, body...), nil
}

// DecodeCommands reads a log entry written by EncodeCommands. Any failure
// wraps ErrCorruptCommand.
func DecodeCommands(b []byte) ([]Command, error) {
	if len(b) < 1 || b[0] != entryFormat {
		return nil, fmt.Errorf("%w: unknown entry format", ErrCorruptCommand)
	}
	var cmds []Command
	if err := cmdDec.Unmarshal(b[1:], &cmds); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptCommand, err)
	}
	return cmds, nil
}

// The apply path decodes a delta's parameters itself: they are most of an
// entry's bytes and each would otherwise become three Go strings in a
// ParameterValue, only to be re-encoded into the device's overlay at once.
// applyCommand is Command with the delta's parameters kept as raw CBOR; the
// embedded types carry every other field, and the outer Delta hides the
// embedded one (encoding/json's rules, which the cbor package follows), so
// no field list is repeated here.
type applyCommand struct {
	commandFields
	Delta *applyDelta `cbor:"11,keyasint,omitempty"`
}

type commandFields Command

type applyDelta struct {
	deltaFields
	Parameters rawParams `cbor:"9,keyasint,omitempty"`
}

type deltaFields fleet.DeviceDelta

// rawParams is a delta's parameter array as it appears in the log entry; it
// aliases the entry's bytes.
type rawParams []byte

// UnmarshalCBOR keeps the bytes; the decoder has checked they are well formed.
func (r *rawParams) UnmarshalCBOR(b []byte) error {
	*r = b
	return nil
}

// decodeEntry decodes a log entry for the apply path: like DecodeCommands,
// but a delta's parameters stay raw in Command.rawParams.
func decodeEntry(b []byte) ([]Command, error) {
	if len(b) < 1 || b[0] != entryFormat {
		return nil, fmt.Errorf("%w: unknown entry format", ErrCorruptCommand)
	}
	if cmds, ok := fastEntry(b[1:]); ok {
		return cmds, nil
	}
	return libraryEntry(b[1:])
}

// libraryEntry is decodeEntry through the CBOR library (b without the
// format byte).
func libraryEntry(b []byte) ([]Command, error) {
	var acs []applyCommand
	if err := cmdDec.Unmarshal(b, &acs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptCommand, err)
	}
	cmds := make([]Command, len(acs))
	for i := range acs {
		cmds[i] = Command(acs[i].commandFields)
		if d := acs[i].Delta; d != nil {
			dd := fleet.DeviceDelta(d.deltaFields)
			cmds[i].Delta = &dd
			cmds[i].rawParams = d.Parameters
		}
	}
	return cmds, nil
}

// fastEntry decodes a log entry's commands by hand when every one of them
// holds only the fields of an uplink record (V, Op, Time, Edge, Seq, Prev,
// Record), each in the form EncodeCommands writes: a definite-length map
// with keys in increasing order, integers that fit their fields, an
// untagged RFC 3339 time, a definite-length text and byte string, and
// nothing after the array. It reports false for anything else, and
// decodeEntry then uses the CBOR library, whose answer is the reference:
// within that form the result is exactly the library's, except that
// Record aliases b instead of being copied (nothing keeps it past the
// apply). An uplink drain's entries are all such commands, and the
// library's reflection was most of decoding them.
func fastEntry(b []byte) ([]Command, bool) {
	n, b, ok := cborHead(b, 4)
	if !ok || n > maxFastArray || n > uint64(len(b)) {
		return nil, false
	}
	cmds := make([]Command, n)
	// The commands of one submission share their time; its text is parsed
	// once.
	var lastTime []byte
	var lastParsed time.Time
	for i := range cmds {
		c := &cmds[i]
		var fields uint64
		if fields, b, ok = cborHead(b, 5); !ok || fields > 7 {
			return nil, false
		}
		var last uint64
		for range fields {
			var k uint64
			if k, b, ok = cborHead(b, 0); !ok || k <= last {
				return nil, false
			}
			last = k
			switch k {
			case 1, 2, 6, 33:
				var v uint64
				if v, b, ok = cborHead(b, 0); !ok {
					return nil, false
				}
				switch k {
				case 1:
					if v > math.MaxUint8 {
						return nil, false
					}
					c.V = uint8(v)
				case 2:
					if v > math.MaxUint8 {
						return nil, false
					}
					c.Op = Op(v)
				case 6:
					c.Seq = v
				case 33:
					c.Prev = v
				}
			case 3:
				var t []byte
				if t, b, ok = cborText(b); !ok {
					return nil, false
				}
				if lastTime == nil || string(t) != string(lastTime) {
					parsed, err := time.Parse(time.RFC3339, string(t))
					if err != nil {
						return nil, false
					}
					lastTime, lastParsed = t, parsed
				}
				c.Time = lastParsed
			case 5:
				var e []byte
				if e, b, ok = cborText(b); !ok {
					return nil, false
				}
				if i > 0 && string(e) == cmds[i-1].Edge {
					c.Edge = cmds[i-1].Edge
				} else {
					c.Edge = string(e)
				}
			case 24:
				var l uint64
				if l, b, ok = cborHead(b, 2); !ok || l > uint64(len(b)) {
					return nil, false
				}
				c.Record, b = b[:l:l], b[l:]
			default:
				return nil, false
			}
		}
	}
	return cmds, len(b) == 0
}

// forEach calls fn with the name, value and type of every parameter in
// a CBOR array of [name, value, type] text-string triples, the form
// fleet.ParameterValue encodes to. The slices alias raw.
func (r rawParams) forEach(fn func(name, value, typ []byte) error) error {
	if len(r) == 0 {
		return nil
	}
	n, rest, ok := cborHead(r, 4)
	if !ok {
		return fmt.Errorf("%w: delta parameters are not an array", ErrCorruptCommand)
	}
	for range n {
		var cnt uint64
		if cnt, rest, ok = cborHead(rest, 4); !ok || cnt != 3 {
			return fmt.Errorf("%w: delta parameter is not a [name, value, type] array", ErrCorruptCommand)
		}
		var f [3][]byte
		for j := range f {
			var l uint64
			if l, rest, ok = cborHead(rest, 3); !ok || l > uint64(len(rest)) {
				return fmt.Errorf("%w: delta parameter field is not a text string", ErrCorruptCommand)
			}
			f[j], rest = rest[:l], rest[l:]
		}
		if err := fn(f[0], f[1], f[2]); err != nil {
			return err
		}
	}
	return nil
}

// cborHead reads a definite-length head of the given major type and returns
// its argument and the bytes after it.
func cborHead(b []byte, major byte) (uint64, []byte, bool) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, false
	}
	ai := b[0] & 0x1f
	switch {
	case ai < 24:
		return uint64(ai), b[1:], true
	case ai == 24 && len(b) >= 2:
		return uint64(b[1]), b[2:], true
	case ai == 25 && len(b) >= 3:
		return uint64(binary.BigEndian.Uint16(b[1:])), b[3:], true
	case ai == 26 && len(b) >= 5:
		return uint64(binary.BigEndian.Uint32(b[1:])), b[5:], true
	case ai == 27 && len(b) >= 9:
		return binary.BigEndian.Uint64(b[1:]), b[9:], true
	}
	return 0, nil, false
}

// encodeUplinkEntry is EncodeCommands for an entry of uplink commands
// only (uplinkOnly), written by hand: the library's reflection was most of
// what encoding a drain's entries cost the leader. It writes exactly the
// library's bytes (cmdEnc: core deterministic, RFC 3339 times; keys 1, 2,
// 3, 5, 6, 24, 33 in that order, empty ones left out as their tags say),
// which TestEncodeUplinkEntryMatchesLibrary holds it to. ok is false when
// any command is not uplinkOnly.
func encodeUplinkEntry(cmds []Command) ([]byte, bool) {
	if len(cmds) == 0 {
		return nil, false
	}
	size := 9
	for i := range cmds {
		c := &cmds[i]
		if !c.uplinkOnly {
			return nil, false
		}
		size += 80 + len(c.Edge) + len(c.Record)
	}
	b := make([]byte, 0, size)
	b = append(b, entryFormat)
	b = appendCBORHead(b, 4, uint64(len(cmds)))
	for i := range cmds {
		c := &cmds[i]
		fields := uint64(2)
		for _, set := range []bool{!c.Time.IsZero(), c.Edge != "", c.Seq != 0, len(c.Record) > 0, c.Prev != 0} {
			if set {
				fields++
			}
		}
		b = appendCBORHead(b, 5, fields)
		b = appendCBORHead(b, 0, 1)
		b = appendCBORHead(b, 0, uint64(c.V))
		b = appendCBORHead(b, 0, 2)
		b = appendCBORHead(b, 0, uint64(c.Op))
		if !c.Time.IsZero() {
			b = appendCBORHead(b, 0, 3)
			b = appendCBORText(b, c.Time.Format(time.RFC3339Nano))
		}
		if c.Edge != "" {
			b = appendCBORHead(b, 0, 5)
			b = appendCBORText(b, c.Edge)
		}
		if c.Seq != 0 {
			b = appendCBORHead(b, 0, 6)
			b = appendCBORHead(b, 0, c.Seq)
		}
		if len(c.Record) > 0 {
			b = appendCBORHead(b, 0, 24)
			b = appendCBORHead(b, 2, uint64(len(c.Record)))
			b = append(b, c.Record...)
		}
		if c.Prev != 0 {
			b = appendCBORHead(b, 0, 33)
			b = appendCBORHead(b, 0, c.Prev)
		}
	}
	return b, true
}

// appendCBORHead appends a CBOR head of the major type with argument v,
// in its shortest form (as the library writes it).
func appendCBORHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= math.MaxUint8:
		return append(b, m|24, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), v)
	}
}

func appendCBORText(b []byte, s string) []byte {
	return append(appendCBORHead(b, 3, uint64(len(s))), s...)
}
