package edge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/nbi"
	"github.com/edgeacs/edgeacs/nbi/nbihttp"
)

// The GenieACS NBI on an edge: the paths, parameters, status codes and
// document shapes of GenieACS's API, over the devices, tasks and faults
// this edge holds, so a GenieACS script works against an edge by changing
// its base URL and adding the Authorization header. The semantics of
// queries and documents live in package nbi, the HTTP side both APIs
// share in nbi/nbihttp.
//
// Answered on purpose without doing what GenieACS does:
//   - PUT/DELETE /presets/{name}, /provisions/{name} and
//     /virtual_parameters/{name}: 405 on an edge
//     synced to a core, which runs those its core sends; a standalone
//     edge stores its own (as /api/v1/presets and /api/v1/provisions).
//   - POST/DELETE /devices/{id}/tags/{tag}: 405; tags live on the core.
//   - DELETE /faults/{id} of an unknown fault: 404 (GenieACS answers 200).
//   - Queries on _tags match nothing: an edge does not know tags (the
//     core does).

// nbiScanLimit bounds how many devices (or tasks, or faults) one query may
// examine when it does not pin _id: queries are evaluated in memory, one
// record at a time, so the bound caps the time and the ID list a query can
// cost. An edge larger than this must narrow by _id or page through
// /api/v1/devices. A variable so tests can lower it.
var nbiScanLimit = 1_000_000

// nbiRoutes registers the GenieACS paths through route (newAPI's helper:
// a JSON 405 for the other methods of each path).
func (a *api) nbiRoutes(mux *apiauth.Mux, route func(string, map[string]http.HandlerFunc)) {
	for _, p := range []string{"/devices", "/devices/{$}"} {
		route(p, map[string]http.HandlerFunc{"GET": a.nbiDevices})
	}
	route("/devices/{id}/tasks", map[string]http.HandlerFunc{"POST": a.nbiPostTask})
	route("/devices/{id}", map[string]http.HandlerFunc{"DELETE": nbihttp.OK(a.deleteDevice)})
	mux.HandleFunc("/devices/{id}/tags/{tag}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "")
		nbihttp.Error(w, http.StatusMethodNotAllowed, fmt.Sprintf(
			"%s /devices/%s/tags/%s: an edge keeps no tags: tag devices on a core node", r.Method, r.PathValue("id"), r.PathValue("tag")))
	})
	for _, p := range []string{"/tasks", "/tasks/{$}"} {
		route(p, map[string]http.HandlerFunc{"GET": a.nbiTasks})
	}
	route("/tasks/{id}", map[string]http.HandlerFunc{"DELETE": nbihttp.OK(a.deleteTask)})
	for _, p := range []string{"/faults", "/faults/{$}"} {
		route(p, map[string]http.HandlerFunc{"GET": a.nbiFaults})
	}
	route("/faults/{id}", map[string]http.HandlerFunc{"DELETE": a.nbiDeleteFault})
	if a.cfg.LocalProvisioning {
		route("/presets/{name}", map[string]http.HandlerFunc{"PUT": a.putPreset, "DELETE": nbihttp.OK(a.deletePreset)})
		route("/provisions/{name}", map[string]http.HandlerFunc{"PUT": a.putProvision, "DELETE": nbihttp.OK(a.deleteProvision)})
		route("/virtual_parameters/{name}", map[string]http.HandlerFunc{"PUT": a.putVirtualParameter, "DELETE": nbihttp.OK(a.deleteVirtualParameter)})
	} else {
		mux.HandleFunc("/virtual_parameters/{name}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "")
			nbihttp.Error(w, http.StatusMethodNotAllowed, fmt.Sprintf(
				"%s /virtual_parameters/%s: an edge synced to a core runs the virtual parameters its core sends (PUT /virtual_parameters/{name} on a core node)",
				r.Method, r.PathValue("name")))
		})
		mux.HandleFunc("/presets/{name}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "")
			nbihttp.Error(w, http.StatusMethodNotAllowed, fmt.Sprintf(
				"%s /presets/%s: an edge synced to a core runs the presets its core sends (PUT /presets/{name} on a core node)",
				r.Method, r.PathValue("name")))
		})
		mux.HandleFunc("/provisions/{name}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "")
			nbihttp.Error(w, http.StatusMethodNotAllowed, fmt.Sprintf(
				"%s /provisions/%s: provisions come from the core: an edge synced to one runs those its core sends (PUT /provisions/{name} on a core node)",
				r.Method, r.PathValue("name")))
		})
	}
	route("/files/{name}", map[string]http.HandlerFunc{"PUT": a.putFile, "DELETE": nbihttp.OK(a.deleteFile)})
}

