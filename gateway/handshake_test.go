package gateway

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

// backends are the stores every handshake test runs against.
var backends = []struct {
	name string
	open func(t *testing.T) store
}{
	{"postgres", func(t *testing.T) store { db, _ := openPostgres(t); return db }},
	{"sqlite", openSQLite},
}

func TestHandshakeCodes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testHandshakeCodes(t, b.open(t)) })
	}
}

func testHandshakeCodes(t *testing.T, st store) {
	audit := newRecordingAudit(st)
	g := newGateway(t, Config{Sessions: st, Audit: audit})
	ns, url := serve(t, g)

	now := time.Now()
	okSID, okCookie := saveSession(t, st, "42", now.Add(time.Hour))
	_, aliceCookie := saveSession(t, st, `"alice"`, now.Add(time.Hour))
	_, anonCookie := saveSession(t, st, "", now.Add(time.Hour))
	_, emptyUserCookie := saveSession(t, st, `""`, now.Add(time.Hour))
	_, nullUserCookie := saveSession(t, st, `null`, now.Add(time.Hour))
	expiredSID, expiredCookie := saveSession(t, st, "42", now.Add(-time.Minute))
	missingSID := expresssession.NewSessionID()
	ws := siotest.Websocket
	// The official client's default transports begin with polling.
	polling := siotest.Polling

	admitted := []struct {
		name string
		b    browser
	}{
		{"ok", browser{cookie: okCookie, transport: polling}},
		{"ok-websocket", browser{cookie: aliceCookie, transport: ws}},
		{"allowed-origin", browser{cookie: okCookie, origin: "http://app.example", transport: ws}},
	}
	refusals := []struct {
		name string
		b    browser
		code string
	}{
		{"no-cookie", browser{transport: polling}, sessiongate.ECodeNoCookie},
		{"no-cookie-websocket", browser{transport: ws}, sessiongate.ECodeNoCookie},
		{"other-cookie", browser{cookie: "theme=dark", transport: polling}, sessiongate.ECodeNoCookie},
		{"unsigned", browser{cookie: "connect.sid=" + okSID, transport: polling}, sessiongate.ECodeNoCookie},
		{"bad-signature", browser{cookie: "connect.sid=" + expresssession.CookieValue(okSID, []byte("other secret")), transport: polling}, sessiongate.ECodeBadSignature},
		{"bad-signature-websocket", browser{cookie: okCookie + "x", transport: ws}, sessiongate.ECodeBadSignature},
		{"not-found", browser{cookie: cookieHeader(missingSID), transport: polling}, sessiongate.ECodeSessionNotFound},
		{"expired", browser{cookie: expiredCookie, transport: polling}, sessiongate.ECodeSessionExpired},
		{"anonymous", browser{cookie: anonCookie, transport: polling}, sessiongate.ECodeNotAuthenticated},
		{"empty-user", browser{cookie: emptyUserCookie, transport: polling}, sessiongate.ECodeNotAuthenticated},
		{"null-user", browser{cookie: nullUserCookie, transport: polling}, sessiongate.ECodeNotAuthenticated},
		{"bad-origin", browser{cookie: okCookie, origin: "http://evil.example", transport: ws}, sessiongate.ECodeOriginNotAllowed},
		{"bad-origin-websocket", browser{cookie: okCookie, origin: "http://app.example:8080", transport: ws}, sessiongate.ECodeOriginNotAllowed},
	}
	clients := map[string]*siotest.Client{}
	for _, c := range admitted {
		clients[c.name] = dial(t, url, c.b)
	}
	for _, c := range refusals {
		clients[c.name] = dial(t, url, c.b)
	}
	connected(t, clients["ok"])

	socks := ns.Sockets("user:42")
	if len(socks) == 0 {
		t.Fatal("no socket in room user:42")
	}
	for _, s := range socks {
		id, ok := IdentityOf(s)
		if !ok || id.UserID != "42" || id.SessionID != okSID {
			t.Errorf("IdentityOf(%s) = %+v, %v; want user 42 of the ok session", s.ID(), id, ok)
		}
		// What other nodes may learn: the user and the short hash only;
		// the socket's Data is left to the application.
		want := map[string]string{"userId": "42", "session": sessiongate.ShortHash(okSID)}
		if got := g.SocketData(s); !reflect.DeepEqual(got, want) {
			t.Errorf("SocketData(%s) = %v, want %v", s.ID(), got, want)
		}
		if s.Data() != nil {
			t.Errorf("Data(%s) = %v, want the application's (nil)", s.ID(), s.Data())
		}
	}
	if err := ns.To("user:42").Emit(context.Background(), "hello", "world"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if ev, err := clients["ok"].WaitEvent(ctx, "hello"); err != nil {
		t.Error(err)
	} else if len(ev.Args) != 1 || string(ev.Args[0]) != `"world"` {
		t.Errorf("ok client got hello %s, want [world] sent to room user:42", ev.Args)
	}
	for _, c := range admitted {
		connected(t, clients[c.name])
	}
	wantHandshakes := map[string]uint64{HandshakeOK: uint64(len(admitted))}
	for _, c := range refusals {
		wantHandshakes[c.code]++
		if ce := refused(t, clients[c.name], c.code); ce.Message != "unauthorized" {
			t.Errorf("%s: connect_error message %q, want unauthorized", c.name, ce.Message)
		}
	}
	for _, c := range admitted {
		stillConnected(t, c.name, clients[c.name])
		clients[c.name].Close()
	}
	st2 := g.Stats()
	for code, n := range wantHandshakes {
		if st2.Handshakes[code] != n {
			t.Errorf("Stats().Handshakes[%s] = %d, want %d", code, st2.Handshakes[code], n)
		}
	}

	success := audit.waitFor(t, "success", action(sessiongate.ActionAuthSuccess, ""))
	if success.Severity != sessiongate.SeverityInfo || success.UserID == "" || success.SocketID == "" || success.RemoteAddr != "127.0.0.1" {
		t.Errorf("success audit = %+v", success)
	}
	for code := range wantHandshakes {
		if code == HandshakeOK {
			continue
		}
		ev := audit.waitFor(t, code, action(sessiongate.ActionAuthFailure, code))
		if ev.Severity != sessiongate.SeverityWarn {
			t.Errorf("%s audit severity %s, want WARN", code, ev.Severity)
		}
	}
	ev := audit.waitFor(t, "expired failure", action(sessiongate.ActionAuthFailure, sessiongate.ECodeSessionExpired))
	if ev.SessionHash != sessiongate.ShortHash(expiredSID) {
		t.Errorf("SESSION_EXPIRED audit session hash %q, want ShortHash(sid)", ev.SessionHash)
	}
	audit.waitFor(t, "disconnect", func(ev sessiongate.AuditEvent) bool {
		return ev.Action == sessiongate.ActionDisconnect && ev.SessionHash == sessiongate.ShortHash(okSID)
	})
	audit.mu.Lock()
	defer audit.mu.Unlock()
	for _, sid := range []string{okSID, expiredSID, missingSID} {
		if auditContains(audit.events, sid) {
			t.Errorf("a raw session id is in the audit trail")
		}
	}
}

// TestAuditTablePostgres checks the rows in PostgreSQL's audit table: the
// right actions and severities, and no raw session id anywhere.
func TestAuditTablePostgres(t *testing.T) {
	db, url := openPostgres(t)
	audit := newRecordingAudit(db)
	g := newGateway(t, Config{Sessions: db, Audit: audit})
	_, srvURL := serve(t, g)
	sid, cookie := saveSession(t, db, "7", time.Now().Add(time.Hour))
	missing := expresssession.NewSessionID()
	ok := dial(t, srvURL, browser{cookie: cookie, transport: siotest.Polling})
	connected(t, ok)
	refused(t, dial(t, srvURL, browser{cookie: cookieHeader(missing), transport: siotest.Polling}), sessiongate.ECodeSessionNotFound)
	ok.Close()
	disc := audit.waitFor(t, "disconnect", func(ev sessiongate.AuditEvent) bool { return ev.Action == sessiongate.ActionDisconnect })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT action, severity, user_id, session_hash, details FROM sessiongate_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Action, Severity, UserID, SessionHash, Details string }
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{sessiongate.ActionAuthSuccess, "INFO", "7", sessiongate.ShortHash(sid), ""},
		{sessiongate.ActionAuthFailure, "WARN", "", sessiongate.ShortHash(missing), sessiongate.ECodeSessionNotFound},
		{sessiongate.ActionDisconnect, "INFO", "7", sessiongate.ShortHash(sid), disc.Details},
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit rows:\n got %+v\nwant %+v", got, want)
	}
	for _, s := range []string{sid, missing} {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM sessiongate_audit a WHERE a::text LIKE '%' || $1 || '%'`, s).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d audit rows hold a raw session id", n)
		}
	}
}

func TestHandshakeInternal(t *testing.T) {
	_, url := openPostgres(t)
	closed, err := postgresOpen(url)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: closed, Audit: audit})
	_, srvURL := serve(t, g)
	c := dial(t, srvURL, browser{cookie: cookieHeader(expresssession.NewSessionID()), transport: siotest.Polling})
	if ce := refused(t, c, sessiongate.ECodeInternal); ce.Message != "internal error" {
		t.Errorf("message %q, want internal error", ce.Message)
	}
	ev := audit.waitFor(t, "auth error", action(sessiongate.ActionAuthError, sessiongate.ECodeInternal))
	if ev.Severity != sessiongate.SeverityHigh {
		t.Errorf("severity %s, want HIGH", ev.Severity)
	}
	if n := g.Stats().Handshakes[sessiongate.ECodeInternal]; n != 1 {
		t.Errorf("INTERNAL handshakes = %d, want 1", n)
	}
}

// TestForwardedClientAudited serves through a trusted proxy (the loopback
// peer): the audit trail records the client X-Forwarded-For names, and
// ClientKey keys it so; the same header from an untrusted peer would be
// ignored (package clientip's tests).
func TestForwardedClientAudited(t *testing.T) {
	st := openSQLite(t)
	audit := newRecordingAudit(nil)
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	g := newGateway(t, Config{Sessions: st, Audit: audit, TrustedProxies: proxies})
	_, url := serve(t, g)
	_, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	connected(t, dial(t, url, browser{cookie: cookie, forwardedFor: "198.51.100.1", transport: siotest.Polling}))
	ev := audit.waitFor(t, "auth success", action(sessiongate.ActionAuthSuccess, ""))
	if ev.RemoteAddr != "198.51.100.1" {
		t.Errorf("audit remote_addr %q, want the forwarded client 198.51.100.1", ev.RemoteAddr)
	}
	req := httptest.NewRequest("GET", "/socket.io/", nil)
	req.RemoteAddr = "127.0.0.1:5000"
	req.Header.Set("X-Forwarded-For", "2001:db8:1:2::9")
	if got := g.ClientKey(req); got != "2001:db8:1:2::/64" {
		t.Errorf("ClientKey = %q, want the forwarded client's /64", got)
	}
	if peers, n := g.UntrustedForwarders(); len(peers) != 0 || n != 0 {
		t.Errorf("UntrustedForwarders = %v, %d behind a trusted proxy, want none", peers, n)
	}
}
