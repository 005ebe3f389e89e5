package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/pgtest"
)

// redisCluster starts n sessiongate nodes with CLUSTER=redis on a fresh
// CLUSTER_KEY and returns them with the cluster's environment.
func redisCluster(t *testing.T, n int) (clusterEnv, []*sgNode) {
	t.Helper()
	rc := requireRedis(t)
	c := clusterEnv{Cluster: "redis", Key: randomKey(), RedisURL: redisURL(), DB: openSessionDB(t)}
	t.Cleanup(func() { rc.deleteKeys(t, c.Key) }) // after the nodes stopped
	spyRedis(t, c.Key)
	return c, startNodes(t, c, n)
}

// postgresCluster is redisCluster with CLUSTER=postgres.
func postgresCluster(t *testing.T, n int) (clusterEnv, []*sgNode) {
	t.Helper()
	c := clusterEnv{Cluster: "postgres", Key: randomKey(), DB: openSessionDB(t)}
	spyPostgres(t, c.Key)
	return c, startNodes(t, c, n)
}

func startNodes(t *testing.T, c clusterEnv, n int) []*sgNode {
	t.Helper()
	nodes := make([]*sgNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("sg%d", i+1), c)
	}
	return nodes
}

// nodeEnvOf is the Node peers' view of cluster c.
func nodeEnvOf(c clusterEnv) nodeEnv {
	return nodeEnv{Cluster: c.Cluster, Key: c.Key, RedisURL: c.RedisURL, PGURL: pgtest.BaseURL(), PGSchema: c.DB.Schema}
}

// sg is the client spec of a browser of session s on node n.
func sg(name string, n *sgNode, s session) clientSpec {
	return clientSpec{Name: name, URL: n.URL, Cookie: s.Cookie}
}

// once checks that each of names got exactly one ev, with the JSON
// arguments wants; call it after a barrier (see barrier).
func once(t *testing.T, c *clients, ev string, names []string, wants ...string) {
	t.Helper()
	for _, n := range names {
		got := c.events(n, ev)
		if len(got) != 1 {
			t.Errorf("%s got %q %d times, want once: %v", n, ev, len(got), got)
			continue
		}
		if !argsEq(got[0].Args, wants...) {
			t.Errorf("%s got %q with %s, want %v", n, ev, got[0], wants)
		}
	}
}

// never checks that none of names got ev (so far: call it after a
// barrier).
func never(t *testing.T, c *clients, ev string, names ...string) {
	t.Helper()
	for _, n := range names {
		if got := c.events(n, ev); len(got) != 0 {
			t.Errorf("%s got %q, which was not for it: %v", n, ev, got)
		}
	}
}

// waitAll waits until each of names got ev.
func waitAll(t *testing.T, c *clients, ev string, names ...string) {
	t.Helper()
	for _, n := range names {
		c.event(t, n, ev)
	}
}

