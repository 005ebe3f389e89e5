package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
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
	env["RECOVERY_STREAM"] = env["CLUSTER_KEY"]
	env["METRICS_KEY"] = "mk"
	maps.Copy(env, extra)
	return env
}

// recClient is an official socket.io-client asking for recovery
// (test/interop/recovery-client.mjs), with what it saw.
type recClient struct {
	*nodetest.Run
	events []int    // the data of each "e" event, in order
	offs   []string // their offsets
}

func startRecClient(t *testing.T, url, cookie string, auth map[string]any) *recClient {
	t.Helper()
	a := map[string]any{"recovery": true}
	maps.Copy(a, auth)
	return &recClient{Run: nodetest.StartRecoveryClient(t, url, cookie, a)}
}

// line returns the client's next line, and records it if it is an "e"
// event (failing the test on a malformed one).
func (c *recClient) line(t *testing.T) (l nodetest.RecoveryLine, isE bool) {
	t.Helper()
	c.Next(&l, 10*time.Second)
	if l.Event != "event" || l.Name != "e" {
		return l, false
	}
	if len(l.Args) != 2 {
		t.Fatalf("event e with %v, want a number and an offset", l.Args)
	}
	n, ok := l.Args[0].(float64)
	off, ok2 := l.Args[1].(string)
	if !ok || !ok2 {
		t.Fatalf("event e with %v, want a number and an offset", l.Args)
	}
	c.events = append(c.events, int(n))
	c.offs = append(c.offs, off)
	return l, true
}

// next returns the client's next line that is not an "e" event, recording
// those.
func (c *recClient) next(t *testing.T) nodetest.RecoveryLine {
	t.Helper()
	for {
		if l, isE := c.line(t); !isE {
			return l
		}
	}
}

// connect reads up to the client's next connect and the recovery event
// that follows it, and checks them; disconnects on the way are skipped.
func (c *recClient) connect(t *testing.T, recovered, missed bool) nodetest.RecoveryLine {
	t.Helper()
	var conn nodetest.RecoveryLine
	for {
		l := c.next(t)
		switch {
		case l.Event == "disconnect", l.Event == "connect_error" && l.Code == "":
			continue // a reconnection attempt that failed (the proxy paused)
		case l.Event == "connect" && conn.Event == "":
			conn = l
			if l.Recovered != recovered || l.PID == "" {
				t.Fatalf("connect %+v, want recovered %v with a pid", l, recovered)
			}
			continue
		case conn.Event != "" && l.Event == "event" && l.Name == "recovery":
			info, _ := l.Args[0].(map[string]any)
			if info["recovered"] != recovered || info["missed"] != missed {
				t.Fatalf("recovery event %v, want recovered %v, missed %v", l.Args, recovered, missed)
			}
			return conn
		}
		t.Fatalf("got %+v, want connect then the recovery event", l)
	}
}

// until reads until the client saw event n (other lines fail the test).
func (c *recClient) until(t *testing.T, n int) {
	t.Helper()
	for len(c.events) == 0 || c.events[len(c.events)-1] < n {
		if l, isE := c.line(t); !isE && l.Event != "disconnect" && (l.Event != "connect_error" || l.Code != "") {
			t.Fatalf("got %+v waiting for event %d", l, n)
		}
	}
}

// exactlyOnce checks the client saw the events 1…n, once each, in order,
// with offsets that only grow (stream ids).
func (c *recClient) exactlyOnce(t *testing.T, n int) {
	t.Helper()
	if len(c.events) != n {
		t.Errorf("saw %d events, want %d: %v", len(c.events), n, c.events)
	}
	for i, e := range c.events {
		if e != i+1 {
			t.Fatalf("event %d is %d, want %d: %v", i, e, i+1, c.events)
		}
		if i > 0 && !offsetLess(c.offs[i-1], c.offs[i]) {
			t.Fatalf("offsets %q then %q do not grow", c.offs[i-1], c.offs[i])
		}
	}
}

func offsetLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ami, _ := strconv.ParseUint(am, 10, 64)
	bmi, _ := strconv.ParseUint(bm, 10, 64)
	asi, _ := strconv.ParseUint(as, 10, 64)
	bsi, _ := strconv.ParseUint(bs, 10, 64)
	return ami < bmi || (ami == bmi && asi < bsi)
}

