package core

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/oklog/ulid/v2"
)

// uplink applies one record of an edge's uplink (OpUplink), dispatching on
// the record's kind. The record's bytes are as the edge wrote them; the
// edge is the one the link authenticated (Command.Edge), whatever the
// record says. Every refusal is a domain error returned before the first
// write, which apply turns into a consumed, counted record.
func (p processor) uplink(w *wtx, c *Command) error {
	if c.Edge == "" || c.Seq == 0 {
		return fmt.Errorf("%w: uplink record without an edge and a sequence", ErrBadRequest)
	}
	kind, err := fleet.KindOf(c.Record)
	if err != nil {
		return fmt.Errorf("%w: uplink record %s/%d: %w", ErrBadRequest, c.Edge, c.Seq, err)
	}
	switch kind {
	case fleet.KindDeviceDelta:
		dc, err := uplinkDelta(c)
		if err != nil {
			return err
		}
		return p.deviceDelta(w, dc)
	case fleet.KindTask:
		var t fleet.Task
		if err := fleet.Unmarshal(c.Record, &t); err != nil {
			return fmt.Errorf("%w: uplink record %s/%d: %w", ErrBadRequest, c.Edge, c.Seq, err)
		}
		return p.taskReport(w, c, &t)
	case fleet.KindChannelFault:
		var cf fleet.ChannelFault
		if err := fleet.Unmarshal(c.Record, &cf); err != nil {
			return fmt.Errorf("%w: uplink record %s/%d: %w", ErrBadRequest, c.Edge, c.Seq, err)
		}
		return p.channelFault(w, c, &cf)
	case fleet.KindTaskDrop:
		var td fleet.TaskDrop
		if err := fleet.Unmarshal(c.Record, &td); err != nil {
			return fmt.Errorf("%w: uplink record %s/%d: %w", ErrBadRequest, c.Edge, c.Seq, err)
		}
		return p.taskDrop(w, c, &td)
	default:
		return fmt.Errorf("%w: uplink record %s/%d: an edge does not send %d records", ErrBadRequest, c.Edge, c.Seq, kind)
	}
}

// uplinkDelta decodes a DeviceDelta record the way decodeEntry decodes an
// OpDeviceDelta command: parameters stay raw CBOR (they are most of the
// bytes), so an uplink delta costs what a direct one does. The record's
// other fields are read by hand when they are in the form the edge writes
// (fastDelta), which took a third of the apply path's decoding; anything
// else goes through the CBOR library, whose answer is the reference.
func uplinkDelta(c *Command) (*Command, error) {
	var dd fleet.DeviceDelta
	raw, ok := fastDelta(c.Record[2:], &dd)
	if !ok {
		var ad applyDelta
		if err := cmdDec.Unmarshal(c.Record[2:], &ad); err != nil {
			return nil, fmt.Errorf("%w: uplink record %s/%d: %w: %v", ErrBadRequest, c.Edge, c.Seq, fleet.ErrBadRecord, err)
		}
		dd, raw = fleet.DeviceDelta(ad.deltaFields), ad.Parameters
	}
	dd.Edge = c.Edge
	return &Command{V: c.V, Op: OpDeviceDelta, Time: c.Time, Delta: &dd, rawParams: raw}, nil
}

