package sim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// node is one concrete object or parameter of a layout.
type node struct {
	name     string
	gen      int32
	parent   int32
	children []int32
	inst     uint32 // innermost instance number on the path (0 above any table)
	nextInst uint32 // table objects: the number AddObject hands out next
	dead     bool   // deleted by DeleteObject; indexes stay stable
}

// layout is the concrete shape of a device's tree. Every device of a model
// shares the model's default layout until AddObject or DeleteObject
// changes its own, which then gets a private copy (copy-on-write). Node
// indexes never move, so per-device value slices stay valid.
type layout struct {
	nodes  []node
	index  map[string]int32
	shared bool
}

// defaultLayout instantiates the model's generic schema with each table's
// default instance count.
func (m *Model) defaultLayout() *layout {
	l := &layout{index: map[string]int32{}, shared: true}
	m.instantiate(l, 0, m.gen[0].name, -1, 0)
	return l
}

// instantiate adds the concrete node name for generic node g, and its
// subtree, to l.
func (m *Model) instantiate(l *layout, g int32, name string, parent int32, inst uint32) int32 {
	gn := &m.gen[g]
	l.nodes = append(l.nodes, node{name: name, gen: g, parent: parent, inst: inst})
	idx := int32(len(l.nodes) - 1)
	l.index[name] = idx
	if parent >= 0 {
		l.nodes[parent].children = append(l.nodes[parent].children, idx)
	}
	for _, c := range gn.children {
		cg := &m.gen[c]
		if cg.instance {
			for n := 1; n <= cg.count; n++ {
				m.instantiate(l, c, name+strconv.Itoa(n)+".", idx, uint32(n))
			}
			l.nodes[idx].nextInst = uint32(cg.count) + 1
			continue
		}
		child := name + cg.seg
		if cg.object {
			child += "."
		}
		m.instantiate(l, c, child, idx, inst)
	}
	return idx
}

// clone returns a private copy of l that may be modified.
func (l *layout) clone() *layout {
	nl := &layout{nodes: slices.Clone(l.nodes), index: maps.Clone(l.index)}
	for i := range nl.nodes {
		nl.nodes[i].children = slices.Clone(nl.nodes[i].children)
	}
	return nl
}

// attr is a parameter's attribute override.
type attr struct {
	notification int
	accessList   []string
}

// Identity is what a device's generated values derive from.
type Identity struct {
	// Seed and Index make the values deterministic: the same pair always
	// yields the same serial number, MACs, addresses and passwords.
	Seed  int64
	Index int
	// ConnectionRequestURL is reported in ManagementServer.ConnectionRequestURL.
	ConnectionRequestURL string
}

// Tree is one device's parameter tree: a layout shared with the model
// until changed, plus the device's own values and attribute overrides. It
// is not safe for concurrent use; Device serialises access.
type Tree struct {
	m       *Model
	id      Identity
	serial  string
	l       *layout
	vals    []string
	attrs   map[int32]attr
	changed map[int32]struct{}
	// booted is when the device last came up: live {uptime} values count
	// from it. now is the tree's clock (tests move it).
	booted time.Time
	now    func() time.Time
}

// NewTree builds a device tree with the model's default values, booted now.
func NewTree(m *Model, id Identity) *Tree {
	t := &Tree{m: m, id: id, serial: serialFor(m, id.Seed, id.Index), now: time.Now}
	t.Reset()
	return t
}

// Boot records that the device has just come up (a reboot, new
// firmware): its UpTime starts again from zero.
func (t *Tree) Boot() { t.booted = t.now() }

// Model returns the tree's data model.
func (t *Tree) Model() *Model { return t.m }

// Serial returns the device's serial number.
func (t *Tree) Serial() string { return t.serial }

// Reset restores the factory defaults: default layout, template values,
// default attributes.
func (t *Tree) Reset() {
	t.Boot()
	t.l = t.m.layout
	t.vals = slices.Clone(t.m.baseVals)
	t.attrs = nil
	t.changed = nil
	ctx := genCtx{m: t.m, seed: t.id.Seed, index: t.id.Index, serial: t.serial, crURL: t.id.ConnectionRequestURL}
	for _, i := range t.m.perDevice {
		t.fill(&ctx, i)
	}
}

