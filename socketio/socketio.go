// Package socketio is a Socket.IO v5 server (the protocol of socket.io 3 and
// 4) on top of package engineio: packets, namespaces, middleware, events and
// acknowledgements, binary attachments, rooms and broadcasts. The official
// socket.io-client v4 uses it unchanged. It knows nothing of sessions.
//
// # Handlers
//
// The handlers of one connection (middleware, OnConnect, event handlers,
// OnDisconnect, for all its namespaces) run one at a time, in the order the
// packets arrived, on a goroutine that exists only while there is work: a
// slow handler delays its own connection only, and an idle connection holds
// no goroutine. Acknowledgements are matched on the transport's read path,
// so a handler may block in EmitWithAck. A client that queues more than 1024
// packets (or MaxQueuedBytes) ahead of its handlers is disconnected.
//
// # Binary attachments
//
// Emit, EmitWithAck, acknowledgements and broadcasts send every []byte (or
// named []byte type) found in their arguments as a binary attachment: inside
// []any and map[string]any, any slice, array, pointer, interface or map with
// string keys, and exported struct fields (the json tag's name, "-" and
// omitempty are honoured; embedded structs are flattened without
// encoding/json's conflict rules; the ",string" option is not supported on
// a struct that holds binary). Values whose type cannot hold a []byte, and
// types implementing json.Marshaler or encoding.TextMarshaler, are encoded
// by encoding/json; json.RawMessage is sent as is. Received arguments are
// decoded into any (float64, string, bool, nil, []any, map[string]any) with
// each attachment put back, as []byte, where its placeholder was.
//
// # Limits
//
// What one client can make the server hold is bounded, before and after
// it joins a namespace; breaking a rule closes its connection, counted in
// Server.Stats:
//   - A malformed packet, an ack id above MaxAckID, a binary packet
//     announcing no attachment or more than MaxAttachments: "parse error"
//     (as socket.io-parser). The attachments of a packet, with it, total at
//     most Engine.MaxPayload bytes and arrive within AttachmentTimeout.
//   - As Node's server does, a packet for a namespace the client has not
//     joined closes the connection ("forced server close"), whether or not
//     it joined another: only CONNECT may name such a namespace. A
//     namespace is joined once its middleware has let the client in and
//     its CONNECT was sent; socket.io-client holds its emits until then.
//     Packet headers (type, namespace, ack id) are checked before the
//     arguments are parsed, and arguments are decoded on the handler
//     goroutine, so a refused packet costs no JSON decoding.
//   - A connection sends at most PacketRate messages per second (bursts of
//     PacketBurst), joins at most MaxNamespaces namespaces, and is closed
//     after MaxRefusedConnects refused CONNECTs.
//   - At most 1024 packets and MaxQueuedBytes bytes wait for its handlers.
//   - At most MaxPendingAcks EmitWithAck calls wait on one socket.
package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// Options configure a Server. Zero fields take the defaults beside them.
type Options struct {
	Engine         engineio.Options // OnConnection is set by the Server
	ConnectTimeout time.Duration    // 45s: an Engine.IO session with no namespace by then is closed
	AckTimeout     time.Duration    // default timeout of EmitWithAck when ctx has no deadline: 0 = none

	// Limits a client cannot push past; see the package documentation.

	// AttachmentTimeout is how long the attachments of a binary packet may
	// take to arrive after it: 10s. A client sends them in the same write
	// as the packet; the time is for a slow link, not for a pause.
	AttachmentTimeout time.Duration
	// PacketRate and PacketBurst are the token bucket of Engine.IO messages
	// (packets and attachments) one connection may send: 200 per second,
	// bursts of 500. A browser app emitting at 60 Hz uses a third of the
	// rate; the burst covers socket.io-client flushing the emits it
	// buffered while reconnecting.
	PacketRate  float64
	PacketBurst int
	// MaxQueuedBytes bounds the bytes of the packets waiting for one
	// connection's handlers: 4 × Engine.MaxPayload (one packet alone is
	// always accepted).
	MaxQueuedBytes int64
	// MaxNamespaces bounds the namespaces one connection joins or is
	// joining: 32.
	MaxNamespaces int
	// MaxRefusedConnects is the number of CONNECTs refused (unknown
	// namespace or middleware error) after which the connection is closed:
	// 8.
	MaxRefusedConnects int
	// MaxPendingAcks bounds the EmitWithAck calls waiting on one socket:
	// 256. Beyond it EmitWithAck returns ErrTooManyAcks.
	MaxPendingAcks int

	// NewAdapter, when set, makes the Adapter of each namespace from the
	// namespace's in-memory adapter, which it wraps and delivers through (a
	// cluster: package redis or postgres). Nil: the MemoryAdapter alone.
	NewAdapter func(local *MemoryAdapter) Adapter
	// SocketData is what FetchSockets tells other nodes about a socket, in
	// its data field: never a secret. Nil: the socket's Data.
	SocketData func(s *Socket) any

	// OriginRefusal is the CONNECT_ERROR sent for every CONNECT of a
	// session whose opening request came from an Origin the engine does not
	// allow (Engine.AllowedOrigins; engineio.Handshake.OriginAllowed), before
	// any middleware runs. Nil: DefaultOriginRefusal. OnOriginRefused, when
	// set, is called with each socket so refused (to count and audit it), on
	// the connection's handler goroutine.
	OriginRefusal   *ConnectError
	OnOriginRefused func(s *Socket)

	// Logger receives handler panics; nil means slog.Default(). A handler
	// that panics closes its own connection only, as net/http confines a
	// panicking handler to its request.
	Logger *slog.Logger
}

