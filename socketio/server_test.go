package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

var errFakeClosed = errors.New("fake: closed")

// fakeConn is an Engine.IO session driven by a test.
type fakeConn struct {
	t      *testing.T
	hs     *engineio.Handshake
	out    chan engineio.Message
	mu     sync.Mutex
	closed bool
	done   chan struct{}
	ready  chan struct{} // closed once client is set
	client *client
	// beforeSend, if set before the first packet, sees what the server
	// sends before it is queued.
	beforeSend func(msgs []engineio.Message)
}

func (f *fakeConn) ID() string                     { return "eio-sid" }
func (f *fakeConn) Handshake() *engineio.Handshake { return f.hs }
func (f *fakeConn) Transport() string              { return "websocket" }

func (f *fakeConn) Send(msgs ...engineio.Message) error {
	if f.beforeSend != nil {
		f.beforeSend(msgs)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errFakeClosed
	}
	for _, m := range msgs {
		f.out <- m
	}
	return nil
}

func (f *fakeConn) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
		go func() {
			<-f.ready
			f.client.onClose("forced close")
		}()
	}
	return nil
}

func dial(t *testing.T, srv *Server) *fakeConn {
	t.Helper()
	f := &fakeConn{
		t:     t,
		hs:    &engineio.Handshake{Header: http.Header{"Cookie": {"a=b"}}, RemoteAddr: "127.0.0.1:1", OriginAllowed: true},
		out:   make(chan engineio.Message, 256),
		done:  make(chan struct{}),
		ready: make(chan struct{}),
	}
	f.client = srv.accept(f)
	close(f.ready)
	t.Cleanup(func() { f.Close() })
	return f
}

// in delivers text packets from the client.
func (f *fakeConn) in(packets ...string) {
	for _, p := range packets {
		f.client.onMessage(engineio.Message{Data: []byte(p)})
	}
}

func (f *fakeConn) inBinary(b []byte) {
	f.client.onMessage(engineio.Message{Data: b, Binary: true})
}

// next returns the next message the server sent.
func (f *fakeConn) next() engineio.Message {
	f.t.Helper()
	select {
	case m := <-f.out:
		return m
	case <-time.After(5 * time.Second):
		f.t.Fatal("no message from the server")
	}
	return engineio.Message{}
}

func (f *fakeConn) expect(want string) {
	f.t.Helper()
	if m := f.next(); m.Binary || string(m.Data) != want {
		f.t.Fatalf("got %q (binary %v), want %q", m.Data, m.Binary, want)
	}
}

func (f *fakeConn) expectPrefix(prefix string) string {
	f.t.Helper()
	m := f.next()
	if m.Binary || !strings.HasPrefix(string(m.Data), prefix) {
		f.t.Fatalf("got %q, want prefix %q", m.Data, prefix)
	}
	return string(m.Data)
}

// connect joins nsp and returns the socket id.
func (f *fakeConn) connect(nsp string) string {
	f.t.Helper()
	pfx := "0"
	if nsp != "/" {
		pfx += nsp + ","
	}
	f.in(pfx)
	got := f.expectPrefix(pfx)
	var v struct{ SID string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got, pfx)), &v); err != nil || v.SID == "" {
		f.t.Fatalf("bad CONNECT reply %q", got)
	}
	return v.SID
}

func (f *fakeConn) expectClosed() {
	f.t.Helper()
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		f.t.Fatal("connection not closed")
	}
}

func (f *fakeConn) expectSilence() {
	f.t.Helper()
	select {
	case m := <-f.out:
		f.t.Fatalf("unexpected message %q", m.Data)
	case <-time.After(50 * time.Millisecond):
	}
}

func newTestServer(t *testing.T) *Server {
	return newServer(Options{ConnectTimeout: 5 * time.Second})
}

// socketByID waits for the connected socket with id in ns.
func socketByID(t *testing.T, ns *Namespace, id string) *Socket {
	t.Helper()
	for _, s := range ns.Sockets(id) {
		return s
	}
	t.Fatalf("no socket %s", id)
	return nil
}

