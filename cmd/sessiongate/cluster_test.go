package main

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/httpapi"
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
		t.Cleanup(func() { deleteRedisKeys(t, key) })
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
	all := clusterSetup(t, env)
	var bases []string
	for range n {
		_, _, base := startMain(t, all)
		bases = append(bases, base)
	}
	return bases
}

// clusterSetup migrates a fresh schema and adds alice; it returns the
// settings of a node on it: env, the store and the publish key.
func clusterSetup(t *testing.T, env map[string]string) map[string]string {
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
	return all
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
// publish with "except", a join, a leave (each applied by the other nodes
// when their request arrives) and a disconnect. /readyz says the bus is up, and /metrics counts
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

			// A room operation reaches the other nodes as a request they
			// apply on their own time, as the emitter's socketsJoin: publish
			// until every client has the event, then drain the extra
			// copies up to a marker.
			call(1, "/api/rooms/join", `{"to":["`+room+`"],"rooms":["incident:7"]}`)
			seen := make([]bool, len(clients))
			for round := 0; slices.Contains(seen, false); round++ {
				if testCtx(t).Err() != nil || round > 100 {
					t.Fatalf("the join did not reach every node: %v", seen)
				}
				call(2, "/api/publish", `{"to":["incident:7"],"event":"update","data":7}`)
				for i, c := range clients {
					if !seen[i] {
						seen[i] = c.nextWithin(t, 200*time.Millisecond, "update", "7")
					}
				}
			}
			drain := func(node int, marker string) (extra int) {
				t.Helper()
				call(node, "/api/publish", `{"to":["`+room+`"],"event":"marker","data":"`+marker+`"}`)
				for i, c := range clients {
					for {
						l := c.next(t)
						if l.Type == "event" && l.Event == "marker" && len(l.Args) == 1 && string(l.Args[0]) == `"`+marker+`"` {
							break
						}
						if l.Type != "event" || l.Event != "update" {
							t.Fatalf("client on node %d got %+v, want update or marker %s", i, l, marker)
						}
						extra++
					}
				}
				return extra
			}
			drain(0, "joined")
			call(2, "/api/rooms/leave", `{"to":["`+room+`"],"rooms":["incident:7"]}`)
			for round := 0; ; round++ {
				if testCtx(t).Err() != nil || round > 100 {
					t.Fatal("the leave did not reach every node")
				}
				call(0, "/api/publish", `{"to":["incident:7","nobody"],"event":"update","data":8}`)
				if drain(1, "left-"+strconv.Itoa(round)) == 0 {
					break
				}
			}

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

// nextWithin reads the client's next line if one comes within d: false if
// none did, true if it is event with data (anything else fails the test).
func (c *nodeClient) nextWithin(t *testing.T, d time.Duration, event, data string) bool {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("the client exited")
		}
		if l.Type != "event" || l.Event != event || len(l.Args) != 1 || string(l.Args[0]) != data {
			t.Fatalf("client got %+v, want %s %s", l, event, data)
		}
		return true
	case <-time.After(d):
		return false
	}
}

// cutProxy forwards TCP connections to target until Cut, which closes them
// all and refuses new ones: a bus that went away, for one node only.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(p.Cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestClusterBusDown: a node that loses Redis stays ready, says
// "bus":"down" with the warning, reports cluster_up 0, and answers a
// publish 500. On pub/sub only (RECOVERY_STREAM=off) it still delivers
// the publish to its own sockets; with the recovery stream, whence a node
// delivers, to none.
func TestClusterBusDown(t *testing.T) {
	for _, stream := range []string{RecoveryStreamOff, ""} {
		t.Run("RECOVERY_STREAM="+stream, func(t *testing.T) { testClusterBusDown(t, stream) })
	}
}

func testClusterBusDown(t *testing.T, stream string) {
	modes := clusterEnvs(t)
	env, ok := modes[ClusterRedis]
	if !ok {
		t.Fatal("CLUSTER=redis is not built in")
	}
	u, err := url.Parse(testRedisURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	env = maps.Clone(env)
	u.Host = proxy.Addr()
	env["REDIS_URL"] = u.String()
	env["METRICS_KEY"] = "mk"
	env["RECOVERY_STREAM"] = stream
	base := startCluster(t, 1, env)[0]
	cookie, room := login(t, base)
	c := startClient(t, base, cookie, "websocket")
	if l := c.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	if _, body := get(t, base+"/readyz", nil); body != "{\"status\":\"ok\",\"bus\":\"ok\"}\n" {
		t.Fatalf("/readyz with the bus up = %q", body)
	}

	proxy.Cut()
	want := `{"status":"ok","bus":"down","warnings":["` + httpapi.BusDownWarning + "\"]}\n"
	for {
		res, body := get(t, base+"/readyz", nil)
		if res.StatusCode != 200 {
			t.Fatalf("/readyz with the bus down = %d %q, want 200: the node serves its own sockets", res.StatusCode, body)
		}
		if body == want {
			break
		}
		if body != "{\"status\":\"ok\",\"bus\":\"ok\"}\n" {
			t.Fatalf("/readyz = %q, want %q", body, want)
		}
		if testCtx(t).Err() != nil {
			t.Fatal("the bus never reported down")
		}
		time.Sleep(20 * time.Millisecond) // a probe loop, as a load balancer's
	}
	if _, metrics := get(t, base+"/metrics", http.Header{"Authorization": {"Bearer mk"}}); !strings.Contains(metrics, "sessiongate_cluster_up 0\n") {
		t.Error("cluster_up is not 0 with the bus down")
	}
	// A publish fails for the cluster (500); on pub/sub it reaches the
	// node's own sockets.
	res, body := post(t, base+"/api/publish", `{"to":["`+room+`"],"event":"local","data":1}`, http.Header{"Authorization": {"Bearer pk"}})
	if res.StatusCode != 500 {
		t.Errorf("publish with the bus down = %d %s, want 500 (not delivered to the cluster)", res.StatusCode, body)
	}
	if stream == RecoveryStreamOff {
		c.expectEvent(t, "local", "1")
	} else if c.nextWithin(t, 500*time.Millisecond, "local", "1") {
		t.Error("delivered without the stream")
	}
}

// TestClusterUnreachableRedis: a Redis that does not answer stops start-up
// with one line naming REDIS_URL, never its password.
func TestClusterUnreachableRedis(t *testing.T) {
	if _, ok := clusterOpeners[ClusterRedis]; !ok {
		t.Fatal("CLUSTER=redis is not built in")
	}
	schema, url := pgtest.Schema(t)
	env := validEnv(t)
	for k, v := range map[string]string{"DATABASE_URL": url, "SESSION_SCHEMA": schema, "CLUSTER": "redis",
		"REDIS_URL": "redis://sessiongate:hunter2@127.0.0.1:1/0"} {
		env[k] = v
	}
	if code, _, stderr := runCmd(t, env, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	code, _, stderr := runCmd(t, env, "", "serve")
	if code != 2 || !strings.HasPrefix(stderr, "sessiongate: REDIS_URL: cannot join the redis cluster: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("serve with Redis down: exit %d, stderr %q; want 2 and one line naming REDIS_URL", code, stderr)
	}
	if strings.Contains(stderr, "hunter2") {
		t.Errorf("stderr shows the Redis password: %q", stderr)
	}
}
