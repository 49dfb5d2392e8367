package core

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/oklog/ulid/v2"
)

// Key layout of the FSM's Badger DB. Device IDs, task IDs and names never
// contain NUL (checkName refuses control characters), so NUL separates the
// parts of compound keys and prefix scans stay exact.
const (
	pDevice  = "d/"  // d/<device> → Device
	pParam   = "p/"  // p/<device>\0<param> → Param
	pTask    = "t/"  // t/<task> → fleet.Task
	pDevTask = "dt/" // dt/<device>\0<task> → empty (index)
	pFault   = "f/"  // f/<device>\0<task> → Fault; f/<device>\0:<channel> → a preset channel's Fault (channelFaultKey)
	pPreset  = "s/"  // s/<name> → fleet.Preset
	pProv    = "pr/" // pr/<name> → fleet.Provision
	pVParam  = "vp/" // vp/<name> → fleet.VirtualParameter
	pFile    = "fm/" // fm/<name> → fleet.FileMeta
	pEdge    = "e/"  // e/<edge> → Edge
	pNode    = "n/"  // n/<raft server id> → NodeInfo
	pIdem    = "i/"  // i/<key> → []string (the first command's value)
	kApplied = "m/applied"
	// kSeeded marks that the default presets were stored (OpSeedPresets).
	kSeeded = "m/seeded"

	// The downlink (core → edge), see downlink.go.
	pDownEdge   = "dl/"     // dl/<edge>\0<seq BE> → fleet.DownRecord (the edge's own log)
	pDownShared = "dg/"     // dg/<seq BE> → fleet.DownRecord (the fleet-wide log)
	pDownSeq    = "dn/"     // dn/<edge> → last sequence of the edge's log (8 bytes BE)
	kSharedSeq  = "m/dgseq" // last sequence of the fleet-wide log (8 bytes BE)
	pRevoked    = "rv/"     // rv/<edge> → revocation (time)
	pCancelled  = "tc/"     // tc/<task> → empty: a dispatched task cancelled at the core
	// API tokens: pToken (tokens.go).
)

func key(prefix string, parts ...string) []byte {
	n := len(prefix) + len(parts)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, prefix...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// wtx is the write transaction one ApplyBatch runs in. When Badger says the
// transaction is too big it commits what it has and continues in a new one,
// so a huge batch degrades to several commits instead of failing.
type wtx struct {
	db    *badger.DB
	txn   *badger.Txn
	split int
	devs  *deviceCache
	// seqs caches the downlink counters this transaction read or wrote
	// (counter key → last sequence), so a command that dispatches a
	// thousand tasks to one edge reads its counter once.
	seqs map[string]uint64
	// edges holds the edge records this transaction read or changed,
	// decoded; dirty ones are written once, by flushEdges before the
	// commit. Every uplink record updates its edge's record (UplinkAcked),
	// and decoding and encoding it per record was a quarter of an uplink
	// delta's apply cost.
	edges map[string]*Edge
	dirty map[string]bool
	// tokens are the token changes made, for the FSM's index once the
	// transaction commits.
	tokens []tokenChange
	// fault, when set (tests only), can fail a write before Badger sees it.
	fault func(k []byte) error
}

func (w *wtx) retry(op func() error) error {
	err := op()
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit split transaction: %w", err)
	}
	w.split++
	w.txn = w.db.NewTransaction(true)
	return op()
}

func (w *wtx) set(k, v []byte) error {
	if w.fault != nil {
		if err := w.fault(k); err != nil {
			return err
		}
	}
	return w.retry(func() error { return w.txn.Set(k, v) })
}

func (w *wtx) del(k []byte) error {
	return w.retry(func() error { return w.txn.Delete(k) })
}

// get returns the value at k, or nil and false when absent.
func (w *wtx) get(k []byte) ([]byte, bool, error) {
	item, err := w.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := item.ValueCopy(nil)
	return v, true, err
}

// keys lists every key under prefix (including this transaction's writes).
func (w *wtx) keys(prefix []byte) [][]byte {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := w.txn.NewIterator(opts)
	defer it.Close()
	var out [][]byte
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		out = append(out, it.Item().KeyCopy(nil))
	}
	return out
}

