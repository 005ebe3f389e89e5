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
	"github.com/sessiongate/sessiongate/internal/ratelimit"
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
// Options.MaxQueuedBytes bounds their bytes.
const maxQueued = 1024

// closeCode is why the server closed a connection whose client broke a
// rule; Server.Stats counts them.
type closeCode int

const (
	closeParse closeCode = iota
	closeAttachments
	closeNamespace
	closeRefused
	closeBudget
	closeQueueFull
	closeConnectTimeout
	closePanic
	numCloseCodes
)

// closeCodes are the machine codes logged, and the reasons the sockets'
// OnDisconnect handlers see, by closeCode: Node's reasons where it has the
// same rule.
var closeCodes = [numCloseCodes]struct {
	code   string
	reason Reason
}{
	closeParse:          {"PARSE_ERROR", ReasonParseError},
	closeAttachments:    {"ATTACHMENTS", ReasonParseError},
	closeNamespace:      {"NAMESPACE_VIOLATION", ReasonForcedServerClose},
	closeRefused:        {"REFUSED_CONNECTS", ReasonForcedServerClose},
	closeBudget:         {"PACKET_BUDGET", ReasonForcedServerClose},
	closeQueueFull:      {"QUEUE_FULL", ReasonTransportError},
	closeConnectTimeout: {"CONNECT_TIMEOUT", ReasonConnectTimeout},
	closePanic:          {"HANDLER_PANIC", ReasonForcedClose},
}

// client is the Socket.IO side of one Engine.IO session: it decodes packets
// and holds the sockets, one per namespace, multiplexed on the session.
//
// Handlers of one client (connect hooks, OnConnect, events, OnDisconnect) run
// one at a time in arrival order, on a goroutine that exists only while
// there is work, so a slow handler delays only its own connection and never
// the transport's read path: acknowledgements are resolved on the read path,
// so a handler may wait in EmitWithAck.
type client struct {
	srv  *Server
	conn conn

	mu        sync.Mutex
	sockets   []*Socket // joined or joining, at most one per namespace
	binary    *Packet   // a binary packet waiting for its attachments
	binSocket *Socket   // the socket binary is for; nil for none
	bins      [][]byte
	binBytes  int64       // of binary and bins
	binTimer  *time.Timer // AttachmentTimeout of binary
	timer     *time.Timer // connect timeout, until the first namespace joins
	closed    bool
	queue     []task
	queued    int64 // bytes of the packets held by queue, the running task's included
	running   bool
	budget    ratelimit.Bucket // of Engine.IO messages
	refused   int              // CONNECTs refused
}

// task is work for the handler goroutine, holding size bytes of packets.
type task struct {
	run  func()
	size int64
}

func newClient(srv *Server, c conn) *client {
	cl := &client{srv: srv, conn: c}
	cl.budget = ratelimit.NewBucket(srv.opts.PacketRate, float64(srv.opts.PacketBurst), time.Now())
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
		c.fail(closeConnectTimeout, "no namespace joined in time")
	}
}

// onMessage handles one Engine.IO message; the engine calls it in order.
// Every check that can refuse the message runs before its bytes are copied
// or its JSON arguments parsed.
func (c *client) onMessage(m engineio.Message) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if !c.budget.Allow(time.Now()) {
		c.mu.Unlock()
		c.fail(closeBudget, "more messages than the packet budget")
		return
	}
	if m.Binary {
		c.onAttachment(m.Data) // unlocks
		return
	}
	waiting := c.binary != nil
	c.mu.Unlock()
	if waiting {
		c.fail(closeParse, "text while attachments were expected")
		return
	}
	p, err := decodeHeader(m.Data)
	if err != nil {
		if errors.Is(err, errTooManyAttachments) {
			c.fail(closeAttachments, err.Error())
		} else {
			c.fail(closeParse, err.Error())
		}
		return
	}
	s, ok := c.admit(p)
	if !ok {
		c.fail(closeNamespace, "invalid state (packet type: "+p.Type.String()+", namespace "+truncate(p.Namespace, 64)+")")
		return
	}
	if err := p.validate(); err != nil {
		c.fail(closeParse, err.Error())
		return
	}
	p.Data = slices.Clone(p.Data) // the engine may reuse its buffer
	if p.Attachments == 0 {
		c.handle(p, s, nil)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.binary, c.binSocket = p, s
	c.bins = make([][]byte, 0, p.Attachments)
	c.binBytes = int64(len(m.Data))
	c.binTimer = time.AfterFunc(c.srv.opts.AttachmentTimeout, func() { c.attachmentTimeout(p) })
	c.mu.Unlock()
}

