package edge

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
)

// Edge-side task fault codes (CPE faults use their numeric CWMP code).
const (
	FaultCodeInvalidResponse = "invalid_response"
	FaultCodeFileNotFound    = "file_not_found"
	FaultCodeNoURL           = "no_url"
	FaultCodeExpired         = "expired"
	// FaultCodeTimeout ends a transfer the CPE accepted but never reported
	// with TransferComplete within CacheOptions.DownloadTimeout.
	FaultCodeTimeout = "timeout"
)

// refreshBatch bounds the names of one GetParameterValues a refreshObject
// sends, so a large subtree does not become one huge CPE response: the
// presets' batch (provision.DefaultBatchSize).
const refreshBatch = provision.DefaultBatchSize

// InformMeta is what the server knows about the HTTP request that carried an Inform.
type InformMeta struct {
	RemoteAddr   string // CPE source IP:port
	FilesBaseURL string // e.g. "http://10.0.0.1:7547/files/" — where Download URLs point
	// SignFileURLs adds an expiring signature to the URLs of files this
	// edge serves (Config.FilesAuth), valid for DownloadTimeout plus the
	// Download's DelaySeconds: the CPE needs nothing else to fetch the file.
	SignFileURLs bool
	Now          time.Time
}

// SessionWork is one CWMP session's view of the cache: the device, its
// queued tasks turned into RPCs one at a time, and the writes the answers
// cause, committed together by End. Not safe for concurrent use (a session
// is one goroutine at a time).
type SessionWork struct {
	c    *Cache
	dev  *Device
	meta InformMeta
	// stampPick: restamp asked for the clock to move again when the
	// next task is picked up (picked).
	stampPick bool

	queue []*fleet.Task
	seen  map[string]bool
	// taskGen is Cache.taskGen as it was before the device's open tasks
	// were last read (tasksRead): nextTask reads them again only when a
	// task was added since.
	taskGen   uint64
	tasksRead bool
	// begun is the parameter tree as BeginSession stored it, handed to
	// the session's first provisioning tree instead of a read of its
	// own; nil when BeginSession did not decode it, or once a write of
	// the session's changed the stored tree (flushOps, commit).
	begun   *devParams
	claimed []string
	cur     *taskRun
	changed map[string]*fleet.Task
	order   []string // task IDs in the order they changed, for the outbox
	ops     []paramOp
	stop    bool // a Reboot or FactoryReset was answered: send nothing more
	// held: a download task waits for its file's blob; it and the tasks
	// after it stay pending (the session's presets still run).
	held  bool
	ended bool
	// lost: the CPE ended the session early (cpeLost).
	lost bool

	// informed is the Inform's ParameterList: values the CPE just sent.
	informed []cwmp.ParameterValue
	// prov runs the device's presets once its tasks are done (provision.go);
	// provDone: they ran, or none applies.
	prov     *provSession
	provDone bool
	// provCommitted: a Checkpoint stored the presets' outcome; End must
	// not store it again.
	provCommitted bool
	// vtask runs a task through the provisioning engine (vtask.go).
	vtask *provSession
	// vtaskWrites are the values the engine's tasks wrote to the CPE
	// (what a virtual parameter's script declared, say the
	// connection-request password): End stores the credentials among
	// them, as it does a preset's.
	vtaskWrites []cwmp.ParameterValue

	// diagComplete: the Inform carried 8 DIAGNOSTICS COMPLETE, so this
	// session reads the results of the diagnostic awaiting it (diag.go).
	diagComplete bool
	// diagBusy: the device has a diagnostic under way; another waits
	// (diagDeferred: seen while it did, looked at again once it ends).
	diagBusy     bool
	diagDeferred []string
}

type taskRun struct {
	t   *fleet.Task
	req cwmp.Message
	// leaves are the refreshObject names still to fetch with GPV.
	leaves []string
	// follow is the RPC the task sends next in this session: the
	// SetParameterValues of an addObject task's values, once the CPE
	// answered the AddObject, or of a setParameterValues task once the
	// CPE told the types the task left out.
	follow cwmp.Message
}

// paramOp is one change to the parameter tree, applied in order at End.
type paramOp struct {
	path string
	// del removes path; for an object path ("...."), its whole subtree.
	del bool
	// prune removes the nodes under path that keep does not list.
	prune bool
	keep  map[string]bool

	setValue    bool
	value, typ  string
	setWritable bool
	writable    bool
	object      bool
	setAttr     bool
	notify      int
	access      []string
}

// managementServer suffixes whose Inform values shape the device record.
const (
	sfxCRURL       = ".ManagementServer.ConnectionRequestURL"
	sfxUDPCR       = ".ManagementServer.UDPConnectionRequestAddress"
	sfxSTUN        = ".ManagementServer.STUNEnable"
	sfxCRUser      = ".ManagementServer.ConnectionRequestUsername"
	sfxCRPass      = ".ManagementServer.ConnectionRequestPassword"
	sfxSoftwareVer = ".DeviceInfo.SoftwareVersion"
)

