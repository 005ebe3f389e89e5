package socketio

import (
	"context"
	"errors"
	"time"
)

// An Adapter keeps the rooms of one namespace and carries its broadcasts and
// room operations: to the sockets of this process with the in-memory
// adapter (MemoryAdapter, the default), or to every node of a cluster with
// an adapter of package redis or postgres, which wraps the namespace's
// MemoryAdapter and delivers through it. Its methods are safe for
// concurrent use.
//
// Room names are the application's; a socket's id is also the name of a
// room holding only it, which an adapter resolves without storing it.
type Adapter interface {
	// AddAll puts the local socket id in rooms. When it returns, a
	// broadcast to any of them sent afterwards from any node reaches the
	// socket (a cluster adapter has subscribed by then); ctx bounds that
	// wait.
	AddAll(ctx context.Context, id string, rooms []string) error
	// Del takes the local socket id out of rooms; DelAll out of every room
	// (it disconnected).
	Del(id string, rooms []string)
	DelAll(id string)
	// Rooms returns the rooms of the local socket id, its own id excluded.
	Rooms(id string) []string

	// Broadcast sends m to the sockets opts selects, on every node (on this
	// one only with opts.Flags.Local).
	Broadcast(ctx context.Context, m *Message, opts BroadcastOptions) error
	// BroadcastWithAck sends m asking each recipient for an
	// acknowledgement. clientCount is called once per node that answered,
	// with its number of recipients; ack with each acknowledgement's
	// arguments. Both may be called from other goroutines until
	// opts.Flags.Timeout has passed after the call.
	BroadcastWithAck(ctx context.Context, m *Message, opts BroadcastOptions, clientCount func(n int), ack func(args []any)) error

	// The emitter's operations, on every node: the sockets opts selects
	// join rooms, leave rooms, or are disconnected (close: their connection
	// is closed too).
	AddSockets(ctx context.Context, opts BroadcastOptions, rooms []string) error
	DelSockets(ctx context.Context, opts BroadcastOptions, rooms []string) error
	DisconnectSockets(ctx context.Context, opts BroadcastOptions, close bool) error

	// Cross-node requests. Each waits at most the adapter's request timeout
	// (and ctx) and then fails with an error wrapping ErrRequestTimeout.

	// FetchSockets returns the sockets opts selects on every node.
	FetchSockets(ctx context.Context, opts BroadcastOptions) ([]SocketInfo, error)
	// AllRooms returns the rooms of every node, socket-id rooms included
	// as Node's adapters report them.
	AllRooms(ctx context.Context) ([]string, error)
	// ServerSideEmit sends m to the other nodes' OnServerEvent handlers;
	// ServerSideEmitWithAck returns the first acknowledgement argument of
	// each other node.
	ServerSideEmit(ctx context.Context, m *Message) error
	ServerSideEmitWithAck(ctx context.Context, m *Message) ([]any, error)
	// ServerCount returns the number of nodes serving the namespace, this
	// one included.
	ServerCount(ctx context.Context) (int, error)

	// Close stops the adapter: it leaves the cluster (unsubscribes).
	Close() error
}

// ErrRequestTimeout is wrapped by the error of a cross-node request that did
// not get every node's answer in time.
var ErrRequestTimeout = errors.New("socketio: cluster request timed out")

// BroadcastOptions select sockets: those in any of Rooms (every socket of the
// namespace when Rooms is empty) and in none of Except.
type BroadcastOptions struct {
	Rooms  []string
	Except []string
	Flags  BroadcastFlags
}

// BroadcastFlags modify a broadcast, as the flags of Node's broadcast
// operator (and of the Redis adapter's wire format) do.
type BroadcastFlags struct {
	// Volatile: the event may be dropped for a socket whose transport
	// cannot take it now.
	Volatile bool
	// Local: delivered by this node only, never published.
	Local bool
	// Timeout bounds a BroadcastWithAck; 0 means the server's AckTimeout.
	Timeout time.Duration
}

// SocketInfo describes a socket of the cluster as FetchSockets returns it.
// It never holds a header or a cookie: Handshake is reduced to what Node's
// RemoteSocket code reads, and Data is what Options.SocketData gives.
type SocketInfo struct {
	ID        string
	Rooms     []string // its own id first, as Node's adapters list them
	Data      any
	Handshake SocketHandshake
	Local     bool // on this node
}

// SocketHandshake is the part of a handshake that may travel to other
// nodes: no headers (Node's adapter sends them all, cookies included).
type SocketHandshake struct {
	Time    string            // as Node's handshake.time (Date.toString)
	Issued  int64             // milliseconds since the epoch
	Address string            // the peer's IP
	Secure  bool              // TLS
	URL     string            // the request URI of the Engine.IO handshake
	Query   map[string]string // its query
}
