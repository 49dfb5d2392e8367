package edge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// Diagnostics (fleet.IsDiagnostic) run across sessions:
//
//  1. A session sends one SetParameterValues: the test's parameters and
//     DiagnosticsState = "Requested". Once the CPE accepts it the task
//     stays running (stored so, under q/ like any open task) and the
//     device gets a key g/<device>/<task>: it awaits the CPE's
//     "8 DIAGNOSTICS COMPLETE".
//  2. The session opened by an Inform carrying that event reads the
//     test's object with one GetParameterValues and ends the task: done
//     with the results, or fault when DiagnosticsState is an "Error_...".
//  3. A task still awaiting after CacheOptions.DiagnosticsTimeout (from
//     the SetParameterValues) ends as fault diagnostics_timeout: the next
//     session of the device sees it, and the janitor's sweep
//     (Cache.ExpireDiagnostics, scanning g/ only) catches a device that
//     never informs again.
//
// A CPE runs one diagnostic at a time (setting another cancels the
// first), so a device's next diagnostic task stays pending while one
// awaits its event; other tasks run meanwhile.

// Fault codes of diagnostic tasks.
const (
	// FaultCodeDiagnosticsTimeout: no 8 DIAGNOSTICS COMPLETE in time.
	FaultCodeDiagnosticsTimeout = "diagnostics_timeout"
	// FaultCodeDiagnosticsError: the CPE ended the test in an
	// "Error_..." DiagnosticsState (the message names it), or with none.
	FaultCodeDiagnosticsError = "diagnostics_error"
	// FaultCodeDiagnosticsUnsupported: the device's data model has no
	// such test (NSLookup on TR-098).
	FaultCodeDiagnosticsUnsupported = "diagnostics_unsupported"
)

// DefaultDiagnosticsTimeout is CacheOptions.DiagnosticsTimeout's default:
// ping and traceroute take seconds, a TR-143 throughput test on a slow
// line can take minutes.
const DefaultDiagnosticsTimeout = 10 * time.Minute

// Defaults of the diagnostics' arguments, as ping(8) and traceroute(8)
// users expect them.
const (
	DefaultPingCount         = 4
	DefaultTraceRouteTries   = 3
	DefaultTraceRouteMaxHops = 30
)

// pAwait is the prefix of the diagnostics awaiting their event:
// g/<device>/<task ID>, empty value.
const pAwait = "g/"

// diagObject is the object a diagnostic kind runs on under root, and
// whether the model has it.
func diagObject(kind, root string) (string, bool) {
	tr181 := root == "Device."
	switch kind {
	case fleet.TaskPing:
		if tr181 {
			return "Device.IP.Diagnostics.IPPing.", true
		}
		return "InternetGatewayDevice.IPPingDiagnostics.", true
	case fleet.TaskTraceRoute:
		if tr181 {
			return "Device.IP.Diagnostics.TraceRoute.", true
		}
		return "InternetGatewayDevice.TraceRouteDiagnostics.", true
	case fleet.TaskDownloadDiagnostics:
		if tr181 {
			return "Device.IP.Diagnostics.DownloadDiagnostics.", true
		}
		return "InternetGatewayDevice.DownloadDiagnostics.", true
	case fleet.TaskUploadDiagnostics:
		if tr181 {
			return "Device.IP.Diagnostics.UploadDiagnostics.", true
		}
		return "InternetGatewayDevice.UploadDiagnostics.", true
	case fleet.TaskNSLookup:
		if tr181 {
			return "Device.DNS.Diagnostics.NSLookupDiagnostics.", true
		}
	}
	return "", false
}