// BeginSession records the Inform durably, in one transaction, before the
// server sends InformResponse (which tells the CPE its events were
// delivered): identity, events, every ParameterList value, last inform,
// source address, connection-request details and root. 0 BOOTSTRAP first
// clears the cached tree, finished tasks and faults of the device's old
// life; pending tasks survive. A new device is registered at once.
func (c *Cache) BeginSession(inf *cwmp.Inform, meta InformMeta) (*SessionWork, error) {
	if inf == nil {
		return nil, errors.New("begin session: nil Inform")
	}
	id, err := fleet.DeviceID(inf.DeviceId.OUI, inf.DeviceId.ProductClass, inf.DeviceId.SerialNumber)
	if err != nil {
		return nil, fmt.Errorf("begin session: %w", err)
	}
	if meta.Now.IsZero() {
		meta.Now = time.Now()
	}
	now := meta.Now.UTC()
	events := make([]string, 0, len(inf.Event))
	bootstrap, boot, diagDone := false, false, false
	for _, e := range inf.Event {
		events = append(events, e.Code)
		bootstrap = bootstrap || e.Code == cwmp.EventBootstrap
		boot = boot || e.Code == cwmp.EventBoot
		diagDone = diagDone || e.Code == cwmp.EventDiagnosticsComplete
	}
	var (
		dev     Device
		created bool
		cleared []string
		cred    credRec
		open    []*fleet.Task
		openErr error
		begun   *devParams
		gen     = c.taskGen.Load() // before the transaction reads the tasks
	)
	err = c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		dev, created, cleared, cred, begun = Device{}, false, cleared[:0], credRec{}, nil
		switch err := getCBOR(txn, pDevice+id, &dev); {
		case errors.Is(err, ErrNotFound):
			created = true
			dev = Device{ID: id, Registered: now}
		case err != nil:
			return fmt.Errorf("load device: %w", err)
		}
		if bootstrap && !created {
			if _, err := deletePrefix(txn, pFault+id+"/"); err != nil {
				return fmt.Errorf("bootstrap clear: %w", err)
			}
			keys, err := deletePrefix(txn, pDone+id+"/")
			if err != nil {
				return fmt.Errorf("bootstrap clear: %w", err)
			}
			for _, k := range keys {
				tid := k[len(pDone)+len(id)+1:]
				cleared = append(cleared, tid)
				if err := txn.Delete([]byte(pTask + tid)); err != nil {
					return fmt.Errorf("bootstrap clear: %w", err)
				}
			}
		}
		if bootstrap {
			// A factory-reset CPE is back to its default connection-request
			// credentials: forget the ones a task set in its old life, so
			// the server provisions new ones in this session.
			dev.CRUsername, dev.CRPassword = "", ""
			dev.RootListed = time.Time{}
		}
		dev.OUI, dev.ProductClass = inf.DeviceId.OUI, inf.DeviceId.ProductClass
		dev.SerialNumber, dev.Manufacturer = inf.DeviceId.SerialNumber, inf.DeviceId.Manufacturer
		dev.LastInform, dev.LastEvents, dev.RemoteAddr = now, events, meta.RemoteAddr
		if boot {
			dev.LastBoot = now
		}
		if bootstrap {
			dev.LastBootstrap = now
		}
		delta := &fleet.DeviceDelta{Device: id, Edge: c.opts.EdgeID, OUI: dev.OUI, ProductClass: dev.ProductClass,
			SerialNumber: dev.SerialNumber, Manufacturer: dev.Manufacturer, LastInform: now, Events: events,
			Bootstrap: bootstrap}
		// A bootstrap starts the tree afresh (a factory-reset CPE has
		// lost what the old one knew): the Inform's values are all of it.
		// An Inform whose values the tree holds (most periodic ones)
		// neither decodes nor rewrites it.
		tree, holds, decoded := &devParams{}, false, true
		if !created && !bootstrap {
			if holds, err = treeHolds(txn, id, inf.ParameterList); err != nil {
				return fmt.Errorf("load parameters: %w", err)
			}
			decoded = !holds || dev.InformInterval == 0
			if decoded {
				if tree, err = c.loadParamsForWrite(txn, id); err != nil {
					return fmt.Errorf("load parameters: %w", err)
				}
			}
		}
		if decoded {
			begun = tree
		}
		changed := bootstrap && !created
		for _, pv := range inf.ParameterList {
			if pv.Name == "" || strings.HasSuffix(pv.Name, ".") {
				continue
			}
			applyInformParam(&dev, pv)
			if holds {
				continue
			}
			rec, ok := tree.get(pv.Name)
			// An unchanged value is not rewritten: periodic Informs
			// then cost one read. LastInform says it is current.
			if ok && rec.Value == pv.Value && rec.Type == pv.Type {
				continue
			}
			r := paramRec{}
			if ok {
				r = *rec
			}
			r.Value, r.Type, r.Timestamp = pv.Value, pv.Type, now.UnixNano()
			r.Flags |= flagValue
			tree.set(pv.Name, r)
			changed = true
			delta.Parameters = append(delta.Parameters, fleet.ParameterValue{Name: pv.Name, Value: pv.Value, Type: pv.Type})
		}
		if changed {
			if err := putParams(txn, id, tree); err != nil {
				return fmt.Errorf("store parameters: %w", err)
			}
		}
		// The record's copy of the interval follows the tree. When the
		// tree held the Inform it was read only if the record has no
		// copy yet (0, a record from before the copy): then it is made.
		if changed || dev.InformInterval == 0 {
			dev.InformInterval = treeInterval(tree, dev.Root)
		}
		if err := setCBOR(txn, pDevice+id, &dev); err != nil {
			return fmt.Errorf("store device: %w", err)
		}
		if err := c.recordHistory(txn, delta, now); err != nil {
			return err
		}
		// What the session reads next, read here rather than in read
		// transactions of their own: the device's own credentials and
		// its open tasks. Neither failing fails the Inform: the
		// credentials then are the shared ones, and the tasks are read
		// again by nextTask, which reports the error.
		if err := getCBOR(txn, pCred+id, &cred); err != nil {
			cred = credRec{}
		}
		open, openErr = loadTasks(txn, pOpen+id+"/")
		return ob.add(delta)
	})
	if err != nil {
		return nil, fmt.Errorf("begin session of %s: %w", id, err)
	}
	c.sessions.add(time.Now())
	if created {
		c.devices.Add(1)
	}
	// The InformResponse tells the CPE its events were delivered and it
	// will not send them again; only periodic, connection-request and
	// heartbeat events are resent anyway, so those sessions skip the fsync.
	if created || informNeedsSync(events) {
		if err := c.durable(); err != nil {
			return nil, fmt.Errorf("begin session of %s: %w", id, err)
		}
	}
	for _, tid := range cleared {
		c.notify(tid)
	}
	dev.Username, dev.Password = cred.Username, cred.Password
	d := dev
	w := &SessionWork{c: c, dev: &d, meta: meta, seen: map[string]bool{}, changed: map[string]*fleet.Task{},
		informed: inf.ParameterList, diagComplete: diagDone, begun: begun}
	if openErr == nil {
		w.queue, w.taskGen, w.tasksRead = open, gen, true
	}
	return w, nil
}

// informNeedsSync reports whether an Inform carries an event the CPE will
// not retry once the ACS has answered it.
func informNeedsSync(events []string) bool {
	for _, e := range events {
		switch e {
		case cwmp.EventPeriodic, cwmp.EventConnectionRequest, cwmp.EventHeartbeat:
		default:
			return true
		}
	}
	return false
}

// applyInformParam copies the Inform values the edge itself needs (root,
// reachability, software version) into the device record.
func applyInformParam(d *Device, pv cwmp.ParameterValue) {
	if d.Root == "" || !strings.HasPrefix(pv.Name, d.Root) {
		switch {
		case strings.HasPrefix(pv.Name, "InternetGatewayDevice."):
			d.Root = "InternetGatewayDevice."
		case strings.HasPrefix(pv.Name, "Device."):
			d.Root = "Device."
		}
	}
	switch {
	case strings.HasSuffix(pv.Name, sfxCRURL):
		d.ConnectionRequestURL = pv.Value
	case strings.HasSuffix(pv.Name, sfxUDPCR):
		d.UDPConnectionRequestAddress = pv.Value
	case strings.HasSuffix(pv.Name, sfxSTUN):
		d.STUNEnable, _ = cwmp.ParseBool(pv.Value)
	case strings.HasSuffix(pv.Name, sfxCRUser):
		d.CRUsername = pv.Value
	case strings.HasSuffix(pv.Name, sfxCRPass):
		if pv.Value != "" { // CPEs usually send it empty: keep what a task set
			d.CRPassword = pv.Value
		}
	case strings.HasSuffix(pv.Name, sfxSoftwareVer):
		d.SoftwareVersion = pv.Value
	}
}

// DeviceID is the session's device ID.
func (w *SessionWork) DeviceID() string { return w.dev.ID }

