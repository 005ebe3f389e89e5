package socketio

import (
	"context"
	"maps"
	"net"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// MemoryAdapter is the in-memory adapter of a namespace: the rooms of this
// process's sockets, and delivery to them. It is the default Adapter; a
// cluster adapter wraps it (Options.NewAdapter) and calls it to deliver
// what other nodes publish. Its methods implement Adapter for one node:
// FetchSockets and AllRooms answer for this node, ServerSideEmit reaches
// no one, ServerCount is 1.
//
// It holds the sockets of the namespace from the moment their connect hooks
// have let them in (before AddAll is called for their first rooms) until
// DelAll: a broadcast reaching a socket whose CONNECT has not been sent yet
// is held for it and written right after the CONNECT (see Socket), so that
// nothing sent after AddAll returned is lost or arrives first.
//
// A cluster adapter must pass AddAll, Del and DelAll on to the
// MemoryAdapter it wraps. Its AddAll is best the MemoryAdapter's first,
// then the SUBSCRIBE it waits for: whatever the bus brings once subscribed
// finds the socket in the room (and is held until its CONNECT). AddAll for
// an id the MemoryAdapter does not hold — the socket disconnected
// meanwhile — adds nothing and returns ErrDisconnected: the cluster
// adapter then releases what it subscribed for it. Its AddSockets (the
// emitter's socketsJoin, from any node) must subscribe too: the
// MemoryAdapter's AddSockets only adds locally, so a cluster adapter calls
// its own AddAll for each of SocketIDs(opts). Del and DelAll are called on
// the transport's goroutines (a socket leaving, a connection closing): a
// cluster adapter must not block in them (it unsubscribes later).
type MemoryAdapter struct {
	ns *Namespace

	mu      sync.RWMutex
	sockets map[string]*Socket              // by id: connecting (after the hooks) or connected
	rooms   map[string]map[*Socket]struct{} // application rooms; Socket.rooms mirrors them

	// markMu serializes the selections that must skip sockets already
	// taken or excluded (several rooms, or Except): each takes the next
	// epoch and marks the sockets it has seen with it (Socket.mark), which
	// dedupes without a map per broadcast.
	markMu sync.Mutex
	epoch  uint64
}

func newMemoryAdapter(ns *Namespace) *MemoryAdapter {
	return &MemoryAdapter{
		ns:      ns,
		sockets: make(map[string]*Socket),
		rooms:   make(map[string]map[*Socket]struct{}),
	}
}

// Namespace returns the namespace whose rooms a holds.
func (a *MemoryAdapter) Namespace() *Namespace { return a.ns }

// register makes s reachable by broadcasts (held until its CONNECT), unless
// it has disconnected already: false then.
func (a *MemoryAdapter) register(s *Socket) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.state.Load() == stateDisconnected {
		return false
	}
	a.sockets[s.id] = s
	return true
}

// AddAll puts the socket id in rooms; its own id is skipped (it resolves
// without being stored).
func (a *MemoryAdapter) AddAll(ctx context.Context, id string, rooms []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sockets[id]
	if s == nil {
		return ErrDisconnected
	}
	before := len(s.rooms)
	for _, r := range rooms {
		if r == id || slices.Contains(s.rooms, r) {
			continue
		}
		s.rooms = append(s.rooms, r)
		set := a.rooms[r]
		if set == nil {
			set = make(map[*Socket]struct{})
			a.rooms[r] = set
		}
		set[s] = struct{}{}
	}
	if len(s.rooms) > before {
		a.ns.liveChanged(s)
		if h := a.ns.roomChangeHandler(); h != nil {
			h(RoomChange{Socket: s, Joined: s.rooms[before:len(s.rooms):len(s.rooms)]})
		}
	}
	return nil
}

// Del takes the socket id out of rooms.
func (a *MemoryAdapter) Del(id string, rooms []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sockets[id]
	if s == nil {
		return
	}
	var left []string
	for _, r := range rooms {
		i := slices.Index(s.rooms, r)
		if i < 0 {
			continue
		}
		s.rooms = slices.Delete(s.rooms, i, i+1)
		a.removeLocked(s, r)
		left = append(left, r)
	}
	if len(s.rooms) == 0 {
		s.rooms = nil
	}
	if len(left) > 0 {
		a.ns.liveChanged(s)
		if h := a.ns.roomChangeHandler(); h != nil {
			h(RoomChange{Socket: s, Left: left})
		}
	}
}

