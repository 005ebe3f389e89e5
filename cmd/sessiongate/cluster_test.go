package main

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/internal/pgtest"
)

// clusterEnvs are the settings of each CLUSTER mode built in, for a test
// cluster of its own (a fresh schema; a random CLUSTER_KEY, so that tests
// sharing the Redis never hear each other). "none" is nodes that share the
// session store and no bus: revocations need none.
func clusterEnvs(t *testing.T) map[string]map[string]string {
	t.Helper()
	modes := map[string]map[string]string{"none": {}}
	var b [6]byte
	rand.Read(b[:])
	key := "sgtest-" + hex.EncodeToString(b[:])
	if _, ok := clusterOpeners[ClusterRedis]; ok {
		modes[ClusterRedis] = map[string]string{"CLUSTER": ClusterRedis, "REDIS_URL": testRedisURL(), "CLUSTER_KEY": key}
	}
	if _, ok := clusterOpeners[ClusterPostgres]; ok {
		modes[ClusterPostgres] = map[string]string{"CLUSTER": ClusterPostgres, "CLUSTER_KEY": key}
	}
	return modes
}

// testRedisURL is the test Redis: TEST_REDIS_URL, default the local one.
func testRedisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

// startCluster migrates a fresh schema, adds alice, and starts n nodes on
// it with env; it returns their base URLs.
func startCluster(t *testing.T, n int, env map[string]string) []string {
	t.Helper()
	schema, url := pgtest.Schema(t)
	all := map[string]string{"DATABASE_URL": url, "SESSION_SCHEMA": schema, "PUBLISH_KEY": "pk", "SESSION_SECRETS": "test secret"}
	for k, v := range env {
		all[k] = v
	}
	if code, _, stderr := runCmd(t, all, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	if code, _, stderr := runCmd(t, all, "", "users", "add", "--email", "alice@example.com", "--password", "alice password"); code != 0 {
		t.Fatalf("users add: %s", stderr)
	}
	var bases []string
	for range n {
		_, _, base := startMain(t, all)
		bases = append(bases, base)
	}
	return bases
}

// TestClusterLogout: sessions stay right across nodes. Alice logs in on
// node A and has a socket on A and one on B; her logout on A ends both:
// A's in process, B's through its own LISTEN on the shared store, which
// sees the session row deleted (as logged_out: the trigger tells). Every
// CLUSTER mode built in, and nodes
// with no bus at all.
func TestClusterLogout(t *testing.T) {
	modes := clusterEnvs(t)
	for _, name := range slices.Sorted(maps.Keys(modes)) {
		t.Run(name, func(t *testing.T) {
			nodes := startCluster(t, 2, modes[name])
			cookie, _ := login(t, nodes[0])
			onA := startClient(t, nodes[0], cookie, "websocket")
			onB := startClient(t, nodes[1], cookie, "websocket")
			for _, c := range []*nodeClient{onA, onB} {
				if l := c.next(t); l.Type != "connect" {
					t.Fatalf("client got %+v, want connect", l)
				}
			}
			if res, body := post(t, nodes[0]+"/auth/logout", "{}", http.Header{"Cookie": {cookie}}); res.StatusCode != 200 {
				t.Fatalf("logout = %d %s", res.StatusCode, body)
			}
			onA.expectEvent(t, "session_expired", `{"reason":"logged_out"}`)
			onA.expectDisconnect(t, "io server disconnect")
			onB.expectEvent(t, "session_expired", `{"reason":"logged_out"}`)
			onB.expectDisconnect(t, "io server disconnect")
		})
	}
}

// TestClusterHTTPAPI: three nodes on each bus. Alice has a socket on every
// node; the HTTP API of any node reaches all of them, once: a publish, a
// publish with "except", a join (seen by a multi-room publish from another
// node, which every node receives after the join: one channel, in order),
// a leave and a disconnect. /readyz says the bus is up, and /metrics counts
// its traffic.
func TestClusterHTTPAPI(t *testing.T) {
	modes := clusterEnvs(t)
	delete(modes, "none")
	if len(modes) == 0 {
		t.Fatal("no CLUSTER bus built in")
	}
	for _, name := range slices.Sorted(maps.Keys(modes)) {
		t.Run(name, func(t *testing.T) {
			env := maps.Clone(modes[name])
			env["METRICS_KEY"] = "mk"
			nodes := startCluster(t, 3, env)
			cookie, room := login(t, nodes[0])
			var clients []*nodeClient
			for _, base := range nodes {
				c := startClient(t, base, cookie, "websocket")
				if l := c.next(t); l.Type != "connect" {
					t.Fatalf("client on %s got %+v, want connect", base, l)
				}
				clients = append(clients, c)
			}
			auth := http.Header{"Authorization": {"Bearer pk"}}
			call := func(node int, path, body string) {
				t.Helper()
				if res, b := post(t, nodes[node]+path, body, auth); res.StatusCode != 200 || b != "{\"ok\":true}\n" {
					t.Fatalf("POST %s on node %d %s = %d %s", path, node, body, res.StatusCode, b)
				}
			}
			everyone := func(event, data string) {
				t.Helper()
				for i, c := range clients {
					if l := c.next(t); l.Type != "event" || l.Event != event || len(l.Args) != 1 || string(l.Args[0]) != data {
						t.Fatalf("client on node %d got %+v, want %s %s", i, l, event, data)
					}
				}
			}

			call(0, "/api/publish", `{"to":["`+room+`"],"event":"e","data":1}`)
			everyone("e", "1")
			// Excluded: nothing, then the marker is the next thing seen
			// (once: a second copy of e would come before it).
			call(1, "/api/publish", `{"to":["`+room+`"],"except":["`+room+`"],"event":"e","data":2}`)
			call(1, "/api/publish", `{"to":["`+room+`"],"event":"marker","data":1}`)
			everyone("marker", "1")

			call(1, "/api/rooms/join", `{"to":["`+room+`"],"rooms":["incident:7"]}`)
			call(2, "/api/publish", `{"to":["incident:7","nobody"],"event":"update","data":7}`)
			everyone("update", "7")
			call(2, "/api/rooms/leave", `{"to":["`+room+`"],"rooms":["incident:7"]}`)
			call(0, "/api/publish", `{"to":["incident:7","nobody"],"event":"update","data":8}`)
			call(0, "/api/publish", `{"to":["`+room+`"],"event":"marker","data":2}`)
			everyone("marker", "2")

			for i, base := range nodes {
				res, body := get(t, base+"/readyz", nil)
				if res.StatusCode != 200 || body != "{\"status\":\"ok\",\"bus\":\"ok\"}\n" {
					t.Errorf("node %d /readyz = %d %q", i, res.StatusCode, body)
				}
			}
			_, metrics := get(t, nodes[0]+"/metrics", http.Header{"Authorization": {"Bearer mk"}})
			for _, want := range []string{"sessiongate_cluster_up 1\n", `sessiongate_cluster_messages_total{direction="out"} `} {
				if !strings.Contains(metrics, want) {
					t.Errorf("node 0 /metrics lacks %q", want)
				}
			}
			if strings.Contains(metrics, `sessiongate_cluster_messages_total{direction="out"} 0`+"\n") {
				t.Error("node 0 published and counts no message out")
			}

			call(2, "/api/disconnect", `{"to":["`+room+`"]}`)
			for _, c := range clients {
				c.expectDisconnect(t, "io server disconnect")
			}
		})
	}
}
