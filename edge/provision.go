package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/expr"
	"github.com/edgeacs/edgeacs/provision/preset"
	"github.com/edgeacs/edgeacs/provision/script"
)

// Edge-side fault codes of preset channels (the engine's own are
// provision.Fault*: cwmp.<code>, too_many_commits, too_many_rpcs, ...).
const (
	// FaultCodeUnknownProvision: a preset names a provision that is
	// neither a built-in nor a stored provision script.
	FaultCodeUnknownProvision = "unknown_provision"
	// FaultCodeInvalidArguments: a built-in's arguments are unusable
	// (GenieACS: "Invalid arguments").
	FaultCodeInvalidArguments = "invalid_arguments"
	// FaultCodePresetLoop: presets kept changing the device without
	// settling (A sets X to 1, B sets it back).
	FaultCodePresetLoop = "preset_loop"
	// FaultCodeNotWritable: a value was declared for a virtual
	// parameter whose script says it is read-only.
	FaultCodeNotWritable = "not_writable"
)

// MaxPresetCycles bounds a session's preset cycles: after the matched
// presets have done their work, they are matched again (a precondition
// may hold now that did not), until a cycle changes nothing. It also
// bounds how often one parameter may be written by presets in a session.
// Beyond it the presets involved fault with preset_loop.
const MaxPresetCycles = 4

// prefetchChannel is the run channel that fetches what the candidates'
// preconditions read. Its name is no preset's (preset.Compile refuses
// control characters), and its faults are never recorded: a parameter it
// cannot read is NULL to the precondition.
const prefetchChannel = "\x00precondition"

// provisionCommandKeyHead starts the CommandKeys of the Downloads and
// Reboots the engine sends ("prov-<start>-<n>").
const provisionCommandKeyHead = "prov-"

// errBlobPending is the Download resolver's answer while a file's blob is
// still crossing the backhaul: the channel stops for this session without
// a stored fault, and the device is woken when the blob lands.
var errBlobPending = errors.New("the file is still being fetched from the core")

type provStage uint8

const (
	stagePrefetch provStage = iota // fetching what the preconditions read
	stageMain                      // running the matched presets' provisions
	stageDone
)

// provSession runs a session's presets after its tasks: GenieACS's preset
// matching (events, schedule, precondition, weight) and its built-in
// provisions, through one provision.Run planning against the device's
// cached tree. The session sends the RPCs it returns one at a time and
// reports each answer back. See DESIGN.md, "Provisioning".
type provSession struct {
	w    *SessionWork
	all  []*preset.Compiled
	tree *cacheTree
	run  *provision.Run
	now  time.Time // the session's start (InformMeta.Now)
	// started is when the session began on the wall clock: answers are
	// stamped now + time since started, a clock that tests can set.
	started time.Time
	// faulted are the channels with a stored fault whose retry is not
	// due: skipped. retrying are those with a fault whose retry is due:
	// they run, and their fault is cleared if they run clean. stopped are
	// the channels this session faulted itself.
	faulted  map[string]bool
	retrying map[string]DeviceFault
	stopped  map[string]provision.Fault

	stage  provStage
	cycle  int
	active []*preset.Compiled // matched and declared in this cycle
	// execs are the provision scripts of this cycle's matched presets,
	// stepped before every plan (see stepScripts).
	execs []*provExec
	// vparams are the virtual parameter scripts run in this session, by
	// name (the last run of each); vruns counts the runs started.
	vparams map[string]*vpExec
	vruns   map[string]int
	// changers are the presets matched in a cycle that changed the device.
	changers map[string]*preset.Compiled
	mark     int // changes() when the cycle started

	batch []cwmp.Message // planned, not sent yet
	sent  cwmp.Message   // sent, awaiting its answer
	// writes counts the presets' writes per parameter (the loop guard).
	writes map[string]int
	tags   int // tag changes applied
	ended  bool
	// newCRPass is the connection-request password made up for this
	// session (crPassword).
	newCRPass string
	// task, when set, is the task this run carries out instead of presets
	// (vtask.go): one declaration round, no preset cycles.
	task *fleet.Task
}

