package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

// presenceEvent is the payload of a presence event.
type presenceEvent struct {
	Room   string   `json:"room"`
	Joined []string `json:"joined"`
	Left   []string `json:"left"`
	Count  int      `json:"count"`
}

// presenceClient logs email in on base, connects a socket there and
// subscribes it to room; it returns the socket, with the members its ack
// listed, and the user's id.
func presenceClient(t *testing.T, ctx context.Context, base, email, password, room string) (*member, string) {
	t.Helper()
	res, body := post(t, base+"/auth/login", `{"email":"`+email+`","password":"`+password+`"}`, nil)
	if res.StatusCode != 200 {
		t.Fatalf("login %s = %d %s", email, res.StatusCode, body)
	}
	var u struct {
		User struct{ ID int64 } `json:"user"`
	}
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatal(err)
	}
	cookie, _, _ := strings.Cut(res.Header.Get("Set-Cookie"), ";")
	c, err := siotest.Dial(ctx, base, siotest.Options{Header: http.Header{"Cookie": {cookie}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Connected(ctx); err != nil {
		t.Fatalf("%s connect: %v", email, err)
	}
	args, err := c.EmitWithAck(ctx, "subscribe", map[string]string{"room": room})
	var ack struct {
		OK       bool `json:"ok"`
		Presence struct {
			Users []string `json:"users"`
		} `json:"presence"`
	}
	if err != nil || len(args) != 1 || json.Unmarshal(args[0], &ack) != nil || !ack.OK {
		t.Fatalf("%s subscribe %s: %v %s", email, room, err, args)
	}
	id := strconv.FormatInt(u.User.ID, 10)
	if len(ack.Presence.Users) == 0 || ack.Presence.Users[0] != id {
		t.Fatalf("%s subscribe %s: %s, want the user first", email, room, args[0])
	}
	return &member{c, ack.Presence.Users}, id
}

// member is a socket of a presence room and the users it knows of: its
// ack's, then its events'.
type member struct {
	*siotest.Client
	users []string
}

// waitJoined returns once m knows that user is a member: from its ack, or
// from a presence event.
func (m *member) waitJoined(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	if slices.Contains(m.users, user) {
		return
	}
	waitPresence(t, ctx, m.Client, func(p presenceEvent) bool { return slices.Contains(p.Joined, user) })
}

// waitPresence reads c's presence events until one satisfies ok.
func waitPresence(t *testing.T, ctx context.Context, c *siotest.Client, ok func(presenceEvent) bool) presenceEvent {
	t.Helper()
	for {
		ev, err := c.WaitEvent(ctx, "presence")
		if err != nil {
			t.Fatalf("waiting for presence: %v", err)
		}
		var p presenceEvent
		if len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &p) != nil {
			t.Fatalf("presence %s", ev.Args)
		}
		if ok(p) {
			return p
		}
	}
}

// presenceAPI is GET /api/presence of room on base.
func presenceAPI(t *testing.T, base, room string) (users []string, count, connections int) {
	t.Helper()
	res, body := get(t, base+"/api/presence?room="+room, http.Header{"Authorization": {"Bearer pk"}})
	var b struct {
		Room        string   `json:"room"`
		Users       []string `json:"users"`
		Count       int      `json:"count"`
		Connections int      `json:"connections"`
	}
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &b) != nil || b.Room != room {
		t.Fatalf("GET /api/presence = %d %s", res.StatusCode, body)
	}
	slices.Sort(b.Users)
	return b.Users, b.Count, b.Connections
}

// TestClusterPresence: two sessiongate nodes on each CLUSTER bus. alice on
// node A and bob on node B each see the other join (gossip over the bus),
// GET /api/presence on either node answers both users; when A shuts down
// (its "bye"), B reports alice left.
func TestClusterPresence(t *testing.T) {
	modes := clusterEnvs(t)
	delete(modes, "none")
	for _, name := range slices.Sorted(maps.Keys(modes)) {
		t.Run(name, func(t *testing.T) {
			schema, url := pgtest.Schema(t)
			env := map[string]string{"DATABASE_URL": url, "SESSION_SCHEMA": schema, "PUBLISH_KEY": "pk", "SESSION_SECRETS": "test secret",
				"PUBLIC_ROOMS": "incident:*", "PRESENCE_ROOMS": "incident:*", "PRESENCE_LEAVE_DELAY": "0", "PRESENCE_TTL": "2s"}
			maps.Copy(env, modes[name])
			if code, _, stderr := runCmd(t, env, "", "migrate"); code != 0 {
				t.Fatalf("migrate: %s", stderr)
			}
			for _, u := range []string{"alice", "bob"} {
				if code, _, stderr := runCmd(t, env, "", "users", "add", "--email", u+"@example.com", "--password", u+" password"); code != 0 {
					t.Fatalf("users add: %s", stderr)
				}
			}
			mA, _, baseA := startMain(t, env)
			_, _, baseB := startMain(t, env)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			alice, aliceID := presenceClient(t, ctx, baseA, "alice@example.com", "alice password", "incident:1")
			bob, bobID := presenceClient(t, ctx, baseB, "bob@example.com", "bob password", "incident:1")
			// Each learns of the other, from its ack (when the other's node
			// had told its node already) or from an event.
			bob.waitJoined(t, ctx, aliceID)
			alice.waitJoined(t, ctx, bobID)
			want := []string{aliceID, bobID}
			slices.Sort(want)
			for _, base := range []string{baseA, baseB} {
				if users, count, conns := presenceAPI(t, base, "incident:1"); !slices.Equal(users, want) || count != 2 || conns != 2 {
					t.Errorf("%s: users %v count %d connections %d", base, users, count, conns)
				}
			}
			if res, body := get(t, baseB+"/api/presence?room=lobby", http.Header{"Authorization": {"Bearer pk"}}); res.StatusCode != 400 || !strings.Contains(body, `"INVALID_ROOM"`) {
				t.Errorf("lobby: %d %s", res.StatusCode, body)
			}

			if err := mA.Close(); err != nil {
				t.Fatal(err)
			}
			if p := waitPresence(t, ctx, bob.Client, func(p presenceEvent) bool { return len(p.Left) > 0 }); !slices.Equal(p.Left, []string{aliceID}) || p.Count != 1 {
				t.Fatalf("after A stopped: %+v", p)
			}
			if users, count, conns := presenceAPI(t, baseB, "incident:1"); !slices.Equal(users, []string{bobID}) || count != 1 || conns != 1 {
				t.Errorf("after A stopped: users %v count %d connections %d", users, count, conns)
			}
		})
	}
}
