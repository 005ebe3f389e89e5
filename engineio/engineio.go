// Package engineio is an Engine.IO v4 server: the handshake, the websocket
// and HTTP long-polling transports, the polling → websocket upgrade, server
// heartbeats and payload limits. It knows nothing of Socket.IO or sessions.
//
// An idle websocket connection holds no goroutine, no timer and no buffer:
// readiness is watched by a shared poller, heartbeats by one scheduler for
// all sockets, and buffers are taken from pools only while bytes move.
//
// On Linux the poller is epoll; elsewhere, or when built with the tag
// sessiongate_noepoll, each websocket connection has a reading goroutine.
package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/sessiongate/sessiongate/internal/ratelimit"
)

// DefaultMaxPendingPayload is Options.MaxPendingPayload's default.
const DefaultMaxPendingPayload = 16 << 10

// ErrClosed is returned by Socket.Send once the session has ended or is
// closing.
var ErrClosed = errors.New("engineio: session closed")

// Options configure a Server. The zero value of each field selects the
// default given beside it.
type Options struct {
	PingInterval   time.Duration // 25s
	PingTimeout    time.Duration // 20s
	MaxPayload     int64         // 1e6 bytes
	UpgradeTimeout time.Duration // 10s: a websocket probe must complete within it

	// AllowedOrigins lists the origins (exact scheme://host[:port], as
	// browsers send them) a browser may connect from besides the server's
	// own, the one whose host is the request's Host (coder/websocket's
	// Accept has the same default). Polling requests from them are answered
	// CORS, with credentials and the origin echoed. A request without an
	// Origin header (not a browser) is always allowed. Empty: same-origin
	// browsers only, no CORS headers.
	//
	// The request that opens a session is never refused for its Origin:
	// the session opens with Handshake.OriginAllowed false, and the layer
	// above refuses it in its own protocol (package socketio sends a
	// CONNECT_ERROR), which a client does not retry, where an HTTP refusal
	// would make it reconnect forever. Every later request of a session
	// (polling GET and POST, the websocket upgrade) from an Origin not
	// allowed is refused with HTTP 403 and error code 4 "Forbidden",
	// before VerifyRequest; the session goes on.
	AllowedOrigins []string

	// MaxSessions caps the open sessions. A request that would open one
	// more is refused with HTTP 503 (Retry-After: 5) and error code 4
	// "Server at capacity", before any upgrade; clients count it as a
	// failed attempt and retry with their backoff. The count is read when
	// the handshake starts, so handshakes in flight at that moment may
	// overshoot the cap by their number. 0: no cap.
	MaxSessions int

	// AllowRequest, when set, is called with each request that would open
	// a session (not with later requests of a session). A non-nil error
	// refuses it with HTTP 403 and error code 4 "Forbidden", or with the
	// status of a *RequestError.
	AllowRequest func(*http.Request) error

	// VerifyRequest, when set, is called with every later request of a
	// session (polling GET and POST, the websocket upgrade) and the
	// handshake of the request that opened it. A non-nil error refuses the
	// request with HTTP 403 and error code 4 "Forbidden"; the session
	// itself goes on. It binds a session to what opened it (a cookie, an
	// Origin), so that its id alone is not a credential.
	VerifyRequest func(hs *Handshake, r *http.Request) error

	// OnConnection is called once for each new session, before its
	// handshake packet is sent; it sets the socket's handlers.
	OnConnection func(*Socket)

	// HandshakeRate is the handshakes (requests opening a session) allowed
	// per second per client key, with bursts of HandshakeBurst (0: twice
	// HandshakeRate, at least 1). One over is refused with HTTP 429,
	// Retry-After and error code 4 "Too many handshakes", before any other
	// check. 0: no limit.
	HandshakeRate  float64
	HandshakeBurst int

	// ClientKey names the client a request comes from, for HandshakeRate
	// and MaxPendingPerKey. Default: the host of RemoteAddr, an IPv6 one
	// by its /64 (ratelimit.Key). Behind a reverse proxy, give one that
	// believes X-Forwarded-For from trusted proxies only.
	ClientKey func(*http.Request) string

	// MaxPending caps the sessions not yet admitted (see Socket.Admit), in
	// total; MaxPendingPerKey per client key. A handshake past either is
	// refused with HTTP 503, Retry-After: 5 and error code 4, as
	// MaxSessions refuses: clients that have not authenticated can never
	// take the MaxSessions slots beyond MaxPending from admitted ones.
	// 0: no cap. A layer above that sets them must call Admit.
	MaxPending       int
	MaxPendingPerKey int

	// MaxBufferedBytes caps the payload bytes queued for one session (the
	// websocket frames not yet written, the polling packets not yet
	// fetched). A send past it closes the session with reason "slow
	// client" and drops what was queued. Default: 4 × MaxPayload, room for
	// a few of the largest messages behind a client's slow link.
	MaxBufferedBytes int64

	// MaxPendingPayload is the largest message or polling body a session
	// may send before it is admitted (Socket.Admit): until then a client
	// has no business sending more than a CONNECT with its auth payload, so
	// an anonymous client cannot make the server read and hold a
	// MaxPayload-sized message per connection. Default 16 KiB (at most
	// MaxPayload).
	MaxPendingPayload int64

	// HandshakeHeaders are the request header fields kept in
	// Handshake.Header; the rest of the opening request's header is not
	// kept for the session's life. Default: DefaultHandshakeHeaders.
	HandshakeHeaders []string
}

