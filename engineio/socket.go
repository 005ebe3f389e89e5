package engineio

import (
	"sync"
	"sync/atomic"
	"time"
)

// lingerTime is how long a polling session closed by its client still
// answers a GET, with a noop packet.
const lingerTime = time.Second

// Session states.
const (
	stateOpen    uint8 = iota
	stateClosing       // polling: the close packet waits for the queue to drain
	stateClosed
)

// Close reasons, indexes into reasonText.
const (
	reasonTransportClose uint8 = iota + 1
	reasonPingTimeout
	reasonTransportError
	reasonForcedClose
	reasonShutdown
	reasonParseError
	reasonSlowClient
)

var reasonText = [...]string{
	reasonTransportClose: "transport close",
	reasonPingTimeout:    "ping timeout",
	reasonTransportError: "transport error",
	reasonForcedClose:    "forced close",
	reasonShutdown:       "server shutting down",
	reasonParseError:     "parse error",
	reasonSlowClient:     "slow client",
}

// Socket is one Engine.IO session, across transport upgrades. Its methods
// are safe for concurrent use.
//
// A Socket holds no goroutine, channel, timer or buffer of its own while
// idle: it is small on purpose, as servers keep many of them.
type Socket struct {
	srv     *Server
	id      string
	hs      *Handshake
	key     string      // the client key its pending slot is under
	pending atomic.Bool // not yet admitted: holds a pending slot

	inMu sync.Mutex // held while a message handler runs

	mu        sync.Mutex
	state     uint8
	reason    uint8 // why the session is closing
	upgrading bool  // a websocket probe was answered
	lingering bool  // closed, kept to answer one more GET
	posting   bool  // a polling POST is being handled
	onMessage func(Message)
	onClose   func(reason string)
	queue     []packet    // polling: packets for the next GET
	queued    int64       // polling: payload bytes in queue
	pong      int         // polling: 1 + the index in queue of a pong; 0: none
	pollBy    int64       // polling: a GET must come by then (server clock)
	poll      *pollWaiter // polling: the GET waiting for packets
	ws        *wsConn     // the websocket transport, once upgraded
	probe     *wsConn     // a websocket being probed for the upgrade
	pingAt    int64       // when to send the next ping (server clock)
	pongBy    int64       // deadline for the pong; 0 when none is awaited
	deadline  int64       // end of the upgrade probe, or of a polling close
	upgraded  int64       // when the upgrade completed (server clock)
}

// maxPayload is the largest message s may send now: MaxPendingPayload
// until it is admitted, then MaxPayload.
func (s *Socket) maxPayload() int64 {
	if s.pending.Load() {
		return s.srv.opts.MaxPendingPayload
	}
	return s.srv.opts.MaxPayload
}

// ID returns the session id sent in the handshake.
func (s *Socket) ID() string { return s.id }

// Handshake returns what the opening request carried.
func (s *Socket) Handshake() *Handshake { return s.hs }

// Transport returns "polling" or "websocket".
func (s *Socket) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws != nil {
		return "websocket"
	}
	return "polling"
}

// OnMessage sets the handler for messages from the client. Handlers of one
// socket are called one at a time, in order; a slow handler delays only its
// own socket. Set it in Options.OnConnection. Message.Data belongs to the
// handler.
func (s *Socket) OnMessage(h func(Message)) {
	s.mu.Lock()
	s.onMessage = h
	s.mu.Unlock()
}

// OnClose sets the handler called once when the session ends, with the
// Engine.IO reason ("transport close", "ping timeout", "transport error",
// "forced close", "server shutting down", "parse error"), or "slow client"
// when more was queued for it than Options.MaxBufferedBytes.
func (s *Socket) OnClose(h func(reason string)) {
	s.mu.Lock()
	s.onClose = h
	s.mu.Unlock()
}

// Send queues msgs to be written in order, together; it never blocks on the
// network. It returns ErrClosed once the session has ended, or when msgs
// would take the bytes queued for it past Options.MaxBufferedBytes: the
// session is then closed as a slow client.
//
// Message.Data is not copied: it must not be modified after Send, so that
// one message sent to many sockets is held once.
func (s *Socket) Send(msgs ...Message) error {
	pkts := make([]packet, len(msgs))
	for i, m := range msgs {
		pkts[i] = packet{typ: pktMessage, binary: m.Binary, data: m.Data}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen || !s.sendLocked(pkts...) {
		return ErrClosed
	}
	return nil
}

// Close ends the session after flushing what was queued before it, as the
// reference server does: on websocket the queued messages and then a close
// frame are written. On polling the queued messages go to the pending or
// next GET and the close packet to the GET after them, never in the same
// payload: a client handles a close packet as soon as it decodes it, before
// the messages decoded with it have reached its application. A websocket
// probe in progress may still complete the upgrade; the queued messages and
// the close frame then go over it. OnClose is called with "forced close".
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return nil
	}
	if s.ws != nil {
		s.mu.Unlock()
		s.end(reasonForcedClose, 0)
		return nil
	}
	s.state = stateClosing
	s.reason = reasonForcedClose
	s.deadline = s.srv.now() + int64(s.srv.opts.PingTimeout)
	if s.poll != nil {
		// A waiting GET has been given everything sent before (the queue
		// is empty): the close packet goes to it alone. Otherwise
		// servePoll sends it once the queue has drained.
		s.queue = append(s.queue, packet{typ: pktClose})
		s.handoffLocked()
	}
	s.mu.Unlock()
	return nil
}

