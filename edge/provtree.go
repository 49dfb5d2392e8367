package edge

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// cacheTree is one device's cached parameter tree as the provisioning
// engine reads and writes it (provision.MutableTree): the stored records
// under p/<device>/, read through a read-only Badger transaction, with the
// session's changes in an overlay that End writes back in its one
// transaction. Reads cost what the engine asks for: a Get is one key
// read, Children one prefix scan that seeks past each child's subtree, so
// a preset that names ten parameters reads ten records, not the tree.
//
// The engine keeps four times per node (existence, writable flag, value,
// child list); a stored record has one Timestamp and flags. The mapping,
// which errs towards asking the CPE again, never towards believing stale
// data:
//
//   - a parameter's value time is its Timestamp when the value is known
//     (flagValue; for records written before that flag, a type or a
//     value), its existence time the same; the values the session's
//     Inform carried count as read at the session's start, since the CPE
//     just sent them (BeginSession does not rewrite unchanged ones);
//   - a writable flag, once known, counts as learnt at the Timestamp;
//   - an object's existence time is its Timestamp; its child list counts
//     as complete at that time only with flagListed, which only this
//     adapter writes (an object listed by GetParameterNames in a
//     provisioning run, stamped with the listing's time). Objects listed
//     by a refreshObject or getParameterNames task carry no such flag: a
//     declaration over their children lists them again once. The root has
//     no record: when its top level was listed is kept in the device
//     record (Device.RootListed), which End updates.
//   - an object with stored descendants but no record of its own (Inform
//     values create none) exists as of its first stored descendant.
//
// A node the engine forgot (PathTime zero: the CPE answered 9005 for it)
// is deleted from the store at End. The overlay's writes use each
// answer's own times; the store keeps the conservative one (a value's
// time, a listing's time) as the record's Timestamp.
//
// Not safe for concurrent use: one session drives it. Every read needs
// an open transaction (begin/end around each engine call), so no Badger
// transaction outlives one HTTP exchange of the session.
type cacheTree struct {
	db   *badger.DB
	txn  *badger.Txn
	base string // "p/<device>/"
	// now is the session's start; informed are the names the Inform
	// carried, fresh at now.
	now      time.Time
	informed map[string]bool

	over map[string]*ovEntry
	// ovSlab is where own takes new overlay entries from.
	ovSlab []ovEntry
	kids   map[string]map[string]struct{} // overlay children (not deleted) by parent path
	// kidsSorted memoizes Children's list of kids[parent]'s overlay
	// entries, sorted by path (the engine walks the refreshed tree after
	// every answer, and a map lookup per child was most of a walk); a
	// change of kids[parent], or a new overlay entry for one of them,
	// drops it.
	kidsSorted map[string][]*ovEntry
	// gone are the objects deleted in this session: stored nodes at and
	// below them are hidden (the overlay may hold new ones).
	gone map[string]bool
	// deleted are the paths deleted, in order, for End.
	deleted []string
	// rootListed is when the top level was listed (Device.RootListed).
	rootListed time.Time

	// stored and storedKids memoize what the store holds, for the
	// session: the engine replans from the tree after every answer and
	// asks for the same ancestors over and over, and a Badger read costs
	// microseconds. The store does not change under a session (its
	// device's parameters are written by the session alone); the
	// overlay and the deletions are applied on top of the memo.
	stored     map[string]storedNode
	storedKids map[string][]storedKid
	// preload: the first begin reads every stored record of the device
	// in one scan (preloadAll), set when the session's store holds few
	// (a bootstrap cleared it, or the device is new). A bootstrap's
	// refresh then Puts a whole tree the store does not have; one Badger
	// read per name, nearly all misses, cost more than the rest of the
	// tree's work. complete: the scan ran; stored, storedKids and recs
	// hold all the store has, and a path they lack is absent.
	preload, complete bool
	// recs are the paths with a stored record (complete only): commit
	// reads back only those.
	recs map[string]bool

	// synth are the nodes the device record stands for, as GenieACS's
	// tree has them: DeviceID.* (identity) and Events.* (when the
	// device last informed, booted, bootstrapped, registered, and the
	// session's events). Read-only, fresh as of the session; built on
	// the first read of either root (most sessions read neither).
	synth    map[string]provision.Entry
	synthDev *Device
}

