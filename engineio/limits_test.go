package engineio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawWS is a websocket client on a bare TCP connection, for what no client
// library sends: floods, odd fragments, a client that stops reading.
type rawWS struct {
	net.Conn
	br *bufio.Reader
}

// hostPath splits the harness URL into the server's address and the
// request target.
func hostPath(h *harness) (string, string) {
	rest := strings.TrimPrefix(h.url, "http://")
	i := strings.IndexByte(rest, '/')
	return rest[:i], rest[i:]
}

// dialRaw opens a websocket session with query appended to the harness URL
// and returns once the 101 is read (not the frames after it).
func dialRaw(t *testing.T, h *harness, query string) *rawWS {
	t.Helper()
	host, path := hostPath(h)
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, query, host)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return &rawWS{Conn: conn, br: br}
}

// appendClientFrame appends a masked client frame to b.
func appendClientFrame(b []byte, op byte, fin bool, payload []byte) []byte {
	first := op
	if fin {
		first |= 0x80
	}
	b = append(b, first)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

// wsOf returns the websocket connection of s.
func wsOf(s *Socket) *wsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ws
}

// queuedPongs counts the websocket and the Engine.IO pongs queued on c.
func queuedPongs(c *wsConn) (control, eio int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.out {
		switch {
		case f.op == opPong:
			control++
		case f.op == opText && f.typ == pktPong:
			eio++
		}
	}
	return control, eio
}

// stallClient fills the buffers toward a raw client that does not read,
// until the server's flusher waits on the network.
func stallClient(t *testing.T, s *Socket) {
	t.Helper()
	sendAll(t, s, fillMessages(), nil)
	if !flusherRunning(s) {
		t.Fatal("the client's buffers took everything: the test did not fill them")
	}
}

// echoes checks that an honest websocket client of h is echoed.
func echoes(t *testing.T, h *harness) {
	t.Helper()
	c := dialWS(t, h.url+"&transport=websocket")
	if _, open := readWS(t, c); !strings.HasPrefix(open, "0{") {
		t.Fatalf("honest handshake = %q", open)
	}
	h.socket(t)
	writeWS(t, c, websocket.MessageText, "4honest")
	if _, m := readWS(t, c); m != "4honest" {
		t.Fatalf("honest echo = %q", m)
	}
}

// TestPingFloodOnePong: a client that floods pings (websocket control
// frames, or Engine.IO ping packets) and does not read gets at most one
// pong queued of each kind; an honest client beside it is echoed.
func TestPingFloodOnePong(t *testing.T) {
	for _, kind := range []string{"websocket", "engine.io"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, Options{MaxBufferedBytes: fillLimit}, true)
			raw := dialRaw(t, h, "&transport=websocket")
			s := h.socket(t)
			stallClient(t, s)
			var flood []byte
			for i := range 20000 {
				data := []byte(fmt.Sprint(i % 10))
				if kind == "websocket" {
					flood = appendClientFrame(flood, opPing, true, data)
				} else {
					flood = appendClientFrame(flood, opText, true, append([]byte{pktPing}, data...))
				}
			}
			flood = appendClientFrame(flood, opText, true, []byte("4done"))
			if _, err := raw.Write(flood); err != nil {
				t.Fatal(err)
			}
			if m := h.message(t); string(m.Data) != "done" {
				t.Fatalf("message = %q", m.Data)
			}
			control, eio := queuedPongs(wsOf(s))
			if control > 1 || eio > 1 {
				t.Fatalf("%d websocket pongs and %d Engine.IO pongs queued after 20000 pings, want at most 1 each", control, eio)
			}
			echoes(t, h)
		})
	}
}

// TestPollingPingFloodOnePong: Engine.IO pings POSTed by a polling client
// that does not GET queue one pong, which answers the last of them.
func TestPollingPingFloodOnePong(t *testing.T) {
	h := newHarness(t, Options{}, true)
	_, url := h.openPolling(t)
	s := h.socket(t)
	body := strings.Repeat("2\x1e", 999) + "2last"
	for range 10 {
		if code, _, resp := do(t, "POST", url, body, nil); code != 200 {
			t.Fatalf("POST = %d %q", code, resp)
		}
	}
	s.mu.Lock()
	n := len(s.queue)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d packets queued after 10000 pings, want 1 pong", n)
	}
	if code, _, got := do(t, "GET", url, "", nil); code != 200 || got != "3last" {
		t.Fatalf("GET = %d %q, want the pong of the last ping", code, got)
	}
	echoes(t, h)
}