// Device is the device record as the Inform left it.
func (w *SessionWork) Device() *Device { return w.dev }

// CPERequest records a CPE-initiated request durably before the server
// answers it. TransferComplete completes the open download or upload task
// with its CommandKey (done, or fault when FaultStruct.Code ≠ 0). A failed
// AutonomousTransferComplete or DUStateChangeComplete is recorded as a
// device fault; other requests need no record.
func (w *SessionWork) CPERequest(m cwmp.Message) error {
	switch r := m.(type) {
	case *cwmp.TransferComplete:
		return w.transferComplete(r)
	case *cwmp.AutonomousTransferComplete:
		if r.FaultStruct.Code != 0 {
			return w.c.putDeviceFault(w.dev.ID, "autonomousTransferComplete", r.FaultStruct, w.meta.Now)
		}
	case *cwmp.DUStateChangeComplete:
		for _, op := range r.Results {
			if op.Fault.Code != 0 {
				return w.c.putDeviceFault(w.dev.ID, "duStateChangeComplete", op.Fault, w.meta.Now)
			}
		}
	}
	return nil
}

func (c *Cache) putDeviceFault(dev, kind string, fs cwmp.FaultStruct, now time.Time) error {
	id := kind + "-" + strconv.FormatInt(now.UnixNano(), 10)
	f := DeviceFault{ID: id, Device: dev, Code: strconv.FormatUint(uint64(fs.Code), 10), Message: fs.String, Timestamp: now.UTC()}
	if err := c.update(func(txn *badger.Txn) error { return setCBOR(txn, pFault+dev+"/"+id, &f) }); err != nil {
		return fmt.Errorf("record %s fault of %s: %w", kind, dev, err)
	}
	return nil
}

func (w *SessionWork) transferComplete(r *cwmp.TransferComplete) error {
	id := w.dev.ID
	var done *fleet.Task
	err := w.c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		done = nil
		tasks, err := loadTasks(txn, pOpen+id+"/")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if (t.Name == fleet.TaskDownload || t.Name == fleet.TaskUpload) && t.CommandKey == r.CommandKey && t.Attempts > 0 {
				done = t
				break
			}
		}
		if done == nil {
			return nil
		}
		res := done.Result
		if res == nil {
			res = &fleet.TaskResult{}
		}
		res.StartTime, res.CompleteTime = r.StartTime, r.CompleteTime
		done.Result = res
		if r.FaultStruct.Code != 0 {
			done.Status = fleet.StatusFault
			// The transfer's password is a secret the CPE's words may quote.
			done.Fault = &fleet.TaskFault{Code: strconv.FormatUint(uint64(r.FaultStruct.Code), 10), Message: fleet.HideSecrets(r.FaultStruct.String, done.Password)}
		} else {
			done.Status = fleet.StatusDone
		}
		done.Updated = w.meta.Now.UTC()
		return stageFinal(txn, ob, done)
	})
	if err != nil {
		return fmt.Errorf("record TransferComplete %q of %s: %w", r.CommandKey, id, err)
	}
	if done == nil {
		if strings.HasPrefix(r.CommandKey, provisionCommandKeyHead) {
			// A preset's download: there is no task to end. A failed
			// transfer is a device fault an operator can see.
			if r.FaultStruct.Code != 0 {
				return w.c.putDeviceFault(id, "download", r.FaultStruct, w.meta.Now)
			}
			return nil
		}
		w.c.log.Warn("TransferComplete matches no task", "device", id, "commandKey", r.CommandKey)
		return nil
	}
	w.seen[done.ID] = true
	// TransferCompleteResponse ends the CPE's duty to report the transfer.
	if err := w.c.durable(); err != nil {
		return fmt.Errorf("record TransferComplete %q of %s: %w", r.CommandKey, id, err)
	}
	w.c.notify(done.ID)
	w.c.taskFinal(done)
	return nil
}

// stageFinal writes a final task, moves it from the open to the finished
// index, records or clears its fault and queues its result upstream.
func stageFinal(txn *badger.Txn, ob *outboxTxn, t *fleet.Task) error {
	if err := setRecord(txn, pTask+t.ID, t); err != nil {
		return err
	}
	if err := txn.Delete([]byte(pOpen + t.Device + "/" + t.ID)); err != nil {
		return err
	}
	if err := txn.Set([]byte(pDone+t.Device+"/"+t.ID), nil); err != nil {
		return err
	}
	if fleet.IsDiagnostic(t.Name) {
		if err := setAwait(txn, t); err != nil {
			return err
		}
	}
	fk := []byte(pFault + t.Device + "/" + t.ID)
	if t.Status == fleet.StatusFault && t.Fault != nil {
		f := DeviceFault{ID: t.ID, Device: t.Device, Task: t.ID, Code: t.Fault.Code, Message: t.Fault.Message,
			Detail: t.Fault.Detail, Timestamp: t.Updated}
		if err := setCBOR(txn, string(fk), &f); err != nil {
			return err
		}
	} else if err := txn.Delete(fk); err != nil {
		return err
	}
	return ob.add(t)
}

// claim marks a task as held by a live session; false if another holds it
// (a stale session of the same device that has not ended yet).
func (c *Cache) claim(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[id] {
		return false
	}
	c.inflight[id] = true
	return true
}

func (c *Cache) release(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.inflight, id)
	}
}

// nextTask returns the next pending task not yet handled in this session,
// re-reading the queue when it runs dry so tasks queued during the session
// (the usual connection-request flow) still run in it.
func (w *SessionWork) nextTask() *fleet.Task {
	for {
		for len(w.queue) > 0 {
			t := w.queue[0]
			w.queue = w.queue[1:]
			if w.seen[t.ID] {
				continue
			}
			w.seen[t.ID] = true
			// A running task in the store is a transfer the CPE accepted:
			// it waits for TransferComplete, not for a resend, unless it
			// has waited too long.
			if t.Status == fleet.StatusRunning {
				if fleet.IsDiagnostic(t.Name) {
					// A diagnostic awaiting 8 DIAGNOSTICS COMPLETE.
					if cur := w.diagAwaiting(t); cur != nil {
						return w.picked(cur)
					}
					continue
				}
				w.expireTransfer(t)
				continue
			}
			if t.Status == fleet.StatusPending && w.diagBusy && fleet.IsDiagnostic(t.Name) {
				w.diagDeferred = append(w.diagDeferred, t.ID)
				continue
			}
			if t.Status != fleet.StatusPending || !w.c.claim(t.ID) {
				continue
			}
			w.claimed = append(w.claimed, t.ID)
			// Re-read under the claim: the API may have deleted or the
			// previous session changed it since the queue was loaded.
			cur := new(fleet.Task)
			err := w.c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pTask+t.ID, cur) })
			if err != nil || cur.Status != fleet.StatusPending {
				continue
			}
			if fleet.IsDiagnostic(cur.Name) {
				w.diagBusy = true
			}
			return w.picked(cur)
		}
		gen := w.c.taskGen.Load()
		if w.tasksRead && gen == w.taskGen {
			return nil // no task added since they were read
		}
		var fresh []*fleet.Task
		err := w.c.db.View(func(txn *badger.Txn) error {
			ts, err := loadTasks(txn, pOpen+w.dev.ID+"/")
			for _, t := range ts {
				if !w.seen[t.ID] {
					fresh = append(fresh, t)
				}
			}
			return err
		})
		if err != nil {
			w.c.log.Error("load tasks", "device", w.dev.ID, "err", err)
			return nil
		}
		w.taskGen, w.tasksRead = gen, true
		if len(fresh) == 0 {
			return nil
		}
		w.queue = fresh
	}
}

