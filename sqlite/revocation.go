package sqlite

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/sessiongate/sessiongate"
)

// watchBuffer is how many revocations wait for a slow watcher before the
// rest are dropped and replaced by one Resync.
const watchBuffer = 1024

// hub delivers the revocations of this DB's writes to every watcher without
// ever blocking the writer.
type hub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
	buffer   int // per-watcher queue length

	testHookAdded func() // when set, runs after a watcher is added
}

// watcher is one WatchRevocations call: a bounded queue, and a flag set when
// the queue overflowed so that a Resync is owed.
type watcher struct {
	ch       chan sessiongate.Revocation
	overflow atomic.Bool
	wake     chan struct{} // capacity 1: an overflow happened
}

func (h *hub) init() {
	h.watchers = make(map[*watcher]struct{})
	h.buffer = watchBuffer
}

func (h *hub) add() *watcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := &watcher{ch: make(chan sessiongate.Revocation, h.buffer), wake: make(chan struct{}, 1)}
	h.watchers[w] = struct{}{}
	if h.testHookAdded != nil {
		h.testHookAdded()
	}
	return w
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.watchers, w)
}

func (h *hub) publish(rs []sessiongate.Revocation) {
	if len(rs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		for _, r := range rs {
			select {
			case w.ch <- r:
			default:
				w.overflow.Store(true)
				select {
				case w.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}

// WatchRevocations calls fn, from one goroutine, for each session ended by a
// write of this DB, until ctx is done; it returns ctx.Err() then. The writer
// never waits for fn: when more than 1,024 revocations are waiting for a slow
// fn the excess is dropped and fn gets one Resync instead.
func (db *DB) WatchRevocations(ctx context.Context, fn func(sessiongate.Revocation)) error {
	w := db.hub.add()
	defer db.hub.remove(w)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-w.ch:
			fn(r)
		case <-w.wake:
		}
		if w.overflow.Swap(false) {
			fn(sessiongate.Revocation{Resync: true})
		}
	}
}
