package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
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

// maxHeld bounds the Engine.IO messages of broadcasts held for a socket
// between its first AddAll and its CONNECT (see Socket): a window of
// microseconds on one node, of one SUBSCRIBE round trip in a cluster. A
// socket that would need more is dropped, and its client reconnects.
const maxHeld = 256

// Socket is a client connected to one namespace. Its methods are safe for
// concurrent use.
//
// A socket exists before it is connected: its namespace's OnConnecting
// hooks see it (ID, Handshake, Context), then it joins the rooms the hooks
// returned, then its CONNECT packet is sent. Broadcasts that reach it
// between the rooms and the CONNECT are held (at most 256 messages) and
// written right after the CONNECT, in order.
type Socket struct {
	id        string
	ns        *Namespace
	client    *client
	handshake *Handshake
	state     atomic.Int32
	joined    bool // guarded by client.mu: the client may send packets for the namespace

	rooms []string // guarded by the MemoryAdapter's mu
	mark  uint64   // guarded by the MemoryAdapter's markMu

	cancel context.CancelFunc // of the socket's context

	sendMu     sync.Mutex
	held       []engineio.Message // broadcasts waiting for the CONNECT
	overflowed bool               // held would have exceeded maxHeld

	mu      sync.Mutex
	ctx     context.Context
	data    any
	nextAck uint64
	acks    map[uint64]func(args []any, ok bool) // waiting for the client, by ack id

	// Recovery (Options.Recovery), for a socket that takes part (logging):
	// set before its hooks run, then read only.
	logging   bool
	pid       string
	recKey    string
	recovered bool
	ended     chan struct{} // closed once disconnected and its OnDisconnect handlers returned
	// lastSent is the offset of the last event sent to it, regHead the
	// log's head when it registered: both guarded by ns.seqMu.
	lastSent, regHead string
	// With a SharedLog, its live record (shared.go): connHead is the
	// offset sent with its CONNECT (set under ns.seqMu, before liveMu is
	// first taken); liveSaved, a record is in the log; liveDone, it
	// closed: no live record is saved any more.
	connHead  string
	liveMu    sync.Mutex
	liveSaved bool
	liveDone  bool
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

// Context returns the socket's context: it carries the values the
// OnConnecting hooks put in their ConnectReply.Context, and is cancelled
// when the socket disconnects (or, while connecting, when its connection
// closes).
func (s *Socket) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx
}

// Data returns the value set by SetData or a ConnectReply.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData attaches a value of the application's to the socket.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Join adds the connected socket to rooms, through the namespace's
// adapter: when it returns, a broadcast to any of them from any node
// reaches the socket (a cluster adapter may wait for a subscription, which
// ctx bounds). Before the socket is connected, Join fails with
// ErrDisconnected: the rooms it starts with are the OnConnecting hooks'
// ConnectReply.Rooms.
func (s *Socket) Join(ctx context.Context, rooms ...string) error {
	if !s.Connected() {
		return ErrDisconnected
	}
	return s.ns.adapter.AddAll(ctx, s.id, rooms)
}

// Leave removes the socket from rooms.
func (s *Socket) Leave(rooms ...string) { s.ns.adapter.Del(s.id, rooms) }

// Rooms returns the socket's rooms, starting with its own id.
func (s *Socket) Rooms() []string {
	return append([]string{s.id}, s.ns.adapter.Rooms(s.id)...)
}

// Recovered reports whether the socket is a dropped one recovered
// (Options.Recovery): the same id, its rooms, the events it missed sent
// before its CONNECT.
func (s *Socket) Recovered() bool { return s.recovered }

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
	if s.logging && !hasID {
		return s.emitLogged(p, bins)
	}
	return s.client.send(p, bins)
}

// emitLogged logs an event of the socket's own (to the room of its id)
// and sends it with its offset.
//
// With a SharedLog it is sent at once, not logged, with the offset of the
// last event logged for the socket: going through the log would deliver
// it after a round trip to the log, and after whatever the caller does
// next (session_expired, then a disconnect). An event the socket must be
// able to recover is broadcast to its id's room (Namespace.To(s.ID())).
func (s *Socket) emitLogged(p *Packet, bins [][]byte) error {
	ns := s.ns
	ns.seqMu.Lock()
	defer ns.seqMu.Unlock()
	if !s.Connected() {
		return ErrDisconnected
	}
	if ns.srv.shared != nil {
		return s.client.conn.Send(withOffset(p, bins, s.lastSent)...)
	}
	off, err := ns.srv.rec.Log.Append(s.Context(), ns.name, LogEntry{Rooms: []string{s.id}, Data: p.Data, Attachments: bins})
	if err != nil {
		s.client.logger().Error("socketio: recovery log append failed", "err", err)
		return s.client.send(p, bins)
	}
	s.lastSent = off
	return s.client.conn.Send(withOffset(p, bins, off)...)
}

