package socketio

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// roomOf returns a namespace with n connected sockets, on connections that
// discard what they are sent, in room "room".
func roomOf(tb testing.TB, n int) *Namespace {
	tb.Helper()
	srv := newServer(Options{ConnectTimeout: time.Minute})
	ns := srv.Of("/")
	joined := make(chan struct{}, n)
	ns.OnConnect(func(s *Socket) {
		s.Join(context.Background(), "room")
		joined <- struct{}{}
	})
	for range n {
		srv.accept(nopConn{}).onMessage(engineio.Message{Data: []byte("0")})
	}
	for range n {
		<-joined
	}
	return ns
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A broadcast is encoded once and the same bytes are handed to every
// recipient: what a 1 MB broadcast allocates does not grow with the room
// beyond the list of recipients.
func TestBroadcastSharesPayload(t *testing.T) {
	payloads := map[string]any{
		"binary": make([]byte, 1<<20),
		"text":   strings.Repeat("x", 1<<20),
	}
	one, hundred := roomOf(t, 1), roomOf(t, 100)
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			emit := func(ns *Namespace) func() {
				return func() {
					if err := ns.To("room").Emit(context.Background(), "news", payload); err != nil {
						t.Fatal(err)
					}
				}
			}
			base := allocated(emit(one))
			all := allocated(emit(hundred))
			per := (int64(all) - int64(base)) / 99
			t.Logf("1 recipient: %d B; 100 recipients: %d B; %d B per added recipient", base, all, per)
			if per > 1024 {
				t.Errorf("%d bytes allocated per added recipient of a 1 MB broadcast, want ≤ 1 KiB", per)
			}
		})
	}
}

// BenchmarkBroadcast1MB broadcasts 1 MB to the 100 sockets of a room and
// reports the bytes allocated per recipient (the encoding is shared).
func BenchmarkBroadcast1MB(b *testing.B) {
	const n = 100
	for _, tc := range []struct {
		name    string
		payload any
	}{
		{"binary", make([]byte, 1<<20)},
		{"text", strings.Repeat("x", 1<<20)},
	} {
		b.Run(tc.name+"/recipients="+strconv.Itoa(n), func(b *testing.B) {
			ns := roomOf(b, n)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			for b.Loop() {
				if err := ns.To("room").Emit(context.Background(), "news", tc.payload); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/n, "B/recipient")
		})
	}
}

// recordConn is an Engine.IO session that keeps the text of what it is
// sent.
type recordConn struct {
	nopConn
	mu   sync.Mutex
	sent []string
}

func (c *recordConn) Send(msgs ...engineio.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.sent = append(c.sent, string(m.Data))
	}
	return nil
}

// A broadcast to enough sockets to be delivered from several goroutines
// still reaches each socket once, and one caller's broadcasts reach each
// socket in the order they were made.
func TestBroadcastParallelDelivery(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(4, runtime.GOMAXPROCS(0))))
	const n = 4 * parallelFrom
	srv := newServer(Options{ConnectTimeout: time.Minute})
	ns := srv.Of("/")
	conns := make([]*recordConn, n)
	joined := make(chan struct{}, n)
	ns.OnConnecting(func(ctx context.Context, ev ConnectEvent) (ConnectReply, error) {
		return ConnectReply{Rooms: []string{"room"}}, nil
	})
	ns.OnConnect(func(s *Socket) { joined <- struct{}{} })
	for i := range conns {
		conns[i] = &recordConn{}
		srv.accept(conns[i]).onMessage(engineio.Message{Data: []byte("0")})
	}
	for range n {
		<-joined
	}
	for i := range 5 {
		if err := ns.To("room").Emit(context.Background(), "e", i); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		c.mu.Lock()
		got := slices.Clone(c.sent)
		c.mu.Unlock()
		if len(got) != 6 || !strings.HasPrefix(got[0], `0{"sid"`) {
			t.Fatalf("socket %d got %q, want CONNECT and 5 events", i, got)
		}
		for j, m := range got[1:] {
			if want := `2["e",` + strconv.Itoa(j) + `]`; m != want {
				t.Fatalf("socket %d: event %d is %q, want %q", i, j, m, want)
			}
		}
	}
}