// publisher publishes "e" with 1, 2, … to the room of n%3 (rooms[0] or
// rooms[1]) on the node of n%2, one at a time.
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
	dropOnA := func(t *testing.T, cookie, room string) (*recClient, *tcpproxy.Proxy, nodetest.RecoveryLine) {
		t.Helper()
		px, err := tcpproxy.New(hostOf(t, a))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { px.Close() })
		c := startRecClient(t, "http://"+px.Addr(), cookie, nil)
		first := c.connect(t, false, false)
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
		c.until(t, 10)

		reached, done := p.publishAsync(t, 60)
		c.until(t, 15)
		px.Pause()
		px.Cut(true)
		for n := range reached {
			if n == 35 {
				break
			}
		}
		px.Retarget(hostOf(t, b))
		px.Resume()
		conn := c.connect(t, true, false)
		if conn.ID != first.ID || conn.PID != first.PID {
			t.Errorf("recovered as %s (pid %s), want %s (pid %s)", conn.ID, conn.PID, first.ID, first.PID)
		}
		<-done
		c.until(t, 60)
		c.exactlyOnce(t, 60)
		if got := metric(t, b, "sessiongate_recovery_successes_total"); got != "1" {
			t.Errorf("node B counts %q recoveries, want 1", got)
		}
	})

	t.Run("session deleted during the drop", func(t *testing.T) {
		cookie, userRoom := login(t, a)
		c, px, _ := dropOnA(t, cookie, "incident:2")
		p := &publisher2{nodes: nodes, rooms: [2]string{"incident:2", userRoom}}
		p.publishTo(t, 5)
		c.until(t, 5)
		px.Pause()
		px.Cut(true)
		p.publishTo(t, 10)
		if res, body := post(t, b+"/auth/logout", "{}", http.Header{"Cookie": {cookie}}); res.StatusCode != 200 {
			t.Fatalf("logout = %d %s", res.StatusCode, body)
		}
		px.Retarget(hostOf(t, b))
		px.Resume()
		for {
			l := c.next(t)
			if l.Event == "disconnect" || l.Event == "connect_error" && l.Code == "" {
				continue
			}
			if l.Event != "connect_error" || l.Code == "" {
				t.Fatalf("got %+v, want a connect_error with a code", l)
			}
			break
		}
		if len(c.events) != 5 {
			t.Errorf("the refused client saw %v, want 1…5 only", c.events)
		}
	})

	t.Run("another session's pid", func(t *testing.T) {
		cookie, userRoom := login(t, a)
		c, px, first := dropOnA(t, cookie, "incident:3")
		p := &publisher2{nodes: nodes, rooms: [2]string{"incident:3", userRoom}}
		p.publishTo(t, 5)
		c.until(t, 5)
		px.Pause()
		px.Cut(true)
		p.publishTo(t, 10)

		other, _ := login(t, b)
		thief := startRecClient(t, b, other, map[string]any{"pid": first.PID, "offset": c.offs[len(c.offs)-1]})
		if conn := thief.connect(t, false, true); conn.ID == first.ID {
			t.Fatalf("another session took socket %s", first.ID)
		}
		if len(thief.events) != 0 {
			t.Fatalf("another session was sent %v", thief.events)
		}
		// The pid is still its owner's.
		px.Retarget(hostOf(t, b))
		px.Resume()
		if conn := c.connect(t, true, false); conn.ID != first.ID {
			t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
		}
		p.publishTo(t, 12)
		c.until(t, 12)
		c.exactlyOnce(t, 12)
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
	px, err := tcpproxy.New(hostOf(t, a))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c := startRecClient(t, "http://"+px.Addr(), cookie, nil)
	first := c.connect(t, false, false)
	p := &publisher2{nodes: []string{a, b}, rooms: [2]string{userRoom, userRoom}}
	p.publishTo(t, 3)
	c.until(t, 3)
	px.Pause()
	px.Cut(true)
	p.publishTo(t, 5)
	// The window is time itself: nothing to wait for but the clock.
	time.Sleep(window + 300*time.Millisecond)
	px.Retarget(hostOf(t, b))
	px.Resume()
	if conn := c.connect(t, false, true); conn.ID == first.ID {
		t.Errorf("socket %s recovered after the window", conn.ID)
	}
	if len(c.events) != 3 {
		t.Errorf("saw %v, want 1…3 only", c.events)
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
	px, err := tcpproxy.New(hostOf(t, a))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c := startRecClient(t, "http://"+px.Addr(), cookie, nil)
	first := c.connect(t, false, false)
	// Published on B only: A is about to die.
	p := &publisher2{nodes: []string{b, b}, rooms: [2]string{userRoom, userRoom}}
	p.publishTo(t, 10)
	c.until(t, 10)
	reached, done := p.publishAsync(t, 40)
	c.until(t, 12)
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
	if conn := c.connect(t, true, false); conn.ID != first.ID {
		t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
	}
	<-done
	c.until(t, 40)
	c.exactlyOnce(t, 40)
}
