package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// newRecoveryServer is a server with recovery on for every socket, keyed
// by the "key" of the CONNECT auth, every socket starting in room "r".
func newRecoveryServer(t *testing.T) (*Server, *Namespace) {
	t.Helper()
	srv := newServer(Options{ConnectTimeout: 5 * time.Second, Recovery: &RecoveryOptions{
		Log: NewMemoryLog(MemoryLogOptions{}),
		Key: func(s *Socket) (string, bool) {
			var auth struct{ Key string }
			json.Unmarshal(s.Handshake().Auth, &auth)
			return auth.Key, auth.Key != ""
		},
	}})
	ns := srv.Of("/")
	ns.OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
		return ConnectReply{Rooms: []string{"r"}}, nil
	})
	return srv, ns
}

// connectRecovery sends a CONNECT with auth and returns the sid, the pid
// and the recovery event's info and offset, after the events written
// before the CONNECT (returned too).
func connectRecovery(t *testing.T, c *fakeConn, auth string) (sid, pid string, info RecoveryInfo, offset string, before []string) {
	t.Helper()
	c.in("0" + auth)
	for {
		m := string(c.next().Data)
		if strings.HasPrefix(m, "0") {
			var v struct{ SID, PID string }
			if err := json.Unmarshal([]byte(m[1:]), &v); err != nil {
				t.Fatalf("CONNECT %q: %v", m, err)
			}
			sid, pid = v.SID, v.PID
			break
		}
		before = append(before, m)
	}
	m := c.expectPrefix(`2["recovery",`)
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(m[1:]), &args); err != nil || len(args) != 3 {
		t.Fatalf("recovery event %q: %v", m, err)
	}
	json.Unmarshal(args[1], &info)
	json.Unmarshal(args[2], &offset)
	return sid, pid, info, offset, before
}

var offsetRE = regexp.MustCompile(`,"[A-Za-z0-9_-]{8}\.[0-9]+"\]$`)

// expectOffset expects the event packet want (without its offset) with an
// offset as its last argument, and returns the offset.
func expectOffset(t *testing.T, c *fakeConn, want string) string {
	t.Helper()
	m := string(c.next().Data)
	loc := offsetRE.FindStringIndex(m)
	if loc == nil || m[:loc[0]]+"]" != want {
		t.Fatalf("got %q, want %q with an offset", m, want)
	}
	return m[loc[0]+2 : len(m)-2]
}

