// Package socketio is a Socket.IO v5 server (the protocol of socket.io 3 and
// 4) on top of package engineio: packets, namespaces, middleware, events and
// acknowledgements, binary attachments, rooms and broadcasts. The official
// socket.io-client v4 uses it unchanged. It knows nothing of sessions.
package socketio

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// Options configure a Server. Zero fields take the defaults beside them.
type Options struct {
	Engine         engineio.Options // OnConnection is set by the Server
	ConnectTimeout time.Duration    // 45s: an Engine.IO session with no namespace by then is closed
	AckTimeout     time.Duration    // default timeout of EmitWithAck when ctx has no deadline: 0 = none
}

// Server is a Socket.IO server. It is an http.Handler for the Socket.IO path
// and is safe for concurrent use.
type Server struct{}

// NewServer returns a Server with the main namespace "/" already created.
func NewServer(opts Options) *Server { panic("unimplemented") }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { panic("unimplemented") }

// Of returns the namespace with the given name, creating it. Clients asking
// for a namespace that was never created are refused with "Invalid namespace".
func (s *Server) Of(name string) *Namespace { panic("unimplemented") }

// Use adds middleware that runs for every namespace, before the namespace's own.
func (s *Server) Use(mw Middleware) { panic("unimplemented") }

// Close disconnects every socket and closes the Engine.IO server.
func (s *Server) Close() error { panic("unimplemented") }

// Middleware runs when a client asks to join a namespace, before the socket
// is connected. Returning a *ConnectError refuses the client with it; any
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

// Namespace is a Socket.IO namespace. Its methods are safe for concurrent use;
// register middleware and handlers before clients connect.
type Namespace struct{}

func (n *Namespace) Name() string                                  { panic("unimplemented") }
func (n *Namespace) Use(mw Middleware)                             { panic("unimplemented") }
func (n *Namespace) OnConnect(h func(s *Socket))                   { panic("unimplemented") }
func (n *Namespace) OnDisconnect(h func(s *Socket, reason string)) { panic("unimplemented") }

// On sets the handler for an event sent by any socket of the namespace.
func (n *Namespace) On(event string, h EventHandler) { panic("unimplemented") }

// To returns a broadcast to the sockets in any of rooms.
func (n *Namespace) To(rooms ...string) *Broadcast { panic("unimplemented") }

// Emit sends an event to every socket of the namespace.
func (n *Namespace) Emit(event string, args ...any) error { panic("unimplemented") }

// Sockets returns the connected sockets in any of rooms (all when none given).
func (n *Namespace) Sockets(rooms ...string) []*Socket { panic("unimplemented") }

// Broadcast is an emit to a set of rooms, minus the sockets in Except rooms.
// It encodes the packet once for all recipients.
type Broadcast struct{}

func (b *Broadcast) To(rooms ...string) *Broadcast        { panic("unimplemented") }
func (b *Broadcast) Except(rooms ...string) *Broadcast    { panic("unimplemented") }
func (b *Broadcast) Emit(event string, args ...any) error { panic("unimplemented") }

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

// Socket is a client connected to one namespace. Its methods are safe for
// concurrent use.
type Socket struct{}

func (s *Socket) ID() string            { panic("unimplemented") }
func (s *Socket) Namespace() *Namespace { panic("unimplemented") }
func (s *Socket) Handshake() *Handshake { panic("unimplemented") }
func (s *Socket) Transport() string     { panic("unimplemented") }
func (s *Socket) Data() any             { panic("unimplemented") }
func (s *Socket) SetData(v any)         { panic("unimplemented") }
func (s *Socket) Join(rooms ...string)  { panic("unimplemented") }
func (s *Socket) Leave(rooms ...string) { panic("unimplemented") }
func (s *Socket) Rooms() []string       { panic("unimplemented") }
func (s *Socket) Connected() bool       { panic("unimplemented") }

// Emit sends an event. Arguments are JSON-encoded; []byte values, at any
// depth of maps and slices, travel as binary attachments.
func (s *Socket) Emit(event string, args ...any) error { panic("unimplemented") }

// EmitWithAck sends an event and waits for the client's acknowledgement, or
// ctx (or Options.AckTimeout) to end.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	panic("unimplemented")
}

// Disconnect disconnects the socket from its namespace as Node's
// socket.disconnect(close) does: the client sees "io server disconnect" and
// does not reconnect. With close, the underlying connection is closed too,
// after everything queued before it has been written.
func (s *Socket) Disconnect(close bool) error { panic("unimplemented") }