func TestConnectNamespaces(t *testing.T) {
	srv := newTestServer(t)
	custom := srv.Of("custom")
	if custom.Name() != "/custom" {
		t.Fatalf("Name = %q", custom.Name())
	}
	auths := make(chan string, 2)
	for _, ns := range []*Namespace{srv.Of("/"), custom} {
		ns.OnConnect(func(s *Socket) {
			auths <- s.Namespace().Name() + " " + string(s.Handshake().Auth)
			s.Emit("auth", s.Handshake().Auth)
		})
	}
	c := dial(t, srv)
	c.in(`0{"token":"123"}`)
	c.expectPrefix(`0{"sid":"`)
	c.expect(`2["auth",{"token":"123"}]`)
	c.in(`0/custom,`)
	c.expectPrefix(`0/custom,{"sid":"`)
	c.expect(`2/custom,["auth",null]`)
	c.in(`0/random`)
	c.expect(`4/random,{"message":"Invalid namespace"}`)
	for _, want := range []string{`/ {"token":"123"}`, `/custom `} {
		if got := <-auths; got != want {
			t.Errorf("OnConnect saw %q, want %q", got, want)
		}
	}
	// A second CONNECT for a joined namespace is a protocol error.
	c.in(`0/custom,`)
	c.expectClosed()
}

func TestConnectHooks(t *testing.T) {
	srv := newTestServer(t)
	var mu sync.Mutex
	var order []string
	record := func(name string, err error) ConnectHandler {
		return func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			if ev.Socket.Handshake().Header.Get("Cookie") != "a=b" {
				t.Errorf("the hook does not see the cookie")
			}
			return ConnectReply{}, err
		}
	}
	srv.OnConnecting(record("server", nil))
	srv.Of("/").OnConnecting(record("main", nil))
	srv.Of("/deny").OnConnecting(record("deny", &ConnectError{Message: "unauthorized", Data: map[string]string{"code": "NO_SESSION"}}))
	srv.Of("/plain").OnConnecting(record("plain", errors.New("boom")))
	srv.Of("/wrapped").OnConnecting(refuseWith(fmt.Errorf("check session: %w", &ConnectError{Message: "unauthorized"})))
	type key struct{}
	srv.Of("/data").OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
		if err := ev.Socket.Join(ctx, "too-early"); !errors.Is(err, ErrDisconnected) {
			t.Errorf("Join before connected: %v", err)
		}
		return ConnectReply{Rooms: []string{"early"}, Data: "user-1", Context: context.WithValue(ctx, key{}, "a")}, nil
	})
	srv.Of("/data").OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
		if v := ctx.Value(key{}); v != "a" {
			t.Errorf("second hook sees %v in its context", v)
		}
		if v := ev.Socket.Context().Value(key{}); v != "a" {
			t.Errorf("second hook sees %v in the socket's context", v)
		}
		return ConnectReply{Rooms: []string{"later"}, Context: context.WithValue(ctx, key{}, "b")}, nil
	})

	c := dial(t, srv)
	c.connect("/")
	c.in("0/deny,")
	c.expect(`4/deny,{"message":"unauthorized","data":{"code":"NO_SESSION"}}`)
	c.in("0/plain,")
	c.expect(`4/plain,{"message":"boom"}`)
	c.in("0/wrapped,")
	c.expect(`4/wrapped,{"message":"unauthorized"}`)
	id := c.connect("/data")
	s := socketByID(t, srv.Of("/data"), id)
	if s.Data() != "user-1" {
		t.Errorf("Data = %v", s.Data())
	}
	if got := s.Rooms(); !reflect.DeepEqual(got, []string{id, "early", "later"}) {
		t.Errorf("rooms of the replies: %v", got)
	}
	if v := s.Context().Value(key{}); v != "b" {
		t.Errorf("socket's context holds %v, want the last hook's", v)
	}
	s.Disconnect()
	if s.Context().Err() == nil {
		t.Error("socket's context not cancelled by its disconnection")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"server", "main", "server", "deny", "server", "plain", "server", "server"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
}

