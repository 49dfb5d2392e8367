package provision

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// ApplyResponse writes into t what a successful answer resp to req says
// about the device, stamped at:
//
//   - GetParameterNames: the names listed exist, with their writable
//     flags; the object asked about (and, with NextLevel false, every
//     object below it) is listed at `at`; nodes it held that the CPE no
//     longer lists are removed.
//   - GetParameterValues: values and types; a name asked for but missing
//     from the answer reads as "" (as GenieACS records it), so a planner
//     never asks forever.
//   - SetParameterValues: the values sent, as the CPE accepted them.
//   - AddObject: the new instance (its children are not yet known).
//   - DeleteObject: the instance and its subtree are gone.
//   - Reboot, FactoryReset: the virtual Reboot / FactoryReset time.
//
// Other requests change nothing. Names outside what was asked for are
// ignored. An error means resp does not answer req.
func ApplyResponse(t MutableTree, req, resp cwmp.Message, at time.Time) error {
	switch q := req.(type) {
	case *cwmp.GetParameterNames:
		r, ok := resp.(*cwmp.GetParameterNamesResponse)
		if !ok {
			return mismatch(req, resp)
		}
		applyGPN(t, q, r.ParameterList, at)
	case *cwmp.GetParameterValues:
		r, ok := resp.(*cwmp.GetParameterValuesResponse)
		if !ok {
			return mismatch(req, resp)
		}
		applyGPV(t, q.ParameterNames, r.ParameterList, at)
	case *cwmp.SetParameterValues:
		if _, ok := resp.(*cwmp.SetParameterValuesResponse); !ok {
			return mismatch(req, resp)
		}
		for _, pv := range q.ParameterList {
			if !validCPEName(pv.Name) || strings.HasSuffix(pv.Name, ".") {
				continue
			}
			e, _ := t.Get(pv.Name)
			e.Path, e.Value, e.Type = pv.Name, pv.Value, cwmp.NormalizeType(pv.Type)
			e.ValueTime, e.PathTime = at, at
			t.Put(e)
		}
	case *cwmp.AddObject:
		r, ok := resp.(*cwmp.AddObjectResponse)
		if !ok {
			return mismatch(req, resp)
		}
		if r.InstanceNumber == 0 || !strings.HasSuffix(q.ObjectName, ".") || !validCPEName(q.ObjectName) {
			return fmt.Errorf("AddObject %s answered with instance %d", clip(q.ObjectName), r.InstanceNumber)
		}
		inst := q.ObjectName + strconv.FormatUint(uint64(r.InstanceNumber), 10) + "."
		e, _ := t.Get(inst)
		e.Path, e.PathTime = inst, at
		t.Put(e)
	case *cwmp.DeleteObject:
		if _, ok := resp.(*cwmp.DeleteObjectResponse); !ok {
			return mismatch(req, resp)
		}
		if q.ObjectName != "" {
			t.Delete(q.ObjectName)
		}
	case *cwmp.Reboot:
		if _, ok := resp.(*cwmp.RebootResponse); !ok {
			return mismatch(req, resp)
		}
		putStamp(t, RootReboot, at)
	case *cwmp.FactoryReset:
		if _, ok := resp.(*cwmp.FactoryResetResponse); !ok {
			return mismatch(req, resp)
		}
		putStamp(t, RootFactoryReset, at)
	}
	return nil
}

func mismatch(req, resp cwmp.Message) error {
	return fmt.Errorf("%s answered with %s", describe(req), describe(resp))
}

// validCPEName rejects names a CPE should never send and the tree cannot
// hold: empty segments ("A..B", ".A").
func validCPEName(name string) bool {
	if name == "" || len(name) > MaxPathLen || name[0] == '.' {
		return false
	}
	return !strings.Contains(name, "..")
}

