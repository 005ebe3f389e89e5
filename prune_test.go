package sessiongate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// countingPruner records each PruneSessions call on calls.
type countingPruner struct {
	calls chan time.Time
	fail  bool
}

func (p *countingPruner) PruneSessions(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch != sessiongate.DefaultPruneBatch {
		return 0, errors.New("unexpected batch")
	}
	select {
	case p.calls <- before:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if p.fail {
		return 0, errors.New("database down")
	}
	return 3, nil
}

// TestPrunerRuns: Run prunes at once and at each interval, goes on after a
// failure, and returns when its context is cancelled.
func TestPrunerRuns(t *testing.T) {
	for _, fail := range []bool{false, true} {
		store := &countingPruner{calls: make(chan time.Time, 16), fail: fail}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		p := &sessiongate.Pruner{Store: store, Interval: time.Millisecond}
		go func() { done <- p.Run(ctx) }()
		for range 3 {
			select {
			case <-store.calls:
			case <-time.After(10 * time.Second):
				t.Fatalf("fail=%v: PruneSessions was not called", fail)
			}
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}
