package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/hook"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

// TestEventsURL: with EVENTS_URL and CLIENT_EVENTS, serve forwards an
// allowed client event, signed with HOOK_SECRET and with the socket's
// cookie, and the answer is the ack; another name is UNKNOWN_EVENT.
func TestEventsURL(t *testing.T) {
	type got struct{ body, cookie string }
	calls := make(chan got, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !hook.Verify([]byte("hook secret"), b, r.Header.Get(hook.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		calls <- got{string(b), r.Header.Get("Cookie")}
		io.WriteString(w, `{"done":true}`)
	}))
	defer app.Close()
	nodes := startCluster(t, 1, map[string]string{"EVENTS_URL": app.URL + "/hooks/events", "HOOK_SECRET": "hook secret", "CLIENT_EVENTS": "incident:*"})
	cookie, _ := login(t, nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := siotest.Dial(ctx, nodes[0], siotest.Options{Header: http.Header{"Cookie": {cookie}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sid, err := c.Connected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	args, err := c.EmitWithAck(ctx, "incident:ack", map[string]int{"id": 7})
	if err != nil || len(args) != 1 || string(args[0]) != `{"done":true}` {
		t.Fatalf("incident:ack = %s, %v; want the application's answer", args, err)
	}
	call := <-calls
	if call.cookie != cookie || !strings.Contains(call.body, `"socket":"`+sid+`"`) || !strings.Contains(call.body, `"event":"incident:ack","args":[{"id":7}]`) {
		t.Errorf("the application got %+v", call)
	}
	args, err = c.EmitWithAck(ctx, "chat", "x")
	if err != nil || len(args) != 1 || !strings.Contains(string(args[0]), `"code":"UNKNOWN_EVENT"`) {
		t.Errorf("chat (outside CLIENT_EVENTS) = %s, %v; want UNKNOWN_EVENT", args, err)
	}
}

// TestDemoClientEvent: in the demo, with no EVENTS_URL, the demo's rule
// answers incident:ack through the same hook path; other events are
// UNKNOWN_EVENT.
func TestDemoClientEvent(t *testing.T) {
	_, _, base := startMain(t, map[string]string{"DEMO": "true", "DEMO_PASSWORD": "demo password", "SESSION_SECRETS": ""})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, body := post(t, base+"/auth/login", `{"email":"alice@example.com","password":"demo password"}`, nil)
	if res.StatusCode != 200 {
		t.Fatalf("login = %d %s", res.StatusCode, body)
	}
	cookie, _, _ := strings.Cut(res.Header.Get("Set-Cookie"), ";")
	c, err := siotest.Dial(ctx, base, siotest.Options{Header: http.Header{"Cookie": {cookie}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		event string
		arg   any
		want  string
	}{
		{"incident:ack", map[string]int{"id": 7}, `{"ackedBy":"alice@example.com","id":7,"ok":true}`},
		{"incident:ack", "no id", `{"error":{"code":"REJECTED","message":"the application refused the event (422)"}}`},
		{"chat", "x", `{"error":{"code":"UNKNOWN_EVENT","message":"unknown event"}}`},
	} {
		args, err := c.EmitWithAck(ctx, tc.event, tc.arg)
		if err != nil || len(args) != 1 {
			t.Fatalf("%s: %v %s", tc.event, err, args)
		}
		if string(args[0]) != tc.want {
			t.Errorf("%s %v = %s, want %s", tc.event, tc.arg, args[0], tc.want)
		}
	}
}
