package engineio

import (
	"io"
	"net/http"
	"net/url"
	"time"
)

// pollWaiter is a GET request waiting for packets. The sender hands it the
// packets and closes ch.
type pollWaiter struct {
	ch       chan struct{}
	pkts     []packet
	upgraded bool // the session moved to websocket while it waited
}

// noopDelay is how long a GET waiting during an upgrade probe is held
// before a noop packet releases it, as the reference server does: a
// client that completes the upgrade at once finds its GET refused.
const noopDelay = 100 * time.Millisecond

// releasePollLater releases the waiting GET with a noop packet after
// noopDelay, if the upgrade is still in progress then. The timer exists
// only during an upgrade.
func (s *Socket) releasePollLater() {
	time.AfterFunc(noopDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.upgrading && s.poll != nil {
			if len(s.queue) == 0 {
				s.queue = append(s.queue, packet{typ: pktNoop})
			}
			s.handoffLocked()
		}
	})
}

// handoffLocked gives the queued packets to a waiting GET, if any.
func (s *Socket) handoffLocked() {
	if s.poll == nil || len(s.queue) == 0 {
		return
	}
	s.poll.pkts = s.takeQueueLocked()
	close(s.poll.ch)
	s.poll = nil
	s.polledLocked()
}

// polledLocked records that a GET was answered: the next must come within
// a heartbeat (PingInterval + PingTimeout).
func (s *Socket) polledLocked() {
	s.pollBy = s.srv.now() + int64(s.srv.opts.PingInterval+s.srv.opts.PingTimeout)
}

// handshakePolling opens a session over HTTP long-polling; its pending
// slot is under key.
func (srv *Server) handshakePolling(w http.ResponseWriter, r *http.Request, q url.Values, key string) {
	s := srv.newSocket(r, q, key)
	s.queue = append(s.queue, srv.openPacket(s, `["websocket"]`))
	s.polledLocked()
	srv.register(s)
	if srv.opts.OnConnection != nil {
		srv.opts.OnConnection(s)
	}
	s.mu.Lock()
	pkts := s.takeQueueLocked()
	s.mu.Unlock()
	writePayload(w, pkts)
}

func writePayload(w http.ResponseWriter, pkts []packet) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(appendPayload(nil, pkts))
}

// servePoll answers a polling GET with the queued packets, waiting for some
// when there are none. A closing session answers with the close packet
// once its queue is empty. A second concurrent GET ends the session.
func (s *Socket) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case s.state == stateClosed:
		lingering := s.lingering
		s.lingering = false
		s.mu.Unlock()
		if lingering {
			s.srv.unregister(s)
			writePayload(w, []packet{{typ: pktNoop}})
			return
		}
		writeError(w, errSessionUnknown)
		return
	case s.ws != nil:
		// Refused, but not before noopDelay has passed since the upgrade,
		// as a GET waiting then is: a client sees the probe's answer on
		// the websocket before this refusal.
		wait := time.Duration(s.upgraded + int64(noopDelay) - s.srv.now())
		s.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.Context().Done():
			}
			t.Stop()
		}
		writeError(w, errBadRequest)
		return
	case s.poll != nil:
		s.mu.Unlock()
		s.end(reasonTransportError, pktClose)
		writeError(w, errBadRequest)
		return
	case s.pongBy != 0 && s.srv.now() >= s.pongBy:
		s.mu.Unlock()
		s.end(reasonPingTimeout, pktClose)
		writeError(w, errSessionUnknown)
		return
	}
	var pkts []packet
	switch {
	case len(s.queue) > 0:
		pkts = s.takeQueueLocked()
	case s.state == stateClosing:
		// The messages queued before Close went in earlier payloads.
		pkts = []packet{{typ: pktClose}}
	default:
		wt := &pollWaiter{ch: make(chan struct{})}
		s.poll = wt
		if s.upgrading {
			s.releasePollLater()
		}
		s.mu.Unlock()
		select {
		case <-wt.ch:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		if s.poll == wt {
			s.poll = nil
		}
		s.polledLocked()
		pkts = wt.pkts
		if wt.upgraded {
			s.mu.Unlock()
			writeError(w, errBadRequest)
			return
		}
	}
	closing, reason := s.state == stateClosing, s.reason
	s.polledLocked()
	s.mu.Unlock()
	if len(pkts) == 0 {
		return // the client went away
	}
	// A client that does not read its answer holds this goroutine no
	// longer than a websocket write may take.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	writePayload(w, pkts)
	if closing && pkts[len(pkts)-1].typ == pktClose {
		s.end(reason, 0)
	}
}

// servePost decodes a polling POST and handles its packets in order.
func (s *Socket) servePost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case s.state == stateClosed:
		// A closing session still takes POSTs, as the reference server
		// does: refusing one would make the client fail its transport
		// before it has seen the messages queued before the close.
		s.mu.Unlock()
		writeError(w, errSessionUnknown)
		return
	case s.ws != nil:
		s.mu.Unlock()
		writeError(w, errBadRequest)
		return
	case s.posting:
		s.mu.Unlock()
		s.end(reasonTransportError, pktClose)
		writeError(w, errBadRequest)
		return
	case s.pongBy != 0 && s.srv.now() >= s.pongBy:
		s.mu.Unlock()
		s.end(reasonPingTimeout, pktClose)
		writeError(w, errSessionUnknown)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	// A body stalled before its end holds this goroutine, its buffer and
	// the connection no longer than a heartbeat answer may take.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.srv.opts.PingTimeout))
	max := s.maxPayload()
	if r.ContentLength > max {
		s.end(reasonTransportError, pktClose)
		http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		// The deadline stays: net/http, draining the rest of the body
		// for the connection's next request, gives up on it at once.
		s.end(reasonTransportError, pktClose)
		writeError(w, errBadRequest)
		return
	}
	if int64(len(body)) > max {
		s.end(reasonTransportError, pktClose)
		http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		return
	}
	// Lifted once the whole body is in, so that net/http's watch on the
	// idle connection does not time out while the packets are handled.
	_ = rc.SetReadDeadline(time.Time{})
	pkts, err := decodePayload(body)
	if err != nil {
		s.end(reasonParseError, pktClose)
		writeError(w, errBadRequest)
		return
	}
	for _, p := range pkts {
		s.onPacket(p)
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = io.WriteString(w, "ok")
}