// nbiBad is a request the nbi package refused, as a 400.
func nbiBad(err error) error { return fmt.Errorf("%w: %w", errBadRequest, err) }

// isNotFound reports an ID deleted since a query matched it.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// nbiWriteList writes a collection query's answer (nbihttp.WriteList).
func (a *api) nbiWriteList(w http.ResponseWriter, r *http.Request, total int, docs iter.Seq2[any, error]) {
	nbihttp.WriteList(w, r, total, docs, func(err error) { a.fail(w, r, err) }, a.log)
}

// nbiDevices answers GET/HEAD /devices/?query=&projection=&skip=&limit=
// with GenieACS device documents. A query that pins _id reads those
// devices; any other scans every device (up to nbiScanLimit), reading
// only the parameters the query names. total and X-Total-Count carry the
// match count; only the window's documents are loaded, one at a time as
// they are written.
func (a *api) nbiDevices(w http.ResponseWriter, r *http.Request) {
	l, err := nbi.ParseList(r.URL.Query(), nil)
	if err != nil {
		a.fail(w, r, nbiBad(err))
		return
	}
	ids, err := a.cfg.Cache.nbiMatchDevices(r.Context(), l.Query, nbiScanLimit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lo, hi := l.Window(len(ids))
	a.nbiWriteList(w, r, len(ids), nbihttp.Docs(ids[lo:hi], func(id string) (any, error) {
		rec, err := a.cfg.Cache.nbiRecord(id)
		if err != nil {
			return nil, err
		}
		return nbi.DeviceDocument(rec, l.Projection), nil
	}, isNotFound))
}

// nbiRecord is a cached device as package nbi renders it, with the values
// of secret parameters hidden (publicParameters). The cache does not mark
// a leaf whose value was never read (GetParameterNames stores its name and
// writable flag only), so a leaf with neither a value nor a type is taken
// for one (nbiNoValue).
func (c *Cache) nbiRecord(id string) (*nbi.Record, error) {
	d, err := c.Device(id)
	if err != nil {
		return nil, err
	}
	params, err := c.Parameters(id)
	if err != nil {
		return nil, err
	}
	rec := &nbi.Record{Info: nbiMeta(d), Params: make(map[string]nbi.Entry, len(params))}
	for path, p := range fleet.PublicParameters(params) {
		rec.Params[path] = nbi.Entry{
			Value: p.Value, Type: p.Type, Object: p.Object, NoValue: nbiNoValue(p.Value, p.Type), Writable: p.Writable,
			Timestamp: p.Timestamp, Notification: p.Notification, AccessList: p.AccessList,
		}
	}
	return rec, nil
}

// nbiNoValue reports whether a cached leaf has no value to show: one
// learnt from GetParameterNames only. A CPE that sends an empty value
// without a type reads the same; GenieACS shows neither.
func nbiNoValue(value, typ string) bool { return value == "" && typ == "" }

func nbiMeta(d *Device) nbi.Meta {
	return nbi.Meta{
		ID: d.ID, LastInform: d.LastInform, Registered: d.Registered, LastBoot: d.LastBoot, LastBootstrap: d.LastBootstrap,
		DeviceID: nbi.DeviceID{Manufacturer: d.Manufacturer, OUI: d.OUI, ProductClass: d.ProductClass, SerialNumber: d.SerialNumber},
	}
}

// nbiDevice is a cached device as a query reads it, inside a read
// transaction: a parameter is read from its own key only when the query
// asks for it.
type nbiDevice struct {
	d   Device
	txn *badger.Txn
	err error // the first read error; the match is then not trusted
}

var _ nbi.Boots = (*nbiDevice)(nil)

func (d *nbiDevice) ID() string               { return d.d.ID }
func (d *nbiDevice) Tags() []string           { return nil }
func (d *nbiDevice) LastInform() time.Time    { return d.d.LastInform }
func (d *nbiDevice) Registered() time.Time    { return d.d.Registered }
func (d *nbiDevice) LastBoot() time.Time      { return d.d.LastBoot }
func (d *nbiDevice) LastBootstrap() time.Time { return d.d.LastBootstrap }
func (d *nbiDevice) DeviceID() nbi.DeviceID   { return nbiMeta(&d.d).DeviceID }
func (d *nbiDevice) Param(path string) (value, xsdType string, ok bool) {
	r, err := getParam(d.txn, d.d.ID, path)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", "", false
	case err != nil:
		if d.err == nil {
			d.err = fmt.Errorf("parameter %s of %s: %w", path, d.d.ID, err)
		}
		return "", "", false
	}
	if r.Flags&flagObject != 0 || nbiNoValue(r.Value, r.Type) {
		return "", "", false
	}
	return r.Value, r.Type, true
}

