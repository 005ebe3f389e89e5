package engineio

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzLimits are small limits, so that short inputs reach them.
var fuzzLimits = Options{MaxPayload: 512, MaxBufferedBytes: 1024, PingInterval: time.Hour}

// clientProgram turns fuzz input into what a client sends: a sequence of
// websocket frames (messages, fragments, control frames, raw bytes), and
// the sizes of the reads the server gets them in.
func clientProgram(data []byte) (stream []byte, reads []int) {
	for len(data) >= 2 {
		op, n := data[0], int(data[1])
		data = data[2:]
		n = min(n, len(data))
		payload := data[:n]
		data = data[n:]
		switch op % 9 {
		case 0:
			stream = appendClientFrame(stream, opPing, true, payload[:min(n, 125)])
		case 1:
			stream = appendClientFrame(stream, opText, true, payload)
		case 2:
			stream = appendClientFrame(stream, opBinary, true, payload)
		case 3:
			stream = appendClientFrame(stream, opText, false, payload)
		case 4:
			stream = appendClientFrame(stream, opContinuation, op&0x80 != 0, payload)
		case 5:
			stream = appendClientFrame(stream, opPong, true, payload[:min(n, 125)])
		case 6:
			stream = append(stream, payload...) // anything at all
		case 7:
			for range n { // a flood of Engine.IO pings
				stream = appendClientFrame(stream, opText, true, []byte{pktPing})
			}
		case 8:
			reads = append(reads, n+1)
		}
	}
	return stream, reads
}

// FuzzConnection drives one websocket session of a real Server, over
// net.Pipe, with a client's whole sequence of frames, read in pieces of
// any size; every message is echoed. After each piece, what the server
// holds for the connection stays within its limits: the queued bytes
// within MaxBufferedBytes, at most one pong of each kind queued, a
// reassembled message within MaxPayload. It never panics, and the session
// ends cleanly, leaving nothing registered or counted.
func FuzzConnection(f *testing.F) {
	f.Add([]byte("\x01\x024x\x00\x01p\x07\x40\x03\x10aaaaaaaaaaaaaaaa\x84\x10bbbbbbbbbbbbbbbb"))
	f.Add([]byte("\x07\xff\x00\x05hello\x08\x03\x01\x0542ab"))
	f.Add([]byte("\x03\x04text\x04\x04more\x01\x02x1\x84\x01!"))
	f.Add([]byte("\x06\x06\x81\xfe\xff\xff\x00\x00\x05\x00"))
	f.Add([]byte("\x02\xff" + strings.Repeat("z", 255) + "\x02\xff" + strings.Repeat("y", 255)))
	f.Fuzz(func(t *testing.T, data []byte) {
		stream, reads := clientProgram(data)
		closed := make(chan string, 1)
		opts := fuzzLimits
		opts.OnConnection = func(s *Socket) {
			s.OnMessage(func(m Message) { _ = s.Send(m) })
			s.OnClose(func(reason string) { closed <- reason })
		}
		srv := NewServer(opts)
		defer srv.Close()
		serverEnd, clientEnd := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, clientEnd) }()
		defer clientEnd.Close()

		c := &wsConn{srv: srv, conn: serverEnd}
		s := srv.newSocket(httptest.NewRequest("GET", "/?EIO=4&transport=websocket", nil), url.Values{}, "")
		s.ws, c.sock = c, s
		srv.reservePendingForTest()
		srv.register(s)
		srv.opts.OnConnection(s)

		for i := 0; len(stream) > 0; i++ {
			n := len(stream)
			if len(reads) > 0 {
				n = min(n, reads[i%len(reads)])
			}
			chunk := append([]byte(nil), stream[:n]...) // handle unmasks in place
			stream = stream[n:]
			goOn := c.handle(chunk)
			checkLimits(t, c)
			if !goOn {
				break
			}
		}
		c.teardown()
		c.sock.transportGone(c, reasonTransportClose)
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the session did not end")
		}
		if st := srv.Stats(); st.Sessions != 0 || st.Pending != 0 {
			t.Fatalf("after the session ended: %+v", st)
		}
		if srv.lookup(s.id) != nil {
			t.Fatal("the session is still registered")
		}
	})
}

// reservePendingForTest counts a pending session as admitHandshake does.
func (srv *Server) reservePendingForTest() { srv.pending.Add(1) }

// checkLimits asserts what c holds is within the server's limits.
func checkLimits(t *testing.T, c *wsConn) {
	t.Helper()
	max := c.srv.opts.MaxPayload
	c.mu.Lock()
	queued := c.queued
	c.mu.Unlock()
	if queued > c.srv.opts.MaxBufferedBytes {
		t.Fatalf("%d bytes queued, over MaxBufferedBytes %d", queued, c.srv.opts.MaxBufferedBytes)
	}
	if control, eio := queuedPongs(c); control > 1 || eio > 1 {
		t.Fatalf("%d websocket and %d Engine.IO pongs queued", control, eio)
	}
	if int64(len(c.frag)) > max {
		t.Fatalf("reassembled %d bytes, over MaxPayload %d", len(c.frag), max)
	}
	// A partial frame is kept only while it can still be one the limit
	// allows: its header (at most 14 bytes) and payload.
	if int64(len(c.in)) > max+14 {
		t.Fatalf("%d bytes of a partial frame kept", len(c.in))
	}
}

// FuzzPollingSession drives one polling session of a real Server with a
// client's sequence of POSTed payloads and GETs; every message is echoed.
// After each request the queue stays within MaxBufferedBytes with at most
// one pong in it; nothing panics; closing the server leaves nothing
// counted.
func FuzzPollingSession(f *testing.F) {
	f.Add([]byte("\x00\x0a4hello\x1e2\x1e2\x01\x00\x00\x032\x1e3"))
	f.Add([]byte("\x00\xff" + strings.Repeat("4x\x1e", 85) + "\x00\x05bAAAA\x01\x00"))
	f.Add([]byte("\x00\x011\x01\x00\x00\x024a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := fuzzLimits
		opts.OnConnection = func(s *Socket) {
			s.OnMessage(func(m Message) { _ = s.Send(m) })
		}
		srv := NewServer(opts)
		defer func() {
			srv.Close()
			if st := srv.Stats(); st.Sessions != 0 || st.Pending != 0 {
				t.Fatalf("after the server closed: %+v", st)
			}
		}()
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/?EIO=4&transport=polling", nil))
		body := w.Body.String()
		i := strings.Index(body, `"sid":"`)
		if i < 0 {
			t.Fatalf("handshake = %q", body)
		}
		sid := body[i+7 : i+7+20]
		s := srv.lookup(sid)
		target := "/?EIO=4&transport=polling&sid=" + sid
		done, cancel := context.WithCancel(context.Background())
		cancel() // a GET takes what is queued, never waits
		for len(data) >= 2 {
			op, n := data[0], min(int(data[1]), len(data)-2)
			payload := data[2 : 2+n]
			data = data[2+n:]
			var r *http.Request
			if op%2 == 0 {
				r = httptest.NewRequest("POST", target, bytes.NewReader(payload))
			} else {
				r = httptest.NewRequestWithContext(done, "GET", target, nil)
			}
			srv.ServeHTTP(httptest.NewRecorder(), r)
			s.mu.Lock()
			queued, pongs := s.queued, 0
			for _, p := range s.queue {
				if p.typ == pktPong {
					pongs++
				}
			}
			s.mu.Unlock()
			if queued > opts.MaxBufferedBytes || pongs > 1 {
				t.Fatalf("%d bytes and %d pongs queued", queued, pongs)
			}
		}
	})
}
