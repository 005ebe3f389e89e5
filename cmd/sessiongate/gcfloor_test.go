package main

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, gcMaxPercent},       // nothing measured yet
		{1 * mib, gcMaxPercent}, // 3200% capped
		{4 * mib, 800},          // 32 MiB of growth
		{5 * mib, 600},          // 640% rounded down to a step
		{16 * mib, 200},         // 32 MiB of growth
		{30 * mib, 100},         // 106%: the default
		{gcHeadroom, 100},       // from here on the default
		{4 * gcHeadroom, 100},   // never below it
	}
	for _, tt := range tests {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live/mib, got, tt.want)
		}
	}
}

// TestRunGCFloor runs the floor in this test's process, whose live heap is
// small: after a collection the percentage is the one gcPercentFor gives,
// and once the context ends it is back to the default.
func TestRunGCFloor(t *testing.T) {
	if _, ok := os.LookupEnv("GOGC"); ok {
		t.Skip("GOGC is set: the floor leaves it alone")
	}
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/live:bytes"}}
	read := func() (gogc int, live uint64) {
		metrics.Read(sample)
		return int(sample[0].Value.Uint64()), sample[1].Value.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		runGCFloor(ctx)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		gogc, live := read()
		if want := gcPercentFor(live); gogc == want && want > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d with %d bytes live, want %d", gogc, live, gcPercentFor(live))
		}
		time.Sleep(10 * time.Millisecond) // the cleanup runs on its own goroutine after the GC
	}
	cancel()
	<-done
	if gogc, _ := read(); gogc != 100 {
		t.Errorf("GOGC %d after the floor stopped, want 100", gogc)
	}
}
