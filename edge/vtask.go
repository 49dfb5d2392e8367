package edge

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// A task that names VirtualParameters.<name> cannot go to the CPE as it
// is: those values are the scripts'. It runs through the provisioning
// engine instead, as GenieACS runs every task, on the task's channel
// ("task_<id>"): a getParameterValues declares each name fresh as of the
// session, a setParameterValues declares each value (GenieACS's value
// provision: the script runs with it in args[1] and what it returns is the
// new value; its own declarations, say the KeyPassphrase it maps to, go to
// the CPE), a refreshObject of VirtualParameters[.<name>] refreshes them.
// Real parameters in the same task are declared alongside, as GenieACS
// declares a task's provisions together. The task ends with the values
// the tree then holds, or with the channel's fault. Other tasks keep
// their own executor.

// virtualTask reports whether t names a virtual parameter, so runs
// through the engine.
func virtualTask(t *fleet.Task) bool {
	switch t.Name {
	case fleet.TaskGetParameterValues:
		return hasVirtualName(t.ParameterNames)
	case fleet.TaskSetParameterValues:
		for _, pv := range t.ParameterValues {
			if isVirtualName(pv.Name) {
				return true
			}
		}
	case fleet.TaskRefreshObject:
		return t.ObjectName == provision.RootVirtualParameters || isVirtualName(t.ObjectName)
	}
	return false
}

// isVirtualName reports whether a name is under VirtualParameters.
func isVirtualName(n string) bool {
	return strings.HasPrefix(n, provision.RootVirtualParameters+".")
}

// hasVirtualName reports whether a task's names reach a virtual parameter.
func hasVirtualName(names []string) bool {
	return slices.ContainsFunc(names, isVirtualName)
}

// virtualTaskNames are the names a virtual task reads back into its
// result: what it asked for or set, a refresh's as a pattern.
func virtualTaskNames(t *fleet.Task) []string {
	switch t.Name {
	case fleet.TaskSetParameterValues:
		out := make([]string, len(t.ParameterValues))
		for i, pv := range t.ParameterValues {
			out[i] = pv.Name
		}
		return out
	case fleet.TaskRefreshObject:
		if n := strings.TrimSuffix(t.ObjectName, "."); n != provision.RootVirtualParameters {
			return []string{n}
		}
		return []string{provision.RootVirtualParameters + ".*"}
	}
	return t.ParameterNames
}

// declareVirtualTask declares what t asks for on col.
func declareVirtualTask(col *provision.Collector, t *fleet.Task, now time.Time) error {
	if t.Name == fleet.TaskSetParameterValues {
		list, err := provision.TaskProvisions(t)
		if err != nil {
			return err
		}
		return col.Provisions(list)
	}
	for _, name := range virtualTaskNames(t) {
		if err := col.Declare(name, provision.Timestamps{Value: now}, provision.Values{}); err != nil {
			return fmt.Errorf("parameter %s: %w", name, err)
		}
	}
	return nil
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
		tree:     w.newTree(now),
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
	p.run = provision.NewRun(provision.Options{BatchSize: w.gpvBatch(w.c.opts.GPVBatchSize), Now: now, DeviceID: w.dev.ID, Files: w.provisionFile,
		VirtualParameters: w.c.virtualNames()})
	col, err := p.run.Channel(provision.TaskChannel(t.ID))
	if err != nil {
		return err
	}
	if err := declareVirtualTask(col, t, p.run.Now()); err != nil {
		return err
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
	w.vtaskWrites = append(w.vtaskWrites, p.run.Outcome().Changed...)
	if f, ok := p.run.Outcome().Faults[provision.TaskChannel(t.ID)]; ok {
		w.finish(t, fleet.StatusFault, nil, &fleet.TaskFault{Code: f.Code, Message: f.Message, Detail: f.Detail})
	} else {
		res := &fleet.TaskResult{}
		for _, name := range virtualTaskNames(t) {
			ms, _ := provision.Match(p.tree, name)
			for _, e := range ms {
				if !e.Object && !e.ValueTime.IsZero() {
					res.ParameterValues = append(res.ParameterValues, fleet.ParameterValue{Name: e.Path, Value: e.Value, Type: e.Type})
				}
			}
		}
		w.finish(t, fleet.StatusDone, res, nil)
	}
	err := w.c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error { return p.commit(txn, ob, nil, nil) })
	if err != nil {
		w.c.log.Error("task's tree changes not stored", "device", w.dev.ID, "task", t.ID, "err", err)
	}
	return nil
}
