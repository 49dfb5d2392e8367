package badgergc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestRunRepeatsUntilNothingToDoAndStops(t *testing.T) {
	var calls atomic.Int64
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	gc := func(ratio float64) error {
		if ratio != DiscardRatio {
			t.Errorf("ratio %v", ratio)
		}
		switch calls.Add(1) {
		case 1, 2:
			return nil // rewrote a file: try again at once
		case 3:
			return badger.ErrNoRewrite // round over, quietly
		default:
			return errors.New("disk on fire")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, time.Millisecond, gc, log) }()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("gc called %d times", calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if strings.Count(logs.String(), "disk on fire") == 0 || strings.Contains(logs.String(), badger.ErrNoRewrite.Error()) {
		t.Fatalf("logs: %s", logs.String())
	}
}
