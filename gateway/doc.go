// Package gateway ties express-session sessions to Socket.IO sockets.
//
// A Gateway is attached to a socketio.Namespace. It then
//
//   - authenticates every client at the handshake, from the HTTP request
//     that opened its Engine.IO session: its Origin (as package engineio
//     judged it), the connect.sid cookie and its signature, the session row and its passport.user. A refused client
//     gets a CONNECT_ERROR {"message":"unauthorized","data":{"code":CODE}}
//     (see the ECode constants of package sessiongate), which the official
//     client treats as final: it does not reconnect;
//   - starts the socket in the room "user:<id>" (joined before its CONNECT
//     is sent) with the identity in its context (IdentityOf); the socket's
//     Data stays the application's, and SocketData is what other nodes of
//     a cluster learn about it (the user id and the session's short hash);
//   - keeps a registry of live sessions (all sockets of one session, keyed by
//     sessiongate.SessionHash) and, from one scheduler goroutine for all
//     sockets, re-validates them in batches of at most 500 ids per store
//     call every CheckInterval (the batches spread evenly over it),
//     refreshes the ones about to expire, and ends
//     a session the moment its known expiry passes;
//   - ends a session's sockets as soon as the store announces that it ended
//     (RevocationFeed), or when EndSession is called: each socket gets the
//     event "session_expired" {"reason": "revoked"|"expired"|"logged_out"}
//     and is disconnected by the server (the client sees
//     "io server disconnect" and does not reconnect);
//   - records every decision in the audit trail through an asynchronous,
//     batched writer that retries failed writes and never drops an event
//     silently; with Config.AuditSpool the events are kept on disk until
//     the store has them, and a granted CONNECT waits for its record's
//     fsync (docs/contract.md §5);
//   - lets a socket enter and leave rooms of its asking (the events
//     "subscribe" and "unsubscribe" {"room": name}, acknowledged with
//     {"ok": true} or {"ok": false, "error": {code, message, temporary?}}):
//     user rooms never, Config.PublicRooms always, the others as
//     Config.Authorizer says — HookAuthorizer asks the application over
//     HTTP with the socket's cookie (package internal/hook), allowed answers
//     are cached per session and room for their ttl, and concurrent
//     identical questions share one call (see subscribe.go and the
//     contract's Subscriptions section);
//   - forwards the client events no handler takes (the namespace's
//     OnUnhandled) to the application with Config.Events — HookForwarder
//     POSTs them signed with the socket's cookie, one at a time per socket
//     and in order — and acknowledges them with its JSON answer, or with
//     {"error": {code, message, temporary?}}: UNKNOWN_EVENT, INVALID_EVENT,
//     REJECTED, UNAVAILABLE (see events.go and the contract's Client events
//     section);
//   - counts what it does (Stats) for metrics.
//
// # Handshake order
//
// The checks run in this order; the first that fails decides the code:
//
//  1. Origin, when present, must be the server's own or one of
//     engineio.Options.AllowedOrigins (ORIGIN_NOT_ALLOWED). Package socketio
//     refuses such a CONNECT before any OnConnecting hook runs; set
//     socketio.Options.OriginRefusal to OriginRefusal() and OnOriginRefused
//     to Gateway.OriginRefused so that it is counted and audited as the
//     gateway's own refusals are.
//  2. The session cookie (NO_COOKIE) and its signature (BAD_SIGNATURE).
//  3. The session row (SESSION_NOT_FOUND, SESSION_EXPIRED); a store failure
//     is INTERNAL and admits no one.
//  4. passport.user (NOT_AUTHENTICATED); with Config.Users, its user must
//     still exist (NOT_AUTHENTICATED as well). The periodic checks ask
//     Config.Users once per batch and end the sessions of users gone as
//     revoked.
//  5. With Config.MaxConnectionsPerUser, the user's sockets on this Gateway
//     (TOO_MANY_CONNECTIONS): a granted handshake holds a slot until its
//     socket ends.
//
// A granted socket starts in user:<id> and in the rooms Config.SessionRooms
// renders from its row (see SessionRooms), before its CONNECT.
//
// Handshakes are rate limited per client address before any of this, when
// the Engine.IO session is opened (HTTP 429), keyed by ClientKey; a flood
// never reaches the cookie check or the database.
//
// A client that disconnects while its session row is being read (the
// connect hook's context is done when the lookup returns) has left, which is
// not a store failure: the handshake is counted under HandshakeClientGone,
// logged at DEBUG, and audited as SOCKET_AUTH_FAILURE (WARN) with details
// CLIENT_GONE, never as INTERNAL or a HIGH SOCKET_AUTH_ERROR. A store call
// that fails while the client is still there stays INTERNAL (HIGH).
//
// Concurrent handshakes share their row lookups: one store call is in
// flight at a time, and the lookups that arrive meanwhile go together in the
// next one (SessionStore.Sessions, up to 500 ids in one round trip), so a
// burst of N handshakes costs far fewer than N statements. A lone handshake
// runs at once with SessionStore.Session, bounded by its own context.
//
// The checks run for every namespace a client joins (each CONNECT packet),
// from the request that opened its Engine.IO session. That request stays
// the session's credential: VerifyRequest, set as
// engineio.Options.VerifyRequest, refuses a later polling request or the
// websocket upgrade that does not carry the same session cookie (the engine
// refuses one from an Origin not allowed), so the session id alone opens
// nothing.
//
// # Sessions on open sockets
//
// A check refreshes a session whose expiry is within RefreshThreshold, so an
// open socket keeps its session alive. A session the periodic checks did not
// refresh in time (a round ran late) gets a check of its own 10 seconds
// (at most RefreshThreshold) before its expiry. A session that reaches its
// expiry is ended at that instant by the scheduler, after one look at its
// row (a Node app may have moved the expiry meanwhile).
//
// With Config.SessionRooms, a check that reads a row rendering other rooms
// moves the session's sockets: they leave the rooms it lost, then join the
// new ones (outside the Gateway's lock: a cluster adapter's join waits for
// its SUBSCRIBE), each move audited as SOCKET_ROOMS_CHANGED. A join that
// fails is undone and retried at the next check. The sockets of a session
// follow the newest read of its row, a check's or a new socket's handshake.
//
// An ended socket is sent "session_expired", then a DISCONNECT for its
// namespace, and its connection is closed once both have been written (as
// Node's socket.disconnect(true)): the client sees "io server disconnect"
// and does not reconnect.
//
// # Per-user rate limits
//
// With Config.EventRate, one token bucket per user on this Gateway is spent
// by every subscribe, unsubscribe and unhandled client event (ratelimit.go);
// over it the ack is RATE_LIMITED with retryAfterMs and nothing is done. A
// socket far over it is sent "rate_limited" {"retryAfterMs": N} and
// disconnected. Refusals are audited SOCKET_RATE_LIMITED, aggregated per
// user per window.
//
// # Presence
//
// With Config.PresenceRooms, the members (users) of those rooms are tracked
// from every change of a local socket's rooms (socketio's OnRoomChange:
// subscribe, session rooms, room operations, disconnects) and, on a
// cluster, from the other nodes' gossip (server-side events
// "sessiongate:presence"); package internal/presence holds the state
// machine. The room's sockets on this node are sent "presence" events,
// coalesced per 500 ms and with leaves debounced; a subscribe's ack and
// Gateway.Presence give the current members (presence.go).
//
// # Lifecycle
//
// New starts the audit writer. Run runs the monitor scheduler and the
// revocation watcher until its context ends or Shutdown is called; without
// Run, sockets are authenticated and EndSession works, but sessions are
// neither re-checked nor ended by the store. Shutdown tells every socket to
// reconnect later ("server_restart" {"retryAfterMs": N}), disconnects it,
// stops the scheduler and flushes the audit trail. Close only flushes and
// stops the audit writer, and stops presence (its "bye" to the other nodes).
//
// Raw session ids never appear in logs or the audit trail: they carry
// sessiongate.ShortHash(sid).
package gateway
