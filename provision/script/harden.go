package script

import (
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
	"github.com/dop251/goja"
)

// goja interrupts a script between instructions only: one call of a
// built-in runs to its end. Some built-ins do work the script controls in
// one call: "x".repeat(2**30) allocates a gigabyte, [...a] on an array
// whose length was set to 2**32-1 walks four billion holes, a JSON
// serialisation of an array repeating one long string multiplies it. The
// sandbox bounds these where they start: the size a call would build is
// checked first (Limits.String, Limits.Array), and the loops that built-ins
// run over iterators call back into a wrapped next() that stops once the
// run is over its limits.

func init() {
	// A backtracking RegExp (goja uses regexp2 for what RE2 cannot run)
	// cannot be interrupted either: bound every match. A match cut short
	// reads as no match, but by then the run is past Limits.Time (which
	// withDefaults keeps below this) and is stopped at the next
	// instruction, so the script never acts on it.
	regexp2.DefaultMatchTimeout = maxTime
}

// maxTime bounds Limits.Time: the regexp timeout must exceed it.
const maxTime = time.Second

// removedGlobals are built-ins provision scripts have no use for that
// allocate or loop at the script's command in one call.
var removedGlobals = []string{
	"ArrayBuffer", "SharedArrayBuffer", "DataView", "Atomics",
	"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
	"Int32Array", "Uint32Array", "Float32Array", "Float64Array",
	"BigInt64Array", "BigUint64Array",
	"WeakRef", "FinalizationRegistry",
}

// hiddenProtos evaluates to the prototypes whose next() built-ins call in
// their loops (none is reachable from the global object).
var hiddenProtos = goja.MustCompile("hiddenProtos", `[
	Object.getPrototypeOf([][Symbol.iterator]()),
	Object.getPrototypeOf(""[Symbol.iterator]()),
	Object.getPrototypeOf(new Map()[Symbol.iterator]()),
	Object.getPrototypeOf(new Set()[Symbol.iterator]()),
	Object.getPrototypeOf(/a/g[Symbol.matchAll]("")),
]`, true)

// check stops a built-in whose run is being stopped: it throws, and the
// pending interrupt then ends the run at the next instruction.
func (sb *sandbox) check() {
	if sb.expired.Load() || sb.wait != nil || sb.fault != nil {
		panic(sb.rt.NewTypeError("script stopped"))
	}
}

// check is sandbox.check for the run the realm serves; outside a run
// (it has none) every built-in is refused.
func (r *realm) check() *sandbox {
	sb := r.cur
	if sb == nil {
		panic(r.rt.NewTypeError("no script is running"))
	}
	sb.check()
	return sb
}

// lengthOf is ToLength(v.length) for an object, 0 otherwise.
func lengthOf(v goja.Value) int64 {
	obj, ok := v.(*goja.Object)
	if !ok {
		return 0
	}
	l := obj.Get("length")
	if l == nil {
		return 0
	}
	return l.ToInteger()
}

// strLen is the length of v's string form if v is a string, else 0.
func strLen(v goja.Value) int {
	if s, ok := v.(goja.String); ok {
		return s.Length()
	}
	return 0
}