// DefaultHandshakeHeaders are the header fields a Handshake keeps unless
// Options.HandshakeHeaders says otherwise: what identifies and binds a
// browser session (Cookie, Origin), finds the client behind a proxy
// (X-Forwarded-For, X-Forwarded-Proto) and is recorded (User-Agent).
var DefaultHandshakeHeaders = []string{"Cookie", "Origin", "User-Agent", "X-Forwarded-For", "X-Forwarded-Proto"}

// Handshake is what the request that opened a session carried. It is kept
// for the life of the session and must not be modified.
type Handshake struct {
	Header     http.Header // only the fields of Options.HandshakeHeaders
	Query      url.Values
	URL        string // the handshake request's URI (path and query)
	RemoteAddr string
	Time       time.Time
	Secure     bool // TLS, or X-Forwarded-Proto: https
	// OriginAllowed is whether the opening request's Origin was allowed
	// (Options.AllowedOrigins): absent, the server's own, or listed. A
	// session opened from another origin must not be let in; the engine
	// opens it anyway, so that the layer above can refuse it in its own
	// protocol (see Options.AllowedOrigins).
	OriginAllowed bool
}

// Message is one Engine.IO message: text or binary. Data is not copied by
// Send: a message sent to many sockets shares its bytes.
type Message struct {
	Data   []byte
	Binary bool
}

// writeTimeout bounds each websocket write.
const writeTimeout = 10 * time.Second

// Server serves Engine.IO at the path it is mounted on.
// It is safe for concurrent use.
type Server struct {
	opts     Options
	origins  map[string]bool
	epoch    time.Time
	upgrader ws.HTTPUpgrader

	shards [shardCount]shard
	count  atomic.Int64

	headers []string           // canonical Options.HandshakeHeaders
	limiter *ratelimit.Limiter // nil without Options.HandshakeRate
	admission

	mu     sync.Mutex
	closed bool
	poller *poller // created with the first websocket connection
	stop   chan struct{}
	done   chan struct{}
}

