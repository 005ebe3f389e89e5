package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/siotest"
)

// metricsKey is METRICS_KEY of the rate-limit tests' nodes.
const metricsKey = "cluster metrics key"

// TestRateLimitAcrossNodes: two `sessiongate serve` nodes, on Redis and on
// PostgreSQL, with EVENT_RATE_LIMIT=0.01 (so slow that no token comes back
// during the test), burst 5, MAX_CONNECTIONS_PER_USER=2. User 42 spends
// the burst on node 1; once node 2 has node 1's report, 42's socket there
// is refused at once, while user 43 on node 2 still has its own burst. The
// two sockets of 42 on two nodes fill the cap: once each node has the
// other's count, a third socket is refused TOO_MANY_CONNECTIONS on either.
func TestRateLimitAcrossNodes(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) {
			c := clusterEnv{Cluster: bus, Key: randomKey(), DB: openSessionDB(t), Extra: map[string]string{
				"EVENT_RATE_LIMIT": "0.01", "EVENT_RATE_BURST": "5", "MAX_CONNECTIONS_PER_USER": "2", "METRICS_KEY": metricsKey,
			}}
			c.onBus(t)
			nodes := startNodes(t, c, 2)
			s42a, s42b, s43 := c.DB.newSession(t, 42), c.DB.newSession(t, 42), c.DB.newSession(t, 43)

			a := goClient(t, nodes[0], s42a)
			b := goClient(t, nodes[1], s42b)
			other := goClient(t, nodes[1], s43)
			if got := spendUntilRefused(t, a); got != 5 {
				t.Fatalf("user 42 on node 1: %d accepted, want the burst, 5", got)
			}
			// Node 2 learns of it in node 1's next reports.
			metricAtLeast(t, nodes[1], `sessiongate_rate_limit_cluster_tokens_total{direction="in"}`, 5)
			if got := spendUntilRefused(t, b); got != 0 {
				t.Errorf("user 42 on node 2 after node 1's report: %d accepted, want 0", got)
			}
			if got := spendUntilRefused(t, other); got != 5 {
				t.Errorf("user 43 on node 2: %d accepted, want its own burst, 5", got)
			}

			// Each node counts the other's socket of 42 (the threshold is 1).
			for _, n := range nodes {
				metricAtLeast(t, n, "sessiongate_rate_limit_remote_connections", 1)
			}
			for _, n := range nodes {
				_, err := dialGo(t, n, s42a)
				var ce *siotest.ConnectError
				if !asConnectError(err, &ce) || ce.Code != "TOO_MANY_CONNECTIONS" {
					t.Errorf("a third socket of user 42 on %s: %v, want TOO_MANY_CONNECTIONS", n.Name, err)
				}
			}
		})
	}
}

// goClient connects a Go Socket.IO client of s to n.
func goClient(t *testing.T, n *sgNode, s session) *siotest.Client {
	t.Helper()
	c, err := dialGo(t, n, s)
	if err != nil {
		t.Fatalf("%s: connect: %v", n.Name, err)
	}
	return c
}

func dialGo(t *testing.T, n *sgNode, s session) (*siotest.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := siotest.Dial(ctx, n.URL, siotest.Options{Header: http.Header{"Cookie": {s.Cookie}}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Connected(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func asConnectError(err error, ce **siotest.ConnectError) bool {
	e, ok := err.(*siotest.ConnectError)
	*ce = e
	return ok
}

// spendUntilRefused sends client events on c (answered UNKNOWN_EVENT:
// the nodes have no EVENTS_URL, and each still spends a token) until one
// is refused RATE_LIMITED, and returns how many were not.
func spendUntilRefused(t *testing.T, c *siotest.Client) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for n := 0; n <= 100; n++ {
		args, err := c.EmitWithAck(ctx, "ping", n)
		if err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
		var reply struct {
			Error struct{ Code string } `json:"error"`
		}
		if len(args) != 1 || json.Unmarshal(args[0], &reply) != nil {
			t.Fatalf("event %d: ack %s", n, args)
		}
		if reply.Error.Code == "RATE_LIMITED" {
			return n
		}
		if reply.Error.Code != "UNKNOWN_EVENT" {
			t.Fatalf("event %d: ack %s, want UNKNOWN_EVENT or RATE_LIMITED", n, args[0])
		}
	}
	t.Fatal("no RATE_LIMITED after 100 events")
	return 0
}

// metricAtLeast waits until n's /metrics has the sample name at want or
// more (no event of another process can be awaited: it polls, as
// waitReady does).
func metricAtLeast(t *testing.T, n *sgNode, name string, want float64) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for {
		req, _ := http.NewRequest("GET", n.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+metricsKey)
		if res, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = res.Status
			if m := re.FindSubmatch(b); m != nil {
				last = string(m[0])
				if got, _ := strconv.ParseFloat(string(m[1]), 64); got >= want {
					return
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not reach %v within %s (%s)", n.Name, name, want, waitTimeout, last)
		}
		select {
		case <-n.done:
			t.Fatalf("%s exited", n.Name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