func (w *wtx) delPrefix(prefix []byte) error {
	for _, k := range w.keys(prefix) {
		if err := w.del(k); err != nil {
			return err
		}
	}
	return nil
}

// deviceCache holds the stored form of recently written devices for the
// apply path, which reads a device on every delta. A Badger point read is
// not cheap even when the key sits in the memtable: Badger then still
// searches every level for a newer version (db.get returns early only for
// a key written by the last commit), and a device rewritten all the time
// is in every L0 table's bloom filter. The cache mirrors the DB as the
// apply goroutine wrote it, so it never changes a result; it is emptied
// when a write fails or a snapshot is restored, and when it is full
// (crude, but a cleared cache refills from the DB at the old cost).
// Cached slices are never modified: a device write stores a new one.
type deviceCache struct {
	m   map[string][]byte
	max int
}

func newDeviceCache(max int) *deviceCache {
	return &deviceCache{m: make(map[string][]byte), max: max}
}

func (c *deviceCache) get(id string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	b, ok := c.m[id]
	return b, ok
}

func (c *deviceCache) put(id string, b []byte) {
	if c == nil {
		return
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		c.reset()
	}
	c.m[id] = b
}

func (c *deviceCache) drop(id string) {
	if c != nil {
		delete(c.m, id)
	}
}

func (c *deviceCache) reset() {
	if c != nil {
		clear(c.m)
	}
}

// processor applies decoded commands to a transaction. It holds no state:
// everything comes from the command and the DB, so the same processor can
// replay a log offline and every node reaches the same state.
type processor struct{}

// storageError marks a failure of Badger itself (not of the command): the
// batch cannot be trusted and the FSM reports it loudly.
type storageError struct{ err error }

func (e storageError) Error() string { return "storage: " + e.err.Error() }
func (e storageError) Unwrap() error { return e.err }

// apply runs one command. Validation happens before the first write, so a
// domain error leaves no partial change behind.
//
// A command that carries an edge's uplink sequence (Edge, Seq) is applied
// at most once: at or below the edge's UplinkAcked it is a no-op. It is
// also consumed when it fails with a domain error: UplinkAcked moves past
// it and the edge's Rejected count grows, so a record that can never
// apply does not block the records behind it (the error goes back to the
// proposer, which logs it). Storage errors are not consumed: they stop
// the FSM (see ApplyBatch). Neither is a record that arrives ahead of its
// predecessor (Command.Prev above UplinkAcked): it is refused with
// ErrUplinkGap, so the predecessor still applies when it comes.
func (p processor) apply(w *wtx, c *Command) Result {
	if c.V != CommandVersion {
		return Result{Err: fmt.Errorf("%w: command version %d, want %d", ErrCorruptCommand, c.V, CommandVersion)}
	}
	if c.Key != "" {
		v, ok, err := w.get(key(pIdem, c.Key))
		if err != nil {
			return Result{Err: storageError{err}}
		}
		if ok {
			var ids []string
			if err := decodeRecord(v, &ids); err != nil {
				return Result{Err: storageError{err}}
			}
			if !c.KeyWhilePending {
				return Result{Value: ids, Noop: true}
			}
			live, err := p.anyPending(w, ids)
			if err != nil {
				return Result{Err: storageError{err}}
			}
			if live {
				return Result{Value: ids, Noop: true}
			}
			// A derived key whose tasks have all ended: this is a new
			// request, not a retry; the record is overwritten below.
		}
	}
	var edge *Edge
	if c.Edge != "" && c.Seq > 0 {
		if err := checkName("edge ID", c.Edge); err != nil {
			return Result{Err: err}
		}
		e, ok, err := p.edge(w, c.Edge)
		if err != nil {
			return Result{Err: storageError{err}}
		}
		if ok && c.Seq <= e.UplinkAcked {
			return Result{Noop: true}
		}
		if !ok {
			e = &Edge{ID: c.Edge, FirstSeen: c.Time}
		}
		if !e.Revoked.IsZero() {
			// Not consumed: a revoked edge's records are refused, not skipped.
			return Result{Err: fmt.Errorf("uplink record %s/%d: %w", c.Edge, c.Seq, ErrRevoked)}
		}
		if c.Prev > e.UplinkAcked {
			// Not consumed either: its predecessor is still to come, and
			// applying this one would make that one a resend.
			return Result{Err: fmt.Errorf("%w: uplink record %s/%d follows %d; applied up to %d", ErrUplinkGap, c.Edge, c.Seq, c.Prev, e.UplinkAcked)}
		}
		edge = e
	}
	val, err := p.dispatch(w, c)
	var rejected error
	if err != nil {
		var se storageError
		if edge == nil || errors.As(err, &se) {
			return Result{Err: err}
		}
		edge.Rejected++
		rejected, val = err, nil
	}
	if edge != nil {
		edge.UplinkAcked = c.Seq
		if c.Time.After(edge.LastSeen) {
			edge.LastSeen = c.Time
		}
		p.putEdge(w, edge)
	}
	if c.Key != "" && rejected == nil {
		ids, _ := val.([]string)
		if err := p.putRecord(w, key(pIdem, c.Key), ids); err != nil {
			return Result{Err: err}
		}
	}
	return Result{Value: val, Err: rejected}
}

