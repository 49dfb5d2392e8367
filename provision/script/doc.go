// Package script runs GenieACS provision and virtual parameter scripts
// (JavaScript, on goja) against the declarative engine of package
// provision. It is pure like the engine: no I/O, no storage, no clock of
// its own (Env.Now); the edge lends it the session's run and tree.
//
// # The sandbox
//
// A script is compiled once (Compile: syntax errors with line and column,
// sources up to MaxSource) and run in strict mode inside a function, as
// GenieACS runs it, with GenieACS's globals:
//
//   - declare(path, timestamps, values): a declaration on the script's
//     channel (provision.Collector.Declare). timestamps take path, object,
//     writable and value (ms; below 1 asks nothing); values take value (v
//     or [v, type]; a Date, or a number declared xsd:dateTime, is an
//     xsd:dateTime) and path (an instance count n or [min, max]). The
//     attributes notification and accessList, and setting writable, are
//     refused with an Error: the engine has no Get/SetParameterAttributes.
//     The result reads the cached tree (provision.Match): value ([v, type],
//     booleans and xsd:int/unsignedInt as numbers, dateTimes as ms),
//     writable and object (those declared), path, size (undefined when
//     nothing matches) and iteration over the matches, each with the same
//     attributes.
//   - clear(path, timestamp): provision.Collector.Clear (the optional
//     attribute list is ignored: the node is cleared whole).
//   - commit(): see below.
//   - log(msg): a line for the session's log (Env.Log).
//   - args: the preset's provision arguments; for a virtual parameter
//     GenieACS's [declared timestamps, declared values, current
//     timestamps, current values].
//   - ext(...): throws. Extensions (GenieACS's privileged Node.js modules)
//     are not part of the edge; a script that needs one faults.
//   - Date.now() and new Date() are the session's time in every run;
//     Date.now(interval[, variance]) and Date.now(cron[, variance]) are
//     GenieACS's per-device schedule points. Math.random is seedrandom's
//     ARC4 generator seeded with the device ID (Math.random.seed(s)
//     reseeds): a replay draws the same numbers, and a device the numbers
//     GenieACS would give it, so the "inform" provision keeps a migrated
//     device's connection request password.
//   - eval is not available (see Realms); new Function is.
//
// # Execution model: replay only after a read of unsettled data
//
// GenieACS runs a script until it reads a declare() result (or calls
// commit()), throws there, carries out every declaration made so far,
// then runs the script again from the start, skipping the first part with
// the data as of then; it repeats this at every read, after every round of
// RPCs, and once more at the end. Here a run goes as far as the cache
// allows:
//
//  1. The script runs from the start. Each declare() and clear() goes to
//     the run's collector at once (a Scope of the channel's collector, so
//     that a later run can replace them).
//  2. When the script reads a result (any attribute, size, path, or
//     iterates), the sandbox asks the engine whether the script's
//     declarations that concern that path (the read's own, and any that
//     may select the same nodes or nodes below: an instance count on the
//     table, a value on the parameter) are settled against the cache: no
//     listing or value to fetch, no value to set, no instance to add or
//     delete (provision.Collector.ScopeSettled). If so, the read returns
//     the cached data and the script goes on. If not, the run stops there
//     (an uncatchable interrupt: try/catch and finally do not run) with
//     status Blocked; the declarations made so far stay in the run.
//  3. commit() is the same check over every declaration of the script:
//     it returns if all are settled and stops the run otherwise, so that
//     what the script declared before it is carried out before what it
//     declares after (GenieACS's use of commit()).
//  4. The session goes on with the engine (provision.Run.Next, Answer):
//     the blocked script's declarations are planned with everything else.
//     Before each Next, Exec.Step checks the blocked script: once what it
//     stopped at is settled and none of its reads is still to be sent (a
//     write may be: the replay declares it again and it joins the same
//     SetParameterValues), it withdraws the previous run's declarations
//     (provision.Collector.Retract) and runs the script again from the
//     start (a replay). When Next has nothing left to do, a blocked
//     script is replayed whatever it waits for.
//  5. A run that reaches the end finishes the script. At most
//     Limits.Replays replays (default 8) follow a first run; beyond, the
//     channel faults too_many_commits.
//
// So a script replays only when it read something the cache did not yet
// hold as fresh as declared, or that its own declarations were about to
// change: never for its writes alone, never per RPC. On a warm cache a
// script runs once; reading a value the cache lacks costs one replay;
// reads that depend on one another cost one replay each. log() lines of a
// blocked run are dropped (its replay logs them again): the lines of the
// run that counts reach Env.Log, as GenieACS logs only at its last
// revision.
//
// # Faults
//
// A run that fails faults the script's channel (provision.Collector.Fault)
// and the session goes on with the other channels: an uncaught Error is
// "script.<name>" with its message and a detail of name, message and the
// JavaScript stack (lines and columns in the script), any other thrown
// value "script"; FaultTimeout when a run outlives Limits.Time; FaultLimit
// when it allocates past Limits.Alloc or declares more than
// Limits.Declarations; a bad virtual parameter return value "script".
//
// # Bounds: what is and is not bounded
//
// Bounded, per run: wall-clock time (Limits.Time, default 50 ms: the
// watchdog interrupts the VM, also on context cancellation); bytes
// allocated (Limits.Alloc, default 64 MiB, measured on the process's
// allocation counter every millisecond: a loop that doubles a string is
// stopped within a few doublings of the bound; allocations by the rest of
// the process during the run count too); declare() and clear() calls
// (Limits.Declarations, default 1024, and the engine's MaxDeclarations per
// session); log output (Limits.LogBytes, default 16 KiB); a declared value
// (Limits.Value, default 64 KiB); call depth (Limits.Stack); what a fault
// carries out (1 KiB message, 4 KiB stack). Per session: replays
// (Limits.Replays).
//
// goja interrupts between instructions only; a built-in runs to its end.
// The built-ins whose one call a script can make arbitrarily long or
// large are bounded where they start: String repeat, padStart, padEnd,
// concat, split and replace/replaceAll with a string replacement (and
// RegExp's Symbol.replace and Symbol.split) refuse to build more than
// Limits.String characters (default 4 Mi); the Array methods (but push,
// pop, at and the iterator makers), Array.from, Function.prototype.apply,
// Reflect.apply, Reflect.construct and String.raw refuse array-likes longer
// than Limits.Array (default 1 Mi, holes included); join and
// JSON.stringify count what they build (an array repeating one long
// string cannot multiply it); the iterators' next() stops once the run is
// past its limits (spread, new Set, Promise.all over a huge sparse
// array); typed arrays, ArrayBuffer, SharedArrayBuffer, DataView, Atomics,
// WeakRef and FinalizationRegistry are removed; every RegExp match is cut
// after 1 s (goja's backtracking engine cannot be interrupted), which is
// why Limits.Time is at most 1 s. Not bounded: the memory a single
// instruction allocates (a concatenation of two strings already near the
// allocation bound doubles it before the watchdog can act), built-ins not
// named here that turn out to loop over script-controlled sizes, and
// JSON.stringify with a property-list replacer (refused instead). The
// time limit is wall-clock: a loaded machine leaves a script less CPU.
//
// # Realms
//
// Preparing a goja runtime with the sandbox costs milliseconds (mostly
// freezing the built-ins, about 400 KiB each); a run costs tens of
// microseconds. Runtimes are therefore prepared once and lent to one run
// at a time (up to 64 kept: a busy edge runs scripts in many sessions at
// once; the watchdog is timers rather than a goroutine per run), and
// everything a run could write to is frozen: the global object, every built-in object
// and prototype (the hidden ones too), and the declare() results'
// prototype. A script cannot leave state for the next device: it can add
// no global, change no built-in (such writes throw in strict mode), and
// its own bindings live in its function. eval is removed because an
// indirect eval can declare a global lexical binding, which freezing does
// not prevent. A realm whose run the watchdog stopped is discarded. The
// consequence for scripts: they may not patch built-ins (polyfills).
// GenieACS lets them, in the one context all scripts of a process share,
// where the patch then reaches every later script and device.
//
// # Virtual parameters
//
// RunVirtualParameter and StartVirtualParameter run a virtual parameter
// script with the same sandbox and replay model; the return value is
// checked as GenieACS checks it ({writable, value: v or [v, type]}, the
// type inferred from a bare value; writable and value required when
// declared). The engine says when one is needed (provision.Run.Virtual)
// and the edge runs it.
package script