// expireTransfer ends as fault "timeout" an accepted Download or Upload
// whose TransferComplete is overdue (sent more than DownloadTimeout ago).
// It runs on the open tasks the session loads anyway, so it costs no scan.
func (w *SessionWork) expireTransfer(t *fleet.Task) {
	if t.Name != fleet.TaskDownload && t.Name != fleet.TaskUpload {
		return
	}
	now := w.meta.Now.UTC()
	if !now.After(t.Updated.Add(w.c.opts.DownloadTimeout)) || !w.c.claim(t.ID) {
		return
	}
	w.claimed = append(w.claimed, t.ID)
	// Re-read under the claim: a TransferComplete may have finished it.
	cur := new(fleet.Task)
	err := w.c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pTask+t.ID, cur) })
	if err != nil || cur.Status != fleet.StatusRunning {
		return
	}
	w.finish(cur, fleet.StatusFault, cur.Result, &fleet.TaskFault{Code: FaultCodeTimeout,
		Message: fmt.Sprintf("no TransferComplete within %s of the CPE accepting the %s", w.c.opts.DownloadTimeout, cur.Name)})
}

// Next returns the next RPC to send, or nil when the session has nothing
// left to do. Tasks run FIFO, several per session; expired ones are ended
// unsent; then the device's presets run (provision.go); nothing follows
// an answered Reboot or FactoryReset.
func (w *SessionWork) Next() cwmp.Message {
	if w.ended || w.stop {
		return nil
	}
	if w.cur != nil {
		if len(w.cur.leaves) > 0 {
			return w.sendRefreshBatch()
		}
		if req := w.cur.follow; req != nil {
			w.cur.follow, w.cur.req = nil, req
			return req
		}
		// The previous RPC was never answered: the caller moved on, so
		// treat it like a dropped exchange and leave the task pending.
		w.requeue(w.cur.t)
		w.cur = nil
	}
	if w.vtask != nil {
		if m := w.vtaskNext(); m != nil {
			return m
		}
	}
	if w.prov != nil && !w.provDone {
		// A provisioning run under way goes on before tasks queued since.
		if m := w.provNext(); m != nil {
			return m
		}
	}
	for {
		var t *fleet.Task
		if !w.held {
			t = w.nextTask()
		}
		if t == nil {
			return w.provNext()
		}
		now := w.meta.Now.UTC() // after the pick: see restamp
		if t.Status == fleet.StatusRunning && fleet.IsDiagnostic(t.Name) {
			// Its 8 DIAGNOSTICS COMPLETE came: read the results.
			obj, _ := diagObject(t.Name, w.dev.Root)
			req := &cwmp.GetParameterValues{ParameterNames: []string{obj}}
			w.cur = &taskRun{t: t, req: req}
			return req
		}
		if !t.Expiry.IsZero() && now.After(t.Expiry) {
			w.finish(t, fleet.StatusExpired, nil, &fleet.TaskFault{Code: FaultCodeExpired, Message: "task expired before it could run"})
			continue
		}
		if virtualTask(t) {
			if err := w.startVirtualTask(t); err != nil {
				w.finish(t, fleet.StatusFault, nil, &fleet.TaskFault{Code: FaultCodeInvalidArguments, Message: err.Error()})
				continue
			}
			if m := w.vtaskNext(); m != nil {
				return m
			}
			continue
		}
		req, fault := w.rpcFor(t)
		if fault == holdForBlob {
			// The file is still crossing the backhaul. Most CPEs report
			// a failed download once and never retry it, so the Download
			// is not sent until the blob is here: this task and the ones
			// after it (they keep their order) stay pending, and the
			// device gets a connection request when the blob lands.
			w.held = true
			continue
		}
		if fault != nil {
			w.finish(t, fleet.StatusFault, nil, fault)
			continue
		}
		t.Status = fleet.StatusRunning
		t.Attempts++
		t.Updated = now
		w.touch(t)
		w.cur = &taskRun{t: t, req: req}
		return req
	}
}

// provNext returns the next RPC of the session's presets, starting them
// when the tasks are done; nil when they are done or none applies.
func (w *SessionWork) provNext() cwmp.Message {
	if w.provDone {
		return nil
	}
	if w.prov == nil {
		if w.prov = w.startProvisioning(); w.prov == nil {
			w.provDone = true
			return nil
		}
	}
	m := w.prov.next()
	if m == nil {
		w.provDone = true
	}
	return m
}

func (w *SessionWork) sendRefreshBatch() cwmp.Message {
	n := min(len(w.cur.leaves), w.gpvBatch(refreshBatch))
	req := &cwmp.GetParameterValues{ParameterNames: w.cur.leaves[:n:n]}
	w.cur.leaves = w.cur.leaves[n:]
	w.cur.req = req
	return req
}

// key returns a task's own key or its ULID (26 characters, within
// CWMP's 32), stored on the task so a resend carries the same one.
func key(own *string, t *fleet.Task) string {
	if *own == "" {
		*own = t.ID
	}
	return *own
}

// holdForBlob is what rpcFor returns for a Download whose file's content
// is still being fetched from the core: not a fault, a reason to wait.
var holdForBlob = &fleet.TaskFault{Code: "held", Message: "the file is still being fetched from the core"}

