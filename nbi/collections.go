package nbi

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// GenieACS's NBI queries its tasks and faults collections with the same
// language as its devices (GET /tasks/?query=..., GET /faults/?query=...).
// Those documents are flat, so a Record stands in for one: its _id is the
// document's, and each field is a "parameter" with a CWMP type that makes
// it compare as GenieACS's stored value does (a date as a date, a count as
// a number). ParseRecordQuery keeps such a query to the fields that exist.

// TaskFields are the fields of a task a GET /tasks query may name, besides
// _id: GenieACS's device, name and timestamp, and edgeacs's status
// (pending, running, done, fault, expired).
var TaskFields = []string{"device", "name", "status", "timestamp"}

// FaultFields are the fields of a fault a GET /faults query may name,
// besides _id.
var FaultFields = []string{"channel", "code", "device", "message", "retries", "timestamp"}

// ParseRecordQuery parses a query on a flat collection whose fields are _id
// and those named, as ParseQuery does. A query that names any other field
// (a device field such as _tags, a parameter path, or a field's "._value")
// is ErrUnsupported, naming the fields there are: on a flat record it
// would silently match nothing.
func ParseRecordQuery(b []byte, fields ...string) (*Query, error) {
	q, err := ParseQuery(b)
	if err != nil {
		return nil, err
	}
	var bad string
	q.root.walkFields(func(f field) bool {
		if f.kind == fID || (f.kind == fParam && f.name == f.path && slices.Contains(fields, f.path)) {
			return true
		}
		bad = f.name
		return false
	})
	if bad != "" {
		return nil, unsupported("field %s (the fields are _id, %s)", bad, strings.Join(fields, ", "))
	}
	return q, nil
}

// walkFields calls fn with every field the node reads until fn returns
// false.
func (n *node) walkFields(fn func(field) bool) bool {
	if n.op == opField {
		return fn(n.field)
	}
	for _, k := range n.kids {
		if !k.walkFields(fn) {
			return false
		}
	}
	return true
}

// recordOf returns the Record a record query evaluates: id, and fields as
// name, value, CWMP type triples. An empty value is an absent field.
func recordOf(id string, fields ...[3]string) *Record {
	r := &Record{Info: Meta{ID: id}, Params: make(map[string]Entry, len(fields))}
	for _, f := range fields {
		if f[1] != "" {
			r.Params[f[0]] = Entry{Value: f[1], Type: f[2]}
		}
	}
	return r
}

func timeField(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

// TaskRecord is what a query from ParseRecordQuery(b, TaskFields...)
// evaluates for t.
func TaskRecord(t *fleet.Task) *Record {
	return recordOf(t.ID,
		[3]string{"device", t.Device, "xsd:string"},
		[3]string{"name", t.Name, "xsd:string"},
		[3]string{"status", string(t.Status), "xsd:string"},
		[3]string{"timestamp", timeField(t.Timestamp), "xsd:dateTime"})
}

// TaskChannel is the fault channel of a task, as GenieACS names it: a
// task's fault has the ID FaultID(device, TaskChannel(taskID)).
func TaskChannel(taskID string) string { return "task_" + taskID }

// TaskOfChannel returns the task ID of a task's fault channel.
func TaskOfChannel(channel string) (taskID string, ok bool) {
	id, ok := strings.CutPrefix(channel, "task_")
	return id, ok && id != ""
}

// FaultID is GenieACS's fault _id: "<deviceId>:<channel>".
func FaultID(device, channel string) string { return device + ":" + channel }

// SplitFaultID splits a FaultID at its last ':' (device IDs escape ':',
// channels have none). ok is false when either part would be empty.
func SplitFaultID(id string) (device, channel string, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 || i == len(id)-1 {
		return "", "", false
	}
	return id[:i], id[i+1:], true
}

// FaultCode is a fault code as GenieACS writes it: a CWMP fault the CPE
// sent ("9002") is "cwmp.9002"; the ACS's own codes ("timeout",
// "session_terminated", ...) are kept.
func FaultCode(code string) string {
	if code == "" {
		return code
	}
	if _, err := strconv.ParseUint(code, 10, 32); err == nil {
		return "cwmp." + code
	}
	return code
}

// Fault is a fault in GenieACS's NBI shape (GET /faults): _id is
// FaultID(Device, Channel); Timestamp is ISO 8601 with milliseconds.
// edgeacs does not retry a faulted task, so Retries is 0 unless a store
// counts otherwise.
type Fault struct {
	ID        string            `json:"_id"`
	Device    string            `json:"device"`
	Channel   string            `json:"channel"`
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Detail    map[string]string `json:"detail,omitempty"`
	Timestamp string            `json:"timestamp"`
	Retries   int               `json:"retries"`
}

// NewFault returns the fault of device on channel, with its code as
// FaultCode writes it.
func NewFault(device, channel, code, message string, detail map[string]string, at time.Time) Fault {
	return Fault{
		ID: FaultID(device, channel), Device: device, Channel: channel,
		Code: FaultCode(code), Message: message, Detail: detail, Timestamp: timeField(at),
	}
}

// Record is what a query from ParseRecordQuery(b, FaultFields...)
// evaluates for f.
func (f *Fault) Record() *Record {
	return recordOf(f.ID,
		[3]string{"device", f.Device, "xsd:string"},
		[3]string{"channel", f.Channel, "xsd:string"},
		[3]string{"code", f.Code, "xsd:string"},
		[3]string{"message", f.Message, "xsd:string"},
		[3]string{"timestamp", f.Timestamp, "xsd:dateTime"},
		[3]string{"retries", strconv.Itoa(f.Retries), "xsd:int"})
}

// SelectFields applies a projection to a flat document (a task or a fault
// as a JSON object): a top-level field is kept when the projection selects
// it or anything under it (then whole), and _id always is. doc is changed
// and returned.
func SelectFields(doc map[string]any, p Projection) map[string]any {
	if p.All() {
		return doc
	}
	for k := range doc {
		if k != "_id" && !p.covers(k) && !p.reaches(k) {
			delete(doc, k)
		}
	}
	return doc
}