// Three sessiongate nodes and a Node socket.io server with
// @socket.io/redis-adapter in one cluster: publishes from either side reach
// the other side's sockets exactly once; the Node server's fetchSockets
// sees every socket and no cookie; its serverSideEmit with an ack and its
// broadcast with acks are answered by every sessiongate node.
func TestRedisClusterWithNodeServer(t *testing.T) {
	t.Parallel()
	c, nodes := redisCluster(t, 3)
	node := startNodeServer(t, nodeEnvOf(c))
	alice, bob := c.DB.newSession(t, 1), c.DB.newSession(t, 2)
	cl := startClients(t,
		sg("a1", nodes[0], alice), sg("a2", nodes[1], alice), sg("b3", nodes[2], bob),
		clientSpec{Name: "na", URL: node.URL, Auth: map[string]any{"rooms": []string{alice.Room}, "data": map[string]any{"node": true}}},
		clientSpec{Name: "nb", URL: node.URL, Auth: map[string]any{"rooms": []string{bob.Room}}},
	)
	ids := cl.connected(t, "a1", "a2", "b3", "na", "nb")
	aliceAll := []string{"a1", "a2", "na"}
	bobAll := []string{"b3", "nb"}

	// The Node peer counts every sessiongate node: they subscribe to the
	// request channel.
	rc := requireRedis(t)
	if n := rc.numsub(t, c.Key+"-request#/#"); n != 4 {
		t.Errorf("PUBSUB NUMSUB %s-request#/# = %d, want 4 (3 sessiongate nodes and the Node server)", c.Key, n)
	}
	// Only the nodes holding a room get its messages: they subscribe to
	// its channel, and no sessiongate node PSUBSCRIBEs.
	for room, want := range map[string]int64{alice.Room: 2, bob.Room: 1} {
		if n := rc.numsub(t, c.Key+"#/#"+room+"#"); n != want {
			t.Errorf("PUBSUB NUMSUB of %s's channel = %d, want %d (the nodes holding it)", room, n, want)
		}
	}
	for _, n := range nodes {
		for _, cli := range redisClientsOf(t, rc, n) {
			if cli["psub"] != "0" {
				t.Errorf("%s has a Redis connection with %s pattern subscriptions", n.Name, cli["psub"])
			}
		}
	}

	// sessiongate → everyone in the room, Node's socket included.
	nodes[0].publish(t, []string{alice.Room}, "from-sg", map[string]any{"n": 1})
	waitAll(t, cl, "from-sg", aliceAll...)
	// Node → sessiongate's sockets: one room, then two rooms (the namespace
	// channel), then everyone.
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "from-node", "args": []any{"x", map[string]any{"$bin": "AQID"}}})
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room, bob.Room}, "except": []string{bob.Room}, "event": "multi", "args": []any{2}})
	node.call(t, map[string]any{"op": "emit", "event": "everyone"})
	// One sessiongate socket by its id, among other rooms (the namespace
	// channel), and alone (its own channel "<key>#/#<sid>#", where
	// RemoteSocket.emit after fetchSockets() publishes too).
	node.call(t, map[string]any{"op": "emit", "rooms": []string{ids["a2"], "nobody"}, "event": "to-sid", "args": []any{"a2 only"}})
	node.call(t, map[string]any{"op": "emit", "rooms": []string{ids["a2"]}, "event": "to-sid-alone", "args": []any{"a2 alone"}})
	// Barriers on each path, after which no duplicate can be in flight.
	nodes[1].publish(t, []string{alice.Room, bob.Room}, "barrier-sg", nil)
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "barrier-node"})
	node.call(t, map[string]any{"op": "emit", "rooms": []string{bob.Room}, "event": "barrier-node"})
	waitAll(t, cl, "barrier-sg", "a1", "a2", "b3", "na", "nb")
	waitAll(t, cl, "barrier-node", "a1", "a2", "b3", "na", "nb")

	once(t, cl, "from-sg", aliceAll, `{"n":1}`)
	never(t, cl, "from-sg", bobAll...)
	once(t, cl, "from-node", aliceAll, `"x"`, `{"$bin":"AQID"}`)
	never(t, cl, "from-node", bobAll...)
	once(t, cl, "multi", aliceAll, `2`)
	never(t, cl, "multi", bobAll...)
	once(t, cl, "everyone", append(aliceAll, bobAll...))
	once(t, cl, "to-sid", []string{"a2"}, `"a2 only"`)
	never(t, cl, "to-sid", "a1", "b3", "na", "nb")
	once(t, cl, "to-sid-alone", []string{"a2"}, `"a2 alone"`)
	never(t, cl, "to-sid-alone", "a1", "b3", "na", "nb")

	// fetchSockets on the Node server: every socket of the cluster, and
	// nothing of a session in sessiongate's.
	reply := node.call(t, map[string]any{"op": "fetchSockets"})
	var fetched struct {
		Sockets []struct {
			ID        string
			Rooms     []string
			Data      map[string]any
			Handshake map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(reply.Raw, &fetched); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range fetched.Sockets {
		got = append(got, s.ID)
	}
	slices.Sort(got)
	want := []string{ids["a1"], ids["a2"], ids["b3"], ids["na"], ids["nb"]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("fetchSockets() ids = %v, want %v", got, want)
	}
	owner := map[string]session{ids["a1"]: alice, ids["a2"]: alice, ids["b3"]: bob}
	for _, s := range fetched.Sockets {
		sess, ours := owner[s.ID]
		if !ours {
			continue
		}
		checkNoSession(t, s.ID, reply.Raw, sess)
		if !slices.Contains(s.Rooms, sess.Room) {
			t.Errorf("socket %s: rooms %v lack %s", s.ID, s.Rooms, sess.Room)
		}
		keys := []string{}
		for k := range s.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"session", "userId"}) {
			t.Errorf("socket %s: data %v, want only userId and session", s.ID, s.Data)
		}
		if fmt.Sprint(s.Data["userId"]) != sess.UserID || s.Data["session"] != sess.Short {
			t.Errorf("socket %s: data %v, want userId %s and session %s", s.ID, s.Data, sess.UserID, sess.Short)
		}
		var headers map[string]any
		json.Unmarshal(s.Handshake["headers"], &headers)
		for k := range headers {
			if k := strings.ToLower(k); k == "cookie" || k == "authorization" {
				t.Errorf("socket %s: handshake.headers has %s", s.ID, k)
			}
		}
	}

	// serverSideEmit with an ack: one answer per sessiongate node.
	ssr := node.try(t, map[string]any{"op": "serverSideEmit", "event": "ping", "args": []any{1}, "ack": true})
	var acks struct{ Responses []json.RawMessage }
	json.Unmarshal(ssr.Raw, &acks)
	if !ssr.OK || len(acks.Responses) != 3 {
		t.Errorf("serverSideEmitWithAck(ping) = %s, want one answer from each of the 3 sessiongate nodes", ssr.Raw)
	}

	// A broadcast with acks counts every node's clients and gets each
	// client's ack (client.mjs answers with its name).
	var backs struct{ Responses []string }
	json.Unmarshal(node.call(t, map[string]any{"op": "emitWithAck", "rooms": []string{alice.Room}, "event": "ask", "timeoutMs": 5000}).Raw, &backs)
	slices.Sort(backs.Responses)
	if !slices.Equal(backs.Responses, aliceAll) {
		t.Errorf("emitWithAck to %s: acks %v, want %v", alice.Room, backs.Responses, aliceAll)
	}

	// allRooms sees sessiongate's rooms.
	var rooms struct{ Rooms []string }
	json.Unmarshal(node.call(t, map[string]any{"op": "allRooms"}).Raw, &rooms)
	for _, r := range []string{alice.Room, bob.Room} {
		if !slices.Contains(rooms.Rooms, r) {
			t.Errorf("allRooms() = %v, lacks %s", rooms.Rooms, r)
		}
	}
}