// TestWebsocketSlowClient: a client that reads nothing while messages are
// sent to it is closed as "slow client" once MaxBufferedBytes are queued,
// and counted; an honest client beside it keeps working.
func TestWebsocketSlowClient(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: 1 << 20}, true)
	dialRaw(t, h, "&transport=websocket")
	s := h.socket(t)
	msg := Message{Data: bytes.Repeat([]byte("x"), 128<<10)}
	var err error
	for range 512 { // 64 MiB: far beyond the kernel's buffers
		if err = s.Send(msg); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("64 MiB sent to a client that reads nothing: Send = %v, want ErrClosed", err)
	}
	h.closed(t, "slow client")
	if st := h.srv.Stats(); st.ClosedSlow != 1 {
		t.Fatalf("Stats.ClosedSlow = %d, want 1", st.ClosedSlow)
	}
	echoes(t, h)
}

// TestPollingSlowClient: a polling client that never GETs while messages
// are sent to it is closed as "slow client" once MaxBufferedBytes are
// queued; its queue is dropped at once.
func TestPollingSlowClient(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: 1 << 20}, true)
	h.openPolling(t)
	s := h.socket(t)
	msg := Message{Data: bytes.Repeat([]byte("x"), 128<<10)}
	var err error
	for range 64 {
		if err = s.Send(msg); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("8 MiB queued for a client that never GETs: Send = %v, want ErrClosed", err)
	}
	s.mu.Lock()
	queued := s.queued
	s.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d bytes still queued after the slow client was closed", queued)
	}
	h.closed(t, "slow client")
	echoes(t, h)
}

// TestPollingNoGetTimesOut: a polling client that POSTs pongs but never
// GETs (so never fetches its pings) is closed for ping timeout within a
// heartbeat; an honest polling client beside it stays open.
func TestPollingNoGetTimesOut(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 200 * time.Millisecond, PingTimeout: time.Second}, false)
	_, attackURL := h.openPolling(t)
	attacker := h.socket(t)
	_, honestURL := h.openPolling(t)
	honest := h.socket(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	go func() { // the honest client: GET, answer pings, again
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", honestURL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- nil // cancelled
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				done <- fmt.Errorf("honest GET = %d %q", resp.StatusCode, b)
				return
			}
			if bytes.Contains(b, []byte{pktPing}) {
				req, _ := http.NewRequestWithContext(ctx, "POST", honestURL, strings.NewReader("3"))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
		done <- nil
	}()
	go func() { // the attacker: pongs, never a GET
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "POST", attackURL, strings.NewReader("3"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				break
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		done <- nil
	}()
	waitState(t, attacker, "the attacker closed", func() bool { return attacker.state == stateClosed })
	attacker.mu.Lock()
	reason := attacker.reason
	attacker.mu.Unlock()
	if reason != reasonPingTimeout {
		t.Fatalf("attacker closed with %q, want ping timeout", reasonText[reason])
	}
	honest.mu.Lock()
	open := honest.state == stateOpen
	honest.mu.Unlock()
	if !open {
		t.Fatal("the honest polling client was closed")
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPollingStalledBody: a POST whose body stops before its
// Content-Length frees its connection within PingTimeout; an honest POST
// beside it is handled.
func TestPollingStalledBody(t *testing.T) {
	h := newHarness(t, Options{PingTimeout: 300 * time.Millisecond}, false)
	_, url := h.openPolling(t)
	h.socket(t)
	host, _ := hostPath(h)
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := strings.TrimPrefix(url, "http://"+host)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n4stalled", target, host)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the stalled POST's connection is still held: %v", err)
	}

	_, honest := h.openPolling(t)
	h.socket(t)
	if code, _, body := do(t, "POST", honest, "4hi", nil); code != 200 || body != "ok" {
		t.Fatalf("honest POST = %d %q", code, body)
	}
	if m := h.message(t); string(m.Data) != "hi" {
		t.Fatalf("message = %q", m.Data)
	}
}
