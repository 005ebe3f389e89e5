package engineio

import (
	"net/http"
	"strings"
	"testing"
)

// wsHandshakeHeader is what a websocket handshake sent with do carries.
func wsHandshakeHeader() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

// clientHeader keys requests by X-Client in the tests below, so that one
// loopback address can be several clients.
func clientHeader(r *http.Request) string { return r.Header.Get("X-Client") }

// TestHandshakeRateLimit: a client past its handshake bucket is refused
// with 429 and a Retry-After, on both transports, before any session opens;
// another client is not affected.
func TestHandshakeRateLimit(t *testing.T) {
	h := newHarness(t, Options{HandshakeRate: 0.01, HandshakeBurst: 2, ClientKey: clientHeader}, false)
	flood := http.Header{"X-Client": {"flood"}}
	for range 2 {
		if code, _, body := do(t, "GET", h.url+"&transport=polling", "", flood); code != 200 {
			t.Fatalf("handshake within the burst = %d %q", code, body)
		}
		h.socket(t)
	}
	for _, transport := range []string{"polling", "websocket"} {
		hdr := wsHandshakeHeader()
		if transport == "polling" {
			hdr = http.Header{}
		}
		hdr.Set("X-Client", "flood")
		code, got, body := do(t, "GET", h.url+"&transport="+transport, "", hdr)
		if code != http.StatusTooManyRequests || got.Get("Retry-After") == "" || body != `{"code":4,"message":"Too many handshakes"}` {
			t.Errorf("%s handshake past the burst = %d (Retry-After %q) %s", transport, code, got.Get("Retry-After"), body)
		}
	}
	if n := h.srv.Count(); n != 2 {
		t.Fatalf("Count = %d after refusals, want 2", n)
	}
	if st := h.srv.Stats(); st.RefusedRateLimited != 2 {
		t.Fatalf("Stats.RefusedRateLimited = %d, want 2", st.RefusedRateLimited)
	}

	// An honest client beside it opens and uses a websocket session.
	hh := newHarness(t, Options{HandshakeRate: 0.01, HandshakeBurst: 2, ClientKey: clientHeader}, true)
	c := dialWS(t, hh.url+"&transport=websocket")
	if _, open := readWS(t, c); !strings.HasPrefix(open, "0{") {
		t.Fatalf("honest handshake = %q", open)
	}
	writeWS(t, c, 1, "4hello")
	if _, m := readWS(t, c); m != "4hello" {
		t.Fatalf("echo = %q", m)
	}
}

// TestHandshakeRateDefaultKey: without ClientKey, the bucket is the peer's
// address.
func TestHandshakeRateDefaultKey(t *testing.T) {
	h := newHarness(t, Options{HandshakeRate: 0.01, HandshakeBurst: 1}, false)
	h.openPolling(t)
	if code, _, _ := do(t, "GET", h.url+"&transport=polling", "", nil); code != http.StatusTooManyRequests {
		t.Fatalf("second handshake from 127.0.0.1 = %d, want 429", code)
	}
}

// TestMaxPending: sessions not yet admitted are refused past MaxPending
// with 503, while admitted sessions still get the rest of MaxSessions; a
// slot is freed by Admit and by the session's end.
func TestMaxPending(t *testing.T) {
	h := newHarness(t, Options{MaxSessions: 3, MaxPending: 1}, false)
	refusedPending := func(what string) {
		t.Helper()
		code, got, body := do(t, "GET", h.url+"&transport=polling", "", nil)
		if code != http.StatusServiceUnavailable || got.Get("Retry-After") != "5" || body != `{"code":4,"message":"Too many unauthenticated sessions"}` {
			t.Fatalf("%s: handshake = %d (Retry-After %q) %s, want 503", what, code, got.Get("Retry-After"), body)
		}
	}
	h.openPolling(t)
	a := h.socket(t)
	refusedPending("one pending")
	a.Admit()
	a.Admit() // twice is harmless
	h.openPolling(t)
	b := h.socket(t)
	b.Admit()
	_, third := h.openPolling(t) // the last of MaxSessions, pending
	h.socket(t)
	if st := h.srv.Stats(); st.Pending != 1 || st.Sessions != 3 || st.RefusedPending != 1 {
		t.Fatalf("Stats = %+v, want 3 sessions, 1 pending, 1 refused", st)
	}
	if code, _, _ := do(t, "GET", h.url+"&transport=polling", "", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("handshake at MaxSessions = %d, want 503", code)
	}
	// The pending session's end frees its slot.
	if code, _, _ := do(t, "POST", third, "1", nil); code != 200 {
		t.Fatalf("close = %d", code)
	}
	h.closed(t, "transport close")
	if st := h.srv.Stats(); st.Pending != 0 {
		t.Fatalf("Stats.Pending = %d after the pending session closed, want 0", st.Pending)
	}
	h.openPolling(t)
	h.socket(t)
}

