package cluster

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// presenceOf decodes l's presence event, false for another line.
func presenceOf(l line, client string) (p struct {
	Room   string   `json:"room"`
	Joined []string `json:"joined"`
	Left   []string `json:"left"`
	Count  int      `json:"count"`
}, ok bool) {
	if l.Client != client || l.Type != "event" || l.Event != "presence" || len(l.Args) != 1 {
		return p, false
	}
	return p, json.Unmarshal(l.Args[0], &p) == nil
}

// Two sessiongate nodes (the built binary) on each bus, official
// socket.io-client sockets. alice's socket on node 1 and bob's on node 2
// are put in a presence room by a room operation: bob is told alice
// joined. Node 1 is then killed (SIGKILL: no bye, no last delta); once
// PRESENCE_TTL has passed without its heartbeats, node 2 reports alice
// left, and GET /api/presence on node 2 has bob only.
func TestPresenceNodeKilled(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) {
			t.Parallel()
			c := clusterEnv{Cluster: bus, Key: randomKey(), DB: openSessionDB(t), Extra: map[string]string{
				"PRESENCE_ROOMS": "incident:*", "PRESENCE_TTL": "2s", "PRESENCE_LEAVE_DELAY": "0",
			}}
			c.onBus(t)
			nodes := startNodes(t, c, 2)
			alice, bob := c.DB.newSession(t, 1), c.DB.newSession(t, 2)
			cl := startClients(t, sg("a", nodes[0], alice), sg("b", nodes[1], bob))
			cl.connected(t, "a", "b")
			if code, body := nodes[0].post(t, "/api/rooms/join", `{"to":["user:1","user:2"],"rooms":["incident:9"]}`); code != 200 {
				t.Fatalf("rooms/join = %d %s", code, body)
			}
			// bob's socket was in the room before alice's node told his:
			// alice comes in an event (bob's own may come first or with it).
			cl.out.waitFor(t, 0, "bob told that alice joined", func(l line) bool {
				p, ok := presenceOf(l, "b")
				return ok && p.Room == "incident:9" && slices.Contains(p.Joined, "1")
			})

			if err := nodes[0].cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-nodes[0].done
			l, _ := cl.out.waitFor(t, 0, "bob told that alice left", func(l line) bool {
				p, ok := presenceOf(l, "b")
				return ok && slices.Contains(p.Left, "1")
			})
			if p, _ := presenceOf(l, "b"); p.Count != 1 || !slices.Equal(p.Left, []string{"1"}) {
				t.Fatalf("bob's event: %s", l)
			}
			req, _ := http.NewRequest("GET", nodes[1].URL+"/api/presence?room=incident:9", nil)
			req.Header.Set("Authorization", "Bearer "+publishKey)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var got struct {
				Users       []string `json:"users"`
				Count       int      `json:"count"`
				Connections int      `json:"connections"`
			}
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 ||
				!slices.Equal(got.Users, []string{"2"}) || got.Count != 1 || got.Connections != 1 {
				t.Fatalf("GET /api/presence = %d %+v %v", res.StatusCode, got, err)
			}
		})
	}
}
