// Command ratelimit measures how closely one user's EVENT_RATE_LIMIT holds
// across a cluster: it starts 1, 2, 3… gateway nodes in process on one
// Redis (package redis, a fresh CLUSTER_KEY each run), connects one socket
// of the same user to each, and has every socket send client events as
// fast as its acknowledgements allow for -d: the next event as soon as the
// ack comes, or retryAfterMs after a RATE_LIMITED one, as
// @sessiongate/client does. It prints, per node count, the events accepted
// per second in all against the limit, with the nodes sharing their spending
// (gateway.Config.ClusterLimits, what `sessiongate serve` does with
// CLUSTER) and, with -per-node, without (each node limiting alone).
//
//	go run ./bench/ratelimit -nodes 1,2,3 -d 10s -rate 20 [-burst 0] [-per-node] [-redis redis://127.0.0.1:6379] [-json]
//
// Only a loopback Redis is accepted; the sessions live in a temporary
// SQLite file.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/sqlite"
)

const secret = "bench ratelimit secret"

// Result is one run: nodes nodes, one socket each, for Seconds.
type Result struct {
	Nodes    int     `json:"nodes"`
	Shared   bool    `json:"shared"` // ClusterLimits on
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
	Burst    int     `json:"burst"`
	Accepted int     `json:"accepted"`
	Refused  int     `json:"refused"`
	// PerSecond is Accepted / Seconds; Steady the rate over the second
	// half of the run (the initial bursts spent and their debt paid back).
	PerSecond float64 `json:"per_second"`
	Steady    float64 `json:"steady_per_second"`
	// Messages are the limit messages the nodes sent in all.
	Messages     uint64 `json:"messages"`
	Disconnected int    `json:"disconnected"` // sockets sent away far over the limit
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "ratelimit:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ratelimit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodesFlag := fs.String("nodes", "1,2,3", "comma-separated node counts to run")
	dur := fs.Duration("d", 10*time.Second, "how long each run sends")
	rate := fs.Float64("rate", 20, "EVENT_RATE_LIMIT")
	burst := fs.Int("burst", 0, "EVENT_RATE_BURST (0: twice the rate)")
	perNode := fs.Bool("per-node", false, "also run each node count without ClusterLimits")
	redisURL := fs.String("redis", "redis://127.0.0.1:6379", "Redis (loopback only)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dur <= 0 || *dur > 5*time.Minute || *rate <= 0 {
		return errors.New("-d must be in (0, 5m] and -rate positive")
	}
	if err := loopback(*redisURL); err != nil {
		return err
	}
	var counts []int
	for _, f := range strings.Split(*nodesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 8 {
			return fmt.Errorf("-nodes: %q is not a count in 1..8", f)
		}
		counts = append(counts, n)
	}
	if *burst == 0 {
		*burst = max(1, int(2**rate+0.999999))
	}
	dir, err := os.MkdirTemp("", "sg-bench-ratelimit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "sessions.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}

	var results []Result
	for _, n := range counts {
		for _, shared := range []bool{true, false} {
			if !shared && (!*perNode || n == 1) {
				continue
			}
			fmt.Fprintf(stderr, "== %d node(s), shared=%v, %v\n", n, shared, *dur)
			r, err := measure(ctx, db, *redisURL, n, shared, *rate, *burst, *dur)
			if err != nil {
				return fmt.Errorf("%d nodes: %w", n, err)
			}
			results = append(results, r)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(stdout, "| nodes | shared | accepted/s | second half | limit | refused | limit messages |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(stdout, "| %d | %v | %.1f | %.1f | %g | %d | %d |\n", r.Nodes, r.Shared, r.PerSecond, r.Steady, r.Rate, r.Refused, r.Messages)
	}
	return nil
}

// loopback refuses a Redis that is not on this machine.
func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-redis: %s is not a loopback address", host)
	}
	return nil
}

// okForwarder answers every client event {"ok":true}: the application's
// events hook, at no cost.
type okForwarder struct{}

func (okForwarder) Forward(context.Context, gateway.EventRequest) (json.RawMessage, error) {
	return json.RawMessage(`{"ok":true}`), nil
}

// node is one gateway node of a run.
type node struct {
	gw   *gateway.Gateway
	io   *socketio.Server
	bus  *redis.Cluster
	http *httptest.Server
	stop context.CancelFunc
	done chan struct{}
}

func (n *node) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.http.CloseClientConnections()
	_ = n.gw.Shutdown(ctx, time.Second)
	n.stop()
	<-n.done
	n.http.Close()
	n.io.Close()
	n.bus.Close()
}

