package script

import (
	"context"
	"fmt"

	"github.com/edgeacs/edgeacs/provision"
)

// Exec is one script's execution in one session: its first run and the
// replays it needs, driven between the session's calls of
// provision.Run.Next:
//
//	x, _ := s.Start(script.Env{Collector: ch, Tree: tree, Now: run.Now(), DeviceID: id, Args: args})
//	for {
//		_, _ = x.Step(ctx, false)      // first run, or a replay once what it waits for is settled
//		rpcs, done := run.Next(tree)
//		if done {
//			if x.Done() {
//				break
//			}
//			_, _ = x.Step(ctx, true) // the engine is idle: replay now
//			continue
//		}
//		... send rpcs, run.Answer each ...
//	}
//
// A run that fails faults the channel (provision.Collector.Fault); more
// than Limits.Replays replays fault it too_many_commits. Not safe for
// concurrent use.
type Exec struct {
	s     *Script
	env   Env
	scope *provision.Collector
	vargs *VirtualArgs
	lim   Limits

	runs int
	done bool
	res  Result
}

// Start prepares the execution of s for one session; the first Step runs
// it. Errors wrap ErrEnv.
func (s *Script) Start(env Env) (*Exec, error) {
	if env.Collector == nil || env.Tree == nil {
		return nil, fmt.Errorf("%w: a run needs a collector and a tree", ErrEnv)
	}
	x := &Exec{s: s, env: env, scope: env.Collector.Scope(), lim: env.Limits.withDefaults()}
	x.env.Collector = x.scope
	return x, nil
}

// StartVirtualParameter is Start for a virtual parameter script; Virtual
// gives its value once Done.
func (s *Script) StartVirtualParameter(env Env, args VirtualArgs) (*Exec, error) {
	x, err := s.Start(env)
	if err != nil {
		return nil, err
	}
	x.vargs = &args
	return x, nil
}

// Step runs the script if it is due: the first time, and again (a
// replay, from the start, replacing its previous declarations) when its
// last run was blocked and what it waited for is settled (and its reads
// are all done), or idle says the session's engine has nothing left to
// do. ran reports whether it ran. Errors are the context's.
func (x *Exec) Step(ctx context.Context, idle bool) (ran bool, err error) {
	if x.done {
		return false, nil
	}
	if x.runs > 0 {
		if x.scope.Faulted() {
			x.done = true // another of the channel's provisions faulted it
			return false, nil
		}
		// Replay once what the run stopped at is settled and the
		// script's other reads, fetched in the same rounds, are done:
		// replaying earlier would stop again at the next one. Its
		// writes need not wait: the replay declares them again and they
		// join the same SetParameterValues.
		if !idle && !(x.res.wait.settled(x.scope, x.env.Tree) && x.scope.ScopeFetched(x.env.Tree)) {
			return false, nil
		}
		if x.runs > x.lim.Replays {
			x.finish(&provision.Fault{Code: provision.FaultTooManyCommits,
				Message: fmt.Sprintf("script %s still waiting for %s after %d replays", x.s.name, x.res.Waiting, x.lim.Replays)})
			return false, nil
		}
		x.scope.Retract()
	}
	res, err := x.s.run(ctx, x.env, x.vargs)
	if err != nil {
		return true, err
	}
	x.runs++
	x.res = res
	switch res.Status {
	case Finished:
		x.finish(nil)
	case Failed:
		x.finish(res.Fault)
	}
	return true, nil
}

func (x *Exec) finish(f *provision.Fault) {
	x.done = true
	if f != nil {
		x.res.Status, x.res.Fault = Failed, f
		x.scope.Fault(*f)
	}
	if x.env.Log != nil {
		for _, l := range x.res.Logs {
			x.env.Log(l)
		}
	}
}

// Done reports whether the script has finished, failed, or been stopped
// by its channel's fault: nothing more to run.
func (x *Exec) Done() bool { return x.done }

// Blocked reports whether the last run stopped to wait for the engine.
func (x *Exec) Blocked() bool { return !x.done && x.runs > 0 && x.res.Status == Blocked }

// Runs is how many times the script ran (1 + replays).
func (x *Exec) Runs() int { return x.runs }

// Result is the last run's result (with the replay fault, if that ended
// it).
func (x *Exec) Result() Result { return x.res }
