package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
	"github.com/sessiongate/sessiongate/socketio"
)

// Request types of the classic @socket.io/redis-adapter protocol.
const (
	reqSockets         = 0
	reqAllRooms        = 1
	reqRemoteJoin      = 2
	reqRemoteLeave     = 3
	reqRemoteDisconn   = 4
	reqRemoteFetch     = 5
	reqServerSideEmit  = 6
	reqBroadcast       = 7
	resBroadcastCount  = 8
	resBroadcastAck    = 9
	requestQueueLength = 4096
)

// Adapter is the socketio.Adapter of one namespace on the Redis bus. It
// delivers through the namespace's MemoryAdapter.
type Adapter struct {
	c     *Cluster
	local *socketio.MemoryAdapter
	nsp   string
	uid   string

	bchan, reqChan, resChan, resUIDChan string

	ready chan struct{} // closed when the fixed channels are subscribed
	work  chan func()   // requests of other nodes, run in order off the reading goroutine
	stop  chan struct{}
	ctx   context.Context // ends at Close: bounds the handling of requests
	end   context.CancelFunc
	wg    sync.WaitGroup

	// queued is the payload bytes of the requests in work, at most
	// 2×MaxMessageBytes: a peer flooding large requests while the worker
	// waits for Redis fills no more.
	queued atomic.Int64

	mu       sync.Mutex
	requests map[string]*pending    // our requests waiting for answers
	acks     map[string]*ackPending // our broadcasts with acks
	closed   bool
}

// pending is one of our requests.
type pending struct {
	typ     int
	want    int // answers expected
	got     int
	sockets []socketio.SocketInfo
	rooms   []string
	acks    []any
	done    chan struct{}
}

type ackPending struct {
	clientCount func(int)
	ack         func([]any)
	// acks still expected: the sum of the counts answered so far, less the
	// acks taken. A node sends its count before its acks, so an ack beyond
	// it is a peer's noise, dropped: the caller's result stays bounded.
	allowance int
}

func newAdapter(c *Cluster, local *socketio.MemoryAdapter) *Adapter {
	nsp := local.Namespace().Name()
	k := c.opts.Key
	id := uid(6)
	if c.opts.StreamDelivery {
		id = streamUIDPrefix + id
	}
	a := &Adapter{
		c: c, local: local, nsp: nsp, uid: id,
		bchan:    k + "#" + nsp + "#",
		reqChan:  k + "-request#" + nsp + "#",
		resChan:  k + "-response#" + nsp + "#",
		ready:    make(chan struct{}),
		work:     make(chan func(), requestQueueLength),
		stop:     make(chan struct{}),
		requests: make(map[string]*pending),
		acks:     make(map[string]*ackPending),
	}
	a.resUIDChan = a.resChan + a.uid + "#"
	a.ctx, a.end = context.WithCancel(c.ctx)
	return a
}

// start subscribes the namespace's fixed channels (in the background: a
// namespace is created under the server's lock) and runs the request
// worker.
func (a *Adapter) start() {
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		for {
			select {
			case f := <-a.work:
				f()
			case <-a.stop:
				return
			}
		}
	}()
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-a.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		for ch, h := range map[string]func(string){
			a.bchan:      func(p string) { a.onBroadcast("", p) },
			a.reqChan:    a.onRequest,
			a.resChan:    a.onResponse,
			a.resUIDChan: a.onResponse,
		} {
			if err := a.c.subscribe(ctx, ch, h, nil); err != nil {
				return
			}
		}
		close(a.ready)
	}()
}