// startProvisioning prepares the session's presets, or returns nil when
// none can apply (no presets, none for these events and this time, every
// candidate's channel faulted): then the session costs nothing more. Task
// results so far are committed first, so the engine reads the tree they
// left.
func (w *SessionWork) startProvisioning() *provSession {
	all := w.c.compiledPresets()
	if len(all) == 0 {
		return nil
	}
	s := preset.Session{Events: w.dev.LastEvents, Now: w.meta.Now}
	if len(preset.Candidates(all, s)) == 0 {
		return nil
	}
	stored, err := w.c.faultedChannels(w.dev.ID)
	if err != nil {
		w.c.log.Error("presets skipped: cannot read the device's faults", "device", w.dev.ID, "err", err)
		return nil
	}
	// A faulted channel waits for its retry (GenieACS's exponential
	// back-off); once due, it runs with the others.
	faulted, retrying := map[string]bool{}, map[string]DeviceFault{}
	for ch, f := range stored {
		if w.meta.Now.Before(w.c.retryAt(f)) {
			faulted[ch] = true
		} else {
			retrying[ch] = f
		}
	}
	s.Faulted = func(ch string) bool { return faulted[ch] }
	if len(preset.Candidates(all, s)) == 0 {
		return nil
	}
	if err := w.flushOps(); err != nil {
		w.c.log.Error("presets skipped: cannot store the session's task results", "device", w.dev.ID, "err", err)
		return nil
	}
	p := &provSession{
		w:        w,
		all:      all,
		tree:     w.newTree(w.meta.Now.UTC()),
		now:      w.meta.Now.UTC(),
		started:  time.Now(),
		faulted:  faulted,
		retrying: retrying,
		stopped:  map[string]provision.Fault{},
		writes:   map[string]int{},
		changers: map[string]*preset.Compiled{},
		vruns:    map[string]int{},
	}
	p.tree.setSynth(w.dev)
	p.run = provision.NewRun(provision.Options{BatchSize: w.gpvBatch(w.c.opts.GPVBatchSize), Now: p.now, DeviceID: w.dev.ID, Files: w.provisionFile,
		VirtualParameters: w.c.virtualNames()})
	if paths := preset.Prefetch(all, s); len(paths) > 0 {
		col, _ := p.run.Channel(prefetchChannel)
		for _, path := range paths {
			// A path the engine cannot parse or a virtual one needs no
			// fetch: the precondition reads it as it is.
			_ = col.Declare(path, provision.Timestamps{Value: provision.Ever}, provision.Values{})
		}
		p.prefetchRefreshes(col, s)
	}
	return p
}

// prefetchRefreshes declares on the prefetch channel the refreshes the
// first cycle will declare whatever the prefetch reads: those of the
// candidates without a precondition whose arguments read no parameter
// (the default bootstrap preset's whole-tree refresh). Planned with the
// prefetch, the refresh's listing and reads cover the prefetch's, instead
// of the prefetch first listing and reading a few parameters the refresh
// then lists and reads again (two round trips of a bootstrap). A read
// only: if the preset does not run after all (a script faults its
// channel first), the values read are fresh, nothing else.
func (p *provSession) prefetchRefreshes(col *provision.Collector, s preset.Session) {
	env := p.env()
	for _, ps := range preset.Candidates(p.all, s) {
		if ps.Precondition != nil {
			continue
		}
	provisions:
		for _, pr := range ps.Provisions {
			if pr.Name != "refresh" {
				continue
			}
			for _, a := range pr.Args {
				if len(a.Paths()) > 0 {
					continue provisions
				}
			}
			vals := pr.Values(env)
			args := make([]any, len(vals))
			for i, v := range vals {
				args[i] = v.Any()
			}
			_ = col.Provision(pr.Name, args...)
		}
	}
}

// flushOps commits the parameter changes of the tasks run so far, so the
// provisioning engine, which reads the store, sees them.
func (w *SessionWork) flushOps() error {
	if len(w.ops) == 0 {
		return nil
	}
	now := w.meta.Now.UTC()
	err := w.c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		delta := &fleet.DeviceDelta{Device: w.dev.ID, Edge: w.c.opts.EdgeID}
		if err := w.c.storeOps(txn, w.dev.ID, w.ops, now, delta); err != nil {
			return err
		}
		if len(delta.Parameters) > 0 || len(delta.Removed) > 0 {
			if err := w.c.recordHistory(txn, delta, now); err != nil {
				return err
			}
			return ob.add(delta)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store task results of %s: %w", w.dev.ID, err)
	}
	w.ops, w.begun = nil, nil
	return nil
}

