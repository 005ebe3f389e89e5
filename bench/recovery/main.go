// Command recovery runs one connection state recovery benchmark (issue 12):
// n official socket.io-clients (test/interop/recovery-load.mjs, recovery
// on), each receiving "tick" 1, 2, … ten times a second in a room of its
// own; after 2 s half of them (those behind the first of two TCP proxies)
// have their connections cut and are refused for 2 s, then reconnect; the
// load runs 5 s more. It prints one JSON object: events lost and
// duplicated, recoveries, the time from the reconnected transport's open
// to caught up, and the memory the recovery log holds per socket.
//
//	recovery -server go|node [-n 1000] [-repo .]
//
// The server is a process of its own: "go" is this program re-run with
// -serve (sessiongate's socketio package with a MemoryLog), "node" is
// bench/node-baseline/recovery-server.js (socket.io 4.8, in-memory
// recovery). Both run with their collector on request, so the heap they
// retain can be read before the ticks start and when they stop.
//
//	recovery -server go|node -cluster redis [-n 1000] [-redis redis://127.0.0.1:6379]
//
// With -cluster redis, two server processes share one Redis (cluster.go):
// "go" nodes with a redis.StreamLog as their shared recovery log, "node"
// ones on @socket.io/redis-streams-adapter; the clients connect to node A,
// the ticks are published by A and B in turn, the cut half reconnect to
// node B, and the log's memory is Redis' (the stream and the saved
// sockets).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/internal/tcpproxy"
	"github.com/sessiongate/sessiongate/socketio"
)

// result is the JSON line printed by a run.
type result struct {
	Server     string  `json:"server"`
	Sockets    int     `json:"sockets"`
	Cut        int     `json:"cut"`          // sockets whose connection was cut
	Lost       int     `json:"lost"`         // events never received (gaps, and sent but not received at the end)
	Dup        int     `json:"dup"`          // events received twice
	OutOfOrder int     `json:"out_of_order"` // events received (once) after a later one
	Received   int     `json:"received"`     // events received in all
	Recovered  int     `json:"recovered"`    // reconnections with socket.recovered
	Fresh      int     `json:"fresh"`        // reconnections without
	CatchUpP50 float64 `json:"catchup_p50_ms"`
	CatchUpP99 float64 `json:"catchup_p99_ms"`
	CatchUpMax float64 `json:"catchup_max_ms"`
	// LogBytesPerSocket is the log's own accounting (sessiongate's
	// MemoryLog.Stats().Bytes) divided by the sockets; 0 for Node.
	LogBytesPerSocket float64 `json:"log_bytes_per_socket,omitempty"`
	// LogHeapPerSocket is the heap the log's entries hold, per socket: the
	// live heap (after a collection) when the ticks stop, less the same
	// once the log has been emptied (sessiongate: its clock moved past the
	// window and the entries trimmed, plus the entry array trimming keeps
	// for reuse; Node: the adapter's packets array replaced by an empty
	// one).
	LogHeapPerSocket float64 `json:"log_heap_per_socket"`
	// HeapGrowthPerSocket is the live heap when the ticks stop less the
	// same before they start (the log, plus whatever else the cut and
	// the reconnections left), per socket.
	HeapGrowthPerSocket float64 `json:"heap_growth_per_socket"`
	LogEntries          int     `json:"log_entries"`     // entries (Go) or packets (Node) held at the stop
	RatePerSocket       float64 `json:"rate_per_socket"` // events sent per socket per second, as achieved
	Seconds             float64 `json:"seconds"`         // the whole run, connections included
	// Cluster holds the figures of -cluster redis (its heap fields are 0:
	// the log is in Redis).
	Cluster *clusterResult `json:"cluster,omitempty"`
}

// serverReport is what a server prints on "stop".
type serverReport struct {
	Sent       []int   `json:"sent"`
	Packets    int     `json:"packets"`
	HeapBefore float64 `json:"heapBefore"`
	HeapUsed   float64 `json:"heapUsed"`
	HeapEmpty  float64 `json:"heapEmpty"` // after the log was emptied
	LogBytes   float64 `json:"logBytes"`
}

