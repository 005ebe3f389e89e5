package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/backoff"
)

// Audit writer limits.
const (
	auditQueueSize = 8192                   // events waiting to be written
	auditBatch     = 500                    // events per WriteAudit call
	auditLinger    = 200 * time.Millisecond // a batch waits at most this long to fill
	auditWaitFull  = 100 * time.Millisecond // how long add waits when the queue is full
	auditMinRetry  = 100 * time.Millisecond // first delay before retrying a failed write
	auditMaxRetry  = 30 * time.Second       // longest delay between retries
)

// auditWriter writes audit events in batches from one goroutine. add never
// blocks for more than auditWaitFull; a failed batch is retried whole with
// exponential backoff until it is written or the writer is closed.
type auditWriter struct {
	store sessiongate.AuditStore
	log   *slog.Logger
	retry backoff.Backoff // delays between retries of a failed write

	queue    chan sessiongate.AuditEvent
	inFlight atomic.Int64 // events taken from the queue, not yet written
	failures atomic.Uint64
	dropped  atomic.Uint64

	stop      chan struct{} // closed by close: drain and exit
	closeOnce sync.Once
	closed    atomic.Bool
	abort     context.CancelFunc // gives up on the backlog
	abortCtx  context.Context
	done      chan struct{}
}

// newAuditWriter starts a writer whose retries wait from minRetry doubling
// up to auditMaxRetry.
func newAuditWriter(store sessiongate.AuditStore, log *slog.Logger, minRetry time.Duration) *auditWriter {
	w := &auditWriter{
		store: store,
		log:   log,
		retry: backoff.Backoff{Min: minRetry, Max: auditMaxRetry},
		queue: make(chan sessiongate.AuditEvent, auditQueueSize),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	w.abortCtx, w.abort = context.WithCancel(context.Background())
	go w.run()
	return w
}

// add queues ev. When the queue is full it waits up to auditWaitFull (or
// until ctx ends) for room, then drops ev, counting and logging the drop.
func (w *auditWriter) add(ctx context.Context, ev sessiongate.AuditEvent) {
	if w.closed.Load() {
		w.drop(1, "audit writer closed")
		return
	}
	select {
	case w.queue <- ev:
		return
	default:
	}
	t := time.NewTimer(auditWaitFull)
	defer t.Stop()
	select {
	case w.queue <- ev:
	case <-t.C:
		w.drop(1, "audit queue full")
	case <-ctx.Done():
		w.drop(1, "audit queue full")
	}
}

func (w *auditWriter) drop(n int, why string) {
	w.dropped.Add(uint64(n))
	w.log.Error("audit events dropped", "events", n, "reason", why, "dropped_total", w.dropped.Load())
}

// backlog is the number of events not yet written.
func (w *auditWriter) backlog() int64 { return int64(len(w.queue)) + w.inFlight.Load() }

func (w *auditWriter) run() {
	defer close(w.done)
	batch := make([]sessiongate.AuditEvent, 0, auditBatch)
	linger := time.NewTimer(auditLinger)
	linger.Stop()
	for {
		stopping := false
		select {
		case ev := <-w.queue:
			batch = append(batch, ev)
		case <-w.stop:
			stopping = true
		}
		if !stopping {
			linger.Reset(auditLinger)
		fill:
			for len(batch) < auditBatch {
				select {
				case ev := <-w.queue:
					batch = append(batch, ev)
				case <-linger.C:
					break fill
				case <-w.stop:
					stopping = true
					break fill
				}
			}
			linger.Stop()
		}
		if stopping {
			w.drain(batch)
			return
		}
		w.write(batch)
		batch = batch[:0]
	}
}

// drain writes batch and everything still queued, then returns.
func (w *auditWriter) drain(batch []sessiongate.AuditEvent) {
	for {
	fill:
		for len(batch) < auditBatch {
			select {
			case ev := <-w.queue:
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		w.write(batch)
		batch = batch[:0]
	}
}

// write writes batch, retrying until it succeeds or the writer is aborted
// (then the batch is counted as dropped).
func (w *auditWriter) write(batch []sessiongate.AuditEvent) {
	w.inFlight.Store(int64(len(batch)))
	defer w.inFlight.Store(0)
	defer w.retry.Reset()
	for {
		ctx, cancel := context.WithTimeout(w.abortCtx, storeTimeout)
		err := w.store.WriteAudit(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		w.failures.Add(1)
		w.log.Error("audit write failed; retrying", "events", len(batch), "failures_total", w.failures.Load(), "err", err)
		if !w.retry.Wait(w.abortCtx) {
			w.drop(len(batch), "audit writer closed before the write succeeded")
			return
		}
	}
}

// close stops accepting events, writes the backlog and stops the writer. If
// ctx ends first, the rest of the backlog is dropped (counted) and ctx.Err()
// returned.
func (w *auditWriter) close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		close(w.stop)
	})
	var err error
	select {
	case <-w.done:
	case <-ctx.Done():
		w.abort()
		<-w.done
		err = fmt.Errorf("audit: flush: %w", ctx.Err())
	}
	// Events that raced with the close, queued after the drain ended.
	n := 0
	for {
		select {
		case <-w.queue:
			n++
			continue
		default:
		}
		break
	}
	if n > 0 {
		w.drop(n, "audit writer closed")
	}
	return err
}