// newTree is a provisioning tree of the session's device. The first one
// starts from the tree BeginSession stored, when it decoded it and no
// write of the session's has changed it since: the engine's first look
// then costs no read transaction.
func (w *SessionWork) newTree(now time.Time) *cacheTree {
	t := newCacheTree(w.c, w.dev.ID, now, w.dev.RootListed, w.informed)
	if w.begun != nil {
		t.ps, t.loaded = w.begun, true
		w.begun = nil
	}
	return t
}

// next returns the next RPC of the session's presets, or nil when they
// are done.
func (p *provSession) next() cwmp.Message {
	if p.stage == stageDone {
		return nil
	}
	// Each pass sends an RPC or moves the run on (a cycle, a channel
	// stopped); MaxRPCs and the cycle bound keep the passes few.
	for range 4 * provision.MaxChannels {
		if len(p.batch) > 0 {
			m := p.batch[0]
			p.batch = p.batch[1:]
			if p.looping(m) {
				p.batch = nil
				p.declare()
				continue
			}
			p.sent = m
			return m
		}
		p.stepScripts(false)
		p.stepVirtual(false)
		msgs, done := p.run.Next(p.tree)
		if !done {
			p.batch = msgs
			continue
		}
		if p.scriptsPending() {
			// The engine is idle and a script waits: replay it now,
			// whatever it waits for (Exec bounds the replays).
			p.stepScripts(true)
			continue
		}
		if p.stepVirtual(true) {
			continue // a virtual parameter's script ran or waits: plan again
		}
		if !p.advance() {
			break
		}
	}
	p.stage = stageDone
	p.finish()
	return nil
}

// provExec is one provision script's execution in a cycle: the preset
// and provision that named it, for the log.
type provExec struct {
	x       *script.Exec
	preset  string
	name    string
	channel string
}

// stepScripts runs the cycle's scripts that are due: a first run, or a
// replay once what a blocked run read is settled (idle: the engine has
// nothing left to do, so replay the blocked ones now). Their
// declarations go to the run before it plans (GenieACS's commit, minus
// the replay per RPC: see provision/script).
func (p *provSession) stepScripts(idle bool) {
	for _, e := range p.execs {
		if _, err := e.x.Step(context.Background(), idle); err != nil {
			p.w.c.log.Warn("provision script not run", "device", p.w.dev.ID, "provision", e.name, "err", err)
		}
	}
}

// maxVirtualRuns bounds the runs of one virtual parameter's script in a
// session: a script that never returns what is declared must not run
// forever (GenieACS bounds it by its commit iterations).
const maxVirtualRuns = 4

// vpExec is one run of a virtual parameter's script in the session.
type vpExec struct {
	name     string
	x        *script.Exec
	want     provision.VirtualNeed
	ch       string
	recorded bool
	passed   bool // its channel's fault went to the channels that asked
}

// vpChannel is the run channel of a virtual parameter script's own
// declarations: no preset's (a control character), so its faults are
// not stored as such; they fault the channels that asked (FaultVirtual).
func vpChannel(name string) string { return "\x00vp:" + name }

// stepVirtual runs the virtual parameters the run's declarations need
// (provision.Run.Virtual: a read fresher than the tree holds, a value to
// set): each one's script, with GenieACS's arguments (what is declared,
// what the tree holds), its declarations on a channel of its own. A
// script that finished puts its value in the tree; one that failed
// faults the channels that asked. idle: the engine has nothing else to
// do, so blocked scripts replay now. It reports whether anything is
// still to run.
func (p *provSession) stepVirtual(idle bool) (pending bool) {
	needs := p.run.Virtual(p.tree)
	for _, need := range needs {
		if e := p.vparams[need.Name]; e != nil && !e.x.Done() {
			continue
		}
		if p.vruns[need.Name] >= maxVirtualRuns {
			p.run.FaultVirtual(need.Name, provision.Fault{Code: provision.FaultTooManyCommits,
				Message: fmt.Sprintf("virtual parameter %s: still not as declared after %d runs of its script", need.Name, maxVirtualRuns)})
			continue
		}
		p.startVirtual(need)
	}
	for _, name := range slices.Sorted(maps.Keys(p.vparams)) {
		e := p.vparams[name]
		if !e.x.Done() {
			if _, err := e.x.Step(context.Background(), idle); err != nil {
				p.w.c.log.Warn("virtual parameter script not run", "device", p.w.dev.ID, "name", name, "err", err)
			}
		}
		if e.x.Done() {
			p.recordVirtual(e)
		} else {
			pending = true
		}
	}
	return pending || len(p.run.Virtual(p.tree)) > 0
}