func (w *SessionWork) rpcFor(t *fleet.Task) (cwmp.Message, *fleet.TaskFault) {
	switch t.Name {
	case fleet.TaskGetParameterValues:
		return &cwmp.GetParameterValues{ParameterNames: t.ParameterNames}, nil
	case fleet.TaskSetParameterValues:
		if unknown := w.fillTypes(t, nil); len(unknown) > 0 {
			// Ask the CPE first: a value sent as xsd:string to an
			// unsignedInt parameter is refused with 9006.
			return &cwmp.GetParameterValues{ParameterNames: unknown}, nil
		}
		return setValues(t), nil
	case fleet.TaskGetParameterNames:
		return &cwmp.GetParameterNames{ParameterPath: t.ParameterPath, NextLevel: t.NextLevel}, nil
	case fleet.TaskGetParameterAttributes:
		return &cwmp.GetParameterAttributes{ParameterNames: t.ParameterNames}, nil
	case fleet.TaskSetParameterAttributes:
		pl := make([]cwmp.SetParameterAttribute, len(t.ParameterAttributes))
		for i, pa := range t.ParameterAttributes {
			pl[i] = cwmp.SetParameterAttribute{Name: pa.Name, AccessListChange: pa.AccessList != nil, AccessList: pa.AccessList}
			if pa.Notification != nil {
				pl[i].NotificationChange, pl[i].Notification = true, *pa.Notification
			}
		}
		return &cwmp.SetParameterAttributes{ParameterList: pl}, nil
	case fleet.TaskAddObject:
		if t.Result != nil && t.Result.InstanceNumber != 0 && len(t.ParameterValues) > 0 {
			// The CPE created the instance in an earlier session that
			// dropped before its values were set: set them now rather
			// than create a second instance.
			return addObjectValues(t), nil
		}
		return &cwmp.AddObject{ObjectName: t.ObjectName, ParameterKey: key(&t.ParameterKey, t)}, nil
	case fleet.TaskDeleteObject:
		return &cwmp.DeleteObject{ObjectName: t.ObjectName, ParameterKey: key(&t.ParameterKey, t)}, nil
	case fleet.TaskReboot:
		return &cwmp.Reboot{CommandKey: key(&t.CommandKey, t)}, nil
	case fleet.TaskFactoryReset:
		return &cwmp.FactoryReset{}, nil
	case fleet.TaskDownload:
		d := &cwmp.Download{FileType: t.FileType, URL: t.URL, Username: t.Username, Password: t.Password,
			FileSize: t.FileSize, TargetFileName: t.TargetFileName, DelaySeconds: t.DelaySeconds}
		if t.FileName != "" {
			meta, err := w.c.FileMeta(t.FileName)
			if err != nil {
				return nil, &fleet.TaskFault{Code: FaultCodeFileNotFound, Message: fmt.Sprintf("file %q is not in the edge's file store", t.FileName)}
			}
			if d.URL == "" {
				if w.meta.FilesBaseURL == "" {
					return nil, &fleet.TaskFault{Code: FaultCodeNoURL, Message: "the edge has no files URL to point the CPE at"}
				}
				d.URL = w.meta.FilesBaseURL + url.PathEscape(t.FileName)
				if w.meta.SignFileURLs {
					exp := w.meta.Now.Add(w.c.opts.DownloadTimeout + time.Duration(d.DelaySeconds)*time.Second)
					d.URL += "?" + w.c.signedFileQuery(t.FileName, exp)
				}
				if fs := w.c.files.Load(); fs != nil && !fs.awaitBlob(meta, w.dev.ID) {
					return nil, holdForBlob
				}
			}
			if meta.Size <= math.MaxUint32 {
				d.FileSize = uint32(meta.Size)
			}
			if d.FileType == "" {
				d.FileType = meta.FileType
			}
		}
		d.CommandKey = key(&t.CommandKey, t)
		return d, nil
	case fleet.TaskUpload:
		if t.URL == "" {
			return nil, &fleet.TaskFault{Code: FaultCodeNoURL, Message: "upload needs a url"}
		}
		return &cwmp.Upload{CommandKey: key(&t.CommandKey, t), FileType: t.FileType, URL: t.URL,
			Username: t.Username, Password: t.Password, DelaySeconds: t.DelaySeconds}, nil
	case fleet.TaskRefreshObject:
		return &cwmp.GetParameterNames{ParameterPath: t.ObjectName, NextLevel: false}, nil
	case fleet.TaskScheduleInform:
		return &cwmp.ScheduleInform{DelaySeconds: t.DelaySeconds, CommandKey: key(&t.CommandKey, t)}, nil
	case fleet.TaskGetRPCMethods:
		return &cwmp.GetRPCMethods{}, nil
	case fleet.TaskPing, fleet.TaskTraceRoute, fleet.TaskDownloadDiagnostics, fleet.TaskUploadDiagnostics, fleet.TaskNSLookup:
		return diagRequest(t, w.dev.Root)
	}
	return nil, &fleet.TaskFault{Code: "unsupported_task", Message: fmt.Sprintf("task kind %q is not supported", t.Name)}
}

