package gateway

import (
	"math"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/ratelimit"
	"github.com/sessiongate/sessiongate/socketio"
)

// Per-user rate limits (contract: Per-user rate limits): one token bucket
// per user id on this node, shared by all of the user's sockets (ten tabs
// spend one budget), spent by every client event that reaches the
// fallback handler and every subscribe and unsubscribe. A request over it
// is not carried out: its ack is RATE_LIMITED with the time until a token.
//
// The buckets are a ratelimit.Limiter keyed by userKey (a hash of the user
// id, the name the cluster's messages use): a bucket that has refilled is
// dropped, and at most ratelimit.MaxKeys are held (past that, users new to
// the limiter share one overflow bucket until others refill). Across a
// cluster, with Config.ClusterLimits, the nodes debit each other's buckets
// of a user with what was spent (ratelimit_cluster.go); without it the
// limit is per node.

// Kinds of Stats.RateLimitRefusals and Stats.RateLimitDisconnects: what
// the refused request was.
const (
	LimitEvents        = "events"        // client events (the fallback handler)
	LimitSubscriptions = "subscriptions" // subscribe and unsubscribe
	LimitConnections   = "connections"   // handshakes over MaxConnectionsPerUser
)

var limitKinds = []string{LimitEvents, LimitSubscriptions, LimitConnections}

// EventRateLimited is sent, with {"retryAfterMs": N}, to a socket that
// kept going far over its user's rate, just before the server disconnects
// it (see farOverWindow).
const EventRateLimited = "rate_limited"

// A socket with more than farOverFactor × burst RATE_LIMITED refusals
// within farOverWindow of its first refusal of the window is disconnected:
// it ignores the acks. The window starts again at the first refusal after
// it ends.
const (
	farOverFactor = 10
	farOverWindow = 10 * time.Second
)

// Details of SOCKET_RATE_LIMITED audit records.
const (
	rateLimitedRefused      = sessiongate.ECodeRateLimited // a request refused
	rateLimitedDisconnected = "disconnected"               // a socket sent away
)

// userLimits is the gateway's per-user limiter; a nil lim is no limit.
type userLimits struct {
	lim   *ratelimit.Limiter
	burst int
}

func newUserLimits(rate float64, burst int) userLimits {
	if rate <= 0 {
		return userLimits{}
	}
	if burst == 0 {
		burst = max(1, int(math.Ceil(2*rate)))
	}
	return userLimits{lim: ratelimit.New(rate, float64(burst)), burst: burst}
}

// refusalRun counts a socket's refusals in its current far-over window.
type refusalRun struct {
	start time.Time
	n     int
}

// limited spends a token of c's user for a request of s, of kind
// LimitEvents or LimitSubscriptions. It returns nil when the request may go
// on; otherwise the ack's error, after auditing the refusal and, for a
// socket far over the limit, sending it away (after the caller's ack: see
// sendAwayAfter).
func (g *Gateway) limited(s *socketio.Socket, c *conn, kind string) (e *ackError, away func()) {
	if g.limits.lim == nil || c == nil {
		return nil, nil
	}
	now := g.now()
	ok, wait := g.limits.lim.Allow(c.key, now)
	if ok {
		g.cluster.spend(c.key)
		return nil, nil
	}
	g.stats.limitRefused(kind)
	retryMs := max(1, (wait + time.Millisecond - 1).Milliseconds())
	c.limitMu.Lock()
	r := &c.limited
	if r.n == 0 || now.Sub(r.start) >= farOverWindow || now.Before(r.start) {
		*r = refusalRun{start: now}
	}
	r.n++
	far := r.n == farOverFactor*g.limits.burst+1
	c.limitMu.Unlock()
	g.auditRateLimited(c, now, rateLimitedRefused)
	if far {
		g.stats.limitDisconnected(kind)
		g.auditRateLimited(c, now, rateLimitedDisconnected)
		g.log.Warn("socket far over the rate limit: disconnected", "user", c.identity.UserID, "session", c.short, "socket", s.ID())
		away = func() { sendAway(s, EventRateLimited, map[string]int64{"retryAfterMs": retryMs}) }
	}
	return &ackError{Code: sessiongate.ECodeRateLimited, Message: "rate limited; retry later", Temporary: true, RetryAfterMs: retryMs}, away
}

func (g *Gateway) auditRateLimited(c *conn, now time.Time, details string) {
	g.audit.add(sessiongate.AuditEvent{
		Time:        now,
		Action:      sessiongate.ActionRateLimited,
		Severity:    sessiongate.SeverityWarn,
		UserID:      c.identity.UserID,
		SessionHash: c.short,
		RemoteAddr:  c.client.remoteAddr,
		UserAgent:   c.client.userAgent,
		SocketID:    c.client.socketID,
		Details:     details,
	})
}