// harden bounds the built-ins (see above); the bounds are those of the
// run the realm serves at the time of the call. It returns the iterator
// prototypes, which no global leads to, for freezing.
func (r *realm) harden() (hidden []goja.Value) {
	rt := r.rt
	g := rt.GlobalObject()
	for _, n := range removedGlobals {
		_ = g.Delete(n)
	}
	obj := func(v goja.Value) *goja.Object { return v.ToObject(rt) }
	proto := func(ctor string) *goja.Object { return obj(obj(rt.Get(ctor)).Get("prototype")) }

	arrayCheck := func(what string, n int64) {
		if max := int64(r.cur.lim.Array); n > max {
			r.cur.throwRange("%s: %d elements, more than the %d a call may walk", what, n, max)
		}
	}
	stringCheck := func(what string, n int64) {
		if max := int64(r.cur.lim.String); n > max {
			r.cur.throwRange("%s: a string of %d characters, more than %d", what, n, max)
		}
	}

	// Array methods walk this.length, holes included.
	ap := proto("Array")
	for _, name := range ap.GetOwnPropertyNames() {
		switch name {
		case "constructor", "join", "length",
			// These touch one element, or make an iterator (its
			// next is bounded): hot enough to leave alone.
			"push", "pop", "at", "keys", "values", "entries":
			continue
		}
		r.wrap(ap, name, func(call goja.FunctionCall) {
			arrayCheck("Array.prototype."+name, lengthOf(call.This))
			if name == "concat" {
				n := lengthOf(call.This)
				for _, a := range call.Arguments {
					n += lengthOf(a) + 1
				}
				arrayCheck("Array.prototype.concat", n)
			}
		})
	}
	_ = ap.DefineDataProperty("join", rt.ToValue(func(call goja.FunctionCall) goja.Value {
		return r.check().join(call)
	}), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)

	arr := obj(rt.Get("Array"))
	r.wrap(arr, "from", func(call goja.FunctionCall) { arrayCheck("Array.from", lengthOf(call.Argument(0))) })
	r.wrap(proto("Function"), "apply", func(call goja.FunctionCall) {
		arrayCheck("Function.prototype.apply", lengthOf(call.Argument(1)))
	})
	refl := obj(rt.Get("Reflect"))
	r.wrap(refl, "apply", func(call goja.FunctionCall) { arrayCheck("Reflect.apply", lengthOf(call.Argument(2))) })
	r.wrap(refl, "construct", func(call goja.FunctionCall) {
		arrayCheck("Reflect.construct", lengthOf(call.Argument(1)))
	})

	str := obj(rt.Get("String"))
	r.wrap(str, "raw", func(call goja.FunctionCall) {
		if o, ok := call.Argument(0).(*goja.Object); ok {
			arrayCheck("String.raw", lengthOf(o.Get("raw")))
		}
	})
	sp := proto("String")
	r.wrap(sp, "repeat", func(call goja.FunctionCall) {
		stringCheck("String.prototype.repeat", int64(strLen(call.This.ToString()))*call.Argument(0).ToInteger())
	})
	for _, name := range []string{"padStart", "padEnd"} {
		r.wrap(sp, name, func(call goja.FunctionCall) {
			stringCheck("String.prototype."+name, call.Argument(0).ToInteger())
		})
	}
	r.wrap(sp, "concat", func(call goja.FunctionCall) {
		n := int64(strLen(call.This.ToString()))
		for _, a := range call.Arguments {
			n += int64(strLen(a))
		}
		stringCheck("String.prototype.concat", n)
	})
	r.wrap(sp, "split", func(call goja.FunctionCall) {
		stringCheck("String.prototype.split", int64(strLen(call.This.ToString())))
	})
	for _, name := range []string{"replace", "replaceAll"} {
		r.wrap(sp, name, func(call goja.FunctionCall) {
			r.cur.replaceCheck("String.prototype."+name, call.This, call.Argument(1))
		})
	}
	rp := proto("RegExp")
	r.wrapSym(rp, goja.SymReplace, func(call goja.FunctionCall) {
		r.cur.replaceCheck("RegExp.prototype[Symbol.replace]", call.Argument(0), call.Argument(1))
	})
	r.wrapSym(rp, goja.SymSplit, func(call goja.FunctionCall) {
		stringCheck("RegExp.prototype[Symbol.split]", int64(strLen(call.Argument(0).ToString())))
	})

	js := obj(rt.Get("JSON"))
	r.wrap(js, "parse", func(call goja.FunctionCall) {
		stringCheck("JSON.parse", int64(strLen(call.Argument(0).ToString())))
	})
	stringify, _ := goja.AssertFunction(js.Get("stringify"))
	_ = js.DefineDataProperty("stringify", rt.ToValue(func(call goja.FunctionCall) goja.Value {
		return r.check().stringify(stringify, call)
	}), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)

	// Iterators: the loops of spread, Array.from, new Set, Promise.all
	// ... call next() natively.
	if protos, err := rt.RunProgram(hiddenProtos); err == nil {
		list := obj(protos)
		for i := int64(0); i < lengthOf(list); i++ {
			if p, ok := list.Get(strconv.FormatInt(i, 10)).(*goja.Object); ok {
				r.wrap(p, "next", func(goja.FunctionCall) {})
				hidden = append(hidden, p)
			}
		}
	}
	return hidden
}