// Answer records the CPE's answer to the RPC Next returned last. A CWMP
// fault ends that task as fault; a response of the wrong kind ends it as
// invalid_response; either way the session moves on to the next task.
func (w *SessionWork) Answer(a *cwmp.Answer) {
	if p := w.prov; p != nil && p.sent != nil && a != nil && a.Request == p.sent && !w.ended {
		p.answer(a)
		return
	}
	if p := w.vtask; p != nil && p.sent != nil && a != nil && a.Request == p.sent && !w.ended {
		p.answer(a)
		return
	}
	run := w.cur
	if run == nil || a == nil || w.ended {
		return
	}
	t := run.t
	if f, ok := a.Response.(*cwmp.Fault); ok {
		w.cur = nil
		// The CPE's words may quote a secret it refused; they are kept
		// and shown, the secret is not.
		secrets := append(fleet.SecretValues(t.ParameterValues), t.Password)
		tf := &fleet.TaskFault{Code: strconv.FormatUint(uint64(f.Code), 10), Message: fleet.HideSecrets(f.String, secrets...)}
		if len(f.SetParameterValuesFaults) > 0 {
			tf.Detail = make(map[string]string, len(f.SetParameterValuesFaults))
			for _, pf := range f.SetParameterValuesFaults {
				tf.Detail[pf.ParameterName] = strconv.FormatUint(uint64(pf.FaultCode), 10) + " " + fleet.HideSecrets(pf.FaultString, secrets...)
			}
		}
		w.finish(t, fleet.StatusFault, t.Result, tf)
		return
	}
	if a.Mismatch || a.Response == nil || a.Response.Method() != run.req.Method()+"Response" {
		w.cur = nil
		got := "nothing"
		if a.Response != nil {
			got = a.Response.Method()
		}
		w.finish(t, fleet.StatusFault, t.Result, &fleet.TaskFault{Code: FaultCodeInvalidResponse,
			Message: fmt.Sprintf("expected %sResponse, got %s", run.req.Method(), got)})
		return
	}
	if fleet.IsDiagnostic(t.Name) {
		w.diagAnswer(run, a)
		return
	}
	res := t.Result
	if res == nil {
		res = &fleet.TaskResult{}
	}
	switch r := a.Response.(type) {
	case *cwmp.GetParameterValuesResponse:
		for _, pv := range r.ParameterList {
			w.ops = append(w.ops, paramOp{path: pv.Name, setValue: true, value: pv.Value, typ: pv.Type})
		}
		if t.Name == fleet.TaskSetParameterValues {
			// The types the task left out: now the values go.
			w.fillTypes(t, r.ParameterList)
			t.Result = res
			run.follow = setValues(t)
			return
		}
		if t.Name == fleet.TaskRefreshObject {
			if len(run.leaves) > 0 {
				t.Result = res
				return // Next sends the next batch
			}
		} else {
			for _, pv := range r.ParameterList {
				res.ParameterValues = append(res.ParameterValues, fleet.ParameterValue{Name: pv.Name, Value: pv.Value, Type: pv.Type})
			}
		}
	case *cwmp.SetParameterValuesResponse:
		spv, ok := run.req.(*cwmp.SetParameterValues)
		if !ok {
			break
		}
		for _, pv := range spv.ParameterList {
			w.ops = append(w.ops, paramOp{path: pv.Name, setValue: true, value: pv.Value, typ: pv.Type})
		}
		// An addObject's values: 1 (applied later) from either RPC stands.
		res.Status = max(res.Status, r.Status)
	case *cwmp.GetParameterNamesResponse:
		keep := make(map[string]bool, len(r.ParameterList))
		var leaves []string
		for _, pi := range r.ParameterList {
			obj := strings.HasSuffix(pi.Name, ".")
			w.ops = append(w.ops, paramOp{path: pi.Name, setWritable: true, writable: pi.Writable, object: obj})
			keep[pi.Name] = true
			if !obj {
				leaves = append(leaves, pi.Name)
			}
		}
		if t.Name == fleet.TaskRefreshObject {
			// Nodes the CPE no longer lists under the object are gone
			// (deleted instances): drop them so the cache stays true.
			if t.ObjectName == "" || strings.HasSuffix(t.ObjectName, ".") {
				w.ops = append(w.ops, paramOp{path: t.ObjectName, prune: true, keep: keep})
			}
			run.leaves = leaves
			t.Result = res
			if len(leaves) > 0 {
				return
			}
		} else {
			for _, pi := range r.ParameterList {
				res.ParameterNames = append(res.ParameterNames, fleet.ParameterInfo{Name: pi.Name, Writable: pi.Writable})
			}
		}
	case *cwmp.GetParameterAttributesResponse:
		for _, pa := range r.ParameterList {
			n := pa.Notification
			w.ops = append(w.ops, paramOp{path: pa.Name, setAttr: true, notify: n, access: pa.AccessList})
			res.ParameterAttributes = append(res.ParameterAttributes, fleet.ParameterAttribute{Name: pa.Name, Notification: &n, AccessList: pa.AccessList})
		}
	case *cwmp.SetParameterAttributesResponse:
		for _, pa := range t.ParameterAttributes {
			if pa.Notification != nil {
				w.ops = append(w.ops, paramOp{path: pa.Name, setAttr: true, notify: *pa.Notification, access: pa.AccessList})
			}
		}
	case *cwmp.AddObjectResponse:
		if r.InstanceNumber == 0 {
			// Instance numbers start at 1: the CPE did not say which
			// instance it made, if any, so nothing can be recorded or
			// set on it. Recorded as done, the task would claim an
			// object that does not exist.
			w.cur = nil
			res.Status = r.Status
			w.finish(t, fleet.StatusFault, res, &fleet.TaskFault{Code: FaultCodeInvalidResponse,
				Message: "AddObjectResponse for " + t.ObjectName + " has InstanceNumber 0; instance numbers start at 1, so the CPE did not report the instance it created (if it created one): check the object on the device before retrying"})
			return
		}
		inst := t.ObjectName + strconv.FormatUint(uint64(r.InstanceNumber), 10) + "."
		w.ops = append(w.ops, paramOp{path: inst, object: true})
		res.InstanceNumber, res.Status = r.InstanceNumber, r.Status
		if len(t.ParameterValues) > 0 && r.InstanceNumber != 0 {
			// GenieACS-style values of the new instance: one SPV, and the
			// task is done when it succeeds too. The result keeps the
			// instance, so a fault or a dropped session does not lose it.
			t.Result = res
			run.follow = addObjectValues(t)
			return
		}
	case *cwmp.DeleteObjectResponse:
		w.ops = append(w.ops, paramOp{path: t.ObjectName, del: true})
		res.Status = r.Status
	case *cwmp.RebootResponse, *cwmp.FactoryResetResponse:
		// The CPE acts after the session ends; nothing may follow.
		w.stop = true
	case *cwmp.DownloadResponse:
		res.Status, res.StartTime, res.CompleteTime = r.Status, r.StartTime, r.CompleteTime
		if r.Status == 1 {
			w.cur = nil
			t.Result = res
			w.touch(t) // stays running until TransferComplete
			return
		}
	case *cwmp.UploadResponse:
		res.Status, res.StartTime, res.CompleteTime = r.Status, r.StartTime, r.CompleteTime
		if r.Status == 1 {
			w.cur = nil
			t.Result = res
			w.touch(t)
			return
		}
	case *cwmp.GetRPCMethodsResponse:
		res.MethodList = r.MethodList
	}
	w.cur = nil
	w.finish(t, fleet.StatusDone, res, nil)
}

// fillTypes gives the values of a setParameterValues task that came
// without a type the device's type for the parameter: from got (a
// GetParameterValuesResponse's list), else from the cache. It returns the
// names whose type is still unknown; with got set, those are sent as
// xsd:string.
func (w *SessionWork) fillTypes(t *fleet.Task, got []cwmp.ParameterValue) (unknown []string) {
	for i, pv := range t.ParameterValues {
		if pv.Type != "" {
			continue
		}
		typ := ""
		for _, g := range got {
			if g.Name == pv.Name {
				typ = g.Type
			}
		}
		if typ == "" && got == nil {
			if p, err := w.c.Parameter(w.dev.ID, pv.Name); err == nil {
				typ = p.Type
			}
		}
		if typ == "" && got != nil {
			typ = "xsd:string"
		}
		if typ == "" {
			unknown = append(unknown, pv.Name)
			continue
		}
		t.ParameterValues[i].Type = typ
	}
	return unknown
}

// setValues is a setParameterValues task's RPC.
func setValues(t *fleet.Task) *cwmp.SetParameterValues {
	pl := make([]cwmp.ParameterValue, len(t.ParameterValues))
	for i, pv := range t.ParameterValues {
		pl[i] = cwmp.ParameterValue{Name: pv.Name, Value: pv.Value, Type: pv.Type}
	}
	return &cwmp.SetParameterValues{ParameterList: pl, ParameterKey: key(&t.ParameterKey, t)}
}

// addObjectValues is the SetParameterValues that sets an addObject task's
// parameterValues (names relative to the new instance) once the CPE has
// created the instance; it carries the task's ParameterKey.
func addObjectValues(t *fleet.Task) *cwmp.SetParameterValues {
	inst := t.ObjectName + strconv.FormatUint(uint64(t.Result.InstanceNumber), 10) + "."
	pl := make([]cwmp.ParameterValue, len(t.ParameterValues))
	for i, pv := range t.ParameterValues {
		pl[i] = cwmp.ParameterValue{Name: inst + pv.Name, Value: pv.Value, Type: pv.Type}
	}
	return &cwmp.SetParameterValues{ParameterList: pl, ParameterKey: key(&t.ParameterKey, t)}
}

