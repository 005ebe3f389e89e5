package engineio

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// openWatched opens a websocket session and returns it once the server
// reads it: a ping answered means the poller (or the reading goroutine)
// handles the connection, so later sends take the path of an idle one.
func openWatched(t *testing.T, h *harness) (*websocket.Conn, *Socket) {
	t.Helper()
	c := dialWS(t, h.url+"&transport=websocket")
	readWS(t, c) // the handshake
	s := h.socket(t)
	writeWS(t, c, websocket.MessageText, "2sync")
	if _, m := readWS(t, c); m != "3sync" {
		t.Fatalf("pong = %q", m)
	}
	return c, s
}

// bigMessage is message i of a stream: its index, then size bytes that
// depend on it.
func bigMessage(i, size int) []byte {
	cycle := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), size/26+2)
	return append(fmt.Appendf(nil, "%06d:", i), cycle[i%26:i%26+size]...)
}

// sendAll sends msgs on s from a goroutine and waits for it, failing the
// test if the sends do not return before a generous deadline: a client
// that does not read must not hold up the sender.
func sendAll(t *testing.T, s *Socket, msgs [][]byte, then func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := s.Send(Message{Data: m}); err != nil {
				done <- err
				return
			}
		}
		if then != nil {
			done <- then()
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("send: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Send blocked while the client was not reading")
	}
}

// flusherRunning reports whether a flusher holds the connection's queue: the
// kernel's buffer was full.
func flusherRunning(s *Socket) bool {
	s.mu.Lock()
	c := s.ws
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushing
}

// fillMessages are enough large messages to fill the socket buffers of a
// loopback connection whose client does not read.
func fillMessages() [][]byte {
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = bigMessage(i, 128<<10)
	}
	return msgs
}

func readMessages(t *testing.T, c *websocket.Conn, msgs [][]byte) {
	t.Helper()
	for i, want := range msgs {
		typ, got := readWS(t, c)
		if typ != websocket.MessageText || got != "4"+string(want) {
			t.Fatalf("message %d: %v of %d bytes starting %.12q, want %d bytes starting %.12q",
				i, typ, len(got), got, 1+len(want), "4"+string(want))
		}
	}
}

// fillLimit lets fillMessages be queued: a reader that is slow, but reads.
const fillLimit = 16 << 20

func TestWebsocketSlowReader(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: fillLimit}, false)
	c, s := openWatched(t, h)
	msgs := fillMessages()
	sendAll(t, s, msgs, nil)
	if !flusherRunning(s) {
		t.Fatal("the client's buffers took everything: the test did not fill them")
	}
	readMessages(t, c, msgs)
	if err := s.Send(Message{Data: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if _, m := readWS(t, c); m != "4after" {
		t.Fatalf("read %q after draining, want %q", m, "4after")
	}
}

func TestWebsocketCloseAfterQueuedSends(t *testing.T) {
	h := newHarness(t, Options{MaxBufferedBytes: fillLimit}, false)
	c, s := openWatched(t, h)
	msgs := fillMessages()
	sendAll(t, s, msgs, s.Close)
	readMessages(t, c, msgs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("read after the queued messages = %v, want a normal closure", err)
	}
	h.closed(t, "forced close")
}

func TestWebsocketConcurrentSends(t *testing.T) {
	tests := []struct {
		name      string
		senders   int
		perSender int
		size      func(i int) int
	}{
		{"small", 8, 300, func(int) int { return 16 }},
		{"mixed", 4, 100, func(i int) int {
			if i%10 == 0 {
				return 256 << 10 // overflows the socket buffer now and then
			}
			return 100
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A burst of up to 10 MB from four senders: room for it all.
			h := newHarness(t, Options{MaxBufferedBytes: fillLimit}, false)
			c, s := openWatched(t, h)

			var wg sync.WaitGroup
			errs := make(chan error, tt.senders)
			for g := range tt.senders {
				wg.Go(func() {
					for i := range tt.perSender {
						m := append(fmt.Appendf(nil, "%d:%d:", g, i), bytes.Repeat([]byte{byte('a' + g)}, tt.size(i))...)
						if err := s.Send(Message{Data: m}); err != nil {
							errs <- err
							return
						}
					}
				})
			}

			next := make([]int, tt.senders)
			for range tt.senders * tt.perSender {
				typ, m := readWS(t, c)
				var g, i int
				if _, err := fmt.Sscanf(m, "4%d:%d:", &g, &i); err != nil || typ != websocket.MessageText || g < 0 || g >= tt.senders {
					t.Fatalf("read %v %.40q: not a message sent", typ, m)
				}
				if i != next[g] {
					t.Fatalf("sender %d: read message %d, want %d", g, i, next[g])
				}
				next[g]++
				body := strings.SplitN(m, ":", 3)[2]
				if want := strings.Repeat(string(rune('a'+g)), tt.size(i)); body != want {
					t.Fatalf("sender %d message %d: body of %d bytes, want %d of %q", g, i, len(body), len(want), want[:1])
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("send: %v", err)
			}
		})
	}
}
