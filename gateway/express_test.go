package gateway

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/expressapp"
)

// post sends a JSON POST and returns the response, body drained.
func post(t *testing.T, url, cookie, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestExpressInterop is the headline test: a user logs in to a real Express
// app (express-session + connect-pg-simple + passport), the gateway admits
// the socket.io-client carrying that cookie, the Express app logs the user
// out, and the sockets get session_expired and "io server disconnect"
// within 1 second.
func TestExpressInterop(t *testing.T) {
	db, dbURL := openPostgres(t)
	app := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: testSecret, Users: "alice@example.com:wonderland:42"})

	audit := newRecordingAudit(db)
	g := newGateway(t, Config{Sessions: db, Revocations: db, Audit: audit})
	run(t, g)
	_, url := serve(t, g)

	resp := post(t, app+"/login", "", `{"email":"alice@example.com","password":"wonderland"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s", resp.Status)
	}
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == DefaultCookieName {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatal("login set no connect.sid cookie")
	}

	r := startClients(t, url, false,
		clientSpec{Name: "polling", Cookie: cookie, ExpectEnd: "any"},
		clientSpec{Name: "websocket", Cookie: cookie, Transports: []string{"websocket"}, ExpectEnd: "any"},
	)
	r.waitFor("websocket", "connect")
	r.waitFor("polling", "connect")
	success := audit.waitFor(t, "auth success", action(sessiongate.ActionAuthSuccess, ""))
	if success.UserID != "42" {
		t.Errorf("user %q, want 42", success.UserID)
	}

	start := time.Now()
	resp = post(t, app+"/logout", cookie, "")
	committed := time.Now()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: %s", resp.Status)
	}
	lines := r.finish()
	for _, c := range []string{"polling", "websocket"} {
		ended, _ := find(lines, c, "session_expired")
		if ended.Reason != string(sessiongate.EndLoggedOut) && ended.Reason != string(sessiongate.EndRevoked) {
			t.Errorf("%s: reason %q, want logged_out or revoked", c, ended.Reason)
		}
		disc, _ := find(lines, c, "disconnect")
		t.Logf("%s: session_expired %q; io server disconnect %v after the logout response (%v after the request)",
			c, ended.Reason, disc.received.Sub(committed), disc.received.Sub(start))
		if d := disc.received.Sub(committed); d > time.Second {
			t.Errorf("%s: disconnected %v after the logout, want within 1s", c, d)
		}
	}
}
