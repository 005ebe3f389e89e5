package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/expressapp"
	"github.com/sessiongate/sessiongate/internal/hook"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

const (
	testHookSecret = "hook secret"
	expressUsers   = "alice@example.com:wonderland:1,bob@example.com:builder:2"
)

// subAck is a subscribe or unsubscribe acknowledgement as a client reads it.
type subAck struct {
	OK    bool `json:"ok"`
	Error *struct {
		Code         string `json:"code"`
		Message      string `json:"message"`
		Temporary    bool   `json:"temporary"`
		RetryAfterMs int64  `json:"retryAfterMs"`
	} `json:"error"`
}

func (a subAck) code() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

// ask emits event with payload and returns the decoded acknowledgement.
func ask(t *testing.T, c *siotest.Client, event string, payload ...any) subAck {
	t.Helper()
	a, err := askErr(c, event, payload...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// askErr is ask for another goroutine than the test's.
func askErr(c *siotest.Client, event string, payload ...any) (subAck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	args, err := c.EmitWithAck(ctx, event, payload...)
	if err != nil {
		return subAck{}, fmt.Errorf("%s: %w", event, err)
	}
	var a subAck
	if len(args) != 1 || json.Unmarshal(args[0], &a) != nil {
		return subAck{}, fmt.Errorf("%s ack %s, want one {ok, error?}", event, args)
	}
	if a.OK != (a.Error == nil) {
		return subAck{}, fmt.Errorf("%s ack %s: ok and error disagree", event, args[0])
	}
	return a, nil
}

// askAsync runs askErr in a goroutine; the channel gets the ack, or a
// zero subAck after reporting the error.
func askAsync(t *testing.T, c *siotest.Client, event string, payload ...any) <-chan subAck {
	ch := make(chan subAck, 1)
	go func() {
		a, err := askErr(c, event, payload...)
		if err != nil {
			t.Error(err)
		}
		ch <- a
	}()
	return ch
}

func room(name string) map[string]string { return map[string]string{"room": name} }

// login logs in to the Express app and returns the Cookie header.
func login(t *testing.T, app, email, password string) string {
	t.Helper()
	resp := post(t, app+"/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: %s", email, resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == DefaultCookieName {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatal("login set no connect.sid cookie")
	return ""
}

// socketID waits until c is connected and returns its socket id.
func socketID(t *testing.T, c *siotest.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	id, err := c.Connected(ctx)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return id
}

// hookCounts returns the fixture's hook call counters.
func hookCounts(t *testing.T, app string) (subscribe, slow int) {
	t.Helper()
	resp, err := http.Get(app + "/hooks/count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n struct{ Subscribe, Slow int }
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		t.Fatal(err)
	}
	return n.Subscribe, n.Slow
}

func newHook(t *testing.T, url, secret string, timeout time.Duration) Authorizer {
	t.Helper()
	c, err := hook.New(hook.Config{URL: url, Secret: []byte(secret), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdle)
	return HookAuthorizer(c)
}

// received reports whether c got event before the marker event, which the
// test emits to c's user room after event: one publisher's emits reach a
// socket in order, so the marker's arrival settles whether event came.
func received(t *testing.T, c *siotest.Client, event, marker string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.WaitEvent(ctx, marker); err != nil {
		t.Fatalf("marker %s: %v", marker, err)
	}
	for _, ev := range c.Events() {
		if ev.Name == event {
			return true
		}
	}
	return false
}

// TestSubscribeExpress: the real Express app (express-session,
// connect-pg-simple, passport) decides subscriptions from req.user, which
// its session middleware reads from the forwarded cookie.
func TestSubscribeExpress(t *testing.T) {
	db, dbURL := openPostgres(t)
	app := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: testSecret, Users: expressUsers, HookSecret: testHookSecret})
	public, err := ParseRoomPatterns("news:*, lobby")
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, Config{
		Sessions: db, Revocations: db, Audit: db,
		PublicRooms: public,
		Authorizer:  newHook(t, app+"/hooks/subscribe", testHookSecret, 5*time.Second),
	})
	run(t, g)
	ns, url := serve(t, g)
	ctx := context.Background()

	aliceCookie := login(t, app, "alice@example.com", "wonderland")
	bobCookie := login(t, app, "bob@example.com", "builder")
	alice := dial(t, url, browser{cookie: aliceCookie})
	bob := dial(t, url, browser{cookie: bobCookie})
	aliceID := socketID(t, alice)
	connected(t, bob)
	calls, _ := hookCounts(t, app)
	wantCalls := func(what string, n int) {
		t.Helper()
		if got, _ := hookCounts(t, app); got != calls+n {
			t.Errorf("%s: %d hook calls, want %d", what, got-calls, n)
		}
		calls += n
	}

	// Allowed through the hook with alice's cookie, and delivered.
	if a := ask(t, alice, EventSubscribe, room("incident:7")); !a.OK {
		t.Fatalf("alice subscribe incident:7: %+v", a.Error)
	}
	wantCalls("alice incident:7", 1)
	if err := ns.To("incident:7").Emit(ctx, "incident", "7 updated"); err != nil {
		t.Fatal(err)
	}
	ns.To("user:1").Emit(ctx, "marker1")
	if !received(t, alice, "incident", "marker1") {
		t.Error("alice did not receive the event published to incident:7")
	}

	// The same answer for bob's cookie is no.
	if a := ask(t, bob, EventSubscribe, room("incident:7")); a.code() != sessiongate.ECodeForbidden || a.Error.Temporary {
		t.Errorf("bob subscribe incident:7: %+v, want FORBIDDEN (final)", a.Error)
	}
	wantCalls("bob incident:7", 1)

	// The status mapping, against the real app.
	for _, tc := range []struct {
		room, code string
	}{
		{"admin:1", sessiongate.ECodeForbidden},     // 403
		{"broken:1", sessiongate.ECodeUnavailable},  // 500
		{"notjson:1", sessiongate.ECodeUnavailable}, // 200, not JSON
	} {
		a := ask(t, alice, EventSubscribe, room(tc.room))
		if a.code() != tc.code || a.Error.Temporary != (tc.code == sessiongate.ECodeUnavailable) {
			t.Errorf("subscribe %s: %+v, want %s", tc.room, a.Error, tc.code)
		}
	}
	wantCalls("status mapping", 3)

	// Decided without the application.
	if a := ask(t, alice, EventSubscribe, room("user:2")); a.code() != sessiongate.ECodeForbidden {
		t.Errorf("subscribe user:2: %+v, want FORBIDDEN", a.Error)
	}
	if a := ask(t, alice, EventSubscribe, room("user:1")); a.code() != sessiongate.ECodeForbidden {
		t.Errorf("subscribe user:1 (its own): %+v, want FORBIDDEN", a.Error)
	}
	for _, r := range []string{"lobby", "news:", "news:eu:7"} {
		if a := ask(t, bob, EventSubscribe, room(r)); !a.OK {
			t.Errorf("bob subscribe public %s: %+v", r, a.Error)
		}
	}
	for _, payload := range [][]any{
		{room("")}, {room(strings.Repeat("x", MaxRoomLen+1))}, {room("a\nb")}, {"incident:7"},
		{map[string]any{"room": 7}}, {map[string]any{}}, {},
	} {
		if a := ask(t, bob, EventSubscribe, payload...); a.code() != sessiongate.ECodeInvalidRoom {
			t.Errorf("subscribe %v: %+v, want INVALID_ROOM", payload, a.Error)
		}
	}
	wantCalls("rules before the hook", 0)

	// Without an ack, a subscribe is still done.
	if err := bob.Emit(ctx, EventSubscribe, room("news:quiet")); err != nil {
		t.Fatal(err)
	}
	ask(t, bob, EventSubscribe, room("lobby")) // handled after the one above
	ns.To("news:quiet").Emit(ctx, "quiet")
	ns.To("user:2").Emit(ctx, "marker2")
	if !received(t, bob, "quiet", "marker2") {
		t.Error("a subscribe without an ack was not done")
	}

	// Unsubscribe ends delivery; the user's room cannot be left.
	if a := ask(t, alice, EventUnsubscribe, room("incident:7")); !a.OK {
		t.Fatalf("unsubscribe: %+v", a.Error)
	}
	ns.To("incident:7").Emit(ctx, "after-unsubscribe")
	ns.To("user:1").Emit(ctx, "marker3")
	if received(t, alice, "after-unsubscribe", "marker3") {
		t.Error("alice still receives incident:7 after unsubscribing")
	}
	if a := ask(t, alice, EventUnsubscribe, room("user:1")); a.code() != sessiongate.ECodeForbidden {
		t.Errorf("unsubscribe user:1: %+v, want FORBIDDEN", a.Error)
	}
	if a := ask(t, alice, EventUnsubscribe, room("never-joined")); !a.OK {
		t.Errorf("unsubscribe a room not joined: %+v, want ok", a.Error)
	}
	if a := ask(t, alice, EventUnsubscribe, room("")); a.code() != sessiongate.ECodeInvalidRoom {
		t.Errorf("unsubscribe \"\": %+v, want INVALID_ROOM", a.Error)
	}
	// A room the server joined stays the server's.
	ns.To(aliceID).SocketsJoin(ctx, "ops")
	if a := ask(t, alice, EventUnsubscribe, room("ops")); a.code() != sessiongate.ECodeForbidden {
		t.Errorf("unsubscribe a room the server joined: %+v, want FORBIDDEN", a.Error)
	}

	// A subscription the server ended (a room operation) is asked for
	// again, not taken as still there.
	if a := ask(t, bob, EventSubscribe, room("news:gone")); !a.OK {
		t.Fatalf("bob subscribe news:gone: %+v", a.Error)
	}
	ns.To("user:2").SocketsLeave(ctx, "news:gone")
	if a := ask(t, bob, EventSubscribe, room("news:gone")); !a.OK {
		t.Fatalf("bob subscribe news:gone again: %+v", a.Error)
	}
	ns.To("news:gone").Emit(ctx, "back")
	ns.To("user:2").Emit(ctx, "marker4")
	if !received(t, bob, "back", "marker4") {
		t.Error("a subscribe after the server removed the room did not join it again")
	}

	// The allowed decision (ttl 60) is reused.
	if a := ask(t, alice, EventSubscribe, room("incident:7")); !a.OK {
		t.Fatalf("alice subscribe incident:7 again: %+v", a.Error)
	}
	wantCalls("cached decision", 0)

	// Ten tabs of one session subscribing at once ask once.
	tabsCookie := login(t, app, "alice@example.com", "wonderland")
	tabs := make([]*siotest.Client, 10)
	for i := range tabs {
		tabs[i] = dial(t, url, browser{cookie: tabsCookie})
	}
	for _, c := range tabs {
		connected(t, c)
	}
	var acks []<-chan subAck
	for _, c := range tabs {
		acks = append(acks, askAsync(t, c, EventSubscribe, room("incident:9")))
	}
	for i, ch := range acks {
		if a := <-ch; !a.OK {
			t.Errorf("tab %d: %+v", i, a.Error)
		}
	}
	wantCalls("ten tabs", 1)

	// Subscriptions end with the session: logging out in the app ends the
	// sockets, and with them their rooms.
	if resp := post(t, app+"/logout", aliceCookie, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: %s", resp.Status)
	}
	ended(t, alice, "") // logged_out or revoked, as the row goes
	for _, s := range ns.Sockets("incident:7") {
		if s.ID() == aliceID {
			t.Error("alice's ended socket is still in incident:7")
		}
	}
}

// TestSubscribeForgedSignature: the fixture refuses a hook call signed with
// another secret (401, FORBIDDEN) and one without a signature.
func TestSubscribeForgedSignature(t *testing.T) {
	db, dbURL := openPostgres(t)
	app := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: testSecret, Users: expressUsers, HookSecret: testHookSecret})
	g := newGateway(t, Config{Sessions: db, Audit: db, Authorizer: newHook(t, app+"/hooks/subscribe", "not the secret", 5*time.Second)})
	_, url := serve(t, g)
	alice := dial(t, url, browser{cookie: login(t, app, "alice@example.com", "wonderland")})
	connected(t, alice)
	if a := ask(t, alice, EventSubscribe, room("incident:7")); a.code() != sessiongate.ECodeForbidden {
		t.Errorf("forged signature: %+v, want FORBIDDEN", a.Error)
	}

	body := `{"user":"1","room":"incident:7","socket":"x","session":"y"}`
	for name, sig := range map[string]string{"absent": "", "forged": hook.Sign([]byte("not the secret"), []byte(body)), "garbage": "sha256=zz"} {
		req, _ := http.NewRequest(http.MethodPost, app+"/hooks/subscribe", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set(hook.SignatureHeader, sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s signature: %s, want 401", name, resp.Status)
		}
	}
}

// TestSubscribeHookHangs: a hook that never answers makes that subscribe
// UNAVAILABLE (temporary) at the timeout, while other sockets' subscribes,
// to public rooms and through the same hook, are answered meanwhile.
func TestSubscribeHookHangs(t *testing.T) {
	db, dbURL := openPostgres(t)
	app := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: testSecret, Users: expressUsers, HookSecret: testHookSecret})
	const timeout = 2 * time.Second
	public, _ := ParseRoomPatterns("lobby")
	g := newGateway(t, Config{
		Sessions: db, Audit: db, PublicRooms: public,
		Authorizer:       newHook(t, app+"/hooks/slow", testHookSecret, timeout),
		SubscribeTimeout: timeout,
	})
	_, url := serve(t, g)
	cookie := login(t, app, "alice@example.com", "wonderland")
	hung, other, third := dial(t, url, browser{cookie: cookie}), dial(t, url, browser{cookie: cookie}), dial(t, url, browser{cookie: cookie})
	for _, c := range []*siotest.Client{hung, other, third} {
		connected(t, c)
	}

	start := time.Now()
	hungAck := askAsync(t, hung, EventSubscribe, room("incident:7"))
	thirdAck := askAsync(t, third, EventSubscribe, room("incident:8"))

	if a := ask(t, other, EventSubscribe, room("lobby")); !a.OK {
		t.Errorf("public room while the hook hangs: %+v", a.Error)
	}
	select {
	case <-hungAck:
		t.Error("the hung subscribe was answered before the other socket's")
	default:
	}
	for name, ch := range map[string]<-chan subAck{"incident:7": hungAck, "incident:8": thirdAck} {
		a := <-ch
		if a.code() != sessiongate.ECodeUnavailable || !a.Error.Temporary {
			t.Errorf("%s with a hung hook: %+v, want UNAVAILABLE (temporary)", name, a.Error)
		}
	}
	t.Logf("UNAVAILABLE after %v (timeout %v)", time.Since(start), timeout)
	if _, slow := hookCounts(t, app); slow != 2 {
		t.Errorf("%d calls to the hung hook, want 2 (one per room, concurrently)", slow)
	}
	stillConnected(t, "hung", hung)
}
