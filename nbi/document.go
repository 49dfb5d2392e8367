package nbi

import (
	"strings"
	"time"
)

// DeviceDocument renders a device as GenieACS's NBI returns it from
// GET /devices: _id, _deviceId {_Manufacturer, _OUI, _ProductClass,
// _SerialNumber}, _lastInform, _registered, _lastBoot and _lastBootstrap
// (when known), _tags (when any), and the parameter tree as nested
// objects. An object node carries _object: true, _writable and _timestamp;
// a leaf carries _object: false, _value (a JSON number for numeric types, a
// boolean for xsd:boolean, an ISO string for xsd:dateTime, else a string),
// _type, _timestamp and _writable (no _value or _type while its value was
// never read: Entry.NoValue). Attributes that are unknown are left
// out; dates are ISO 8601 with milliseconds, as JavaScript writes them.
//
// Only what p selects is rendered. As with a MongoDB projection, the
// ancestors of a selected node appear only as containers (without their
// own attributes), and _id is always there.
//
// Entries whose path has an empty segment or a segment starting with '_'
// are skipped: they cannot be told apart from the document's own fields.
// The result does not depend on the order of d.Entries.
func DeviceDocument(d DocSource, p Projection) map[string]any {
	doc := map[string]any{"_id": d.ID()}
	id := d.DeviceID()
	devID := map[string]any{}
	for _, f := range [...]struct {
		name, v string
	}{
		{"_Manufacturer", id.Manufacturer},
		{"_OUI", id.OUI},
		{"_ProductClass", id.ProductClass},
		{"_SerialNumber", id.SerialNumber},
	} {
		if p.covers("_deviceId." + f.name) {
			devID[f.name] = f.v
		}
	}
	if len(devID) > 0 {
		doc["_deviceId"] = devID
	}
	setTime := func(name string, t time.Time) {
		if !t.IsZero() && p.covers(name) {
			doc[name] = formatTime(t)
		}
	}
	setTime("_lastInform", d.LastInform())
	setTime("_registered", d.Registered())
	if b, ok := d.(Boots); ok {
		setTime("_lastBoot", b.LastBoot())
		setTime("_lastBootstrap", b.LastBootstrap())
	}
	if tags := d.Tags(); len(tags) > 0 && p.covers("_tags") {
		doc["_tags"] = append([]string{}, tags...)
	}
	for e := range d.Entries() {
		addEntry(doc, e, p)
	}
	return doc
}

func addEntry(doc map[string]any, e Entry, p Projection) {
	path := e.Path
	object := e.Object || strings.HasSuffix(path, ".")
	path = strings.TrimSuffix(path, ".")
	if !validDocPath(path) {
		return
	}
	attrs := entryAttrs(e, object)
	if !p.covers(path) {
		// Only single attributes, if any, are selected.
		if !p.reaches(path) {
			return
		}
		picked := map[string]any{}
		for k, v := range attrs {
			if p.covers(path + "." + k) {
				picked[k] = v
			}
		}
		if len(picked) == 0 {
			return
		}
		attrs = picked
	}
	n := ensure(doc, path, p)
	for k, v := range attrs {
		n[k] = v
	}
}

func entryAttrs(e Entry, object bool) map[string]any {
	a := map[string]any{"_object": object}
	if !object && !e.NoValue {
		a["_value"] = typedValue(e.Value, e.Type)
		if e.Type != "" {
			a["_type"] = e.Type
		}
	}
	if !e.Timestamp.IsZero() {
		a["_timestamp"] = formatTime(e.Timestamp)
	}
	if e.Writable != nil {
		a["_writable"] = *e.Writable
	}
	if e.Notification != nil {
		a["_notification"] = *e.Notification
	}
	if e.AccessList != nil {
		a["_accessList"] = append([]string{}, e.AccessList...)
	}
	return a
}

// ensure returns the node for path, creating it and its ancestors. An
// ancestor created here is known to be an object (it has a child), and
// says so when the projection selects it whole; an entry of its own may
// later add to or override its attributes.
func ensure(doc map[string]any, path string, p Projection) map[string]any {
	n := doc
	for i := 0; ; {
		j := strings.IndexByte(path[i:], '.')
		end := len(path)
		if j >= 0 {
			end = i + j
		}
		seg := path[i:end]
		child, _ := n[seg].(map[string]any)
		if child == nil {
			child = map[string]any{}
			n[seg] = child
		}
		if end == len(path) {
			return child
		}
		if _, ok := child["_object"]; !ok && p.covers(path[:end]) {
			child["_object"] = true
		}
		n = child
		i = end + 1
	}
}

func validDocPath(path string) bool {
	if path == "" {
		return false
	}
	for seg := range strings.SplitSeq(path, ".") {
		if seg == "" || seg[0] == '_' || seg[0] == '$' {
			return false
		}
	}
	return true
}
