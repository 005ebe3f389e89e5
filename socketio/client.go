package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/internal/gopool"
)

// conn is what the server needs of an Engine.IO session; tests replace it.
type conn interface {
	ID() string
	Handshake() *engineio.Handshake
	Transport() string
	Send(msgs ...engineio.Message) error
	Close() error
}

// maxQueued bounds the tasks (connects, events, disconnects) waiting for a
// connection's handlers; a client that outruns its handlers by more is
// disconnected rather than allowed to grow the queue without end.
const maxQueued = 1024

// client is the Socket.IO side of one Engine.IO session: it decodes packets
// and holds the sockets, one per namespace, multiplexed on the session.
//
// Handlers of one client (middleware, OnConnect, events, OnDisconnect) run
// one at a time in arrival order, on a goroutine that exists only while
// there is work, so a slow handler delays only its own connection and never
// the transport's read path: acknowledgements are resolved on the read path,
// so a handler may wait in EmitWithAck.
type client struct {
	srv  *Server
	conn conn

	mu      sync.Mutex
	sockets []*Socket // joined or joining, at most one per namespace
	binary  *Packet   // a binary packet waiting for its attachments
	bins    [][]byte
	timer   *time.Timer        // connect timeout, until the first namespace joins
	cancel  context.CancelFunc // of the middleware running, if any
	closed  bool
	queue   []func()
	running bool
}

func newClient(srv *Server, c conn) *client {
	cl := &client{srv: srv, conn: c}
	cl.mu.Lock()
	cl.timer = time.AfterFunc(srv.opts.ConnectTimeout, cl.connectTimeout)
	cl.mu.Unlock()
	return cl
}

func (c *client) connectTimeout() {
	c.mu.Lock()
	joined := slices.ContainsFunc(c.sockets, (*Socket).Connected)
	c.timer = nil
	c.mu.Unlock()
	if !joined {
		c.close("connect timeout")
	}
}

// onMessage handles one Engine.IO message; the engine calls it in order.
func (c *client) onMessage(m engineio.Message) {
	data := slices.Clone(m.Data) // the engine may reuse its buffer
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if m.Binary {
		if c.binary == nil {
			c.mu.Unlock()
			c.close("parse error") // binary data outside a binary packet
			return
		}
		c.bins = append(c.bins, data)
		if len(c.bins) < c.binary.Attachments {
			c.mu.Unlock()
			return
		}
		p, bins := c.binary, c.bins
		c.binary, c.bins = nil, nil
		c.mu.Unlock()
		c.handle(p, bins)
		return
	}
	waiting := c.binary != nil
	c.mu.Unlock()
	if waiting {
		c.close("parse error") // text while attachments were expected
		return
	}
	p, err := DecodePacket(data)
	if err != nil {
		c.close("parse error")
		return
	}
	if p.Attachments > 0 {
		c.mu.Lock()
		c.binary = p
		c.bins = make([][]byte, 0, min(p.Attachments, 8))
		c.mu.Unlock()
		return
	}
	c.handle(p, nil)
}

// handle acts on a complete packet.
func (c *client) handle(p *Packet, bins [][]byte) {
	switch p.Type {
	case PacketConnect:
		c.onConnect(p)
	case PacketDisconnect:
		nsp := p.Namespace
		c.enqueue(func() {
			if s := c.socket(nsp); s != nil {
				c.remove(s)
				s.onClose("client namespace disconnect")
			}
		})
	case PacketEvent, PacketBinaryEvent:
		args, err := decodeArgs(p.Data, bins)
		if err != nil || len(args) == 0 {
			c.close("parse error")
			return
		}
		name, _ := eventName(p.Data)
		nsp, id, hasID := p.Namespace, p.ID, p.HasID
		c.enqueue(func() {
			if s := c.socket(nsp); s != nil && s.Connected() {
				s.dispatch(Event{Name: name, Args: args[1:]}, id, hasID)
			}
		})
	case PacketAck, PacketBinaryAck:
		args, err := decodeArgs(p.Data, bins)
		if err != nil || !p.HasID {
			c.close("parse error")
			return
		}
		if s := c.socket(p.Namespace); s != nil {
			s.resolveAck(p.ID, args)
		}
	default: // CONNECT_ERROR is sent by servers only
		c.close("parse error")
	}
}

