package edge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
)

// errBadDownlink marks a downlink record the edge cannot store (beyond
// what DownRecord.Validate checks: an ID or name that cannot be a key).
var errBadDownlink = errors.New("edge: unusable downlink record")

// DownlinkAcked returns the highest per-edge and fleet-wide downlink
// sequences stored; the sync client resumes the downlink from them.
func (c *Cache) DownlinkAcked() (edgeSeq, sharedSeq uint64, err error) {
	err = c.db.View(func(txn *badger.Txn) error {
		var err error
		if edgeSeq, err = getSeq(txn, kDownEdge); err != nil {
			return err
		}
		sharedSeq, err = getSeq(txn, kDownShared)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read downlink positions: %w", err)
	}
	return edgeSeq, sharedSeq, nil
}

func getSeq(txn *badger.Txn, key string) (uint64, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%s: %d bytes, want 8", key, len(v))
		}
		seq = binary.BigEndian.Uint64(v)
		return nil
	})
	return seq, err
}

func setSeq(txn *badger.Txn, key string, seq uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return txn.Set([]byte(key), b[:])
}

// downEffects is what a committed downlink batch does outside Badger.
type downEffects struct {
	tasks []string // task IDs inserted or deleted: wake their waiters
	wake  []string // devices to send a connection request, in order
	// woken are the tasks marked Wake: an operator at the core asked for
	// them now, as an API client waiting here would (see awaitWoken).
	woken   []string
	invalid []error // records skipped as unusable, for the log
	// fileMetas are the files whose metadata was stored; fileTasks the
	// files new download tasks need: their blobs are fetched ahead.
	fileMetas []string
	fileTasks []string
	// tokens names the API tokens stored or deleted: the index re-reads them.
	tokens []string
	// presets: a preset was stored or deleted; the compiled set is stale.
	presets bool
	// provisions: a provision or virtual parameter script was stored or
	// deleted.
	provisions bool
}

