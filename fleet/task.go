package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadTask means a task was refused before queuing: unknown name or
// malformed arguments. The API answers 400 with the wrapped message.
var ErrBadTask = errors.New("bad task")

// Task kinds: the GenieACS NBI task names, plus the CWMP methods GenieACS
// lacks.
const (
	TaskGetParameterValues     = "getParameterValues"
	TaskSetParameterValues     = "setParameterValues"
	TaskGetParameterNames      = "getParameterNames"
	TaskGetParameterAttributes = "getParameterAttributes"
	TaskSetParameterAttributes = "setParameterAttributes"
	TaskAddObject              = "addObject"
	TaskDeleteObject           = "deleteObject"
	TaskReboot                 = "reboot"
	TaskFactoryReset           = "factoryReset"
	TaskDownload               = "download"
	TaskUpload                 = "upload"
	TaskRefreshObject          = "refreshObject"
	TaskScheduleInform         = "scheduleInform"
	TaskGetRPCMethods          = "getRPCMethods"
)

// TaskKinds lists every task name accepted, in a stable order.
var TaskKinds = []string{
	TaskGetParameterValues, TaskSetParameterValues, TaskGetParameterNames,
	TaskGetParameterAttributes, TaskSetParameterAttributes, TaskAddObject,
	TaskDeleteObject, TaskReboot, TaskFactoryReset, TaskDownload, TaskUpload,
	TaskRefreshObject, TaskScheduleInform, TaskGetRPCMethods,
	TaskPing, TaskTraceRoute, TaskDownloadDiagnostics, TaskUploadDiagnostics, TaskNSLookup,
}

// TaskStatus is where a task stands: pending → running → done | fault | expired.
type TaskStatus string

// Task statuses.
const (
	StatusPending TaskStatus = "pending"
	StatusRunning TaskStatus = "running"
	StatusDone    TaskStatus = "done"
	StatusFault   TaskStatus = "fault"
	StatusExpired TaskStatus = "expired"
)

// Final reports whether no further change will happen to a task in status s.
func (s TaskStatus) Final() bool {
	return s == StatusDone || s == StatusFault || s == StatusExpired
}

// ParameterValue is one [name, value, type] triple of a setParameterValues
// task or a result. In JSON it is an array, as in GenieACS: the value may be
// a string, number or boolean, and the type ("xsd:string", ...) is optional.
type ParameterValue struct {
	// toarray: CBOR writes [name, value, type] instead of a map with
	// field names, which halves a delta's size and its decode time.
	_     struct{} `cbor:",toarray"`
	Name  string
	Value string
	Type  string
}

// MarshalJSON writes [name, value, type].
func (p ParameterValue) MarshalJSON() ([]byte, error) {
	return json.Marshal([]string{p.Name, p.Value, p.Type})
}

// UnmarshalJSON reads [name, value] or [name, value, type]. A JSON boolean
// value implies xsd:boolean and a number xsd:int (xsd:unsignedInt when it
// does not fit), as GenieACS infers them.
func (p *ParameterValue) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("parameter value must be [name, value, type?]: %w", err)
	}
	if len(raw) < 2 || len(raw) > 3 {
		return fmt.Errorf("parameter value must be [name, value, type?], got %d elements", len(raw))
	}
	if err := json.Unmarshal(raw[0], &p.Name); err != nil {
		return fmt.Errorf("parameter name must be a string: %w", err)
	}
	p.Value, p.Type = "", ""
	v := bytes.TrimSpace(raw[1])
	switch {
	case len(v) > 0 && v[0] == '"':
		if err := json.Unmarshal(v, &p.Value); err != nil {
			return fmt.Errorf("parameter %s value: %w", p.Name, err)
		}
	case bytes.Equal(v, []byte("true")), bytes.Equal(v, []byte("false")):
		p.Value, p.Type = string(v), "xsd:boolean"
	default:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("parameter %s value must be a string, boolean or integer, got %s", p.Name, v)
		}
		p.Value = strconv.FormatInt(n, 10)
		p.Type = "xsd:int"
		if n > 1<<31-1 || n < -1<<31 {
			p.Type = "xsd:long"
			if n >= 0 && n <= 1<<32-1 {
				p.Type = "xsd:unsignedInt"
			}
		}
	}
	if len(raw) == 3 {
		var typ string
		if err := json.Unmarshal(raw[2], &typ); err != nil {
			return fmt.Errorf("parameter %s type must be a string: %w", p.Name, err)
		}
		if typ != "" {
			p.Type = typ
		}
	}
	return nil
}

