// Package redis makes sessiongate nodes one Socket.IO cluster over Redis
// pub/sub, speaking the classic protocol of @socket.io/redis-adapter 8.3
// byte for byte, so that Node Socket.IO servers with that adapter can sit
// in the same cluster and @socket.io/redis-emitter 5.x messages are
// obeyed. A Cluster is one node's connection; Cluster.Adapter is the
// socketio.Options.NewAdapter of every namespace.
//
// # Wire
//
// For a namespace nsp and the key (Options.Key, "socket.io"):
//   - broadcasts: msgpack (notepack-compatible, internal/clusterwire)
//     [uid, {type:2, data:[event, ...args], nsp}, {rooms, except, flags}]
//     on "<key>#<nsp>#<room>#" when they target exactly one room, else on
//     "<key>#<nsp>#". Flags carry only what is set (volatile); local is
//     never published. []byte arguments travel as msgpack bin and reach
//     local clients as a binary event; timestamps decode to Date.toJSON
//     strings. A missing packet.nsp means "/", flags may be absent, map
//     keys come in any order (the emitter writes rooms, flags, except).
//   - requests: "<key>-request#<nsp>#", JSON (first byte '{') or msgpack
//     (BROADCAST with acks, type 7). This node answers SOCKETS (0),
//     ALL_ROOMS (1), REMOTE_FETCH (5), SERVER_SIDE_EMIT (6) with an ack (on
//     the shared response channel, as Node does), and BROADCAST (7): one
//     JSON CLIENT_COUNT (8), 0 when it has no recipient, then one msgpack
//     BROADCAST_ACK (9) per client ack. It applies REMOTE_JOIN (2),
//     REMOTE_LEAVE (3) and REMOTE_DISCONNECT (4) with or without a uid (the
//     emitter sends none), and the legacy {sid, room} form of 2 and 3.
//   - responses: "<key>-response#<nsp>#" and "<key>-response#<nsp>#<uid>#"
//     (peers with publishOnSpecificResponseChannel), both subscribed.
//
// Each namespace's adapter has its uid: 6 random base62 characters, as
// Node's uid2(6). Our requests carry uid and requestId; their node count is
// PUBSUB NUMSUB of the request channel, and they wait for that many
// answers less one, at most Options.RequestTimeout, then fail with an error
// wrapping socketio.ErrRequestTimeout (counted in Stats). Pending requests
// are bounded (Options.MaxPendingRequests) and dropped on timeout and
// Close; bus messages larger than Options.MaxMessageBytes are dropped, and
// decoding is bounded in depth and items. (A message is read whole before
// it is measured: Redis' client-output-buffer-limit for pubsub clients,
// 32 MiB by default, bounds what it sends a subscriber.)
//
// Any subscriber of the request channel is counted by every node, Node's
// and ours: a spy or a dead peer that does not answer makes cluster
// requests time out (redis-adapter#406). This node answers within
// milliseconds.
//
// # Room operations: applied here, echo skipped
//
// Node's adapter does not apply socketsJoin/socketsLeave/disconnectSockets
// locally when it publishes them: it relies on receiving its own request.
// This adapter applies them locally first (so they hold for this node's
// sockets when the call returns, and without Redis), then publishes them
// with its uid, and skips its own echo. Node peers apply them on receipt
// either way, so both kinds of node see each operation exactly once.
//
// SocketsJoin and SocketsLeave then wait for a barrier: a SOCKETS request
// (type 0, for a room no one is in, which Node's adapter still answers)
// that every other node answers only after the requests before it, a join
// only once its SUBSCRIBE is confirmed. So a broadcast sent after either
// returns sees its effect on every node, as Node's single PSUBSCRIBE gives
// its peers; a silent subscriber makes them fail, after the operation was
// published, with ErrRequestTimeout. DisconnectSockets does not wait.
//
// Received REMOTE_JOIN and REMOTE_LEAVE change the local rooms as soon as
// they arrive, in the order Redis delivers them with the broadcasts, so an
// emitter's socketsJoin("muted") then except("muted").emit(...) skips the
// socket, as on Node's adapter. One case cannot be: the emitter's
// socketsJoin("r") then to("r").emit(...) from a publisher that waits for
// no barrier (Node's emitter and adapter) can reach this node before it
// has subscribed "r" (a SUBSCRIBE round trip), and is then lost for it.
//
// # Per-room subscriptions
//
// Node's classic adapter PSUBSCRIBEs "<key>#<nsp>#*": every node receives
// every broadcast and drops most of them (redis-adapter#510, #565). This
// adapter never PSUBSCRIBEs. It SUBSCRIBEs "<key>#<nsp>#" and, for each
// room a local socket is in, "<key>#<nsp>#<room>#", reference-counted on
// the sockets: the first local member subscribes, and the channel is
// unsubscribed Options.UnsubscribeLinger (2 s) after the last one left,
// unless a socket joined again meanwhile. Node publishers already send
// single-room emits to the room's channel, so they need no change, and only
// the nodes holding the room receive them.
//
// The guarantee: Adapter.AddAll returns only once Redis confirmed the
// SUBSCRIBE (the confirmation comes on the subscriber connection, which
// carries the channel's messages in order after it), so a broadcast
// published after a join returned, from any node, reaches the socket. A
// message for a room no local socket holds (arriving in a linger, or before
// the local join completed) is dropped before it is decoded. All
// SUBSCRIBE/UNSUBSCRIBE commands of a node go in order on one dedicated
// connection, batched (a reconnect storm costs one round trip per batch).
//
// # Socket-id rooms
//
// A Node publisher's io.to(sid) goes to "<key>#<nsp>#<sid>#". So that it
// reaches a sessiongate socket, each local socket's own channel is
// subscribed too, with the socket's first rooms (the AddAll before its
// CONNECT, which socketio always calls) in the same SUBSCRIBE command and
// round trip, and unsubscribed after it disconnected. The cost is one
// Redis channel per connection and one more channel name in the
// SUBSCRIBE/UNSUBSCRIBE commands a connection causes anyway; no extra
// round trip (a SUBSCRIBE/UNSUBSCRIBE pair is 85–150 µs on loopback,
// BenchmarkClientSubscribe). Options.SkipSocketIDChannels turns it off for
// clusters whose publishers never address a socket by id.
//
// This node's own emit to one room that looks like a socket id (20
// base64url characters, the rule of Node's sharded adapter) goes on
// "<key>#<nsp>#" instead, where Node nodes (PSUBSCRIBE) and ours
// (SUBSCRIBE), with or without SkipSocketIDChannels, all hear it.
//
// # Outages
//
// The subscriber connection is watched: when it drops, the node keeps its
// local sockets (they still get local broadcasts), logs the outage,
// reconnects with internal/backoff (100 ms doubling to 5 s) and subscribes
// every fixed and room channel it holds again. Sockets that join rooms
// during the outage do not wait for Redis (their channels are subscribed
// on reconnecting). Messages published
// meanwhile are lost for this node only; Redis cannot say how many, so
// Stats counts the outages (Stats.Outages) and this node's failed publishes
// (Stats.PublishErrors), and Cluster.Ready fails while it is down (for
// /readyz).
//
// # Security of the bus
//
// Nothing on the bus is signed, in this protocol or Node's: whoever can
// PUBLISH on "<key>*" can emit to any user, make sockets join rooms, or
// disconnect everyone. Give the nodes a Redis user of their own, confined
// to the key's channels and to the commands the adapter sends (checked
// against Redis 7.0 by TestACL):
//
//	ACL SETUSER sessiongate on >pw resetkeys resetchannels &socket.io#* &socket.io-request#* &socket.io-response#* -@all +publish +subscribe +unsubscribe +pubsub|numsub +ping +hello +client|setname
//
// (docs/cluster.md; TestClusterRedisACL in cmd/sessiongate runs two nodes
// as such a user; TestACL here checks the looser &socket.io* form)
//
// and connect with REDIS_URL=redis://sessiongate:pw@host:6379 (the user
// and password are sent with HELLO/AUTH), or rediss:// for TLS
// (Options.TLSConfig for a private CA; tested against a TLS redis-server). Backends
// that only emit need only +publish on the same channels. fetchSockets
// answers carry no header, cookie or auth payload: the handshake is
// reduced to {headers:{}, time, address, xdomain, secure, issued, url,
// query, auth:{}}, and data is what socketio.Options.SocketData gives.
//
// # Recovery log
//
// StreamLog is a socketio.SharedLog in one Redis stream, in the format of
// @socket.io/redis-streams-adapter 0.3.1: every namespace's broadcasts
// are XADDed to StreamName ("socket.io") as that adapter's entries (uid,
// nsp, type "3", data in JSON or base64 msgpack), each node reads them
// back in the stream's order (XREAD BLOCK) and delivers them, and their
// stream ids are the offsets clients get. So sessiongate nodes and Node
// servers with that adapter on the same stream deliver each other's
// broadcasts, with the same offsets. Saved sockets are under
// "<key>:recovery:session:<pid>" (PX, restored once by GETDEL, bound to
// their session), not Node's "sio:session:<pid>": a socket saved by a
// Node peer connects fresh here, told it may have missed events. Node's
// socketsJoin, socketsLeave and disconnectSockets entries (types 4–6) are
// not applied, and its streamCount > 1 is not supported. Redis 7.0 or
// later (XSETID MAXDELETEDID records what the log's trims drop). A user
// of its own for the log (checked by TestStreamLogACL):
//
//	ACL SETUSER sessiongate-log on >pw resetkeys ~socket.io* -@all +evalsha +eval +xadd +xrange +xrevrange +xtrim +xlen +xinfo|stream +xsetid +exists +xread +set +get +getdel +del +client|unblock +ping +hello +client|setname
//
// (the Lua scripts run XADD, XRANGE, XREVRANGE, XTRIM, XLEN, XINFO,
// XSETID and EXISTS as that user; CLIENT UNBLOCK frees the connection of
// a Read whose ctx ended).
package redis
