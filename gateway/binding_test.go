package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/socketio"
)

const (
	appOrigin     = "https://app.example"
	foreignOrigin = "https://evil.example"
)

// serveBound serves Socket.IO as `sessiongate serve` does: g attached to
// the main namespace and binding each session's later requests
// (VerifyRequest), with an "echo" event that acknowledges its argument.
func serveBound(t *testing.T, g *Gateway) string {
	t.Helper()
	srv := socketio.NewServer(socketio.Options{
		Engine:          engineio.Options{AllowedOrigins: testOrigins, VerifyRequest: g.VerifyRequest},
		OriginRefusal:   OriginRefusal(),
		OnOriginRefused: g.OriginRefused,
	})
	ns := srv.Of("/")
	g.Attach(ns)
	ns.On("echo", func(s *socketio.Socket, ev socketio.Event, ack func(args ...any) error) {
		if ack != nil {
			ack(ev.Args...)
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return hs.URL + "/socket.io/?EIO=4"
}

// pollRequest sends one polling request with the headers given ("" leaves
// one out) and returns its status and body.
func pollRequest(t *testing.T, method, url, body, cookie, origin string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// openPolling opens an Engine.IO polling session with cookie and origin,
// joins the main namespace and returns the session's polling URL.
func openPolling(t *testing.T, base, cookie, origin string) string {
	t.Helper()
	code, body := pollRequest(t, "GET", base+"&transport=polling", "", cookie, origin)
	if code != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake = %d %q", code, body)
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	url := base + "&transport=polling&sid=" + sid
	if code, body := pollRequest(t, "POST", url, "40", cookie, origin); code != 200 {
		t.Fatalf("CONNECT = %d %q", code, body)
	}
	if code, body := pollRequest(t, "GET", url, "", cookie, origin); code != 200 || !strings.HasPrefix(body, "40{") {
		t.Fatalf("CONNECT reply = %d %q, want 40{...}", code, body)
	}
	return url
}

// TestPollingBoundToCookie: once an authenticated polling session is open,
// its sid used without the session's cookie (none, another user's valid
// cookie) or from a foreign Origin is refused with 403 and can neither read
// nor write; the browser that opened it goes on, with or without an Origin.
func TestPollingBoundToCookie(t *testing.T) {
	st := openSQLite(t)
	g := newGateway(t, Config{Sessions: st, Audit: newRecordingAudit(nil)})
	base := serveBound(t, g)
	_, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	_, otherCookie := saveSession(t, st, "7", time.Now().Add(time.Hour))
	url := openPolling(t, base, cookie, appOrigin)

	attacks := []struct{ name, cookie, origin string }{
		{"no cookie", "", ""},
		{"another session's cookie", otherCookie, ""},
		{"the cookie with a second one first", otherCookie + "; " + cookie, ""},
		{"the cookie from a foreign origin", cookie, foreignOrigin},
	}
	for _, a := range attacks {
		for _, method := range []string{"GET", "POST"} {
			code, body := pollRequest(t, method, url, `421["echo","evil"]`, a.cookie, a.origin)
			if code != http.StatusForbidden || !strings.Contains(body, `"code":4`) {
				t.Errorf("%s %s = %d %q, want 403 code 4", a.name, method, code, body)
			}
		}
	}

	// The honest browser: an event and its ack, with and without an Origin
	// (same-origin GETs carry none); the attacker's events were never read.
	if code, body := pollRequest(t, "POST", url, `422["echo","mine"]`, cookie, appOrigin); code != 200 || body != "ok" {
		t.Fatalf("honest POST = %d %q", code, body)
	}
	if code, body := pollRequest(t, "GET", url, "", cookie, ""); code != 200 || body != `432["mine"]` {
		t.Fatalf("honest GET = %d %q, want only the ack of its own event", code, body)
	}
}

// TestUpgradeBoundToCookie: the websocket upgrade of an authenticated
// polling session is refused (403) without its cookie, with another one, or
// from a foreign Origin; the browser that opened the session upgrades and
// goes on.
func TestUpgradeBoundToCookie(t *testing.T) {
	st := openSQLite(t)
	g := newGateway(t, Config{Sessions: st, Audit: newRecordingAudit(nil)})
	base := serveBound(t, g)
	_, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	_, otherCookie := saveSession(t, st, "7", time.Now().Add(time.Hour))
	pollURL := openPolling(t, base, cookie, appOrigin)
	wsURL := "ws" + strings.TrimPrefix(strings.Replace(pollURL, "transport=polling", "transport=websocket", 1), "http")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	dial := func(cookie, origin string) (*websocket.Conn, *http.Response, error) {
		h := http.Header{}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
	}
	attacks := []struct{ name, cookie, origin string }{
		{"no cookie", "", ""},
		{"another session's cookie", otherCookie, appOrigin},
		{"the cookie from a foreign origin", cookie, foreignOrigin},
	}
	for _, a := range attacks {
		c, res, err := dial(a.cookie, a.origin)
		if err == nil {
			c.CloseNow()
			t.Fatalf("upgrade with %s succeeded", a.name)
		}
		if res == nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("upgrade with %s: %v, want 403", a.name, err)
		}
	}

	c, _, err := dial(cookie, appOrigin)
	if err != nil {
		t.Fatalf("honest upgrade: %v", err)
	}
	defer c.CloseNow()
	exchange := func(send, want string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(send)); err != nil {
			t.Fatal(err)
		}
		for {
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if string(got) == want {
				return
			}
			if string(got) != "2" { // a server ping may come first
				t.Fatalf("got %q, want %q", got, want)
			}
			c.Write(ctx, websocket.MessageText, []byte("3"))
		}
	}
	exchange("2probe", "3probe")
	if err := c.Write(ctx, websocket.MessageText, []byte("5")); err != nil {
		t.Fatal(err)
	}
	exchange(`423["echo","ws"]`, `433["ws"]`)
}

// syncBuffer is a log destination safe for the writes of several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUntrustedForwarderWarned: handshakes from a peer that sends
// X-Forwarded-For without being a trusted proxy (a proxy missing from
// TRUSTED_PROXIES) share the peer's bucket, are logged once at WARN and
// listed by UntrustedForwarders; a client behind a trusted proxy is keyed by
// its own address and raises nothing.
func TestUntrustedForwarderWarned(t *testing.T) {
	var logs syncBuffer
	g := newGateway(t, Config{
		Sessions:       openSQLite(t),
		Audit:          newRecordingAudit(nil),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	handshake := func(peer, client string) string {
		req := httptest.NewRequest("GET", "/socket.io/?EIO=4&transport=polling", nil)
		req.RemoteAddr = peer + ":40000"
		req.Header.Set("X-Forwarded-For", client)
		return g.ClientKey(req)
	}
	if a, b := handshake("10.0.0.1", "198.51.100.1"), handshake("10.0.0.1", "198.51.100.2"); a == b {
		t.Fatalf("two clients behind a trusted proxy share the key %q", a)
	}
	if a, b := handshake("192.0.2.9", "198.51.100.1"), handshake("192.0.2.9", "198.51.100.2"); a != "192.0.2.9" || b != a {
		t.Fatalf("behind an untrusted proxy: keys %q, %q, want the proxy's own", a, b)
	}
	peers, n := g.UntrustedForwarders()
	if !slices.Equal(peers, []string{"192.0.2.9"}) || n != 2 {
		t.Fatalf("UntrustedForwarders = %v, %d, want [192.0.2.9], 2", peers, n)
	}
	if got := strings.Count(logs.String(), "not in TRUSTED_PROXIES"); got != 1 || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("log has %d warnings, want 1 at WARN:\n%s", got, logs.String())
	}
}