// fill sets node i's value from its template.
func (t *Tree) fill(ctx *genCtx, i int32) {
	n := &t.l.nodes[i]
	g := &t.m.gen[n.gen]
	if g.object || g.value == "" {
		return
	}
	ctx.path, ctx.inst = n.name, n.inst
	t.vals[i] = ctx.expand(g.value)
}

func (t *Tree) lookup(name string) (int32, bool) {
	i, ok := t.l.index[name]
	return i, ok
}

func (t *Tree) isObject(i int32) bool { return t.m.gen[t.l.nodes[i].gen].object }

// walk calls fn for i and every live node below it, depth first in
// template order.
func (t *Tree) walk(i int32, fn func(int32)) {
	fn(i)
	for _, c := range t.l.nodes[i].children {
		if !t.l.nodes[c].dead {
			t.walk(c, fn)
		}
	}
}

// resolve returns the node for a GetParameterValues/Attributes name: ""
// is the root, a name ending in "." an object.
func (t *Tree) resolve(name string) (int32, bool) {
	if name == "" {
		return 0, true
	}
	i, ok := t.lookup(name)
	if !ok || t.isObject(i) != strings.HasSuffix(name, ".") {
		return 0, false
	}
	return i, true
}

// value returns what a read of node i reports (secrets read as "").
func (t *Tree) value(i int32) string {
	if t.m.gen[t.l.nodes[i].gen].secret {
		return ""
	}
	return t.current(i)
}

// current returns node i's value: the stored one, or for a live
// parameter the one computed now.
func (t *Tree) current(i int32) string {
	switch t.m.gen[t.l.nodes[i].gen].live {
	case liveNow:
		return t.now().UTC().Format(time.RFC3339)
	case liveUptime:
		return strconv.FormatInt(int64(max(t.now().Sub(t.booted), 0)/time.Second), 10)
	}
	return t.vals[i]
}

func (t *Tree) pv(i int32) cwmp.ParameterValue {
	return cwmp.ParameterValue{Name: t.l.nodes[i].name, Value: t.value(i), Type: t.m.gen[t.l.nodes[i].gen].typ}
}

// Get reads one parameter by full name. It returns the stored value, even
// for secrets (a device knows its own passwords).
func (t *Tree) Get(name string) (string, bool) {
	i, ok := t.lookup(name)
	if !ok || t.isObject(i) {
		return "", false
	}
	return t.current(i), true
}

// GetValues answers GetParameterValues: full names and partial paths
// (ending in "."), "" for the whole tree. An unknown name faults 9005.
func (t *Tree) GetValues(names []string) ([]cwmp.ParameterValue, *cwmp.Fault) {
	// Sized for names of parameters, what an ACS mostly asks for.
	out := make([]cwmp.ParameterValue, 0, len(names))
	for _, name := range names {
		i, ok := t.resolve(name)
		if !ok {
			return nil, cwmp.NewFault(cwmp.FaultInvalidParameterName, "Invalid parameter name: "+name)
		}
		t.walk(i, func(j int32) {
			if !t.isObject(j) {
				out = append(out, t.pv(j))
			}
		})
	}
	return out, nil
}

// GetNames answers GetParameterNames with NextLevel semantics as in
// REFERENCE.md §3.2.
func (t *Tree) GetNames(path string, nextLevel bool) ([]cwmp.ParameterInfo, *cwmp.Fault) {
	if path == "" && nextLevel {
		return []cwmp.ParameterInfo{t.info(0)}, nil
	}
	i, ok := t.resolve(path)
	if !ok {
		return nil, cwmp.NewFault(cwmp.FaultInvalidParameterName, "Invalid parameter name: "+path)
	}
	if !t.isObject(i) {
		if nextLevel {
			return nil, cwmp.NewFault(cwmp.FaultInvalidArguments, "NextLevel true with a parameter name: "+path)
		}
		return []cwmp.ParameterInfo{t.info(i)}, nil
	}
	var out []cwmp.ParameterInfo
	if nextLevel {
		for _, c := range t.l.nodes[i].children {
			if !t.l.nodes[c].dead {
				out = append(out, t.info(c))
			}
		}
		return out, nil
	}
	if i == 0 {
		// The whole tree, a bootstrap's listing: sized once, where
		// growing it by appends made eight copies.
		out = make([]cwmp.ParameterInfo, 0, len(t.l.nodes))
	}
	t.walk(i, func(j int32) { out = append(out, t.info(j)) })
	return out, nil
}