// Ready waits until the namespace's channels are subscribed: from then on
// other nodes count this one (ServerCount) and it hears their requests.
func (a *Adapter) Ready(ctx context.Context) error {
	select {
	case <-a.ready:
		return nil
	case <-a.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// UID returns the node id of this adapter on the bus (6 base62
// characters, one per namespace as in Node).
func (a *Adapter) UID() string { return a.uid }

func (a *Adapter) roomChan(room string) string { return a.bchan + room + "#" }

// AddAll subscribes the channels of the rooms this node does not hold yet
// (and, unless Options.SkipSocketIDChannels, the socket's own channel), all
// in one round trip, waits for their confirmations, then puts the socket in
// the rooms.
func (a *Adapter) AddAll(ctx context.Context, id string, rooms []string) error {
	var held []string
	defer func() {
		for _, ch := range held {
			a.c.joined(ch)
		}
	}()
	var waits []<-chan struct{}
	acquire := func(room string) error {
		ch, w, err := a.acquireRoom(room)
		if err != nil {
			return err
		}
		held = append(held, ch)
		waits = append(waits, w)
		return nil
	}
	if !a.c.opts.SkipSocketIDChannels {
		if err := acquire(id); err != nil {
			return err
		}
	}
	for _, r := range rooms {
		if r == id {
			continue
		}
		if err := acquire(r); err != nil {
			return err
		}
	}
	for _, w := range waits {
		if err := a.c.confirmed(ctx, w); err != nil {
			return fmt.Errorf("redis: subscribe to the rooms of %s: %w", id, err)
		}
	}
	return a.local.AddAll(ctx, id, rooms)
}

// acquireRoom subscribes the channel of room (if it is not yet), holding a
// joining reference to it that the caller releases with Cluster.joined.
func (a *Adapter) acquireRoom(room string) (channel string, confirmed <-chan struct{}, err error) {
	ch := a.roomChan(room)
	w, err := a.c.acquire(ch, func(p string) { a.onBroadcast(room, p) }, func() bool { return a.local.HasRoom(room) })
	return ch, w, err
}

// Del takes the socket out of rooms; a room no local socket holds any more
// is unsubscribed after the linger.
func (a *Adapter) Del(id string, rooms []string) {
	a.local.Del(id, rooms)
	for _, r := range rooms {
		a.c.release(a.roomChan(r))
	}
}

// DelAll takes the socket out of every room (its own included).
func (a *Adapter) DelAll(id string) {
	rooms := a.local.Rooms(id)
	a.local.DelAll(id)
	for _, r := range append(rooms, id) {
		a.c.release(a.roomChan(r))
	}
}

// Rooms returns the rooms of a local socket.
func (a *Adapter) Rooms(id string) []string { return a.local.Rooms(id) }

// looksLikeSocketID reports whether room has the shape of a socket id (20
// base64url characters, sessiongate's and Node's): a single-room emit to
// it goes to the namespace channel, where every node hears it, since no
// node subscribes socket-id channels.
func looksLikeSocketID(room string) bool {
	if len(room) != 20 {
		return false
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Broadcast publishes m (unless opts.Flags.Local) as Node's adapter does,
// then delivers it locally. A publish failure is returned after the local
// delivery.
func (a *Adapter) Broadcast(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions) error {
	var perr error
	if !opts.Flags.Local {
		perr = a.publishBroadcast(ctx, m, opts)
	}
	if err := a.local.Broadcast(ctx, m, opts); err != nil {
		return err
	}
	return perr
}

// streamUIDPrefix starts the uid of a node with Options.StreamDelivery:
// '~' is not among the characters of Node's uid2.
const streamUIDPrefix = "sg~"

// PublishRemote publishes m for the nodes that do not read the shared
// recovery log (Node peers on pub/sub), with Options.StreamDelivery: see
// socketio.RemotePublisher.
func (a *Adapter) PublishRemote(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions) error {
	return a.publishBroadcast(ctx, m, opts)
}

func (a *Adapter) publishBroadcast(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions) error {
	packet, err := clusterwire.Packet(m, a.nsp)
	if err != nil {
		return fmt.Errorf("redis: encode broadcast: %w", err)
	}
	o := opts
	o.Flags.Timeout = 0 // only ack broadcasts carry one
	b, err := clusterwire.Marshal([]any{a.uid, packet, clusterwire.OptsMap(o)})
	if err != nil {
		return fmt.Errorf("redis: encode broadcast: %w", err)
	}
	ch := a.bchan
	if len(opts.Rooms) == 1 && !looksLikeSocketID(opts.Rooms[0]) {
		ch = a.roomChan(opts.Rooms[0])
	}
	return a.c.publish(ctx, ch, b)
}

// BroadcastWithAck publishes a BROADCAST request (msgpack, with a
// requestId) and runs the local broadcast; the other nodes answer with
// their client count and then each ack.
func (a *Adapter) BroadcastWithAck(ctx context.Context, m *socketio.Message, opts socketio.BroadcastOptions, clientCount func(n int), ack func(args []any)) error {
	if opts.Flags.Local {
		return a.local.BroadcastWithAck(ctx, m, opts, clientCount, ack)
	}
	packet, err := clusterwire.Packet(m, a.nsp)
	if err != nil {
		return fmt.Errorf("redis: encode broadcast: %w", err)
	}
	timeout := opts.Flags.Timeout
	if timeout <= 0 {
		timeout = a.c.opts.RequestTimeout
	}
	o := opts
	o.Flags.Timeout = timeout
	id := uid(6)
	b, err := clusterwire.Marshal(clusterwire.Map{
		{Key: "uid", Value: a.uid}, {Key: "requestId", Value: id}, {Key: "type", Value: reqBroadcast},
		{Key: "packet", Value: packet}, {Key: "opts", Value: clusterwire.OptsMap(o)},
	})
	if err != nil {
		return fmt.Errorf("redis: encode broadcast: %w", err)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	if len(a.acks) >= a.c.opts.MaxPendingRequests {
		a.mu.Unlock()
		return errors.New("redis: too many broadcasts waiting for acks")
	}
	a.acks[id] = &ackPending{clientCount: clientCount, ack: ack}
	a.mu.Unlock()
	time.AfterFunc(timeout, func() {
		a.mu.Lock()
		delete(a.acks, id)
		a.mu.Unlock()
	})
	perr := a.c.publish(ctx, a.reqChan, b)
	if err := a.local.BroadcastWithAck(ctx, m, opts, clientCount, ack); err != nil {
		return err
	}
	return perr
}

// AddSockets makes the sockets opts selects join rooms: here (subscribing
// the rooms first) and, through a REMOTE_JOIN request, on every other node.
func (a *Adapter) AddSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) error {
	a.addSocketsLocal(ctx, opts, rooms)
	if opts.Flags.Local {
		return nil
	}
	if err := a.publishRequest(ctx, map[string]any{"uid": a.uid, "type": reqRemoteJoin, "opts": clusterwire.OptsJSON(opts), "rooms": strsOrEmpty(rooms)}); err != nil {
		return err
	}
	return a.barrier(ctx)
}

// barrier waits until every other node has handled this node's previous
// requests: it asks them for the sockets of a room no one is in (SOCKETS,
// which Node's adapter still answers) and waits for the answers. A node
// handles its requests in order, and a join only after its SUBSCRIBE is
// confirmed, so after SocketsJoin or SocketsLeave returns, a broadcast
// from this node to the rooms sees their effect on every node, as it does
// with Node's adapters (which receive everything on one PSUBSCRIBE).
func (a *Adapter) barrier(ctx context.Context) error {
	_, err := a.request(ctx, reqSockets, map[string]any{"rooms": []string{""}})
	if err != nil {
		return fmt.Errorf("redis: waiting for the other nodes to apply the room operation: %w", err)
	}
	return nil
}

func (a *Adapter) addSocketsLocal(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) {
	for _, id := range a.local.SocketIDs(opts) {
		_ = a.AddAll(ctx, id, rooms) // a socket gone meanwhile
	}
}

func (a *Adapter) delSocketsLocal(opts socketio.BroadcastOptions, rooms []string) {
	for _, id := range a.local.SocketIDs(opts) {
		a.Del(id, rooms)
	}
}

// DelSockets makes the sockets opts selects leave rooms, here and on every
// other node.
func (a *Adapter) DelSockets(ctx context.Context, opts socketio.BroadcastOptions, rooms []string) error {
	a.delSocketsLocal(opts, rooms)
	if opts.Flags.Local {
		return nil
	}
	if err := a.publishRequest(ctx, map[string]any{"uid": a.uid, "type": reqRemoteLeave, "opts": clusterwire.OptsJSON(opts), "rooms": strsOrEmpty(rooms)}); err != nil {
		return err
	}
	return a.barrier(ctx)
}

// DisconnectSockets disconnects the sockets opts selects, here and on every
// other node.
func (a *Adapter) DisconnectSockets(ctx context.Context, opts socketio.BroadcastOptions, close bool) error {
	err := a.local.DisconnectSockets(ctx, opts, close)
	if opts.Flags.Local {
		return err
	}
	return errors.Join(err, a.publishRequest(ctx, map[string]any{"uid": a.uid, "type": reqRemoteDisconn, "opts": clusterwire.OptsJSON(opts), "close": close}))
}

func strsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// publishRequest publishes a JSON request on the namespace's request
// channel.
func (a *Adapter) publishRequest(ctx context.Context, req any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("redis: encode request: %w", err)
	}
	return a.c.publish(ctx, a.reqChan, b)
}

func (a *Adapter) publishResponse(res any) {
	var b []byte
	var err error
	if m, ok := res.(clusterwire.Map); ok {
		b, err = clusterwire.Marshal(m)
	} else {
		b, err = json.Marshal(res)
	}
	if err != nil {
		a.c.log.Warn("redis: encode response", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(a.c.ctx, a.c.opts.RequestTimeout)
	defer cancel()
	if err := a.c.publish(ctx, a.resChan, b); err != nil {
		a.c.log.Warn("redis: publish response", "err", err)
	}
}

// request publishes req (JSON) and waits for the answers of every other
// node serving the namespace (PUBSUB NUMSUB of the request channel, less
// this one), at most the request timeout in all: the NUMSUB and PUBLISH
// too, which a Redis that stopped answering would otherwise hold for the
// client's connection timeout (10 s).
func (a *Adapter) request(ctx context.Context, typ int, req map[string]any) (*pending, error) {
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, a.c.opts.RequestTimeout)
	defer cancel()
	timedOut := func(err error) error {
		// The client may fail on the deadline (a net.Conn deadline) a moment
		// before ctx's own timer has run and set ctx.Err().
		if caller.Err() == nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
			a.c.timeouts.Add(1)
			return fmt.Errorf("%w: %w", socketio.ErrRequestTimeout, err)
		}
		return err
	}
	n, err := a.c.numSub(ctx, a.reqChan)
	if err != nil {
		return nil, timedOut(err)
	}
	p := &pending{typ: typ, want: n - 1, done: make(chan struct{})}
	if p.want <= 0 {
		return p, nil
	}
	id := uid(6)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	if len(a.requests) >= a.c.opts.MaxPendingRequests {
		a.mu.Unlock()
		return nil, errors.New("redis: too many requests waiting for answers")
	}
	a.requests[id] = p
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.requests, id)
		a.mu.Unlock()
	}()
	req["uid"], req["requestId"], req["type"] = a.uid, id, typ
	if err := a.publishRequest(ctx, req); err != nil {
		return nil, timedOut(err)
	}
	select {
	case <-p.done:
		return p, nil
	case <-ctx.Done():
	case <-a.stop:
		return nil, ErrClosed
	}
	a.c.timeouts.Add(1)
	a.mu.Lock()
	got := p.got
	a.mu.Unlock()
	return nil, fmt.Errorf("redis: %d of %d answers received: %w", got, p.want, socketio.ErrRequestTimeout)
}

// FetchSockets returns the sockets opts selects on every node.
func (a *Adapter) FetchSockets(ctx context.Context, opts socketio.BroadcastOptions) ([]socketio.SocketInfo, error) {
	local, err := a.local.FetchSockets(ctx, opts)
	if err != nil || opts.Flags.Local {
		return local, err
	}
	p, err := a.request(ctx, reqRemoteFetch, map[string]any{"opts": clusterwire.OptsJSON(opts)})
	if err != nil {
		return nil, err
	}
	return append(local, p.sockets...), nil
}

// AllRooms returns the rooms of every node.
func (a *Adapter) AllRooms(ctx context.Context) ([]string, error) {
	local, err := a.local.AllRooms(ctx)
	if err != nil {
		return nil, err
	}
	p, err := a.request(ctx, reqAllRooms, map[string]any{})
	if err != nil {
		return nil, err
	}
	seen := make(map[string]struct{}, len(local)+len(p.rooms))
	out := make([]string, 0, len(local)+len(p.rooms))
	for _, r := range append(local, p.rooms...) {
		if _, ok := seen[r]; !ok {
			seen[r] = struct{}{}
			out = append(out, r)
		}
	}
	return out, nil
}

// ServerSideEmit sends m to the other nodes' OnServerEvent handlers.
func (a *Adapter) ServerSideEmit(ctx context.Context, m *socketio.Message) error {
	data, err := clusterwire.PacketData(m)
	if err != nil {
		return fmt.Errorf("redis: encode server-side emit: %w", err)
	}
	return a.publishRequest(ctx, map[string]any{"uid": a.uid, "type": reqServerSideEmit, "data": data})
}

// ServerSideEmitWithAck sends m to the other nodes and returns the first
// acknowledgement argument of each.
func (a *Adapter) ServerSideEmitWithAck(ctx context.Context, m *socketio.Message) ([]any, error) {
	data, err := clusterwire.PacketData(m)
	if err != nil {
		return nil, fmt.Errorf("redis: encode server-side emit: %w", err)
	}
	p, err := a.request(ctx, reqServerSideEmit, map[string]any{"data": data})
	if err != nil {
		return nil, err
	}
	if p.acks == nil {
		return []any{}, nil
	}
	return p.acks, nil
}

// ServerCount returns the number of subscribers of the namespace's request
// channel, as Node's adapter counts nodes.
func (a *Adapter) ServerCount(ctx context.Context) (int, error) {
	n, err := a.c.numSub(ctx, a.reqChan)
	return max(n, 1), err
}

// Close leaves the bus: the namespace's channels are unsubscribed and
// pending requests fail.
func (a *Adapter) Close() error {
	a.shutdown()
	a.c.forget(a)
	return nil
}

func (a *Adapter) shutdown() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	clear(a.acks)
	a.mu.Unlock()
	a.end()
	close(a.stop)
	a.wg.Wait()
	for _, ch := range []string{a.bchan, a.reqChan, a.resChan, a.resUIDChan} {
		a.c.unsubscribeFixed(ch)
	}
}

