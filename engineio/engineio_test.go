package engineio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// harness is a Server behind httptest with its session events observable.
type harness struct {
	srv     *Server
	url     string
	sockets chan *Socket
	closes  chan string
	msgs    chan Message
}

// newHarness starts a server. With echo, every message is sent back.
func newHarness(t *testing.T, opts Options, echo bool) *harness {
	t.Helper()
	h := &harness{
		sockets: make(chan *Socket, 16),
		closes:  make(chan string, 16),
		msgs:    make(chan Message, 64),
	}
	opts.OnConnection = func(s *Socket) {
		s.OnMessage(func(m Message) {
			h.msgs <- m
			if echo {
				_ = s.Send(m)
			}
		})
		s.OnClose(func(reason string) { h.closes <- reason })
		h.sockets <- s
	}
	h.srv = NewServer(opts)
	ts := httptest.NewServer(h.srv)
	h.url = ts.URL + "/engine.io/?EIO=4"
	t.Cleanup(func() {
		h.srv.Close()
		ts.Close()
	})
	return h
}

func (h *harness) socket(t *testing.T) *Socket {
	t.Helper()
	select {
	case s := <-h.sockets:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

func (h *harness) closed(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-h.closes:
		if got != want {
			t.Fatalf("close reason = %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no close, want %q", want)
	}
}

func (h *harness) message(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-h.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return Message{}
	}
}

func do(t *testing.T, method, url, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// openPolling opens a polling session and returns its URL.
func (h *harness) openPolling(t *testing.T) (string, string) {
	t.Helper()
	code, _, body := do(t, "GET", h.url+"&transport=polling", "", nil)
	if code != 200 || !strings.HasPrefix(body, "0") {
		t.Fatalf("handshake = %d %q", code, body)
	}
	var hs struct{ Sid string }
	if err := json.Unmarshal([]byte(body[1:]), &hs); err != nil {
		t.Fatal(err)
	}
	return hs.Sid, h.url + "&transport=polling&sid=" + hs.Sid
}

func TestHandshake(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, false)
	code, hdr, body := do(t, "GET", h.url+"&transport=polling", "", nil)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("handshake = %d %s", code, hdr.Get("Content-Type"))
	}
	var hs map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &hs); err != nil {
		t.Fatalf("handshake %q: %v", body, err)
	}
	sid, _ := hs["sid"].(string)
	if len(sid) != 20 || strings.ContainsAny(sid, "+/=") {
		t.Errorf("sid = %q, want 20 url-safe characters", sid)
	}
	if hs["pingInterval"] != 300.0 || hs["pingTimeout"] != 200.0 || hs["maxPayload"] != 1e6 {
		t.Errorf("handshake = %v", hs)
	}
	if up, _ := hs["upgrades"].([]any); len(up) != 1 || up[0] != "websocket" {
		t.Errorf("upgrades = %v", hs["upgrades"])
	}
	s := h.socket(t)
	if s.ID() != sid || s.Transport() != "polling" || s.Handshake().Query.Get("EIO") != "4" {
		t.Errorf("socket = %s %s %v", s.ID(), s.Transport(), s.Handshake().Query)
	}
	if h.srv.Count() != 1 {
		t.Errorf("Count = %d, want 1", h.srv.Count())
	}
}