func (p processor) dispatch(w *wtx, c *Command) (any, error) {
	switch c.Op {
	case OpPutDevice:
		return nil, p.putDevice(w, c)
	case OpDeviceDelta:
		return nil, p.deviceDelta(w, c)
	case OpDeleteDevice:
		return nil, p.deleteDevice(w, c)
	case OpTag, OpUntag:
		return nil, p.tag(w, c)
	case OpCreateTasks:
		return p.createTasks(w, c)
	case OpTaskResult:
		return p.taskResult(w, c)
	case OpCancelTask:
		return nil, p.cancelTask(w, c)
	case OpPutPreset:
		if c.Preset == nil {
			return nil, fmt.Errorf("%w: PutPreset without a preset", ErrBadRequest)
		}
		if err := checkStoredPreset(c.Preset); err != nil {
			return nil, err
		}
		if err := p.putFleet(w, key(pPreset, c.Preset.Name), c.Preset); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownPreset, Preset: c.Preset})
	case OpDeletePreset:
		if err := p.deleteExisting(w, key(pPreset, c.Name), "preset "+c.Name); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownPresetDelete, Name: c.Name})
	case OpSeedPresets:
		return nil, p.seedPresets(w, c)
	case OpDeleteChannelFault:
		return nil, p.deleteChannelFault(w, c)
	case OpPutVirtualParameter:
		if c.VirtualParameter == nil {
			return nil, fmt.Errorf("%w: PutVirtualParameter without one", ErrBadRequest)
		}
		if err := c.VirtualParameter.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if err := p.putFleet(w, key(pVParam, c.VirtualParameter.Name), c.VirtualParameter); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownVirtualParameter, VirtualParameter: c.VirtualParameter})
	case OpDeleteVirtualParameter:
		if err := p.deleteExisting(w, key(pVParam, c.Name), "virtual parameter "+c.Name); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownVirtualParameterDelete, Name: c.Name})
	case OpPutProvision:
		if c.Provision == nil {
			return nil, fmt.Errorf("%w: PutProvision without a provision", ErrBadRequest)
		}
		if err := checkStoredProvision(c.Provision); err != nil {
			return nil, err
		}
		if err := p.putFleet(w, key(pProv, c.Provision.Name), c.Provision); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownProvision, Provision: c.Provision})
	case OpDeleteProvision:
		if err := p.deleteExisting(w, key(pProv, c.Name), "provision "+c.Name); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownProvisionDelete, Name: c.Name})
	case OpPutFileMeta:
		if c.File == nil {
			return nil, fmt.Errorf("%w: PutFileMeta without metadata", ErrBadRequest)
		}
		if err := ValidateFileMeta(c.File); err != nil {
			return nil, err
		}
		if err := p.putFleet(w, key(pFile, c.File.Name), c.File); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownFile, File: c.File})
	case OpDeleteFileMeta:
		if err := p.deleteExisting(w, key(pFile, c.Name), "file "+c.Name); err != nil {
			return nil, err
		}
		return nil, p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownFileDelete, Name: c.Name})
	case OpEdgeSeen, OpEdgeAck:
		return nil, p.edgeUpdate(w, c)
	case OpUplink:
		return nil, p.uplink(w, c)
	case OpRevokeEdge:
		return nil, p.revokeEdge(w, c)
	case OpPutToken:
		return nil, p.putToken(w, c)
	case OpRevokeToken:
		return nil, p.revokeToken(w, c)
	case OpRegisterNode:
		if c.Node == nil || c.Node.ID == "" || c.Node.APIAddr == "" {
			return nil, fmt.Errorf("%w: RegisterNode needs an ID and an API address", ErrBadRequest)
		}
		return nil, p.putRecord(w, key(pNode, c.Node.ID), c.Node)
	case OpRemoveNode:
		return nil, p.deleteExisting(w, key(pNode, c.Name), "server "+c.Name)
	case OpRolloutCreate:
		return nil, p.rolloutCreate(w, c)
	case OpRolloutStep:
		return p.rolloutStep(w, c)
	case OpRolloutControl:
		return nil, p.rolloutControl(w, c)
	case OpRolloutDelete:
		return nil, p.rolloutDelete(w, c)
	default:
		return nil, fmt.Errorf("%w: unknown op %d", ErrBadRequest, c.Op)
	}
}

