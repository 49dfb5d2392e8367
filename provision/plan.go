package provision

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Next plans the RPCs that bring the device closer to what the run's
// declarations ask for, reading the device's cached tree t. done means
// nothing is left: the outcome is complete, until more is declared.
//
// The RPCs come in GenieACS's order, one kind per call: reads first
// (GetParameterNames, then GetParameterValues), then writes
// (DeleteObject and AddObject, SetParameterValues, Download, Reboot,
// FactoryReset). The caller sends them in order and reports each answer
// with Answer; it may stop after any answer and call Next again, since
// Next replans from the tree and the run's record of what it did.
func (r *Run) Next(t Tree) (rpcs []cwmp.Message, done bool) {
	if r.done {
		return nil, true
	}
	if r.gpvBuf == nil {
		r.gpvBuf = gpvBufs.Get().(*gpvSet)
	}
	p := plan{r: r, t: t, gpv: r.gpvBuf.list[:0], gpvAt: r.gpvBuf.at}
	for _, d := range r.decls {
		if r.faulted&(1<<d.ch) == 0 {
			p.eval(d)
		}
	}
	r.settleTags(t)
	msgs := p.emit()
	r.gpvBuf.reset(p.gpv, p.gpvAt)
	if len(msgs) == 0 {
		r.done = true
		if cap(r.gpvBuf.list) <= maxKeptGPV {
			gpvBufs.Put(r.gpvBuf)
		}
		r.gpvBuf = nil
		return nil, true
	}
	if room := r.opts.MaxRPCs - r.rpcs; room > 0 && len(msgs) > room {
		for _, m := range msgs[room:] {
			delete(r.inflight, m)
		}
		msgs = msgs[:room]
	}
	// Count, per channel, the rounds that sent RPCs for it. A channel
	// past the bound is stuck (a CPE that lists what it then denies,
	// values that never stick); channels merely waiting for the write
	// phase behind it are not counted and go on once it is stopped.
	var chans, stuck uint64
	for _, m := range msgs {
		chans |= r.inflight[m].chans
	}
	for i := range r.channels {
		if chans&(1<<i) != 0 {
			r.rounds[i]++
			if r.rounds[i] > r.opts.MaxIterations {
				stuck |= 1 << i
			}
		}
	}
	var f Fault
	switch {
	case r.rpcs >= r.opts.MaxRPCs:
		stuck = chans
		f = Fault{Code: FaultTooManyRPCs, Message: fmt.Sprintf("more than %d RPCs in a run", r.opts.MaxRPCs)}
	case stuck != 0:
		f = Fault{Code: FaultTooManyCommits, Message: fmt.Sprintf("not settled after %d rounds of RPCs", r.opts.MaxIterations)}
	default:
		return msgs, false
	}
	for _, m := range msgs {
		delete(r.inflight, m)
	}
	r.fault(stuck, f)
	return r.Next(t)
}

// plan is one Next's view: what each declaration still needs.
type plan struct {
	r     *Run
	t     Tree
	chans uint64 // every channel with a need
	front [2][]Entry
	// needy, when set, collects the declarations with a need, needRead
	// or needWrite (cur is the one being evaluated); delBy, the
	// declarations behind each planned DeleteObject. ScopeSettled uses
	// them.
	needy map[*decl]uint8
	cur   *decl
	delBy map[string][]*decl

	gpn map[string]*gpnNeed
	// gpv are the values to read, in the order first needed (a walk's
	// order, sorted already for a refreshed tree), with the channels
	// needing each; gpvAt indexes them by name.
	gpv    []gpvNeed
	gpvAt  map[string]int
	keyGPV []keyFetch
	spv    map[string]*spvNeed
	del    map[string]uint64
	add    []addNeed
	dls    []dlNeed
	reboot uint64
	reset  uint64
	// vneeds, when set (Run.Virtual), collects the virtual parameters
	// the declarations need run.
	vneeds map[string]*VirtualNeed
}

type gpnNeed struct {
	subtree bool
	chans   uint64
}