// onAttachment takes one attachment of the binary packet waiting; c.mu is
// held and is released.
func (c *client) onAttachment(data []byte) {
	if c.binary == nil {
		c.mu.Unlock()
		c.fail(closeParse, "binary data outside a binary packet")
		return
	}
	c.binBytes += int64(len(data))
	if c.binBytes > c.srv.opts.Engine.MaxPayload {
		c.mu.Unlock()
		c.fail(closeAttachments, "attachments over the maximum payload")
		return
	}
	c.bins = append(c.bins, slices.Clone(data))
	if len(c.bins) < c.binary.Attachments {
		c.mu.Unlock()
		return
	}
	p, s, bins := c.binary, c.binSocket, c.bins
	c.clearBinaryLocked()
	c.mu.Unlock()
	c.handle(p, s, bins)
}

func (c *client) clearBinaryLocked() {
	c.binary, c.binSocket, c.bins, c.binBytes = nil, nil, nil, 0
	if c.binTimer != nil {
		c.binTimer.Stop()
		c.binTimer = nil
	}
}

func (c *client) attachmentTimeout(p *Packet) {
	c.mu.Lock()
	late := c.binary == p
	c.mu.Unlock()
	if late {
		c.fail(closeAttachments, "attachments not sent in time")
	}
}

// admit checks p against the connection's state as Node's Client._onpacket
// does: a CONNECT must name a namespace the client is neither in nor
// joining; every other packet a namespace it has joined, whose socket is
// returned.
func (c *client) admit(p *Packet) (*Socket, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.socketLocked(p.Namespace)
	switch p.Type {
	case PacketConnect:
		return nil, s == nil
	case PacketConnectError:
		return nil, false
	}
	return s, s != nil && s.joined
}

// handle acts on a complete packet, admitted for socket s.
func (c *client) handle(p *Packet, s *Socket, bins [][]byte) {
	switch p.Type {
	case PacketConnect:
		c.onConnect(p)
	case PacketDisconnect:
		// Gone for the packets after this one, as in Node; disconnected in
		// turn, after the events before it.
		c.remove(s)
		if !c.enqueue(0, func() { s.onClose(ReasonClientNamespaceDisconnect) }) {
			s.onClose(ReasonClientNamespaceDisconnect) // no longer among c.sockets that teardown closes
		}
	case PacketEvent, PacketBinaryEvent:
		name, _ := eventName(p.Data) // validated
		data, id, hasID := p.Data, p.ID, p.HasID
		size := int64(len(data))
		for _, b := range bins {
			size += int64(len(b))
		}
		c.enqueue(size, func() {
			if !s.Connected() {
				return
			}
			args, err := decodeArgs(data, bins)
			if err != nil || len(args) == 0 {
				c.fail(closeParse, "event arguments: "+errString(err))
				return
			}
			s.dispatch(Event{Name: name, Args: args[1:]}, id, hasID)
		})
	case PacketAck, PacketBinaryAck:
		if !s.awaitsAck(p.ID) {
			return // timed out, or never asked for: as Node, ignored
		}
		args, err := decodeArgs(p.Data, bins)
		if err != nil {
			c.fail(closeParse, "ack arguments: "+err.Error())
			return
		}
		s.resolveAck(p.ID, args)
	}
}

