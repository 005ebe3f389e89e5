package gateway

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/backoff"
)

// Run runs the monitor until ctx ends or Shutdown is called: one scheduler
// goroutine for all sockets re-validates every live session each
// CheckInterval (in batches of at most 500 ids per store call, spread over
// the interval), refreshes the ones about to expire, and ends each session
// when its known expiry passes; beside it, the revocation watcher ends
// sessions the store announces as ended. Run returns nil after Shutdown and
// ctx.Err() when ctx ends; it may be called only once.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return errors.New("gateway: Run called twice")
	}
	defer close(g.runDone)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if g.revocations != nil {
		wg.Go(func() { g.watch(runCtx) })
	}
	if g.cluster != nil {
		wg.Go(func() { g.shareLimits(runCtx) })
	}
	g.schedule(runCtx)
	cancel()
	wg.Wait()
	select {
	case <-g.stop:
		return nil
	default:
		return ctx.Err()
	}
}

// schedule is the scheduler loop.
func (g *Gateway) schedule(ctx context.Context) {
	sw := sweep{interval: g.interval}
	sweepAt := time.Now().Add(g.interval)
	sweepTimer := time.NewTimer(g.interval)
	defer sweepTimer.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	// A resync that could not read every session (the store is still
	// coming back: the listener often reconnects before the pool's
	// connections do) is retried with backoff until it can; a revocation
	// missed while the listener was away must not wait for the next tick.
	resyncRetry := time.NewTimer(time.Hour)
	resyncRetry.Stop()
	defer resyncRetry.Stop()
	retryWait := backoff.Backoff{Min: resyncMinRetry, Max: resyncMaxRetry}
	resync := func() {
		if g.checkSessions(ctx, g.resyncHashes(), false) {
			retryWait.Reset()
			resyncRetry.Stop()
			return
		}
		resyncRetry.Reset(retryWait.Next())
	}
	for {
		if next, ok := g.nextExpiry(); ok {
			expiry.Reset(max(0, next.Sub(g.now())))
		} else {
			expiry.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-g.stop:
			return
		case <-sweepTimer.C:
			batch, wait := sw.next(g.liveHashes)
			if len(batch) > 0 {
				g.checkSessions(ctx, batch, false)
			}
			// From when this batch was due, so that checks do not drift.
			sweepAt = sweepAt.Add(wait)
			sweepTimer.Reset(max(0, time.Until(sweepAt)))
		case <-g.resync:
			resync()
		case <-resyncRetry.C:
			g.log.Info("retrying the resync: the last one could not read every session")
			resync()
		case <-g.wake:
		case <-expiry.C:
			g.expireDue(ctx)
		}
	}
}

// sweep spreads each interval's check of the live sessions over the
// interval: the sessions, in hash order, are cut into batches of batchSize,
// and batch k of n is due k/n of the way through the interval, so the
// database sees a statement every interval/n instead of n at once. Hash
// order keeps a session's place from one interval to the next (sessions
// that come and go shift it by their number), so each is checked about one
// interval after the last time, rather than anywhere within two.
type sweep struct {
	interval time.Duration
	hashes   []string // this interval's live sessions, sorted
	pos      int      // the first not yet checked
	step     time.Duration
}

// next returns the batch due now, and how long after it the next one is
// due. Once an interval's batches are done, it starts the next interval
// with the sessions live then.
func (s *sweep) next(live func() []string) (batch []string, wait time.Duration) {
	if s.pos >= len(s.hashes) {
		s.hashes = live()
		slices.Sort(s.hashes)
		s.pos = 0
		batches := max(1, (len(s.hashes)+batchSize-1)/batchSize)
		s.step = s.interval / time.Duration(batches)
	}
	end := min(s.pos+batchSize, len(s.hashes))
	batch = s.hashes[s.pos:end]
	s.pos = end
	return batch, s.step
}

// expireDue looks at the sessions whose scheduled moment has come. One
// near its expiry that the periodic checks did not refresh is checked (and
// so refreshed) on its own. One whose known expiry has passed is ended unless
// its row moved the expiry meanwhile; if the store cannot be read it is
// ended all the same.
func (g *Gateway) expireDue(ctx context.Context) {
	refresh, expired := g.dueSessions(g.now())
	if len(refresh) > 0 {
		g.checkSessions(ctx, refresh, false)
	}
	if len(expired) > 0 {
		g.checkSessions(ctx, expired, true)
	}
}

// Delays between retries of a resync that could not read every session.
const (
	resyncMinRetry = 100 * time.Millisecond
	resyncMaxRetry = 5 * time.Second
)

// requestResync asks the scheduler to check every live session now.
func (g *Gateway) requestResync() {
	select {
	case g.resync <- struct{}{}:
	default:
	}
}

// checkSessions re-validates the live sessions among hashes, batchSize ids
// per store call, and reports whether every batch could be read. With
// failClosed, a store failure ends the batch's sessions as expired;
// otherwise they stay until the next check.
func (g *Gateway) checkSessions(ctx context.Context, hashes []string, failClosed bool) bool {
	ok := true
	for i := 0; i < len(hashes) && ctx.Err() == nil; i += batchSize {
		if !g.checkBatch(ctx, hashes[i:min(i+batchSize, len(hashes))], failClosed) {
			ok = false
		}
	}
	return ok && ctx.Err() == nil
}

