package socketio

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// sinkConn is an Engine.IO session that discards what is sent; Close ends
// the session as the engine does, calling the client's onClose.
type sinkConn struct {
	mu     sync.Mutex
	closed bool
	client *client
}

func (*sinkConn) ID() string                     { return "fuzz" }
func (*sinkConn) Handshake() *engineio.Handshake { return nil }
func (*sinkConn) Transport() string              { return "websocket" }

func (c *sinkConn) Send(msgs ...engineio.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errFakeClosed
	}
	return nil
}

func (c *sinkConn) Close() error {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	cl := c.client
	c.mu.Unlock()
	if !was && cl != nil {
		cl.onClose("forced close")
	}
	return nil
}

// Limits of the connection fuzzed: small, so that short inputs reach them.
const (
	fuzzMaxPayload = 2048
	fuzzMaxQueued  = 4096
	fuzzBigMessage = 1500 // length code 127
)

// fuzzMessages decodes a fuzz input into Engine.IO messages: a header byte
// (bit 0: binary; bits 1-7: length, 127 standing for fuzzBigMessage filler
// bytes) followed by the message's bytes.
func fuzzMessages(b []byte) []engineio.Message {
	var msgs []engineio.Message
	for len(b) > 0 {
		h := b[0]
		b = b[1:]
		n := int(h >> 1)
		var data []byte
		if n == 127 {
			data = make([]byte, fuzzBigMessage)
			for i := range data {
				data[i] = 'x'
			}
		} else {
			n = min(n, len(b))
			data, b = b[:n], b[n:]
		}
		msgs = append(msgs, engineio.Message{Data: data, Binary: h&1 == 1})
	}
	return msgs
}

// fuzzInput encodes messages for fuzzMessages: "bin:" marks a binary one,
// "big" a fuzzBigMessage binary one.
func fuzzInput(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		binary := byte(0)
		if m == "big" {
			b = append(b, 127<<1|1)
			continue
		}
		if len(m) > 4 && m[:4] == "bin:" {
			binary, m = 1, m[4:]
		}
		if len(m) > 126 {
			panic("fuzz seed message too long: " + m)
		}
		b = append(b, byte(len(m))<<1|binary)
		b = append(b, m...)
	}
	return b
}

// FuzzConnection feeds a whole connection's sequence of messages to a
// client and checks, after each one, that what the client makes the server
// hold stays within the limits; at the end the connection closes cleanly:
// no socket is left in the namespaces and the handler queue drains.
func FuzzConnection(f *testing.F) {
	ph := `{"_placeholder":true,"num":0}`
	for _, seq := range [][]string{
		{"0", `21["echo",1]`, `30[]`},
		{"0", `51-1["echo",` + ph + `]`, "bin:\x01\x02"},
		{"0", `510-["echo",` + ph + `]`, "big", "big", "big"}, // attachments over MaxPayload
		{"0", `51-["echo",` + ph + `]`, `2["echo"]`},          // text while attachments expected
		{"0", `50-["echo"]`},
		{"0", `511-["echo"]`},
		{"0", "bin:\x00"},
		{`2["echo"]`}, // event before CONNECT
		{"0/a,", `2/a,["echo"]`, `2/b,["echo"]`, "1/a,", `2/a,["echo"]`},
		{"0/deny,", "0/deny,", "0/nowhere,", "0/deny,", "0"},
		{"0", "0/a,", "0/b,", "0/c,"},
		{"0", `3/a,0[]`, `31[]`, `30[{"_placeholder":true,"num":0}]`, `61-0[` + ph + `]`, "bin:z"},
		{"0", `2["echo","` + string(make([]byte, 100)) + `"]`, `2["block"]`, `2["block"]`, `2["block"]`},
		{"0", "4{}", "1", "1"},
	} {
		f.Add(fuzzInput(seq...))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		msgs := fuzzMessages(input)
		opts := Options{
			Engine:             engineio.Options{MaxPayload: fuzzMaxPayload},
			ConnectTimeout:     time.Minute,
			AttachmentTimeout:  time.Minute,
			PacketRate:         0.001,
			PacketBurst:        64,
			MaxQueuedBytes:     fuzzMaxQueued,
			MaxNamespaces:      3,
			MaxRefusedConnects: 3,
			MaxPendingAcks:     2,
			Logger:             slog.New(slog.DiscardHandler),
		}
		srv := newServer(opts)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var asks sync.WaitGroup
		for _, name := range []string{"/", "/a", "/b", "/c"} {
			ns := srv.Of(name)
			ns.On("echo", func(s *Socket, ev Event, ack func(...any) error) {
				if ack != nil {
					ack(ev.Args...)
				}
			})
			ns.OnConnect(func(s *Socket) {
				asks.Go(func() {
					_, err := s.EmitWithAck(ctx, "ask", []byte{1})
					if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrDisconnected) && !errors.Is(err, errFakeClosed) {
						t.Errorf("EmitWithAck: %v", err)
					}
				})
			})
		}
		srv.Of("/deny").OnConnecting(refuseWith(errors.New("denied")))

		conn := &sinkConn{}
		c := srv.accept(conn)
		conn.mu.Lock()
		conn.client = c
		conn.mu.Unlock()
		for _, m := range msgs {
			if len(m.Data) > fuzzMaxPayload {
				continue // the engine refuses it
			}
			c.onMessage(m)
			c.mu.Lock()
			binBytes, bins, queued, tasks, sockets := c.binBytes, len(c.bins), c.queued, len(c.queue), len(c.sockets)
			c.mu.Unlock()
			if binBytes > fuzzMaxPayload || bins > MaxAttachments {
				t.Fatalf("holding %d attachments, %d bytes", bins, binBytes)
			}
			if queued > max(fuzzMaxQueued, fuzzMaxPayload) || tasks > maxQueued {
				t.Fatalf("queue holds %d tasks, %d bytes", tasks, queued)
			}
			if sockets > opts.MaxNamespaces {
				t.Fatalf("%d namespaces", sockets)
			}
		}
		c.close("transport close")
		// The handler goroutine may still be in an OnConnect, which adds to
		// asks: wait for it to finish before waiting on asks.
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.mu.Lock()
			idle := !c.running && c.binary == nil && len(c.sockets) == 0
			c.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("connection not torn down")
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		asks.Wait()
		for _, name := range []string{"/", "/a", "/b", "/c"} {
			if left := srv.Of(name).Sockets(); len(left) > 0 {
				t.Fatalf("%d sockets left in %s after the close", len(left), name)
			}
		}
	})
}
