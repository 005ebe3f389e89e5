package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/clusterwire"
	"github.com/sessiongate/sessiongate/socketio"
)

// clusterAdapter is the socketio.Adapter of one namespace on a Cluster: it
// behaves as socket.io-adapter's ClusterAdapterWithHeartbeat, the base of
// @socket.io/postgres-adapter. Room operations and broadcasts are applied
// locally and published; what other nodes publish is applied through the
// wrapped MemoryAdapter.
type clusterAdapter struct {
	c     *Cluster
	ch    *channel
	local *socketio.MemoryAdapter
	nsp   string
	uid   string // this node's id on the namespace, 16 hex digits as Node's

	badChannel bool // its channel name is too long for PostgreSQL
	closed     atomic.Bool
	heartbeat  *time.Timer // HEARTBEAT after HeartbeatInterval without a publication

	echoes []*echo // awaiting their own notification, in publication order; guarded by c.mu

	mu      sync.Mutex
	peers   map[string]time.Time // uid → when last heard of
	reqs    map[string]*request
	ackReqs map[string]*ackRequest
}

var _ socketio.Adapter = (*clusterAdapter)(nil)

// request is one of this node's requests waiting for the answers of the
// peers it knew of when it was sent (the missing uids), as Node's
// customRequests.
type request struct {
	typ       int
	missing   map[string]struct{}
	sockets   []socketio.SocketInfo
	responses []any
	done      chan struct{} // closed when missing is empty
}

// ackRequest is a broadcast with acks of this node, waiting for the
// recipients' counts and acks until its timeout.
type ackRequest struct {
	clientCount func(int)
	ack         func([]any)
}

// errBadChannel is returned by the adapter of a namespace whose channel
// name PostgreSQL cannot take.
var errBadChannel = sessiongate.Errorf(sessiongate.ECodeInvalid, "postgres: cluster: channel name longer than 63 bytes")

// An echo is the local effect of a message this node publishes (a
// broadcast, a room operation): it happens when the node's listener gets
// the message back, between the messages of the other nodes committed
// before and after it, so that every node applies the cluster's
// operations in the one order of the NOTIFY queue. A join on one node
// followed by a broadcast from another then reaches the joined sockets of
// the second node too. While the listener is down (or when the
// publication fails) the effect happens at once.
type echo struct {
	key    string // the NOTIFY payload, or attachmentEchoKey(type)
	apply  func()
	direct bool // the listener was down: applied after the publication
	once   sync.Once
	done   chan struct{}
}

func (e *echo) run() {
	e.once.Do(func() {
		e.apply()
		close(e.done)
	})
}

// attachmentEchoKey stands for the header of an attachment, whose id is
// not known before the statement ran: attachments of one type are matched
// in order.
func attachmentEchoKey(typ int) string { return "\x00attachment " + strconv.Itoa(typ) }

// echoed runs the first echo awaiting key: the listener got it back.
func (a *clusterAdapter) echoed(key string) {
	a.c.mu.Lock()
	var e *echo
	for i, x := range a.echoes {
		if x.key == key {
			e = x
			a.echoes = append(a.echoes[:i:i], a.echoes[i+1:]...)
			break
		}
	}
	a.c.mu.Unlock()
	if e != nil {
		e.run()
	}
}

func (a *clusterAdapter) dropEcho(e *echo) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if i := slices.Index(a.echoes, e); i >= 0 {
		a.echoes = append(a.echoes[:i:i], a.echoes[i+1:]...)
	}
}

