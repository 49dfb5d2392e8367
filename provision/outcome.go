package provision

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// Fault codes a run records (GenieACS's where it has one). A CPE's own
// fault is "cwmp.<code>" (CPEFaultCode).
const (
	FaultInvalidResponse = "invalid_response"
	FaultTooManyCommits  = "too_many_commits"
	FaultTooManyRPCs     = "too_many_rpcs"
	FaultFileNotFound    = "file_not_found"
)

// CPEFaultCode is the channel fault code of a CWMP fault code, as
// GenieACS writes it ("cwmp.9002").
func CPEFaultCode(code uint32) string { return "cwmp." + strconv.FormatUint(uint64(code), 10) }

// Fault is why a channel's provisions stopped in this run. A faulted
// channel's declarations are dropped for the rest of the run; the other
// channels go on.
type Fault struct {
	Code    string
	Message string
	// Detail carries per-parameter SetParameterValues faults: name →
	// "code message".
	Detail map[string]string
}

// Warning is something a declaration asked for that cannot be done and is
// left undone without faulting its channel (GenieACS does it silently).
type Warning struct {
	Channel string
	Path    string
	Message string
}

// DownloadRequest is one Download a run sent and the CPE accepted.
type DownloadRequest struct {
	Channel        string
	CommandKey     string
	FileType       string
	FileName       string
	TargetFileName string
	// Status is the DownloadResponse status: 1 means TransferComplete
	// will follow, in this session or a later one.
	Status int
}

// Outcome is what a run did and what the caller must record.
type Outcome struct {
	// Channels are the run's channels in order of first use. Those not in
	// Faults completed (a task channel: the task is done).
	Channels []string
	// Tags are the tag changes to store: true adds, false removes.
	Tags map[string]bool
	// Faults are the faulted channels.
	Faults map[string]Fault
	// Warnings are declarations left undone without a fault.
	Warnings []Warning
	// Changed are the parameter values the CPE accepted.
	Changed []cwmp.ParameterValue
	// Added and Deleted are the instances created and removed.
	Added, Deleted []string
	// Reboot and FactoryReset are set once the CPE accepted the request.
	Reboot, FactoryReset bool
	// Downloads are the downloads the CPE accepted.
	Downloads []DownloadRequest
	// RPCs counts the answers received.
	RPCs int
}

// Outcome returns the run's outcome so far; complete once Next reports done.
func (r *Run) Outcome() *Outcome { return &r.out }

// rpcInfo is what a run remembers of a request it planned.
type rpcInfo struct {
	chans uint64
	// terms are an AddObject's alias values, set on the new instance.
	terms []AliasTerm
	key   string // the AddObject's declaration key
	dl    *DownloadRequest
	// strict: a 9005 fault is the declaration's fault, not a stale cache
	// (the names were never in the tree).
	strict bool
	// names are a SetParameterValues' channels per parameter: a fault
	// that names parameters faults only the channels that declared them.
	names map[string]uint64
}

// created is an instance this run added whose alias keys are not yet set.
type created struct {
	path  string
	key   string
	terms []AliasTerm
	chans uint64
}

// Answer reports the CPE's answer to a request Next returned, at time at
// (clamped to the run's start), and applies it to the tree: the values,
// names and instances learnt or changed. A CWMP fault faults the channels
// the request served, except fault 9005 (invalid parameter name) on a
// name the cache believed in, which only corrects the cache, as GenieACS
// does, so the next plan rediscovers that part of the tree. Errors wrap
// ErrUnknownRequest.
func (r *Run) Answer(t MutableTree, a *cwmp.Answer, at time.Time) error {
	if a == nil {
		return fmt.Errorf("%w: nil answer", ErrUnknownRequest)
	}
	info, ok := r.inflight[a.Request]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownRequest, describe(a.Request))
	}
	delete(r.inflight, a.Request)
	r.rpcs++
	r.out.RPCs++
	if at.Before(r.opts.Now) {
		at = r.opts.Now
	}
	if f, ok := a.Response.(*cwmp.Fault); ok {
		r.answerFault(t, info, a.Request, f)
		return nil
	}
	if a.Mismatch || a.Response == nil || a.Response.Method() != a.Request.Method()+"Response" {
		got := "nothing"
		if a.Response != nil {
			got = a.Response.Method()
		}
		r.fault(info.chans, Fault{Code: FaultInvalidResponse,
			Message: fmt.Sprintf("expected %sResponse, got %s", a.Request.Method(), got)})
		return nil
	}
	if err := ApplyResponse(t, a.Request, a.Response, at); err != nil {
		r.fault(info.chans, Fault{Code: FaultInvalidResponse, Message: err.Error()})
		return nil
	}
	switch req := a.Request.(type) {
	case *cwmp.SetParameterValues:
		r.out.Changed = append(r.out.Changed, req.ParameterList...)
	case *cwmp.AddObject:
		resp := a.Response.(*cwmp.AddObjectResponse)
		inst := req.ObjectName + strconv.FormatUint(uint64(resp.InstanceNumber), 10) + "."
		r.out.Added = append(r.out.Added, inst)
		r.objects[info.key+"\x00"+req.ObjectName]++
		if len(info.terms) > 0 {
			r.created[inst] = &created{path: inst, key: info.key, terms: info.terms, chans: info.chans}
		}
	case *cwmp.DeleteObject:
		r.out.Deleted = append(r.out.Deleted, req.ObjectName)
		r.deleted[req.ObjectName] = true
		delete(r.created, req.ObjectName)
	case *cwmp.Download:
		dl := *info.dl
		dl.Status = a.Response.(*cwmp.DownloadResponse).Status
		ApplyDownload(t, dl.FileType, dl.FileName, dl.TargetFileName, at)
		r.out.Downloads = append(r.out.Downloads, dl)
	case *cwmp.Reboot:
		r.out.Reboot = true
	case *cwmp.FactoryReset:
		r.out.FactoryReset = true
	}
	return nil
}

