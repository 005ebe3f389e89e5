// Package socketio is a Socket.IO v5 server (the protocol of socket.io 3 and
// 4) on top of package engineio: packets, namespaces, connect hooks, events
// and acknowledgements, binary attachments, rooms and broadcasts. The
// official socket.io-client v4 uses it unchanged. It knows nothing of
// sessions.
//
// # Connecting
//
// A client asking to join a namespace runs its OnConnecting hooks
// (ConnectHandler, after centrifuge's): each may refuse it (CONNECT_ERROR)
// or give what the socket starts with — rooms, values in its context
// (Socket.Context, cancelled when it disconnects), Data. The rooms are
// joined through the namespace's Adapter before the CONNECT packet is
// sent, so a broadcast sent after the client saw itself connected reaches
// it, and none reaches it before its CONNECT. OnConnect handlers run after
// the CONNECT; OnDisconnect handlers get a Reason.
//
// The verbs say what the client does next: Socket.Disconnect leaves the
// namespace and Socket.Close closes the connection (the client sees "io
// server disconnect" and does not reconnect); Socket.Drop cuts the
// transport (the client reconnects). Server.Shutdown disconnects everyone
// (the clients reconnect elsewhere) and waits for the OnDisconnect
// handlers.
//
// # Rooms, broadcasts and clusters
//
// Rooms and broadcasts go through the namespace's Adapter: the
// MemoryAdapter for one process, or a cluster adapter (Options.NewAdapter)
// that wraps it and carries broadcasts and room operations to the other
// nodes. A BroadcastOperator (Namespace.To, Except, Local) selects sockets
// on every node and emits to them, with or without acknowledgements, makes
// them join or leave rooms, disconnects them or describes them
// (FetchSockets, which never carries a header: see SocketInfo). A broadcast
// is encoded once per namespace and its bytes are shared by every local
// recipient. Package socketio/adaptertest is the conformance suite of
// adapters.
//
// # Handlers
//
// The handlers of one connection (connect hooks, OnConnect, event
// handlers, OnDisconnect, for all its namespaces) run one at a time, in the order the
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
// # Connection state recovery
//
// With Options.Recovery, as socket.io 4.6+ speaks it: the CONNECT of a
// recovery socket carries a "pid"; each EVENT sent to it that asks for no
// acknowledgement and is not volatile is appended to the RecoveryLog and
// carries its offset as its last argument (a volatile one, not logged, the
// last offset sent, so that a client can always take the last argument
// off), and the RecoveryOptions.OffsetEvent follows each CONNECT. A client
// that lost its connection sends pid and offset back in its next CONNECT's
// auth and, when recovery succeeds, gets the same socket id, its rooms and
// every event it missed, in order, written before the CONNECT. Unlike
// Node's, recovery never skips the OnConnecting hooks (they see
// ConnectEvent.Recovered), and a pid is bound to the RecoveryOptions.Key
// of the socket it was issued to. An old socket still open with that pid
// (a half-open connection) is closed, and its OnDisconnect handlers have
// returned, before its id is reused. Appends and sends to recovery sockets
// of a namespace are ordered by one lock, taken only while a recovery
// socket is connected or may still be recovered.
//
// A cluster shares its log when it is a SharedLog (package redis'
// StreamLog): a broadcast is appended to it, every node delivers what it
// reads back in the log's order, and a socket that dropped on one node,
// or whose node died, is recovered on any other (see SharedLog).
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
//     namespace is joined once its connect hooks have let the client in and
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
	"errors"
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
	// namespace or connect hook error) after which the connection is closed:
	// 8.
	MaxRefusedConnects int
	// MaxPendingAcks bounds the EmitWithAck calls waiting on one socket:
	// 256. Beyond it EmitWithAck returns ErrTooManyAcks.
	MaxPendingAcks int

	// NewAdapter, when set, makes the Adapter of each namespace from the
	// namespace's in-memory adapter, which it wraps and delivers through (a
	// cluster: package redis or postgres). Nil: the MemoryAdapter alone.
	// Server.Close and Shutdown close the adapters.
	NewAdapter func(local *MemoryAdapter) Adapter
	// SocketData is what FetchSockets tells other nodes about a socket, in
	// its data field: never a secret. Nil: the socket's Data.
	SocketData func(s *Socket) any

	// OriginRefusal is the CONNECT_ERROR sent for every CONNECT of a
	// session whose opening request came from an Origin the engine does not
	// allow (Engine.AllowedOrigins; engineio.Handshake.OriginAllowed),
	// before any OnConnecting hook runs. Nil: DefaultOriginRefusal.
	// OnOriginRefused, when set, is called with each socket so refused (to
	// count and audit it), on the connection's handler goroutine.
	OriginRefusal   *ConnectError
	OnOriginRefused func(s *Socket)

	// Recovery, when set, turns on connection state recovery (see
	// RecoveryOptions). Nil: off, as Node's default.
	Recovery *RecoveryOptions

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

	rec        *RecoveryOptions // opts.Recovery with its defaults; nil: off
	recoveries recoveryCounters
	// shared is rec.Log when it is a SharedLog: the namespaces' followers
	// (until stopFollowing) deliver what it carries (shared.go).
	shared        SharedLog
	followCtx     context.Context
	stopFollowing context.CancelFunc
	following     sync.WaitGroup

	// disconnecting counts the OnDisconnect calls queued and not yet
	// done, for Shutdown.
	disconnecting pendingCount

	mu         sync.RWMutex
	nsps       map[string]*Namespace
	connecting []ConnectHandler
	clients    map[*client]struct{}
	closed     bool
	adapters   bool // closed
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
	if r := opts.Recovery; r != nil && r.Log != nil {
		rc := *r
		if rc.Window <= 0 {
			rc.Window = 2 * time.Minute
		}
		if rc.MaxMessages <= 0 {
			rc.MaxMessages = 1000
		}
		if rc.MaxBytes <= 0 {
			rc.MaxBytes = 1 << 20
		}
		if rc.OffsetEvent == "" {
			rc.OffsetEvent = "recovery"
		}
		if rc.WaitOld <= 0 {
			rc.WaitOld = 5 * time.Second
		}
		s.rec = &rc
		if sl, ok := rc.Log.(SharedLog); ok {
			s.shared = sl
		}
	}
	s.followCtx, s.stopFollowing = context.WithCancel(context.Background())
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

