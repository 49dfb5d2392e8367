package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// cpeMethods is what a device answers GetRPCMethods with: the methods it
// implements, not the ones it faults.
var cpeMethods = []string{
	cwmp.MethodGetRPCMethods, cwmp.MethodSetParameterValues, cwmp.MethodGetParameterValues,
	cwmp.MethodGetParameterNames, cwmp.MethodSetParameterAttributes, cwmp.MethodGetParameterAttributes,
	cwmp.MethodAddObject, cwmp.MethodDeleteObject, cwmp.MethodReboot, cwmp.MethodDownload,
	cwmp.MethodUpload, cwmp.MethodFactoryReset, cwmp.MethodScheduleInform,
	cwmp.MethodGetQueuedTransfers, cwmp.MethodGetAllQueuedTransfers, cwmp.MethodGetOptions,
}

// transfer is a Download or Upload accepted in a session and run after it.
type transfer struct {
	download bool
	req      cwmp.Download // Upload fields are copied into the same shape
}

// scheduled is a pending ScheduleInform.
type scheduled struct {
	at  time.Time
	key string
}

// Device is one simulated CPE. Its methods are safe for concurrent use.
type Device struct {
	f     *Fleet
	index int
	id    string
	token string

	wake   chan struct{} // connection request or active value change
	notify chan struct{}

	mu           sync.Mutex
	tree         *Tree
	events       []cwmp.Event
	retryCount   uint32
	pendingTC    []cwmp.TransferComplete
	transfers    []transfer
	schedule     []scheduled
	rebootKey    *string
	factoryReset bool
	offline      bool
	// diag is the diagnostic object a session asked to run ("" none);
	// noDiagComplete holds its 8 DIAGNOSTICS COMPLETE back (diag.go).
	diag           string
	noDiagComplete bool
}

// source is the address the device connects to a loopback ACS from
// (dialSource): its own, from its index, unless Config.SingleSource.
func (d *Device) source() net.IP {
	if !d.f.spread {
		return nil
	}
	return loopbackSource(d.index)
}

func newDevice(f *Fleet, m *Model, index int) *Device {
	d := &Device{f: f, index: index, wake: make(chan struct{}, 1), notify: make(chan struct{}, 1)}
	d.token = serialFor(m, f.cfg.Seed, index)
	crURL := ""
	if f.crAddr != "" {
		crURL = "http://" + f.crAddr + "/" + d.token
	}
	d.tree = NewTree(m, Identity{Seed: f.cfg.Seed, Index: index, ConnectionRequestURL: crURL})
	d.id, _ = fleet.DeviceID(m.OUI, m.ProductClass, d.tree.Serial())
	d.applyConfig()
	d.events = []cwmp.Event{{Code: cwmp.EventBootstrap}, {Code: cwmp.EventBoot}}
	if f.cfg.Booted {
		d.events = d.events[1:]
	}
	return d
}

// applyConfig writes the fleet configuration into the tree: what an
// installer would have provisioned before the first boot.
func (d *Device) applyConfig() {
	m := d.tree.m
	set := func(short, v string) {
		if g, ok := m.special[short]; ok {
			if i, ok := d.tree.lookup(m.gen[g].name); ok {
				d.tree.vals[i] = v
			}
		}
	}
	set("ManagementServer.URL", d.f.cfg.ACSURL)
	if d.f.cfg.Username != "" {
		set("ManagementServer.Username", d.f.cfg.Username)
		set("ManagementServer.Password", d.f.cfg.Password)
	}
	if d.f.cfg.InformInterval > 0 {
		secs := max(int64(d.f.cfg.InformInterval/time.Second), 1)
		set("ManagementServer.PeriodicInformInterval", strconv.FormatInt(secs, 10))
	}
	if udp := d.f.UDPConnectionRequestAddr(); udp != "" {
		set("ManagementServer.UDPConnectionRequestAddress", udp)
		set("ManagementServer.STUNEnable", "true")
	}
}

