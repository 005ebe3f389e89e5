package main

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"os"
	"slices"
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
