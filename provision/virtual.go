package provision

import (
	"fmt"
	"slices"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Virtual parameters (GenieACS's VirtualParameters.<name>): a script the
// caller keeps computes a value, or applies one that is declared, through
// declarations of its own. The run does not run scripts (it is pure);
// it says which virtual parameters its declarations need (Virtual), the
// caller runs their scripts on the run and records each result in the
// tree (PutVirtualParameter) or faults the channels that asked
// (FaultVirtual). A declaration of VirtualParameters.<name> is settled
// when the tree holds the value as fresh as declared and, for a value
// to set, once the script ran with it in this run (what it then
// returned is the parameter's value, whatever it is: asking again would
// loop).

// VirtualNeed is a virtual parameter whose script the run needs run.
type VirtualNeed struct {
	Name string
	// ValueTime is how fresh the value must be (the latest declared);
	// zero when only a value to set is declared.
	ValueTime time.Time
	// Value is the value declared, to set; nil for none.
	Value *Value
	// Current is what the tree holds (Path empty: nothing).
	Current Entry
}

// virtualPath is the tree path of a virtual parameter.
func virtualPath(name string) string { return RootVirtualParameters + "." + name }

// virtualNames returns the names a kVirtual declaration selects: its
// literal name, or every known one for "*".
func (r *Run) virtualNames(d *decl) []string {
	if seg := d.path.Segments[1]; seg.Kind == Literal {
		return []string{seg.Name}
	}
	return r.opts.VirtualParameters
}

// evalVirtual records what a VirtualParameters declaration still needs.
func (p *plan) evalVirtual(d *decl, bit uint64) {
	for _, name := range p.r.virtualNames(d) {
		if !slices.Contains(p.r.opts.VirtualParameters, name) {
			p.r.warn(d, virtualPath(name), "no such virtual parameter")
			continue
		}
		e, ok := p.t.Get(virtualPath(name))
		read := !d.ts.Value.IsZero() && !(ok && p.fresh(e.Path, e.ValueTime, d.ts.Value))
		set := d.value != nil && !p.r.vset[name+"\x00"+d.value.Value] && !(ok && !e.ValueTime.IsZero() && e.Value == d.value.Value)
		if !read && !set {
			continue
		}
		kind := needRead
		if set {
			kind = needWrite
		}
		p.need(bit, kind)
		if p.vneeds == nil {
			continue
		}
		n := p.vneeds[name]
		if n == nil {
			n = &VirtualNeed{Name: name}
			if ok {
				n.Current = e
			}
			p.vneeds[name] = n
		}
		if read && d.ts.Value.After(n.ValueTime) {
			n.ValueTime = d.ts.Value
		}
		if set {
			v := *d.value
			n.Value = &v
		}
	}
}

// Virtual returns the virtual parameters the run's declarations need
// computed or set against t, in name order: run each one's script on the
// run (its declarations on a channel of their own), then record its
// result with PutVirtualParameter and SetVirtual, or fault the channels
// that asked with FaultVirtual. Next plans no RPC for them: a run whose
// only needs are these reports done.
func (r *Run) Virtual(t Tree) []VirtualNeed {
	if len(r.opts.VirtualParameters) == 0 {
		return nil
	}
	p := plan{r: r, t: t, vneeds: map[string]*VirtualNeed{}}
	for _, d := range r.decls {
		if d.kind == kVirtual && r.faulted&(1<<d.ch) == 0 {
			p.cur = d
			p.evalVirtual(d, 1<<d.ch)
		}
	}
	out := make([]VirtualNeed, 0, len(p.vneeds))
	for _, name := range sortedKeys(p.vneeds) {
		out = append(out, *p.vneeds[name])
	}
	return out
}

// SetVirtual records that name's script ran with the declared value v
// (nil: a read only): declarations setting v are settled for the rest of
// the run.
func (r *Run) SetVirtual(name string, v *Value) {
	if v == nil {
		return
	}
	if r.vset == nil {
		r.vset = map[string]bool{}
	}
	r.vset[name+"\x00"+v.Value] = true
}

// FaultVirtual faults the channels whose declarations name virtual
// parameter name (its script failed): GenieACS's "script" faults land
// on the channel that asked.
func (r *Run) FaultVirtual(name string, f Fault) {
	var chans uint64
	for _, d := range r.decls {
		if d.kind == kVirtual && slices.Contains(r.virtualNames(d), name) {
			chans |= 1 << d.ch
		}
	}
	if chans != 0 {
		r.fault(chans, f)
	}
}

// PutVirtualParameter records a virtual parameter's value as its script
// returned it, learnt at at: what later declarations read and the tree
// keeps. A nil writable keeps the flag unknown.
func PutVirtualParameter(t MutableTree, name string, v Value, writable *bool, at time.Time) {
	e := Entry{Path: virtualPath(name), Value: v.Value, Type: cwmp.NormalizeType(v.Type), PathTime: at, ValueTime: at}
	if writable != nil {
		e.Writable, e.WritableTime = *writable, at
	}
	t.Put(e)
}

// classifyVirtual makes a VirtualParameters declaration kVirtual:
// VirtualParameters.<name> or VirtualParameters.*, read (value time) or
// set (value), nothing deeper.
func classifyVirtual(d *decl) error {
	segs := d.path.Segments
	if len(segs) != 2 || segs[1].Kind == Alias || d.path.Object {
		return fmt.Errorf("%w: %q: a virtual parameter is VirtualParameters.<name>", ErrUnsupported, d.path.String())
	}
	if d.inst != nil {
		return fmt.Errorf("%w: an instance count on %q", ErrUnsupported, d.path.String())
	}
	if d.value != nil && segs[1].Kind != Literal {
		return fmt.Errorf("%w: setting %q: name one virtual parameter", ErrUnsupported, d.path.String())
	}
	d.kind = kVirtual
	return nil
}
