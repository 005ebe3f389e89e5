// Package cluster tests sessiongate nodes in one cluster with real peers:
// Redis, PostgreSQL, a Node socket.io 4.8 server on @socket.io/redis-adapter
// or @socket.io/postgres-adapter, @socket.io/redis-emitter and
// @socket.io/postgres-emitter, and the official socket.io-client, all pinned
// in this folder's package-lock.json.
//
// Every peer is a process printing one JSON line per thing that happens;
// the tests wait for those lines (stream.waitFor, bounded by a deadline),
// never for time to pass. Each test has its own CLUSTER_KEY (Redis channel
// prefix, PostgreSQL channel prefix) and its own PostgreSQL schema, so tests
// run in parallel without seeing each other's traffic. A missing peer fails
// the test, naming it; -short skips these tests.
package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
)

// dir is this folder, relative to the repository root (nodetest's unit).
const dir = "test/cluster"

// waitTimeout bounds every wait for a peer's line. It is generous (a
// passing test never waits it out): CI has two cores for several Node
// processes and sessiongate nodes, and a Node server under that load was
// seen to take more than 15 s to print its ready line.
const waitTimeout = 60 * time.Second

// randomKey returns a fresh CLUSTER_KEY: the channel prefix of one test's
// cluster, so parallel tests never share a channel.
func randomKey() string {
	var b [6]byte
	rand.Read(b[:])
	return "sgtest-" + hex.EncodeToString(b[:])
}

// line is one JSON line a peer printed, with the fields the tests read.
type line struct {
	Raw json.RawMessage `json:"-"`

	Type   string            `json:"type"`
	ID     json.RawMessage   `json:"id"` // a socket id (string) or a command id (number)
	OK     bool              `json:"ok"`
	Error  string            `json:"error"`
	Client string            `json:"client"`
	Event  string            `json:"event"`
	Args   []json.RawMessage `json:"args"`
	Ack    bool              `json:"ack"`
	Reason string            `json:"reason"`
	Port   int               `json:"port"`
}

func (l line) String() string { return string(l.Raw) }

// stream collects the JSON lines of one process's stdout.
type stream struct {
	name string

	mu     sync.Mutex
	lines  []line
	notify chan struct{} // closed and replaced at each new line or at EOF
	eof    bool
	bad    []string // lines that are not JSON
}

func newStream(name string) *stream { return &stream{name: name, notify: make(chan struct{})} }

// read appends the lines of r until EOF, then marks the stream ended.
func (s *stream) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		s.add(sc.Bytes())
	}
	s.end()
}

// add appends one line.
func (s *stream) add(b []byte) {
	raw := bytes.Clone(b)
	var l line
	err := json.Unmarshal(raw, &l)
	l.Raw = raw
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad = append(s.bad, string(raw))
	} else {
		s.lines = append(s.lines, l)
	}
	close(s.notify)
	s.notify = make(chan struct{})
}

// end marks the stream ended: waits fail at once from then on.
func (s *stream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eof = true
	close(s.notify)
	s.notify = make(chan struct{})
}

// waitFor returns the first line from index from on that match accepts,
// waiting for it until waitTimeout; the test fails, saying what it waited
// for, when none comes or the process has ended. It also returns the index
// after the line, to wait for what follows it.
func (s *stream) waitFor(t testing.TB, from int, what string, match func(line) bool) (line, int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i := from; i < len(s.lines); i++ {
			if match(s.lines[i]) {
				l := s.lines[i]
				s.mu.Unlock()
				return l, i + 1
			}
		}
		from = len(s.lines)
		eof, notify := s.eof, s.notify
		s.mu.Unlock()
		if eof {
			t.Fatalf("%s: ended without %s", s.name, what)
		}
		select {
		case <-notify:
		case <-deadline.C:
			t.Fatalf("%s: no %s within %s; it printed:\n%s", s.name, what, waitTimeout, s.dump())
		}
	}
}

// all returns the lines that match accepts, so far.
func (s *stream) all(match func(line) bool) []line {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []line
	for _, l := range s.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// len returns how many lines were printed so far.
func (s *stream) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

func (s *stream) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.lines {
		b.Write(l.Raw)
		b.WriteByte('\n')
	}
	for _, l := range s.bad {
		b.WriteString("(not JSON) " + l + "\n")
	}
	return b.String()
}

// proc is a peer process: its stdin, its stdout as a stream, its stderr in
// the test log. It is ended when the test ends: stdin closed, then SIGTERM,
// then SIGKILL.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *stream
	done  chan struct{} // closed when the process has exited

	mu sync.Mutex // serializes writes to stdin
}

