package core

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
)

// Rollout keys in the FSM's DB. Snapshots stream every live key, so they
// carry rollouts like everything else.
const (
	pRollout    = "ro/" // ro/<name> → Rollout
	pRolloutDev = "rd/" // rd/<name>\0<device> → RolloutDevice
)

// Rollout control actions (OpRolloutControl).
const (
	RolloutActionPause  = "pause"
	RolloutActionResume = "resume"
	RolloutActionAbort  = "abort"
	RolloutActionRetry  = "retry"
)

// RolloutStep is one step of a rollout the leader decided from the FSM's
// state and its clock. The FSM applies each part only where the stored
// state still allows it, so a step proposed twice, or by a leader whose
// view was stale, changes nothing twice: a device is dispatched only while
// pending, moved only from the state and task the step names, a wave
// started only right after the latest one.
type RolloutStep struct {
	// Start, when above zero, starts wave Start-1 (it must follow the
	// latest wave started).
	Start int `cbor:"1,keyasint,omitempty"`
	// Moves change devices' states.
	Moves []RolloutMove `cbor:"2,keyasint,omitempty"`
	// Dispatch creates a download task for each pending device named.
	Dispatch []RolloutDispatch `cbor:"3,keyasint,omitempty"`
	// Finished marks waves (their indexes) whose devices are all done,
	// faulted or cancelled.
	Finished []int `cbor:"4,keyasint,omitempty"`
	// Pause pauses a running rollout, saying why.
	Pause string `cbor:"5,keyasint,omitempty"`
	// Done ends a running rollout whose devices are all terminal.
	Done string `cbor:"6,keyasint,omitempty"`
}

func (s *RolloutStep) empty() bool {
	return s.Start == 0 && len(s.Moves) == 0 && len(s.Dispatch) == 0 && len(s.Finished) == 0 && s.Pause == "" && s.Done == ""
}

// RolloutMove moves a device from state From (with task Task) to To.
type RolloutMove struct {
	Device  string `cbor:"1,keyasint"`
	Task    string `cbor:"2,keyasint,omitempty"`
	From    string `cbor:"3,keyasint"`
	To      string `cbor:"4,keyasint"`
	Fault   string `cbor:"5,keyasint,omitempty"`
	Message string `cbor:"6,keyasint,omitempty"`
	// Cancel asks the FSM to cancel the device's task too (a timed-out
	// download must not run later unseen).
	Cancel bool `cbor:"7,keyasint,omitempty"`
}

// RolloutDispatch names the task ID (a ULID the leader made) for one
// pending device.
type RolloutDispatch struct {
	Device string `cbor:"1,keyasint"`
	Task   string `cbor:"2,keyasint"`
}

func (p processor) rollout(w *wtx, name string) (*Rollout, error) {
	v, ok, err := w.get(key(pRollout, name))
	if err != nil {
		return nil, storageError{err}
	}
	if !ok {
		return nil, fmt.Errorf("rollout %s: %w", name, ErrNotFound)
	}
	var r Rollout
	if err := decodeRecord(v, &r); err != nil {
		return nil, storageError{err}
	}
	return &r, nil
}

func (p processor) rolloutDevice(w *wtx, name, dev string) (*RolloutDevice, bool, error) {
	v, ok, err := w.get(key(pRolloutDev, name, dev))
	if err != nil || !ok {
		return nil, false, err
	}
	var d RolloutDevice
	if err := decodeRecord(v, &d); err != nil {
		return nil, false, err
	}
	return &d, true, nil
}