// measure runs n nodes and one socket of one user on each for d.
func measure(ctx context.Context, db *sqlite.DB, redisURL string, n int, shared bool, rate float64, burst int, d time.Duration) (Result, error) {
	res := Result{Nodes: n, Shared: shared, Rate: rate, Burst: burst}
	var b [6]byte
	rand.Read(b[:])
	key := "sgbench-ratelimit-" + hex.EncodeToString(b[:])
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []*node
	defer func() {
		for _, nd := range nodes {
			nd.close()
		}
	}()
	for range n {
		bus, err := redis.NewCluster(ctx, redis.Options{URL: redisURL, Key: key, Logger: quiet})
		if err != nil {
			return res, fmt.Errorf("redis: %w", err)
		}
		gw, err := gateway.New(gateway.Config{
			Sessions: db, Audit: db, Secrets: [][]byte{[]byte(secret)},
			Events: okForwarder{}, EventRate: rate, EventBurst: burst,
			ClusterLimits: shared, Logger: quiet, CheckInterval: time.Hour,
		})
		if err != nil {
			bus.Close()
			return res, err
		}
		srv := socketio.NewServer(socketio.Options{NewAdapter: bus.Adapter})
		gw.Attach(srv.Of("/"))
		mux := http.NewServeMux()
		mux.Handle("/socket.io/", srv)
		runCtx, stop := context.WithCancel(ctx)
		nd := &node{gw: gw, io: srv, bus: bus, http: httptest.NewServer(mux), stop: stop, done: make(chan struct{})}
		go func() { defer close(nd.done); _ = gw.Run(runCtx) }()
		nodes = append(nodes, nd)
		if err := srv.Of("/").Adapter().(*redis.Adapter).Ready(ctx); err != nil {
			return res, err
		}
	}

	data, expire := expresssession.CookieOptions{MaxAge: time.Hour}.NewSession("42", time.Now())
	sid := expresssession.NewSessionID()
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: data, Expire: expire}); err != nil {
		return res, err
	}
	cookie := "connect.sid=" + expresssession.CookieValue(sid, []byte(secret))
	var clients []*siotest.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, nd := range nodes {
		c, err := siotest.Dial(ctx, nd.http.URL, siotest.Options{Header: http.Header{"Cookie": {cookie}}})
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
		if _, err := c.Connected(ctx); err != nil {
			return res, fmt.Errorf("connect: %w", err)
		}
	}

	start := time.Now()
	end, steadyFrom := start.Add(d), start.Add(d/2)
	var mu sync.Mutex
	steady := 0
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			acc, ref, st, gone := send(ctx, c, end, steadyFrom)
			mu.Lock()
			res.Accepted += acc
			res.Refused += ref
			steady += st
			if gone {
				res.Disconnected++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(res.Accepted) / res.Seconds
	res.Steady = float64(steady) / (elapsed - d/2).Seconds()
	for _, nd := range nodes {
		res.Messages += nd.gw.Stats().ClusterLimitMessages[gateway.LimitOut]
	}
	return res, ctx.Err()
}

// send emits events on c until end, honouring RATE_LIMITED's retryAfterMs,
// and counts the accepted ones (those acknowledged from steadyFrom on
// apart), the refused ones, and whether the server sent c away.
func send(ctx context.Context, c *siotest.Client, end, steadyFrom time.Time) (accepted, refused, steady int, gone bool) {
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	for i := 0; ctx.Err() == nil; i++ {
		args, err := c.EmitWithAck(ctx, "ping", i)
		if err != nil && ctx.Err() != nil {
			return // the end of the run (an expired write closes a websocket)
		}
		if err != nil {
			var dis siotest.Disconnect
			dis, gone = c.Disconnected()
			if gone {
				fmt.Fprintf(os.Stderr, "socket sent away: %+v, after %d accepted and %d refused (%v)\n", dis, accepted, refused, err)
			}
			return
		}
		var reply struct {
			OK    bool `json:"ok"`
			Error *struct {
				Code         string `json:"code"`
				RetryAfterMs int64  `json:"retryAfterMs"`
			} `json:"error"`
		}
		if len(args) != 1 || json.Unmarshal(args[0], &reply) != nil {
			return
		}
		if reply.OK {
			accepted++
			if !time.Now().Before(steadyFrom) {
				steady++
			}
			continue
		}
		refused++
		if reply.Error == nil || reply.Error.Code != sessiongate.ECodeRateLimited {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(reply.Error.RetryAfterMs) * time.Millisecond):
		}
	}
	return
}