// TestMaxSessions fills the server to its cap: a further handshake, by
// polling or websocket, is refused with 503 and a Retry-After before any
// upgrade; once a session ends, the next one is let in.
func TestMaxSessions(t *testing.T) {
	h := newHarness(t, Options{MaxSessions: 2}, false)
	_, first := h.openPolling(t)
	h.socket(t)
	h.openPolling(t)
	h.socket(t)
	for _, transport := range []string{"polling", "websocket"} {
		hdr := http.Header{}
		if transport == "websocket" {
			hdr.Set("Connection", "Upgrade")
			hdr.Set("Upgrade", "websocket")
			hdr.Set("Sec-WebSocket-Version", "13")
			hdr.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		status, got, body := do(t, "GET", h.url+"&transport="+transport, "", hdr)
		if status != http.StatusServiceUnavailable || got.Get("Retry-After") != "5" || body != `{"code":4,"message":"Server at capacity"}` {
			t.Errorf("%s handshake at the cap = %d (Retry-After %q) %s", transport, status, got.Get("Retry-After"), body)
		}
	}
	if n := h.srv.Count(); n != 2 {
		t.Fatalf("Count = %d after refusals, want 2", n)
	}
	if status, _, _ := do(t, "POST", first, "1", nil); status != http.StatusOK { // close packet
		t.Fatalf("close = %d", status)
	}
	h.closed(t, "transport close")
	c := dialWS(t, h.url+"&transport=websocket")
	if _, open := readWS(t, c); !strings.HasPrefix(open, "0{") {
		t.Fatalf("after a session ended, handshake = %q, want the open packet", open)
	}
}

func TestErrors(t *testing.T) {
	h := newHarness(t, Options{AllowRequest: func(r *http.Request) error {
		if r.URL.Query().Get("deny") != "" {
			return errors.New("denied")
		}
		return nil
	}}, false)
	base := strings.TrimSuffix(h.url, "?EIO=4")
	tests := []struct {
		name, method, query string
		status, code        int
	}{
		{"no transport", "GET", "?EIO=4", 400, 0},
		{"unknown transport", "GET", "?EIO=4&transport=abc", 400, 0},
		{"unknown sid", "GET", "?EIO=4&transport=polling&sid=nope", 400, 1},
		{"unknown sid websocket", "GET", "?EIO=4&transport=websocket&sid=nope", 400, 1},
		{"handshake by POST", "POST", "?EIO=4&transport=polling", 400, 2},
		{"handshake by PUT", "PUT", "?EIO=4&transport=polling", 400, 2},
		{"forbidden", "GET", "?EIO=4&transport=polling&deny=1", 403, 4},
		{"no EIO", "GET", "?transport=polling", 400, 5},
		{"EIO 3", "GET", "?EIO=3&transport=polling", 400, 5},
		{"EIO abc", "GET", "?EIO=abc&transport=websocket", 400, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := do(t, tt.method, base+tt.query, "", nil)
			if status != tt.status || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("status = %d (%s), want %d", status, hdr.Get("Content-Type"), tt.status)
			}
			var e struct {
				Code    int
				Message string
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != tt.code || e.Message == "" {
				t.Fatalf("body = %q, want code %d", body, tt.code)
			}
		})
	}
	t.Run("bad request on a session", func(t *testing.T) {
		_, url := h.openPolling(t)
		if status, _, body := do(t, "PUT", url, "", nil); status != 400 || !strings.Contains(body, `"code":3`) {
			t.Fatalf("PUT = %d %q", status, body)
		}
	})
}

func TestPollingMessages(t *testing.T) {
	h := newHarness(t, Options{}, true)
	_, url := h.openPolling(t)
	h.socket(t)
	if status, _, body := do(t, "POST", url, "4hello\x1ebAQIDBA==\x1e4\x1e6", nil); status != 200 || body != "ok" {
		t.Fatalf("POST = %d %q", status, body)
	}
	want := []Message{{Data: []byte("hello")}, {Data: []byte{1, 2, 3, 4}, Binary: true}, {Data: []byte{}}}
	for i, w := range want {
		m := h.message(t)
		if string(m.Data) != string(w.Data) || m.Binary != w.Binary {
			t.Errorf("message %d = %+v, want %+v", i, m, w)
		}
	}
	if status, _, body := do(t, "GET", url, "", nil); status != 200 || body != "4hello\x1ebAQIDBA==\x1e4" {
		t.Fatalf("GET = %d %q", status, body)
	}
}

