package engineio

import (
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// broadcastRig is a server with n websocket sessions whose clients read
// and discard everything, counting the bytes.
type broadcastRig struct {
	srv      *Server
	sockets  []*Socket
	received atomic.Int64
}

// newBroadcastRig opens n sessions and waits until each has received its
// handshake packet.
func newBroadcastRig(tb testing.TB, n int) *broadcastRig {
	tb.Helper()
	rig := &broadcastRig{}
	var mu sync.Mutex
	rig.srv = NewServer(Options{OnConnection: func(s *Socket) {
		mu.Lock()
		rig.sockets = append(rig.sockets, s)
		mu.Unlock()
	}})
	ts := httptest.NewServer(rig.srv)
	host := strings.TrimPrefix(ts.URL, "http://")
	var conns []net.Conn
	tb.Cleanup(func() {
		rig.srv.Close()
		for _, c := range conns {
			c.Close()
		}
		ts.Close()
	})
	for range n {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, conn)
		fmt.Fprintf(conn, "GET /?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
		go func() {
			buf := make([]byte, 64<<10)
			for {
				m, err := conn.Read(buf)
				rig.received.Add(int64(m))
				if err != nil {
					return
				}
			}
		}()
	}
	rig.waitFor(tb, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(rig.sockets) == n
	})
	// Each client has its 101 and open packet (under 300 bytes) once the
	// count stops growing; what matters is only that later counts are
	// relative to now.
	rig.waitFor(tb, func() bool { return rig.received.Load() >= int64(n)*150 })
	return rig
}

// waitFor polls cond until it holds, without allocating.
func (rig *broadcastRig) waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("broadcast rig: timed out")
		}
		runtime.Gosched()
	}
}

// broadcast sends msg to every session and waits until every client has
// read it.
func (rig *broadcastRig) broadcast(tb testing.TB, msg Message) {
	tb.Helper()
	want := rig.received.Load() + int64(len(rig.sockets))*(int64(len(appendFrameHeader(nil, opText, int64(len(msg.Data)+1))))+1+int64(len(msg.Data)))
	for _, s := range rig.sockets {
		if err := s.Send(msg); err != nil {
			tb.Fatal(err)
		}
	}
	rig.waitFor(tb, func() bool { return rig.received.Load() >= want })
}

// allocPerRecipient is the bytes allocated, per recipient, by rounds
// broadcasts of msg.
func (rig *broadcastRig) allocPerRecipient(tb testing.TB, msg Message, rounds int) float64 {
	tb.Helper()
	rig.broadcast(tb, msg) // warm the pools
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		rig.broadcast(tb, msg)
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(rounds*len(rig.sockets))
}

// TestBroadcastSharesPayload: a message sent to many sockets is not copied
// per recipient: what each recipient costs in allocations does not grow
// with the payload (1 KiB and 1 MiB cost alike, within a few KiB).
func TestBroadcastSharesPayload(t *testing.T) {
	rig := newBroadcastRig(t, 20)
	small := rig.allocPerRecipient(t, Message{Data: make([]byte, 1<<10)}, 5)
	large := rig.allocPerRecipient(t, Message{Data: make([]byte, 1<<20)}, 5)
	t.Logf("allocated per recipient: %.0f B for a 1 KiB message, %.0f B for a 1 MiB one", small, large)
	if large-small > 16<<10 {
		t.Fatalf("a 1 MiB broadcast allocates %.0f B per recipient, %.0f more than a 1 KiB one: the payload is copied per recipient", large, large-small)
	}
}