func (c *client) onConnect(p *Packet) {
	ns := c.srv.namespace(p.Namespace)
	if ns == nil {
		c.send(&Packet{Type: PacketConnectError, Namespace: p.Namespace, Data: json.RawMessage(`{"message":"Invalid namespace"}`)}, nil)
		return
	}
	s := &Socket{id: newID(), ns: ns, client: c}
	s.handshake = &Handshake{Auth: p.Data}
	if hs := c.conn.Handshake(); hs != nil {
		s.handshake.Handshake = *hs
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if slices.ContainsFunc(c.sockets, func(o *Socket) bool { return o.ns == ns }) {
		c.mu.Unlock()
		c.close("parse error") // a second CONNECT for the same namespace
		return
	}
	c.sockets = append(c.sockets, s)
	c.mu.Unlock()
	c.enqueue(func() { c.join(s) })
}

// join runs the middleware for s and connects it.
func (c *client) join(s *Socket) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.cancel = cancel
	c.mu.Unlock()

	err := s.ns.runMiddleware(ctx, s)

	c.mu.Lock()
	c.cancel = nil
	if c.closed {
		c.mu.Unlock()
		return
	}
	if err != nil {
		c.sockets = slices.DeleteFunc(c.sockets, func(o *Socket) bool { return o == s })
		c.mu.Unlock()
		c.send(&Packet{Type: PacketConnectError, Namespace: s.ns.name, Data: connectErrorJSON(err)}, nil)
		return
	}
	sid, _ := json.Marshal(struct {
		SID string `json:"sid"`
	}{s.id})
	s.ns.add(s, func() {
		// Under the adapter's lock: no broadcast reaches s before CONNECT.
		c.send(&Packet{Type: PacketConnect, Namespace: s.ns.name, Data: sid}, nil)
		s.state.Store(stateConnected)
	})
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	// The session is admitted: it no longer counts against the engine's
	// caps on unauthenticated sessions.
	if a, ok := c.conn.(interface{ Admit() }); ok {
		a.Admit()
	}
	for _, h := range s.ns.connectHandlers() {
		h(s)
	}
}

func connectErrorJSON(err error) json.RawMessage {
	var ce *ConnectError
	if !errors.As(err, &ce) {
		ce = &ConnectError{Message: err.Error()}
	}
	v := struct {
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{ce.Message, ce.Data}
	b, merr := json.Marshal(v)
	if merr != nil {
		b, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{ce.Message})
	}
	return b
}

// socket returns the socket joined or joining nsp, or nil.
func (c *client) socket(nsp string) *Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sockets {
		if s.ns.name == nsp {
			return s
		}
	}
	return nil
}

func (c *client) remove(s *Socket) {
	c.mu.Lock()
	c.sockets = slices.DeleteFunc(c.sockets, func(o *Socket) bool { return o == s })
	c.mu.Unlock()
}

func (c *client) send(p *Packet, bins [][]byte) error {
	return c.conn.Send(p.Messages(bins)...)
}

// enqueue runs f after the tasks queued before it, on the client's task
// goroutine, starting it if needed.
func (c *client) enqueue(f func()) {
	c.mu.Lock()
	if len(c.queue) >= maxQueued && !c.closed {
		c.mu.Unlock()
		c.close("transport error")
		return
	}
	c.queue = append(c.queue, f)
	if c.running {
		c.mu.Unlock()
		return
	}
	c.running = true
	c.mu.Unlock()
	gopool.Go(c.drain)
}

func (c *client) drain() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.queue, c.running = nil, false
			c.mu.Unlock()
			return
		}
		f := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		c.run(f)
	}
}

// run calls f, turning a panic into a logged error that closes this
// connection rather than the process.
func (c *client) run(f func()) {
	defer func() {
		if r := recover(); r != nil {
			logger := c.srv.opts.Logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Error("socketio: handler panicked; closing its connection",
				"panic", r, "engine_id", c.conn.ID(), "stack", string(debug.Stack()))
			c.close("forced close")
		}
	}()
	f()
}

// onClose is called by the engine when the session has ended.
func (c *client) onClose(reason string) { c.teardown(reason) }

// close ends the session, telling the sockets reason.
func (c *client) close(reason string) {
	c.teardown(reason)
	c.conn.Close()
}

// teardown disconnects every socket with reason, once.
func (c *client) teardown(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	sockets := c.sockets
	c.sockets = nil
	c.binary, c.bins = nil, nil
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	cancel := c.cancel
	c.mu.Unlock()
	c.srv.forget(c)
	if cancel != nil {
		cancel()
	}
	for _, s := range sockets {
		s.onClose(reason)
	}
}

// disconnectAll disconnects every socket as Socket.Disconnect(false) does,
// then closes the session after what was queued has been written.
func (c *client) disconnectAll() error {
	c.mu.Lock()
	sockets := slices.Clone(c.sockets)
	c.mu.Unlock()
	for _, s := range sockets {
		s.disconnect()
	}
	c.teardown("server namespace disconnect")
	return c.conn.Close()
}