func (p processor) rolloutCreate(w *wtx, c *Command) error {
	r := c.Rollout
	if r == nil {
		return fmt.Errorf("%w: RolloutCreate without a rollout", ErrBadRequest)
	}
	if err := checkName("rollout name", r.Name); err != nil {
		return err
	}
	if len(r.WaveSizes) == 0 || len(r.WaveSizes) != len(r.Percents) || len(c.RolloutDevices) > maxRolloutDevices {
		return fmt.Errorf("%w: rollout %s: bad plan", ErrBadRequest, r.Name)
	}
	total := 0
	for _, n := range r.WaveSizes {
		total += n
	}
	if total != len(c.RolloutDevices) {
		return fmt.Errorf("%w: rollout %s: waves hold %d devices, %d given", ErrBadRequest, r.Name, total, len(c.RolloutDevices))
	}
	if _, ok, err := w.get(key(pRollout, r.Name)); err != nil {
		return storageError{err}
	} else if ok {
		return fmt.Errorf("rollout %s: %w: the name is taken", r.Name, ErrConflict)
	}
	for _, d := range c.RolloutDevices {
		if d == nil || d.Device == "" || d.Wave < 0 || d.Wave >= len(r.WaveSizes) {
			return fmt.Errorf("%w: rollout %s: bad device entry", ErrBadRequest, r.Name)
		}
	}
	nr := *r
	nr.State, nr.Reason, nr.Wave = RolloutRunning, "", -1
	nr.Created, nr.Updated = c.Time, c.Time
	nr.WaveStarted = make([]time.Time, len(r.WaveSizes))
	nr.WaveFinished = make([]time.Time, len(r.WaveSizes))
	nr.Tolerated = make([]int, len(r.WaveSizes))
	if err := p.putRecord(w, key(pRollout, r.Name), &nr); err != nil {
		return err
	}
	for _, d := range c.RolloutDevices {
		nd := *d
		nd.State, nd.Task, nd.Attempts, nd.Updated = RDPending, "", 0, c.Time
		if err := p.putRecord(w, key(pRolloutDev, r.Name, d.Device), &nd); err != nil {
			return err
		}
	}
	return nil
}

