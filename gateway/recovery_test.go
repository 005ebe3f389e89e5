package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/tcpproxy"
	"github.com/sessiongate/sessiongate/socketio"
)

// recServer is a gateway served with recovery for the clients that ask.
type recServer struct {
	io   *socketio.Server
	ns   *socketio.Namespace
	url  string
	px   *tcpproxy.Proxy // to url
	gone chan string     // ids of sockets disconnected
}

func serveRecovery(t *testing.T, g *Gateway) *recServer {
	t.Helper()
	rs := &recServer{gone: make(chan string, 16)}
	rs.io = socketio.NewServer(socketio.Options{Recovery: &socketio.RecoveryOptions{
		Log:     socketio.NewMemoryLog(socketio.MemoryLogOptions{}),
		Enabled: AsksRecovery,
		Key:     g.RecoveryKey,
		State:   g.RecoveryState,
	}})
	rs.ns = rs.io.Of("/")
	g.Attach(rs.ns)
	rs.ns.OnDisconnect(func(s *socketio.Socket, _ socketio.Reason) { rs.gone <- s.ID() })
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", rs.io)
	hs := httptest.NewServer(mux)
	rs.url = hs.URL
	px, err := tcpproxy.New(hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rs.px = px
	t.Cleanup(func() {
		px.Close()
		rs.io.Close()
		hs.Close()
	})
	return rs
}

// nextLine returns the next line of r that is not a disconnect or a
// transport error (a reconnection attempt while the proxy refuses).
func nextLine(t *testing.T, r *nodetest.Run) nodetest.RecoveryLine {
	t.Helper()
	for {
		var l nodetest.RecoveryLine
		r.Next(&l, waitTimeout)
		if l.Event != "disconnect" && (l.Event != "connect_error" || l.Code != "") {
			return l
		}
	}
}

// connectAsking connects a client that asks for recovery through the
// proxy and returns its connect line and its first offset.
func connectAsking(t *testing.T, rs *recServer, cookie string) (*nodetest.Run, nodetest.RecoveryLine, string) {
	t.Helper()
	r := nodetest.StartRecoveryClient(t, "http://"+rs.px.Addr(), cookie, map[string]any{"recovery": true})
	c := nextLine(t, r)
	if c.Event != "connect" || c.PID == "" {
		t.Fatalf("got %+v, want a connect with a pid", c)
	}
	ev := nextLine(t, r)
	if ev.Name != "recovery" || len(ev.Args) != 2 {
		t.Fatalf("got %+v, want the recovery event", ev)
	}
	return r, c, ev.Args[1].(string)
}

// drop cuts the proxied connections, refuses new ones, and waits for the
// server to see the socket id go.
func (rs *recServer) drop(t *testing.T, id string) {
	t.Helper()
	rs.px.Pause()
	rs.px.Cut(true)
	select {
	case got := <-rs.gone:
		if got != id {
			t.Fatalf("socket %s disconnected, want %s", got, id)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the server did not see the drop")
	}
}

// TestRecoverySessionEnded: a session deleted while its socket was
// dropped is refused at the recovery with its usual code, and never gets
// the events sent to it meanwhile.
func TestRecoverySessionEnded(t *testing.T) {
	nodetest.Require(t, "test/interop")
	db := openSQLite(t)
	g := newGateway(t, Config{Sessions: db, Audit: db})
	rs := serveRecovery(t, g)
	sid, cookie := saveSession(t, db, "7", time.Now().Add(time.Hour))
	r, c, _ := connectAsking(t, rs, cookie)
	rs.drop(t, c.ID)
	rs.ns.To("user:7").Emit(context.Background(), "tick", 1)
	if err := db.DeleteSession(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	rs.px.Resume()
	l := nextLine(t, r)
	if l.Event != "connect_error" || l.Code != "SESSION_NOT_FOUND" {
		t.Fatalf("got %+v, want connect_error SESSION_NOT_FOUND and no missed event", l)
	}
	st := rs.io.RecoveryStats()
	if st.Attempted == 0 || st.Succeeded != 0 || st.Failed[socketio.RecoveryRefused] == 0 || st.Replayed != 0 {
		t.Errorf("stats %+v: want refused recoveries only", st)
	}
}

// TestRecoveryOtherSession: a pid and offset presented by a client of
// another session recover nothing (a fresh socket, told it may have missed
// events, none of the other's); the owner still recovers its socket after.
func TestRecoveryOtherSession(t *testing.T) {
	nodetest.Require(t, "test/interop")
	db := openSQLite(t)
	public, _ := ParseRoomPatterns("news:*")
	g := newGateway(t, Config{Sessions: db, Audit: db, PublicRooms: public})
	rs := serveRecovery(t, g)
	_, cookieA := saveSession(t, db, "7", time.Now().Add(time.Hour))
	_, cookieB := saveSession(t, db, "8", time.Now().Add(time.Hour))
	a, ca, offset := connectAsking(t, rs, cookieA)
	a.Send(`{"emit":"subscribe","args":[{"room":"news:1"}]}`)
	if l := nextLine(t, a); l.Event != "ack" || l.Args[0].(map[string]any)["ok"] != true {
		t.Fatalf("subscribe: %+v", l)
	}
	rs.drop(t, ca.ID)
	rs.ns.To("user:7").Emit(context.Background(), "tick", 1)
	rs.ns.To("news:1").Emit(context.Background(), "tick", 2)

	b := nodetest.StartRecoveryClient(t, rs.url, cookieB, map[string]any{"recovery": true, "pid": ca.PID, "offset": offset})
	l := nextLine(t, b)
	if l.Event != "connect" || l.Recovered || l.ID == ca.ID {
		t.Fatalf("other session: %+v, want a fresh socket", l)
	}
	l = nextLine(t, b)
	if info, _ := l.Args[0].(map[string]any); l.Name != "recovery" || info["recovered"] != false || info["missed"] != true {
		t.Fatalf("other session: %+v, want the recovery event {recovered:false, missed:true} and no tick", l)
	}
	if st := rs.io.RecoveryStats(); st.Failed[socketio.RecoveryKey] != 1 {
		t.Errorf("stats %+v: want one failure, key", st)
	}

	rs.px.Resume()
	// socket.io-client fires the events that came before CONNECT, then
	// "connect".
	for want := 1; want <= 2; want++ {
		if l := nextLine(t, a); l.Name != "tick" || l.Args[0] != float64(want) {
			t.Fatalf("owner: %+v, want tick %d", l, want)
		}
	}
	l = nextLine(t, a)
	if l.Event != "connect" || !l.Recovered || l.ID != ca.ID {
		t.Fatalf("owner: %+v, want its socket recovered", l)
	}
	if l := nextLine(t, a); l.Name != "recovery" || l.Args[0].(map[string]any)["recovered"] != true {
		t.Fatalf("owner: %+v, want the recovery event", l)
	}
	// The subscription came back as one: unsubscribe is ok (a room the
	// server joined would be FORBIDDEN), and it stops the room's events.
	a.Send(`{"emit":"unsubscribe","args":[{"room":"news:1"}]}`)
	if l := nextLine(t, a); l.Event != "ack" || l.Args[0].(map[string]any)["ok"] != true {
		t.Fatalf("unsubscribe: %+v", l)
	}
	rs.ns.To("news:1").Emit(context.Background(), "tick", 3)
	rs.ns.To("user:7").Emit(context.Background(), "tick", 4)
	if l := nextLine(t, a); l.Name != "tick" || l.Args[0] != float64(4) {
		t.Fatalf("owner: %+v, want tick 4 only", l)
	}
}

// TestRecoverySessionRooms: a socket recovered after its row changed
// during the drop is in the SESSION_ROOMS the row renders now, not in the
// one it lost; the rooms it was put in otherwise come back.
func TestRecoverySessionRooms(t *testing.T) {
	nodetest.Require(t, "test/interop")
	db := openSQLite(t)
	rooms, err := ParseSessionRooms("org:{orgId}")
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, Config{Sessions: db, Audit: db, SessionRooms: rooms, CheckInterval: time.Hour, RefreshThreshold: -1})
	rs := serveRecovery(t, g)
	ctx := context.Background()
	expire := time.Now().Add(time.Hour)
	sid := expresssession.NewSessionID()
	save := orgSaver(t, db, sid, expire)
	save("1")
	r, c, _ := connectAsking(t, rs, cookieHeader(sid))
	if err := rs.ns.To(c.ID).SocketsJoin(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	rs.drop(t, c.ID)
	save("2")
	rs.px.Resume()
	if l := nextLine(t, r); l.Event != "connect" || !l.Recovered || l.ID != c.ID {
		t.Fatalf("got %+v, want %s recovered", l, c.ID)
	}
	s := rs.ns.Sockets(c.ID)
	if len(s) != 1 {
		t.Fatalf("no socket %s", c.ID)
	}
	got := s[0].Rooms()
	for _, want := range []string{"user:42", "org:2", "ops"} {
		if !slices.Contains(got, want) {
			t.Errorf("rooms %v lack %s", got, want)
		}
	}
	if slices.Contains(got, "org:1") {
		t.Errorf("rooms %v: org:1, lost during the drop, came back", got)
	}
}