// fastDelta decodes a DeviceDelta's CBOR map into dd (all but Edge, which
// the link decides, and Parameters, returned raw) when it is in the form
// fleet.Marshal writes: a definite-length map whose keys are DeviceDelta's
// own, in increasing order, each with a value of its field's type
// (definite-length text strings, an untagged RFC 3339 time, arrays of
// them, parameters as [name, value, type] arrays, a boolean), and nothing
// after it. It reports false for anything else, without touching dd's
// fields beyond what it set; the caller then decodes with the CBOR
// library. Within that form the result is exactly the library's (the same
// time.Parse, strings as they are, empty arrays as empty slices), which
// matters: every node of a cluster, old and new code, must apply a record
// the same way.
func fastDelta(b []byte, dd *fleet.DeviceDelta) (rawParams, bool) {
	n, b, ok := cborHead(b, 5)
	if !ok || n > 11 {
		return nil, false
	}
	var raw rawParams
	var last uint64
	for range n {
		var k uint64
		if k, b, ok = cborHead(b, 0); !ok || k <= last || k > 11 {
			return nil, false
		}
		last = k
		switch k {
		case 1, 2, 3, 4, 5, 6:
			var s []byte
			if s, b, ok = cborText(b); !ok {
				return nil, false
			}
			switch k {
			case 1:
				dd.Device = string(s)
			case 3:
				dd.OUI = string(s)
			case 4:
				dd.ProductClass = string(s)
			case 5:
				dd.SerialNumber = string(s)
			case 6:
				dd.Manufacturer = string(s)
			}
		case 7:
			var s []byte
			if s, b, ok = cborText(b); !ok {
				return nil, false
			}
			t, err := time.Parse(time.RFC3339, string(s))
			if err != nil {
				return nil, false
			}
			dd.LastInform = t
		case 8, 10:
			var list []string
			if list, b, ok = cborTexts(b); !ok {
				return nil, false
			}
			if k == 8 {
				dd.Events = list
			} else {
				dd.Removed = list
			}
		case 9:
			rest, ok := skipParams(b)
			if !ok {
				return nil, false
			}
			raw, b = rawParams(b[:len(b)-len(rest)]), rest
		case 11:
			if len(b) == 0 || (b[0] != 0xf4 && b[0] != 0xf5) {
				return nil, false
			}
			dd.Bootstrap, b = b[0] == 0xf5, b[1:]
		}
	}
	return raw, len(b) == 0
}

// maxFastArray keeps fastDelta within the CBOR profile's array bound
// (fleet.CBOR: 1<<20 elements); a longer array is the library's to refuse.
const maxFastArray = 1 << 20

// cborText reads a definite-length text string.
func cborText(b []byte) (s, rest []byte, ok bool) {
	l, b, ok := cborHead(b, 3)
	if !ok || l > uint64(len(b)) {
		return nil, nil, false
	}
	return b[:l], b[l:], true
}

// cborTexts reads a definite-length array of text strings.
func cborTexts(b []byte) (list []string, rest []byte, ok bool) {
	n, b, ok := cborHead(b, 4)
	if !ok || n > maxFastArray || n > uint64(len(b)) {
		return nil, nil, false
	}
	list = make([]string, n)
	for i := range list {
		var s []byte
		if s, b, ok = cborText(b); !ok {
			return nil, nil, false
		}
		list[i] = string(s)
	}
	return list, b, true
}

// skipParams steps over a delta's parameters, an array of [name, value,
// type] text-string triples (the form rawParams.forEach reads).
func skipParams(b []byte) (rest []byte, ok bool) {
	n, b, ok := cborHead(b, 4)
	if !ok || n > maxFastArray || n > uint64(len(b)) {
		return nil, false
	}
	for range n {
		var cnt uint64
		if cnt, b, ok = cborHead(b, 4); !ok || cnt != 3 {
			return nil, false
		}
		for range 3 {
			if _, b, ok = cborText(b); !ok {
				return nil, false
			}
		}
	}
	return b, true
}