// rolloutStep applies a leader's step; the value is the number of tasks
// it created.
func (p processor) rolloutStep(w *wtx, c *Command) (any, error) {
	s := c.RolloutStep
	if s == nil {
		return nil, fmt.Errorf("%w: RolloutStep without a step", ErrBadRequest)
	}
	r, err := p.rollout(w, c.Name)
	if err != nil {
		return nil, err
	}
	live := r.State == RolloutRunning || r.State == RolloutPaused
	if !live {
		return 0, nil // aborted or done: nothing moves any more
	}
	changed := false
	// Moves first: they may free a wave to finish, or a slot to dispatch.
	for _, m := range s.Moves {
		d, ok, err := p.rolloutDevice(w, r.Name, m.Device)
		if err != nil {
			return nil, storageError{err}
		}
		if !ok || d.State != m.From || d.Task != m.Task {
			continue // already moved: a repeated or stale step
		}
		if m.Cancel && d.Task != "" {
			if err := p.cancelRolloutTask(w, c, d.Task); err != nil {
				return nil, err
			}
		}
		d.State, d.Fault, d.Message, d.Updated = m.To, m.Fault, m.Message, c.Time
		if m.To == RDNotBack {
			d.Transferred = c.Time
		}
		if err := p.putRecord(w, key(pRolloutDev, r.Name, d.Device), d); err != nil {
			return nil, err
		}
		changed = true
	}
	for _, i := range s.Finished {
		if i < 0 || i > r.Wave || !r.WaveFinished[i].IsZero() {
			continue
		}
		open, err := p.rolloutOpen(w, r.Name, i)
		if err != nil {
			return nil, err
		}
		if !open {
			r.WaveFinished[i] = c.Time
			changed = true
		}
	}
	if s.Start > 0 && r.State == RolloutRunning && s.Start-1 == r.Wave+1 && s.Start-1 < len(r.WaveSizes) &&
		(r.Wave < 0 || !r.WaveFinished[r.Wave].IsZero()) {
		r.Wave++
		r.WaveStarted[r.Wave] = c.Time
		changed = true
	}
	created := 0
	if len(s.Dispatch) > 0 && r.State == RolloutRunning {
		var tasks []*fleet.Task
		var devs []*RolloutDevice
		for _, dp := range s.Dispatch {
			d, ok, err := p.rolloutDevice(w, r.Name, dp.Device)
			if err != nil {
				return nil, storageError{err}
			}
			if !ok || d.State != RDPending || d.Wave > r.Wave {
				continue
			}
			tasks = append(tasks, &fleet.Task{ID: dp.Task, Device: d.Device, Name: fleet.TaskDownload, Status: fleet.StatusPending,
				Timestamp: c.Time, FileName: r.File, FileType: r.FileType, Rollout: r.Name})
			devs = append(devs, d)
		}
		if len(tasks) > 0 {
			sub := Command{V: c.V, Op: OpCreateTasks, Time: c.Time, Tasks: tasks, SkipMissing: true, Wake: r.Mode == RolloutModeWake}
			ids, err := p.createTasks(w, &sub)
			if err != nil {
				return nil, err
			}
			for i, d := range devs {
				d.Attempts++
				d.Task, d.Dispatched, d.Transferred, d.Updated = tasks[i].ID, c.Time, time.Time{}, c.Time
				d.Fault, d.Message = "", ""
				d.State = RDDownloading
				if !slices.Contains(ids, tasks[i].ID) {
					// Its task already existed (a replay) or its device is gone.
					if _, exists, err := w.get(key(pTask, tasks[i].ID)); err != nil {
						return nil, storageError{err}
					} else if !exists {
						d.State, d.Task, d.Fault, d.Message = RDFaulted, "", FaultTaskGone, "the device no longer exists"
					}
				}
				if d.State == RDDownloading {
					if t, ok, err := p.task(w, tasks[i].ID); err != nil {
						return nil, storageError{err}
					} else if ok {
						d.Edge = t.Edge
					}
				}
				if err := p.putRecord(w, key(pRolloutDev, r.Name, d.Device), d); err != nil {
					return nil, err
				}
			}
			created = len(ids)
			changed = true
		}
	}
	if s.Pause != "" && r.State == RolloutRunning {
		r.State, r.Reason = RolloutPaused, s.Pause
		changed = true
	}
	if s.Done != "" && r.State == RolloutRunning {
		open, err := p.rolloutOpen(w, r.Name, -1)
		if err != nil {
			return nil, err
		}
		if !open {
			r.State, r.Reason = RolloutDone, s.Done
			changed = true
		}
	}
	if changed {
		r.Updated = c.Time
		if err := p.putRecord(w, key(pRollout, r.Name), r); err != nil {
			return nil, err
		}
	}
	return created, nil
}

// rolloutOpen reports whether any device of the rollout (of wave wave;
// -1: of any) is not terminal.
func (p processor) rolloutOpen(w *wtx, name string, wave int) (bool, error) {
	pre := key(pRolloutDev, name, "")
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pre
	it := w.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(pre); it.ValidForPrefix(pre); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return false, storageError{err}
		}
		var d RolloutDevice
		if err := decodeRecord(v, &d); err != nil {
			return false, storageError{err}
		}
		if (wave < 0 || d.Wave == wave) && !rdTerminal(&d) {
			return true, nil
		}
	}
	return false, nil
}

// cancelRolloutTask cancels a rollout's task through the normal path
// (the edge holding it is told), unless it is already gone or final.
func (p processor) cancelRolloutTask(w *wtx, c *Command, id string) error {
	t, ok, err := p.task(w, id)
	if err != nil {
		return storageError{err}
	}
	if !ok || t.Status.Final() {
		return nil
	}
	sub := Command{V: c.V, Op: OpCancelTask, Time: c.Time, TaskID: id}
	return p.cancelTask(w, &sub)
}

