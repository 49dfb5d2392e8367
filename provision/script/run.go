package script

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"

	"github.com/edgeacs/edgeacs/provision"
)

// Env is what one run of a script sees.
type Env struct {
	// Collector receives the script's declare() and clear() calls. Exec
	// gives each script a Scope of it, so that a replay replaces the
	// previous run's declarations.
	Collector *provision.Collector
	// Tree is the device's cached tree, the one the session drives the
	// provision.Run with: declare() results read it (provision.Match).
	Tree provision.Tree
	// Now is the session's time (provision.Run.Now): Date.now() and new
	// Date() return it in every run.
	Now time.Time
	// DeviceID seeds Math.random and spreads Date.now(interval).
	DeviceID string
	// Args are the provision's arguments from the preset, JSON-decoded
	// (string, float64 or json.Number, bool, nil, []any, map[string]any):
	// the script's global args.
	Args []any
	// Log, when set, gets the log() lines of the run that counts (see
	// Exec); a blocked run's lines are dropped, since its replay logs
	// them again.
	Log func(msg string)
	// Limits bound each run.
	Limits Limits
}

// Status is how a run ended.
type Status uint8

const (
	// Finished: the script ran to its end.
	Finished Status = iota
	// Blocked: the script read a declare() result the engine has yet to
	// settle (or called commit() with declarations unsettled) and was
	// stopped there; run it again once that is settled.
	Blocked
	// Failed: the script threw or hit a limit; Result.Fault says why.
	Failed
)