// bytesOf views a received message as bytes without copying it; the
// decoders only read it.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// onBroadcast handles a message of the namespace channel (room "") or of a
// room channel: dropped before decoding when no local socket holds the
// room, and when it is this node's own.
func (a *Adapter) onBroadcast(room, payload string) {
	if room != "" && !a.local.HasRoom(room) {
		a.c.dropped.Add(1)
		return
	}
	d := clusterwire.NewDecoder(bytesOf(payload), clusterwire.Limits{})
	m, opts, err := a.decodeBroadcast(d)
	if err != nil {
		if errors.Is(err, errOwn) || errors.Is(err, errOtherNsp) {
			a.c.dropped.Add(1)
			return
		}
		a.c.malformed.Add(1)
		a.c.log.Warn("redis: malformed broadcast dropped", "channel", a.bchan+room, "err", err)
		return
	}
	opts.Flags.Local = true
	if err := a.local.Broadcast(a.c.ctx, m, opts); err != nil {
		a.c.log.Warn("redis: deliver broadcast", "err", err)
	}
}

var (
	errOwn      = errors.New("own message")
	errOtherNsp = errors.New("another namespace")
)

// decodeBroadcast reads [uid, packet, opts], stopping after the uid when it
// is this node's.
func (a *Adapter) decodeBroadcast(d *clusterwire.Decoder) (*socketio.Message, socketio.BroadcastOptions, error) {
	var opts socketio.BroadcastOptions
	n, err := d.ArrayLen()
	if err != nil {
		return nil, opts, err
	}
	if n != 3 {
		return nil, opts, fmt.Errorf("%w: broadcast of %d elements", clusterwire.ErrShape, n)
	}
	uid, err := d.String()
	if err != nil {
		return nil, opts, err
	}
	if uid == a.uid || (a.c.opts.StreamDelivery && strings.HasPrefix(uid, streamUIDPrefix)) {
		return nil, opts, errOwn // or a node that delivered it from the stream
	}
	pv, err := d.Value()
	if err != nil {
		return nil, opts, err
	}
	ov, err := d.Value()
	if err != nil {
		return nil, opts, err
	}
	if d.Len() != 0 {
		return nil, opts, fmt.Errorf("%w: trailing bytes", clusterwire.ErrMalformed)
	}
	m, nsp, err := clusterwire.PacketFromValue(pv)
	if err != nil {
		return nil, opts, err
	}
	if nsp != a.nsp {
		return nil, opts, errOtherNsp
	}
	opts, err = clusterwire.OptsFromValue(ov)
	return m, opts, err
}