func TestPollingWaitsForSend(t *testing.T) {
	h := newHarness(t, Options{}, false)
	_, url := h.openPolling(t)
	s := h.socket(t)
	// The GET is pending; a Send releases it with the whole batch.
	got := pendingGet(t, s, url)
	if err := s.Send(Message{Data: []byte("a")}, Message{Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if body := <-got; body != "4a\x1e4b" {
		t.Fatalf("GET = %q", body)
	}
}

// pendingGet sends a GET in the background and returns once it is waiting
// on s; the channel yields its body.
func pendingGet(t *testing.T, s *Socket, url string) <-chan string {
	t.Helper()
	body := make(chan string, 1)
	go func() {
		_, _, b := do(t, "GET", url, "", nil)
		body <- b
	}()
	waitPoll(t, s)
	return body
}

// waitPoll waits until s has a GET waiting.
func waitPoll(t *testing.T, s *Socket) {
	t.Helper()
	waitState(t, s, "a GET waiting", func() bool { return s.poll != nil })
}

// waitProbe waits until s has a websocket probe: the server takes it once
// the client's dial has returned.
func waitProbe(t *testing.T, s *Socket) {
	t.Helper()
	waitState(t, s, "a websocket probe", func() bool { return s.probe != nil })
}

// waitState polls cond, under s.mu, until it holds: the states it waits for
// are set by server goroutines that signal nothing a test could await.
func waitState(t *testing.T, s *Socket, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting for " + what)
		case <-time.After(time.Millisecond):
		}
	}
}

func TestPollingConcurrentGet(t *testing.T) {
	h := newHarness(t, Options{}, false)
	_, url := h.openPolling(t)
	s := h.socket(t)
	first := pendingGet(t, s, url)
	if status, _, _ := do(t, "GET", url, "", nil); status != 400 {
		t.Fatalf("second GET = %d, want 400", status)
	}
	if body := <-first; body != "1" {
		t.Fatalf("first GET = %q, want the close packet", body)
	}
	h.closed(t, "transport error")
	if status, _, _ := do(t, "GET", url, "", nil); status != 400 {
		t.Fatalf("GET after close = %d, want 400", status)
	}
}

func TestPollingMaxPayload(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 10}, false)
	_, url := h.openPolling(t)
	h.socket(t)
	if status, _, _ := do(t, "POST", url, "4"+strings.Repeat("x", 10), nil); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST = %d, want 413", status)
	}
	h.closed(t, "transport error")
}

func TestPollingParseError(t *testing.T) {
	h := newHarness(t, Options{}, false)
	_, url := h.openPolling(t)
	h.socket(t)
	if status, _, _ := do(t, "POST", url, "abc", nil); status != 400 {
		t.Fatalf("POST = %d, want 400", status)
	}
	h.closed(t, "parse error")
	if h.srv.Count() != 0 {
		t.Fatalf("Count = %d after close", h.srv.Count())
	}
}

func TestPollingClose(t *testing.T) {
	t.Run("by client", func(t *testing.T) {
		h := newHarness(t, Options{}, false)
		_, url := h.openPolling(t)
		s := h.socket(t)
		got := pendingGet(t, s, url)
		do(t, "POST", url, "1", nil)
		if body := <-got; body != "6" {
			t.Fatalf("pending GET = %q, want noop", body)
		}
		h.closed(t, "transport close")
		if err := s.Send(Message{Data: []byte("x")}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after close = %v", err)
		}
	})
}

// TestPollingServerClose checks that the close packet never shares a
// payload with messages queued before Close: socket.io-client handles a
// close packet at once but its messages a tick later, so it would see the
// transport close before a DISCONNECT sent with it.
func TestPollingServerClose(t *testing.T) {
	tests := []struct {
		name    string
		waiting bool     // a GET is waiting when the server sends and closes
		send    []string // messages sent before Close
		gets    []string // the answers to the GETs, in order
	}{
		{"queued then close", false, []string{"41", "last"}, []string{"441\x1e4last", "1"}},
		{"waiting GET then close", true, []string{"41"}, []string{"441", "1"}},
		{"close alone, waiting GET", true, nil, []string{"1"}},
		{"close alone", false, nil, []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{}, false)
			_, url := h.openPolling(t)
			s := h.socket(t)
			gets := tt.gets
			if tt.waiting {
				first := pendingGet(t, s, url)
				send(t, s, tt.send)
				_ = s.Close()
				if body := <-first; body != gets[0] {
					t.Fatalf("pending GET = %q, want %q", body, gets[0])
				}
				gets = gets[1:]
			} else {
				send(t, s, tt.send)
				_ = s.Close()
			}
			if err := s.Send(Message{Data: []byte("late")}); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after Close = %v, want ErrClosed", err)
			}
			for i, want := range gets {
				if status, _, body := do(t, "GET", url, "", nil); status != 200 || body != want {
					t.Fatalf("GET %d = %d %q, want %q", i, status, body, want)
				}
			}
			h.closed(t, "forced close")
			if status, _, _ := do(t, "GET", url, "", nil); status != 400 {
				t.Fatalf("GET after close = %d, want 400", status)
			}
		})
	}
}