// storedNode is a memoized read of one path: its entry, or absent.
type storedNode struct {
	e  provision.Entry
	ok bool
}

// storedKid is a memoized child of a stored object: a parameter with its
// entry, or an object (read through Get when listed).
type storedKid struct {
	path string
	obj  bool
	e    provision.Entry
}

// ovEntry is a node as the session left it.
type ovEntry struct {
	e provision.Entry
	// deleted marks a parameter deleted in this session.
	deleted bool
	// dirty: written by the engine, stored at End. An ancestor whose
	// existence time was only raised is not rewritten.
	dirty bool
	// report: its value was read or written in this session, so it goes
	// upstream with the session's DeviceDelta.
	report bool
}

func newCacheTree(db *badger.DB, deviceID string, now, rootListed time.Time, inform []cwmp.ParameterValue, preload bool) *cacheTree {
	t := &cacheTree{
		preload:    preload,
		db:         db,
		base:       pParam + deviceID + "/",
		now:        now,
		informed:   make(map[string]bool, len(inform)),
		over:       map[string]*ovEntry{},
		kids:       map[string]map[string]struct{}{},
		kidsSorted: map[string][]*ovEntry{},
		gone:       map[string]bool{},
		stored:     map[string]storedNode{},
		storedKids: map[string][]storedKid{},
	}
	for _, pv := range inform {
		t.informed[pv.Name] = true
	}
	t.rootListed = rootListed
	if rootListed.IsZero() && informRoot(inform) != "" {
		// A CPE has one root object (TR-106), and its Inform's
		// parameters name it: the top level counts as listed now, so a
		// declaration under the other data model's root (the default
		// presets name both) costs no GetParameterNames "" round trip.
		// In memory only: End stores a listing the session really made.
		t.rootListed = now
	}
	return t
}

// informRoot is the root object every parameter of an Inform is under,
// InternetGatewayDevice. (TR-098) or Device. (TR-181), or "" when they
// name none, both or another (then the top level is listed as before).
func informRoot(inform []cwmp.ParameterValue) string {
	root := ""
	for _, pv := range inform {
		r, _, ok := strings.Cut(pv.Name, ".")
		if !ok || (r != "InternetGatewayDevice" && r != "Device") {
			return ""
		}
		r += "."
		if root != "" && r != root {
			return ""
		}
		root = r
	}
	return root
}

// begin opens the read transaction of one engine step.
func (t *cacheTree) begin() {
	if t.txn == nil {
		t.txn = t.db.NewTransaction(false)
		if t.preload && !t.complete {
			t.preloadAll()
		}
	}
}

// preloadAll reads every stored record of the device (see preload) into
// the memos: each record's entry, each object without a record of its
// own as of its first stored descendant (as firstDescendant finds it:
// nothing is hidden or deleted yet), and the children of every object in
// key order (as scanChildren lists them). On a read error it leaves the
// tree incomplete, reading record by record as without preload.
func (t *cacheTree) preloadAll() {
	t.preload = false
	prefix := []byte(t.base)
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	it := t.txn.NewIterator(o)
	defer it.Close()
	stored := map[string]storedNode{}
	kids := map[string][]storedKid{}
	recs := map[string]bool{}
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		path := string(it.Item().Key()[len(prefix):])
		var r paramRec
		if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
			return
		}
		e := t.entry(path, &r)
		stored[path], recs[path] = storedNode{e, true}, true
		if !isObjectPath(path) {
			kids[parentOf(path)] = append(kids[parentOf(path)], storedKid{path: path, e: e})
		} else if _, ok := kids[path]; !ok {
			kids[path] = nil
		}
		// The ancestors (and an object with a record, itself) become
		// their parents' object children when first seen.
		ts := t.now
		if r.Timestamp != 0 {
			ts = time.Unix(0, r.Timestamp)
		}
		for obj := path; obj != ""; {
			if !isObjectPath(obj) {
				obj = parentOf(obj)
				continue
			}
			if _, ok := stored[obj]; !ok {
				stored[obj] = storedNode{provision.Entry{Path: obj, Object: true, PathTime: ts}, true}
			}
			parent := parentOf(obj)
			if seen := kids[parent]; len(seen) > 0 && seen[len(seen)-1].path == obj {
				break // and so were its ancestors
			}
			kids[parent] = append(kids[parent], storedKid{path: obj, obj: true})
			if _, ok := kids[obj]; !ok {
				kids[obj] = nil
			}
			obj = parent
		}
	}
	t.stored, t.storedKids, t.recs, t.complete = stored, kids, recs, true
}

