package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Batcher groups concurrent writers' commands into one raft log entry.
// One raft.Apply per write would cap throughput at a few thousand writes a
// second (each entry is a round of replication and an fsync); a batch of
// hundreds costs about the same as one. When the pipeline is idle a lone
// write goes out at once; while earlier batches are in flight, the batcher
// waits up to MaxDelay to fill the next one.
type Batcher struct {
	apply    func(data []byte) raft.ApplyFuture
	maxBatch int
	maxDelay time.Duration
	observe  func(size int, d time.Duration)

	in       chan *pending
	inflight chan struct{} // one token per batch awaiting commit
	stop     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup // batch waiters
	once     sync.Once
}

// pending is one writer's submission: commands that go into one log
// entry, contiguous and in order.
type pending struct {
	cmds []Command
	res  chan groupResult // buffered 1
}

// groupResult answers a pending: a result per command, or err when the
// entry was not applied (or its fate is unknown).
type groupResult struct {
	rs  []Result
	err error
}

// BatcherConfig tunes a Batcher.
type BatcherConfig struct {
	// MaxBatch is the most commands in one log entry (default 512).
	MaxBatch int
	// MaxDelay is how long to wait to fill a batch while others are in flight (default 2ms).
	MaxDelay time.Duration
	// MaxInflight is how many batches may await commit at once (default 16).
	MaxInflight int
	// Observe, if set, is told each batch's size and commit latency.
	Observe func(size int, d time.Duration)
}

// NewBatcher starts a batcher that proposes entries with apply (normally
// raft.Apply with a timeout). Close stops it.
func NewBatcher(apply func(data []byte) raft.ApplyFuture, cfg BatcherConfig) *Batcher {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 16
	}
	if cfg.Observe == nil {
		cfg.Observe = func(int, time.Duration) {}
	}
	b := &Batcher{
		apply: apply, maxBatch: cfg.MaxBatch, maxDelay: cfg.MaxDelay, observe: cfg.Observe,
		in:       make(chan *pending, cfg.MaxBatch),
		inflight: make(chan struct{}, cfg.MaxInflight),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go b.run()
	return b
}

// Apply proposes cmd and waits for its result. Transport failures (not the
// leader, shut down, timed out) come back in Result.Err like domain errors.
// When ctx ends first the write may still be applied later.
func (b *Batcher) Apply(ctx context.Context, cmd Command) Result {
	rs, err := b.ApplyAll(ctx, []Command{cmd})
	if err != nil {
		return Result{Err: err}
	}
	return rs[0]
}

// ApplyAll proposes cmds as contiguous commands of one log entry, in
// order, so no other writer's command lands between them and none of them
// applies before the one ahead of it; other writers' commands may share
// the entry before or after them. It returns a result per command (domain
// errors inside), or an error when the entry was not applied or its fate
// is unknown (not the leader, shut down, timed out: it may still apply).
func (b *Batcher) ApplyAll(ctx context.Context, cmds []Command) ([]Result, error) {
	p, err := b.submit(ctx, cmds)
	if err != nil || p == nil {
		return nil, err
	}
	return b.await(ctx, p)
}

