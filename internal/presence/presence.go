// Package presence is the state machine behind room presence (contract
// §15): who is in a room, as users rather than sockets, across the nodes of
// a cluster, and the coalesced, debounced changes members are told of.
//
// An Engine knows nothing of sockets, buses or clocks: it is told of this
// node's sockets entering and leaving rooms (Join, Leave), of other nodes'
// gossip (Apply), and of the time (every method takes now); Step returns
// the events to send and the gossip to publish, and Next when to call Step
// again. It is not safe for concurrent use: its owner holds a lock.
//
// Membership: a user is a member of a room while at least one source holds
// them there, a source being this node (one of its sockets is in the room)
// or another node (its latest gossip says so, and was heard within TTL).
// What members are told: a user who became a member is announced in the
// room's next flush, at most Window after the change; a member who stopped
// being one is announced gone only once LeaveDelay has passed without a
// source holding them again. A room is flushed at most once per Window.
//
// Bounds: at most MaxRooms rooms (local or remote) and MaxRemote remote
// (node, room, user) entries of at most MaxNodes other nodes are tracked;
// past them, new rooms, entries and nodes are ignored (counted in Stats).
// Lists are cut at MaxMembers.
package presence

import (
	"container/heap"
	"container/list"
	"slices"
	"time"
)

// Defaults of the Config fields left zero.
const (
	DefaultWindow     = 500 * time.Millisecond
	DefaultLeaveDelay = 5 * time.Second
	DefaultMaxMembers = 100
	DefaultTTL        = 30 * time.Second
	DefaultHeartbeat  = 10 * time.Second
	DefaultMaxRooms   = 100_000
	DefaultMaxRemote  = 1_000_000
	// MaxNodes is the most other nodes whose gossip is tracked.
	MaxNodes = 1024
)

// Config configures an Engine.
type Config struct {
	// Node names this node in its gossip; other nodes key its entries by
	// it. It must differ from every other node's (a random id).
	Node string
	// Window is the coalescing window: a room's changes are announced at
	// most once per Window, and this node's gossip deltas are sent at most
	// once per Window.
	Window time.Duration
	// LeaveDelay is how long a member without any socket stays a member
	// before it is announced in "left" (a reload, a reconnect, a move to
	// another node within it is announced at all). Negative: 0.
	LeaveDelay time.Duration
	// MaxMembers caps the users of an event's lists and of a snapshot.
	MaxMembers int
	// TTL is how long another node's entry lives without being heard of
	// again (a delta or a heartbeat mentioning it): the users of a node
	// that died without a "bye" stop being members TTL after its last
	// word.
	TTL time.Duration
	// Heartbeat is how often this node's full state is sent; at most a
	// third of TTL (so that two lost heartbeats do not expire anything).
	Heartbeat time.Duration
	// MaxRooms and MaxRemote bound what is tracked (see the package doc).
	MaxRooms  int
	MaxRemote int
}

// Event is what the local sockets of a room are told after a flush.
type Event struct {
	Room      string
	Joined    []string // users who became members
	Left      []string // users who stopped being members
	Count     int      // members after the change
	Truncated bool     // Joined or Left was cut at MaxMembers
	// Local is the number of this node's sockets in the room: an event for
	// a room with none reaches no one here.
	Local int
}

// Snapshot is the state of a room now.
type Snapshot struct {
	Users       []string // at most MaxMembers members, in no particular order
	Count       int      // the number of members
	Connections int      // sockets in the room, on every node
	Truncated   bool     // Users does not hold every member
}

// Stats are an Engine's gauges and counters.
type Stats struct {
	Rooms         int    // rooms tracked now
	Remote        int    // remote (node, room, user) entries now
	Nodes         int    // other nodes heard of and not expired
	Events        uint64 // events produced by Step
	Dropped       uint64 // joins, remote entries and nodes ignored: MaxRooms, MaxRemote or MaxNodes reached
	GossipOut     uint64 // messages produced by Step
	GossipIn      uint64 // messages applied
	GossipIgnored uint64 // Apply calls ignored: the node's own messages, or without a node id
}

