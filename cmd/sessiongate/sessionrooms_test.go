package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServeSessionRooms: end to end with the official client, a socket of
// alice starts in the room SESSION_ROOMS renders from her session (the
// embedded login's passport.user) and gets what is published to it; with
// MAX_CONNECTIONS_PER_USER=1 her second socket is refused with
// TOO_MANY_CONNECTIONS, and once the first is gone a new one connects.
func TestServeSessionRooms(t *testing.T) {
	_, base, _ := serveMain(t, map[string]string{
		"PUBLISH_KEY":              "pk",
		"SESSION_ROOMS":            "account:{passport.user}, team:{missing}",
		"MAX_CONNECTIONS_PER_USER": "1",
	})
	cookie, userRoom := login(t, base)
	account := "account:" + strings.TrimPrefix(userRoom, "user:")
	first := startClient(t, base, cookie, "websocket")
	if l := first.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	auth := http.Header{"Authorization": {"Bearer pk"}}
	if res, b := post(t, base+"/api/publish", `{"to":["`+account+`"],"event":"update","data":1}`, auth); res.StatusCode != 200 {
		t.Fatalf("publish = %d %s", res.StatusCode, b)
	}
	first.expectEvent(t, "update", "1")

	second := startClient(t, base, cookie, "polling")
	l := second.next(t)
	if l.Type != "connect_error" || l.Message != "too many connections" || string(l.Data) != `{"code":"TOO_MANY_CONNECTIONS"}` {
		t.Fatalf("second client got %+v (data %s), want connect_error TOO_MANY_CONNECTIONS", l, l.Data)
	}

	if res, b := post(t, base+"/api/disconnect", `{"to":["`+account+`"]}`, auth); res.StatusCode != 200 {
		t.Fatalf("disconnect = %d %s", res.StatusCode, b)
	}
	first.expectDisconnect(t, "io server disconnect")
	// The slot is given back by the server's disconnect handler, which may
	// run just after the client saw its DISCONNECT: a refusal until then
	// is retried, never more than the test's clients allow.
	for attempt := 0; ; attempt++ {
		c := startClient(t, base, cookie, "websocket")
		l := c.next(t)
		if l.Type == "connect" {
			break
		}
		if l.Type != "connect_error" || attempt == 20 {
			t.Fatalf("after the first left, a client got %+v", l)
		}
	}
}