// StoreDownlink stores downlink records and the positions they reach in
// one transaction (split in halves while Badger finds it too big), and
// returns once they are durable: the sync client acknowledges them to the
// core only then. It is idempotent: a record at or below the stored
// position of its log changes nothing, and so does a task whose ID exists.
// A record that fails validation is logged and skipped, but its position
// still advances, so one bad record never wedges the stream.
//
//   - DownTask inserts the task unless its ID exists (it is never echoed to
//     the outbox: the core sent it).
//   - DownCancel deletes the task if it is pending and no session holds it.
//   - DownDrop deletes the task if it is pending and no session holds it,
//     and confirms with a fleet.TaskDrop in the outbox in the same
//     transaction; a task the edge does not have is confirmed too, since it
//     cannot run here. A task that is running, ended, or holds a partial
//     result is left alone: its result is, or will be, in the outbox.
//   - DownPreset / DownPresetDelete store or delete s/<name>.
//   - DownProvision / DownProvisionDelete store or delete pr/<name>.
//   - DownVirtualParameter / DownVirtualParameterDelete store or delete
//     vp/<name>.
//   - DownFaultClear deletes a preset channel's fault the core cleared,
//     unless the edge recorded a newer one.
//   - DownFile / DownFileDelete store or delete the file metadata (the blob
//     is fetched when a task needs it: a new download task starts the
//     fetch once the batch is stored, see fetch.go).
//   - DownRevoke records the revoked edge name.
//   - DownToken / DownTokenRevoke store or delete the API token k/<name>
//     (the core's token replaces a local one of the same name).
//
// After each commit, waiters of the tasks touched are woken and OnWake is
// called for each device with a new or pending DownTask marked Wake.
func (c *Cache) StoreDownlink(recs []fleet.DownRecord) error {
	if err := c.refuseUnusable(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	// The sync client stores one batch at a time, so these positions only
	// move under this call; they spare resent records the claims below.
	edgePos, sharedPos, err := c.DownlinkAcked()
	if err != nil {
		return fmt.Errorf("store downlink: %w", err)
	}
	// Claim the tasks a cancellation or drop names, as a session does
	// before it sends one: no session can start such a task between the
	// check below and the commit, so a dropped task can never also run.
	// A task some session already holds is left to that session.
	claimed := map[string]bool{}
	for i := range recs {
		r := &recs[i]
		if (r.Shared && r.Seq <= sharedPos) || (!r.Shared && r.Seq <= edgePos) {
			continue
		}
		if (r.Kind == fleet.DownCancel || r.Kind == fleet.DownDrop) && validID(r.TaskID) {
			if _, seen := claimed[r.TaskID]; !seen {
				claimed[r.TaskID] = c.claim(r.TaskID)
			}
		}
	}
	defer func() {
		var ids []string
		for id, ok := range claimed {
			if ok {
				ids = append(ids, id)
			}
		}
		c.release(ids)
	}()
	for start, size := 0, len(recs); start < len(recs); {
		end := min(start+size, len(recs))
		eff, err := c.storeDown(recs[start:end], claimed)
		if errors.Is(err, badger.ErrTxnTooBig) && end-start > 1 {
			size = (end - start + 1) / 2
			continue
		}
		if err != nil {
			return fmt.Errorf("store downlink records %d..%d: %w", recs[start].Seq, recs[end-1].Seq, err)
		}
		c.downCommitted(eff)
		start = end
	}
	// The client acknowledges the records to the core after this returns.
	if err := c.durable(); err != nil {
		return fmt.Errorf("store downlink: %w", err)
	}
	return nil
}

// storeDown applies one batch in one transaction.
func (c *Cache) storeDown(recs []fleet.DownRecord, claimed map[string]bool) (downEffects, error) {
	var eff downEffects
	err := c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		eff = downEffects{}
		edgePos, err := getSeq(txn, kDownEdge)
		if err != nil {
			return fmt.Errorf("read downlink position: %w", err)
		}
		sharedPos, err := getSeq(txn, kDownShared)
		if err != nil {
			return fmt.Errorf("read shared downlink position: %w", err)
		}
		edge0, shared0 := edgePos, sharedPos
		// The first fleet-wide record ends the interim presets
		// (CacheOptions.InterimPresets): the core's rule from now on.
		eff.presets = shared0 == 0 && len(c.opts.InterimPresets) > 0
		for i := range recs {
			r := &recs[i]
			pos := &edgePos
			if r.Shared {
				pos = &sharedPos
			}
			if r.Seq <= *pos {
				continue // stored before: a resend after a lost ack
			}
			*pos = r.Seq
			if err := checkDown(r); err != nil {
				eff.invalid = append(eff.invalid, err)
				continue
			}
			if err := c.applyDown(txn, ob, r, claimed, &eff); err != nil {
				return fmt.Errorf("downlink %s record %d: %w", r.Kind, r.Seq, err)
			}
		}
		if edgePos != edge0 {
			if err := setSeq(txn, kDownEdge, edgePos); err != nil {
				return err
			}
		}
		if sharedPos != shared0 {
			return setSeq(txn, kDownShared, sharedPos)
		}
		return nil
	})
	return eff, err
}

// checkDown validates a record before anything of it is written, so an
// unusable one is skipped whole.
func checkDown(r *fleet.DownRecord) error {
	if err := r.Validate(); err != nil {
		return err
	}
	bad := func(what string) error {
		return fmt.Errorf("%w: %s record %d: %s", errBadDownlink, r.Kind, r.Seq, what)
	}
	switch r.Kind {
	case fleet.DownTask:
		if !validID(r.Task.ID) || !validID(r.Task.Device) {
			return bad(fmt.Sprintf("bad task ID %q or device %q", r.Task.ID, r.Task.Device))
		}
	case fleet.DownCancel, fleet.DownDrop:
		if !validID(r.TaskID) {
			return bad(fmt.Sprintf("bad task ID %q", r.TaskID))
		}
	case fleet.DownPreset:
		if !validName(r.Preset.Name) {
			return bad(fmt.Sprintf("bad preset name %q", r.Preset.Name))
		}
	case fleet.DownPresetDelete, fleet.DownRevoke:
		if !validName(r.Name) {
			return bad(fmt.Sprintf("bad name %q", r.Name))
		}
	case fleet.DownFileDelete:
		if !fleet.ValidFileName(r.Name) {
			return bad(fmt.Sprintf("bad file name %q", r.Name))
		}
	case fleet.DownTokenRevoke:
		if !fleet.ValidTokenName(r.Name) {
			return bad(fmt.Sprintf("bad token name %q", r.Name))
		}
	}
	return nil
}