// checkNoSession fails if raw (a fetchSockets reply) holds anything of
// sess but its short hash: the sid, the cookie, the session JSON.
func checkNoSession(t *testing.T, id string, raw []byte, sess session) {
	t.Helper()
	s := string(raw)
	cookieValue := strings.TrimPrefix(sess.Cookie, "connect.sid=")
	unescaped, _ := url.QueryUnescape(cookieValue)
	for what, secret := range map[string]string{"session id": sess.SID, "cookie": cookieValue, "cookie (unescaped)": unescaped, "session data": "never on the bus", "cookie name": "connect.sid"} {
		if strings.Contains(s, secret) {
			t.Errorf("fetchSockets reply for %s holds the %s", id, what)
		}
	}
}

// emitterSockets are the sockets the emitter checks act on: a1 and a2 (alice,
// user:1) on two nodes, b2 (bob, user:2) on the second.
var emitterSockets = []string{"a1", "a2", "b2"}

// checkEmitterOnSessiongate drives every emitter operation at sessiongate's
// sockets and checks what the clients see. em is emitter.mjs in the
// cluster; nodes[0] holds a1, nodes[1] a2 and b2.
// joined(room, n), when not nil, waits until n nodes hold room after a
// socketsJoin (see redisConn.waitSubscribers).
func checkEmitterOnSessiongate(t *testing.T, em *emitter, cl *clients, ids map[string]string, alice, bob session, joined func(room string, n int64), serverEvent func()) {
	t.Helper()
	barrier := func(name string) {
		t.Helper()
		em.call(t, map[string]any{"op": "emit", "event": name})
		waitAll(t, cl, name, emitterSockets...)
	}

	// Rooms with except.
	em.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room, bob.Room}, "except": []string{bob.Room}, "event": "rooms-except", "args": []any{map[string]any{"k": "v"}}})
	// One room (its own channel), binary.
	em.call(t, map[string]any{"op": "emit", "rooms": []string{bob.Room}, "event": "bin", "args": []any{map[string]any{"$bin": "AQID"}, map[string]any{"a": 1}}})
	// Another namespace: sessiongate's sockets are all in "/".
	em.call(t, map[string]any{"op": "emit", "nsp": "/admin", "event": "admin-only"})
	// Large: over PostgreSQL's 8000-byte NOTIFY limit (an attachment).
	big := strings.Repeat("y", 9000)
	em.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "big", "args": []any{big}})
	// Volatile and compress flags are accepted.
	em.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "flags", "volatile": true, "compress": false})
	// One socket, by its id, among other rooms (the namespace channel),
	// and alone (on Redis, the id's own channel, which every node
	// subscribes for its sockets: package redis doc, "Socket-id rooms").
	em.call(t, map[string]any{"op": "emit", "rooms": []string{ids["a1"], "nobody"}, "event": "to-sid", "args": []any{"a1 only"}})
	em.call(t, map[string]any{"op": "emit", "rooms": []string{ids["a1"]}, "event": "to-sid-alone", "args": []any{"a1 alone"}})
	barrier("barrier1")
	once(t, cl, "to-sid", []string{"a1"}, `"a1 only"`)
	never(t, cl, "to-sid", "a2", "b2")
	once(t, cl, "to-sid-alone", []string{"a1"}, `"a1 alone"`)
	never(t, cl, "to-sid-alone", "a2", "b2")
	once(t, cl, "rooms-except", []string{"a1", "a2"}, `{"k":"v"}`)
	never(t, cl, "rooms-except", "b2")
	once(t, cl, "bin", []string{"b2"}, `{"$bin":"AQID"}`, `{"a":1}`)
	never(t, cl, "bin", "a1", "a2")
	never(t, cl, "admin-only", emitterSockets...)
	once(t, cl, "flags", []string{"a1", "a2"})
	once(t, cl, "big", []string{"a1", "a2"}, strconv.Quote(big))
	never(t, cl, "big", "b2")

	// socketsJoin, then an emit to the joined room.
	em.call(t, map[string]any{"op": "socketsJoin", "rooms": []string{bob.Room}, "join": "team"})
	if joined != nil {
		joined("team", 1) // b2's node
	}
	em.call(t, map[string]any{"op": "emit", "rooms": []string{"team"}, "event": "team1"})
	barrier("barrier2")
	once(t, cl, "team1", []string{"b2"})
	never(t, cl, "team1", "a1", "a2")
	// Everyone but bob joins too (except).
	em.call(t, map[string]any{"op": "socketsJoin", "except": []string{bob.Room}, "join": "team"})
	if joined != nil {
		joined("team", 2) // a1's node too
	}
	em.call(t, map[string]any{"op": "emit", "rooms": []string{"team"}, "event": "team2"})
	barrier("barrier3")
	once(t, cl, "team2", emitterSockets)

	// socketsLeave.
	em.call(t, map[string]any{"op": "socketsLeave", "rooms": []string{bob.Room}, "leave": "team"})
	em.call(t, map[string]any{"op": "emit", "rooms": []string{"team"}, "event": "team3"})
	barrier("barrier4")
	once(t, cl, "team3", []string{"a1", "a2"})
	never(t, cl, "team3", "b2")

	// serverSideEmit: the caller checks where it arrived.
	em.call(t, map[string]any{"op": "serverSideEmit", "event": "hello", "args": []any{"from-emitter", 7}})
	if serverEvent != nil {
		serverEvent()
	}

	// disconnectSockets(close) of alice's sockets only, on both nodes.
	em.call(t, map[string]any{"op": "disconnectSockets", "rooms": []string{alice.Room}, "close": true})
	for _, n := range []string{"a1", "a2"} {
		if r := cl.disconnected(t, n); r != "io server disconnect" {
			t.Errorf("%s: disconnect reason %q, want io server disconnect", n, r)
		}
	}
	em.call(t, map[string]any{"op": "emit", "rooms": []string{bob.Room}, "event": "still-here"})
	cl.event(t, "b2", "still-here")
}