// ID returns the device ID as GenieACS builds it (OUI-ProductClass-Serial,
// percent-encoded).
func (d *Device) ID() string { return d.id }

// Index returns the device's index in the fleet.
func (d *Device) Index() int { return d.index }

// Serial returns the device's serial number.
func (d *Device) Serial() string { return d.tree.Serial() }

// FaultsDownloads reports whether the device fails its downloads at the
// fleet's current DownloadFaultRate.
func (d *Device) FaultsDownloads() bool {
	return d.f.downloadFaultPoint(d.tree.Serial()) < math.Float64frombits(d.f.dlFaultRate.Load())
}

// Model returns the device's data model name ("tr098", "tr181" or "voip").
func (d *Device) Model() string { return d.tree.m.Name }

// Root returns the device's root object ("InternetGatewayDevice." or "Device.").
func (d *Device) Root() string { return d.tree.m.Root }

// Get reads a parameter by full name (secrets included).
func (d *Device) Get(name string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tree.Get(name)
}

// special reads one of the model's well-known parameters by short name.
func (d *Device) special(short string) string {
	g, ok := d.tree.m.special[short]
	if !ok {
		return ""
	}
	v, _ := d.tree.Get(d.tree.m.gen[g].name)
	return v
}

// ConnectionRequestURL returns the URL the device reports for HTTP
// connection requests.
func (d *Device) ConnectionRequestURL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.special("ManagementServer.ConnectionRequestURL")
}

// connectionRequestCredentials returns ConnectionRequestUsername/Password.
func (d *Device) connectionRequestCredentials() (string, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.special("ManagementServer.ConnectionRequestUsername"), d.special("ManagementServer.ConnectionRequestPassword")
}

// SetLocal changes a parameter as the device itself would (bypassing the
// writable flag). If the parameter has active notification the device
// starts a session with 4 VALUE CHANGE; passive ones ride along with the
// next Inform.
func (d *Device) SetLocal(name, value string) error {
	d.mu.Lock()
	active, err := d.tree.SetLocal(name, value)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if active {
		select {
		case d.notify <- struct{}{}:
		default:
		}
	}
	return nil
}

// Wake makes the device start a session with 6 CONNECTION REQUEST, as a
// valid connection request does. During a session it queues one more.
func (d *Device) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// wakeOnline is Wake for a connection request: it queues the wake-up
// unless the device is rebooting and reports which. Checking offline and
// queueing under mu makes the pair atomic with goOffline's drain, so a
// request accepted (answered 200) after the reboot is never dropped.
func (d *Device) wakeOnline() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.offline {
		return false
	}
	d.Wake()
	return true
}

// Offline reports whether the device is rebooting.
func (d *Device) Offline() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.offline
}

// addEvent queues an event for the next Inform. Single events ("1 BOOT")
// are kept once; method events ("M Reboot") once per command key.
func (d *Device) addEvent(code, key string) {
	for _, e := range d.events {
		if e.Code == code && e.CommandKey == key {
			return
		}
	}
	d.events = append(d.events, cwmp.Event{Code: code, CommandKey: key})
}

func (d *Device) hasEvents() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events) > 0
}