// startVirtual starts a run of a virtual parameter's script for need, or
// faults the channels that asked when there is no such script.
func (p *provSession) startVirtual(need provision.VirtualNeed) {
	p.vruns[need.Name]++
	s, found, err := p.w.c.virtualScript(need.Name)
	if !found || err != nil {
		msg := fmt.Sprintf("virtual parameter %s: no such script", need.Name)
		if err != nil {
			msg = fmt.Sprintf("virtual parameter %s: %v", need.Name, err)
		}
		p.run.FaultVirtual(need.Name, provision.Fault{Code: script.FaultScript, Message: msg})
		return
	}
	ch := vpChannel(need.Name)
	col, err := p.run.Channel(ch)
	if err != nil {
		p.run.FaultVirtual(need.Name, provision.Fault{Code: FaultCodeInvalidArguments, Message: err.Error()})
		return
	}
	args := script.VirtualArgs{Declared: script.VirtualAttributes{ValueTime: need.ValueTime, Value: need.Value}}
	if c := need.Current; c.Path != "" {
		args.Current.ValueTime = c.ValueTime
		if !c.ValueTime.IsZero() {
			args.Current.Value = &provision.Value{Value: c.Value, Type: c.Type}
		}
		if !c.WritableTime.IsZero() {
			w := c.Writable
			args.Current.WritableTime, args.Current.Writable = c.WritableTime, &w
		}
	}
	x, err := s.StartVirtualParameter(script.Env{Collector: col, Tree: p.tree, Now: p.run.Now(), DeviceID: p.w.dev.ID,
		Limits: p.w.c.opts.ScriptLimits,
		Log: func(msg string) {
			p.w.c.log.Info("virtual parameter script", "device", p.w.dev.ID, "name", need.Name, "msg", msg)
		}}, args)
	if err != nil {
		p.run.FaultVirtual(need.Name, provision.Fault{Code: script.FaultScript, Message: err.Error()})
		return
	}
	if p.vparams == nil {
		p.vparams = map[string]*vpExec{}
	}
	p.vparams[need.Name] = &vpExec{name: need.Name, x: x, want: need, ch: ch}
}

// recordVirtual settles a finished virtual parameter script, once: its
// value into the tree (read by what declared it, stored at End like a
// parameter), or its fault onto the channels that asked.
func (p *provSession) recordVirtual(e *vpExec) {
	if e.recorded {
		return
	}
	e.recorded = true
	if v, ok := e.x.Virtual(); ok {
		if v.Value != nil {
			provision.PutVirtualParameter(p.tree, e.name, *v.Value, v.Writable, p.clock())
		}
		p.run.SetVirtual(e.name, e.want.Value)
		if e.want.Value != nil && v.Writable != nil && !*v.Writable {
			// Asked to set a value, the script says the parameter is
			// read-only: what asked did not get what it declared, as a
			// CPE's 9008 says for a real parameter.
			p.run.FaultVirtual(e.name, provision.Fault{Code: FaultCodeNotWritable,
				Message: fmt.Sprintf("%s.%s is not writable (its script returned writable: false)", provision.RootVirtualParameters, e.name)})
		}
		return
	}
	f := e.x.Result().Fault
	if f == nil {
		if of, ok := p.run.Outcome().Faults[e.ch]; ok {
			f = &of
		} else {
			f = &provision.Fault{Code: script.FaultScript, Message: "virtual parameter " + e.name + " returned no value"}
		}
	}
	p.run.FaultVirtual(e.name, *f)
}