// Engine is the presence state of one node (see the package doc).
type Engine struct {
	cfg   Config
	rooms map[string]*room
	nodes map[string]*node
	due   roomHeap

	// dirty holds this node's (room, user) pairs whose socket count changed
	// since the last delta, with the count that delta had sent, so that a
	// reload within one window sends nothing.
	dirty     map[key]int
	deltaAt   time.Time // zero: no delta scheduled
	beatAt    time.Time // the next full state
	lastBeat  time.Time
	syncAsked bool // a "sync" to send
	sweepAt   time.Time
	remote    int // other nodes' entries
	local     int // this node's (room, user) pairs
	stats     Stats
}

type key struct{ room, user string }

type room struct {
	name       string
	local      map[string]int       // user → this node's sockets
	localConns int                  // sum of local
	remote     int                  // other nodes' sockets in the room
	holders    map[string]int       // user → sources (this node, other nodes) holding them
	gone       map[string]time.Time // announced members no source holds, since when (nil: none)
	announced  map[string]struct{}  // what the room's sockets were told
	changed    map[string]struct{}  // users to look at in the next flush (nil: none)
	flushAt    time.Time            // zero: no flush scheduled
	lastFlush  time.Time
}

// node is what another node's gossip said. Its entries are also kept in
// the order they were last heard of, so that expiry looks only at those
// that expire (the oldest first) rather than at all of them.
type node struct {
	rooms map[string]map[string]*list.Element // room → user → entry
	order list.List                           // of *entry, least recently heard first
}

type entry struct {
	room, user string
	conns      int
	seen       time.Time
}

func newNode() *node {
	return &node{rooms: make(map[string]map[string]*list.Element)}
}

