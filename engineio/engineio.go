// Package engineio is an Engine.IO v4 server: the handshake, the websocket
// and HTTP long-polling transports, the polling → websocket upgrade, server
// heartbeats and payload limits. It knows nothing of Socket.IO or sessions.
//
// An idle websocket connection holds no goroutine, no timer and no buffer:
// readiness is watched by a shared poller, heartbeats by one scheduler for
// all sockets, and buffers are taken from pools only while bytes move.
package engineio

import (
	"net/http"
	"net/url"
	"time"
)

// Options configure a Server. The zero value of each field selects the
// default given beside it.
type Options struct {
	PingInterval   time.Duration // 25s
	PingTimeout    time.Duration // 20s
	MaxPayload     int64         // 1e6 bytes
	UpgradeTimeout time.Duration // 10s: a websocket probe must complete within it

	// AllowedOrigins lists the origins (exact scheme://host[:port]) that
	// polling requests answer CORS for, with credentials and the origin
	// echoed. Empty: no CORS headers at all.
	AllowedOrigins []string

	// OnConnection is called once for each new session, before its
	// handshake packet is sent; it sets the socket's handlers.
	OnConnection func(*Socket)
}

// Handshake is what the request that opened a session carried. It is kept
// for the life of the session and must not be modified.
type Handshake struct {
	Header     http.Header
	Query      url.Values
	RemoteAddr string
	Time       time.Time
	Secure     bool // TLS, or X-Forwarded-Proto: https
}

// Message is one Engine.IO message: text or binary.
type Message struct {
	Data   []byte
	Binary bool
}

// Server serves Engine.IO at the path it is mounted on.
// It is safe for concurrent use.
type Server struct{}

// NewServer returns a Server with opts; see Options for defaults.
func NewServer(opts Options) *Server { panic("unimplemented") }

// ServeHTTP handles polling requests and websocket upgrades.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { panic("unimplemented") }

// Close closes every session and stops the background goroutines.
func (s *Server) Close() error { panic("unimplemented") }

// Count returns the number of open sessions.
func (s *Server) Count() int { panic("unimplemented") }

// Socket is one Engine.IO session, across transport upgrades. Its methods
// are safe for concurrent use.
type Socket struct{}

// ID returns the session id sent in the handshake.
func (s *Socket) ID() string { panic("unimplemented") }

// Handshake returns what the opening request carried.
func (s *Socket) Handshake() *Handshake { panic("unimplemented") }

// Transport returns "polling" or "websocket".
func (s *Socket) Transport() string { panic("unimplemented") }

// OnMessage sets the handler for messages from the client. Handlers of one
// socket are called one at a time, in order; a slow handler delays only its
// own socket. Set it in Options.OnConnection.
func (s *Socket) OnMessage(h func(Message)) { panic("unimplemented") }

// OnClose sets the handler called once when the session ends, with the
// Engine.IO reason ("transport close", "ping timeout", "transport error",
// "forced close", "server shutting down", "parse error").
func (s *Socket) OnClose(h func(reason string)) { panic("unimplemented") }

// Send queues msgs to be written in order, together; it never blocks on the
// network. It returns ErrClosed once the session has ended.
func (s *Socket) Send(msgs ...Message) error { panic("unimplemented") }

// Close ends the session after flushing what was queued before it.
func (s *Socket) Close() error { panic("unimplemented") }
