package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/clientip"
	"github.com/sessiongate/sessiongate/internal/spool"
	"github.com/sessiongate/sessiongate/socketio"
)

// Defaults of the Config fields left zero.
const (
	DefaultCookieName       = "connect.sid"
	DefaultCheckInterval    = 5 * time.Minute
	DefaultRefreshThreshold = 5 * time.Minute
	DefaultRefreshExtend    = 24 * time.Hour
)

// Events the gateway sends to clients.
const (
	// EventSessionExpired is sent to every socket of a session that ended,
	// with {"reason": "revoked"|"expired"|"logged_out"}, just before the
	// server disconnects it.
	EventSessionExpired = "session_expired"
	// EventServerRestart is sent by Shutdown with {"retryAfterMs": N}: the
	// client reconnects after a random delay in [0, N] milliseconds.
	EventServerRestart = "server_restart"
)

// batchSize is the most session ids sent to the store in one call.
const batchSize = 500

// Config configures a Gateway. Sessions, Audit and Secrets are required; zero
// values of the other fields take the defaults above.
type Config struct {
	Sessions    sessiongate.SessionStore
	Revocations sessiongate.RevocationFeed // optional: nil means no push notifications
	Audit       sessiongate.AuditStore

	// Users, when set, is asked whether a session's user still exists, at
	// the handshake (NOT_AUTHENTICATED if not) and once per batch of the
	// periodic checks (its sockets end as revoked): the embedded login's
	// users table, or an operator's query beside a Node app. Nil: a
	// session's passport.user is taken as is.
	Users sessiongate.UserChecker

	// Secrets verify the cookie signature, tried in order (the first one is
	// the one new cookies are signed with).
	Secrets    [][]byte
	CookieName string // DefaultCookieName

	CheckInterval    time.Duration // how often every live session is re-validated
	RefreshThreshold time.Duration // a live session expiring within it is refreshed; negative: never
	RefreshExtend    time.Duration // to now + RefreshExtend

	// TrustedProxies are the addresses of reverse proxies in front of the
	// server: for a handshake from one of them, the client's address (for
	// the audit trail and ClientKey) is taken from X-Forwarded-For, as
	// package clientip does. Empty: the peer is the client.
	TrustedProxies []netip.Prefix

	// AuditSpool is a directory where audit events are kept on disk, with
	// group commit, until the Audit store has them: a granted CONNECT is
	// sent once its SOCKET_AUTH_SUCCESS record is on disk, and what is not
	// yet in the store when the process ends is written by the next one
	// (at least once). AuditSpoolMax bounds its size in bytes (default
	// DefaultAuditSpoolMax); past it events are dropped, counted and
	// logged. Empty: events wait in a memory queue and are lost if the
	// process dies before the store has them.
	AuditSpool    string
	AuditSpoolMax int64

	// SessionRooms are the rooms each socket joins from its session's
	// data (SESSION_ROOMS), beside user:<id>, before CONNECT; when a
	// session check reads a row that renders other rooms, the session's
	// sockets leave the old ones and join the new. Nil: none.
	SessionRooms *SessionRooms

	// MaxConnectionsPerUser caps the sockets one user has on this Gateway
	// (this node): the next handshake is refused with
	// TOO_MANY_CONNECTIONS until one disconnects. 0: no cap.
	MaxConnectionsPerUser int

	// PublicRooms are the rooms any authenticated socket may subscribe to
	// (PUBLIC_ROOMS); Authorizer, when set, decides the others
	// (SUBSCRIBE_URL). Without either, every subscribe is FORBIDDEN. A
	// decision takes at most SubscribeTimeout (DefaultSubscribeTimeout),
	// and at most DecisionCacheSize (DefaultDecisionCacheSize) allowed
	// decisions are remembered. See subscribe.go and the contract's
	// Subscriptions section.
	PublicRooms       []RoomPattern
	Authorizer        Authorizer
	SubscribeTimeout  time.Duration
	DecisionCacheSize int

	// Events, when set, forwards the client events no handler takes
	// (EVENTS_URL) whose names match ClientEvents (CLIENT_EVENTS; nil:
	// every name); the answer is the client's ack. Without it, those
	// events are answered UNKNOWN_EVENT (when acked) and dropped. See
	// events.go and the contract's Client events section.
	Events       EventForwarder
	ClientEvents []RoomPattern

	// EventRate, when positive, is the requests per second one user may
	// make on this node (EVENT_RATE_LIMIT): every client event that
	// reaches the fallback handler (forwarded or not) and every subscribe
	// and unsubscribe spends a token of the user's bucket of EventBurst
	// tokens (0: 2 × EventRate, at least 1). See ratelimit.go and the
	// contract's Per-user rate limits section. 0: no limit.
	EventRate  float64
	EventBurst int

	// PresenceRooms are the rooms whose members (users) are told who is
	// in them (PRESENCE_ROOMS; user: rooms never): "presence" events, a
	// snapshot in the subscribe ack, Gateway.Presence; across a cluster
	// through the main namespace's server-side events. A member whose
	// last socket left is announced gone after PresenceLeaveDelay
	// (DefaultPresenceLeaveDelay; negative: at once); lists hold at most
	// PresenceMaxMembers users (DefaultPresenceMaxMembers); another
	// node's members are forgotten PresenceTTL (DefaultPresenceTTL) after
	// its last word. See presence.go and the contract's Presence section.
	// Nil: no presence.
	PresenceRooms      []RoomPattern
	PresenceLeaveDelay time.Duration
	PresenceMaxMembers int
	PresenceTTL        time.Duration

	Logger *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now; for tests
}