// publishApply publishes a message whose local effect is apply, and
// returns when apply has run (see echo), or ctx ended: then apply still
// runs when the echo comes. A publication that failed has its effect
// locally all the same, and its error is returned.
func (a *clusterAdapter) publishApply(ctx context.Context, typ int, data clusterwire.Map, apply func()) error {
	e := &echo{apply: apply, done: make(chan struct{})}
	if a.badChannel {
		e.run()
		return errBadChannel
	}
	a.heartbeat.Reset(a.c.opts.HeartbeatInterval)
	p, err := a.c.encode(a.ch.name, document(typ, data, a.uid, a.nsp), typ, a.uid, a.nsp)
	if err != nil {
		e.run()
		return err
	}
	e.key = string(p.payload)
	if p.attach != nil {
		e.key = attachmentEchoKey(typ)
	}
	p.echo, p.owner, p.done = e, a, make(chan error, 1)
	a.c.mu.Lock()
	// Only a channel LISTENed on the listener's current connection echoes.
	e.direct = !a.c.connected || a.ch.gen != a.c.listenGen || a.closed.Load()
	if !e.direct {
		a.echoes = append(a.echoes, e)
	}
	a.c.mu.Unlock()
	if e.direct {
		// No order to keep with a bus this node does not hear: the local
		// sockets need not wait for a database that may be down.
		e.run()
	}
	if err := a.c.enqueue(ctx, p); err != nil {
		a.dropEcho(e)
		e.run()
		return err
	}
	select {
	case err := <-p.done:
		if err != nil {
			return err // the publisher has applied it
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publish sends a message of this adapter without waiting for it.
func (a *clusterAdapter) publish(typ int, data clusterwire.Map) {
	if err := a.send(a.c.ctx, typ, data, false); err != nil && !errors.Is(err, errClusterClosed) {
		a.c.pubErrs.Add(1)
		a.c.log.Warn("postgres: cluster: publish", "type", typ, "nsp", a.nsp, "error", err)
	}
}

// publishWait sends a message of this adapter and waits until it is
// committed (or failed).
func (a *clusterAdapter) publishWait(ctx context.Context, typ int, data clusterwire.Map) error {
	return a.send(ctx, typ, data, true)
}

func (a *clusterAdapter) send(ctx context.Context, typ int, data clusterwire.Map, wait bool) error {
	if a.badChannel {
		return errBadChannel
	}
	if !a.closed.Load() {
		a.heartbeat.Reset(a.c.opts.HeartbeatInterval)
	}
	p, err := a.c.encode(a.ch.name, document(typ, data, a.uid, a.nsp), typ, a.uid, a.nsp)
	if err != nil {
		return err
	}
	if wait {
		p.done = make(chan error, 1)
	}
	if err := a.c.enqueue(ctx, p); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// encode makes the publication of doc: its JSON, unless it holds binary
// (types 3, 9, 10, 12, as Node decides) or its JSON reaches
// PayloadThreshold bytes; then its msgpack, for the attachments table.
func (c *Cluster) encode(channel string, doc clusterwire.Map, typ int, uid, nsp string) (*publication, error) {
	binaryType := typ == msgBroadcast || typ == msgServerSideEmit || typ == msgServerSideEmitResp || typ == msgBroadcastAck
	if !(binaryType && hasBinary(doc)) {
		j, err := appendJSON(nil, doc)
		if err != nil {
			return nil, fmt.Errorf("postgres: cluster: encode message: %w", err)
		}
		if len(j) < c.opts.PayloadThreshold {
			return &publication{channel: channel, payload: j}, nil
		}
	}
	b, err := clusterwire.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("postgres: cluster: encode message: %w", err)
	}
	// The header {"uid","type","attachmentId","nsp"}: Node's, plus the
	// namespace (Node's receivers ignore it; ours check it).
	prefix, err := appendJSON(nil, clusterwire.Map{{Key: "uid", Value: uid}, {Key: "type", Value: typ}})
	if err != nil {
		return nil, err
	}
	nspJSON, err := appendJSON(nil, nsp)
	if err != nil {
		return nil, err
	}
	return &publication{
		channel: channel,
		attach:  b,
		prefix:  string(prefix[:len(prefix)-1]) + `,"attachmentId":"`,
		suffix:  `","nsp":` + string(nspJSON) + `}`,
	}, nil
}

func (a *clusterAdapter) sendHeartbeat() {
	if a.closed.Load() {
		return
	}
	a.publish(msgHeartbeat, nil)
}

// onMessage handles a message of another node or an emitter, on the
// listener's goroutine: quickly, answers are queued.
func (a *clusterAdapter) onMessage(m clusterMessage) {
	if a.closed.Load() || m.UID == a.uid {
		return
	}
	if m.UID != "" && m.UID != emitterUID {
		a.notePeer(m.UID)
	}
	ctx := a.c.ctx
	switch m.Type {
	case msgInitialHeartbeat:
		a.publish(msgHeartbeat, nil)
	case msgHeartbeat:
	case msgAdapterClose:
		a.removePeer(m.UID)
	case msgBroadcast:
		msg, _, err := clusterwire.PacketFromValue(m.Data["packet"])
		if err != nil {
			a.c.drop("broadcast", a.ch.name, err)
			return
		}
		opts, err := clusterwire.OptsFromValue(m.Data["opts"])
		if err != nil {
			a.c.drop("broadcast", a.ch.name, err)
			return
		}
		opts.Flags.Local = true
		if id := m.requestID(); id != "" {
			if opts.Flags.Timeout <= 0 {
				opts.Flags.Timeout = a.c.opts.RequestTimeout
			}
			_ = a.local.BroadcastWithAck(ctx, msg, opts, func(n int) {
				a.publish(msgBroadcastClientCount, clusterwire.Map{{Key: "requestId", Value: id}, {Key: "clientCount", Value: n}})
			}, func(args []any) {
				// Node's recipients answer with their first argument.
				var arg any
				if len(args) > 0 {
					arg = args[0]
				}
				a.publish(msgBroadcastAck, clusterwire.Map{{Key: "requestId", Value: id}, {Key: "packet", Value: arg}})
			})
			return
		}
		_ = a.local.Broadcast(ctx, msg, opts)
	case msgSocketsJoin, msgSocketsLeave, msgDisconnectSockets:
		opts, err := clusterwire.OptsFromValue(m.Data["opts"])
		if err != nil {
			a.c.drop("room operation", a.ch.name, err)
			return
		}
		opts.Flags.Local = true
		switch m.Type {
		case msgDisconnectSockets:
			closeConn, _ := m.Data["close"].(bool)
			_ = a.local.DisconnectSockets(ctx, opts, closeConn)
		default:
			rooms, err := m.rooms()
			if err != nil {
				a.c.drop("room operation", a.ch.name, err)
				return
			}
			if m.Type == msgSocketsJoin {
				_ = a.local.AddSockets(ctx, opts, rooms)
			} else {
				_ = a.local.DelSockets(ctx, opts, rooms)
			}
		}
	case msgFetchSockets:
		opts, err := clusterwire.OptsFromValue(m.Data["opts"])
		if err != nil {
			a.c.drop("fetch sockets", a.ch.name, err)
			return
		}
		opts.Flags.Local = true
		infos, _ := a.local.FetchSockets(ctx, opts)
		sockets := make([]any, len(infos))
		for i, s := range infos {
			sockets[i] = clusterwire.NewRemoteSocket(s)
		}
		a.publish(msgFetchSocketsResponse, clusterwire.Map{{Key: "requestId", Value: m.requestID()}, {Key: "sockets", Value: sockets}})
	case msgServerSideEmit:
		msg, err := clusterwire.MessageFromData(m.Data["packet"])
		if err != nil {
			a.c.drop("server-side emit", a.ch.name, err)
			return
		}
		var ack func(any)
		if id := m.requestID(); id != "" {
			ack = func(arg any) {
				a.publish(msgServerSideEmitResp, clusterwire.Map{{Key: "requestId", Value: id}, {Key: "packet", Value: arg}})
			}
		}
		a.c.serverEvent(a.ch.name, func() { a.local.ServerEvent(socketio.Event{Name: msg.Event, Args: msg.Args}, ack) })
	case msgFetchSocketsResponse, msgServerSideEmitResp, msgBroadcastClientCount, msgBroadcastAck:
		a.onResponse(m)
	}
}

// onResponse matches an answer to one of this node's requests by its id
// (every node receives every answer: they share the channel).
func (a *clusterAdapter) onResponse(m clusterMessage) {
	id := m.requestID()
	if id == "" {
		return
	}
	a.mu.Lock()
	switch m.Type {
	case msgBroadcastClientCount, msgBroadcastAck:
		ar := a.ackReqs[id]
		a.mu.Unlock()
		if ar == nil {
			return
		}
		if m.Type == msgBroadcastClientCount {
			if n, ok := intValue(m.Data["clientCount"]); ok && n >= 0 {
				ar.clientCount(int(n))
			}
		} else {
			ar.ack([]any{m.Data["packet"]})
		}
		return
	}
	defer a.mu.Unlock()
	r := a.reqs[id]
	if r == nil {
		return
	}
	switch {
	case m.Type == msgFetchSocketsResponse && r.typ == msgFetchSockets:
		sockets, err := m.remoteSockets()
		if err != nil {
			a.c.drop("fetch sockets response", a.ch.name, err)
			return
		}
		for _, s := range sockets {
			r.sockets = append(r.sockets, s.SocketInfo())
		}
	case m.Type == msgServerSideEmitResp && r.typ == msgServerSideEmit:
		r.responses = append(r.responses, m.Data["packet"])
	default:
		return
	}
	a.answeredLocked(id, r, m.UID)
}

// answeredLocked records that uid answered (or left): the request is done
// when no peer is missing.
func (a *clusterAdapter) answeredLocked(id string, r *request, uid string) {
	delete(r.missing, uid)
	if len(r.missing) == 0 {
		delete(a.reqs, id)
		close(r.done)
	}
}

// removePeer forgets a peer that closed or went silent; requests stop
// waiting for it.
func (a *clusterAdapter) removePeer(uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.peers, uid)
	for id, r := range a.reqs {
		if _, ok := r.missing[uid]; ok {
			a.answeredLocked(id, r, uid)
		}
	}
}

// maxPeers bounds the uids a namespace tracks: anyone who can NOTIFY can
// invent them.
const maxPeers = 4096

// notePeer records that uid was heard of now.
func (a *clusterAdapter) notePeer(uid string) {
	a.mu.Lock()
	_, known := a.peers[uid]
	full := !known && len(a.peers) >= maxPeers
	if !full {
		a.peers[uid] = time.Now()
	}
	a.mu.Unlock()
	if full {
		a.livePeers() // forget the silent ones, then try again once
		a.mu.Lock()
		if len(a.peers) < maxPeers {
			a.peers[uid] = time.Now()
		}
		a.mu.Unlock()
	}
}

// livePeers returns the peers heard of within HeartbeatTimeout, forgetting
// the others.
func (a *clusterAdapter) livePeers() []string {
	a.mu.Lock()
	var stale, live []string
	now := time.Now()
	for uid, seen := range a.peers {
		if now.Sub(seen) > a.c.opts.HeartbeatTimeout {
			stale = append(stale, uid)
		} else {
			live = append(live, uid)
		}
	}
	a.mu.Unlock()
	for _, uid := range stale {
		a.removePeer(uid)
	}
	return live
}

// reserve counts a request against MaxPendingRequests.
func (a *clusterAdapter) reserve() error {
	if n := a.c.pending.Add(1); n > int64(a.c.opts.MaxPendingRequests) {
		a.c.pending.Add(-1)
		return sessiongate.Errorf(sessiongate.ECodeRateLimited, "postgres: cluster: %d requests pending, the maximum", a.c.opts.MaxPendingRequests)
	}
	return nil
}

func (a *clusterAdapter) release() { a.c.pending.Add(-1) }

// request publishes a request to the live peers and waits for their
// answers, at most timeout (and ctx); it returns the request, done or not,
// with an error wrapping socketio.ErrRequestTimeout when answers are
// missing.
func (a *clusterAdapter) request(ctx context.Context, typ int, timeout time.Duration, data func(id string) clusterwire.Map, peers []string) (*request, error) {
	if err := a.reserve(); err != nil {
		return nil, err
	}
	defer a.release()
	id := randomID()
	r := &request{typ: typ, missing: make(map[string]struct{}, len(peers)), done: make(chan struct{})}
	for _, p := range peers {
		r.missing[p] = struct{}{}
	}
	a.mu.Lock()
	a.reqs[id] = r
	a.mu.Unlock()
	if err := a.publishWait(ctx, typ, data(id)); err != nil {
		a.mu.Lock()
		delete(a.reqs, id)
		a.mu.Unlock()
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-r.done:
		return r, nil
	case <-t.C:
		err = socketio.ErrRequestTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-r.done:
		return r, nil // answered meanwhile
	default:
	}
	delete(a.reqs, id)
	a.c.timeouts.Add(1)
	return r, fmt.Errorf("postgres: cluster request (type %d): %d of %d nodes did not answer: %w", typ, len(r.missing), len(peers), errors.Join(socketio.ErrRequestTimeout, err))
}

func (a *clusterAdapter) checkOpen() error {
	if a.closed.Load() {
		return errClusterClosed
	}
	return nil
}

// AddAll waits for the namespace's first LISTEN (so that nothing published
// after it returns is missed), then joins locally. Later reconnections do
// not block it: the node keeps serving while its listener is down.
func (a *clusterAdapter) AddAll(ctx context.Context, id string, rooms []string) error {
	select {
	case <-a.ch.ready:
	default:
		if a.closed.Load() || a.badChannel {
			break
		}
		select {
		case <-a.ch.ready:
		case <-ctx.Done():
			return fmt.Errorf("postgres: cluster: not listening on %s yet: %w", a.ch.name, ctx.Err())
		}
	}
	return a.local.AddAll(ctx, id, rooms)
}

func (a *clusterAdapter) Del(id string, rooms []string) { a.local.Del(id, rooms) }
func (a *clusterAdapter) DelAll(id string)              { a.local.DelAll(id) }
func (a *clusterAdapter) Rooms(id string) []string      { return a.local.Rooms(id) }

func packetMap(m *socketio.Message) (clusterwire.Map, error) {
	data, err := clusterwire.PacketData(m)
	if err != nil {
		return nil, err
	}
	// As Node's adapter publishes it: no nsp (the channel says it).
	return clusterwire.Map{{Key: "type", Value: clusterwire.PacketTypeEvent}, {Key: "data", Value: data}}, nil
}

// Broadcast publishes m (unless opts.Flags.Local) and delivers it to the
// local sockets when the listener gets it back (see echo).
func (a *clusterAdapter) Broadcast(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions) error {
	if opts.Flags.Local || a.closed.Load() {
		return a.local.Broadcast(ctx, m, opts)
	}
	packet, err := packetMap(m)
	if err != nil {
		return err
	}
	var lerr error
	perr := a.publishApply(ctx, msgBroadcast, clusterwire.Map{{Key: "packet", Value: packet}, {Key: "opts", Value: clusterwire.OptsMap(opts)}}, func() {
		lerr = a.local.Broadcast(a.c.ctx, m, opts)
	})
	if perr != nil {
		return perr
	}
	return lerr
}

// BroadcastWithAck publishes m with a request id: each node answers with
// its recipients' count, then their acks, until the timeout.
func (a *clusterAdapter) BroadcastWithAck(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions, clientCount func(n int), ack func(args []any)) error {
	if !opts.Flags.Local {
		if err := a.checkOpen(); err != nil {
			return err
		}
		packet, err := packetMap(m)
		if err != nil {
			return err
		}
		if err := a.reserve(); err != nil {
			return err
		}
		timeout := opts.Flags.Timeout
		if timeout <= 0 {
			timeout = a.c.opts.RequestTimeout
		}
		wire := opts
		wire.Flags.Timeout = timeout
		id := randomID()
		a.mu.Lock()
		a.ackReqs[id] = &ackRequest{clientCount: clientCount, ack: ack}
		a.mu.Unlock()
		time.AfterFunc(timeout, func() {
			a.mu.Lock()
			delete(a.ackReqs, id)
			a.mu.Unlock()
			a.release()
		})
		var lerr error
		if err := a.publishApply(ctx, msgBroadcast, clusterwire.Map{
			{Key: "packet", Value: packet}, {Key: "requestId", Value: id}, {Key: "opts", Value: clusterwire.OptsMap(wire)},
		}, func() {
			lerr = a.local.BroadcastWithAck(a.c.ctx, m, opts, clientCount, ack)
		}); err != nil {
			return err
		}
		return lerr
	}
	return a.local.BroadcastWithAck(ctx, m, opts, clientCount, ack)
}

// roomOp publishes a room operation and applies it locally when the
// listener gets it back (see echo); receivers skip their own uid, as in
// the ClusterAdapter.
func (a *clusterAdapter) roomOp(ctx context.Context, typ int, opts socketio.BroadcastOptions, apply func() error, extra clusterwire.Field) error {
	if opts.Flags.Local || a.closed.Load() {
		return apply()
	}
	var lerr error
	if err := a.publishApply(ctx, typ, clusterwire.Map{{Key: "opts", Value: clusterwire.OptsMap(opts)}, extra}, func() { lerr = apply() }); err != nil {
		return err
	}
	return lerr
}

func (a *clusterAdapter) AddSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) error {
	return a.roomOp(ctx, msgSocketsJoin, opts, func() error { return a.local.AddSockets(a.c.ctx, opts, rooms) },
		clusterwire.Field{Key: "rooms", Value: nonNil(rooms)})
}

func (a *clusterAdapter) DelSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) error {
	return a.roomOp(ctx, msgSocketsLeave, opts, func() error { return a.local.DelSockets(a.c.ctx, opts, rooms) },
		clusterwire.Field{Key: "rooms", Value: nonNil(rooms)})
}

