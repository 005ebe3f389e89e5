package redis

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/adaptertest"
)

// redisURL is the test Redis: REDIS_URL, else the local one. A Redis that
// does not answer fails the test (skipped only under -short).
func redisURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the tests that need Redis")
	}
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379"
	}
	return u
}

// admin is a plain client of the test Redis, for PUBLISH, PUBSUB, CLIENT
// and ACL.
func admin(t testing.TB) rueidis.Client {
	t.Helper()
	opts, err := rueidis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.DisableCache = true
	c, err := rueidis.NewClient(opts)
	if err != nil {
		t.Fatalf("Redis at %s is not reachable (start it, or run with -short): %v", redisURL(t), err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testKey is a fresh channel prefix, so tests do not hear each other; it
// starts with "socket.io" so the documented ACL pattern covers it.
func testKey() string { return "socket.io-t" + uid(8) }

// newCluster is a Cluster on the test Redis, closed at cleanup.
func newCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.URL == "" {
		opts.URL = redisURL(t)
	}
	c, err := NewCluster(waitCtx(t), opts)
	if err != nil {
		t.Fatalf("Redis at %s: %v", opts.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newServers returns n servers on one fresh key, their "/" namespace ready
// (counted by every node), and their clusters.
func newServers(t testing.TB, n int, opts Options) ([]*socketio.Server, []*Cluster) {
	t.Helper()
	if opts.Key == "" {
		opts.Key = testKey()
	}
	var srvs []*socketio.Server
	var cls []*Cluster
	for range n {
		cl := newCluster(t, opts)
		srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
		t.Cleanup(func() { srv.Close() })
		if err := srv.Of("/").Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
		cls = append(cls, cl)
	}
	return srvs, cls
}

// TestConformance runs the adapter suite with three nodes.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T, n int) []*socketio.Server {
		srvs, _ := newServers(t, n, Options{UnsubscribeLinger: 50 * time.Millisecond})
		return srvs
	}, 3)
}

// node is a server with the test's own connect hook: a client's auth
// {"rooms": [...]} are its starting rooms.
type node struct {
	srv *socketio.Server
	cl  *Cluster
	url string
}

func startNodes(t *testing.T, n int, opts Options) []*node {
	t.Helper()
	srvs, cls := newServers(t, n, opts)
	out := make([]*node, n)
	for i, srv := range srvs {
		hook := func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
			var a struct {
				Rooms []string `json:"rooms"`
			}
			if raw := ev.Socket.Handshake().Auth; raw != nil {
				_ = json.Unmarshal(raw, &a)
			}
			return socketio.ConnectReply{Rooms: a.Rooms}, nil
		}
		srv.OnConnecting(hook)
		srv.Of("/admin").OnConnecting(hook)
		if err := srv.Of("/admin").Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		t.Cleanup(hs.Close)
		out[i] = &node{srv: srv, cl: cls[i], url: hs.URL}
	}
	return out
}

func dial(t *testing.T, url, nsp string, rooms ...string) (*siotest.Client, string) {
	t.Helper()
	c, err := siotest.Dial(waitCtx(t), url, siotest.Options{Namespace: nsp, Auth: map[string]any{"rooms": rooms}, Ack: func(siotest.Event) []any { return []any{"ok"} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sid, err := c.Connected(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return c, sid
}

// channels returns the subscribed channels of key's namespace "/"
// (PUBSUB CHANNELS).
func channels(t *testing.T, rc rueidis.Client, key string) []string {
	t.Helper()
	chs, err := rc.Do(waitCtx(t), rc.B().PubsubChannels().Pattern(key+"#/#*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(chs)
	return chs
}

// until polls cond (a Redis state, which no event announces) until it holds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := waitCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestSubscriptions: a node subscribes a room's channel when its first
// socket joins and unsubscribes after the last leaves; a node holding no
// member of the room is not subscribed, so it never receives its traffic.
func TestSubscriptions(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 2, Options{Key: testKey(), UnsubscribeLinger: 20 * time.Millisecond})
	key := nodes[0].cl.opts.Key
	room := key + "#/#room1#"
	numsub := func() int64 {
		m, err := rc.Do(waitCtx(t), rc.B().PubsubNumsub().Channel(room).Build()).AsIntMap()
		if err != nil {
			t.Fatal(err)
		}
		return m[room]
	}
	if got := channels(t, rc, key); !slices.Equal(got, []string{key + "#/#"}) {
		t.Fatalf("before any join: channels %v", got)
	}
	c1, _ := dial(t, nodes[0].url, "/", "room1")
	if n := numsub(); n != 1 {
		t.Fatalf("after a join on node 0: NUMSUB %d, want 1 (node 1 holds no member)", n)
	}
	c2, _ := dial(t, nodes[0].url, "/", "room1")
	if n := numsub(); n != 1 {
		t.Fatalf("second member on node 0: NUMSUB %d, want 1 (one SUBSCRIBE per node)", n)
	}
	before := nodes[1].cl.Stats().MessagesIn
	if err := nodes[0].srv.Of("/").To("room1").Emit(waitCtx(t), "x", 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*siotest.Client{c1, c2} {
		if _, err := c.WaitEvent(waitCtx(t), "x"); err != nil {
			t.Fatal(err)
		}
	}
	// The marker on the namespace channel reaches node 1 after the room
	// message would have.
	if err := nodes[0].srv.Of("/").Emit(waitCtx(t), "mark"); err != nil {
		t.Fatal(err)
	}
	until(t, "node 1 to hear the marker", func() bool { return nodes[1].cl.Stats().MessagesIn > before })
	if got := nodes[1].cl.Stats().MessagesIn - before; got != 1 {
		t.Errorf("node 1 received %d messages, want only the marker", got)
	}
	c1.Close()
	if _, err := c2.WaitEvent(waitCtx(t), "mark"); err != nil {
		t.Fatal(err)
	}
	if n := numsub(); n != 1 {
		t.Fatalf("one member left: NUMSUB %d, want 1", n)
	}
	c2.Close()
	until(t, "the UNSUBSCRIBE after the last member left", func() bool { return numsub() == 0 })
	until(t, "only the 8 fixed channels of / and /admin (the socket-id channels go too)", func() bool {
		return nodes[0].cl.Stats().Subscriptions == 8
	})
}

// TestSocketIDEmit: our emit to one socket id goes on the namespace channel
// (Node nodes PSUBSCRIBE it; ours SUBSCRIBE it) and reaches the socket on
// another node; a Node publisher's, on the socket's own channel, too.
func TestSocketIDEmit(t *testing.T) {
	nodes := startNodes(t, 2, Options{})
	c, sid := dial(t, nodes[1].url, "/")
	if !looksLikeSocketID(sid) {
		t.Fatalf("socket id %q does not look like one", sid)
	}
	if err := nodes[0].srv.Of("/").To(sid).Emit(waitCtx(t), "direct", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(t), "direct"); err != nil {
		t.Fatal(err)
	}
	// A Node publisher's io.to(sid) goes to the socket's own channel.
	rc := admin(t)
	p, err := clusterwire.Marshal([]any{"NodeXY", clusterwire.Map{{Key: "type", Value: 2}, {Key: "data", Value: []any{"node"}}, {Key: "nsp", Value: "/"}},
		clusterwire.Map{{Key: "rooms", Value: []string{sid}}, {Key: "except", Value: []string{}}, {Key: "flags", Value: clusterwire.Map{}}}})
	if err != nil {
		t.Fatal(err)
	}
	ch := nodes[0].cl.opts.Key + "#/#" + sid + "#"
	if err := rc.Do(waitCtx(t), rc.B().Publish().Channel(ch).Message(rueidis.BinaryString(p)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(t), "node"); err != nil {
		t.Fatal(err)
	}
	if looksLikeSocketID("user:42") || looksLikeSocketID("room1") {
		t.Error("application rooms taken for socket ids")
	}
}

// TestEmitterCapture: the exact bytes @socket.io/redis-emitter 5.1.0
// published (shared/interop capture), PUBLISHed on our key, do what the
// emitter meant: broadcasts (rooms, except, binary, another namespace),
// socketsJoin, serverSideEmit, disconnectSockets.
func TestEmitterCapture(t *testing.T) {
	b, err := os.ReadFile("../internal/clusterwire/testdata/redis-emitter-capture.json")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []struct{ Ch, Hex string }
	if err := json.Unmarshal(b, &msgs); err != nil {
		t.Fatal(err)
	}
	rc := admin(t)
	nodes := startNodes(t, 1, Options{})
	key := nodes[0].cl.opts.Key
	adminNsp := nodes[0].srv.Of("/admin")
	if err := adminNsp.Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	server := make(chan socketio.Event, 1)
	nodes[0].srv.Of("/").OnServerEvent(func(ev socketio.Event, ack func(any)) { server <- ev })
	all, _ := dial(t, nodes[0].url, "/")
	r1, _ := dial(t, nodes[0].url, "/", "room1", "r1")
	r3, _ := dial(t, nodes[0].url, "/", "r2", "r3")
	adm, _ := dial(t, nodes[0].url, "/admin")
	publish := func(i int) {
		t.Helper()
		ch := key + strings.TrimPrefix(msgs[i].Ch, "socket.io")
		p, err := hex.DecodeString(msgs[i].Hex)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Do(waitCtx(t), rc.B().Publish().Channel(ch).Message(rueidis.BinaryString(p)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(c *siotest.Client, name string) siotest.Event {
		t.Helper()
		ev, err := c.WaitEvent(waitCtx(t), name)
		if err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
		return ev
	}
	publish(0) // hello world, to all
	for _, c := range []*siotest.Client{all, r1, r3} {
		if ev := wait(c, "hello"); string(ev.Args[0]) != `"world"` {
			t.Errorf("hello: %s", ev.Args[0])
		}
	}
	publish(1) // bin to room1: a binary event
	if ev := wait(r1, "bin"); !strings.Contains(string(ev.Args[0]), "_placeholder") || string(ev.Args[1]) != `{"a":1}` {
		t.Errorf("bin: %s", ev.Args)
	}
	publish(2) // multi to r1, r2 except r3
	wait(r1, "multi")
	publish(3) // /admin
	wait(adm, "adm")
	publish(4) // socketsJoin: room1 joins room2
	publish(6) // serverSideEmit ping 1, after the join in the request queue
	select {
	case ev := <-server:
		if ev.Name != "ping" || len(ev.Args) != 1 || !isOne(ev.Args[0]) {
			t.Errorf("server event %+v", ev)
		}
	case <-waitCtx(t).Done():
		t.Fatal("no server-side event")
	}
	if err := nodes[0].srv.Of("/").To("room2").Emit(waitCtx(t), "joined"); err != nil {
		t.Fatal(err)
	}
	wait(r1, "joined")
	if err := nodes[0].srv.Of("/").Emit(waitCtx(t), "mark"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*siotest.Client{all, r3} {
		wait(c, "mark")
		for _, ev := range c.Events() {
			if ev.Name == "bin" || ev.Name == "joined" || ev.Name == "multi" && c == r3 {
				t.Errorf("%s reached a socket outside its rooms", ev.Name)
			}
		}
	}
	publish(5) // disconnectSockets(true)
	for _, c := range []*siotest.Client{all, r1, r3} {
		if _, err := c.WaitDisconnect(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
}

func isOne(v any) bool {
	switch v := v.(type) {
	case int64:
		return v == 1
	case float64:
		return v == 1
	}
	return false
}

// TestRequestTimeout: a silent subscriber of the request channel (a spy,
// a dead peer) makes our requests fail with ErrRequestTimeout after
// RequestTimeout, counted, and leaves no pending request behind.
func TestRequestTimeout(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 1, Options{RequestTimeout: 200 * time.Millisecond})
	key := nodes[0].cl.opts.Key
	spy, cancel := rc.Dedicate()
	defer cancel()
	spy.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(rueidis.PubSubMessage) {}})
	if err := spy.Do(waitCtx(t), spy.B().Subscribe().Channel(key+"-request#/#").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	ns := nodes[0].srv.Of("/")
	until(t, "the spy to be counted", func() bool {
		n, _ := ns.Adapter().ServerCount(waitCtx(t))
		return n == 2
	})
	if _, err := ns.To().FetchSockets(waitCtx(t)); !errors.Is(err, socketio.ErrRequestTimeout) {
		t.Errorf("FetchSockets: %v, want ErrRequestTimeout", err)
	}
	if _, err := ns.ServerSideEmitWithAck(waitCtx(t), "e"); !errors.Is(err, socketio.ErrRequestTimeout) {
		t.Errorf("ServerSideEmitWithAck: %v, want ErrRequestTimeout", err)
	}
	if s := nodes[0].cl.Stats(); s.RequestTimeouts != 2 {
		t.Errorf("RequestTimeouts = %d, want 2", s.RequestTimeouts)
	}
	a := ns.Adapter().(*Adapter)
	a.mu.Lock()
	left := len(a.requests)
	a.mu.Unlock()
	if left != 0 {
		t.Errorf("%d requests left pending", left)
	}
}

// TestReconnect: a node whose subscriber connection is killed keeps its
// sockets, reconnects, subscribes its rooms again, counts the outage, and
// a broadcast after that reaches its sockets.
func TestReconnect(t *testing.T) {
	rc := admin(t)
	name := "sgtest-" + uid(6)
	nodes := startNodes(t, 2, Options{ClientName: name})
	c, _ := dial(t, nodes[1].url, "/", "room1")
	list, err := rc.Do(waitCtx(t), rc.B().ClientList().TypePubsub().Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") && strings.Contains(line, " sub=10 ") {
			f := strings.Fields(line)
			id, _ := strconv.ParseInt(strings.TrimPrefix(f[0], "id="), 10, 64)
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("found %d subscriber connections holding room1 (8 fixed channels, room1, its socket id), want 1:\n%s", len(ids), list)
	}
	if err := rc.Do(waitCtx(t), rc.B().ClientKill().Id(ids[0]).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	cl := nodes[1].cl
	until(t, "the outage to be counted and the connection restored", func() bool {
		s := cl.Stats()
		return s.Outages == 1 && s.Connected
	})
	until(t, "room1 subscribed again", func() bool {
		for _, ch := range channels(t, rc, nodes[0].cl.opts.Key) {
			if strings.HasSuffix(ch, "#room1#") {
				return true
			}
		}
		return false
	})
	if err := nodes[0].srv.Of("/").To("room1").Emit(waitCtx(t), "after"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(t), "after"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Ready(waitCtx(t)); err != nil {
		t.Errorf("Ready after reconnecting: %v", err)
	}
}

// TestACL: the documented ACL confines a user to the socket.io channels
// and the commands the adapter sends; a cluster authenticating as that user
// (user:password in the URL) works.
func TestACL(t *testing.T) {
	rc := admin(t)
	user := "sgtest-" + uid(6)
	// The line of the package documentation, with a test user's name.
	acl := "ACL SETUSER " + user + " on >pw resetchannels &socket.io* -@all +subscribe +unsubscribe +publish +pubsub|numsub +ping +hello +auth +client|setname"
	if err := rc.Do(waitCtx(t), rc.B().Arbitrary(strings.Fields(acl)...).Build()).Error(); err != nil {
		t.Fatalf("%s: %v", acl, err)
	}
	t.Cleanup(func() { rc.Do(context.Background(), rc.B().AclDeluser().Username(user).Build()) })
	u := strings.Replace(redisURL(t), "redis://", "redis://"+user+":pw@", 1)
	nodes := startNodes(t, 2, Options{URL: u})
	c, _ := dial(t, nodes[1].url, "/", "room1")
	if err := nodes[0].srv.Of("/").To("room1").Emit(waitCtx(t), "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(t), "hi"); err != nil {
		t.Fatal(err)
	}
	socks, err := nodes[0].srv.Of("/").To().FetchSockets(waitCtx(t))
	if err != nil || len(socks) != 1 {
		t.Fatalf("FetchSockets as the ACL user: %v, %v", socks, err)
	}
	if _, err := NewCluster(waitCtx(t), Options{URL: strings.Replace(u, ":pw@", ":wrong@", 1)}); err == nil {
		t.Error("a wrong password connected")
	}
	// The user cannot publish outside its channels.
	uc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{strings.TrimPrefix(redisURL(t), "redis://")}, Username: user, Password: "pw", DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if err := uc.Do(waitCtx(t), uc.B().Publish().Channel("other#/#").Message("x").Build()).Error(); err == nil {
		t.Error("the ACL user published outside &socket.io*")
	}
}

// TestFetchSocketsNoSecrets: a fetchSockets answer carries no header, no
// cookie, and what SocketData gives.
func TestFetchSocketsNoSecrets(t *testing.T) {
	key := testKey()
	var srvs []*socketio.Server
	for range 2 {
		cl := newCluster(t, Options{Key: key})
		srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter, SocketData: func(s *socketio.Socket) any {
			return map[string]any{"userId": "42"}
		}})
		t.Cleanup(func() { srv.Close() })
		if err := srv.Of("/").Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
	}
	rc := admin(t)
	hs := httptest.NewServer(srvs[1])
	defer hs.Close()
	c, err := siotest.Dial(waitCtx(t), hs.URL, siotest.Options{Header: map[string][]string{"Cookie": {"connect.sid=s%3Asecret"}, "Authorization": {"Bearer secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Connected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Read the raw answer on the response channel, as a Node peer would.
	spy, cancel := rc.Dedicate()
	defer cancel()
	raw := make(chan string, 4)
	spy.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) { raw <- m.Message }})
	if err := spy.Do(waitCtx(t), spy.B().Subscribe().Channel(key+"-response#/#").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	socks, err := srvs[0].Of("/").To().FetchSockets(waitCtx(t))
	if err != nil || len(socks) != 1 {
		t.Fatalf("FetchSockets: %v, %v", socks, err)
	}
	if d, _ := socks[0].Data.(map[string]any); d["userId"] != "42" {
		t.Errorf("data %#v", socks[0].Data)
	}
	answer := <-raw
	if strings.Contains(answer, "secret") || strings.Contains(strings.ToLower(answer), "cookie") {
		t.Errorf("the answer carries a secret: %s", answer)
	}
	if !strings.Contains(answer, `"headers":{}`) {
		t.Errorf("the answer has no empty headers: %s", answer)
	}
}

// TestJoinWindowHammer: a room hammered with broadcasts while a socket
// joins it on another node: every broadcast that started after Join
// returned reaches the socket.
func TestJoinWindowHammer(t *testing.T) {
	nodes := startNodes(t, 2, Options{})
	var done atomic.Int64
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := nodes[0].srv.Of("/").To("hot").Emit(context.Background(), "n", i); err != nil {
				t.Error(err)
				return
			}
			done.Store(i)
		}
	}()
	joined := make(chan int64, 1)
	nodes[1].srv.Of("/").On("join", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		if err := s.Join(s.Context(), "hot"); err != nil {
			t.Error(err)
		}
		joined <- done.Load()
		_ = ack()
	})
	c, _ := dial(t, nodes[1].url, "/")
	until(t, "the hammer to run", func() bool { return done.Load() > 10 })
	if _, err := c.EmitWithAck(waitCtx(t), "join"); err != nil {
		t.Fatal(err)
	}
	k := <-joined
	until(t, "more broadcasts after the join", func() bool { return done.Load() > k+50 })
	close(stop)
	<-pubDone
	last := done.Load()
	if err := nodes[0].srv.Of("/").Emit(waitCtx(t), "mark"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(waitCtx(t), "mark"); err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	for _, ev := range c.Events() {
		if ev.Name == "n" {
			var n int64
			_ = json.Unmarshal(ev.Args[0], &n)
			got[n]++
		}
	}
	// Publish k+1 may have started before Join returned; k+2 on did not.
	for i := k + 2; i <= last; i++ {
		if got[i] != 1 {
			t.Fatalf("broadcast %d (joined after %d, last %d) arrived %d times", i, k, last, got[i])
		}
	}
}

// TestClose: closing a cluster unsubscribes it and fails its requests with
// ErrClosed rather than hanging.
func TestClose(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 1, Options{})
	key := nodes[0].cl.opts.Key
	if err := nodes[0].cl.Close(); err != nil {
		t.Fatal(err)
	}
	until(t, "the channels to be unsubscribed", func() bool { return len(channels(t, rc, key)) == 0 })
}

// TestWireBytes: what our node publishes is byte for byte what Node's
// adapter publishes (shared/interop §1a captures), with our uid and
// requestId in place of Node's.
func TestWireBytes(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 1, Options{})
	key := nodes[0].cl.opts.Key
	a := nodes[0].srv.Of("/").Adapter().(*Adapter)
	spy, cancel := rc.Dedicate()
	defer cancel()
	type msg struct{ ch, payload string }
	got := make(chan msg, 16)
	spy.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) { got <- msg{m.Channel, m.Message} }})
	if err := spy.Do(waitCtx(t), spy.B().Subscribe().Channel(key+"#/#", key+"#/#room1#", key+"-request#/#").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	until(t, "the spy", func() bool { n, _ := a.ServerCount(waitCtx(t)); return n == 2 })
	str := func(s string) string { return fmt.Sprintf("%02x", 0xa0|len(s)) + hex.EncodeToString([]byte(s)) }
	expect := func(ch, wantHex string) {
		t.Helper()
		m := <-got
		if m.ch != ch || hex.EncodeToString([]byte(m.payload)) != wantHex {
			t.Errorf("published on %s:\n %x\nwant on %s:\n %s", m.ch, m.payload, ch, wantHex)
		}
	}
	ns := nodes[0].srv.Of("/")
	if err := ns.Emit(waitCtx(t), "hello", "world"); err != nil {
		t.Fatal(err)
	}
	expect(key+"#/#", "93"+str(a.uid)+"83a47479706502a46461746192a568656c6c6fa5776f726c64a36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380")
	if err := ns.To("room1").Emit(waitCtx(t), "bin", []byte{1, 2, 3}, map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	expect(key+"#/#room1#", "93"+str(a.uid)+"83a47479706502a46461746193a362696ec40301020381a16101a36e7370a12f83a5726f6f6d7391a5726f6f6d31a665786365707490a5666c61677380")
	if err := ns.To("r1", "r2").Except("r3").Volatile().Emit(waitCtx(t), "multi", 42); err != nil {
		t.Fatal(err)
	}
	expect(key+"#/#", "93"+str(a.uid)+"83a47479706502a46461746192a56d756c74692aa36e7370a12f83a5726f6f6d7392a27231a27232a665786365707491a27233a5666c61677381a8766f6c6174696c65c3")
	// broadcastWithAck: a msgpack request; the spy never answers, so it
	// ends with the timeout.
	_, _ = ns.To().Timeout(time.Second).EmitWithAck(waitCtx(t), "ack?")
	m := <-got
	v, err := decodeMessage(m.payload)
	if err != nil || m.ch != key+"-request#/#" || m.payload[0] == '{' {
		t.Fatalf("broadcastWithAck request on %s: %x, %v", m.ch, m.payload, err)
	}
	id, _ := v["requestId"].(string)
	want := "85a3756964" + str(a.uid) + "a9726571756573744964" + str(id) + "a474797065" + "07" +
		"a67061636b6574" + "83a47479706502a46461746191a461636b3fa36e7370a12f" +
		"a46f707473" + "83a5726f6f6d7390a665786365707490a5666c61677381a774696d656f7574cd03e8"
	if hex.EncodeToString([]byte(m.payload)) != want {
		t.Errorf("broadcastWithAck request:\n %x\nwant\n %s", m.payload, want)
	}
}

// TestAnswersNodeRequests: the requests a Node peer sends (raw bytes on
// the request channel) get the answers Node's adapter would give, in its
// formats: ALL_ROOMS, REMOTE_FETCH, SERVER_SIDE_EMIT with ack, BROADCAST
// with acks (JSON count, then msgpack acks), SOCKETS.
func TestAnswersNodeRequests(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 1, Options{})
	key := nodes[0].cl.opts.Key
	nodes[0].srv.Of("/").OnServerEvent(func(ev socketio.Event, ack func(any)) {
		if ack != nil {
			ack("pong")
		}
	})
	_, sid := dial(t, nodes[0].url, "/", "room1")
	spy, cancel := rc.Dedicate()
	defer cancel()
	got := make(chan string, 16)
	spy.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) { got <- m.Message }})
	if err := spy.Do(waitCtx(t), spy.B().Subscribe().Channel(key+"-response#/#").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	send := func(p []byte) {
		t.Helper()
		if err := rc.Do(waitCtx(t), rc.B().Publish().Channel(key+"-request#/#").Message(rueidis.BinaryString(p)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-waitCtx(t).Done():
			t.Fatal("no answer")
			return ""
		}
	}
	asJSON := func(s string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("answer %q is not JSON: %v", s, err)
		}
		return m
	}

	send([]byte(`{"uid":"NodeXY","requestId":"r1","type":1}`))
	if m := asJSON(next()); m["requestId"] != "r1" || !slices.ContainsFunc(m["rooms"].([]any), func(r any) bool { return r == "room1" }) || !slices.ContainsFunc(m["rooms"].([]any), func(r any) bool { return r == sid }) {
		t.Errorf("ALL_ROOMS answer %v", m)
	}
	send([]byte(`{"uid":"NodeXY","requestId":"r2","type":5,"opts":{"rooms":["room1"],"except":[]}}`))
	ans := next()
	m := asJSON(ans)
	socks, _ := m["sockets"].([]any)
	if m["requestId"] != "r2" || len(socks) != 1 {
		t.Fatalf("REMOTE_FETCH answer %s", ans)
	}
	s := socks[0].(map[string]any)
	hs, _ := s["handshake"].(map[string]any)
	if s["id"] != sid || fmt.Sprint(s["rooms"]) != fmt.Sprint([]any{sid, "room1"}) || hs == nil || fmt.Sprint(hs["headers"]) != "map[]" || hs["xdomain"] != false {
		t.Errorf("REMOTE_FETCH socket %s", ans)
	}
	send([]byte(`{"uid":"NodeXY","requestId":"r3","type":6,"data":["ping",1]}`))
	if m := asJSON(next()); m["requestId"] != "r3" || m["type"] != 6.0 || m["data"] != "pong" {
		t.Errorf("SERVER_SIDE_EMIT answer %v", m)
	}
	req, _ := hex.DecodeString("85a3756964a64e6f64655859a9726571756573744964a27234a47479706507a67061636b657483a47479706502a46461746191a171a36e7370a12fa46f70747383a5726f6f6d7390a665786365707490a5666c61677381a774696d656f7574cd03e8")
	send(req)
	if m := asJSON(next()); m["requestId"] != "r4" || m["type"] != 8.0 || m["clientCount"] != 1.0 {
		t.Errorf("BROADCAST client count %v", m)
	}
	if a := hex.EncodeToString([]byte(next())); a != "83a47479706509a9726571756573744964a27234a67061636b6574a26f6b" {
		t.Errorf("BROADCAST_ACK %s, want Node's msgpack {type:9, requestId, packet:\"ok\"}", a)
	}
	send([]byte(`{"uid":"NodeXY","requestId":"r5","type":0,"rooms":["room1"]}`))
	if m := asJSON(next()); m["requestId"] != "r5" || fmt.Sprint(m["sockets"]) != fmt.Sprint([]any{sid}) {
		t.Errorf("SOCKETS answer %v", m)
	}
	// A node with no recipient still answers its count, 0.
	req, _ = hex.DecodeString(strings.Replace(hex.EncodeToString(req), "a5726f6f6d7390", "a5726f6f6d7391a46e6f6e65", 1))
	send(req)
	if m := asJSON(next()); m["type"] != 8.0 || m["clientCount"] != 0.0 {
		t.Errorf("BROADCAST to no one: %v", m)
	}
}

// TestBinaryAcrossNodes: a []byte argument emitted on one node reaches a
// client of another as a binary event.
func TestBinaryAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2, Options{})
	c, _ := dial(t, nodes[1].url, "/", "room1")
	if err := nodes[0].srv.Of("/").To("room1").Emit(waitCtx(t), "bin", []byte{1, 2, 3}, "text"); err != nil {
		t.Fatal(err)
	}
	ev, err := c.WaitEvent(waitCtx(t), "bin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ev.Args[0]), `"_placeholder":true`) || string(ev.Args[1]) != `"text"` {
		t.Errorf("got %s, want a binary attachment then \"text\"", ev.Args)
	}
}

// TestRoomOpsThenBroadcast: right after SocketsJoin returns, a broadcast
// from the same node to the new room reaches the remote sockets that
// joined it (their node subscribed it first); right after SocketsLeave, it
// no longer does.
func TestRoomOpsThenBroadcast(t *testing.T) {
	nodes := startNodes(t, 3, Options{UnsubscribeLinger: time.Millisecond})
	var cs []*siotest.Client
	for _, n := range nodes[1:] {
		c, _ := dial(t, n.url, "/", "a")
		cs = append(cs, c)
	}
	ns := nodes[0].srv.Of("/")
	for i := range 20 {
		room := fmt.Sprint("z", i)
		if err := ns.To("a").SocketsJoin(waitCtx(t), room); err != nil {
			t.Fatal(err)
		}
		if err := ns.To(room).Emit(waitCtx(t), "in", i); err != nil {
			t.Fatal(err)
		}
		if err := ns.To("a").SocketsLeave(waitCtx(t), room); err != nil {
			t.Fatal(err)
		}
		if err := ns.To(room).Emit(waitCtx(t), "out", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.Emit(waitCtx(t), "mark"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if _, err := c.WaitEvent(waitCtx(t), "mark"); err != nil {
			t.Fatal(err)
		}
		in, out := 0, 0
		for _, ev := range c.Events() {
			switch ev.Name {
			case "in":
				in++
			case "out":
				out++
			}
		}
		if in != 20 || out != 0 {
			t.Errorf("got %d of 20 broadcasts after the joins, %d after the leaves", in, out)
		}
	}
}

func benchNodes(b *testing.B, n int) []*socketio.Server {
	srvs, _ := newServers(b, n, Options{})
	for _, srv := range srvs {
		srv.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
			var a struct {
				Rooms []string `json:"rooms"`
			}
			_ = json.Unmarshal(ev.Socket.Handshake().Auth, &a)
			return socketio.ConnectReply{Rooms: a.Rooms}, nil
		})
	}
	return srvs
}

func dialBench(b *testing.B, srv *socketio.Server, rooms ...string) (*siotest.Client, string) {
	hs := httptest.NewServer(srv)
	b.Cleanup(hs.Close)
	c, err := siotest.Dial(waitCtx(b), hs.URL, siotest.Options{Auth: map[string]any{"rooms": rooms}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	sid, err := c.Connected(waitCtx(b))
	if err != nil {
		b.Fatal(err)
	}
	return c, sid
}

// TestEmitterRoomOpsInOrder: an emitter's socketsJoin or socketsLeave
// followed at once by a broadcast on the namespace channel (except a
// room, several rooms) is applied first, as on Node's adapter, which
// handles both in the order Redis delivers them: the broadcast must not
// overtake the room operation.
func TestEmitterRoomOpsInOrder(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 1, Options{})
	key := nodes[0].cl.opts.Key
	c1, sid1 := dial(t, nodes[0].url, "/")
	c2, _ := dial(t, nodes[0].url, "/")
	roomOp := func(typ int, room string) rueidis.Completed {
		b, _ := json.Marshal(map[string]any{"type": typ, "opts": map[string]any{"rooms": []string{sid1}, "except": []string{}}, "rooms": []string{room}})
		return rc.B().Publish().Channel(key + "-request#/#").Message(string(b)).Build()
	}
	emit := func(ev string, rooms, except []string) rueidis.Completed {
		b, err := clusterwire.Marshal([]any{"emitter",
			clusterwire.Map{{Key: "type", Value: 2}, {Key: "data", Value: []any{ev}}, {Key: "nsp", Value: "/"}},
			clusterwire.Map{{Key: "rooms", Value: rooms}, {Key: "flags", Value: clusterwire.Map{}}, {Key: "except", Value: except}}})
		if err != nil {
			t.Fatal(err)
		}
		return rc.B().Publish().Channel(key + "#/#").Message(rueidis.BinaryString(b)).Build()
	}
	// One pipeline: Redis delivers them in this order, back to back.
	for _, r := range rc.DoMulti(waitCtx(t),
		roomOp(reqRemoteJoin, "muted"),
		emit("e1", []string{}, []string{"muted"}), // not to c1
		roomOp(reqRemoteJoin, "r"),
		emit("e2", []string{"r", "q"}, []string{}), // c1 only
		roomOp(reqRemoteLeave, "muted"),
		emit("e3", []string{}, []string{"muted"}), // both
		emit("mark", []string{}, []string{}),
	) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	names := func(c *siotest.Client) []string {
		if _, err := c.WaitEvent(waitCtx(t), "mark"); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range c.Events() {
			out = append(out, ev.Name)
		}
		return out
	}
	if got := names(c1); !slices.Equal(got, []string{"e2", "e3", "mark"}) {
		t.Errorf("the socket joined and left got %v, want [e2 e3 mark]", got)
	}
	if got := names(c2); !slices.Equal(got, []string{"e1", "e3", "mark"}) {
		t.Errorf("the other socket got %v, want [e1 e3 mark]", got)
	}
}

// stallProxy forwards TCP connections to target until stall is called;
// from then on it swallows what either side sends, as a Redis that hangs
// (or a partitioned network) does, keeping the connections open.
func stallProxy(t *testing.T, target string) (addr string, stall func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var stalled atomic.Bool
	pipe := func(dst, src net.Conn) {
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if stalled.Load() {
				continue
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); up.Close() })
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return ln.Addr().String(), func() { stalled.Store(true) }
}

// TestRequestHungRedis: when Redis stops answering (the connection stays
// open), a cluster request still fails within RequestTimeout with
// ErrRequestTimeout: its PUBSUB NUMSUB and PUBLISH are bounded too, not
// only the wait for answers.
func TestRequestHungRedis(t *testing.T) {
	u, err := url.Parse(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, stall := stallProxy(t, u.Host)
	u.Host = addr
	srvs, _ := newServers(t, 1, Options{URL: u.String(), RequestTimeout: 300 * time.Millisecond})
	ns := srvs[0].Of("/")
	stall()
	if _, err := ns.To().FetchSockets(context.Background()); !errors.Is(err, socketio.ErrRequestTimeout) {
		t.Errorf("FetchSockets: %v, want ErrRequestTimeout", err)
	}
	if _, err := ns.ServerSideEmitWithAck(context.Background(), "e"); !errors.Is(err, socketio.ErrRequestTimeout) {
		t.Errorf("ServerSideEmitWithAck: %v, want ErrRequestTimeout", err)
	}
}

// goroutines returns the stacks of the goroutines running, less the idle
// workers of internal/gopool (kept on purpose, for the next connection).
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "internal/gopool.work") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseLeavesNoGoroutines: a node that served sockets, rooms, requests
// and acked broadcasts leaves no goroutine behind once its server and
// Cluster are closed.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	redisURL(t)
	before := len(goroutines())
	func() {
		cl, err := NewCluster(waitCtx(t), Options{URL: redisURL(t), Key: testKey()})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
		defer srv.Close()
		srv.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
			return socketio.ConnectReply{Rooms: []string{"a", "b"}}, nil
		})
		ns := srv.Of("/")
		if err := ns.Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		c, err := siotest.Dial(waitCtx(t), hs.URL, siotest.Options{Ack: func(siotest.Event) []any { return []any{1} }})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Connected(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		ctx := waitCtx(t)
		if err := ns.To("a").SocketsJoin(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.To("c").Timeout(5*time.Second).EmitWithAck(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.To().FetchSockets(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ns.To("b").Emit(ctx, "e"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitEvent(ctx, "e"); err != nil {
			t.Fatal(err)
		}
	}()
	// Goroutines announce no exit: poll, with a generous bound.
	deadline := time.Now().Add(10 * time.Second)
	for len(goroutines()) > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := goroutines(); len(g) > before {
		t.Fatalf("%d goroutines left, %d before:\n%s", len(g), before, strings.Join(g, "\n\n"))
	}
}

// TestRequestQueueBytes: while the request worker is busy, the requests
// queued for it hold at most 2×MaxMessageBytes of payload in all, not
// 4096 messages of up to MaxMessageBytes each: beyond it they are dropped
// and counted.
func TestRequestQueueBytes(t *testing.T) {
	nodes := startNodes(t, 1, Options{MaxMessageBytes: 10_000})
	a := nodes[0].srv.Of("/").Adapter().(*Adapter)
	block := make(chan struct{})
	a.work <- func() { <-block }
	defer close(block)
	req, _ := json.Marshal(map[string]any{"uid": "peer", "type": reqServerSideEmit, "data": []any{"e", strings.Repeat("x", 3_900)}})
	before := nodes[0].cl.Stats().Dropped
	for range 10 {
		a.onRequest(string(req))
	}
	// The worker is held by the first func, so all 10 are queued for it.
	if got := nodes[0].cl.Stats().Dropped - before; got != 5 {
		t.Errorf("%d of 10 requests of %d bytes dropped, want 5 (20,000 bytes queued at most)", got, len(req))
	}
}

// TestAcksBoundedByCount: acknowledgements a peer sends for one of our
// broadcasts are taken only up to the recipient counts answered before
// them (a node sends its count first), so a peer cannot grow the result
// without bound while the broadcast waits.
func TestAcksBoundedByCount(t *testing.T) {
	rc := admin(t)
	nodes := startNodes(t, 1, Options{})
	key := nodes[0].cl.opts.Key
	ids := make(chan string, 1)
	spy, cancel := rc.Dedicate()
	defer cancel()
	spy.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) {
		if req, err := decodeMessage(m.Message); err == nil {
			if typ, _ := intField(req, "type"); typ == reqBroadcast {
				ids <- req["requestId"].(string)
			}
		}
	}})
	if err := spy.Do(waitCtx(t), spy.B().Subscribe().Channel(key+"-request#/#").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	ns := nodes[0].srv.Of("/")
	until(t, "the spy to be counted", func() bool {
		n, _ := ns.Adapter().ServerCount(waitCtx(t))
		return n == 2
	})
	type result struct {
		acks [][]any
		err  error
	}
	res := make(chan result, 1)
	go func() {
		acks, err := ns.To().Timeout(10*time.Second).EmitWithAck(waitCtx(t), "q")
		res <- result{acks, err}
	}()
	id := <-ids
	ack := func(v string) rueidis.Completed {
		b, _ := clusterwire.Marshal(clusterwire.Map{{Key: "type", Value: resBroadcastAck}, {Key: "requestId", Value: id}, {Key: "packet", Value: v}})
		return rc.B().Publish().Channel(key + "-response#/#").Message(rueidis.BinaryString(b)).Build()
	}
	count, _ := json.Marshal(map[string]any{"type": resBroadcastCount, "requestId": id, "clientCount": 1})
	for _, r := range rc.DoMulti(waitCtx(t),
		ack("early"), ack("early"), ack("early"),
		rc.B().Publish().Channel(key+"-response#/#").Message(string(count)).Build(),
		ack("ok"),
	) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	r := <-res
	if r.err != nil || len(r.acks) != 1 || r.acks[0][0] != "ok" {
		t.Errorf("EmitWithAck = %v, %v; want [[ok]]", r.acks, r.err)
	}
}

// TestPublishHungRedis: with a Redis that stopped answering, a broadcast
// still returns within RequestTimeout (its publish failed, counted), after
// delivering to the local sockets.
func TestPublishHungRedis(t *testing.T) {
	u, err := url.Parse(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, stall := stallProxy(t, u.Host)
	u.Host = addr
	srvs, cls := newServers(t, 1, Options{URL: u.String(), RequestTimeout: 300 * time.Millisecond})
	ns := srvs[0].Of("/")
	stall()
	if err := ns.Emit(context.Background(), "e"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Emit: %v, want the request timeout (context.DeadlineExceeded)", err)
	}
	if n := cls[0].Stats().PublishErrors; n != 1 {
		t.Errorf("PublishErrors = %d, want 1", n)
	}
}