// ParameterAttribute is one entry of a setParameterAttributes task or a
// getParameterAttributes result. Nil fields are left unchanged on set.
type ParameterAttribute struct {
	Name         string   `json:"name" cbor:"1,keyasint"`
	Notification *int     `json:"notification,omitempty" cbor:"2,keyasint,omitempty"`
	AccessList   []string `json:"accessList,omitempty" cbor:"3,keyasint,omitempty"`
}

// ParameterInfo is one entry of a getParameterNames result.
type ParameterInfo struct {
	Name     string `json:"name" cbor:"1,keyasint"`
	Writable bool   `json:"writable" cbor:"2,keyasint"`
}

// TaskResult is what the CPE answered, by task kind.
type TaskResult struct {
	ParameterValues     []ParameterValue     `json:"parameterValues,omitempty" cbor:"1,keyasint,omitempty"`
	ParameterNames      []ParameterInfo      `json:"parameterNames,omitempty" cbor:"2,keyasint,omitempty"`
	ParameterAttributes []ParameterAttribute `json:"parameterAttributes,omitempty" cbor:"3,keyasint,omitempty"`
	InstanceNumber      uint32               `json:"instanceNumber,omitempty" cbor:"4,keyasint,omitempty"`
	// Status is the CWMP Status of SPV/AddObject/DeleteObject/Download:
	// 0 applied, 1 committed but applied later (for example after a reboot).
	Status       int       `json:"status,omitempty" cbor:"5,keyasint,omitempty"`
	MethodList   []string  `json:"methodList,omitempty" cbor:"6,keyasint,omitempty"`
	StartTime    time.Time `json:"startTime,omitzero" cbor:"7,keyasint,omitzero"`
	CompleteTime time.Time `json:"completeTime,omitzero" cbor:"8,keyasint,omitzero"`
	// Diagnostic is a diagnostic task's results (see IsDiagnostic).
	Diagnostic *Diagnostic `json:"diagnostic,omitempty" cbor:"25,keyasint,omitempty"`
}

// TaskFault is why a task ended in StatusFault: a CWMP fault code and
// string from the CPE, or one of the edge's own codes ("timeout",
// "session_terminated", "invalid_response", "expired").
type TaskFault struct {
	Code    string `json:"code" cbor:"1,keyasint"`
	Message string `json:"message" cbor:"2,keyasint"`
	// Detail carries per-parameter SPV faults: name → "code message".
	Detail map[string]string `json:"detail,omitempty" cbor:"3,keyasint,omitempty"`
}

