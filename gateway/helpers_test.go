package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/socketio"
)

const testSecret = "keyboard cat"

// waitTimeout bounds every wait of these tests for an event.
const waitTimeout = 10 * time.Second

// store is what the tests need of a backend.
type store interface {
	sessiongate.SessionStore
	sessiongate.AuditStore
}

// openPostgres returns a migrated PostgreSQL store with the session table
// "Session" in a fresh schema, and the schema's URL.
func openPostgres(t *testing.T) (*postgres.DB, string) {
	t.Helper()
	_, url := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{URL: url, Table: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, url
}

// sessionJSON is a session as express-session + passport write it; user is
// the JSON of passport.user, "" for no passport at all.
func sessionJSON(user string, expire time.Time) []byte {
	passport := ""
	if user != "" {
		passport = fmt.Sprintf(`,"passport":{"user":%s}`, user)
	}
	return fmt.Appendf(nil, `{"cookie":{"originalMaxAge":3600000,"expires":%q,"secure":false,"httpOnly":true,"path":"/","sameSite":"lax"}%s,"theme":"dark"}`,
		expresssession.ISOString(expire), passport)
}

// saveSession writes a session row and returns its sid and the Cookie
// header a browser would send for it.
func saveSession(t *testing.T, s sessiongate.SessionStore, user string, expire time.Time) (sid, cookie string) {
	t.Helper()
	sid = expresssession.NewSessionID()
	err := s.SaveSession(context.Background(), &sessiongate.Session{ID: sid, Data: sessionJSON(user, expire), Expire: expire})
	if err != nil {
		t.Fatal(err)
	}
	return sid, cookieHeader(sid)
}

func cookieHeader(sid string) string {
	return "connect.sid=" + expresssession.CookieValue(sid, []byte(testSecret))
}

// newGateway returns a gateway closed when the test ends, with defaults for
// the tests filled in.
func newGateway(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = [][]byte{[]byte(testSecret)}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return g
}

// run runs g.Run until the test ends.
func run(t *testing.T, g *Gateway) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Errorf("run: %v", err)
		}
	})
}

// serve serves Socket.IO with g attached to the main namespace, until the
// test ends.
// testOrigins are the origins the test servers allow besides their own.
var testOrigins = []string{"http://app.example", appOrigin}

func serve(t *testing.T, g *Gateway) (*socketio.Namespace, string) {
	t.Helper()
	srv := socketio.NewServer(socketio.Options{
		Engine:          engineio.Options{AllowedOrigins: testOrigins},
		OriginRefusal:   OriginRefusal(),
		OnOriginRefused: g.OriginRefused,
	})
	ns := srv.Of("/")
	g.Attach(ns)
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return ns, hs.URL
}

// clientSpec is one client of test/interop/gateway-client.mjs, which drives
// the official socket.io-client (TestExpressInterop, TestEndSession).
type clientSpec struct {
	Name       string   `json:"name"`
	Cookie     string   `json:"cookie,omitempty"`
	Transports []string `json:"transports,omitempty"`
	ExpectEnd  string   `json:"expectEnd,omitempty"`
}

type nodeSpec struct {
	URL        string       `json:"url"`
	TimeoutMs  int          `json:"timeoutMs"`
	Sequential bool         `json:"sequential,omitempty"`
	Clients    []clientSpec `json:"clients"`
}

// line is one line printed by gateway-client.mjs.
type line struct {
	Client   string   `json:"client"`
	Event    string   `json:"event"`
	Reason   string   `json:"reason"`
	Done     bool     `json:"done"`
	OK       bool     `json:"ok"`
	Failures []string `json:"failures"`

	received time.Time
	raw      string
}

// nodeRun is a running gateway-client.mjs.
type nodeRun struct {
	t     *testing.T
	lines chan line
	mu    sync.Mutex
	all   []line
}

// startClients runs gateway-client.mjs with the given clients against url.
func startClients(t *testing.T, url string, sequential bool, clients ...clientSpec) *nodeRun {
	t.Helper()
	spec, err := json.Marshal(nodeSpec{URL: url, TimeoutMs: int(waitTimeout / time.Millisecond), Sequential: sequential, Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	cmd := nodetest.Command(t, "test/interop", "gateway-client.mjs", string(spec))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &nodeRun{t: t, lines: make(chan line, 1024)}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(r.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("node printed %q: %v", sc.Text(), err)
				continue
			}
			l.received = time.Now()
			l.raw = sc.Text()
			r.lines <- l
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		cmd.Wait()
	})
	return r
}

// next returns the next line, failing the test on timeout or exit.
func (r *nodeRun) next() line {
	r.t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			r.t.Fatal("node exited early")
		}
		r.mu.Lock()
		r.all = append(r.all, l)
		r.mu.Unlock()
		r.t.Logf("node: %s", l.raw)
		return l
	case <-time.After(waitTimeout):
		r.t.Fatal("timed out waiting for node")
		return line{}
	}
}

// waitFor returns the first line of the client with the given event,
// printed already or to come.
func (r *nodeRun) waitFor(client, event string) line {
	r.t.Helper()
	r.mu.Lock()
	l, ok := find(r.all, client, event)
	r.mu.Unlock()
	if ok {
		return l
	}
	for {
		l := r.next()
		if l.Done {
			r.t.Fatalf("node finished before %s %s: %v", client, event, l.Failures)
		}
		if l.Client == client && l.Event == event {
			return l
		}
	}
}