func (w *SessionWork) touch(t *fleet.Task) {
	if _, ok := w.changed[t.ID]; !ok {
		w.order = append(w.order, t.ID)
	}
	w.changed[t.ID] = t
}

func (w *SessionWork) finish(t *fleet.Task, st fleet.TaskStatus, res *fleet.TaskResult, f *fleet.TaskFault) {
	t.Status, t.Result, t.Fault, t.Updated = st, res, f, w.meta.Now.UTC()
	w.touch(t)
	if fleet.IsDiagnostic(t.Name) {
		w.diagEnded()
	}
}

// requeue returns a sent but unanswered task to pending; its CommandKey
// and ParameterKey stay, so the resend is recognizably the same request.
func (w *SessionWork) requeue(t *fleet.Task) {
	t.Status = fleet.StatusPending
	w.touch(t)
}

// End commits the session's task results and tree changes (those since
// its last Checkpoint) in one transaction. completed=false (session dropped, timed out) leaves the task
// in flight pending for the next session with the same CommandKey. Calling
// End again does nothing.
func (w *SessionWork) End(completed bool) error {
	if w.ended {
		return nil
	}
	w.ended = true
	defer w.c.release(w.claimed)
	small := w.needSmallGPV()
	if w.cur != nil {
		w.requeue(w.cur.t)
		w.cur = nil
	}
	if w.vtask != nil {
		// Dropped mid-task: it runs again next session; what the CPE
		// answered so far is not kept.
		w.requeue(w.vtask.task)
		w.vtask = nil
	}
	if _, err := w.commit(); err != nil {
		return fmt.Errorf("end session of %s (completed=%v): %w", w.dev.ID, completed, err)
	}
	if small {
		if err := w.c.markSmallGPV(w.dev.ID); err != nil {
			return fmt.Errorf("end session of %s: %w", w.dev.ID, err)
		}
		w.dev.SmallGPV = true
	}
	return nil
}

// cpeLost tells End that the CPE, not the edge, ended the session early:
// it hung up (a new Inform replaced the session) or went silent (the
// session timed out). Not said at shutdown: the CPE did nothing wrong.
func (w *SessionWork) cpeLost() { w.lost = true }

// gpvBatch is the names per GetParameterValues for this device: def
// (0: provision.DefaultBatchSize), at most provision.SmallBatchSize for
// a CPE known not to take more (Device.SmallGPV).
func (w *SessionWork) gpvBatch(def int) int {
	if def <= 0 {
		def = provision.DefaultBatchSize
	}
	if w.dev.SmallGPV {
		return min(def, provision.SmallBatchSize)
	}
	return def
}

// needSmallGPV reports (before End forgets what was outstanding) whether
// the device is to be marked SmallGPV: a run fell back to small batches
// after a 9002/9004, or the CPE was lost with a large GetParameterValues
// unanswered: a CPE that drops the connection or times out instead of
// faulting would otherwise fail every bootstrap the same way.
func (w *SessionWork) needSmallGPV() bool {
	if w.dev.SmallGPV {
		return false
	}
	for _, p := range []*provSession{w.prov, w.vtask} {
		if p == nil {
			continue
		}
		if p.run != nil && p.run.Small() {
			return true
		}
		if w.lost && bigGPV(p.sent) {
			return true
		}
	}
	return w.lost && w.cur != nil && bigGPV(w.cur.req)
}

// bigGPV: m is a GetParameterValues of more than provision.SmallBatchSize
// names.
func bigGPV(m cwmp.Message) bool {
	g, ok := m.(*cwmp.GetParameterValues)
	return ok && len(g.ParameterNames) > provision.SmallBatchSize
}

// markSmallGPV sets the device's SmallGPV flag. Not synced to disk at
// once: lost in a crash, the flag is learnt again at the next drop.
func (c *Cache) markSmallGPV(id string) error {
	return c.update(func(txn *badger.Txn) error {
		return editDevice(txn, id, func(d *Device) bool {
			changed := !d.SmallGPV
			d.SmallGPV = true
			return changed
		})
	})
}

// Lingering reports whether the session, having nothing left to send,
// may wait for a follow-up task: a task it finished since its last commit
// is waited for (an operator at work on the device: a wait on this edge's
// API, or a task the core marked Wake, see downCommitted), and
// nothing stops it from running more (no Reboot or FactoryReset answered,
// no Download held for its file, its presets done, no RPC outstanding).
func (w *SessionWork) Lingering() bool {
	if w.ended || w.stop || w.held || w.cur != nil || w.vtask != nil || (w.prov != nil && !w.provDone) {
		return false
	}
	var ids []string
	for _, id := range w.order {
		if w.changed[id].Status.Final() {
			ids = append(ids, id)
		}
	}
	return w.c.awaited(ids)
}

// restamp moves the session's clock (InformMeta.Now, the time its tasks
// are stamped with) to now, for a session held open past its Inform, and
// again to when it picks its next task up: a task queued after now but
// before the session looked (it is found all the same) must not be
// stamped as run before it was queued.
func (w *SessionWork) restamp(now time.Time) { w.meta.Now, w.stampPick = now, true }

// picked is the task nextTask hands out, with the session's clock moved
// to the moment it was picked when restamp asked for it.
func (w *SessionWork) picked(t *fleet.Task) *fleet.Task {
	if w.stampPick {
		w.meta.Now, w.stampPick = time.Now(), false
	}
	return t
}

// Checkpoint commits what the session has done so far, as End would, and
// lets it go on: the API clients waiting for its tasks get their results
// while the session stays open for a follow-up. now moves the session's
// clock (the time stamped on what it does next). With an RPC outstanding
// it does nothing.
func (w *SessionWork) Checkpoint(now time.Time) error {
	if w.ended || w.cur != nil || w.vtask != nil {
		return nil
	}
	final, err := w.commit()
	if err != nil {
		return fmt.Errorf("checkpoint session of %s: %w", w.dev.ID, err)
	}
	// A finished task is no longer the session's to hold: the API may
	// delete it as it can any finished task.
	done := make(map[string]bool, len(final))
	for _, id := range final {
		done[id] = true
	}
	kept := w.claimed[:0]
	var free []string
	for _, id := range w.claimed {
		if done[id] {
			free = append(free, id)
		} else {
			kept = append(kept, id)
		}
	}
	w.claimed = kept
	w.c.release(free)
	w.meta.Now = now
	return nil
}