// info is node i's ParameterInfoStruct. Tables and instances are writable
// when AddObject/DeleteObject may change them.
func (t *Tree) info(i int32) cwmp.ParameterInfo {
	n := &t.l.nodes[i]
	g := &t.m.gen[n.gen]
	w := g.writable
	if g.object && !g.instance {
		w = t.tableGen(i) >= 0 && t.m.gen[t.tableGen(i)].writable
	}
	return cwmp.ParameterInfo{Name: n.name, Writable: w}
}

// tableGen returns the generic instance placeholder below table object i,
// or -1 when i is not a table.
func (t *Tree) tableGen(i int32) int32 {
	for _, c := range t.m.gen[t.l.nodes[i].gen].children {
		if t.m.gen[c].instance {
			return c
		}
	}
	return -1
}

// SetValues applies SetParameterValues atomically: either every value is
// written (and ParameterKey stored) or none is, and the fault is 9003 with
// one SetParameterValuesFault per bad parameter.
func (t *Tree) SetValues(params []cwmp.ParameterValue, key string) *cwmp.Fault {
	var faults []cwmp.SetParameterValuesFault
	idx := make([]int32, len(params))
	vals := make([]string, len(params))
	seen := make(map[string]bool, len(params))
	for k, p := range params {
		code, msg := uint32(0), ""
		i, ok := t.lookup(p.Name)
		g := &t.m.gen[t.l.nodes[i].gen]
		switch {
		case !ok || t.isObject(i):
			code, msg = cwmp.FaultInvalidParameterName, "unknown parameter"
		case !g.writable:
			code, msg = cwmp.FaultNonWritableParameter, "parameter is read-only"
		case seen[p.Name]:
			code, msg = cwmp.FaultInvalidParameterValue, "parameter set twice"
		case p.Type != "" && !typeCompatible(p.Type, g.typ):
			code, msg = cwmp.FaultInvalidParameterType, fmt.Sprintf("type %s, want %s", p.Type, g.typ)
		default:
			v, err := normalizeValue(g.typ, p.Value)
			if err != nil {
				// A CPE's words, which quote the value as many do, not
				// Go's error chain.
				code, msg = cwmp.FaultInvalidParameterValue, strings.TrimSuffix(err.Error(), ": "+cwmp.ErrInvalidValue.Error())
			}
			vals[k] = v
		}
		seen[p.Name] = true
		idx[k] = i
		if code != 0 {
			faults = append(faults, cwmp.SetParameterValuesFault{ParameterName: p.Name, FaultCode: code, FaultString: cwmp.FaultMessage(code) + ": " + msg})
		}
	}
	if len(faults) > 0 {
		f := cwmp.NewFault(cwmp.FaultInvalidArguments, "")
		f.SetParameterValuesFaults = faults
		return f
	}
	for k, i := range idx {
		t.vals[i] = vals[k]
	}
	t.setKey(key)
	return nil
}

// setKey stores the ParameterKey of a successful SPV/AddObject/DeleteObject.
func (t *Tree) setKey(key string) {
	if t.m.keyGen < 0 {
		return
	}
	if i, ok := t.lookup(t.m.gen[t.m.keyGen].name); ok {
		t.vals[i] = key
	}
}

// SetLocal changes a parameter as the device itself would (a user on the
// web UI, a new DHCP lease), bypassing the writable flag. A change to a
// parameter with notification on is remembered for the next Inform; it
// returns true when the parameter's notification is active, meaning the
// device should start a session with 4 VALUE CHANGE.
func (t *Tree) SetLocal(name, value string) (active bool, err error) {
	i, ok := t.lookup(name)
	if !ok || t.isObject(i) {
		return false, fmt.Errorf("set %s: %w", name, ErrNoSuchParameter)
	}
	if t.vals[i] == value {
		return false, nil
	}
	t.vals[i] = value
	n := t.notification(i)
	if n == 0 {
		return false, nil
	}
	if t.changed == nil {
		t.changed = map[int32]struct{}{}
	}
	t.changed[i] = struct{}{}
	return n == 2, nil
}

