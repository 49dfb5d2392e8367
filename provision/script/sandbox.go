package script

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// sandbox is one run's state, on a realm lent to it for the run.
type sandbox struct {
	s     *Script
	realm *realm
	rt    *goja.Runtime
	lim   Limits
	col   *provision.Collector
	tree  provision.Tree
	now   time.Time
	id    string

	declared int
	logs     []string
	logBytes int
	// wait is set when the script read something unsettled, fault when it
	// hit a limit a function enforces; either stops the run (an
	// uncatchable interrupt), and later calls do nothing.
	wait  *waitFor
	fault *provision.Fault
	// expired is set by the watchdog when the run is past its limits,
	// for the built-ins that loop natively (see check).
	expired atomic.Bool
	reason  atomic.Uint32 // the stopReason, set before expired
	// dirty: the run ended abnormally (interrupted by the watchdog, stack
	// overflow): its realm is not reused.
	dirty bool

	rng   *arc4
	vargs *VirtualArgs // a virtual parameter's inputs
	args  goja.Value   // the global args
}

// newSandbox prepares a run of s on realm r.
func newSandbox(r *realm, s *Script, env Env, lim Limits) *sandbox {
	sb := &sandbox{s: s, realm: r, rt: r.rt, lim: lim, col: env.Collector, tree: env.Tree,
		now: env.Now.Truncate(time.Millisecond), id: env.DeviceID}
	r.rt.SetMaxCallStackSize(lim.Stack)
	return sb
}

// random is Math.random: seedrandom's ARC4 generator seeded with the
// device ID, as GenieACS does, so a replay draws the same numbers (and a
// device gets the numbers GenieACS would give it).
func (sb *sandbox) random() float64 {
	if sb.rng == nil {
		sb.rng = newARC4(sb.id)
	}
	return sb.rng.float()
}

// seedString is the string seedrandom mixes a seed into: a string as it
// is, another primitive with a NUL appended.
func seedString(v goja.Value) string {
	if s, ok := v.Export().(string); ok {
		return s
	}
	return v.String() + "\x00"
}

// ---- errors thrown into the script ----

func (sb *sandbox) throwError(format string, args ...any) {
	sb.realm.throw(sb.realm.errorCtor, fmt.Sprintf(format, args...))
}

func (sb *sandbox) throwType(format string, args ...any) {
	panic(sb.rt.NewTypeError(fmt.Sprintf(format, args...)))
}

func (sb *sandbox) throwRange(format string, args ...any) {
	sb.realm.throw(sb.realm.rangeCtor, fmt.Sprintf(format, args...))
}

// stopped reports whether the run is being stopped; the interrupt is
// raised again in case the script is inside native code that called
// back into a sandbox function.
func (sb *sandbox) stopped() bool {
	if sb.wait != nil {
		sb.rt.Interrupt(stopWait)
		return true
	}
	if sb.fault != nil {
		sb.rt.Interrupt(stopFault)
		return true
	}
	return false
}

func (sb *sandbox) stopFor(w *waitFor) {
	sb.wait = w
	sb.rt.Interrupt(stopWait)
}

func (sb *sandbox) fail(f provision.Fault) {
	sb.fault = &f
	sb.rt.Interrupt(stopFault)
}

func (sb *sandbox) waitDesc() string {
	if sb.wait.commit {
		return "commit()"
	}
	return "declare(" + clip(sb.wait.path, 256) + ")"
}

// ---- declare, clear, commit ----

// count charges one declare() or clear() to the run's budget; false when
// it is spent (the run is then failing).
func (sb *sandbox) count() bool {
	sb.declared++
	if sb.declared > sb.lim.Declarations {
		sb.fail(provision.Fault{Code: FaultLimit,
			Message: fmt.Sprintf("script %s made more than %d declare() and clear() calls in one run", sb.s.name, sb.lim.Declarations)})
		return false
	}
	return true
}