// finish waits for the script's result and fails the test unless it is ok.
// It returns every line printed.
func (r *nodeRun) finish() []line {
	r.t.Helper()
	for {
		l := r.next()
		if l.Done {
			if !l.OK {
				r.t.Fatalf("node: %v", l.Failures)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.all
		}
	}
}

// find returns the first of lines for client with event.
func find(lines []line, client, event string) (line, bool) {
	for _, l := range lines {
		if l.Client == client && l.Event == event {
			return l, true
		}
	}
	return line{}, false
}

// browser is what a test's Go Socket.IO client (package siotest) sends as a
// browser would: its headers, on every request, and its transport.
type browser struct {
	cookie       string
	origin       string
	forwardedFor string
	transport    string // siotest.Websocket when empty
}

// dial opens a Go Socket.IO client to the gateway served at url and sends
// its CONNECT; the client is closed when the test ends.
func dial(t *testing.T, url string, b browser) *siotest.Client {
	t.Helper()
	h := http.Header{}
	for k, v := range map[string]string{"Cookie": b.cookie, "Origin": b.origin, "X-Forwarded-For": b.forwardedFor} {
		if v != "" {
			h.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := siotest.Dial(ctx, url, siotest.Options{Header: h, Transport: b.transport})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connected waits until the gateway admitted c.
func connected(t *testing.T, c *siotest.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connected(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// refused waits until the gateway refused c, checks the code, and returns
// the refusal.
func refused(t *testing.T, c *siotest.Client, code string) *siotest.ConnectError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := c.Connected(ctx)
	var ce *siotest.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connect: %v, want connect_error %s", err, code)
	}
	if ce.Code != code {
		t.Errorf("connect_error %q code %q, want %s", ce.Message, ce.Code, code)
	}
	return ce
}

// ended waits until the gateway sent c away after admitting it (an event,
// then "io server disconnect"), checks that the event came first, and
// returns both. The
// event is session_expired, whose reason must be want ("" for any), or
// server_restart when want is EventServerRestart.
func ended(t *testing.T, c *siotest.Client, want string) (siotest.Event, siotest.Disconnect) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connected(ctx); err != nil {
		t.Fatalf("sent away before it connected: %v", err)
	}
	d, err := c.WaitDisconnect(ctx)
	if err != nil {
		t.Fatalf("waiting for the end: %v", err)
	}
	if d.Reason != siotest.ReasonServerDisconnect {
		t.Errorf("disconnect reason %q (%v), want %s", d.Reason, d.Err, siotest.ReasonServerDisconnect)
	}
	event := EventSessionExpired
	if want == EventServerRestart {
		event = EventServerRestart
	}
	// Taken after the end: an event sent before the DISCONNECT is there.
	ev, err := c.WaitEvent(ctx, event)
	if err != nil {
		t.Fatalf("disconnected without %s: %v", event, err)
	}
	if event == EventSessionExpired {
		var payload struct {
			Reason string `json:"reason"`
		}
		if len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &payload) != nil {
			t.Fatalf("%s args %s, want {reason}", event, ev.Args)
		}
		if want != "" && payload.Reason != want {
			t.Errorf("%s reason %q, want %s", event, payload.Reason, want)
		}
	}
	return ev, d
}

// stillConnected fails the test if c was disconnected.
func stillConnected(t *testing.T, name string, c *siotest.Client) {
	t.Helper()
	if d, gone := c.Disconnected(); gone {
		t.Errorf("%s: unexpected disconnect %q (%v)", name, d.Reason, d.Err)
	}
}

// recordingAudit records what it writes, in order, and lets a test wait
// for events.
type recordingAudit struct {
	inner sessiongate.AuditStore // nil: keep in memory only

	mu      sync.Mutex
	events  []sessiongate.AuditEvent
	changed chan struct{}
}

func newRecordingAudit(inner sessiongate.AuditStore) *recordingAudit {
	return &recordingAudit{inner: inner, changed: make(chan struct{})}
}

func (a *recordingAudit) WriteAudit(ctx context.Context, events []sessiongate.AuditEvent) error {
	if a.inner != nil {
		if err := a.inner.WriteAudit(ctx, events); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.events = append(a.events, events...)
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	return nil
}

// waitFor waits until an event matching ok has been written, and returns it.
func (a *recordingAudit) waitFor(t *testing.T, what string, ok func(sessiongate.AuditEvent) bool) sessiongate.AuditEvent {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		a.mu.Lock()
		for _, ev := range a.events {
			if ok(ev) {
				a.mu.Unlock()
				return ev
			}
		}
		changed := a.changed
		a.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for audit event %s", what)
		}
	}
}

// action matches events with the given action and details.
func action(act, details string) func(sessiongate.AuditEvent) bool {
	return func(ev sessiongate.AuditEvent) bool { return ev.Action == act && ev.Details == details }
}

// countingStore counts the calls of a session store's batch methods.
type countingStore struct {
	sessiongate.SessionStore
	sessionsCalls atomic.Int64
	refreshCalls  atomic.Int64
	maxBatch      atomic.Int64
}

func (s *countingStore) Sessions(ctx context.Context, sids []string) (map[string]*sessiongate.Session, error) {
	s.sessionsCalls.Add(1)
	for {
		m := s.maxBatch.Load()
		if int64(len(sids)) <= m || s.maxBatch.CompareAndSwap(m, int64(len(sids))) {
			break
		}
	}
	return s.SessionStore.Sessions(ctx, sids)
}

func (s *countingStore) RefreshSessions(ctx context.Context, r []sessiongate.Refresh) ([]string, error) {
	s.refreshCalls.Add(1)
	return s.SessionStore.RefreshSessions(ctx, r)
}

// clock is a settable time for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// contains reports whether the text of any audit column holds s.
func auditContains(events []sessiongate.AuditEvent, s string) bool {
	for _, ev := range events {
		for _, f := range []string{ev.UserID, ev.SessionHash, ev.RemoteAddr, ev.UserAgent, ev.SocketID, ev.Details} {
			if strings.Contains(f, s) {
				return true
			}
		}
	}
	return false
}