// Gateway authenticates sockets against express-session sessions and ends
// them when their session ends. Its methods are safe for concurrent use.
type Gateway struct {
	sessions    sessiongate.SessionStore
	revocations sessiongate.RevocationFeed
	users       sessiongate.UserChecker
	secrets     [][]byte
	cookieName  string
	interval    time.Duration
	threshold   time.Duration
	extend      time.Duration
	rooms       *SessionRooms
	maxPerUser  int
	log         *slog.Logger
	now         func() time.Time

	clients *clientip.Resolver
	loader  sessionLoader
	subs    subscriptions
	events  clientEvents
	limits  userLimits
	// presence is nil without Config.PresenceRooms.
	presence *presenceTracker
	audit    *auditWriter
	stats    counters

	mu       sync.Mutex
	live     map[string]*liveSession // by SessionHash
	expiries expiryHeap
	recent   recentEnds
	// resyncedAt is when the last resync took its list of live sessions; a
	// socket whose handshake read its row before then but registered after
	// was not on the list, and is checked when it registers.
	resyncedAt time.Time
	sockets    int // sockets registered, across all sessions
	// perUser counts each user's sockets, from a granted handshake to
	// the socket's end, when maxPerUser is set.
	perUser map[string]int
	closing bool          // Shutdown has begun
	retryMs int64         // Shutdown's retryAfter, in milliseconds
	idle    chan struct{} // closed when closing and sockets reaches 0

	wake    chan struct{} // the earliest expiry moved
	resync  chan struct{} // every live session must be checked
	stop    chan struct{} // closed by Shutdown
	stopped sync.Once
	running atomic.Bool
	runDone chan struct{} // closed when Run returns
}