func main() {
	var (
		server = flag.String("server", "go", "go (sessiongate's socketio) or node (socket.io 4.8)")
		n      = flag.Int("n", 1000, "sockets (at most 5000)")
		repo   = flag.String("repo", ".", "the repository root")
		serve  = flag.Bool("serve", false, "be the Go server (used by -server go)")
		limit  = flag.Duration("limit", 5*time.Minute, "abort the run after this long")

		cluster  = flag.String("cluster", "", `"redis": two server processes on one Redis`)
		redisURL = flag.String("redis", "redis://127.0.0.1:6379", "the Redis of -cluster redis (loopback)")
		maxLen   = flag.Int("maxlen", 1_200_000, "the stream's bound in entries (-cluster): the 2 min window at 10,000 events/s")
		key      = flag.String("key", "", "the key prefix of a -serve -cluster node")
		stream   = flag.String("stream", "", "the stream of a -serve -cluster node")
		node     = flag.String("node", "", "the name of a -serve -cluster node, for its messages")
		reqTO    = flag.Duration("request-timeout", 0, "the Go nodes' redis.Options.RequestTimeout (-cluster; 0: its default, 5 s)")
	)
	flag.Parse()
	if *n < 2 || *n > 5000 {
		fmt.Fprintln(os.Stderr, "recovery: -n must be 2–5000")
		os.Exit(2)
	}
	if *cluster != "" && *cluster != "redis" {
		fmt.Fprintln(os.Stderr, `recovery: -cluster must be "redis"`)
		os.Exit(2)
	}
	var err error
	switch {
	case *serve && *cluster != "":
		err = runClusterServer(*n, *redisURL, *key, *stream, *maxLen, *reqTO)
	case *serve:
		err = runServer(*n)
	default:
		ctx, cancel := context.WithTimeout(context.Background(), *limit)
		defer cancel()
		var res *result
		if *cluster != "" {
			res, err = runCluster(ctx, *server, *n, *repo, *redisURL, *maxLen, *reqTO)
		} else {
			res, err = run(ctx, *server, *n, *repo)
		}
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(res)
		}
	}
	if err != nil {
		if *node != "" {
			fmt.Fprintf(os.Stderr, "recovery: node %s: %v\n", *node, err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "recovery:", err)
		os.Exit(1)
	}
}

// child is a process speaking JSON lines on stdout and reading commands
// on stdin.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan []byte
}

// serveAndAnnounce serves srv at /socket.io/ on a free loopback port and
// prints {"port": N} on stdout, as the harness waits for; stop closes it.
func serveAndAnnounce(srv *socketio.Server) (stop func() error, err error) {
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := &http.Server{Handler: mux}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go hs.Serve(ln)
	json.NewEncoder(os.Stdout).Encode(map[string]int{"port": ln.Addr().(*net.TCPAddr).Port})
	return hs.Close, nil
}