// declare is GenieACS's declare(path, timestamps, values). It returns a
// result that reads the cached tree when the script looks at it.
func (sb *sandbox) declare(call goja.FunctionCall) goja.Value {
	if sb.stopped() || !sb.count() {
		return goja.Undefined()
	}
	path, ok := call.Argument(0).Export().(string)
	if !ok {
		sb.throwType("declare: the path must be a string")
	}
	var attrs []string
	ts, attrs := sb.timestamps(path, call.Argument(1), attrs)
	vals, attrs := sb.values(path, call.Argument(2), attrs)
	if err := sb.col.Declare(path, ts, vals); err != nil {
		sb.collectorError("declare", err)
	}
	r := &result{sb: sb, path: path, attrs: attrs}
	obj := sb.rt.NewDynamicObject(r)
	_ = obj.SetPrototype(sb.realm.resProto)
	return obj
}

// collectorError turns a collector's refusal into what the script sees:
// a budget is a limit fault, anything else an Error it may catch.
func (sb *sandbox) collectorError(fn string, err error) {
	if errors.Is(err, provision.ErrTooMany) {
		sb.fail(provision.Fault{Code: FaultLimit, Message: clip(err.Error(), maxMessage)})
		panic(sb.rt.NewTypeError("stopped")) // not seen: the interrupt wins
	}
	sb.throwError("%s: %s", fn, clip(err.Error(), maxMessage))
}

// Attributes a declaration may read back.
const (
	attrValue    = "value"
	attrWritable = "writable"
	attrObject   = "object"
)

func addAttr(attrs []string, a string) []string {
	for _, x := range attrs {
		if x == a {
			return attrs
		}
	}
	return append(attrs, a)
}

// timestamps reads declare()'s timestamps argument: attribute → time in
// ms; values below 1 ask for nothing, as in GenieACS.
func (sb *sandbox) timestamps(path string, v goja.Value, attrs []string) (provision.Timestamps, []string) {
	var ts provision.Timestamps
	if goja.IsUndefined(v) || goja.IsNull(v) {
		return ts, attrs
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		sb.throwType("declare(%s): timestamps must be an object", clip(path, 128))
	}
	for _, k := range obj.Keys() {
		ms := obj.Get(k).ToFloat()
		if !(ms >= 1) {
			continue
		}
		t := sb.msTime(ms)
		switch k {
		case "path":
			ts.Path = t
		case attrObject:
			ts.Object, attrs = t, addAttr(attrs, attrObject)
		case attrWritable:
			ts.Writable, attrs = t, addAttr(attrs, attrWritable)
		case attrValue:
			ts.Value, attrs = t, addAttr(attrs, attrValue)
		case "notification", "accessList":
			sb.throwError("declare(%s): the %s attribute is not supported (no Get/SetParameterAttributes yet)", clip(path, 128), k)
		}
	}
	return ts, attrs
}

// msTime converts a script's timestamp; beyond the session's time it is
// the session's time (the engine clamps it so anyway).
func (sb *sandbox) msTime(ms float64) time.Time {
	if ms >= float64(sb.now.UnixMilli()) {
		return sb.now
	}
	return provision.Millis(int64(ms))
}

// values reads declare()'s values argument: value (v or [v, type]) and
// path (an instance count n or [min, max]).
func (sb *sandbox) values(path string, v goja.Value, attrs []string) (provision.Values, []string) {
	var vals provision.Values
	if goja.IsUndefined(v) || goja.IsNull(v) {
		return vals, attrs
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		sb.throwType("declare(%s): values must be an object", clip(path, 128))
	}
	for _, k := range obj.Keys() {
		x := obj.Get(k)
		switch k {
		case "path":
			vals.Instances = sb.instances(path, x)
		case attrValue:
			val := sb.declaredValue(path, x)
			vals.Value, attrs = &val, addAttr(attrs, attrValue)
		case attrWritable, "notification", "accessList":
			sb.throwError("declare(%s): setting the %s attribute is not supported", clip(path, 128), k)
		}
	}
	return vals, attrs
}

// maxInstances bounds a declared instance count (as the built-in
// instances provision does).
const maxInstances = 1 << 20

