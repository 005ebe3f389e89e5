package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/postgres"
)

// Redis ------------------------------------------------------------------

// redisURL returns the test Redis, TEST_REDIS_URL or redis://127.0.0.1:6379.
func redisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

// redisConn is a minimal RESP2 client: what the tests ask of Redis (CLIENT
// LIST, CLIENT KILL, PUBSUB NUMSUB) needs no client library.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

// requireRedis connects to the test Redis, failing the test (naming it)
// when it does not answer PING. It is closed when the test ends.
func requireRedis(t testing.TB) *redisConn {
	t.Helper()
	nodetest.SkipShort(t, "Redis")
	u, err := url.Parse(redisURL())
	if err != nil {
		t.Fatalf("TEST_REDIS_URL %q: %v", redisURL(), err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("Redis not reachable at %s: %v (start it: `make test` does, or `redis-server --daemonize yes`; or set TEST_REDIS_URL)", u.Host, err)
	}
	rc := &redisConn{c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	if pw, ok := u.User.Password(); ok {
		if _, err := rc.do("AUTH", u.User.Username(), pw); err != nil {
			t.Fatalf("Redis at %s: AUTH: %v", u.Host, err)
		}
	}
	if r, err := rc.do("PING"); err != nil || r != "PONG" {
		t.Fatalf("Redis at %s does not answer PING: %v %v", u.Host, r, err)
	}
	return rc
}

// do sends one command and returns its reply: string, int64, []any, nil,
// or an error for a Redis error reply.
func (rc *redisConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	rc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		return nil, err
	}
	return rc.reply()
}

func (rc *redisConn) reply() (any, error) {
	l, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	l = strings.TrimSuffix(l, "\r\n")
	if l == "" {
		return nil, errors.New("redis: empty reply line")
	}
	switch l[0] {
	case '+':
		return l[1:], nil
	case '-':
		return nil, errors.New("redis: " + l[1:])
	case ':':
		return strconv.ParseInt(l[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(l[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(l[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = rc.reply(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", l)
}

// deleteKeys deletes what a test cluster under CLUSTER_KEY key left in
// Redis: its recovery stream (named key by default) and its saved sockets
// (key:recovery:session:…).
func (rc *redisConn) deleteKeys(t testing.TB, key string) {
	t.Helper()
	keys := []string{key}
	for cursor := "0"; ; {
		r, err := rc.do("SCAN", cursor, "MATCH", key+":*", "COUNT", "1000")
		page, _ := r.([]any)
		if err != nil || len(page) != 2 {
			t.Errorf("redis SCAN %s:*: %v %v", key, r, err)
			return
		}
		cursor, _ = page[0].(string)
		names, _ := page[1].([]any)
		for _, n := range names {
			keys = append(keys, n.(string))
		}
		if cursor == "0" {
			break
		}
	}
	if _, err := rc.do(append([]string{"DEL"}, keys...)...); err != nil {
		t.Errorf("redis DEL %v: %v", keys, err)
	}
}

// must is do that fails the test on an error.
func (rc *redisConn) must(t testing.TB, args ...string) any {
	t.Helper()
	r, err := rc.do(args...)
	if err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return r
}

// numsub returns PUBSUB NUMSUB of channel: how many connections subscribe
// to it (what @socket.io/redis-adapter counts as the cluster's nodes).
func (rc *redisConn) numsub(t testing.TB, channel string) int64 {
	t.Helper()
	r, _ := rc.must(t, "PUBSUB", "NUMSUB", channel).([]any)
	if len(r) != 2 {
		t.Fatalf("PUBSUB NUMSUB %s: %v", channel, r)
	}
	n, _ := r[1].(int64)
	return n
}

// waitSubscribers waits until channel has n subscribers (PUBSUB NUMSUB).
//
// sessiongate subscribes per room: a node learns from a socketsJoin request
// (the emitter's, or another node's) that one of its sockets joins a room
// it did not hold, and subscribes to the room's channel then. An emit to
// the room published before that SUBSCRIBE is done misses that node
// (Node's adapter PSUBSCRIBEs every room and cannot miss it). Only Redis
// can tell when the SUBSCRIBE is done; the tests wait for it there.
func (rc *redisConn) waitSubscribers(t testing.TB, channel string, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := rc.numsub(t, channel)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PUBSUB NUMSUB %s = %d after %s, want %d", channel, got, waitTimeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redisClient is one line of CLIENT LIST.
type redisClient map[string]string

// clients returns CLIENT LIST.
func (rc *redisConn) clients(t testing.TB) []redisClient {
	t.Helper()
	s, _ := rc.must(t, "CLIENT", "LIST").(string)
	var out []redisClient
	for l := range strings.Lines(s) {
		c := redisClient{}
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			c[k] = v
		}
		out = append(out, c)
	}
	return out
}

// redisClientsOf returns the CLIENT LIST entries of node n's connections,
// found by their addresses (every node names its connections alike).
func redisClientsOf(t testing.TB, rc *redisConn, n *sgNode) []redisClient {
	t.Helper()
	u, err := url.Parse(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = 6379
	}
	mine := map[string]bool{}
	for _, a := range tcpPeersOf(t, n.cmd.Process.Pid, port) {
		mine[a] = true
	}
	var out []redisClient
	for _, c := range rc.clients(t) {
		if mine[c["addr"]] {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s (pid %d) has no connection in Redis's CLIENT LIST (its sockets to port %d: %v)", n.Name, n.cmd.Process.Pid, port, mine)
	}
	return out
}

// tcpPeersOf returns the local addresses ("ip:port") of pid's TCP
// connections to port, read from /proc: how a test finds a process's
// Redis connections in CLIENT LIST whatever the client names them.
func tcpPeersOf(t testing.TB, pid int, port int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("read the sockets of process %d: %v", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for l := range strings.Lines(string(b)) {
			f := strings.Fields(l)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			local, remote := hexAddr(f[1]), hexAddr(f[2])
			if _, rp, _ := net.SplitHostPort(remote); rp == strconv.Itoa(port) {
				out = append(out, local)
			}
		}
	}
	return out
}

// hexAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080"
// (IPv4, or IPv4-mapped IPv6, as the loopback tests use).
func hexAddr(s string) string {
	h, p, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(p, 16, 16)
	if len(h) == 32 { // IPv6: take the mapped IPv4 in the last word
		h = h[24:]
	}
	ip, _ := strconv.ParseUint(h, 16, 32)
	// The kernel prints the address as a little-endian word.
	return fmt.Sprintf("%d.%d.%d.%d:%d", byte(ip), byte(ip>>8), byte(ip>>16), byte(ip>>24), port)
}

// PostgreSQL -------------------------------------------------------------

// sessionDB is a migrated session store in a schema of the test's own.
type sessionDB struct {
	*postgres.DB
	URL    string // with search_path, for sessiongate (pgx)
	Schema string
}

func openSessionDB(t testing.TB) *sessionDB {
	t.Helper()
	nodetest.SkipShort(t, "PostgreSQL")
	schema, u := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return &sessionDB{DB: db, URL: u, Schema: schema}
}

// secret is SESSION_SECRETS of the test nodes.
const secret = "cluster test secret"

// session is a user's express-session row and the Cookie header a browser
// sends for it.
type session struct {
	SID, Cookie, UserID, Room, Short string
}

// newSession saves a logged-in session (passport.user = userID) and
// returns it.
func (db *sessionDB) newSession(t testing.TB, userID int) session {
	t.Helper()
	sid := expresssession.NewSessionID()
	expire := time.Now().Add(time.Hour).UTC()
	data := fmt.Appendf(nil, `{"cookie":{"originalMaxAge":3600000,"expires":%q,"secure":false,"httpOnly":true,"path":"/"},"passport":{"user":%d},"secretNote":"never on the bus"}`,
		expresssession.ISOString(expire), userID)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: data, Expire: expire}); err != nil {
		t.Fatal(err)
	}
	return session{
		SID:    sid,
		Cookie: "connect.sid=" + expresssession.CookieValue(sid, []byte(secret)),
		UserID: strconv.Itoa(userID),
		Room:   "user:" + strconv.Itoa(userID),
		Short:  sessiongate.ShortHash(sid),
	}
}

// sessiongate nodes ------------------------------------------------------

// binDir holds the built binary; TestMain removes it.
var binDir string

// binary builds ./cmd/sessiongate once per test binary (with -race under
// -race) and returns its path.
var binary = sync.OnceValues(func() (string, error) {
	d, err := os.MkdirTemp("", "sessiongate-cluster-bin-")
	if err != nil {
		return "", err
	}
	binDir = d
	out := filepath.Join(d, "sessiongate")
	args := []string{"build", "-o", out}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/sessiongate")...)
	cmd.Dir = nodetest.Root()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s ./cmd/sessiongate: %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// publishKey is PUBLISH_KEY of the test nodes.
const publishKey = "cluster publish key"

// sgNode is a running sessiongate node.
type sgNode struct {
	Name string
	URL  string
	cmd  *exec.Cmd
	log  *stream // its JSON log
	done chan struct{}
}

// clusterEnv is what the nodes of one test cluster share.
type clusterEnv struct {
	Cluster  string // redis or postgres
	Key      string
	RedisURL string
	DB       *sessionDB
	Extra    map[string]string
}

// startNode starts a sessiongate node of the cluster on a free port and
// waits until /readyz answers 200.
func startNode(t testing.TB, name string, c clusterEnv) *sgNode {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LISTEN_ADDR":      "127.0.0.1:0",
		"DATABASE_URL":     c.DB.URL,
		"SESSION_SECRETS":  secret,
		"AUTH_ENDPOINTS":   "false",
		"PUBLISH_KEY":      publishKey,
		"CLUSTER":          c.Cluster,
		"CLUSTER_KEY":      c.Key,
		"DATA_DIR":         t.TempDir(),
		"LOG_FORMAT":       "json",
		"LOG_LEVEL":        "debug",
		"RATE_LIMIT":       "0",
		"SHUTDOWN_TIMEOUT": "5s",
	}
	if c.Cluster == "redis" {
		env["REDIS_URL"] = c.RedisURL
	}
	for k, v := range c.Extra {
		env[k] = v
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	n := &sgNode{Name: name, cmd: cmd, log: newStream(name), done: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logWriter{t, name + " stdout"}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	// The log goes to the test log too, and is checked for data races.
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			t.Logf("%s: %s", name, l)
			if strings.Contains(l, "WARNING: DATA RACE") {
				t.Errorf("%s: data race (see its log)", name)
			}
			n.log.add(sc.Bytes())
		}
		n.log.end()
		cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() { n.stop(t) })

	l, _ := n.log.waitFor(t, 0, "listening log line", func(l line) bool {
		var r struct{ Msg, Addr string }
		json.Unmarshal(l.Raw, &r)
		return r.Msg == "listening" && r.Addr != ""
	})
	var r struct{ Addr string }
	json.Unmarshal(l.Raw, &r)
	n.URL = "http://" + r.Addr
	n.waitReady(t)
	return n
}

// stop sends SIGTERM and waits for the node to exit (SIGKILL after 10 s).
func (n *sgNode) stop(t testing.TB) {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		t.Errorf("%s did not exit within 10 s of SIGTERM", n.Name)
	}
}

// waitReady polls /readyz until it answers 200 (there is no event to wait
// for from outside the process).
func (n *sgNode) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var last string
	for {
		res, err := http.Get(n.URL + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz did not answer 200 within %s: %s", n.URL, waitTimeout, last)
		}
		select {
		case <-n.done:
			t.Fatalf("%s exited before it was ready", n.Name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// post sends a JSON body with the publish key and returns the status and
// body.
func (n *sgNode) post(t testing.TB, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", n.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+publishKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s%s: %v", n.URL, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// publish POSTs /api/publish and fails the test unless it is a 200; a nil
// data is left out (the event then has no argument).
func (n *sgNode) publish(t testing.TB, rooms []string, event string, data any) {
	t.Helper()
	body := map[string]any{"to": rooms, "event": event}
	if data != nil {
		body["data"] = data
	}
	b, _ := json.Marshal(body)
	if code, body := n.post(t, "/api/publish", string(b)); code != 200 {
		t.Fatalf("%s: POST /api/publish %s = %d %s", n.Name, b, code, body)
	}
}

func TestHexAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:18EB":                         "127.0.0.1:6379",
		"0000000000000000FFFF00000100007F:D431": "127.0.0.1:54321",
	} {
		if got := hexAddr(in); got != want {
			t.Errorf("hexAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// spyRedis records every message published on the cluster's channels
// (PSUBSCRIBE <key>*, which PUBSUB NUMSUB does not count, so the peers'
// node counts are unchanged) and, if the test fails, logs them: channel and
// payload in hex (and as text when it is JSON), the bytes to compare with
// socketio-cluster.md.
// onBus readies c's bus (c.Cluster, redis or postgres) for a test: Redis
// required and its URL set, and a spy on the wire of either that dumps it
// on failure.
func (c *clusterEnv) onBus(t *testing.T) {
	t.Helper()
	if c.Cluster == "redis" {
		rc := requireRedis(t)
		c.RedisURL = redisURL()
		t.Cleanup(func() { rc.deleteKeys(t, c.Key) }) // after the nodes stopped
		spyRedis(t, c.Key)
		return
	}
	spyPostgres(t, c.Key)
}

func spyRedis(t *testing.T, key string) {
	t.Helper()
	rc := requireRedis(t)
	if _, err := rc.do("PSUBSCRIBE", key+"*"); err != nil {
		t.Fatalf("spy: PSUBSCRIBE: %v", err)
	}
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			rc.c.SetDeadline(time.Time{})
			r, err := rc.reply()
			if err != nil {
				return
			}
			m, _ := r.([]any)
			if len(m) != 4 || m[0] != "pmessage" {
				continue
			}
			ch, _ := m[2].(string)
			payload, _ := m[3].(string)
			s := fmt.Sprintf("%s %x", ch, payload)
			if strings.HasPrefix(payload, "{") {
				s = fmt.Sprintf("%s %s", ch, payload)
			}
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		rc.c.Close()
		<-done
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("redis spy: %d messages on %s*:\n%s", len(seen), key, strings.Join(seen, "\n"))
		}
	})
}

// spyPostgres is spyRedis for CLUSTER=postgres: it LISTENs on the
// namespace "/" channel of key and logs the notifications if the test
// fails.
func spyPostgres(t *testing.T, key string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, pgtest.BaseURL())
	if err != nil {
		cancel()
		t.Fatalf("spy: PostgreSQL not reachable at %s: %v", pgtest.BaseURL(), err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{key + "#/"}.Sanitize()); err != nil {
		cancel()
		t.Fatalf("spy: LISTEN: %v", err)
	}
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, n.Channel+" "+n.Payload)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("postgres spy: %d notifications on %s#/:\n%s", len(seen), key, strings.Join(seen, "\n"))
		}
	})
}
