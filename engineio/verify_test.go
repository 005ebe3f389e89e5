package engineio

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestVerifyRequest: a later request of a session that VerifyRequest
// refuses gets 403 code 4, polling and upgrade alike, and the session goes
// on for requests that pass.
func TestVerifyRequest(t *testing.T) {
	h := newHarness(t, Options{HandshakeHeaders: []string{"X-Key"}, VerifyRequest: func(hs *Handshake, r *http.Request) error {
		if r.Header.Get("X-Key") != hs.Header.Get("X-Key") {
			return errors.New("not the opener")
		}
		return nil
	}}, false)
	key := http.Header{"X-Key": {"k1"}}
	code, _, body := do(t, "GET", h.url+"&transport=polling", "", key)
	if code != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake = %d %q", code, body)
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	url := h.url + "&transport=polling&sid=" + sid
	s := h.socket(t)

	for _, method := range []string{"GET", "POST"} {
		if code, _, body := do(t, method, url, "4hi", http.Header{"X-Key": {"other"}}); code != 403 || !strings.Contains(body, `"code":4`) {
			t.Fatalf("%s by another = %d %q, want 403 code 4", method, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := strings.Replace(h.url, "http", "ws", 1) + "&transport=websocket&sid=" + sid
	if c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-Key": {"other"}}}); err == nil {
		c.CloseNow()
		t.Fatal("upgrade by another succeeded")
	} else if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("upgrade by another: %v, want 403", err)
	}

	if code, _, body := do(t, "POST", url, "4hi", key); code != 200 || body != "ok" {
		t.Fatalf("POST by the opener = %d %q", code, body)
	}
	if m := h.message(t); string(m.Data) != "hi" {
		t.Fatalf("message = %q", m.Data)
	}
	if err := s.Send(Message{Data: []byte("there")}); err != nil {
		t.Fatal(err)
	}
	if code, _, body := do(t, "GET", url, "", key); code != 200 || body != "4there" {
		t.Fatalf("GET by the opener = %d %q", code, body)
	}
}

// TestAllowRequestStatus: a *RequestError from AllowRequest sets the status
// and Retry-After of the refusal.
func TestAllowRequestStatus(t *testing.T) {
	h := newHarness(t, Options{AllowRequest: func(r *http.Request) error {
		return &RequestError{Status: http.StatusTooManyRequests, Message: "Too many handshakes", RetryAfter: 1500 * time.Millisecond}
	}}, false)
	code, hdr, body := do(t, "GET", h.url+"&transport=polling", "", nil)
	if code != 429 || hdr.Get("Retry-After") != "2" || body != `{"code":4,"message":"Too many handshakes"}` {
		t.Fatalf("refusal = %d Retry-After %q %q", code, hdr.Get("Retry-After"), body)
	}
}

// TestMaxPendingPayload: before it is admitted a session may send no
// message over MaxPendingPayload (the connection is closed 1009, and an
// honest admitted session beside it sends the same message).
func TestMaxPendingPayload(t *testing.T) {
	h := newHarness(t, Options{MaxPendingPayload: 1 << 10}, false)
	big := "4" + strings.Repeat("x", 4<<10)

	admitted := dialWS(t, h.url+"&transport=websocket")
	readWS(t, admitted) // open packet
	h.socket(t).Admit()

	anon := dialWS(t, h.url+"&transport=websocket")
	readWS(t, anon)
	h.socket(t)
	writeWS(t, anon, websocket.MessageText, big)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := anon.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Fatalf("anonymous session read: %v, want close 1009", err)
			}
			break
		}
	}
	h.closed(t, "transport error")

	writeWS(t, admitted, websocket.MessageText, big)
	if m := h.message(t); len(m.Data) != len(big)-1 {
		t.Fatalf("admitted session's message: %d bytes, want %d", len(m.Data), len(big)-1)
	}
}