func (sb *sandbox) instances(path string, v goja.Value) *provision.Instances {
	count := func(x goja.Value) int {
		f := x.ToFloat()
		if f != math.Trunc(f) || f < 0 || f > maxInstances {
			sb.throwType("declare(%s): an instance count must be a whole number from 0 to %d", clip(path, 128), maxInstances)
		}
		return int(f)
	}
	if obj, ok := v.(*goja.Object); ok && obj.ClassName() == "Array" {
		if l := obj.Get("length").ToInteger(); l != 2 {
			sb.throwType("declare(%s): path must be a count or [min, max]", clip(path, 128))
		}
		lo, hi := count(obj.Get("0")), count(obj.Get("1"))
		if hi < lo {
			sb.throwType("declare(%s): path [%d, %d]: max below min", clip(path, 128), lo, hi)
		}
		return &provision.Instances{Min: lo, Max: hi}
	}
	return provision.Count(count(v))
}

// declaredValue converts a declared value, v or [v, type], to the
// engine's lexical form: numbers as JavaScript prints them, booleans
// true/false, a Date (or a number declared xsd:dateTime) as an
// xsd:dateTime.
func (sb *sandbox) declaredValue(path string, v goja.Value) provision.Value {
	var out provision.Value
	if obj, ok := v.(*goja.Object); ok && obj.ClassName() == "Array" {
		if t := obj.Get("1"); t != nil && !goja.IsUndefined(t) && !goja.IsNull(t) {
			typ, ok := t.Export().(string)
			if !ok {
				sb.throwType("declare(%s): the value's type must be a string", clip(path, 128))
			}
			out.Type = typ
		}
		v = obj.Get("0")
		if v == nil {
			v = goja.Undefined()
		}
	}
	switch x := v.Export().(type) {
	case nil:
		sb.throwType("declare(%s): the value is %s", clip(path, 128), v.String())
	case string:
		out.Value = x
	case bool:
		out.Value = strconv.FormatBool(x)
	case time.Time:
		out.Value = x.UTC().Format("2006-01-02T15:04:05.000Z")
		if out.Type == "" {
			out.Type = cwmp.TypeDateTime
		}
	case int64, float64:
		f := v.ToFloat()
		if cwmp.NormalizeType(out.Type) == cwmp.TypeDateTime && out.Type != "" && !math.IsNaN(f) && !math.IsInf(f, 0) {
			out.Value = time.UnixMilli(int64(f)).UTC().Format("2006-01-02T15:04:05.000Z")
		} else {
			out.Value = v.String()
		}
	default:
		sb.throwType("declare(%s): the value must be a string, number, boolean or Date", clip(path, 128))
	}
	if len(out.Value) > sb.lim.Value {
		sb.throwRange("declare(%s): the value is %d bytes, more than %d", clip(path, 128), len(out.Value), sb.lim.Value)
	}
	return out
}

// clear is GenieACS's clear(path, timestamp): what the cache learnt of
// path before timestamp is to be fetched again. The attributes argument
// (clear only some attributes) is not supported: the whole node is
// cleared.
func (sb *sandbox) clear(call goja.FunctionCall) goja.Value {
	if sb.stopped() || !sb.count() {
		return goja.Undefined()
	}
	path, ok := call.Argument(0).Export().(string)
	if !ok {
		sb.throwType("clear: the path must be a string")
	}
	var at time.Time
	if ms := call.Argument(1).ToFloat(); ms >= 1 {
		at = sb.msTime(ms)
	}
	if err := sb.col.Clear(path, at); err != nil {
		sb.collectorError("clear", err)
	}
	return goja.Undefined()
}

// commit is GenieACS's commit(): the declarations so far are carried out
// before the script goes on. If they are all settled already it returns;
// otherwise the run stops here and is replayed once they are.
func (sb *sandbox) commit(goja.FunctionCall) goja.Value {
	if sb.stopped() {
		return goja.Undefined()
	}
	if ok, _ := sb.col.ScopeSettled(sb.tree, ""); !ok {
		sb.stopFor(&waitFor{commit: true})
	}
	return goja.Undefined()
}

// log keeps a line for the session's log, within Limits.LogBytes.
func (sb *sandbox) log(call goja.FunctionCall) goja.Value {
	if sb.stopped() {
		return goja.Undefined()
	}
	room := sb.lim.LogBytes - sb.logBytes
	if room <= 0 {
		return goja.Undefined()
	}
	msg := clip(call.Argument(0).String(), room)
	sb.logBytes += len(msg) + 1
	sb.logs = append(sb.logs, msg)
	return goja.Undefined()
}

