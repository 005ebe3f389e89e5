package main

import (
	"bufio"
	"fmt"
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