func TestRecoveryWire(t *testing.T) {
	srv, ns := newRecoveryServer(t)
	c1 := dial(t, srv)
	sid, pid, info, _, _ := connectRecovery(t, c1, `{"key":"A"}`)
	if pid == "" || info != (RecoveryInfo{}) {
		t.Fatalf("first connect: pid %q, info %+v", pid, info)
	}
	s := socketByID(t, ns, sid)

	ns.Emit(ctx, "e", 1)
	expectOffset(t, c1, `2["e",1]`)
	s.Emit("direct", "x")
	last := expectOffset(t, c1, `2["direct","x"]`)
	ns.Except().Volatile().Emit(ctx, "v", "s")
	c1.expect(fmt.Sprintf(`2["v","s",%q]`, last)) // volatile: not logged, the last offset
	done := make(chan error, 1)
	go func() { _, err := s.EmitWithAck(ctx, "q"); done <- err }()
	c1.expect(`20["q"]`) // asks for an ack: no offset
	c1.in(`30[]`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Lost in flight: the client got up to last, not m0.
	ns.To("r").Emit(ctx, "m0")
	c1.next()
	c1.Close()
	for len(ns.Sockets()) > 0 {
		time.Sleep(time.Millisecond)
	}
	ns.To("r").Emit(ctx, "m1")
	ns.To("elsewhere").Emit(ctx, "no")
	ns.To(sid).Emit(ctx, "m2", []byte{7})

	// Another key: a fresh socket, told it may have missed events.
	c2 := dial(t, srv)
	sid2, pid2, info, _, before := connectRecovery(t, c2, fmt.Sprintf(`{"key":"B","pid":%q,"offset":%q}`, pid, last))
	if sid2 == sid || pid2 == pid || info != (RecoveryInfo{Missed: true}) || before != nil {
		t.Fatalf("another key: sid %s pid %s info %+v before %q", sid2, pid2, info, before)
	}

	// Its own key: the same socket, what it missed before the CONNECT.
	c3 := dial(t, srv)
	c3.in(fmt.Sprintf(`0{"key":"A","pid":%q,"offset":%q}`, pid, last))
	expectOffset(t, c3, `2["m0"]`)
	expectOffset(t, c3, `2["m1"]`)
	if m := string(c3.next().Data); !strings.HasPrefix(m, `51-["m2",{"_placeholder":true,"num":0},"`) {
		t.Fatalf("got %q, want m2 with its attachment and an offset", m)
	}
	if m := c3.next(); !m.Binary || string(m.Data) != "\x07" {
		t.Fatalf("attachment %q", m.Data)
	}
	c3.expect(fmt.Sprintf(`0{"sid":%q,"pid":%q}`, sid, pid))
	c3.expectPrefix(`2["recovery",{"recovered":true,"missed":false},"`)
	s3 := socketByID(t, ns, sid)
	if !s3.Recovered() || !strings.Contains(strings.Join(s3.Rooms(), ","), "r") {
		t.Errorf("recovered %v, rooms %v", s3.Recovered(), s3.Rooms())
	}
	st := srv.RecoveryStats()
	if st.Attempted != 2 || st.Succeeded != 1 || st.Failed[RecoveryKey] != 1 || st.Replayed != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestRecoveryOldSocket: a CONNECT that claims the pid of a socket still
// open (its connection half-open) closes it first if it has its key, and
// leaves it alone if not.
func TestRecoveryOldSocket(t *testing.T) {
	srv, ns := newRecoveryServer(t)
	ended := make(chan string, 4)
	ns.OnDisconnect(func(s *Socket, _ Reason) {
		time.Sleep(20 * time.Millisecond) // a slow handler: the recovery waits for it
		ended <- s.ID()
	})
	connected := make(chan string, 4)
	ns.OnConnect(func(s *Socket) {
		select {
		case id := <-ended:
			connected <- "after " + id
		default:
			connected <- "connect " + s.ID()
		}
	})
	c1 := dial(t, srv)
	sid, pid, _, off, _ := connectRecovery(t, c1, `{"key":"A"}`)
	<-connected

	c2 := dial(t, srv)
	connectRecovery(t, c2, fmt.Sprintf(`{"key":"B","pid":%q,"offset":%q}`, pid, off))
	<-connected
	ns.Emit(ctx, "still")
	expectOffset(t, c1, `2["still"]`) // c1 was left alone
	expectOffset(t, c2, `2["still"]`)

	c3 := dial(t, srv)
	sid3, _, info, _, _ := connectRecovery(t, c3, fmt.Sprintf(`{"key":"A","pid":%q,"offset":%q}`, pid, off))
	c1.expectClosed()
	if sid3 != sid || !info.Recovered {
		t.Fatalf("sid %s info %+v, want %s recovered", sid3, info, sid)
	}
	if got := <-connected; got != "after "+sid {
		t.Errorf("OnConnect %q: want it after the old socket's OnDisconnect", got)
	}
}

// sharedMemoryLog is a SharedLog for tests: a MemoryLog that servers of
// this process share, read back through Read.
type sharedMemoryLog struct {
	*MemoryLog
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each Append
}

func newSharedMemoryLog() *sharedMemoryLog {
	return &sharedMemoryLog{MemoryLog: NewMemoryLog(MemoryLogOptions{}), changed: make(chan struct{})}
}

func (l *sharedMemoryLog) Append(ctx context.Context, nsp string, e LogEntry) (string, error) {
	off, err := l.MemoryLog.Append(ctx, nsp, e)
	l.mu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return off, err
}

func (l *sharedMemoryLog) Read(ctx context.Context, nsp, after string) ([]LogEntry, string, error) {
	a, ok := l.parse(after)
	if !ok {
		return nil, "", &RecoveryError{RecoveryOffset}
	}
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		l.MemoryLog.mu.Lock()
		ns := l.nsLocked(nsp)
		var out []LogEntry
		for i := ns.after(a); i < len(ns.entries); i++ {
			out = append(out, ns.entries[i].e)
		}
		l.MemoryLog.mu.Unlock()
		if len(out) > 0 {
			return out, out[len(out)-1].Offset, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
}

// newSharedServers returns two servers of one cluster on a shared log,
// recovery keyed as newRecoveryServer's, every socket starting in room "r";
// the adapters of the second are newAdapter's, when given.
func newSharedServers(t *testing.T, newAdapter ...func(*MemoryAdapter) Adapter) (*sharedMemoryLog, [2]*Server, [2]*Namespace) {
	t.Helper()
	log := newSharedMemoryLog()
	var srvs [2]*Server
	var nss [2]*Namespace
	for i := range srvs {
		var na func(*MemoryAdapter) Adapter
		if i == 1 && len(newAdapter) > 0 {
			na = newAdapter[0]
		}
		srvs[i] = newServer(Options{ConnectTimeout: 5 * time.Second, NewAdapter: na, Recovery: &RecoveryOptions{
			Log: log,
			Key: func(s *Socket) (string, bool) {
				var auth struct{ Key string }
				json.Unmarshal(s.Handshake().Auth, &auth)
				return auth.Key, auth.Key != ""
			},
		}})
		t.Cleanup(func() { srvs[i].Close() })
		nss[i] = srvs[i].Of("/")
		nss[i].OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
			return ConnectReply{Rooms: []string{"r"}}, nil
		})
	}
	return log, srvs, nss
}

// TestRecoverySharedLog: with a SharedLog, both nodes deliver the events
// of either in the log's order; a socket that dropped on one node is
// recovered on the other with what it missed, once.
func TestRecoverySharedLog(t *testing.T) {
	log, srvs, nss := newSharedServers(t)
	c1 := dial(t, srvs[0])
	sid, pid, info, off0, _ := connectRecovery(t, c1, `{"key":"A"}`)
	if info != (RecoveryInfo{}) || off0 == "" {
		t.Fatalf("first connect: info %+v, offset %q", info, off0)
	}
	other := dial(t, srvs[1])
	connectRecovery(t, other, `{"key":"B"}`)

	// Events of both nodes, in the log's order on both.
	nss[1].To("r").Emit(ctx, "e", 1)
	nss[0].To("r").Emit(ctx, "e", 2)
	nss[1].Emit(ctx, "e", 3)
	var offs []string
	for i := 1; i <= 3; i++ {
		offs = append(offs, expectOffset(t, c1, fmt.Sprintf(`2["e",%d]`, i)))
		expectOffset(t, other, fmt.Sprintf(`2["e",%d]`, i))
	}
	// Its own emit and a volatile broadcast: not logged, the last offset.
	s := socketByID(t, nss[0], sid)
	s.Emit("direct", "x")
	c1.expect(fmt.Sprintf(`2["direct","x",%q]`, offs[2]))
	nss[1].Except().Volatile().Emit(ctx, "v")
	c1.expect(fmt.Sprintf(`2["v",%q]`, offs[2]))
	other.next()
	// A Local broadcast does not go through the log.
	nss[0].Local().Emit(ctx, "local")
	c1.expect(fmt.Sprintf(`2["local",%q]`, offs[2]))

	// Lost in flight: e4 was sent, not received.
	nss[0].To("r").Emit(ctx, "e", 4)
	c1.next()
	c1.Close()
	for len(nss[0].Sockets()) > 0 {
		time.Sleep(time.Millisecond)
	}
	nss[1].To("r").Emit(ctx, "e", 5)
	nss[0].To(sid).Emit(ctx, "e", 6)
	nss[1].To("elsewhere").Emit(ctx, "no")
	for i := 4; i <= 5; i++ {
		expectOffset(t, other, fmt.Sprintf(`2["e",%d]`, i))
	}
	other.expectSilence()                   // "no" reached no one
	if st := log.Stats(); st.Entries != 8 { // e1-3, v, e4-6, no: not "direct" nor "local"
		t.Errorf("log entries %d", st.Entries)
	}

	// On the other node: the same socket, its missed events before the
	// CONNECT, each once.
	c2 := dial(t, srvs[1])
	c2.in(fmt.Sprintf(`0{"key":"A","pid":%q,"offset":%q}`, pid, offs[2]))
	for i := 4; i <= 6; i++ {
		expectOffset(t, c2, fmt.Sprintf(`2["e",%d]`, i))
	}
	c2.expect(fmt.Sprintf(`0{"sid":%q,"pid":%q}`, sid, pid))
	c2.expectPrefix(`2["recovery",{"recovered":true,"missed":false},"`)
	nss[0].To("r").Emit(ctx, "e", 7)
	expectOffset(t, c2, `2["e",7]`)
	if st := srvs[1].RecoveryStats(); st.Succeeded != 1 || st.Replayed != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestRecoverySharedLogNodeDied: a socket whose node died without saving
// it (its live record only) is recovered on another node from its
// client's offset.
func TestRecoverySharedLogNodeDied(t *testing.T) {
	_, srvs, nss := newSharedServers(t)
	c1 := dial(t, srvs[0])
	sid, pid, _, _, _ := connectRecovery(t, c1, `{"key":"A"}`)
	s := socketByID(t, nss[0], sid)
	if err := s.Join(ctx, "extra"); err != nil {
		t.Fatal(err)
	}
	nss[1].To("r").Emit(ctx, "e", 1)
	off := expectOffset(t, c1, `2["e",1]`)
	// Node 0 "dies": its socket is neither closed nor saved; the client
	// got up to off. Waiting for the live record to hold room "extra":
	// it is saved again within a second of the join.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := srvs[0].rec.Log.(*sharedMemoryLog)
		st.MemoryLog.mu.Lock()
		sv := st.saved[savedKey{"/", pid}]
		rooms := []string(nil)
		if sv != nil {
			rooms = sv.Rooms
		}
		st.MemoryLog.mu.Unlock()
		if strings.Contains(strings.Join(rooms, ","), "extra") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live record rooms %v, want extra among them", rooms)
		}
		time.Sleep(10 * time.Millisecond)
	}
	watcher := dial(t, srvs[1])
	connectRecovery(t, watcher, `{"key":"W"}`)
	nss[1].To("extra").Emit(ctx, "e", 2)
	nss[1].To("r").Emit(ctx, "e", 3)
	expectOffset(t, watcher, `2["e",3]`) // node 1 delivered e2 and e3
	c2 := dial(t, srvs[1])
	c2.in(fmt.Sprintf(`0{"key":"A","pid":%q,"offset":%q}`, pid, off))
	expectOffset(t, c2, `2["e",2]`)
	expectOffset(t, c2, `2["e",3]`)
	c2.expect(fmt.Sprintf(`0{"sid":%q,"pid":%q}`, sid, pid))
	c2.expectPrefix(`2["recovery",{"recovered":true,"missed":false},"`)
}