// truncate bounds a client's string for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func errString(err error) string {
	if err == nil {
		return "no event name"
	}
	return err.Error()
}

func (c *client) onConnect(p *Packet) {
	ns := c.srv.namespace(p.Namespace)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.socketLocked(p.Namespace) != nil || len(c.sockets) >= c.srv.opts.MaxNamespaces {
		c.mu.Unlock()
		c.fail(closeNamespace, "a second CONNECT for a namespace, or too many namespaces")
		return
	}
	if ns == nil {
		c.mu.Unlock()
		c.refuse(p.Namespace, json.RawMessage(`{"message":"Invalid namespace"}`))
		return
	}
	if hs := c.conn.Handshake(); hs != nil && !hs.OriginAllowed {
		c.mu.Unlock()
		c.refuseOrigin(ns, p) // origin.go
		return
	}
	s := &Socket{id: newID(), ns: ns, client: c}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.handshake = &Handshake{Auth: p.Data}
	if hs := c.conn.Handshake(); hs != nil {
		s.handshake.Handshake = *hs
	}
	c.sockets = append(c.sockets, s)
	c.mu.Unlock()
	c.enqueue(int64(len(p.Data)), func() { c.join(s) })
}

// refuse sends CONNECT_ERROR for nsp, then closes the connection if it has
// been refused MaxRefusedConnects times.
func (c *client) refuse(nsp string, data json.RawMessage) {
	c.mu.Lock()
	c.refused++
	over := c.refused >= c.srv.opts.MaxRefusedConnects
	c.mu.Unlock()
	c.send(&Packet{Type: PacketConnectError, Namespace: nsp, Data: data}, nil)
	if over {
		c.fail(closeRefused, "too many refused CONNECTs")
	}
}

// join runs the OnConnecting hooks for s, joins the rooms they returned,
// and connects it: the CONNECT is sent, then the broadcasts held for it.
func (c *client) join(s *Socket) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	reply, err := s.ns.runConnecting(s)
	if err == nil && s.ns.mem.register(s) {
		// Not under a lock: a cluster adapter may wait for a SUBSCRIBE.
		if err = s.ns.adapter.AddAll(reply.Context, s.id, reply.Rooms); err != nil {
			s.ns.adapter.DelAll(s.id)
			if !errors.Is(err, ErrDisconnected) && s.state.Load() != stateDisconnected {
				c.logger().Error("socketio: joining the rooms of a connecting socket failed", "err", err, "engine_id", c.conn.ID())
				err = errors.New("server error")
			}
		}
	}

	s.sendMu.Lock()
	c.mu.Lock()
	if c.closed || s.state.Load() != stateJoining {
		c.mu.Unlock()
		s.sendMu.Unlock()
		s.onClose(ReasonTransportClose) // left its rooms if it was in any
		return
	}
	if err != nil {
		c.sockets = slices.DeleteFunc(c.sockets, func(o *Socket) bool { return o == s })
		c.mu.Unlock()
		s.sendMu.Unlock()
		s.onClose(ReasonServerNamespaceDisconnect) // not connected: no handler runs
		c.refuse(s.ns.name, connectErrorJSON(err))
		return
	}
	if s.overflowed {
		c.mu.Unlock()
		s.sendMu.Unlock()
		c.logger().Warn("socketio: more broadcasts than can be held for a connecting socket; dropping its connection", "engine_id", c.conn.ID())
		c.close(ReasonTransportError)
		return
	}
	sid, _ := json.Marshal(struct {
		SID string `json:"sid"`
	}{s.id})
	// Joined before CONNECT is sent, under c.mu: the client's first
	// packet after it finds the namespace joined. The held broadcasts
	// follow the CONNECT, and the state changes after them, under
	// s.sendMu: a broadcast that sees the socket connected comes after.
	s.joined = true
	msgs := (&Packet{Type: PacketConnect, Namespace: s.ns.name, Data: sid}).Messages(nil)
	c.conn.Send(append(msgs, s.held...)...)
	s.held = nil
	s.state.Store(stateConnected)
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	s.sendMu.Unlock()
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

