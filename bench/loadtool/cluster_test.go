package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/fixture"
	"github.com/sessiongate/sessiongate/bench/internal/load"
	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/pgtest"
)

// testRedisAddr is the test Redis (TEST_REDIS_URL, default the local one),
// as host:port; an unreachable one fails the test, naming it.
func testRedisAddr(t *testing.T) string {
	t.Helper()
	raw := os.Getenv("TEST_REDIS_URL")
	if raw == "" {
		raw = "redis://127.0.0.1:6379"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("TEST_REDIS_URL %q is not a redis:// URL", raw)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		t.Fatalf("Redis not reachable at %s: %v (start it: `make test` does, or `redis-server --daemonize yes`; or set TEST_REDIS_URL)", u.Host, err)
	}
	c.Close()
	return u.Host
}

// TestFanoutNodeCluster runs the fanout mode against two Node baseline
// servers in CLUSTER=redis mode (socket.io with @socket.io/redis-adapter,
// the benchmark's cluster baseline) on the test Redis, with sockets of
// distinct users spread over both: every publish to all user rooms, sent
// to the first server, reaches every socket, and every single-user publish
// is delivered once.
func TestFanoutNodeCluster(t *testing.T) {
	nodetest.Require(t, "bench/node-baseline")
	redisAddr := testRedisAddr(t)
	_, dbURL := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const n, secret, key = 30, "fanout test secret", "k"
	if err := fixture.CreateTable(ctx, dbURL, "session"); err != nil {
		t.Fatal(err)
	}
	creds, err := fixture.Seed(ctx, dbURL, "session", fixture.Options{N: n, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "creds.tsv")
	f, err := os.Create(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := load.WriteCredentials(f, creds); err != nil {
		t.Fatal(err)
	}
	f.Close()
	nodeURL, err := fixture.NodeURL(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	clusterKey := "benchtest-" + hex.EncodeToString(b[:]) // no other test hears this cluster

	var urls []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		cmd := nodetest.Command(t, "bench/node-baseline", "server.js")
		cmd.Env = append(os.Environ(), "PORT="+port, "DATABASE_URL="+nodeURL, "SESSION_SECRETS="+secret,
			"PUBLISH_KEY="+key, "CLUSTER=redis", "REDIS_URL=redis://"+redisAddr, "CLUSTER_KEY="+clusterKey)
		cmd.Stderr = nil
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start the Node baseline: %v", err)
		}
		// It logs its listening line once its adapter's Redis clients are
		// connected and the port is bound.
		listening, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stderr)
			seen := false
			for sc.Scan() {
				t.Logf("node %s: %s", port, sc.Text())
				if !seen && strings.Contains(sc.Text(), "node-baseline listening on") {
					seen = true
					close(listening)
				}
			}
		}()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
			cmd.Wait()
		})
		select {
		case <-listening:
		case <-done:
			t.Fatalf("the Node baseline on port %s exited before listening", port)
		case <-ctx.Done():
			t.Fatalf("the Node baseline on port %s is not listening: %v", port, ctx.Err())
		}
		urls = append(urls, "http://"+addr)
	}

	var stdout, stderr bytes.Buffer
	args := []string{"-mode", "fanout", "-urls", strings.Join(urls, ","), "-n", "30", "-cookies", credsFile,
		"-publish-url", urls[0] + "/api/publish", "-publish-key", key, "-rounds", "2", "-settle", "0s",
		"-timeout", "20s", "-single", "1s", "-publishers", "2", "-redis", redisAddr, "-sources", "1"}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var r load.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if r.Connected != n || r.Servers != 2 || len(r.Rounds) != 2 || r.Missing != 0 {
		t.Fatalf("connected %d over %d servers, %d rounds, %d missing (%v); want %d over 2, 2, 0\n%s",
			r.Connected, r.Servers, len(r.Rounds), r.Missing, r.Errors, n, stderr.String())
	}
	for i, round := range r.Rounds {
		if round.Received != n || round.Last <= 0 {
			t.Errorf("round %d: %d received, last after %v ms; want all %d", i, round.Received, round.Last, n)
		}
	}
	if r.Published == 0 || r.PublishFailed != 0 || r.Delivered != r.Published || r.DeliveredRate <= 0 {
		t.Errorf("single-user: %d published, %d failed, %d delivered (%.0f/s); want every publish delivered once",
			r.Published, r.PublishFailed, r.Delivered, r.DeliveredRate)
	}
	if r.RedisOutputBytes <= 0 {
		t.Errorf("Redis output bytes %d, want > 0", r.RedisOutputBytes)
	}
}