// deliverLogged sends the messages of a logged broadcast, whose offset is
// off, to a recovery socket: ns.seqMu is held. One not connected yet gets
// it from the log with its CONNECT (see client.join), not held; with a
// SharedLog, whose reads cost a round trip, it is held (the CONNECT sets
// lastSent past it).
func (s *Socket) deliverLogged(msgs []engineio.Message, off string) {
	if s.state.Load() == stateConnected {
		s.lastSent = off
		s.client.conn.Send(msgs...)
	} else if s.ns.srv.shared != nil {
		s.deliver(msgs, false)
	}
}

// deliver sends the messages of a broadcast: at once to a connected
// socket, held for one whose CONNECT is not sent yet (volatile ones are
// skipped then), dropped for a disconnected one.
func (s *Socket) deliver(msgs []engineio.Message, volatile bool) {
	if s.state.Load() == stateConnected {
		s.client.conn.Send(msgs...)
		return
	}
	if volatile {
		return
	}
	s.sendMu.Lock()
	switch s.state.Load() {
	case stateConnected:
		// Connected since the check above: the held messages were written
		// before the state changed, under sendMu.
		s.sendMu.Unlock()
		s.client.conn.Send(msgs...)
		return
	case stateJoining:
		if len(s.held)+len(msgs) > maxHeld {
			s.overflowed = true
			s.held = nil
		} else if !s.overflowed {
			s.held = append(s.held, msgs...)
		}
	}
	s.sendMu.Unlock()
}

// EmitWithAck sends an event and waits for the client's acknowledgement, or
// ctx (or Options.AckTimeout) to end.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	if _, ok := ctx.Deadline(); !ok && s.ns.srv.opts.AckTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.ns.srv.opts.AckTimeout)
		defer cancel()
	}
	type result struct {
		args []any
		ok   bool
	}
	ch := make(chan result, 1)
	id, ok := s.addAck(func(args []any, ok bool) { ch <- result{args, ok} })
	if !ok {
		return nil, ErrTooManyAcks
	}
	if !s.Connected() {
		s.dropAck(id)
		return nil, ErrDisconnected
	}
	if err := s.emit(event, args, id, true); err != nil {
		s.dropAck(id)
		return nil, err
	}
	select {
	case res := <-ch:
		if !res.ok {
			return nil, ErrDisconnected
		}
		return res.args, nil
	case <-ctx.Done():
		s.dropAck(id)
		return nil, ctx.Err()
	}
}

// addAck registers f for the next ack id: f is called once, with the
// client's arguments and true, or with false when the socket disconnects
// first; never after dropAck. False when MaxPendingAcks are waiting.
func (s *Socket) addAck(f func(args []any, ok bool)) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acks) >= s.ns.srv.opts.MaxPendingAcks {
		return 0, false
	}
	id := s.nextAck
	s.nextAck++
	if s.acks == nil {
		s.acks = make(map[uint64]func([]any, bool))
	}
	s.acks[id] = f
	return id, true
}

func (s *Socket) dropAck(id uint64) {
	s.mu.Lock()
	delete(s.acks, id)
	if len(s.acks) == 0 {
		s.acks = nil
	}
	s.mu.Unlock()
}

// awaitsAck reports whether an ack id is awaited.
func (s *Socket) awaitsAck(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.acks[id]
	return ok
}

