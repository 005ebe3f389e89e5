package gateway

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

// echoForwarder answers every client event {"ok":true}, counting calls.
type echoForwarder struct{ calls atomic.Int32 }

func (f *echoForwarder) Forward(context.Context, EventRequest) (json.RawMessage, error) {
	f.calls.Add(1)
	return json.RawMessage(`{"ok":true}`), nil
}

// ackOf emits event and decodes its one ack argument, a subscribe's or a
// client event's: ok need not be set.
func ackOf(t *testing.T, c *siotest.Client, event string, payload ...any) subAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	args, err := c.EmitWithAck(ctx, event, payload...)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	var a subAck
	if len(args) != 1 || json.Unmarshal(args[0], &a) != nil {
		t.Fatalf("%s ack %s, want one JSON object", event, args)
	}
	return a
}

// wantLimited fails unless a is RATE_LIMITED, temporary, with retryAfterMs.
func wantLimited(t *testing.T, what string, a subAck, retryMs int64) {
	t.Helper()
	if a.OK || a.Error == nil || a.Error.Code != sessiongate.ECodeRateLimited || !a.Error.Temporary || a.Error.RetryAfterMs != retryMs || a.Error.Message == "" {
		t.Errorf("%s: ack %+v, want RATE_LIMITED temporary retryAfterMs %d", what, a.Error, retryMs)
	}
}

// rateLimitedGateway serves a gateway of 1 request per second per user,
// burst 3, on clk's time.
func rateLimitedGateway(t *testing.T, audit *recordingAudit, clk *clock) (*Gateway, store, *echoForwarder, string) {
	t.Helper()
	db := openSQLite(t)
	fwd := &echoForwarder{}
	public, _ := ParseRoomPatterns("lobby*")
	g := newGateway(t, Config{
		Sessions: db, Audit: audit, PublicRooms: public, Events: fwd,
		EventRate: 1, EventBurst: 3, Now: clk.Now,
	})
	_, url := serve(t, g)
	return g, db, fwd, url
}

// TestEventRateLimitPerUser: two sockets of user 42 share one bucket of 3
// tokens (client events and subscribes alike); the 4th request is refused
// RATE_LIMITED with the time until a token, and not carried out (no
// forward, no join); user 43 is unaffected; a token comes back with the
// clock. The 4 refusals of the window are audited as 2 records (the first
// at once, the rest at the window's end) counting 4.
func TestEventRateLimitPerUser(t *testing.T) {
	audit := newRecordingAudit(nil)
	clk := &clock{now: time.Now()}
	g, db, fwd, url := rateLimitedGateway(t, audit, clk)
	expire := time.Now().Add(time.Hour)
	_, cookieA := saveSession(t, db, `"42"`, expire)
	_, cookieB := saveSession(t, db, `"42"`, expire)
	_, cookieOther := saveSession(t, db, `"43"`, expire)
	a := dial(t, url, browser{cookie: cookieA})
	b := dial(t, url, browser{cookie: cookieB, transport: siotest.Polling})
	other := dial(t, url, browser{cookie: cookieOther})
	for _, c := range []*siotest.Client{a, b, other} {
		connected(t, c)
	}

	if ack := ackOf(t, a, "incident:ack", 1); !ack.OK {
		t.Fatalf("first event: %+v", ack.Error)
	}
	if ack := ackOf(t, b, EventSubscribe, map[string]any{"room": "lobby"}); !ack.OK {
		t.Fatalf("subscribe: %+v", ack.Error)
	}
	if ack := ackOf(t, b, "incident:ack", 2); !ack.OK {
		t.Fatalf("third request: %+v", ack.Error)
	}
	wantLimited(t, "4th request (event)", ackOf(t, a, "incident:ack", 3), 1000)
	wantLimited(t, "subscribe over the limit", ackOf(t, b, EventSubscribe, map[string]any{"room": "lobby2"}), 1000)
	wantLimited(t, "unsubscribe over the limit", ackOf(t, b, EventUnsubscribe, map[string]any{"room": "lobby"}), 1000)
	if n := fwd.calls.Load(); n != 2 {
		t.Errorf("%d forwards, want 2 (refused events are not forwarded)", n)
	}
	if ack := ackOf(t, other, "incident:ack", 1); !ack.OK {
		t.Errorf("another user: %+v", ack.Error)
	}

	// Half a token: still refused, with the rest of the wait.
	clk.Set(clk.Now().Add(500 * time.Millisecond))
	wantLimited(t, "after 500ms", ackOf(t, a, "incident:ack", 4), 500)
	clk.Set(clk.Now().Add(500 * time.Millisecond))
	if ack := ackOf(t, b, EventSubscribe, map[string]any{"room": "lobby2"}); !ack.OK {
		t.Errorf("after a refill: %+v", ack.Error)
	}
	for name, c := range map[string]*siotest.Client{"a": a, "b": b, "other": other} {
		stillConnected(t, name, c)
	}

	// The first refusal at once, the other three as one record at Close.
	first := audit.waitFor(t, "rate limited", action(sessiongate.ActionRateLimited, sessiongate.ECodeRateLimited))
	if first.Severity != sessiongate.SeverityWarn || first.UserID != "42" || first.SessionHash == "" || first.Count != 1 {
		t.Errorf("first record %+v, want WARN of user 42 counting 1", first)
	}
	closeGateway(t, g)
	records, total := rateLimitedRecords(audit, sessiongate.ECodeRateLimited)
	if records != 2 || total != 4 {
		t.Errorf("%d records counting %d refusals, want 2 counting 4", records, total)
	}
}