// sendLocked queues pkts on the current transport. It reports false when
// the websocket connection is already gone, or when the packets would take
// the queue past Options.MaxBufferedBytes: the session is then closing as a
// slow client, its queue dropped.
//
// A pong is not queued behind another still queued: that one answers the
// latest ping instead, so that a flood of pings queues at most one pong.
func (s *Socket) sendLocked(pkts ...packet) bool {
	if s.ws != nil {
		return s.ws.send(pkts...)
	}
	for _, p := range pkts {
		if p.typ == pktPong && !p.binary && s.pong > 0 {
			old := &s.queue[s.pong-1]
			s.queued += int64(len(p.data) - len(old.data))
			*old = p
			continue
		}
		s.queued += 1 + int64(len(p.data))
		if s.queued > s.srv.opts.MaxBufferedBytes {
			s.slowLocked()
			return false
		}
		s.queue = append(s.queue, p)
		if p.typ == pktPong && !p.binary {
			s.pong = len(s.queue)
		}
	}
	s.handoffLocked()
	return true
}

// slowLocked closes a polling session whose client does not fetch what is
// queued: the queue is dropped, and the session ends at the next tick, or
// when a GET takes the close packet.
func (s *Socket) slowLocked() {
	s.takeQueueLocked()
	s.state = stateClosing
	s.reason = reasonSlowClient
	s.deadline = s.srv.now()
}

// takeQueueLocked returns the polling queue and empties it.
func (s *Socket) takeQueueLocked() []packet {
	q := s.queue
	s.queue, s.queued, s.pong = nil, 0, 0
	return q
}

// end closes the session at once with reason. A GET waiting on a polling
// session receives what was queued and then the packet pollLast, if not
// zero. A websocket gets its queued frames and a close frame. OnClose is
// called once, after the session left the server's registry.
func (s *Socket) end(reason uint8, pollLast byte) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	s.reason = reason
	ws, probe := s.ws, s.probe
	s.probe, s.upgrading = nil, false
	// A client that closes over polling may race its close packet against
	// its GET: the session lingers briefly to answer that GET with a noop.
	linger := ws == nil && pollLast == pktNoop && s.poll == nil
	if ws != nil {
		ws.closeAfterFlush(closeNormal)
	} else if s.poll != nil {
		if pollLast != 0 {
			s.queue = append(s.queue, packet{typ: pollLast})
		}
		s.handoffLocked()
	}
	s.takeQueueLocked()
	if linger {
		s.lingering = true
		s.deadline = s.srv.now() + int64(lingerTime)
	}
	h := s.onClose
	s.onClose, s.onMessage = nil, nil
	s.mu.Unlock()
	if probe != nil {
		probe.teardown()
	}
	s.Admit() // frees its pending slot, if it held one
	if reason == reasonSlowClient {
		s.srv.closedSlow.Add(1)
	}
	s.srv.count.Add(-1)
	if !linger {
		s.srv.unregister(s)
	}
	if h != nil {
		h(reasonText[reason])
	}
}

// onPacket handles a packet from the client on the current transport.
func (s *Socket) onPacket(p packet) {
	switch p.typ {
	case pktClose:
		reason := reasonTransportClose
		s.mu.Lock()
		if s.state == stateClosing {
			reason = s.reason // the client answers the server's close
		}
		s.mu.Unlock()
		s.end(reason, pktNoop)
	case pktPing:
		s.mu.Lock()
		if s.state == stateOpen {
			s.sendLocked(packet{typ: pktPong, data: append([]byte(nil), p.data...)})
		}
		s.mu.Unlock()
	case pktPong:
		s.mu.Lock()
		if s.pongBy != 0 {
			s.pongBy = 0
			s.pingAt = s.srv.now() + int64(s.srv.opts.PingInterval)
		}
		s.mu.Unlock()
	case pktMessage:
		msg := Message{Data: p.data, Binary: p.binary}
		if !p.binary {
			msg.Data = append([]byte(nil), p.data...)
		}
		s.inMu.Lock()
		s.mu.Lock()
		h := s.onMessage
		if s.state != stateOpen {
			h = nil // messages that arrive while closing are dropped
		}
		s.mu.Unlock()
		if h != nil {
			h(msg)
		}
		s.inMu.Unlock()
	}
	// open, upgrade (outside a probe) and noop packets are ignored.
}

// tick runs the heartbeat and the deadlines of s at time now; the
// scheduler calls it.
func (s *Socket) tick(now int64) {
	s.mu.Lock()
	switch {
	case s.state == stateClosed:
		expired := s.lingering && now >= s.deadline
		s.lingering = s.lingering && !expired
		s.mu.Unlock()
		if expired {
			s.srv.unregister(s)
		}
	case s.state == stateClosing:
		expired := now >= s.deadline
		s.mu.Unlock()
		if expired {
			s.end(s.reason, 0)
		}
	case s.pongBy != 0 && now >= s.pongBy:
		s.mu.Unlock()
		s.end(reasonPingTimeout, pktClose)
	case s.ws == nil && s.probe == nil && s.poll == nil && s.pollBy != 0 && now >= s.pollBy:
		// No GET for a heartbeat: the client does not fetch its pings,
		// whatever it POSTs.
		s.mu.Unlock()
		s.end(reasonPingTimeout, 0)
	case s.probe != nil && now >= s.deadline:
		probe := s.probe
		s.probe, s.upgrading = nil, false
		s.mu.Unlock()
		probe.teardown()
	case s.pongBy == 0 && now >= s.pingAt:
		// The deadline counts from when the ping was due, not from this
		// tick, so that a late tick does not extend it.
		s.pongBy = s.pingAt + int64(s.srv.opts.PingTimeout)
		s.sendLocked(packet{typ: pktPing})
		s.mu.Unlock()
	default:
		s.mu.Unlock()
	}
}
