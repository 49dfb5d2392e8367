package edge

import (
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// A getParameterValues task that names VirtualParameters.<name> cannot go
// to the CPE as it is: those values are the scripts'. It runs through the
// provisioning engine instead, as GenieACS runs every task: each name
// declared fresh as of the session on the task's channel ("task_<id>"),
// the virtual parameters' scripts run (their own reads go to the CPE), and
// the task ends with the values the tree then holds, or with the
// channel's fault. Other tasks keep their own executor.

// hasVirtualName reports whether a task's names reach a virtual parameter.
func hasVirtualName(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, provision.RootVirtualParameters+".") {
			return true
		}
	}
	return false
}

// startVirtualTask runs t through the engine; the session's RPCs come
// from it (vtaskNext) until it is done.
func (w *SessionWork) startVirtualTask(t *fleet.Task) error {
	if err := w.flushOps(); err != nil {
		return err
	}
	now := w.meta.Now.UTC()
	p := &provSession{
		w:        w,
		tree:     newCacheTree(w.c.db, w.dev.ID, now, w.dev.RootListed, w.informed),
		now:      now,
		started:  time.Now(),
		faulted:  map[string]bool{},
		stopped:  map[string]provision.Fault{},
		writes:   map[string]int{},
		changers: map[string]*preset.Compiled{},
		vruns:    map[string]int{},
		stage:    stageMain,
		task:     t,
	}
	p.tree.setSynth(w.dev)
	p.run = provision.NewRun(provision.Options{Now: now, DeviceID: w.dev.ID, Files: w.provisionFile,
		VirtualParameters: w.c.virtualNames()})
	col, err := p.run.Channel(provision.TaskChannel(t.ID))
	if err != nil {
		return err
	}
	for _, name := range t.ParameterNames {
		if err := col.Declare(name, provision.Timestamps{Value: p.run.Now()}, provision.Values{}); err != nil {
			return fmt.Errorf("parameter %s: %w", name, err)
		}
	}
	t.Status = fleet.StatusRunning
	t.Attempts++
	t.Updated = now
	w.touch(t)
	w.vtask = p
	return nil
}

// vtaskNext returns the next RPC of the task the engine runs, or nil once
// it is done: then the task ends, and its tree changes are committed.
func (w *SessionWork) vtaskNext() cwmp.Message {
	p := w.vtask
	if m := p.next(); m != nil {
		return m
	}
	w.vtask = nil
	t := p.task
	if f, ok := p.run.Outcome().Faults[provision.TaskChannel(t.ID)]; ok {
		w.finish(t, fleet.StatusFault, nil, &fleet.TaskFault{Code: f.Code, Message: f.Message, Detail: f.Detail})
	} else {
		res := &fleet.TaskResult{}
		p.tree.begin()
		for _, name := range t.ParameterNames {
			ms, _ := provision.Match(p.tree, name)
			for _, e := range ms {
				if !e.Object && !e.ValueTime.IsZero() {
					res.ParameterValues = append(res.ParameterValues, fleet.ParameterValue{Name: e.Path, Value: e.Value, Type: e.Type})
				}
			}
		}
		p.tree.end()
		w.finish(t, fleet.StatusDone, res, nil)
	}
	err := w.c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error { return p.commit(txn, ob, nil, nil) })
	if err != nil {
		w.c.log.Error("task's tree changes not stored", "device", w.dev.ID, "task", t.ID, "err", err)
	}
	return nil
}