// TakeChanged returns the parameters with notification on that changed
// locally since the last call, and forgets them.
func (t *Tree) TakeChanged() []cwmp.ParameterValue {
	if len(t.changed) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(t.changed))
	out := make([]cwmp.ParameterValue, 0, len(keys))
	for _, i := range keys {
		if !t.l.nodes[i].dead {
			out = append(out, t.pv(i))
		}
	}
	t.changed = nil
	return out
}

// Forced returns the parameters every Inform carries.
func (t *Tree) Forced() []cwmp.ParameterValue {
	var out []cwmp.ParameterValue
	for _, g := range t.m.forced {
		name := t.m.gen[g].name
		if !strings.Contains(name, "{i}") {
			if i, ok := t.lookup(name); ok {
				out = append(out, t.pv(i))
			}
			continue
		}
		// A forced parameter inside tables: report each live instance.
		for i := range t.l.nodes {
			if t.l.nodes[i].gen == g && !t.dead(int32(i)) {
				out = append(out, t.pv(int32(i)))
			}
		}
	}
	return out
}

// dead reports whether node i or an ancestor was deleted.
func (t *Tree) dead(i int32) bool {
	for ; i >= 0; i = t.l.nodes[i].parent {
		if t.l.nodes[i].dead {
			return true
		}
	}
	return false
}

func (t *Tree) notification(i int32) int {
	if a, ok := t.attrs[i]; ok {
		return a.notification
	}
	if t.m.gen[t.l.nodes[i].gen].active {
		return 2
	}
	return 0
}

// GetAttributes answers GetParameterAttributes (partial paths allowed).
func (t *Tree) GetAttributes(names []string) ([]cwmp.ParameterAttribute, *cwmp.Fault) {
	var out []cwmp.ParameterAttribute
	for _, name := range names {
		i, ok := t.resolve(name)
		if !ok {
			return nil, cwmp.NewFault(cwmp.FaultInvalidParameterName, "Invalid parameter name: "+name)
		}
		t.walk(i, func(j int32) {
			if t.isObject(j) {
				return
			}
			a := cwmp.ParameterAttribute{Name: t.l.nodes[j].name, Notification: t.notification(j), AccessList: []string{}}
			if ov, ok := t.attrs[j]; ok && ov.accessList != nil {
				a.AccessList = slices.Clone(ov.accessList)
			}
			out = append(out, a)
		})
	}
	return out, nil
}

// SetAttributes answers SetParameterAttributes, all or nothing.
// Notification must be 0 (off), 1 (passive) or 2 (active); anything else
// is rejected with 9009 since lightweight notifications are not simulated.
func (t *Tree) SetAttributes(list []cwmp.SetParameterAttribute) *cwmp.Fault {
	targets := make([][]int32, len(list))
	for k, s := range list {
		i, ok := t.resolve(s.Name)
		if !ok {
			return cwmp.NewFault(cwmp.FaultInvalidParameterName, "Invalid parameter name: "+s.Name)
		}
		if s.NotificationChange && (s.Notification < 0 || s.Notification > 2) {
			return cwmp.NewFault(cwmp.FaultNotificationRejected, fmt.Sprintf("notification %d not supported", s.Notification))
		}
		for _, a := range s.AccessList {
			if a != "Subscriber" {
				return cwmp.NewFault(cwmp.FaultInvalidArguments, "unknown access list entry "+a)
			}
		}
		t.walk(i, func(j int32) {
			if !t.isObject(j) {
				targets[k] = append(targets[k], j)
			}
		})
	}
	if t.attrs == nil {
		t.attrs = map[int32]attr{}
	}
	for k, s := range list {
		for _, j := range targets[k] {
			a, ok := t.attrs[j]
			if !ok {
				a = attr{notification: t.notification(j)}
			}
			if s.NotificationChange {
				a.notification = s.Notification
			}
			if s.AccessListChange {
				a.accessList = slices.Clone(s.AccessList)
				if a.accessList == nil {
					a.accessList = []string{}
				}
			}
			t.attrs[j] = a
		}
	}
	return nil
}

