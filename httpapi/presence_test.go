package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/httpapi"
)

// fakePresence has presence for the rooms starting with "incident:".
type fakePresence struct{ limits []int }

func (f *fakePresence) Presence(room string, limit int) (httpapi.PresenceState, bool) {
	f.limits = append(f.limits, limit)
	if !strings.HasPrefix(room, "incident:") {
		return httpapi.PresenceState{}, false
	}
	if room == "incident:empty" {
		return httpapi.PresenceState{}, true
	}
	return httpapi.PresenceState{Users: []string{"alice", "bob"}, Count: 3, Connections: 5, Truncated: true}, true
}

// TestPresenceAPI: GET /api/presence takes the publish key and a presence
// room, and answers the source's state with at most 1,000 users asked for.
func TestPresenceAPI(t *testing.T) {
	const key = "publish-key-123"
	auth := http.Header{"Authorization": {"Bearer " + key}}
	src := &fakePresence{}
	h := newHandler(t, httpapi.Config{Publisher: &fakePublisher{}, PublishKey: key, Presence: src})
	q := func(room string) string { return "/api/presence?room=" + url.QueryEscape(room) }

	resp, body := do(t, h, "GET", q("incident:7"), "", auth)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s", resp.Status, body)
	}
	var got struct {
		Room        string   `json:"room"`
		Users       []string `json:"users"`
		Count       int      `json:"count"`
		Connections int      `json:"connections"`
		Truncated   bool     `json:"truncated"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Room != "incident:7" || !slices.Equal(got.Users, []string{"alice", "bob"}) ||
		got.Count != 3 || got.Connections != 5 || !got.Truncated {
		t.Fatalf("body %s: %+v %v", body, got, err)
	}
	if !slices.Equal(src.limits, []int{httpapi.MaxPresenceUsers}) {
		t.Fatalf("limits asked: %v", src.limits)
	}
	if _, body := do(t, h, "GET", q("incident:empty"), "", auth); body != `{"room":"incident:empty","users":[],"count":0,"connections":0}`+"\n" {
		t.Fatalf("empty room: %s", body)
	}

	for _, path := range []string{"/api/presence", q(""), q("lobby"), q(strings.Repeat("x", 257)), q("a\x01b"), q("\xff")} {
		resp, body := do(t, h, "GET", path, "", auth)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if resp.StatusCode != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "INVALID_ROOM" || e.Error.Message == "" {
			t.Errorf("%s: %s %s", path, resp.Status, body)
		}
	}
	for _, hdr := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}} {
		if resp, _ := do(t, h, "GET", q("incident:7"), "", hdr); resp.StatusCode != 401 {
			t.Errorf("%v: %s", hdr, resp.Status)
		}
	}
	if resp, _ := do(t, h, "POST", q("incident:7"), "", auth); resp.StatusCode != 405 {
		t.Errorf("POST: %s", resp.Status)
	}

	// Without a source, or without a key: 404.
	for _, cfg := range []httpapi.Config{
		{Publisher: &fakePublisher{}, PublishKey: key},
		{Presence: src},
	} {
		if resp, _ := do(t, newHandler(t, cfg), "GET", q("incident:7"), "", auth); resp.StatusCode != 404 {
			t.Errorf("%+v: %s", cfg, resp.Status)
		}
	}
}