// virtualFaults passes on a fault of a virtual parameter script's own
// declarations that came after the script finished (the CPE refused the
// KeyPassphrase a "wifiPassword" script declared) to the channels that
// asked for the parameter: it would otherwise stay on the script's
// channel, which is no one's.
func (p *provSession) virtualFaults() {
	if len(p.vparams) == 0 {
		return
	}
	faults := p.run.Outcome().Faults
	for _, name := range slices.Sorted(maps.Keys(p.vparams)) {
		e := p.vparams[name]
		if f, ok := faults[e.ch]; ok && e.recorded && !e.passed {
			e.passed = true
			p.run.FaultVirtual(name, f)
			if e.want.Value != nil {
				// The value the script returned was not applied: the
				// tree keeps what it held before.
				if c := e.want.Current; c.Path != "" {
					p.tree.Put(c)
				} else {
					p.tree.Delete(provision.RootVirtualParameters + "." + name)
				}
			}
		}
	}
}

// scriptsPending reports whether a script of the cycle has yet to finish.
func (p *provSession) scriptsPending() bool {
	for _, e := range p.execs {
		if !e.x.Done() {
			return true
		}
	}
	return false
}

// answer applies the CPE's answer to the RPC next returned last.
func (p *provSession) answer(a *cwmp.Answer) {
	p.sent = nil
	if err := p.run.Answer(p.tree, a, p.clock()); err != nil {
		p.w.c.log.Warn("provisioning answer not applied", "device", p.w.dev.ID, "err", err)
		return
	}
	p.virtualFaults()
	switch a.Response.(type) {
	case *cwmp.RebootResponse, *cwmp.FactoryResetResponse:
		// The CPE acts once the session ends: nothing may follow.
		p.w.stop = true
	}
}

// advance moves on once the run has nothing left to do for what is
// declared: from the precondition prefetch to the first cycle, from one
// cycle to the next while the last changed the device. false: finished.
func (p *provSession) advance() bool {
	switch p.stage {
	case stagePrefetch:
		p.stage, p.cycle = stageMain, 1
		p.mark = p.changes()
		return p.declare()
	case stageMain:
		p.applyTags()
		if p.task != nil {
			return false
		}
		c := p.changes()
		if c == p.mark {
			return false
		}
		for _, ps := range p.active {
			p.changers[ps.Name] = ps
		}
		if p.cycle >= MaxPresetCycles {
			names := slices.Sorted(maps.Keys(p.changers))
			presets := make([]*preset.Compiled, len(names))
			for i, n := range names {
				presets[i] = p.changers[n]
			}
			p.loopFault(presets, "", fmt.Sprintf("still changing the device after %d preset cycles", MaxPresetCycles))
			return false
		}
		p.cycle++
		p.mark = c
		return p.declare()
	}
	return false
}

// clock is the time answers are stamped with.
func (p *provSession) clock() time.Time { return p.now.Add(time.Since(p.started)) }

// changes counts what the run has done to the device so far.
func (p *provSession) changes() int {
	out := p.run.Outcome()
	n := len(out.Changed) + len(out.Added) + len(out.Deleted) + len(out.Downloads) + p.tags
	if out.Reboot {
		n++
	}
	if out.FactoryReset {
		n++
	}
	return n
}

// isFaulted: stored fault, stopped by this session, or faulted by the run.
func (p *provSession) isFaulted(ch string) bool {
	if p.faulted[ch] {
		return true
	}
	if _, ok := p.stopped[ch]; ok {
		return true
	}
	_, ok := p.run.Outcome().Faults[ch]
	return ok
}

// declare matches the presets against the tree as it is now and declares
// the matched ones' provisions, one channel per preset channel; a channel
// whose provisions cannot be declared is stopped and the rest declared
// again without it. false: nothing matched.
func (p *provSession) declare() bool {
	env := p.env()
	for range provision.MaxChannels + 1 {
		matched := preset.Match(p.all, preset.Session{Events: p.w.dev.LastEvents, Now: p.now, Env: env, Faulted: p.isFaulted})
		p.active = matched
		p.run.Reset()
		p.execs = p.execs[:0]
		retry := false
		for _, g := range preset.Groups(matched) {
			if err := p.declareGroup(g, env); err != nil {
				p.stop(g.Channel, *err)
				retry = true
				break
			}
		}
		if !retry {
			return len(matched) > 0
		}
	}
	return false
}

