package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
