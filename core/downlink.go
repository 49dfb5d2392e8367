package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
)

// The downlink (core → edge) is two kinds of log in the FSM, written only
// by the apply path, so every node holds the same records under the same
// sequences and the sync server can serve an edge from any node's copy:
//
//   - one log per edge (dl/<edge>\0<seq>): tasks, cancellations and drops
//     for the devices homed there, with its own counter (dn/<edge>);
//   - one fleet-wide log (dg/<seq>): presets, files and revocations, with
//     its own counter (m/dgseq).
//
// An edge acknowledges the positions it stored (OpEdgeAck); its own log is
// deleted up to its position, the shared one is kept for edges yet to come.

// downPruneMax bounds how many acknowledged records one ack deletes, so an
// ack after a long outage does not make one huge transaction; the rest go
// with the next ack.
const downPruneMax = 4096

// defaultDownlinkMax is Downlink's limit when the caller gives none.
const defaultDownlinkMax = 1024

func downKey(edge string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(pDownEdge, edge, ""), seq)
}

func sharedKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(pDownShared), seq)
}

// nextSeq increments the counter at k and returns the new value.
func (w *wtx) nextSeq(k []byte) (uint64, error) {
	ks := string(k)
	cur, ok := w.seqs[ks]
	if !ok {
		v, found, err := w.get(k)
		if err != nil {
			return 0, err
		}
		if found {
			if len(v) != 8 {
				return 0, fmt.Errorf("downlink counter %q: %d bytes", k, len(v))
			}
			cur = binary.BigEndian.Uint64(v)
		}
	}
	cur++
	if err := w.set(k, binary.BigEndian.AppendUint64(nil, cur)); err != nil {
		return 0, err
	}
	if w.seqs == nil {
		w.seqs = make(map[string]uint64)
	}
	w.seqs[ks] = cur
	return cur, nil
}

// appendDown appends rec to edge's own downlink log.
func (p processor) appendDown(w *wtx, c *Command, edge string, rec fleet.DownRecord) error {
	seq, err := w.nextSeq(key(pDownSeq, edge))
	if err != nil {
		return storageError{err}
	}
	rec.Seq, rec.Shared, rec.Time = seq, false, c.Time
	return p.putRecord(w, downKey(edge, seq), &rec)
}

// appendShared appends rec to the fleet-wide downlink log.
func (p processor) appendShared(w *wtx, c *Command, rec fleet.DownRecord) error {
	seq, err := w.nextSeq([]byte(kSharedSeq))
	if err != nil {
		return storageError{err}
	}
	rec.Seq, rec.Shared, rec.Time = seq, true, c.Time
	return p.putRecord(w, sharedKey(seq), &rec)
}

// dispatchTask assigns t to edge and appends it to that edge's log. The
// caller stores t.
func (p processor) dispatchTask(w *wtx, c *Command, t *fleet.Task, edge string, wake bool) error {
	t.Edge = edge
	return p.appendDown(w, c, edge, fleet.DownRecord{Kind: fleet.DownTask, Task: t, TaskID: t.ID, Device: t.Device, Wake: wake})
}

// cancelAtEdge tells the edge holding t, if t is not final, to delete it,
// and leaves a tombstone so that a result the edge sends anyway (it had
// already started the task) does not bring the task back as an
// edge-created one.
func (p processor) cancelAtEdge(w *wtx, c *Command, t *fleet.Task) error {
	if t.Edge == "" || t.Status.Final() {
		return nil
	}
	if err := p.appendDown(w, c, t.Edge, fleet.DownRecord{Kind: fleet.DownCancel, TaskID: t.ID, Device: t.Device}); err != nil {
		return err
	}
	if err := w.set(key(pCancelled, t.ID), nil); err != nil {
		return storageError{err}
	}
	return nil
}

