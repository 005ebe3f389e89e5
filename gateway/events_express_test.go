package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/expressapp"
	"github.com/sessiongate/sessiongate/internal/hook"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

// eventAck is a client event's acknowledgement: the fixture's echo, or an
// error.
type eventAck struct {
	OK    bool            `json:"ok"`
	User  json.Number     `json:"user"`
	Event string          `json:"event"`
	Args  json.RawMessage `json:"args"`
	Seq   int             `json:"seq"`
	Error *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Temporary bool   `json:"temporary"`
	} `json:"error"`
}

func (a eventAck) code() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

func decodeEventAck(t *testing.T, event string, args []json.RawMessage) eventAck {
	t.Helper()
	var a eventAck
	if len(args) != 1 || json.Unmarshal(args[0], &a) != nil {
		t.Errorf("%s ack %s, want one JSON object", event, args)
	}
	return a
}

// call emits event with payload, asking for an ack, and returns it.
func call(t *testing.T, c *siotest.Client, event string, payload ...any) eventAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	args, err := c.EmitWithAck(ctx, event, payload...)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	return decodeEventAck(t, event, args)
}

// callAsync sends event and returns the channel of its ack.
func callAsync(t *testing.T, c *siotest.Client, event string, payload ...any) <-chan []json.RawMessage {
	t.Helper()
	ch, err := c.EmitAsync(context.Background(), event, payload...)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	return ch
}

func awaitAck(t *testing.T, event string, ch <-chan []json.RawMessage) eventAck {
	t.Helper()
	select {
	case args := <-ch:
		return decodeEventAck(t, event, args)
	case <-time.After(waitTimeout):
		t.Fatalf("no ack of %s", event)
	}
	return eventAck{}
}

// eventCalls returns the fixture's count of /hooks/events calls.
func eventCalls(t *testing.T, app string) int {
	t.Helper()
	resp, err := http.Get(app + "/hooks/count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n struct{ Events int }
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		t.Fatal(err)
	}
	return n.Events
}