// @socket.io/redis-emitter drives every operation at sessiongate's
// sockets; a Node server in the cluster shows the serverSideEmit arrived
// as a Node peer sees it.
func TestRedisEmitter(t *testing.T) {
	t.Parallel()
	c, nodes := redisCluster(t, 2)
	node := startNodeServer(t, nodeEnvOf(c))
	alice, bob := c.DB.newSession(t, 1), c.DB.newSession(t, 2)
	cl := startClients(t, sg("a1", nodes[0], alice), sg("a2", nodes[1], alice), sg("b2", nodes[1], bob))
	ids := cl.connected(t, emitterSockets...)
	em := startEmitter(t, nodeEnvOf(c))
	rc := requireRedis(t)
	joined := func(room string, n int64) { rc.waitSubscribers(t, c.Key+"#/#"+room+"#", n) }
	checkEmitterOnSessiongate(t, em, cl, ids, alice, bob, joined, func() {
		l, _ := node.out.waitFor(t, 0, "serverSideEmit hello", func(l line) bool { return l.Type == "serverSideEmit" && l.Event == "hello" })
		if !argsEq(l.Args, `"from-emitter"`, `7`) {
			t.Errorf("Node server got %s", l)
		}
	})
}

// CLUSTER=postgres: two sessiongate nodes and a Node server with
// @socket.io/postgres-adapter; @socket.io/postgres-emitter drives every
// operation (its messages lack the top-level nsp, which the Node adapter
// drops and sessiongate takes from the channel).
func TestPostgresCluster(t *testing.T) {
	t.Parallel()
	c, nodes := postgresCluster(t, 2)
	node := startNodeServer(t, nodeEnvOf(c))
	alice, bob := c.DB.newSession(t, 1), c.DB.newSession(t, 2)
	cl := startClients(t,
		sg("a1", nodes[0], alice), sg("a2", nodes[1], alice), sg("b2", nodes[1], bob),
		clientSpec{Name: "na", URL: node.URL, Auth: map[string]any{"rooms": []string{alice.Room}}},
	)
	ids := cl.connected(t, "a1", "a2", "b2", "na")

	// The Node adapter counts peers it heard from (heartbeats).
	waitServerCount(t, node, 3)

	nodes[0].publish(t, []string{alice.Room}, "from-sg", map[string]any{"n": 1})
	// Over the attachment threshold (8000 bytes of JSON): the attachments
	// table, both ways.
	big := strings.Repeat("x", 9000)
	nodes[1].publish(t, []string{alice.Room}, "big-sg", big)
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "from-node", "args": []any{"x"}})
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "big-node", "args": []any{big}})
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "bin-node", "args": []any{map[string]any{"$bin": "AQID"}}})
	waitAll(t, cl, "from-sg", "a1", "a2", "na")
	waitAll(t, cl, "big-sg", "a1", "a2", "na")
	waitAll(t, cl, "from-node", "a1", "a2")
	waitAll(t, cl, "big-node", "a1", "a2")
	waitAll(t, cl, "bin-node", "a1", "a2")
	nodes[0].publish(t, []string{alice.Room}, "barrier-sg", nil)
	node.call(t, map[string]any{"op": "emit", "rooms": []string{alice.Room}, "event": "barrier-node"})
	waitAll(t, cl, "barrier-sg", "a1", "a2", "na")
	waitAll(t, cl, "barrier-node", "a1", "a2", "na")
	once(t, cl, "from-sg", []string{"a1", "a2", "na"}, `{"n":1}`)
	once(t, cl, "big-sg", []string{"a1", "a2", "na"}, strconv.Quote(big))
	once(t, cl, "from-node", []string{"a1", "a2", "na"}, `"x"`)
	once(t, cl, "big-node", []string{"a1", "a2", "na"}, strconv.Quote(big))
	once(t, cl, "bin-node", []string{"a1", "a2", "na"}, `{"$bin":"AQID"}`)
	never(t, cl, "from-sg", "b2")

	reply := node.call(t, map[string]any{"op": "fetchSockets", "rooms": []string{alice.Room}})
	var fetched struct{ Sockets []struct{ ID string } }
	json.Unmarshal(reply.Raw, &fetched)
	var got []string
	for _, s := range fetched.Sockets {
		got = append(got, s.ID)
	}
	slices.Sort(got)
	want := []string{ids["a1"], ids["a2"], ids["na"]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("fetchSockets(%s) ids = %v, want %v", alice.Room, got, want)
	}
	checkNoSession(t, "alice's sockets", reply.Raw, alice)

	// serverSideEmit with an ack: one answer per sessiongate node.
	ssr := node.try(t, map[string]any{"op": "serverSideEmit", "event": "ping", "args": []any{1}, "ack": true})
	var acks struct{ Responses []json.RawMessage }
	json.Unmarshal(ssr.Raw, &acks)
	if !ssr.OK || len(acks.Responses) != 2 {
		t.Errorf("serverSideEmitWithAck(ping) = %s, want one answer from each of the 2 sessiongate nodes", ssr.Raw)
	}

	// The emitter's messages reach sessiongate's sockets (the Node
	// adapter drops them: "na" is not checked).
	em := startEmitter(t, nodeEnvOf(c))
	// PostgreSQL delivers every message to every node: a join is applied
	// before any later emit, nothing to wait for.
	checkEmitterOnSessiongate(t, em, cl, ids, alice, bob, nil, nil)
}

