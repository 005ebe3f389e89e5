package cluster

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/tcpproxy"
)

// hostOf is the host:port of a base URL.
func hostOf(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// proxyTo is a TCP proxy to base, closed at the end of the test.
func proxyTo(t testing.TB, base string) *tcpproxy.Proxy {
	t.Helper()
	px, err := tcpproxy.New(hostOf(t, base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}

// publishAsync POSTs "e" with from…to to room on the nodes in turn, in the
// background, one at a time; published receives each number once its
// publish was answered (and so is in the stream).
func publishAsync(t *testing.T, nodes []*sgNode, room string, from, to int) <-chan int {
	t.Helper()
	published, stop := make(chan int, to-from+1), make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		defer close(published)
		for n := from; n <= to; n++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"to":[%q],"event":"e","data":%d}`, room, n)
			req, _ := http.NewRequest("POST", nodes[n%len(nodes)].URL+"/api/publish", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+publishKey)
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
				if res.StatusCode != 200 {
					err = fmt.Errorf("status %s", res.Status)
				}
			}
			if err != nil {
				t.Errorf("publish %d: %v", n, err)
				return
			}
			published <- n
		}
	}()
	return published
}

// waitPublished reads published up to n.
func waitPublished(t *testing.T, published <-chan int, n int) {
	t.Helper()
	for got := range published {
		if got >= n {
			return
		}
	}
	t.Fatalf("the publisher stopped before %d", n)
}

// Two sessiongate binaries on one Redis share the recovery stream (by
// default with CLUSTER=redis). An official socket.io-client asking for
// recovery is on node 1 through a TCP proxy while events are published on
// both nodes; the proxy cuts its connection (no Socket.IO goodbye) and
// leads its reconnection to node 2: recovered, the same id, every event
// exactly once and in order. Then node 1 is SIGKILLed under a second
// client: that one reconnects to node 2 and is recovered too, from the
// record node 1 kept in Redis while it was connected.
func TestRecoveryAcrossBinaries(t *testing.T) {
	t.Parallel()
	c, nodes := redisCluster(t, 2)
	alice := c.DB.newSession(t, 1)

	t.Run("cut", func(t *testing.T) {
		px := proxyTo(t, nodes[0].URL)
		rc := nodetest.StartRecoveryCounter(t, "http://"+px.Addr(), alice.Cookie, nil)
		first := rc.Connect(t, false, false, true)
		published := publishAsync(t, nodes, alice.Room, 1, 50)
		rc.Until(t, 10)
		px.Pause()
		px.Cut(true)
		waitPublished(t, published, 30)
		px.Retarget(hostOf(t, nodes[1].URL))
		px.Resume()
		if conn := rc.Connect(t, true, false, true); conn.ID != first.ID {
			t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
		}
		rc.Until(t, 50)
		rc.ExactlyOnce(t, 50)
	})

	t.Run("SIGKILL", func(t *testing.T) {
		px := proxyTo(t, nodes[0].URL)
		rc := nodetest.StartRecoveryCounter(t, "http://"+px.Addr(), alice.Cookie, nil)
		first := rc.Connect(t, false, false, true)
		// Published on node 2 only: node 1 is about to die.
		published := publishAsync(t, nodes[1:], alice.Room, 1, 40)
		rc.Until(t, 10)
		px.Pause()
		if err := nodes[0].cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-nodes[0].done
		px.Cut(true)
		waitPublished(t, published, 25)
		px.Retarget(hostOf(t, nodes[1].URL))
		px.Resume()
		if conn := rc.Connect(t, true, false, true); conn.ID != first.ID {
			t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
		}
		rc.Until(t, 40)
		rc.ExactlyOnce(t, 40)
	})
}

// A Node socket.io 4.8 server with @socket.io/redis-streams-adapter 0.3.1
// and connectionStateRecovery, on the stream of two sessiongate nodes
// (RECOVERY_STREAM = its streamName; its channelPrefix another than
// CLUSTER_KEY, as its pub/sub protocol is not the redis-adapter's). What
// interoperates, and what does not:
//   - a broadcast of the Node server reaches a recovering client of
//     sessiongate, with the stream id as offset, and one of sessiongate
//     reaches a client of the Node server, with the same offset on both;
//   - a client cut from sessiongate node 1 recovers on node 2, every
//     event exactly once and in order, while the Node server publishes into
//     the stream during the drop;
//   - a client of the Node server that reconnects to sessiongate is not
//     recovered (a fresh socket, told it may have missed events): its
//     session is Node's sio:session:<pid>, which sessiongate never reads
//     (Node restores without a session check), and it is left there;
//   - a client of sessiongate that reconnects to the Node server is not
//     recovered there: sessiongate never writes sio:session:*.
func TestRecoveryWithNodeStreamsServer(t *testing.T) {
	t.Parallel()
	c, nodes := redisCluster(t, 2)
	node := startNodeServer(t, nodeEnv{Cluster: "redis-streams", Key: c.Key + "-node", RedisURL: c.RedisURL, Stream: c.Key})
	alice := c.DB.newSession(t, 1)
	cl := startClients(t,
		clientSpec{Name: "n", URL: node.URL, Auth: map[string]any{"rooms": []string{alice.Room}}},
		sg("obs", nodes[1], alice),
	)
	cl.connected(t, "n", "obs")
	emit := func(rooms []string, n int) {
		t.Helper()
		node.call(t, map[string]any{"op": "emit", "rooms": rooms, "event": "e", "args": []any{n}})
	}
	// The Node server reads the stream from "$", from when its reader's
	// first XREAD arrived, and says nothing of it: publish until its
	// client gets one.
	for round := 0; len(cl.events("n", "probe")) == 0; round++ {
		if round > 100 {
			t.Fatal("the Node server does not read the stream")
		}
		nodes[0].publish(t, []string{alice.Room}, "probe", round)
		cl.out.waitFor(t, 0, "probe at obs", func(l line) bool {
			return l.Client == "obs" && l.Type == "event" && l.Event == "probe" && argsEq(l.Args[:1], fmt.Sprint(round))
		})
	}

	px := proxyTo(t, nodes[0].URL)
	rc := nodetest.StartRecoveryCounter(t, "http://"+px.Addr(), alice.Cookie, nil)
	first := rc.Connect(t, false, false, true)

	t.Run("broadcasts both ways, one offset", func(t *testing.T) {
		nodes[1].publish(t, []string{alice.Room}, "e", 1)
		rc.Until(t, 1)
		fromSG := cl.event(t, "n", "e")
		if len(fromSG.Args) != 2 || !argsEq(fromSG.Args[:1], "1") || !jsonEq(fromSG.Args[1], fmt.Sprintf("%q", rc.Offsets[0])) {
			t.Errorf("the Node server's client got %s, want 1 and the offset %s", fromSG, rc.Offsets[0])
		}
		emit([]string{alice.Room}, 2)
		rc.Until(t, 2)
		nodeSide, _ := cl.out.waitFor(t, 0, "n got 2", func(l line) bool {
			return l.Client == "n" && l.Event == "e" && len(l.Args) == 2 && argsEq(l.Args[:1], "2")
		})
		if !jsonEq(nodeSide.Args[1], fmt.Sprintf("%q", rc.Offsets[1])) {
			t.Errorf("offsets of the Node server's broadcast: %s at its client, %s at sessiongate's", nodeSide.Args[1], rc.Offsets[1])
		}
	})

	t.Run("cut from node 1, recovered on node 2 while Node publishes", func(t *testing.T) {
		// 3…12 from sessiongate, 13…32 from the Node server (its emits go
		// out on one connection, in order), 33…40 from sessiongate once
		// obs saw 32 (so that the stream has them in this order).
		for n := 3; n <= 12; n++ {
			nodes[n%2].publish(t, []string{alice.Room}, "e", n)
		}
		for n := 13; n <= 22; n++ {
			emit([]string{alice.Room}, n)
		}
		px.Pause()
		px.Cut(true)
		for n := 23; n <= 32; n++ {
			emit([]string{alice.Room}, n)
		}
		cl.out.waitFor(t, 0, "obs got 32", func(l line) bool {
			return l.Client == "obs" && l.Event == "e" && argsEq(l.Args, "32")
		})
		px.Retarget(hostOf(t, nodes[1].URL))
		px.Resume()
		if conn := rc.Connect(t, true, false, true); conn.ID != first.ID {
			t.Errorf("recovered as %s, want %s", conn.ID, first.ID)
		}
		for n := 33; n <= 40; n++ {
			nodes[n%2].publish(t, []string{alice.Room}, "e", n)
		}
		rc.Until(t, 40)
		rc.ExactlyOnce(t, 40)
	})

	t.Run("Node's client reconnecting to sessiongate", func(t *testing.T) {
		pn := proxyTo(t, node.URL)
		nc := nodetest.StartRecoveryCounter(t, "http://"+pn.Addr(), alice.Cookie, nil)
		conn := nc.Connect(t, false, false, false)
		emit(nil, 1) // every socket: nc gets an offset
		nc.Until(t, 1)
		pn.Pause()
		pn.Cut(true)
		node.out.waitFor(t, 0, "the Node server saw its client go", func(l line) bool {
			return l.Type == "disconnect" && strings.Contains(string(l.Raw), conn.ID)
		})
		pn.Retarget(hostOf(t, nodes[0].URL))
		pn.Resume()
		if got := nc.Connect(t, false, true, true); got.ID == conn.ID {
			t.Errorf("sessiongate took over Node's socket %s", conn.ID)
		}
		rc := requireRedis(t)
		if v, err := rc.do("EXISTS", "sio:session:"+conn.PID); err != nil || v != int64(1) {
			t.Errorf("Node's saved session sio:session:%s: EXISTS = %v, %v; want it left alone", conn.PID, v, err)
		}
		rc.do("DEL", "sio:session:"+conn.PID)
	})

	t.Run("sessiongate's client reconnecting to Node", func(t *testing.T) {
		ps := proxyTo(t, nodes[0].URL)
		sc := nodetest.StartRecoveryCounter(t, "http://"+ps.Addr(), alice.Cookie, nil)
		conn := sc.Connect(t, false, false, true)
		nodes[0].publish(t, []string{alice.Room}, "e", 1)
		sc.Until(t, 1)
		ps.Pause()
		ps.Cut(true)
		ps.Retarget(hostOf(t, node.URL))
		ps.Resume()
		if got := sc.Connect(t, false, false, false); got.ID == conn.ID {
			t.Errorf("the Node server recovered sessiongate's socket %s", conn.ID)
		}
	})
}
