package gateway

import (
	"container/heap"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/socketio"
)

// liveSession is a session with at least one connected socket. Its fields
// are guarded by Gateway.mu.
type liveSession struct {
	sid     string
	userID  string
	hash    string
	short   string
	expire  time.Time // the row's expiry as last seen
	sockets map[*socketio.Socket]*conn
	// rooms is what the newest read of the row rendered (SessionRooms),
	// by a check or a handshake, and roomsAt when that read began.
	rooms   []string
	roomsAt time.Time
}

// expiryEntry is a moment the scheduler must look at a session: at its
// expiry (final), or shortly before it (refreshLead) to refresh a session
// that the periodic checks missed. An entry whose expire is no longer the
// session's is stale and skipped.
type expiryEntry struct {
	at     time.Time
	expire time.Time
	hash   string
	final  bool
}

// expiryHeap is a min-heap of entries by at.
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// maxRefreshLead bounds how long before its expiry a session the periodic
// checks did not refresh gets a check of its own. Short, so that the
// periodic checks, batched, refresh nearly every session first.
const maxRefreshLead = 10 * time.Second

// refreshLead is how long before its expiry a session gets a last chance to
// be refreshed; 0 when refreshing is disabled.
func (g *Gateway) refreshLead() time.Duration {
	if g.threshold < 0 {
		return 0
	}
	return min(g.threshold, maxRefreshLead)
}

// recentWindow is how long an ended session is remembered, so that a
// handshake that read the row just before the end cannot register it after.
const recentWindow = time.Minute

type recentEnd struct {
	at     time.Time
	reason sessiongate.EndReason
}

// minPrune is the size below which the registry's maps are not pruned.
const minPrune = 1024

// recentEnds remembers sessions ended in the last recentWindow, by hash.
type recentEnds struct {
	at        map[string]recentEnd
	nextPrune int
}

func (r *recentEnds) add(hash string, e recentEnd) {
	if len(r.at) >= max(r.nextPrune, minPrune) {
		for h, old := range r.at {
			if e.at.Sub(old.at) > recentWindow {
				delete(r.at, h)
			}
		}
		r.nextPrune = 2 * len(r.at)
	}
	r.at[hash] = e
}

// setExpireLocked records a session's expiry and schedules a last refresh
// chance and the end at it.
func (g *Gateway) setExpireLocked(l *liveSession, expire time.Time) {
	if expire.Equal(l.expire) {
		return
	}
	l.expire = expire
	if len(g.expiries) >= max(minPrune, 4*len(g.live)) {
		g.pruneExpiriesLocked()
	}
	if lead := g.refreshLead(); lead > 0 {
		heap.Push(&g.expiries, expiryEntry{at: expire.Add(-lead), expire: expire, hash: l.hash})
	}
	heap.Push(&g.expiries, expiryEntry{at: expire, expire: expire, hash: l.hash, final: true})
	if g.expiries[0].hash == l.hash && g.expiries[0].expire.Equal(expire) {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// pruneExpiriesLocked drops the stale entries from the heap. Sessions whose
// sockets all left (handshake churn) leave entries that would otherwise
// stay until their expiry, hours away, reached the top: called when the
// heap holds twice the entries live sessions can have (two each), it keeps
// the heap proportional to the live sessions at an amortised constant cost
// per entry pushed.
func (g *Gateway) pruneExpiriesLocked() {
	kept := g.expiries[:0]
	for _, e := range g.expiries {
		if g.currentLocked(e) {
			kept = append(kept, e)
		}
	}
	clear(g.expiries[len(kept):]) // release the hashes
	g.expiries = kept
	heap.Init(&g.expiries)
}

// currentLocked reports whether e still describes its session.
func (g *Gateway) currentLocked(e expiryEntry) bool {
	l := g.live[e.hash]
	return l != nil && l.expire.Equal(e.expire)
}

// nextExpiry returns when the scheduler must next look at a session,
// dropping stale entries.
func (g *Gateway) nextExpiry() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.expiries) > 0 {
		if e := g.expiries[0]; g.currentLocked(e) {
			return e.at, true
		}
		heap.Pop(&g.expiries)
	}
	return time.Time{}, false
}

// dueSessions pops the entries due at now: the sessions to refresh if they
// can be (refresh), and those whose known expiry has passed (expired).
func (g *Gateway) dueSessions(now time.Time) (refresh, expired []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	final := make(map[string]bool)
	for len(g.expiries) > 0 && !g.expiries[0].at.After(now) {
		e := heap.Pop(&g.expiries).(expiryEntry)
		if !g.currentLocked(e) {
			continue
		}
		if e.final {
			final[e.hash] = true
			expired = append(expired, e.hash)
		} else {
			refresh = append(refresh, e.hash)
		}
	}
	// A session due for both is past its expiry: refreshing is too late.
	refresh = slices.DeleteFunc(refresh, func(h string) bool { return final[h] })
	return refresh, expired
}

// liveHashes returns the hashes of every live session.
func (g *Gateway) liveHashes() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Collect(maps.Keys(g.live))
}

// resyncHashes returns the hashes of every live session for a resync, and
// records when it took them (see Gateway.resyncedAt).
func (g *Gateway) resyncHashes() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resyncedAt = g.now()
	return slices.Collect(maps.Keys(g.live))
}

// end ends the live session with the given hash, if there is one, and
// remembers the end for handshakes in flight.
func (g *Gateway) end(ctx context.Context, hash string, reason sessiongate.EndReason) {
	g.mu.Lock()
	g.recent.add(hash, recentEnd{at: g.now(), reason: reason})
	l := g.live[hash]
	if l == nil {
		g.mu.Unlock()
		return
	}
	delete(g.live, hash)
	g.stats.liveSessions.Add(-1)
	socks := make([]*socketio.Socket, 0, len(l.sockets))
	for s := range l.sockets {
		socks = append(socks, s)
	}
	g.mu.Unlock()
	g.stats.ended(reason)
	g.log.Info("session ended", "session", l.short, "user", l.userID, "reason", reason, "sockets", len(socks))
	g.endSockets(ctx, l.userID, l.short, reason, socks)
}

// endSockets sends "session_expired" to each socket, disconnects it and
// audits it.
func (g *Gateway) endSockets(ctx context.Context, userID, short string, reason sessiongate.EndReason, socks []*socketio.Socket) {
	payload := map[string]sessiongate.EndReason{"reason": reason}
	for _, s := range socks {
		sendAway(s, EventSessionExpired, payload)
		ev := sessiongate.AuditEvent{
			Time:        g.now(),
			Action:      sessiongate.ActionSessionExpired,
			Severity:    sessiongate.SeverityInfo,
			UserID:      userID,
			SessionHash: short,
			Details:     string(reason),
		}
		if c := connOf(s); c != nil {
			ev.RemoteAddr, ev.UserAgent, ev.SocketID = c.client.remoteAddr, c.client.userAgent, c.client.socketID
		}
		g.audit.add(ev)
	}
}