func (s Status) String() string {
	switch s {
	case Finished:
		return "finished"
	case Blocked:
		return "blocked"
	case Failed:
		return "failed"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Result is the outcome of one run.
type Result struct {
	Status Status
	// Fault is why a Failed run failed, GenieACS's way: "script.<Error
	// name>" with the message and a Detail of name, message and stack;
	// FaultTimeout; FaultLimit.
	Fault *provision.Fault
	// Waiting says what a Blocked run waits for: "declare(<path>)" or
	// "commit()".
	Waiting string
	// Declared counts the run's declare() and clear() calls.
	Declared int
	// Logs are the run's log() lines (bounded by Limits.LogBytes).
	Logs []string
	// Elapsed is the run's wall-clock time, runtime set-up included.
	Elapsed time.Duration

	wait    *waitFor
	virtual *VirtualValue
}

// waitFor is what a blocked run stopped at: the script's declarations
// that concern path (all of them for commit()) must be settled.
type waitFor struct {
	commit bool
	path   string
}

// settled reports whether what a blocked run waits for is settled now.
func (w *waitFor) settled(c *provision.Collector, t provision.Tree) bool {
	ok, err := c.ScopeSettled(t, w.path)
	return ok || err != nil
}

// Interrupt values: why the watchdog or a sandbox function stopped the VM.
type stopReason uint8

const (
	stopTimeout stopReason = iota + 1
	stopAlloc
	stopContext
	stopWait  // a read of an unsettled result: sandbox.wait says which
	stopFault // a limit a sandbox function enforces: sandbox.fault
)

// Run runs the script once from the start for one device: its
// declarations go to env.Collector, its reads come from env.Tree. A
// script's own failure is a Failed result, not an error; errors wrap
// ErrEnv, or are the context's when ctx ends the run. Run records
// nothing on the collector's channel (Exec does: faults, replays).
func (s *Script) Run(ctx context.Context, env Env) (Result, error) {
	return s.run(ctx, env, nil)
}

func (s *Script) run(ctx context.Context, env Env, vp *VirtualArgs) (Result, error) {
	if env.Collector == nil || env.Tree == nil {
		return Result{}, fmt.Errorf("%w: a run needs a collector and a tree", ErrEnv)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	lim := env.Limits.withDefaults()
	r := getRealm()
	sb := newSandbox(r, s, env, lim)
	r.cur = sb
	if vp != nil {
		sb.setVirtualArgs(*vp)
	} else {
		sb.setArgs(env.Args)
	}
	stop := sb.watch(ctx, lim)
	// The program evaluates to the script's function; the call runs it.
	var ret goja.Value
	fn, err := r.rt.RunProgram(s.prog)
	if err == nil {
		call, ok := goja.AssertFunction(fn)
		if !ok {
			err = errors.New("script: the program is not a function")
		} else {
			ret, err = call(goja.Undefined())
		}
	}
	// Reading what the script left (an error's name, a returned object)
	// may run its getters: the watchdog stays on until that is done.
	res := sb.outcome(ret, err, vp != nil)
	stop()
	r.cur = nil
	putRealm(r, !sb.dirty && !sb.expired.Load())
	res.Elapsed = time.Since(start)
	if res.Status == Failed && res.Fault == nil {
		return res, ctx.Err()
	}
	return res, nil
}

// outcome classifies how RunProgram ended. A Failed result without a
// fault means the context stopped the run.
func (sb *sandbox) outcome(ret goja.Value, err error, virtual bool) Result {
	res := Result{Status: Failed, Declared: sb.declared, Logs: sb.logs}
	lim := sb.lim
	var intr *goja.InterruptedError
	var ex *goja.Exception
	var so *goja.StackOverflowError
	switch {
	case err == nil:
		res.Status = Finished
		if virtual {
			res.virtual, res.Fault = sb.virtualResult(ret)
			if res.Fault != nil {
				res.Status = Failed
			}
		}
	case sb.fault != nil:
		// A limit or a wait decided first, whatever the watchdog did
		// after.
		res.Fault = sb.fault
	case sb.wait != nil:
		res.Status, res.wait, res.Waiting = Blocked, sb.wait, sb.waitDesc()
	case sb.expired.Load():
		// The watchdog stopped the run, whether the interrupt or a
		// built-in's check (a TypeError the script may not even see)
		// ended it.
		switch stopReason(sb.reason.Load()) {
		case stopContext:
		case stopAlloc:
			res.Fault = &provision.Fault{Code: FaultLimit,
				Message: fmt.Sprintf("script %s allocated more than %d bytes in one run", sb.s.name, lim.Alloc)}
		default:
			res.Fault = &provision.Fault{Code: FaultTimeout,
				Message: fmt.Sprintf("script %s ran longer than %v", sb.s.name, lim.Time)}
		}
	case errors.As(err, &intr):
		sb.dirty = true
		res.Fault = &provision.Fault{Code: FaultScript, Message: clip(intr.Error(), maxMessage)}
	case errors.As(err, &so):
		sb.dirty = true
		res.Fault = &provision.Fault{Code: "script.RangeError", Message: "Maximum call stack size exceeded",
			Detail: map[string]string{"name": "RangeError", "message": "Maximum call stack size exceeded",
				"stack": sb.s.stack(so.Stack())}}
	case errors.As(err, &ex):
		res.Fault = sb.errorFault(ex)
	default:
		sb.dirty = true
		res.Fault = &provision.Fault{Code: FaultScript, Message: clip(err.Error(), maxMessage)}
	}
	return res
}

// Bounds on what a fault carries out of the sandbox.
const (
	maxMessage = 1 << 10
	maxStack   = 4 << 10
)

// errorFault turns an uncaught exception into GenieACS's fault: an Error
// gives "script.<name>", anything else thrown gives "script".
func (sb *sandbox) errorFault(ex *goja.Exception) *provision.Fault {
	val := ex.Value()
	obj, isObj := val.(*goja.Object)
	name := ""
	if isObj && sb.rt.InstanceOf(obj, sb.realm.errorCtor) {
		name = sb.jsString(func() goja.Value { return obj.Get("name") })
	}
	if name == "" {
		msg := sb.jsString(func() goja.Value { return val })
		if msg == "" {
			msg = "undefined"
		}
		return &provision.Fault{Code: FaultScript, Message: clip(msg, maxMessage)}
	}
	msg := sb.jsString(func() goja.Value { return obj.Get("message") })
	name, msg = clip(name, 64), clip(msg, maxMessage)
	stack := name + ": " + msg + "\n" + sb.s.stack(ex.Stack())
	return &provision.Fault{Code: "script." + name, Message: msg,
		Detail: map[string]string{"name": name, "message": msg, "stack": clip(stack, maxStack)}}
}

// stack writes JS stack frames as V8 does ("    at fn (name:line:col)"),
// in the script's lines, without the wrapper's frames.
func (s *Script) stack(frames []goja.StackFrame) string {
	var b strings.Builder
	for i := range frames {
		f := &frames[i]
		pos := f.Position()
		if pos.Filename == "" {
			continue // a native function
		}
		if pos.Line > s.lines {
			continue // the wrapper's call
		}
		line, col := unwrapPos(pos.Line, pos.Column)
		fn := f.FuncName()
		loc := s.name + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
		if fn == "" || fn == "<anonymous>" {
			b.WriteString("    at " + loc + "\n")
		} else {
			b.WriteString("    at " + fn + " (" + loc + ")\n")
		}
		if b.Len() > maxStack {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// watch starts the run's watchdog: it interrupts the VM when the run
// outlives lim.Time, allocates more than lim.Alloc, or ctx ends. It is
// timers, not a goroutine: most runs last tens of microseconds, and a
// goroutine per run cost them a scheduling round trip each. The returned
// stop disarms it; no interrupt reaches the VM after stop returns (the
// realm goes on to the next run).
func (sb *sandbox) watch(ctx context.Context, lim Limits) (stop func()) {
	var (
		mu      sync.Mutex
		done    bool
		sampler *time.Timer
	)
	fire := func(reason stopReason) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			done = true
			sb.stop(reason)
		}
	}
	deadline := time.AfterFunc(lim.Time, func() { fire(stopTimeout) })
	stopCtx := context.AfterFunc(ctx, func() { fire(stopContext) })
	if lim.Alloc > 0 {
		sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(sample)
		base := sample[0].Value.Uint64()
		check := func() {
			// One callback at a time: the next is armed below.
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64()-base > uint64(lim.Alloc) {
				fire(stopAlloc)
				return
			}
			mu.Lock()
			if !done {
				sampler.Reset(time.Millisecond)
			}
			mu.Unlock()
		}
		mu.Lock()
		sampler = time.AfterFunc(time.Millisecond, check)
		mu.Unlock()
	}
	return func() {
		mu.Lock()
		done = true
		mu.Unlock()
		deadline.Stop()
		stopCtx()
		if sampler != nil {
			sampler.Stop()
		}
	}
}

// stop records why the watchdog stops the run, then interrupts it.
func (sb *sandbox) stop(reason stopReason) {
	sb.reason.Store(uint32(reason))
	sb.expired.Store(true)
	sb.rt.Interrupt(reason)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	i := n
	for i > 0 && i > n-4 && !isRuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// jsString converts what get returns to a string, "" for undefined or
// null. It may run script code (a getter, a toString), so it is called
// while the watchdog runs; a throw or an interrupt there gives "".
func (sb *sandbox) jsString(get func() goja.Value) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	v := get()
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return ""
	}
	return clip(v.String(), maxMessage)
}