// wrap replaces obj[name] with a function that checks the run, runs pre
// (which throws to refuse the call), then calls the original.
func (r *realm) wrap(obj *goja.Object, name string, pre func(goja.FunctionCall)) {
	orig, ok := goja.AssertFunction(obj.Get(name))
	if !ok {
		return
	}
	fn := r.wrapped(orig, pre)
	_ = obj.DefineDataProperty(name, r.rt.ToValue(fn), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func (r *realm) wrapSym(obj *goja.Object, sym *goja.Symbol, pre func(goja.FunctionCall)) {
	orig, ok := goja.AssertFunction(obj.GetSymbol(sym))
	if !ok {
		return
	}
	fn := r.wrapped(orig, pre)
	_ = obj.DefineDataPropertySymbol(sym, r.rt.ToValue(fn), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func (r *realm) wrapped(orig goja.Callable, pre func(goja.FunctionCall)) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		r.check()
		pre(call)
		v, err := orig(call.This, call.Arguments...)
		if err != nil {
			panic(err) // a JS exception is rethrown, an interrupt goes on
		}
		return v
	}
}

// replaceCheck bounds what replacing in s with a string replacement may
// build: every position may match, and every $ may insert the whole of s.
func (sb *sandbox) replaceCheck(what string, s, repl goja.Value) {
	if _, fn := goja.AssertFunction(repl); fn {
		return // a function replacer runs script code: interruptible
	}
	n := int64(strLen(s.ToString()))
	rs := repl.ToString()
	r := int64(strLen(rs))
	if r == 0 {
		return
	}
	dollars := int64(strings.Count(rs.String(), "$"))
	if total := n + (n+1)*(r+dollars*n); total > int64(sb.lim.String) || total < 0 {
		sb.throwRange("%s: replacing in %d characters with %d could build more than %d", what, n, r, sb.lim.String)
	}
}

// join is Array.prototype.join with a bound on the string it builds (one
// string repeated in an array would otherwise be multiplied).
func (sb *sandbox) join(call goja.FunctionCall) goja.Value {
	sb.check()
	o := call.This.ToObject(sb.rt)
	n := lengthOf(o)
	if n > int64(sb.lim.Array) {
		sb.throwRange("Array.prototype.join: %d elements, more than the %d a call may walk", n, sb.lim.Array)
	}
	sep := ","
	if s := call.Argument(0); !goja.IsUndefined(s) {
		sep = s.String()
	}
	var b strings.Builder
	for i := int64(0); i < n; i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		if v := o.Get(strconv.FormatInt(i, 10)); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			b.WriteString(v.String())
		}
		if b.Len() > sb.lim.String {
			sb.throwRange("Array.prototype.join: the string would exceed %d characters", sb.lim.String)
		}
	}
	return sb.rt.ToValue(b.String())
}

// stringify is JSON.stringify with a replacer that bounds the output: a
// script's replacer function still runs, an array replacer (a property
// list) is refused.
func (sb *sandbox) stringify(orig goja.Callable, call goja.FunctionCall) goja.Value {
	user, isFn := goja.AssertFunction(call.Argument(1))
	if r, ok := call.Argument(1).(*goja.Object); ok && !isFn && r.ClassName() == "Array" {
		sb.throwType("JSON.stringify: a property-list replacer is not supported in provision scripts")
	}
	size := 0
	replacer := func(rc goja.FunctionCall) goja.Value {
		sb.check()
		v := rc.Argument(1)
		if user != nil {
			var err error
			if v, err = user(rc.This, rc.Arguments...); err != nil {
				panic(err)
			}
		}
		size += 8 + strLen(rc.Argument(0)) + strLen(v)
		if size > sb.lim.String {
			sb.throwRange("JSON.stringify: the string would exceed %d characters", sb.lim.String)
		}
		return v
	}
	v, err := orig(call.This, call.Argument(0), sb.rt.ToValue(replacer), call.Argument(2))
	if err != nil {
		panic(err)
	}
	return v
}