// DelAll takes the socket id out of every room and forgets it.
func (a *MemoryAdapter) DelAll(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sockets[id]
	if s == nil {
		return
	}
	delete(a.sockets, id)
	for _, r := range s.rooms {
		a.removeLocked(s, r)
	}
	if h := a.ns.roomChangeHandler(); h != nil && len(s.rooms) > 0 {
		h(RoomChange{Socket: s, Left: s.rooms})
	}
	s.rooms = nil
}

func (a *MemoryAdapter) removeLocked(s *Socket, room string) {
	set := a.rooms[room]
	delete(set, s)
	if len(set) == 0 {
		delete(a.rooms, room)
	}
}

// Rooms returns the rooms of the socket id, its own id excluded.
func (a *MemoryAdapter) Rooms(id string) []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if s := a.sockets[id]; s != nil {
		return slices.Clone(s.rooms)
	}
	return nil
}

// HasRoom reports whether a local socket is in room (or is the socket whose
// id room is): a cluster adapter drops a message for a room it does not
// hold before decoding it.
func (a *MemoryAdapter) HasRoom(room string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.rooms[room]
	if !ok {
		_, ok = a.sockets[room]
	}
	return ok
}

// SocketIDs returns the ids of the local sockets opts selects.
func (a *MemoryAdapter) SocketIDs(opts BroadcastOptions) []string {
	targets := a.targets(opts)
	ids := make([]string, len(targets))
	for i, s := range targets {
		ids[i] = s.id
	}
	return ids
}

// targets returns the sockets opts selects.
func (a *MemoryAdapter) targets(opts BroadcastOptions) []*Socket {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.selectLocked(nil, opts)
}

// targetPool holds the recipient lists of broadcasts, so that a broadcast
// to thousands of sockets allocates none.
var targetPool = sync.Pool{New: func() any { return new([]*Socket) }}

// maxPooled bounds the recipient lists kept in targetPool.
const maxPooled = 1 << 16

// selectLocked appends to out the sockets in any of opts.Rooms (all
// without rooms) and in none of opts.Except; a.mu is held.
func (a *MemoryAdapter) selectLocked(out []*Socket, opts BroadcastOptions) []*Socket {
	if len(opts.Except) == 0 && len(opts.Rooms) <= 1 {
		if len(opts.Rooms) == 0 {
			out = slices.Grow(out, len(a.sockets))
			for _, s := range a.sockets {
				out = append(out, s)
			}
			return out
		}
		r := opts.Rooms[0]
		if set, ok := a.rooms[r]; ok {
			out = slices.Grow(out, len(set))
			for s := range set {
				out = append(out, s)
			}
			return out
		}
		if s, ok := a.sockets[r]; ok {
			return append(out, s)
		}
		return out
	}
	a.markMu.Lock()
	defer a.markMu.Unlock()
	a.epoch++
	e := a.epoch
	for _, r := range opts.Except {
		if set, ok := a.rooms[r]; ok {
			for s := range set {
				s.mark = e
			}
		} else if s, ok := a.sockets[r]; ok {
			s.mark = e
		}
	}
	if len(opts.Rooms) == 0 {
		out = slices.Grow(out, len(a.sockets))
		for _, s := range a.sockets {
			if s.mark != e {
				out = append(out, s)
			}
		}
		return out
	}
	for _, r := range opts.Rooms {
		if set, ok := a.rooms[r]; ok {
			for s := range set {
				if s.mark != e {
					s.mark = e
					out = append(out, s)
				}
			}
		} else if s, ok := a.sockets[r]; ok && s.mark != e {
			s.mark = e
			out = append(out, s)
		}
	}
	return out
}

// Broadcast sends m to the local sockets opts selects, encoding it once for
// all of them. A socket whose CONNECT is not sent yet gets it right after
// the CONNECT, unless the broadcast is volatile (then it is skipped); a
// volatile broadcast is otherwise sent as any other, the transport's
// buffers being bounded anyway. Errors of single sockets (one that has
// just disconnected) are ignored; the error returned is an encoding error.
func (a *MemoryAdapter) Broadcast(ctx context.Context, m *Message, opts BroadcastOptions) error {
	enc, err := m.encoded(a.ns.name)
	if err != nil {
		return err
	}
	rec := a.ns.srv.rec
	if a.ns.srv.shared != nil || (a.ns.recovering() && opts.Flags.Volatile) {
		// Not logged (volatile; or, with a SharedLog, what does not go
		// through it: a Local broadcast, or one an emitter sent over the
		// bus): a recovery socket gets it with the offset of the last
		// event logged for it, so that its last argument is always an
		// offset the client may keep (and strip).
		a.ns.seqMu.Lock()
		defer a.ns.seqMu.Unlock()
		a.deliver(enc, opts, "", true)
		return nil
	}
	if !a.ns.recovering() {
		a.deliver(enc, opts, "", false)
		return nil
	}
	// Logged for recovery: appended and sent in one step of the
	// namespace's order, so that no socket sees offsets out of order.
	a.ns.seqMu.Lock()
	defer a.ns.seqMu.Unlock()
	off, err := rec.Log.Append(ctx, a.ns.name, LogEntry{Rooms: opts.Rooms, Except: opts.Except, Data: enc.packet.Data, Attachments: enc.bins})
	if err != nil {
		a.ns.srv.logger().Error("socketio: recovery log append failed", "err", err)
		off = ""
	}
	a.deliver(enc, opts, off, false)
	return nil
}