// run is the device's life: sessions, waits, retries, reboots. It returns
// when ctx ends.
func (d *Device) run(ctx context.Context, startDelay time.Duration) {
	if !sleepCtx(ctx, startDelay) {
		return
	}
	// The device's own context: every exchange derives a few (the dial's
	// timeout, the cancellation of a blocked read, the client's deadline),
	// each registered with and removed from its parent under the
	// parent's lock. Derived from the fleet's directly, that one lock
	// was taken by every device of the process several times an
	// exchange, and in a storm's flood (25,000 devices a process
	// dialling) the waiters formed a convoy: the sessions already
	// admitted queued behind thousands of dials for 10-30 s, holding
	// the ACS's session slots while it sat idle.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(d.f.cfg.Seed), uint64(d.index)))
	nextPeriodic := d.periodicAfter(rng)
	for ctx.Err() == nil {
		if d.hasEvents() {
			var err error
			d.f.workers.run(func() { err = d.session(ctx) })
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				d.f.log.Debug("sim: session failed", "device", d.id, "err", err)
				d.mu.Lock()
				d.retryCount++
				n := d.retryCount
				// 6 CONNECTION REQUEST is not retried (REFERENCE.md §2.6).
				d.dropEvent(cwmp.EventConnectionRequest)
				d.mu.Unlock()
				wait := d.f.retryWait(n, rng)
				var busy *busyError
				if errors.As(err, &busy) && busy.after > 0 {
					// The ACS said when to come back (its jitter spreads
					// the fleet out): honour it rather than the back-off.
					wait = d.f.scaled(busy.after)
				}
				if !sleepCtx(ctx, wait) {
					return
				}
				continue
			}
			d.afterSession(ctx)
			nextPeriodic = d.periodicAfter(rng)
			continue
		}
		// Wait for the earlier of the periodic Inform and the first
		// ScheduleInform; a zero deadline means none. A deadline already
		// past (a ScheduleInform whose delay ran out during the session
		// that accepted it, or a periodic Inform due while a session ran)
		// fires at once: it must not be mistaken for "no deadline", which
		// would hold the Inform back until an unrelated wake-up.
		deadline := nextPeriodic
		if at, ok := d.nextScheduled(); ok && (deadline.IsZero() || at.Before(deadline)) {
			deadline = at
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !deadline.IsZero() {
			t = time.NewTimer(max(time.Until(deadline), 0))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
			d.mu.Lock()
			d.addEvent(cwmp.EventConnectionRequest, "")
			d.mu.Unlock()
		case <-d.notify:
			d.mu.Lock()
			d.addEvent(cwmp.EventValueChange, "")
			d.mu.Unlock()
		case now := <-timer:
			d.mu.Lock()
			fired := false
			for len(d.schedule) > 0 && !d.schedule[0].at.After(now) {
				d.addEvent(cwmp.EventScheduled, "")
				d.addEvent(cwmp.EventMScheduleInform, d.schedule[0].key)
				d.schedule = d.schedule[1:]
				fired = true
			}
			d.mu.Unlock()
			if !fired && !nextPeriodic.IsZero() && !now.Before(nextPeriodic) {
				d.mu.Lock()
				d.addEvent(cwmp.EventPeriodic, "")
				d.mu.Unlock()
				nextPeriodic = d.periodicAfter(rng)
			}
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (d *Device) dropEvent(code string) {
	out := d.events[:0]
	for _, e := range d.events {
		if e.Code != code {
			out = append(out, e)
		}
	}
	d.events = out
}

// periodicAfter returns when the next periodic Inform is due; zero when
// disabled.
func (d *Device) periodicAfter(rng *rand.Rand) time.Time {
	return d.periodicFrom(time.Now(), rng)
}

// periodicFrom is periodicAfter as of now. With a PeriodicInformTime set,
// the Informs fall on that time plus or minus whole intervals (TR-069
// A.3.2.1), as a real CPE's do: an ACS that gives each device its own
// reference time (GenieACS's inform provision does) spreads a fleet
// that booted together. With the unknown time (0001-01-01T00:00:00Z, the
// CPE chooses), the interval from now with ±10 % jitter, so that a fleet
// started together spreads out slowly.
func (d *Device) periodicFrom(now time.Time, rng *rand.Rand) time.Time {
	d.mu.Lock()
	enabled := d.special("ManagementServer.PeriodicInformEnable")
	secs, err := strconv.ParseUint(d.special("ManagementServer.PeriodicInformInterval"), 10, 32)
	ref := d.special("ManagementServer.PeriodicInformTime")
	d.mu.Unlock()
	if enabled != "true" || err != nil || secs == 0 {
		return time.Time{}
	}
	iv := time.Duration(secs) * time.Second
	if d.f.cfg.InformInterval > 0 && d.f.cfg.InformInterval < time.Second && secs == 1 {
		// Sub-second intervals (load tests) cannot be written to the
		// parameter; keep the configured one while the ACS left it alone.
		iv = d.f.cfg.InformInterval
	} else if at, ok := informReference(ref); ok {
		// Milliseconds from the reference, floored into [0, interval):
		// the reference may be in the future or centuries back.
		ivMs := iv.Milliseconds()
		past := (now.UnixMilli() - at.UnixMilli()) % ivMs
		if past < 0 {
			past += ivMs
		}
		return now.Add(time.Duration(ivMs-past) * time.Millisecond)
	}
	jitter := time.Duration((rng.Float64()*0.2 - 0.1) * float64(iv))
	return now.Add(iv + jitter)
}

// informReference reads a PeriodicInformTime: false for the unknown time
// (year 1) and for what does not parse as an xsd:dateTime.
func informReference(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	t, err := cwmp.ParameterValue{Value: v}.Time()
	if err != nil || t.Year() <= 1 {
		return time.Time{}, false
	}
	return t, true
}

func (d *Device) nextScheduled() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.schedule) == 0 {
		return time.Time{}, false
	}
	return d.schedule[0].at, true
}

// afterSession carries out what the ACS asked for in the session that just
// ended: factory reset, reboot, file transfers.
func (d *Device) afterSession(ctx context.Context) {
	d.mu.Lock()
	reset, rebootKey := d.factoryReset, d.rebootKey
	transfers := d.transfers
	diag := d.diag
	d.factoryReset, d.rebootKey, d.transfers, d.diag = false, nil, nil, ""
	d.mu.Unlock()
	if diag != "" && !reset && rebootKey == nil {
		d.runDiagnostic(ctx, diag)
	}

	if reset {
		d.mu.Lock()
		d.tree.Reset()
		d.applyConfig()
		d.events = nil
		d.pendingTC = nil
		d.schedule = nil
		d.addEvent(cwmp.EventBootstrap, "")
		d.addEvent(cwmp.EventBoot, "")
		d.mu.Unlock()
		d.goOffline(ctx)
		return
	}
	for _, tr := range transfers {
		if !sleepCtx(ctx, d.f.scaled(time.Duration(tr.req.DelaySeconds)*time.Second)) {
			return
		}
		tc, firmware := d.runTransfer(ctx, tr)
		d.mu.Lock()
		d.pendingTC = append(d.pendingTC, tc)
		d.addEvent(cwmp.EventTransferComplete, "")
		if tr.download {
			d.addEvent(cwmp.EventMDownload, tr.req.CommandKey)
		} else {
			d.addEvent(cwmp.EventMUpload, tr.req.CommandKey)
		}
		d.mu.Unlock()
		if firmware {
			// A new firmware comes up with a reboot.
			d.mu.Lock()
			d.addEvent(cwmp.EventBoot, "")
			d.mu.Unlock()
			d.goOffline(ctx)
		}
	}
	if rebootKey != nil {
		d.mu.Lock()
		d.addEvent(cwmp.EventBoot, "")
		d.addEvent(cwmp.EventMReboot, *rebootKey)
		d.mu.Unlock()
		d.goOffline(ctx)
	}
}

// goOffline simulates the reboot time: no sessions, connection requests
// refused.
func (d *Device) goOffline(ctx context.Context) {
	d.mu.Lock()
	d.offline = true
	d.mu.Unlock()
	sleepCtx(ctx, d.f.cfg.RebootDelay)
	d.mu.Lock()
	// A connection request that arrived while down was refused; drop any
	// wake-up queued before the reboot. Drain before coming back up, under
	// mu (see wakeOnline): draining after would also drop a request
	// accepted in between, and the ACS was told that one would be served.
	select {
	case <-d.wake:
	default:
	}
	d.offline = false
	d.tree.Boot()
	d.mu.Unlock()
}

// buildInform snapshots the events and parameters for the next Inform.
func (d *Device) buildInform() (*cwmp.Inform, []cwmp.ParameterValue) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.tree.m
	params := d.tree.Forced()
	changed := d.tree.TakeChanged()
	seen := make(map[string]bool, len(params))
	for _, p := range params {
		seen[p.Name] = true
	}
	for _, p := range changed {
		if !seen[p.Name] {
			params = append(params, p)
		}
	}
	if len(d.pendingTC) > 0 {
		// Undelivered TransferCompletes keep their event (§2.6: kept until
		// TransferCompleteResponse).
		d.addEvent(cwmp.EventTransferComplete, "")
	}
	return &cwmp.Inform{
		DeviceId: cwmp.DeviceID{
			Manufacturer: m.Manufacturer, OUI: m.OUI, ProductClass: m.ProductClass, SerialNumber: d.tree.Serial(),
		},
		Event:         append([]cwmp.Event(nil), d.events...),
		MaxEnvelopes:  1,
		CurrentTime:   time.Now().UTC().Truncate(time.Second),
		RetryCount:    d.retryCount,
		ParameterList: params,
	}, changed
}

