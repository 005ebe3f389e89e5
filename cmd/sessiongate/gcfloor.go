package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
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

// runGCFloor sets the GOGC percentage for the live heap after every
// garbage collection until ctx is done, then restores the default. Doing it
// once per cycle, not on a timer, keeps the next goal at most gcHeadroom
// above the heap just marked even while the heap grows fast (thousands of
// sockets connecting): a percentage set for a small heap and left in place
// would let a grown one double several times over. Setting the percentage
// stops the world briefly, so it is set only when it changes.
func runGCFloor(ctx context.Context) {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	f := &gcFloor{current: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	f.adjust()
	f.arm()
	<-ctx.Done()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	debug.SetGCPercent(100)
}

// gcFloor is runGCFloor's state, used from the cleanup that runs after each
// garbage collection.
type gcFloor struct {
	mu      sync.Mutex
	stopped bool
	current int
	sample  []metrics.Sample
}

// gcSentinel is garbage as soon as it is allocated: the cleanup attached to
// it runs after the next collection. It is larger than the tiny allocator's
// blocks, which are freed (and their cleanups run) only all together.
type gcSentinel [32]byte

// arm arranges for onGC to run after the next garbage collection.
func (f *gcFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), (*gcFloor).onGC, f)
}

// onGC adjusts the percentage and waits for the next collection, until
// runGCFloor has stopped.
func (f *gcFloor) onGC() {
	if f.adjust() {
		f.arm()
	}
}

// adjust sets the percentage for the live heap the last collection marked,
// and reports false once runGCFloor has stopped (and restored the default).
func (f *gcFloor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	metrics.Read(f.sample)
	var live uint64
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = f.sample[0].Value.Uint64()
	}
	if p := gcPercentFor(live); p != f.current {
		debug.SetGCPercent(p)
		f.current = p
	}
	return true
}