// deliver sends a broadcast to the local sockets opts selects. Recovery
// sockets get it with offset off; with unlogged, with the last offset sent
// to each, and only if they are connected (ns.seqMu is held then); with
// neither, as other sockets do.
func (a *MemoryAdapter) deliver(enc *encodedEvent, opts BroadcastOptions, off string, unlogged bool) {
	var logged []engineio.Message
	if off != "" {
		logged = withOffset(enc.packet, enc.bins, off)
	}
	buf := targetPool.Get().(*[]*Socket)
	a.mu.RLock()
	targets := a.selectLocked((*buf)[:0], opts)
	a.mu.RUnlock()
	eachInParallel(targets, func(s *Socket) {
		switch {
		case s.logging && logged != nil:
			s.deliverLogged(logged, off)
		case s.logging && unlogged:
			if s.state.Load() == stateConnected { // ns.seqMu is held
				s.client.conn.Send(withOffset(enc.packet, enc.bins, s.lastSent)...)
			}
		default:
			s.deliver(enc.msgs, opts.Flags.Volatile)
		}
	})
	if cap(targets) <= maxPooled {
		clear(targets)
		*buf = targets[:0]
		targetPool.Put(buf)
	}
}

// parallelFrom is the number of recipients per core from which a broadcast
// delivers from several goroutines. Delivering is one non-blocking write
// system call per socket (engineio's writeInline), most of a large
// broadcast's cost (≈ 75% of the CPU profile of a publish to 2,000 user
// rooms, ≈ 12 µs each on loopback); spread over the cores, a broadcast to
// thousands of sockets ends in a fraction of the time.
const parallelFrom = 256

// eachInParallel calls f for every socket of ss, in chunks on up to
// GOMAXPROCS goroutines (the caller's among them) when ss is large enough,
// and returns when all calls have returned. Each socket is handled by one
// goroutine, so what one caller broadcasts reaches each socket in the
// order it was broadcast.
func eachInParallel(ss []*Socket, f func(*Socket)) {
	workers := min(runtime.GOMAXPROCS(0), len(ss)/parallelFrom)
	if workers < 2 {
		for _, s := range ss {
			f(s)
		}
		return
	}
	chunk := (len(ss) + workers - 1) / workers
	var wg sync.WaitGroup
	for i := chunk; i < len(ss); i += chunk {
		part := ss[i:min(i+chunk, len(ss))]
		wg.Go(func() {
			for _, s := range part {
				f(s)
			}
		})
	}
	for _, s := range ss[:chunk] {
		f(s)
	}
	wg.Wait()
}

// BroadcastWithAck sends m to the connected local sockets opts selects,
// each with its own acknowledgement id; clientCount is called once, with
// their number, before any ack. An ack not received within
// opts.Flags.Timeout (or the server's AckTimeout when it is 0; no limit
// when both are) is dropped.
func (a *MemoryAdapter) BroadcastWithAck(ctx context.Context, m *Message, opts BroadcastOptions, clientCount func(n int), ack func(args []any)) error {
	enc, err := m.encoded(a.ns.name)
	if err != nil {
		return err
	}
	type asked struct {
		s  *Socket
		id uint64
	}
	var sent []asked
	for _, s := range a.targets(opts) {
		// Read under sendMu: the CONNECT is written and the state set in
		// one critical section, so a client that has seen its CONNECT is
		// never skipped here.
		s.sendMu.Lock()
		connected := s.Connected()
		s.sendMu.Unlock()
		if !connected {
			continue // connecting: not a recipient of acked broadcasts
		}
		id, ok := s.addAck(func(args []any, ok bool) {
			if ok {
				ack(args)
			}
		})
		if ok {
			sent = append(sent, asked{s, id})
		}
	}
	clientCount(len(sent))
	for _, x := range sent {
		x.s.client.conn.Send(enc.withAck(x.id)...)
	}
	timeout := opts.Flags.Timeout
	if timeout <= 0 {
		timeout = a.ns.srv.opts.AckTimeout
	}
	if timeout > 0 && len(sent) > 0 {
		time.AfterFunc(timeout, func() {
			for _, x := range sent {
				x.s.dropAck(x.id)
			}
		})
	}
	return nil
}

