package main

import (
	"context"
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
// and not to bob.
func TestDemoSubscribe(t *testing.T) {
	_, _, base := startMain(t, map[string]string{"DEMO": "true", "DEMO_PASSWORD": "demo password", "SESSION_SECRETS": ""})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ email, want string }{
		// incident:* has presence in the demo: the ack lists alice.
		{"alice@example.com", `{"ok":true,"presence":{"users":["1"],"count":1,"connections":1}}`},
		{"bob@example.com", `{"ok":false,"error":{"code":"FORBIDDEN","message":"subscription not allowed"}}`},
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
		args, err := c.EmitWithAck(ctx, "subscribe", map[string]string{"room": "incident:7"})
		if err != nil || len(args) != 1 {
			t.Fatalf("%s subscribe: %v %s", tc.email, err, args)
		}
		if string(args[0]) != tc.want {
			t.Errorf("%s subscribe incident:7 = %s, want %s", tc.email, args[0], tc.want)
		}
	}
}
