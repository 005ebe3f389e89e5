package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

// This file is the cluster mode (-cluster redis): two server processes on
// one Redis, sharing one stream. Every client connects to node A; the
// ticks are published by A and B in turn, one round (a "tick" to every
// room) each, so every socket's events come from both nodes and reach it
// only in the stream's order; the cut half reconnect to node B.

// clusterWindow is the recovery window of both servers (Node's
// maxDisconnectionDuration in recovery-server.js is the same).
const clusterWindow = 2 * time.Minute

// clusterReport is what a cluster server prints on "stop".
type clusterReport struct {
	Connections int `json:"connections"` // sockets connected to this node
	Recovered   int `json:"recovered"`   // of them, recovered ones
	// Failed: the Go node's failed recoveries by reason (none is 0).
	Failed     map[string]uint64 `json:"failed,omitempty"`
	Replayed   uint64            `json:"replayed,omitempty"`    // Go: events replayed
	EmitErrors int               `json:"emit_errors,omitempty"` // Go: broadcasts the log refused
}

// clusterResult is the cluster part of a run's JSON line.
type clusterResult struct {
	Cluster string `json:"cluster"` // "redis"
	// ConnectionsOn and RecoveredOn are the connections each node
	// counted, and the recovered ones among them, by node ("A": the
	// first connections' node, "B": the cut half's).
	ConnectionsOn map[string]int `json:"connections_on"`
	RecoveredOn   map[string]int `json:"recovered_on"`
	// FailedOn: the Go nodes' failed recoveries by reason, when any.
	FailedOn map[string]map[string]uint64 `json:"failed_on,omitempty"`
	Replayed uint64                       `json:"replayed,omitempty"`
	// EmitErrors: Go broadcasts the shared log refused.
	EmitErrors int `json:"emit_errors,omitempty"`
	Rounds     int `json:"rounds"` // ticks sent to every socket (half by A, half by B)
	// RequestTimeout: the Go nodes' redis.Options.RequestTimeout when
	// -request-timeout set it (else its default, 5 s).
	RequestTimeout string `json:"request_timeout,omitempty"`
	// The Redis memory of the log when the ticks stop: MEMORY USAGE
	// (SAMPLES 0: every node of the stream counted) of the stream and of
	// every other key of the run's prefix (the saved sockets: Go's
	// records, one for each socket, Node's sessions until restored), and
	// used_memory of INFO memory less the same before the servers
	// started (the whole server's, so other clients of the same Redis
	// move it too).
	StreamBytes      int64   `json:"redis_stream_bytes"`
	SessionKeys      int     `json:"redis_session_keys"`
	SessionBytes     int64   `json:"redis_session_bytes"`
	UsedMemoryDelta  int64   `json:"redis_used_memory_delta"`
	RedisPerSocket   float64 `json:"log_redis_bytes_per_socket"` // (stream + sessions) / sockets
	BehindAtStop     int     `json:"behind_at_stop"`             // events sent but not received 1 s after the stop
	ReconnectWaitSec float64 `json:"reconnect_wait_s"`           // from the end of the cut to every cut socket reconnected
	// Anomalies: the clients' first gaps and duplicates (which socket,
	// which event, before or after the reconnection's CONNECT), and the
	// sockets left behind at the end (socket, events sent, last received).
	Anomalies []json.RawMessage `json:"anomalies,omitempty"`
	Behind    [][3]int          `json:"behind,omitempty"`
	// Missing: for the first 50 sockets that lost numbers below their
	// highest, the socket then those numbers.
	Missing [][]int `json:"missing,omitempty"`
}

// redisInfo is the run's view of Redis, for its measurements and cleanup.
type redisInfo struct {
	c      rueidis.Client
	prefix string // every key of the run starts with it
	stream string
}