// writableLayout gives the tree a private layout before a structural change.
func (t *Tree) writableLayout() {
	if t.l.shared {
		t.l = t.l.clone()
	}
}

// AddObject creates a new instance of the table name (ending in ".") from
// the template and returns its number.
func (t *Tree) AddObject(name, key string) (uint32, *cwmp.Fault) {
	i, ok := t.lookup(name)
	if !ok || !strings.HasSuffix(name, ".") {
		return 0, cwmp.NewFault(cwmp.FaultInvalidParameterName, "Invalid object name: "+name)
	}
	pg := t.tableGen(i)
	if pg < 0 || t.m.gen[t.l.nodes[i].gen].instance {
		return 0, cwmp.NewFault(cwmp.FaultInvalidParameterName, "not a table: "+name)
	}
	if !t.m.gen[pg].writable {
		return 0, cwmp.NewFault(cwmp.FaultRequestDenied, "table does not allow AddObject: "+name)
	}
	t.writableLayout()
	n := t.l.nodes[i].nextInst
	if n == 0 {
		n = 1
	}
	t.l.nodes[i].nextInst = n + 1
	first := int32(len(t.l.nodes))
	t.m.instantiate(t.l, pg, name+strconv.FormatUint(uint64(n), 10)+".", i, n)
	ctx := genCtx{m: t.m, seed: t.id.Seed, index: t.id.Index, serial: t.serial, crURL: t.id.ConnectionRequestURL}
	for j := first; j < int32(len(t.l.nodes)); j++ {
		t.vals = append(t.vals, "")
		t.fill(&ctx, j)
	}
	t.updateCount(i)
	t.setKey(key)
	return n, nil
}

// DeleteObject removes the instance name (ending in ".") and its subtree.
func (t *Tree) DeleteObject(name, key string) *cwmp.Fault {
	i, ok := t.lookup(name)
	if !ok || !strings.HasSuffix(name, ".") || !t.m.gen[t.l.nodes[i].gen].instance {
		return cwmp.NewFault(cwmp.FaultInvalidParameterName, "Invalid object instance: "+name)
	}
	if !t.m.gen[t.l.nodes[i].gen].writable {
		return cwmp.NewFault(cwmp.FaultRequestDenied, "table does not allow DeleteObject: "+name)
	}
	t.writableLayout()
	var gone []int32
	t.walk(i, func(j int32) { gone = append(gone, j) })
	for _, j := range gone {
		t.l.nodes[j].dead = true
		delete(t.l.index, t.l.nodes[j].name)
		delete(t.attrs, j)
		delete(t.changed, j)
		t.vals[j] = ""
	}
	p := t.l.nodes[i].parent
	t.l.nodes[p].children = slices.DeleteFunc(t.l.nodes[p].children, func(c int32) bool { return c == i })
	t.updateCount(p)
	t.setKey(key)
	return nil
}

// updateCount refreshes the "<Table>NumberOfEntries" sibling of table i.
func (t *Tree) updateCount(i int32) {
	n := &t.l.nodes[i]
	seg := t.m.gen[n.gen].seg
	j, ok := t.lookup(parentPath(n.name) + seg + "NumberOfEntries")
	if !ok {
		return
	}
	live := 0
	for _, c := range n.children {
		if !t.l.nodes[c].dead && t.m.gen[t.l.nodes[c].gen].instance {
			live++
		}
	}
	t.vals[j] = strconv.Itoa(live)
}

// Len returns the number of live parameters (not objects).
func (t *Tree) Len() int {
	n := 0
	t.walk(0, func(j int32) {
		if !t.isObject(j) {
			n++
		}
	})
	return n
}

// typeCompatible reports whether a value sent as type got may be stored in
// a parameter of type want. Integer widths are interchangeable when the
// value fits; normalizeValue checks the range.
func typeCompatible(got, want string) bool {
	if got == want {
		return true
	}
	ints := map[string]bool{cwmp.TypeInt: true, cwmp.TypeUnsignedInt: true, cwmp.TypeLong: true, cwmp.TypeUnsignedLong: true}
	return ints[got] && ints[want]
}

