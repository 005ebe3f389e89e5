package gopool

import (
	"sync"
	"testing"
)

// TestGoRunsEveryTask runs more tasks at once than there are idle workers
// and checks each runs exactly once.
func TestGoRunsEveryTask(t *testing.T) {
	const n = 4 * maxIdle
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran := make(map[int]int)
	release := make(chan struct{})
	wg.Add(n)
	for i := range n {
		Go(func() {
			defer wg.Done()
			<-release // all n run at once: most need a new goroutine
			mu.Lock()
			ran[i]++
			mu.Unlock()
		})
	}
	close(release)
	wg.Wait()
	for i := range n {
		if ran[i] != 1 {
			t.Fatalf("task %d ran %d times", i, ran[i])
		}
	}
}

// TestWorkersAreReused runs tasks one after another: after the first few,
// each runs on a worker that finished an earlier one.
func TestWorkersAreReused(t *testing.T) {
	const n = 1000
	before := started.Load()
	done := make(chan struct{})
	for range n {
		Go(func() { done <- struct{}{} })
		<-done
	}
	// A task may be handed out before the worker that ran the previous one
	// is back waiting, and so start a goroutine; never most of the time.
	if got := started.Load() - before; got > n/10 {
		t.Fatalf("%d of %d sequential tasks started a goroutine", got, n)
	}
	if got := idle.Load(); got > maxIdle+1 { // +1: one may be on its way out
		t.Fatalf("%d idle workers, at most %d may wait", got, maxIdle)
	}
}