// handle answers one ACS request; the result is a response or a *cwmp.Fault.
func (d *Device) handle(req cwmp.Message) cwmp.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch r := req.(type) {
	case *cwmp.GetRPCMethods:
		return &cwmp.GetRPCMethodsResponse{MethodList: append([]string(nil), cpeMethods...)}
	case *cwmp.GetParameterValues:
		list, f := d.tree.GetValues(r.ParameterNames)
		if f != nil {
			return f
		}
		return &cwmp.GetParameterValuesResponse{ParameterList: list}
	case *cwmp.SetParameterValues:
		if f := d.tree.SetValues(r.ParameterList, r.ParameterKey); f != nil {
			return f
		}
		if obj := requestedDiagnostic(r.ParameterList); obj != "" {
			d.diag = obj
		}
		return &cwmp.SetParameterValuesResponse{Status: 0}
	case *cwmp.GetParameterNames:
		list, f := d.tree.GetNames(r.ParameterPath, r.NextLevel)
		if f != nil {
			return f
		}
		return &cwmp.GetParameterNamesResponse{ParameterList: list}
	case *cwmp.SetParameterAttributes:
		if f := d.tree.SetAttributes(r.ParameterList); f != nil {
			return f
		}
		return &cwmp.SetParameterAttributesResponse{}
	case *cwmp.GetParameterAttributes:
		list, f := d.tree.GetAttributes(r.ParameterNames)
		if f != nil {
			return f
		}
		return &cwmp.GetParameterAttributesResponse{ParameterList: list}
	case *cwmp.AddObject:
		n, f := d.tree.AddObject(r.ObjectName, r.ParameterKey)
		if f != nil {
			return f
		}
		return &cwmp.AddObjectResponse{InstanceNumber: n, Status: 0}
	case *cwmp.DeleteObject:
		if f := d.tree.DeleteObject(r.ObjectName, r.ParameterKey); f != nil {
			return f
		}
		return &cwmp.DeleteObjectResponse{Status: 0}
	case *cwmp.Reboot:
		key := r.CommandKey
		d.rebootKey = &key
		return &cwmp.RebootResponse{}
	case *cwmp.FactoryReset:
		d.factoryReset = true
		return &cwmp.FactoryResetResponse{}
	case *cwmp.ScheduleInform:
		if r.DelaySeconds == 0 {
			return cwmp.NewFault(cwmp.FaultInvalidArguments, "DelaySeconds must be greater than 0")
		}
		at := time.Now().Add(d.f.scaled(time.Duration(r.DelaySeconds) * time.Second))
		d.schedule = append(d.schedule, scheduled{at: at, key: r.CommandKey})
		sortSchedule(d.schedule)
		return &cwmp.ScheduleInformResponse{}
	case *cwmp.Download:
		if f := checkTransferURL(r.URL); f != nil {
			return f
		}
		if len(d.transfers) >= 16 {
			return cwmp.NewFault(cwmp.FaultResourcesExceeded, "transfer queue full")
		}
		d.transfers = append(d.transfers, transfer{download: true, req: *r})
		return &cwmp.DownloadResponse{Status: 1}
	case *cwmp.Upload:
		if f := checkTransferURL(r.URL); f != nil {
			return f
		}
		if len(d.transfers) >= 16 {
			return cwmp.NewFault(cwmp.FaultResourcesExceeded, "transfer queue full")
		}
		d.transfers = append(d.transfers, transfer{req: cwmp.Download{
			CommandKey: r.CommandKey, FileType: r.FileType, URL: r.URL, Username: r.Username,
			Password: r.Password, DelaySeconds: r.DelaySeconds,
		}})
		return &cwmp.UploadResponse{Status: 1}
	case *cwmp.GetQueuedTransfers:
		resp := &cwmp.GetQueuedTransfersResponse{TransferList: []cwmp.QueuedTransfer{}}
		for _, t := range d.transfers {
			resp.TransferList = append(resp.TransferList, cwmp.QueuedTransfer{CommandKey: t.req.CommandKey, State: 1})
		}
		return resp
	case *cwmp.GetAllQueuedTransfers:
		resp := &cwmp.GetAllQueuedTransfersResponse{TransferList: []cwmp.AllQueuedTransfer{}}
		for _, t := range d.transfers {
			resp.TransferList = append(resp.TransferList, cwmp.AllQueuedTransfer{
				CommandKey: t.req.CommandKey, State: 1, IsDownload: t.download, FileType: t.req.FileType,
				FileSize: t.req.FileSize, TargetFileName: t.req.TargetFileName,
			})
		}
		return resp
	case *cwmp.GetOptions:
		// No options are installed on a simulated device.
		return &cwmp.GetOptionsResponse{OptionList: []cwmp.Option{}}
	}
	return cwmp.NewFault(cwmp.FaultMethodNotSupported, "Method not supported: "+req.Method())
}

