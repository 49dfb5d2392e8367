package sim

import (
	"context"
	"sync"
	"time"
)

// workerIdle is how long a session worker waits for the next session
// before it exits.
const workerIdle = 10 * time.Second

// sessionWorkers runs the devices' sessions on goroutines kept between
// sessions. A session's deepest path (dial, net/http, the XML codec)
// needs a 16 KB stack. On the device's own goroutine, which sleeps
// between sessions, the collector had shrunk that stack by the next
// attempt, and every attempt grew it again: a fresh stack from the
// runtime's pool, whose spans had gone back to the heap and then to the
// system, so page faults on every attempt. In a 100k storm's flood (a
// process of 50,000 devices each dialling, sending its Inform and
// reading a 503) that was a fifth of the simulator's CPU by profile. A
// worker keeps its grown stack while it has sessions to run; the few
// hundred busy at once cost what the busy devices' stacks cost before.
type sessionWorkers struct {
	// jobs is unbuffered: a send succeeds only when a worker is idle.
	jobs chan sessionJob
	ctx  context.Context // the fleet's: idle workers exit when it ends
	wg   *sync.WaitGroup // the fleet's
	idle time.Duration   // workerIdle (tests shorten it)
}

// sessionJob is one session to run and where to say it is done.
type sessionJob struct {
	fn   func()
	done chan struct{}
}

func newSessionWorkers(ctx context.Context, wg *sync.WaitGroup) *sessionWorkers {
	return &sessionWorkers{jobs: make(chan sessionJob), ctx: ctx, wg: wg, idle: workerIdle}
}

// run runs fn on a worker, an idle one or a new one, and returns when fn
// has. The caller must be counted in the fleet's WaitGroup (a device's
// goroutine is), so a new worker is never added to a group being waited
// on at zero.
func (w *sessionWorkers) run(fn func()) {
	j := sessionJob{fn: fn, done: make(chan struct{})}
	select {
	case w.jobs <- j:
	default:
		w.wg.Add(1)
		go w.work(j)
	}
	<-j.done
}

// work runs j, then the sessions handed to it until it has been idle for
// w.idle or the fleet stops.
func (w *sessionWorkers) work(j sessionJob) {
	defer w.wg.Done()
	growStack()
	idle := time.NewTimer(w.idle)
	defer idle.Stop()
	for {
		j.fn()
		close(j.done)
		idle.Reset(w.idle)
		select {
		case j = <-w.jobs:
		case <-idle.C:
			return
		case <-w.ctx.Done():
			return
		}
	}
}
