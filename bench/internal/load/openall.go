package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// openAll opens cfg.N connections, cfg.Concurrency at a time, calling open
// with each index of cfg.Creds; opened, when not nil, runs for each one as
// soon as it is open (to start its reader). A failure is counted in
// rep.Errors by class. It stops early when ctx ends, sets rep's
// ConnectSeconds, Connected and Failed, and returns the connections by
// index, the zero T where one failed.
func openAll[T comparable](ctx context.Context, cfg *Config, rep *Report, open func(ctx context.Context, i int) (T, error), opened func(T)) []T {
	conns := make([]T, cfg.N)
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		next  atomic.Int64
	)
	start := time.Now()
	for range min(cfg.Concurrency, cfg.N) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.N || ctx.Err() != nil {
					return
				}
				h, err := open(ctx, i)
				if err != nil {
					errMu.Lock()
					rep.Errors[errClass(err)]++
					errMu.Unlock()
					continue
				}
				conns[i] = h
				if opened != nil {
					opened(h)
				}
			}
		})
	}
	wg.Wait()
	rep.ConnectSeconds = time.Since(start).Seconds()
	var zero T
	rep.Connected = 0
	for _, h := range conns {
		if h != zero {
			rep.Connected++
		}
	}
	rep.Failed = cfg.N - rep.Connected
	return conns
}

// opened returns the connections openAll opened, without the failed ones.
func opened[T comparable](conns []T) []T {
	var zero T
	out := make([]T, 0, len(conns))
	for _, h := range conns {
		if h != zero {
			out = append(out, h)
		}
	}
	return out
}