// seedPresets stores the default presets of a fresh cluster, once: with
// kSeeded set it does nothing, and a preset already stored under a
// default's name (an operator's) is kept.
func (p processor) seedPresets(w *wtx, c *Command) error {
	for _, ps := range c.Presets {
		if ps == nil {
			return fmt.Errorf("%w: SeedPresets with a nil preset", ErrBadRequest)
		}
		if err := checkStoredPreset(ps); err != nil {
			return err
		}
	}
	if _, done, err := w.get([]byte(kSeeded)); err != nil {
		return storageError{err}
	} else if done {
		return nil
	}
	for _, ps := range c.Presets {
		if _, exists, err := w.get(key(pPreset, ps.Name)); err != nil {
			return storageError{err}
		} else if exists {
			continue
		}
		if err := p.putFleet(w, key(pPreset, ps.Name), ps); err != nil {
			return err
		}
		if err := p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownPreset, Preset: ps}); err != nil {
			return err
		}
	}
	if err := w.set([]byte(kSeeded), nil); err != nil {
		return storageError{err}
	}
	return nil
}

func (p processor) putRecord(w *wtx, k []byte, v any) error {
	b, err := encodeRecord(v)
	if err != nil {
		return storageError{err}
	}
	if err := w.set(k, b); err != nil {
		return storageError{err}
	}
	return nil
}

func (p processor) putFleet(w *wtx, k []byte, v any) error {
	b, err := fleet.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := w.set(k, b); err != nil {
		return storageError{err}
	}
	return nil
}

func (p processor) deleteExisting(w *wtx, k []byte, what string) error {
	_, ok, err := w.get(k)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err := w.del(k); err != nil {
		return storageError{err}
	}
	return nil
}

// device reads a device and its parameter overlay, which whoever writes
// the device back must keep (putDev).
func (p processor) device(w *wtx, id string) (*Device, overlay, bool, error) {
	b, ok := w.devs.get(id)
	if !ok {
		var err error
		b, ok, err = w.get(key(pDevice, id))
		if err != nil || !ok {
			return nil, nil, ok, err
		}
		w.devs.put(id, b)
	}
	var d Device
	ov, err := decodeDevice(b, &d, true)
	if err != nil {
		return nil, nil, false, err
	}
	return &d, ov, true, nil
}

func (p processor) putDev(w *wtx, d *Device, ov overlay) error {
	b, err := encodeDevice(d, ov)
	if err != nil {
		return storageError{err}
	}
	if err := w.set(key(pDevice, d.ID), b); err != nil {
		return storageError{err}
	}
	w.devs.put(d.ID, b)
	return nil
}

// spill moves the overlay to per-parameter keys.
func (p processor) spill(w *wtx, id string, ov overlay) error {
	for _, e := range ov {
		if err := w.set(key(pParam, id, string(e.name)), e.enc); err != nil {
			return storageError{err}
		}
	}
	return nil
}