type spvNeed struct {
	value, typ string
	chans      uint64
}

type addNeed struct {
	table string
	terms []AliasTerm
	key   string
	chans uint64
}

type dlNeed struct {
	dl    DownloadRequest
	chans uint64
}

// keyFetch reads the alias keys of an instance this run created, when
// their types are not known: the names were never in the tree, so a
// fault is the declaration's, not the cache's.
type keyFetch struct {
	names []string
	chans uint64
}

// Kinds of need, for plan.needy.
const (
	needRead  uint8 = 1 << iota // GetParameterNames, GetParameterValues
	needWrite                   // anything else
)

// need records that the declaration being evaluated, on the channels of
// bit, needs an RPC of the kind.
func (p *plan) need(bit uint64, kind uint8) {
	p.chans |= bit
	if p.needy != nil {
		p.needy[p.cur] |= kind
	}
}

func (p *plan) eval(d *decl) {
	p.cur = d
	bit := uint64(1) << d.ch
	switch d.kind {
	case kTag:
		p.r.tagWant[d.tag] = d.on
	case kReboot, kReset:
		root := RootReboot
		if d.kind == kReset {
			root = RootFactoryReset
		}
		if parseStamp(virtualValue(p.t, root)).Before(d.when) {
			if d.kind == kReboot {
				p.reboot |= bit
			} else {
				p.reset |= bit
			}
			p.need(bit, needWrite)
		}
	case kDownload:
		p.evalDownload(d, bit)
	case kVirtual:
		p.evalVirtual(d, bit)
	case kParam:
		if d.inst != nil {
			p.evalInstances(d, bit)
		} else {
			p.evalParam(d, bit)
		}
	}
}

// ---- reading the tree ----

// fresh reports whether knowledge of path learnt at tm satisfies a
// requirement of time want, once the run's clears are applied.
func (p *plan) fresh(path string, tm, want time.Time) bool {
	if tm.Before(want) || tm.IsZero() {
		return false
	}
	return len(p.r.clears) == 0 || !tm.Before(p.r.clearedBefore(path, false))
}

// listed reports whether obj's list of children is fresh enough.
func (p *plan) listed(obj Entry, want time.Time) bool {
	tm := obj.ListTime
	if tm.Before(want) || tm.IsZero() {
		return false
	}
	return len(p.r.clears) == 0 || !tm.Before(p.r.clearedBefore(obj.Path, true))
}

// clearedBefore returns the latest clear time that applies to path (or,
// with list, to the list of path's children).
func (r *Run) clearedBefore(path string, list bool) time.Time {
	var at time.Time
	segs := strings.Split(strings.TrimSuffix(path, "."), ".")
	if path == "" {
		segs = nil
	}
	for _, c := range r.clears {
		if !c.at.After(at) {
			continue
		}
		n := len(c.path.Segments)
		switch {
		case n <= len(segs) && matchSegs(c.path.Segments, segs[:n]):
			at = c.at
		case list && n == len(segs)+1 && c.path.Segments[n-1].Kind != Literal && matchSegs(c.path.Segments[:n-1], segs):
			at = c.at
		}
	}
	return at
}

// matchSegs reports whether names match pattern segment by segment; an
// alias matches any instance (a clear may clear more than it must).
func matchSegs(pattern []Segment, names []string) bool {
	for i, s := range pattern {
		if s.Kind == Literal && s.Name != names[i] {
			return false
		}
	}
	return true
}

