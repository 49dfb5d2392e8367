package core

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/oklog/ulid/v2"
)

// maxDispatchPerStep bounds the download tasks one step creates, so a
// step stays a modest raft entry; the next tick creates more.
const maxDispatchPerStep = 1000

// rolloutLoop advances the fleet's rollouts while this node leads. It is
// the only proposer of rollout steps; each step is decided from the FSM's
// state (and the clock, for soak, window and timeouts), and the FSM
// applies a step only where the stored state still allows it, so a new
// leader simply carries on from what the log holds: nothing it proposes
// again changes anything twice.
func (n *Node) rolloutLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.RolloutTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			continue
		}
		rs, err := n.fsm.Rollouts()
		if err != nil {
			n.log.Warn("rollouts: list", "err", err)
			continue
		}
		for _, r := range rs {
			if r.State != RolloutRunning && r.State != RolloutPaused {
				continue
			}
			if err := n.advanceRollout(ctx, r.Name); err != nil && ctx.Err() == nil {
				n.log.Warn("rollout: step", "rollout", r.Name, "err", err)
			}
		}
	}
}

// advanceRollout decides and proposes one step of rollout name.
func (n *Node) advanceRollout(ctx context.Context, name string) error {
	r, devs, err := n.fsm.Rollout(name)
	if err != nil {
		return err
	}
	var watch []*RolloutDevice
	for _, d := range devs {
		// Pending devices beyond the next wave need nothing read yet.
		if !rdTerminal(d) && (d.State != RDPending || d.Wave <= r.Wave+1) {
			watch = append(watch, d)
		}
	}
	obs, err := n.fsm.observeRollout(watch)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	s := planStep(r, devs, obs, now, func() string { return ulid.Make().String() })
	n.met.rolloutDevices(r, devs, s)
	if s.empty() {
		return nil
	}
	res := n.Apply(ctx, Command{Op: OpRolloutStep, Time: now, Name: name, RolloutStep: s})
	if res.Err != nil {
		return res.Err
	}
	if created, _ := res.Value.(int); created > 0 {
		n.met.rolloutTasks.Add(float64(created))
	}
	if s.Pause != "" {
		n.log.Warn("rollout paused", "rollout", name, "reason", s.Pause)
	}
	if s.Start > 0 {
		n.log.Info("rollout wave started", "rollout", name, "wave", s.Start, "of", len(r.WaveSizes))
	}
	if s.Done != "" {
		n.log.Info("rollout done", "rollout", name, "result", s.Done)
	}
	return nil
}