// startProc starts cmd, whose stdout must print JSON lines.
func startProc(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: newStream(name), done: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = logWriter{t, name}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.out.read(stdout)
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process (idempotent): stdin closed, SIGTERM after a
// moment, SIGKILL after 5 s.
func (p *proc) stop() {
	p.stdin.Close()
	select {
	case <-p.done:
		return
	case <-time.After(2 * time.Second):
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// send writes v as one JSON line to the process's stdin.
func (p *proc) send(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: write command: %v", p.out.name, err)
	}
}

// controlled is a process driven by numbered commands (node-server.mjs,
// emitter.mjs).
type controlled struct {
	*proc
	mu   sync.Mutex
	next int
}

// call sends cmd with a fresh "id" and returns the reply with that id,
// failing the test if the reply is not ok.
func (c *controlled) call(t testing.TB, cmd map[string]any) line {
	t.Helper()
	l := c.try(t, cmd)
	if !l.OK {
		t.Fatalf("%s: %v: %s", c.out.name, cmd, l.Error)
	}
	return l
}

// try is call that returns a reply that is not ok too.
func (c *controlled) try(t testing.TB, cmd map[string]any) line {
	t.Helper()
	c.mu.Lock()
	c.next++
	id := c.next
	c.mu.Unlock()
	msg := map[string]any{"id": id}
	for k, v := range cmd {
		msg[k] = v
	}
	want := []byte(fmt.Sprint(id))
	c.send(t, msg)
	l, _ := c.out.waitFor(t, 0, fmt.Sprintf("reply to %v", cmd), func(l line) bool { return bytes.Equal(l.ID, want) })
	return l
}

// nodeEnv is the environment of a Node peer of a cluster.
type nodeEnv struct {
	Cluster  string // redis, postgres or redis-streams
	Key      string // CLUSTER_KEY (redis-streams: its channelPrefix)
	RedisURL string
	PGURL    string // libpq-style URL for node-postgres, no search_path
	PGSchema string
	Stream   string // STREAM_NAME of redis-streams
}

func (e nodeEnv) env() []string {
	return append(os.Environ(),
		"CLUSTER="+e.Cluster, "CLUSTER_KEY="+e.Key, "REDIS_URL="+e.RedisURL,
		"DATABASE_URL="+e.PGURL, "PG_SCHEMA="+e.PGSchema, "STREAM_NAME="+e.Stream)
}

// nodeServer is a running node-server.mjs.
type nodeServer struct {
	*controlled
	URL string
	UID string // its adapter's uid for "/"
}

// startNodeServer starts node-server.mjs in e's cluster and waits until it
// listens and has subscribed.
func startNodeServer(t testing.TB, e nodeEnv) *nodeServer {
	t.Helper()
	cmd := nodetest.Command(t, dir, "node-server.mjs")
	cmd.Env = append(e.env(), "PORT=0", "REQUESTS_TIMEOUT_MS=5000")
	p := startProc(t, "node-server", cmd)
	ready, _ := p.out.waitFor(t, 0, "ready line", func(l line) bool { return l.Type == "ready" })
	var r struct{ UID string }
	json.Unmarshal(ready.Raw, &r)
	return &nodeServer{controlled: &controlled{proc: p}, URL: fmt.Sprintf("http://127.0.0.1:%d", ready.Port), UID: r.UID}
}

// emitter is a running emitter.mjs.
type emitter struct{ *controlled }

func startEmitter(t testing.TB, e nodeEnv) *emitter {
	t.Helper()
	cmd := nodetest.Command(t, dir, "emitter.mjs")
	cmd.Env = e.env()
	p := startProc(t, "emitter", cmd)
	p.out.waitFor(t, 0, "ready line", func(l line) bool { return l.Type == "ready" })
	return &emitter{&controlled{proc: p}}
}

// clientSpec is one socket of client.mjs.
type clientSpec struct {
	Name       string   `json:"name"`
	URL        string   `json:"url"`
	Nsp        string   `json:"nsp,omitempty"`
	Cookie     string   `json:"cookie,omitempty"`
	Auth       any      `json:"auth,omitempty"`
	Transports []string `json:"transports,omitempty"`
}

// clients is a running client.mjs.
type clients struct{ *proc }

// startClients starts the sockets of specs; wait for their connections
// with connected.
func startClients(t testing.TB, specs ...clientSpec) *clients {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"clients": specs})
	cmd := nodetest.Command(t, dir, "client.mjs", string(b))
	return &clients{startProc(t, "clients", cmd)}
}

// connected waits for the connect line of each named client and returns
// their socket ids, by name.
func (c *clients) connected(t testing.TB, names ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, n := range names {
		l, _ := c.out.waitFor(t, 0, "connect of "+n, func(l line) bool {
			if l.Client == n && (l.Type == "connect_error" || l.Type == "disconnect") {
				t.Fatalf("client %s: %s", n, l)
			}
			return l.Client == n && l.Type == "connect"
		})
		var id string
		json.Unmarshal(l.ID, &id)
		ids[n] = id
	}
	return ids
}

// event waits for the client's event named ev and returns it.
func (c *clients) event(t testing.TB, client, ev string) line {
	t.Helper()
	l, _ := c.out.waitFor(t, 0, fmt.Sprintf("event %q at client %s", ev, client), func(l line) bool {
		return l.Client == client && l.Type == "event" && l.Event == ev
	})
	return l
}

// events returns the client's events named ev received so far.
func (c *clients) events(client, ev string) []line {
	return c.out.all(func(l line) bool { return l.Client == client && l.Type == "event" && l.Event == ev })
}

// disconnected waits for the client's disconnect and returns its reason.
func (c *clients) disconnected(t testing.TB, client string) string {
	t.Helper()
	l, _ := c.out.waitFor(t, 0, "disconnect of "+client, func(l line) bool { return l.Client == client && l.Type == "disconnect" })
	return l.Reason
}

// logWriter sends a process's output to the test log, line by line.
type logWriter struct {
	t      testing.TB
	prefix string
}

func (w logWriter) Write(p []byte) (int, error) {
	for l := range strings.Lines(string(p)) {
		w.t.Logf("%s: %s", w.prefix, strings.TrimRight(l, "\n"))
	}
	return len(p), nil
}

// jsonEq reports whether raw holds the same JSON value as want.
func jsonEq(raw json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// argsEq reports whether args are the JSON values wants.
func argsEq(args []json.RawMessage, wants ...string) bool {
	if len(args) != len(wants) {
		return false
	}
	for i := range args {
		if !jsonEq(args[i], wants[i]) {
			return false
		}
	}
	return true
}
