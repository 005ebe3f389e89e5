package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

// TestMaxConnectionsPerUser: with a cap of 2, the third socket of user 42
// (over two sessions) is refused with TOO_MANY_CONNECTIONS, audited WARN
// with the user, while user 43 still connects; once one of 42's sockets
// disconnects, a new one gets its slot. Refusals from one address are
// aggregated like the others.
func TestMaxConnectionsPerUser(t *testing.T) {
	db := openSQLite(t)
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: db, Audit: audit, MaxConnectionsPerUser: 2})
	_, url := serve(t, g)
	expire := time.Now().Add(time.Hour)
	_, cookieA := saveSession(t, db, `"42"`, expire)
	_, cookieB := saveSession(t, db, `"42"`, expire)
	_, cookieOther := saveSession(t, db, `"43"`, expire)

	first := dial(t, url, browser{cookie: cookieA})
	connected(t, first)
	second := dial(t, url, browser{cookie: cookieB, transport: siotest.Polling})
	connected(t, second)
	ce := refused(t, dial(t, url, browser{cookie: cookieA}), sessiongate.ECodeTooManyConnections)
	if ce.Message != "too many connections" {
		t.Errorf("connect_error message %q", ce.Message)
	}
	other := dial(t, url, browser{cookie: cookieOther})
	connected(t, other)
	refused(t, dial(t, url, browser{cookie: cookieB}), sessiongate.ECodeTooManyConnections)

	ev := audit.waitFor(t, "refusal", action(sessiongate.ActionAuthFailure, sessiongate.ECodeTooManyConnections))
	if ev.Severity != sessiongate.SeverityWarn || ev.UserID != "42" || ev.SessionHash == "" || ev.SocketID == "" {
		t.Errorf("audit %+v, want WARN with user 42", ev)
	}
	if n := g.Stats().Handshakes[sessiongate.ECodeTooManyConnections]; n != 2 {
		t.Errorf("Stats counts %d TOO_MANY_CONNECTIONS, want 2", n)
	}

	// The freed slot: the SOCKET_DISCONNECT record is written after the
	// socket's slot is given back.
	firstID, _ := first.Connected(context.Background())
	first.Close()
	audit.waitFor(t, "disconnect", func(ev sessiongate.AuditEvent) bool {
		return ev.Action == sessiongate.ActionDisconnect && ev.SocketID == firstID
	})
	again := dial(t, url, browser{cookie: cookieA})
	connected(t, again)
	refused(t, dial(t, url, browser{cookie: cookieA}), sessiongate.ECodeTooManyConnections)
	for name, c := range map[string]*siotest.Client{"second": second, "other": other, "again": again} {
		stillConnected(t, name, c)
	}

	// The two refusals of the window after the first: one record with
	// their count (written when the window ends, at Close).
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	audit.mu.Lock()
	defer audit.mu.Unlock()
	records, total := 0, 0
	for _, ev := range audit.events {
		if ev.Action == sessiongate.ActionAuthFailure && ev.Details == sessiongate.ECodeTooManyConnections {
			records++
			total += max(1, ev.Count)
		}
	}
	if records != 2 || total != 3 {
		t.Errorf("%d records counting %d refusals, want 2 counting 3", records, total)
	}
}

// TestMaxConnectionsPerUserRelease: a handshake granted but whose
// client left before its CONNECT was sent gives its slot back (no
// disconnect handler runs for it), so the user is not locked out.
func TestMaxConnectionsPerUserRelease(t *testing.T) {
	db := openSQLite(t)
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), MaxConnectionsPerUser: 1})
	sid, _ := saveSession(t, db, `"42"`, time.Now().Add(time.Hour))
	c := &conn{identity: sessiongate.Identity{UserID: "42", SessionID: sid}, key: userKey("42"), short: sessiongate.ShortHash(sid)}
	ctx, cancel := context.WithCancel(context.Background())
	if ref := g.reserve(c); ref != nil {
		t.Fatal(ref.code)
	}
	released := make(chan struct{})
	context.AfterFunc(ctx, func() { g.release(c); close(released) })
	if ref := g.reserve(&conn{identity: c.identity, key: c.key}); ref == nil || ref.code != sessiongate.ECodeTooManyConnections || ref.user != "42" {
		t.Fatalf("second reservation: %+v", ref)
	}
	cancel()
	<-released
	g.release(c) // twice: no effect
	for i := range 2 {
		c := &conn{identity: c.identity, key: c.key}
		ref := g.reserve(c)
		if (i == 0) != (ref == nil) {
			t.Fatalf("reservation %d after the release: %v", i, ref)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.perUser) != 1 || g.perUser[userKey("42")] != 1 {
		t.Errorf("perUser = %v", g.perUser)
	}
}