func newForwarder(t *testing.T, url string, timeout time.Duration) EventForwarder {
	t.Helper()
	c, err := hook.New(hook.Config{URL: url, Secret: []byte(testHookSecret), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdle)
	return HookForwarder(c)
}

// TestClientEventsExpress: client events reach the real Express app with
// the socket's cookie (req.user through express-session and passport), and
// its answer is the ack; 4xx is REJECTED, 5xx UNAVAILABLE; names outside
// CLIENT_EVENTS and the gateway's own events are not forwarded; the events
// of one socket reach the app in order.
func TestClientEventsExpress(t *testing.T) {
	db, dbURL := openPostgres(t)
	app := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: testSecret, Users: expressUsers, HookSecret: testHookSecret})
	allowed, err := ParseRoomPatterns("incident:*, reject, fail, seq")
	if err != nil {
		t.Fatal(err)
	}
	public, _ := ParseRoomPatterns("lobby")
	g := newGateway(t, Config{
		Sessions: db, Audit: db, PublicRooms: public,
		Events:       newForwarder(t, app+"/hooks/events", 5*time.Second),
		ClientEvents: allowed,
	})
	ns, url := serve(t, g)
	// An application's own handler takes precedence over forwarding.
	ns.On("incident:local", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		ack(map[string]any{"ok": true, "event": "local"})
	})
	alice := dial(t, url, browser{cookie: login(t, app, "alice@example.com", "wonderland")})
	bob := dial(t, url, browser{cookie: login(t, app, "bob@example.com", "builder")})
	connected(t, alice)
	connected(t, bob)
	calls := eventCalls(t, app)
	wantCalls := func(what string, n int) {
		t.Helper()
		if got := eventCalls(t, app); got != calls+n {
			t.Errorf("%s: %d event hook calls, want %d", what, got-calls, n)
		}
		calls += n
	}

	// Forwarded with each socket's cookie: the app's req.user answers.
	for _, tc := range []struct {
		c    *siotest.Client
		user string
	}{{alice, "1"}, {bob, "2"}} {
		a := call(t, tc.c, "incident:ack", map[string]any{"id": 7})
		if !a.OK || a.User.String() != tc.user || a.Event != "incident:ack" || string(a.Args) != `[{"id":7}]` {
			t.Errorf("user %s incident:ack: %+v (args %s), want the app's echo for user %s", tc.user, a, a.Args, tc.user)
		}
	}
	wantCalls("two forwarded events", 2)

	// Several arguments, and none, are forwarded as the args array.
	if a := call(t, alice, "incident:note", "a", 2.5, nil); string(a.Args) != `["a",2.5,null]` {
		t.Errorf("args %s, want [\"a\",2.5,null]", a.Args)
	}
	if a := call(t, alice, "incident:none"); string(a.Args) != `[]` {
		t.Errorf("no args: %s, want []", a.Args)
	}
	wantCalls("args", 2)

	// The status mapping.
	if a := call(t, alice, "reject"); a.code() != sessiongate.ECodeRejected || a.Error.Temporary {
		t.Errorf("reject (422): %+v, want REJECTED (final)", a.Error)
	}
	if a := call(t, alice, "fail"); a.code() != sessiongate.ECodeUnavailable || !a.Error.Temporary {
		t.Errorf("fail (500): %+v, want UNAVAILABLE (temporary)", a.Error)
	}
	wantCalls("status mapping", 2)

	// Not forwarded: a name outside CLIENT_EVENTS, the gateway's own
	// events, a Go handler's event.
	if a := call(t, alice, "chat:hello", "x"); a.code() != sessiongate.ECodeUnknownEvent {
		t.Errorf("chat:hello (outside CLIENT_EVENTS): %+v, want UNKNOWN_EVENT", a.Error)
	}
	if a := ask(t, alice, EventSubscribe, room("lobby")); !a.OK {
		t.Errorf("subscribe lobby: %+v", a.Error)
	}
	if a := call(t, alice, "incident:local"); !a.OK || a.Event != "local" {
		t.Errorf("incident:local: %+v, want the Go handler's answer", a)
	}
	if err := alice.Emit(context.Background(), "chat:quiet"); err != nil { // no ack: dropped
		t.Fatal(err)
	}
	wantCalls("not forwarded", 0)

	// Without an ack an allowed event is still forwarded; the answer is
	// dropped. The next acked event is handled after it.
	if err := alice.Emit(context.Background(), "incident:fire"); err != nil {
		t.Fatal(err)
	}
	call(t, alice, "incident:after")
	wantCalls("an event without an ack", 2)

	// Order per socket: 20 events sent without waiting reach the app one
	// after the other (its call counter grows with them) and their acks
	// come back in that order.
	acks := make([]<-chan []json.RawMessage, 20)
	for i := range acks {
		acks[i] = callAsync(t, bob, "seq", map[string]any{"n": i})
	}
	prev := 0
	for i, ch := range acks {
		a := awaitAck(t, "seq", ch)
		if want := `[{"n":` + itoa(i) + `}]`; string(a.Args) != want || a.Seq <= prev {
			t.Errorf("seq %d: args %s seq %d after %d, want %s after a smaller seq", i, a.Args, a.Seq, prev, want)
		}
		prev = a.Seq
	}
	wantCalls("20 in order", 20)

	// The fixture refuses a call signed with another secret: 401, REJECTED.
	c, err := hook.New(hook.Config{URL: app + "/hooks/events", Secret: []byte("not the secret")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	_, err = HookForwarder(c).Forward(context.Background(), EventRequest{User: "1", Event: "incident:ack", Args: []any{}})
	if rej := (*RejectedError)(nil); !errors.As(err, &rej) || rej.Status != http.StatusUnauthorized {
		t.Errorf("forged signature: %v, want a 401 refusal", err)
	}
	wantCalls("forged", 1)
	stillConnected(t, "alice", alice)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestClientEventsHookHangs: an event whose call hangs is UNAVAILABLE
// (temporary) at HOOK_TIMEOUT, and only that socket waits: another
// socket's event is answered meanwhile; the socket goes on afterwards.
func TestClientEventsHookHangs(t *testing.T) {
	db, dbURL := openPostgres(t)
	app := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: testSecret, Users: expressUsers, HookSecret: testHookSecret})
	const timeout = 2 * time.Second
	g := newGateway(t, Config{Sessions: db, Audit: db, Events: newForwarder(t, app+"/hooks/events", timeout)})
	_, url := serve(t, g)
	cookie := login(t, app, "alice@example.com", "wonderland")
	hung, other := dial(t, url, browser{cookie: cookie}), dial(t, url, browser{cookie: cookie})
	connected(t, hung)
	connected(t, other)

	start := time.Now()
	slow := callAsync(t, hung, "slow")
	next := callAsync(t, hung, "incident:next") // waits behind slow: same socket
	if a := call(t, other, "incident:ack", map[string]any{"id": 1}); !a.OK {
		t.Errorf("other socket while the hook hangs: %+v", a)
	}
	select {
	case <-slow:
		t.Error("the hung event was answered before the other socket's")
	default:
	}
	a := awaitAck(t, "slow", slow)
	if a.code() != sessiongate.ECodeUnavailable || !a.Error.Temporary {
		t.Errorf("slow: %+v, want UNAVAILABLE (temporary)", a.Error)
	}
	t.Logf("UNAVAILABLE after %v (timeout %v)", time.Since(start), timeout)
	if a := awaitAck(t, "incident:next", next); !a.OK || a.Event != "incident:next" {
		t.Errorf("the event after the hung one: %+v, want the echo", a)
	}
	stillConnected(t, "hung", hung)
}

