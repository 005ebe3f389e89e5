package main

import (
	"net/http"
	"testing"
)

// TestServeRoomOps: end to end on one node, with the official client, the
// room operations of the HTTP API: two sockets of alice join a room by her
// user room, get what is published to it (not when their room is in
// "except"), leave it, and are disconnected (the client sees "io server
// disconnect" and does not reconnect).
func TestServeRoomOps(t *testing.T) {
	_, base, _ := serveMain(t, map[string]string{"PUBLISH_KEY": "pk"})
	cookie, room := login(t, base)
	clients := []*nodeClient{startClient(t, base, cookie, "websocket"), startClient(t, base, cookie, "polling")}
	for _, c := range clients {
		if l := c.next(t); l.Type != "connect" {
			t.Fatalf("client got %+v, want connect", l)
		}
	}
	auth := http.Header{"Authorization": {"Bearer pk"}}
	call := func(path, body string) {
		t.Helper()
		if res, b := post(t, base+path, body, auth); res.StatusCode != 200 || b != "{\"ok\":true}\n" {
			t.Fatalf("POST %s %s = %d %s", path, body, res.StatusCode, b)
		}
	}
	if res, _ := post(t, base+"/api/rooms/join", `{"to":["`+room+`"],"rooms":["incident:7"]}`, nil); res.StatusCode != 401 {
		t.Fatalf("join without the key = %d, want 401", res.StatusCode)
	}

	call("/api/rooms/join", `{"to":["`+room+`"],"rooms":["incident:7"]}`)
	call("/api/publish", `{"to":["incident:7"],"event":"update","data":1}`)
	for _, c := range clients {
		c.expectEvent(t, "update", "1")
	}
	// Excluded by their user room: not delivered. The marker published
	// after it is the next thing each client sees, so nothing came between.
	call("/api/publish", `{"to":["incident:7"],"except":["`+room+`"],"event":"update","data":2}`)
	call("/api/publish", `{"to":["`+room+`"],"event":"marker","data":"a"}`)
	for _, c := range clients {
		c.expectEvent(t, "marker", `"a"`)
	}
	call("/api/rooms/leave", `{"to":["`+room+`"],"rooms":["incident:7"]}`)
	call("/api/publish", `{"to":["incident:7"],"event":"update","data":3}`)
	call("/api/publish", `{"to":["`+room+`"],"event":"marker","data":"b"}`)
	for _, c := range clients {
		c.expectEvent(t, "marker", `"b"`)
	}
	call("/api/disconnect", `{"to":["`+room+`"]}`)
	for _, c := range clients {
		c.expectDisconnect(t, "io server disconnect")
	}
}