// nbiScanBound is the error of a query that would examine more than limit
// records of a kind.
func nbiScanBound(kind string, limit int) error {
	return badRequest("the query would examine more than %d %s; pin _id (equality or $in) or page through /api/v1", limit, kind)
}

// nbiMatchDevices returns, in ID order, the IDs of the devices q matches:
// of those it pins by _id, or of every device when it pins none (more than
// limit is a 400). It runs in one read transaction.
func (c *Cache) nbiMatchDevices(ctx context.Context, q *nbi.Query, limit int) ([]string, error) {
	pinned, byID := q.IDs()
	if !byID && c.DeviceCount() > limit {
		return nil, nbiScanBound("devices", limit)
	}
	var out []string
	err := c.db.View(func(txn *badger.Txn) error {
		check := func(d *nbiDevice) error {
			d.txn = txn
			if q.Match(d) {
				out = append(out, d.d.ID)
			}
			return d.err
		}
		if byID {
			for _, id := range pinned {
				d := &nbiDevice{}
				if !validID(id) {
					continue
				}
				switch err := getCBOR(txn, pDevice+id, &d.d); {
				case errors.Is(err, ErrNotFound):
					continue
				case err != nil:
					return err
				}
				if err := check(d); err != nil {
					return err
				}
			}
			return nil
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pDevice)
		it := txn.NewIterator(o)
		defer it.Close()
		seen := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if seen++; seen > limit {
				return nbiScanBound("devices", limit)
			}
			if seen%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			d := &nbiDevice{}
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &d.d) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			if err := check(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device query: %w", err)
	}
	return out, nil
}

// nbiPostTask answers POST /devices/{id}/tasks[?connection_request]
// [&timeout=ms] with GenieACS's codes: 200 when the task ran (status
// done), 202 when it is queued, faulted or expired (a failed connection
// request says why in "warning"), 404 for an unknown device, 400 for a
// bad task; a bodiless connection request is 200 when it was sent and
// 504 when it failed.
func (a *api) nbiPostTask(w http.ResponseWriter, r *http.Request) {
	tw := nbihttp.NewTaskWriter(w)
	a.postTask(genieWait)(tw, r)
	tw.Finish()
}

// nbiTasks answers GET/HEAD /tasks/?query= on the task fields _id, device,
// name, status and timestamp, in ID (creation) order, secret values
// hidden as in /api/v1/tasks.
func (a *api) nbiTasks(w http.ResponseWriter, r *http.Request) {
	l, err := nbi.ParseList(r.URL.Query(), nbi.TaskFields)
	if err != nil {
		a.fail(w, r, nbiBad(err))
		return
	}
	ids, err := a.cfg.Cache.nbiMatchTasks(r.Context(), l.Query, nbiScanLimit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lo, hi := l.Window(len(ids))
	a.nbiWriteList(w, r, len(ids), nbihttp.Docs(ids[lo:hi], func(id string) (any, error) {
		t, err := a.cfg.Cache.Task(id)
		if err != nil {
			return nil, err
		}
		return nbihttp.FlatDoc(fleet.PublicTask(t), l.Projection)
	}, isNotFound))
}

// nbiMatchTasks returns, in ID order, the IDs of the tasks q matches (more
// than limit to examine is a 400). A task a live session holds reads as
// running.
func (c *Cache) nbiMatchTasks(ctx context.Context, q *nbi.Query, limit int) ([]string, error) {
	var out []string
	if pinned, ok := q.IDs(); ok {
		for _, id := range pinned {
			t, err := c.Task(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if q.Match(nbi.TaskRecord(t)) {
				out = append(out, t.ID)
			}
		}
		return out, nil
	}
	err := c.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pTask)
		it := txn.NewIterator(o)
		defer it.Close()
		seen := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if seen++; seen > limit {
				return nbiScanBound("tasks", limit)
			}
			if seen%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			t := new(fleet.Task)
			if err := it.Item().Value(func(b []byte) error { return fleet.Unmarshal(b, t) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			c.overlayRunning([]*fleet.Task{t})
			if q.Match(nbi.TaskRecord(t)) {
				out = append(out, t.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("task query: %w", err)
	}
	return out, nil
}

// nbiFault is an edge fault in GenieACS's shape: a task's fault is on
// channel task_<id>; a fault the CPE reported on its own (a failed
// autonomous transfer) has its record ID as its channel.
func nbiFault(f *DeviceFault) nbi.Fault {
	ch := f.ID
	switch {
	case f.Task != "":
		ch = nbi.TaskChannel(f.Task)
	case f.Channel != "":
		ch = f.Channel // a preset channel's: its ID is already <device>:<channel>
	}
	doc := nbi.NewFault(f.Device, ch, f.Code, f.Message, f.Detail, f.Timestamp)
	doc.Retries = f.Retries
	return doc
}

// nbiFaultKey is the key of the fault record a GenieACS fault ID names.
func nbiFaultKey(id string) (key, device, taskID string, ok bool) {
	dev, ch, ok := nbi.SplitFaultID(id)
	if !ok || !validID(dev) || strings.Contains(ch, "/") {
		return "", "", "", false
	}
	rec := ch
	if tid, isTask := nbi.TaskOfChannel(ch); isTask {
		rec, taskID = tid, tid
	}
	return pFault + dev + "/" + rec, dev, taskID, true
}

// nbiFaults answers GET/HEAD /faults/?query= on the fault fields _id,
// device, channel, code, message, timestamp and retries, in _id order.
func (a *api) nbiFaults(w http.ResponseWriter, r *http.Request) {
	l, err := nbi.ParseList(r.URL.Query(), nbi.FaultFields)
	if err != nil {
		a.fail(w, r, nbiBad(err))
		return
	}
	docs, err := a.cfg.Cache.nbiMatchFaults(r.Context(), l.Query, nbiScanLimit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lo, hi := l.Window(len(docs))
	a.nbiWriteList(w, r, len(docs), func(yield func(any, error) bool) {
		for _, f := range docs[lo:hi] {
			doc, err := nbihttp.FlatDoc(f, l.Projection)
			if !yield(doc, err) || err != nil {
				return
			}
		}
	})
}

// nbiMatchFaults returns the faults q matches, in _id order (more than
// limit to examine is a 400).
func (c *Cache) nbiMatchFaults(ctx context.Context, q *nbi.Query, limit int) ([]nbi.Fault, error) {
	var out []nbi.Fault
	add := func(b []byte) error {
		var f DeviceFault
		if err := cborDec.Unmarshal(b, &f); err != nil {
			return err
		}
		if doc := nbiFault(&f); q.Match(doc.Record()) {
			out = append(out, doc)
		}
		return nil
	}
	err := c.db.View(func(txn *badger.Txn) error {
		if pinned, ok := q.IDs(); ok {
			for _, id := range pinned {
				k, dev, _, ok := nbiFaultKey(id)
				if !ok {
					continue
				}
				item, err := txn.Get([]byte(pFault + dev + "/" + id)) // a preset channel's
				if errors.Is(err, badger.ErrKeyNotFound) {
					item, err = txn.Get([]byte(k))
				}
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err == nil {
					err = item.Value(add)
				}
				if err != nil {
					return fmt.Errorf("fault %s: %w", id, err)
				}
			}
			return nil
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pFault)
		it := txn.NewIterator(o)
		defer it.Close()
		seen := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if seen++; seen > limit {
				return nbiScanBound("faults", limit)
			}
			if seen%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if err := it.Item().Value(add); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fault query: %w", err)
	}
	slices.SortFunc(out, func(a, b nbi.Fault) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// nbiDeleteFault answers DELETE /faults/{id}: 200, or 404 for an ID that
// names no fault this edge holds. As in GenieACS, deleting a task's fault
// deletes the task with it (409 while a session runs it); a fault the CPE
// reported on its own is only dismissed. Like DELETE /tasks/{id} on an
// edge, this is local: the core keeps its own record of a task's fault.
func (a *api) nbiDeleteFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	k, dev, taskID, ok := nbiFaultKey(id)
	if !ok {
		a.fail(w, r, fmt.Errorf("fault %q: %w (want <deviceId>:<channel>)", id, ErrNotFound))
		return
	}
	// A preset channel's fault, cleared as DELETE /api/v1/faults/{id} does.
	if err := a.cfg.Cache.DeleteFault(id); !errors.Is(err, ErrNotFound) {
		if err != nil {
			a.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := a.cfg.Cache.deleteFault(k, dev, taskID); err != nil {
		a.fail(w, r, fmt.Errorf("fault %s: %w", id, err))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// deleteFault deletes the fault record at key k of device dev; for a
// task's fault (taskID set), the task too.
func (c *Cache) deleteFault(k, dev, taskID string) error {
	if err := c.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(k))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		return err
	}); err != nil {
		return err
	}
	if taskID != "" {
		err := c.DeleteTask(taskID)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		// The fault outlived its task: drop the record alone.
	}
	return c.update(func(txn *badger.Txn) error { return txn.Delete([]byte(k)) })
}
