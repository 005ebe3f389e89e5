package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/fixture"
)

// server is one server under test, running as a child process.
type server struct {
	name string
	url  string // http://127.0.0.1:<port>
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited

	gcURL      string // GET before a memory sample; "" when the server has none
	publishURL string // POST /api/publish; "" for the echo servers
}

// Names of the servers under test, as they appear in the tables.
const (
	nameEcho        = "sessiongate engineio/socketio echo (no sessions)"
	nameWS          = "coder/websocket, goroutine per connection"
	nameNode        = "Node socket.io 4.8 baseline"
	nameSessiongate = "sessiongate serve"
)

// serverEnv is a minimal environment for a child: PATH and HOME, then kv.
func serverEnv(kv ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, kv...)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs the command in its own process group, logging its output with
// a prefix, and waits until addr accepts connections.
func start(ctx context.Context, name, addr string, cmd *exec.Cmd) (*server, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, url: "http://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		logLines("  ["+short(name)+"] ", out, 20)
		cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited before listening", name)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s is not listening on %s after 30s", name, addr)
		}
	}
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and, if the server is still running 10 seconds later,
// SIGKILL; it returns once the process has exited.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// logLines copies r to stderr line by line with a prefix, showing at most
// max lines (servers under load may log a lot).
func logLines(prefix string, r io.Reader, max int) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if n++; n <= max {
			fmt.Fprintln(os.Stderr, prefix+sc.Text())
		} else if n == max+1 {
			fmt.Fprintln(os.Stderr, prefix+"(further output not shown)")
		}
	}
}

func short(name string) string {
	switch name {
	case nameEcho:
		return "echo"
	case nameWS:
		return "wsbaseline"
	case nameNode:
		return "node"
	case nameSessiongate:
		return "sessiongate"
	}
	return name
}

func (e *env) startEcho(ctx context.Context) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "echoserver"), "-addr", addr)
	cmd.Env = serverEnv()
	s, err := start(ctx, nameEcho, addr, cmd)
	if err != nil {
		return nil, err
	}
	s.gcURL = s.url + "/debug/gc"
	return s, nil
}

func (e *env) startWS(ctx context.Context) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "wsbaseline"), "-addr", addr)
	cmd.Env = serverEnv()
	s, err := start(ctx, nameWS, addr, cmd)
	if err != nil {
		return nil, err
	}
	s.gcURL = s.url + "/debug/gc"
	return s, nil
}

// startNode starts the Node baseline on the session table of dbURL (a pgx
// URL with search_path), re-checking each socket's session every interval.
func (e *env) startNode(ctx context.Context, dbURL string, interval time.Duration) (*server, error) {
	return e.startNodeEnv(ctx, dbURL, interval)
}

// startNodeEnv is startNode with extra environment (the cluster mode's).
func (e *env) startNodeEnv(ctx context.Context, dbURL string, interval time.Duration, extra ...string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	nodeURL, err := fixture.NodeURL(dbURL)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "node", "--expose-gc", "server.js")
	cmd.Dir = filepath.Join(e.repo, "bench", "node-baseline")
	cmd.Env = serverEnv(
		"PORT="+port,
		"DATABASE_URL="+nodeURL,
		"SESSION_SECRETS="+e.secret,
		"SESSION_TABLE="+table,
		fmt.Sprintf("SESSION_CHECK_INTERVAL_MS=%d", interval.Milliseconds()),
		"PUBLISH_KEY="+e.publishKey,
	)
	cmd.Env = append(cmd.Env, extra...)
	s, err := start(ctx, nameNode, addr, cmd)
	if err != nil {
		return nil, err
	}
	s.gcURL = s.url + "/debug/gc"
	s.publishURL = s.url + "/api/publish"
	return s, nil
}

// startSessiongate migrates the schema of dbURL and starts `sessiongate
// serve` on it, checking live sessions every interval.
func (e *env) startSessiongate(ctx context.Context, dbURL string, interval time.Duration) (*server, error) {
	// The load comes from 4 addresses; per-IP limiting would refuse it.
	return e.startSessiongateEnv(ctx, dbURL, interval, "RATE_LIMIT=0")
}

// startSessiongateLimited is startSessiongate with the default limits in
// force, as a deployment has them.
func (e *env) startSessiongateLimited(ctx context.Context, dbURL string, interval time.Duration) (*server, error) {
	return e.startSessiongateEnv(ctx, dbURL, interval)
}

func (e *env) startSessiongateEnv(ctx context.Context, dbURL string, interval time.Duration, extra ...string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(e.bin, "sessiongate")
	env := serverEnv(
		"LISTEN_ADDR="+addr,
		"DATABASE_URL="+dbURL,
		"SESSION_SECRETS="+e.secret,
		"SESSION_TABLE="+table,
		"SESSION_CHECK_INTERVAL="+interval.String(),
		"PUBLISH_KEY="+e.publishKey,
		"AUTH_ENDPOINTS=false", // beside a Node app, which owns login and users
		"LOG_LEVEL=warn",
		"SHUTDOWN_TIMEOUT=5s",
		"DATA_DIR="+e.tmp,
	)
	env = append(env, extra...)
	migrate := exec.CommandContext(ctx, bin, "migrate")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sessiongate migrate: %w: %s", err, strings.TrimSpace(string(out)))
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = env
	s, err := start(ctx, nameSessiongate, addr, cmd)
	if err != nil {
		return nil, err
	}
	s.publishURL = s.url + "/api/publish"
	return s, nil
}

// httpGet fetches url and returns its body; for the servers' stats pages.
func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(url + ": " + resp.Status)
	}
	return string(b), nil
}