// resolve expands the first n segments of segs against the tree, level
// by level. It returns the nodes matched and whether the expansion is
// complete; where it is not, it has recorded the GetParameterNames (or,
// with confirm, the GetParameterValues of a known parameter) that would
// complete it. objLast asks for objects only at the last level. The
// segments beyond n are what the caller will look for below the matches.
//
// The result lives in the plan's scratch space: it is valid until the
// next resolve.
func (p *plan) resolve(d *decl, segs []Segment, n int, objLast, confirm bool) ([]Entry, bool) {
	root, _ := p.t.Get("")
	root.Path, root.Object = "", true
	frontier := append(p.front[0][:0], root)
	next := p.front[1][:0]
	complete := true
	for i, seg := range segs[:n] {
		last := i == n-1
		next = next[:0]
		lit := ""
		if i < len(d.lits) {
			lit = d.lits[i]
		}
		for _, obj := range frontier {
			if obj.Object && !p.expand(&next, d, obj, seg, lit, segs[i+1:], last, last && (objLast || d.path.Object), last && confirm) {
				complete = false
			}
		}
		frontier, next = next, frontier
		if len(frontier) == 0 {
			break
		}
	}
	p.front[0], p.front[1] = frontier, next
	return frontier, complete
}

// expand appends to out the children of obj that seg selects and reports
// whether the list is complete. lit, when set, is the object form of the
// literal child's name ("A.B.C."), precomputed by the declaration.
func (p *plan) expand(out *[]Entry, d *decl, obj Entry, seg Segment, lit string, rest []Segment, last, wantObj, confirm bool) bool {
	// The declared path time applies to what the path selects: its last
	// level and the lists its patterns expand. A name on the way there
	// need only be known (GenieACS stamps only the declared path).
	want := d.ts.Path
	if !last && seg.Kind == Literal {
		want = Ever
	}
	bit := uint64(1) << d.ch
	if seg.Kind == Literal {
		if lit == "" {
			lit = obj.Path + seg.Name + "."
		}
		var e Entry
		found := false
		if last && !wantObj {
			e, found = p.t.Get(lit[:len(lit)-1])
		}
		if !found {
			e, found = p.t.Get(lit)
		}
		switch {
		case found && p.fresh(e.Path, e.PathTime, want):
			*out = append(*out, e)
			return true
		case found && confirm && !e.Object && !e.PathTime.IsZero():
			// Reading its value confirms it exists: no listing needed.
			p.needGPV(e.Path, bit)
			*out = append(*out, e)
			return false
		case found && last && d.deep && e.Object && !e.PathTime.IsZero():
			// So does listing it whole, which a deep refresh will.
			p.needList(e.Path, true, bit)
			*out = append(*out, e)
			return false
		case !found && p.listed(obj, want):
			return true // listed since, and not there: absent
		}
		p.needList(obj.Path, p.subtree(obj.Path, len(rest) >= 2 || pattern(rest)), bit)
		return false
	}
	if !p.listed(obj, want) {
		p.needList(obj.Path, p.subtree(obj.Path, len(rest) > 0 || len(seg.Terms) > 0), bit)
		return false
	}
	complete := true
	p.t.Children(obj.Path, func(c Entry) bool {
		switch {
		case obj.Path == "" && isVirtual(c.Path):
		case (!last || wantObj || seg.Kind == Alias) && !c.Object:
		case !p.fresh(c.Path, c.PathTime, want):
			// Forgotten since the listing (a 9005, a clear): list again.
			p.needList(obj.Path, false, bit)
			complete = false
		case seg.Kind == Alias:
			match, ok := p.aliasMatch(d, c, seg.Terms, bit)
			if !ok {
				complete = false
			} else if match {
				*out = append(*out, c)
			}
		default:
			*out = append(*out, c)
		}
		return true
	})
	return complete
}

// subtree says whether to list obj with NextLevel false (everything
// below) rather than one level: when more than its children is needed
// and obj is deep enough for its subtree to be small.
func (p *plan) subtree(obj string, deeper bool) bool {
	return deeper && depth(obj) >= p.r.opts.SubtreeDepth
}

func pattern(segs []Segment) bool {
	for _, s := range segs {
		if s.Kind != Literal {
			return true
		}
	}
	return false
}