// checked is one live session being re-validated.
type checked struct {
	hash, sid, userID, short string
}

// checkBatch checks one batch and reports whether the store could be read.
func (g *Gateway) checkBatch(ctx context.Context, hashes []string, failClosed bool) bool {
	g.mu.Lock()
	items := make([]checked, 0, len(hashes))
	for _, h := range hashes {
		if l := g.live[h]; l != nil {
			items = append(items, checked{hash: h, sid: l.sid, userID: l.userID, short: l.short})
		}
	}
	g.mu.Unlock()
	if len(items) == 0 {
		return true
	}
	sids := make([]string, len(items))
	for i, it := range items {
		sids[i] = it.sid
	}
	readAt := g.now()
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	rows, err := g.sessions.Sessions(sctx, sids)
	cancel()
	g.stats.checkBatches.Add(1)
	g.stats.sessionsChecked.Add(uint64(len(items)))
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		g.log.Error("session check failed", "sessions", len(items), "err", err)
		if failClosed {
			for _, it := range items {
				g.end(ctx, it.hash, sessiongate.EndExpired)
			}
		}
		return false
	}

	now := g.now()
	gone := g.goneUsers(ctx, items, rows, now)
	var refreshes []sessiongate.Refresh
	for _, it := range items {
		row := rows[it.sid]
		reason := endReason(row, now, it.userID)
		if reason == "" && gone[it.userID] {
			reason = sessiongate.EndRevoked // the user was deleted
		}
		if reason != "" {
			g.end(ctx, it.hash, reason)
			continue
		}
		rooms := g.sessionRooms(row.Data, it.short)
		var moves []roomMove
		g.mu.Lock()
		if l := g.live[it.hash]; l != nil {
			g.setExpireLocked(l, row.Expire)
			// Unless a handshake read the row after this check did (its
			// registration moved the sockets already).
			if g.rooms != nil && !readAt.Before(l.roomsAt) {
				l.rooms, l.roomsAt = rooms, readAt
				moves = movesLocked(l, rooms)
			}
		}
		g.mu.Unlock()
		// Outside the lock: a cluster adapter's Join waits for a SUBSCRIBE.
		g.moveRooms(ctx, moves)
		if g.threshold >= 0 && row.Expire.Sub(now) <= g.threshold {
			refreshes = append(refreshes, sessiongate.Refresh{ID: it.sid, Expire: now.Add(g.extend), Data: row.Data})
		}
	}
	if len(refreshes) > 0 {
		g.refresh(ctx, refreshes, items)
	}
	return true
}

// endReason says why a live session of userID must end given its row (nil
// when gone), or "" if it is still good.
func endReason(row *sessiongate.Session, now time.Time, userID string) sessiongate.EndReason {
	if row == nil {
		return sessiongate.EndRevoked
	}
	if !row.Valid(now) {
		return sessiongate.EndExpired
	}
	uid, ok, err := expresssession.UserID(row.Data)
	if err != nil || !ok || uid != userID {
		return sessiongate.EndLoggedOut
	}
	return ""
}

// refresh moves the expiry of the listed sessions in one store call.
func (g *Gateway) refresh(ctx context.Context, refreshes []sessiongate.Refresh, items []checked) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	ids, err := g.sessions.RefreshSessions(sctx, refreshes)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			g.log.Error("session refresh failed", "sessions", len(refreshes), "err", err)
		}
		return
	}
	expire := make(map[string]time.Time, len(refreshes))
	for _, r := range refreshes {
		expire[r.ID] = r.Expire
	}
	bySID := make(map[string]checked, len(items))
	for _, it := range items {
		bySID[it.sid] = it
	}
	for _, id := range ids {
		it, ok := bySID[id]
		if !ok {
			continue
		}
		g.mu.Lock()
		if l := g.live[it.hash]; l != nil {
			g.setExpireLocked(l, expire[id])
		}
		g.mu.Unlock()
		g.stats.refreshes.Add(1)
		g.audit.add(sessiongate.AuditEvent{
			Time:        g.now(),
			Action:      sessiongate.ActionSessionRefreshed,
			Severity:    sessiongate.SeverityInfo,
			UserID:      it.userID,
			SessionHash: it.short,
			Details:     expresssession.ISOString(expire[id]),
		})
	}
}

// watch runs the revocation feed until ctx ends, restarting it (and
// re-checking every live session, as after any gap) if it fails.
func (g *Gateway) watch(ctx context.Context) {
	b := backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		started := time.Now()
		err := g.revocations.WatchRevocations(ctx, g.onRevocation)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			b.Reset() // it had been working: a new failure starts short
		}
		g.log.Error("revocation feed stopped; restarting", "err", err)
		if !b.Wait(ctx) {
			return
		}
		g.requestResync()
	}
}

// onRevocation handles one notification of the feed.
func (g *Gateway) onRevocation(r sessiongate.Revocation) {
	if r.Resync {
		g.log.Info("revocation feed resync: checking every live session")
		g.requestResync()
		return
	}
	reason := r.Reason
	if reason == "" {
		reason = sessiongate.EndRevoked
	}
	g.end(context.Background(), r.SessionHash, reason)
}