func (p *provSession) declareGroup(g preset.Group, env expr.Env) *provision.Fault {
	col, err := p.run.Channel(g.Channel)
	if err != nil {
		return &provision.Fault{Code: FaultCodeInvalidArguments, Message: err.Error()}
	}
	for _, ps := range g.Presets {
		for _, pr := range ps.Provisions {
			vals := pr.Values(env)
			args := make([]any, len(vals))
			for i, v := range vals {
				args[i] = v.Any()
			}
			if !provision.Builtin(pr.Name) {
				if f := p.startScript(col, ps, pr.Name, args); f != nil {
					return f
				}
				continue
			}
			if err := col.Provision(pr.Name, args...); err != nil {
				return &provision.Fault{Code: FaultCodeInvalidArguments, Message: fmt.Sprintf("preset %q: %v", ps.Name, err)}
			}
		}
	}
	return nil
}

// startScript prepares the run of the provision script a preset names
// (built-ins win: a script cannot be stored under a built-in's name). It
// first runs at the next plan; its declarations go to the preset's
// channel, so its faults stop that channel only.
func (p *provSession) startScript(col *provision.Collector, ps *preset.Compiled, name string, args []any) *provision.Fault {
	s, found, err := p.w.c.provisionScript(name)
	switch {
	case !found:
		return &provision.Fault{Code: FaultCodeUnknownProvision,
			Message: fmt.Sprintf("preset %q: unknown provision %q: neither a built-in nor a stored provision script", ps.Name, name)}
	case err != nil:
		return &provision.Fault{Code: script.FaultScript, Message: fmt.Sprintf("preset %q: provision %q: %v", ps.Name, name, err)}
	}
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			args[i] = float64(t.UnixMilli()) // a Date's number, as a script reads times
		}
	}
	ch := col.Name()
	x, err := s.Start(script.Env{Collector: col, Tree: p.tree, Now: p.run.Now(), DeviceID: p.w.dev.ID, Args: args,
		Limits: p.w.c.opts.ScriptLimits,
		Log: func(msg string) {
			p.w.c.log.Info("provision script", "device", p.w.dev.ID, "channel", ch, "provision", name, "msg", msg)
		}})
	if err != nil {
		return &provision.Fault{Code: script.FaultScript, Message: fmt.Sprintf("preset %q: provision %q: %v", ps.Name, name, err)}
	}
	p.execs = append(p.execs, &provExec{x: x, preset: ps.Name, name: name, channel: ch})
	return nil
}

// stop faults a channel for this session (recorded at End).
func (p *provSession) stop(ch string, f provision.Fault) {
	if _, ok := p.stopped[ch]; !ok {
		p.stopped[ch] = f
	}
}

// looping is the loop guard on the writes the presets send: a parameter
// written more than MaxPresetCycles times in one session means presets
// that undo each other (the engine would alternate them until its
// MaxIterations). The presets that declare it fault with preset_loop and
// the batch is dropped; the caller declares the rest again.
func (p *provSession) looping(m cwmp.Message) bool {
	spv, ok := m.(*cwmp.SetParameterValues)
	if !ok {
		return false
	}
	var over []string
	for _, pv := range spv.ParameterList {
		p.writes[pv.Name]++
		if p.writes[pv.Name] > MaxPresetCycles {
			over = append(over, pv.Name)
		}
	}
	if len(over) == 0 {
		return false
	}
	slices.Sort(over)
	p.loopFault(presetsWriting(p.active, over), over[0],
		fmt.Sprintf("%s written more than %d times in one session", over[0], MaxPresetCycles))
	return true
}

// loopFault stops the channels of presets with a preset_loop fault naming
// them (all active presets when none is known to write param).
func (p *provSession) loopFault(presets []*preset.Compiled, param, why string) {
	if len(presets) == 0 {
		presets = p.active
	}
	names := make([]string, 0, len(presets))
	for _, ps := range presets {
		names = append(names, ps.Name)
	}
	f := provision.Fault{Code: FaultCodePresetLoop,
		Message: fmt.Sprintf("presets %s keep changing the device: %s", strings.Join(names, ", "), why),
		Detail:  map[string]string{"presets": strings.Join(names, ",")}}
	if param != "" {
		f.Detail["parameter"] = param
	}
	for _, ps := range presets {
		p.stop(ps.Channel, f)
	}
}