// aliasMatch decides whether instance c matches the alias terms. ok is
// false while a key's value is not known fresh enough; the reads that
// would settle it are then recorded.
func (p *plan) aliasMatch(d *decl, c Entry, terms []AliasTerm, bit uint64) (match, ok bool) {
	if cr, ok := p.r.created[c.Path]; ok && cr.key == d.key {
		return true, true // created for this alias: its keys are being set
	}
	want := d.ts.Path
	unknown := false
	for _, term := range terms {
		e, found := p.t.Get(c.Path + term.Key)
		switch {
		case found && !e.Object && p.fresh(e.Path, e.ValueTime, want):
			if !sameValue(e.Type, e.Value, term.Value) {
				return false, true
			}
		case !found && p.keyAbsent(c, term.Key, want):
			return false, true
		default:
			unknown = true
		}
	}
	if !unknown {
		return true, true
	}
	for _, term := range terms {
		e, found := p.t.Get(c.Path + term.Key)
		switch {
		case found && !e.Object && p.fresh(e.Path, e.ValueTime, want):
		case found && !e.Object && !e.PathTime.IsZero():
			p.needGPV(e.Path, bit)
		default:
			p.needList(c.Path, true, bit)
		}
	}
	return false, false
}

// keyAbsent reports whether the alias key (a path relative to instance
// c) is known not to exist: its deepest existing ancestor was listed
// since want.
func (p *plan) keyAbsent(c Entry, key string, want time.Time) bool {
	obj := c
	parts := strings.Split(key, ".")
	for _, part := range parts[:len(parts)-1] {
		e, found := p.t.Get(obj.Path + part + ".")
		if !found {
			break
		}
		obj = e
	}
	return p.listed(obj, want)
}

// ---- declarations ----

func (p *plan) evalParam(d *decl, bit uint64) {
	confirm := d.value != nil || !d.ts.Value.IsZero()
	matches, complete := p.resolve(d, d.path.Segments, len(d.path.Segments), false, confirm)
	for _, e := range matches {
		p.gets(d, e, bit)
	}
	if !complete {
		return
	}
	if len(matches) == 0 {
		if d.literal != "" && confirm {
			p.r.missing(d, d.literal)
		}
		return
	}
	if d.value != nil {
		for _, e := range matches {
			p.set(d, e, bit)
		}
	}
}

// gets records the reads a matched node needs for the declared freshness.
func (p *plan) gets(d *decl, e Entry, bit uint64) {
	if !e.Object && !d.ts.Value.IsZero() && !p.fresh(e.Path, e.ValueTime, d.ts.Value) {
		p.needGPV(e.Path, bit)
	}
	if !d.ts.Writable.IsZero() && e.Path != "" && !p.fresh(e.Path, e.WritableTime, d.ts.Writable) {
		p.needList(parentPath(e.Path), false, bit)
	}
	if d.deep && e.Object {
		p.deepRefresh(d, e, bit)
	}
}

// deepRefresh asks for everything below o: its whole subtree listed and
// every value read, as fresh as declared.
func (p *plan) deepRefresh(d *decl, o Entry, bit uint64) {
	if !p.listed(o, d.ts.Path) {
		p.needList(o.Path, true, bit)
		return
	}
	// The closure must not capture o: it escapes (Children is an
	// interface call), and o with it, a heap copy of the Entry per object
	// per walk (a fifth of a bootstrap's planner garbage).
	top := o.Path == ""
	p.t.Children(o.Path, func(c Entry) bool {
		switch {
		case top && isVirtual(c.Path):
		case c.Object:
			p.deepRefresh(d, c, bit)
		case !d.ts.Value.IsZero() && !p.fresh(c.Path, c.ValueTime, d.ts.Value):
			p.needGPV(c.Path, bit)
		}
		return true
	})
}

// set plans the SetParameterValues of a declared value, once the value
// and writable flag it depends on are known.
func (p *plan) set(d *decl, e Entry, bit uint64) {
	if e.Object {
		if d.literal != "" {
			p.r.warn(d, e.Path, "an object has no value")
		}
		return
	}
	skip := p.r.opts.SkipWritableCheck
	ready := true
	if !skip && !p.fresh(e.Path, e.WritableTime, Ever) {
		p.needList(parentPath(e.Path), false, bit)
		ready = false
	}
	if !p.fresh(e.Path, e.ValueTime, Ever) {
		p.needGPV(e.Path, bit)
		ready = false
	}
	if !ready {
		return
	}
	if !skip && !e.Writable {
		p.r.warn(d, e.Path, "parameter is not writable")
		return
	}
	typ := setType(d.value.Type, e.Type)
	if sameValue(typ, e.Value, d.value.Value) {
		return
	}
	p.needSPV(e.Path, wireValue(typ, d.value.Value), typ, bit)
}