// A node whose Redis subscriber connection is killed (CLIENT KILL)
// resubscribes and serves its sockets again.
func TestRedisResubscribe(t *testing.T) {
	t.Parallel()
	rc := requireRedis(t)
	c, nodes := redisCluster(t, 2)
	alice := c.DB.newSession(t, 1)
	cl := startClients(t, sg("a", nodes[1], alice))
	cl.connected(t, "a")
	roomChannel := c.Key + "#/#" + alice.Room + "#"
	nodes[0].publish(t, []string{alice.Room}, "before", 1)
	cl.event(t, "a", "before")

	// Kill every subscriber connection of node 2.
	killed := 0
	for _, cli := range redisClientsOf(t, rc, nodes[1]) {
		if cli["sub"] == "0" && cli["psub"] == "0" {
			continue
		}
		rc.must(t, "CLIENT", "KILL", "ID", cli["id"])
		killed++
	}
	if killed == 0 {
		t.Fatalf("no subscriber connection of sg2 (pid %d) in CLIENT LIST", nodes[1].cmd.Process.Pid)
	}

	// It resubscribes the room it holds: Redis shows it (no event reaches
	// the test otherwise).
	deadline := time.Now().Add(waitTimeout)
	for rc.numsub(t, roomChannel) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s has no subscriber %s after its connection was killed", roomChannel, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	nodes[0].publish(t, []string{alice.Room}, "after", 2)
	if l := cl.event(t, "a", "after"); !argsEq(l.Args, `2`) {
		t.Errorf("a got %s", l)
	}
	if r := cl.out.all(func(l line) bool { return l.Type == "disconnect" }); len(r) != 0 {
		t.Errorf("the socket was disconnected by the bus outage: %v", r)
	}
	// It says so: /readyz reports the bus up again.
	res, err := http.Get(nodes[1].URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ready struct{ Bus string }
	if err := json.NewDecoder(res.Body).Decode(&ready); err != nil || res.StatusCode != 200 || ready.Bus != "ok" {
		t.Errorf("sg2 /readyz after the outage = %d bus %q (%v), want 200 bus ok", res.StatusCode, ready.Bus, err)
	}
}

// Deleting a session row (the Node app's logout) ends the user's sockets on
// every node, each through its own LISTEN.
func TestRevocationOnEveryNode(t *testing.T) {
	t.Parallel()
	c, nodes := redisCluster(t, 3)
	alice, bob := c.DB.newSession(t, 1), c.DB.newSession(t, 2)
	cl := startClients(t, sg("a1", nodes[0], alice), sg("a2", nodes[1], alice), sg("a3", nodes[2], alice), sg("b1", nodes[0], bob))
	cl.connected(t, "a1", "a2", "a3", "b1")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.DB.DeleteSession(ctx, alice.SID); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a1", "a2", "a3"} {
		if l := cl.event(t, n, "session_expired"); !argsEq(l.Args, `{"reason":"revoked"}`) {
			t.Errorf("%s got %s, want session_expired revoked", n, l)
		}
		if r := cl.disconnected(t, n); r != "io server disconnect" {
			t.Errorf("%s: disconnect reason %q", n, r)
		}
	}
	nodes[2].publish(t, []string{bob.Room}, "still", 1)
	cl.event(t, "b1", "still")
	never(t, cl, "session_expired", "b1")
}