// end discards it.
func (t *cacheTree) end() {
	if t.txn != nil {
		t.txn.Discard()
		t.txn = nil
	}
}

func isObjectPath(path string) bool { return path == "" || strings.HasSuffix(path, ".") }

// parentOf is the object containing path ("" for a top-level name).
func parentOf(path string) string {
	p := strings.TrimSuffix(path, ".")
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i+1]
	}
	return ""
}

// hidden reports whether the stored node at path is under (or is) an
// object deleted in this session.
func (t *cacheTree) hidden(path string) bool {
	if len(t.gone) == 0 {
		return false
	}
	if t.gone[""] {
		return true
	}
	for i := 0; i < len(path); i++ {
		if path[i] == '.' && t.gone[path[:i+1]] {
			return true
		}
	}
	return false
}

// load reads the stored record at path.
func (t *cacheTree) load(path string) (paramRec, bool) {
	var r paramRec
	if t.txn == nil {
		return r, false
	}
	item, err := t.txn.Get([]byte(t.base + path))
	if err != nil {
		return r, false
	}
	if err := item.Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
		return r, false
	}
	return r, true
}

// entry is the engine's view of a stored record (see cacheTree).
func (t *cacheTree) entry(path string, r *paramRec) provision.Entry {
	var ts time.Time
	if r.Timestamp != 0 {
		ts = time.Unix(0, r.Timestamp)
	}
	e := provision.Entry{Path: path, PathTime: ts}
	if isObjectPath(path) {
		e.Object = true
		if r.Flags&flagListed != 0 {
			e.ListTime = ts
		}
	} else {
		e.Value, e.Type = r.Value, r.Type
		if r.Flags&flagValue != 0 || r.Type != "" || r.Value != "" {
			e.ValueTime = ts
		}
		if t.informed[path] && e.ValueTime.Before(t.now) {
			e.ValueTime, e.PathTime = t.now, t.now
		}
	}
	if r.Flags&flagWritableKnown != 0 {
		e.Writable, e.WritableTime = r.Flags&flagWritable != 0, ts
	}
	return e
}

// synthRoot reports whether path is under a root the device record
// stands for.
func synthRoot(path string) bool {
	return strings.HasPrefix(path, provision.RootDeviceID+".") || strings.HasPrefix(path, provision.RootEvents+".")
}

// setSynth makes the tree serve DeviceID.* and Events.* from the device
// record and the session's events.
func (t *cacheTree) setSynth(d *Device) { t.synthDev = d }

// buildSynth builds the DeviceID.* and Events.* nodes, once.
func (t *cacheTree) buildSynth() {
	if t.synth != nil || t.synthDev == nil {
		return
	}
	d := t.synthDev
	t.synth = map[string]provision.Entry{}
	put := func(path, value, typ string) {
		t.synth[path] = provision.Entry{Path: path, Value: value, Type: typ, PathTime: t.now, ValueTime: t.now, WritableTime: t.now}
	}
	obj := func(path string) {
		t.synth[path] = provision.Entry{Path: path, Object: true, PathTime: t.now, ListTime: t.now, WritableTime: t.now}
	}
	id := provision.RootDeviceID + "."
	obj(id)
	put(id+"ID", d.ID, cwmp.TypeString)
	put(id+"Manufacturer", d.Manufacturer, cwmp.TypeString)
	put(id+"OUI", d.OUI, cwmp.TypeString)
	put(id+"ProductClass", d.ProductClass, cwmp.TypeString)
	put(id+"SerialNumber", d.SerialNumber, cwmp.TypeString)
	ev := provision.RootEvents + "."
	obj(ev)
	stamp := func(name string, at time.Time) {
		if !at.IsZero() {
			put(ev+name, at.UTC().Format("2006-01-02T15:04:05.000Z"), cwmp.TypeDateTime)
		}
	}
	stamp("Inform", d.LastInform)
	stamp("Registered", d.Registered)
	stamp(preset.EventKey(cwmp.EventBoot), d.LastBoot)
	stamp(preset.EventKey(cwmp.EventBootstrap), d.LastBootstrap)
	for _, e := range d.LastEvents {
		stamp(preset.EventKey(e), t.now)
	}
}