// TestPollingServerCloseTakesPosts checks that a closing session still
// accepts POSTs (a refused POST fails the client's transport early), and
// that the client's close packet ends it.
func TestPollingServerCloseTakesPosts(t *testing.T) {
	h := newHarness(t, Options{}, false)
	_, url := h.openPolling(t)
	s := h.socket(t)
	send(t, s, []string{"41"})
	_ = s.Close()
	if status, _, body := do(t, "POST", url, "4late\x1e1", nil); status != 200 || body != "ok" {
		t.Fatalf("POST while closing = %d %q, want ok", status, body)
	}
	h.closed(t, "forced close")
	select {
	case m := <-h.msgs:
		t.Fatalf("message %q delivered while closing", m.Data)
	default:
	}
}

func send(t *testing.T, s *Socket, msgs []string) {
	t.Helper()
	for _, m := range msgs {
		if err := s.Send(Message{Data: []byte(m)}); err != nil {
			t.Fatalf("Send(%q): %v", m, err)
		}
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t, Options{AllowedOrigins: []string{"https://app.example"}}, false)
	tests := []struct {
		name, method, origin string
		status               int
		allow                string
	}{
		{"allowed", "GET", "https://app.example", 200, "https://app.example"},
		{"denied", "GET", "https://evil.example", 200, ""},
		{"no origin", "GET", "", 200, ""},
		{"preflight allowed", "OPTIONS", "https://app.example", 204, "https://app.example"},
		{"preflight denied", "OPTIONS", "https://evil.example", 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			hdr.Set("Access-Control-Request-Headers", "content-type")
			status, got, _ := do(t, tt.method, h.url+"&transport=polling", "", hdr)
			if status != tt.status {
				t.Fatalf("status = %d, want %d", status, tt.status)
			}
			if a := got.Get("Access-Control-Allow-Origin"); a != tt.allow {
				t.Errorf("Allow-Origin = %q, want %q", a, tt.allow)
			}
			if got.Get("Vary") == "" {
				t.Error("no Vary header")
			}
			creds := got.Get("Access-Control-Allow-Credentials")
			if (tt.allow != "") != (creds == "true") {
				t.Errorf("Allow-Credentials = %q", creds)
			}
			if tt.method == "OPTIONS" && tt.allow != "" && !strings.Contains(got.Get("Access-Control-Allow-Methods"), "POST") {
				t.Errorf("Allow-Methods = %q", got.Get("Access-Control-Allow-Methods"))
			}
		})
	}
}

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readWS(t *testing.T, c *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func writeWS(t *testing.T, c *websocket.Conn, typ websocket.MessageType, s string) {
	t.Helper()
	if err := c.Write(context.Background(), typ, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func TestWebsocket(t *testing.T) {
	h := newHarness(t, Options{}, true)
	c := dialWS(t, h.url+"&transport=websocket")
	if _, hs := readWS(t, c); !strings.HasPrefix(hs, `0{"sid":"`) || !strings.Contains(hs, `"upgrades":[]`) {
		t.Fatalf("handshake = %q", hs)
	}
	s := h.socket(t)
	if s.Transport() != "websocket" {
		t.Fatalf("transport = %q", s.Transport())
	}
	writeWS(t, c, websocket.MessageText, "4hello")
	if typ, m := readWS(t, c); typ != websocket.MessageText || m != "4hello" {
		t.Fatalf("echo = %v %q", typ, m)
	}
	writeWS(t, c, websocket.MessageBinary, "\x01\x02")
	if typ, m := readWS(t, c); typ != websocket.MessageBinary || m != "\x01\x02" {
		t.Fatalf("binary echo = %v %q", typ, m)
	}
	writeWS(t, c, websocket.MessageText, "2x") // a client ping is answered
	if _, m := readWS(t, c); m != "3x" {
		t.Fatalf("pong = %q", m)
	}
	writeWS(t, c, websocket.MessageText, "1")
	h.closed(t, "transport close")
}

func TestWebsocketServerClose(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c := dialWS(t, h.url+"&transport=websocket")
	readWS(t, c)
	s := h.socket(t)
	_ = s.Send(Message{Data: []byte("a")}, Message{Data: []byte("b")})
	_ = s.Close()
	for _, want := range []string{"4a", "4b"} {
		if _, m := readWS(t, c); m != want {
			t.Fatalf("read %q, want %q", m, want)
		}
	}
	_, _, err := c.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("read after close = %v, want normal closure", err)
	}
	h.closed(t, "forced close")
}

func TestWebsocketTooBig(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 100}, false)
	c := dialWS(t, h.url+"&transport=websocket")
	readWS(t, c)
	h.socket(t)
	writeWS(t, c, websocket.MessageText, "4"+strings.Repeat("x", 100))
	_, _, err := c.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("read = %v, want close 1009", err)
	}
	h.closed(t, "transport error")
}