// A room a connect hook returned holds the socket by the time its CONNECT
// is sent, even while an OnConnect handler is still running: a broadcast
// made as soon as the client has seen CONNECT reaches it, and comes after
// CONNECT.
func TestRoomOfConnectReplyBeforeConnect(t *testing.T) {
	srv := newTestServer(t)
	ns := srv.Of("/")
	ns.OnConnecting(func(context.Context, ConnectEvent) (ConnectReply, error) {
		return ConnectReply{Rooms: []string{"early"}}, nil
	})
	release := make(chan struct{})
	ns.OnConnect(func(s *Socket) { <-release })
	defer close(release)

	c := dial(t, srv)
	c.connect("/")
	if err := ns.To("early").Emit(context.Background(), "news", 1); err != nil {
		t.Fatal(err)
	}
	c.expect(`2["news",1]`)
}

func TestConnectingContextCancelled(t *testing.T) {
	srv := newTestServer(t)
	entered := make(chan struct{})
	cancelled := make(chan struct{})
	srv.OnConnecting(func(ctx context.Context, _ ConnectEvent) (ConnectReply, error) {
		close(entered)
		<-ctx.Done()
		close(cancelled)
		return ConnectReply{}, ctx.Err()
	})
	c := dial(t, srv)
	c.in("0")
	<-entered
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("hook's context not cancelled")
	}
}

func TestEventsAndAcks(t *testing.T) {
	srv := newTestServer(t)
	type call struct {
		args   []any
		hasAck bool
	}
	calls := make(chan call, 10)
	srv.Of("/").On("message", func(s *Socket, ev Event, ack func(...any) error) {
		calls <- call{ev.Args, ack != nil}
		if ack != nil {
			if err := ack(append([]any{"ok"}, ev.Args...)...); err != nil {
				t.Errorf("ack: %v", err)
			}
			if err := ack(); err == nil {
				t.Errorf("second ack succeeded")
			}
		}
	})
	c := dial(t, srv)
	c.connect("/")
	c.in(`2["message",1,"2",{"3":[true]}]`)
	if got := <-calls; !reflect.DeepEqual(got, call{[]any{1.0, "2", map[string]any{"3": []any{true}}}, false}) {
		t.Errorf("got %+v", got)
	}
	c.in(`2456["message",1]`)
	<-calls
	c.expect(`3456["ok",1]`)
	// Binary event with an ack: the reply carries the bytes back as attachments.
	c.in(`52-789["message",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]`)
	c.inBinary([]byte{1, 2, 3})
	c.inBinary([]byte{4})
	if got := <-calls; !reflect.DeepEqual(got.args, []any{[]byte{1, 2, 3}, map[string]any{"x": []byte{4}}}) {
		t.Errorf("binary args %#v", got.args)
	}
	c.expect(`62-789["ok",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]`)
	if m := c.next(); !m.Binary || string(m.Data) != "\x01\x02\x03" {
		t.Errorf("attachment 0 = %v", m)
	}
	if m := c.next(); !m.Binary || string(m.Data) != "\x04" {
		t.Errorf("attachment 1 = %v", m)
	}
	// Unknown events are dropped.
	c.in(`2["nobody"]`)
	c.expectSilence()
}

// TestOnUnhandled: the fallback handler gets the events no On handler
// takes, with their ack; an On handler keeps its own events.
func TestOnUnhandled(t *testing.T) {
	srv := newTestServer(t)
	ns := srv.Of("/")
	ns.On("known", func(s *Socket, ev Event, ack func(...any) error) { ack("known") })
	ns.OnUnhandled(func(s *Socket, ev Event, ack func(...any) error) {
		if ack != nil {
			ack("fallback:" + ev.Name)
		}
	})
	c := dial(t, srv)
	c.connect("/")
	c.in(`21["known"]`)
	c.expect(`31["known"]`)
	c.in(`22["other",1]`)
	c.expect(`32["fallback:other"]`)
	c.in(`2["silent"]`) // no ack asked: nothing comes back
	c.in(`23["other"]`)
	c.expect(`33["fallback:other"]`)
}