// planStep decides a rollout's next step from its stored state, what the
// FSM holds about its devices (obs, for every device that is not
// terminal), and now. It is a pure function of its arguments, newID
// aside, so a leader that takes over decides what its predecessor would
// have.
func planStep(r *Rollout, devs []*RolloutDevice, obs map[string]rolloutObs, now time.Time, newID func() string) *RolloutStep {
	s := &RolloutStep{}
	state := make(map[string]string, len(devs))
	fault := make(map[string]string)
	for _, d := range devs {
		state[d.Device] = d.State
		if d.State == RDFaulted {
			fault[d.Device] = d.Fault
		}
		o, seen := obs[d.Device]
		if !seen {
			continue
		}
		m := RolloutMove{Device: d.Device, Task: d.Task, From: d.State}
		switch d.State {
		case RDDownloading:
			switch {
			case !o.exists:
				m.To, m.Fault, m.Message = RDFaulted, FaultTaskGone, "the device was deleted"
			case o.task == nil:
				m.To, m.Fault, m.Message = RDFaulted, FaultTaskGone, "the download task was cancelled or deleted"
			case o.task.Status == fleet.StatusDone && o.version == r.Version:
				m.To = RDDone
			case o.task.Status == fleet.StatusDone:
				m.To = RDNotBack
			case o.task.Status == fleet.StatusFault:
				m.To, m.Fault, m.Message = RDFaulted, "fault", ""
				if f := o.task.Fault; f != nil {
					m.Fault, m.Message = f.Code, f.Message
				}
			case o.task.Status == fleet.StatusExpired:
				m.To, m.Fault, m.Message = RDFaulted, "expired", "the download task expired at the edge"
			case now.Sub(d.Dispatched) > r.Timeout:
				m.To, m.Fault, m.Cancel = RDFaulted, FaultRolloutTimeout, true
				m.Message = fmt.Sprintf("the download did not end within %s; its task was cancelled", r.Timeout)
			}
		case RDNotBack:
			switch {
			case o.version == r.Version:
				m.To = RDDone
			case !o.exists:
				m.To, m.Fault, m.Message = RDFaulted, FaultTaskGone, "the device was deleted"
			case o.lastInform.After(d.Transferred):
				m.To, m.Fault = RDFaulted, FaultVersionUnchanged
				m.Message = fmt.Sprintf("informed on version %q after the transfer, not %q", o.version, r.Version)
			case now.Sub(d.Dispatched) > r.Timeout:
				m.To, m.Fault = RDFaulted, FaultNotBack
				m.Message = fmt.Sprintf("not seen on version %q within %s", r.Version, r.Timeout)
			}
		}
		if m.To != "" {
			s.Moves = append(s.Moves, m)
			state[d.Device] = m.To
			if m.To == RDFaulted {
				fault[d.Device] = m.Fault
			}
		}
	}

	// Per-wave tallies after the moves.
	waves := len(r.WaveSizes)
	open := make([]int, waves)
	faulted := make([]int, waves)
	codes := make([]map[string]int, waves)
	for _, d := range devs {
		if d.Wave < 0 || d.Wave >= waves {
			continue
		}
		switch st := state[d.Device]; st {
		case RDDone, RDCancelled:
		case RDFaulted:
			faulted[d.Wave]++
			if codes[d.Wave] == nil {
				codes[d.Wave] = map[string]int{}
			}
			codes[d.Wave][fault[d.Device]]++
		default:
			open[d.Wave]++
		}
	}
	finished := make([]time.Time, waves)
	copy(finished, r.WaveFinished)
	for i := 0; i <= r.Wave && i < waves; i++ {
		if finished[i].IsZero() && open[i] == 0 {
			s.Finished = append(s.Finished, i)
			finished[i] = now
		}
	}
	if r.State != RolloutRunning {
		return s
	}
	for i := 0; i <= r.Wave && i < waves; i++ {
		tol := 0
		if i < len(r.Tolerated) {
			tol = r.Tolerated[i]
		}
		if faultRateExceeded(faulted[i], tol, r.WaveSizes[i], r.MaxFaultRate) {
			s.Pause = fmt.Sprintf("wave %d of %d: %d of %d devices faulted (%.1f%%, more than the %.1f%% allowed): %s",
				i+1, waves, faulted[i], r.WaveSizes[i], 100*float64(faulted[i])/float64(r.WaveSizes[i]), 100*r.MaxFaultRate, faultSummary(codes[i]))
			return s
		}
	}
	inWindow := windowOpen(r.Window, now)
	wave := r.Wave
	if next := r.Wave + 1; next < waves && inWindow &&
		(r.Wave < 0 || (!finished[r.Wave].IsZero() && !now.Before(finished[r.Wave].Add(r.Soak)))) {
		s.Start = next + 1
		wave = next
	}
	if r.Wave == waves-1 && s.Start == 0 {
		allDone := true
		for i := range open {
			allDone = allDone && open[i] == 0
		}
		if allDone {
			done, bad := 0, 0
			for _, st := range state {
				switch st {
				case RDDone:
					done++
				case RDFaulted:
					bad++
				}
			}
			s.Done = fmt.Sprintf("%d of %d devices on %s", done, len(devs), r.Version)
			if bad > 0 {
				s.Done += fmt.Sprintf(", %d faulted", bad)
			}
			return s
		}
	}
	if !inWindow {
		return s
	}
	inflight := map[string]int{}
	for _, d := range devs {
		if state[d.Device] == RDDownloading {
			inflight[d.Edge]++
		}
	}
	for _, d := range devs { // plan order
		if len(s.Dispatch) == maxDispatchPerStep {
			break
		}
		if state[d.Device] != RDPending || d.Wave > wave {
			continue
		}
		edge := obs[d.Device].edge
		if r.PerEdge > 0 && inflight[edge] >= r.PerEdge {
			continue
		}
		inflight[edge]++
		s.Dispatch = append(s.Dispatch, RolloutDispatch{Device: d.Device, Task: newID()})
	}
	return s
}

// faultSummary lists fault codes by count, most first: "9010 ×2, timeout ×1".
func faultSummary(codes map[string]int) string {
	keys := slices.Collect(maps.Keys(codes))
	slices.SortFunc(keys, func(a, b string) int {
		if codes[a] != codes[b] {
			return codes[b] - codes[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, codes[k])
	}
	return strings.Join(parts, ", ")
}
