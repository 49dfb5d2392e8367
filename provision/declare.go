package provision

import (
	"errors"
	"fmt"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Sentinel errors callers branch on.
var (
	// ErrTooMany means a run refused a declaration, clear or channel
	// beyond its bounds (MaxDeclarations, MaxChannels).
	ErrTooMany = errors.New("provision: too many declarations")
	// ErrUnsupported means a declaration asks for something the engine
	// does not do yet (virtual parameters, attributes other than value).
	ErrUnsupported = errors.New("provision: unsupported declaration")
	// ErrBadArguments means a built-in provision got arguments it cannot
	// use (GenieACS: "Invalid arguments").
	ErrBadArguments = errors.New("provision: invalid arguments")
	// ErrUnknownProvision means a provision name is not a built-in; the
	// caller may have a script of that name.
	ErrUnknownProvision = errors.New("provision: unknown provision")
	// ErrUnknownRequest means Answer got a request this run did not plan.
	ErrUnknownRequest = errors.New("provision: request not planned by this run")
)

// Bounds of one run.
const (
	// MaxDeclarations bounds the declarations and clears of one run.
	MaxDeclarations = 4096
	// MaxChannels bounds the channels of one run (a bit each in a mask).
	MaxChannels = 64
)

// Ever is the timestamp that asks for a node to be known at all, however
// long ago: GenieACS's 1 (one millisecond after the epoch).
var Ever = time.UnixMilli(1)

// Millis converts a GenieACS timestamp (milliseconds since the epoch, what
// a script's Date.now() returns) to a time; 0 is no requirement.
func Millis(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Timestamps says how fresh the cached data a declaration depends on must
// be: each non-zero field asks for that attribute to have been read from
// the CPE at or after the time ("refresh if older than T"). A time after
// the run's start counts as the start. GenieACS's declare(path,
// timestamps, values) takes {path, object, writable, value} the same way.
type Timestamps struct {
	// Path: the node's existence, and for a pattern the list of what it
	// matches. Zero means Ever: a declared path must be known.
	Path time.Time
	// Object: whether the node is an object (confirmed with its existence).
	Object time.Time
	// Writable: the writable flag (GetParameterNames).
	Writable time.Time
	// Value: the value (GetParameterValues).
	Value time.Time
}

// Value is a declared parameter value: GenieACS's value: v or [v, type].
// Type "" keeps the parameter's own type. Booleans, integers and
// dateTimes compare by meaning ("1" equals "true").
type Value struct {
	Value string
	Type  string
}

// Instances is a declared instance count: GenieACS's {path: N} (Min = Max
// = N) or {path: [min, max]}. It applies to a path whose last segment is a
// wildcard, an alias (new instances get the alias values) or an instance
// number (which can only be deleted).
type Instances struct {
	Min, Max int
}

// Count is the Instances of GenieACS's {path: n}.
func Count(n int) *Instances { return &Instances{Min: n, Max: n} }

// Values is the desired state a declaration asks for; nil fields ask for
// nothing. GenieACS's values also take writable, notification and
// accessList: writable only concerns virtual parameters and the
// attributes need Get/SetParameterAttributes, neither done yet
// (ErrUnsupported).
type Values struct {
	Value     *Value
	Instances *Instances
}

// DefaultBatchSize is Options.BatchSize's default: 256 names per
// GetParameterValues or SetParameterValues. A bootstrap refreshes a whole
// data model (TR-098 or TR-181 gateways: 150-300 parameters; bigger
// trees exist), and every round trip costs the CPE and the ACS a
// request, a planning pass and a store transaction; GenieACS's 32 makes
// a 250-parameter refresh eight of them, 128 two. The reply to 256 names
// is 30-45 KB, the size of the whole-tree GetParameterNames reply the
// CPE has just sent in the same session (the simulator's TR-098 gateway:
// 41 KB for 219 nodes); what chokes sloppy CPEs is a whole-tree partial
// path (hundreds of KB on a big tree), which the engine never asks.
// SmallBatchSize is the fallback for a CPE that faults or drops all the
// same.
const DefaultBatchSize = 256

// SmallBatchSize is the GetParameterValues batch after a CPE faulted a
// larger one with 9002 or 9004 (GenieACS's gpvBatchSize default).
const SmallBatchSize = 32

// Options configure a Run.
type Options struct {
	// Now is the session's start, the time declarations are clamped to
	// (zero: time.Now()). It is truncated to the millisecond.
	Now time.Time
	// DeviceID spreads refresh boundaries over devices (as GenieACS's
	// scheduling variance does), so a fleet does not refresh in step.
	DeviceID string
	// BatchSize bounds the names of one GetParameterValues or
	// SetParameterValues (default DefaultBatchSize). A CPE that answers
	// a GetParameterValues of more than SmallBatchSize names with fault
	// 9002 or 9004 (internal error, resources exceeded: its reply did not
	// fit) is asked again, for the rest of the run, SmallBatchSize names
	// at a time.
	BatchSize int
	// MaxIterations bounds, per channel, the rounds of RPCs (calls of
	// Next that plan some) sent for the channel (default 64); a channel
	// that has not settled by then faults FaultTooManyCommits.
	MaxIterations int
	// MaxRPCs bounds the RPCs answered in a run (default 255, GenieACS's
	// limit); beyond it the run faults "too_many_rpcs".
	MaxRPCs int
	// SubtreeDepth is the shallowest object whose whole subtree one
	// GetParameterNames (NextLevel false) may fetch when a declaration
	// needs more than its children; shallower objects ("Device.", the
	// root) are listed one level at a time. Default 2.
	SubtreeDepth int
	// SkipWritableCheck sets values and adds or deletes instances without
	// first learning the writable flags (GenieACS's cwmp.skipWritableCheck).
	SkipWritableCheck bool
	// ParameterKey is sent with SetParameterValues, AddObject and DeleteObject.
	ParameterKey string
	// Files resolves a download's file name to the URL and size the
	// Download RPC carries. Nil, or an error, faults the download's
	// channel with FaultFileNotFound.
	Files func(fileName string) (url string, size uint32, err error)
	// VirtualParameters are the names of the virtual parameters the
	// caller can compute (sorted): what VirtualParameters.* selects, and
	// a declaration of any other name is a warning.
	VirtualParameters []string
}

func (o *Options) defaults() {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.Truncate(time.Millisecond)
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxIterations <= 0 {
		o.MaxIterations = 64
	}
	if o.MaxRPCs <= 0 {
		o.MaxRPCs = 255
	}
	if o.SubtreeDepth <= 0 {
		o.SubtreeDepth = 2
	}
}

// Run is one provisioning run in one CWMP session: the declarations of
// every channel (presets, tasks), planned against the device's tree until
// nothing remains to do. It is pure: it sends nothing and stores nothing;
// the caller sends what Next returns, reports the answers with Answer and
// keeps the tree. Not safe for concurrent use.
type Run struct {
	opts     Options
	channels []string
	chanIdx  map[string]int
	faulted  uint64
	scopes   int // the last Collector scope handed out

	decls  []*decl
	clears []clearDecl
	// created are instances this run added whose alias keys are still to
	// be set, by instance path.
	created map[string]*created
	// frozen holds the targets of relative instance counts ("+1"), fixed
	// when first known so that a replay after the AddObject does not add
	// again; keyed by channel, path and table.
	frozen map[string]int
	// objects counts the AddObjects sent per declaration and table, and
	// deleted the instances deleted: a CPE whose instances do not stay
	// created or deleted must not make a run add or delete forever.
	objects  map[string]int
	deleted  map[string]bool
	tagWant  map[string]bool
	inflight map[cwmp.Message]*rpcInfo
	// gpvBuf is the last plan's list and index of values to read,
	// emptied and kept for the next, and for the next run once this one
	// is done (gpvBufs): a bootstrap's plans each need a few hundred, and
	// the index grown anew each time was most of a plan's garbage.
	gpvBuf *gpvSet
	// suspect are names in a GetParameterValues the CPE refused with
	// 9005: read one at a time from then on.
	suspect map[string]bool
	// small: the CPE could not answer a large GetParameterValues; the
	// run's batches are SmallBatchSize names from then on.
	small bool

	// vset records the virtual parameters whose script ran with a value
	// to set ("<name>\x00<value>"): see SetVirtual.
	vset map[string]bool

	rounds [MaxChannels]int // rounds of RPCs sent for each channel
	rpcs   int
	cmdSeq int
	done   bool
	warned map[string]bool
	out    Outcome
}

// NewRun starts a run.
func NewRun(opts Options) *Run {
	opts.defaults()
	return &Run{
		opts:     opts,
		chanIdx:  map[string]int{},
		created:  map[string]*created{},
		frozen:   map[string]int{},
		objects:  map[string]int{},
		deleted:  map[string]bool{},
		tagWant:  map[string]bool{},
		inflight: map[cwmp.Message]*rpcInfo{},
		suspect:  map[string]bool{},
		warned:   map[string]bool{},
		out:      Outcome{Tags: map[string]bool{}, Faults: map[string]Fault{}},
	}
}

// Now is the run's clock: its start, truncated to the millisecond.
func (r *Run) Now() time.Time { return r.opts.Now }

// Small reports whether the CPE faulted a GetParameterValues of more than
// SmallBatchSize names with 9002 or 9004, so that the run fell back to
// SmallBatchSize: the caller may remember it for the device's next runs.
func (r *Run) Small() bool { return r.small }

// Collector declares on one channel of a run. A script sandbox binds its
// declare() and clear() to one; built-in provisions use Provision.
type Collector struct {
	r  *Run
	ch int
	// scope tags what is declared through the collector, so that Retract
	// can withdraw it; 0 for a channel's own collector.
	scope int
}

// Channel returns the collector of a channel ("" is GenieACS's default
// channel; tasks use "task_<id>"). Errors wrap ErrTooMany.
func (r *Run) Channel(name string) (*Collector, error) {
	if i, ok := r.chanIdx[name]; ok {
		return &Collector{r: r, ch: i}, nil
	}
	if len(r.channels) == MaxChannels {
		return nil, fmt.Errorf("%w: more than %d channels", ErrTooMany, MaxChannels)
	}
	r.chanIdx[name] = len(r.channels)
	r.channels = append(r.channels, name)
	r.out.Channels = append(r.out.Channels, name)
	return &Collector{r: r, ch: len(r.channels) - 1}, nil
}

// Name is the collector's channel.
func (c *Collector) Name() string { return c.r.channels[c.ch] }

// declKind says what a declaration is about.
type declKind uint8

const (
	kParam    declKind = iota // a CPE parameter or object
	kTag                      // Tags.<name>
	kReboot                   // Reboot
	kReset                    // FactoryReset
	kDownload                 // Downloads.[...].Download
	kRead                     // a virtual node read: nothing to fetch
	kVirtual                  // VirtualParameters.<name>: its script computes or sets it (virtual.go)
)

type decl struct {
	kind  declKind
	ch    int
	scope int // the Collector scope that declared it
	path  Path
	canon string // path.String()
	key   string // channel and canonical path: identifies the declaration across replays
	ts    Timestamps
	// deep extends the declaration to everything below the matched
	// objects: refresh's "path.*.*.*…" to GenieACS's MAX_DEPTH.
	deep  bool
	value *Value
	inst  *Instances
	// rel is a relative count ("+1", "-1") when relative is set.
	rel      int
	relative bool
	// literal is the CWMP name of a path without patterns, "" otherwise.
	literal string
	// lits are the object forms ("A.", "A.B.", ...) of the path's
	// leading literal segments, so that planning does not build them.
	lits []string

	tag  string
	on   bool
	when time.Time // kReboot, kReset, kDownload: send unless done since
	dl   DownloadRequest
}

type clearDecl struct {
	path  Path
	at    time.Time
	scope int
}

// Declare adds a declaration: the node(s) at path must be known as fresh
// as ts says, and be as vals says. It is GenieACS's declare(path,
// timestamps, values); the values of the matched nodes are read from the
// tree (Match) rather than returned: a script sandbox reads them once
// ScopeSettled says they are final. Errors wrap ErrBadPath,
// ErrUnsupported or ErrTooMany.
func (c *Collector) Declare(path string, ts Timestamps, vals Values) error {
	p, canon, err := parsePath(path)
	if err != nil {
		return err
	}
	return c.declare(&decl{path: p, canon: canon, ts: ts, value: vals.Value, inst: vals.Instances})
}

func (c *Collector) declare(d *decl) error {
	r := c.r
	if len(r.decls)+len(r.clears) >= MaxDeclarations {
		return fmt.Errorf("%w: more than %d in a run", ErrTooMany, MaxDeclarations)
	}
	if err := c.prepare(d); err != nil {
		return err
	}
	r.decls = append(r.decls, d)
	// A run that was done takes new work: the edge may run a session's
	// tasks one after the other, then its presets, in one run.
	r.done = false
	return nil
}

// prepare normalises and checks a declaration of the collector's channel
// and scope without adding it.
func (c *Collector) prepare(d *decl) error {
	r := c.r
	d.ch = c.ch
	d.scope = c.scope
	if d.canon == "" {
		d.canon = d.path.String()
	}
	d.key = r.channels[c.ch] + "\x00" + d.canon
	now := r.opts.Now
	for _, t := range []*time.Time{&d.ts.Path, &d.ts.Object, &d.ts.Writable, &d.ts.Value} {
		if t.After(now) {
			*t = now
		}
	}
	if d.ts.Path.IsZero() {
		d.ts.Path = Ever
	}
	if d.ts.Object.After(d.ts.Path) {
		d.ts.Path = d.ts.Object
	}
	if d.inst != nil && (d.inst.Min < 0 || d.inst.Max < d.inst.Min) && !d.relative {
		return fmt.Errorf("%w: instance count [%d, %d]", ErrBadArguments, d.inst.Min, d.inst.Max)
	}
	if d.inst != nil && len(d.path.Segments) < 2 {
		return fmt.Errorf("%w: an instance count needs a table path, got %q", ErrBadArguments, d.path.String())
	}
	d.lits = literalPrefixes(d.path)
	if len(d.lits) == len(d.path.Segments) && len(d.lits) > 0 {
		d.literal = d.lits[len(d.lits)-1]
		if !d.path.Object {
			d.literal = d.literal[:len(d.literal)-1]
		}
	}
	if d.kind == kParam {
		if err := classify(d); err != nil {
			return err
		}
	}
	return nil
}

// classify recognises declarations on GenieACS's virtual roots.
func classify(d *decl) error {
	segs := d.path.Segments
	root := d.path.Root()
	if !isVirtual(root) {
		if len(segs) > 0 && segs[0].Kind != Literal && (d.value != nil || d.inst != nil) {
			return fmt.Errorf("%w: a pattern as the first segment of %q", ErrUnsupported, d.path.String())
		}
		return nil
	}
	if root == RootVirtualParameters {
		return classifyVirtual(d)
	}
	switch {
	case d.value == nil && d.inst == nil:
		d.kind = kRead
	case root == RootTags && len(segs) == 2 && segs[1].Kind == Literal && d.value != nil:
		on, err := cwmp.ParseBool(d.value.Value)
		if err != nil {
			return fmt.Errorf("%w: tag value %q is not a boolean", ErrBadArguments, clip(d.value.Value))
		}
		d.kind, d.tag, d.on = kTag, segs[1].Name, on
	case (root == RootReboot || root == RootFactoryReset) && len(segs) == 1 && d.value != nil:
		d.kind = kReboot
		if root == RootFactoryReset {
			d.kind = kReset
		}
		d.when = parseWhen(d.value.Value)
		if d.when.IsZero() {
			return fmt.Errorf("%w: %s value %q is not a time", ErrBadArguments, root, clip(d.value.Value))
		}
	case root == RootDownloads && len(segs) == 3 && segs[1].Kind == Alias &&
		segs[2].Kind == Literal && segs[2].Name == "Download" && d.value != nil:
		d.kind = kDownload
		d.when = parseWhen(d.value.Value)
		if d.when.IsZero() {
			return fmt.Errorf("%w: Download value %q is not a time", ErrBadArguments, clip(d.value.Value))
		}
		for _, t := range segs[1].Terms {
			switch t.Key {
			case "FileType":
				d.dl.FileType = t.Value
			case "FileName":
				d.dl.FileName = t.Value
			case "TargetFileName":
				d.dl.TargetFileName = t.Value
			}
		}
	case root == RootDownloads && len(segs) == 2 && segs[1].Kind == Alias && d.inst != nil && d.value == nil:
		// The Downloads.[...] instance itself: it is created when the
		// Download is sent.
		d.kind = kRead
	default:
		return fmt.Errorf("%w: setting %q", ErrUnsupported, d.path.String())
	}
	return nil
}

// parseWhen reads a declared Reboot/FactoryReset/Download time: an
// xsd:dateTime or milliseconds since the epoch.
func parseWhen(v string) time.Time {
	if t := parseStamp(v); !t.IsZero() {
		return t
	}
	var ms int64
	if _, err := fmt.Sscan(v, &ms); err == nil {
		return Millis(ms)
	}
	return time.Time{}
}

// Clear is GenieACS's clear(path, timestamp): what the cache learnt of
// path (and below) before at counts as never learnt, so declarations
// fetch it again. A pattern clears everything it may match, and one
// ending in a wildcard or alias also the list of its parent's children.
func (c *Collector) Clear(path string, at time.Time) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	r := c.r
	if len(r.decls)+len(r.clears) >= MaxDeclarations {
		return fmt.Errorf("%w: more than %d in a run", ErrTooMany, MaxDeclarations)
	}
	if at.After(r.opts.Now) {
		at = r.opts.Now
	}
	r.clears = append(r.clears, clearDecl{path: p, at: at, scope: c.scope})
	return nil
}

// Reset drops the run's declarations and clears, keeping what it has done
// (outcome, faults, counters, the targets of relative counts). A script
// sandbox withdraws one script's declarations with Collector.Retract
// instead.
func (r *Run) Reset() {
	r.decls = r.decls[:0]
	r.clears = r.clears[:0]
	clear(r.tagWant)
}

// literalPrefixes returns the object forms of p's leading literal
// segments ("A.", "A.B.", ...), all slices of one string.
func literalPrefixes(p Path) []string {
	n := 0
	for _, seg := range p.Segments {
		if seg.Kind != Literal {
			break
		}
		n++
	}
	if n == 0 {
		return nil
	}
	full := p.literalN(n)
	out := make([]string, n)
	end := 0
	for i := range n {
		end += len(p.Segments[i].Name) + 1
		out[i] = full[:end]
	}
	return out
}
