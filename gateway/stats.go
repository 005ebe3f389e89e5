package gateway

import (
	"sync/atomic"

	"github.com/sessiongate/sessiongate"
)

// HandshakeOK is the result code under which Stats counts accepted
// handshakes; refusals are counted under their sessiongate.ECode, and
// handshakes whose client left under HandshakeClientGone.
const HandshakeOK = "OK"

// handshakeCodes are the result codes a handshake can have.
var handshakeCodes = []string{
	HandshakeOK,
	sessiongate.ECodeOriginNotAllowed,
	sessiongate.ECodeNoCookie,
	sessiongate.ECodeBadSignature,
	sessiongate.ECodeSessionNotFound,
	sessiongate.ECodeSessionExpired,
	sessiongate.ECodeNotAuthenticated,
	sessiongate.ECodeTooManyConnections,
	sessiongate.ECodeRateLimited,
	sessiongate.ECodeInternal,
	HandshakeClientGone,
}

var endReasons = []sessiongate.EndReason{
	sessiongate.EndRevoked, sessiongate.EndExpired, sessiongate.EndLoggedOut,
}

// Stats is a snapshot of a Gateway's counters. Counters (uint64) only grow
// over the Gateway's life; gauges (int64) go up and down.
type Stats struct {
	Connections  int64 // sockets authenticated and connected now
	LiveSessions int64 // distinct sessions with at least one socket now

	// Handshakes counts handshakes by result: HandshakeOK or the refusal
	// code. Every code has an entry, zero or not.
	Handshakes map[string]uint64

	SessionCheckBatches uint64 // Sessions store calls made by the monitor
	SessionsChecked     uint64 // sessions re-validated by those calls
	Refreshes           uint64 // sessions whose expiry the monitor moved

	// SessionsEnded counts sessions ended while they had sockets, by
	// reason: revocations, logouts and expiries.
	SessionsEnded map[sessiongate.EndReason]uint64

	AuditBacklog       int64  // audit events waiting in memory to be written
	AuditSpoolBytes    int64  // bytes of audit records in the spool not yet written to the store
	AuditWriteFailures uint64 // failed WriteAudit calls (each is retried)
	AuditDropped       uint64 // audit events given up on (logged at error level)
	AuditRejected      uint64 // audit events the store refused for their data, isolated and logged
	AuditAggregated    uint64 // refusals counted into another record's Count instead of a row of their own

	// RateLimitRefusals counts the requests the per-user limits refused,
	// by kind: LimitEvents and LimitSubscriptions (RATE_LIMITED acks),
	// LimitConnections (TOO_MANY_CONNECTIONS handshakes). Every kind has
	// an entry.
	RateLimitRefusals map[string]uint64
	// RateLimitDisconnects counts the sockets sent away far over the
	// rate, by the kind of the request that crossed the line (LimitEvents,
	// LimitSubscriptions; LimitConnections stays 0).
	RateLimitDisconnects map[string]uint64
	// RateLimitBuckets is the per-user buckets held now (users who spent
	// recently, or owe what other nodes reported).
	RateLimitBuckets int64
	// ClusterLimitMessages counts EventClusterLimits messages: LimitIn,
	// LimitOut, LimitMalformed, LimitFailed; ClusterLimitTokens the
	// tokens they reported spent: LimitIn, LimitOut, LimitFailed, and
	// LimitUnshared (never reported). Nil without Config.ClusterLimits.
	ClusterLimitMessages map[string]uint64
	ClusterLimitTokens   map[string]uint64
	// RemoteConnections is the other nodes' announced socket counts of
	// users held now (ClusterLimits with MaxConnectionsPerUser).
	RemoteConnections int64
}

// Stats returns a snapshot of the counters. It is cheap and safe to call
// concurrently (e.g. from a metrics scrape).
func (g *Gateway) Stats() Stats {
	st := Stats{
		Connections:         g.stats.connections.Load(),
		LiveSessions:        g.stats.liveSessions.Load(),
		Handshakes:          make(map[string]uint64, len(handshakeCodes)),
		SessionCheckBatches: g.stats.checkBatches.Load(),
		SessionsChecked:     g.stats.sessionsChecked.Load(),
		Refreshes:           g.stats.refreshes.Load(),
		SessionsEnded:       make(map[sessiongate.EndReason]uint64, len(endReasons)),
		AuditBacklog:        g.audit.backlog(),
		AuditSpoolBytes:     g.audit.spoolBytes(),
		AuditWriteFailures:  g.audit.failures.Load(),
		AuditDropped:        g.audit.lost(),
		AuditRejected:       g.audit.rejected.Load(),
		AuditAggregated:     g.audit.aggregated.Load(),
	}
	for code, n := range g.stats.handshakes {
		st.Handshakes[code] = n.Load()
	}
	for reason, n := range g.stats.ends {
		st.SessionsEnded[reason] = n.Load()
	}
	st.RateLimitRefusals, st.RateLimitDisconnects = snapshot(g.stats.limitRefusals), snapshot(g.stats.limitDisconnects)
	if g.limits.lim != nil {
		st.RateLimitBuckets = int64(g.limits.lim.Len())
	}
	if cl := g.cluster; cl != nil {
		st.ClusterLimitMessages, st.ClusterLimitTokens = snapshot(cl.msgs), snapshot(cl.tokens)
		cl.mu.Lock()
		st.RemoteConnections = int64(cl.remoteN)
		cl.mu.Unlock()
	}
	return st
}

// counters are the live counters behind Stats. The maps are filled by init
// and only read afterwards.
type counters struct {
	connections     atomic.Int64
	liveSessions    atomic.Int64
	handshakes      map[string]*atomic.Uint64
	checkBatches    atomic.Uint64
	sessionsChecked atomic.Uint64
	refreshes       atomic.Uint64
	ends            map[sessiongate.EndReason]*atomic.Uint64
	// limitRefusals and limitDisconnects are by limit kind.
	limitRefusals    map[string]*atomic.Uint64
	limitDisconnects map[string]*atomic.Uint64
}

func (c *counters) init() {
	c.handshakes = make(map[string]*atomic.Uint64, len(handshakeCodes))
	for _, code := range handshakeCodes {
		c.handshakes[code] = new(atomic.Uint64)
	}
	c.ends = make(map[sessiongate.EndReason]*atomic.Uint64, len(endReasons))
	for _, r := range endReasons {
		c.ends[r] = new(atomic.Uint64)
	}
	c.limitRefusals, c.limitDisconnects = counterMap(limitKinds), counterMap(limitKinds)
}

func (c *counters) limitRefused(kind string)      { c.limitRefusals[kind].Add(1) }
func (c *counters) limitDisconnected(kind string) { c.limitDisconnects[kind].Add(1) }

func (c *counters) handshake(code string) {
	if n, ok := c.handshakes[code]; ok {
		n.Add(1)
	} else {
		c.handshakes[sessiongate.ECodeInternal].Add(1)
	}
}

func (c *counters) ended(reason sessiongate.EndReason) {
	if n, ok := c.ends[reason]; ok {
		n.Add(1)
	}
}