// taskReport applies a task as an edge reports it: its creation at the
// edge (local API, credential provisioning) or its progress and result.
//
//   - An unknown ID is an edge-created task: it is stored as reported and
//     assigned to that edge; an unknown device is registered as a stub
//     homed there. If the device is homed at another edge, the new task
//     is dropped at once at the reporting edge (DownDrop), so it follows
//     the device like any other.
//   - A known task that is not final takes the reported status, result
//     and fault, as OpTaskResult does; only the edge it is assigned to may
//     report it.
//   - A final task is unchanged, and so is a task cancelled at the core
//     (its tombstone is consumed by the final report).
func (p processor) taskReport(w *wtx, c *Command, in *fleet.Task) error {
	if _, err := ulid.ParseStrict(in.ID); err != nil {
		return fmt.Errorf("%w: reported task ID %q is not a ULID", ErrBadRequest, in.ID)
	}
	if err := checkName("device ID", in.Device); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return fmt.Errorf("%w: reported task %s: %w", ErrBadRequest, in.ID, err)
	}
	switch in.Status {
	case fleet.StatusPending, fleet.StatusRunning, fleet.StatusDone, fleet.StatusFault, fleet.StatusExpired:
	default:
		return fmt.Errorf("%w: reported task %s: status %q", ErrBadRequest, in.ID, in.Status)
	}
	if in.Status == fleet.StatusFault && in.Fault == nil {
		return fmt.Errorf("%w: reported task %s: fault status without a fault", ErrBadRequest, in.ID)
	}
	t, ok, err := p.task(w, in.ID)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		_, gone, err := w.get(key(pCancelled, in.ID))
		if err != nil {
			return storageError{err}
		}
		if gone {
			if in.Status.Final() {
				if err := w.del(key(pCancelled, in.ID)); err != nil {
					return storageError{err}
				}
			}
			return nil
		}
		return p.edgeCreatedTask(w, c, in)
	}
	if t.Status.Final() {
		return nil
	}
	if t.Edge != c.Edge {
		return fmt.Errorf("%w: task %s is assigned to edge %q, not %s", ErrConflict, t.ID, t.Edge, c.Edge)
	}
	if in.Status == fleet.StatusPending || (in.Status == fleet.StatusRunning && t.Status == fleet.StatusRunning && in.Attempts <= t.Attempts) {
		return nil
	}
	t.Status = in.Status
	t.Updated = in.Updated
	if t.Updated.IsZero() {
		t.Updated = c.Time
	}
	// The edge counts the sessions that sent the task; it knows best.
	t.Attempts = max(t.Attempts, in.Attempts)
	// The keys the edge gave the CPE (a task's ULID unless set) are the
	// ones a later Inform or TransferComplete names: both APIs show them.
	if t.CommandKey == "" {
		t.CommandKey = in.CommandKey
	}
	if t.ParameterKey == "" {
		t.ParameterKey = in.ParameterKey
	}
	if in.Status.Final() {
		t.Result, t.Fault = in.Result, in.Fault
		// Values given without a type went with the device's type, which
		// only the edge knew: keep what was sent.
		for i := range t.ParameterValues {
			if i < len(in.ParameterValues) && t.ParameterValues[i].Type == "" && in.ParameterValues[i].Name == t.ParameterValues[i].Name {
				t.ParameterValues[i].Type = in.ParameterValues[i].Type
			}
		}
	}
	if err := p.putFleet(w, key(pTask, t.ID), t); err != nil {
		return err
	}
	return p.putTaskFault(w, t, c.Time)
}

// edgeCreatedTask stores a task the core learns from the edge that made it.
func (p processor) edgeCreatedTask(w *wtx, c *Command, in *fleet.Task) error {
	d, ov, ok, err := p.device(w, in.Device)
	if err != nil {
		return storageError{err}
	}
	dirty := !ok
	if !ok {
		d = &Device{ID: in.Device, Edge: c.Edge, Registered: c.Time}
	}
	t := *in
	t.Edge = c.Edge
	if !t.Status.Final() {
		if d.flags&devTasks == 0 {
			d.flags |= devTasks
			dirty = true
		}
		if d.Edge != "" && d.Edge != c.Edge {
			if err := p.appendDown(w, c, c.Edge, fleet.DownRecord{Kind: fleet.DownDrop, TaskID: t.ID, Device: t.Device}); err != nil {
				return err
			}
		}
	}
	if dirty {
		if err := p.putDev(w, d, ov); err != nil {
			return err
		}
	}
	if err := p.putFleet(w, key(pTask, t.ID), &t); err != nil {
		return err
	}
	if err := w.set(key(pDevTask, t.Device, t.ID), nil); err != nil {
		return storageError{err}
	}
	return p.putTaskFault(w, &t, c.Time)
}

// putTaskFault records a faulted task in the fault list.
func (p processor) putTaskFault(w *wtx, t *fleet.Task, at time.Time) error {
	if t.Status != fleet.StatusFault || t.Fault == nil {
		return nil
	}
	ft := t.Updated
	if ft.IsZero() {
		ft = at
	}
	return p.putRecord(w, key(pFault, t.Device, t.ID), Fault{Device: t.Device, TaskID: t.ID, Fault: *t.Fault, Time: ft})
}