func TestEmitWithAck(t *testing.T) {
	srv := newTestServer(t)
	c := dial(t, srv)
	id := c.connect("/")
	s := socketByID(t, srv.Of("/"), id)

	type result struct {
		args []any
		err  error
	}
	res := make(chan result, 1)
	go func() {
		args, err := s.EmitWithAck(context.Background(), "question", []byte{9})
		res <- result{args, err}
	}()
	c.expect(`51-0["question",{"_placeholder":true,"num":0}]`)
	c.next()
	c.in(`61-0["yes",{"_placeholder":true,"num":0}]`)
	c.inBinary([]byte{7})
	if r := <-res; r.err != nil || !reflect.DeepEqual(r.args, []any{"yes", []byte{7}}) {
		t.Fatalf("EmitWithAck = %v, %v", r.args, r.err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.EmitWithAck(ctx, "question"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: err = %v", err)
	}
	c.expect(`21["question"]`)

	go func() {
		_, err := s.EmitWithAck(context.Background(), "question")
		res <- result{err: err}
	}()
	c.expect(`22["question"]`)
	c.in("1")
	if r := <-res; !errors.Is(r.err, ErrDisconnected) {
		t.Fatalf("after disconnect: err = %v", r.err)
	}
	if err := srv.Of("/").Emit(context.Background(), "disconnect"); err == nil {
		t.Error("Emit of a reserved event succeeded")
	}
	if err := s.Emit("late"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Emit after disconnect: %v", err)
	}
}

// A handler may wait for an acknowledgement: acks do not queue behind it.
func TestEmitWithAckFromHandler(t *testing.T) {
	srv := newTestServer(t)
	got := make(chan []any, 1)
	srv.Of("/").On("ask", func(s *Socket, ev Event, ack func(...any) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		args, err := s.EmitWithAck(ctx, "q")
		if err != nil {
			t.Errorf("EmitWithAck: %v", err)
		}
		got <- args
	})
	c := dial(t, srv)
	c.connect("/")
	c.in(`2["ask"]`)
	c.expect(`20["q"]`)
	c.in(`30[1]`)
	if args := <-got; !reflect.DeepEqual(args, []any{1.0}) {
		t.Fatalf("args = %v", args)
	}
}

func TestDisconnectReasons(t *testing.T) {
	srv := newTestServer(t)
	reasons := make(chan string, 10)
	for _, name := range []string{"/", "/a"} {
		srv.Of(name).OnDisconnect(func(s *Socket, reason Reason) {
			reasons <- s.Namespace().Name() + " " + string(reason)
		})
	}
	expectReason := func(want string) {
		t.Helper()
		select {
		case got := <-reasons:
			if got != want {
				t.Fatalf("reason %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no disconnect, want %q", want)
		}
	}

	t.Run("client namespace disconnect", func(t *testing.T) {
		c := dial(t, srv)
		c.connect("/")
		c.connect("/a")
		c.in("1/a,")
		expectReason("/a client namespace disconnect")
		// the main namespace still works
		c.in("1")
		expectReason("/ client namespace disconnect")
	})
	t.Run("server namespace disconnect", func(t *testing.T) {
		c := dial(t, srv)
		id := c.connect("/")
		s := socketByID(t, srv.Of("/"), id)
		if err := s.Disconnect(); err != nil {
			t.Fatal(err)
		}
		c.expect("1")
		expectReason("/ server namespace disconnect")
		if err := s.Disconnect(); !errors.Is(err, ErrDisconnected) {
			t.Errorf("second Disconnect: %v", err)
		}
		c.expectSilence()
	})
	t.Run("disconnect and close", func(t *testing.T) {
		c := dial(t, srv)
		id := c.connect("/")
		c.connect("/a")
		s := socketByID(t, srv.Of("/"), id)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got := []string{string(c.next().Data), string(c.next().Data)}
		slices.Sort(got)
		if !reflect.DeepEqual(got, []string{"1", "1/a,"}) {
			t.Errorf("sent %q", got)
		}
		c.expectClosed()
		r := []string{<-reasons, <-reasons}
		slices.Sort(r)
		if !reflect.DeepEqual(r, []string{"/ server namespace disconnect", "/a server namespace disconnect"}) {
			t.Errorf("reasons %q", r)
		}
	})
	t.Run("transport", func(t *testing.T) {
		c := dial(t, srv)
		c.connect("/")
		c.client.onClose("ping timeout")
		expectReason("/ ping timeout")
	})
	t.Run("parse error", func(t *testing.T) {
		c := dial(t, srv)
		c.connect("/")
		c.in(`2{}`)
		c.expectClosed()
		expectReason("/ parse error")
	})
	t.Run("server shutting down", func(t *testing.T) {
		srv := newTestServer(t)
		srv.Of("/").OnDisconnect(func(s *Socket, reason Reason) { reasons <- string(reason) })
		c := dial(t, srv)
		c.connect("/")
		c.client.teardown("server shutting down") // what Server.Close does to each connection
		expectReason("server shutting down")
	})
}

func TestParseErrors(t *testing.T) {
	for _, in := range [][]string{
		{"abc"}, {"0", "2{}"}, {"0", `2abc["message"]`}, {"0", `3["x"]`}, {"0", `4{"message":"x"}`},
		{"0", `51-["a",{"_placeholder":true,"num":0}]`, `2["a"]`},
		{"0", `51-["a",{"_placeholder":true,"num":5}]`, "\x00"},
		{"0", "\x00"},
	} {
		t.Run(strings.Join(in, " "), func(t *testing.T) {
			srv := newTestServer(t)
			c := dial(t, srv)
			for _, p := range in {
				if p == "\x00" {
					c.inBinary([]byte{1})
				} else {
					c.in(p)
				}
			}
			c.expectClosed()
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	srv := newServer(Options{ConnectTimeout: 30 * time.Millisecond})
	c := dial(t, srv)
	c.expectClosed()

	// A session that joins in time is not closed when the timeout passes.
	// On a server of its own with a longer timeout: 30 ms could pass
	// between the dial and the CONNECT on a loaded machine (CI, -race).
	srv2 := newServer(Options{ConnectTimeout: 300 * time.Millisecond})
	c2 := dial(t, srv2)
	c2.connect("/")
	select {
	case <-c2.done:
		t.Fatal("connected session closed by the connect timeout")
	case <-time.After(400 * time.Millisecond): // past the timeout
	}
}

func TestRoomsAndBroadcast(t *testing.T) {
	srv := newTestServer(t)
	ns := srv.Of("/")
	conns := make([]*fakeConn, 4)
	socks := make([]*Socket, 4)
	for i := range conns {
		conns[i] = dial(t, srv)
		socks[i] = socketByID(t, ns, conns[i].connect("/"))
	}
	socks[0].Join(context.Background(), "a", "b")
	socks[1].Join(context.Background(), "a")
	socks[2].Join(context.Background(), "b", "b")
	if got := socks[2].Rooms(); !reflect.DeepEqual(got, []string{socks[2].ID(), "b"}) {
		t.Errorf("Rooms = %v", got)
	}

	received := func() []int {
		var got []int
		for i, c := range conns {
			select {
			case m := <-c.out:
				if string(m.Data) != `2["x",1]` {
					t.Errorf("socket %d got %q", i, m.Data)
				}
				got = append(got, i)
			case <-time.After(20 * time.Millisecond):
			}
		}
		return got
	}
	tests := []struct {
		name string
		emit func() error
		want []int
	}{
		{"room", func() error { return ns.To("a").Emit(context.Background(), "x", 1) }, []int{0, 1}},
		{"rooms union", func() error { return ns.To("a", "b").Emit(context.Background(), "x", 1) }, []int{0, 1, 2}},
		{"except", func() error { return ns.To("a").Except("b").Emit(context.Background(), "x", 1) }, []int{1}},
		{"all except", func() error { return ns.To().Except("a").Emit(context.Background(), "x", 1) }, []int{2, 3}},
		{"socket id", func() error { return ns.To(socks[3].ID()).Emit(context.Background(), "x", 1) }, []int{3}},
		{"except socket id", func() error { return ns.To("b").Except(socks[0].ID()).Emit(context.Background(), "x", 1) }, []int{2}},
		{"namespace", func() error { return ns.Emit(context.Background(), "x", 1) }, []int{0, 1, 2, 3}},
		{"unknown room", func() error { return ns.To("zzz").Emit(context.Background(), "x", 1) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.emit(); err != nil {
				t.Fatal(err)
			}
			if got := received(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("received by %v, want %v", got, tt.want)
			}
		})
	}

	if got := len(ns.Sockets("b")); got != 2 {
		t.Errorf("Sockets(b) = %d", got)
	}
	socks[0].Leave("b")
	socks[2].Disconnect()
	conns[2].expect("1")
	if got := ns.Sockets("b"); len(got) != 0 {
		t.Errorf("Sockets(b) after leave/disconnect = %v", got)
	}
	if got := len(ns.Sockets()); got != 3 {
		t.Errorf("Sockets() = %d", got)
	}
	if ns.mem.HasRoom("b") {
		t.Error("empty room kept")
	}
}

// A broadcast hands the same encoded messages to every socket.
func TestBroadcastEncodesOnce(t *testing.T) {
	srv := newTestServer(t)
	ns := srv.Of("/")
	a, b := dial(t, srv), dial(t, srv)
	a.connect("/")
	b.connect("/")
	if err := ns.Emit(context.Background(), "bin", []byte{1}); err != nil {
		t.Fatal(err)
	}
	ma, mb := a.next(), b.next()
	if string(ma.Data) != `51-["bin",{"_placeholder":true,"num":0}]` || &ma.Data[0] != &mb.Data[0] {
		t.Errorf("messages differ or not shared: %q %q", ma.Data, mb.Data)
	}
}

func TestSocketAccessors(t *testing.T) {
	srv := newTestServer(t)
	c := dial(t, srv)
	id := c.connect("/")
	s := socketByID(t, srv.Of("/"), id)
	if s.ID() != id || s.Transport() != "websocket" || !s.Connected() || s.Namespace() != srv.Of("/") {
		t.Errorf("accessors: %s %s %v", s.ID(), s.Transport(), s.Connected())
	}
	if s.Handshake().RemoteAddr != "127.0.0.1:1" || s.Handshake().Auth != nil {
		t.Errorf("handshake %+v", s.Handshake())
	}
	if len(id) != 20 {
		t.Errorf("id %q", id)
	}
}

// nopConn is an Engine.IO session that discards what is sent.
type nopConn struct{}

func (nopConn) ID() string                          { return "" }
func (nopConn) Handshake() *engineio.Handshake      { return nil }
func (nopConn) Transport() string                   { return "websocket" }
func (nopConn) Send(msgs ...engineio.Message) error { return nil }
func (nopConn) Close() error                        { return nil }

// The Socket.IO side of an idle connected socket, in one room besides its
// own, stays small: the budget for a whole connection is 10 KiB.
func TestIdleSocketMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement")
	}
	const n = 5000
	srv := newServer(Options{ConnectTimeout: time.Minute})
	ns := srv.Of("/")
	joined := make(chan struct{}, n)
	ns.OnConnect(func(s *Socket) {
		s.Join(context.Background(), "all")
		joined <- struct{}{}
	})
	clients := make([]*client, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range clients {
		clients[i] = srv.accept(nopConn{})
		clients[i].onMessage(engineio.Message{Data: []byte("0")})
	}
	for range n {
		<-joined
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (after.HeapAlloc - before.HeapAlloc) / n
	t.Logf("%d bytes of heap per idle connected socket", per)
	if per > 2048 {
		t.Errorf("%d bytes per idle socket, want ≤ 2048", per)
	}
	if got := len(ns.Sockets("all")); got != n {
		t.Fatalf("%d sockets in room", got)
	}
	runtime.KeepAlive(clients)
}

// BenchmarkBroadcast measures a broadcast to 1000 sockets of a room: the
// packet is encoded once, whatever the number of recipients.
func BenchmarkBroadcast(b *testing.B) {
	ns := roomOf(b, 1000)
	payload := map[string]any{"text": "hello", "n": 1, "blob": []byte("0123456789")}
	b.ReportAllocs()
	for b.Loop() {
		if err := ns.To("room").Emit(context.Background(), "news", payload); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	srv := newServer(Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	srv.Of("/").On("boom", func(s *Socket, ev Event, ack func(args ...any) error) { panic("kaboom") })
	srv.Of("/").On("hello", func(s *Socket, ev Event, ack func(args ...any) error) { ack("pong") })

	bad, good := dial(t, srv), dial(t, srv)
	bad.connect("/")
	good.connect("/")
	bad.in(`2["boom"]`)
	select {
	case <-bad.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the panicking connection was not closed")
	}
	good.in(`21["hello"]`)
	good.expect(`31["pong"]`)
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "kaboom") {
		t.Errorf("panic not logged: %q", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// refuseWith is a hook refusing every client with err.
func refuseWith(err error) ConnectHandler {
	return func(context.Context, ConnectEvent) (ConnectReply, error) { return ConnectReply{}, err }
}