// decodeMessage decodes a request or response: JSON when it starts with
// '{', msgpack otherwise, as Node's adapter decides.
func decodeMessage(payload string) (map[string]any, error) {
	var v any
	if strings.HasPrefix(payload, "{") {
		if err := json.Unmarshal(bytesOf(payload), &v); err != nil {
			return nil, err
		}
	} else {
		var err error
		if v, err = clusterwire.Unmarshal(bytesOf(payload)); err != nil {
			return nil, err
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %T, not an object", clusterwire.ErrShape, v)
	}
	return m, nil
}

func intField(m map[string]any, k string) (int, bool) {
	switch v := m[k].(type) {
	case float64:
		if v == float64(int(v)) {
			return int(v), true
		}
	case int64:
		return int(v), true
	}
	return 0, false
}

func (a *Adapter) isOwnRequest(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.requests[id]
	if !ok {
		_, ok = a.acks[id]
	}
	return ok
}

// onRequest decodes a request on the reading goroutine and queues its
// handling for the worker (which may wait for Redis). A REMOTE_JOIN or
// REMOTE_LEAVE changes the local rooms here first (see roomOp).
func (a *Adapter) onRequest(payload string) {
	req, err := decodeMessage(payload)
	if err != nil {
		a.c.malformed.Add(1)
		a.c.log.Warn("redis: malformed request dropped", "err", err)
		return
	}
	work := func() { a.handleRequest(req) }
	release := func() {}
	if typ, _ := intField(req, "type"); (typ == reqRemoteJoin || typ == reqRemoteLeave) && req["opts"] != nil {
		var wait func(context.Context)
		if wait, release = a.roomOp(typ, req); wait == nil {
			return
		}
		work = func() {
			ctx, cancel := context.WithTimeout(a.ctx, a.c.opts.RequestTimeout)
			wait(ctx)
			cancel()
			release()
		}
	}
	n := int64(len(payload))
	if a.queued.Add(n) <= 2*int64(a.c.opts.MaxMessageBytes) {
		select {
		case a.work <- func() { work(); a.queued.Add(-n) }:
			return
		default:
		}
	}
	a.queued.Add(-n)
	release()
	a.c.dropped.Add(1)
	a.c.log.Warn("redis: request queue full, request dropped")
}

// roomOp applies a REMOTE_JOIN or REMOTE_LEAVE to the local sockets at
// once, on the reading goroutine: a broadcast right behind it on the
// namespace channel (an emitter's socketsJoin("muted") then
// except("muted").emit(...)) must find it applied, as Node's adapter,
// which handles both in the order Redis delivers them, does. The SUBSCRIBE
// of the rooms this node did not hold is sent now; what it returns is left
// for the worker, in the order of the requests: wait waits for the
// confirmations (so that a barrier answered after it holds), and release
// drops the joining references. A nil wait: nothing is left to do.
func (a *Adapter) roomOp(typ int, req map[string]any) (wait func(context.Context), release func()) {
	release = func() {}
	if uid, _ := req["uid"].(string); uid == a.uid {
		return nil, release // applied before it was published
	}
	opts, err := clusterwire.OptsFromValue(req["opts"])
	if err != nil {
		a.c.malformed.Add(1)
		return nil, release
	}
	rooms, err := roomsField(req["rooms"])
	if err != nil {
		a.c.malformed.Add(1)
		return nil, release
	}
	ids := a.local.SocketIDs(opts)
	if typ == reqRemoteLeave {
		for _, id := range ids {
			a.Del(id, rooms)
		}
		return nil, release
	}
	if len(ids) == 0 {
		return nil, release
	}
	var chans []string
	var waits []<-chan struct{}
	for _, r := range rooms {
		ch, w, err := a.acquireRoom(r)
		if err != nil {
			break // closed
		}
		chans = append(chans, ch)
		waits = append(waits, w)
	}
	for _, id := range ids {
		_ = a.local.AddAll(a.ctx, id, rooms) // ErrDisconnected: gone meanwhile
	}
	wait = func(ctx context.Context) {
		for _, w := range waits {
			if a.c.confirmed(ctx, w) != nil {
				return
			}
		}
	}
	release = func() {
		for _, ch := range chans {
			a.c.joined(ch)
		}
	}
	return wait, release
}

func (a *Adapter) handleRequest(req map[string]any) {
	typ, ok := intField(req, "type")
	if !ok {
		a.c.malformed.Add(1)
		return
	}
	uid, _ := req["uid"].(string)
	id, _ := req["requestId"].(string)
	ctx, cancel := context.WithTimeout(a.ctx, a.c.opts.RequestTimeout)
	defer cancel()
	opts, err := clusterwire.OptsFromValue(req["opts"])
	if err != nil {
		a.c.malformed.Add(1)
		return
	}
	opts.Flags.Local = true
	switch typ {
	case reqSockets:
		if a.isOwnRequest(id) {
			return
		}
		rooms, err := roomsField(req["rooms"])
		if err != nil {
			a.c.malformed.Add(1)
			return
		}
		ids := a.local.SocketIDs(socketio.BroadcastOptions{Rooms: rooms})
		a.publishResponse(map[string]any{"requestId": id, "sockets": strsOrEmpty(ids)})
	case reqAllRooms:
		if a.isOwnRequest(id) {
			return
		}
		rooms, _ := a.local.AllRooms(ctx)
		a.publishResponse(map[string]any{"requestId": id, "rooms": strsOrEmpty(rooms)})
	case reqRemoteJoin, reqRemoteLeave:
		// The current form is applied by onRequest (roomOp).
		if uid != a.uid && req["opts"] == nil {
			a.legacyJoin(ctx, typ, req, id)
		}
	case reqRemoteDisconn:
		if uid == a.uid {
			return
		}
		closeConn, _ := req["close"].(bool)
		_ = a.local.DisconnectSockets(ctx, opts, closeConn)
	case reqRemoteFetch:
		if a.isOwnRequest(id) {
			return
		}
		infos, _ := a.local.FetchSockets(ctx, opts)
		socks := make([]clusterwire.RemoteSocket, len(infos))
		for i, s := range infos {
			socks[i] = clusterwire.NewRemoteSocket(s)
		}
		a.publishResponse(map[string]any{"requestId": id, "sockets": socks})
	case reqServerSideEmit:
		if uid == a.uid {
			return
		}
		m, err := clusterwire.MessageFromData(req["data"])
		if err != nil {
			a.c.malformed.Add(1)
			return
		}
		var ack func(any)
		if id != "" {
			ack = func(arg any) {
				a.publishResponse(map[string]any{"type": reqServerSideEmit, "requestId": id, "data": arg})
			}
		}
		a.local.ServerEvent(socketio.Event{Name: m.Event, Args: m.Args}, ack)
	case reqBroadcast:
		if a.isOwnRequest(id) {
			return
		}
		m, nsp, err := clusterwire.PacketFromValue(req["packet"])
		if err != nil || nsp != a.nsp {
			a.c.malformed.Add(1)
			return
		}
		var once sync.Once
		count := func(n int) {
			once.Do(func() {
				a.publishResponse(map[string]any{"type": resBroadcastCount, "requestId": id, "clientCount": n})
			})
		}
		err = a.local.BroadcastWithAck(ctx, m, opts, count, func(args []any) {
			var arg any
			if len(args) > 0 {
				arg = args[0]
			}
			a.publishResponse(clusterwire.Map{{Key: "type", Value: resBroadcastAck}, {Key: "requestId", Value: id}, {Key: "packet", Value: arg}})
		})
		count(0) // a node without recipients still answers, once
		if err != nil {
			a.c.log.Warn("redis: broadcast with ack", "err", err)
		}
	default:
		a.c.dropped.Add(1)
	}
}

// legacyJoin answers the pre-8 form {sid, room, requestId} of REMOTE_JOIN
// and REMOTE_LEAVE.
func (a *Adapter) legacyJoin(ctx context.Context, typ int, req map[string]any, id string) {
	sid, _ := req["sid"].(string)
	room, err := clusterwire.RoomName(req["room"])
	if sid == "" || err != nil || !a.local.HasRoom(sid) {
		return
	}
	if typ == reqRemoteJoin {
		_ = a.AddAll(ctx, sid, []string{room})
	} else {
		a.Del(sid, []string{room})
	}
	a.publishResponse(map[string]any{"requestId": id})
}

func roomsField(v any) ([]string, error) {
	o, err := clusterwire.OptsFromValue(map[string]any{"rooms": v})
	return o.Rooms, err
}

// onResponse handles an answer to one of our requests (on the reading
// goroutine: it only updates maps and calls the ack callbacks).
func (a *Adapter) onResponse(payload string) {
	res, err := decodeMessage(payload)
	if err != nil {
		a.c.malformed.Add(1)
		a.c.log.Warn("redis: malformed response dropped", "err", err)
		return
	}
	id, _ := res["requestId"].(string)
	typ, hasType := intField(res, "type")
	a.mu.Lock()
	if ap := a.acks[id]; ap != nil && hasType && (typ == resBroadcastCount || typ == resBroadcastAck) {
		if typ == resBroadcastCount {
			n, ok := intField(res, "clientCount")
			ok = ok && n >= 0
			if ok {
				ap.allowance += n
			}
			a.mu.Unlock()
			if ok {
				ap.clientCount(n)
			}
			return
		}
		if ap.allowance <= 0 {
			a.mu.Unlock()
			a.c.dropped.Add(1)
			return
		}
		ap.allowance--
		a.mu.Unlock()
		ap.ack([]any{res["packet"]})
		return
	}
	p := a.requests[id]
	if p == nil || p.got >= p.want {
		a.mu.Unlock()
		a.c.dropped.Add(1) // late (timed out), or not ours
		return
	}
	switch p.typ {
	case reqRemoteFetch:
		p.sockets = append(p.sockets, remoteSockets(res["sockets"])...)
	case reqAllRooms:
		rooms, _ := roomsField(res["rooms"])
		p.rooms = append(p.rooms, rooms...)
	case reqServerSideEmit:
		p.acks = append(p.acks, res["data"])
	}
	p.got++
	if p.got == p.want {
		close(p.done)
	}
	a.mu.Unlock()
}

// remoteSockets reads the sockets of a fetchSockets answer.
func remoteSockets(v any) []socketio.SocketInfo {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var rs []clusterwire.RemoteSocket
	if json.Unmarshal(b, &rs) != nil {
		return nil
	}
	out := make([]socketio.SocketInfo, len(rs))
	for i, r := range rs {
		out[i] = r.SocketInfo()
	}
	return out
}

var _ socketio.Adapter = (*Adapter)(nil)