// diagRequest is the SetParameterValues that starts the test of t on a
// device with root: its arguments, then DiagnosticsState = "Requested"
// (last, as TR-069 asks: the CPE starts the test with the values set in
// the same request).
func diagRequest(t *fleet.Task, root string) (*cwmp.SetParameterValues, *fleet.TaskFault) {
	obj, ok := diagObject(t.Name, root)
	if !ok {
		model := strings.TrimSuffix(root, ".")
		if model == "" {
			model = "unknown"
		}
		return nil, &fleet.TaskFault{Code: FaultCodeDiagnosticsUnsupported,
			Message: fmt.Sprintf("the device's data model (%s) has no %s diagnostic", model, t.Name)}
	}
	var pl []cwmp.ParameterValue
	str := func(n, v string) {
		pl = append(pl, cwmp.ParameterValue{Name: obj + n, Value: v, Type: cwmp.TypeString})
	}
	uint := func(n string, v uint32) {
		if v != 0 {
			pl = append(pl, cwmp.ParameterValue{Name: obj + n, Value: strconv.FormatUint(uint64(v), 10), Type: cwmp.TypeUnsignedInt})
		}
	}
	// Every argument is sent, defaults included: a CPE keeps the last
	// test's values, so an argument left out would be the previous
	// operator's.
	or := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	switch t.Name {
	case fleet.TaskPing:
		str("Host", t.Host)
		uint("NumberOfRepetitions", or(t.Count, DefaultPingCount))
	case fleet.TaskTraceRoute:
		str("Host", t.Host)
		uint("NumberOfTries", or(t.Count, DefaultTraceRouteTries))
		uint("MaxHopCount", or(t.MaxHopCount, DefaultTraceRouteMaxHops))
	case fleet.TaskNSLookup:
		str("HostName", t.Host)
		str("DNSServer", t.DNSServer) // "": the CPE's own resolver
		uint("NumberOfRepetitions", or(t.Count, 1))
	case fleet.TaskDownloadDiagnostics:
		str("DownloadURL", t.URL)
	case fleet.TaskUploadDiagnostics:
		str("UploadURL", t.URL)
		uint("TestFileLength", t.TestFileLength)
	}
	str("DiagnosticsState", "Requested")
	return &cwmp.SetParameterValues{ParameterList: pl, ParameterKey: key(&t.ParameterKey, t)}, nil
}

// parseDiagnostic turns the GetParameterValues answer for obj into the
// task's typed result.
func parseDiagnostic(kind, obj string, list []cwmp.ParameterValue) *fleet.Diagnostic {
	v := make(map[string]string, len(list))
	for _, pv := range list {
		if rest, ok := strings.CutPrefix(pv.Name, obj); ok {
			v[rest] = pv.Value
		}
	}
	u32 := func(n string) uint32 {
		x, _ := strconv.ParseUint(strings.TrimSpace(v[n]), 10, 32)
		return uint32(x)
	}
	u64 := func(n string) uint64 {
		x, _ := strconv.ParseUint(strings.TrimSpace(v[n]), 10, 64)
		return x
	}
	tm := func(n string) time.Time {
		x, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v[n]))
		if err != nil || x.Year() <= 1 {
			return time.Time{}
		}
		return x.UTC()
	}
	d := &fleet.Diagnostic{Kind: kind, State: v["DiagnosticsState"], Object: obj}
	switch kind {
	case fleet.TaskPing:
		d.Ping = &fleet.PingResult{Host: v["Host"], SuccessCount: u32("SuccessCount"), FailureCount: u32("FailureCount"),
			MinRTTms: u32("MinimumResponseTime"), AvgRTTms: u32("AverageResponseTime"), MaxRTTms: u32("MaximumResponseTime"),
			DataBlock: u32("DataBlockSize")}
	case fleet.TaskTraceRoute:
		r := &fleet.TraceRouteResult{Host: v["Host"], ResponseTimeMs: u32("ResponseTime"), Hops: []fleet.RouteHop{}}
		// TR-098 names a hop's fields HopHost, HopHostAddress, ...;
		// TR-181 Host, HostAddress, ...
		hop := func(i int, n string) string {
			p := "RouteHops." + strconv.Itoa(i) + "."
			if s, ok := v[p+"Hop"+n]; ok {
				return s
			}
			return v[p+n]
		}
		for i := 1; ; i++ {
			_, a := v["RouteHops."+strconv.Itoa(i)+".HopHost"]
			_, b := v["RouteHops."+strconv.Itoa(i)+".Host"]
			_, c := v["RouteHops."+strconv.Itoa(i)+".HostAddress"]
			_, e := v["RouteHops."+strconv.Itoa(i)+".HopHostAddress"]
			if !a && !b && !c && !e {
				break
			}
			h := fleet.RouteHop{Host: hop(i, "Host"), Address: hop(i, "HostAddress")}
			ec, _ := strconv.ParseUint(hop(i, "ErrorCode"), 10, 32)
			h.ErrorCode = uint32(ec)
			for f := range strings.SplitSeq(hop(i, "RTTimes"), ",") {
				if ms, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32); err == nil {
					h.RTTimesMs = append(h.RTTimesMs, uint32(ms))
				}
			}
			r.Hops = append(r.Hops, h)
		}
		d.TraceRoute = r
	case fleet.TaskDownloadDiagnostics, fleet.TaskUploadDiagnostics:
		r := &fleet.TransferResult{ROMTime: tm("ROMTime"), BOMTime: tm("BOMTime"), EOMTime: tm("EOMTime"),
			TCPOpenRequestTime: tm("TCPOpenRequestTime"), TCPOpenResponseTime: tm("TCPOpenResponseTime")}
		if kind == fleet.TaskDownloadDiagnostics {
			r.URL, r.TestBytes, r.TotalBytes = v["DownloadURL"], u64("TestBytesReceived"), u64("TotalBytesReceived")
		} else {
			r.URL, r.TestBytes, r.TotalBytes = v["UploadURL"], u64("TestFileLength"), u64("TotalBytesSent")
		}
		r.ThroughputBps = r.Throughput()
		d.Transfer = r
	case fleet.TaskNSLookup:
		r := &fleet.NSLookupResult{HostName: v["HostName"], SuccessCount: u32("SuccessCount"), Answers: []fleet.NSAnswer{}}
		for i := 1; ; i++ {
			p := "Result." + strconv.Itoa(i) + "."
			st, ok := v[p+"Status"]
			if !ok {
				break
			}
			a := fleet.NSAnswer{Status: st, AnswerType: v[p+"AnswerType"], HostNameReturned: v[p+"HostNameReturned"],
				DNSServerIP: v[p+"DNSServerIP"], ResponseTimeMs: u32(p + "ResponseTime")}
			for ip := range strings.SplitSeq(v[p+"IPAddresses"], ",") {
				if ip = strings.TrimSpace(ip); ip != "" {
					a.IPAddresses = append(a.IPAddresses, ip)
				}
			}
			r.Answers = append(r.Answers, a)
		}
		d.NSLookup = r
	}
	return d
}