// OnConnecting adds a hook that runs for every namespace, before the
// namespace's own (see ConnectHandler).
func (s *Server) OnConnecting(h ConnectHandler) {
	s.mu.Lock()
	s.connecting = append(s.connecting, h)
	s.mu.Unlock()
}

// Shutdown stops the server gracefully: it refuses new connections,
// disconnects every socket with ReasonServerShutdown (their transports
// close after what was queued is written; clients reconnect, to another
// node of a cluster), waits until every OnDisconnect handler has returned
// or ctx is done, then closes the namespaces' adapters and the Engine.IO
// server. It returns ctx's error if ctx ended first (the rest is done
// anyway).
func (s *Server) Shutdown(ctx context.Context) error {
	for c := range s.stop() {
		c.close(ReasonServerShutdown)
	}
	werr := s.disconnecting.wait(ctx)
	err := s.closeRest()
	if werr != nil {
		return fmt.Errorf("socketio: shutdown: %w", werr)
	}
	return err
}

// Close disconnects every socket, with ReasonServerShutdown, closes the
// adapters and the Engine.IO server at once, without waiting for the
// OnDisconnect handlers (see Shutdown).
func (s *Server) Close() error {
	for c := range s.stop() {
		c.teardown(ReasonServerShutdown)
	}
	return s.closeRest()
}

// stop refuses new connections and returns the open ones.
func (s *Server) stop() map[*client]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	clients := s.clients
	s.clients = nil
	return clients
}

// closeRest stops the followers of a shared log, closes the adapters
// (once) and the engine.
func (s *Server) closeRest() error {
	s.stopFollowing()
	s.following.Wait()
	s.mu.Lock()
	var adapters []Adapter
	if !s.adapters {
		s.adapters = true
		for _, n := range s.nsps {
			adapters = append(adapters, n.adapter)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, a := range adapters {
		if err := a.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close adapter: %w", err))
		}
	}
	if s.engine != nil {
		if err := s.engine.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close engine: %w", err))
		}
	}
	return errors.Join(errs...)
}

// pendingCount counts work in progress and lets a caller wait for none.
type pendingCount struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil when no one waits
}

func (p *pendingCount) add() {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
}