// presetsWriting returns the presets whose value or instances provisions
// name a path matching one of params (literal first arguments only).
func presetsWriting(presets []*preset.Compiled, params []string) []*preset.Compiled {
	var out []*preset.Compiled
	for _, ps := range presets {
	scan:
		for _, pr := range ps.Provisions {
			if (pr.Name != provision.ProvisionValue && pr.Name != provision.ProvisionInstances) || len(pr.Args) == 0 {
				continue
			}
			v, ok := pr.Args[0].Literal()
			if !ok {
				continue
			}
			s, _ := v.Any().(string)
			path, err := provision.ParsePath(s)
			if err != nil {
				continue
			}
			for _, name := range params {
				if pathMatches(path, name) {
					out = append(out, ps)
					break scan
				}
			}
		}
	}
	return out
}

// pathMatches reports whether a declared path may select the CWMP name (an
// alias is taken to match any instance).
func pathMatches(p provision.Path, name string) bool {
	segs := strings.Split(strings.TrimSuffix(name, "."), ".")
	if len(segs) != len(p.Segments) {
		return false
	}
	for i, s := range p.Segments {
		if s.Kind == provision.Literal && s.Name != segs[i] {
			return false
		}
	}
	return true
}

// applyTags stores the tag changes the run settled on.
func (p *provSession) applyTags() {
	tags := p.run.Outcome().Tags
	if len(tags) == 0 {
		return
	}
	p.tags += len(tags)
	provision.ApplyTags(p.tree, tags, p.clock())
	clear(tags)
}

// finish settles what the run left for End: tags, and the warnings
// logged. Idempotent.
func (p *provSession) finish() {
	if p.ended {
		return
	}
	p.ended = true
	p.applyTags()
	for _, wn := range p.run.Outcome().Warnings {
		if wn.Channel == prefetchChannel {
			continue
		}
		p.w.c.log.Debug("preset provision left undone", "device", p.w.dev.ID, "channel", wn.Channel, "path", wn.Path, "why", wn.Message)
	}
}

// faults returns the channel faults to record: the run's and the
// session's own, keyed by channel.
func (p *provSession) faults() map[string]provision.Fault {
	out := map[string]provision.Fault{}
	for ch, f := range p.run.Outcome().Faults {
		// The session's own channels (the precondition prefetch, virtual
		// parameter scripts, "\x00...") are no preset's: a virtual
		// parameter's fault reached the channels that asked for it.
		if strings.HasPrefix(ch, "\x00") || (f.Code == provision.FaultFileNotFound && f.Message == errBlobPending.Error()) {
			continue
		}
		out[ch] = f
	}
	for ch, f := range p.stopped {
		out[ch] = f
	}
	return out
}

// cleared returns the channels whose fault was due for a retry and that
// ran in this session without faulting: their faults are deleted at End.
func (p *provSession) cleared(faults map[string]provision.Fault) []string {
	if len(p.retrying) == 0 {
		return nil
	}
	ran := map[string]bool{}
	for _, ch := range p.run.Outcome().Channels {
		ran[ch] = true
	}
	var out []string
	for ch := range p.retrying {
		if _, again := faults[ch]; !again && ran[ch] {
			out = append(out, ch)
		}
	}
	slices.Sort(out)
	return out
}

// ChannelFaultID is the ID of a preset channel's fault, as GenieACS
// writes it: "<device>:<channel>".
func ChannelFaultID(deviceID, channel string) string { return deviceID + ":" + channel }

// env is the expression environment of the session's preconditions and
// provision arguments (see lookup).
func (p *provSession) env() expr.Env { return expr.Env{Lookup: p.lookup, Now: p.now} }