// Task is one operation for one device. Its JSON is GenieACS's NBI task
// shape (name plus the kind's arguments), extended with the stored fields
// _id, device, status, timestamp and the result or fault.
type Task struct {
	ID        string     `json:"_id" cbor:"1,keyasint"`
	Device    string     `json:"device" cbor:"2,keyasint"`
	Name      string     `json:"name" cbor:"3,keyasint"`
	Status    TaskStatus `json:"status" cbor:"4,keyasint"`
	Timestamp time.Time  `json:"timestamp" cbor:"5,keyasint"`
	// Expiry is the time after which a still pending task is dropped as expired.
	Expiry time.Time `json:"expiry,omitzero" cbor:"6,keyasint,omitzero"`
	// Edge is the edge the core dispatched the task to (or the edge that
	// created it); empty while the device has no home edge. The core's
	// record keeps it while the task moves, so it names the one edge that
	// may run the task.
	Edge string `json:"edge,omitempty" cbor:"7,keyasint,omitempty"`

	ParameterNames      []string             `json:"parameterNames,omitempty" cbor:"10,keyasint,omitempty"`
	ParameterValues     []ParameterValue     `json:"parameterValues,omitempty" cbor:"11,keyasint,omitempty"`
	ParameterAttributes []ParameterAttribute `json:"parameterAttributes,omitempty" cbor:"12,keyasint,omitempty"`
	ObjectName          string               `json:"objectName,omitempty" cbor:"13,keyasint,omitempty"`
	ParameterPath       string               `json:"parameterPath,omitempty" cbor:"14,keyasint,omitempty"`
	NextLevel           bool                 `json:"nextLevel,omitempty" cbor:"15,keyasint,omitempty"`
	ParameterKey        string               `json:"parameterKey,omitempty" cbor:"16,keyasint,omitempty"`
	FileType            string               `json:"fileType,omitempty" cbor:"17,keyasint,omitempty"`
	FileName            string               `json:"fileName,omitempty" cbor:"18,keyasint,omitempty"`
	TargetFileName      string               `json:"targetFileName,omitempty" cbor:"19,keyasint,omitempty"`
	URL                 string               `json:"url,omitempty" cbor:"20,keyasint,omitempty"`
	Username            string               `json:"username,omitempty" cbor:"21,keyasint,omitempty"`
	Password            string               `json:"password,omitempty" cbor:"22,keyasint,omitempty"`
	FileSize            uint32               `json:"fileSize,omitempty" cbor:"23,keyasint,omitempty"`
	DelaySeconds        uint32               `json:"delaySeconds,omitempty" cbor:"24,keyasint,omitempty"`
	CommandKey          string               `json:"commandKey,omitempty" cbor:"25,keyasint,omitempty"`

	// Diagnostics' arguments (see IsDiagnostic; url is URL above): the
	// host to ping, trace or look up; NumberOfRepetitions (ping,
	// nslookup) or NumberOfTries (traceroute), 0 for the CPE's default;
	// the traceroute's MaxHopCount; the nslookup's DNS server; the upload
	// test's TestFileLength in bytes.
	Host           string `json:"host,omitempty" cbor:"45,keyasint,omitempty"`
	Count          uint32 `json:"count,omitempty" cbor:"46,keyasint,omitempty"`
	MaxHopCount    uint32 `json:"maxHopCount,omitempty" cbor:"47,keyasint,omitempty"`
	DNSServer      string `json:"dnsServer,omitempty" cbor:"48,keyasint,omitempty"`
	TestFileLength uint32 `json:"testFileLength,omitempty" cbor:"49,keyasint,omitempty"`

	// Attempts counts sessions in which the task was sent to the CPE.
	Attempts int         `json:"attempts,omitempty" cbor:"30,keyasint,omitempty"`
	Updated  time.Time   `json:"updated,omitzero" cbor:"31,keyasint,omitzero"`
	Result   *TaskResult `json:"result,omitempty" cbor:"32,keyasint,omitempty"`
	Fault    *TaskFault  `json:"fault,omitempty" cbor:"33,keyasint,omitempty"`

	// Rollout names the firmware rollout that created the task (core
	// rollouts), so its result maps back to the rollout's device; empty
	// for any other task. Edges carry it without acting on it.
	Rollout string `json:"rollout,omitempty" cbor:"40,keyasint,omitempty"`
}

// taskRequest is the JSON a client posts; only the arguments, plus
// GenieACS's optional expiry in seconds.
type taskRequest struct {
	Name                string               `json:"name"`
	ParameterNames      []string             `json:"parameterNames"`
	ParameterValues     []ParameterValue     `json:"parameterValues"`
	ParameterAttributes []ParameterAttribute `json:"parameterAttributes"`
	ObjectName          *string              `json:"objectName"`
	ParameterPath       *string              `json:"parameterPath"`
	NextLevel           bool                 `json:"nextLevel"`
	ParameterKey        string               `json:"parameterKey"`
	FileType            string               `json:"fileType"`
	FileName            string               `json:"fileName"`
	TargetFileName      string               `json:"targetFileName"`
	URL                 string               `json:"url"`
	Username            string               `json:"username"`
	Password            string               `json:"password"`
	DelaySeconds        uint32               `json:"delaySeconds"`
	CommandKey          string               `json:"commandKey"`
	Expiry              float64              `json:"expiry"`
	Host                string               `json:"host"`
	Count               uint32               `json:"count"`
	MaxHopCount         uint32               `json:"maxHopCount"`
	DNSServer           string               `json:"dnsServer"`
	TestFileLength      uint32               `json:"testFileLength"`
	// Fields GenieACS clients send back when reposting a stored task.
	ID        string          `json:"_id"`
	Device    string          `json:"device"`
	Edge      string          `json:"edge"`
	Timestamp json.RawMessage `json:"timestamp"`
}

// MaxTaskBody bounds the JSON of one task request.
const MaxTaskBody = 1 << 20

