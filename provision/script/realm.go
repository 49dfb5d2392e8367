package script

import (
	"runtime"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// A realm is a goja runtime prepared once and lent to one run at a time.
//
// Preparing one costs milliseconds (the sandbox's globals, the bounded
// built-ins, and freezing every built-in object), a fresh goja runtime
// per run a millisecond with the bounds alone: the realm is reused
// instead. Reuse is safe because nothing a run can write survives it:
//
//   - every object reachable from the global object, and the hidden
//     prototypes (iterators, generators, async functions), is frozen, the
//     global object included: a script can add no global, change no
//     built-in, reach no shared mutable object;
//   - the script runs in a function (its own bindings die with the call),
//     the program itself declares nothing global, and eval, the one way
//     to declare a global lexical binding, is not available;
//   - args, Date, Math.random and the sandbox functions read the current
//     run's state (realm.cur), cleared when the run ends;
//   - a run the watchdog stopped, or that overflowed the stack, discards
//     its realm rather than trusting what an interrupt left behind.
//
// What does survive is what a frozen realm cannot hide: the Symbol.for
// registry (symbols, no values) and goja's own caches.
type realm struct {
	rt  *goja.Runtime
	cur *sandbox // the run the realm is lent to; nil between runs

	errorCtor, rangeCtor *goja.Object
	resProto             *goja.Object // prototype of declare() results: Symbol.iterator
	arrValues            goja.Callable
}

// realms keeps prepared realms for reuse. A channel rather than a
// sync.Pool: a pool is emptied at every garbage collection, and a realm
// costs milliseconds to prepare (about 400 KiB each). It keeps as many
// as were lent at once, up to 64: an edge runs scripts in many sessions
// at a time, and a session descheduled while it holds a realm must not
// make the next one prepare a new realm (with two per CPU, a busy
// 2-core edge prepared one in about every tenth run).
var realms = make(chan *realm, max(64, 4*runtime.GOMAXPROCS(0)))

func getRealm() *realm {
	select {
	case r := <-realms:
		return r
	default:
		return newRealm()
	}
}

// putRealm returns r for reuse if ok, else drops it.
func putRealm(r *realm, ok bool) {
	if !ok {
		return
	}
	r.rt.ClearInterrupt()
	select {
	case realms <- r:
	default:
	}
}

func newRealm() *realm {
	rt := goja.New()
	r := &realm{rt: rt}
	// Source maps off for eval'd code too: goja would read the file a
	// "//# sourceMappingURL=" comment names from the local disk.
	rt.SetParserOptions(parser.WithDisableSourceMaps)
	rt.SetTimeSource(func() time.Time {
		if sb := r.cur; sb != nil {
			return sb.now
		}
		return time.Time{}
	})
	rt.SetRandSource(func() float64 {
		if sb := r.cur; sb != nil {
			return sb.random()
		}
		return 0
	})
	obj := func(v goja.Value) *goja.Object { return v.ToObject(rt) }
	r.errorCtor = obj(rt.Get("Error"))
	r.rangeCtor = obj(rt.Get("RangeError"))
	r.arrValues, _ = goja.AssertFunction(obj(obj(rt.Get("Array")).Get("prototype")).Get("values"))
	hidden := r.harden()

	g := rt.GlobalObject()
	fn := func(f func(sb *sandbox, call goja.FunctionCall) goja.Value) goja.Value {
		return rt.ToValue(func(call goja.FunctionCall) goja.Value { return f(r.check(), call) })
	}
	def := func(name string, f func(sb *sandbox, call goja.FunctionCall) goja.Value) {
		_ = g.DefineDataProperty(name, fn(f), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
	}
	def("declare", (*sandbox).declare)
	def("clear", (*sandbox).clear)
	def("commit", (*sandbox).commit)
	def("log", (*sandbox).log)
	def("ext", (*sandbox).ext)
	def("eval", func(sb *sandbox, _ goja.FunctionCall) goja.Value {
		sb.throwError("eval is not available in provision scripts")
		return nil
	})
	// args is the run's: a global accessor, so that a script may still
	// declare its own args.
	_ = g.DefineAccessorProperty("args",
		fn(func(sb *sandbox, _ goja.FunctionCall) goja.Value { return sb.args }),
		fn(func(sb *sandbox, call goja.FunctionCall) goja.Value {
			sb.args = call.Argument(0)
			return goja.Undefined()
		}), goja.FLAG_FALSE, goja.FLAG_TRUE)

	_ = obj(rt.Get("Date")).Set("now", fn((*sandbox).dateNow))
	random := obj(fn(func(sb *sandbox, _ goja.FunctionCall) goja.Value { return rt.ToValue(sb.random()) }))
	_ = random.Set("seed", fn(func(sb *sandbox, call goja.FunctionCall) goja.Value {
		sb.rng = newARC4(seedString(call.Argument(0)))
		return goja.Undefined()
	}))
	_ = obj(rt.Get("Math")).Set("random", random)

	r.resProto = rt.NewObject()
	_ = r.resProto.SetSymbol(goja.SymIterator, fn((*sandbox).iterate))

	// The walk calls bounded built-ins: they need a run's limits.
	r.cur = &sandbox{realm: r, rt: rt, lim: Limits{}.withDefaults()}
	defer func() { r.cur = nil }()
	freeze, err := rt.RunProgram(freezeAll)
	if err == nil {
		call, _ := goja.AssertFunction(freeze)
		_, err = call(goja.Undefined(), append(hidden, r.resProto)...)
	}
	if err != nil {
		panic("script: cannot freeze the built-ins: " + err.Error())
	}
	return r
}

// freezeAll evaluates to a function that freezes every object reachable
// from the global object, from the prototypes no global leads to and
// from the objects it is given (the iterator prototypes, the declare()
// results' prototype), walking properties, accessors and prototypes.
var freezeAll = goja.MustCompile("freezeAll", `(function (...roots) {
  "use strict";
  const todo = [globalThis, ...roots,
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf((function* () {})()),
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(Promise.resolve()),
  ];
  const seen = new Set();
  while (todo.length) {
    const o = todo.pop();
    if ((typeof o !== "object" && typeof o !== "function") || o === null || seen.has(o)) continue;
    seen.add(o);
    Object.freeze(o);
    todo.push(Object.getPrototypeOf(o));
    for (const k of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, k);
      if ("value" in d) todo.push(d.value); else todo.push(d.get, d.set);
    }
  }
})`, false)

// throw throws a new error of the constructor ctor into the script.
func (r *realm) throw(ctor *goja.Object, msg string) {
	e, err := r.rt.New(ctor, r.rt.ToValue(msg))
	if err != nil {
		panic(r.rt.NewTypeError(msg))
	}
	panic(e)
}