// lookup resolves a precondition's path: DeviceID.* from the Inform,
// Events.<code> (the time of the session's events, and of the last boot,
// bootstrap and inform known), Tags.<name> (true when set, from the
// tags presets set at this edge), anything else from the cached tree (the
// first parameter a pattern matches, as GenieACS takes it). A parameter
// whose value the cache does not know is NULL.
func (p *provSession) lookup(path string) (expr.Value, bool) {
	d := p.w.dev
	root, rest, _ := strings.Cut(path, ".")
	switch root {
	case provision.RootDeviceID:
		switch rest {
		case "ID":
			return expr.StringValue(d.ID), true
		case "Manufacturer":
			return expr.StringValue(d.Manufacturer), true
		case "OUI":
			return expr.StringValue(d.OUI), true
		case "ProductClass":
			return expr.StringValue(d.ProductClass), true
		case "SerialNumber":
			return expr.StringValue(d.SerialNumber), true
		case preset.CRPasswordPath[len(provision.RootDeviceID)+1:]:
			return p.crPassword()
		}
		return expr.Value{}, false
	case provision.RootEvents:
		for _, ev := range d.LastEvents {
			if preset.EventKey(ev) == rest {
				return expr.TimeValue(p.now), true
			}
		}
		var at time.Time
		switch rest {
		case "Inform":
			at = d.LastInform
		case preset.EventKey(cwmp.EventBoot):
			at = d.LastBoot
		case preset.EventKey(cwmp.EventBootstrap):
			at = d.LastBootstrap
		}
		if at.IsZero() {
			return expr.Value{}, false
		}
		return expr.TimeValue(at), true
	}
	var e provision.Entry
	found := false
	if strings.ContainsAny(path, "*[") {
		matches, err := provision.Match(p.tree, path)
		if err != nil {
			return expr.Value{}, false
		}
		for _, m := range matches {
			if !m.Object && !m.ValueTime.IsZero() {
				e, found = m, true
				break
			}
		}
	} else {
		e, found = p.tree.Get(path)
	}
	if !found || e.Object || e.ValueTime.IsZero() {
		return expr.Value{}, false
	}
	if root == provision.RootTags {
		return expr.BoolValue(true), true
	}
	return expr.FromCWMP(e.Value, e.Type), true
}

// crPassword is preset.CRPasswordPath: the connection-request password
// the edge knows for the device, or (unless ManualCRCredentials) a new
// random one, the same for the whole session. Once a preset has set it,
// End stores it in the device record (storeCRCredentials), where the
// Reacher and the next sessions find it. A CPE reads its password back
// as "", so the value the ACS set is the only copy.
func (p *provSession) crPassword() (expr.Value, bool) {
	if pw := p.w.dev.CRPassword; pw != "" {
		return expr.StringValue(pw), true
	}
	if p.newCRPass == "" {
		if p.w.c.opts.ManualCRCredentials {
			return expr.Value{}, false
		}
		var b [12]byte
		_, _ = rand.Read(b[:])
		p.newCRPass = hex.EncodeToString(b[:])
	}
	return expr.StringValue(p.newCRPass), true
}

// crUsername is the connection-request username the session's tree
// holds for the device, when the presets read or wrote it (the default
// inform preset declares it): End keeps it in the device record with the
// password, since the Inform does not carry it.
func (p *provSession) crUsername() (cwmp.ParameterValue, bool) {
	if p.w.dev.Root == "" {
		return cwmp.ParameterValue{}, false
	}
	name := p.w.dev.Root + crUserParam
	e, ok := p.tree.Get(name)
	if !ok || e.Object || e.ValueTime.IsZero() || e.Value == "" {
		return cwmp.ParameterValue{}, false
	}
	return cwmp.ParameterValue{Name: name, Value: e.Value, Type: e.Type}, true
}

// provisionFile resolves a download provision's file name to the URL
// and size of the Download RPC, as a download task's is (rpcFor).
func (w *SessionWork) provisionFile(name string) (string, uint32, error) {
	meta, err := w.c.FileMeta(name)
	if err != nil {
		return "", 0, fmt.Errorf("file %q is not in the edge's file store", name)
	}
	if w.meta.FilesBaseURL == "" {
		return "", 0, errors.New("the edge has no files URL to point the CPE at")
	}
	u := w.meta.FilesBaseURL + url.PathEscape(name)
	if w.meta.SignFileURLs {
		u += "?" + w.c.signedFileQuery(name, w.meta.Now.Add(w.c.opts.DownloadTimeout))
	}
	if fs := w.c.files.Load(); fs != nil && !fs.awaitBlob(meta, w.dev.ID) {
		return "", 0, errBlobPending
	}
	var size uint32
	if meta.Size >= 0 && meta.Size <= 1<<32-1 {
		size = uint32(meta.Size)
	}
	return u, size, nil
}