func (p *pendingCount) done() {
	p.mu.Lock()
	p.n--
	if p.n == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
}

func (p *pendingCount) wait(ctx context.Context) error {
	p.mu.Lock()
	if p.n == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept starts serving Socket.IO on the Engine.IO session c.
func (s *Server) accept(c conn) *client {
	cl := newClient(s, c)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cl.close(ReasonServerShutdown)
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
	// joined (or whose connect hooks are still running), a second CONNECT for
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

// ConnectHandler is a hook run when a client asks to join a namespace,
// before the socket is connected, after centrifuge's OnConnecting. ev.Socket
// is not connected yet: it may be read (ID, Handshake, Context), not used to
// Emit or Join. ctx is the socket's context so far; it is cancelled when
// the connection closes (the client left).
//
// The hook returns what the socket starts with. The replies of all hooks
// are merged in order: their Rooms are joined (through the adapter) before
// CONNECT is sent, so that a broadcast sent after the client saw it
// connected reaches it; a non-nil Context replaces the socket's context
// for the next hooks and for Socket.Context (derive it from ctx, as with
// context.WithValue: its values are kept, its cancellation is the
// socket's); a non-nil Data is set as the socket's Data.
//
// Returning a *ConnectError (or an error wrapping one) refuses the client
// with it; any other error refuses with {"message": err.Error()}. The
// hooks that follow do not run.
type ConnectHandler func(ctx context.Context, ev ConnectEvent) (ConnectReply, error)

// ConnectEvent is a client asking to join a namespace.
type ConnectEvent struct {
	Socket *Socket // not connected yet
	// Recovered is set when the socket is a dropped one being recovered
	// (Options.Recovery): its id is the old one, and if the hooks let it
	// in, it starts in the saved rooms (see ConnectReply.RestoreRooms)
	// with the events it missed. A hook that refuses it refuses the
	// recovery too: the saved socket is gone and its events never sent.
	Recovered *Recovered
}

// ConnectReply is what an OnConnecting hook gives the socket it lets in.
type ConnectReply struct {
	Rooms   []string        // joined before CONNECT is sent
	Context context.Context // nil: unchanged
	Data    any             // nil: unchanged
	// RestoreRooms, for a socket being recovered, are the saved rooms it
	// rejoins (beside Rooms): nil keeps them all, the last hook to set it
	// decides.
	RestoreRooms []string
}

// Reason is why a socket disconnected, as Node's server names it in the
// "disconnect" event.
type Reason string

// The reasons OnDisconnect handlers see, with what the client does next.
const (
	// ReasonServerNamespaceDisconnect: Socket.Disconnect or Close (or the
	// emitter's disconnectSockets); the client sees "io server disconnect"
	// and does not reconnect.
	ReasonServerNamespaceDisconnect Reason = "server namespace disconnect"
	// ReasonClientNamespaceDisconnect: the client left the namespace
	// (socket.disconnect() in the browser).
	ReasonClientNamespaceDisconnect Reason = "client namespace disconnect"
	// ReasonTransportClose: the client closed the connection (page closed,
	// network gone with a clean close); it may reconnect.
	ReasonTransportClose Reason = "transport close"
	// ReasonPingTimeout: the client stopped answering pings; it reconnects
	// if it is still there.
	ReasonPingTimeout Reason = "ping timeout"
	// ReasonTransportError: the transport failed (or the client's handler
	// queue overflowed); the client reconnects.
	ReasonTransportError Reason = "transport error"
	// ReasonForcedClose: the server cut the connection without DISCONNECT
	// (Socket.Drop, a handler panic); the client reconnects.
	ReasonForcedClose Reason = "forced close"
	// ReasonForcedServerClose: the client broke a namespace or rate rule
	// and was cut; it reconnects (and is cut again if it persists).
	ReasonForcedServerClose Reason = "forced server close"
	// ReasonParseError: the client sent a malformed packet.
	ReasonParseError Reason = "parse error"
	// ReasonServerShutdown: Server.Shutdown or Close; the client, seeing
	// its transport close, reconnects (to another node of a cluster).
	ReasonServerShutdown Reason = "server shutting down"
	// ReasonConnectTimeout: no namespace joined within ConnectTimeout.
	ReasonConnectTimeout Reason = "connect timeout"
)

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