// Server is a Socket.IO server. It is an http.Handler for the Socket.IO path
// and is safe for concurrent use.
type Server struct {
	opts   Options
	engine *engineio.Server

	closes [numCloseCodes]atomic.Uint64 // connections closed, by closeCode

	mu      sync.RWMutex
	nsps    map[string]*Namespace
	mws     []Middleware
	clients map[*client]struct{}
	closed  bool
}

// NewServer returns a Server with the main namespace "/" already created.
func NewServer(opts Options) *Server {
	s := newServer(opts)
	eopts := opts.Engine
	eopts.OnConnection = func(es *engineio.Socket) {
		c := s.accept(es)
		es.OnMessage(c.onMessage)
		es.OnClose(c.onClose)
	}
	s.engine = engineio.NewServer(eopts)
	return s
}

// newServer returns a Server without its Engine.IO server.
func newServer(opts Options) *Server {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 45 * time.Second
	}
	if opts.Engine.MaxPayload <= 0 {
		opts.Engine.MaxPayload = 1e6 // engineio's default, set here to size the limits below
	}
	if opts.AttachmentTimeout <= 0 {
		opts.AttachmentTimeout = 10 * time.Second
	}
	if opts.PacketRate <= 0 {
		opts.PacketRate = 200
	}
	if opts.PacketBurst <= 0 {
		opts.PacketBurst = 500
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = 4 * opts.Engine.MaxPayload
	}
	if opts.MaxNamespaces <= 0 {
		opts.MaxNamespaces = 32
	}
	if opts.MaxRefusedConnects <= 0 {
		opts.MaxRefusedConnects = 8
	}
	if opts.MaxPendingAcks <= 0 {
		opts.MaxPendingAcks = 256
	}
	s := &Server{opts: opts, nsps: make(map[string]*Namespace), clients: make(map[*client]struct{})}
	s.nsps["/"] = newNamespace(s, "/")
	return s
}

// ServeHTTP serves Engine.IO requests; mount the server at the Socket.IO
// path ("/socket.io/").
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.engine.ServeHTTP(w, r)
}

// Of returns the namespace with the given name, creating it. Clients asking
// for a namespace that was never created are refused with "Invalid namespace".
func (s *Server) Of(name string) *Namespace {
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nsps[name]
	if !ok {
		n = newNamespace(s, name)
		s.nsps[name] = n
	}
	return n
}

func (s *Server) namespace(name string) *Namespace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nsps[name]
}

