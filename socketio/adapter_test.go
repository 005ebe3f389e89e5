package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// blockingAdapter is a cluster adapter stand-in: its AddAll adds to the
// MemoryAdapter, says so on added, and returns once release is closed, as
// a cluster adapter waits for its SUBSCRIBE. It records Close.
type blockingAdapter struct {
	*MemoryAdapter
	added   chan string
	release chan struct{}

	mu     sync.Mutex
	closed bool
}

func (a *blockingAdapter) AddAll(ctx context.Context, id string, rooms []string) error {
	if err := a.MemoryAdapter.AddAll(ctx, id, rooms); err != nil {
		return err
	}
	a.added <- id
	select {
	case <-a.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *blockingAdapter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return nil
}

func newBlockingServer(t *testing.T) (*Server, *blockingAdapter) {
	var ba *blockingAdapter
	srv := newServer(Options{ConnectTimeout: 5 * time.Second, NewAdapter: func(local *MemoryAdapter) Adapter {
		ba = &blockingAdapter{MemoryAdapter: local, added: make(chan string, 1), release: make(chan struct{})}
		return ba
	}})
	srv.Of("/").OnConnecting(func(context.Context, ConnectEvent) (ConnectReply, error) {
		return ConnectReply{Rooms: []string{"w"}}, nil
	})
	return srv, ba
}

// The join window: broadcasts that reach a socket after its rooms were
// added and before its CONNECT was sent are held and written right after
// the CONNECT, in order; none is lost and none comes first.
func TestJoinWindowHoldsBroadcasts(t *testing.T) {
	srv, ba := newBlockingServer(t)
	ns := srv.Of("/")
	c := dial(t, srv)
	c.in("0")
	<-ba.added
	for i := range 3 {
		if err := ns.To("w").Emit(context.Background(), "tick", i); err != nil {
			t.Fatal(err)
		}
	}
	// Volatile broadcasts may be dropped for a socket not connected yet.
	if err := ns.To("w").Volatile().Emit(context.Background(), "volatile"); err != nil {
		t.Fatal(err)
	}
	if got := ns.Sockets("w"); len(got) != 0 {
		t.Errorf("a socket whose CONNECT was not sent is listed: %v", got)
	}
	close(ba.release)
	c.expectPrefix(`0{"sid":"`)
	for i := range 3 {
		c.expect(`2["tick",` + strconv.Itoa(i) + `]`)
	}
	if err := ns.To("w").Emit(context.Background(), "tick", 3); err != nil {
		t.Fatal(err)
	}
	c.expect(`2["tick",3]`)
}

// A socket for which more than can be held arrived before its CONNECT is
// dropped (its client reconnects) rather than sent a gap.
func TestJoinWindowOverflowDrops(t *testing.T) {
	srv, ba := newBlockingServer(t)
	ns := srv.Of("/")
	connected := make(chan struct{}, 1)
	ns.OnConnect(func(*Socket) { connected <- struct{}{} })
	c := dial(t, srv)
	c.in("0")
	<-ba.added
	for i := range maxHeld + 1 {
		if err := ns.To("w").Emit(context.Background(), "tick", i); err != nil {
			t.Fatal(err)
		}
	}
	close(ba.release)
	c.expectClosed()
	select {
	case m := <-c.out:
		t.Errorf("sent %q", m.Data)
	default:
	}
	select {
	case <-connected:
		t.Error("OnConnect ran for a dropped socket")
	default:
	}
	if got := ns.mem.SocketIDs(BroadcastOptions{}); len(got) != 0 {
		t.Errorf("dropped socket still held: %v", got)
	}
}

// A connection closed while its socket's rooms are being added leaves no
// socket behind in the adapter.
func TestCloseDuringAddAll(t *testing.T) {
	srv, ba := newBlockingServer(t)
	ns := srv.Of("/")
	c := dial(t, srv)
	c.in("0")
	<-ba.added
	c.client.teardown(ReasonTransportClose)
	close(ba.release)
	c.expectSilence()
	if ns.mem.HasRoom("w") {
		t.Error("room of a closed socket kept")
	}
}

func TestMessageValues(t *testing.T) {
	type point struct {
		X    int    `json:"x"`
		Blob []byte `json:"blob,omitempty"`
		Skip string `json:"-"`
	}
	m := NewMessage("ev", 1, int64(2), "s", true, nil, []byte{1, 2},
		map[string]any{"k": []any{uint8(3), []byte{4}}}, point{X: 5, Blob: []byte{6}, Skip: "no"})
	got, err := m.Values()
	if err != nil {
		t.Fatal(err)
	}
	want := []any{1.0, 2.0, "s", true, nil, []byte{1, 2},
		map[string]any{"k": []any{3.0, []byte{4}}}, map[string]any{"x": 5.0, "blob": []byte{6}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Values = %#v\nwant %#v", got, want)
	}
	if _, err := NewMessage("ev", func() {}).Values(); err == nil {
		t.Error("Values of a function succeeded")
	}
}

// A Message is encoded once per namespace; values a bus decoded are
// accepted as arguments.
func TestMessageEncodedOnce(t *testing.T) {
	m := NewMessage("ev", int64(7), map[string]any{"b": []byte{1}}, []any{uint64(1), float64(1.5)})
	a, err := m.encoded("/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.encoded("/")
	if a != b {
		t.Error("encoded twice for one namespace")
	}
	if got := string(a.msgs[0].Data); got != `51-["ev",7,{"b":{"_placeholder":true,"num":0}},[1,1.5]]` {
		t.Errorf("encoded %s", got)
	}
	other, _ := m.encoded("/x")
	if got := string(other.msgs[0].Data); got != `51-/x,["ev",7,{"b":{"_placeholder":true,"num":0}},[1,1.5]]` {
		t.Errorf("encoded for /x: %s", got)
	}
	if _, err := NewMessage("connect").encoded("/"); err == nil {
		t.Error("reserved name encoded")
	}
}

// An operator is a value: deriving one leaves the original as it was.
func TestBroadcastOperatorImmutable(t *testing.T) {
	ns := newTestServer(t).Of("/")
	base := ns.To("a")
	_ = base.To("b").Except("c").Volatile().Local().Timeout(time.Second)
	if got := base.Options(); !reflect.DeepEqual(got, BroadcastOptions{Rooms: []string{"a"}}) {
		t.Errorf("base changed: %+v", got)
	}
	x, y := base.To("x"), base.To("y")
	if x.Options().Rooms[1] != "x" || y.Options().Rooms[1] != "y" {
		t.Errorf("derived operators share rooms: %v %v", x.Options().Rooms, y.Options().Rooms)
	}
}

// connectIn connects a fake client to "/" in rooms and returns it with its
// socket.
func connectIn(t *testing.T, srv *Server, rooms ...string) (*fakeConn, *Socket) {
	t.Helper()
	c := dial(t, srv)
	c.in(`0{"rooms":` + jsonString(rooms) + `}`)
	got := c.expectPrefix(`0{"sid":"`)
	id := got[len(`0{"sid":"`) : len(got)-2]
	return c, socketByID(t, srv.Of("/"), id)
}

func jsonString(rooms []string) string {
	if rooms == nil {
		rooms = []string{}
	}
	b, _ := json.Marshal(rooms)
	return string(b)
}

// roomsFromAuth makes the sockets of "/" start in the rooms of their auth.
func roomsFromAuth(srv *Server) {
	srv.Of("/").OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
		args, err := decodeArgs([]byte("["+string(ev.Socket.Handshake().Auth)+"]"), nil)
		if err != nil {
			return ConnectReply{}, err
		}
		var rooms []string
		for _, r := range args[0].(map[string]any)["rooms"].([]any) {
			rooms = append(rooms, r.(string))
		}
		return ConnectReply{Rooms: rooms}, nil
	})
}

func TestEmitWithAckBroadcast(t *testing.T) {
	srv := newTestServer(t)
	roomsFromAuth(srv)
	ns := srv.Of("/")
	a, _ := connectIn(t, srv, "r")
	b, _ := connectIn(t, srv, "r")
	silent, _ := connectIn(t, srv, "r")
	connectIn(t, srv, "other")

	type result struct {
		acks [][]any
		err  error
	}
	res := make(chan result, 1)
	go func() {
		acks, err := ns.To("r").Timeout(5*time.Second).EmitWithAck(context.Background(), "q", 1)
		res <- result{acks, err}
	}()
	for i, c := range []*fakeConn{a, b, silent} {
		c.expect(`20["q",1]`)
		if c != silent {
			c.in(fmt.Sprintf(`30["yes",%d]`, i))
		}
	}
	select {
	case r := <-res:
		t.Fatalf("returned before the last ack: %v, %v", r.acks, r.err)
	case <-time.After(20 * time.Millisecond):
	}
	silent.in(`30["late"]`)
	r := <-res
	if r.err != nil || len(r.acks) != 3 {
		t.Fatalf("EmitWithAck = %v, %v", r.acks, r.err)
	}

	// One that never answers: what arrived, and ErrRequestTimeout.
	go func() {
		acks, err := ns.To("r").Timeout(50*time.Millisecond).EmitWithAck(context.Background(), "q")
		res <- result{acks, err}
	}()
	a.expect(`21["q"]`)
	b.expect(`21["q"]`)
	silent.expect(`21["q"]`)
	a.in(`31["a"]`)
	r = <-res
	if !errors.Is(r.err, ErrRequestTimeout) || !reflect.DeepEqual(r.acks, [][]any{{"a"}}) {
		t.Fatalf("timed out EmitWithAck = %v, %v", r.acks, r.err)
	}
	// The dropped ack ids are forgotten: a late answer is ignored.
	b.in(`31["late"]`)
	b.expectSilence()
}

func TestOperatorsOnOneNode(t *testing.T) {
	srv := newTestServer(t)
	roomsFromAuth(srv)
	srv.opts.SocketData = func(s *Socket) any { return "data of " + s.ID() }
	ns := srv.Of("/")
	a, sa := connectIn(t, srv, "x")
	b, sb := connectIn(t, srv, "x", "y")
	ctx := context.Background()

	if err := ns.To("y").SocketsJoin(ctx, "z"); err != nil {
		t.Fatal(err)
	}
	if got := sb.Rooms(); !reflect.DeepEqual(got, []string{sb.ID(), "x", "y", "z"}) {
		t.Errorf("rooms after SocketsJoin: %v", got)
	}
	infos, err := ns.To("x").Except("z").FetchSockets(ctx)
	if err != nil || len(infos) != 1 {
		t.Fatalf("FetchSockets = %v, %v", infos, err)
	}
	in := infos[0]
	if in.ID != sa.ID() || !reflect.DeepEqual(in.Rooms, []string{sa.ID(), "x"}) || in.Data != "data of "+sa.ID() || !in.Local {
		t.Errorf("FetchSockets = %+v", in)
	}
	if in.Handshake.Address != "127.0.0.1" || in.Handshake.Query == nil {
		t.Errorf("handshake %+v", in.Handshake)
	}
	rooms, _ := ns.AllRooms(ctx)
	slices.Sort(rooms)
	want := []string{sa.ID(), sb.ID(), "x", "y", "z"}
	slices.Sort(want)
	if !reflect.DeepEqual(rooms, want) {
		t.Errorf("AllRooms = %v, want %v", rooms, want)
	}
	if err := ns.To("x").SocketsLeave(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if ns.mem.HasRoom("x") {
		t.Error("room x kept after everyone left it")
	}
	if n, _ := ns.Adapter().ServerCount(ctx); n != 1 {
		t.Errorf("ServerCount = %d", n)
	}
	if acks, err := ns.ServerSideEmitWithAck(ctx, "ping"); err != nil || len(acks) != 0 {
		t.Errorf("ServerSideEmitWithAck = %v, %v", acks, err)
	}
	if err := ns.ServerSideEmit(ctx, "disconnect"); err == nil {
		t.Error("server-side emit of a reserved name succeeded")
	}
	got := make(chan any, 1)
	ns.OnServerEvent(func(ev Event, ack func(any)) {
		ack(ev.Name)
		ack("twice")
	})
	ns.mem.ServerEvent(Event{Name: "hi"}, func(arg any) { got <- arg })
	if v := <-got; v != "hi" {
		t.Errorf("server event acked %v", v)
	}

	if err := ns.To("z").DisconnectSockets(ctx, false); err != nil {
		t.Fatal(err)
	}
	b.expect("1")
	if err := ns.To().DisconnectSockets(ctx, true); err != nil {
		t.Fatal(err)
	}
	a.expect("1")
	a.expectClosed()
}

// Drop cuts the transport without DISCONNECT; Close sends it first.
func TestDropAndClose(t *testing.T) {
	srv := newTestServer(t)
	reasons := make(chan Reason, 4)
	srv.Of("/").OnDisconnect(func(_ *Socket, r Reason) { reasons <- r })
	c, s := connectIn(t, srv)
	if err := s.Drop(); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if r := <-reasons; r != ReasonForcedClose {
		t.Errorf("Drop: reason %q", r)
	}
	select {
	case m := <-c.out:
		t.Errorf("Drop sent %q", m.Data)
	default:
	}
	if err := s.Disconnect(); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Disconnect after Drop: %v", err)
	}
}

// Shutdown refuses new connections, disconnects every socket with
// ReasonServerShutdown, returns once every OnDisconnect handler has run,
// and closes the adapters.
func TestShutdown(t *testing.T) {
	srv, ba := newBlockingServer(t)
	close(ba.release)
	ns := srv.Of("/")
	release := make(chan struct{})
	var mu sync.Mutex
	var done []Reason
	ns.OnDisconnect(func(_ *Socket, r Reason) {
		<-release
		mu.Lock()
		done = append(done, r)
		mu.Unlock()
	})
	for range 3 {
		c := dial(t, srv)
		c.in("0")
		<-ba.added
		c.expectPrefix(`0{"sid":"`)
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the handlers ran", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !reflect.DeepEqual(done, []Reason{ReasonServerShutdown, ReasonServerShutdown, ReasonServerShutdown}) {
		t.Errorf("handlers saw %v", done)
	}
	mu.Unlock()
	ba.mu.Lock()
	if !ba.closed {
		t.Error("adapter not closed")
	}
	ba.mu.Unlock()
	late := dial(t, srv)
	late.expectClosed()

	// A handler that never returns: ctx ends the wait.
	srv2 := newTestServer(t)
	srv2.Of("/").OnDisconnect(func(*Socket, Reason) { select {} })
	connectIn(t, srv2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := srv2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline", err)
	}
}

// BenchmarkBroadcastRooms emits once to 2,000 rooms of one socket each
// (a publish to 2,000 users), deduplicated without a map.
func BenchmarkBroadcastRooms(b *testing.B) {
	const n = 2000
	srv := newServer(Options{ConnectTimeout: time.Minute})
	ns := srv.Of("/")
	var next int
	var mu sync.Mutex
	ns.OnConnecting(func(context.Context, ConnectEvent) (ConnectReply, error) {
		mu.Lock()
		defer mu.Unlock()
		next++
		return ConnectReply{Rooms: []string{"user:" + strconv.Itoa(next)}}, nil
	})
	joined := make(chan struct{}, n)
	ns.OnConnect(func(*Socket) { joined <- struct{}{} })
	rooms := make([]string, n)
	for i := range n {
		rooms[i] = "user:" + strconv.Itoa(i+1)
		srv.accept(nopConn{}).onMessage(engineio.Message{Data: []byte("0")})
	}
	for range n {
		<-joined
	}
	op := ns.To(rooms...)
	b.ReportAllocs()
	for b.Loop() {
		if err := op.Emit(context.Background(), "news", "hello"); err != nil {
			b.Fatal(err)
		}
	}
}

// recordingAdapter wraps the MemoryAdapter and records which of its
// methods the namespace called.
type recordingAdapter struct {
	*MemoryAdapter
	mu    sync.Mutex
	calls map[string]int
}

func (a *recordingAdapter) record(name string) {
	a.mu.Lock()
	a.calls[name]++
	a.mu.Unlock()
}

func (a *recordingAdapter) AddAll(ctx context.Context, id string, rooms []string) error {
	a.record("AddAll")
	return a.MemoryAdapter.AddAll(ctx, id, rooms)
}
func (a *recordingAdapter) Del(id string, rooms []string) {
	a.record("Del")
	a.MemoryAdapter.Del(id, rooms)
}
func (a *recordingAdapter) DelAll(id string) { a.record("DelAll"); a.MemoryAdapter.DelAll(id) }
func (a *recordingAdapter) Rooms(id string) []string {
	a.record("Rooms")
	return a.MemoryAdapter.Rooms(id)
}
func (a *recordingAdapter) Broadcast(ctx context.Context, m *Message, opts BroadcastOptions) error {
	a.record("Broadcast")
	return a.MemoryAdapter.Broadcast(ctx, m, opts)
}
func (a *recordingAdapter) BroadcastWithAck(ctx context.Context, m *Message, opts BroadcastOptions, clientCount func(int), ack func([]any)) error {
	a.record("BroadcastWithAck")
	return a.MemoryAdapter.BroadcastWithAck(ctx, m, opts, clientCount, ack)
}
func (a *recordingAdapter) AddSockets(ctx context.Context, opts BroadcastOptions, rooms []string) error {
	a.record("AddSockets")
	return a.MemoryAdapter.AddSockets(ctx, opts, rooms)
}
func (a *recordingAdapter) DelSockets(ctx context.Context, opts BroadcastOptions, rooms []string) error {
	a.record("DelSockets")
	return a.MemoryAdapter.DelSockets(ctx, opts, rooms)
}
func (a *recordingAdapter) DisconnectSockets(ctx context.Context, opts BroadcastOptions, close bool) error {
	a.record("DisconnectSockets")
	return a.MemoryAdapter.DisconnectSockets(ctx, opts, close)
}
func (a *recordingAdapter) FetchSockets(ctx context.Context, opts BroadcastOptions) ([]SocketInfo, error) {
	a.record("FetchSockets")
	return a.MemoryAdapter.FetchSockets(ctx, opts)
}
func (a *recordingAdapter) AllRooms(ctx context.Context) ([]string, error) {
	a.record("AllRooms")
	return a.MemoryAdapter.AllRooms(ctx)
}
func (a *recordingAdapter) ServerSideEmit(ctx context.Context, m *Message) error {
	a.record("ServerSideEmit")
	return a.MemoryAdapter.ServerSideEmit(ctx, m)
}
func (a *recordingAdapter) ServerSideEmitWithAck(ctx context.Context, m *Message) ([]any, error) {
	a.record("ServerSideEmitWithAck")
	return a.MemoryAdapter.ServerSideEmitWithAck(ctx, m)
}
func (a *recordingAdapter) ServerCount(ctx context.Context) (int, error) {
	a.record("ServerCount")
	return a.MemoryAdapter.ServerCount(ctx)
}
func (a *recordingAdapter) Close() error { a.record("Close"); return nil }

// Every room and broadcast operation of a namespace and its sockets goes
// through the namespace's adapter, one per namespace, made by NewAdapter.
func TestOperationsGoThroughAdapter(t *testing.T) {
	adapters := map[string]*recordingAdapter{}
	srv := newServer(Options{ConnectTimeout: 5 * time.Second, NewAdapter: func(local *MemoryAdapter) Adapter {
		a := &recordingAdapter{MemoryAdapter: local, calls: map[string]int{}}
		adapters[local.Namespace().Name()] = a
		return a
	}})
	ns := srv.Of("/")
	srv.Of("/other")
	if len(adapters) != 2 || ns.Adapter() != adapters["/"] {
		t.Fatalf("adapters %v", adapters)
	}
	c, s := connectIn(t, srv)
	ctx := context.Background()
	if err := s.Join(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	s.Rooms()
	s.Leave("r")
	ns.Emit(ctx, "e")
	c.expect(`2["e"]`)
	ns.To().Timeout(time.Millisecond).EmitWithAck(ctx, "q")
	c.next()
	ns.To().SocketsJoin(ctx, "r")
	ns.To().SocketsLeave(ctx, "r")
	ns.To().FetchSockets(ctx)
	ns.AllRooms(ctx)
	ns.ServerSideEmit(ctx, "s")
	ns.ServerSideEmitWithAck(ctx, "s")
	ns.To().DisconnectSockets(ctx, false)
	c.expect("1")
	srv.Close()
	want := map[string]int{
		"AddAll": 2, "Rooms": 1, "Del": 1, "DelAll": 1, "Broadcast": 1, "BroadcastWithAck": 1,
		"ServerCount": 1, "AddSockets": 1, "DelSockets": 1, "FetchSockets": 1, "AllRooms": 1,
		"ServerSideEmit": 1, "ServerSideEmitWithAck": 1, "DisconnectSockets": 1, "Close": 1,
	}
	a := adapters["/"]
	a.mu.Lock()
	defer a.mu.Unlock()
	if !reflect.DeepEqual(a.calls, want) {
		t.Errorf("adapter calls %v\nwant %v", a.calls, want)
	}
}

// Joins, leaves, broadcasts and disconnections from many goroutines at
// once (run with -race): every room ends empty.
func TestAdapterConcurrency(t *testing.T) {
	srv := newServer(Options{ConnectTimeout: 5 * time.Second})
	ns := srv.Of("/")
	socks := connectNop(srv, 8)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, s := range socks {
		wg.Go(func() {
			for k := range 200 {
				r := "r" + strconv.Itoa(k%5)
				s.Join(ctx, r, "all")
				ns.To(r, "all").Except("r1").Emit(ctx, "x", k)
				ns.To(r).Volatile().Emit(ctx, "v")
				s.Leave(r)
				if k%50 == 0 {
					ns.To(s.ID()).FetchSockets(ctx)
				}
			}
			if i%2 == 0 {
				s.Disconnect()
			} else {
				s.Leave("all")
			}
		})
	}
	wg.Wait()
	rooms, _ := ns.AllRooms(ctx)
	for _, r := range rooms {
		// Match the rooms by name: the sockets still connected list their
		// ids too, and a random id may start with 'r'.
		if r == "all" || len(r) == 2 && r[0] == 'r' {
			t.Errorf("room %s kept", r)
		}
	}
}

// connectNop connects n sockets to "/" on connections that discard what
// they are sent, and returns them.
func connectNop(srv *Server, n int) []*Socket {
	got := make(chan *Socket, n)
	srv.Of("/").OnConnect(func(s *Socket) { got <- s })
	socks := make([]*Socket, n)
	for i := range socks {
		srv.accept(nopConn{}).onMessage(engineio.Message{Data: []byte("0")})
		socks[i] = <-got
	}
	return socks
}

// A client that has its CONNECT is a socket DisconnectSockets reaches,
// even when the operation runs while the server is still writing that
// CONNECT (a real transport writes it before the server goroutine has
// marked the socket connected; the client may act at once). The operation
// is started from inside the CONNECT's Send and given a moment to finish
// there.
func TestDisconnectSocketsRightAfterConnect(t *testing.T) {
	srv := newTestServer(t)
	ns := srv.Of("/")
	c := dial(t, srv)
	var once sync.Once
	c.beforeSend = func(msgs []engineio.Message) {
		if len(msgs) == 0 || !strings.HasPrefix(string(msgs[0].Data), "0{") {
			return
		}
		once.Do(func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				ns.To().DisconnectSockets(context.Background(), false)
			}()
			select {
			case <-done:
			case <-time.After(100 * time.Millisecond): // waits for the CONNECT to be done
			}
		})
	}
	c.connect("/")
	c.expect("1")
}

// TestOnRoomChange: the handler hears every change of a local socket's
// rooms, whatever made it (the connect hooks' rooms, Join, Leave, room
// operations, the disconnect), with only the rooms that changed.
func TestOnRoomChange(t *testing.T) {
	srv := newTestServer(t)
	roomsFromAuth(srv)
	ns := srv.Of("/")
	var mu sync.Mutex
	var got []string
	ns.OnRoomChange(func(ch RoomChange) {
		mu.Lock()
		got = append(got, fmt.Sprintf("+%v -%v", ch.Joined, ch.Left))
		mu.Unlock()
	})
	_, s := connectIn(t, srv, "a", "b")
	ctx := context.Background()
	if err := s.Join(ctx, "b", "c", s.ID()); err != nil {
		t.Fatal(err)
	}
	s.Leave("a", "x")
	opts := BroadcastOptions{Rooms: []string{s.ID()}}
	if err := ns.Adapter().AddSockets(ctx, opts, []string{"c", "d"}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Adapter().DelSockets(ctx, opts, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Disconnect(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"+[a b] -[]", "+[c] -[]", "+[] -[a]", "+[d] -[]", "+[] -[c]", "+[] -[b d]"}
	if !slices.Equal(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
}