// submit queues cmds as ApplyAll does and returns without waiting for
// them (nil for no commands). Submissions are proposed in the order
// submit returned, so one goroutine that submits A and then B gets A's
// entry before B's in the log (B may share A's entry, after A's
// commands). await collects the results.
func (b *Batcher) submit(ctx context.Context, cmds []Command) (*pending, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	for i := range cmds {
		if cmds[i].V == 0 {
			cmds[i].V = CommandVersion
		}
	}
	p := &pending{cmds: cmds, res: make(chan groupResult, 1)}
	select {
	case b.in <- p:
		return p, nil
	case <-b.stop:
		return nil, fmt.Errorf("batcher: %w", ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("submit %v: %w", cmds[0].Op, ctx.Err())
	}
}

// await waits for a submission's results (see ApplyAll). When ctx ends
// first the commands may still be applied later.
func (b *Batcher) await(ctx context.Context, p *pending) ([]Result, error) {
	select {
	case r := <-p.res:
		return r.rs, r.err
	case <-b.done:
		// run has exited: p was either answered or is still queued.
		select {
		case r := <-p.res:
			return r.rs, r.err
		default:
			b.wg.Wait()
			select {
			case r := <-p.res:
				return r.rs, r.err
			default:
				return nil, fmt.Errorf("batcher: %w", ErrClosed)
			}
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w waiting for %v to commit (it may still apply): %v", ErrTimeout, p.cmds[0].Op, ctx.Err())
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	// carry is a submission that did not fit in the last batch; it opens
	// the next one (a submission larger than MaxBatch is a batch alone).
	var carry *pending
	for {
		var batch []*pending
		n := 0
		add := func(p *pending) {
			if n > 0 && n+len(p.cmds) > b.maxBatch {
				carry = p
				return
			}
			batch = append(batch, p)
			n += len(p.cmds)
		}
		if carry != nil {
			p := carry
			carry = nil
			add(p)
		} else {
			select {
			case p := <-b.in:
				add(p)
			case <-b.stop:
				b.failQueued()
				return
			}
		}
		// Take whatever is already queued.
	drain:
		for n < b.maxBatch && carry == nil {
			select {
			case p := <-b.in:
				add(p)
			default:
				break drain
			}
		}
		// While the pipeline is busy, a short wait buys a fuller batch.
		if n < b.maxBatch && carry == nil && len(b.inflight) > 0 {
			timer := time.NewTimer(b.maxDelay)
		fill:
			for n < b.maxBatch && carry == nil {
				select {
				case p := <-b.in:
					add(p)
				case <-timer.C:
					break fill
				}
			}
			timer.Stop()
		}
		select {
		case b.inflight <- struct{}{}:
		case <-b.stop:
			if carry != nil {
				batch = append(batch, carry)
			}
			failAll(batch, fmt.Errorf("batcher: %w", ErrClosed))
			b.failQueued()
			return
		}
		b.flush(batch, n)
	}
}

func (b *Batcher) flush(batch []*pending, n int) {
	cmds := make([]Command, 0, n)
	for _, p := range batch {
		cmds = append(cmds, p.cmds...)
	}
	data, err := EncodeCommands(cmds)
	if err != nil {
		<-b.inflight
		failAll(batch, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return
	}
	start := time.Now()
	f := b.apply(data)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := f.Error()
		<-b.inflight
		if err != nil {
			failAll(batch, raftError(err))
			return
		}
		b.observe(len(cmds), time.Since(start))
		rs, ok := f.Response().([]Result)
		if !ok || len(rs) != len(cmds) {
			err := fmt.Errorf("%w: apply returned %d results for %d commands", ErrCorruptCommand, len(rs), len(cmds))
			if ok && len(rs) == 1 && rs[0].Err != nil {
				err = rs[0].Err
			}
			failAll(batch, err)
			return
		}
		// A stopped FSM answers every command with its *ApplyError: the
		// entry is committed but not applied here, which is not a result.
		for _, r := range rs {
			if errors.Is(r.Err, ErrApplyFailed) {
				failAll(batch, r.Err)
				return
			}
		}
		off := 0
		for _, p := range batch {
			p.res <- groupResult{rs: rs[off : off+len(p.cmds) : off+len(p.cmds)]}
			off += len(p.cmds)
		}
	}()
}

// raftError maps raft's errors to the core's sentinels.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		// The entry may be in the log and commit under the next leader, so
		// the API answers 504 (ErrOutcomeUnknown), not 503's "retry"; it
		// still wraps ErrNotLeader for internal callers whose commands are
		// idempotent and follow the leader.
		return fmt.Errorf("%w: %w: %v", ErrOutcomeUnknown, ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it reached the log: nothing was applied.
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("raft: %w", ErrClosed)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	default:
		return fmt.Errorf("raft apply: %w", err)
	}
}

func failAll(batch []*pending, err error) {
	for _, p := range batch {
		p.res <- groupResult{err: err}
	}
}

func (b *Batcher) failQueued() {
	for {
		select {
		case p := <-b.in:
			p.res <- groupResult{err: fmt.Errorf("batcher: %w", ErrClosed)}
		default:
			return
		}
	}
}

// Close stops the batcher and waits for in-flight batches to resolve
// (raft resolves them with an error when it shuts down first).
func (b *Batcher) Close() {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
		b.wg.Wait()
	})
}
