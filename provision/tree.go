package provision

import (
	"slices"
	"strings"
	"time"
)

// Entry is what the cache knows of one node of a device's parameter tree.
// Each piece of knowledge has its own time, so a declaration can ask for
// exactly the freshness it needs; a zero time means "never learnt".
type Entry struct {
	// Path is the full CWMP name; objects end with ".". The root is "".
	Path   string
	Object bool
	// Writable is what the CPE last said in GetParameterNames: for a
	// parameter SetParameterValues is allowed, for a table AddObject, for
	// an instance DeleteObject.
	Writable bool
	// Value and Type (an xsd type such as "xsd:unsignedInt") of a parameter.
	Value string
	Type  string

	// PathTime is when the node's existence (and kind) was last confirmed
	// by the CPE: listed by GetParameterNames, read by GetParameterValues,
	// written or created. An object's PathTime is never older than the
	// newest PathTime below it.
	PathTime time.Time
	// WritableTime is when Writable was last read.
	WritableTime time.Time
	// ValueTime is when Value was last read or successfully written.
	ValueTime time.Time
	// ListTime is, for an object, when its complete list of children was
	// last read (GetParameterNames on it, or on an ancestor with
	// NextLevel false). A child the cache does not hold, of an object
	// listed since T, did not exist at T.
	ListTime time.Time
}

// Tree is the read side of a device's cached parameter tree, all the
// planner needs. Implementations need not be safe for concurrent use: a
// run is driven by one session.
//
// The edge's cache implements it over its sorted key space: Get is one
// key read, and Children is a prefix scan of "<path>" that, after each
// child, seeks past "<child>." + 0xFF so that descendants are skipped. A
// node that has stored descendants but no record of its own is reported
// as an object whose PathTime is its newest descendant's.
type Tree interface {
	// Get returns the entry at path. "" is the root object, whose
	// ListTime is when the CPE's top level was last listed.
	Get(path string) (Entry, bool)
	// Children calls fn for each direct child of the object path ("" or
	// ending in "."), in any order, until fn returns false. fn may call
	// Get and Children: the planner looks below a child while listing.
	Children(path string, fn func(Entry) bool)
}

// MutableTree is a Tree the response helpers (ApplyResponse and friends)
// write to.
type MutableTree interface {
	Tree
	// Put stores e at e.Path, replacing what was there. Missing ancestors
	// are created as objects, and every ancestor's PathTime is raised to
	// at least e.PathTime (the child proves its parents exist).
	Put(e Entry)
	// Delete removes path and, for an object, everything below it.
	Delete(path string)
}

// Grower is a MutableTree that can make room ahead for n more nodes:
// applying a listing tells it how many are coming, so that a bootstrap's
// few hundred puts do not grow its indexes step by step.
type Grower interface {
	Grow(n int)
}

// Roots of GenieACS's virtual parameters: they live in the device record,
// not on the CPE, so the planner never sends an RPC for them. Tags.<name>
// holds a device tag, Reboot and FactoryReset the time the last one was
// sent (xsd:dateTime), Downloads.<n>.{FileType,FileName,TargetFileName,
// Download} the downloads sent.
const (
	RootDeviceID          = "DeviceID"
	RootEvents            = "Events"
	RootTags              = "Tags"
	RootReboot            = "Reboot"
	RootFactoryReset      = "FactoryReset"
	RootDownloads         = "Downloads"
	RootVirtualParameters = "VirtualParameters"
)

// isVirtual reports whether a CWMP path or first segment is under one of
// GenieACS's virtual roots.
func isVirtual(path string) bool {
	first := path
	if i := strings.IndexByte(path, '.'); i >= 0 {
		first = path[:i]
	}
	switch first {
	case RootDeviceID, RootEvents, RootTags, RootReboot, RootFactoryReset, RootDownloads, RootVirtualParameters:
		return true
	}
	return false
}