// rolloutControl applies an operator's pause, resume, abort or retry.
func (p processor) rolloutControl(w *wtx, c *Command) error {
	r, err := p.rollout(w, c.Name)
	if err != nil {
		return err
	}
	switch c.Action {
	case RolloutActionPause:
		switch r.State {
		case RolloutRunning:
			r.State, r.Reason = RolloutPaused, "paused by an operator"
		case RolloutPaused:
			return nil
		default:
			return fmt.Errorf("rollout %s is %s: %w: only a running rollout can be paused", r.Name, r.State, ErrConflict)
		}
	case RolloutActionResume:
		switch r.State {
		case RolloutPaused:
			// The faults seen so far in the waves started are accepted:
			// the rule counts only new ones.
			if err := p.rolloutTolerate(w, r); err != nil {
				return err
			}
			r.State, r.Reason = RolloutRunning, ""
		case RolloutRunning:
			return nil
		default:
			return fmt.Errorf("rollout %s is %s: %w: only a paused rollout can be resumed", r.Name, r.State, ErrConflict)
		}
	case RolloutActionAbort:
		switch r.State {
		case RolloutRunning, RolloutPaused:
		case RolloutAborted:
			return nil
		default:
			return fmt.Errorf("rollout %s is %s: %w: it cannot be aborted", r.Name, r.State, ErrConflict)
		}
		if err := p.rolloutEach(w, r.Name, func(d *RolloutDevice) (bool, error) {
			switch d.State {
			case RDPending:
			case RDDownloading:
				if err := p.cancelRolloutTask(w, c, d.Task); err != nil {
					return false, err
				}
			default:
				return false, nil
			}
			d.State, d.Fault, d.Message, d.Updated = RDCancelled, "", "the rollout was aborted", c.Time
			return true, nil
		}); err != nil {
			return err
		}
		r.State, r.Reason = RolloutAborted, "aborted by an operator"
	case RolloutActionRetry:
		if r.State == RolloutAborted {
			return fmt.Errorf("rollout %s is aborted: %w: nothing can be retried", r.Name, ErrConflict)
		}
		n := 0
		if err := p.rolloutEach(w, r.Name, func(d *RolloutDevice) (bool, error) {
			if d.State != RDFaulted {
				return false, nil
			}
			n++
			d.State, d.Task, d.Updated = RDPending, "", c.Time
			if d.Wave < len(r.WaveFinished) {
				r.WaveFinished[d.Wave] = time.Time{}
				r.Tolerated[d.Wave] = 0
			}
			return true, nil
		}); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if r.State == RolloutDone {
			r.State, r.Reason = RolloutRunning, ""
		}
	default:
		return fmt.Errorf("%w: rollout action %q: want pause, resume, abort or retry", ErrBadRequest, c.Action)
	}
	r.Updated = c.Time
	return p.putRecord(w, key(pRollout, r.Name), r)
}

// rolloutDelete removes a finished rollout: its record and its devices'.
// The download tasks it made stay (they are the devices' history).
// Deleting a rollout already gone is ErrNotFound, as for any record, so
// a retried DELETE says so rather than succeeding twice.
func (p processor) rolloutDelete(w *wtx, c *Command) error {
	r, err := p.rollout(w, c.Name)
	if err != nil {
		return err
	}
	if r.State == RolloutRunning || r.State == RolloutPaused {
		return fmt.Errorf("rollout %s is %s: %w: abort it first (only a done or aborted rollout can be deleted)", r.Name, r.State, ErrConflict)
	}
	if err := w.delPrefix(key(pRolloutDev, r.Name, "")); err != nil {
		return storageError{err}
	}
	if err := w.del(key(pRollout, r.Name)); err != nil {
		return storageError{err}
	}
	return nil
}