// TestEventRateLimitDisconnect: a socket that goes on past 10 × burst
// refusals in the window gets its last ack, then rate_limited
// {"retryAfterMs"} and the server's disconnect; the user's other socket
// stays. The refusals and the disconnect are a handful of audit records.
func TestEventRateLimitDisconnect(t *testing.T) {
	audit := newRecordingAudit(nil)
	clk := &clock{now: time.Now()}
	g, db, fwd, url := rateLimitedGateway(t, audit, clk)
	expire := time.Now().Add(time.Hour)
	_, cookieA := saveSession(t, db, `"42"`, expire)
	_, cookieB := saveSession(t, db, `"42"`, expire)
	flood := dial(t, url, browser{cookie: cookieA})
	calm := dial(t, url, browser{cookie: cookieB})
	connected(t, flood)
	connected(t, calm)
	for i := range 3 {
		if ack := ackOf(t, flood, "incident:ack", i); !ack.OK {
			t.Fatalf("event %d: %+v", i, ack.Error)
		}
	}
	const far = farOverFactor*3 + 1
	for i := range far - 1 {
		wantLimited(t, "refusal", ackOf(t, flood, "incident:ack", i), 1000)
	}
	stillConnected(t, "flood before the limit", flood)
	// Its ack is read after the disconnect: EmitWithAck may report the
	// disconnect first when both have arrived.
	last, err := flood.EmitAsync(context.Background(), "incident:ack", far)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d, err := flood.WaitDisconnect(ctx)
	if err != nil || d.Reason != siotest.ReasonServerDisconnect {
		t.Fatalf("disconnect %+v, %v; want %s", d, err, siotest.ReasonServerDisconnect)
	}
	select {
	case args := <-last: // read before the DISCONNECT that followed it
		var a subAck
		if len(args) != 1 || json.Unmarshal(args[0], &a) != nil {
			t.Fatalf("last ack %s, want one JSON object", args)
		}
		wantLimited(t, "last refusal", a, 1000)
	case <-ctx.Done():
		t.Fatal("no ack of the request that crossed the line")
	}
	ev, err := flood.WaitEvent(ctx, EventRateLimited)
	if err != nil {
		t.Fatalf("no %s before the disconnect: %v", EventRateLimited, err)
	}
	var payload struct {
		RetryAfterMs int64 `json:"retryAfterMs"`
	}
	if len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &payload) != nil || payload.RetryAfterMs != 1000 {
		t.Errorf("%s args %s, want {\"retryAfterMs\":1000}", EventRateLimited, ev.Args)
	}
	stillConnected(t, "calm", calm)
	wantLimited(t, "calm shares the empty bucket", ackOf(t, calm, "incident:ack", 0), 1000)
	if n := fwd.calls.Load(); n != 3 {
		t.Errorf("%d forwards, want 3", n)
	}

	audit.waitFor(t, "disconnect record", action(sessiongate.ActionRateLimited, rateLimitedDisconnected))
	closeGateway(t, g)
	records, total := rateLimitedRecords(audit, sessiongate.ECodeRateLimited)
	if records != 2 || total != far+1 {
		t.Errorf("%d records counting %d refusals, want 2 counting %d", records, total, far+1)
	}
	if records, total := rateLimitedRecords(audit, rateLimitedDisconnected); records != 1 || total != 1 {
		t.Errorf("%d disconnect records counting %d, want 1", records, total)
	}
}

// closeGateway closes g, which writes the window's aggregates.
func closeGateway(t *testing.T, g *Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// rateLimitedRecords returns the SOCKET_RATE_LIMITED records of user 42
// with details, and the events they stand for.
func rateLimitedRecords(audit *recordingAudit, details string) (records, total int) {
	audit.mu.Lock()
	defer audit.mu.Unlock()
	for _, ev := range audit.events {
		if ev.Action == sessiongate.ActionRateLimited && ev.Details == details && ev.UserID == "42" {
			records++
			total += max(1, ev.Count)
		}
	}
	return records, total
}

func TestNewUserLimits(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
		want  int
	}{{20, 0, 40}, {0.2, 0, 1}, {1.5, 0, 3}, {5, 7, 7}} {
		if l := newUserLimits(tc.rate, tc.burst); l.lim == nil || l.burst != tc.want {
			t.Errorf("newUserLimits(%v, %d) burst %d, want %d", tc.rate, tc.burst, l.burst, tc.want)
		}
	}
	if l := newUserLimits(0, 5); l.lim != nil {
		t.Error("rate 0 limits")
	}
	if _, err := New(Config{Sessions: openSQLite(t), Audit: newRecordingAudit(nil), Secrets: [][]byte{[]byte("s")}, EventRate: -1}); err == nil {
		t.Error("negative EventRate accepted")
	}
}