// TestMaxPendingPerKey: one client key gets at most MaxPendingPerKey
// sessions not yet admitted, polling and websocket alike; another key and
// admitted sessions are not affected.
func TestMaxPendingPerKey(t *testing.T) {
	h := newHarness(t, Options{MaxPendingPerKey: 2, ClientKey: clientHeader}, true)
	flood := http.Header{"X-Client": {"flood"}}
	var first *Socket
	for i := range 2 {
		if code, _, _ := do(t, "GET", h.url+"&transport=polling", "", flood); code != 200 {
			t.Fatalf("pending session %d refused: %d", i, code)
		}
		s := h.socket(t)
		if first == nil {
			first = s
		}
	}
	for _, transport := range []string{"polling", "websocket"} {
		hdr := wsHandshakeHeader()
		if transport == "polling" {
			hdr = http.Header{}
		}
		hdr.Set("X-Client", "flood")
		if code, got, body := do(t, "GET", h.url+"&transport="+transport, "", hdr); code != http.StatusServiceUnavailable || got.Get("Retry-After") != "5" || !strings.Contains(body, `"code":4`) {
			t.Errorf("%s handshake past the per-key cap = %d (Retry-After %q) %s", transport, code, got.Get("Retry-After"), body)
		}
	}
	if st := h.srv.Stats(); st.RefusedPendingPerKey != 2 {
		t.Fatalf("Stats.RefusedPendingPerKey = %d, want 2", st.RefusedPendingPerKey)
	}
	first.Admit()
	if code, _, _ := do(t, "GET", h.url+"&transport=polling", "", flood); code != 200 {
		t.Fatalf("handshake after one was admitted = %d", code)
	}
	h.socket(t)

	// Another client opens a websocket session and is echoed.
	c := dialWS(t, h.url+"&transport=websocket")
	if _, open := readWS(t, c); !strings.HasPrefix(open, "0{") {
		t.Fatalf("honest handshake = %q", open)
	}
	h.socket(t)
	writeWS(t, c, 1, "4hello")
	if _, m := readWS(t, c); m != "4hello" {
		t.Fatalf("echo = %q", m)
	}
	h.srv.keyMu.Lock()
	n := len(h.srv.perKey)
	h.srv.keyMu.Unlock()
	if n != 2 {
		t.Fatalf("per-key map holds %d keys, want 2 (flood and the honest one)", n)
	}
}

// TestUpgradeTransportPolling: a websocket upgrade whose query says
// transport=polling is refused with 400 code 3, with or without a sid, and
// opens no session.
func TestUpgradeTransportPolling(t *testing.T) {
	h := newHarness(t, Options{}, false)
	_, url := h.openPolling(t)
	h.socket(t)
	for _, u := range []string{h.url + "&transport=polling", url} {
		code, _, body := do(t, "GET", u, "", wsHandshakeHeader())
		if code != http.StatusBadRequest || body != `{"code":3,"message":"Bad request"}` {
			t.Errorf("upgrade to %s = %d %q, want 400 code 3", u, code, body)
		}
	}
	if n := h.srv.Count(); n != 1 {
		t.Fatalf("Count = %d, want 1", n)
	}
}

// TestHandshakeHeaders: a session keeps only the handshake's header fields
// that are used, not the request's whole header.
func TestHandshakeHeaders(t *testing.T) {
	h := newHarness(t, Options{}, false)
	hdr := http.Header{
		"Cookie":     {"connect.sid=s%3Aabc"},
		"Origin":     {"https://app.example"},
		"User-Agent": {"test"},
		"X-Padding":  {strings.Repeat("p", 4000)},
	}
	if code, _, _ := do(t, "GET", h.url+"&transport=polling", "", hdr); code != 200 {
		t.Fatalf("handshake = %d", code)
	}
	s := h.socket(t)
	got := s.Handshake().Header
	for _, name := range []string{"Cookie", "Origin", "User-Agent"} {
		if got.Get(name) != hdr.Get(name) {
			t.Errorf("Header %s = %q, want %q", name, got.Get(name), hdr.Get(name))
		}
	}
	for name := range got {
		switch name {
		case "Cookie", "Origin", "User-Agent":
		default:
			t.Errorf("Header keeps %s", name)
		}
	}
}
