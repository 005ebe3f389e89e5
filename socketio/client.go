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
	if rec := c.srv.rec; rec != nil && (rec.Enabled == nil || rec.Enabled(s)) {
		key, ok := "", true
		if rec.Key != nil {
			key, ok = rec.Key(s)
		}
		if ok {
			s.logging, s.recKey, s.pid, s.ended = true, key, newID(), make(chan struct{})
			ns.recSockets.Add(1) // until s.end
		}
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
// A recovery socket is first matched with the socket it recovers (see
// recover), and gets what it missed from the log instead of held
// broadcasts.
func (c *client) join(s *Socket) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	var (
		res       *RestoreResult
		recovered *Recovered
		asked     bool
	)
	if s.logging {
		res, asked = c.recover(s)
		if res != nil {
			// Under c.mu, unless closed: teardown reads them after.
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				return
			}
			s.id, s.pid = res.Socket.ID, res.Socket.PID
			c.mu.Unlock()
			recovered = &Recovered{Rooms: res.Socket.Rooms, State: res.Socket.State}
		}
	}
	reply, err := s.ns.runConnecting(s, recovered)
	if err != nil && res != nil {
		c.srv.recoveries.fail(RecoveryRefused)
	}
	if err == nil && !c.register(s) && s.state.Load() != stateDisconnected {
		err = errors.New("server error") // the log failed (said by register)
	}
	if err == nil {
		rooms := reply.Rooms
		if res != nil {
			restore := res.Socket.Rooms
			if reply.RestoreRooms != nil {
				restore = reply.RestoreRooms
			}
			rooms = append(slices.Clip(restore), rooms...)
		}
		// Not under a lock: a cluster adapter may wait for a SUBSCRIBE.
		if err = s.ns.adapter.AddAll(reply.Context, s.id, rooms); err != nil {
			s.ns.adapter.DelAll(s.id)
			if !errors.Is(err, ErrDisconnected) && s.state.Load() != stateDisconnected {
				c.logger().Error("socketio: joining the rooms of a connecting socket failed", "err", err, "engine_id", c.conn.ID())
				err = errors.New("server error")
			}
		}
	}
	var gap []LogEntry
	if err == nil && res != nil && c.srv.shared != nil {
		// What this node delivered between the restore and now that the
		// socket is in its rooms reached neither the old socket nor all
		// of this one: before its register, nothing; between its register
		// and its rooms' join (a cluster adapter's AddAll waits for a
		// SUBSCRIBE), only what was sent to its id. The log replays all of
		// it, in place of what was held for it meanwhile; what comes after
		// end is held.
		s.ns.seqMu.Lock()
		s.sendMu.Lock()
		end := s.ns.delivered
		s.held, s.overflowed = nil, false
		s.sendMu.Unlock()
		s.ns.seqMu.Unlock()
		var gerr error
		if res.Head != end {
			gap, gerr = c.srv.rec.Log.Range(s.Context(), s.ns.name, res.Head, end, s.id, s.ns.mem.Rooms(s.id))
		}
		if gerr != nil {
			c.logger().Warn("socketio: the events sent to a recovering socket are no longer logged; dropping its connection", "reason", reasonOf(gerr), "engine_id", c.conn.ID())
			c.srv.recoveries.fail(reasonOf(gerr))
			c.close(ReasonTransportError)
			return
		}
	}

	if s.logging {
		s.ns.seqMu.Lock()
	}
	unlock := func() {
		c.mu.Unlock()
		s.sendMu.Unlock()
		if s.logging {
			s.ns.seqMu.Unlock()
		}
	}
	s.sendMu.Lock()
	c.mu.Lock()
	if c.closed || s.state.Load() != stateJoining {
		unlock()
		s.onClose(ReasonTransportClose) // left its rooms if it was in any
		return
	}
	if err != nil {
		c.sockets = slices.DeleteFunc(c.sockets, func(o *Socket) bool { return o == s })
		unlock()
		s.onClose(ReasonServerNamespaceDisconnect) // not connected: no handler runs
		c.refuse(s.ns.name, connectErrorJSON(err))
		return
	}
	if s.overflowed {
		unlock()
		c.logger().Warn("socketio: more broadcasts than can be held for a connecting socket; dropping its connection", "engine_id", c.conn.ID())
		c.close(ReasonTransportError)
		return
	}
	connect, _ := json.Marshal(struct {
		SID string `json:"sid"`
		PID string `json:"pid,omitempty"`
	}{s.id, s.pid})
	// Joined before CONNECT is sent, under c.mu: the client's first
	// packet after it finds the namespace joined. The held broadcasts
	// follow the CONNECT, and the state changes after them, under
	// s.sendMu: a broadcast that sees the socket connected comes after.
	msgs := (&Packet{Type: PacketConnect, Namespace: s.ns.name, Data: connect}).Messages(nil)
	if s.logging {
		var ok bool
		if msgs, ok = c.loggedConnect(s, res, gap, asked, msgs); !ok {
			unlock()
			c.close(ReasonTransportError)
			return
		}
	}
	s.joined = true
	c.conn.Send(append(msgs, s.held...)...)
	s.held = nil
	s.state.Store(stateConnected)
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	unlock()
	// The session is admitted: it no longer counts against the engine's
	// caps on unauthenticated sessions.
	if a, ok := c.conn.(interface{ Admit() }); ok {
		a.Admit()
	}
	if s.logging && c.srv.shared != nil {
		s.saveLive() // recoverable elsewhere should this node die
	}
	for _, h := range s.ns.connectHandlers() {
		h(s)
	}
}

