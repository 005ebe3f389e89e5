package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/backoff"
	"github.com/sessiongate/sessiongate/internal/ratelimit"
	"github.com/sessiongate/sessiongate/internal/spool"
)

// Audit writer limits.
const (
	auditQueueSize = 8192                   // events waiting in memory, without a spool
	auditBatch     = 500                    // events per WriteAudit call
	auditLinger    = 200 * time.Millisecond // a batch waits at most this long to fill
	auditMinRetry  = 100 * time.Millisecond // first delay before retrying a failed write
	auditMaxRetry  = 30 * time.Second       // longest delay between retries
	auditLogEvery  = time.Second            // drops are logged at most this often

	// auditWindow is the window over which refusals from one client
	// address with one code are aggregated into one record with a Count;
	// auditWindowKeys bounds the pairs held at once (more end the window
	// early).
	auditWindow     = 10 * time.Second
	auditWindowKeys = 4096

	// auditFailingTooLong: a store failing for longer makes AuditHealthy
	// report it.
	auditFailingTooLong = 10 * time.Second
)

// DefaultAuditSpoolMax is the byte limit of the audit spool when
// Config.AuditSpoolMax is zero.
const DefaultAuditSpoolMax = 64 << 20

// auditWriter writes audit events to the store in batches, from one
// goroutine, so that no handshake waits for the store.
//
// With a spool, every event is appended to it first (a granted CONNECT
// waits for its record's fsync, see record) and the writer ships the spool
// to the store, acknowledging what the store took; what is not shipped when
// the process ends is shipped by the next one. Without a spool, events wait
// in a bounded memory queue. Either way add never blocks: an event that
// finds no room is counted as dropped and logged.
//
// A batch the store rejects for its data is split until the events it
// cannot take are alone; those are counted and logged, never retried. Any
// other failure is retried with exponential backoff until the write
// succeeds or the writer is closed.
type auditWriter struct {
	store    sessiongate.AuditStore
	log      *slog.Logger
	retry    backoff.Backoff // delays between retries of a failed write
	spool    *spool.Spool
	queue    chan sessiongate.AuditEvent // without a spool
	wake     chan struct{}               // events are waiting
	refusals refusalWindow

	inFlight     atomic.Int64 // events taken from the queue or spool, not yet written
	failures     atomic.Uint64
	dropped      atomic.Uint64
	rejected     atomic.Uint64
	aggregated   atomic.Uint64 // refusals folded into the Count of another record
	failingSince atomic.Int64  // unix nanoseconds of the first failure in a row; 0 when the last write worked
	loggedDrop   atomic.Int64  // unix nanoseconds of the last drop log

	stop      chan struct{} // closed by close: drain and exit
	closeOnce sync.Once
	closed    atomic.Bool
	abort     context.CancelFunc // gives up on the backlog
	abortCtx  context.Context
	flushed   chan struct{} // the refusal window's last aggregates are queued
	done      chan struct{}
}

