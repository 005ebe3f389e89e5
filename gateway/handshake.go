package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/socketio"
)

// storeTimeout bounds one store call: the session lookup of a handshake, an
// audit write.
const storeTimeout = 5 * time.Second

// HandshakeClientGone is the result code under which Stats counts, and the
// audit trail records (SOCKET_AUTH_FAILURE, WARN, details CLIENT_GONE), a
// handshake whose client disconnected while its session row was being read.
// It is never sent: there is no one left to send it to.
const HandshakeClientGone = "CLIENT_GONE"

// conn is what the gateway keeps on an authenticated socket (in its
// context).
type conn struct {
	identity  sessiongate.Identity
	hash      string    // SessionHash(sid)
	short     string    // ShortHash(sid)
	key       string    // userKey(identity.UserID): the user's bucket and slot count
	expire    time.Time // the row's expiry at the handshake
	checkedAt time.Time // when the handshake began reading the row
	client    client

	registered bool // guarded by Gateway.mu
	// counted: the socket holds one of its user's MaxConnectionsPerUser
	// slots; guarded by Gateway.mu.
	counted bool

	// want is the rooms the session's row renders (SessionRooms) as last
	// read, and dirty that a move to them failed and is to be retried;
	// both guarded by Gateway.mu. joined is the rooms the socket is in,
	// guarded by moveMu, which serialises the moves of one socket (a
	// Join may wait for a cluster's SUBSCRIBE: never under Gateway.mu).
	want   []string
	dirty  bool
	moveMu sync.Mutex
	joined []string

	subsMu sync.Mutex
	subs   map[string]bool // rooms joined by subscribe

	limitMu sync.Mutex
	limited refusalRun // the socket's RATE_LIMITED refusals, see ratelimit.go
}

// client is who asked, as recorded in the audit trail.
type client struct {
	remoteAddr string // IP only: the peer, or the client behind a trusted proxy
	userAgent  string
	socketID   string
}

func (g *Gateway) clientOf(s *socketio.Socket) client {
	hs := s.Handshake()
	return client{
		remoteAddr: g.clients.ClientIP(hs.RemoteAddr, hs.Header),
		userAgent:  hs.Header.Get("User-Agent"),
		socketID:   s.ID(),
	}
}

// refusal is a handshake that failed: the code sent to the client and, for
// INTERNAL, the cause (logged, never sent).
type refusal struct {
	code  string
	short string // ShortHash of the sid, once the cookie was verified
	user  string // the user, once known (TOO_MANY_CONNECTIONS)
	err   error
}

// authenticate is the namespace's OnConnecting hook: it runs the checks in
// the order of the package documentation; the socket starts in its user's
// room, with the identity in its context.
func (g *Gateway) authenticate(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
	s := ev.Socket
	cl := g.clientOf(s)
	c, ref := g.check(ctx, s, cl)
	if ref == nil {
		ref = g.reserve(c)
	}
	if ref != nil {
		g.refuse(cl, ref)
		return socketio.ConnectReply{}, connectError(ref.code)
	}
	if c.counted {
		// The slot is the socket's until it ends: disconnected releases it
		// at once, this when the socket never connects (the client left,
		// or joining its rooms failed) and so no disconnect handler runs.
		context.AfterFunc(ctx, func() { g.release(c) })
	}
	g.stats.handshake(HandshakeOK)
	// The CONNECT is granted once this record is durable (with a spool).
	g.audit.record(ctx, sessiongate.AuditEvent{
		Time:        g.now(),
		Action:      sessiongate.ActionAuthSuccess,
		Severity:    sessiongate.SeverityInfo,
		UserID:      c.identity.UserID,
		SessionHash: c.short,
		RemoteAddr:  cl.remoteAddr,
		UserAgent:   cl.userAgent,
		SocketID:    cl.socketID,
	})
	reply := socketio.ConnectReply{
		Rooms:   append([]string{c.identity.Room()}, c.joined...),
		Context: context.WithValue(ctx, connKey{}, c),
	}
	if ev.Recovered != nil {
		reply.RestoreRooms = restoreRooms(c, ev.Recovered)
	}
	return reply, nil
}

