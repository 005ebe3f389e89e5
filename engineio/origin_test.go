package engineio

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestOriginAllowed: the request opening a session is never refused for its
// Origin, it marks the handshake; a later request (polling GET and POST, the
// upgrade) from an origin not allowed is refused with 403 code 4 and the
// session goes on. Without AllowedOrigins only the server's own origin (its
// Host) and requests without an Origin are allowed.
func TestOriginAllowed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		allowed []string
		origin  string // "self": the server's own origin
		want    bool
	}{
		{"no origin, default", nil, "", true},
		{"same origin, default", nil, "self", true},
		{"foreign, default", nil, "http://evil.example", false},
		{"null, default", nil, "null", false},
		{"listed", []string{"https://app.example"}, "https://app.example", true},
		{"same origin beside a list", []string{"https://app.example"}, "self", true},
		{"other port", []string{"https://app.example"}, "https://app.example:8443", false},
		{"other scheme", []string{"https://app.example"}, "http://app.example", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{AllowedOrigins: tt.allowed}, false)
			u, _ := url.Parse(h.url)
			origin := tt.origin
			if origin == "self" {
				origin = "http://" + u.Host
			}
			hdr := http.Header{}
			if origin != "" {
				hdr.Set("Origin", origin)
			}
			code, _, body := do(t, "GET", h.url+"&transport=polling", "", hdr)
			if code != 200 || !strings.HasPrefix(body, "0{") {
				t.Fatalf("handshake = %d %q, want the open packet", code, body)
			}
			s := h.socket(t)
			if got := s.Handshake().OriginAllowed; got != tt.want {
				t.Fatalf("OriginAllowed = %v, want %v", got, tt.want)
			}
			sidURL := h.url + "&transport=polling&sid=" + s.ID()
			code, _, body = do(t, "POST", sidURL, "4hi", hdr)
			if tt.want {
				if code != 200 || body != "ok" {
					t.Fatalf("later POST = %d %q", code, body)
				}
				if m := h.message(t); string(m.Data) != "hi" {
					t.Fatalf("message = %q", m.Data)
				}
			} else if code != 403 || body != `{"code":4,"message":"Forbidden"}` {
				t.Fatalf("later POST = %d %q, want 403 Forbidden", code, body)
			}
		})
	}
}

// TestOriginLaterRequests: a session opened from an allowed origin refuses
// each later request from a foreign one (polling GET, POST, the websocket
// upgrade) with 403, and goes on for its own browser.
func TestOriginLaterRequests(t *testing.T) {
	h := newHarness(t, Options{AllowedOrigins: []string{"https://app.example"}}, false)
	app := http.Header{"Origin": {"https://app.example"}}
	evil := http.Header{"Origin": {"https://evil.example"}}
	code, _, body := do(t, "GET", h.url+"&transport=polling", "", app)
	if code != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake = %d %q", code, body)
	}
	s := h.socket(t)
	if !s.Handshake().OriginAllowed {
		t.Fatal("OriginAllowed false for a listed origin")
	}
	sidURL := h.url + "&transport=polling&sid=" + s.ID()
	for _, method := range []string{"GET", "POST"} {
		if code, _, body := do(t, method, sidURL, "4hi", evil); code != 403 || body != `{"code":4,"message":"Forbidden"}` {
			t.Fatalf("%s from a foreign origin = %d %q, want 403", method, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := strings.Replace(h.url, "http", "ws", 1) + "&transport=websocket&sid=" + s.ID()
	if c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: evil}); err == nil {
		c.CloseNow()
		t.Fatal("upgrade from a foreign origin succeeded")
	} else if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("upgrade from a foreign origin: %v, want 403", err)
	}
	if code, _, body := do(t, "POST", sidURL, "4hi", app); code != 200 || body != "ok" {
		t.Fatalf("POST from the app = %d %q", code, body)
	}
	if m := h.message(t); string(m.Data) != "hi" {
		t.Fatalf("message = %q", m.Data)
	}
}

// TestOriginDirectWebsocket: a websocket opened directly from a foreign
// origin is not refused by HTTP: it opens, marked.
func TestOriginDirectWebsocket(t *testing.T) {
	h := newHarness(t, Options{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := strings.Replace(h.url, "http", "ws", 1) + "&transport=websocket"
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err != nil {
		t.Fatalf("direct websocket from a foreign origin: %v", err)
	}
	defer c.CloseNow()
	_, open, err := c.Read(ctx)
	if err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("open packet = %q, %v", open, err)
	}
	if s := h.socket(t); s.Handshake().OriginAllowed {
		t.Fatal("OriginAllowed true for a foreign origin")
	}
}

// FuzzOriginAllowed: whatever the Origin and Host, an origin is allowed only
// when absent, listed, or an http(s) origin whose host is the Host.
func FuzzOriginAllowed(f *testing.F) {
	for _, s := range [][2]string{
		{"https://app.example", "x"}, {"http://h:1", "h:1"}, {"null", "null"}, {"", "h"},
		{"http://H:1", "h:1"}, {"ws://h", "h"}, {"http://user@h", "h"}, {"http://h/path", "h"},
	} {
		f.Add(s[0], s[1])
	}
	srv := NewServer(Options{AllowedOrigins: []string{"https://app.example"}})
	defer srv.Close()
	f.Fuzz(func(t *testing.T, origin, host string) {
		r := &http.Request{Header: http.Header{}, Host: host}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if !srv.originAllowed(r) {
			return
		}
		if origin == "" || origin == "https://app.example" {
			return
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, host) || host == "" {
			t.Fatalf("Origin %q allowed for Host %q", origin, host)
		}
	})
}
