package socketio

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Namespace is a Socket.IO namespace. Its methods are safe for concurrent use;
// register middleware and handlers before clients connect.
//
// Its in-memory adapter keeps, for each room, the set of its sockets. A
// socket's own room (its id) is not stored: it resolves through the socket
// table.
type Namespace struct {
	name string
	srv  *Server

	hmu          sync.RWMutex // guards the handler table and middleware
	mws          []Middleware
	onConnect    []func(*Socket)
	onDisconnect []func(*Socket, string)
	handlers     map[string]EventHandler

	mu      sync.RWMutex // guards the adapter and Socket.rooms
	sockets map[string]*Socket
	rooms   map[string]map[*Socket]struct{}
}

func newNamespace(srv *Server, name string) *Namespace {
	return &Namespace{
		name:     name,
		srv:      srv,
		handlers: make(map[string]EventHandler),
		sockets:  make(map[string]*Socket),
		rooms:    make(map[string]map[*Socket]struct{}),
	}
}

// Name returns the namespace's name, such as "/" or "/chat".
func (n *Namespace) Name() string { return n.name }

// Use adds middleware run for each client joining the namespace, after the
// server-wide middleware, in the order added.
func (n *Namespace) Use(mw Middleware) {
	n.hmu.Lock()
	n.mws = append(n.mws, mw)
	n.hmu.Unlock()
}

// OnConnect adds a handler called when a socket has connected, after the
// client was sent the CONNECT packet. Handlers of other clients run
// concurrently, so a broadcast can land between that CONNECT and a Join made
// here; rooms a socket must be in by the time its client sees it connected
// are joined in middleware (see Use), which takes effect before CONNECT.
func (n *Namespace) OnConnect(h func(s *Socket)) {
	n.hmu.Lock()
	n.onConnect = append(n.onConnect, h)
	n.hmu.Unlock()
}

// OnDisconnect adds a handler called when a socket has disconnected, with
// the reason as Node's server gives it: "server namespace disconnect",
// "client namespace disconnect", "transport close", "ping timeout",
// "transport error", "forced close", "forced server close", "parse error",
// "server shutting down", and "connect timeout" (see the package
// documentation's Limits for which rule closes with which).
func (n *Namespace) OnDisconnect(h func(s *Socket, reason string)) {
	n.hmu.Lock()
	n.onDisconnect = append(n.onDisconnect, h)
	n.hmu.Unlock()
}

// On sets the handler for an event sent by any socket of the namespace.
// Handlers of one connection run one at a time, in order of arrival.
func (n *Namespace) On(event string, h EventHandler) {
	n.hmu.Lock()
	n.handlers[event] = h
	n.hmu.Unlock()
}

func (n *Namespace) handler(event string) EventHandler {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.handlers[event]
}

func (n *Namespace) connectHandlers() []func(*Socket) {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.onConnect
}

func (n *Namespace) disconnectHandlers() []func(*Socket, string) {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.onDisconnect
}

