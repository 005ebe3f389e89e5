package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
)

// serveMain runs `serve` on 127.0.0.1:0 with env added to validEnv, after
// adding alice with `users add`, and returns it with its base URL and its
// log (read it only after Close).
func serveMain(t *testing.T, env map[string]string) (*Main, string, *bytes.Buffer) {
	t.Helper()
	all := validEnv(t)
	for k, v := range env {
		all[k] = v
	}
	add, stdout, stderr := testMain(all)
	add.Stdin = strings.NewReader("alice password\n")
	if code := run(testCtx(t), add, []string{"users", "add", "--email", "alice@example.com"}); code != 0 {
		t.Fatalf("users add = %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout.String(), "added user ") {
		t.Fatalf("users add printed %q", stdout)
	}

	m, log, base := startMain(t, all)
	return m, base, log
}

// startMain runs `serve` with env added to validEnv and returns it, its log
// (read it only after Close) and its base URL.
func startMain(t *testing.T, env map[string]string) (*Main, *bytes.Buffer, string) {
	t.Helper()
	all := validEnv(t)
	for k, v := range env {
		all[k] = v
	}
	m, _, log := testMain(all)
	if err := m.ParseFlags(testCtx(t), nil); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(testCtx(t)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, log, "http://" + m.Addr()
}

// post sends a JSON body and returns the response with its body read.
func post(t *testing.T, url, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// login logs alice in and returns the Cookie header a browser would send
// and her room.
func login(t *testing.T, base string) (cookie, room string) {
	t.Helper()
	res, body := post(t, base+"/auth/login", `{"email":"alice@example.com","password":"alice password"}`, nil)
	if res.StatusCode != 200 {
		t.Fatalf("login = %d %s", res.StatusCode, body)
	}
	var u struct {
		User struct{ ID int64 } `json:"user"`
	}
	if err := json.Unmarshal([]byte(body), &u); err != nil || u.User.ID == 0 {
		t.Fatalf("login body %q: %v", body, err)
	}
	nameValue, _, _ := strings.Cut(res.Header.Get("Set-Cookie"), ";")
	return nameValue, "user:" + strconv.FormatInt(u.User.ID, 10)
}

// clientLine is one line printed by test/interop/cmd-session.mjs.
type clientLine struct {
	Type    string            `json:"type"`
	Event   string            `json:"event"`
	Args    []json.RawMessage `json:"args"`
	Reason  string            `json:"reason"`
	Message string            `json:"message"`
	Data    json.RawMessage   `json:"data"`
}

// nodeClient is a socket.io-client socket run by node.
type nodeClient struct {
	lines chan clientLine
	cmd   *exec.Cmd
}

func startClient(t *testing.T, base, cookie, transports string) *nodeClient {
	t.Helper()
	cmd := nodetest.Command(t, "test/interop", "cmd-session.mjs", base, cookie, transports)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	c := &nodeClient{lines: make(chan clientLine, 16), cmd: cmd}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l clientLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("client printed %q", sc.Text())
				continue
			}
			c.lines <- l
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// next returns the client's next line, failing the test after a deadline.
func (c *nodeClient) next(t *testing.T) clientLine {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("the client exited")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no word from the client in 10 s")
	}
	return clientLine{}
}

// expectEvent reads the next line and checks it is event with the JSON
// argument want.
func (c *nodeClient) expectEvent(t *testing.T, event, want string) {
	t.Helper()
	l := c.next(t)
	if l.Type != "event" || l.Event != event || len(l.Args) != 1 || string(l.Args[0]) != want {
		t.Fatalf("client got %+v, want event %s %s", l, event, want)
	}
}

func (c *nodeClient) expectDisconnect(t *testing.T, reason string) {
	t.Helper()
	if l := c.next(t); l.Type != "disconnect" || l.Reason != reason {
		t.Fatalf("client got %+v, want disconnect %q", l, reason)
	}
}

func TestServeEndToEnd(t *testing.T) {
	for _, transports := range []string{"polling,websocket", "websocket", "polling"} {
		t.Run(transports, func(t *testing.T) {
			t.Parallel()
			m, base, _ := serveMain(t, map[string]string{"PUBLISH_KEY": "pk"})
			cookie, room := login(t, base)
			c := startClient(t, base, cookie, transports)
			if l := c.next(t); l.Type != "connect" {
				t.Fatalf("client got %+v, want connect", l)
			}

			auth := http.Header{"Authorization": {"Bearer pk"}}
			res, body := post(t, base+"/api/publish", `{"to":["`+room+`"],"event":"incident:created","data":{"id":"i1","severity":"high"}}`, auth)
			if res.StatusCode != 200 {
				t.Fatalf("publish = %d %s", res.StatusCode, body)
			}
			c.expectEvent(t, "incident:created", `{"id":"i1","severity":"high"}`)

			res, body = post(t, base+"/auth/logout", "", http.Header{"Cookie": {cookie}})
			if res.StatusCode != 200 {
				t.Fatalf("logout = %d %s", res.StatusCode, body)
			}
			c.expectEvent(t, "session_expired", `{"reason":"logged_out"}`)
			c.expectDisconnect(t, "io server disconnect")

			// The session is gone: a new connection with it is refused.
			c2 := startClient(t, base, cookie, transports)
			if l := c2.next(t); l.Type != "connect_error" || l.Message != "unauthorized" {
				t.Fatalf("client with a logged-out cookie got %+v, want connect_error unauthorized", l)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestServeShutdown(t *testing.T) {
	m, base, log := serveMain(t, map[string]string{"SHUTDOWN_RETRY_AFTER": "3s", "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "METRICS_KEY": "metrics key"})
	cookie, _ := login(t, base)
	c := startClient(t, base, cookie, "websocket")
	if l := c.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	// The client hears CONNECT a moment before the gateway counts it.
	var metrics string
	wants := []string{"sessiongate_connections 1", `sessiongate_handshakes_total{code="OK"} 1`}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, metrics = get(t, base+"/metrics", http.Header{"Authorization": {"Bearer metrics key"}})
		if strings.Contains(metrics, wants[0]) && strings.Contains(metrics, wants[1]) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := m.Close(); err != nil { // what SIGTERM does
		t.Fatalf("Close: %v", err)
	}
	c.expectEvent(t, "server_restart", `{"retryAfterMs":3000}`)
	c.expectDisconnect(t, "io server disconnect")
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after Close")
	}

	// The log is JSON, one object a line, and never holds the cookie.
	_, signed, _ := strings.Cut(cookie, "=s%3A")
	sid, _, _ := strings.Cut(signed, ".")
	msgs := map[string]bool{}
	for line := range strings.Lines(log.String()) {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
		msgs[rec.Msg] = true
		if strings.Contains(line, sid) {
			t.Errorf("log line holds the session id: %q", line)
		}
	}
	for _, want := range []string{"listening", "login", "request", "shutting down", "stopped"} {
		if !msgs[want] {
			t.Errorf("no %q in the log", want)
		}
	}
}

// get sends a GET and returns the response with its body read.
func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestServeMetrics(t *testing.T) {
	const key = "metrics key"
	t.Run("neither", func(t *testing.T) {
		m, log, base := startMain(t, map[string]string{"LOG_LEVEL": "info"})
		if res, body := get(t, base+"/metrics", nil); res.StatusCode != 404 || strings.Contains(body, "sessiongate_") {
			t.Errorf("/metrics without METRICS_ADDR or METRICS_KEY = %d %q, want 404", res.StatusCode, body)
		}
		if res, _ := get(t, base+"/healthz", nil); res.StatusCode != 200 {
			t.Errorf("/healthz = %d", res.StatusCode)
		}
		m.Close()
		if !strings.Contains(log.String(), "set METRICS_ADDR") {
			t.Errorf("start-up does not say how to enable /metrics:\n%s", log)
		}
	})
	t.Run("key", func(t *testing.T) {
		_, _, base := startMain(t, map[string]string{"METRICS_KEY": key})
		for _, auth := range []string{"", "Bearer wrong key", "Bearer " + key + "!"} {
			if res, body := get(t, base+"/metrics", http.Header{"Authorization": {auth}}); res.StatusCode != 401 || strings.Contains(body, "sessiongate_") {
				t.Errorf("/metrics with Authorization %q = %d, want 401", auth, res.StatusCode)
			}
		}
		if res, body := get(t, base+"/metrics", http.Header{"Authorization": {"Bearer " + key}}); res.StatusCode != 200 || !strings.Contains(body, "sessiongate_connections 0") {
			t.Errorf("/metrics with the key = %d, want 200 and the metrics:\n%s", res.StatusCode, body)
		}
	})
	t.Run("addr", func(t *testing.T) {
		m, _, base := startMain(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
		private := "http://" + m.srv.metricsAddr()
		if res, body := get(t, private+"/metrics", nil); res.StatusCode != 200 || !strings.Contains(body, `sessiongate_login_attempts_total{result="ok"} 0`) {
			t.Errorf("/metrics on METRICS_ADDR = %d, want 200 and the metrics:\n%s", res.StatusCode, body)
		}
		if res, _ := get(t, private+"/healthz", nil); res.StatusCode != 404 {
			t.Errorf("METRICS_ADDR serves /healthz: %d, want only /metrics", res.StatusCode)
		}
		if res, _ := get(t, base+"/metrics", nil); res.StatusCode != 404 {
			t.Errorf("/metrics on LISTEN_ADDR without METRICS_KEY = %d, want 404", res.StatusCode)
		}
	})
	t.Run("addr and key", func(t *testing.T) {
		m, _, _ := startMain(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0", "METRICS_KEY": key})
		private := "http://" + m.srv.metricsAddr()
		if res, _ := get(t, private+"/metrics", nil); res.StatusCode != 401 {
			t.Errorf("/metrics on METRICS_ADDR without the key = %d, want 401", res.StatusCode)
		}
		if res, _ := get(t, private+"/metrics", http.Header{"Authorization": {"Bearer " + key}}); res.StatusCode != 200 {
			t.Errorf("/metrics on METRICS_ADDR with the key = %d, want 200", res.StatusCode)
		}
	})
}
