package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate/internal/clusterwire"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/adaptertest"
)

// testNode is one sessiongate node of a test cluster: a socketio.Server
// on the pg bus, serving "/" over HTTP.
type testNode struct {
	i   int
	cl  *Cluster
	srv *socketio.Server
	hs  *httptest.Server
	ns  *socketio.Namespace

	mu           sync.Mutex
	serverEvents []socketio.Event
	serverEv     chan socketio.Event
	listening    chan uint32 // listener pids
}

// testCluster is n nodes on one bus of their own: a fresh schema (its
// attachments table) and a random channel prefix.
type testCluster struct {
	url, schema, prefix string
	nodes               []*testNode
}

// testOptions are short timings, so that a silent node drops out quickly.
func testOptions() ClusterOptions {
	return ClusterOptions{
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  1500 * time.Millisecond,
		RequestTimeout:    2 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newTestCluster(t *testing.T, n int, opts ClusterOptions) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the cluster tests, which need PostgreSQL")
	}
	schema, url := pgtest.Schema(t)
	tc := &testCluster{url: url, schema: schema, prefix: "t" + randomID()[:10]}
	opts.ChannelPrefix = tc.prefix
	for i := range n {
		tc.nodes = append(tc.nodes, tc.startNode(t, i, opts))
	}
	tc.awaitServerCount(t, n)
	return tc
}

func (tc *testCluster) startNode(t *testing.T, i int, opts ClusterOptions) *testNode {
	t.Helper()
	nd := &testNode{i: i, serverEv: make(chan socketio.Event, 64), listening: make(chan uint32, 8)}
	cl, err := newCluster(testCtx(t), tc.url, opts, func(pid uint32) { nd.listening <- pid })
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	nd.cl = cl
	nd.srv = socketio.NewServer(socketio.Options{
		NewAdapter: cl.Adapter,
		SocketData: func(s *socketio.Socket) any {
			var auth struct{ User string }
			_ = json.Unmarshal(s.Handshake().Auth, &auth)
			return map[string]any{"userId": auth.User}
		},
	})
	nd.ns = nd.srv.Of("/")
	nd.ns.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		var auth struct{ Rooms []string }
		_ = json.Unmarshal(ev.Socket.Handshake().Auth, &auth)
		return socketio.ConnectReply{Rooms: auth.Rooms}, nil
	})
	nd.ns.OnServerEvent(func(ev socketio.Event, ack func(any)) {
		nd.mu.Lock()
		nd.serverEvents = append(nd.serverEvents, ev)
		nd.mu.Unlock()
		nd.serverEv <- ev
		if ack != nil {
			ack(fmt.Sprintf("node%d", i))
		}
	})
	nd.hs = httptest.NewServer(nd.srv)
	t.Cleanup(func() {
		nd.hs.Close()
		nd.srv.Close()
		nd.cl.Close()
	})
	if err := cl.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return nd
}

// awaitServerCount waits until every node counts n nodes.
func (tc *testCluster) awaitServerCount(t *testing.T, n int) {
	t.Helper()
	for _, nd := range tc.nodes {
		nd.awaitServerCount(t, n)
	}
}