// New returns an Engine whose first Step, at or after now, asks the other
// nodes for their state ("sync") and sends its own.
func New(cfg Config, now time.Time) *Engine {
	cfg.Window = orDefault(cfg.Window, DefaultWindow)
	if cfg.LeaveDelay == 0 {
		cfg.LeaveDelay = DefaultLeaveDelay
	}
	cfg.LeaveDelay = max(cfg.LeaveDelay, 0)
	cfg.MaxMembers = orDefault(cfg.MaxMembers, DefaultMaxMembers)
	cfg.TTL = orDefault(cfg.TTL, DefaultTTL)
	cfg.Heartbeat = min(orDefault(cfg.Heartbeat, DefaultHeartbeat), cfg.TTL/3)
	cfg.MaxRooms = orDefault(cfg.MaxRooms, DefaultMaxRooms)
	cfg.MaxRemote = orDefault(cfg.MaxRemote, DefaultMaxRemote)
	e := &Engine{
		cfg:       cfg,
		rooms:     make(map[string]*room),
		nodes:     make(map[string]*node),
		dirty:     make(map[key]int),
		beatAt:    now,
		syncAsked: true,
	}
	e.sweepAt = now.Add(e.sweepEvery())
	return e
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Config returns the configuration with its defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Join records that a socket of user on this node entered room. It returns
// false when the room could not be tracked (MaxRooms).
func (e *Engine) Join(roomName, user string, now time.Time) bool {
	r := e.room(roomName)
	if r == nil {
		e.stats.Dropped++
		return false
	}
	n := r.local[user]
	e.markDirty(roomName, user, n, now)
	r.local[user] = n + 1
	r.localConns++
	if n == 0 {
		e.local++
		e.hold(r, user, now)
	}
	return true
}

// Leave records that a socket of user on this node left room. A leave
// without its join (an untracked room) is ignored.
func (e *Engine) Leave(roomName, user string, now time.Time) {
	r := e.rooms[roomName]
	if r == nil || r.local[user] == 0 {
		return
	}
	n := r.local[user]
	e.markDirty(roomName, user, n, now)
	r.localConns--
	if n > 1 {
		r.local[user] = n - 1
		return
	}
	delete(r.local, user)
	e.local--
	e.release(r, user, now)
	e.maybeDrop(r)
}

// markDirty notes that this node's count of (room, user), was before this
// change, is to go in the next delta.
func (e *Engine) markDirty(roomName, user string, was int, now time.Time) {
	k := key{roomName, user}
	if _, ok := e.dirty[k]; !ok {
		e.dirty[k] = was
	}
	if e.deltaAt.IsZero() {
		e.deltaAt = now.Add(e.cfg.Window)
	}
}

// room returns the room, tracking it if it is new and MaxRooms allows.
func (e *Engine) room(name string) *room {
	if r := e.rooms[name]; r != nil {
		return r
	}
	if len(e.rooms) >= e.cfg.MaxRooms {
		return nil
	}
	r := &room{
		name:      name,
		local:     make(map[string]int),
		holders:   make(map[string]int),
		announced: make(map[string]struct{}),
	}
	e.rooms[name] = r
	return r
}

// hold adds a source holding user in r.
func (e *Engine) hold(r *room, user string, now time.Time) {
	r.holders[user]++
	if r.holders[user] > 1 {
		return
	}
	if _, ok := r.gone[user]; ok {
		delete(r.gone, user) // back within the leave delay: nothing to say
		return
	}
	if _, ok := r.announced[user]; !ok {
		if r.changed == nil {
			r.changed = make(map[string]struct{})
		}
		r.changed[user] = struct{}{}
		e.schedule(r, now.Add(e.cfg.Window))
	}
}

// release removes a source holding user in r.
func (e *Engine) release(r *room, user string, now time.Time) {
	n := r.holders[user] - 1
	if n > 0 {
		r.holders[user] = n
		return
	}
	delete(r.holders, user)
	if _, ok := r.announced[user]; ok {
		if r.gone == nil {
			r.gone = make(map[string]time.Time)
		}
		r.gone[user] = now
		e.schedule(r, now.Add(e.cfg.LeaveDelay))
		return
	}
	// Joined and gone before its flush: the flush finds nothing to say.
	delete(r.changed, user)
}

// schedule moves r's flush to at, if that is earlier, but never sooner than
// Window after its last flush.
func (e *Engine) schedule(r *room, at time.Time) {
	at = maxTime(at, r.lastFlush.Add(e.cfg.Window))
	if !r.flushAt.IsZero() && !at.Before(r.flushAt) {
		return
	}
	r.flushAt = at
	heap.Push(&e.due, due{at: at, room: r.name})
}

// maybeDrop forgets r once it holds nothing.
func (e *Engine) maybeDrop(r *room) {
	if len(r.holders) == 0 && len(r.gone) == 0 && len(r.announced) == 0 && len(r.local) == 0 && r.remote == 0 && len(r.changed) == 0 {
		delete(e.rooms, r.name)
	}
}

// Snapshot returns room's members, their number and the sockets in it;
// first, when a member, is listed first (the subscriber's own user, which a
// truncated list then still holds). A room not tracked is empty.
func (e *Engine) Snapshot(roomName, first string, limit int) Snapshot {
	r := e.rooms[roomName]
	if r == nil {
		return Snapshot{Users: []string{}}
	}
	s := Snapshot{Count: len(r.holders) + len(r.gone), Connections: r.localConns + r.remote}
	s.Users = make([]string, 0, min(s.Count, limit))
	if _, ok := r.holders[first]; ok && first != "" && limit > 0 {
		s.Users = append(s.Users, first)
	}
	for u := range r.holders {
		if len(s.Users) >= limit {
			break
		}
		if u != first {
			s.Users = append(s.Users, u)
		}
	}
	for u := range r.gone {
		if len(s.Users) >= limit {
			break
		}
		s.Users = append(s.Users, u)
	}
	s.Truncated = len(s.Users) < s.Count
	return s
}

// Next returns when Step has something to do next.
func (e *Engine) Next() time.Time {
	next := minTime(e.beatAt, e.sweepAt)
	if !e.deltaAt.IsZero() {
		next = minTime(next, e.deltaAt)
	}
	for e.due.Len() > 0 {
		d := e.due[0]
		if r := e.rooms[d.room]; r != nil && r.flushAt.Equal(d.at) {
			return minTime(next, d.at)
		}
		heap.Pop(&e.due) // stale: rescheduled or dropped
	}
	return next
}

// Step does what is due at now: the rooms' flushes (events), the expiry
// of other nodes' silent entries, and this node's gossip (a delta, a full
// state, a sync request), to be sent with Message.Encode.
func (e *Engine) Step(now time.Time) (events []Event, gossip []Message) {
	if !now.Before(e.sweepAt) {
		e.sweep(now)
		e.sweepAt = now.Add(e.sweepEvery())
	}
	for e.due.Len() > 0 && !e.due[0].at.After(now) {
		d := heap.Pop(&e.due).(due)
		r := e.rooms[d.room]
		if r == nil || !r.flushAt.Equal(d.at) {
			continue
		}
		if ev, ok := e.flush(r, now); ok {
			events = append(events, ev)
		}
	}
	if e.syncAsked {
		gossip = append(gossip, Message{Type: TypeSync, Node: e.cfg.Node})
		e.syncAsked = false
	}
	if !e.deltaAt.IsZero() && !now.Before(e.deltaAt) {
		gossip = append(gossip, e.delta()...)
		e.deltaAt = time.Time{}
	}
	if !now.Before(e.beatAt) {
		gossip = append(gossip, e.state()...)
		e.lastBeat, e.beatAt = now, now.Add(e.cfg.Heartbeat)
	}
	e.stats.Events += uint64(len(events))
	e.stats.GossipOut += uint64(len(gossip))
	return events, gossip
}

// flush announces r's changes: the users who became members, and those
// gone for LeaveDelay.
func (e *Engine) flush(r *room, now time.Time) (Event, bool) {
	ev := Event{Room: r.name}
	for u := range r.changed {
		if _, ok := r.holders[u]; ok {
			if _, ok := r.announced[u]; !ok {
				r.announced[u] = struct{}{}
				ev.Joined = appendCapped(ev.Joined, u, e.cfg.MaxMembers, &ev.Truncated)
			}
		}
	}
	r.changed = nil // most rooms are quiet: no map kept between changes
	var next time.Time
	for u, since := range r.gone {
		if at := since.Add(e.cfg.LeaveDelay); at.After(now) {
			next = minNonZero(next, at)
			continue
		}
		delete(r.gone, u)
		delete(r.announced, u)
		ev.Left = appendCapped(ev.Left, u, e.cfg.MaxMembers, &ev.Truncated)
	}
	if len(r.gone) == 0 {
		r.gone = nil
	}
	r.lastFlush, r.flushAt = now, time.Time{}
	if !next.IsZero() {
		e.schedule(r, next)
	}
	ev.Count = len(r.announced)
	ev.Local = r.localConns
	e.maybeDrop(r)
	if len(ev.Joined) == 0 && len(ev.Left) == 0 {
		return Event{}, false
	}
	if ev.Joined == nil {
		ev.Joined = []string{}
	}
	if ev.Left == nil {
		ev.Left = []string{}
	}
	return ev, true
}

func appendCapped(list []string, u string, limit int, truncated *bool) []string {
	if len(list) >= limit {
		*truncated = true
		return list
	}
	return append(list, u)
}

// delta is this node's changed (room, user) counts, 0 for a user with no
// socket left in the room; Encode splits it.
func (e *Engine) delta() []Message {
	m := Message{Type: TypeDelta, Node: e.cfg.Node}
	for k, was := range e.dirty {
		c := 0
		if r := e.rooms[k.room]; r != nil {
			c = r.local[k.user]
		}
		if c != was {
			m.Entries = append(m.Entries, Entry{Room: k.room, User: k.user, Conns: c})
		}
	}
	clear(e.dirty)
	if len(m.Entries) == 0 {
		return nil
	}
	return []Message{m}
}

// state is this node's full state, a flat copy (the engine's lock is held:
// the grouping and encoding happen in Encode, outside it).
func (e *Engine) state() []Message {
	m := Message{Type: TypeState, Node: e.cfg.Node, Entries: make([]Entry, 0, e.local)}
	for name, r := range e.rooms {
		for u, c := range r.local {
			m.Entries = append(m.Entries, Entry{Room: name, User: u, Conns: c})
		}
	}
	return []Message{m}
}

// Apply takes another node's message in. Entries of a node are replaced by
// what its messages say: a count for a user there, 0 for one gone; a
// "bye" drops all of them, a "sync" makes the next Step send this node's
// state (at most once a second, however many nodes ask).
func (e *Engine) Apply(m Message, now time.Time) {
	if m.Node == e.cfg.Node || m.Node == "" {
		e.stats.GossipIgnored++
		return
	}
	e.stats.GossipIn++
	switch m.Type {
	case TypeSync:
		e.beatAt = minTime(e.beatAt, maxTime(now, e.lastBeat.Add(time.Second)))
		return
	case TypeBye:
		if nd := e.nodes[m.Node]; nd != nil {
			e.dropNode(m.Node, nd, now)
		}
		return
	}
	nd := e.nodes[m.Node]
	if nd == nil {
		if len(e.nodes) >= MaxNodes {
			e.stats.Dropped++
			return
		}
		nd = newNode()
		e.nodes[m.Node] = nd
	}
	for roomName, users := range m.Rooms {
		for u, c := range users {
			e.setRemote(nd, roomName, u, c, now)
		}
	}
	if nd.order.Len() == 0 {
		delete(e.nodes, m.Node)
	}
}

// setRemote sets node nd's count of (room, user) to c (0: gone), heard of
// now.
func (e *Engine) setRemote(nd *node, roomName, user string, c int, now time.Time) {
	users := nd.rooms[roomName]
	el := users[user]
	if c <= 0 {
		if el != nil {
			e.removeRemote(nd, el, now)
		}
		return
	}
	if el != nil {
		en := el.Value.(*entry)
		if r := e.rooms[roomName]; r != nil {
			r.remote += c - en.conns
		}
		en.conns, en.seen = c, now
		nd.order.MoveToBack(el)
		return
	}
	if e.remote >= e.cfg.MaxRemote {
		e.stats.Dropped++
		return
	}
	r := e.room(roomName)
	if r == nil {
		e.stats.Dropped++
		return
	}
	if users == nil {
		users = make(map[string]*list.Element)
		nd.rooms[roomName] = users
	}
	users[user] = nd.order.PushBack(&entry{room: roomName, user: user, conns: c, seen: now})
	e.remote++
	r.remote += c
	e.hold(r, user, now)
}

func (e *Engine) removeRemote(nd *node, el *list.Element, now time.Time) {
	en := nd.order.Remove(el).(*entry)
	users := nd.rooms[en.room]
	delete(users, en.user)
	if len(users) == 0 {
		delete(nd.rooms, en.room)
	}
	e.remote--
	if r := e.rooms[en.room]; r != nil {
		r.remote -= en.conns
		e.release(r, en.user, now)
		e.maybeDrop(r)
	}
}

func (e *Engine) dropNode(id string, nd *node, now time.Time) {
	for el := nd.order.Front(); el != nil; el = nd.order.Front() {
		e.removeRemote(nd, el, now)
	}
	delete(e.nodes, id)
}

// sweep expires the remote entries not heard of within TTL: the oldest of
// each node, up to the first one still alive.
func (e *Engine) sweep(now time.Time) {
	for id, nd := range e.nodes {
		for el := nd.order.Front(); el != nil && now.Sub(el.Value.(*entry).seen) >= e.cfg.TTL; el = nd.order.Front() {
			e.removeRemote(nd, el, now)
		}
		if nd.order.Len() == 0 {
			delete(e.nodes, id)
		}
	}
}

// sweepEvery is how often expiry is checked: a tenth of TTL (cheap: sweep
// looks at the expiring entries only).
func (e *Engine) sweepEvery() time.Duration { return max(e.cfg.TTL/10, 10*time.Millisecond) }

// Stats returns the engine's gauges and counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Rooms, s.Remote, s.Nodes = len(e.rooms), e.remote, len(e.nodes)
	return s
}

// LocalConns returns this node's sockets in room.
func (e *Engine) LocalConns(roomName string) int {
	if r := e.rooms[roomName]; r != nil {
		return r.localConns
	}
	return 0
}

// Bye is the message this node sends as it leaves the cluster.
func (e *Engine) Bye() Message { return Message{Type: TypeBye, Node: e.cfg.Node} }

// due is a scheduled flush; roomHeap orders them by time. An entry whose
// room's flushAt differs is stale and skipped.
type due struct {
	at   time.Time
	room string
}

type roomHeap []due

func (h roomHeap) Len() int           { return len(h) }
func (h roomHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h roomHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *roomHeap) Push(x any)        { *h = append(*h, x.(due)) }
func (h *roomHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = slices.Delete(old, len(old)-1, len(old))
	return d
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minNonZero(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return minTime(a, b)
}