// Use adds middleware that runs for every namespace, before the namespace's own.
func (s *Server) Use(mw Middleware) {
	s.mu.Lock()
	s.mws = append(s.mws, mw)
	s.mu.Unlock()
}

// Close disconnects every socket, with reason "server shutting down", and
// closes the Engine.IO server.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	for c := range clients {
		c.teardown("server shutting down")
	}
	if s.engine == nil {
		return nil
	}
	if err := s.engine.Close(); err != nil {
		return fmt.Errorf("close engine: %w", err)
	}
	return nil
}

// accept starts serving Socket.IO on the Engine.IO session c.
func (s *Server) accept(c conn) *client {
	cl := newClient(s, c)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cl.close("server shutting down")
		return cl
	}
	s.clients[cl] = struct{}{}
	s.mu.Unlock()
	return cl
}

func (s *Server) forget(c *client) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
}

// Stats counts the connections the server closed because the client broke
// a rule, by rule; each count only grows. Read it with Server.Stats, for
// metrics.
type Stats struct {
	// ParseErrors: a malformed packet, or binary data outside a binary
	// packet (disconnect reason "parse error").
	ParseErrors uint64
	// Attachments: a binary packet announcing more than MaxAttachments,
	// whose attachments exceed Engine.MaxPayload in total, or that were not
	// all sent within AttachmentTimeout.
	Attachments uint64
	// NamespaceViolations: a packet for a namespace the client has not
	// joined (or whose middleware is still running), a second CONNECT for
	// one, a CONNECT_ERROR from the client, or more than MaxNamespaces.
	NamespaceViolations uint64
	// RefusedConnects: MaxRefusedConnects CONNECTs refused.
	RefusedConnects uint64
	// PacketBudget: more messages than PacketRate and PacketBurst allow.
	PacketBudget uint64
	// QueueFull: more packets (1024) or bytes (MaxQueuedBytes) waiting for
	// the connection's handlers.
	QueueFull uint64
	// ConnectTimeouts: no namespace joined within ConnectTimeout.
	ConnectTimeouts uint64
	// HandlerPanics: a handler of the connection panicked.
	HandlerPanics uint64
}

// Stats returns the counts of connections closed, by reason.
func (s *Server) Stats() Stats {
	n := func(c closeCode) uint64 { return s.closes[c].Load() }
	return Stats{
		ParseErrors:         n(closeParse),
		Attachments:         n(closeAttachments),
		NamespaceViolations: n(closeNamespace),
		RefusedConnects:     n(closeRefused),
		PacketBudget:        n(closeBudget),
		QueueFull:           n(closeQueueFull),
		ConnectTimeouts:     n(closeConnectTimeout),
		HandlerPanics:       n(closePanic),
	}
}

// Middleware runs when a client asks to join a namespace, before the socket
// is connected (it may SetData and Join, not Emit). Returning a
// *ConnectError (or an error wrapping one) refuses the client with it; any
// other error refuses with {"message": err.Error()}. ctx is cancelled when
// the connection closes.
type Middleware func(ctx context.Context, s *Socket) error

// ConnectError is the payload of a CONNECT_ERROR packet. The client's
// connect_error listener receives an Error whose message is Message and whose
// data is Data.
type ConnectError struct {
	Message string
	Data    any // JSON-encoded; nil omits "data"
}

func (e *ConnectError) Error() string { return e.Message }

// Handshake is what the client sent when it opened the connection and joined
// the namespace.
type Handshake struct {
	engineio.Handshake
	Auth json.RawMessage // the CONNECT packet's auth payload; nil if none
}

// Event is an event received from a client.
type Event struct {
	Name string
	// Args are the event's arguments decoded from JSON (float64, string,
	// bool, nil, []any, map[string]any) with binary attachments as []byte
	// wherever they were placed.
	Args []any
}

// EventHandler handles an event. ack is nil when the client asked for no
// acknowledgement; otherwise calling it (once) sends the ACK with args.
type EventHandler func(s *Socket, ev Event, ack func(args ...any) error)