// rolloutTolerate records each started wave's current faults as accepted.
func (p processor) rolloutTolerate(w *wtx, r *Rollout) error {
	counts := make([]int, len(r.WaveSizes))
	err := p.rolloutEach(w, r.Name, func(d *RolloutDevice) (bool, error) {
		if d.State == RDFaulted && d.Wave < len(counts) {
			counts[d.Wave]++
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	copy(r.Tolerated, counts)
	return nil
}

// rolloutEach calls fn for every device of the rollout and stores those
// it changed (fn returned true).
func (p processor) rolloutEach(w *wtx, name string, fn func(d *RolloutDevice) (bool, error)) error {
	pre := key(pRolloutDev, name, "")
	for _, k := range w.keys(pre) {
		d, ok, err := p.rolloutDevice(w, name, string(k[len(pre):]))
		if err != nil {
			return storageError{err}
		}
		if !ok {
			continue
		}
		changed, err := fn(d)
		if err != nil {
			return err
		}
		if changed {
			if err := p.putRecord(w, k, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- reads ----

// Rollout returns one rollout and its devices (in plan order).
func (f *FSM) Rollout(name string) (*Rollout, []*RolloutDevice, error) {
	var r Rollout
	var devs []*RolloutDevice
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pRollout, name))
		if err != nil {
			return err
		}
		if err := decodeRecord(b, &r); err != nil {
			return err
		}
		devs, err = readRolloutDevices(txn, name)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("rollout %s: %w", name, err)
	}
	return &r, devs, nil
}

// Rollouts returns every rollout, in name order, without devices.
func (f *FSM) Rollouts() ([]*Rollout, error) {
	var out []*Rollout
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pRollout), nil, func(_, v []byte) (bool, error) {
			var r Rollout
			if err := decodeRecord(v, &r); err != nil {
				return false, err
			}
			out = append(out, &r)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

func readRolloutDevices(txn *badger.Txn, name string) ([]*RolloutDevice, error) {
	var devs []*RolloutDevice
	err := scan(txn, key(pRolloutDev, name, ""), nil, func(_, v []byte) (bool, error) {
		var d RolloutDevice
		if err := decodeRecord(v, &d); err != nil {
			return false, err
		}
		devs = append(devs, &d)
		return true, nil
	})
	slices.SortFunc(devs, func(a, b *RolloutDevice) int { return a.Order - b.Order })
	return devs, err
}

// rolloutObs is what the leader needs to know of a rollout device's CPE
// and task to move it on.
type rolloutObs struct {
	exists     bool
	edge       string
	version    string
	lastInform time.Time
	task       *fleet.Task // nil when the task is gone
}

// observeRollout reads, in one transaction, the device record (home,
// version, last inform) and the current task of each device in devs.
func (f *FSM) observeRollout(devs []*RolloutDevice) (map[string]rolloutObs, error) {
	out := make(map[string]rolloutObs, len(devs))
	err := f.view(func(txn *badger.Txn) error {
		for _, rd := range devs {
			var o rolloutObs
			b, err := getRaw(txn, key(pDevice, rd.Device))
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			default:
				nd := nbiDevice{txn: txn}
				ov, err := decodeDevice(b, &nd.d, true)
				if err != nil {
					return err
				}
				nd.ov = ov
				o.exists, o.edge, o.lastInform = true, nd.d.Edge, nd.d.LastInform
				for _, p := range SoftwareVersionParams {
					if v, _, ok := nd.Param(p); ok {
						o.version = v
						break
					}
				}
				if nd.err != nil {
					return nd.err
				}
			}
			if rd.Task != "" {
				tb, err := getRaw(txn, key(pTask, rd.Task))
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					return err
				default:
					var t fleet.Task
					if err := fleet.Unmarshal(tb, &t); err != nil {
						return err
					}
					o.task = &t
				}
			}
			out[rd.Device] = o
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observe rollout devices: %w", err)
	}
	return out, nil
}

// deviceVersions reads the software version of each device (for a new
// rollout's plan).
func (f *FSM) deviceVersions(ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	err := f.view(func(txn *badger.Txn) error {
		for _, id := range ids {
			b, err := getRaw(txn, key(pDevice, id))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			nd := nbiDevice{txn: txn}
			ov, err := decodeDevice(b, &nd.d, true)
			if err != nil {
				return err
			}
			nd.ov = ov
			for _, p := range SoftwareVersionParams {
				if v, _, ok := nd.Param(p); ok {
					out[id] = v
					break
				}
			}
			if nd.err != nil {
				return nd.err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read software versions: %w", err)
	}
	return out, nil
}