func (r *redisInfo) usedMemory(ctx context.Context) (int64, error) {
	s, err := r.c.Do(ctx, r.c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO memory")
}

// keys lists the run's keys.
func (r *redisInfo) keys(ctx context.Context) ([]string, error) {
	var out []string
	var cursor uint64
	for {
		e, err := r.c.Do(ctx, r.c.B().Scan().Cursor(cursor).Match(r.prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return nil, err
		}
		out = append(out, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			return out, nil
		}
	}
}

func (r *redisInfo) memoryUsage(ctx context.Context, key string) (int64, error) {
	n, err := r.c.Do(ctx, r.c.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
	if rueidis.IsRedisNil(err) { // gone since the SCAN (restored, expired)
		return 0, nil
	}
	return n, err
}

// measure fills the Redis figures of res.
func (r *redisInfo) measure(ctx context.Context, res *clusterResult, usedBefore int64) error {
	keys, err := r.keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		n, err := r.memoryUsage(ctx, k)
		if err != nil {
			return err
		}
		if k == r.stream {
			res.StreamBytes = n
		} else if n > 0 {
			res.SessionKeys++
			res.SessionBytes += n
		}
	}
	used, err := r.usedMemory(ctx)
	res.UsedMemoryDelta = used - usedBefore
	return err
}

// clean deletes the run's keys.
func (r *redisInfo) clean(ctx context.Context) error {
	keys, err := r.keys(ctx)
	if err != nil {
		return err
	}
	for k := range slices.Chunk(keys, 500) {
		if err := r.c.Do(ctx, r.c.B().Del().Key(k...).Build()).Error(); err != nil {
			return err
		}
	}
	return nil
}

// runCluster is a run of -cluster redis.
func runCluster(ctx context.Context, server string, n int, repo, redisURL string, maxLen int, requestTimeout time.Duration) (*result, error) {
	began := time.Now()
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	opt.DisableCache = true
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("reaching Redis at %s (needed by -cluster redis): %w", redisURL, err)
	}
	defer rc.Close()
	prefix := "sgbench-recovery-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	rd := &redisInfo{c: rc, prefix: prefix, stream: prefix + "stream"}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rd.clean(cctx); err != nil {
			fmt.Fprintln(os.Stderr, "recovery: cleaning up Redis:", err)
		}
	}()
	usedBefore, err := rd.usedMemory(ctx)
	if err != nil {
		return nil, fmt.Errorf("reaching Redis at %s: %w", redisURL, err)
	}

	nodes := make([]*child, 2)
	addrs := make([]string, 2)
	for i := range nodes {
		name := string(rune('A' + i))
		switch server {
		case "go":
			self, e := os.Executable()
			if e != nil {
				return nil, e
			}
			nodes[i], err = startChild(ctx, repo, self, "-serve", "-n", strconv.Itoa(n), "-cluster", "redis",
				"-redis", redisURL, "-key", strings.TrimSuffix(prefix, ":"), "-stream", rd.stream, "-maxlen", strconv.Itoa(maxLen), "-node", name,
				"-request-timeout", requestTimeout.String())
		case "node":
			spec, _ := json.Marshal(map[string]any{"n": n, "cluster": map[string]any{
				"url": redisURL, "stream": rd.stream, "prefix": strings.TrimSuffix(prefix, ":"), "maxLen": maxLen}})
			nodes[i], err = startChild(ctx, filepath.Join(repo, "bench", "node-baseline"), "node", "recovery-server.js", string(spec))
		default:
			return nil, fmt.Errorf("unknown -server %q (go or node)", server)
		}
		if err != nil {
			return nil, err
		}
		defer nodes[i].stop()
		var hello struct{ Port int }
		if err := nodes[i].next(&hello, 30*time.Second); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		addrs[i] = "127.0.0.1:" + strconv.Itoa(hello.Port)
	}
	pxs, cl, stop, err := startClients(ctx, repo, addrs[0], n)
	if err != nil {
		return nil, err
	}
	defer stop()

	// The rounds: round r (1, 2, …) goes to node A when odd, B when even,
	// every 100 ms, each once the one before is in the stream (a round
	// late starts at once, the next one on the ticker).
	var rounds atomic.Int64
	halt := make(chan struct{})
	ticking := make(chan error, 1)
	started := time.Now()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for r := 1; ; r++ {
			node := nodes[(r-1)%2]
			if err := node.send("round " + strconv.Itoa(r)); err != nil {
				ticking <- err
				return
			}
			var done struct{ Done int }
			if err := node.next(&done, 2*time.Minute); err != nil || done.Done != r {
				ticking <- fmt.Errorf("round %d: %v (answered %d)", r, err, done.Done)
				return
			}
			rounds.Store(int64(r))
			select {
			case <-halt:
				ticking <- nil
				return
			case <-tick.C:
			}
		}
	}()
	cres := &clusterResult{Cluster: "redis", ConnectionsOn: map[string]int{}, RecoveredOn: map[string]int{}}
	if server == "go" && requestTimeout > 0 {
		cres.RequestTimeout = requestTimeout.String()
	}
	// The phases are the load's own timeline, as in the one-node run;
	// then the load goes on until every cut socket has reconnected (at
	// least 5 s, at most 60 s), so a slow recovery is measured, not
	// counted as lost.
	time.Sleep(2 * time.Second)
	pxs[0].Pause()
	pxs[0].Cut(true)
	pxs[0].Retarget(addrs[1])
	time.Sleep(2 * time.Second)
	pxs[0].Resume()
	resumed := time.Now()
	cut := (n + 1) / 2
	all := false
	for {
		if err := cl.send("status"); err != nil {
			return nil, err
		}
		var st struct{ Reconnected int }
		if err := cl.next(&st, 30*time.Second); err != nil {
			return nil, err
		}
		if st.Reconnected >= cut && !all {
			all, cres.ReconnectWaitSec = true, time.Since(resumed).Seconds()
		}
		if (all && time.Since(resumed) >= 5*time.Second) || time.Since(resumed) > time.Minute {
			break
		}
		time.Sleep(250 * time.Millisecond) // a poll of the clients' progress
	}
	close(halt)
	if err := <-ticking; err != nil {
		return nil, err
	}
	ticked := time.Since(started).Seconds()
	cres.Rounds = int(rounds.Load())
	if err := rd.measure(ctx, cres, usedBefore); err != nil {
		return nil, fmt.Errorf("measuring Redis: %w", err)
	}
	var rec, conns int
	for i, node := range nodes {
		name := string(rune('A' + i))
		if err := node.send("stop"); err != nil {
			return nil, err
		}
		var rep clusterReport
		if err := node.next(&rep, time.Minute); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		cres.ConnectionsOn[name], cres.RecoveredOn[name] = rep.Connections, rep.Recovered
		rec, conns = rec+rep.Recovered, conns+rep.Connections
		if len(rep.Failed) > 0 {
			if cres.FailedOn == nil {
				cres.FailedOn = map[string]map[string]uint64{}
			}
			cres.FailedOn[name] = rep.Failed
		}
		cres.Replayed += rep.Replayed
		cres.EmitErrors += rep.EmitErrors
	}
	time.Sleep(time.Second) // the last events in flight
	if err := cl.send("report"); err != nil {
		return nil, err
	}
	var got struct {
		Lost, Dup, OutOfOrder int
		Received              int
		Recovered, Fresh      int
		CatchUpMs             []float64
		Last                  []int
		Anomalies             []json.RawMessage
		Missing               [][]int
	}
	if err := cl.next(&got, time.Minute); err != nil {
		return nil, err
	}
	if len(got.Last) != n {
		return nil, errors.New("the client's report does not cover every socket")
	}
	for i, last := range got.Last {
		if d := cres.Rounds - last; d > 0 {
			cres.BehindAtStop += d
			if len(cres.Behind) < 50 {
				cres.Behind = append(cres.Behind, [3]int{i, cres.Rounds, last})
			}
		}
	}
	cres.Anomalies, cres.Missing = got.Anomalies, got.Missing
	cres.RedisPerSocket = float64(cres.StreamBytes+cres.SessionBytes) / float64(n)
	res := &result{
		Server: server, Sockets: n, Cut: cut,
		Lost: got.Lost + cres.BehindAtStop, Dup: got.Dup, OutOfOrder: got.OutOfOrder, Received: got.Received,
		Recovered: got.Recovered, Fresh: got.Fresh,
		RatePerSocket: float64(cres.Rounds) / ticked,
		Cluster:       cres,
	}
	if rec != got.Recovered || conns != n+got.Recovered+got.Fresh {
		fmt.Fprintf(os.Stderr, "recovery: the servers counted %d connections, %d recovered; the clients %d reconnections, %d recovered\n", conns, rec, got.Recovered+got.Fresh, got.Recovered)
	}
	if l, err := rc.Do(ctx, rc.B().Xlen().Key(rd.stream).Build()).AsInt64(); err == nil {
		res.LogEntries = int(l)
	}
	if c := got.CatchUpMs; len(c) > 0 {
		slices.Sort(c)
		res.CatchUpP50, res.CatchUpP99, res.CatchUpMax = c[len(c)/2], c[len(c)*99/100], c[len(c)-1]
	}
	res.Seconds = time.Since(began).Seconds()
	return res, nil
}

