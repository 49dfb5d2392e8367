package core

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
)

// countRollout counts a device in state into c.
func countRollout(c *fleet.RolloutCounts, state string) {
	c.Total++
	switch state {
	case RDPending:
		c.Pending++
	case RDDownloading:
		c.Downloading++
	case RDNotBack:
		c.NotBack++
	case RDDone:
		c.Done++
	case RDFaulted:
		c.Faulted++
	case RDCancelled:
		c.Cancelled++
	}
}

// rolloutView summarises r and its devices at now; withDevices lists them.
func rolloutView(r *Rollout, devs []*RolloutDevice, withDevices bool, now time.Time) fleet.RolloutView {
	v := fleet.RolloutView{
		Name: r.Name, File: r.File, Version: r.Version, Filter: r.Filter, State: r.State, Reason: r.Reason,
		Mode: r.Mode, Window: r.Window, Soak: r.Soak.String(), Timeout: r.Timeout.String(),
		MaxFaultRate: r.MaxFaultRate, MinWaveSize: r.MinWaveSize, PerEdge: r.PerEdge,
		Created: r.Created, Updated: r.Updated, Wave: r.Wave + 1, Skipped: r.Skipped,
		Waves: make([]fleet.RolloutWaveView, len(r.WaveSizes)), Edges: map[string]fleet.RolloutCounts{}, Faults: map[string]int{},
	}
	for i := range v.Waves {
		w := &v.Waves[i]
		w.Wave, w.Percent, w.State = i+1, r.Percents[i], "waiting"
		if i < len(r.WaveStarted) {
			w.Started = r.WaveStarted[i]
		}
		if i < len(r.WaveFinished) {
			w.Finished = r.WaveFinished[i]
		}
		if i < len(r.Tolerated) {
			w.Tolerated = r.Tolerated[i]
		}
		switch {
		case !w.Finished.IsZero() && i+1 < len(v.Waves) && r.Wave == i && now.Before(w.Finished.Add(r.Soak)):
			w.State = "soaking"
		case !w.Finished.IsZero():
			w.State = "finished"
		case !w.Started.IsZero():
			w.State = "running"
		}
	}
	if withDevices {
		v.Devices = map[string][]*RolloutDevice{}
	}
	for _, d := range devs {
		countRollout(&v.RolloutCounts, d.State)
		if d.Wave >= 0 && d.Wave < len(v.Waves) {
			countRollout(&v.Waves[d.Wave].RolloutCounts, d.State)
		}
		e := v.Edges[d.Edge]
		countRollout(&e, d.State)
		v.Edges[d.Edge] = e
		if d.State == RDFaulted {
			v.Faults[d.Fault]++
		}
		if withDevices {
			v.Devices[d.State] = append(v.Devices[d.State], d)
		}
	}
	for i := range v.Waves {
		if w := &v.Waves[i]; w.Total > 0 {
			w.FaultRate = float64(w.Faulted) / float64(w.Total)
		}
	}
	return v
}

// createRollout answers POST /api/v1/rollouts: it selects the devices
// (the filter, at this moment), drops those already on the file's
// version, plans the waves and stores the rollout; the leader's loop
// does the rest.
func (n *Node) createRollout(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req fleet.RolloutRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	ro, err := validateRollout(&req)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := compileFilter(req.Filter, "filter"); err != nil {
		writeJSON(w, httpapi.Status(err), filterErrorBody(err, "filter"))
		return
	}
	meta, err := n.fsm.File(ro.File)
	if errors.Is(err, ErrNotFound) {
		writeError(w, fmt.Errorf("%w: file %q: no such file; upload it first (edgeacs files put)", ErrBadRequest, ro.File))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if meta.Version == "" {
		writeError(w, fmt.Errorf("%w: file %q has no version: a rollout needs the version the devices must come back on (upload it with --version)", ErrBadRequest, ro.File))
		return
	}
	ro.Version, ro.FileType = meta.Version, meta.FileType
	if _, _, err := n.fsm.Rollout(ro.Name); err == nil {
		writeError(w, fmt.Errorf("rollout %s: %w: the name is taken", ro.Name, ErrConflict))
		return
	}
	ds, _, err := n.fsm.Devices(DeviceFilter{Expr: req.Filter}, "", maxRolloutDevices+1)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(ds) > maxRolloutDevices {
		writeError(w, fmt.Errorf("%w: filter selects more than %d devices; split the rollout", ErrBadRequest, maxRolloutDevices))
		return
	}
	ids := make([]string, len(ds))
	home := make(map[string]string, len(ds))
	for i, d := range ds {
		ids[i], home[d.ID] = d.ID, d.Edge
	}
	vers, err := n.fsm.deviceVersions(ids)
	if err != nil {
		writeError(w, err)
		return
	}
	todo := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return vers[id] == ro.Version })
	ro.Skipped = len(ids) - len(todo)
	if len(todo) == 0 {
		writeError(w, fmt.Errorf("%w: no device needs the rollout: the filter selects %d devices, all on version %s", ErrBadRequest, len(ids), ro.Version))
		return
	}
	wave, order, sizes, kept := planWaves(ro.Name, todo, ro.Percents, ro.MinWaveSize)
	ro.WaveSizes, ro.Percents = sizes, kept
	devs := make([]*RolloutDevice, len(todo))
	for i, id := range todo {
		devs[i] = &RolloutDevice{Device: id, Wave: wave[id], Order: order[id], Edge: home[id], From: vers[id], State: RDPending}
	}
	res := n.Apply(r.Context(), Command{Op: OpRolloutCreate, Time: time.Now().UTC(), Rollout: ro, RolloutDevices: devs})
	if res.Err != nil {
		writeError(w, res.Err)
		return
	}
	stored, sdevs, err := n.fsm.Rollout(ro.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, rolloutView(stored, sdevs, false, time.Now()))
}

func (n *Node) listRollouts(w http.ResponseWriter, r *http.Request) {
	rs, err := n.fsm.Rollouts()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]fleet.RolloutView, 0, len(rs))
	now := time.Now()
	for _, ro := range rs {
		_, devs, err := n.fsm.Rollout(ro.Name)
		if err != nil {
			writeError(w, err)
			return
		}
		out = append(out, rolloutView(ro, devs, false, now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) getRollout(w http.ResponseWriter, r *http.Request) {
	ro, devs, err := n.fsm.Rollout(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rolloutView(ro, devs, true, time.Now()))
}

// controlRollout answers POST /api/v1/rollouts/{name}/{pause,resume,abort,retry}.
func (n *Node) controlRollout(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if res := n.Apply(r.Context(), Command{Op: OpRolloutControl, Name: name, Action: action}); res.Err != nil {
			writeError(w, res.Err)
			return
		}
		ro, devs, err := n.fsm.Rollout(name)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rolloutView(ro, devs, false, time.Now()))
	}
}

// deleteRollout answers DELETE /api/v1/rollouts/{name}.
func (n *Node) deleteRollout(w http.ResponseWriter, r *http.Request) {
	if res := n.Apply(r.Context(), Command{Op: OpRolloutDelete, Name: r.PathValue("name")}); res.Err != nil {
		writeError(w, res.Err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
