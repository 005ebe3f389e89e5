package socketio

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// defaultAckTimeout bounds EmitWithAck of a BroadcastOperator when neither
// its Timeout, Options.AckTimeout nor ctx's deadline does: Node's adapters'
// request timeout.
const defaultAckTimeout = 5 * time.Second

// BroadcastOperator selects sockets of a namespace, on every node of the
// cluster, and acts on them, as Node's BroadcastOperator: the sockets in
// any of the rooms given to To (all when none was given), minus those in a
// room given to Except. It is an immutable value: each method returns a
// new one, so an operator can be kept and reused from any goroutine.
type BroadcastOperator struct {
	ns   *Namespace
	opts BroadcastOptions
}

// To adds rooms to the selection.
func (b BroadcastOperator) To(rooms ...string) BroadcastOperator {
	b.opts.Rooms = slices.Concat(b.opts.Rooms, rooms)
	return b
}

// Except excludes the sockets in any of rooms.
func (b BroadcastOperator) Except(rooms ...string) BroadcastOperator {
	b.opts.Except = slices.Concat(b.opts.Except, rooms)
	return b
}

// Local restricts the operation to this node's sockets.
func (b BroadcastOperator) Local() BroadcastOperator {
	b.opts.Flags.Local = true
	return b
}

// Volatile lets the event be dropped for a socket that cannot take it now
// (one whose CONNECT is not sent yet, on this node).
func (b BroadcastOperator) Volatile() BroadcastOperator {
	b.opts.Flags.Volatile = true
	return b
}

// Timeout bounds EmitWithAck.
func (b BroadcastOperator) Timeout(d time.Duration) BroadcastOperator {
	b.opts.Flags.Timeout = d
	return b
}

// Options returns the selection and flags, as the adapter receives them.
func (b BroadcastOperator) Options() BroadcastOptions { return b.opts }

// Emit sends an event to the selected sockets. It returns an encoding
// error, or the adapter's (a cluster bus that failed); errors of single
// sockets (one that has just disconnected) are ignored. With a SharedLog,
// an Emit that is not Local is appended to the log, and every node
// delivers it when it reads it back: the error is then the log's.
func (b BroadcastOperator) Emit(ctx context.Context, event string, args ...any) error {
	m, err := newCheckedMessage(event, args)
	if err != nil {
		return err
	}
	if log := b.ns.srv.shared; log != nil && !b.opts.Flags.Local {
		return b.appendShared(ctx, log, m)
	}
	return b.ns.adapter.Broadcast(ctx, m, b.opts)
}

// EmitWithAck sends an event to the selected sockets, each asked for an
// acknowledgement, and returns the arguments of every acknowledgement
// (from another node, its first argument only, as Node's adapters carry
// it). It waits for the recipient count of every node (ServerCount) and
// then for every recipient, for at most the operator's Timeout (else
// Options.AckTimeout, else ctx's deadline, else 5 s): then it returns what
// arrived and an error wrapping ErrRequestTimeout, or ctx's error.
func (b BroadcastOperator) EmitWithAck(ctx context.Context, event string, args ...any) ([][]any, error) {
	m, err := newCheckedMessage(event, args)
	if err != nil {
		return nil, err
	}
	opts := b.opts
	if opts.Flags.Timeout <= 0 {
		opts.Flags.Timeout = b.ns.srv.opts.AckTimeout
	}
	if opts.Flags.Timeout <= 0 {
		opts.Flags.Timeout = defaultAckTimeout
		if d, ok := ctx.Deadline(); ok {
			opts.Flags.Timeout = max(time.Until(d), time.Millisecond)
		}
	}
	servers := 1
	if !opts.Flags.Local {
		if servers, err = b.ns.adapter.ServerCount(ctx); err != nil {
			return nil, fmt.Errorf("socketio: broadcast with ack: count servers: %w", err)
		}
	}
	col := &ackCollector{servers: servers, done: make(chan struct{})}
	timer := time.NewTimer(opts.Flags.Timeout)
	defer timer.Stop()
	if err := b.ns.adapter.BroadcastWithAck(ctx, m, opts, col.count, col.ack); err != nil {
		return nil, err
	}
	select {
	case <-col.done:
		return col.results(), nil
	case <-timer.C:
		got, want := col.progress()
		return col.results(), fmt.Errorf("socketio: broadcast with ack: %d of %d acknowledgements in %v: %w", got, want, opts.Flags.Timeout, ErrRequestTimeout)
	case <-ctx.Done():
		return col.results(), fmt.Errorf("socketio: broadcast with ack: %w", ctx.Err())
	}
}

// ackCollector gathers the answers of a broadcast with acknowledgements.
type ackCollector struct {
	servers int

	mu       sync.Mutex
	answered int // servers that gave their recipient count
	expected int
	acks     [][]any
	done     chan struct{} // closed when every server and recipient answered
	closed   bool
}

func (c *ackCollector) count(n int) {
	c.mu.Lock()
	c.answered++
	c.expected += n
	c.checkLocked()
	c.mu.Unlock()
}

func (c *ackCollector) ack(args []any) {
	c.mu.Lock()
	if !c.closed {
		c.acks = append(c.acks, args)
		c.checkLocked()
	}
	c.mu.Unlock()
}

func (c *ackCollector) checkLocked() {
	if !c.closed && c.answered >= c.servers && len(c.acks) >= c.expected {
		c.closed = true
		close(c.done)
	}
}

func (c *ackCollector) progress() (got, want int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acks), c.expected
}

func (c *ackCollector) results() [][]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true // later acks are not appended: the slice is the caller's
	return slices.Clip(c.acks)
}

// SocketsJoin makes the selected sockets join rooms.
func (b BroadcastOperator) SocketsJoin(ctx context.Context, rooms ...string) error {
	return b.ns.adapter.AddSockets(ctx, b.opts, rooms)
}

// SocketsLeave makes the selected sockets leave rooms.
func (b BroadcastOperator) SocketsLeave(ctx context.Context, rooms ...string) error {
	return b.ns.adapter.DelSockets(ctx, b.opts, rooms)
}

// DisconnectSockets disconnects the selected sockets as Socket.Disconnect
// does (the client does not reconnect), or with close as Socket.Close
// (their connections are closed too).
func (b BroadcastOperator) DisconnectSockets(ctx context.Context, close bool) error {
	return b.ns.adapter.DisconnectSockets(ctx, b.opts, close)
}

// FetchSockets describes the selected sockets of every node.
func (b BroadcastOperator) FetchSockets(ctx context.Context) ([]SocketInfo, error) {
	return b.ns.adapter.FetchSockets(ctx, b.opts)
}