// taskDrop applies an edge's confirmation that it deleted a task
// unexecuted (its answer to DownDrop). A task still pending and assigned
// to that edge becomes undispatched and goes to the device's home of this
// moment, if it has one. Anything else (the task ended, was cancelled, or
// was already handed on) makes the confirmation stale: nothing changes.
func (p processor) taskDrop(w *wtx, c *Command, td *fleet.TaskDrop) error {
	if err := checkName("task ID", td.Task); err != nil {
		return err
	}
	t, ok, err := p.task(w, td.Task)
	if err != nil {
		return storageError{err}
	}
	if !ok || t.Edge != c.Edge || t.Status != fleet.StatusPending {
		return nil
	}
	t.Edge = ""
	d, _, ok, err := p.device(w, t.Device)
	if err != nil {
		return storageError{err}
	}
	if ok && d.Edge != "" {
		// Wake: the device moved with work waiting; its next periodic
		// inform at the new edge may be hours away.
		if err := p.dispatchTask(w, c, t, d.Edge, true); err != nil {
			return err
		}
	}
	return p.putFleet(w, key(pTask, t.ID), t)
}

// staleDelta applies a delta older than what the device's new home
// reported: the device is not re-homed, its last inform and events stay,
// identity fields are only filled where empty, a bootstrap does not wipe
// the tree, and a value or removal lands only where what is stored is
// older than the delta's stamp. This is the only path that reads
// parameter timestamps: overlay entries carry theirs, and per-parameter
// keys are read only if the device ever spilled.
func (p processor) staleDelta(w *wtx, c *Command, d *Device, ov overlay, stamp time.Time) error {
	dd := c.Delta
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&d.OUI, dd.OUI}, {&d.ProductClass, dd.ProductClass}, {&d.SerialNumber, dd.SerialNumber}, {&d.Manufacturer, dd.Manufacturer},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	spilled := d.flags&devSpilled != 0
	// storedOlder reports whether what is stored for name is older than
	// stamp (or absent).
	storedOlder := func(name []byte) (bool, error) {
		if at, ok := ov.updated(name); ok {
			return stamp.After(at), nil
		}
		if !spilled {
			return true, nil
		}
		v, ok, err := w.get(key(pParam, d.ID, string(name)))
		if err != nil {
			return false, storageError{err}
		}
		if !ok {
			return true, nil
		}
		at, _ := paramTime(v)
		return stamp.After(at), nil
	}
	for _, r := range dd.Removed {
		if strings.HasSuffix(r, ".") {
			ov = ov.removeOlder(r, stamp)
			if spilled {
				if err := p.delParamsOlder(w, key(pParam, d.ID, r), stamp); err != nil {
					return err
				}
			}
			continue
		}
		older, err := storedOlder([]byte(r))
		if err != nil {
			return err
		}
		if !older {
			continue
		}
		ov = ov.remove(r)
		if spilled {
			if err := w.del(key(pParam, d.ID, r)); err != nil {
				return storageError{err}
			}
		}
	}
	err := deltaParams(c, func(name, value, typ []byte) error {
		older, err := storedOlder(name)
		if err != nil || !older {
			return err
		}
		ov = ov.set(name, encodeParamParts(stamp, typ, value))
		return nil
	})
	if err != nil {
		return err
	}
	return p.putDevSpill(w, d, ov)
}

// delParamsOlder deletes the per-parameter keys under prefix written
// before stamp.
func (p processor) delParamsOlder(w *wtx, prefix []byte, stamp time.Time) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := w.txn.NewIterator(opts)
	var dead [][]byte
	var err error
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		var at time.Time
		err = it.Item().Value(func(v []byte) error {
			at, _ = paramTime(v)
			return nil
		})
		if err != nil {
			break
		}
		if stamp.After(at) {
			dead = append(dead, it.Item().KeyCopy(nil))
		}
	}
	it.Close()
	if err != nil {
		return storageError{err}
	}
	for _, k := range dead {
		if err := w.del(k); err != nil {
			return storageError{err}
		}
	}
	return nil
}

// paramTime reads the update time of a parameter in its encodeParam form
// without decoding the rest.
func paramTime(enc []byte) (time.Time, bool) {
	if len(enc) < 9 || enc[0] != paramFormat {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(enc[1:9]))), true
}

// updated returns the update time of name's overlay entry.
func (o overlay) updated(name []byte) (time.Time, bool) {
	for i := range o {
		if string(o[i].name) == string(name) {
			return paramTime(o[i].enc)
		}
	}
	return time.Time{}, false
}

// removeOlder drops the entries under the object prefix written before stamp.
func (o overlay) removeOlder(prefix string, stamp time.Time) overlay {
	out := o[:0]
	for _, e := range o {
		if strings.HasPrefix(string(e.name), prefix) {
			if at, _ := paramTime(e.enc); stamp.After(at) {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}
