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

type pending struct {
	cmd Command
	res chan Result // buffered 1
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
	if cmd.V == 0 {
		cmd.V = CommandVersion
	}
	p := &pending{cmd: cmd, res: make(chan Result, 1)}
	select {
	case b.in <- p:
	case <-b.stop:
		return Result{Err: fmt.Errorf("batcher: %w", ErrClosed)}
	case <-ctx.Done():
		return Result{Err: fmt.Errorf("submit %v: %w", cmd.Op, ctx.Err())}
	}
	select {
	case r := <-p.res:
		return r
	case <-b.done:
		// run has exited: p was either answered or is still queued.
		select {
		case r := <-p.res:
			return r
		default:
			b.wg.Wait()
			select {
			case r := <-p.res:
				return r
			default:
				return Result{Err: fmt.Errorf("batcher: %w", ErrClosed)}
			}
		}
	case <-ctx.Done():
		return Result{Err: fmt.Errorf("%w waiting for %v to commit (it may still apply): %v", ErrTimeout, cmd.Op, ctx.Err())}
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	for {
		var batch []*pending
		select {
		case p := <-b.in:
			batch = append(batch, p)
		case <-b.stop:
			b.failQueued()
			return
		}
		// Take whatever is already queued.
	drain:
		for len(batch) < b.maxBatch {
			select {
			case p := <-b.in:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		// While the pipeline is busy, a short wait buys a fuller batch.
		if len(batch) < b.maxBatch && len(b.inflight) > 0 {
			timer := time.NewTimer(b.maxDelay)
		fill:
			for len(batch) < b.maxBatch {
				select {
				case p := <-b.in:
					batch = append(batch, p)
				case <-timer.C:
					break fill
				}
			}
			timer.Stop()
		}
		select {
		case b.inflight <- struct{}{}:
		case <-b.stop:
			failAll(batch, fmt.Errorf("batcher: %w", ErrClosed))
			b.failQueued()
			return
		}
		b.flush(batch)
	}
}

func (b *Batcher) flush(batch []*pending) {
	cmds := make([]Command, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
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
		b.observe(len(batch), time.Since(start))
		rs, ok := f.Response().([]Result)
		if !ok || len(rs) != len(batch) {
			err := fmt.Errorf("%w: apply returned %d results for %d commands", ErrCorruptCommand, len(rs), len(batch))
			if ok && len(rs) == 1 && rs[0].Err != nil {
				err = rs[0].Err
			}
			failAll(batch, err)
			return
		}
		for i, p := range batch {
			p.res <- rs[i]
		}
	}()
}

// raftError maps raft's errors to the core's sentinels.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v (the write may or may not have been applied)", ErrNotLeader, err)
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
		p.res <- Result{Err: err}
	}
}

func (b *Batcher) failQueued() {
	for {
		select {
		case p := <-b.in:
			p.res <- Result{Err: fmt.Errorf("batcher: %w", ErrClosed)}
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
