package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/siotest"
)

// TestClusterSubscribe: a socket on node B subscribes to a PUBLIC_ROOMS
// room (the join goes through B's cluster adapter), and a publish to that
// room on node A reaches it; after it unsubscribes, the next publish does
// not. Every CLUSTER bus built in.
func TestClusterSubscribe(t *testing.T) {
	modes := clusterEnvs(t)
	delete(modes, "none")
	for _, name := range slices.Sorted(maps.Keys(modes)) {
		t.Run(name, func(t *testing.T) {
			env := maps.Clone(modes[name])
			env["PUBLIC_ROOMS"] = "news:*"
			nodes := startCluster(t, 2, env)
			cookie, userRoom := login(t, nodes[0])
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := siotest.Dial(ctx, nodes[1], siotest.Options{Header: http.Header{"Cookie": {cookie}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Connected(ctx); err != nil {
				t.Fatal(err)
			}
			ack := func(event, room string) string {
				t.Helper()
				args, err := c.EmitWithAck(ctx, event, map[string]string{"room": room})
				if err != nil || len(args) != 1 {
					t.Fatalf("%s %s: %v %s", event, room, err, args)
				}
				return string(args[0])
			}
			if got := ack("subscribe", "news:1"); got != `{"ok":true}` {
				t.Fatalf("subscribe news:1 = %s", got)
			}
			if got := ack("subscribe", "incident:1"); got != `{"ok":false,"error":{"code":"FORBIDDEN","message":"subscription not allowed"}}` {
				t.Errorf("subscribe incident:1 without SUBSCRIBE_URL = %s", got)
			}
			auth := http.Header{"Authorization": {"Bearer pk"}}
			publish := func(room, event string) {
				t.Helper()
				if res, b := post(t, nodes[0]+"/api/publish", `{"to":["`+room+`"],"event":"`+event+`","data":1}`, auth); res.StatusCode != 200 {
					t.Fatalf("publish = %d %s", res.StatusCode, b)
				}
			}
			publish("news:1", "news")
			if _, err := c.WaitEvent(ctx, "news"); err != nil {
				t.Fatalf("the publish on node A did not reach the subscriber on B: %v", err)
			}
			if got := ack("unsubscribe", "news:1"); got != `{"ok":true}` {
				t.Fatalf("unsubscribe = %s", got)
			}
			publish("news:1", "late")
			publish(userRoom, "marker")
			if _, err := c.WaitEvent(ctx, "marker"); err != nil {
				t.Fatal(err)
			}
			for _, ev := range c.Events() {
				if ev.Name == "late" {
					t.Error("delivered after unsubscribe")
				}
			}
		})
	}
}

// TestDemoSubscribe: in the demo, with no SUBSCRIBE_URL, the demo's rule
// answers the subscribe hook in process: incident rooms are open to alice
// and carol, not to bob; other rooms to nobody.
func TestDemoSubscribe(t *testing.T) {
	_, _, base := startMain(t, map[string]string{"DEMO": "true", "DEMO_PASSWORD": "demo password", "SESSION_SECRETS": ""})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const forbidden = `{"error":{"code":"FORBIDDEN","message":"subscription not allowed"},"ok":false}`
	// Each socket stays in its rooms until the test ends; incident:* has
	// presence in the demo, so carol's ack lists alice (user 1) and her (3).
	for _, tc := range []struct{ email, room, want string }{
		{"alice@example.com", "incident:7", `{"ok":true,"presence":{"connections":1,"count":1,"users":["1"]}}`},
		{"carol@example.com", "incident:7", `{"ok":true,"presence":{"connections":2,"count":2,"users":["1","3"]}}`},
		{"bob@example.com", "incident:7", forbidden},
		{"carol@example.com", "ops:7", forbidden},
	} {
		res, body := post(t, base+"/auth/login", `{"email":"`+tc.email+`","password":"demo password"}`, nil)
		if res.StatusCode != 200 {
			t.Fatalf("login %s = %d %s", tc.email, res.StatusCode, body)
		}
		cookie, _, _ := strings.Cut(res.Header.Get("Set-Cookie"), ";")
		c, err := siotest.Dial(ctx, base, siotest.Options{Header: http.Header{"Cookie": {cookie}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Connected(ctx); err != nil {
			t.Fatalf("%s connect: %v", tc.email, err)
		}
		args, err := c.EmitWithAck(ctx, "subscribe", map[string]string{"room": tc.room})
		if err != nil || len(args) != 1 {
			t.Fatalf("%s subscribe: %v %s", tc.email, err, args)
		}
		if got := sortedAck(t, args[0]); got != tc.want {
			t.Errorf("%s subscribe %s = %s, want %s", tc.email, tc.room, got, tc.want)
		}
	}
}

// sortedAck returns a subscribe ack as JSON with its keys and its presence
// users sorted (the server lists them in no particular order).
func sortedAck(t *testing.T, ack json.RawMessage) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(ack, &v); err != nil {
		t.Fatalf("ack %s: %v", ack, err)
	}
	if p, ok := v["presence"].(map[string]any); ok {
		if users, ok := p["users"].([]any); ok {
			slices.SortFunc(users, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
