package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends req on a new connection to the server at base and
// returns the response's status.
func rawRequest(t *testing.T, base, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHeaderLimit: a request whose header is past 16 KiB (and the slack
// net/http gives) is answered 431 before any handler; a usual one is
// served.
func TestHeaderLimit(t *testing.T) {
	_, _, base := startMain(t, nil)
	big := fmt.Sprintf("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("p", 32<<10))
	if code := rawRequest(t, base, big); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("32 KiB header = %d, want 431", code)
	}
	usual := fmt.Sprintf("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n", strings.Repeat("u", 2<<10))
	if code := rawRequest(t, base, usual); code != http.StatusOK {
		t.Fatalf("usual handshake = %d, want 200", code)
	}
}

// TestHandshakeLimitsWired: RATE_LIMIT applies at the Engine.IO handshake
// (429), MAX_UNAUTHENTICATED_PER_IP to sessions that have not joined a
// namespace (503).
func TestHandshakeLimitsWired(t *testing.T) {
	handshake := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
	t.Run("rate", func(t *testing.T) {
		_, _, base := startMain(t, map[string]string{"RATE_LIMIT": "0.01", "RATE_BURST": "2"})
		for range 2 {
			if code := rawRequest(t, base, handshake); code != 200 {
				t.Fatalf("handshake within the burst = %d", code)
			}
		}
		if code := rawRequest(t, base, handshake); code != http.StatusTooManyRequests {
			t.Fatalf("handshake past the burst = %d, want 429", code)
		}
	})
	t.Run("unauthenticated per IP", func(t *testing.T) {
		_, _, base := startMain(t, map[string]string{"RATE_LIMIT": "0", "MAX_UNAUTHENTICATED_PER_IP": "2"})
		for range 2 {
			if code := rawRequest(t, base, handshake); code != 200 {
				t.Fatalf("handshake within the cap = %d", code)
			}
		}
		if code := rawRequest(t, base, handshake); code != http.StatusServiceUnavailable {
			t.Fatalf("third unauthenticated session = %d, want 503", code)
		}
	})
}

// TestMaxUnauthenticatedDefault: a tenth of MAX_CONNECTIONS unless set,
// never more than MAX_CONNECTIONS.
func TestMaxUnauthenticatedDefault(t *testing.T) {
	for _, tt := range []struct{ conns, set, want int }{
		{50000, 0, 5000}, {5, 0, 1}, {0, 0, 0}, {100, 30, 30}, {100, 500, 100}, {0, 30, 30},
	} {
		c := Config{MaxConnections: tt.conns, MaxUnauthenticated: tt.set}
		if got := c.maxUnauthenticated(); got != tt.want {
			t.Errorf("MAX_CONNECTIONS=%d MAX_UNAUTHENTICATED=%d: cap %d, want %d", tt.conns, tt.set, got, tt.want)
		}
	}
}

// BenchmarkKeepAliveAccept is what TCP keep-alive adds to each accepted
// connection: the listener's setsockopt calls (SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL, TCP_KEEPCNT), made here on one connection again and again.
// Run: go test -run '^$' -bench KeepAliveAccept ./cmd/sessiongate/
func BenchmarkKeepAliveAccept(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tc := s.(*net.TCPConn)
	for b.Loop() {
		if err := tc.SetKeepAliveConfig(keepAlive); err != nil {
			b.Fatal(err)
		}
	}
}

// TestContentLengthWithTransferEncoding: a request with both
// Content-Length and Transfer-Encoding is answered 400 and its connection
// closed (net/http alone takes it as chunked and keeps the connection).
// Requests before it on the same connection, with Content-Length or
// chunked bodies that mention both fields, are served as usual.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	_, _, base := startMain(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	body := "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	honest := []string{
		fmt.Sprintf("POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body),
		fmt.Sprintf("POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body),
		"GET /auth/me HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for i, req := range honest {
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("honest request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadRequest || resp.Close {
			t.Fatalf("honest request %d = %d (close %v)", i, resp.StatusCode, resp.Close)
		}
	}
	smuggle := "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	if _, err := conn.Write([]byte(smuggle)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("smuggling request: %v", err)
	}
	refusal, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("Content-Length with Transfer-Encoding = %d %q, want 400", resp.StatusCode, refusal)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the refusal, read = %v, want EOF: the connection stayed open", err)
	}
}

// TestFramingPipelined: requests pipelined in one write, with bodies
// holding header-like lines, are told apart; only the head that carried
// both fields is flagged.
func TestFramingPipelined(t *testing.T) {
	body := "Content-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"
	stream := fmt.Sprintf("\r\nPOST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", len(body), body) +
		fmt.Sprintf("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n%x;ext=1\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n", len(body), body) +
		"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET / HTTP/1.1\r\n\r\n"
	for _, step := range []int{1, 7, len(stream)} {
		c := &framingConn{}
		for i := 0; i < len(stream); i += step {
			c.feed([]byte(stream[i:min(i+step, len(stream))]))
		}
		if c.heads != 5 || c.smuggled != 4 || c.state != inHead {
			t.Errorf("read in pieces of %d: %d heads, smuggled %d, state %d; want 5, 4, %d", step, c.heads, c.smuggled, c.state, inHead)
		}
		for i := 1; i <= 5; i++ {
			if got := c.nextRequest(); got != (i >= 4) {
				t.Errorf("request %d refused = %v", i, got)
			}
		}
	}
}

// FuzzFraming: the tracker never panics, keeps a bounded line, and counts
// no more refusals than heads.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"), uint8(3))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nab\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		c := &framingConn{}
		n := int(step) + 1
		for i := 0; i < len(data); i += n {
			c.feed(data[i:min(i+n, len(data))])
			if len(c.line) > maxTrackedLine {
				t.Fatalf("line of %d bytes kept", len(c.line))
			}
		}
		if c.smuggled > c.heads || c.remaining < 0 {
			t.Fatalf("smuggled %d of %d heads, remaining %d", c.smuggled, c.heads, c.remaining)
		}
	})
}