func (nd *testNode) awaitServerCount(t *testing.T, n int) {
	t.Helper()
	ctx := testCtx(t)
	for {
		got, _ := nd.ns.Adapter().ServerCount(ctx)
		if got == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node%d counts %d nodes, want %d", nd.i, got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitSockets waits until nd has n connected sockets on "/".
func (nd *testNode) awaitSockets(t *testing.T, n int) {
	t.Helper()
	ctx := testCtx(t)
	for len(nd.ns.Sockets()) != n {
		select {
		case <-ctx.Done():
			t.Fatalf("node%d has %d sockets, want %d", nd.i, len(nd.ns.Sockets()), n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// dial connects a client to nd as user, in rooms.
func (nd *testNode) dial(t *testing.T, user string, rooms ...string) *client {
	t.Helper()
	return nd.dialOpts(t, siotest.Options{Auth: map[string]any{"user": user, "rooms": rooms}})
}

func (nd *testNode) dialOpts(t *testing.T, o siotest.Options) *client {
	t.Helper()
	c, err := siotest.Dial(testCtx(t), nd.hs.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sid, err := c.Connected(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return &client{c, sid}
}

// client is a connected test client and its socket id.
type client struct {
	*siotest.Client
	sid string
}

func (c *client) ID() string { return c.sid }

// notify sends a raw NOTIFY, as a Node peer or an emitter would.
func (tc *testCluster) notify(t *testing.T, nsp, payload string) {
	t.Helper()
	conn := rawConn(t, tc.url)
	if _, err := conn.Exec(testCtx(t), "SELECT pg_notify($1, $2)", tc.prefix+"#"+nsp, payload); err != nil {
		t.Fatal(err)
	}
}

// count returns how many events name c has received.
func count(c *client, name string) int {
	n := 0
	for _, ev := range c.Events() {
		if ev.Name == name {
			n++
		}
	}
	return n
}

// barrier emits a fresh event from node from to every socket and waits
// until each client has it: everything published before it by that node
// has been delivered (NOTIFY keeps a sender's order).
func barrier(t *testing.T, from *testNode, clients ...*client) {
	t.Helper()
	name := "barrier-" + randomID()
	if err := from.ns.Emit(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if _, err := c.WaitEvent(testCtx(t), name); err != nil {
			t.Fatalf("barrier: %v", err)
		}
	}
}

func wantCounts(t *testing.T, name string, clients []*client, want []int) {
	t.Helper()
	for i, c := range clients {
		if got := count(c, name); got != want[i] {
			t.Errorf("client %d got %q %d times, want %d", i, name, got, want[i])
		}
	}
}

func TestClusterBroadcastExactlyOnce(t *testing.T) {
	tc := newTestCluster(t, 3, testOptions())
	n0, n1, n2 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	ca := n0.dial(t, "1", "a")
	cb := n1.dial(t, "2", "a", "b")
	cc := n2.dial(t, "3", "b")
	cd := n2.dial(t, "4")
	all := []*client{ca, cb, cc, cd}
	ctx := testCtx(t)

	if err := n0.ns.To("a").Emit(ctx, "to-a", 1); err != nil {
		t.Fatal(err)
	}
	if err := n1.ns.To("a", "b").Emit(ctx, "to-ab", "x"); err != nil {
		t.Fatal(err)
	}
	if err := n2.ns.Except("b").Emit(ctx, "except-b"); err != nil {
		t.Fatal(err)
	}
	if err := n2.ns.Emit(ctx, "all", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := n0.ns.To(cc.ID()).Emit(ctx, "to-sid"); err != nil {
		t.Fatal(err)
	}
	// Two equal broadcasts: both arrive (PostgreSQL would fold equal
	// notifications of one transaction).
	for range 2 {
		if err := n1.ns.Emit(ctx, "twice", 7); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range tc.nodes {
		barrier(t, from, all...)
	}
	wantCounts(t, "to-a", all, []int{1, 1, 0, 0})
	wantCounts(t, "to-ab", all, []int{1, 1, 1, 0})
	wantCounts(t, "except-b", all, []int{1, 0, 0, 1})
	wantCounts(t, "all", all, []int{1, 1, 1, 1})
	wantCounts(t, "to-sid", all, []int{0, 0, 1, 0})
	wantCounts(t, "twice", all, []int{2, 2, 2, 2})
	ev, err := ca.WaitEvent(ctx, "all")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(ev.Args[0]); got != `{"k":"v"}` {
		t.Errorf("all carried %s", got)
	}
}

func TestClusterAttachments(t *testing.T) {
	tc := newTestCluster(t, 3, testOptions())
	n0, n1, n2 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	c1 := n1.dial(t, "1", "r")
	c2 := n2.dial(t, "2")
	ctx := testCtx(t)
	before := n0.cl.Stats()

	if err := n0.ns.To("r").Emit(ctx, "bin", []byte{1, 2, 3}, "tail"); err != nil {
		t.Fatal(err)
	}
	large := strings.Repeat("é", 5000) // 10,000 bytes of UTF-8
	if err := n0.ns.Emit(ctx, "large", large); err != nil {
		t.Fatal(err)
	}
	ev, err := c1.WaitEvent(ctx, "bin")
	if err != nil {
		t.Fatal(err)
	}
	// siotest records a binary event with its placeholder.
	if len(ev.Args) != 2 || !strings.Contains(string(ev.Args[0]), `"_placeholder":true`) || string(ev.Args[1]) != `"tail"` {
		t.Errorf("bin arrived as %s", ev.Args)
	}
	for _, c := range []*client{c1, c2} {
		ev, err := c.WaitEvent(ctx, "large")
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := json.Unmarshal(ev.Args[0], &s); err != nil || s != large {
			t.Errorf("large arrived with %d bytes, want %d", len(s), len(large))
		}
	}
	barrier(t, n0, c1, c2)
	wantCounts(t, "bin", []*client{c1, c2}, []int{1, 0})
	wantCounts(t, "large", []*client{c1, c2}, []int{1, 1})
	if got := n0.cl.Stats().AttachmentsOut - before.AttachmentsOut; got != 2 {
		t.Errorf("AttachmentsOut moved by %d, want 2", got)
	}
	if n1.cl.Stats().AttachmentsIn < 2 {
		t.Errorf("node1 AttachmentsIn = %d, want ≥ 2", n1.cl.Stats().AttachmentsIn)
	}
}

func TestClusterRoomOperations(t *testing.T) {
	tc := newTestCluster(t, 3, testOptions())
	n0, n1, n2 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	c1 := n1.dial(t, "1", "a")
	c2 := n2.dial(t, "2", "a")
	c3 := n2.dial(t, "3", "b")
	ctx := testCtx(t)

	// socketsJoin from node0 reaches sockets on the others.
	if err := n0.ns.To("a").SocketsJoin(ctx, "joined"); err != nil {
		t.Fatal(err)
	}
	if err := n0.ns.To("joined").Emit(ctx, "to-joined"); err != nil {
		t.Fatal(err)
	}
	barrier(t, n0, c1, c2, c3)
	wantCounts(t, "to-joined", []*client{c1, c2, c3}, []int{1, 1, 0})

	// socketsLeave from node1 applies locally and on node2.
	if err := n1.ns.To("joined").Except(c2.ID()).SocketsLeave(ctx, "joined"); err != nil {
		t.Fatal(err)
	}
	if err := n1.ns.To("joined").Emit(ctx, "after-leave"); err != nil {
		t.Fatal(err)
	}
	barrier(t, n1, c1, c2, c3)
	wantCounts(t, "after-leave", []*client{c1, c2, c3}, []int{0, 1, 0})

	// disconnectSockets from node0 ends the sockets of room b on node2.
	if err := n0.ns.To("b").DisconnectSockets(ctx, false); err != nil {
		t.Fatal(err)
	}
	d, err := c3.WaitDisconnect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != siotest.ReasonServerDisconnect {
		t.Errorf("c3 disconnected with %q", d.Reason)
	}
	barrier(t, n0, c1, c2)
	if _, ok := c1.Disconnected(); ok {
		t.Error("c1 was disconnected too")
	}
}

func TestClusterFetchSocketsAndAllRooms(t *testing.T) {
	tc := newTestCluster(t, 3, testOptions())
	n0, n1, n2 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	c0 := n0.dial(t, "u0", "x")
	c1 := n1.dial(t, "u1", "x", "y")
	n2.dial(t, "u2", "z")
	ctx := testCtx(t)

	infos, err := n0.ns.To("x").FetchSockets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(infos, func(a, b socketio.SocketInfo) int { return strings.Compare(a.ID, b.ID) })
	want := []string{c0.ID(), c1.ID()}
	slices.Sort(want)
	var got []string
	for _, s := range infos {
		got = append(got, s.ID)
		if s.Local != (s.ID == c0.ID()) {
			t.Errorf("socket %s Local = %v", s.ID, s.Local)
		}
		if s.ID == c1.ID() {
			if !slices.Equal(s.Rooms, []string{c1.ID(), "x", "y"}) && !slices.Equal(s.Rooms, []string{c1.ID(), "y", "x"}) {
				t.Errorf("remote rooms %v", s.Rooms)
			}
			if d, _ := s.Data.(map[string]any); d["userId"] != "u1" {
				t.Errorf("remote data %v", s.Data)
			}
			if s.Handshake.Address == "" || s.Handshake.Issued == 0 {
				t.Errorf("remote handshake %+v", s.Handshake)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("FetchSockets(x) = %v, want %v", got, want)
	}
	all, err := n0.ns.To().FetchSockets(ctx)
	if err != nil || len(all) != 3 {
		t.Errorf("FetchSockets() = %d sockets, %v; want 3", len(all), err)
	}
	rooms, err := n1.ns.AllRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"x", "y", "z", c0.ID()} {
		if !slices.Contains(rooms, r) {
			t.Errorf("AllRooms = %v, lacks %q", rooms, r)
		}
	}
}

// A fetch-sockets answer on the wire: Node's RemoteSocket shape, without a
// header or a cookie.
func TestClusterFetchSocketsAnswerHasNoHeaders(t *testing.T) {
	tc := newTestCluster(t, 1, testOptions())
	tc.nodes[0].dialOpts(t, siotest.Options{
		Auth:   map[string]any{"user": "u9"},
		Header: map[string][]string{"Cookie": {"connect.sid=s%3Asecret"}, "Authorization": {"Bearer secret"}},
	})
	l := tc.listen(t, "/")
	tc.notify(t, "/", `{"type":7,"data":{"opts":{"rooms":[],"except":[],"flags":{}},"requestId":"r1"},"uid":"0421087bfd1bf2dc","nsp":"/"}`)
	p := l.next(t, func(p string) bool { return strings.HasPrefix(p, `{"type":8,`) })
	if strings.Contains(p, "secret") || strings.Contains(strings.ToLower(p), "cookie") {
		t.Errorf("answer leaks the handshake: %s", p)
	}
	var m struct {
		Type int
		Data struct {
			RequestID string `json:"requestId"`
			Sockets   []map[string]json.RawMessage
		}
		UID, NSP string
	}
	if err := json.Unmarshal([]byte(p), &m); err != nil {
		t.Fatal(err)
	}
	if m.Data.RequestID != "r1" || len(m.Data.Sockets) != 1 || m.NSP != "/" {
		t.Fatalf("answer %s", p)
	}
	s := m.Data.Sockets[0]
	if string(s["data"]) != `{"userId":"u9"}` || string(s["handshake"]) == "" {
		t.Errorf("socket %v", s)
	}
	if !regexp.MustCompile(`"handshake":\{"headers":\{\},"time":"[^"]+","address":"127\.0\.0\.1","xdomain":false,"secure":false,"issued":\d+,"url":"[^"]+","query":\{.*\},"auth":\{\}\}`).MatchString(p) {
		t.Errorf("handshake shape: %s", p)
	}
}

func TestClusterServerSideEmit(t *testing.T) {
	tc := newTestCluster(t, 3, testOptions())
	n0 := tc.nodes[0]
	ctx := testCtx(t)
	if err := n0.ns.ServerSideEmit(ctx, "hello", "world", 1); err != nil {
		t.Fatal(err)
	}
	for _, nd := range tc.nodes[1:] {
		select {
		case ev := <-nd.serverEv:
			if ev.Name != "hello" || len(ev.Args) != 2 || ev.Args[0] != "world" {
				t.Errorf("node%d got %+v", nd.i, ev)
			}
		case <-ctx.Done():
			t.Fatalf("node%d never got the server-side event", nd.i)
		}
	}
	got, err := n0.ns.ServerSideEmitWithAck(ctx, "ping")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	if fmt.Sprint(got) != "[node1 node2]" {
		t.Errorf("acks %v", got)
	}
	n0.mu.Lock()
	defer n0.mu.Unlock()
	if len(n0.serverEvents) != 0 {
		t.Errorf("the sender got its own server-side events: %v", n0.serverEvents)
	}
}

func TestClusterBroadcastWithAck(t *testing.T) {
	tc := newTestCluster(t, 3, testOptions())
	ack := func(user string) siotest.Options {
		return siotest.Options{Auth: map[string]any{"user": user, "rooms": []string{"r"}}, Ack: func(ev siotest.Event) []any {
			return []any{"ack-" + user}
		}}
	}
	tc.nodes[0].dialOpts(t, ack("a"))
	tc.nodes[1].dialOpts(t, ack("b"))
	tc.nodes[2].dialOpts(t, ack("c"))
	tc.nodes[2].dialOpts(t, ack("d"))
	// A client may see its CONNECT before its server counts the socket as
	// connected (which a broadcast with acks requires): wait for that.
	for i, want := range []int{1, 1, 2} {
		tc.nodes[i].awaitSockets(t, want)
	}
	res, err := tc.nodes[1].ns.To("r").Timeout(5*time.Second).EmitWithAck(testCtx(t), "q", 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, args := range res {
		got = append(got, fmt.Sprint(args...))
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[ack-a ack-b ack-c ack-d]" {
		t.Errorf("acks %v", got)
	}
}

// A node that stops heartbeating drops out within HeartbeatTimeout; one that
// closes drops out at once; an emitter never counts.
func TestClusterHeartbeats(t *testing.T) {
	opts := testOptions()
	tc := newTestCluster(t, 3, opts)
	n0 := tc.nodes[0]
	l := tc.listen(t, "/")
	// A peer announcing itself is answered with a HEARTBEAT by every node.
	tc.notify(t, "/", `{"type":1,"uid":"0421087bfd1bf2dc","nsp":"/"}`)
	hb := regexp.MustCompile(`^\{"type":2,"uid":"[0-9a-f]{16}","nsp":"/"\}$`)
	l.next(t, func(p string) bool { return hb.MatchString(p) })
	n0.awaitServerCount(t, 4)
	tc.notify(t, "/", `{"type":3,"data":{"packet":{"type":2,"data":["e"],"nsp":"/"},"opts":{"rooms":[],"flags":{},"except":[]}},"uid":"emitter"}`)
	n0.awaitServerCount(t, 4) // not 5: the emitter is no node
	// The fake peer is silent from now on: it drops out.
	n0.awaitServerCount(t, 3)

	// A fetch while a silent peer still counts times out cleanly.
	tc.notify(t, "/", `{"type":2,"uid":"0421087bfd1bf2dc","nsp":"/"}`)
	n0.awaitServerCount(t, 4)
	before := n0.cl.Stats().RequestTimeouts
	infos, err := n0.ns.To().Timeout(300 * time.Millisecond).FetchSockets(testCtx(t))
	if !errors.Is(err, socketio.ErrRequestTimeout) {
		t.Errorf("FetchSockets with a silent peer: %v, want ErrRequestTimeout", err)
	}
	_ = infos
	if n0.cl.Stats().RequestTimeouts != before+1 {
		t.Errorf("RequestTimeouts did not move")
	}
	n0.awaitServerCount(t, 3)

	// A closing node says so: the others stop counting it at once.
	tc.nodes[2].srv.Close()
	tc.nodes[0].awaitServerCount(t, 2)
	tc.nodes[1].awaitServerCount(t, 2)
}

// The captures of the shared interop notes (§3), sent as they are: Node's
// adapter and @socket.io/postgres-emitter, whose messages have no top-level
// nsp.
func TestClusterObeysCapturedMessages(t *testing.T) {
	tc := newTestCluster(t, 2, testOptions())
	n0, n1 := tc.nodes[0], tc.nodes[1]
	c0 := n0.dial(t, "1", "room1")
	c1 := n1.dial(t, "2")
	ctx := testCtx(t)
	all := []*client{c0, c1}

	// From a Node adapter (LAB).
	tc.notify(t, "/", `{"type":3,"data":{"packet":{"type":2,"data":["from-A",1]},"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"0421087bfd1bf2dc","nsp":"/"}`)
	// From the emitter (LAB): dropped by Node's adapter, obeyed here.
	tc.notify(t, "/", `{"type":3,"data":{"packet":{"type":2,"data":["from-emitter",2],"nsp":"/"},"opts":{"rooms":["room1"],"flags":{},"except":[]}},"uid":"emitter"}`)
	tc.notify(t, "/", `{"type":4,"data":{"opts":{"rooms":[],"except":[]},"rooms":["zz"]},"uid":"emitter"}`)
	tc.notify(t, "/", `{"type":3,"data":{"packet":{"type":2,"data":["to-zz"],"nsp":"/"},"opts":{"rooms":["zz"],"flags":{},"except":[]}},"uid":"emitter"}`)
	tc.notify(t, "/", `{"type":9,"data":{"packet":["srv","x"]},"uid":"emitter"}`)
	// An emitter attachment: msgpack row, header without nsp.
	row, err := clusterwire.Marshal(clusterwire.Map{
		{Key: "type", Value: 3},
		{Key: "data", Value: clusterwire.Map{
			{Key: "packet", Value: clusterwire.Map{{Key: "type", Value: 2}, {Key: "data", Value: []any{"emitter-bin", []byte{9}}}, {Key: "nsp", Value: "/"}}},
			{Key: "opts", Value: clusterwire.Map{{Key: "rooms", Value: []any{}}, {Key: "flags", Value: clusterwire.Map{}}, {Key: "except", Value: []any{}}}},
		}},
		{Key: "uid", Value: "emitter"},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, tc.url)
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO socket_io_attachments (payload) VALUES ($1) RETURNING id`, row).Scan(&id); err != nil {
		t.Fatal(err)
	}
	tc.notify(t, "/", fmt.Sprintf(`{"uid":"emitter","type":3,"attachmentId":"%d"}`, id))
	tc.notify(t, "/", `{"type":3,"data":{"packet":{"type":2,"data":["last"],"nsp":"/"},"opts":{"rooms":[],"flags":{},"except":[]}},"uid":"emitter"}`)
	for _, c := range all {
		if _, err := c.WaitEvent(ctx, "last"); err != nil {
			t.Fatal(err)
		}
	}
	wantCounts(t, "from-A", all, []int{1, 0})
	wantCounts(t, "from-emitter", all, []int{1, 0})
	wantCounts(t, "to-zz", all, []int{1, 1})
	wantCounts(t, "emitter-bin", all, []int{1, 1})
	for _, nd := range tc.nodes {
		select {
		case ev := <-nd.serverEv:
			if ev.Name != "srv" {
				t.Errorf("node%d server event %+v", nd.i, ev)
			}
		case <-ctx.Done():
			t.Fatalf("node%d: no server-side event from the emitter", nd.i)
		}
	}
	// The emitter's disconnectSockets.
	tc.notify(t, "/", `{"type":6,"data":{"opts":{"rooms":["zz"],"except":[]},"close":false},"uid":"emitter"}`)
	for _, c := range all {
		if _, err := c.WaitDisconnect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Malformed messages are counted, not fatal.
	before := n0.cl.Stats().Dropped
	tc.notify(t, "/", `{"type":3,"data":{"packet":"nope"},"uid":"emitter"}`)
	tc.notify(t, "/", `not json`)
	tc.notify(t, "/", `{"uid":"emitter","type":3,"attachmentId":"999999999"}`)
	c2 := n0.dial(t, "3")
	tc.notify(t, "/", `{"type":3,"data":{"packet":{"type":2,"data":["after"]},"opts":{"rooms":[],"except":[]}},"uid":"emitter"}`)
	if _, err := c2.WaitEvent(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	if got := n0.cl.Stats().Dropped - before; got != 3 {
		t.Errorf("Dropped moved by %d, want 3", got)
	}
}

// What sessiongate publishes, byte for byte as Node's adapter does (§3).
func TestClusterWireFormat(t *testing.T) {
	tc := newTestCluster(t, 1, testOptions())
	n0 := tc.nodes[0]
	l := tc.listen(t, "/")
	ctx := testCtx(t)
	if err := n0.ns.To("room1").Emit(ctx, "from-A", 1); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^\{"type":3,"data":\{"packet":\{"type":2,"data":\["from-A",1\]\},"opts":\{"rooms":\["room1"\],"except":\[\],"flags":\{\}\}\},"uid":"[0-9a-f]{16}","nsp":"/"\}$`)
	l.next(t, want.MatchString)
	if err := n0.ns.To("b").SocketsJoin(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	l.next(t, regexp.MustCompile(`^\{"type":4,"data":\{"opts":\{"rooms":\["b"\],"except":\[\],"flags":\{\}\},"rooms":\["c"\]\},"uid":"[0-9a-f]{16}","nsp":"/"\}$`).MatchString)
	if err := n0.ns.Emit(ctx, "bin", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile(`^\{"uid":"[0-9a-f]{16}","type":3,"attachmentId":"(\d+)","nsp":"/"\}$`)
	p := l.next(t, header.MatchString)
	id := header.FindStringSubmatch(p)[1]
	var row []byte
	if err := rawConn(t, tc.url).QueryRow(ctx, `SELECT payload FROM socket_io_attachments WHERE id = $1`, id).Scan(&row); err != nil {
		t.Fatal(err)
	}
	// 84 a4"type" 03 a4"data" 82{a6"packet" 82{type 02, data 93 a3"bin" c4 03 010203}…
	prefix := []byte("\x84\xa4type\x03\xa4data\x82\xa6packet\x82\xa4type\x02\xa4data\x92\xa3bin\xc4\x03\x01\x02\x03\xa4opts")
	if !strings.HasPrefix(string(row), string(prefix)) {
		t.Errorf("attachment row % x", row)
	}
}

// The listener's connection is killed: the node keeps its sockets, listens
// again, and serves what is published after; the loss is counted.
func TestClusterListenerReconnects(t *testing.T) {
	tc := newTestCluster(t, 2, testOptions())
	n0, n1 := tc.nodes[0], tc.nodes[1]
	c0 := n0.dial(t, "1", "r")
	var pid uint32
	select {
	case pid = <-n0.listening:
	case <-testCtx(t).Done():
		t.Fatal("no listener pid")
	}
	conn := rawConn(t, tc.url)
	if _, err := conn.Exec(testCtx(t), "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-n0.listening:
		if p == pid {
			t.Fatal("same pid after the kill")
		}
	case <-testCtx(t).Done():
		t.Fatal("listener never came back")
	}
	if err := n1.ns.To("r").Emit(testCtx(t), "after-reconnect"); err != nil {
		t.Fatal(err)
	}
	if _, err := c0.WaitEvent(testCtx(t), "after-reconnect"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c0.Disconnected(); ok {
		t.Error("the local socket was lost with the listener")
	}
	st := n0.cl.Stats()
	if st.ListenerLosses != 1 || st.Reconnects != 1 {
		t.Errorf("stats %+v, want one loss and one reconnect", st)
	}
}

// A second namespace LISTENs while the listener waits on the first.
func TestClusterNamespaceAddedLater(t *testing.T) {
	tc := newTestCluster(t, 2, testOptions())
	n0, n1 := tc.nodes[0], tc.nodes[1]
	// A broadcast on a namespace not LISTENed yet does not wait for an
	// echo that cannot come.
	if err := n0.srv.Of("/late").Emit(testCtx(t), "early"); err != nil {
		t.Fatal(err)
	}
	for _, nd := range tc.nodes {
		nd.srv.Of("/chat")
		if err := nd.cl.Ready(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := siotest.Dial(testCtx(t), n1.hs.URL, siotest.Options{Namespace: "/chat"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Connected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := n0.srv.Of("/chat").Emit(testCtx(t), "chat", "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitEvent(testCtx(t), "chat"); err != nil {
		t.Fatal(err)
	}
}

// rawListener LISTENs on a bus channel in the test, as a spy.
type rawListener struct {
	conn *pgx.Conn
}

func (tc *testCluster) listen(t *testing.T, nsp string) *rawListener {
	t.Helper()
	conn := rawConn(t, tc.url)
	if _, err := conn.Exec(testCtx(t), "LISTEN "+pgx.Identifier{tc.prefix + "#" + nsp}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return &rawListener{conn: conn}
}

// next returns the next payload that match accepts, skipping others.
func (l *rawListener) next(t *testing.T, match func(string) bool) string {
	t.Helper()
	var seen []string
	for {
		n, err := l.conn.WaitForNotification(testCtx(t))
		if err != nil {
			t.Fatalf("no matching notification (%v); saw %q", err, seen)
		}
		if match(n.Payload) {
			return n.Payload
		}
		seen = append(seen, n.Payload)
	}
}

// Migrate creates the attachments table where the Cluster (and Node's
// adapter) looks for it: through the connection's search_path.
func TestClusterMigrateCreatesAttachments(t *testing.T) {
	db, _, _ := openDB(t) // its URL's search_path is the test's schema
	var ok bool
	if err := db.pool.QueryRow(testCtx(t), "SELECT to_regclass('socket_io_attachments') IS NOT NULL").Scan(&ok); err != nil || !ok {
		t.Errorf("Migrate did not create the attachments table (%v)", err)
	}
}

// The shared conformance suite of socketio adapters, with three nodes.
func TestClusterConformance(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T, n int) []*socketio.Server {
		if testing.Short() {
			t.Skip("-short: skipping the cluster tests, which need PostgreSQL")
		}
		_, url := pgtest.Schema(t)
		opts := testOptions()
		opts.ChannelPrefix = "t" + randomID()[:10]
		var servers []*socketio.Server
		for range n {
			cl, err := NewCluster(testCtx(t), url, opts)
			if err != nil {
				t.Fatalf("NewCluster: %v", err)
			}
			srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
			srv.Of("/")
			t.Cleanup(func() {
				srv.Close()
				cl.Close()
			})
			servers = append(servers, srv)
		}
		for _, srv := range servers {
			ctx := testCtx(t)
			for {
				got, _ := srv.Of("/").Adapter().ServerCount(ctx)
				if got == n {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("a node counts %d nodes, want %d", got, n)
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		return servers
	}, 3)
}

// A publication that fails (its attachments table was dropped) fails its
// caller, and the bus keeps working.
func TestClusterPublishFailure(t *testing.T) {
	tc := newTestCluster(t, 2, testOptions())
	n0, n1 := tc.nodes[0], tc.nodes[1]
	c1 := n1.dial(t, "1")
	ctx := testCtx(t)
	if _, err := rawConn(t, tc.url).Exec(ctx, "DROP TABLE socket_io_attachments"); err != nil {
		t.Fatal(err)
	}
	before := n0.cl.Stats().PublishErrors
	err := n0.ns.Emit(ctx, "bin", []byte{1})
	if err == nil || !strings.Contains(err.Error(), "socket_io_attachments") {
		t.Errorf("binary broadcast without a table: %v", err)
	}
	if n0.cl.Stats().PublishErrors != before+1 {
		t.Error("PublishErrors did not move")
	}
	if err := n0.ns.Emit(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.WaitEvent(ctx, "after"); err != nil {
		t.Fatal(err)
	}
}

// Every node applies the cluster's operations in the one order of the
// NOTIFY queue, its own included: a join sent by one node and then a
// broadcast sent by another reach the second node's sockets in that order,
// with nothing to wait for in between.
func TestClusterOneOrder(t *testing.T) {
	tc := newTestCluster(t, 2, testOptions())
	n0, n1 := tc.nodes[0], tc.nodes[1]
	c0 := n0.dial(t, "1", "u")
	c1 := n1.dial(t, "2", "u")
	ctx := testCtx(t)
	for i := range 20 {
		room := fmt.Sprintf("room%d", i)
		if err := n0.ns.To("u").SocketsJoin(ctx, room); err != nil {
			t.Fatal(err)
		}
		if err := n1.ns.To(room).Emit(ctx, "in", i); err != nil {
			t.Fatal(err)
		}
		if err := n1.ns.To(room).SocketsLeave(ctx, room); err != nil {
			t.Fatal(err)
		}
		if err := n0.ns.To(room).Emit(ctx, "out", i); err != nil {
			t.Fatal(err)
		}
	}
	barrier(t, n0, c0, c1)
	barrier(t, n1, c0, c1)
	wantCounts(t, "in", []*client{c0, c1}, []int{20, 20})
	wantCounts(t, "out", []*client{c0, c1}, []int{0, 0})
}

// A server-side event handler may broadcast: its broadcast comes back
// through the listener, which does not run the handler.
func TestClusterServerEventHandlerBroadcasts(t *testing.T) {
	tc := newTestCluster(t, 2, testOptions())
	n0, n1 := tc.nodes[0], tc.nodes[1]
	c1 := n1.dial(t, "1")
	c0 := n0.dial(t, "0")
	n1.ns.OnServerEvent(func(ev socketio.Event, _ func(any)) {
		if ev.Name == "relay" {
			if err := n1.ns.Emit(context.Background(), "relayed"); err != nil {
				t.Errorf("emit from a server-event handler: %v", err)
			}
		}
	})
	if err := n0.ns.ServerSideEmit(testCtx(t), "relay"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{c0, c1} {
		if _, err := c.WaitEvent(testCtx(t), "relayed"); err != nil {
			t.Fatal(err)
		}
	}
}

// The database goes away: the node keeps its sockets and delivers its own
// broadcasts to them (the publication fails, and says so); when the
// database is back the listener LISTENs again and the bus serves.
func TestClusterDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the cluster tests, which need PostgreSQL")
	}
	pg := pgtest.NewCluster(t)
	tc := &testCluster{url: pg.URL, prefix: "t" + randomID()[:10]}
	opts := testOptions()
	opts.ChannelPrefix = tc.prefix
	opts.RequestTimeout = 500 * time.Millisecond
	for i := range 2 {
		tc.nodes = append(tc.nodes, tc.startNode(t, i, opts))
	}
	tc.awaitServerCount(t, 2)
	n0, n1 := tc.nodes[0], tc.nodes[1]
	c0 := n0.dial(t, "1", "r")
	c1 := n1.dial(t, "2", "r")
	<-n0.listening // their first LISTENs
	<-n1.listening

	pg.Stop(t)
	ctx := testCtx(t)
	if err := n0.ns.To("r").Emit(ctx, "while-down"); err == nil {
		t.Error("a broadcast with the database down reported no error")
	}
	if _, err := c0.WaitEvent(ctx, "while-down"); err != nil {
		t.Fatalf("the local socket did not get the broadcast: %v", err)
	}
	pg.Start(t)
	select {
	case <-n0.listening:
	case <-ctx.Done():
		t.Fatal("node0's listener never came back")
	}
	select {
	case <-n1.listening:
	case <-ctx.Done():
		t.Fatal("node1's listener never came back")
	}
	if err := n0.ns.To("r").Emit(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{c0, c1} {
		if _, err := c.WaitEvent(ctx, "after"); err != nil {
			t.Fatal(err)
		}
	}
	if st := n0.cl.Stats(); st.ListenerLosses < 1 || st.Reconnects < 1 || st.PublishErrors < 1 {
		t.Errorf("stats %+v", st)
	}
}
