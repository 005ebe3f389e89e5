package socketio

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace is a Socket.IO namespace. Its methods are safe for concurrent use;
// register hooks and handlers before clients connect.
//
// Its rooms and broadcasts go through its Adapter: the MemoryAdapter, or
// the cluster adapter Options.NewAdapter made around it.
type Namespace struct {
	name    string
	srv     *Server
	mem     *MemoryAdapter
	adapter Adapter

	hmu           sync.RWMutex // guards the handler table and hooks
	connecting    []ConnectHandler
	onConnect     []func(*Socket)
	onDisconnect  []func(*Socket, Reason)
	onServerEvent []ServerEventHandler
	handlers      map[string]EventHandler
	unhandled     EventHandler
	onRoomChange  func(RoomChange)

	// seqMu orders, with recovery on, what is logged and sent to
	// recovery sockets: an offset sent to a socket comes after every
	// earlier offset that reached it.
	seqMu sync.Mutex
	recMu sync.Mutex
	live  map[string]*Socket // recovery sockets by pid, until they ended
	// recSockets counts the recovery sockets not ended, recUntil (unix
	// nanoseconds) is when the last one saved can no longer be recovered:
	// with neither, broadcasts are not logged (see recovering).
	recSockets atomic.Int64
	recUntil   atomic.Int64
	// With a SharedLog (shared.go): delivered is the offset this node has
	// delivered the namespace's entries up to (under seqMu), known once
	// ready is closed.
	delivered string
	ready     chan struct{}
	liveMu    sync.Mutex
	liveDirty map[*Socket]struct{} // sockets whose live record is to be saved again
}

// recovering reports whether the namespace's broadcasts are to be logged:
// a recovery socket is connected or connecting, or one that dropped may
// still be recovered. A socket that starts connecting as a broadcast
// skips the log gets that broadcast as a held one, without an offset.
func (n *Namespace) recovering() bool {
	return n.srv.rec != nil && (n.recSockets.Load() > 0 || time.Now().UnixNano() < n.recUntil.Load())
}

func newNamespace(srv *Server, name string) *Namespace {
	n := &Namespace{
		name:     name,
		srv:      srv,
		handlers: make(map[string]EventHandler),
	}
	n.mem = newMemoryAdapter(n)
	n.adapter = n.mem
	if srv.opts.NewAdapter != nil {
		n.adapter = srv.opts.NewAdapter(n.mem)
	}
	n.startFollowing()
	return n
}

// Name returns the namespace's name, such as "/" or "/chat".
func (n *Namespace) Name() string { return n.name }

// Adapter returns the namespace's adapter.
func (n *Namespace) Adapter() Adapter { return n.adapter }

// OnConnecting adds a hook run for each client joining the namespace,
// after the server-wide ones, in the order added (see ConnectHandler).
func (n *Namespace) OnConnecting(h ConnectHandler) {
	n.hmu.Lock()
	n.connecting = append(n.connecting, h)
	n.hmu.Unlock()
}

// OnConnect adds a handler called when a socket has connected, after the
// client was sent the CONNECT packet. Handlers of other clients run
// concurrently, so a broadcast can land between that CONNECT and a Join made
// here; rooms a socket must be in by the time its client sees it connected
// are returned by an OnConnecting hook, which takes effect before CONNECT.
func (n *Namespace) OnConnect(h func(s *Socket)) {
	n.hmu.Lock()
	n.onConnect = append(n.onConnect, h)
	n.hmu.Unlock()
}