// Get implements provision.Tree.
func (t *cacheTree) Get(path string) (provision.Entry, bool) {
	if t.synthDev != nil && synthRoot(path) {
		t.buildSynth()
		e, ok := t.synth[path]
		return e, ok
	}
	if o, ok := t.over[path]; ok {
		if o.deleted {
			return provision.Entry{}, false
		}
		return o.e, true
	}
	if path == "" {
		return provision.Entry{Object: true, PathTime: t.rootListed, ListTime: t.rootListed}, true
	}
	if t.hidden(path) {
		return provision.Entry{}, false
	}
	if n, ok := t.stored[path]; ok {
		return n.e, n.ok
	}
	if t.txn == nil || t.complete {
		return provision.Entry{}, false
	}
	var n storedNode
	if r, ok := t.load(path); ok {
		n = storedNode{t.entry(path, &r), true}
	} else if isObjectPath(path) {
		if ts, ok := t.firstDescendant(path); ok {
			n = storedNode{provision.Entry{Path: path, Object: true, PathTime: ts}, true}
		}
	}
	t.stored[path] = n
	return n.e, n.ok
}

// firstDescendant finds a visible stored node below obj and returns its
// time: what an object without a record of its own is known by.
func (t *cacheTree) firstDescendant(obj string) (time.Time, bool) {
	if t.txn == nil {
		return time.Time{}, false
	}
	prefix := []byte(t.base + obj)
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	it := t.txn.NewIterator(o)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		name := string(it.Item().Key()[len(t.base):])
		if t.hidden(name) {
			continue
		}
		if ov, ok := t.over[name]; ok && ov.deleted {
			continue
		}
		var r paramRec
		if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
			continue
		}
		if r.Timestamp == 0 {
			return t.now, true
		}
		return time.Unix(0, r.Timestamp), true
	}
	return time.Time{}, false
}

// Children implements provision.Tree: the stored children (each object
// child once, its subtree skipped with a seek) not overridden by the
// overlay, then the overlay's.
func (t *cacheTree) Children(path string, fn func(provision.Entry) bool) {
	if !isObjectPath(path) {
		return
	}
	if t.synthDev != nil && synthRoot(path) {
		t.buildSynth()
		for _, k := range slices.Sorted(maps.Keys(t.synth)) {
			if k != path && parentOf(k) == path && !fn(t.synth[k]) {
				return
			}
		}
		return
	}
	if t.txn != nil && !t.hidden(path) && !t.storedChildren(path, fn) {
		return
	}
	ents, ok := t.kidsSorted[path]
	if !ok {
		kids := t.kids[path]
		if len(kids) == 0 {
			return
		}
		ents = make([]*ovEntry, 0, len(kids))
		for _, k := range slices.Sorted(maps.Keys(kids)) {
			if o := t.over[k]; o != nil {
				ents = append(ents, o)
			}
		}
		t.kidsSorted[path] = ents
	}
	for _, o := range ents {
		if !o.deleted && !fn(o.e) {
			return
		}
	}
}

func (t *cacheTree) storedChildren(path string, fn func(provision.Entry) bool) bool {
	kids, ok := t.storedKids[path]
	if !ok && !t.complete {
		kids = t.scanChildren(path)
		t.storedKids[path] = kids
	}
	for _, k := range kids {
		if _, ok := t.over[k.path]; ok {
			continue
		}
		e := k.e
		if k.obj {
			if t.gone[k.path] {
				continue
			}
			// Its record, or a descendant standing for it.
			if e, ok = t.Get(k.path); !ok {
				continue
			}
		}
		if !fn(e) {
			return false
		}
	}
	return true
}

