package backoff

import (
	"context"
	"testing"
	"time"
)

// TestNext: the delays double from Min and stop at Max; Reset starts over.
func TestNext(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Fatalf("after Reset = %v, want 100ms", got)
	}
}

// TestWaitCancelled: Wait returns false at once when its context is done,
// however long the delay.
func TestWaitCancelled(t *testing.T) {
	b := Backoff{Min: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Wait(ctx) {
		t.Fatal("Wait on a cancelled context = true")
	}
}

// TestWait: Wait sleeps the delay and reports true.
func TestWait(t *testing.T) {
	b := Backoff{Min: time.Millisecond, Max: time.Millisecond}
	if !b.Wait(context.Background()) {
		t.Fatal("Wait = false")
	}
}