func (a *clusterAdapter) DisconnectSockets(ctx context.Context, opts socketio.BroadcastOptions, close bool) error {
	return a.roomOp(ctx, msgDisconnectSockets, opts, func() error { return a.local.DisconnectSockets(a.c.ctx, opts, close) },
		clusterwire.Field{Key: "close", Value: close})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// FetchSockets returns the local sockets opts selects and those of every
// live peer.
func (a *clusterAdapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, error) {
	localOpts := opts
	localOpts.Flags.Local = true
	infos, err := a.local.FetchSockets(ctx, localOpts)
	if err != nil || opts.Flags.Local {
		return infos, err
	}
	if err := a.checkOpen(); err != nil {
		return infos, err
	}
	peers := a.livePeers()
	if len(peers) == 0 {
		return infos, nil
	}
	timeout := opts.Flags.Timeout
	if timeout <= 0 {
		timeout = a.c.opts.RequestTimeout
	}
	r, err := a.request(ctx, msgFetchSockets, timeout, func(id string) clusterwire.Map {
		return clusterwire.Map{{Key: "opts", Value: clusterwire.OptsMap(opts)}, {Key: "requestId", Value: id}}
	}, peers)
	if r == nil {
		return infos, err
	}
	a.mu.Lock()
	infos = append(infos, r.sockets...)
	a.mu.Unlock()
	return infos, err
}

// AllRooms returns the rooms of every node. The protocol has no request
// for it: the rooms are those of the sockets FetchSockets returns (so a
// Node peer's rooms are included too).
func (a *clusterAdapter) AllRooms(ctx context.Context) ([]string, error) {
	infos, err := a.FetchSockets(ctx, socketio.BroadcastOptions{})
	local, lerr := a.local.AllRooms(ctx)
	if lerr != nil {
		return nil, lerr
	}
	seen := make(map[string]struct{}, len(local))
	for _, r := range local {
		seen[r] = struct{}{}
	}
	out := slices.Clone(local)
	for _, s := range infos {
		for _, r := range s.Rooms {
			if _, ok := seen[r]; !ok {
				seen[r] = struct{}{}
				out = append(out, r)
			}
		}
	}
	return out, err
}

func serverSidePacket(m *socketio.Message) ([]any, error) { return clusterwire.PacketData(m) }

// ServerSideEmit sends m to the other nodes' OnServerEvent handlers.
func (a *clusterAdapter) ServerSideEmit(ctx context.Context, m *socketio.Message) error {
	if err := a.checkOpen(); err != nil {
		return err
	}
	packet, err := serverSidePacket(m)
	if err != nil {
		return err
	}
	return a.publishWait(ctx, msgServerSideEmit, clusterwire.Map{{Key: "packet", Value: packet}})
}

// ServerSideEmitWithAck returns the first acknowledgement argument of each
// live peer; on a timeout, those received with the error.
func (a *clusterAdapter) ServerSideEmitWithAck(ctx context.Context, m *socketio.Message) ([]any, error) {
	if err := a.checkOpen(); err != nil {
		return nil, err
	}
	packet, err := serverSidePacket(m)
	if err != nil {
		return nil, err
	}
	peers := a.livePeers()
	if len(peers) == 0 {
		return []any{}, nil
	}
	r, err := a.request(ctx, msgServerSideEmit, a.c.opts.RequestTimeout, func(id string) clusterwire.Map {
		return clusterwire.Map{{Key: "requestId", Value: id}, {Key: "packet", Value: packet}}
	}, peers)
	if r == nil {
		return nil, err
	}
	a.mu.Lock()
	out := slices.Clone(r.responses)
	a.mu.Unlock()
	if out == nil {
		out = []any{}
	}
	return out, err
}

// ServerCount is 1 plus the peers heard of within HeartbeatTimeout
// (emitters are not nodes).
func (a *clusterAdapter) ServerCount(ctx context.Context) (int, error) {
	return 1 + len(a.livePeers()), nil
}

// Close sends ADAPTER_CLOSE (waiting at most a second) and stops the
// namespace's part in the cluster. Pending requests end with the
// Cluster's closed error.
func (a *clusterAdapter) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	if !a.badChannel {
		ctx, cancel := context.WithTimeout(a.c.ctx, time.Second)
		_ = a.send(ctx, msgAdapterClose, nil, true)
		cancel()
	}
	a.heartbeat.Stop()
	a.c.unregister(a)
	a.c.mu.Lock()
	pending := a.echoes
	a.echoes = nil
	a.c.mu.Unlock()
	for _, e := range pending {
		e.run()
	}
	return nil
}