// commit stores the session's task results, tree changes and presets'
// outcome in one transaction and reports the tasks it made final to their
// waiters; it returns their IDs.
func (w *SessionWork) commit() ([]string, error) {
	var (
		provFaults  map[string]provision.Fault
		provCleared []string
		provChanged []cwmp.ParameterValue
	)
	p := w.prov
	if p != nil && w.provCommitted {
		p = nil
	}
	if p != nil {
		p.finish()
		provFaults = p.faults()
		provCleared = p.cleared(provFaults)
		provChanged = p.run.Outcome().Changed
		if u, ok := p.crUsername(); ok {
			// The username the CPE has, when the presets found it as they
			// want it and wrote only the password: the values written
			// follow, and win.
			provChanged = append([]cwmp.ParameterValue{u}, provChanged...)
		}
	}
	if len(w.vtaskWrites) > 0 {
		// Before the presets' writes: those came later, and win.
		provChanged = append(slices.Clip(w.vtaskWrites), provChanged...)
	}
	provWrites := p != nil && (p.tree.changed() || len(provFaults) > 0 || len(provCleared) > 0)
	if len(w.changed) == 0 && len(w.ops) == 0 && !provWrites {
		return nil, nil
	}
	id := w.dev.ID
	now := w.meta.Now.UTC()
	var final []string
	err := w.c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		final = final[:0]
		// The presets ran before any task still in w.ops: their changes
		// go first, in a delta of their own.
		if provWrites {
			if err := p.commit(txn, ob, provFaults, provCleared); err != nil {
				return fmt.Errorf("presets: %w", err)
			}
		}
		for _, tid := range w.order {
			t := w.changed[tid]
			// Deleted through the API while the session ran: keep it deleted.
			if _, err := txn.Get([]byte(pTask + tid)); errors.Is(err, badger.ErrKeyNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if t.Status.Final() {
				if err := stageFinal(txn, ob, t); err != nil {
					return fmt.Errorf("task %s: %w", tid, err)
				}
				final = append(final, tid)
				continue
			}
			if err := setRecord(txn, pTask+tid, t); err != nil {
				return fmt.Errorf("task %s: %w", tid, err)
			}
			if fleet.IsDiagnostic(t.Name) {
				if err := setAwait(txn, t); err != nil {
					return fmt.Errorf("task %s: %w", tid, err)
				}
			}
		}
		if err := w.c.storeCRCredentials(txn, id, w.order, w.changed, provChanged); err != nil {
			return fmt.Errorf("connection-request credentials: %w", err)
		}
		delta := &fleet.DeviceDelta{Device: id, Edge: w.c.opts.EdgeID}
		if err := w.c.storeOps(txn, id, w.ops, now, delta); err != nil {
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
		return nil, err
	}
	// Stored: a later commit (End after a Checkpoint) must not store the
	// same again.
	changed := w.changed
	w.changed, w.order, w.ops, w.begun = map[string]*fleet.Task{}, nil, nil, nil
	if p != nil {
		w.provCommitted = true
	}
	// Task results are the CPE's answers to requests that may not be
	// repeatable (a reboot, a write); keep them through a power loss.
	if err := w.c.durable(); err != nil {
		return nil, err
	}
	for _, tid := range final {
		w.c.notify(tid)
		w.c.taskFinal(changed[tid])
	}
	return final, nil
}

// crCredentialParam reports whether name is a data model's
// ManagementServer.ConnectionRequestUsername (user) or ...Password (pass).
func crCredentialParam(name string) (user, pass bool) {
	for _, root := range [...]string{"InternetGatewayDevice.", "Device."} {
		switch name {
		case root + crUserParam:
			return true, false
		case root + crPassParam:
			return false, true
		}
	}
	return false, false
}

// storeCRCredentials copies the connection-request credentials that a
// successful setParameterValues task (or a preset) of this session wrote to the CPE into
// the device record, in the session's End transaction: the record is then
// the one place the Reacher reads them from. A CPE reads its password back
// as "", so the value the ACS set is the only copy it will ever have.
func (c *Cache) storeCRCredentials(txn *badger.Txn, id string, order []string, changed map[string]*fleet.Task, presets []cwmp.ParameterValue) error {
	var user, pass *string
	for _, tid := range order {
		t := changed[tid]
		if t.Name != fleet.TaskSetParameterValues || t.Status != fleet.StatusDone {
			continue
		}
		for i := range t.ParameterValues {
			switch u, p := crCredentialParam(t.ParameterValues[i].Name); {
			case u:
				user = &t.ParameterValues[i].Value
			case p:
				pass = &t.ParameterValues[i].Value
			}
		}
	}
	// A preset's writes count too (GenieACS's inform provision sets them).
	for i := range presets {
		switch u, p := crCredentialParam(presets[i].Name); {
		case u:
			user = &presets[i].Value
		case p:
			pass = &presets[i].Value
		}
	}
	if user == nil && pass == nil {
		return nil
	}
	return editDevice(txn, id, func(d *Device) bool {
		if user != nil {
			d.CRUsername = *user
		}
		if pass != nil {
			d.CRPassword = *pass
		}
		return true
	})
}

// storeOps applies the parameter changes of the tasks run to the
// device's stored tree in txn, adding what changed to delta.
func (c *Cache) storeOps(txn *badger.Txn, id string, ops []paramOp, now time.Time, delta *fleet.DeviceDelta) error {
	if len(ops) == 0 {
		return nil
	}
	tree, err := c.loadParamsForWrite(txn, id)
	if err != nil {
		return fmt.Errorf("load parameters: %w", err)
	}
	for _, op := range ops {
		applyOp(tree, op, now, delta)
	}
	if err := saveParams(txn, id, tree); err != nil {
		return fmt.Errorf("store parameters: %w", err)
	}
	return nil
}

// applyOp applies one parameter change to tree, adding it to delta.
func applyOp(tree *devParams, op paramOp, now time.Time, delta *fleet.DeviceDelta) {
	switch {
	case op.del:
		removed := false
		if strings.HasSuffix(op.path, ".") {
			removed = len(tree.removePrefix(op.path)) > 0
		} else {
			removed = tree.remove(op.path)
		}
		if removed {
			delta.Removed = append(delta.Removed, op.path)
		}
		return
	case op.prune:
		lo, hi := tree.prefixRange(op.path)
		kept := tree.ents[:lo]
		for _, e := range tree.ents[lo:hi] {
			if op.keep[e.path] {
				kept = append(kept, e)
			} else {
				delta.Removed = append(delta.Removed, e.path)
			}
		}
		tree.ents = append(kept, tree.ents[hi:]...)
		return
	}
	var rec paramRec
	if r, ok := tree.get(op.path); ok {
		rec = *r
	}
	if op.object || strings.HasSuffix(op.path, ".") {
		rec.Flags |= flagObject
	}
	if op.setWritable {
		rec.Flags |= flagWritableKnown
		if op.writable {
			rec.Flags |= flagWritable
		} else {
			rec.Flags &^= flagWritable
		}
	}
	if op.setAttr {
		rec.Flags |= flagAttrKnown
		rec.Notify = int8(op.notify)
		if op.access != nil {
			rec.AccessList = slices.Clone(op.access)
		}
	}
	if op.setValue {
		rec.Value, rec.Type, rec.Timestamp = op.value, op.typ, now.UnixNano()
		rec.Flags |= flagValue
		delta.Parameters = append(delta.Parameters, fleet.ParameterValue{Name: op.path, Value: op.value, Type: op.typ})
	} else if rec.Timestamp == 0 {
		rec.Timestamp = now.UnixNano()
	}
	tree.set(op.path, rec)
}