// diagFault is the fault a finished test's state means, nil for success.
func diagFault(d *fleet.Diagnostic) *fleet.TaskFault {
	if fleet.DiagnosticSucceeded(d.State) {
		return nil
	}
	st := d.State
	if st == "" {
		st = "no DiagnosticsState"
	}
	return &fleet.TaskFault{Code: FaultCodeDiagnosticsError,
		Message: fmt.Sprintf("the CPE ended the %s diagnostic in state %s", d.Kind, st)}
}

// diagAwaiting handles a running diagnostic found in the device's open
// tasks: it returns the task, claimed, when this session is the one to
// read its results (the Inform carried 8 DIAGNOSTICS COMPLETE); ends it
// as diagnostics_timeout when overdue; otherwise notes that the device
// has a diagnostic under way and returns nil.
func (w *SessionWork) diagAwaiting(t *fleet.Task) *fleet.Task {
	now := w.meta.Now.UTC()
	overdue := now.After(t.Updated.Add(w.c.opts.DiagnosticsTimeout))
	if !overdue && !w.diagComplete {
		w.diagBusy = true
		return nil
	}
	if !w.c.claim(t.ID) {
		w.diagBusy = true
		return nil
	}
	w.claimed = append(w.claimed, t.ID)
	cur := new(fleet.Task)
	err := w.c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pTask+t.ID, cur) })
	if err != nil || cur.Status != fleet.StatusRunning {
		return nil
	}
	if overdue && !w.diagComplete {
		w.finish(cur, fleet.StatusFault, cur.Result, diagTimeoutFault(cur, w.c.opts.DiagnosticsTimeout))
		return nil
	}
	// This session reads the results; no other diagnostic starts in it.
	w.diagBusy = true
	return cur
}

func diagTimeoutFault(t *fleet.Task, d time.Duration) *fleet.TaskFault {
	return &fleet.TaskFault{Code: FaultCodeDiagnosticsTimeout,
		Message: fmt.Sprintf("the CPE accepted the %s diagnostic but sent no 8 DIAGNOSTICS COMPLETE within %s", t.Name, d)}
}