// reserve takes one of the user's MaxConnectionsPerUser slots for c, or
// refuses the handshake with TOO_MANY_CONNECTIONS when they are all held,
// here and, as the other nodes announce them, across the cluster. With
// ClusterLimits it counts the user's sockets even without a cap: a debit
// from another node creates a bucket only for a user with sockets here.
func (g *Gateway) reserve(c *conn) *refusal {
	if g.maxPerUser <= 0 && g.cluster == nil {
		return nil
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.perUser[c.key]
	if g.maxPerUser > 0 && n+g.cluster.remoteConns(c.key, now) >= g.maxPerUser {
		g.stats.limitRefused(LimitConnections)
		return &refusal{code: sessiongate.ECodeTooManyConnections, short: c.short, user: c.identity.UserID}
	}
	g.perUser[c.key] = n + 1
	g.cluster.connsChanged(c.key, n, n+1)
	c.counted = true
	return nil
}

// release gives back c's slot, if it holds one; it may be called more than
// once.
func (g *Gateway) release(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked(c)
}

func (g *Gateway) releaseLocked(c *conn) {
	if !c.counted {
		return
	}
	c.counted = false
	n := g.perUser[c.key]
	if n <= 1 {
		delete(g.perUser, c.key)
	} else {
		g.perUser[c.key] = n - 1
	}
	g.cluster.connsChanged(c.key, n, max(0, n-1))
}

func (g *Gateway) check(ctx context.Context, s *socketio.Socket, cl client) (*conn, *refusal) {
	hs := s.Handshake()
	if !hs.OriginAllowed {
		// Refused before any OnConnecting hook by package socketio
		// (OriginRefused audits it); checked again in case this hook
		// runs under a server set up otherwise.
		return nil, &refusal{code: sessiongate.ECodeOriginNotAllowed}
	}
	sid, err := expresssession.SessionIDFromHeader(hs.Header, g.cookieName, g.secrets)
	if err != nil {
		return nil, &refusal{code: sessiongate.ErrorCode(err), err: err}
	}
	hash := sessiongate.SessionHash(sid)
	short := hash[:sessiongate.ShortHashLen] // ShortHash(sid), without hashing twice
	checkedAt := g.now()
	sess, err := g.loader.session(ctx, sid)
	switch {
	case sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound:
		return nil, &refusal{code: sessiongate.ECodeSessionNotFound, short: short}
	case err != nil && ctx.Err() != nil:
		// The client left (its connection closed) while the row was
		// being read: not a store failure.
		return nil, &refusal{code: HandshakeClientGone, short: short, err: err}
	case err != nil:
		return nil, &refusal{code: sessiongate.ECodeInternal, short: short, err: err}
	case !sess.Valid(g.now()):
		return nil, &refusal{code: sessiongate.ECodeSessionExpired, short: short}
	}
	uid, ok, err := expresssession.UserID(sess.Data)
	if err != nil || !ok {
		// A row whose JSON cannot be read has no user either; express-session
		// would destroy it on load.
		return nil, &refusal{code: sessiongate.ECodeNotAuthenticated, short: short, err: err}
	}
	if ref := g.checkUser(ctx, uid, short); ref != nil {
		return nil, ref
	}
	rooms := g.sessionRooms(sess.Data, short)
	return &conn{
		identity:  sessiongate.Identity{UserID: uid, SessionID: sid},
		key:       userKey(uid),
		hash:      hash,
		short:     short,
		expire:    sess.Expire,
		checkedAt: checkedAt,
		client:    cl,
		want:      rooms,
		joined:    rooms,
	}, nil
}

// refuse counts, logs and audits a refused handshake.
func (g *Gateway) refuse(cl client, r *refusal) {
	g.stats.handshake(r.code)
	ev := sessiongate.AuditEvent{
		Time:        g.now(),
		Action:      sessiongate.ActionAuthFailure,
		Severity:    sessiongate.SeverityWarn,
		SessionHash: r.short,
		UserID:      r.user,
		RemoteAddr:  cl.remoteAddr,
		UserAgent:   cl.userAgent,
		SocketID:    cl.socketID,
		Details:     r.code,
	}
	if r.code == sessiongate.ECodeInternal {
		ev.Action, ev.Severity = sessiongate.ActionAuthError, sessiongate.SeverityHigh
		g.log.Error("handshake failed", "code", r.code, "session", r.short, "remote", cl.remoteAddr, "err", r.err)
	} else {
		g.log.Debug("handshake refused", "code", r.code, "session", r.short, "remote", cl.remoteAddr)
	}
	g.audit.add(ev)
}

// OriginRefusal is socketio.Options.OriginRefusal for a server with a
// Gateway: the CONNECT_ERROR of ORIGIN_NOT_ALLOWED as the refusal table
// (sessiongate.RefusalCodes) gives it.
func OriginRefusal() *socketio.ConnectError {
	return connectError(sessiongate.ECodeOriginNotAllowed)
}

// OriginRefused is socketio.Options.OnOriginRefused for a server with a
// Gateway: it counts, logs and audits the CONNECT that package socketio
// refused because its Engine.IO session was opened from an Origin that
// engineio.Options.AllowedOrigins does not allow, as the gateway's own
// refusals are (SOCKET_AUTH_FAILURE, details ORIGIN_NOT_ALLOWED).
func (g *Gateway) OriginRefused(s *socketio.Socket) {
	g.refuse(g.clientOf(s), &refusal{code: sessiongate.ECodeOriginNotAllowed})
}

// connectError is the CONNECT_ERROR payload for a handshake code, with the
// message the refusal table (sessiongate.RefusalCodes) gives it.
func connectError(code string) *socketio.ConnectError {
	msg := "unauthorized"
	if c, ok := sessiongate.LookupRefusal(code); ok {
		msg = c.Message
	}
	return &socketio.ConnectError{Message: msg, Data: map[string]string{"code": code}}
}

// connected registers an authenticated socket with its live session. A
// session that ended while the handshake was reading its row, or a server
// that is shutting down, sends the socket away at once. A resync that ran
// between the handshake's read and now did not see this socket: its session
// is checked here, so that a revocation the feed missed cannot slip through
// that window.
func (g *Gateway) connected(s *socketio.Socket) {
	c := connOf(s)
	if c == nil {
		return
	}
	g.mu.Lock()
	if g.closing {
		retryMs := g.retryMs
		g.mu.Unlock()
		sendAway(s, EventServerRestart, map[string]int64{"retryAfterMs": retryMs})
		return
	}
	c.registered = true
	g.sockets++
	g.stats.connections.Add(1)
	l := g.live[c.hash]
	if l == nil {
		l = &liveSession{
			sid:     c.identity.SessionID,
			userID:  c.identity.UserID,
			hash:    c.hash,
			short:   c.short,
			sockets: make(map[*socketio.Socket]*conn),
		}
		g.live[c.hash] = l
		g.stats.liveSessions.Add(1)
	}
	l.sockets[s] = c
	if c.expire.After(l.expire) {
		g.setExpireLocked(l, c.expire)
	}
	// The sockets of a session follow the newest read of its row: this
	// socket the rooms a check rendered after its handshake read the row,
	// or the session's other sockets the rooms this handshake rendered.
	var moves []roomMove
	if g.rooms != nil {
		if l.roomsAt.After(c.checkedAt) {
			if !slices.Equal(c.want, l.rooms) {
				c.want = l.rooms
				moves = append(moves, roomMove{s, c})
			}
		} else {
			l.rooms, l.roomsAt = c.want, c.checkedAt
			moves = movesLocked(l, c.want)
		}
	}
	e, ended := g.recent.at[c.hash]
	ended = ended && !e.at.Before(c.checkedAt)
	missedResync := !g.resyncedAt.Before(c.checkedAt)
	g.mu.Unlock()
	g.moveRooms(context.Background(), moves)
	switch {
	case ended:
		g.end(context.Background(), c.hash, e.reason)
	case missedResync:
		// On the socket's own handler queue: its first events wait for
		// this one read, in a window that is rarely hit.
		if !g.checkSessions(context.Background(), []string{c.hash}, false) {
			g.requestResync() // retried with backoff until the store answers
		}
	}
}

// disconnected unregisters a socket and audits its disconnection.
func (g *Gateway) disconnected(s *socketio.Socket, reason socketio.Reason) {
	c := connOf(s)
	if c == nil {
		return
	}
	g.mu.Lock()
	g.releaseLocked(c)
	if !c.registered {
		g.mu.Unlock()
		return
	}
	c.registered = false
	g.sockets--
	g.stats.connections.Add(-1)
	if l := g.live[c.hash]; l != nil && l.sockets[s] == c {
		delete(l.sockets, s)
		if len(l.sockets) == 0 {
			delete(g.live, c.hash)
			g.stats.liveSessions.Add(-1)
		}
	}
	if g.closing && g.sockets == 0 {
		close(g.idle)
	}
	g.mu.Unlock()
	g.audit.add(sessiongate.AuditEvent{
		Time:        g.now(),
		Action:      sessiongate.ActionDisconnect,
		Severity:    sessiongate.SeverityInfo,
		UserID:      c.identity.UserID,
		SessionHash: c.short,
		RemoteAddr:  c.client.remoteAddr,
		UserAgent:   c.client.userAgent,
		SocketID:    c.client.socketID,
		Details:     string(reason),
	})
}