func (p *plan) evalInstances(d *decl, bit uint64) {
	segs := d.path.Segments
	last := segs[len(segs)-1]
	tables, complete := p.resolve(d, segs, len(segs)-1, true, false)
	if !complete {
		return
	}
	if len(tables) == 0 {
		if !pattern(segs[:len(segs)-1]) {
			p.r.missing(d, Path{Segments: segs[:len(segs)-1], Object: true}.literal())
		}
		return
	}
	for _, tb := range tables {
		var insts []Entry
		if !p.expand(&insts, d, tb, last, "", nil, true, true, false) {
			continue
		}
		lo, hi := d.inst.Min, d.inst.Max
		if d.relative {
			k := d.key + "\x00" + tb.Path
			n, ok := p.r.frozen[k]
			if !ok {
				n = max(0, len(insts)+d.rel)
				p.r.frozen[k] = n
			}
			lo, hi = n, n
		}
		slices.SortFunc(insts, func(a, b Entry) int { return instanceNumber(a.Path) - instanceNumber(b.Path) })
		// The instances this declaration keeps stay, even if an earlier
		// declaration on the table marked them for deletion: as in
		// GenieACS, "[]" with 0 and then "[Key:v]" with 1 deletes all
		// instances but one with Key v.
		for _, x := range insts[:min(lo, len(insts))] {
			delete(p.del, x.Path)
			delete(p.delBy, x.Path)
		}
		if len(insts) > hi {
			p.deleteExtra(d, tb, insts, hi, bit)
		}
		if len(insts) < lo {
			p.create(d, tb, last, lo-len(insts), lo, bit)
		}
		for _, path := range sortedKeys(p.r.created) {
			if cr := p.r.created[path]; cr.key == d.key && parentPath(path) == tb.Path {
				p.setKeys(cr, tb, bit)
			}
		}
	}
}

// deleteExtra deletes the instances beyond the first keep of insts
// (sorted in instance order): the newest go first.
func (p *plan) deleteExtra(d *decl, tb Entry, insts []Entry, keep int, bit uint64) {
	skip := p.r.opts.SkipWritableCheck
	for _, x := range insts[keep:] {
		switch {
		case !skip && !p.fresh(x.Path, x.WritableTime, Ever):
			p.needList(tb.Path, false, bit)
		case !skip && !x.Writable:
			p.r.warn(d, x.Path, "instance cannot be deleted (not writable)")
		case p.r.deleted[x.Path]:
			p.r.fault(bit, Fault{Code: FaultTooManyCommits, Message: "instance " + x.Path + " is back after its DeleteObject"})
			return
		default:
			if p.del == nil {
				p.del = map[string]uint64{}
			}
			p.del[x.Path] |= bit
			if p.delBy != nil {
				p.delBy[x.Path] = append(p.delBy[x.Path], p.cur)
			}
		}
	}
}

// create plans n AddObjects in table tb for an alias or wildcard segment
// whose declared count is target.
func (p *plan) create(d *decl, tb Entry, last Segment, n, target int, bit uint64) {
	if last.Kind == Literal {
		p.r.warn(d, tb.Path+last.Name+".", "a numbered instance cannot be created: the CPE numbers instances")
		return
	}
	skip := p.r.opts.SkipWritableCheck
	if !skip && !p.fresh(tb.Path, tb.WritableTime, Ever) {
		p.needList(parentPath(tb.Path), false, bit)
		return
	}
	if !skip && !tb.Writable {
		p.r.warn(d, tb.Path, "table does not allow AddObject (not writable)")
		return
	}
	// A run never needs more AddObjects in one table than the count it
	// declares; more means the CPE's instances do not stay created.
	k := d.key + "\x00" + tb.Path
	if p.r.objects[k]+n > target {
		p.r.fault(bit, Fault{Code: FaultTooManyCommits,
			Message: fmt.Sprintf("%d instances added to %s and still %d missing", p.r.objects[k], tb.Path, n)})
		return
	}
	for range n {
		p.add = append(p.add, addNeed{table: tb.Path, terms: last.Terms, key: d.key, chans: bit})
	}
	p.need(bit, needWrite)
}