// normalizeValue checks v against typ with cwmp.ValidateValue and returns
// the form stored: booleans as "true"/"false", numbers trimmed.
func normalizeValue(typ, v string) (string, error) {
	if err := cwmp.ValidateValue(typ, v); err != nil {
		return "", err
	}
	switch typ {
	case cwmp.TypeBoolean:
		b, _ := cwmp.ParseBool(v)
		return strconv.FormatBool(b), nil
	case cwmp.TypeInt, cwmp.TypeUnsignedInt, cwmp.TypeLong, cwmp.TypeUnsignedLong:
		return strings.TrimSpace(v), nil
	case cwmp.TypeString:
		if len(v) > maxStringValue {
			return "", fmt.Errorf("string of %d bytes is longer than %d", len(v), maxStringValue)
		}
	}
	return v, nil
}

// maxStringValue bounds a string parameter so one SPV cannot balloon a
// device's memory.
const maxStringValue = 65535

// requeueChanged marks parameters taken by TakeChanged as changed again,
// after an Inform that carried them failed.
func (t *Tree) requeueChanged(params []cwmp.ParameterValue) {
	for _, p := range params {
		if i, ok := t.lookup(p.Name); ok {
			if t.changed == nil {
				t.changed = map[int32]struct{}{}
			}
			t.changed[i] = struct{}{}
		}
	}
}

// setResult writes a value the device itself produced (a diagnostic's
// result), read-only or not, without notification: TR-069 has
// 8 DIAGNOSTICS COMPLETE say that results changed.
func (t *Tree) setResult(name, value string) {
	if i, ok := t.lookup(name); ok && !t.isObject(i) {
		t.vals[i] = value
	}
}

// setTable makes the table name ("...RouteHops.") hold exactly n fresh
// instances numbered from 1, as a device rewrites a diagnostic's result
// table; the old instances are gone.
func (t *Tree) setTable(name string, n int) {
	i, ok := t.lookup(name)
	if !ok {
		return
	}
	pg := t.tableGen(i)
	if pg < 0 {
		return
	}
	t.writableLayout()
	for _, c := range t.l.nodes[i].children {
		if !t.m.gen[t.l.nodes[c].gen].instance || t.l.nodes[c].dead {
			continue
		}
		var gone []int32
		t.walk(c, func(j int32) { gone = append(gone, j) })
		for _, j := range gone {
			t.l.nodes[j].dead = true
			delete(t.l.index, t.l.nodes[j].name)
			delete(t.attrs, j)
			delete(t.changed, j)
			t.vals[j] = ""
		}
	}
	t.l.nodes[i].children = slices.DeleteFunc(t.l.nodes[i].children, func(c int32) bool { return t.l.nodes[c].dead })
	first := int32(len(t.l.nodes))
	for k := 1; k <= n; k++ {
		t.m.instantiate(t.l, pg, name+strconv.Itoa(k)+".", i, uint32(k))
	}
	t.l.nodes[i].nextInst = uint32(n) + 1
	ctx := genCtx{m: t.m, seed: t.id.Seed, index: t.id.Index, serial: t.serial, crURL: t.id.ConnectionRequestURL}
	for j := first; j < int32(len(t.l.nodes)); j++ {
		t.vals = append(t.vals, "")
		t.fill(&ctx, j)
	}
	t.updateCount(i)
}

// resetResults restores the read-only parameters under obj to their
// template values and empties its tables: a diagnostic's old results,
// which TR-069 has the CPE discard when a new test is requested.
func (t *Tree) resetResults(obj string) {
	i, ok := t.lookup(obj)
	if !ok {
		return
	}
	var tables []string
	ctx := genCtx{m: t.m, seed: t.id.Seed, index: t.id.Index, serial: t.serial, crURL: t.id.ConnectionRequestURL}
	t.walk(i, func(j int32) {
		g := &t.m.gen[t.l.nodes[j].gen]
		if g.object {
			if j != i && t.tableGen(j) >= 0 {
				tables = append(tables, t.l.nodes[j].name)
			}
			return
		}
		if !g.writable {
			t.fill(&ctx, j)
		}
	})
	for _, name := range tables {
		t.setTable(name, 0)
	}
}