// MemTree is an in-memory MutableTree, for tests and for callers that
// load a device's tree once per session. The zero value is not usable;
// call NewMemTree.
type MemTree struct {
	nodes map[string]*memNode
}

type memNode struct {
	e    Entry
	kids []string // full paths of the direct children, in childLess order
}

// NewMemTree returns an empty tree holding only the root object.
func NewMemTree() *MemTree {
	return &MemTree{nodes: map[string]*memNode{"": {e: Entry{Object: true}}}}
}

// Len returns the number of nodes, the root included.
func (m *MemTree) Len() int { return len(m.nodes) }

// Get implements Tree.
func (m *MemTree) Get(path string) (Entry, bool) {
	n, ok := m.nodes[path]
	if !ok {
		return Entry{}, false
	}
	return n.e, true
}

// Children implements Tree; children come in instance-number order.
func (m *MemTree) Children(path string, fn func(Entry) bool) {
	n, ok := m.nodes[path]
	if !ok {
		return
	}
	for _, k := range n.kids {
		if !fn(m.nodes[k].e) {
			return
		}
	}
}

// Walk calls fn for path and every node below it, parents before
// children, until fn returns false.
func (m *MemTree) Walk(path string, fn func(Entry) bool) {
	m.walk(path, fn)
}

func (m *MemTree) walk(path string, fn func(Entry) bool) bool {
	n, ok := m.nodes[path]
	if !ok {
		return true
	}
	if !fn(n.e) {
		return false
	}
	for _, k := range n.kids {
		if !m.walk(k, fn) {
			return false
		}
	}
	return true
}

// Put implements MutableTree.
func (m *MemTree) Put(e Entry) {
	if e.Path == "" {
		e.Object = true
		m.nodes[""].e = e
		return
	}
	e.Object = strings.HasSuffix(e.Path, ".")
	n, ok := m.nodes[e.Path]
	if !ok {
		n = &memNode{}
		m.nodes[e.Path] = n
		m.link(e.Path)
	}
	n.e = e
	for p := parentPath(e.Path); ; p = parentPath(p) {
		pn := m.nodes[p]
		if pn.e.PathTime.Before(e.PathTime) {
			pn.e.PathTime = e.PathTime
		}
		if p == "" {
			break
		}
	}
}

// link adds path to its parent's children, creating missing ancestors.
func (m *MemTree) link(path string) {
	parent := parentPath(path)
	pn, ok := m.nodes[parent]
	if !ok {
		pn = &memNode{e: Entry{Path: parent, Object: true}}
		m.nodes[parent] = pn
		m.link(parent)
	}
	i, _ := slices.BinarySearchFunc(pn.kids, path, childCompare)
	pn.kids = slices.Insert(pn.kids, i, path)
}

// Delete implements MutableTree. Deleting the root empties the tree.
func (m *MemTree) Delete(path string) {
	n, ok := m.nodes[path]
	if !ok {
		return
	}
	for len(n.kids) > 0 {
		m.Delete(n.kids[len(n.kids)-1])
	}
	if path == "" {
		n.e = Entry{Object: true}
		return
	}
	delete(m.nodes, path)
	pn := m.nodes[parentPath(path)]
	if i, found := slices.BinarySearchFunc(pn.kids, path, childCompare); found {
		pn.kids = slices.Delete(pn.kids, i, i+1)
	}
}

// childCompare orders sibling paths by last segment, numbers numerically
// (instance 2 before 10) and before names.
func childCompare(a, b string) int {
	sa, sb := lastSegment(a), lastSegment(b)
	na, nb := isDigits(sa), isDigits(sb)
	switch {
	case na && nb:
		if len(sa) != len(sb) {
			return len(sa) - len(sb)
		}
	case na:
		return -1
	case nb:
		return 1
	}
	if c := strings.Compare(sa, sb); c != 0 {
		return c
	}
	// A parameter and an object may share a name during a CPE's change
	// of mind; keep them distinct.
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
