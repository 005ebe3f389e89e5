// Package adaptertest is the conformance suite of socketio.Adapter
// implementations, as alexedwards/scs runs one suite against every store:
// the in-memory adapter runs it with one server, the cluster adapters
// (packages redis, postgres) with three. It uses only the public API of
// package socketio and internal/siotest clients over real HTTP servers.
//
// What a cluster must provide for the suite:
//   - newCluster(t, n) returns n servers made with socketio.NewServer,
//     whose "/" namespaces share one cluster of their own (a fresh key or
//     channel prefix per call: checks must not see each other's traffic),
//     every node already counting the n of them (ServerCount: see
//     AwaitServers), with
//     Options.SocketData unset (the suite checks that Data travels) and no
//     hook or handler on "/"; t.Cleanup closes them;
//   - the broadcasts one node sends reach each other node in the order
//     they were sent, whatever their rooms: the suite sends a marker after
//     the broadcast under test and counts what arrived before it;
//   - the effect of SocketsJoin and SocketsLeave is visible to the next
//     FetchSockets and broadcast from the same node.
package adaptertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

// waitTimeout bounds every wait of the suite: a failure, not a measure.
const waitTimeout = 15 * time.Second

// Run runs the suite. newCluster must return n servers forming one cluster
// (see the package documentation).
func Run(t *testing.T, newCluster func(t *testing.T, n int) []*socketio.Server, n int) {
	checks := []struct {
		name string
		f    func(t *testing.T, c *cluster)
	}{
		{"ServerCount", testServerCount},
		{"BroadcastExactlyOnce", testBroadcastExactlyOnce},
		{"RoomsAndExcept", testRoomsAndExcept},
		{"SocketsJoinLeave", testSocketsJoinLeave},
		{"DisconnectSockets", testDisconnectSockets},
		{"FetchSockets", testFetchSockets},
		{"AllRooms", testAllRooms},
		{"ServerSideEmit", testServerSideEmit},
		{"BroadcastWithAck", testBroadcastWithAck},
		{"JoinWindow", testJoinWindow},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			c.f(t, newTestCluster(t, newCluster(t, n)))
		})
	}
}