func (s *Socket) resolveAck(id uint64, args []any) {
	s.mu.Lock()
	f := s.acks[id]
	delete(s.acks, id)
	if len(s.acks) == 0 {
		s.acks = nil
	}
	s.mu.Unlock()
	if f != nil {
		f(args, true)
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

// Disconnect makes the socket leave its namespace, as Node's
// socket.disconnect() does: the server sends DISCONNECT, the client sees
// "io server disconnect" and does not reconnect; the connection and its
// other namespaces stay. OnDisconnect handlers get
// ReasonServerNamespaceDisconnect. It returns ErrDisconnected if the socket
// was not connected.
func (s *Socket) Disconnect() error {
	if !s.disconnect() {
		return ErrDisconnected
	}
	return nil
}

// Close disconnects every namespace of the socket's connection as
// Disconnect does, then closes the connection once everything queued
// before has been written, as Node's socket.disconnect(true): the client
// sees "io server disconnect" and does not reconnect.
func (s *Socket) Close() error { return s.client.disconnectAll() }

// Drop cuts the connection under the socket without a DISCONNECT packet, as
// a network failure would: every socket of the connection disconnects with
// ReasonForcedClose, and the client, seeing "transport close", reconnects
// (to this node or another).
func (s *Socket) Drop() error {
	s.client.close(ReasonForcedClose)
	return nil
}

// disconnect sends DISCONNECT and disconnects s; false if it was not
// connected.
func (s *Socket) disconnect() bool {
	// Read under sendMu: the CONNECT is written and the state set in one
	// critical section, so a socket whose client has seen its CONNECT (and
	// may act on it at once) is never taken for one still connecting.
	s.sendMu.Lock()
	connected := s.Connected()
	s.sendMu.Unlock()
	if !connected {
		return false
	}
	s.client.send(&Packet{Type: PacketDisconnect, Namespace: s.ns.name}, nil)
	s.client.remove(s)
	s.onClose(ReasonServerNamespaceDisconnect)
	return true
}

// onClose marks s disconnected and cancels its context; it leaves its
// rooms. If it was connected, pending acknowledgements fail and the
// OnDisconnect handlers are queued.
func (s *Socket) onClose(reason Reason) {
	var saved *SavedSocket
	var prev int32
	if s.logging {
		saved, prev = s.closeLogged(reason)
	} else {
		prev = s.state.Swap(stateDisconnected)
		if prev != stateDisconnected {
			s.ns.adapter.DelAll(s.id)
		}
	}
	if prev == stateDisconnected {
		return
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.sendMu.Lock()
	s.held = nil
	s.sendMu.Unlock()
	if prev != stateConnected {
		if s.logging && s.ns.srv.shared != nil {
			s.endLive(nil)
		}
		s.end()
		return
	}
	if saved != nil {
		if rec := s.ns.srv.rec; rec.State != nil {
			saved.State = rec.State(s)
		}
	}
	if s.logging && s.ns.srv.shared != nil {
		s.endLive(saved) // replaces its live record
	} else if saved != nil {
		if err := s.ns.srv.rec.Log.Save(context.Background(), *saved); err != nil {
			s.client.logger().Error("socketio: saving a socket for recovery failed", "err", err)
		}
	}
	s.mu.Lock()
	acks := s.acks
	s.acks = nil
	s.mu.Unlock()
	for _, f := range acks {
		f(nil, false)
	}
	srv := s.ns.srv
	srv.disconnecting.add()
	s.client.enqueueFinal(func() {
		defer srv.disconnecting.done()
		defer s.end()
		for _, h := range s.ns.disconnectHandlers() {
			h(s, reason)
		}
	})
}

// closeLogged marks a recovery socket disconnected and takes it out of its
// rooms, in one step of the namespace's log order, and returns what to
// save of it (nil unless it was connected and lost its connection, as
// Node saves) and its previous state.
func (s *Socket) closeLogged(reason Reason) (*SavedSocket, int32) {
	ns := s.ns
	ns.seqMu.Lock()
	defer ns.seqMu.Unlock()
	prev := s.state.Swap(stateDisconnected)
	if prev == stateDisconnected {
		return nil, prev
	}
	save := prev == stateConnected && savesOnClose[reason]
	var rooms []string
	if save {
		rooms = ns.adapter.Rooms(s.id)
	}
	ns.adapter.DelAll(s.id)
	if !save {
		return nil, prev
	}
	rec := ns.srv.rec
	head, err := ns.logHead(context.Background())
	if err != nil {
		s.client.logger().Error("socketio: recovery log head failed", "err", err)
		return nil, prev
	}
	expires := time.Now().Add(rec.Window)
	for {
		until := ns.recUntil.Load()
		if until >= expires.UnixNano() || ns.recUntil.CompareAndSwap(until, expires.UnixNano()) {
			break
		}
	}
	return &SavedSocket{
		Namespace: ns.name,
		PID:       s.pid,
		ID:        s.id,
		Key:       s.recKey,
		Rooms:     rooms,
		LastSent:  s.lastSent,
		Head:      head,
		Expires:   expires,
	}, prev
}

// end marks a recovery socket ended: its pid may be taken by a socket
// recovering it.
func (s *Socket) end() {
	if s.ended == nil {
		return
	}
	ns := s.ns
	ns.recSockets.Add(-1)
	ns.recMu.Lock()
	if ns.live[s.pid] == s {
		delete(ns.live, s.pid)
	}
	ns.recMu.Unlock()
	close(s.ended)
}
