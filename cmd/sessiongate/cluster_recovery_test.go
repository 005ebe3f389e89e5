package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/tcpproxy"
)

// recoveryEnv is a CLUSTER=redis node's settings for the tests of the
// shared recovery log: a cluster of its own (random CLUSTER_KEY, the name
// of its stream too) and extra on top.
func recoveryEnv(t *testing.T, extra map[string]string) map[string]string {
	t.Helper()
	env, ok := clusterEnvs(t)[ClusterRedis]
	if !ok {
		t.Fatal("CLUSTER=redis is not built in")
	}
	env = maps.Clone(env)
	env["METRICS_KEY"] = "mk"
	maps.Copy(env, extra)
	return env
}

// publisher2 publishes "e" with 1, 2, … to rooms[0] when n%3 is 0, else
// to rooms[1], on the node of n%2, one at a time (POST /api/publish).
type publisher2 struct {
	nodes []string
	rooms [2]string
	n     int
}

func (p *publisher2) publish() error {
	p.n++
	body := fmt.Sprintf(`{"to":[%q],"event":"e","data":%d}`, p.rooms[min(p.n%3, 1)], p.n)
	req, _ := http.NewRequest("POST", p.nodes[p.n%2]+"/api/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer pk")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("publish %d: %s", p.n, res.Status)
	}
	return nil
}

// publishTo runs publish until p.n is n.
func (p *publisher2) publishTo(t *testing.T, n int) {
	t.Helper()
	for p.n < n {
		if err := p.publish(); err != nil {
			t.Fatal(err)
		}
	}
}

// publishAsync publishes up to n in the background; reached receives
// each number published, done is closed at the end.
func (p *publisher2) publishAsync(t *testing.T, n int) (reached <-chan int, done <-chan struct{}) {
	r, d, stop := make(chan int, n), make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-d })
	go func() {
		defer close(d)
		for p.n < n {
			select {
			case <-stop:
				return
			default:
			}
			if err := p.publish(); err != nil {
				t.Error(err)
				return
			}
			r <- p.n
		}
	}()
	return r, d
}