// newAuditWriter starts a writer whose retries wait from minRetry doubling
// up to auditMaxRetry. sp is the spool to keep events in, nil for memory;
// records it holds from a previous process are shipped first.
func newAuditWriter(store sessiongate.AuditStore, log *slog.Logger, minRetry time.Duration, sp *spool.Spool) *auditWriter {
	w := &auditWriter{
		store:    store,
		log:      log,
		retry:    backoff.Backoff{Min: minRetry, Max: auditMaxRetry},
		spool:    sp,
		wake:     make(chan struct{}, 1),
		refusals: refusalWindow{seen: make(map[refusalKey]*sessiongate.AuditEvent)},
		stop:     make(chan struct{}),
		flushed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if sp == nil {
		w.queue = make(chan sessiongate.AuditEvent, auditQueueSize)
	} else if sp.Size() > 0 {
		w.log.Info("shipping audit events left in the spool", "bytes", sp.Size())
		w.notify()
	}
	w.abortCtx, w.abort = context.WithCancel(context.Background())
	go w.run()
	go w.windows()
	return w
}

// add records ev without waiting. A refusal (SOCKET_AUTH_FAILURE) from an
// address and with a code already refused in the current window is only
// counted, into one record written when the window ends; so is a
// SOCKET_RATE_LIMITED of a user with details already recorded in it.
func (w *auditWriter) add(ev sessiongate.AuditEvent) {
	if w.closed.Load() {
		w.drop(1, "audit writer closed")
		return
	}
	ev = ev.Sanitized()
	if ev.Action == sessiongate.ActionAuthFailure || ev.Action == sessiongate.ActionRateLimited {
		first, full := w.refusals.add(ev)
		for _, agg := range full {
			w.enqueue(agg)
		}
		if !first {
			w.aggregated.Add(1)
			return
		}
	}
	w.enqueue(ev)
}

// record records ev and, with a spool, returns once ev is on disk (or ctx
// ended, or the spool could not take it: then ev is counted as dropped, or
// the spool's failure is reported by AuditHealthy). It is what a granted
// CONNECT waits for.
func (w *auditWriter) record(ctx context.Context, ev sessiongate.AuditEvent) {
	if w.closed.Load() {
		w.drop(1, "audit writer closed")
		return
	}
	ticket, ok := w.enqueue(ev.Sanitized())
	if !ok || w.spool == nil {
		return
	}
	if err := w.spool.Sync(ctx, ticket); err != nil && ctx.Err() == nil {
		w.log.Error("audit spool sync failed", "err", err)
	}
}

// enqueue puts ev in the spool or the memory queue, never waiting for
// room, and returns its spool ticket.
func (w *auditWriter) enqueue(ev sessiongate.AuditEvent) (ticket uint64, ok bool) {
	if w.spool == nil {
		select {
		case w.queue <- ev:
			w.notify()
			return 0, true
		default:
			w.drop(1, "audit queue full")
			return 0, false
		}
	}
	payload, err := json.Marshal(ev)
	if err != nil { // a sanitized event always encodes
		w.drop(1, err.Error())
		return 0, false
	}
	ticket, err = w.spool.Append(payload)
	switch {
	case errors.Is(err, spool.ErrFull):
		w.drop(1, "audit spool full")
		return 0, false
	case errors.Is(err, spool.ErrClosed):
		w.drop(1, "audit writer closed")
		return 0, false
	case err != nil:
		w.drop(1, "audit spool failed: "+err.Error())
		return 0, false
	}
	w.notify()
	return ticket, true
}

func (w *auditWriter) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// drop counts n lost events and logs them, at most once per auditLogEvery
// so that a flood does not become a flood of log lines.
func (w *auditWriter) drop(n int, why string) {
	total := w.dropped.Add(uint64(n))
	now := time.Now().UnixNano()
	last := w.loggedDrop.Load()
	if now-last >= int64(auditLogEvery) && w.loggedDrop.CompareAndSwap(last, now) {
		w.log.Error("audit events dropped", "events", n, "reason", why, "dropped_total", total)
	}
}

// backlog is the number of events waiting in memory, not yet written.
func (w *auditWriter) backlog() int64 {
	return int64(len(w.queue)) + w.inFlight.Load()
}

// spoolBytes is the size of the records in the spool not yet shipped.
func (w *auditWriter) spoolBytes() int64 {
	if w.spool == nil {
		return 0
	}
	return w.spool.Size()
}

// lost is the number of events given up on: dropped, and damaged in the
// spool.
func (w *auditWriter) lost() uint64 {
	n := w.dropped.Load()
	if w.spool != nil {
		n += w.spool.Corrupt()
	}
	return n
}

// healthy returns nil while the audit trail keeps up, and otherwise an
// error saying what is wrong: the spool failed or is nearly full, the
// memory queue is half full, or the store has been failing for longer than
// auditFailingTooLong.
func (w *auditWriter) healthy() error {
	if w.spool != nil {
		if err := w.spool.Err(); err != nil {
			return fmt.Errorf("audit spool failed: %w", err)
		}
		if sz, limit := w.spool.Size(), w.spool.Max(); sz >= limit/4*3 {
			return fmt.Errorf("audit spool holds %d of %d bytes: the store is not keeping up", sz, limit)
		}
	} else if b := w.backlog(); b >= auditQueueSize/2 {
		return fmt.Errorf("audit backlog of %d events (limit %d): the store is not keeping up", b, auditQueueSize)
	}
	if since := w.failingSince.Load(); since != 0 {
		if d := time.Since(time.Unix(0, since)); d >= auditFailingTooLong {
			return fmt.Errorf("audit store failing for %v", d.Round(time.Second))
		}
	}
	return nil
}

// windows ends a refusal window every auditWindow, queueing its
// aggregates, until the writer stops. With a spool it also makes the
// records appended without waiting durable every auditLinger, even while
// the writer is stuck retrying a store that is down.
func (w *auditWriter) windows() {
	defer close(w.flushed)
	window := time.NewTicker(auditWindow)
	defer window.Stop()
	durable := time.NewTicker(auditLinger)
	defer durable.Stop()
	if w.spool == nil {
		durable.Stop()
	}
	for {
		select {
		case <-window.C:
			for _, agg := range w.refusals.take() {
				w.enqueue(agg)
			}
		case <-durable.C:
			if err := w.spool.SyncAll(w.abortCtx); err != nil && w.abortCtx.Err() == nil {
				w.log.Error("audit spool sync failed", "err", err)
				durable.Stop() // AuditHealthy reports it from now on
			}
		case <-w.stop:
			for _, agg := range w.refusals.take() {
				w.enqueue(agg)
			}
			return
		}
	}
}

func (w *auditWriter) run() {
	defer close(w.done)
	linger := time.NewTimer(auditLinger)
	linger.Stop()
	for {
		stopping := false
		select {
		case <-w.wake:
		case <-w.stop:
			stopping = true
		}
		if !stopping {
			// Let a batch fill.
			linger.Reset(auditLinger)
			select {
			case <-linger.C:
			case <-w.stop:
				stopping = true
			}
			linger.Stop()
		}
		if stopping {
			<-w.flushed
		}
		if !w.ship() || stopping {
			return
		}
	}
}

// ship writes everything waiting, in batches, and reports false if the
// writer was aborted first.
func (w *auditWriter) ship() bool {
	for {
		batch, pos, err := w.take()
		if err != nil {
			w.failures.Add(1)
			w.log.Error("audit spool read failed; retrying", "err", err)
			if !w.retry.Wait(w.abortCtx) {
				return false
			}
			continue
		}
		if len(batch) == 0 && pos == nil {
			return true
		}
		w.inFlight.Store(int64(len(batch)))
		ok := w.write(batch)
		w.inFlight.Store(0)
		if !ok {
			if w.spool == nil {
				w.drop(len(batch), "audit writer closed before the write succeeded")
			}
			return false
		}
		if pos != nil {
			if err := w.spool.Ack(*pos); err != nil {
				w.log.Error("audit spool: acknowledging shipped events failed (they may be shipped again)", "err", err)
			}
		}
	}
}

// take returns the next batch and, with a spool, the position to
// acknowledge once it is written (set even when every record of the batch
// was undecodable, so that they are skipped).
func (w *auditWriter) take() ([]sessiongate.AuditEvent, *spool.Pos, error) {
	batch := make([]sessiongate.AuditEvent, 0, auditBatch)
	if w.spool == nil {
		for len(batch) < auditBatch {
			select {
			case ev := <-w.queue:
				batch = append(batch, ev)
			default:
				return batch, nil, nil
			}
		}
		return batch, nil, nil
	}
	// Records added without waiting become durable here at the latest:
	// what is shipped is on disk first.
	// Shipped records need not be on disk first: the table has them. The
	// others are fsynced by windows.
	recs, pos, err := w.spool.Read(auditBatch)
	if err != nil || len(recs) == 0 {
		return nil, nil, err
	}
	for _, r := range recs {
		var ev sessiongate.AuditEvent
		if err := json.Unmarshal(r, &ev); err != nil {
			w.drop(1, "undecodable audit spool record: "+err.Error())
			continue
		}
		batch = append(batch, ev)
	}
	return batch, &pos, nil
}

// write writes batch, splitting it when the store rejects its data and
// retrying other failures until they pass or the writer is aborted (then
// it returns false).
func (w *auditWriter) write(batch []sessiongate.AuditEvent) bool {
	if len(batch) == 0 {
		return true
	}
	defer w.retry.Reset()
	for {
		ctx, cancel := context.WithTimeout(w.abortCtx, storeTimeout)
		err := w.store.WriteAudit(ctx, batch)
		cancel()
		if err == nil {
			w.failingSince.Store(0)
			return true
		}
		if sessiongate.ErrorCode(err) == sessiongate.ECodeInvalid {
			if len(batch) == 1 {
				w.reject(batch[0], err)
				return true
			}
			half := len(batch) / 2
			return w.write(batch[:half]) && w.write(batch[half:])
		}
		w.failures.Add(1)
		w.failingSince.CompareAndSwap(0, time.Now().UnixNano())
		w.log.Error("audit write failed; retrying", "events", len(batch), "failures_total", w.failures.Load(), "err", err)
		if !w.retry.Wait(w.abortCtx) {
			return false
		}
	}
}

// reject counts and logs an event the store can never take. The log names
// the event but not its free text (user agent, user id), which is what the
// store refused.
func (w *auditWriter) reject(ev sessiongate.AuditEvent, err error) {
	n := w.rejected.Add(1)
	w.log.Error("audit event rejected by the store", "action", ev.Action, "severity", ev.Severity, "time", ev.Time,
		"session", ev.SessionHash, "remote", ev.RemoteAddr, "socket", ev.SocketID, "details", ev.Details,
		"user_agent_bytes", len(ev.UserAgent), "user_id_bytes", len(ev.UserID), "rejected_total", n, "err", err)
}

// close stops accepting events, writes the backlog and stops the writer. If
// ctx ends first, the writer gives up: without a spool the rest of the
// backlog is dropped (counted); with one it stays in the spool for the next
// start. Either way ctx.Err() is returned.
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
	if w.spool != nil {
		if n := w.spool.Size(); n > 0 {
			w.log.Warn("audit events left in the spool, shipped at the next start", "bytes", n)
		}
		if cerr := w.spool.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("audit: %w", cerr)
		}
		return err
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

// refusalKey is what refusals are aggregated by: the action, the client's
// rate limit key (its address; for IPv6 its /64, as one client may hold
// all of it) or, for SOCKET_RATE_LIMITED, the user id, and the code.
type refusalKey struct{ action, key, code string }

// refusalWindow aggregates the refusals of the current window. Its methods
// are safe for concurrent use.
type refusalWindow struct {
	mu sync.Mutex
	// seen holds, for each key refused in the window, the aggregate of the
	// refusals after the first (written at once): Count 0 while there
	// were none.
	seen map[refusalKey]*sessiongate.AuditEvent
}

// add reports whether ev (with Count 1) is the first refusal of its key in
// the window, to be written now; otherwise it is counted into the key's
// aggregate. A window holding auditWindowKeys keys ends early: its
// aggregates are returned to be written.
func (r *refusalWindow) add(ev sessiongate.AuditEvent) (first bool, ended []sessiongate.AuditEvent) {
	k := refusalKey{ev.Action, ratelimit.Key(ev.RemoteAddr), ev.Details}
	if ev.Action == sessiongate.ActionRateLimited {
		k.key = ev.UserID // one user's sockets come from many addresses
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if agg, ok := r.seen[k]; ok {
		if agg.Count == 0 {
			*agg = ev
		} else {
			agg.Count++
		}
		return false, nil
	}
	if len(r.seen) >= auditWindowKeys {
		ended = r.takeLocked()
	}
	r.seen[k] = &sessiongate.AuditEvent{}
	return true, ended
}

// take ends the window and returns its aggregates.
func (r *refusalWindow) take() []sessiongate.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.takeLocked()
}

func (r *refusalWindow) takeLocked() []sessiongate.AuditEvent {
	var out []sessiongate.AuditEvent
	for _, agg := range r.seen {
		if agg.Count > 0 {
			out = append(out, *agg)
		}
	}
	clear(r.seen)
	return out
}

// AuditHealthy returns nil while the audit trail keeps up, and otherwise an
// error saying why not, for a readiness probe: the audit spool failed or is
// three quarters full, the memory queue (without a spool) is half full, or
// the Audit store has been failing for 10 seconds or more.
func (g *Gateway) AuditHealthy() error { return g.audit.healthy() }