// edge returns the edge's record as this transaction sees it. The record
// is shared with the transaction's cache: a caller that changes it must
// call putEdge (and must not change it on a path that then fails with a
// domain error).
func (p processor) edge(w *wtx, id string) (*Edge, bool, error) {
	if e, ok := w.edges[id]; ok {
		return e, true, nil
	}
	b, ok, err := w.get(key(pEdge, id))
	if err != nil || !ok {
		return nil, ok, err
	}
	var e Edge
	if err := decodeRecord(b, &e); err != nil {
		return nil, false, err
	}
	w.cacheEdge(&e)
	return &e, true, nil
}

// putEdge stores the edge's record when the transaction is flushed.
func (p processor) putEdge(w *wtx, e *Edge) {
	w.cacheEdge(e)
	if w.dirty == nil {
		w.dirty = make(map[string]bool)
	}
	w.dirty[e.ID] = true
}

func (w *wtx) cacheEdge(e *Edge) {
	if w.edges == nil {
		w.edges = make(map[string]*Edge)
	}
	w.edges[e.ID] = e
}

// flushEdges writes the edge records changed in this transaction.
func (w *wtx) flushEdges() error {
	for id := range w.dirty {
		b, err := encodeRecord(w.edges[id])
		if err != nil {
			return err
		}
		if err := w.set(key(pEdge, id), b); err != nil {
			return err
		}
	}
	clear(w.dirty)
	return nil
}

// anyPending reports whether any of the tasks ids exists and is not final.
func (p processor) anyPending(w *wtx, ids []string) (bool, error) {
	for _, id := range ids {
		t, ok, err := p.task(w, id)
		if err != nil {
			return false, err
		}
		if ok && !t.Status.Final() {
			return true, nil
		}
	}
	return false, nil
}

func (p processor) task(w *wtx, id string) (*fleet.Task, bool, error) {
	b, ok, err := w.get(key(pTask, id))
	if err != nil || !ok {
		return nil, ok, err
	}
	var t fleet.Task
	if err := fleet.Unmarshal(b, &t); err != nil {
		return nil, false, err
	}
	return &t, true, nil
}

// putDevice registers a device or updates its identity; tags and the
// parameter tree are kept.
func (p processor) putDevice(w *wtx, c *Command) error {
	in := c.Device
	if in == nil {
		return fmt.Errorf("%w: PutDevice without a device", ErrBadRequest)
	}
	if err := checkName("device ID", in.ID); err != nil {
		return err
	}
	d, ov, ok, err := p.device(w, in.ID)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		d = &Device{ID: in.ID, Registered: c.Time}
	}
	d.OUI, d.ProductClass, d.SerialNumber, d.Manufacturer = in.OUI, in.ProductClass, in.SerialNumber, in.Manufacturer
	if in.LastInform.After(d.LastInform) {
		d.LastInform = in.LastInform
	}
	if in.Edge != "" && in.Edge != d.Edge {
		// An operator's move: tasks follow the device as on an inform.
		if err := checkName("edge ID", in.Edge); err != nil {
			return err
		}
		d.Edge = in.Edge
		if err := p.rehome(w, c, d); err != nil {
			return err
		}
	}
	return p.putDev(w, d, ov)
}