// startClients starts two TCP proxies to target and n clients
// (recovery-load.mjs) through them, half through each, and waits until
// they are connected; stop ends them all.
func startClients(ctx context.Context, repo, target string, n int) (pxs [2]*tcpproxy.Proxy, cl *child, stop func(), err error) {
	stop = func() {
		if cl != nil {
			cl.stop()
		}
		for _, px := range pxs {
			if px != nil {
				px.Close()
			}
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	for i := range pxs {
		if pxs[i], err = tcpproxy.New(target); err != nil {
			return pxs, nil, stop, err
		}
	}
	spec, _ := json.Marshal(map[string]any{"urls": []string{"http://" + pxs[0].Addr(), "http://" + pxs[1].Addr()}, "n": n})
	if cl, err = startChild(ctx, filepath.Join(repo, "test", "interop"), "node", "recovery-load.mjs", string(spec)); err != nil {
		return pxs, nil, stop, err
	}
	var ready struct{ Event string }
	if err = cl.next(&ready, time.Minute); err != nil {
		return pxs, cl, stop, fmt.Errorf("connecting %d clients: %w", n, err)
	}
	return pxs, cl, stop, nil
}

func startChild(ctx context.Context, dir, name string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{cmd: cmd, in: in, lines: make(chan []byte, 16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20) // the load client's report lists every socket
		for sc.Scan() {
			c.lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	return c, nil
}

// next decodes the child's next line into v.
func (c *child) next(v any, timeout time.Duration) error {
	select {
	case l, ok := <-c.lines:
		if !ok {
			return fmt.Errorf("%s exited", filepath.Base(c.cmd.Path))
		}
		return json.Unmarshal(l, v)
	case <-time.After(timeout):
		return fmt.Errorf("%s: no line within %s", filepath.Base(c.cmd.Path), timeout)
	}
}

func (c *child) send(line string) error {
	_, err := io.WriteString(c.in, line+"\n")
	return err
}

func (c *child) stop() {
	c.cmd.Process.Kill()
	for range c.lines {
	}
	c.cmd.Wait()
}

func run(ctx context.Context, server string, n int, repo string) (*result, error) {
	began := time.Now()
	var srv *child
	var err error
	switch server {
	case "go":
		self, e := os.Executable()
		if e != nil {
			return nil, e
		}
		srv, err = startChild(ctx, repo, self, "-serve", "-n", strconv.Itoa(n))
	case "node":
		spec, _ := json.Marshal(map[string]int{"n": n})
		srv, err = startChild(ctx, filepath.Join(repo, "bench", "node-baseline"), "node", "--expose-gc", "recovery-server.js", string(spec))
	default:
		return nil, fmt.Errorf("unknown -server %q (go or node)", server)
	}
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	var hello struct{ Port int }
	if err := srv.next(&hello, 30*time.Second); err != nil {
		return nil, err
	}
	pxs, cl, stop, err := startClients(ctx, repo, "127.0.0.1:"+strconv.Itoa(hello.Port), n)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := srv.send("start"); err != nil {
		return nil, err
	}
	started := time.Now()
	// The phases are the load's own timeline (2 s of load, a 2 s cut, 5 s
	// to reconnect and catch up), not waits for an event.
	time.Sleep(2 * time.Second)
	pxs[0].Pause()
	pxs[0].Cut(true)
	time.Sleep(2 * time.Second)
	pxs[0].Resume()
	time.Sleep(5 * time.Second)
	if err := srv.send("stop"); err != nil {
		return nil, err
	}
	ticked := time.Since(started).Seconds()
	var rep serverReport
	if err := srv.next(&rep, time.Minute); err != nil {
		return nil, err
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
	}
	if err := cl.next(&got, time.Minute); err != nil {
		return nil, err
	}
	if len(got.Last) != n || len(rep.Sent) != n {
		return nil, errors.New("the client's or the server's report does not cover every socket")
	}
	behind, sent := 0, 0
	for i, last := range got.Last {
		behind += rep.Sent[i] - last
		sent += rep.Sent[i]
	}
	res := &result{
		Server: server, Sockets: n, Cut: (n + 1) / 2,
		Lost: got.Lost + behind, Dup: got.Dup, OutOfOrder: got.OutOfOrder, Received: got.Received,
		Recovered: got.Recovered, Fresh: got.Fresh,
		LogBytesPerSocket:   rep.LogBytes / float64(n),
		LogHeapPerSocket:    (rep.HeapUsed - rep.HeapEmpty) / float64(n),
		HeapGrowthPerSocket: (rep.HeapUsed - rep.HeapBefore) / float64(n),
		LogEntries:          rep.Packets,
		RatePerSocket:       float64(sent) / float64(n) / ticked,
	}
	if c := got.CatchUpMs; len(c) > 0 {
		slices.Sort(c)
		res.CatchUpP50, res.CatchUpP99, res.CatchUpMax = c[len(c)/2], c[len(c)*99/100], c[len(c)-1]
	}
	res.Seconds = time.Since(began).Seconds()
	return res, nil
}

// runServer is the Go server: the same protocol as recovery-server.js
// ({"port"} when listening; "start" and "stop" on stdin), every socket in
// room "u<auth.n>".
func runServer(n int) error {
	var skew atomic.Int64 // moves the log's clock past its window at the stop
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	const window = 2 * time.Minute // Node's maxDisconnectionDuration in recovery-server.js
	log := socketio.NewMemoryLog(socketio.MemoryLogOptions{Window: window, Now: now})
	srv := socketio.NewServer(socketio.Options{Recovery: &socketio.RecoveryOptions{Log: log}})
	defer srv.Close()
	ns := srv.Of("/")
	ns.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		var auth struct{ N int }
		json.Unmarshal(ev.Socket.Handshake().Auth, &auth)
		return socketio.ConnectReply{Rooms: []string{"u" + strconv.Itoa(auth.N)}}, nil
	})
	stop, err := serveAndAnnounce(srv)
	if err != nil {
		return err
	}
	defer stop()
	out := json.NewEncoder(os.Stdout)

	sent := make([]int, n)
	halt, done := make(chan struct{}), make(chan struct{})
	var before float64
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			before = heapAfterGC()
			go func() {
				defer close(done)
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-halt:
						return
					case <-tick.C:
					}
					for i := range n {
						sent[i]++
						ns.To("u"+strconv.Itoa(i)).Emit(context.Background(), "tick", sent[i])
					}
				}
			}()
		case "stop":
			close(halt)
			<-done
			st := log.Stats()
			used := heapAfterGC()
			array := entriesArray(log)
			skew.Add(int64(2 * window))
			log.Restore(context.Background(), socketio.RestoreRequest{Namespace: "/"}) // trims, then finds nothing
			if left := log.Stats().Entries; left != 0 {
				return fmt.Errorf("%d log entries left after the window", left)
			}
			out.Encode(serverReport{Sent: sent, Packets: st.Entries, HeapBefore: before, HeapUsed: used, HeapEmpty: heapAfterGC() - array, LogBytes: float64(st.Bytes)})
		}
	}
	return sc.Err()
}

// entriesArray returns the bytes of the MemoryLog's entry arrays, which
// trimming keeps for reuse: read by reflection (a benchmark's business, not
// an API), so that the heap freed by emptying the log can count them.
func entriesArray(log *socketio.MemoryLog) float64 {
	var total float64
	it := reflect.ValueOf(log).Elem().FieldByName("nsps").MapRange()
	for it.Next() {
		entries := it.Value().Elem().FieldByName("entries")
		total += float64(entries.Cap()) * float64(entries.Type().Elem().Size())
	}
	return total
}

// heapAfterGC is the live heap after a collection, in bytes.
func heapAfterGC() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}