func applyGPN(t MutableTree, q *cwmp.GetParameterNames, list []cwmp.ParameterInfo, at time.Time) {
	root := q.ParameterPath
	if root != "" && !strings.HasSuffix(root, ".") {
		// A parameter asked about by full name: its writable flag only.
		for _, pi := range list {
			if pi.Name == root {
				e, _ := t.Get(root)
				e.Path, e.Writable, e.WritableTime, e.PathTime = root, pi.Writable, at, at
				t.Put(e)
			}
		}
		return
	}
	if g, ok := t.(Grower); ok {
		g.Grow(len(list))
	}
	// What the CPE listed: the names and every object above them up to
	// root (listing a child proves its parents exist), and the objects
	// among them, whose listing is complete as of at.
	seen := make(map[string]bool, len(list)+1)
	seen[root] = true
	keep := make([]cwmp.ParameterInfo, 0, len(list))
	var listed []string
	for _, pi := range list {
		name := pi.Name
		if !strings.HasPrefix(name, root) || !validCPEName(name) || isVirtual(name) {
			continue
		}
		if q.NextLevel && (name == root || strings.Contains(strings.TrimSuffix(name[len(root):], "."), ".")) {
			continue // not a child: a CPE that ignores NextLevel
		}
		keep = append(keep, pi)
		for p := name; p != root && !seen[p]; p = parentPath(p) {
			seen[p] = true
			if !q.NextLevel && strings.HasSuffix(p, ".") {
				listed = append(listed, p)
			}
		}
	}
	// Drop what the CPE no longer has, before the listing is written:
	// the walk then covers the tree as it was (a bootstrap's holds the
	// Inform's few values), not the hundreds of nodes the listing adds.
	var gone []string
	var visit func(string)
	visit = func(obj string) {
		t.Children(obj, func(c Entry) bool {
			switch {
			case obj == "" && isVirtual(c.Path):
			case !seen[c.Path]:
				gone = append(gone, c.Path)
			case c.Object && !q.NextLevel:
				visit(c.Path)
			}
			return true
		})
	}
	visit(root)
	for _, p := range gone {
		t.Delete(p)
	}
	for _, pi := range keep {
		e, _ := t.Get(pi.Name)
		e.Path, e.Writable, e.WritableTime, e.PathTime = pi.Name, pi.Writable, at, at
		t.Put(e)
	}
	// Stamp the listed objects.
	e, ok := t.Get(root)
	if !ok {
		return // the CPE listed nothing under an object the tree lacks
	}
	e.ListTime = at
	if root != "" {
		e.PathTime = at
	}
	t.Put(e)
	for _, p := range listed {
		if c, ok := t.Get(p); ok && c.Object {
			c.ListTime = at
			t.Put(c)
		}
	}
}

func applyGPV(t MutableTree, names []string, list []cwmp.ParameterValue, at time.Time) {
	// asked maps each name asked for to its flag in got: one lookup per
	// value answered (a bootstrap's batch is 256 long names).
	asked := make(map[string]int, len(names))
	got := make([]bool, len(names))
	var partial []string
	for i, n := range names {
		if n == "" || strings.HasSuffix(n, ".") {
			partial = append(partial, n)
		} else {
			asked[n] = i
		}
	}
	for _, pv := range list {
		if !validCPEName(pv.Name) || strings.HasSuffix(pv.Name, ".") || isVirtual(pv.Name) {
			continue
		}
		if i, ok := asked[pv.Name]; ok {
			got[i] = true
		} else if !under(pv.Name, partial) {
			continue
		}
		e, _ := t.Get(pv.Name)
		e.Path, e.Value, e.Type = pv.Name, pv.Value, cwmp.NormalizeType(pv.Type)
		e.ValueTime, e.PathTime = at, at
		t.Put(e)
	}
	for n, i := range asked {
		if got[i] || !validCPEName(n) {
			continue
		}
		e, _ := t.Get(n)
		e.Path, e.Value, e.ValueTime, e.PathTime = n, "", at, at
		if e.Type == "" {
			e.Type = cwmp.TypeString
		}
		t.Put(e)
	}
}