// deviceDelta applies what one session changed. An unknown device is
// registered: the edge is where devices are first seen.
//
// A device's state is ordered by the edges' own inform times, which the
// delta carries (LastInform): parameters are stamped with it (with the
// command's time only when it is zero), so every node and every replay
// stamps alike and a late delta cannot pass for a new one. A delta from an
// edge other than the device's home whose inform is not newer than the
// device's is stale (the device has moved on; the old edge's outbox
// drained late): it takes staleDelta's slower path, which neither re-homes
// the device nor overwrites newer values. Every other delta takes the
// fast path below, which reads no parameter timestamps; when it moves the
// device to a new edge (or homes it for the first time) its tasks follow
// (rehome).
func (p processor) deviceDelta(w *wtx, c *Command) error {
	dd := c.Delta
	if dd == nil {
		return fmt.Errorf("%w: DeviceDelta without a delta", ErrBadRequest)
	}
	if err := checkName("device ID", dd.Device); err != nil {
		return err
	}
	encSize := 0 // of the parameters' encodeParamParts forms, all together
	err := deltaParams(c, func(name, value, typ []byte) error {
		if len(name) == 0 || name[len(name)-1] == '.' {
			return fmt.Errorf("%w: delta for %s: bad parameter name %q", ErrBadRequest, dd.Device, name)
		}
		encSize += 10 + min(len(typ), 255) + len(value)
		return nil
	})
	if err != nil {
		return err
	}
	if err := checkHistory(dd); err != nil {
		return err
	}
	d, ov, ok, err := p.device(w, dd.Device)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		d = &Device{ID: dd.Device, Registered: c.Time}
	}
	stamp := dd.LastInform
	if stamp.IsZero() {
		stamp = c.Time
	}
	home, prevInform := d.Edge, d.LastInform
	if dd.Edge != "" && dd.Edge != home {
		if ok && home != "" && !dd.LastInform.After(d.LastInform) {
			return p.staleDelta(w, c, d, ov, stamp)
		}
		// A new home becomes part of downlink keys; the home edge's name
		// was checked when it became one.
		if err := checkName("edge ID", dd.Edge); err != nil {
			return err
		}
	}
	if dd.Bootstrap && ok {
		ov = nil
		if err := w.delPrefix(key(pParam, d.ID, "")); err != nil {
			return storageError{err}
		}
		// The edge dropped the channel faults of the device's old life.
		if err := w.delPrefix(channelFaultKey(d.ID, "")); err != nil {
			return storageError{err}
		}
		d.flags &^= devSpilled
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&d.OUI, dd.OUI}, {&d.ProductClass, dd.ProductClass}, {&d.SerialNumber, dd.SerialNumber},
		{&d.Manufacturer, dd.Manufacturer}, {&d.Edge, dd.Edge},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if d.Edge != home {
		if err := p.rehome(w, c, d); err != nil {
			return err
		}
	}
	if dd.LastInform.After(d.LastInform) {
		d.LastInform = dd.LastInform
		d.LastEvents = dd.Events
	}
	for _, r := range dd.Removed {
		ov = ov.remove(r)
		if strings.HasSuffix(r, ".") {
			if err := w.delPrefix(key(pParam, d.ID, r)); err != nil {
				return storageError{err}
			}
		} else if err := w.del(key(pParam, d.ID, r)); err != nil {
			return storageError{err}
		}
	}
	// One buffer for every parameter's encoded form (one allocation per
	// delta, not one per parameter); each entry is capped at its end.
	encBuf := make([]byte, 0, encSize)
	_ = deltaParams(c, func(name, value, typ []byte) error {
		start := len(encBuf)
		encBuf = appendParamParts(encBuf, stamp, typ, value)
		ov = ov.set(name, encBuf[start:len(encBuf):len(encBuf)])
		return nil
	})
	if len(dd.History) > 0 {
		if err := p.applyHistory(w, d.ID, dd.History); err != nil {
			return err
		}
	}
	if ov, err = p.spillCold(w, d, ov, prevInform); err != nil {
		return err
	}
	return p.putDevSpill(w, d, ov)
}

// coldSpillBytes is how large the overlay's cold part (see spillCold) may
// grow before it is moved to per-parameter keys.
const coldSpillBytes = 256

// spillCold moves to per-parameter keys the overlay entries that neither
// this delta nor the one before it wrote (stamped before the device's
// previous inform, before), once they add up to coldSpillBytes. Every
// delta rewrites the device's value, overlay included, and Badger copies
// those bytes through its WAL, memtable, level-0 tables and compactions:
// a bootstrap's static parameters (versions, connection-request URL and
// credentials) rode along in every later periodic delta. After this a
// delta rewrites what it and its predecessor changed plus at most
// coldSpillBytes, not the device's tree. Waiting for a second delta keeps
// devices whose deltas alternate between two sets of parameters from
// spilling every time. Where an entry lives never changes a read (the
// overlay is newer than a per-parameter key, and a spill overwrites the
// key with the entry), so the choice may differ between code versions.
func (p processor) spillCold(w *wtx, d *Device, ov overlay, before time.Time) (overlay, error) {
	if before.IsZero() || len(ov) == 0 {
		return ov, nil
	}
	cold := func(e overlayParam) bool {
		at, ok := paramTime(e.enc)
		return ok && at.Before(before)
	}
	n := 0
	for _, e := range ov {
		if cold(e) {
			n += len(e.name) + len(e.enc) + 4
		}
	}
	if n < coldSpillBytes {
		return ov, nil
	}
	keep := ov[:0]
	for _, e := range ov {
		if !cold(e) {
			keep = append(keep, e)
			continue
		}
		if err := w.set(key(pParam, d.ID, string(e.name)), e.enc); err != nil {
			return nil, storageError{err}
		}
	}
	d.flags |= devSpilled
	return keep, nil
}

