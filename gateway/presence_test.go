package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

// presenceAckOf is a subscribe ack with its presence snapshot.
type presenceAckOf struct {
	OK       bool              `json:"ok"`
	Presence *PresenceSnapshot `json:"presence"`
}

// subscribePresence subscribes c to room and returns the ack's snapshot.
func subscribePresence(t *testing.T, c *siotest.Client, name string) PresenceSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	args, err := c.EmitWithAck(ctx, EventSubscribe, room(name))
	if err != nil {
		t.Fatal(err)
	}
	var a presenceAckOf
	if len(args) != 1 || json.Unmarshal(args[0], &a) != nil || !a.OK || a.Presence == nil {
		t.Fatalf("subscribe ack %s, want ok with presence", args)
	}
	return *a.Presence
}

// nextPresence waits for c's next presence event.
func nextPresence(t *testing.T, c *siotest.Client) presenceEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ev, err := c.WaitEvent(ctx, EventPresence)
	if err != nil {
		t.Fatalf("waiting for presence: %v", err)
	}
	var p presenceEvent
	if len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &p) != nil {
		t.Fatalf("presence %s", ev.Args)
	}
	return p
}

func sortedUsers(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func presenceRooms(t *testing.T, list string) []RoomPattern {
	t.Helper()
	p, err := ParseRoomPatterns(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPresenceOneNode: two users, one with two tabs, on one node. The acks
// carry the members; a user's first socket in is announced, a second tab
// and the closing of one of two are not; a user's last socket out is.
func TestPresenceOneNode(t *testing.T) {
	db := openSQLite(t)
	g := newGateway(t, Config{
		Sessions: db, Audit: newRecordingAudit(nil),
		PublicRooms:   presenceRooms(t, "incident:*,lobby"),
		PresenceRooms: presenceRooms(t, "incident:*"),
		// Short, so that the test ends soon; nothing here waits on a timer.
		PresenceLeaveDelay: 50 * time.Millisecond,
	})
	_, url := serve(t, g)
	expire := time.Now().Add(time.Hour)
	_, aliceCookie := saveSession(t, db, `"alice"`, expire)
	_, bobCookie := saveSession(t, db, `"bob"`, expire)

	alice := dial(t, url, browser{cookie: aliceCookie})
	connected(t, alice)
	if s := subscribePresence(t, alice, "incident:1"); s.Count != 1 || s.Connections != 1 || !slices.Equal(s.Users, []string{"alice"}) || s.Truncated {
		t.Fatalf("alice's ack: %+v", s)
	}
	if ev := nextPresence(t, alice); ev.Room != "incident:1" || !slices.Equal(ev.Joined, []string{"alice"}) || len(ev.Left) != 0 || ev.Count != 1 {
		t.Fatalf("alice's first event: %+v", ev)
	}
	// Not a presence room: no presence in the ack.
	if a := ask(t, alice, EventSubscribe, room("lobby")); !a.OK {
		t.Fatalf("lobby: %+v", a)
	}

	bob := dial(t, url, browser{cookie: bobCookie})
	connected(t, bob)
	if s := subscribePresence(t, bob, "incident:1"); s.Count != 2 || s.Connections != 2 || s.Users[0] != "bob" || !slices.Equal(sortedUsers(s.Users), []string{"alice", "bob"}) {
		t.Fatalf("bob's ack: %+v", s)
	}
	for _, c := range []*siotest.Client{alice, bob} {
		if ev := nextPresence(t, c); !slices.Equal(ev.Joined, []string{"bob"}) || ev.Count != 2 {
			t.Fatalf("bob joined: %+v", ev)
		}
	}

	// alice's second tab: the same shape, also when already in the room.
	tab2 := dial(t, url, browser{cookie: aliceCookie})
	connected(t, tab2)
	if s := subscribePresence(t, tab2, "incident:1"); s.Count != 2 || s.Connections != 3 || s.Users[0] != "alice" {
		t.Fatalf("second tab's ack: %+v", s)
	}
	if s := subscribePresence(t, tab2, "incident:1"); s.Count != 2 || s.Connections != 3 {
		t.Fatalf("second tab's second ack: %+v", s)
	}
	if snap, ok := g.Presence("incident:1", "", 10); !ok || snap.Count != 2 || snap.Connections != 3 {
		t.Fatalf("Presence = %+v, %v", snap, ok)
	}
	tab2.Close()

	// bob leaves; the next event alice sees says so, and nothing of hers
	// came before it: neither her second tab's arrival nor its closing.
	if a := ask(t, bob, EventUnsubscribe, room("incident:1")); !a.OK {
		t.Fatalf("unsubscribe: %+v", a)
	}
	if ev := nextPresence(t, alice); len(ev.Joined) != 0 || !slices.Equal(ev.Left, []string{"bob"}) || ev.Count != 1 {
		t.Fatalf("after bob left, alice got %+v", ev)
	}
	if _, ok := g.Presence("lobby", "", 10); ok {
		t.Fatal("lobby has presence")
	}
	if st := g.PresenceStats(); st.Events != 3 || st.Rooms != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestPresenceServerJoins: rooms the server puts a socket in count as
// much as subscriptions: SESSION_ROOMS (before CONNECT) and room
// operations through the adapter; a disconnect ends them.
func TestPresenceServerJoins(t *testing.T) {
	db := openSQLite(t)
	rooms, err := ParseSessionRooms("org:{orgId}")
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, Config{
		Sessions: db, Audit: newRecordingAudit(nil),
		SessionRooms:       rooms,
		PublicRooms:        presenceRooms(t, "org:*"),
		PresenceRooms:      presenceRooms(t, "org:*,ops:*"),
		PresenceLeaveDelay: -1, // at once
	})
	ns, url := serve(t, g)
	expire := time.Now().Add(time.Hour)
	_, cookie := saveSession(t, db, `"carol"`, expire)
	_, orgCookie := saveSessionData(t, db, orgSession("7", expire), expire)

	member := dial(t, url, browser{cookie: orgCookie})
	connected(t, member)
	if s, _ := g.Presence("org:7", "", 10); s.Count != 1 || !slices.Equal(s.Users, []string{"42"}) {
		t.Fatalf("session room: %+v", s)
	}
	if s := subscribePresence(t, member, "org:7"); s.Count != 1 || s.Connections != 1 {
		t.Fatalf("already in through the session: %+v", s)
	}
	if ev := nextPresence(t, member); !slices.Equal(ev.Joined, []string{"42"}) {
		t.Fatalf("event = %+v", ev)
	}

	carol := dial(t, url, browser{cookie: cookie})
	connected(t, carol)
	ctx := context.Background()
	if err := ns.Adapter().AddSockets(ctx, socketio.BroadcastOptions{Rooms: []string{"user:carol"}}, []string{"org:7"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextPresence(t, member); !slices.Equal(ev.Joined, []string{"carol"}) || ev.Count != 2 {
		t.Fatalf("after the room operation: %+v", ev)
	}
	if err := ns.Adapter().DelSockets(ctx, socketio.BroadcastOptions{Rooms: []string{"user:carol"}}, []string{"org:7"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextPresence(t, member); !slices.Equal(ev.Left, []string{"carol"}) || ev.Count != 1 {
		t.Fatalf("after the leave operation: %+v", ev)
	}

	// A disconnect leaves every room: the member's second socket sees the
	// first one go... and stays, its user still in.
	other := dial(t, url, browser{cookie: orgCookie})
	connected(t, other)
	if err := ns.Adapter().AddSockets(ctx, socketio.BroadcastOptions{Rooms: []string{"user:carol"}}, []string{"org:7"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextPresence(t, other); !slices.Equal(ev.Joined, []string{"carol"}) {
		t.Fatalf("other: %+v", ev)
	}
	carol.Close()
	if ev := nextPresence(t, other); !slices.Equal(ev.Left, []string{"carol"}) || ev.Count != 1 {
		t.Fatalf("after carol disconnected: %+v", ev)
	}
}

// busNode is a Socket.IO server whose "/" namespace is on a cluster bus
// under key; closeBus leaves the bus at once, as a killed node would: no
// "bye", no deltas.
type busNode struct {
	srv      *socketio.Server
	closeBus func() error
}

func redisBusNode(t *testing.T, key string) busNode {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the tests that need Redis")
	}
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cl, err := redis.NewCluster(ctx, redis.Options{URL: url, Key: key})
	if err != nil {
		t.Fatalf("Redis at %s: %v", url, err)
	}
	t.Cleanup(func() { cl.Close() })
	srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
	t.Cleanup(func() { srv.Close() })
	if err := srv.Of("/").Adapter().(*redis.Adapter).Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return busNode{srv, cl.Close}
}

func postgresBusNode(t *testing.T, url, key string) busNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cl, err := postgres.NewCluster(ctx, url, postgres.ClusterOptions{ChannelPrefix: key})
	if err != nil {
		t.Fatalf("PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
	t.Cleanup(func() { srv.Close() })
	srv.Of("/") // LISTENs on its channel
	if err := cl.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return busNode{srv, cl.Close}
}

// TestPresenceCluster: two nodes on one bus (Redis, PostgreSQL), each with
// its own gateway. alice on node A is seen by bob's socket on node B (its
// event, B's snapshot); then A dies without a word (its bus connection
// closed, no "bye") and B reports alice left once her entries' TTL passed.
func TestPresenceCluster(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) {
			var b [6]byte
			rand.Read(b[:])
			key := "sgtest-presence-" + hex.EncodeToString(b[:])
			var nodeA, nodeB busNode
			if bus == "redis" {
				nodeA, nodeB = redisBusNode(t, key), redisBusNode(t, key)
			} else {
				_, url := openPostgres(t)
				nodeA, nodeB = postgresBusNode(t, url, key), postgresBusNode(t, url, key)
			}
			db := openSQLite(t)
			cfg := Config{
				Sessions: db, Audit: newRecordingAudit(nil),
				PublicRooms:        presenceRooms(t, "incident:*"),
				PresenceRooms:      presenceRooms(t, "incident:*"),
				PresenceLeaveDelay: 100 * time.Millisecond,
				PresenceTTL:        2 * time.Second,
			}
			gA, gB := newGateway(t, cfg), newGateway(t, cfg)
			gA.Attach(nodeA.srv.Of("/"))
			gB.Attach(nodeB.srv.Of("/"))
			urlA, urlB := httptestServer(t, nodeA.srv), httptestServer(t, nodeB.srv)
			expire := time.Now().Add(time.Hour)
			_, aliceCookie := saveSession(t, db, `"alice"`, expire)
			_, bobCookie := saveSession(t, db, `"bob"`, expire)

			alice := dial(t, urlA, browser{cookie: aliceCookie})
			connected(t, alice)
			subscribePresence(t, alice, "incident:1")
			bob := dial(t, urlB, browser{cookie: bobCookie})
			connected(t, bob)
			inAck := slices.Contains(subscribePresence(t, bob, "incident:1").Users, "alice")

			// bob learns that alice is in: from his ack if A's gossip reached
			// B before he subscribed, else from an event.
			seen := map[string]bool{"alice": inAck}
			for !seen["alice"] {
				ev := nextPresence(t, bob)
				for _, u := range ev.Joined {
					seen[u] = true
				}
				if len(ev.Left) != 0 {
					t.Fatalf("bob's event: %+v", ev)
				}
			}
			if s, _ := gB.Presence("incident:1", "", 10); s.Count != 2 || s.Connections != 2 {
				t.Fatalf("node B's snapshot: %+v", s)
			}
			// And A sees bob.
			for seen := false; !seen; {
				ev := nextPresence(t, alice)
				seen = slices.Contains(ev.Joined, "bob")
			}
			if st := gB.PresenceStats(); st.GossipIn == 0 || st.GossipOut == 0 || st.GossipBad != 0 {
				t.Fatalf("node B's stats: %+v", st)
			}

			// A dies: its bus connection goes, its sockets stay (nobody
			// closes them), and it says nothing more.
			if err := nodeA.closeBus(); err != nil {
				t.Fatal(err)
			}
			for {
				ev := nextPresence(t, bob)
				if slices.Contains(ev.Left, "alice") {
					if ev.Count != 1 {
						t.Fatalf("event: %+v", ev)
					}
					break
				}
			}
			if s, _ := gB.Presence("incident:1", "", 10); s.Count != 1 || s.Connections != 1 || !slices.Equal(s.Users, []string{"bob"}) {
				t.Fatalf("node B's snapshot after A died: %+v", s)
			}
			// Each node told its own sockets, once: alice's arrival reached
			// bob in one event (no copy from node A's broadcast), or in his
			// ack and no event.
			n := 0
			for _, ev := range bob.Events() {
				var p presenceEvent
				if ev.Name == EventPresence && json.Unmarshal(ev.Args[0], &p) == nil && slices.Contains(p.Joined, "alice") {
					n++
				}
			}
			if inAck {
				n++
			}
			if n != 1 {
				t.Fatalf("bob was told %d times that alice joined", n)
			}
		})
	}
}

// saveSessionData writes a session row of data and returns its sid and
// Cookie header.
func saveSessionData(t *testing.T, s sessiongate.SessionStore, data []byte, expire time.Time) (sid, cookie string) {
	t.Helper()
	sid = expresssession.NewSessionID()
	if err := s.SaveSession(context.Background(), &sessiongate.Session{ID: sid, Data: data, Expire: expire}); err != nil {
		t.Fatal(err)
	}
	return sid, cookieHeader(sid)
}