// OnDisconnect adds a handler called when a socket has disconnected, with
// the reason (see Reason and the package documentation's Limits for which
// rule closes with which).
func (n *Namespace) OnDisconnect(h func(s *Socket, reason Reason)) {
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

// OnUnhandled sets the handler of the events that have no handler set
// with On: a fallback, such as forwarding them to an application. It runs
// like any handler (one at a time per connection, in order of arrival), and
// a handler set later with On takes precedence for its event. Without it,
// such events are dropped (and their acks never answered).
func (n *Namespace) OnUnhandled(h EventHandler) {
	n.hmu.Lock()
	n.unhandled = h
	n.hmu.Unlock()
}

// ServerEventHandler handles an event another node of the cluster sent
// with ServerSideEmit. ack is nil when the sender asked for no
// acknowledgement; otherwise the first call answers it, with one argument
// (as Node's adapters carry it). Handlers run on the adapter's receiving
// goroutine: they must not block.
type ServerEventHandler func(ev Event, ack func(arg any))

// OnServerEvent adds a handler of the events other nodes send with
// ServerSideEmit; every handler sees each event.
func (n *Namespace) OnServerEvent(h ServerEventHandler) {
	n.hmu.Lock()
	n.onServerEvent = append(n.onServerEvent, h)
	n.hmu.Unlock()
}

// RoomChange is a change of the rooms of one local socket, however it came
// about: Socket.Join and Leave, the rooms of its OnConnecting hooks, a room
// operation of any node (AddSockets, DelSockets) or its disconnection
// (Left then holds every room it was in). Joined and Left hold only rooms
// it actually entered or left, never its own id; they must not be kept or
// modified after the handler returns.
type RoomChange struct {
	Socket *Socket
	Joined []string
	Left   []string
}

// OnRoomChange sets the handler told of every change of a local socket's
// rooms (see RoomChange). It is called with the namespace's room table
// locked, so that the changes of one socket arrive in the order they were
// made and never for a room the socket is not (or no longer) in: it must
// be quick, and must not call back into the adapter (Join, Leave, Rooms,
// broadcasts) nor wait for anything that does. Presence counts live there.
func (n *Namespace) OnRoomChange(h func(RoomChange)) {
	n.hmu.Lock()
	n.onRoomChange = h
	n.hmu.Unlock()
}

func (n *Namespace) roomChangeHandler() func(RoomChange) {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.onRoomChange
}

func (n *Namespace) handler(event string) EventHandler {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	if h := n.handlers[event]; h != nil {
		return h
	}
	return n.unhandled
}

func (n *Namespace) connectHandlers() []func(*Socket) {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.onConnect
}

func (n *Namespace) disconnectHandlers() []func(*Socket, Reason) {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.onDisconnect
}

func (n *Namespace) serverEventHandlers() []ServerEventHandler {
	n.hmu.RLock()
	defer n.hmu.RUnlock()
	return n.onServerEvent
}

// runConnecting runs the server's and the namespace's OnConnecting hooks
// for s, in order, and merges their replies: rooms appended, the socket's
// context and data replaced by each reply that sets them.
func (n *Namespace) runConnecting(s *Socket, recovered *Recovered) (ConnectReply, error) {
	n.srv.mu.RLock()
	hooks := slices.Clip(n.srv.connecting)
	n.srv.mu.RUnlock()
	n.hmu.RLock()
	hooks = append(hooks, n.connecting...)
	n.hmu.RUnlock()
	var merged ConnectReply
	for _, h := range hooks {
		ctx := s.Context()
		reply, err := h(ctx, ConnectEvent{Socket: s, Recovered: recovered})
		if err != nil {
			return ConnectReply{}, err
		}
		merged.Rooms = append(merged.Rooms, reply.Rooms...)
		if reply.RestoreRooms != nil {
			merged.RestoreRooms = reply.RestoreRooms
		}
		if reply.Context != nil {
			s.mu.Lock()
			s.ctx = valuesContext{Context: ctx, values: reply.Context}
			s.mu.Unlock()
		}
		if reply.Data != nil {
			s.SetData(reply.Data)
			merged.Data = reply.Data
		}
	}
	merged.Context = s.Context()
	return merged, nil
}

// valuesContext is the socket's context after a hook replied with its own:
// the values of the reply's, the cancellation of the socket's.
type valuesContext struct {
	context.Context
	values context.Context
}

func (c valuesContext) Value(key any) any { return c.values.Value(key) }

// To returns an operator on the sockets in any of rooms (every socket of
// the namespace when none is given). A socket's id is the name of a room
// holding only it.
func (n *Namespace) To(rooms ...string) BroadcastOperator {
	return BroadcastOperator{ns: n}.To(rooms...)
}

// Except returns an operator on the sockets of the namespace in none of
// rooms.
func (n *Namespace) Except(rooms ...string) BroadcastOperator {
	return BroadcastOperator{ns: n}.Except(rooms...)
}

// Local returns an operator on the sockets of the namespace on this node.
func (n *Namespace) Local() BroadcastOperator {
	return BroadcastOperator{ns: n}.Local()
}

// Emit sends an event to every socket of the namespace, on every node.
func (n *Namespace) Emit(ctx context.Context, event string, args ...any) error {
	return BroadcastOperator{ns: n}.Emit(ctx, event, args...)
}

// ServerSideEmit sends an event to the OnServerEvent handlers of the other
// nodes of the cluster (none on one node).
func (n *Namespace) ServerSideEmit(ctx context.Context, event string, args ...any) error {
	m, err := newCheckedMessage(event, args)
	if err != nil {
		return err
	}
	return n.adapter.ServerSideEmit(ctx, m)
}

// ServerSideEmitWithAck sends an event to the OnServerEvent handlers of the
// other nodes and returns the acknowledgement of each (its one argument).
// It waits at most the adapter's request timeout, and ctx: then it fails
// with an error wrapping ErrRequestTimeout or ctx's.
func (n *Namespace) ServerSideEmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	m, err := newCheckedMessage(event, args)
	if err != nil {
		return nil, err
	}
	return n.adapter.ServerSideEmitWithAck(ctx, m)
}

// AllRooms returns the rooms of every node, socket ids included.
func (n *Namespace) AllRooms(ctx context.Context) ([]string, error) {
	return n.adapter.AllRooms(ctx)
}

// Sockets returns the connected sockets of this node in any of rooms (all
// when none given): every socket whose CONNECT was sent.
func (n *Namespace) Sockets(rooms ...string) []*Socket {
	return slices.DeleteFunc(n.mem.targets(BroadcastOptions{Rooms: rooms}), func(s *Socket) bool {
		if s.Connected() {
			return false
		}
		// Its CONNECT may be being sent: the state changes right after,
		// under sendMu.
		s.sendMu.Lock()
		defer s.sendMu.Unlock()
		return !s.Connected()
	})
}

// newCheckedMessage returns the Message of event, refusing a reserved name.
func newCheckedMessage(event string, args []any) (*Message, error) {
	if reservedEvents[event] {
		return nil, fmt.Errorf("socketio: %q is a reserved event name", event)
	}
	return NewMessage(event, args...), nil
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
