package gateway

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/internal/presence"
	"github.com/sessiongate/sessiongate/socketio"
)

// Presence (contract §15): the members of the rooms matching
// Config.PresenceRooms are users, not sockets, on every node; each node
// tells its own sockets in such a room of the changes, coalesced and
// debounced by package internal/presence.
const (
	// EventPresence is sent to the sockets of a presence room:
	// {"room","joined":[…],"left":[…],"count":N,"truncated"?:true}.
	EventPresence = "presence"
	// PresenceGossipEvent is the server-side event (ServerSideEmit) the
	// nodes of a cluster exchange their presence state with; its one
	// argument is the JSON text of a presence.Message.
	PresenceGossipEvent = "sessiongate:presence"
	// MaxPresenceRooms is the most presence rooms one node tracks (its
	// own and those other nodes report); past it, new rooms have no
	// presence on this node until others empty (counted in
	// PresenceStats.Dropped).
	MaxPresenceRooms = presence.DefaultMaxRooms
	// DefaultPresenceLeaveDelay, DefaultPresenceMaxMembers and
	// DefaultPresenceTTL are the presence settings' defaults.
	DefaultPresenceLeaveDelay = presence.DefaultLeaveDelay
	DefaultPresenceMaxMembers = presence.DefaultMaxMembers
	DefaultPresenceTTL        = presence.DefaultTTL
)

// presenceSendTimeout bounds one gossip message's publication on the bus.
const presenceSendTimeout = 5 * time.Second

// PresenceSnapshot is who is in a presence room now, on every node.
type PresenceSnapshot struct {
	Users       []string `json:"users"` // members, at most the limit asked for
	Count       int      `json:"count"` // all members
	Connections int      `json:"connections"`
	Truncated   bool     `json:"truncated,omitempty"` // Users does not hold every member
}

// PresenceStats are the presence counters and gauges of a Gateway.
type PresenceStats struct {
	Rooms      int64  // presence rooms tracked now
	Events     uint64 // presence events sent to this node's sockets (one per room and flush)
	GossipIn   uint64 // gossip messages received from other nodes
	GossipOut  uint64 // gossip messages published
	GossipBad  uint64 // gossip messages refused (undecodable, over the size limit)
	Dropped    uint64 // joins and remote entries ignored past MaxPresenceRooms
	SendErrors uint64 // gossip messages the bus did not take
}

// presenceEvent is EventPresence's payload.
type presenceEvent struct {
	Room      string   `json:"room"`
	Joined    []string `json:"joined"`
	Left      []string `json:"left"`
	Count     int      `json:"count"`
	Truncated bool     `json:"truncated,omitempty"`
}

// presenceTracker drives a presence.Engine: room changes and gossip in,
// events and gossip out from one goroutine.
type presenceTracker struct {
	patterns   []RoomPattern
	maxMembers int
	now        func() time.Time

	mu     sync.Mutex
	eng    *presence.Engine
	target time.Time // when run wakes next, as last computed

	ns *socketio.Namespace
	// single: the namespace has no cluster adapter, so gossip would reach
	// no one and is neither encoded nor sent.
	single  bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	start   sync.Once
	started atomic.Bool
	halt    sync.Once

	events, in, out, bad, sendErrs atomic.Uint64
	sendWarn                       logThrottle // failed publications: with the bus down, every one fails
}

