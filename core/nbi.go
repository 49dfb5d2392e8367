package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/nbi"
	"github.com/edgeacs/edgeacs/nbi/nbihttp"
)

// The GenieACS NBI on the core: the paths, parameters, status codes and
// document shapes of GenieACS's API (see /work/shared/GENIEACS.md), so a
// GenieACS script works against a core by changing its base URL and adding
// the Authorization header. Reads are served like the /api/v1 reads
// (locally, or ?consistent=true at the leader), writes go through the
// leader. The semantics of queries and documents live in package nbi.
//
// Answered on purpose without doing what GenieACS does:
//   - POST /devices/{id}/tasks?connection_request with no task: 501, the
//     core wakes a device only by sending it a task (its edge sends the
//     connection request when the task arrives).
//   - DELETE /faults/{id} of an unknown fault: 404 (GenieACS answers 200).

// nbiScanLimit bounds how many devices (or tasks) one query may examine
// when it does not pin _id: queries are evaluated in memory, one record at
// a time, so the bound caps the time and the ID list a query can cost. A
// fleet larger than this must narrow by _id ({"_id": {"$in": [...]}}) or
// page through /api/v1/devices. A variable so tests can lower it.
var nbiScanLimit = 1_000_000

// nbiTaskWait is how long POST /devices/{id}/tasks?connection_request
// waits for the task when the client gave no timeout, as the edge's alias
// does (GenieACS waits for the session to start, then up to 120 s for it
// to end).
const nbiTaskWait = 30 * time.Second

// nbiRoutes registers the GenieACS paths through h (handler()'s helper).
func (n *Node) nbiRoutes(h func(string, http.HandlerFunc)) {
	for _, p := range []string{"/devices", "/devices/{$}"} {
		h("GET "+p, n.read(n.nbiDevices))
	}
	h("POST /devices/{id}/tasks", n.write(n.nbiCreateTask))
	h("DELETE /devices/{id}", n.write(nbihttp.OK(n.deleteDevice)))
	h("POST /devices/{id}/tags/{tag}", n.write(nbihttp.OK(n.tagDevice(OpTag))))
	h("DELETE /devices/{id}/tags/{tag}", n.write(nbihttp.OK(n.tagDevice(OpUntag))))
	for _, p := range []string{"/tasks", "/tasks/{$}"} {
		h("GET "+p, n.read(n.nbiTasks))
	}
	h("DELETE /tasks/{id}", n.write(nbihttp.OK(n.cancelTask)))
	for _, p := range []string{"/faults", "/faults/{$}"} {
		h("GET "+p, n.read(n.nbiFaults))
	}
	h("DELETE /faults/{id}", n.write(n.nbiDeleteFault))
	h("PUT /presets/{name}", n.write(n.putPreset))
	h("DELETE /presets/{name}", n.write(nbihttp.OK(n.deletePreset)))
	h("PUT /files/{name}", n.putFile)
	h("DELETE /files/{name}", n.write(nbihttp.OK(n.deleteFile)))
	h("PUT /provisions/{name}", n.write(n.putProvision))
	h("DELETE /provisions/{name}", n.write(nbihttp.OK(n.deleteProvision)))
	h("PUT /virtual_parameters/{name}", n.write(n.putVirtualParameter))
	h("DELETE /virtual_parameters/{name}", n.write(nbihttp.OK(n.deleteVirtualParameter)))
}

// nbiBadRequest is a query the nbi package refused, as a 400.
func nbiBadRequest(err error) error {
	return fmt.Errorf("%w: %w", ErrBadRequest, err)
}