// socketLocked returns the socket joined or joining nsp, or nil; c.mu is
// held.
func (c *client) socketLocked(nsp string) *Socket {
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

// enqueueFinal queues f as enqueue does, beyond the limits: the
// OnDisconnect handlers of a socket, at most one task per namespace.
func (c *client) enqueueFinal(f func()) {
	c.mu.Lock()
	c.queue = append(c.queue, task{f, 0})
	if c.running {
		c.mu.Unlock()
		return
	}
	c.running = true
	c.mu.Unlock()
	gopool.Go(c.drain)
}

// enqueue runs f after the tasks queued before it, on the client's task
// goroutine, starting it if needed; size is the bytes of packets f holds.
// A client whose tasks would exceed maxQueued or MaxQueuedBytes is closed
// instead (a single task is always taken), and false returned.
func (c *client) enqueue(size int64, f func()) bool {
	c.mu.Lock()
	if !c.closed && (len(c.queue) >= maxQueued || (c.queued > 0 && c.queued+size > c.srv.opts.MaxQueuedBytes)) {
		c.mu.Unlock()
		c.fail(closeQueueFull, "handler queue full")
		return false
	}
	c.queue = append(c.queue, task{f, size})
	c.queued += size
	if c.running {
		c.mu.Unlock()
		return true
	}
	c.running = true
	c.mu.Unlock()
	gopool.Go(c.drain)
	return true
}

func (c *client) drain() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.queue, c.running = nil, false
			c.mu.Unlock()
			return
		}
		t := c.queue[0]
		c.queue[0] = task{}
		c.queue = c.queue[1:]
		c.mu.Unlock()
		c.run(t.run)
		c.mu.Lock()
		c.queued -= t.size
		c.mu.Unlock()
	}
}

// run calls f, turning a panic into a logged error that closes this
// connection rather than the process.
func (c *client) run(f func()) {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("socketio: handler panicked; closing its connection",
				"panic", r, "engine_id", c.conn.ID(), "stack", string(debug.Stack()))
			c.fail(closePanic, "handler panicked")
		}
	}()
	f()
}

func (c *client) logger() *slog.Logger {
	if l := c.srv.opts.Logger; l != nil {
		return l
	}
	return slog.Default()
}

// fail closes the connection for breaking the rule code, counting and
// logging it if the connection was still open.
func (c *client) fail(code closeCode, detail string) {
	cc := closeCodes[code]
	if !c.teardown(cc.reason) {
		return
	}
	c.srv.closes[code].Add(1)
	c.logger().Info("socketio: connection closed", "code", cc.code, "detail", detail, "engine_id", c.conn.ID())
	c.conn.Close()
}

// onClose is called by the engine when the session has ended.
func (c *client) onClose(reason string) { c.teardown(Reason(reason)) }

// close ends the session, telling the sockets reason.
func (c *client) close(reason Reason) {
	c.teardown(reason)
	c.conn.Close()
}

// teardown disconnects every socket with reason, once: false if it had
// been done.
func (c *client) teardown(reason Reason) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	sockets := c.sockets
	c.sockets = nil
	c.clearBinaryLocked()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	c.srv.forget(c)
	for _, s := range sockets {
		s.onClose(reason)
	}
	return true
}

// disconnectAll disconnects every socket as Socket.Disconnect does,
// then closes the session after what was queued has been written.
func (c *client) disconnectAll() error {
	c.mu.Lock()
	sockets := slices.Clone(c.sockets)
	c.mu.Unlock()
	for _, s := range sockets {
		s.disconnect()
	}
	c.teardown(ReasonServerNamespaceDisconnect)
	return c.conn.Close()
}