// register makes s reachable by broadcasts; for a recovery socket it
// notes the log's head then, from which its CONNECT takes what was sent to
// it meanwhile.
func (c *client) register(s *Socket) bool {
	if !s.logging {
		return s.ns.mem.register(s)
	}
	ns := s.ns
	if ns.srv.shared != nil {
		if err := ns.waitFollowing(s.Context()); err != nil {
			c.logger().Error("socketio: recovery log head failed", "err", err)
			return false
		}
	}
	ns.seqMu.Lock()
	defer ns.seqMu.Unlock()
	head, err := ns.logHead(s.Context()) // with a SharedLog: held from there (deliverLogged)
	if err != nil {
		c.logger().Error("socketio: recovery log head failed", "err", err)
		return false
	}
	s.regHead = head
	return ns.mem.register(s)
}

// recover finds the socket s recovers, from the pid and offset of its
// CONNECT: the old socket, if it is still there (a connection the server
// has not seen drop), is closed and waited for, so that nothing of it
// (its OnDisconnect handlers, its rooms) outlives the recovery; then the
// saved socket is taken from the log. asked: the client sent a pid (it
// was connected before, and may have missed events).
func (c *client) recover(s *Socket) (res *RestoreResult, asked bool) {
	claim, hasPID, ok := parseClaim(s.handshake.Auth)
	if !hasPID {
		return nil, false
	}
	counts := &c.srv.recoveries
	counts.attempted.Add(1)
	if !ok {
		counts.fail(RecoveryOffset)
		return nil, true
	}
	ns, rec := s.ns, c.srv.rec
	ns.recMu.Lock()
	old := ns.live[claim.pid]
	ns.recMu.Unlock()
	if old != nil {
		if old.client == c {
			// Left and rejoined on this connection: not saved, and its
			// end waits behind this task.
			counts.fail(RecoveryUnknown)
			return nil, true
		}
		if old.recKey != s.recKey {
			counts.fail(RecoveryKey)
			return nil, true
		}
		old.client.close(ReasonTransportClose)
		t := time.NewTimer(rec.WaitOld)
		defer t.Stop()
		select {
		case <-old.ended:
		case <-t.C:
			counts.fail(RecoveryBusy)
			return nil, true
		case <-s.Context().Done():
			return nil, true
		}
	}
	var until string // with a SharedLog: what this node has delivered
	if c.srv.shared != nil {
		var err error
		if until, err = ns.deliveredPos(s.Context()); err != nil {
			counts.fail(RecoveryLogError)
			return nil, true
		}
	}
	r, err := rec.Log.Restore(s.Context(), RestoreRequest{
		Namespace: ns.name, PID: claim.pid, Key: s.recKey, Offset: claim.offset,
		MaxMessages: rec.MaxMessages, MaxBytes: rec.MaxBytes, Until: until,
	})
	if err != nil {
		counts.fail(reasonOf(err))
		return nil, true
	}
	return &r, true
}