// nbiDevices answers GET/HEAD /devices/?query=&projection=&skip=&limit=
// with GenieACS device documents. A query that pins _id reads those
// devices; any other scans every device (up to nbiScanLimit), reading
// only the parameters the query names. total and X-Total-Count carry the
// match count; only the window's documents are loaded, one at a time as
// they are written.
func (n *Node) nbiDevices(w http.ResponseWriter, r *http.Request) {
	l, err := nbi.ParseList(r.URL.Query(), nil)
	if err != nil {
		writeError(w, nbiBadRequest(err))
		return
	}
	ids, err := n.fsm.nbiMatchDevices(r.Context(), l.Query, nbiScanLimit)
	if err != nil {
		writeError(w, err)
		return
	}
	lo, hi := l.Window(len(ids))
	n.nbiWriteList(w, r, len(ids), nbihttp.Docs(ids[lo:hi], func(id string) (any, error) {
		d, err := n.fsm.Device(id, true)
		if err != nil {
			return nil, err
		}
		return nbi.DeviceDocument(nbiRecord(d), l.Projection), nil
	}, isNotFound))
}

// nbiRecord is a core device as package nbi renders it, with the values of
// secret parameters hidden. The core keeps leaves only (no object nodes,
// writable flags or attributes): what an edge reports upstream.
func nbiRecord(d *Device) *nbi.Record {
	rec := &nbi.Record{
		Info: nbi.Meta{
			ID: d.ID, Tags: d.Tags, LastInform: d.LastInform, Registered: d.Registered,
			DeviceID: nbi.DeviceID{Manufacturer: d.Manufacturer, OUI: d.OUI, ProductClass: d.ProductClass, SerialNumber: d.SerialNumber},
		},
		Params: make(map[string]nbi.Entry, len(d.Parameters)),
	}
	for path, p := range d.Parameters {
		e := nbi.Entry{Value: p.Value, Type: p.Type, Timestamp: p.Updated}
		if fleet.IsSecretParameter(path) {
			e.Value = ""
		}
		rec.Params[path] = e
	}
	return rec
}

