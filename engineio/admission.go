package engineio

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/internal/ratelimit"
)

// admission counts the sessions not yet admitted by the layer above and the
// refusals of handshakes and sessions, by reason.
type admission struct {
	pending atomic.Int64 // sessions open and not admitted

	keyMu  sync.Mutex
	perKey map[string]int // pending sessions by client key; nil without MaxPendingPerKey

	refusedRate, refusedCapacity, refusedPending, refusedPendingPerKey, closedSlow atomic.Uint64
}

// Stats are counters of a Server, for metrics. The refusal counts grow for
// the life of the server.
type Stats struct {
	Sessions int // open sessions
	Pending  int // of which not yet admitted (see Socket.Admit)

	RefusedRateLimited   uint64 // handshakes refused by Options.HandshakeRate (429)
	RefusedAtCapacity    uint64 // handshakes refused by Options.MaxSessions (503)
	RefusedPending       uint64 // handshakes refused by Options.MaxPending (503)
	RefusedPendingPerKey uint64 // handshakes refused by Options.MaxPendingPerKey (503)
	ClosedSlow           uint64 // sessions closed past Options.MaxBufferedBytes ("slow client")
}

// Stats returns the server's counters.
func (srv *Server) Stats() Stats {
	return Stats{
		Sessions:             int(srv.count.Load()),
		Pending:              int(srv.pending.Load()),
		RefusedRateLimited:   srv.refusedRate.Load(),
		RefusedAtCapacity:    srv.refusedCapacity.Load(),
		RefusedPending:       srv.refusedPending.Load(),
		RefusedPendingPerKey: srv.refusedPendingPerKey.Load(),
		ClosedSlow:           srv.closedSlow.Load(),
	}
}

var (
	errTooManyPending = protocolError{4, "Too many unauthenticated sessions", http.StatusServiceUnavailable}
	errRateLimited    = "Too many handshakes"
)

// remoteKey is the default Options.ClientKey: the peer's address, an IPv6
// one by its /64.
func remoteKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return ratelimit.Key(host)
}

// admitHandshake applies the admission checks to r, a request that would
// open a session, cheapest first: the client's token bucket, MaxSessions,
// AllowRequest, then the caps on pending sessions, whose slot it reserves.
// It answers a refusal itself. It returns the client key the reserved slot
// is under (to pass to newSocket, or to releaseKey if no session opens).
func (srv *Server) admitHandshake(w http.ResponseWriter, r *http.Request) (string, bool) {
	var key string
	if srv.limiter != nil || srv.perKey != nil {
		key = srv.opts.ClientKey(r)
	}
	if srv.limiter != nil {
		if ok, wait := srv.limiter.Allow(key, time.Now()); !ok {
			srv.refusedRate.Add(1)
			refuse(w, &RequestError{Status: http.StatusTooManyRequests, Message: errRateLimited, RetryAfter: wait})
			return "", false
		}
	}
	if n := srv.opts.MaxSessions; n > 0 && srv.count.Load() >= int64(n) {
		srv.refusedCapacity.Add(1)
		w.Header().Set("Retry-After", "5")
		writeError(w, errAtCapacity)
		return "", false
	}
	if srv.opts.AllowRequest != nil {
		if err := srv.opts.AllowRequest(r); err != nil {
			refuse(w, err)
			return "", false
		}
	}
	if n := srv.pending.Add(1); srv.opts.MaxPending > 0 && n > int64(srv.opts.MaxPending) {
		srv.pending.Add(-1)
		srv.refusedPending.Add(1)
		w.Header().Set("Retry-After", "5")
		writeError(w, errTooManyPending)
		return "", false
	}
	if srv.perKey != nil {
		srv.keyMu.Lock()
		n := srv.perKey[key]
		if n >= srv.opts.MaxPendingPerKey {
			srv.keyMu.Unlock()
			srv.pending.Add(-1)
			srv.refusedPendingPerKey.Add(1)
			w.Header().Set("Retry-After", "5")
			writeError(w, errTooManyPending)
			return "", false
		}
		srv.perKey[key] = n + 1
		srv.keyMu.Unlock()
	}
	return key, true
}

// releaseKey frees a pending slot reserved by admitHandshake under key.
func (srv *Server) releaseKey(key string) {
	srv.pending.Add(-1)
	if srv.perKey == nil {
		return
	}
	srv.keyMu.Lock()
	if n := srv.perKey[key] - 1; n > 0 {
		srv.perKey[key] = n
	} else {
		delete(srv.perKey, key) // the map holds only keys with pending sessions
	}
	srv.keyMu.Unlock()
}

// Admit marks the session as admitted by the layer above (for Socket.IO: a
// namespace CONNECT succeeded, the client authenticated): it no longer
// counts against Options.MaxPending and MaxPendingPerKey. It is safe to
// call more than once, and after the session ended.
func (s *Socket) Admit() {
	if s.pending.CompareAndSwap(true, false) {
		s.srv.releaseKey(s.key)
	}
}
