package nbi

import (
	"iter"
	"slices"
	"strings"
	"time"
)

// DeviceID is GenieACS's _deviceId: the identity a CPE reports in its
// Inform.
type DeviceID struct {
	Manufacturer string
	OUI          string
	ProductClass string
	SerialNumber string
}

// Device is what a query reads from a device. Edge and core adapt their own
// device records to it; Record is a ready-made implementation.
type Device interface {
	ID() string
	// Tags may be nil.
	Tags() []string
	// LastInform and Registered are zero when unknown; a zero time counts
	// as an absent field.
	LastInform() time.Time
	Registered() time.Time
	DeviceID() DeviceID
	// Param returns a parameter's value and CWMP type ("xsd:unsignedInt";
	// "" when the CPE sent none) by its full path without a trailing dot.
	// Object nodes have no value: ok is false for them.
	Param(path string) (value, xsdType string, ok bool)
}

// Boots is implemented by devices that know their last boot and bootstrap
// (GenieACS's _lastBoot and _lastBootstrap). It is optional: for a Device
// without it those fields are absent.
type Boots interface {
	LastBoot() time.Time
	LastBootstrap() time.Time
}

// Entry is one node of a device's parameter tree as a document renders it.
type Entry struct {
	// Path is the full path; an object's may end in '.'.
	Path  string
	Value string
	// Type is the CWMP type ("xsd:string"); "" when unknown.
	Type string
	// Object marks an object node; a Path ending in '.' is one too.
	Object bool
	// NoValue marks a leaf whose value was never read (its name came from
	// GetParameterNames): it renders without _value and _type, as in
	// GenieACS, and a query finds no value in it.
	NoValue bool
	// Writable is nil when unknown.
	Writable *bool
	// Timestamp is when the value (for an object: its children) was last
	// read from the CPE; zero when unknown.
	Timestamp time.Time
	// Notification and AccessList are the CPE's parameter attributes; nil
	// when never read.
	Notification *int
	AccessList   []string
}

// DocSource is what DeviceDocument renders: a Device plus its parameter
// tree. Entries may come in any order; the document does not depend on it.
type DocSource interface {
	Device
	Entries() iter.Seq[Entry]
}

// Meta is the non-parameter part of a Record.
type Meta struct {
	ID            string
	Tags          []string
	LastInform    time.Time
	Registered    time.Time
	LastBoot      time.Time
	LastBootstrap time.Time
	DeviceID      DeviceID
}

// Record is a DocSource (and so a Device) over data already in memory. An
// adapter that has a device and its parameter map at hand can fill one
// instead of writing its own.
type Record struct {
	Info Meta
	// Params is keyed by path; an object's key may end in '.'. Entry.Path
	// is ignored in favour of the key.
	Params map[string]Entry
}

var (
	_ DocSource = (*Record)(nil)
	_ Boots     = (*Record)(nil)
)

// ID implements Device.
func (r *Record) ID() string { return r.Info.ID }

// Tags implements Device.
func (r *Record) Tags() []string { return r.Info.Tags }

// LastInform implements Device.
func (r *Record) LastInform() time.Time { return r.Info.LastInform }

// Registered implements Device.
func (r *Record) Registered() time.Time { return r.Info.Registered }

// LastBoot implements Boots.
func (r *Record) LastBoot() time.Time { return r.Info.LastBoot }

// LastBootstrap implements Boots.
func (r *Record) LastBootstrap() time.Time { return r.Info.LastBootstrap }

// DeviceID implements Device.
func (r *Record) DeviceID() DeviceID { return r.Info.DeviceID }

// Param implements Device.
func (r *Record) Param(path string) (value, xsdType string, ok bool) {
	e, ok := r.Params[path]
	if !ok || e.Object || e.NoValue || strings.HasSuffix(path, ".") {
		return "", "", false
	}
	return e.Value, e.Type, true
}

// Entries implements DocSource, in path order.
func (r *Record) Entries() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		keys := make([]string, 0, len(r.Params))
		for k := range r.Params {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			e := r.Params[k]
			e.Path = k
			if !yield(e) {
				return
			}
		}
	}
}