// validName accepts a preset or edge name as the last part of a key: any
// text but NUL, within a key's reasonable length.
func validName(n string) bool {
	return n != "" && len(n) <= 1024 && !strings.ContainsRune(n, 0)
}

// applyDown stages one valid record. It returns only storage errors.
func (c *Cache) applyDown(txn *badger.Txn, ob *outboxTxn, r *fleet.DownRecord, claimed map[string]bool, eff *downEffects) error {
	switch r.Kind {
	case fleet.DownTask:
		t := *r.Task
		if t.Status == "" {
			t.Status = fleet.StatusPending
		}
		if t.Timestamp.IsZero() {
			t.Timestamp = time.Now().UTC()
		}
		err := insertTask(txn, &t)
		if errors.Is(err, ErrTaskExists) {
			// The ID is known: leave the task as it is (it may be
			// running or finished here), but a wake for a task still
			// waiting is still worth sending.
			var cur fleet.Task
			if err := getRecord(txn, pTask+t.ID, &cur); err != nil {
				return err
			}
			if r.Wake && !cur.Status.Final() {
				eff.wake = append(eff.wake, cur.Device)
				eff.woken = append(eff.woken, cur.ID)
			}
			return nil
		}
		if err != nil {
			return err
		}
		eff.tasks = append(eff.tasks, t.ID)
		if r.Wake && !t.Status.Final() {
			eff.wake = append(eff.wake, t.Device)
			eff.woken = append(eff.woken, t.ID)
		}
		if t.Name == fleet.TaskDownload && t.FileName != "" && t.URL == "" && !t.Status.Final() {
			eff.fileTasks = append(eff.fileTasks, t.FileName)
		}
	case fleet.DownCancel, fleet.DownDrop:
		var t fleet.Task
		switch err := getRecord(txn, pTask+r.TaskID, &t); {
		case errors.Is(err, ErrNotFound):
			if r.Kind == fleet.DownDrop {
				// Never here, or deleted before it ran: it cannot run
				// here, so the core may move it.
				return ob.add(&fleet.TaskDrop{Task: r.TaskID, Device: r.Device, Edge: c.opts.EdgeID})
			}
			return nil
		case err != nil:
			return err
		}
		if t.Status != fleet.StatusPending || !claimed[r.TaskID] {
			return nil // running or final: its result flows to the core
		}
		// A pending task sent in a session that dropped may have run;
		// the next edge resends it with the same CommandKey and
		// ParameterKey (its ID) as this one would, so it may move. One
		// with a partial result (an addObject whose instance exists)
		// has effects only this edge knows: it stays.
		if r.Kind == fleet.DownDrop && t.Result != nil {
			return nil
		}
		if err := deleteTaskKeys(txn, &t); err != nil {
			return err
		}
		eff.tasks = append(eff.tasks, t.ID)
		if r.Kind == fleet.DownDrop {
			return ob.add(&fleet.TaskDrop{Task: t.ID, Device: t.Device, Edge: c.opts.EdgeID})
		}
	case fleet.DownPreset:
		eff.presets = true
		return setCoreRecord(txn, pPreset+r.Preset.Name, r.Preset)
	case fleet.DownPresetDelete:
		eff.presets = true
		return deleteCoreRecord(txn, pPreset+r.Name)
	case fleet.DownProvision:
		eff.provisions = true
		return setCoreRecord(txn, pProv+r.Provision.Name, r.Provision)
	case fleet.DownProvisionDelete:
		eff.provisions = true
		return deleteCoreRecord(txn, pProv+r.Name)
	case fleet.DownVirtualParameter:
		eff.provisions = true
		return setCoreRecord(txn, pVParam+r.VirtualParameter.Name, r.VirtualParameter)
	case fleet.DownVirtualParameterDelete:
		eff.provisions = true
		return deleteCoreRecord(txn, pVParam+r.Name)
	case fleet.DownFaultClear:
		return clearChannelFault(txn, r.Fault)
	case fleet.DownFile:
		eff.fileMetas = append(eff.fileMetas, r.File.Name)
		return setRecord(txn, pFile+r.File.Name, r.File)
	case fleet.DownFileDelete:
		return txn.Delete([]byte(pFile + r.Name))
	case fleet.DownRevoke:
		return txn.Set([]byte(pRevoke+r.Name), nil)
	case fleet.DownToken:
		eff.tokens = append(eff.tokens, r.Token.Name)
		return setCBOR(txn, pToken+r.Token.Name, &tokenRec{Token: *r.Token})
	case fleet.DownTokenRevoke:
		eff.tokens = append(eff.tokens, r.Name)
		return txn.Delete([]byte(pToken + r.Name))
	}
	return nil
}