func (n *Namespace) runMiddleware(ctx context.Context, s *Socket) error {
	n.srv.mu.RLock()
	mws := slices.Clip(n.srv.mws)
	n.srv.mu.RUnlock()
	n.hmu.RLock()
	mws = append(mws, n.mws...)
	n.hmu.RUnlock()
	for _, mw := range mws {
		if err := mw(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// add registers a socket that is connecting, with the rooms it joined
// while connecting, and calls connected under the adapter's lock.
func (n *Namespace) add(s *Socket, connected func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sockets[s.id] = s
	for _, r := range s.rooms {
		n.addToRoom(s, r)
	}
	connected()
}

func (n *Namespace) addToRoom(s *Socket, room string) {
	set := n.rooms[room]
	if set == nil {
		set = make(map[*Socket]struct{})
		n.rooms[room] = set
	}
	set[s] = struct{}{}
}

// remove takes s out of the adapter: it leaves every room.
func (n *Namespace) remove(s *Socket) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.sockets, s.id)
	for _, r := range s.rooms {
		n.removeFromRoom(s, r)
	}
	s.rooms = nil
}

func (n *Namespace) removeFromRoom(s *Socket, room string) {
	set := n.rooms[room]
	delete(set, s)
	if len(set) == 0 {
		delete(n.rooms, room)
	}
}

func (n *Namespace) join(s *Socket, rooms []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.state.Load() == stateDisconnected {
		return
	}
	connected := s.Connected()
	for _, r := range rooms {
		if r == s.id || slices.Contains(s.rooms, r) {
			continue
		}
		s.rooms = append(s.rooms, r)
		if connected {
			n.addToRoom(s, r)
		}
	}
}

func (n *Namespace) leave(s *Socket, rooms []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range rooms {
		i := slices.Index(s.rooms, r)
		if i < 0 {
			continue
		}
		s.rooms = slices.Delete(s.rooms, i, i+1)
		if s.Connected() {
			n.removeFromRoom(s, r)
		}
	}
	if len(s.rooms) == 0 {
		s.rooms = nil
	}
}

// To returns a broadcast to the sockets in any of rooms. A socket's id is
// the name of a room holding only it.
func (n *Namespace) To(rooms ...string) *Broadcast {
	return &Broadcast{ns: n, rooms: slices.Clone(rooms)}
}

// Emit sends an event to every socket of the namespace.
func (n *Namespace) Emit(event string, args ...any) error {
	return (&Broadcast{ns: n}).Emit(event, args...)
}

// Sockets returns the connected sockets in any of rooms (all when none given).
func (n *Namespace) Sockets(rooms ...string) []*Socket {
	return (&Broadcast{ns: n, rooms: rooms}).targets()
}

// Broadcast is an emit to a set of rooms, minus the sockets in Except rooms.
// It encodes the packet once for all recipients. A Broadcast is a value to
// build and emit from one goroutine.
type Broadcast struct {
	ns     *Namespace
	rooms  []string
	except []string
}

// To adds rooms to the recipients.
func (b *Broadcast) To(rooms ...string) *Broadcast {
	b.rooms = append(b.rooms, rooms...)
	return b
}

// Except excludes the sockets in any of rooms.
func (b *Broadcast) Except(rooms ...string) *Broadcast {
	b.except = append(b.except, rooms...)
	return b
}

// Emit sends an event to the recipients: every socket of the namespace when
// no room was given. Errors of single sockets (such as one that has just
// disconnected) are ignored; the error returned is an encoding error.
func (b *Broadcast) Emit(event string, args ...any) error {
	p, bins, err := eventPacket(b.ns.name, event, args)
	if err != nil {
		return err
	}
	msgs := p.Messages(bins)
	for _, s := range b.targets() {
		if s.Connected() {
			s.client.conn.Send(msgs...)
		}
	}
	return nil
}

// targets returns the connected sockets in any of b.rooms (all without
// rooms) and in none of b.except.
func (b *Broadcast) targets() []*Socket {
	n := b.ns
	n.mu.RLock()
	defer n.mu.RUnlock()
	var excluded map[*Socket]struct{}
	if len(b.except) > 0 {
		excluded = make(map[*Socket]struct{})
		for _, r := range b.except {
			n.eachInRoom(r, func(s *Socket) { excluded[s] = struct{}{} })
		}
	}
	var out []*Socket
	add := func(s *Socket) {
		if _, ok := excluded[s]; !ok {
			out = append(out, s)
		}
	}
	switch len(b.rooms) {
	case 0:
		out = make([]*Socket, 0, len(n.sockets))
		for _, s := range n.sockets {
			add(s)
		}
	case 1:
		n.eachInRoom(b.rooms[0], add)
	default:
		seen := make(map[*Socket]struct{})
		for _, r := range b.rooms {
			n.eachInRoom(r, func(s *Socket) {
				if _, ok := seen[s]; !ok {
					seen[s] = struct{}{}
					add(s)
				}
			})
		}
	}
	return out
}

// eachInRoom calls f for each socket in room; n.mu must be held.
func (n *Namespace) eachInRoom(room string, f func(*Socket)) {
	if set, ok := n.rooms[room]; ok {
		for s := range set {
			f(s)
		}
		return
	}
	if s, ok := n.sockets[room]; ok {
		f(s)
	}
}

// eventPacket encodes an event for namespace nsp.
func eventPacket(nsp, event string, args []any) (*Packet, [][]byte, error) {
	if reservedEvents[event] {
		return nil, nil, fmt.Errorf("socketio: %q is a reserved event name", event)
	}
	data, bins, err := encodeArgs(event, args)
	if err != nil {
		return nil, nil, err
	}
	p := &Packet{Type: PacketEvent, Namespace: nsp, Data: data}
	if len(bins) > 0 {
		p.Type, p.Attachments = PacketBinaryEvent, len(bins)
	}
	return p, bins, nil
}
