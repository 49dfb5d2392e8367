package edge

import (
	"errors"
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
// engine reads and writes it (provision.MutableTree): the device's stored
// record (P/<device>, params.go), read once when the engine first asks,
// with the session's changes in an overlay that End writes back in its
// one transaction. A Get is a binary search of the sorted nodes, Children
// a range that skips each child's subtree.
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
// Not safe for concurrent use: one session drives it. The record is read
// when the engine first needs it (store), in a transaction of its own, so
// no Badger transaction outlives one HTTP exchange of the session.
type cacheTree struct {
	c  *Cache
	id string
	// ps is the stored tree as the session's first read found it (see
	// store); loaded: that read was made.
	ps     *devParams
	loaded bool
	// now is the session's start; informed are the names the Inform
	// carried, fresh at now.
	now      time.Time
	informed map[string]bool

	over map[string]*ovEntry
	// stores counts the overlay's nodes commit stores (dirty, not
	// deleted), so that writtenByWalk checks its walk reached them all
	// without a pass over the map.
	stores int
	// ovSlab is where own takes new overlay entries from.
	ovSlab []ovEntry
	// kids are the overlay's live (not deleted) children by parent path,
	// sorted by path when Children asks (the engine walks the refreshed
	// tree after every answer). A list, not a set: a listing's names come
	// in order, appended, and a map per object, grown name by name, was a
	// third of a bootstrap's Puts.
	kids map[string]*kidList
	// lastPath and lastO are the overlay lookup of the last Get (lastO
	// nil: not in the overlay), valid while lastOK: the engine reads a
	// node and puts it back (a listing's names, a read's values, a few
	// hundred in a bootstrap), and the Put then hashes its long path
	// once, not twice. Any change to the overlay's index clears it.
	lastPath string
	lastO    *ovEntry
	lastOK   bool
	// gone are the objects deleted in this session: stored nodes at and
	// below them are hidden (the overlay may hold new ones).
	gone map[string]bool
	// deleted are the paths deleted, in order, for End.
	deleted []string
	// rootListed is when the top level was listed (Device.RootListed).
	rootListed time.Time
	// lowered: a Put gave a node an older PathTime than it had (a
	// forgotten name, a clock step back), so nodes below it may be newer
	// than it and the ovEntry.raised marks no longer hold: every Put
	// walks to the root again.
	lowered bool

	// stored and storedKids memoize what the store holds, for the
	// session: the engine replans from the tree after every answer and
	// asks for the same ancestors over and over. The store does not
	// change under a session (its device's parameters are written by
	// the session alone); the overlay and the deletions are applied on
	// top of the memo.
	// stored maps a path to its entry in storedEnts, or an object to -1
	// when the store has no such node: an index, not the Entry, a small
	// slot per lookup.
	stored     map[string]int32
	storedEnts []provision.Entry
	storedKids map[string][]storedKid

	// synth are the nodes the device record stands for, as GenieACS's
	// tree has them: DeviceID.* (identity) and Events.* (when the
	// device last informed, booted, bootstrapped, registered, and the
	// session's events). Read-only, fresh as of the session; built on
	// the first read of either root (most sessions read neither).
	synth    map[string]provision.Entry
	synthDev *Device
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
	// dropped: no longer in the overlay (an object above it was
	// deleted); a child list that still held it would be a bug, which
	// writtenByWalk checks for.
	dropped bool
	// raised is the newest PathTime (unix ns) a Put has carried past
	// this node to every ancestor: they are all at least that new, so a
	// later Put no newer stops its walk up here (see cacheTree.lowered).
	raised int64
}

func newCacheTree(c *Cache, deviceID string, now, rootListed time.Time, inform []cwmp.ParameterValue) *cacheTree {
	t := &cacheTree{
		c:          c,
		id:         deviceID,
		now:        now,
		informed:   make(map[string]bool, len(inform)),
		over:       map[string]*ovEntry{},
		kids:       map[string]*kidList{},
		gone:       map[string]bool{},
		stored:     map[string]int32{},
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

// store is the device's stored tree, read at the first call; nil when
// that read failed (the store's nodes are then absent, and the engine
// asks the CPE).
func (t *cacheTree) store() *devParams {
	if t.loaded {
		return t.ps
	}
	t.loaded = true
	err := t.c.db.View(func(txn *badger.Txn) error {
		ps, err := loadParams(txn, t.id)
		if errors.Is(err, errCorruptParams) {
			// Dropped at End (loadParamsForWrite); meanwhile the
			// engine asks the CPE.
			ps, err = &devParams{}, nil
		}
		t.ps = ps
		return err
	})
	if err != nil {
		t.c.log.Warn("reading the device's cached parameters", "device", t.id, "err", err)
	}
	return t.ps
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
	o, ok := t.over[path]
	t.lastPath, t.lastO, t.lastOK = path, o, true
	if ok {
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
	if i, ok := t.stored[path]; ok {
		if i < 0 {
			return provision.Entry{}, false
		}
		return t.storedEnts[i], true
	}
	if t.store() == nil {
		return provision.Entry{}, false
	}
	var e provision.Entry
	found := false
	if r, ok := t.ps.get(path); ok {
		e, found = t.entry(path, r), true
	} else if isObjectPath(path) {
		if ts, ok := t.firstDescendant(path); ok {
			e, found = provision.Entry{Path: path, Object: true, PathTime: ts}, true
		}
	}
	if !found {
		// Absent objects are remembered (finding one is a range scan);
		// absent parameters not: a bootstrap asks for a few hundred the
		// store lacks, each to be put right after, and a binary search
		// costs less than filling the memo with them.
		if isObjectPath(path) {
			t.stored[path] = -1
		}
		return e, false
	}
	t.stored[path] = int32(len(t.storedEnts))
	t.storedEnts = append(t.storedEnts, e)
	return e, true
}

// firstDescendant finds a visible stored node below obj and returns its
// time: what an object without a record of its own is known by.
func (t *cacheTree) firstDescendant(obj string) (time.Time, bool) {
	lo, hi := t.ps.prefixRange(obj)
	for i := lo; i < hi; i++ {
		name, r := t.ps.ents[i].path, &t.ps.ents[i].rec
		if t.hidden(name) {
			continue
		}
		if ov, ok := t.over[name]; ok && ov.deleted {
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
	if t.store() != nil && !t.hidden(path) && !t.storedChildren(path, fn) {
		return
	}
	for _, o := range t.overlayKids(path) {
		if !o.deleted && !fn(o.e) {
			return
		}
	}
}

// kidList is an object's live overlay children; unsorted: one was
// appended out of path order since the last sort.
type kidList struct {
	ents     []*ovEntry
	unsorted bool
}

// link adds o (not in the list) to it.
func (l *kidList) link(o *ovEntry) {
	if n := len(l.ents); n > 0 && l.ents[n-1].e.Path > o.e.Path {
		l.unsorted = true
	}
	l.ents = append(l.ents, o)
}

// unlink removes o from the list, keeping the order.
func (l *kidList) unlink(o *ovEntry) {
	if l == nil {
		return
	}
	if i := slices.Index(l.ents, o); i >= 0 {
		l.ents = slices.Delete(l.ents, i, i+1)
	}
}

// overlayKids is the overlay's live children of path, sorted by path.
func (t *cacheTree) overlayKids(path string) []*ovEntry {
	l := t.kids[path]
	if l == nil {
		return nil
	}
	if l.unsorted {
		slices.SortFunc(l.ents, func(a, b *ovEntry) int { return strings.Compare(a.e.Path, b.e.Path) })
		l.unsorted = false
	}
	return l.ents
}

// written is an overlay node commit stores.
type written struct {
	path string
	o    *ovEntry
}

// writtenInOrder is the overlay's nodes to store (dirty, not deleted), in
// path order. A walk down the overlay's sorted child lists gives that
// order (the paths an object prefixes are a range, and its children
// split it), and the engine's walks have sorted most lists already: a
// bootstrap's few hundred paths, with long shared prefixes, then cost no
// sort of their own (a sort was a fortieth of the edge's CPU in a storm).
// The walk checks what it produced; a node it did not reach, or out of
// order, and the nodes are sorted as before.
func (t *cacheTree) writtenInOrder() []written {
	if ws, ok := t.writtenByWalk(); ok {
		return ws
	}
	var ws []written
	for p, o := range t.over {
		if o.stored() {
			ws = append(ws, written{p, o})
		}
	}
	slices.SortFunc(ws, func(a, b written) int { return strings.Compare(a.path, b.path) })
	return ws
}

// writtenByWalk is writtenInOrder's walk, and whether it reached every
// node to store, in order.
func (t *cacheTree) writtenByWalk() ([]written, bool) {
	want := t.stores
	ws := make([]written, 0, want)
	var visit func(string)
	visit = func(obj string) {
		for _, o := range t.overlayKids(obj) {
			if o.deleted {
				continue
			}
			if o.dirty {
				ws = append(ws, written{o.e.Path, o})
			}
			if o.e.Object {
				visit(o.e.Path)
			}
		}
	}
	if o := t.over[""]; o != nil && o.stored() {
		ws = append(ws, written{"", o})
	}
	visit("")
	ok := len(ws) == want
	for i := 0; ok && i < len(ws); i++ {
		ok = (i == 0 || ws[i-1].path < ws[i].path) && !ws[i].o.dropped
	}
	return ws, ok
}

func (t *cacheTree) storedChildren(path string, fn func(provision.Entry) bool) bool {
	kids, ok := t.storedKids[path]
	if !ok {
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

// scanChildren lists the stored children of path: its range of the
// sorted nodes, each object child once (its subtree skipped).
func (t *cacheTree) scanChildren(path string) []storedKid {
	var kids []storedKid
	lo, hi := t.ps.prefixRange(path)
	for i := lo; i < hi; {
		e := &t.ps.ents[i]
		rest := e.path[len(path):]
		dot := strings.IndexByte(rest, '.')
		switch {
		case rest == "":
			i++ // the object's own record
		case dot < 0:
			kids = append(kids, storedKid{path: e.path, e: t.entry(e.path, &e.rec)})
			i++
		default:
			child := path + rest[:dot+1]
			kids = append(kids, storedKid{path: child, obj: true})
			for i < hi && strings.HasPrefix(t.ps.ents[i].path, child) {
				i++
			}
		}
	}
	return kids
}

// Put implements provision.MutableTree.
func (t *cacheTree) Put(e provision.Entry) {
	e.Object = isObjectPath(e.Path)
	// A node the overlay holds live (most Puts of a session: a value read
	// after the listing, an ancestor raised) is found with one lookup; own
	// links only new or deleted ones under their parent. Paths are long
	// and a bootstrap makes a few hundred Puts: a map lookup each was a
	// tenth of the edge's CPU in a storm.
	var o *ovEntry
	var existed bool
	if t.lastOK && t.lastPath == e.Path {
		o, existed = t.lastO, t.lastO != nil
	} else {
		o, existed = t.over[e.Path]
	}
	t.lastOK = false
	live := existed && !o.deleted
	// What was there matters only to a value's report: a listing (a
	// bootstrap's GetParameterNames answer is hundreds of Puts) skips the
	// read.
	report := false
	if !e.Object && !e.ValueTime.IsZero() {
		if live && (t.synthDev == nil || !synthRoot(e.Path)) {
			report = !e.ValueTime.Equal(o.e.ValueTime)
		} else {
			prev, found := t.Get(e.Path)
			report = !found || !e.ValueTime.Equal(prev.ValueTime)
		}
	}
	if !live {
		o = t.adopt(e.Path, o, existed)
	}
	if existed && !o.deleted && e.PathTime.Before(o.e.PathTime) {
		t.lowered = true
	}
	o.e = e
	// The root has no record: its listing lives for the session only.
	t.mark(o, e.Path != "", false)
	if report {
		o.report = true
	}
	// Raise the ancestors' PathTime to e's. Every ancestor of a node in
	// the overlay is in it too; a walk stops at one that an earlier Put
	// at least as new went past (a bootstrap's listing puts a few
	// hundred names, each walking up to five ancestors, three-quarters
	// of them already raised by a sibling).
	var ts int64
	if !e.PathTime.IsZero() && !t.lowered {
		ts = e.PathTime.UnixNano()
	}
	for p := e.Path; p != ""; {
		p = parentOf(p)
		a, ok := t.over[p]
		if ok && !a.deleted && ts != 0 && a.raised >= ts {
			break
		}
		if !ok || a.deleted {
			ae, found := t.Get(p)
			if !found {
				ae = provision.Entry{Path: p, Object: true}
			}
			a, _ = t.own(p)
			a.e = ae
			t.mark(a, a.dirty, false)
		}
		if a.e.PathTime.Before(e.PathTime) {
			a.e.PathTime = e.PathTime
		}
		a.raised = max(a.raised, ts)
	}
	o.raised = max(o.raised, ts)
}

// Grow implements provision.Grower: for a listing of 64 nodes or more,
// the overlay's index is remade with room for n more (a bootstrap's
// listing is most of a session's nodes). A second such listing in one
// session, which names mostly nodes the index holds already, remakes it
// again: a copy of a few hundred pointers, cheaper than guessing.
func (t *cacheTree) Grow(n int) {
	if n < 64 {
		return
	}
	over := make(map[string]*ovEntry, len(t.over)+n)
	maps.Copy(over, t.over)
	t.over = over
}

// own returns the overlay entry of path, created (and linked under its
// parent) if need be, and whether it was there already.
func (t *cacheTree) own(path string) (*ovEntry, bool) {
	o, existed := t.over[path]
	return t.adopt(path, o, existed), existed
}

// adopt is own for the result of path's lookup in the overlay (o,
// existed).
func (t *cacheTree) adopt(path string, o *ovEntry, existed bool) *ovEntry {
	if !existed {
		t.lastOK = false
		// From a slab: a bootstrap's refresh makes a few hundred, all
		// kept until the session ends.
		if len(t.ovSlab) == 0 {
			t.ovSlab = make([]ovEntry, 64)
		}
		o, t.ovSlab = &t.ovSlab[0], t.ovSlab[1:]
		t.over[path] = o
	}
	// A live entry is linked under its parent already (kids holds exactly
	// the live ones); a new or deleted one is linked now, by its path.
	if path != "" && (!existed || o.deleted) {
		o.e.Path = path
		parent := parentOf(path)
		l := t.kids[parent]
		if l == nil {
			l = &kidList{}
			t.kids[parent] = l
		}
		l.link(o)
	}
	return o
}

// Delete implements provision.MutableTree.
func (t *cacheTree) Delete(path string) {
	if _, ok := t.Get(path); !ok {
		return
	}
	t.lastOK = false
	t.deleted = append(t.deleted, path)
	if !isObjectPath(path) {
		o, _ := t.own(path)
		t.mark(o, false, true)
		o.report = false
		t.kids[parentOf(path)].unlink(o)
		return
	}
	if o := t.over[path]; path != "" && o != nil && !o.deleted {
		t.kids[parentOf(path)].unlink(o)
	}
	t.dropOverlay(path)
	t.gone[path] = true
	if path == "" {
		t.over[""] = &ovEntry{e: provision.Entry{Object: true}}
	}
}

// dropOverlay forgets the overlay's nodes at and below obj.
func (t *cacheTree) dropOverlay(obj string) {
	if l := t.kids[obj]; l != nil {
		for _, o := range l.ents {
			if isObjectPath(o.e.Path) {
				t.dropOverlay(o.e.Path)
			} else {
				t.drop(o.e.Path, o)
			}
		}
	}
	delete(t.kids, obj)
	if o := t.over[obj]; o != nil {
		t.drop(obj, o)
	}
}

// stored reports whether commit stores o: written in the session and
// not deleted since.
func (o *ovEntry) stored() bool { return o.dirty && !o.deleted }

// mark sets o's dirty and deleted flags, keeping t.stores (the count of
// stored nodes) right whatever they were.
func (t *cacheTree) mark(o *ovEntry, dirty, deleted bool) {
	if o.stored() {
		t.stores--
	}
	o.dirty, o.deleted = dirty, deleted
	if o.stored() {
		t.stores++
	}
}

// drop removes o, the overlay's node at path, from the overlay.
func (t *cacheTree) drop(path string, o *ovEntry) {
	if o.stored() {
		t.stores--
	}
	o.dropped = true
	delete(t.over, path)
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
// (deletions first, then every written node), and to the device record
// its copy of the inform interval and when the top level was listed; it
// adds what the core tracks to delta: the values read or written, the
// nodes removed.
func (t *cacheTree) commit(txn *badger.Txn, delta *fleet.DeviceDelta) error {
	tree, err := t.c.loadParamsForWrite(txn, t.id)
	if err != nil {
		return err
	}
	for _, p := range t.deleted {
		if isObjectPath(p) {
			tree.removePrefix(p)
		} else {
			tree.remove(p)
		}
		if p != "" {
			delta.Removed = append(delta.Removed, p)
		}
	}
	// In path order, merged with the stored nodes in one pass.
	ws := t.writtenInOrder()
	merged := make([]paramEntry, 0, len(tree.ents)+len(ws))
	// Room for every value written (a bootstrap reports a few hundred):
	// grown by appends, the list was copied over and over.
	delta.Parameters = slices.Grow(delta.Parameters, len(ws))
	i := 0
	for _, w := range ws {
		p, e := w.path, w.o.e
		for i < len(tree.ents) && tree.ents[i].path < p {
			merged = append(merged, tree.ents[i])
			i++
		}
		var r paramRec
		if i < len(tree.ents) && tree.ents[i].path == p {
			r = tree.ents[i].rec
			i++
		}
		if e.PathTime.IsZero() {
			// Forgotten: the CPE said there is no such name.
			delta.Removed = append(delta.Removed, p)
			continue
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
		merged = append(merged, paramEntry{p, r})
		if w.o.report && !e.Object {
			delta.Parameters = append(delta.Parameters, fleet.ParameterValue{Name: p, Value: e.Value, Type: e.Type})
		}
	}
	tree.ents = append(merged, tree.ents[i:]...)
	if err := putParams(txn, t.id, tree); err != nil {
		return err
	}
	// The device record's interval copy and the root's listing time, in
	// one edit of the record.
	listed, ok := t.listedRoot()
	return editDevice(txn, t.id, func(d *Device) bool {
		changed := keepInterval(d, tree)
		if ok {
			d.RootListed, changed = listed, true
		}
		return changed
	})
}