// downCommitted runs a committed batch's effects.
func (c *Cache) downCommitted(eff downEffects) {
	for _, err := range eff.invalid {
		c.log.Warn("downlink: skipped a record that cannot be stored", "err", err)
	}
	c.refreshTokens(eff.tokens)
	if eff.presets {
		c.presetsChanged()
	}
	if eff.provisions {
		c.provisionsChanged()
	}
	if len(eff.tasks) > 0 {
		c.taskGen.Add(1)
	}
	for _, id := range eff.tasks {
		c.notify(id)
	}
	if fs := c.files.Load(); fs != nil && len(eff.fileMetas)+len(eff.fileTasks) > 0 {
		// Fetch ahead: the blob crosses the backhaul now, not when the
		// CPE asks for it.
		fs.downlinkFiles(eff.fileMetas, eff.fileTasks)
	}
	// An operator at the core waits for these (its ?connection_request):
	// registered like a local API wait, a session that runs one may linger
	// for the operator's next task (SessionWork.Lingering). The entry goes
	// when the task is final or deleted, as a waiter's does.
	for _, id := range eff.woken {
		c.waiter(id)
	}
	for _, d := range eff.wake {
		// A session of the device lingering for follow-ups runs it now.
		c.queued(d)
	}
	if c.opts.OnWake == nil {
		return
	}
	woken := make(map[string]bool, len(eff.wake))
	for _, d := range eff.wake {
		if !woken[d] {
			woken[d] = true
			c.opts.OnWake(d)
		}
	}
}

// Presets returns the presets the core sent, in name order.
func (c *Cache) Presets() ([]fleet.Preset, error) {
	return viewRecords[fleet.Preset](c, pPreset, "presets")
}

// Provision returns the provision script the core sent under name, or
// ErrNotFound.
func (c *Cache) Provision(name string) (fleet.Provision, error) {
	var p fleet.Provision
	if !fleet.ValidProvisionName(name) {
		return p, fmt.Errorf("provision %q: %w", name, ErrNotFound)
	}
	if err := c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pProv+name, &p) }); err != nil {
		return fleet.Provision{}, fmt.Errorf("provision %s: %w", name, err)
	}
	return p, nil
}

// Provisions returns the provision scripts the core sent, in name order.
func (c *Cache) Provisions() ([]fleet.Provision, error) {
	return viewRecords[fleet.Provision](c, pProv, "provisions")
}

// Revoked reports whether the core revoked the edge with this name.
func (c *Cache) Revoked(edge string) (bool, error) {
	if !validName(edge) {
		return false, nil
	}
	var found bool
	err := c.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(pRevoke + edge))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("revoked %s: %w", edge, err)
	}
	return found, nil
}
