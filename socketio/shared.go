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
	if rp, ok := b.ns.adapter.(RemotePublisher); ok {
		if err := rp.PublishRemote(ctx, m, b.opts); err != nil {
			return fmt.Errorf("socketio: broadcast: publish to the nodes outside the shared log: %w", err)
		}
	}
	return nil
}

// A RemotePublisher is an adapter that, with a SharedLog, also reaches the
// nodes that do not read the log (Node servers on a pub/sub adapter): a
// broadcast appended to the log is published to them as well. The nodes
// that read the log must skip what it publishes.
type RemotePublisher interface {
	PublishRemote(ctx context.Context, m *Message, opts BroadcastOptions) error
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
	srv.following.Go(func() { n.refreshLive(srv.followCtx) })
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
			n.srv.recoveries.readGaps.Add(1)
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

// waitFollowing waits (at most waitReady, or ctx) for the namespace's
// follower of a SharedLog to know where the log stands.
func (n *Namespace) waitFollowing(ctx context.Context) error {
	t := time.NewTimer(waitReady)
	defer t.Stop()
	select {
	case <-n.ready:
		return nil
	case <-t.C:
		return errNotFollowing
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliveredPos returns the offset this node has delivered the namespace's
// entries up to, once its follower has started (waitFollowing).
func (n *Namespace) deliveredPos(ctx context.Context) (string, error) {
	if err := n.waitFollowing(ctx); err != nil {
		return "", err
	}
	n.seqMu.Lock()
	defer n.seqMu.Unlock()
	return n.delivered, nil
}

// logHead is the offset up to which a socket registering or dropping now
// has had its chance to receive the namespace's events: with a SharedLog,
// what this node has delivered (its follower started), else the log's
// head. ns.seqMu is held.
func (n *Namespace) logHead(ctx context.Context) (string, error) {
	if n.srv.shared != nil {
		return n.delivered, nil
	}
	return n.srv.rec.Log.Head(ctx, n.name)
}

// A recovery socket of a SharedLog has a live record in the log while it
// is connected: a SavedSocket without LastSent, saved when it connects,
// again within a second of a change of its rooms, and every quarter of
// the window. Should its node die without saving it, the socket can still
// be recovered on another node: everything after the client's offset that
// reaches its rooms is what it missed, since its node delivered in the
// log's order. When it drops, the usual record replaces the live one; when
// it leaves, the live record is forgotten.

// liveRefresh is how often a namespace saves the live records of its
// sockets whose rooms changed.
const liveRefresh = time.Second

// liveChanged notes that the rooms of s changed: its live record is saved
// again at the next refresh. The MemoryAdapter's mu is held. The rooms
// joined while it connects are in the record saved at its CONNECT.
func (n *Namespace) liveChanged(s *Socket) {
	if n.srv.shared == nil || !s.logging || s.state.Load() != stateConnected {
		return
	}
	n.liveMu.Lock()
	if n.liveDirty == nil {
		n.liveDirty = make(map[*Socket]struct{})
	}
	n.liveDirty[s] = struct{}{}
	n.liveMu.Unlock()
}

// refreshLive saves, until ctx ends, the live records of the sockets whose
// rooms changed, each second, and of every live socket each quarter of the
// window, before their records expire.
func (n *Namespace) refreshLive(ctx context.Context) {
	t := time.NewTicker(liveRefresh)
	defer t.Stop()
	every := max(int(n.srv.rec.Window/4/liveRefresh), 1)
	for tick := 1; ; tick++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		n.liveMu.Lock()
		dirty := n.liveDirty
		n.liveDirty = nil
		n.liveMu.Unlock()
		if tick%every == 0 {
			n.recMu.Lock()
			for _, s := range n.live {
				if dirty == nil {
					dirty = make(map[*Socket]struct{})
				}
				dirty[s] = struct{}{}
			}
			n.recMu.Unlock()
		}
		for s := range dirty {
			if ctx.Err() != nil {
				return
			}
			s.saveLive()
		}
	}
}

// saveLive saves the live record of s, unless it has closed.
func (s *Socket) saveLive() {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if s.liveDone || s.state.Load() != stateConnected {
		return
	}
	rec := s.ns.srv.rec
	sv := SavedSocket{
		Namespace: s.ns.name, PID: s.pid, ID: s.id, Key: s.recKey,
		Rooms: s.ns.mem.Rooms(s.id), Head: s.connHead,
		Expires: time.Now().Add(rec.Window),
	}
	if rec.State != nil {
		sv.State = rec.State(s)
	}
	if err := rec.Log.Save(s.Context(), sv); err != nil {
		if s.Context().Err() == nil {
			s.client.logger().Error("socketio: saving the live record of a socket for recovery failed", "err", err)
		}
		return
	}
	s.liveSaved = true
}

// endLive ends the live record of s as it closes: saved replaces it (the
// socket dropped), else it is forgotten (the socket left: not
// recoverable).
func (s *Socket) endLive(saved *SavedSocket) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	s.liveDone = true
	ctx := context.Background()
	log := s.ns.srv.shared
	switch {
	case saved != nil:
		if err := log.Save(ctx, *saved); err != nil {
			s.client.logger().Error("socketio: saving a socket for recovery failed", "err", err)
		}
	case s.liveSaved:
		if err := log.Forget(ctx, s.ns.name, s.pid); err != nil {
			s.client.logger().Error("socketio: forgetting the live record of a socket failed", "err", err)
		}
	}
}