// setKeys plans the writes that give an instance created for an alias the
// alias values; once the tree shows them, the instance is an ordinary
// match.
func (p *plan) setKeys(cr *created, tb Entry, bit uint64) {
	settled := true
	var unknown []string
	for _, term := range cr.terms {
		kp := cr.path + term.Key
		e, found := p.t.Get(kp)
		if found && !e.Object && !e.ValueTime.IsZero() && sameValue(e.Type, e.Value, term.Value) {
			continue
		}
		settled = false
		typ := ""
		if found && !e.ValueTime.IsZero() {
			typ = e.Type
		}
		if typ == "" {
			typ = p.siblingType(tb.Path, cr.path, term.Key)
		}
		if typ == "" {
			unknown = append(unknown, kp)
			continue
		}
		p.needSPV(kp, wireValue(typ, term.Value), typ, bit)
	}
	if len(unknown) > 0 {
		p.keyGPV = append(p.keyGPV, keyFetch{names: unknown, chans: bit})
		p.need(bit, needRead)
	}
	if settled {
		delete(p.r.created, cr.path)
	}
}

// siblingType returns the type of key in another instance of table, so a
// new instance's keys can be set without reading them first.
func (p *plan) siblingType(table, self, key string) string {
	typ := ""
	p.t.Children(table, func(c Entry) bool {
		if c.Object && c.Path != self {
			if e, ok := p.t.Get(c.Path + key); ok && !e.ValueTime.IsZero() && e.Type != "" {
				typ = e.Type
				return false
			}
		}
		return true
	})
	return typ
}

func (p *plan) evalDownload(d *decl, bit uint64) {
	sent := false
	p.t.Children(RootDownloads+".", func(c Entry) bool {
		if virtualValue(p.t, c.Path+"FileType") == d.dl.FileType &&
			virtualValue(p.t, c.Path+"FileName") == d.dl.FileName &&
			virtualValue(p.t, c.Path+"TargetFileName") == d.dl.TargetFileName &&
			!parseStamp(virtualValue(p.t, c.Path+"Download")).Before(d.when) {
			sent = true
			return false
		}
		return true
	})
	if sent {
		return
	}
	for i := range p.dls {
		if p.dls[i].dl == d.dl {
			p.dls[i].chans |= bit
			p.need(bit, needWrite)
			return
		}
	}
	p.dls = append(p.dls, dlNeed{dl: d.dl, chans: bit})
	p.need(bit, needWrite)
}

// ---- needs ----

func (p *plan) needList(obj string, subtree bool, bit uint64) {
	if isVirtual(obj) {
		return
	}
	if p.gpn == nil {
		p.gpn = map[string]*gpnNeed{}
	}
	n := p.gpn[obj]
	if n == nil {
		n = &gpnNeed{}
		p.gpn[obj] = n
	}
	n.subtree = n.subtree || subtree
	n.chans |= bit
	p.need(bit, needRead)
}

func (p *plan) needGPV(name string, bit uint64) {
	if isVirtual(name) {
		return
	}
	if i, ok := p.gpvAt[name]; ok {
		p.gpv[i].chans |= bit
	} else {
		if p.gpvAt == nil {
			p.gpvAt = map[string]int{}
		}
		p.gpvAt[name] = len(p.gpv)
		p.gpv = append(p.gpv, gpvNeed{name, bit})
	}
	p.need(bit, needRead)
}

// gpvNeed is a value to read and the channels that need it.
type gpvNeed struct {
	name  string
	chans uint64
}