func (r *Run) answerFault(t MutableTree, info *rpcInfo, req cwmp.Message, f *cwmp.Fault) {
	if gpv, ok := req.(*cwmp.GetParameterValues); ok && len(gpv.ParameterNames) > SmallBatchSize &&
		(f.Code == cwmp.FaultInternalError || f.Code == cwmp.FaultResourcesExceeded) {
		// The reply did not fit the CPE: the names are still wanted and
		// are planned again in small batches; nothing faults. (Once
		// small, no batch this large is planned again: no loop.)
		r.small = true
		return
	}
	if gpv, ok := req.(*cwmp.GetParameterValues); ok && f.Code == cwmp.FaultInvalidParameterName && len(gpv.ParameterNames) > 1 {
		for _, n := range gpv.ParameterNames {
			r.suspect[n] = true
		}
	}
	if !info.strict && ApplyFault(t, req, f) {
		return
	}
	// The CPE's words may quote a secret value it refused; they are kept
	// and shown, the secret is not.
	var secrets []string
	if spv, ok := req.(*cwmp.SetParameterValues); ok {
		for _, pv := range spv.ParameterList {
			if fleet.IsSecretParameter(pv.Name) {
				secrets = append(secrets, pv.Value)
			}
		}
	}
	flt := Fault{Code: CPEFaultCode(f.Code), Message: fleet.HideSecrets(f.String, secrets...)}
	chans := info.chans
	if len(f.SetParameterValuesFaults) > 0 {
		flt.Detail = make(map[string]string, len(f.SetParameterValuesFaults))
		var named uint64
		for _, pf := range f.SetParameterValuesFaults {
			flt.Detail[pf.ParameterName] = strconv.FormatUint(uint64(pf.FaultCode), 10) + " " + fleet.HideSecrets(pf.FaultString, secrets...)
			named |= info.names[pf.ParameterName]
		}
		// The CPE rejects an SPV whole: the channels whose parameters it
		// did not fault are planned again without the faulted ones (GenieACS
		// faults every channel of the RPC).
		if named != 0 {
			chans = named
		}
	}
	r.fault(chans, flt)
}

// fault records f on every channel of chans not yet faulted.
func (r *Run) fault(chans uint64, f Fault) {
	for i, name := range r.channels {
		bit := uint64(1) << i
		if chans&bit == 0 || r.faulted&bit != 0 {
			continue
		}
		r.faulted |= bit
		r.out.Faults[name] = f
	}
}

// warn records a warning once per channel, path and message.
func (r *Run) warn(d *decl, path, msg string) {
	k := d.key + "\x00" + path + "\x00" + msg
	if r.warned[k] {
		return
	}
	r.warned[k] = true
	r.out.Warnings = append(r.out.Warnings, Warning{Channel: r.channels[d.ch], Path: path, Message: msg})
}

// missing reports a declaration whose literal path does not exist on the
// CPE. A task asked for that parameter by name, so its channel faults as
// the CPE would have answered (9005); a preset only gets a warning, as
// GenieACS silently does nothing.
func (r *Run) missing(d *decl, path string) {
	if strings.HasPrefix(r.channels[d.ch], "task_") {
		r.fault(uint64(1)<<d.ch, Fault{Code: CPEFaultCode(cwmp.FaultInvalidParameterName),
			Message: "Invalid parameter name: " + path})
		return
	}
	r.warn(d, path, "no such parameter on the device")
}

// settleTags records, as the outcome's tag changes, the declared tags the
// device's tree does not already agree with.
func (r *Run) settleTags(t Tree) {
	clear(r.out.Tags)
	for name, want := range r.tagWant {
		e, ok := t.Get(RootTags + "." + name)
		have := ok && !e.Object && e.Value != "" && canonical("xsd:boolean", e.Value) != "false"
		if have != want {
			r.out.Tags[name] = want
		}
	}
}

func describe(m cwmp.Message) string {
	if m == nil {
		return "nil request"
	}
	return m.Method()
}

// sortedKeys returns a map's keys in order, for deterministic RPCs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