func under(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ApplyFault writes into t what a CWMP fault to req says about the
// device, and reports whether that explains the fault away. Fault 9005
// (invalid parameter name) on GetParameterNames, GetParameterValues,
// AddObject or DeleteObject, or a SetParameterValues fault whose every
// parameter fault is 9005, means the cache believed in names the CPE does
// not have: their existence is forgotten (a deleted instance is dropped)
// so the next plan lists their parent again. Any other fault is the
// channel's.
func ApplyFault(t MutableTree, req cwmp.Message, f *cwmp.Fault) bool {
	if f == nil {
		return false
	}
	forget := func(name string) {
		if e, ok := t.Get(name); ok && name != "" {
			e.PathTime = time.Time{}
			t.Put(e)
		}
	}
	switch q := req.(type) {
	case *cwmp.GetParameterNames:
		if f.Code != cwmp.FaultInvalidParameterName || q.ParameterPath == "" {
			return false
		}
		t.Delete(q.ParameterPath)
	case *cwmp.GetParameterValues:
		if f.Code != cwmp.FaultInvalidParameterName {
			return false
		}
		for _, n := range q.ParameterNames {
			forget(n)
		}
	case *cwmp.SetParameterValues:
		if len(f.SetParameterValuesFaults) == 0 {
			if f.Code != cwmp.FaultInvalidParameterName {
				return false
			}
			for _, pv := range q.ParameterList {
				forget(pv.Name)
			}
			return true
		}
		for _, pf := range f.SetParameterValuesFaults {
			if pf.FaultCode != cwmp.FaultInvalidParameterName {
				return false
			}
		}
		for _, pf := range f.SetParameterValuesFaults {
			forget(pf.ParameterName)
		}
	case *cwmp.AddObject:
		if f.Code != cwmp.FaultInvalidParameterName {
			return false
		}
		forget(q.ObjectName)
	case *cwmp.DeleteObject:
		if f.Code != cwmp.FaultInvalidParameterName {
			return false
		}
		t.Delete(q.ObjectName)
	default:
		return false
	}
	return true
}

// RecordValues stores values the CPE reported outside a planned request
// (an Inform's ParameterList), stamped at.
func RecordValues(t MutableTree, list []cwmp.ParameterValue, at time.Time) {
	for _, pv := range list {
		if !validCPEName(pv.Name) || strings.HasSuffix(pv.Name, ".") || isVirtual(pv.Name) {
			continue
		}
		e, _ := t.Get(pv.Name)
		e.Path, e.Value, e.Type = pv.Name, pv.Value, cwmp.NormalizeType(pv.Type)
		e.ValueTime, e.PathTime = at, at
		t.Put(e)
	}
}

// ApplyDownload records an accepted Download in the virtual
// Downloads.<n> instance of its file (created with the next free number),
// as GenieACS keeps it: FileType, FileName, TargetFileName and Download,
// the time it was sent.
func ApplyDownload(t MutableTree, fileType, fileName, target string, at time.Time) {
	inst, next := "", 1
	t.Children(RootDownloads+".", func(c Entry) bool {
		if n := instanceNumber(c.Path); n >= next {
			next = n + 1
		}
		if c.Object && inst == "" && virtualValue(t, c.Path+"FileType") == fileType &&
			virtualValue(t, c.Path+"FileName") == fileName && virtualValue(t, c.Path+"TargetFileName") == target {
			inst = c.Path
		}
		return true
	})
	if inst == "" {
		inst = RootDownloads + "." + strconv.Itoa(next) + "."
		putVirtual(t, inst+"FileType", fileType, cwmp.TypeString, at)
		putVirtual(t, inst+"FileName", fileName, cwmp.TypeString, at)
		putVirtual(t, inst+"TargetFileName", target, cwmp.TypeString, at)
	}
	putStamp(t, inst+"Download", at)
}

// ApplyTags stores tag changes (an Outcome's Tags) in the virtual
// Tags.<name> parameters: a tag present is true, a removed tag is gone.
func ApplyTags(t MutableTree, tags map[string]bool, at time.Time) {
	for name, on := range tags {
		if !validName(name) {
			continue
		}
		if on {
			putVirtual(t, RootTags+"."+name, "true", cwmp.TypeBoolean, at)
		} else {
			t.Delete(RootTags + "." + name)
		}
	}
}

func virtualValue(t Tree, path string) string {
	e, _ := t.Get(path)
	return e.Value
}

func putStamp(t MutableTree, path string, at time.Time) {
	putVirtual(t, path, formatStamp(at), cwmp.TypeDateTime, at)
}

func putVirtual(t MutableTree, path, value, typ string, at time.Time) {
	t.Put(Entry{Path: path, Value: value, Type: typ, PathTime: at, ValueTime: at, WritableTime: at, Writable: true})
}