// checkTransferURL rejects URLs the device cannot fetch: fault 9013.
func checkTransferURL(raw string) *cwmp.Fault {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return cwmp.NewFault(cwmp.FaultInvalidArguments, fmt.Sprintf("bad URL %q", raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return cwmp.NewFault(cwmp.FaultUnsupportedProtocol, "unsupported protocol "+u.Scheme)
	}
	return nil
}

func sortSchedule(s []scheduled) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].at.Before(s[j-1].at); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait
// elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errSession marks a session that failed at the HTTP or CWMP level.
var errSession = errors.New("sim: session failed")

// growStackBytes is the frame growStack puts on the stack: with what
// lies below it, more than 8 KB, so the runtime doubles a small stack
// straight to 16 KB, which a session's deepest path (dial, net/http,
// the XML codec) fits in.
const growStackBytes = 8 << 10

// growStack grows the calling goroutine's stack, from a shallow frame,
// to what a session needs, in one copy. A session worker (workers.go)
// calls it when it starts; its sessions otherwise grew the stack a
// doubling at a time from deep inside the dial and net/http, each
// doubling a copy of every frame beneath (when each device grew its own
// stack for every attempt, a fifth of the simulator's CPU in a storm's
// flood; BenchmarkRefusedFlood: ~15 % less per refused attempt). The
// byte it returns means nothing: it keeps the frame from being optimised
// away.
//
//go:noinline
func growStack() byte {
	var buf [growStackBytes]byte
	return touchStack(buf[:])
}

// touchStack reads b so the compiler keeps growStack's frame.
//
//go:noinline
func touchStack(b []byte) byte { return b[len(b)-1] }