// NewServer returns a Server with opts; see Options for defaults.
// It starts the heartbeat scheduler; call Close to stop it.
func NewServer(opts Options) *Server {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 20 * time.Second
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 1e6
	}
	if opts.UpgradeTimeout <= 0 {
		opts.UpgradeTimeout = 10 * time.Second
	}
	if opts.MaxBufferedBytes <= 0 {
		opts.MaxBufferedBytes = 4 * opts.MaxPayload
	}
	if opts.MaxPendingPayload <= 0 {
		opts.MaxPendingPayload = DefaultMaxPendingPayload
	}
	opts.MaxPendingPayload = min(opts.MaxPendingPayload, opts.MaxPayload)
	if opts.ClientKey == nil {
		opts.ClientKey = remoteKey
	}
	if opts.HandshakeHeaders == nil {
		opts.HandshakeHeaders = DefaultHandshakeHeaders
	}
	srv := &Server{
		opts:    opts,
		origins: make(map[string]bool, len(opts.AllowedOrigins)),
		epoch:   time.Now(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for _, o := range opts.AllowedOrigins {
		srv.origins[o] = true
	}
	for _, h := range opts.HandshakeHeaders {
		srv.headers = append(srv.headers, http.CanonicalHeaderKey(h))
	}
	if opts.HandshakeRate > 0 {
		burst := float64(opts.HandshakeBurst)
		if burst <= 0 {
			burst = max(1, 2*opts.HandshakeRate)
		}
		srv.limiter = ratelimit.New(opts.HandshakeRate, burst)
	}
	if opts.MaxPendingPerKey > 0 {
		srv.perKey = make(map[string]int)
	}
	for i := range srv.shards {
		srv.shards[i].m = make(map[string]*Socket)
	}
	go srv.schedule(tickInterval(opts.PingInterval))
	return srv
}

// now is the server's monotonic clock, in nanoseconds.
func (srv *Server) now() int64 { return int64(time.Since(srv.epoch)) }

// ServeHTTP handles polling requests and websocket upgrades.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		srv.preflight(w, r)
		return
	}
	srv.cors(w, r)
	q := r.URL.Query()
	srv.mu.Lock()
	closed := srv.closed
	srv.mu.Unlock()
	if closed {
		http.Error(w, "engine.io server closed", http.StatusServiceUnavailable)
		return
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		writeError(w, errTransportUnknown)
		return
	}
	if q.Get("EIO") != "4" {
		writeError(w, errUnsupportedVersion)
		return
	}
	if transport != "websocket" && isUpgrade(r) {
		// The reference server lets the websocket open, then closes it:
		// a polling transport handles no upgraded request. Refused before
		// the upgrade here, which costs less.
		writeError(w, errBadRequest)
		return
	}
	sid := q.Get("sid")
	var key string
	if sid == "" {
		if r.Method != http.MethodGet {
			writeError(w, errBadHandshakeMethod)
			return
		}
		var ok bool
		if key, ok = srv.admitHandshake(w, r); !ok {
			return
		}
	}
	if transport == "websocket" {
		srv.serveWebsocket(w, r, q, sid, key)
		return
	}
	if sid == "" {
		srv.handshakePolling(w, r, q, key)
		return
	}
	s := srv.lookup(sid)
	if s == nil {
		writeError(w, errSessionUnknown)
		return
	}
	if !srv.verify(w, r, s) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.servePoll(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		writeError(w, errBadRequest)
	}
}

// RequestError refuses a request from AllowRequest with an HTTP status of
// its own (429 for a rate limit, say) instead of 403. The body is Engine.IO's
// error JSON with code 4 and Message.
type RequestError struct {
	Status     int
	Message    string
	RetryAfter time.Duration // sent as Retry-After, in whole seconds, when positive
}

func (e *RequestError) Error() string { return "engineio: refused: " + e.Message }

// refuse answers the refusal err of AllowRequest.
func refuse(w http.ResponseWriter, err error) {
	var re *RequestError
	if !errors.As(err, &re) {
		writeError(w, errForbidden)
		return
	}
	if re.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((re.RetryAfter+time.Second-1)/time.Second)))
	}
	writeError(w, protocolError{4, re.Message, re.Status})
}

// verify refuses r, a later request of s, if its Origin is not allowed,
// then applies Options.VerifyRequest to it, and answers a refusal. It reports whether r may go on.
func (srv *Server) verify(w http.ResponseWriter, r *http.Request, s *Socket) bool {
	if !srv.originAllowed(r) {
		writeError(w, errForbidden)
		return false
	}
	if srv.opts.VerifyRequest == nil {
		return true
	}
	if err := srv.opts.VerifyRequest(s.hs, r); err != nil {
		writeError(w, errForbidden)
		return false
	}
	return true
}

// Close closes every session with reason "server shutting down" and stops
// the background goroutines. Websocket connections are closed after their
// queued messages are written. It is safe to call more than once.
func (srv *Server) Close() error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return nil
	}
	srv.closed = true
	p := srv.poller
	srv.mu.Unlock()

	close(srv.stop)
	<-srv.done
	for _, s := range srv.sockets(nil) {
		s.end(reasonShutdown, pktClose)
	}
	if p != nil {
		p.close()
	}
	return nil
}