// TestClientEventsWithoutURL: without EVENTS_URL client events are
// UNKNOWN_EVENT when acked and dropped otherwise; subscribe still works.
func TestClientEventsWithoutURL(t *testing.T) {
	db, _ := openPostgres(t)
	public, _ := ParseRoomPatterns("lobby")
	g := newGateway(t, Config{Sessions: db, Audit: db, PublicRooms: public})
	_, url := serve(t, g)
	_, cookie := saveSession(t, db, "1", time.Now().Add(time.Hour))
	c := dial(t, url, browser{cookie: cookie})
	connected(t, c)
	if a := call(t, c, "incident:ack", map[string]any{"id": 7}); a.code() != sessiongate.ECodeUnknownEvent || a.Error.Temporary || a.Error.Message == "" {
		t.Errorf("without EVENTS_URL: %+v, want UNKNOWN_EVENT (final, with a message)", a.Error)
	}
	if err := c.Emit(context.Background(), "incident:quiet"); err != nil {
		t.Fatal(err)
	}
	if a := ask(t, c, EventSubscribe, room("lobby")); !a.OK {
		t.Errorf("subscribe lobby: %+v", a.Error)
	}
	stillConnected(t, "client", c)
}

// TestHoldsBinary: binary arguments, at any depth, are refused
// (INVALID_EVENT) rather than forwarded.
func TestHoldsBinary(t *testing.T) {
	for _, tc := range []struct {
		args []any
		want bool
	}{
		{nil, false},
		{[]any{"a", 1.0, nil, map[string]any{"x": []any{true}}}, false},
		{[]any{[]byte{1}}, true},
		{[]any{map[string]any{"x": []any{"a", []byte{}}}}, true},
	} {
		if got := holdsBinary(tc.args); got != tc.want {
			t.Errorf("holdsBinary(%v) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

// TestHookForwarderStatuses: how HookForwarder classifies the answers the
// fixture does not give (a 200 that is not JSON, a redirect).
func TestHookForwarderStatuses(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		rejected bool
		err      bool
	}{
		{200, `{"ok":true}`, false, false},
		{200, `[1,"x"]`, false, false},
		{200, `yes`, false, true},
		{200, ``, false, true},
		{302, ``, false, true},
		{404, `{"error":"x"}`, true, true},
		{503, ``, false, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Cookie") != "c=1" || !strings.HasPrefix(r.Header.Get(hook.SignatureHeader), "sha256=") {
				t.Errorf("headers %v: want the cookie and a signature", r.Header)
			}
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}))
		f := newForwarder(t, srv.URL, 5*time.Second)
		got, err := f.Forward(context.Background(), EventRequest{User: "1", Event: "e", Args: []any{}, Cookie: "c=1"})
		var rej *RejectedError
		if (err != nil) != tc.err || errors.As(err, &rej) != tc.rejected || (err == nil && string(got) != tc.body) {
			t.Errorf("%d %q: %s, %v", tc.status, tc.body, got, err)
		}
		srv.Close()
	}
}
