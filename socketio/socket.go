package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrDisconnected is returned by the methods of a Socket that is not (or no
// longer) connected to its namespace, and by EmitWithAck when the socket
// disconnects before the acknowledgement arrives.
var ErrDisconnected = errors.New("socketio: socket is disconnected")

// ErrTooManyAcks is returned by EmitWithAck when Options.MaxPendingAcks
// calls are already waiting on the socket: a client that never answers
// cannot make the server hold more.
var ErrTooManyAcks = errors.New("socketio: too many acknowledgements pending")

// errAcked is returned by an ack function called more than once.
var errAcked = errors.New("socketio: already acknowledged")

const (
	stateJoining int32 = iota
	stateConnected
	stateDisconnected
)

// Socket is a client connected to one namespace. Its methods are safe for
// concurrent use.
type Socket struct {
	id        string
	ns        *Namespace
	client    *client
	handshake *Handshake
	state     atomic.Int32
	joined    bool // guarded by client.mu: the client may send packets for the namespace

	rooms []string // guarded by ns.mu

	mu      sync.Mutex
	data    any
	nextAck uint64
	acks    map[uint64]chan []any // EmitWithAck waiting, by ack id
}

func newID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ID returns the socket id sent to the client in the CONNECT packet. It is
// also the name of a room holding only this socket.
func (s *Socket) ID() string { return s.id }

// Namespace returns the namespace the socket belongs to.
func (s *Socket) Namespace() *Namespace { return s.ns }

// Handshake returns what the client sent when it connected. It must not be
// modified.
func (s *Socket) Handshake() *Handshake { return s.handshake }

// Transport returns the current transport: "polling" or "websocket".
func (s *Socket) Transport() string { return s.client.conn.Transport() }

// Data returns the value set by SetData.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData attaches a value to the socket, typically from middleware.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Join adds the socket to rooms. Rooms joined by middleware take effect when
// the socket connects.
func (s *Socket) Join(rooms ...string) { s.ns.join(s, rooms) }

// Leave removes the socket from rooms.
func (s *Socket) Leave(rooms ...string) { s.ns.leave(s, rooms) }

// Rooms returns the socket's rooms, starting with its own id.
func (s *Socket) Rooms() []string {
	s.ns.mu.RLock()
	defer s.ns.mu.RUnlock()
	return append([]string{s.id}, s.rooms...)
}

// Connected reports whether the socket is connected to its namespace.
func (s *Socket) Connected() bool { return s.state.Load() == stateConnected }

// Emit sends an event. Arguments are JSON-encoded; []byte values, at any
// depth of maps, slices and struct fields, travel as binary attachments (see
// the package documentation).
func (s *Socket) Emit(event string, args ...any) error {
	return s.emit(event, args, 0, false)
}

func (s *Socket) emit(event string, args []any, id uint64, hasID bool) error {
	if !s.Connected() {
		return ErrDisconnected
	}
	p, bins, err := eventPacket(s.ns.name, event, args)
	if err != nil {
		return err
	}
	p.ID, p.HasID = id, hasID
	return s.client.send(p, bins)
}

// EmitWithAck sends an event and waits for the client's acknowledgement, or
// ctx (or Options.AckTimeout) to end.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	if _, ok := ctx.Deadline(); !ok && s.ns.srv.opts.AckTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.ns.srv.opts.AckTimeout)
		defer cancel()
	}
	ch := make(chan []any, 1)
	s.mu.Lock()
	if len(s.acks) >= s.ns.srv.opts.MaxPendingAcks {
		s.mu.Unlock()
		return nil, ErrTooManyAcks
	}
	id := s.nextAck
	s.nextAck++
	if s.acks == nil {
		s.acks = make(map[uint64]chan []any)
	}
	s.acks[id] = ch
	s.mu.Unlock()
	if !s.Connected() {
		s.dropAck(id)
		return nil, ErrDisconnected
	}
	if err := s.emit(event, args, id, true); err != nil {
		s.dropAck(id)
		return nil, err
	}
	select {
	case res, ok := <-ch:
		if !ok {
			return nil, ErrDisconnected
		}
		return res, nil
	case <-ctx.Done():
		s.dropAck(id)
		return nil, ctx.Err()
	}
}

func (s *Socket) dropAck(id uint64) {
	s.mu.Lock()
	delete(s.acks, id)
	if len(s.acks) == 0 {
		s.acks = nil
	}
	s.mu.Unlock()
}

// awaitsAck reports whether an EmitWithAck waits for ack id.
func (s *Socket) awaitsAck(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.acks[id]
	return ok
}

func (s *Socket) resolveAck(id uint64, args []any) {
	s.mu.Lock()
	ch := s.acks[id]
	delete(s.acks, id)
	if len(s.acks) == 0 {
		s.acks = nil
	}
	s.mu.Unlock()
	if ch != nil {
		ch <- args
	}
}

func (s *Socket) dispatch(ev Event, id uint64, hasID bool) {
	h := s.ns.handler(ev.Name)
	if h == nil {
		return
	}
	var ack func(args ...any) error
	if hasID {
		var done atomic.Bool
		ack = func(args ...any) error {
			if !done.CompareAndSwap(false, true) {
				return errAcked
			}
			if !s.Connected() {
				return ErrDisconnected
			}
			data, bins, err := encodeArgs(nil, args)
			if err != nil {
				return err
			}
			p := &Packet{Type: PacketAck, Namespace: s.ns.name, ID: id, HasID: true, Data: data}
			if len(bins) > 0 {
				p.Type, p.Attachments = PacketBinaryAck, len(bins)
			}
			return s.client.send(p, bins)
		}
	}
	h(s, ev, ack)
}

// Disconnect disconnects the socket from its namespace as Node's
// socket.disconnect(close) does: the client sees "io server disconnect" and
// does not reconnect. With close, the underlying connection is closed too,
// after everything queued before it has been written; the other namespaces
// of the connection are disconnected the same way first.
func (s *Socket) Disconnect(close bool) error {
	if close {
		return s.client.disconnectAll()
	}
	if !s.disconnect() {
		return ErrDisconnected
	}
	return nil
}

// disconnect sends DISCONNECT and disconnects s; false if it was not
// connected.
func (s *Socket) disconnect() bool {
	if !s.Connected() {
		return false
	}
	s.client.send(&Packet{Type: PacketDisconnect, Namespace: s.ns.name}, nil)
	s.client.remove(s)
	s.onClose("server namespace disconnect")
	return true
}

// CloseTransport closes the Engine.IO session under the socket without a
// DISCONNECT packet, as a network failure would: every socket of the session
// disconnects with reason "forced close" and the client, seeing "transport
// close", reconnects.
func (s *Socket) CloseTransport() error {
	s.client.close("forced close")
	return nil
}

// onClose marks s disconnected; if it was connected, it leaves its rooms,
// pending EmitWithAck calls fail and the OnDisconnect handlers are queued.
func (s *Socket) onClose(reason string) {
	if s.state.Swap(stateDisconnected) != stateConnected {
		return
	}
	s.ns.remove(s)
	s.mu.Lock()
	acks := s.acks
	s.acks = nil
	s.mu.Unlock()
	for _, ch := range acks {
		close(ch)
	}
	s.client.enqueue(0, func() {
		for _, h := range s.ns.disconnectHandlers() {
			h(s, reason)
		}
	})
}