func TestWebsocketParseError(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c := dialWS(t, h.url+"&transport=websocket")
	readWS(t, c)
	h.socket(t)
	writeWS(t, c, websocket.MessageText, "abc")
	h.closed(t, "parse error")
}

func TestUpgrade(t *testing.T) {
	h := newHarness(t, Options{}, true)
	sid, url := h.openPolling(t)
	s := h.socket(t)
	pending := pendingGet(t, s, url)

	c := dialWS(t, h.url+"&transport=websocket&sid="+sid)
	writeWS(t, c, websocket.MessageText, "2probe")
	if _, m := readWS(t, c); m != "3probe" {
		t.Fatalf("probe answer = %q", m)
	}
	if body := <-pending; body != "6" {
		t.Fatalf("pending GET = %q, want noop", body)
	}
	// Sent during the upgrade: delivered over the websocket, in order.
	_ = s.Send(Message{Data: []byte("m1")})
	_ = s.Send(Message{Data: []byte("m2")}, Message{Data: []byte{9}, Binary: true})
	writeWS(t, c, websocket.MessageText, "5")
	_ = s.Send(Message{Data: []byte("m3")})
	for _, want := range []string{"4m1", "4m2", "\x09", "4m3"} {
		if _, m := readWS(t, c); m != want {
			t.Fatalf("read %q, want %q", m, want)
		}
	}
	if s.Transport() != "websocket" {
		t.Fatalf("transport = %q after upgrade", s.Transport())
	}
	if status, _, _ := do(t, "GET", url, "", nil); status != 400 {
		t.Fatalf("polling after upgrade = %d, want 400", status)
	}
	c2 := dialWS(t, h.url+"&transport=websocket&sid="+sid)
	if _, _, err := c2.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("second websocket after upgrade: read = %v, want it closed", err)
	}
	writeWS(t, c, websocket.MessageText, "4hi")
	if _, m := readWS(t, c); m != "4hi" {
		t.Fatalf("echo after upgrade = %q", m)
	}
}