func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// metric returns the value of the sample line name (with its labels) of
// the node's /metrics.
func metric(t *testing.T, base, name string) string {
	t.Helper()
	_, body := get(t, base+"/metrics", http.Header{"Authorization": {"Bearer mk"}})
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// proxiedClient starts a recovery client of the session cookie on node,
// through a TCP proxy (closed when t ends), and connects it.
func proxiedClient(t *testing.T, node, cookie string) (*nodetest.RecoveryClient, *tcpproxy.Proxy, nodetest.RecoveryLine) {
	t.Helper()
	px, err := tcpproxy.New(hostOf(t, node))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	c := nodetest.StartRecoveryCounter(t, "http://"+px.Addr(), cookie, nil)
	return c, px, c.Connect(t, false, false, true)
}

// TestClusterRecovery: two nodes on one Redis share the recovery stream. A
// socket on node A, through a TCP proxy, in its user room and in a room a
// room operation added, receives events published on both nodes; its TCP
// connection is cut while they keep flowing, and it reconnects through the
// proxy, which now leads to node B: recovered there, the same id, its
// rooms kept, every event exactly once and in order. The cases where it
// must not recover: its session deleted during the drop (refused, none of
// the missed events sent), another session presenting its pid (a fresh
// socket, told it may have missed events, and the pid still its owner's).
func TestClusterRecovery(t *testing.T) {
	nodetest.Require(t, "test/interop")
	all := clusterSetup(t, recoveryEnv(t, nil))
	_, _, a := startMain(t, all)
	_, _, b := startMain(t, all)
	nodes := []string{a, b}

	// dropOnA starts a client on A through a proxy, in its user room and
	// in room.
	dropOnA := func(t *testing.T, cookie, room string) (*nodetest.RecoveryClient, *tcpproxy.Proxy, nodetest.RecoveryLine) {
		t.Helper()
		c, px, first := proxiedClient(t, a, cookie)
		// On A itself: applied before the answer.
		if res, body := post(t, a+"/api/rooms/join", `{"to":["`+first.ID+`"],"rooms":["`+room+`"]}`, http.Header{"Authorization": {"Bearer pk"}}); res.StatusCode != 200 {
			t.Fatalf("join = %d %s", res.StatusCode, body)
		}
		return c, px, first
	}

	t.Run("drop on A, reconnect to B", func(t *testing.T) {
		cookie, userRoom := login(t, a)
		c, px, first := dropOnA(t, cookie, "incident:1")
		p := &publisher2{nodes: nodes, rooms: [2]string{"incident:1", userRoom}}
		p.publishTo(t, 10)
		c.Until(t, 10)

		reached, done := p.publishAsync(t, 60)
		c.Until(t, 15)
		px.Pause()
		px.Cut(true)
		for n := range reached {
			if n == 35 {
				break
			}
		}
		px.Retarget(hostOf(t, b))
		px.Resume()
		conn := c.Connect(t, true, false, true)
		if conn.ID != first.ID || conn.PID != first.PID {
			t.Errorf("recovered as %s (pid %s), want %s (pid %s)", conn.ID, conn.PID, first.ID, first.PID)
		}
		<-done
		c.Until(t, 60)
		c.ExactlyOnce(t, 60)
		if got := metric(t, b, "sessiongate_recovery_successes_total"); got != "1" {
			t.Errorf("node B counts %q recoveries, want 1", got)
		}
		if got := metric(t, a, "sessiongate_recovery_stream_read_gaps_total"); got != "0" {
			t.Errorf("node A counts %q gaps in its reads of the stream, want 0", got)
		}
	})

	t.Run("session deleted during the drop", func(t *testing.T) {
		cookie, userRoom := login(t, a)
		c, px, _ := dropOnA(t, cookie, "incident:2")
		p := &publisher2{nodes: nodes, rooms: [2]string{"incident:2", userRoom}}
		p.publishTo(t, 5)
		c.Until(t, 5)
		px.Pause()
		px.Cut(true)
		p.publishTo(t, 10)
		if res, body := post(t, b+"/auth/logout", "{}", http.Header{"Cookie": {cookie}}); res.StatusCode != 200 {
			t.Fatalf("logout = %d %s", res.StatusCode, body)
		}
		px.Retarget(hostOf(t, b))
		px.Resume()
		c.Refused(t)
		if len(c.Events) != 5 {
			t.Errorf("the refused client saw %v, want 1…5 only", c.Events)
		}
	})

	t.Run("another session's pid", func(t *testing.T) {
		cookie, userRoom := login(t, a)
		c, px, first := dropOnA(t, cookie, "incident:3")
		p := &publisher2{nodes: nodes, rooms: [2]string{"incident:3", userRoom}}
		p.publishTo(t, 5)
		c.Until(t, 5)
		px.Pause()
		px.Cut(true)
		p.publishTo(t, 10)

		other, _ := login(t, b)
		thief := nodetest.StartRecoveryCounter(t, b, other, map[string]any{"pid": first.PID, "offset": c.Offsets[len(c.Offsets)-1]})
		if conn := thief.Connect(t, false, true, true); conn.ID == first.ID {
			t.Fatalf("another session took socket %s", first.ID)
		}
		if len(thief.Events) != 0 {
			t.Fatalf("another session was sent %v", thief.Events)
		}
		// The pid is still its owner's.
		px.Retarget(hostOf(t, b))
		px.Resume()
		if conn := c.Connect(t, true, false, true); conn.ID != first.ID {
			t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
		}
		p.publishTo(t, 12)
		c.Until(t, 12)
		c.ExactlyOnce(t, 12)
		if got := metric(t, b, `sessiongate_recovery_failures_total{reason="key"}`); got != "1" {
			t.Errorf("node B counts %q key failures, want 1", got)
		}
	})
}

// TestClusterRecoveryWindow: a socket that comes back after
// RECOVERY_WINDOW, on the other node, connects fresh and is told it may
// have missed events.
func TestClusterRecoveryWindow(t *testing.T) {
	nodetest.Require(t, "test/interop")
	const window = 500 * time.Millisecond
	all := clusterSetup(t, recoveryEnv(t, map[string]string{"RECOVERY_WINDOW": window.String()}))
	_, _, a := startMain(t, all)
	_, _, b := startMain(t, all)
	cookie, userRoom := login(t, a)
	c, px, first := proxiedClient(t, a, cookie)
	p := &publisher2{nodes: []string{a, b}, rooms: [2]string{userRoom, userRoom}}
	p.publishTo(t, 3)
	c.Until(t, 3)
	px.Pause()
	px.Cut(true)
	p.publishTo(t, 5)
	// The window is time itself: nothing to wait for but the clock.
	time.Sleep(window + 300*time.Millisecond)
	px.Retarget(hostOf(t, b))
	px.Resume()
	if conn := c.Connect(t, false, true, true); conn.ID == first.ID {
		t.Errorf("socket %s recovered after the window", conn.ID)
	}
	if len(c.Events) != 3 {
		t.Errorf("saw %v, want 1…3 only", c.Events)
	}
}

// TestClusterRecoveryNodeDied: node A loses its clients and Redis at once,
// as a node that died (nothing it does afterwards reaches the cluster);
// its socket reconnects to node B while events keep flowing, and is
// recovered there from the record A kept in Redis while it was connected:
// the same id, every event exactly once, in order.
func TestClusterRecoveryNodeDied(t *testing.T) {
	nodetest.Require(t, "test/interop")
	env := recoveryEnv(t, nil)
	all := clusterSetup(t, env)
	redisPx := newCutProxy(t, redisHost(t))
	allA := maps.Clone(all)
	allA["REDIS_URL"] = "redis://" + redisPx.Addr()
	_, _, a := startMain(t, allA)
	_, _, b := startMain(t, all)
	cookie, userRoom := login(t, b)
	c, px, first := proxiedClient(t, a, cookie)
	// Published on B only: A is about to die.
	p := &publisher2{nodes: []string{b, b}, rooms: [2]string{userRoom, userRoom}}
	p.publishTo(t, 10)
	c.Until(t, 10)
	reached, done := p.publishAsync(t, 40)
	c.Until(t, 12)
	px.Pause()
	redisPx.Cut()
	px.Cut(true)
	for n := range reached {
		if n == 25 {
			break
		}
	}
	px.Retarget(hostOf(t, b))
	px.Resume()
	if conn := c.Connect(t, true, false, true); conn.ID != first.ID {
		t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
	}
	<-done
	c.Until(t, 40)
	c.ExactlyOnce(t, 40)
}

// TestClusterRecoveryHalfOpen: the connection to node A is cut without
// A seeing it (half-open: A only notices at its ping timeout), and the
// client recovers on node B meanwhile. When A later ends its old socket,
// that must not undo the recovery: a second drop, from B, recovers again
// (on A), every event exactly once, in order.
func TestClusterRecoveryHalfOpen(t *testing.T) {
	nodetest.Require(t, "test/interop")
	all := clusterSetup(t, recoveryEnv(t, map[string]string{"PING_INTERVAL": "300ms", "PING_TIMEOUT": "300ms"}))
	_, _, a := startMain(t, all)
	_, _, b := startMain(t, all)
	cookie, userRoom := login(t, a)
	c, px, first := proxiedClient(t, a, cookie)
	p := &publisher2{nodes: []string{a, b}, rooms: [2]string{userRoom, userRoom}}
	p.publishTo(t, 5)
	c.Until(t, 5)
	px.Pause()
	px.Cut(false) // A's side stays open and silent
	p.publishTo(t, 10)
	px.Retarget(hostOf(t, b))
	px.Resume()
	if conn := c.Connect(t, true, false, true); conn.ID != first.ID {
		t.Fatalf("recovered as %s, want %s", conn.ID, first.ID)
	}
	p.publishTo(t, 15)
	c.Until(t, 15)
	// A notices its half-open socket at its ping timeout: wait for the
	// socket to be gone from A's count.
	for metric(t, a, "sessiongate_connections") != "0" {
		if testCtx(t).Err() != nil {
			t.Fatal("node A never ended its half-open socket")
		}
		time.Sleep(50 * time.Millisecond) // nothing to await from outside the process
	}
	px.Pause()
	px.Cut(true)
	p.publishTo(t, 20)
	px.Retarget(hostOf(t, a))
	px.Resume()
	if conn := c.Connect(t, true, false, true); conn.ID != first.ID {
		t.Errorf("second recovery as %s, want %s", conn.ID, first.ID)
	}
	p.publishTo(t, 25)
	c.Until(t, 25)
	c.ExactlyOnce(t, 25)
}