// The HTTP API mirrors the emitter (contract §6): room operations and
// publishes with except on one node act on the sockets of every node, the
// Node server's included.
func TestHTTPRoomOperations(t *testing.T) {
	t.Parallel()
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) {
			t.Parallel()
			testHTTPRoomOperations(t, bus)
		})
	}
}

func testHTTPRoomOperations(t *testing.T, bus string) {
	var c clusterEnv
	var nodes []*sgNode
	if bus == "redis" {
		c, nodes = redisCluster(t, 2)
	} else {
		c, nodes = postgresCluster(t, 2)
	}
	node := startNodeServer(t, nodeEnvOf(c))
	alice, bob := c.DB.newSession(t, 1), c.DB.newSession(t, 2)
	cl := startClients(t,
		sg("a1", nodes[0], alice), sg("a2", nodes[1], alice), sg("b1", nodes[0], bob),
		clientSpec{Name: "na", URL: node.URL, Auth: map[string]any{"rooms": []string{alice.Room}}},
	)
	cl.connected(t, "a1", "a2", "b1", "na")
	all := []string{"a1", "a2", "b1", "na"}
	rooms := []string{alice.Room, bob.Room}
	barrier := func(name string) {
		t.Helper()
		nodes[1].publish(t, rooms, name, nil)
		waitAll(t, cl, name, all...)
	}
	op := func(n *sgNode, path, body string) {
		t.Helper()
		if code, res := n.post(t, path, body); code != 200 {
			t.Fatalf("%s: POST %s %s = %d %s", n.Name, path, body, code, res)
		}
	}

	// join on node 1: alice's sockets on both nodes and on the Node server.
	op(nodes[0], "/api/rooms/join", `{"to":["`+alice.Room+`"],"rooms":["incident:7"]}`)
	if bus == "redis" {
		requireRedis(t).waitSubscribers(t, c.Key+"#/#incident:7#", 2) // see waitSubscribers
	}
	nodes[1].publish(t, []string{"incident:7"}, "incident", map[string]any{"id": 7})
	barrier("barrier1")
	once(t, cl, "incident", []string{"a1", "a2", "na"}, `{"id":7}`)
	never(t, cl, "incident", "b1")

	// publish with except.
	b, _ := json.Marshal(map[string]any{"to": rooms, "except": []string{bob.Room}, "event": "not-bob", "data": 1})
	op(nodes[0], "/api/publish", string(b))
	barrier("barrier2")
	once(t, cl, "not-bob", []string{"a1", "a2", "na"}, `1`)
	never(t, cl, "not-bob", "b1")

	// leave on node 2.
	op(nodes[1], "/api/rooms/leave", `{"to":["incident:7"],"except":["`+bob.Room+`"],"rooms":["incident:7"]}`)
	nodes[0].publish(t, []string{"incident:7", bob.Room}, "after-leave", nil) // bob is in his room
	barrier("barrier3")
	never(t, cl, "after-leave", "a1", "a2", "na")
	once(t, cl, "after-leave", []string{"b1"})

	// disconnect alice everywhere; bob stays.
	op(nodes[1], "/api/disconnect", `{"to":["`+alice.Room+`"],"close":false}`)
	for _, n := range []string{"a1", "a2", "na"} {
		if r := cl.disconnected(t, n); r != "io server disconnect" {
			t.Errorf("%s: disconnect reason %q, want io server disconnect", n, r)
		}
	}
	nodes[1].publish(t, []string{bob.Room}, "still", nil)
	cl.event(t, "b1", "still")
}