func TestPingTimeout(t *testing.T) {
	opts := Options{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond}
	t.Run("polling", func(t *testing.T) {
		h := newHarness(t, opts, false)
		_, url := h.openPolling(t)
		h.socket(t)
		// One round of ping and pong keeps the session; then silence ends it.
		if _, _, body := do(t, "GET", url, "", nil); body != "2" {
			t.Fatalf("GET = %q, want ping", body)
		}
		do(t, "POST", url, "3", nil)
		h.closed(t, "ping timeout")
	})
	t.Run("websocket", func(t *testing.T) {
		h := newHarness(t, opts, false)
		c := dialWS(t, h.url+"&transport=websocket")
		readWS(t, c)
		h.socket(t)
		if _, m := readWS(t, c); m != "2" {
			t.Fatalf("read %q, want ping", m)
		}
		writeWS(t, c, websocket.MessageText, "3")
		if _, m := readWS(t, c); m != "2" {
			t.Fatalf("read %q, want a second ping", m)
		}
		h.closed(t, "ping timeout")
	})
}

func TestServerClose(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c := dialWS(t, h.url+"&transport=websocket")
	readWS(t, c)
	h.socket(t)
	_, url := h.openPolling(t)
	h.socket(t)
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	h.closed(t, "server shutting down")
	h.closed(t, "server shutting down")
	if _, _, err := c.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("websocket read = %v, want normal closure", err)
	}
	if status, _, _ := do(t, "GET", url, "", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("GET after Close = %d", status)
	}
	if n := h.srv.Count(); n != 0 {
		t.Fatalf("Count = %d after Close", n)
	}
}

func TestHandlersSerial(t *testing.T) {
	var mu sync.Mutex
	active, overlap := 0, false
	h := newHarness(t, Options{}, false)
	c := dialWS(t, h.url+"&transport=websocket")
	readWS(t, c)
	s := h.socket(t)
	done := make(chan struct{})
	n := 0
	s.OnMessage(func(Message) {
		mu.Lock()
		active++
		overlap = overlap || active > 1
		mu.Unlock()
		time.Sleep(time.Millisecond) // widen the window an overlap would need
		mu.Lock()
		active--
		n++
		if n == 50 {
			close(done)
		}
		mu.Unlock()
	})
	for range 50 {
		writeWS(t, c, websocket.MessageText, "4x")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("messages not delivered")
	}
	if overlap {
		t.Fatal("handlers of one socket ran concurrently")
	}
}

// TestUpgradeServerClose closes a session during its upgrade: the messages
// queued before Close reach the client on the transport that ends up
// active, followed by the close.
func TestUpgradeServerClose(t *testing.T) {
	tests := []struct {
		name     string
		answered bool // the probe was answered before Close
		upgrade  bool // the client completes the upgrade after Close
	}{
		{"probe answered, upgrade completes", true, true},
		{"probe opened, upgrade completes", false, true},
		{"probe opened, upgrade abandoned", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{}, false)
			sid, url := h.openPolling(t)
			s := h.socket(t)
			c := dialWS(t, h.url+"&transport=websocket&sid="+sid)
			waitProbe(t, s)
			if tt.answered {
				pending := pendingGet(t, s, url)
				writeWS(t, c, websocket.MessageText, "2probe")
				if _, m := readWS(t, c); m != "3probe" {
					t.Fatalf("probe answer = %q", m)
				}
				if body := <-pending; body != "6" {
					t.Fatalf("pending GET = %q, want noop", body)
				}
			}
			send(t, s, []string{"41"})
			_ = s.Close()
			if !tt.upgrade {
				for i, want := range []string{"441", "1"} {
					if status, _, body := do(t, "GET", url, "", nil); status != 200 || body != want {
						t.Fatalf("GET %d = %d %q, want %q", i, status, body, want)
					}
				}
				h.closed(t, "forced close")
				if _, _, err := c.Read(context.Background()); err == nil {
					t.Fatal("the probe is still open after the session closed")
				}
				return
			}
			if !tt.answered {
				writeWS(t, c, websocket.MessageText, "2probe")
				if _, m := readWS(t, c); m != "3probe" {
					t.Fatalf("probe answer = %q", m)
				}
			}
			writeWS(t, c, websocket.MessageText, "5")
			if _, m := readWS(t, c); m != "441" {
				t.Fatalf("read %q after the upgrade, want the queued message", m)
			}
			if _, _, err := c.Read(context.Background()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Fatalf("read = %v, want a normal closure", err)
			}
			h.closed(t, "forced close")
		})
	}
}