// scanChildren reads the stored children of path: one prefix scan that
// seeks past each object child's subtree.
func (t *cacheTree) scanChildren(path string) []storedKid {
	var kids []storedKid
	prefix := []byte(t.base + path)
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	it := t.txn.NewIterator(o)
	defer it.Close()
	it.Seek(prefix)
	for it.ValidForPrefix(prefix) {
		key := it.Item().Key()
		rest := string(key[len(prefix):])
		dot := strings.IndexByte(rest, '.')
		if rest == "" {
			it.Next() // the object's own record
			continue
		}
		if dot < 0 {
			name := path + rest
			var r paramRec
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err == nil {
				kids = append(kids, storedKid{path: name, e: t.entry(name, &r)})
			}
			it.Next()
			continue
		}
		child := path + rest[:dot+1]
		kids = append(kids, storedKid{path: child, obj: true})
		// Past every key starting with child: '/' follows '.'.
		it.Seek([]byte(t.base + child[:len(child)-1] + "/"))
	}
	return kids
}

// Put implements provision.MutableTree.
func (t *cacheTree) Put(e provision.Entry) {
	e.Object = isObjectPath(e.Path)
	// What was there matters only to a value's report: a listing (a
	// bootstrap's GetParameterNames answer is hundreds of Puts) skips the
	// read.
	report := false
	if !e.Object && !e.ValueTime.IsZero() {
		prev, existed := t.Get(e.Path)
		report = !existed || !e.ValueTime.Equal(prev.ValueTime)
	}
	o := t.own(e.Path)
	o.e, o.deleted = e, false
	// The root has no record: its listing lives for the session only.
	o.dirty = e.Path != ""
	if report {
		o.report = true
	}
	for p := e.Path; p != ""; {
		p = parentOf(p)
		a, ok := t.over[p]
		if !ok || a.deleted {
			ae, found := t.Get(p)
			if !found {
				ae = provision.Entry{Path: p, Object: true}
			}
			a = t.own(p)
			a.e, a.deleted = ae, false
		}
		if a.e.PathTime.Before(e.PathTime) {
			a.e.PathTime = e.PathTime
		}
	}
}

// own returns the overlay entry of path, created (and linked under its
// parent) if need be.
func (t *cacheTree) own(path string) *ovEntry {
	o, existed := t.over[path]
	if !existed {
		// From a slab: a bootstrap's refresh makes a few hundred, all
		// kept until the session ends.
		if len(t.ovSlab) == 0 {
			t.ovSlab = make([]ovEntry, 64)
		}
		o, t.ovSlab = &t.ovSlab[0], t.ovSlab[1:]
		t.over[path] = o
	}
	if path != "" {
		parent := parentOf(path)
		k := t.kids[parent]
		if k == nil {
			k = map[string]struct{}{}
			t.kids[parent] = k
		}
		if _, ok := k[path]; !ok || !existed {
			k[path] = struct{}{}
			delete(t.kidsSorted, parent)
		}
	}
	return o
}

// Delete implements provision.MutableTree.
func (t *cacheTree) Delete(path string) {
	if _, ok := t.Get(path); !ok {
		return
	}
	t.deleted = append(t.deleted, path)
	if !isObjectPath(path) {
		o := t.own(path)
		o.deleted, o.dirty, o.report = true, false, false
		delete(t.kids[parentOf(path)], path)
		delete(t.kidsSorted, parentOf(path))
		return
	}
	if path != "" {
		delete(t.kids[parentOf(path)], path)
		delete(t.kidsSorted, parentOf(path))
	}
	t.dropOverlay(path)
	t.gone[path] = true
	if path == "" {
		t.over[""] = &ovEntry{e: provision.Entry{Object: true}}
	}
}

