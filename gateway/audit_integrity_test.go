package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/spool"
	"github.com/sessiongate/sessiongate/postgres"
)

// wsConnect opens a websocket Engine.IO session to url with header and sends
// the Socket.IO CONNECT of the main namespace; it returns the reply packet
// ("40{...}" granted, "44{...}" refused) and the connection, closed when
// the test ends.
func wsConnect(t *testing.T, url string, header http.Header) (string, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, open, err := ws.Read(ctx); err != nil || !strings.HasPrefix(string(open), "0") {
		t.Fatalf("Engine.IO open = %q, %v", open, err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("reading the CONNECT reply: %v", err)
		}
		if s := string(msg); strings.HasPrefix(s, "40") || strings.HasPrefix(s, "44") {
			return s, ws
		}
	}
}

// auditRows returns "action|user_id|user_agent|details|count" for every row
// of the audit table at url, in order.
func auditRows(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT concat_ws('|', action, user_id, user_agent, details, count) FROM sessiongate_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitRows waits until the audit table at url holds a row containing each
// of want.
func waitRows(t *testing.T, url string, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		rows := auditRows(t, url)
		missing := ""
		for _, w := range want {
			found := false
			for _, r := range rows {
				found = found || strings.Contains(r, w)
			}
			if !found {
				missing = w
				break
			}
		}
		if missing == "" {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit row with %q in the table; rows:\n%s", missing, strings.Join(rows, "\n"))
		}
		time.Sleep(20 * time.Millisecond) // polling a table: there is no event to wait on
	}
}

// TestAuditInvalidTextPostgres: a handshake whose User-Agent holds byte
// 0xFF and whose passport.user holds a NUL is granted and recorded in
// PostgreSQL with both replaced; the events after it (an honest client
// beside it) are written too. Before, COPY refused the batch for good and
// the trail stopped.
func TestAuditInvalidTextPostgres(t *testing.T) {
	db, url := openPostgres(t)
	g := newGateway(t, Config{Sessions: db, Audit: db})
	_, srvURL := serve(t, g)
	_, evil := saveSession(t, db, `"4\u00002"`, time.Now().Add(time.Hour))
	_, honest := saveSession(t, db, `"honest"`, time.Now().Add(time.Hour))

	reply, ws := wsConnect(t, srvURL, http.Header{"Cookie": {evil}, "User-Agent": {"curl\xff/8"}})
	if !strings.HasPrefix(reply, "40") {
		t.Fatalf("handshake = %q, want granted", reply)
	}
	ws.CloseNow()
	if reply, _ := wsConnect(t, srvURL, http.Header{"Cookie": {honest}, "User-Agent": {"Mozilla/5.0"}}); !strings.HasPrefix(reply, "40") {
		t.Fatalf("honest handshake = %q, want granted", reply)
	}
	waitRows(t, url,
		sessiongate.ActionAuthSuccess+"|4\uFFFD2|curl\uFFFD/8||1",
		sessiongate.ActionDisconnect+"|4\uFFFD2|curl\uFFFD/8|",
		sessiongate.ActionAuthSuccess+"|honest|Mozilla/5.0||1",
	)
	if n := g.Stats().AuditRejected; n != 0 {
		t.Errorf("AuditRejected = %d, want 0: sanitized events are all accepted", n)
	}
}

// rejectingAudit refuses, as a store refuses bad data, every batch holding
// an event whose SocketID is "bad", and records the others.
type rejectingAudit struct{ *recordingAudit }

func (a rejectingAudit) WriteAudit(ctx context.Context, evs []sessiongate.AuditEvent) error {
	for _, ev := range evs {
		if ev.SocketID == "bad" {
			return sessiongate.Errorf(sessiongate.ECodeInvalid, "rejected")
		}
	}
	return a.recordingAudit.WriteAudit(ctx, evs)
}