// AwaitServers waits until the "/" namespace of every server counts n
// servers (Adapter.ServerCount), for a newCluster whose nodes discover
// each other in the background; it fails with ctx's error, naming the
// count last seen. The bus gives no event to wait for: it asks every 10 ms.
func AwaitServers(ctx context.Context, servers []*socketio.Server, n int) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ready, last := true, 0
		var lastErr error
		for _, srv := range servers {
			got, err := srv.Of("/").Adapter().ServerCount(ctx)
			if err != nil || got != n {
				ready, last, lastErr = false, got, err
				break
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("adaptertest: %d servers counted (err %v), want %d: %w", last, lastErr, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// cluster is the servers under test, each served over HTTP.
type cluster struct {
	t     *testing.T
	nodes []*socketio.Server
	urls  []string
}

// auth is the CONNECT payload of the suite's clients: the rooms the
// socket starts in and its Data.
type auth struct {
	Rooms []string `json:"rooms"`
	Name  string   `json:"name"`
}

func newTestCluster(t *testing.T, nodes []*socketio.Server) *cluster {
	t.Helper()
	if len(nodes) == 0 {
		t.Fatal("adaptertest: newCluster returned no server")
	}
	c := &cluster{t: t, nodes: nodes}
	for _, srv := range nodes {
		srv.Of("/").OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
			var a auth
			if raw := ev.Socket.Handshake().Auth; raw != nil {
				if err := json.Unmarshal(raw, &a); err != nil {
					return socketio.ConnectReply{}, err
				}
			}
			return socketio.ConnectReply{Rooms: a.Rooms, Data: map[string]any{"name": a.Name}}, nil
		})
		hs := httptest.NewServer(srv)
		t.Cleanup(hs.Close)
		c.urls = append(c.urls, hs.URL)
	}
	return c
}

func (c *cluster) ns(node int) *socketio.Namespace { return c.nodes[node].Of("/") }

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// client is a connected client of the suite.
type client struct {
	*siotest.Client
	sid  string
	node int
	name string
}

// dial connects a client to node, starting in rooms, and waits for its
// CONNECT; its acknowledgements answer with its name.
func (c *cluster) dial(t *testing.T, node int, name string, rooms ...string) *client {
	t.Helper()
	cl, err := c.tryDial(t, node, name, rooms...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// tryDial is dial for another goroutine than the test's.
func (c *cluster) tryDial(t *testing.T, node int, name string, rooms ...string) (*client, error) {
	sc, err := siotest.Dial(ctx(t), c.urls[node], siotest.Options{
		Auth: auth{Rooms: rooms, Name: name},
		Ack:  func(siotest.Event) []any { return []any{name} },
	})
	if err != nil {
		return nil, fmt.Errorf("dial node %d: %w", node, err)
	}
	t.Cleanup(func() { sc.Close() })
	sid, err := sc.Connected(ctx(t))
	if err != nil {
		return nil, fmt.Errorf("connect %s to node %d: %w", name, node, err)
	}
	return &client{Client: sc, sid: sid, node: node, name: name}, nil
}

// spread connects two clients per node in the rooms of the layout below;
// the clients are named "<room letters>-<node>".
//
//	a-i:  rooms a     ab-i: rooms a, b     b-i: room b     none-i: no room
func (c *cluster) spread(t *testing.T) map[string]*client {
	t.Helper()
	out := make(map[string]*client)
	for node := range c.nodes {
		for _, l := range []struct {
			prefix string
			rooms  []string
		}{{"a", []string{"a"}}, {"ab", []string{"a", "b"}}, {"b", []string{"b"}}, {"none", nil}} {
			name := l.prefix + "-" + strconv.Itoa(node)
			out[name] = c.dial(t, node, name, l.rooms...)
		}
	}
	return out
}

var seq atomic.Int64

// check emits event "x" (with a fresh number) through op, then a marker to
// every socket from the same node, and checks that exactly the clients
// named in want got "x", once, before the marker.
func (c *cluster) check(t *testing.T, from int, op socketio.BroadcastOperator, clients map[string]*client, want ...string) {
	t.Helper()
	n := seq.Add(1)
	if err := op.Emit(ctx(t), "x", n); err != nil {
		t.Fatalf("emit from node %d: %v", from, err)
	}
	if err := c.ns(from).Emit(ctx(t), "mark", n); err != nil {
		t.Fatalf("emit mark from node %d: %v", from, err)
	}
	var got []string
	for name, cl := range clients {
		count := receivedBefore(t, cl, "x", n)
		if count > 1 {
			t.Errorf("%s got the broadcast %d times", name, count)
		}
		if count > 0 {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("broadcast from node %d (%+v) reached %v, want %v", from, op.Options(), got, want)
	}
}

// receivedBefore waits for the marker n and counts the events name with
// argument n before it.
func receivedBefore(t *testing.T, cl *client, name string, n int64) int {
	t.Helper()
	for {
		ev, err := cl.WaitEvent(ctx(t), "mark")
		if err != nil {
			t.Fatalf("%s: %v", cl.name, err)
		}
		if argInt(ev, 0) == n {
			break
		}
	}
	count := 0
	for _, ev := range cl.Events() {
		if ev.Name == "mark" && argInt(ev, 0) == n {
			break
		}
		if ev.Name == name && argInt(ev, 0) == n {
			count++
		}
		if ev.Early {
			t.Errorf("%s got %s before its CONNECT", cl.name, ev.Name)
		}
	}
	return count
}

func argInt(ev siotest.Event, i int) int64 {
	if len(ev.Args) <= i {
		return -1
	}
	var v int64
	if json.Unmarshal(ev.Args[i], &v) != nil {
		return -1
	}
	return v
}

// names returns the names of clients with one of the prefixes, on every
// node.
func (c *cluster) names(prefixes ...string) []string {
	var out []string
	for node := range c.nodes {
		for _, p := range prefixes {
			out = append(out, p+"-"+strconv.Itoa(node))
		}
	}
	return out
}

func testServerCount(t *testing.T, c *cluster) {
	for i := range c.nodes {
		got, err := c.ns(i).Adapter().ServerCount(ctx(t))
		if err != nil || got != len(c.nodes) {
			t.Errorf("node %d: ServerCount = %d, %v; want %d", i, got, err, len(c.nodes))
		}
	}
}

func testBroadcastExactlyOnce(t *testing.T, c *cluster) {
	clients := c.spread(t)
	all := c.names("a", "ab", "b", "none")
	for from := range c.nodes {
		ns := c.ns(from)
		c.check(t, from, ns.To(), clients, all...)
		c.check(t, from, ns.To("a"), clients, c.names("a", "ab")...)
		// ab-i is in both rooms and gets the broadcast once.
		c.check(t, from, ns.To("a", "b"), clients, c.names("a", "ab", "b")...)
		c.check(t, from, ns.To("a").Local(), clients, "a-"+strconv.Itoa(from), "ab-"+strconv.Itoa(from))
	}
}

func testRoomsAndExcept(t *testing.T, c *cluster) {
	clients := c.spread(t)
	last := len(c.nodes) - 1
	target := clients["none-"+strconv.Itoa(last)]
	for from := range c.nodes {
		ns := c.ns(from)
		c.check(t, from, ns.To("a").Except("b"), clients, c.names("a")...)
		c.check(t, from, ns.Except("a"), clients, c.names("b", "none")...)
		c.check(t, from, ns.To("zzz"), clients)
		// A socket's id is a room holding only it, on any node.
		c.check(t, from, ns.To(target.sid), clients, target.name)
		c.check(t, from, ns.To("b").Except(clients["ab-0"].sid), clients, slices.DeleteFunc(c.names("ab", "b"), func(s string) bool { return s == "ab-0" })...)
	}
}

func testSocketsJoinLeave(t *testing.T, c *cluster) {
	clients := c.spread(t)
	from := len(c.nodes) - 1
	ns := c.ns(from)
	if err := ns.To("a").Except("b").SocketsJoin(ctx(t), "c"); err != nil {
		t.Fatal(err)
	}
	expectFetched(t, ns.To("c"), c.names("a")...)
	c.check(t, from, ns.To("c"), clients, c.names("a")...)
	if err := ns.To("c").SocketsLeave(ctx(t), "c", "a"); err != nil {
		t.Fatal(err)
	}
	expectFetched(t, ns.To("c"))
	expectFetched(t, ns.To("a"), c.names("ab")...)
	c.check(t, from, ns.To("a", "c"), clients, c.names("ab")...)
}

// expectFetched checks that op.FetchSockets returns the clients named.
func expectFetched(t *testing.T, op socketio.BroadcastOperator, want ...string) {
	t.Helper()
	infos, err := op.FetchSockets(ctx(t))
	if err != nil {
		t.Fatalf("FetchSockets(%+v): %v", op.Options(), err)
	}
	var got []string
	for _, in := range infos {
		got = append(got, dataName(in.Data))
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("FetchSockets(%+v) = %v, want %v", op.Options(), got, want)
	}
}

// dataName returns the name in a socket's Data, as FetchSockets returns it
// from this node or another.
func dataName(d any) string {
	b, _ := json.Marshal(d)
	var v struct{ Name string }
	json.Unmarshal(b, &v)
	return v.Name
}

func testDisconnectSockets(t *testing.T, c *cluster) {
	clients := c.spread(t)
	ns := c.ns(0)
	if err := ns.To("b").Except("a").DisconnectSockets(ctx(t), false); err != nil {
		t.Fatal(err)
	}
	for _, name := range c.names("b") {
		d, err := clients[name].WaitDisconnect(ctx(t))
		if err != nil || d.Reason != siotest.ReasonServerDisconnect {
			t.Errorf("%s: %+v, %v; want %q", name, d, err, siotest.ReasonServerDisconnect)
		}
	}
	if err := ns.To("a").Except("b").DisconnectSockets(ctx(t), true); err != nil {
		t.Fatal(err)
	}
	for _, name := range c.names("a") {
		d, err := clients[name].WaitDisconnect(ctx(t))
		if err != nil || d.Reason != siotest.ReasonServerDisconnect {
			t.Errorf("%s: %+v, %v; want %q", name, d, err, siotest.ReasonServerDisconnect)
		}
	}
	expectFetched(t, ns.To(), c.names("ab", "none")...)
	for _, name := range c.names("ab", "none") {
		if d, gone := clients[name].Disconnected(); gone {
			t.Errorf("%s disconnected too: %+v", name, d)
		}
	}
}

func testFetchSockets(t *testing.T, c *cluster) {
	clients := c.spread(t)
	for from := range c.nodes {
		infos, err := c.ns(from).To("b").FetchSockets(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 2*len(c.nodes) {
			t.Errorf("node %d: %d sockets in b, want %d", from, len(infos), 2*len(c.nodes))
		}
		for _, in := range infos {
			name := dataName(in.Data)
			cl := clients[name]
			if cl == nil {
				t.Errorf("node %d: socket %s with data %v", from, in.ID, in.Data)
				continue
			}
			wantRooms := []string{cl.sid, "b"}
			if name[:2] == "ab" {
				wantRooms = []string{cl.sid, "a", "b"}
			}
			rooms := slices.Clone(in.Rooms)
			if len(rooms) > 0 {
				sort.Strings(rooms[1:])
			}
			if in.ID != cl.sid || !slices.Equal(rooms, wantRooms) {
				t.Errorf("node %d: %s is %s in %v, want %s in %v", from, name, in.ID, in.Rooms, cl.sid, wantRooms)
			}
			if in.Local != (cl.node == from) {
				t.Errorf("node %d: %s (on node %d) has Local %v", from, name, cl.node, in.Local)
			}
			if hs := in.Handshake; hs.Issued == 0 || hs.Address == "" || hs.Time == "" || hs.URL == "" || hs.Query["EIO"] != "4" {
				t.Errorf("node %d: %s has handshake %+v", from, name, in.Handshake)
			}
		}
	}
}

func testAllRooms(t *testing.T, c *cluster) {
	clients := c.spread(t)
	for from := range c.nodes {
		rooms, err := c.ns(from).AllRooms(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"a", "b", clients["none-0"].sid, clients["a-"+strconv.Itoa(len(c.nodes)-1)].sid} {
			if !slices.Contains(rooms, want) {
				t.Errorf("node %d: AllRooms = %v, missing %s", from, rooms, want)
			}
		}
	}
}

func testServerSideEmit(t *testing.T, c *cluster) {
	type got struct {
		node int
		ev   socketio.Event
	}
	events := make(chan got, 16*len(c.nodes))
	for i := range c.nodes {
		c.ns(i).OnServerEvent(func(ev socketio.Event, ack func(arg any)) {
			events <- got{i, ev}
			if ack != nil {
				ack(fmt.Sprintf("node %d", i))
			}
		})
	}
	if err := c.ns(0).ServerSideEmit(ctx(t), "hello", "world", 1); err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]bool)
	for range len(c.nodes) - 1 {
		select {
		case g := <-events:
			if g.node == 0 {
				t.Errorf("the sending node got its own server-side event")
			}
			if g.ev.Name != "hello" || len(g.ev.Args) != 2 || g.ev.Args[0] != "world" || !isNumber(g.ev.Args[1], 1) {
				t.Errorf("node %d got %+v", g.node, g.ev)
			}
			seen[g.node] = true
		case <-ctx(t).Done():
			t.Fatalf("server-side event reached %d of %d nodes", len(seen), len(c.nodes)-1)
		}
	}
	acks, err := c.ns(0).ServerSideEmitWithAck(ctx(t), "ping")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range acks {
		names = append(names, fmt.Sprint(a))
	}
	slices.Sort(names)
	var want []string
	for i := 1; i < len(c.nodes); i++ {
		want = append(want, fmt.Sprintf("node %d", i))
	}
	if !slices.Equal(names, want) {
		t.Errorf("ServerSideEmitWithAck = %v, want %v", names, want)
	}
	for range len(c.nodes) - 1 {
		if g := <-events; g.node == 0 || g.ev.Name != "ping" {
			t.Errorf("node %d got %+v, want ping", g.node, g.ev)
		}
	}
	// The events and acks of the first emit were all there is: had node 0
	// got its own, it would have come before the ping.
	select {
	case g := <-events:
		t.Errorf("extra server-side event %+v on node %d", g.ev, g.node)
	default:
	}
}

// isNumber reports whether v is the number n, as a bus may decode it.
func isNumber(v any, n int64) bool {
	switch x := v.(type) {
	case float64:
		return x == float64(n)
	case int64:
		return x == n
	case uint64:
		return x == uint64(n)
	case int:
		return int64(x) == n
	}
	return false
}

func testBroadcastWithAck(t *testing.T, c *cluster) {
	c.spread(t)
	for from := range c.nodes {
		acks, err := c.ns(from).To("a").Timeout(waitTimeout).EmitWithAck(ctx(t), "q", 1)
		if err != nil {
			t.Fatalf("node %d: %v", from, err)
		}
		var got []string
		for _, a := range acks {
			if len(a) == 0 {
				t.Errorf("node %d: empty ack", from)
				continue
			}
			got = append(got, fmt.Sprint(a[0]))
		}
		slices.Sort(got)
		want := c.names("a", "ab")
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("node %d: acks from %v, want %v", from, got, want)
		}
	}
	// Nobody in the room: done at once, with no ack.
	if acks, err := c.ns(0).To("zzz").Timeout(waitTimeout).EmitWithAck(ctx(t), "q"); err != nil || len(acks) != 0 {
		t.Errorf("empty room: %v, %v", acks, err)
	}
}

// testJoinWindow hammers a room with broadcasts from every node while
// sockets join it on every node: each socket gets every broadcast sent
// after it saw its CONNECT (and none before the CONNECT), in order, with no
// gap, up to the last.
func testJoinWindow(t *testing.T, c *cluster) {
	const perNode = 12
	sent := make([]atomic.Int64, len(c.nodes)) // the last number each node began to send
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for node := range c.nodes {
		wg.Go(func() {
			ticker := time.NewTicker(200 * time.Microsecond) // a pace, not an assertion
			defer ticker.Stop()
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				case <-ticker.C:
				}
				sent[node].Store(n)
				if err := c.ns(node).To("w").Emit(context.Background(), "tick", node, n); err != nil {
					t.Errorf("node %d: %v", node, err)
					return
				}
			}
		})
	}
	type joined struct {
		cl    *client
		after []int64 // sent[] when it saw CONNECT
	}
	var mu sync.Mutex
	var all []joined
	var dials sync.WaitGroup
	for node := range c.nodes {
		for i := range perNode {
			dials.Go(func() {
				cl, err := c.tryDial(t, node, fmt.Sprintf("w%d-%d", i, node), "w")
				if err != nil {
					t.Error(err)
					return
				}
				after := make([]int64, len(c.nodes))
				for k := range after {
					after[k] = sent[k].Load()
				}
				mu.Lock()
				all = append(all, joined{cl, after})
				mu.Unlock()
			})
		}
	}
	dials.Wait()
	close(stop)
	wg.Wait()
	// The last tick of each node, then a marker from each, in order behind
	// them.
	last := make([]int64, len(c.nodes))
	for node := range c.nodes {
		last[node] = sent[node].Load()
		if err := c.ns(node).To("w").Emit(ctx(t), "end", node); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range all {
		for range c.nodes {
			if _, err := j.cl.WaitEvent(ctx(t), "end"); err != nil {
				t.Fatalf("%s: %v", j.cl.name, err)
			}
		}
		next := make([]int64, len(c.nodes)) // the next number expected from each node; 0 before the first
		for _, ev := range j.cl.Events() {
			if ev.Early {
				t.Errorf("%s: %s before CONNECT", j.cl.name, ev.Name)
			}
			if ev.Name != "tick" {
				continue
			}
			node, n := argInt(ev, 0), argInt(ev, 1)
			if node < 0 || int(node) >= len(c.nodes) {
				t.Fatalf("%s: tick %v", j.cl.name, ev.Args)
			}
			if next[node] != 0 && n != next[node] {
				t.Errorf("%s: tick %d of node %d after %d: lost or reordered", j.cl.name, n, node, next[node]-1)
			}
			if next[node] == 0 && n > j.after[node]+1 {
				t.Errorf("%s: first tick of node %d is %d, but %d was sent after its CONNECT", j.cl.name, node, n, j.after[node]+1)
			}
			next[node] = n + 1
		}
		for node := range c.nodes {
			if last[node] > j.after[node] && next[node] != last[node]+1 {
				t.Errorf("%s: last tick of node %d is %d, want %d", j.cl.name, node, next[node]-1, last[node])
			}
		}
	}
}
