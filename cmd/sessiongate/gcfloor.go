package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The garbage collector's default (GOGC=100) starts a cycle when the heap
// has grown by as much as is live. A gateway serving handshakes has a small
// live heap (a few MiB) and allocates fast, so with the default it collects
// dozens of times a second. gcFloor gives the heap a fixed headroom instead
// while the live heap is small: the GOGC percentage that lets it grow by
// gcHeadroom before the next cycle, never below 100. Above gcHeadroom of
// live heap (some thousands of sockets) it is GOGC=100 as usual, so memory
// per idle socket is unchanged; below, the process holds at most gcHeadroom
// of garbage more than it would.
//
// A GOGC set in the environment is the operator's choice and is left alone.
const (
	gcHeadroom    = 32 << 20
	gcMaxPercent  = 1000
	gcStepPercent = 50 // settings are multiples of this, so they seldom change
	gcFloorEvery  = time.Second
)

// gcPercentFor returns the GOGC percentage giving a live heap of live bytes
// gcHeadroom of growth, rounded down to gcStepPercent, within
// [100, gcMaxPercent].
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	p := int(min(uint64(gcHeadroom)*100/live, gcMaxPercent))
	p -= p % gcStepPercent
	return max(p, 100)
}

// runGCFloor adjusts the GOGC percentage to the live heap every
// gcFloorEvery until ctx is done. Setting the percentage stops the world
// briefly, so it is set only when it changes.
func runGCFloor(ctx context.Context) {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := 100
	defer func() { debug.SetGCPercent(100) }()
	t := time.NewTicker(gcFloorEvery)
	defer t.Stop()
	for {
		metrics.Read(sample)
		var live uint64
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		if p := gcPercentFor(live); p != current {
			debug.SetGCPercent(p)
			current = p
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