// putDevSpill writes the device, first spilling its overlay to
// per-parameter keys when it has outgrown its bounds.
func (p processor) putDevSpill(w *wtx, d *Device, ov overlay) error {
	if len(ov) > overlayMaxParams || ov.size() > overlayMaxBytes {
		if err := p.spill(w, d.ID, ov); err != nil {
			return err
		}
		ov = nil
		d.flags |= devSpilled
	}
	return p.putDev(w, d, ov)
}

// deltaParams calls fn for each of the delta's parameters: from the raw
// entry bytes on the apply path, else from Delta.Parameters.
func deltaParams(c *Command, fn func(name, value, typ []byte) error) error {
	if c.rawParams != nil {
		return c.rawParams.forEach(fn)
	}
	for _, pv := range c.Delta.Parameters {
		if err := fn([]byte(pv.Name), []byte(pv.Value), []byte(pv.Type)); err != nil {
			return err
		}
	}
	return nil
}

func (p processor) deleteDevice(w *wtx, c *Command) error {
	id := c.Name
	_, _, ok, err := p.device(w, id)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		return fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	for _, k := range w.keys(key(pDevTask, id, "")) {
		taskID := string(k[len(pDevTask)+len(id)+1:])
		t, ok, err := p.task(w, taskID)
		if err != nil {
			return storageError{err}
		}
		if ok {
			if err := p.cancelAtEdge(w, c, t); err != nil {
				return err
			}
		}
		if err := w.del(key(pTask, taskID)); err != nil {
			return storageError{err}
		}
	}
	for _, pre := range [][]byte{key(pDevTask, id, ""), key(pParam, id, ""), key(pFault, id, ""), key(pHistory, id, "")} {
		if err := w.delPrefix(pre); err != nil {
			return storageError{err}
		}
	}
	w.devs.drop(id)
	if err := w.del(key(pDevice, id)); err != nil {
		return storageError{err}
	}
	return nil
}

func (p processor) tag(w *wtx, c *Command) error {
	if err := checkName("tag", c.Tag); err != nil {
		return err
	}
	d, ov, ok, err := p.device(w, c.Name)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		return fmt.Errorf("device %s: %w", c.Name, ErrNotFound)
	}
	i, has := slices.BinarySearch(d.Tags, c.Tag)
	switch {
	case c.Op == OpTag && !has:
		d.Tags = slices.Insert(d.Tags, i, c.Tag)
	case c.Op == OpUntag && has:
		d.Tags = slices.Delete(d.Tags, i, i+1)
	default:
		return nil
	}
	return p.putDev(w, d, ov)
}

