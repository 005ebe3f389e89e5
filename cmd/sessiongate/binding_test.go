package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// pollAs sends one polling request with cookie ("" for none) and returns
// its status and body.
func pollAs(t *testing.T, method, url, body, cookie string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestServeBindsSessionToCookie: `serve` wires the gateway's VerifyRequest:
// the sid of alice's polling session, sent without her cookie, is refused
// (403) and its CONNECT is never read, while alice joins and gets her
// identity's answer.
func TestServeBindsSessionToCookie(t *testing.T) {
	_, base, _ := serveMain(t, nil)
	cookie, _ := login(t, base)
	code, body := pollAs(t, "GET", base+"/socket.io/?EIO=4&transport=polling", "", cookie)
	if code != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake = %d %q", code, body)
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	url := base + "/socket.io/?EIO=4&transport=polling&sid=" + sid[:strings.IndexByte(sid, '"')]

	for _, method := range []string{"POST", "GET"} {
		if code, body := pollAs(t, method, url, "40", ""); code != http.StatusForbidden {
			t.Fatalf("%s without the cookie = %d %q, want 403", method, code, body)
		}
	}
	if code, body := pollAs(t, "POST", url, "40", cookie); code != 200 || body != "ok" {
		t.Fatalf("CONNECT with the cookie = %d %q", code, body)
	}
	if code, body := pollAs(t, "GET", url, "", cookie); code != 200 || !strings.HasPrefix(body, "40{") {
		t.Fatalf("CONNECT reply = %d %q, want 40{...}", code, body)
	}
}

// TestServeOrigin: ALLOWED_ORIGINS is enforced by the protocol layer for
// every transport. A websocket opened directly from a foreign Origin, with
// alice's cookie, is refused with CONNECT_ERROR ORIGIN_NOT_ALLOWED (not an
// HTTP error the client would retry); the websocket upgrade of her polling
// session opened from the allowed origin is refused with 403 when it comes
// from a foreign one; the allowed origin and the server's own connect.
func TestServeOrigin(t *testing.T) {
	_, base, _ := serveMain(t, map[string]string{"ALLOWED_ORIGINS": "https://app.example"})
	cookie, _ := login(t, base)
	wsBase := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ctx := testCtx(t)
	connectWS := func(origin string) string {
		t.Helper()
		c, _, err := websocket.Dial(ctx, wsBase, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie}, "Origin": {origin}}})
		if err != nil {
			t.Fatalf("websocket from %s: %v (must not be an HTTP refusal)", origin, err)
		}
		defer c.CloseNow()
		if _, open, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(open), "0{") {
			t.Fatalf("open = %q, %v", open, err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
			t.Fatal(err)
		}
		_, reply, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(reply)
	}
	if got := connectWS("https://evil.example"); got != `44{"message":"unauthorized","data":{"code":"ORIGIN_NOT_ALLOWED"}}` {
		t.Fatalf("foreign origin: %q, want CONNECT_ERROR ORIGIN_NOT_ALLOWED", got)
	}
	for _, origin := range []string{"https://app.example", base} {
		if got := connectWS(origin); !strings.HasPrefix(got, `40{"sid":"`) {
			t.Fatalf("origin %s: %q, want CONNECT", origin, got)
		}
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Origin", "https://app.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	body := string(b)
	if res.StatusCode != 200 || !strings.HasPrefix(body, "0{") || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("handshake = %d %q (CORS %q)", res.StatusCode, body, res.Header.Get("Access-Control-Allow-Origin"))
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	_, resp, err := websocket.Dial(ctx, wsBase+"&sid="+sid, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade from a foreign origin: %v (status %v), want 403", err, resp)
	}
	c, resp, err := websocket.Dial(ctx, wsBase+"&sid="+sid, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie}, "Origin": {"https://app.example"}}})
	if err != nil {
		t.Fatalf("upgrade from the allowed origin: %v (%v)", err, resp)
	}
	c.CloseNow()
}