// TestRecoverySharedLogGap: what a node delivers while a recovered socket
// runs its hooks (after its restore, before it is reachable) is replayed
// to it once, in order, before its CONNECT; what it delivers while the
// socket joins is held and follows the CONNECT.
func TestRecoverySharedLogGap(t *testing.T) {
	_, srvs, nss := newSharedServers(t)
	watcher := dial(t, srvs[1])
	connectRecovery(t, watcher, `{"key":"W"}`)
	c1 := dial(t, srvs[0])
	sid, pid, _, off, _ := connectRecovery(t, c1, `{"key":"A"}`)
	c1.Close()
	for len(nss[0].Sockets()) > 0 {
		time.Sleep(time.Millisecond)
	}
	nss[0].To("r").Emit(ctx, "e", 1)
	expectOffset(t, watcher, `2["e",1]`)
	nss[1].OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
		if ev.Recovered != nil {
			// Delivered by node 1 (the watcher got it) before the
			// recovered socket is registered.
			nss[0].To("r").Emit(ctx, "e", 2)
			expectOffset(t, watcher, `2["e",2]`)
		}
		return ConnectReply{}, nil
	})
	c2 := dial(t, srvs[1])
	c2.in(fmt.Sprintf(`0{"key":"A","pid":%q,"offset":%q}`, pid, off))
	expectOffset(t, c2, `2["e",1]`)
	expectOffset(t, c2, `2["e",2]`)
	c2.expect(fmt.Sprintf(`0{"sid":%q,"pid":%q}`, sid, pid))
	last := c2.expectPrefix(`2["recovery",{"recovered":true,"missed":false},"`)
	nss[0].To("r").Emit(ctx, "e", 3)
	if o := expectOffset(t, c2, `2["e",3]`); strings.Contains(last, o) {
		t.Errorf("e3's offset %s is the recovery event's %s", o, last)
	}
	c2.expectSilence()
}