// gpvSet is a plan's values to read and their index by name, kept
// empty between plans (Run.gpvBuf).
type gpvSet struct {
	list []gpvNeed
	at   map[string]int
}

// reset keeps list's array and the index, emptied: no names stay alive.
func (g *gpvSet) reset(list []gpvNeed, at map[string]int) {
	clear(list)
	clear(at)
	g.list, g.at = list[:0], at
}

// gpvBufs are the emptied gpvSets of finished runs, for the next runs (a
// session's stages and cycles are runs of their own), up to maxKeptGPV
// values each.
var gpvBufs = sync.Pool{New: func() any { return &gpvSet{at: map[string]int{}} }}

const maxKeptGPV = 4096

func (p *plan) needSPV(name, value, typ string, bit uint64) {
	if p.spv == nil {
		p.spv = map[string]*spvNeed{}
	}
	if n := p.spv[name]; n != nil {
		// Two declarations on one parameter: the later one wins, as
		// GenieACS merges them.
		n.value, n.typ = value, typ
		n.chans |= bit
	} else {
		p.spv[name] = &spvNeed{value: value, typ: typ, chans: bit}
	}
	p.need(bit, needWrite)
}

// ---- RPCs ----

// emit turns the needs into the RPCs of the first phase that has any.
func (p *plan) emit() []cwmp.Message {
	for _, phase := range []func() []cwmp.Message{p.emitGPN, p.emitGPV, p.emitObjects, p.emitSPV, p.emitDownloads, p.emitReboot} {
		if msgs := phase(); len(msgs) > 0 {
			return msgs
		}
	}
	return nil
}

func (p *plan) track(m cwmp.Message, info *rpcInfo) cwmp.Message {
	p.r.inflight[m] = info
	return m
}

func (p *plan) emitGPN() []cwmp.Message {
	if len(p.gpn) == 0 {
		return nil
	}
	// Several instances of one table to list whole: list the table whole.
	siblings := map[string]int{}
	for path, n := range p.gpn {
		if n.subtree && path != "" {
			siblings[parentPath(path)]++
		}
	}
	for parent, count := range siblings {
		if count < 2 || depth(parent) < p.r.opts.SubtreeDepth {
			continue
		}
		pn := p.gpn[parent]
		if pn == nil {
			pn = &gpnNeed{}
			p.gpn[parent] = pn
		}
		pn.subtree = true
	}
	// A subtree listing covers every listing below it.
	paths := sortedKeys(p.gpn)
	var out []cwmp.Message
	for _, path := range paths {
		n := p.gpn[path]
		covered := false
		for anc := path; anc != "" && !covered; {
			anc = parentPath(anc)
			if an := p.gpn[anc]; an != nil && an.subtree {
				an.chans |= n.chans
				covered = true
			}
		}
		if covered {
			n.chans = 0
		}
	}
	for _, path := range paths {
		n := p.gpn[path]
		if n.chans == 0 {
			continue
		}
		m := &cwmp.GetParameterNames{ParameterPath: path, NextLevel: !n.subtree}
		out = append(out, p.track(m, &rpcInfo{chans: n.chans}))
	}
	return out
}

func (p *plan) emitGPV() []cwmp.Message {
	var out []cwmp.Message
	byName := func(a, b gpvNeed) int { return strings.Compare(a.name, b.name) }
	if !slices.IsSortedFunc(p.gpv, byName) {
		slices.SortFunc(p.gpv, byName)
	}
	needs := p.gpv
	if len(p.r.suspect) > 0 {
		// Names of a batch the CPE refused (9005) go one per request,
		// so that one bad name does not hold the others back.
		needs = slices.DeleteFunc(needs, func(n gpvNeed) bool {
			if !p.r.suspect[n.name] {
				return false
			}
			m := &cwmp.GetParameterValues{ParameterNames: []string{n.name}}
			out = append(out, p.track(m, &rpcInfo{chans: n.chans}))
			return true
		})
	}
	batch := p.r.opts.BatchSize
	if p.r.small {
		batch = min(batch, SmallBatchSize)
	}
	for len(needs) > 0 {
		k := min(len(needs), batch)
		var chans uint64
		names := make([]string, k)
		for i, n := range needs[:k] {
			chans |= n.chans
			names[i] = n.name
		}
		m := &cwmp.GetParameterValues{ParameterNames: names}
		out = append(out, p.track(m, &rpcInfo{chans: chans}))
		needs = needs[k:]
	}
	for _, kf := range p.keyGPV {
		m := &cwmp.GetParameterValues{ParameterNames: kf.names}
		out = append(out, p.track(m, &rpcInfo{chans: kf.chans, strict: true}))
	}
	return out
}