// New returns a Gateway and starts its audit writer; stop it with Shutdown
// or Close.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Sessions == nil:
		return nil, errors.New("gateway: Config.Sessions is required")
	case cfg.Audit == nil:
		return nil, errors.New("gateway: Config.Audit is required")
	case len(cfg.Secrets) == 0:
		return nil, errors.New("gateway: Config.Secrets is required")
	}
	if cfg.MaxConnectionsPerUser < 0 {
		return nil, errors.New("gateway: MaxConnectionsPerUser must not be negative")
	}
	if cfg.CheckInterval < 0 || cfg.RefreshExtend < 0 || cfg.SubscribeTimeout < 0 || cfg.DecisionCacheSize < 0 {
		return nil, errors.New("gateway: CheckInterval, RefreshExtend, SubscribeTimeout and DecisionCacheSize must not be negative")
	}
	if cfg.EventRate < 0 || cfg.EventBurst < 0 {
		return nil, errors.New("gateway: EventRate and EventBurst must not be negative")
	}
	if cfg.PresenceMaxMembers < 0 || cfg.PresenceTTL < 0 {
		return nil, errors.New("gateway: PresenceMaxMembers and PresenceTTL must not be negative")
	}
	for i, s := range cfg.Secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("gateway: secret %d is empty", i)
		}
	}
	g := &Gateway{
		sessions:    cfg.Sessions,
		revocations: cfg.Revocations,
		users:       cfg.Users,
		secrets:     cfg.Secrets,
		cookieName:  orDefault(cfg.CookieName, DefaultCookieName),
		interval:    orDefault(cfg.CheckInterval, DefaultCheckInterval),
		threshold:   orDefault(cfg.RefreshThreshold, DefaultRefreshThreshold),
		extend:      orDefault(cfg.RefreshExtend, DefaultRefreshExtend),
		rooms:       cfg.SessionRooms,
		maxPerUser:  cfg.MaxConnectionsPerUser,
		perUser:     make(map[string]int),
		log:         cfg.Logger,
		now:         cfg.Now,
		live:        make(map[string]*liveSession),
		recent:      recentEnds{at: make(map[string]recentEnd)},
		idle:        make(chan struct{}),
		wake:        make(chan struct{}, 1),
		resync:      make(chan struct{}, 1),
		stop:        make(chan struct{}),
		runDone:     make(chan struct{}),
	}
	g.loader.store = cfg.Sessions
	g.subs = subscriptions{
		public:  cfg.PublicRooms,
		auth:    cfg.Authorizer,
		timeout: orDefault(cfg.SubscribeTimeout, DefaultSubscribeTimeout),
		cache:   newDecisionCache(orDefault(cfg.DecisionCacheSize, DefaultDecisionCacheSize)),
	}
	g.events = clientEvents{fwd: cfg.Events, patterns: cfg.ClientEvents}
	g.limits = newUserLimits(cfg.EventRate, cfg.EventBurst)
	if g.log == nil {
		g.log = slog.Default()
	}
	g.log = g.log.With("component", "gateway")
	if g.now == nil {
		g.now = time.Now
	}
	if len(cfg.PresenceRooms) > 0 {
		g.presence = newPresenceTracker(cfg, g.now)
	}
	g.clients = clientip.New(cfg.TrustedProxies)
	g.clients.OnUntrustedForwarder = g.warnUntrustedForwarder
	g.stats.init()
	var sp *spool.Spool
	if cfg.AuditSpool != "" {
		var err error
		if sp, err = spool.Open(cfg.AuditSpool, orDefault(cfg.AuditSpoolMax, DefaultAuditSpoolMax)); err != nil {
			return nil, fmt.Errorf("gateway: audit spool: %w", err)
		}
	}
	g.audit = newAuditWriter(cfg.Audit, g.log, auditMinRetry, sp)
	return g, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Attach installs the handshake hook (OnConnecting), the connect and
// disconnect handlers, the handlers of EventSubscribe and EventUnsubscribe,
// the fallback handler of client events (OnUnhandled: forwarded by
// Config.Events) and, with Config.PresenceRooms, the presence hooks
// (OnRoomChange, OnServerEvent) on ns; attach one namespace only. Call it before clients connect and before
// adding hooks or handlers that rely on the identity. The identity lives in
// the socket's context (read it with IdentityOf); the socket's Data stays
// the application's.
func (g *Gateway) Attach(ns *socketio.Namespace) {
	ns.OnConnecting(g.authenticate)
	ns.OnConnect(g.connected)
	ns.OnDisconnect(g.disconnected)
	ns.On(EventSubscribe, g.subscribe)
	ns.On(EventUnsubscribe, g.unsubscribe)
	ns.OnUnhandled(g.clientEvent)
	g.attachPresence(ns)
}