// TestAuditBadRowIsolated: a batch with rows the store can never take is
// split until they are alone; every other event is written, in order, and
// the bad ones are counted, not retried.
func TestAuditBadRowIsolated(t *testing.T) {
	for _, spooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", spooled), func(t *testing.T) {
			store := rejectingAudit{newRecordingAudit(nil)}
			w := newAuditWriter(store, testLogger(t), time.Millisecond, testSpool(t, spooled))
			evs := events(300)
			evs[7].SocketID, evs[250].SocketID = "bad", "bad"
			for _, ev := range evs {
				w.add(ev)
			}
			if err := w.close(context.Background()); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, ev := range evs {
				if ev.SocketID != "bad" {
					want = append(want, ev.SocketID)
				}
			}
			store.mu.Lock()
			var got []string
			for _, ev := range store.events {
				got = append(got, ev.SocketID)
			}
			store.mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("written %d events, want the %d good ones in order", len(got), len(want))
			}
			if r := w.rejected.Load(); r != 2 {
				t.Errorf("rejected = %d, want 2", r)
			}
			if f := w.failures.Load(); f != 0 {
				t.Errorf("failures = %d: a rejected batch is not a failure to retry", f)
			}
		})
	}
}

// TestAuditBadRowIsolatedPostgres: the same with PostgreSQL's own refusal
// of a NUL byte and of byte 0xFF (events that reach the store unsanitized).
func TestAuditBadRowIsolatedPostgres(t *testing.T) {
	db, url := openPostgres(t)
	w := newAuditWriter(db, testLogger(t), time.Millisecond, nil)
	evs := events(20)
	evs[3].UserID = "4\x002"
	evs[11].UserAgent = "curl\xff/8"
	if !w.write(evs) {
		t.Fatal("write gave up")
	}
	if err := w.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows := auditRows(t, url); len(rows) != 18 {
		t.Errorf("%d rows written, want the 18 good ones", len(rows))
	}
	if r := w.rejected.Load(); r != 2 {
		t.Errorf("rejected = %d, want 2", r)
	}
}

func testSpool(t *testing.T, on bool) *spool.Spool { return benchSpool(t, on) }