func (p *plan) emitObjects() []cwmp.Message {
	var out []cwmp.Message
	for _, path := range sortedKeys(p.del) {
		m := &cwmp.DeleteObject{ObjectName: path, ParameterKey: p.r.opts.ParameterKey}
		out = append(out, p.track(m, &rpcInfo{chans: p.del[path]}))
	}
	for _, a := range p.add {
		m := &cwmp.AddObject{ObjectName: a.table, ParameterKey: p.r.opts.ParameterKey}
		out = append(out, p.track(m, &rpcInfo{chans: a.chans, terms: a.terms, key: a.key}))
	}
	return out
}

func (p *plan) emitSPV() []cwmp.Message {
	var out []cwmp.Message
	names := sortedKeys(p.spv)
	for len(names) > 0 {
		k := min(len(names), p.r.opts.BatchSize)
		var chans uint64
		list := make([]cwmp.ParameterValue, k)
		byName := make(map[string]uint64, k)
		for i, n := range names[:k] {
			s := p.spv[n]
			list[i] = cwmp.ParameterValue{Name: n, Value: s.value, Type: s.typ}
			chans |= s.chans
			byName[n] = s.chans
		}
		m := &cwmp.SetParameterValues{ParameterList: list, ParameterKey: p.r.opts.ParameterKey}
		out = append(out, p.track(m, &rpcInfo{chans: chans, names: byName}))
		names = names[k:]
	}
	return out
}

func (p *plan) emitDownloads() []cwmp.Message {
	var out []cwmp.Message
	for _, n := range p.dls {
		if p.r.opts.Files == nil {
			p.r.fault(n.chans, Fault{Code: FaultFileNotFound, Message: "no file store to resolve " + clip(n.dl.FileName)})
			continue
		}
		url, size, err := p.r.opts.Files(n.dl.FileName)
		if err != nil {
			p.r.fault(n.chans, Fault{Code: FaultFileNotFound, Message: err.Error()})
			continue
		}
		dl := n.dl
		dl.Channel = p.r.channelNames(n.chans)
		dl.CommandKey = p.r.commandKey()
		m := &cwmp.Download{CommandKey: dl.CommandKey, FileType: dl.FileType, URL: url, FileSize: size,
			TargetFileName: dl.TargetFileName}
		out = append(out, p.track(m, &rpcInfo{chans: n.chans, dl: &dl}))
	}
	return out
}

func (p *plan) emitReboot() []cwmp.Message {
	if b := p.reboot &^ p.r.faulted; b != 0 {
		return []cwmp.Message{p.track(&cwmp.Reboot{CommandKey: p.r.commandKey()}, &rpcInfo{chans: b})}
	}
	if b := p.reset &^ p.r.faulted; b != 0 {
		return []cwmp.Message{p.track(&cwmp.FactoryReset{}, &rpcInfo{chans: b})}
	}
	return nil
}

// commandKey names a Download or Reboot so that its TransferComplete or
// M Reboot event can be matched: the run's start and a sequence number.
func (r *Run) commandKey() string {
	r.cmdSeq++
	return "prov-" + strconv.FormatInt(r.opts.Now.UnixMilli(), 36) + "-" + strconv.Itoa(r.cmdSeq)
}

// channelNames joins the channels of a mask with ",".
func (r *Run) channelNames(chans uint64) string {
	var names []string
	for i, name := range r.channels {
		if chans&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}