// ParseTask decodes and validates a task request in GenieACS's NBI shape
// for device, stamping it pending at now. Unknown fields, duplicate keys
// (also wrapping ErrDuplicateKey), unknown names and malformed arguments
// are errors wrapping ErrBadTask.
func ParseTask(body []byte, device string, now time.Time) (*Task, error) {
	if len(body) > MaxTaskBody {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrBadTask, MaxTaskBody)
	}
	if err := RejectDuplicateKeys(body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTask, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req taskRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTask, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the task object", ErrBadTask)
	}
	t := &Task{
		Device: device, Name: req.Name, Status: StatusPending, Timestamp: now,
		ParameterNames: req.ParameterNames, ParameterValues: req.ParameterValues,
		ParameterAttributes: req.ParameterAttributes, NextLevel: req.NextLevel,
		ParameterKey: req.ParameterKey, FileType: req.FileType, FileName: req.FileName,
		TargetFileName: req.TargetFileName, URL: req.URL, Username: req.Username,
		Password: req.Password, DelaySeconds: req.DelaySeconds, CommandKey: req.CommandKey,
		Host: req.Host, Count: req.Count, MaxHopCount: req.MaxHopCount, DNSServer: req.DNSServer,
		TestFileLength: req.TestFileLength,
	}
	if req.ObjectName != nil {
		t.ObjectName = *req.ObjectName
	}
	if req.ParameterPath != nil {
		t.ParameterPath = *req.ParameterPath
	}
	if req.Expiry < 0 {
		return nil, fmt.Errorf("%w: expiry must be positive seconds", ErrBadTask)
	}
	if req.Expiry > 0 {
		t.Expiry = now.Add(time.Duration(req.Expiry * float64(time.Second)))
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

var knownTypes = map[string]bool{
	"xsd:string": true, "xsd:int": true, "xsd:unsignedInt": true, "xsd:boolean": true,
	"xsd:dateTime": true, "xsd:base64": true, "xsd:hexBinary": true, "xsd:long": true,
	"xsd:unsignedLong": true,
}

// maxPathLen is the CWMP limit on parameter names (string(256)).
const maxPathLen = 256

func checkPath(field, p string, object bool) error {
	switch {
	case p == "" && !object:
		return fmt.Errorf("%w: %s: empty parameter name", ErrBadTask, field)
	case len(p) > maxPathLen:
		return fmt.Errorf("%w: %s: name longer than %d characters", ErrBadTask, field, maxPathLen)
	case strings.ContainsAny(p, " \t\r\n<>&\"'"):
		return fmt.Errorf("%w: %s: invalid character in %q", ErrBadTask, field, p)
	case object && p != "" && !strings.HasSuffix(p, "."):
		return fmt.Errorf("%w: %s: object name %q must end with '.'", ErrBadTask, field, p)
	}
	return nil
}

// virtualPrefix starts the names of virtual parameters
// (VirtualParameters.<name>), which the edge computes with their scripts.
const virtualPrefix = "VirtualParameters."

// checkVirtual checks a name under VirtualParameters: one name below it,
// or "*" where a pattern may stand (a read). Other names pass.
func checkVirtual(field, p string, pattern bool) error {
	rest, ok := strings.CutPrefix(strings.TrimSuffix(p, "."), virtualPrefix)
	if !ok {
		return nil
	}
	switch {
	case rest == "" || strings.Contains(rest, "."):
		return fmt.Errorf("%w: %s: %q: a virtual parameter is VirtualParameters.<name>", ErrBadTask, field, p)
	case rest == "*" && !pattern, strings.ContainsAny(rest, "*[]") && rest != "*":
		return fmt.Errorf("%w: %s: %q: name one virtual parameter", ErrBadTask, field, p)
	}
	return nil
}

// Validate checks that the task's name is known and its arguments are
// well formed for that kind.
func (t *Task) Validate() error {
	switch t.Name {
	case TaskGetParameterValues, TaskGetParameterAttributes:
		if len(t.ParameterNames) == 0 {
			return fmt.Errorf("%w: %s needs parameterNames", ErrBadTask, t.Name)
		}
		for _, n := range t.ParameterNames {
			if err := checkPath("parameterNames", n, false); err != nil {
				return err
			}
			if t.Name == TaskGetParameterValues {
				if err := checkVirtual("parameterNames", n, true); err != nil {
					return err
				}
			}
		}
	case TaskSetParameterValues:
		if len(t.ParameterValues) == 0 {
			return fmt.Errorf("%w: setParameterValues needs parameterValues", ErrBadTask)
		}
		for _, pv := range t.ParameterValues {
			if err := checkPath("parameterValues", pv.Name, false); err != nil {
				return err
			}
			if strings.HasSuffix(pv.Name, ".") {
				return fmt.Errorf("%w: parameterValues: %q is an object, not a parameter", ErrBadTask, pv.Name)
			}
			if err := checkVirtual("parameterValues", pv.Name, false); err != nil {
				return err
			}
			// No type: the edge sends the device's own type for the
			// parameter (fetching it first when it has none cached), as
			// GenieACS does, so `set PATH=5` works on an unsignedInt.
			if pv.Type != "" && !knownTypes[pv.Type] {
				return fmt.Errorf("%w: parameterValues: unknown type %q for %s", ErrBadTask, pv.Type, pv.Name)
			}
		}
	case TaskSetParameterAttributes:
		if len(t.ParameterAttributes) == 0 {
			return fmt.Errorf("%w: setParameterAttributes needs parameterAttributes", ErrBadTask)
		}
		for _, pa := range t.ParameterAttributes {
			if err := checkPath("parameterAttributes", pa.Name, false); err != nil {
				return err
			}
			if pa.Notification != nil && (*pa.Notification < 0 || *pa.Notification > 6) {
				return fmt.Errorf("%w: parameterAttributes: notification %d out of 0..6", ErrBadTask, *pa.Notification)
			}
			if pa.Notification == nil && pa.AccessList == nil {
				return fmt.Errorf("%w: parameterAttributes: %s changes nothing", ErrBadTask, pa.Name)
			}
		}
	case TaskGetParameterNames:
		if err := checkPath("parameterPath", t.ParameterPath, strings.HasSuffix(t.ParameterPath, ".") || t.ParameterPath == ""); err != nil {
			return err
		}
	case TaskAddObject, TaskDeleteObject:
		if t.ObjectName == "" {
			return fmt.Errorf("%w: %s needs objectName", ErrBadTask, t.Name)
		}
		if err := checkPath("objectName", t.ObjectName, true); err != nil {
			return err
		}
		if t.Name == TaskDeleteObject && len(t.ParameterValues) > 0 {
			return fmt.Errorf("%w: deleteObject takes no parameterValues", ErrBadTask)
		}
		// GenieACS-style values for the new instance: names relative to it
		// ("SSID", "Security.ModeEnabled"), leaves, not objects.
		for i, pv := range t.ParameterValues {
			n := pv.Name
			if err := checkPath("parameterValues", n, false); err != nil {
				return err
			}
			if strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".") || strings.Contains(n, "..") || strings.Contains(n, "/") {
				return fmt.Errorf("%w: addObject parameterValues: %q must be a parameter name relative to the new instance", ErrBadTask, n)
			}
			if pv.Type == "" {
				t.ParameterValues[i].Type = "xsd:string"
			} else if !knownTypes[pv.Type] {
				return fmt.Errorf("%w: addObject parameterValues: unknown type %q for %s", ErrBadTask, pv.Type, n)
			}
		}
	case TaskRefreshObject:
		if err := checkPath("objectName", t.ObjectName, true); err != nil {
			// GenieACS accepts a parameter name too; refresh just that leaf.
			if err2 := checkPath("objectName", t.ObjectName, false); err2 != nil {
				return err
			}
		}
		if err := checkVirtual("objectName", t.ObjectName, true); err != nil {
			return err
		}
	case TaskDownload:
		if t.FileName == "" && t.URL == "" {
			return fmt.Errorf("%w: download needs fileName (a file the edge serves) or url", ErrBadTask)
		}
		if t.FileType == "" {
			t.FileType = "1 Firmware Upgrade Image"
		}
	case TaskUpload:
		if t.FileType == "" {
			return fmt.Errorf("%w: upload needs fileType (e.g. \"1 Vendor Configuration File\")", ErrBadTask)
		}
	case TaskReboot, TaskFactoryReset, TaskScheduleInform, TaskGetRPCMethods:
	case TaskPing, TaskTraceRoute, TaskDownloadDiagnostics, TaskUploadDiagnostics, TaskNSLookup:
		if err := t.validateDiagnostic(); err != nil {
			return err
		}
	case "":
		return fmt.Errorf("%w: missing task name", ErrBadTask)
	default:
		return fmt.Errorf("%w: unknown task name %q (known: %s)", ErrBadTask, t.Name, strings.Join(TaskKinds, ", "))
	}
	if len(t.CommandKey) > 32 || len(t.ParameterKey) > 32 {
		return fmt.Errorf("%w: commandKey and parameterKey are limited to 32 characters", ErrBadTask)
	}
	return nil
}