// ext refuses: extensions (GenieACS's privileged Node.js modules) are not
// part of the edge.
func (sb *sandbox) ext(call goja.FunctionCall) goja.Value {
	name := clip(call.Argument(0).String(), 64)
	sb.throwError("ext(%s): extensions are not supported by edgeacs", name)
	return nil
}

// dateNow is Date.now(): the session's time, or with an interval (ms) the
// latest point of a per-device grid of that period (variance, default
// the interval, spreads devices), or with a cron expression its latest
// tick (variance, default 0, shifts it per device). This is GenieACS's
// Date.now(intervalOrCron, variance).
func (sb *sandbox) dateNow(call goja.FunctionCall) goja.Value {
	t := float64(sb.now.UnixMilli())
	arg := call.Argument(0)
	variance := call.Argument(1)
	offset := func(def float64) float64 {
		v := def
		if !goja.IsUndefined(variance) && !goja.IsNull(variance) {
			v = variance.ToFloat()
		}
		if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0
		}
		return math.Mod(float64(md532(sb.id)), v)
	}
	switch x := arg.Export().(type) {
	case nil:
		if !goja.IsUndefined(arg) && !goja.IsNull(arg) {
			sb.throwError("Invalid Date.now() argument")
		}
	case int64, float64:
		iv := arg.ToFloat()
		if iv == 0 {
			break
		}
		off := offset(iv)
		t = math.Trunc((t+off)/iv)*iv - off
	case string:
		cron, err := preset.ParseCron(x)
		if err != nil {
			sb.throwError("Date.now: %s", clip(err.Error(), maxMessage))
		}
		off := offset(0)
		prev, ok := cron.Prev(time.UnixMilli(int64(t + off)))
		t = 0
		if ok {
			t = float64(prev.UnixMilli()) - off
		}
	case bool:
		if x {
			sb.throwError("Invalid Date.now() argument")
		}
	default:
		sb.throwError("Invalid Date.now() argument")
	}
	return sb.rt.ToValue(t)
}

// md532 is GenieACS's per-device hash (the four words of an MD5 XORed),
// as provision's refresh boundaries use it.
func md532(s string) uint32 {
	sum := md5.Sum([]byte(s))
	return binary.LittleEndian.Uint32(sum[0:]) ^ binary.LittleEndian.Uint32(sum[4:]) ^
		binary.LittleEndian.Uint32(sum[8:]) ^ binary.LittleEndian.Uint32(sum[12:])
}

// ---- args ----

func (sb *sandbox) setArgs(args []any) {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = sb.toJS(a, 0)
	}
	sb.args = sb.rt.NewArray(vals...)
}

// toJS converts a JSON-decoded value to a plain JavaScript value (not a
// Go-backed wrapper, whose behaviour differs from a script's own arrays
// and objects).
func (sb *sandbox) toJS(v any, depth int) goja.Value {
	if depth > 64 {
		return goja.Null()
	}
	switch x := v.(type) {
	case nil:
		return goja.Null()
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return sb.rt.ToValue(x.String())
		}
		return sb.rt.ToValue(f)
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = sb.toJS(e, depth+1)
		}
		return sb.rt.NewArray(items...)
	case map[string]any:
		// Sorted: a replay must see the keys in the same order.
		obj := sb.rt.NewObject()
		for _, k := range slices.Sorted(maps.Keys(x)) {
			_ = obj.Set(k, sb.toJS(x[k], depth+1))
		}
		return obj
	case string, bool, float64, int, int64:
		return sb.rt.ToValue(x)
	}
	return sb.rt.ToValue(fmt.Sprint(v))
}

// ---- declare() results ----

// result is what declare() returns: GenieACS's iterator over the matched
// parameters, whose value, writable, object (those declared), path and
// size read the first match. It reads the cached tree when first looked
// at; if the declaration is not settled by then, the run stops there.
type result struct {
	sb    *sandbox
	path  string
	attrs []string
	// fixed: an item of an iteration, its entry known.
	fixed    bool
	resolved bool
	entries  []provision.Entry
}