// TestRecoveryDisabled: a socket that takes no part gets no pid and no
// offsets.
func TestRecoveryDisabled(t *testing.T) {
	srv, ns := newRecoveryServer(t)
	c := dial(t, srv)
	c.in(`0{}`) // no key: no recovery
	c.expectPrefix(`0{"sid":"`)
	ns.Emit(ctx, "e", "s")
	c.expect(`2["e","s"]`)
}

// BenchmarkPublishUserRoom publishes, from every core at once, to the
// rooms of single users among 1,000 sockets (sessiongate's usual event),
// without recovery and with every socket taking part (logged, with
// offsets, under the namespace's order).
func BenchmarkPublishUserRoom(b *testing.B) {
	for _, tc := range []struct {
		name string
		rec  *RecoveryOptions
	}{
		{"off", nil},
		{"on", &RecoveryOptions{Log: NewMemoryLog(MemoryLogOptions{})}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const n = 1000
			srv := newServer(Options{ConnectTimeout: time.Minute, Recovery: tc.rec})
			ns := srv.Of("/")
			var next atomic.Int64
			ns.OnConnecting(func(context.Context, ConnectEvent) (ConnectReply, error) {
				return ConnectReply{Rooms: []string{"user:" + strconv.FormatInt(next.Add(1), 10)}}, nil
			})
			joined := make(chan struct{}, n)
			ns.OnConnect(func(*Socket) { joined <- struct{}{} })
			for range n {
				srv.accept(nopConn{}).onMessage(engineio.Message{Data: []byte("0")})
			}
			for range n {
				<-joined
			}
			payload := map[string]any{"text": "hello", "n": 1}
			var i atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					room := "user:" + strconv.FormatInt(i.Add(1)%n+1, 10)
					if err := ns.To(room).Emit(context.Background(), "news", payload); err != nil {
						b.Fatal(err)
					}
				}
			})
			if tc.rec != nil {
				st := tc.rec.Log.(*MemoryLog).Stats()
				b.ReportMetric(float64(st.Bytes)/float64(max(st.Entries, 1)), "logB/event")
			}
		})
	}
}