// dropOverlay forgets the overlay's nodes at and below obj.
func (t *cacheTree) dropOverlay(obj string) {
	for k := range t.kids[obj] {
		if isObjectPath(k) {
			t.dropOverlay(k)
		}
		delete(t.over, k)
	}
	delete(t.kids, obj)
	delete(t.kidsSorted, obj)
	delete(t.over, obj)
}

// listedRoot returns when this session listed the top level, if it did.
func (t *cacheTree) listedRoot() (time.Time, bool) {
	o, ok := t.over[""]
	if !ok || o.e.ListTime.IsZero() || !o.e.ListTime.After(t.rootListed) {
		return time.Time{}, false
	}
	return o.e.ListTime, true
}

// changed reports whether End has anything of the tree's to write.
func (t *cacheTree) changed() bool {
	if _, ok := t.listedRoot(); ok {
		return true
	}
	if len(t.deleted) > 0 {
		return true
	}
	for _, o := range t.over {
		if o.dirty {
			return true
		}
	}
	return false
}

// commit writes the session's changes to the store in End's transaction
// (deletions first, then every written node) and adds what the core
// tracks to delta: the values read or written, the nodes removed.
func (t *cacheTree) commit(txn *badger.Txn, delta *fleet.DeviceDelta) error {
	for _, p := range t.deleted {
		key := t.base + p
		if isObjectPath(p) {
			if _, err := deletePrefix(txn, key); err != nil {
				return err
			}
		} else if err := txn.Delete([]byte(key)); err != nil {
			return err
		}
		if p != "" {
			delta.Removed = append(delta.Removed, p)
		}
	}
	type written struct {
		path string
		o    *ovEntry
	}
	ws := make([]written, 0, len(t.over))
	for p, o := range t.over {
		if o.dirty && !o.deleted {
			ws = append(ws, written{p, o})
		}
	}
	slices.SortFunc(ws, func(a, b written) int { return strings.Compare(a.path, b.path) })
	// A bootstrap writes a few hundred records: their keys and values
	// are cut from two slabs rather than allocated one by one (the
	// transaction keeps the slices until it commits; a slab that grows
	// leaves the earlier slices on the old array, which nothing writes).
	n := 0
	for _, w := range ws {
		n += len(t.base) + len(w.path)
	}
	keys := make([]byte, 0, n)
	var vals bytes.Buffer
	vals.Grow(len(ws) * 48)
	for _, w := range ws {
		p, e := w.path, w.o.e
		start := len(keys)
		keys = append(append(keys, t.base...), p...)
		key := keys[start:len(keys):len(keys)]
		if e.PathTime.IsZero() {
			// Forgotten: the CPE said there is no such name.
			if err := txn.Delete(key); err != nil {
				return err
			}
			delta.Removed = append(delta.Removed, p)
			continue
		}
		var r paramRec
		if t.complete && !t.recs[p] {
			// Not stored when the session began, and only the session
			// writes its device's parameters: nothing to read back.
		} else if err := getCBOR(txn, t.base+p, &r); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		r.Flags &= flagAttrKnown // attributes are not the engine's
		ts := e.PathTime
		if e.Object {
			r.Flags |= flagObject
			if !e.ListTime.IsZero() {
				r.Flags |= flagListed
				ts = e.ListTime
			}
		} else {
			r.Value, r.Type = e.Value, e.Type
			if !e.ValueTime.IsZero() {
				r.Flags |= flagValue
				ts = e.ValueTime
			}
		}
		if !e.WritableTime.IsZero() {
			r.Flags |= flagWritableKnown
			if e.Writable {
				r.Flags |= flagWritable
			}
		}
		r.Timestamp = ts.UnixNano()
		vstart := vals.Len()
		if err := cborBufEnc.MarshalToBuffer(&r, &vals); err != nil {
			return fmt.Errorf("encode %s: %w", p, err)
		}
		if err := txn.Set(key, vals.Bytes()[vstart:vals.Len():vals.Len()]); err != nil {
			return err
		}
		if w.o.report && !e.Object {
			delta.Parameters = append(delta.Parameters, fleet.ParameterValue{Name: p, Value: e.Value, Type: e.Type})
		}
	}
	return nil
}
