package socketio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiongate/sessiongate/internal/backoff"
)

// This file is connection state recovery over a SharedLog: the log is the
// cluster's transport of the events it logs. A broadcast is appended, and
// each node's follower of the namespace reads the log back and delivers
// what it reads, in the log's order, under the namespace's seqMu. So the
// offsets a socket receives are in the log's order on every node, and the
// position a node has delivered up to (Namespace.delivered) tells exactly
// which entries a socket had the chance to receive: that is the Head saved
// with a socket that drops, the Until of a Restore, and the start of what
// a connecting socket is held.

// followerBackoff paces a follower's retries while the log fails.
var followerBackoff = backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}

// waitReady bounds how long a connecting recovery socket waits for its
// namespace's follower to know where the log stands (at the start of the
// namespace, or while the log is unreachable).
const waitReady = 5 * time.Second

// appendShared appends a broadcast to the shared log: it is delivered, on
// every node and on this one, when the nodes' followers read it.
func (b BroadcastOperator) appendShared(ctx context.Context, log SharedLog, m *Message) error {
	enc, err := m.encoded(b.ns.name)
	if err != nil {
		return err
	}
	e := LogEntry{
		Rooms: b.opts.Rooms, Except: b.opts.Except,
		Data: enc.packet.Data, Attachments: enc.bins,
		Volatile: b.opts.Flags.Volatile,
	}
	if _, err := log.Append(ctx, b.ns.name, e); err != nil {
		return fmt.Errorf("socketio: broadcast: shared recovery log: %w", err)
	}
	return nil
}

// startFollowing starts the namespace's follower of the server's shared
// log, if it has one; Server.closeRest stops it.
func (n *Namespace) startFollowing() {
	srv := n.srv
	if srv.shared == nil {
		return
	}
	n.ready = make(chan struct{})
	srv.following.Go(func() { n.follow(srv.followCtx, srv.shared) })
}

// follow delivers the namespace's entries of the shared log, from its head
// when the follower starts, until ctx ends. While the log fails it retries,
// and nothing it carries is delivered meanwhile.
func (n *Namespace) follow(ctx context.Context, log SharedLog) {
	bo := followerBackoff
	var pos string
	for {
		h, err := log.Head(ctx, n.name)
		if err == nil {
			pos = h
			break
		}
		if ctx.Err() != nil {
			return
		}
		n.srv.logger().Error("socketio: shared recovery log: reading its head failed", "namespace", n.name, "err", err)
		if !bo.Wait(ctx) {
			return
		}
	}
	bo.Reset()
	n.seqMu.Lock()
	n.delivered = pos
	n.seqMu.Unlock()
	close(n.ready)
	for {
		es, upTo, err := log.Read(ctx, n.name, pos)
		if ctx.Err() != nil {
			return
		}
		n.deliverShared(es, upTo)
		if upTo != "" {
			pos = upTo
		}
		switch {
		case err == nil:
			bo.Reset()
		case reasonOf(err) == RecoveryExpired:
			// The log dropped entries this node had not read: its sockets
			// missed them, live. Rare (a node stalled for longer than the
			// log's bounds); said loudly, and reading goes on.
			n.srv.logger().Error("socketio: shared recovery log: entries were dropped before this node read them; its sockets missed them", "namespace", n.name, "after", pos)
		default:
			n.srv.logger().Error("socketio: shared recovery log: reading failed", "namespace", n.name, "err", err)
			if !bo.Wait(ctx) {
				return
			}
		}
	}
}

// deliverShared delivers entries read from the shared log to this node's
// sockets, in order, and moves the namespace's delivered position to upTo.
func (n *Namespace) deliverShared(es []LogEntry, upTo string) {
	n.seqMu.Lock()
	defer n.seqMu.Unlock()
	for i := range es {
		e := &es[i]
		p := entryPacket(n.name, e)
		enc := &encodedEvent{packet: p, bins: e.Attachments, msgs: p.Messages(e.Attachments)}
		opts := BroadcastOptions{Rooms: e.Rooms, Except: e.Except}
		if e.Volatile {
			opts.Flags.Volatile = true
			n.mem.deliver(enc, opts, "", true)
			continue
		}
		n.mem.deliver(enc, opts, e.Offset, false)
		n.delivered = e.Offset
	}
	if upTo != "" {
		n.delivered = upTo
	}
}

// errNotFollowing: the namespace's follower does not know the log's head
// yet (the log has not answered since the namespace started).
var errNotFollowing = errors.New("socketio: shared recovery log: not followed yet")

// deliveredPos returns the offset this node has delivered the namespace's
// entries up to, waiting (at most waitReady, or ctx) for its follower to
// start.
func (n *Namespace) deliveredPos(ctx context.Context) (string, error) {
	t := time.NewTimer(waitReady)
	defer t.Stop()
	select {
	case <-n.ready:
	case <-t.C:
		return "", errNotFollowing
	case <-ctx.Done():
		return "", ctx.Err()
	}
	n.seqMu.Lock()
	defer n.seqMu.Unlock()
	return n.delivered, nil
}
