package core

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/edgeacs/edgeacs/httpapi"
)

// RolloutCounts counts a rollout's devices (or a wave's, or an edge's) by
// state.
type RolloutCounts struct {
	Total       int `json:"total"`
	Pending     int `json:"pending"`
	Downloading int `json:"downloading"`
	NotBack     int `json:"notBack"`
	Done        int `json:"done"`
	Faulted     int `json:"faulted"`
	Cancelled   int `json:"cancelled"`
}

func (c *RolloutCounts) add(state string) {
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

// RolloutWaveView is one wave in a rollout's status.
type RolloutWaveView struct {
	// Wave counts from 1.
	Wave    int     `json:"wave"`
	Percent float64 `json:"percent"`
	// State is waiting, running, soaking (finished, the soak not over) or
	// finished.
	State    string    `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// FaultRate is faulted / total, the share the pause rule compares
	// with maxFaultRate (less the faults a resume accepted: Tolerated).
	FaultRate float64 `json:"faultRate"`
	Tolerated int     `json:"tolerated,omitempty"`
	RolloutCounts
}

// RolloutView is a rollout as the API shows it.
type RolloutView struct {
	Name         string    `json:"name"`
	File         string    `json:"file"`
	Version      string    `json:"version"`
	Filter       string    `json:"filter"`
	State        string    `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	Mode         string    `json:"mode"`
	Window       string    `json:"window,omitempty"`
	Soak         string    `json:"soak"`
	Timeout      string    `json:"timeout"`
	MaxFaultRate float64   `json:"maxFaultRate"`
	MinWaveSize  int       `json:"minWaveSize"`
	PerEdge      int       `json:"perEdge"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	// Wave is the latest wave started, from 1; 0 before the first.
	Wave int `json:"wave"`
	// Skipped counts the devices the filter selected that were already on
	// the version.
	Skipped int `json:"skipped"`
	RolloutCounts
	Waves []RolloutWaveView `json:"waves"`
	// Edges counts devices by the edge they were dispatched to (or were
	// homed at when planned); "" for devices with no home.
	Edges map[string]RolloutCounts `json:"edges"`
	// Faults counts faulted devices by fault code.
	Faults map[string]int `json:"faults"`
	// Devices lists the devices by state (only for a single rollout).
	Devices map[string][]*RolloutDevice `json:"devices,omitempty"`
}

// rolloutView summarises r and its devices at now; withDevices lists them.
func rolloutView(r *Rollout, devs []*RolloutDevice, withDevices bool, now time.Time) RolloutView {
	v := RolloutView{
		Name: r.Name, File: r.File, Version: r.Version, Filter: r.Filter, State: r.State, Reason: r.Reason,
		Mode: r.Mode, Window: r.Window, Soak: r.Soak.String(), Timeout: r.Timeout.String(),
		MaxFaultRate: r.MaxFaultRate, MinWaveSize: r.MinWaveSize, PerEdge: r.PerEdge,
		Created: r.Created, Updated: r.Updated, Wave: r.Wave + 1, Skipped: r.Skipped,
		Waves: make([]RolloutWaveView, len(r.WaveSizes)), Edges: map[string]RolloutCounts{}, Faults: map[string]int{},
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
		v.RolloutCounts.add(d.State)
		if d.Wave >= 0 && d.Wave < len(v.Waves) {
			v.Waves[d.Wave].add(d.State)
		}
		e := v.Edges[d.Edge]
		e.add(d.State)
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
	var req RolloutRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	ro, err := req.validate()
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
	out := make([]RolloutView, 0, len(rs))
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