// runClusterServer is a Go node of -cluster redis: sessiongate's socketio
// with a redis.StreamLog as its shared recovery log, every socket in room
// "u<auth.n>". It prints {"port"} when listening; "round R" on stdin emits
// "tick" R to every room (appended to the stream before it answers
// {"done": R}); "stop" prints a clusterReport. It needs no cluster
// adapter: with a SharedLog, broadcasts go through the log, and nothing
// else crosses nodes here.
func runClusterServer(n int, url, key, stream string, maxLen int, requestTimeout time.Duration) error {
	ctx := context.Background()
	log, err := redis.NewStreamLog(ctx, redis.StreamLogOptions{
		Options:    redis.Options{URL: url, Key: key, RequestTimeout: requestTimeout},
		StreamName: stream,
		Window:     clusterWindow,
		MaxEntries: maxLen,
	})
	if err != nil {
		return fmt.Errorf("reaching Redis at %s: %w", url, err)
	}
	defer log.Close()
	if _, ok := any(log).(socketio.SharedLog); !ok {
		return errors.New("redis.StreamLog is not a socketio.SharedLog: the cluster run needs the streams-adapter StreamLog")
	}
	srv := socketio.NewServer(socketio.Options{Recovery: &socketio.RecoveryOptions{Log: log, Window: clusterWindow}})
	defer srv.Close()
	ns := srv.Of("/")
	var connections, recovered atomic.Int64
	ns.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		var auth struct{ N int }
		json.Unmarshal(ev.Socket.Handshake().Auth, &auth)
		connections.Add(1)
		if ev.Recovered != nil {
			recovered.Add(1)
		}
		return socketio.ConnectReply{Rooms: []string{"u" + strconv.Itoa(auth.N)}}, nil
	})
	stop, err := serveAndAnnounce(srv)
	if err != nil {
		return err
	}
	defer stop()
	out := json.NewEncoder(os.Stdout)

	// A round's appends go in parallel (rueidis pipelines them): one a
	// socket, so each socket's ticks stay in order across rounds.
	const workers = 32
	var emitErrors atomic.Int64
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "round":
			r, _ := strconv.Atoi(arg)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < n; i += workers {
						if err := ns.To("u"+strconv.Itoa(i)).Emit(ctx, "tick", r); err != nil {
							if emitErrors.Add(1) == 1 {
								fmt.Fprintln(os.Stderr, "recovery: emit:", err)
							}
						}
					}
				})
			}
			wg.Wait()
			out.Encode(map[string]int{"done": r})
		case "stop":
			st := srv.RecoveryStats()
			rep := clusterReport{Replayed: st.Replayed, EmitErrors: int(emitErrors.Load())}
			for reason, c := range st.Failed {
				if c > 0 {
					if rep.Failed == nil {
						rep.Failed = map[string]uint64{}
					}
					rep.Failed[string(reason)] = c
				}
			}
			rep.Connections, rep.Recovered = int(connections.Load()), int(recovered.Load())
			out.Encode(rep)
		}
	}
	return sc.Err()
}