// rehome makes d's tasks follow it to d.Edge, its new home (the caller has
// set it and writes d afterwards). Tasks never dispatched go to the new
// home; a task that is not final and is held by another edge gets a
// DownDrop there and stays assigned to that edge until the edge confirms
// the drop (TaskDrop, then it is dispatched to the device's home of that
// moment) or reports a result (then it ends there): a task is never with
// two edges at once. A drop may be sent twice when a device moves on
// again before the old edge answers; the edge's answer is the same.
//
// The scan runs only when the device may have open tasks (devTasks), so
// a device that moves without tasks costs nothing extra.
func (p processor) rehome(w *wtx, c *Command, d *Device) error {
	if d.flags&devTasks == 0 || d.Edge == "" {
		return nil
	}
	pre := key(pDevTask, d.ID, "")
	open := false
	for _, k := range w.keys(pre) {
		t, ok, err := p.task(w, string(k[len(pre):]))
		if err != nil {
			return storageError{err}
		}
		if !ok || t.Status.Final() {
			continue
		}
		open = true
		switch {
		case t.Edge == "" && t.Status == fleet.StatusPending:
			// Wake: the device has just shown up at this edge with work
			// waiting for it; its next periodic inform may be hours away.
			if err := p.dispatchTask(w, c, t, d.Edge, true); err != nil {
				return err
			}
			if err := p.putFleet(w, key(pTask, t.ID), t); err != nil {
				return err
			}
		case t.Edge != "" && t.Edge != d.Edge:
			if err := p.appendDown(w, c, t.Edge, fleet.DownRecord{Kind: fleet.DownDrop, TaskID: t.ID, Device: d.ID}); err != nil {
				return err
			}
		}
	}
	if !open {
		d.flags &^= devTasks
	}
	return nil
}

// pruneDown deletes the edge's log records at or below upTo, at most
// downPruneMax of them, seeking from the start of the log (acknowledged
// records are gone, so the first key is the oldest left).
func (p processor) pruneDown(w *wtx, edge string, upTo uint64) error {
	if upTo == 0 {
		return nil
	}
	pre := key(pDownEdge, edge, "")
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = pre
	it := w.txn.NewIterator(opts)
	var dead [][]byte
	for it.Seek(pre); it.ValidForPrefix(pre) && len(dead) < downPruneMax; it.Next() {
		k := it.Item().Key()
		if len(k) != len(pre)+8 || binary.BigEndian.Uint64(k[len(pre):]) > upTo {
			break
		}
		dead = append(dead, it.Item().KeyCopy(nil))
	}
	// Close before deleting: Badger forbids writes under an open iterator.
	it.Close()
	for _, k := range dead {
		if err := w.del(k); err != nil {
			return storageError{err}
		}
	}
	return nil
}

// revocation is the record stored under rv/<edge>.
type revocation struct {
	Time time.Time `cbor:"1,keyasint"`
}

// revokeEdge puts an edge on the revocation list and tells every edge.
// Revoking twice changes nothing.
func (p processor) revokeEdge(w *wtx, c *Command) error {
	if err := checkName("edge ID", c.Name); err != nil {
		return err
	}
	e, ok, err := p.edge(w, c.Name)
	if err != nil {
		return storageError{err}
	}
	if !ok {
		e = &Edge{ID: c.Name}
	}
	if !e.Revoked.IsZero() {
		return nil
	}
	e.Revoked = c.Time
	if err := p.putRecord(w, key(pRevoked, c.Name), revocation{Time: c.Time}); err != nil {
		return err
	}
	p.putEdge(w, e)
	return p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownRevoke, Name: c.Name})
}

// Downlink returns up to max records for edge (max ≤ 0 means 1024): first
// its own log above edgeAfter, then the fleet-wide log above sharedAfter,
// each in sequence order, read in one consistent view.
func (f *FSM) Downlink(edge string, edgeAfter, sharedAfter uint64, max int) ([]fleet.DownRecord, error) {
	if err := checkName("edge ID", edge); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = defaultDownlinkMax
	}
	var out []fleet.DownRecord
	collect := func(_, v []byte) (bool, error) {
		if len(out) == max {
			return false, nil
		}
		var r fleet.DownRecord
		if err := decodeRecord(v, &r); err != nil {
			return false, err
		}
		out = append(out, r)
		return len(out) < max, nil
	}
	err := f.view(func(txn *badger.Txn) error {
		if edgeAfter < math.MaxUint64 {
			if err := scan(txn, key(pDownEdge, edge, ""), downKey(edge, edgeAfter+1), collect); err != nil {
				return err
			}
		}
		if len(out) == max || sharedAfter == math.MaxUint64 {
			return nil
		}
		return scan(txn, []byte(pDownShared), sharedKey(sharedAfter+1), collect)
	})
	if err != nil {
		return nil, fmt.Errorf("downlink for %s: %w", edge, err)
	}
	return out, nil
}

// Edge returns the core's record of one edge.
func (f *FSM) Edge(id string) (*Edge, error) {
	var e Edge
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pEdge, id))
		if err != nil {
			return err
		}
		return decodeRecord(b, &e)
	})
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", id, err)
	}
	return &e, nil
}

// Revoked reports whether the edge's name is on the revocation list.
func (f *FSM) Revoked(edge string) (bool, error) {
	err := f.view(func(txn *badger.Txn) error {
		_, err := getRaw(txn, key(pRevoked, edge))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("revocation of %s: %w", edge, err)
	}
}