// Count returns the number of open sessions.
func (srv *Server) Count() int { return int(srv.count.Load()) }

// newSocket creates a session for the request r opened, pending admission
// under the client key key (see admitHandshake).
func (srv *Server) newSocket(r *http.Request, q url.Values, key string) *Socket {
	secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	now := srv.now()
	s := &Socket{
		srv: srv,
		id:  newSID(),
		key: key,
		hs: &Handshake{
			Header:        srv.keptHeader(r.Header),
			Query:         q,
			URL:           r.URL.RequestURI(),
			RemoteAddr:    r.RemoteAddr,
			Time:          time.Now(),
			Secure:        secure,
			OriginAllowed: srv.originAllowed(r),
		},
		pingAt: now + int64(srv.opts.PingInterval),
	}
	s.pending.Store(true)
	return s
}

// keptHeader copies the fields of h a Handshake keeps. Values are cloned:
// the request's value slices share one array with all its other fields.
func (srv *Server) keptHeader(h http.Header) http.Header {
	kept := make(http.Header, len(srv.headers))
	for _, name := range srv.headers {
		if v := h[name]; len(v) > 0 {
			kept[name] = slices.Clone(v)
		}
	}
	return kept
}

// isUpgrade reports whether r asks for a websocket upgrade.
func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// openPacket is the handshake packet of s.
func (srv *Server) openPacket(s *Socket, upgrades string) packet {
	b := make([]byte, 0, 128)
	b = append(b, `{"sid":"`...)
	b = append(b, s.id...)
	b = append(b, `","upgrades":`...)
	b = append(b, upgrades...)
	b = append(b, `,"pingInterval":`...)
	b = strconv.AppendInt(b, srv.opts.PingInterval.Milliseconds(), 10)
	b = append(b, `,"pingTimeout":`...)
	b = strconv.AppendInt(b, srv.opts.PingTimeout.Milliseconds(), 10)
	b = append(b, `,"maxPayload":`...)
	b = strconv.AppendInt(b, srv.opts.MaxPayload, 10)
	b = append(b, '}')
	return packet{typ: pktOpen, data: b}
}

// newSID returns a random, URL-safe session id of 20 characters.
func newSID() string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// protocolError is an Engine.IO HTTP error, answered as JSON.
type protocolError struct {
	code    int
	message string
	status  int
}

var (
	errTransportUnknown   = protocolError{0, "Transport unknown", http.StatusBadRequest}
	errSessionUnknown     = protocolError{1, "Session ID unknown", http.StatusBadRequest}
	errBadHandshakeMethod = protocolError{2, "Bad handshake method", http.StatusBadRequest}
	errBadRequest         = protocolError{3, "Bad request", http.StatusBadRequest}
	errForbidden          = protocolError{4, "Forbidden", http.StatusForbidden}
	errUnsupportedVersion = protocolError{5, "Unsupported protocol version", http.StatusBadRequest}
	// Engine.IO has no code for this; 4 is what a reference server's
	// allowRequest refusal (the usual place for a cap there) answers.
	errAtCapacity = protocolError{4, "Server at capacity", http.StatusServiceUnavailable}
)

func writeError(w http.ResponseWriter, e protocolError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	msg, _ := json.Marshal(e.message)
	_, _ = w.Write([]byte(`{"code":` + strconv.Itoa(e.code) + `,"message":` + string(msg) + `}`))
}

// originAllowed reports whether the Origin of r may use the server: none
// (not a browser), the server's own (its host is the request's Host, as
// coder/websocket's Accept compares them), or one of Options.AllowedOrigins.
// "null" (a sandboxed or file: page) is never the server's own.
func (srv *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || srv.origins[origin] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// cors sets the CORS response headers for an allowed Origin and reports
// whether it was allowed.
func (srv *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(srv.origins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !srv.origins[origin] {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	return true
}

// preflight answers a CORS preflight request.
func (srv *Server) preflight(w http.ResponseWriter, r *http.Request) {
	if srv.cors(w, r) {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
			h.Add("Vary", "Access-Control-Request-Headers")
		} else {
			h.Set("Access-Control-Allow-Headers", "Content-Type")
		}
		h.Set("Access-Control-Max-Age", "86400")
	}
	w.WriteHeader(http.StatusNoContent)
}