// nbiMatchDevices returns, in ID order, the IDs of the devices q matches:
// of those it pins by _id, or of every device when it pins none. A scan
// that would examine more than limit devices is ErrBadRequest. It runs in
// one read transaction and reads a device's parameters only as the query
// asks for them.
func (f *FSM) nbiMatchDevices(ctx context.Context, q *nbi.Query, limit int) ([]string, error) {
	var out []string
	params := len(q.ParamPaths()) > 0
	err := f.view(func(txn *badger.Txn) error {
		check := func(v []byte) error {
			d := &nbiDevice{txn: txn}
			ov, err := decodeDevice(v, &d.d, params)
			if err != nil {
				return err
			}
			d.ov = ov
			if q.Match(d) {
				out = append(out, d.d.ID)
			}
			return d.err
		}
		if ids, ok := q.IDs(); ok {
			for _, id := range ids {
				v, err := getRaw(txn, key(pDevice, id))
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := check(v); err != nil {
					return err
				}
			}
			return nil
		}
		seen := 0
		return scan(txn, []byte(pDevice), nil, func(_, v []byte) (bool, error) {
			if seen++; seen > limit {
				return false, fmt.Errorf("%w: the query would examine more than %d devices; pin _id (equality or $in) or page through /api/v1/devices", ErrBadRequest, limit)
			}
			if seen%1024 == 0 && ctx.Err() != nil {
				return false, ctx.Err()
			}
			return true, check(v)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("device query: %w", err)
	}
	return out, nil
}

// nbiDevice is a stored device as a query reads it, inside a read
// transaction: parameters come from the record's overlay, else (when the
// device has spilled) from their own keys, only when asked for.
type nbiDevice struct {
	d   Device
	ov  overlay
	txn *badger.Txn
	err error // the first read error; the match is then not trusted
}

func (d *nbiDevice) ID() string            { return d.d.ID }
func (d *nbiDevice) Tags() []string        { return d.d.Tags }
func (d *nbiDevice) LastInform() time.Time { return d.d.LastInform }
func (d *nbiDevice) Registered() time.Time { return d.d.Registered }
func (d *nbiDevice) DeviceID() nbi.DeviceID {
	return nbi.DeviceID{Manufacturer: d.d.Manufacturer, OUI: d.d.OUI, ProductClass: d.d.ProductClass, SerialNumber: d.d.SerialNumber}
}

func (d *nbiDevice) Param(path string) (value, xsdType string, ok bool) {
	enc := []byte(nil)
	for _, e := range slices.Backward(d.ov) {
		if string(e.name) == path {
			enc = e.enc
			break
		}
	}
	if enc == nil && d.d.flags&devSpilled != 0 {
		v, err := getRaw(d.txn, key(pParam, d.d.ID, path))
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			d.err = firstErr(d.err, err)
		default:
			enc = v
		}
	}
	if enc == nil {
		return "", "", false
	}
	p, err := decodeParam(enc)
	if err != nil {
		d.err = firstErr(d.err, fmt.Errorf("parameter %s of %s: %w", path, d.d.ID, err))
		return "", "", false
	}
	return p.Value, p.Type, true
}

// firstErr keeps the first error.
func firstErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// nbiTasks answers GET/HEAD /tasks/?query= on the task fields _id, device,
// name, status and timestamp, in ID (creation) order. A query that pins
// _id reads those tasks; any other scans every task, up to nbiScanLimit.
func (n *Node) nbiTasks(w http.ResponseWriter, r *http.Request) {
	l, err := nbi.ParseList(r.URL.Query(), nbi.TaskFields)
	if err != nil {
		writeError(w, nbiBadRequest(err))
		return
	}
	var ids []string
	if pinned, ok := l.Query.IDs(); ok {
		for _, id := range pinned {
			t, err := n.fsm.Task(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				writeError(w, err)
				return
			}
			if l.Query.Match(nbi.TaskRecord(t)) {
				ids = append(ids, t.ID)
			}
		}
	} else {
		const page = 1000
		cursor, seen := "", 0
		for {
			ts, next, err := n.fsm.Tasks(TaskFilter{}, cursor, page)
			if err != nil {
				writeError(w, err)
				return
			}
			if seen += len(ts); seen > nbiScanLimit {
				writeError(w, fmt.Errorf("%w: the query would examine more than %d tasks; pin _id (equality or $in) or use /api/v1/devices/{id}/tasks", ErrBadRequest, nbiScanLimit))
				return
			}
			for _, t := range ts {
				if l.Query.Match(nbi.TaskRecord(t)) {
					ids = append(ids, t.ID)
				}
			}
			if next == "" {
				break
			}
			if err := r.Context().Err(); err != nil {
				writeError(w, err)
				return
			}
			cursor = next
		}
	}
	lo, hi := l.Window(len(ids))
	n.nbiWriteList(w, r, len(ids), nbihttp.Docs(ids[lo:hi], func(id string) (any, error) {
		t, err := n.fsm.Task(id)
		if err != nil {
			return nil, err
		}
		return nbihttp.FlatDoc(fleet.PublicTask(t), l.Projection)
	}, isNotFound))
}

// nbiFault is a core fault in GenieACS's shape: a task's is on channel
// task_<id>, a preset channel's on its channel.
func nbiFault(f *Fault) nbi.Fault {
	ch := nbi.TaskChannel(f.TaskID)
	if f.Channel != "" {
		ch = f.Channel
	}
	doc := nbi.NewFault(f.Device, ch, f.Fault.Code, f.Fault.Message, f.Fault.Detail, f.Time)
	doc.Retries = f.Retries
	return doc
}

// nbiFaults answers GET/HEAD /faults/?query= on the fault fields _id,
// device, channel, code, message, timestamp and retries.
func (n *Node) nbiFaults(w http.ResponseWriter, r *http.Request) {
	l, err := nbi.ParseList(r.URL.Query(), nbi.FaultFields)
	if err != nil {
		writeError(w, nbiBadRequest(err))
		return
	}
	var fs []*Fault
	if pinned, ok := l.Query.IDs(); ok {
		for _, id := range pinned {
			dev, _, ok := nbi.SplitFaultID(id)
			if !ok {
				continue
			}
			got, err := n.fsm.Faults(dev)
			if err != nil {
				writeError(w, err)
				return
			}
			for _, f := range got {
				if nbiFault(f).ID == id {
					fs = append(fs, f)
				}
			}
		}
	} else if fs, err = n.fsm.Faults(""); err != nil {
		writeError(w, err)
		return
	}
	var docs []nbi.Fault
	for _, f := range fs {
		if doc := nbiFault(f); l.Query.Match(doc.Record()) {
			docs = append(docs, doc)
		}
	}
	slices.SortFunc(docs, func(a, b nbi.Fault) int { return strings.Compare(a.ID, b.ID) })
	docs = slices.CompactFunc(docs, func(a, b nbi.Fault) bool { return a.ID == b.ID })
	lo, hi := l.Window(len(docs))
	n.nbiWriteList(w, r, len(docs), func(yield func(any, error) bool) {
		for _, f := range docs[lo:hi] {
			doc, err := nbihttp.FlatDoc(f, l.Projection)
			if !yield(doc, err) || err != nil {
				return
			}
		}
	})
}

// nbiDeleteFault answers DELETE /faults/{id}. A preset channel's fault is
// deleted here and at the edge that recorded it (its presets are retried
// at the device's next session there). A faulted task is final here (it
// is not retried), so, as GenieACS does for a task's fault, deleting the
// fault deletes the task with it. An ID that names no stored fault is 404.
func (n *Node) nbiDeleteFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	dev, ch, ok := nbi.SplitFaultID(id)
	taskID, isTask := nbi.TaskOfChannel(ch)
	if ok && !isTask {
		// A preset channel's fault: deleted here and at its edge.
		if _, ok := n.applyOK(w, r, Command{Op: OpDeleteChannelFault, Name: id}); ok {
			w.WriteHeader(http.StatusOK)
		}
		return
	}
	if !ok {
		writeError(w, fmt.Errorf("fault %s: %w (want <deviceId>:<channel>)", id, ErrNotFound))
		return
	}
	fs, err := n.fsm.Faults(dev)
	if err != nil {
		writeError(w, err)
		return
	}
	if !slices.ContainsFunc(fs, func(f *Fault) bool { return f.TaskID == taskID }) {
		writeError(w, fmt.Errorf("fault %s: %w", id, ErrNotFound))
		return
	}
	if _, ok := n.applyOK(w, r, Command{Op: OpCancelTask, TaskID: taskID}); ok {
		w.WriteHeader(http.StatusOK)
	}
}

// nbiCreateTask answers POST /devices/{id}/tasks[?connection_request]
// [&timeout=ms] with GenieACS's codes: 200 when the task ran (status
// done), 202 when it is queued, still running, faulted or expired, 404 for
// an unknown device, 400 for a bad task. It is createDeviceTask with two
// differences: a connection request without a timeout waits nbiTaskWait,
// and a bodiless connection request (a bare wake-up) is 501.
func (n *Node) nbiCreateTask(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wake, err := wantWake(q)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 && wake {
		d, err := n.fsm.Device(r.PathValue("id"), false)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": fmt.Sprintf(
			"a connection request without a task is not implemented on the core: it wakes a device only by sending it a task; "+
				"post the task with ?connection_request, or post the bare request to the device's edge (%q)", d.Edge)})
		return
	}
	if wake && !q.Has("wait") && !q.Has("timeout") {
		q.Set("timeout", strconv.FormatInt(nbiTaskWait.Milliseconds(), 10))
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	r2.Body = io.NopCloser(bytes.NewReader(body))
	tw := nbihttp.NewTaskWriter(w)
	n.createDeviceTask(tw, r2)
	tw.Finish()
}

// isNotFound reports an ID deleted since a query matched it.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// nbiWriteList writes a collection query's answer (nbihttp.WriteList).
func (n *Node) nbiWriteList(w http.ResponseWriter, r *http.Request, total int, docs iter.Seq2[any, error]) {
	nbihttp.WriteList(w, r, total, docs, func(err error) { writeError(w, err) }, n.log)
}