// resolve matches the declaration against the tree, once it is settled;
// false when the run stops to wait for it.
func (r *result) resolve() bool {
	if r.resolved {
		return true
	}
	sb := r.sb
	if sb.stopped() {
		return false
	}
	// GenieACS commits the script's declarations before it answers a
	// read; those that cannot change what this one selects need not be
	// waited for.
	ok, err := sb.col.ScopeSettled(sb.tree, r.path)
	if err != nil {
		sb.throwError("declare: %s", clip(err.Error(), maxMessage))
	}
	if !ok {
		sb.stopFor(&waitFor{path: r.path})
		return false
	}
	entries, err := provision.Match(sb.tree, r.path)
	if err != nil {
		sb.throwError("declare: %s", clip(err.Error(), maxMessage))
	}
	r.entries, r.resolved = entries, true
	return true
}

// Get implements goja.DynamicObject.
func (r *result) Get(key string) goja.Value {
	switch key {
	case "path", "size":
	default:
		if !r.has(key) {
			return nil
		}
	}
	if !r.resolve() || len(r.entries) == 0 {
		return goja.Undefined()
	}
	e := r.entries[0]
	switch key {
	case "path":
		return r.sb.rt.ToValue(strings.TrimSuffix(e.Path, "."))
	case "size":
		return r.sb.rt.ToValue(len(r.entries))
	case attrValue:
		if e.Object || e.ValueTime.IsZero() {
			return goja.Undefined()
		}
		return r.sb.rt.NewArray(r.sb.jsValue(e.Value, e.Type), typeOrString(e.Type))
	case attrWritable:
		if e.WritableTime.IsZero() {
			return goja.Undefined()
		}
		return r.sb.rt.ToValue(e.Writable)
	case attrObject:
		if e.PathTime.IsZero() {
			return goja.Undefined()
		}
		return r.sb.rt.ToValue(e.Object)
	}
	return goja.Undefined()
}

func (r *result) has(attr string) bool {
	for _, a := range r.attrs {
		if a == attr {
			return true
		}
	}
	return false
}

// Set implements goja.DynamicObject: a result is read-only.
func (r *result) Set(string, goja.Value) bool { return false }

// Has implements goja.DynamicObject.
func (r *result) Has(key string) bool { return key == "path" || key == "size" || r.has(key) }

// Delete implements goja.DynamicObject: a result is read-only.
func (r *result) Delete(string) bool { return false }

// Keys implements goja.DynamicObject: like GenieACS's accessors, none is
// enumerable.
func (r *result) Keys() []string { return nil }

// iterate is a result's [Symbol.iterator]: one item per match.
func (sb *sandbox) iterate(call goja.FunctionCall) goja.Value {
	items := []any{}
	if r, ok := call.This.Export().(*result); ok && r.resolve() {
		items = make([]any, len(r.entries))
		for i, e := range r.entries {
			item := &result{sb: sb, path: e.Path, attrs: r.attrs, fixed: true, resolved: true,
				entries: []provision.Entry{e}}
			obj := sb.rt.NewDynamicObject(item)
			_ = obj.SetPrototype(sb.realm.resProto)
			items[i] = obj
		}
	}
	it, err := sb.realm.arrValues(sb.rt.NewArray(items...))
	if err != nil {
		panic(err)
	}
	return it
}

func typeOrString(t string) string {
	if t == "" {
		return cwmp.TypeString
	}
	return t
}

// jsValue is a cached value as GenieACS hands it to scripts: booleans and
// xsd:int / xsd:unsignedInt as numbers, dateTimes as milliseconds, the
// rest (and what does not parse) as strings.
func (sb *sandbox) jsValue(v, typ string) goja.Value {
	switch typ {
	case cwmp.TypeBoolean:
		if b, err := cwmp.ParseBool(v); err == nil {
			return sb.rt.ToValue(b)
		}
	case cwmp.TypeInt, cwmp.TypeUnsignedInt:
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return sb.rt.ToValue(n)
		}
	case cwmp.TypeDateTime:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return sb.rt.ToValue(f)
		}
		if t, err := (cwmp.ParameterValue{Value: v}).Time(); err == nil {
			return sb.rt.ToValue(t.UnixMilli())
		}
	}
	return sb.rt.ToValue(v)
}