// diagAnswer records the CPE's answer to a diagnostic task's RPC (not a
// fault: Answer handled those): the SetParameterValues accepted (the task
// now awaits its event), or the results read.
func (w *SessionWork) diagAnswer(run *taskRun, a *cwmp.Answer) {
	t := run.t
	w.cur = nil
	switch r := a.Response.(type) {
	case *cwmp.SetParameterValuesResponse:
		if spv, ok := run.req.(*cwmp.SetParameterValues); ok {
			for _, pv := range spv.ParameterList {
				w.ops = append(w.ops, paramOp{path: pv.Name, setValue: true, value: pv.Value, typ: pv.Type})
			}
		}
		// Running, stored so by the session's commit, with the g/ key.
		w.diagBusy = true
		w.touch(t)
	case *cwmp.GetParameterValuesResponse:
		for _, pv := range r.ParameterList {
			w.ops = append(w.ops, paramOp{path: pv.Name, setValue: true, value: pv.Value, typ: pv.Type})
		}
		obj, _ := diagObject(t.Name, w.dev.Root)
		d := parseDiagnostic(t.Name, obj, r.ParameterList)
		if d.State == "Requested" {
			// The event came for a test other than ours (or too early):
			// keep waiting for the next one.
			w.touch(t)
			return
		}
		res := &fleet.TaskResult{Diagnostic: d}
		if f := diagFault(d); f != nil {
			w.finish(t, fleet.StatusFault, res, f)
			return
		}
		w.finish(t, fleet.StatusDone, res, nil)
	}
}

// ExpireDiagnostics ends as fault diagnostics_timeout the diagnostics
// that have awaited 8 DIAGNOSTICS COMPLETE longer than
// CacheOptions.DiagnosticsTimeout, for devices that never came back to
// have it noticed in a session; it returns how many it ended. It scans the
// awaiting diagnostics only (g/), so it is cheap to run every second.
func (c *Cache) ExpireDiagnostics(now time.Time) (int, error) {
	type due struct{ dev, id string }
	var candidates []due
	err := c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pAwait)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			dev, id, ok := strings.Cut(string(it.Item().Key()[len(pAwait):]), "/")
			if !ok {
				continue
			}
			var t fleet.Task
			if err := getRecord(txn, pTask+id, &t); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if t.Status == fleet.StatusRunning && now.After(t.Updated.Add(c.opts.DiagnosticsTimeout)) {
				candidates = append(candidates, due{dev, id})
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire diagnostics: %w", err)
	}
	n := 0
	for _, d := range candidates {
		if !c.claim(d.id) {
			continue // a session has it: it decides
		}
		var ended *fleet.Task
		err := c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
			ended = nil
			t := new(fleet.Task)
			if err := getRecord(txn, pTask+d.id, t); err != nil {
				if errors.Is(err, ErrNotFound) {
					return txn.Delete([]byte(pAwait + d.dev + "/" + d.id))
				}
				return err
			}
			if t.Status != fleet.StatusRunning {
				return nil
			}
			t.Status, t.Fault, t.Updated = fleet.StatusFault, diagTimeoutFault(t, c.opts.DiagnosticsTimeout), now.UTC()
			ended = t
			return stageFinal(txn, ob, t)
		})
		c.release([]string{d.id})
		if err != nil {
			return n, fmt.Errorf("expire diagnostic %s of %s: %w", d.id, d.dev, err)
		}
		if ended != nil {
			n++
			c.notify(ended.ID)
			c.taskFinal(ended)
		}
	}
	return n, nil
}

// setAwait keeps a diagnostic task's g/ key in step with its status: set
// while it runs (awaits its event), gone otherwise.
func setAwait(txn *badger.Txn, t *fleet.Task) error {
	k := []byte(pAwait + t.Device + "/" + t.ID)
	if t.Status == fleet.StatusRunning {
		return txn.Set(k, nil)
	}
	return txn.Delete(k)
}

// diagEnded notes that the device's diagnostic under way ended in this
// session: the diagnostics deferred behind it may run now.
func (w *SessionWork) diagEnded() {
	w.diagBusy = false
	for _, id := range w.diagDeferred {
		delete(w.seen, id)
	}
	if len(w.diagDeferred) > 0 {
		w.tasksRead = false // nextTask reads them again
	}
	w.diagDeferred = nil
}
