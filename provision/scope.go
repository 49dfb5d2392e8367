package provision

import "slices"

// This file is what a script sandbox needs beyond Declare and Clear: a
// script is re-run from the start when it read something the engine had
// yet to fetch, and its new run replaces what the previous one declared.

// Scope returns a collector on the same channel whose declarations and
// clears can be withdrawn together (Retract). A script sandbox scopes each
// script of a session, so that a replay of the script replaces, rather
// than adds to, what its previous run declared.
func (c *Collector) Scope() *Collector {
	c.r.scopes++
	return &Collector{r: c.r, ch: c.ch, scope: c.r.scopes}
}

// Retract withdraws every declaration and clear made through c, a
// collector from Scope (on a channel's own collector it does nothing).
// What the run did for them stays done: RPCs answered, instances created,
// the targets of relative counts.
func (c *Collector) Retract() {
	if c.scope == 0 {
		return
	}
	r := c.r
	r.decls = slices.DeleteFunc(r.decls, func(d *decl) bool { return d.scope == c.scope })
	r.clears = slices.DeleteFunc(r.clears, func(cd clearDecl) bool { return cd.scope == c.scope })
	// The tags wanted are what the remaining declarations want.
	clear(r.tagWant)
	for _, d := range r.decls {
		if d.kind == kTag && r.faulted&(1<<d.ch) == 0 {
			r.tagWant[d.tag] = d.on
		}
	}
}

// ScopeSettled reports whether the declarations made through c (a
// Scope) that may concern path are settled against t: no node left to
// list or read, no value to set, no instance to add or delete, as the
// next plan would see them (the run's clears included). A declaration
// concerns path when the two may select the same node or one a node
// below the other (a wildcard or alias matches any name); "" concerns
// every declaration.
//
// A script sandbox asks before it lets a script read a declare() result
// (with the result's path) and at commit() (with ""): GenieACS commits
// the script's declarations before either, and what is read must be what
// the script would see once the engine has done its work. Declarations
// on the virtual roots other than Reboot, FactoryReset, Downloads and
// VirtualParameters are settled: a tag is written when the session ends,
// and what is read there is the device record. A virtual parameter's is
// settled once its script's value is in the tree (see Run.Virtual). On a faulted channel everything is
// settled: nothing more will be done for it. Errors wrap ErrBadPath.
func (c *Collector) ScopeSettled(t Tree, path string) (bool, error) {
	p, err := ParsePath(path)
	if err != nil {
		return false, err
	}
	return c.scopeNeeds(t, p)&(needRead|needWrite) == 0, nil
}

// ScopeFetched reports whether nothing declared through c needs a read
// from the CPE any more (writes may be pending). A sandbox whose script
// stopped at a read replays it once that read is settled and the
// script's other reads are done: they were planned in the same rounds,
// and a replay before they are would stop again at the next one.
func (c *Collector) ScopeFetched(t Tree) bool {
	return c.scopeNeeds(t, Path{})&needRead == 0
}

// scopeNeeds returns the kinds of need of the declarations made through
// c that concern p.
func (c *Collector) scopeNeeds(t Tree, p Path) uint8 {
	r := c.r
	if c.Faulted() {
		return 0
	}
	mine := func(d *decl) bool { return d.scope == c.scope && d.ch == c.ch && overlaps(p, d.path) }
	if !slices.ContainsFunc(r.decls, mine) {
		return 0
	}
	// Plan the declarations that concern p, whoever made them, as Next
	// would: one may keep an instance another would delete.
	pl := plan{r: r, t: t, needy: map[*decl]uint8{}, delBy: map[string][]*decl{}}
	for _, d := range r.decls {
		if r.faulted&(1<<d.ch) == 0 && overlaps(p, d.path) {
			pl.eval(d)
		}
	}
	for _, ds := range pl.delBy {
		for _, d := range ds {
			pl.needy[d] |= needWrite
		}
	}
	var kinds uint8
	for d, k := range pl.needy {
		if mine(d) && d.kind != kTag {
			kinds |= k
		}
	}
	return kinds
}

// overlaps reports whether paths a and b may select a common node, or
// one a node below the other's.
func overlaps(a, b Path) bool {
	for i := range min(len(a.Segments), len(b.Segments)) {
		sa, sb := a.Segments[i], b.Segments[i]
		if sa.Kind == Literal && sb.Kind == Literal && sa.Name != sb.Name {
			return false
		}
	}
	return true
}

// Fault records f as the channel's fault, unless it already has one: its
// declarations are dropped for the rest of the run, the other channels go
// on. A script sandbox reports a script that threw or ran out of time
// this way (GenieACS's "script" faults).
func (c *Collector) Fault(f Fault) { c.r.fault(1<<c.ch, f) }

// Faulted reports whether the channel has faulted in this run.
func (c *Collector) Faulted() bool { return c.r.faulted&(1<<c.ch) != 0 }

// DeviceID is the device the run is for (Options.DeviceID).
func (r *Run) DeviceID() string { return r.opts.DeviceID }