// benchSpool returns a spool of 1 GiB in a temporary directory, or nil
// when on is false.
func benchSpool(t testing.TB, on bool) *spool.Spool {
	if !on {
		return nil
	}
	sp, err := spool.Open(filepath.Join(t.TempDir(), "audit-spool"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestAuditRefusalFlood: thousands of refusals from one address (for IPv6,
// one /64) are written as a few rows whose counts add up; successes, errors
// and refusals from another address keep their own rows.
func TestAuditRefusalFlood(t *testing.T) {
	db, url := openPostgres(t)
	w := newAuditWriter(db, testLogger(t), time.Millisecond, nil)
	refusal := func(addr, code string) sessiongate.AuditEvent {
		return sessiongate.AuditEvent{Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityWarn, RemoteAddr: addr, Details: code}
	}
	for i := range 3000 {
		w.add(refusal("203.0.113.9", sessiongate.ECodeRateLimited))
		if i%1000 == 0 {
			w.add(sessiongate.AuditEvent{Action: sessiongate.ActionAuthSuccess, Severity: sessiongate.SeverityInfo, RemoteAddr: "203.0.113.9", UserID: "42"})
			w.add(sessiongate.AuditEvent{Action: sessiongate.ActionAuthError, Severity: sessiongate.SeverityHigh, RemoteAddr: "203.0.113.9", Details: sessiongate.ECodeInternal})
		}
	}
	for range 500 {
		w.add(refusal("203.0.113.9", sessiongate.ECodeNoCookie))
	}
	w.add(refusal("198.51.100.1", sessiongate.ECodeRateLimited))
	for i := range 50 { // one IPv6 client holds a /64
		w.add(refusal(fmt.Sprintf("2001:db8:1::%x", i+1), sessiongate.ECodeBadSignature))
	}
	if err := w.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT concat_ws('|', action, remote_addr, details, count(*), sum(count)) FROM sessiongate_audit GROUP BY action, remote_addr, details ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// rows|events: a refusal flood is its first event, then one aggregate
	// per window (the test runs within one).
	want := []string{
		"SOCKET_AUTH_ERROR|203.0.113.9|INTERNAL|3|3",
		"SOCKET_AUTH_FAILURE|198.51.100.1|RATE_LIMITED|1|1",
		"SOCKET_AUTH_FAILURE|2001:db8:1::1|BAD_SIGNATURE|1|1",
		"SOCKET_AUTH_FAILURE|2001:db8:1::2|BAD_SIGNATURE|1|49",
		"SOCKET_AUTH_FAILURE|203.0.113.9|NO_COOKIE|2|500",
		"SOCKET_AUTH_FAILURE|203.0.113.9|RATE_LIMITED|2|3000",
		"SOCKET_AUTH_SUCCESS|203.0.113.9||3|3",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit rows by kind:\n got %v\nwant %v", got, want)
	}
	if n := w.aggregated.Load(); n != 3000-1+500-1+50-1 {
		t.Errorf("aggregated = %d", n)
	}
}

// blockingAudit blocks every write until released, telling when the first
// one started.
type blockingAudit struct {
	*recordingAudit
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func newBlockingAudit() *blockingAudit {
	return &blockingAudit{recordingAudit: newRecordingAudit(nil), started: make(chan struct{}), release: make(chan struct{})}
}

func (a *blockingAudit) WriteAudit(ctx context.Context, evs []sessiongate.AuditEvent) error {
	a.once.Do(func() { close(a.started) })
	select {
	case <-a.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return a.recordingAudit.WriteAudit(ctx, evs)
}

// addAll adds evs from another goroutine and reports whether that finished
// within waitTimeout (far longer than adds that never wait need).
func addAll(w *auditWriter, evs []sessiongate.AuditEvent) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ev := range evs {
			w.add(ev)
		}
	}()
	select {
	case <-done:
		return true
	case <-time.After(waitTimeout):
		return false
	}
}

// TestAuditAddNeverBlocks: with the store stuck, add returns at once for
// every event: past the memory queue they are counted as dropped (before, each
// waited 100 ms for room, so 200 of them took 20 s) and readiness fails;
// with a spool they all go to disk and none is lost.
func TestAuditAddNeverBlocks(t *testing.T) {
	const extra = 200
	t.Run("memory", func(t *testing.T) {
		store := newBlockingAudit()
		w := newAuditWriter(store, testLogger(t), time.Millisecond, nil)
		defer func() {
			close(store.release)
			w.close(context.Background())
		}()
		w.add(events(1)[0])
		<-store.started // the writer is stuck on a batch of one
		if err := w.healthy(); err != nil {
			t.Errorf("healthy with an empty queue: %v", err)
		}
		if !addAll(w, events(auditQueueSize+extra)) {
			t.Fatal("add waited on a full queue")
		}
		if d := w.dropped.Load(); d != extra {
			t.Errorf("dropped = %d, want %d", d, extra)
		}
		if b := w.backlog(); b != auditQueueSize+1 {
			t.Errorf("backlog = %d, want %d", b, auditQueueSize+1)
		}
		if err := w.healthy(); err == nil {
			t.Error("healthy with a full queue")
		}
	})
	t.Run("spool", func(t *testing.T) {
		store := newBlockingAudit()
		w := newAuditWriter(store, testLogger(t), time.Millisecond, testSpool(t, true))
		w.add(events(1)[0])
		<-store.started
		if !addAll(w, events(auditQueueSize+extra)) {
			t.Fatal("add waited while the store was stuck")
		}
		if d := w.dropped.Load(); d != 0 {
			t.Errorf("dropped = %d with room in the spool", d)
		}
		close(store.release)
		if err := w.close(context.Background()); err != nil {
			t.Fatal(err)
		}
		store.mu.Lock()
		n := len(store.events)
		store.mu.Unlock()
		if n != auditQueueSize+extra+1 {
			t.Errorf("%d events written, want %d", n, auditQueueSize+extra+1)
		}
	})
	t.Run("spool full", func(t *testing.T) {
		store := newBlockingAudit()
		sp, err := spool.Open(t.TempDir(), 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		w := newAuditWriter(store, testLogger(t), time.Millisecond, sp)
		defer func() {
			close(store.release)
			w.close(context.Background())
		}()
		w.add(events(1)[0])
		<-store.started
		if !addAll(w, events(2000)) {
			t.Fatal("add waited on a full spool")
		}
		if w.dropped.Load() == 0 {
			t.Error("nothing dropped past the spool's limit")
		}
		if err := w.healthy(); err == nil {
			t.Error("healthy with a full spool")
		}
	})
}

// failingAudit fails every write as a database that refuses connections.
type failingAudit struct{}

func (failingAudit) WriteAudit(context.Context, []sessiongate.AuditEvent) error {
	return fmt.Errorf("connection refused")
}

// TestAuditCrashDurability: while the database refuses writes, a server
// grants handshakes, so their records are on disk when the clients have
// their CONNECT; the server is killed (SIGKILL: nothing shipped, flushed or
// closed) and the next one, with the database back, writes them to the
// table.
func TestAuditCrashDurability(t *testing.T) {
	db, url := openPostgres(t)
	dir := filepath.Join(t.TempDir(), "audit-spool")
	child := exec.Command(os.Args[0], "-test.run=^TestAuditCrashChild$")
	child.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_DATABASE_URL="+url, "CRASH_SPOOL="+dir)
	child.Stderr = t.Output()
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	lines := bufio.NewScanner(out)
	srvURL := ""
	for srvURL == "" && lines.Scan() {
		srvURL, _ = strings.CutPrefix(lines.Text(), "serving ")
	}
	if srvURL == "" {
		t.Fatalf("the child server never said where it serves: %v", lines.Err())
	}
	go io.Copy(io.Discard, out)

	var users []string
	for i := range 3 {
		user := fmt.Sprintf("crash-%d", i)
		_, cookie := saveSession(t, db, fmt.Sprintf("%q", user), time.Now().Add(time.Hour))
		if reply, _ := wsConnect(t, srvURL, http.Header{"Cookie": {cookie}}); !strings.HasPrefix(reply, "40") {
			t.Fatalf("handshake = %q, want granted", reply)
		}
		users = append(users, sessiongate.ActionAuthSuccess+"|"+user+"|")
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if rows := auditRows(t, url); len(rows) != 0 {
		t.Fatalf("the table has %d rows before the restart: the database was to refuse them", len(rows))
	}

	next, err := New(Config{Sessions: db, Audit: db, Secrets: [][]byte{[]byte(testSecret)}, AuditSpool: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitRows(t, url, users...)
	if err := next.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(dir, DefaultAuditSpoolMax)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if n := sp.Size(); n != 0 {
		t.Errorf("spool holds %d bytes after shipping, want 0", n)
	}
}

const crashChildEnv = "SESSIONGATE_AUDIT_CRASH_CHILD"

// TestAuditCrashChild is the server TestAuditCrashDurability kills; run
// alone it does nothing.
func TestAuditCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		return
	}
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv("CRASH_DATABASE_URL"), Table: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Sessions: db, Audit: failingAudit{}, Secrets: [][]byte{[]byte(testSecret)},
		AuditSpool: os.Getenv("CRASH_SPOOL"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, srvURL := serve(t, g)
	fmt.Println("serving " + srvURL)
	select {} // until killed
}

// TestAuditRefusalFloodPostgres: one client whose handshakes are refused
// again and again writes a few rows to PostgreSQL, not one per handshake,
// and the counts add up; an honest client beside it is granted and
// recorded.
func TestAuditRefusalFloodPostgres(t *testing.T) {
	db, url := openPostgres(t)
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	g := newGateway(t, Config{Sessions: db, Audit: db, TrustedProxies: proxies})
	_, srvURL := serve(t, g)
	const flood = 40
	for i := range flood {
		reply, ws := wsConnect(t, srvURL, http.Header{"X-Forwarded-For": {"203.0.113.9"}})
		if !strings.Contains(reply, sessiongate.ECodeNoCookie) {
			t.Fatalf("handshake %d = %q, want NO_COOKIE", i, reply)
		}
		ws.CloseNow()
	}
	_, honest := saveSession(t, db, `"honest"`, time.Now().Add(time.Hour))
	if reply, _ := wsConnect(t, srvURL, http.Header{"Cookie": {honest}, "X-Forwarded-For": {"198.51.100.7"}}); !strings.HasPrefix(reply, "40") {
		t.Fatalf("honest handshake = %q, want granted", reply)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.Close(ctx); err != nil { // ends the refusal window
		t.Fatal(err)
	}
	var refused []string
	for _, r := range auditRows(t, url) {
		if strings.Contains(r, sessiongate.ECodeNoCookie) {
			refused = append(refused, r)
		}
	}
	want := []string{
		sessiongate.ActionAuthFailure + "||Go-http-client/1.1|NO_COOKIE|1",
		sessiongate.ActionAuthFailure + "||Go-http-client/1.1|NO_COOKIE|" + fmt.Sprint(flood-1),
	}
	if fmt.Sprint(refused) != fmt.Sprint(want) {
		t.Errorf("refusal rows %q, want %q", refused, want)
	}
	waitRows(t, url, sessiongate.ActionAuthSuccess+"|honest|")
}