// connKey is the context key of the gateway's conn on a socket.
type connKey struct{}

// connOf returns what the gateway keeps on s, or nil for a socket it did
// not authenticate.
func connOf(s *socketio.Socket) *conn {
	c, _ := s.Context().Value(connKey{}).(*conn)
	return c
}

// IdentityOf returns the identity the gateway put on s at the handshake, and
// false for a socket of a namespace the gateway is not attached to.
func IdentityOf(s *socketio.Socket) (sessiongate.Identity, bool) {
	c := connOf(s)
	if c == nil {
		return sessiongate.Identity{}, false
	}
	return c.identity, true
}

// SocketData is what other nodes of a cluster learn about s (set it as
// socketio.Options.SocketData): {"userId": ..., "session": short hash},
// never the session id or its data; nil for a socket the gateway did not
// authenticate.
func (g *Gateway) SocketData(s *socketio.Socket) any {
	c := connOf(s)
	if c == nil {
		return nil
	}
	return map[string]string{"userId": c.identity.UserID, "session": c.short}
}

// EndSession ends the session sid on this server at once, as a revocation
// would: its sockets get "session_expired" with reason and are disconnected.
// Call it after the session row was deleted or logged out in process (the
// embedded login), where no store notification may come.
func (g *Gateway) EndSession(ctx context.Context, sid string, reason sessiongate.EndReason) {
	g.end(ctx, sessiongate.SessionHash(sid), reason)
}

// Shutdown sends "server_restart" {"retryAfterMs": N} to every socket and
// disconnects it, stops Run, and flushes the audit trail (see Close). New
// handshakes that complete meanwhile are sent away the same way. It returns
// ctx.Err() if ctx ended before all of this was done.
func (g *Gateway) Shutdown(ctx context.Context, retryAfter time.Duration) error {
	g.mu.Lock()
	first := !g.closing
	if first {
		g.closing = true
		g.retryMs = retryAfter.Milliseconds()
	}
	var socks []*socketio.Socket
	for _, l := range g.live {
		for s := range l.sockets {
			socks = append(socks, s)
		}
	}
	if first && g.sockets == 0 {
		close(g.idle)
	}
	g.mu.Unlock()

	payload := map[string]int64{"retryAfterMs": retryAfter.Milliseconds()}
	for _, s := range socks {
		sendAway(s, EventServerRestart, payload)
	}
	g.stopped.Do(func() { close(g.stop) })

	var err error
	if g.running.Load() {
		select {
		case <-g.runDone:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	// Let the disconnect hooks queue their audit events before the flush.
	select {
	case <-g.idle:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := g.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// Close flushes the audit events queued so far and stops the audit writer.
// Events recorded after Close are counted as dropped. If ctx ends before the
// backlog is written, Close returns ctx.Err() and the rest stays in the
// audit spool for the next start, or without a spool is dropped (counted
// and logged).
func (g *Gateway) Close(ctx context.Context) error {
	if g.presence != nil {
		g.presence.close(ctx) // its "bye" goes before the bus closes
	}
	return g.audit.close(ctx)
}

// sendAway emits event with payload on s and then closes it (Socket.Close,
// Node's socket.disconnect(true)): the client gets the event, then the
// DISCONNECT for its namespace, sees "io server disconnect" and does not
// reconnect; the connection is closed after both have been written.
func sendAway(s *socketio.Socket, event string, payload any) {
	// Errors mean the socket is already gone, which is the goal.
	_ = s.Emit(event, payload)
	_ = s.Close()
}