// AddSockets makes the local sockets opts selects join rooms.
func (a *MemoryAdapter) AddSockets(ctx context.Context, opts BroadcastOptions, rooms []string) error {
	for _, s := range a.targets(opts) {
		_ = a.AddAll(ctx, s.id, rooms) // ErrDisconnected: gone meanwhile
	}
	return nil
}

// DelSockets makes the local sockets opts selects leave rooms.
func (a *MemoryAdapter) DelSockets(ctx context.Context, opts BroadcastOptions, rooms []string) error {
	for _, s := range a.targets(opts) {
		a.Del(s.id, rooms)
	}
	return nil
}

// DisconnectSockets disconnects the local sockets opts selects, as
// Socket.Disconnect does, or as Socket.Close with close.
func (a *MemoryAdapter) DisconnectSockets(ctx context.Context, opts BroadcastOptions, close bool) error {
	for _, s := range a.targets(opts) {
		if close {
			_ = s.Close()
		} else {
			_ = s.Disconnect()
		}
	}
	return nil
}

// FetchSockets describes the local sockets opts selects.
func (a *MemoryAdapter) FetchSockets(ctx context.Context, opts BroadcastOptions) ([]SocketInfo, error) {
	a.mu.RLock()
	targets := a.selectLocked(nil, opts)
	infos := make([]SocketInfo, len(targets))
	for i, s := range targets {
		infos[i] = SocketInfo{
			ID:    s.id,
			Rooms: append([]string{s.id}, s.rooms...),
			Local: true,
		}
	}
	a.mu.RUnlock()
	data := a.ns.srv.opts.SocketData
	for i, s := range targets {
		if data != nil {
			infos[i].Data = data(s)
		} else {
			infos[i].Data = s.Data()
		}
		infos[i].Handshake = handshakeInfo(s.handshake)
	}
	return infos, nil
}

// handshakeInfo reduces a handshake to what may travel: never a header.
func handshakeInfo(h *Handshake) SocketHandshake {
	hs := SocketHandshake{Query: map[string]string{}}
	if h == nil {
		return hs
	}
	if !h.Time.IsZero() {
		// Date.prototype.toString in UTC, as a Node server in UTC gives it.
		hs.Time = h.Time.UTC().Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)")
		hs.Issued = h.Time.UnixMilli()
	}
	hs.Address = h.RemoteAddr
	if host, _, err := net.SplitHostPort(h.RemoteAddr); err == nil {
		hs.Address = host
	}
	hs.Secure = h.Secure
	hs.URL = h.URL
	for k, v := range h.Query {
		if len(v) > 0 {
			hs.Query[k] = v[0]
		}
	}
	return hs
}

// AllRooms returns the local rooms, the sockets' own ids included as Node's
// adapter lists them.
func (a *MemoryAdapter) AllRooms(ctx context.Context) ([]string, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.rooms)+len(a.sockets))
	out = slices.AppendSeq(out, maps.Keys(a.rooms))
	return slices.AppendSeq(out, maps.Keys(a.sockets)), nil
}

// ServerSideEmit reaches no one: there is no other node.
func (a *MemoryAdapter) ServerSideEmit(ctx context.Context, m *Message) error { return nil }

// ServerSideEmitWithAck returns no acknowledgement: there is no other node.
func (a *MemoryAdapter) ServerSideEmitWithAck(ctx context.Context, m *Message) ([]any, error) {
	return []any{}, nil
}

// ServerCount returns 1.
func (a *MemoryAdapter) ServerCount(ctx context.Context) (int, error) { return 1, nil }

// ServerEvent runs the namespace's OnServerEvent handlers for an event
// another node sent with ServerSideEmit; ack is nil when that node asked for
// no acknowledgement, and is called at most once. The handlers run on the
// caller's goroutine (the adapter's receiving one): they must not block.
func (a *MemoryAdapter) ServerEvent(ev Event, ack func(arg any)) {
	if ack != nil {
		var once sync.Once
		inner := ack
		ack = func(arg any) { once.Do(func() { inner(arg) }) }
	}
	for _, h := range a.ns.serverEventHandlers() {
		h(ev, ack)
	}
}

// Close does nothing: the rooms go with the sockets.
func (a *MemoryAdapter) Close() error { return nil }

var _ Adapter = (*MemoryAdapter)(nil)