// createTasks queues tasks. IDs are chosen by the proposer (ULIDs), so a
// replayed command finds them present and changes nothing. Without
// SkipMissing every device must exist or nothing is created. A task for a
// device with a home edge is dispatched there at once (a DownTask in that
// edge's log, with Wake from the command); one for a device with no home
// yet waits until a delta homes the device (rehome).
func (p processor) createTasks(w *wtx, c *Command) ([]string, error) {
	if len(c.Tasks) == 0 {
		return nil, fmt.Errorf("%w: CreateTasks without tasks", ErrBadRequest)
	}
	todo := make([]*fleet.Task, 0, len(c.Tasks))
	for _, t := range c.Tasks {
		if t == nil {
			return nil, fmt.Errorf("%w: nil task", ErrBadRequest)
		}
		if _, err := ulid.ParseStrict(t.ID); err != nil {
			return nil, fmt.Errorf("%w: task ID %q is not a ULID", ErrBadRequest, t.ID)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if t.Status != fleet.StatusPending {
			return nil, fmt.Errorf("%w: new task %s must be pending", ErrBadRequest, t.ID)
		}
		_, _, ok, err := p.device(w, t.Device)
		if err != nil {
			return nil, storageError{err}
		}
		if !ok {
			if c.SkipMissing {
				continue
			}
			return nil, fmt.Errorf("device %s: %w", t.Device, ErrNotFound)
		}
		if _, exists, err := w.get(key(pTask, t.ID)); err != nil {
			return nil, storageError{err}
		} else if exists {
			continue
		}
		todo = append(todo, t)
	}
	ids := make([]string, 0, len(todo))
	for _, t := range todo {
		d, ov, _, err := p.device(w, t.Device)
		if err != nil {
			return nil, storageError{err}
		}
		t.Edge = ""
		if d.Edge != "" {
			if err := p.dispatchTask(w, c, t, d.Edge, c.Wake); err != nil {
				return nil, err
			}
		}
		if err := p.putFleet(w, key(pTask, t.ID), t); err != nil {
			return nil, err
		}
		if err := w.set(key(pDevTask, t.Device, t.ID), nil); err != nil {
			return nil, storageError{err}
		}
		if d.flags&devTasks == 0 {
			d.flags |= devTasks
			if err := p.putDev(w, d, ov); err != nil {
				return nil, err
			}
		}
		ids = append(ids, t.ID)
	}
	return ids, nil
}

// taskResult records how a task ended. Keyed by task ID: once a task is
// final, a second result (a resend) changes nothing.
func (p processor) taskResult(w *wtx, c *Command) (any, error) {
	switch c.Status {
	case fleet.StatusRunning, fleet.StatusDone, fleet.StatusFault, fleet.StatusExpired:
	default:
		return nil, fmt.Errorf("%w: task result status %q", ErrBadRequest, c.Status)
	}
	if c.Status == fleet.StatusFault && c.Fault == nil {
		return nil, fmt.Errorf("%w: fault status without a fault", ErrBadRequest)
	}
	t, ok, err := p.task(w, c.TaskID)
	if err != nil {
		return nil, storageError{err}
	}
	if !ok {
		return nil, fmt.Errorf("task %s: %w", c.TaskID, ErrNotFound)
	}
	if t.Status.Final() || (c.Status == fleet.StatusRunning && t.Status == fleet.StatusRunning) {
		return nil, nil
	}
	t.Status = c.Status
	t.Updated = c.Time
	if c.Status == fleet.StatusRunning {
		t.Attempts++
	} else {
		t.Result, t.Fault = c.Result, c.Fault
	}
	if err := p.putFleet(w, key(pTask, t.ID), t); err != nil {
		return nil, err
	}
	if c.Fault != nil {
		f := Fault{Device: t.Device, TaskID: t.ID, Fault: *c.Fault, Time: c.Time}
		if err := p.putRecord(w, key(pFault, t.Device, t.ID), f); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// cancelTask removes a task, as GenieACS's DELETE /tasks/{id} does; the
// edge holding it, if any, is told to delete it too.
func (p processor) cancelTask(w *wtx, c *Command) error {
	id := c.TaskID
	t, ok, err := p.task(w, id)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		return fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err := p.cancelAtEdge(w, c, t); err != nil {
		return err
	}
	for _, k := range [][]byte{key(pTask, id), key(pDevTask, t.Device, id), key(pFault, t.Device, id)} {
		if err := w.del(k); err != nil {
			return storageError{err}
		}
	}
	return nil
}

func (p processor) edgeUpdate(w *wtx, c *Command) error {
	if err := checkName("edge ID", c.Name); err != nil {
		return err
	}
	e, ok, err := p.edge(w, c.Name)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		e = &Edge{ID: c.Name, FirstSeen: c.Time}
	}
	if c.Time.After(e.LastSeen) {
		e.LastSeen = c.Time
	}
	switch c.Op {
	case OpEdgeSeen:
		if c.Addr != "" {
			e.Addr = c.Addr
		}
	case OpEdgeAck:
		// Positions only move forward, so a late or repeated ack is harmless.
		e.DownlinkAcked = max(e.DownlinkAcked, c.Seq)
		e.SharedAcked = max(e.SharedAcked, c.SharedSeq)
		if err := p.pruneDown(w, e.ID, e.DownlinkAcked); err != nil {
			return err
		}
	}
	p.putEdge(w, e)
	return nil
}