// loggedConnect returns the messages that connect a recovery socket, from
// those of its CONNECT: a recovered socket's missed events first, then the
// CONNECT, the events logged for it since it registered (in place of held
// broadcasts), and the offset event. ns.seqMu is held. False if the log
// can no longer say what was sent meanwhile: the connection is dropped
// (the client reconnects).
//
// With a SharedLog, what was delivered since it registered is held (see
// deliverLogged), and gap is what a recovered socket missed from its
// restore until it was in its rooms (what was held until then is
// dropped: gap has it).
func (c *client) loggedConnect(s *Socket, res *RestoreResult, gap []LogEntry, asked bool, connect []engineio.Message) ([]engineio.Message, bool) {
	ns, rec := s.ns, c.srv.rec
	if c.srv.shared != nil {
		var msgs []engineio.Message
		if res != nil {
			msgs = appendEntries(msgs, ns.name, res.Missed)
			msgs = appendEntries(msgs, ns.name, gap)
		}
		msgs = append(msgs, connect...)
		msgs = append(msgs, s.held...) // s.sendMu is held
		s.held = nil
		return c.connectedLogged(s, res, len(gap), asked, msgs, ns.delivered), true
	}
	ctx := s.Context()
	var pre, post []LogEntry
	after := s.regHead
	if res != nil {
		pre, after = res.Missed, res.Head
	}
	since, err := rec.Log.Range(ctx, ns.name, after, "", s.id, ns.mem.Rooms(s.id))
	if err != nil {
		c.logger().Warn("socketio: the events sent to a connecting socket are no longer logged; dropping its connection", "reason", reasonOf(err), "engine_id", c.conn.ID())
		if res != nil {
			c.srv.recoveries.fail(reasonOf(err))
		}
		return nil, false
	}
	if res != nil {
		pre = append(slices.Clip(pre), since...)
	} else {
		post = since
	}
	head, err := rec.Log.Head(ctx, ns.name)
	if err != nil {
		c.logger().Error("socketio: recovery log head failed", "err", err)
		return nil, false
	}
	msgs := appendEntries(nil, ns.name, pre)
	msgs = append(msgs, connect...)
	msgs = appendEntries(msgs, ns.name, post)
	extra := 0
	if res != nil {
		extra = len(pre) - len(res.Missed)
	}
	return c.connectedLogged(s, res, extra, asked, msgs, head), true
}

// connectedLogged appends the offset event (the offset head) to the
// messages that connect a recovery socket, and marks it connected to the
// log: findable by its pid, lastSent head. extra counts the events
// replayed beside res.Missed.
func (c *client) connectedLogged(s *Socket, res *RestoreResult, extra int, asked bool, msgs []engineio.Message, head string) []engineio.Message {
	ns, rec := s.ns, c.srv.rec
	info, _ := json.Marshal(RecoveryInfo{Recovered: res != nil, Missed: asked && res == nil})
	p := &Packet{Type: PacketEvent, Namespace: ns.name, Data: appendOffset(eventJSON(rec.OffsetEvent, info), head)}
	msgs = append(msgs, p.Messages(nil)...)
	s.lastSent, s.connHead = head, head
	// Findable by its pid before it can drop: a reconnect that claims it
	// ends it first (see recover).
	ns.recMu.Lock()
	if ns.live == nil {
		ns.live = make(map[string]*Socket)
	}
	ns.live[s.pid] = s
	ns.recMu.Unlock()
	if res != nil {
		s.recovered = true
		c.srv.recoveries.succeeded.Add(1)
		c.srv.recoveries.replayed.Add(uint64(len(res.Missed) + extra))
	}
	return msgs
}

// appendEntries appends the messages of the log entries of namespace nsp,
// each with its offset, to msgs.
func appendEntries(msgs []engineio.Message, nsp string, entries []LogEntry) []engineio.Message {
	for i := range entries {
		e := &entries[i]
		msgs = append(msgs, withOffset(entryPacket(nsp, e), e.Attachments, e.Offset)...)
	}
	return msgs
}

// eventJSON is the JSON array of an event with one JSON argument.
func eventJSON(name string, arg json.RawMessage) []byte {
	b, _ := json.Marshal(name)
	out := append([]byte{'['}, b...)
	out = append(out, ',')
	out = append(out, arg...)
	return append(out, ']')
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

func (c *client) logger() *slog.Logger { return c.srv.logger() }

func (s *Server) logger() *slog.Logger {
	if l := s.opts.Logger; l != nil {
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