func newPresenceTracker(cfg Config, now func() time.Time) *presenceTracker {
	p := &presenceTracker{
		patterns:   cfg.PresenceRooms,
		maxMembers: orDefault(cfg.PresenceMaxMembers, DefaultPresenceMaxMembers),
		now:        now,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	p.eng = presence.New(presence.Config{
		Node:       randomID(),
		LeaveDelay: cfg.PresenceLeaveDelay,
		MaxMembers: p.maxMembers,
		TTL:        cfg.PresenceTTL,
	}, now())
	return p
}

// isPresenceRoom reports whether room has presence: it matches a
// PresenceRooms pattern and is not a user's room.
func (g *Gateway) isPresenceRoom(room string) bool {
	return g.presence != nil && !strings.HasPrefix(room, userRoomPrefix) && matchAny(g.presence.patterns, room)
}

// attachPresence hooks the tracker to ns and starts it.
func (g *Gateway) attachPresence(ns *socketio.Namespace) {
	p := g.presence
	if p == nil {
		return
	}
	p.start.Do(func() {
		p.ns = ns
		_, p.single = ns.Adapter().(*socketio.MemoryAdapter)
		ns.OnRoomChange(g.presenceRoomChange)
		ns.OnServerEvent(p.gossip)
		p.started.Store(true)
		go p.run(g)
	})
}

// presenceRoomChange is the namespace's OnRoomChange: it runs under the
// adapter's lock, so it only counts.
func (g *Gateway) presenceRoomChange(ch socketio.RoomChange) {
	p := g.presence
	var user string
	var now time.Time
	locked := false
	for i, rooms := range [2][]string{ch.Joined, ch.Left} {
		for _, r := range rooms {
			if !g.isPresenceRoom(r) {
				continue
			}
			if !locked {
				c := connOf(ch.Socket)
				if c == nil {
					return // not the gateway's socket
				}
				user, now, locked = c.identity.UserID, g.now(), true
				p.mu.Lock()
			}
			if i == 0 {
				p.eng.Join(r, user, now)
			} else {
				p.eng.Leave(r, user, now)
			}
		}
	}
	if locked {
		p.wakeLocked()
		p.mu.Unlock()
	}
}

// wakeLocked wakes run if the engine's next deadline moved before the one
// it sleeps until; p.mu is held.
func (p *presenceTracker) wakeLocked() {
	if next := p.eng.Next(); next.Before(p.target) {
		p.target = next
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// gossip is the namespace's OnServerEvent handler for the other nodes'
// presence messages; it runs on the adapter's receiving goroutine.
func (p *presenceTracker) gossip(ev socketio.Event, _ func(any)) {
	if ev.Name != PresenceGossipEvent {
		return
	}
	var m presence.Message
	var err error
	if text, ok := firstString(ev.Args); !ok {
		err = presence.ErrInvalid
	} else {
		m, err = presence.Decode(text)
	}
	if err != nil {
		p.bad.Add(1)
		return
	}
	p.in.Add(1)
	p.mu.Lock()
	p.eng.Apply(m, p.now())
	p.wakeLocked()
	p.mu.Unlock()
}

func firstString(args []any) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}

// run steps the engine at its deadlines and sends what it produced, until
// stop; then it says "bye" to the other nodes.
func (p *presenceTracker) run(g *Gateway) {
	defer close(p.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.stop:
			p.publish(g, []presence.Message{p.bye()})
			return
		case <-timer.C:
		case <-p.wake:
		}
		now := p.now()
		p.mu.Lock()
		events, gossip := p.eng.Step(now)
		next := p.eng.Next()
		p.target = next
		p.mu.Unlock()
		for _, ev := range events {
			if ev.Local == 0 {
				continue // no socket here to tell
			}
			payload := presenceEvent{Room: ev.Room, Joined: ev.Joined, Left: ev.Left, Count: ev.Count, Truncated: ev.Truncated}
			p.events.Add(1)                                                                 // before: a socket that got it finds it counted
			_ = p.ns.Local().To(ev.Room).Emit(context.Background(), EventPresence, payload) // a local broadcast of strings: cannot fail
		}
		p.publish(g, gossip)
		timer.Reset(max(next.Sub(p.now()), 0))
	}
}

func (p *presenceTracker) bye() presence.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eng.Bye()
}

// publish sends gossip to the other nodes; on a single node (no cluster
// adapter) there are none.
func (p *presenceTracker) publish(g *Gateway, gossip []presence.Message) {
	if p.single {
		return
	}
	for _, m := range gossip {
		for _, text := range m.Encode() {
			ctx, cancel := context.WithTimeout(context.Background(), presenceSendTimeout)
			err := p.ns.ServerSideEmit(ctx, PresenceGossipEvent, text)
			cancel()
			if err != nil {
				p.sendErrs.Add(1)
				p.sendWarn.log(g, "presence: gossip not published", "err", err)
				continue
			}
			p.out.Add(1)
		}
	}
}

// close stops the tracker, which says "bye" first if it ran; it returns
// when run has returned or ctx is done.
func (p *presenceTracker) close(ctx context.Context) {
	if !p.started.Load() {
		return
	}
	p.halt.Do(func() { close(p.stop) })
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}

// Presence returns who is in room, a presence room, across the cluster: at
// most limit users (first, when a member, listed first), their number and
// the sockets in the room. ok is false when room is not a presence room
// (Config.PresenceRooms).
func (g *Gateway) Presence(room, first string, limit int) (snap PresenceSnapshot, ok bool) {
	if !g.isPresenceRoom(room) {
		return PresenceSnapshot{}, false
	}
	p := g.presence
	p.mu.Lock()
	s := p.eng.Snapshot(room, first, max(limit, 0))
	p.mu.Unlock()
	return PresenceSnapshot{Users: s.Users, Count: s.Count, Connections: s.Connections, Truncated: s.Truncated}, true
}

// PresenceStats returns the presence counters; zero without presence.
func (g *Gateway) PresenceStats() PresenceStats {
	p := g.presence
	if p == nil {
		return PresenceStats{}
	}
	p.mu.Lock()
	st := p.eng.Stats()
	p.mu.Unlock()
	return PresenceStats{
		Rooms:      int64(st.Rooms),
		Events:     p.events.Load(),
		GossipIn:   p.in.Load(),
		GossipOut:  p.out.Load(),
		GossipBad:  p.bad.Load(),
		Dropped:    st.Dropped,
		SendErrors: p.sendErrs.Load(),
	}
}

// presenceAck is the "presence" of a subscribe's ack to a presence room,
// nil for another room.
func (g *Gateway) presenceAck(room string, c *conn) *PresenceSnapshot {
	if !g.isPresenceRoom(room) {
		return nil
	}
	snap, _ := g.Presence(room, c.identity.UserID, g.presence.maxMembers)
	return &snap
}
