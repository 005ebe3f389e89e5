package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/httpapi"
)

// recordSessions makes a's handler write sessions through a recordingStore,
// returned.
func recordSessions(rec **recordingStore) func(*httpapi.Config) {
	return func(c *httpapi.Config) {
		*rec = &recordingStore{testStore: c.Sessions.(testStore)}
		c.Sessions = *rec
	}
}

func TestLoginRefusesCrossSite(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			var rec *recordingStore
			a := newAuthSetup(t, open, func(c *httpapi.Config) {
				recordSessions(&rec)(c)
				c.AllowedOrigins = []string{"https://app.example"}
			})
			creds := `{"email":"alice@example.com","password":"` + password + `"}`
			for _, c := range []struct {
				name   string
				header http.Header
				status int
			}{
				// The login CSRF: an HTML form on another site posting JSON as text/plain.
				{"cross-site text/plain form", http.Header{"Content-Type": {"text/plain"}, "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}, 403},
				{"text/plain from an old browser", http.Header{"Content-Type": {"text/plain;charset=UTF-8"}, "Origin": {"https://evil.example"}}, 403},
				{"text/plain, same origin", http.Header{"Content-Type": {"text/plain"}, "Sec-Fetch-Site": {"same-origin"}}, 415},
				{"urlencoded form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415},
				{"no Content-Type", http.Header{"Content-Type": {""}}, 415},
				{"JSON, foreign Origin", http.Header{"Origin": {"https://evil.example"}}, 403},
				{"JSON, null Origin", http.Header{"Origin": {"null"}}, 403},
				{"JSON, Sec-Fetch-Site cross-site", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
				{"JSON, a sibling subdomain", http.Header{"Origin": {"https://other.example.com"}, "Sec-Fetch-Site": {"same-site"}}, 403},
			} {
				res, body := do(t, a.h, "POST", "/auth/login", creds, c.header)
				if res.StatusCode != c.status || !strings.HasPrefix(body, `{"error":"`) {
					t.Errorf("%s: login = %d %q, want %d with a JSON error", c.name, res.StatusCode, body, c.status)
				}
				if res.Header.Get("Set-Cookie") != "" {
					t.Errorf("%s: refused login set a cookie", c.name)
				}
			}
			if len(rec.ops) != 0 {
				t.Fatalf("refused logins wrote sessions: %q", rec.ops)
			}
			st := a.h.Stats().Logins
			if st[httpapi.LoginCrossOrigin] != 6 || st[httpapi.LoginUnsupportedMedia] != 3 || st[httpapi.LoginOK] != 0 {
				t.Errorf("Stats().Logins = %v, want 6 cross_origin, 3 unsupported_media_type", st)
			}

			// The demo page (same origin), a non-browser client and an
			// allowed origin log in.
			for _, c := range []struct {
				name   string
				header http.Header
			}{
				{"same-origin fetch", http.Header{"Origin": {"http://example.com"}, "Sec-Fetch-Site": {"same-origin"}, "Content-Type": {"application/json; charset=utf-8"}}},
				{"old browser, same origin", http.Header{"Origin": {"http://example.com"}}},
				{"no browser", nil},
				{"allowed origin", http.Header{"Origin": {"https://app.example"}, "Sec-Fetch-Site": {"cross-site"}}},
			} {
				rec.ops = nil
				res, body, cookie := a.login(t, "alice@example.com", password, c.header)
				if res.StatusCode != 200 || len(rec.ops) != 1 || !strings.HasPrefix(rec.ops[0], "save ") {
					t.Errorf("%s: login = %d %q, store %q; want 200 and a session saved", c.name, res.StatusCode, body, rec.ops)
				}
				if res, _ := do(t, a.h, "GET", "/auth/me", "", cookie); res.StatusCode != 200 {
					t.Errorf("%s: me after login = %d, want 200", c.name, res.StatusCode)
				}
			}
		})
	}
}

func TestLogoutRefusesForeignOrigin(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			a := newAuthSetup(t, open, nil)
			_, _, cookie := a.login(t, "alice@example.com", password, nil)
			sid, err := expresssession.SessionIDFromHeader(cookie, "connect.sid", secrets)
			if err != nil {
				t.Fatal(err)
			}
			with := func(h http.Header) http.Header {
				h = h.Clone()
				h.Set("Cookie", cookie.Get("Cookie"))
				return h
			}
			for _, c := range []struct {
				name   string
				header http.Header
				status int
			}{
				{"foreign Origin", http.Header{"Origin": {"https://evil.example"}}, 403},
				{"cross-site form", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}, "Content-Type": {"application/x-www-form-urlencoded"}}, 403},
				{"same-origin text/plain", http.Header{"Origin": {"http://example.com"}, "Content-Type": {"text/plain"}}, 415},
			} {
				res, body := do(t, a.h, "POST", "/auth/logout", "", with(c.header))
				if res.StatusCode != c.status || !strings.HasPrefix(body, `{"error":"`) || res.Header.Get("Set-Cookie") != "" {
					t.Errorf("%s: logout = %d %q (Set-Cookie %q), want %d, a JSON error, the cookie kept", c.name, res.StatusCode, body, res.Header.Get("Set-Cookie"), c.status)
				}
			}
			if _, err := a.store.Session(testCtx(t), sid); err != nil || len(a.ender.calls) != 0 {
				t.Fatalf("after refused logouts: session %v, EndSession calls %v; want the session alive", err, a.ender.calls)
			}
			// The page's own logout still works.
			res, _ := do(t, a.h, "POST", "/auth/logout", "{}", with(http.Header{"Origin": {"http://example.com"}, "Sec-Fetch-Site": {"same-origin"}}))
			if res.StatusCode != 200 {
				t.Fatalf("same-origin logout = %d", res.StatusCode)
			}
			if _, err := a.store.Session(testCtx(t), sid); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
				t.Errorf("session after logout: %v, want not found", err)
			}
		})
	}
}

func TestLogoutEndsEverySignedSession(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			a := newAuthSetup(t, open, nil)
			ctx := testCtx(t)
			var sids []string
			for range 3 {
				_, _, cookie := a.login(t, "alice@example.com", password, nil)
				sid, err := expresssession.SessionIDFromHeader(cookie, "connect.sid", secrets)
				if err != nil {
					t.Fatal(err)
				}
				sids = append(sids, sid)
			}
			// A browser with cookies for two paths (one signed with the old
			// secret), and a third session named with a forged signature.
			header := http.Header{"Cookie": {
				"connect.sid=" + expresssession.CookieValue(sids[0], secrets[0]) +
					"; connect.sid=" + expresssession.CookieValue(sids[2], []byte("forged")) +
					"; theme=dark; connect.sid=s%3A" + sids[2],
				"connect.sid=" + expresssession.CookieValue(sids[1], secrets[1]),
			}}
			res, body := do(t, a.h, "POST", "/auth/logout", "", header)
			if res.StatusCode != 200 {
				t.Fatalf("logout = %d %s", res.StatusCode, body)
			}
			for i, sid := range sids[:2] {
				if _, err := a.store.Session(ctx, sid); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
					t.Errorf("session %d after logout: %v, want not found", i, err)
				}
			}
			if _, err := a.store.Session(ctx, sids[2]); err != nil {
				t.Errorf("the session of the forged cookie: %v, want it kept", err)
			}
			want := []ended{{sids[0], sessiongate.EndLoggedOut}, {sids[1], sessiongate.EndLoggedOut}}
			if len(a.ender.calls) != 2 || a.ender.calls[0] != want[0] || a.ender.calls[1] != want[1] {
				t.Errorf("EndSession calls = %+v, want the two signed sessions", a.ender.calls)
			}
		})
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReadyzHidesDetails(t *testing.T) {
	// What pgx says when the database refuses: user, host and name.
	const detail = `failed to connect to user=sessiongate database=prod_sessions: 10.0.3.7:5432 (db.internal): server error: FATAL: password authentication failed`
	var down bool
	var log syncBuffer
	h := newHandler(t, httpapi.Config{
		Ready: pingFunc(func(context.Context) error {
			if down {
				return errors.New(detail)
			}
			return nil
		}),
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	down = true
	for range 5 {
		res, body := do(t, h, "GET", "/readyz", "", nil)
		if res.StatusCode != 503 || body != "{\"status\":\"unavailable\"}\n" {
			t.Fatalf("readyz with the store down = %d %q, want 503 {\"status\":\"unavailable\"}", res.StatusCode, body)
		}
	}
	if n := strings.Count(log.String(), "prod_sessions"); n != 1 {
		t.Errorf("5 failed probes logged the reason %d times, want once (rate-limited):\n%s", n, log.String())
	}
	down = false
	if res, body := do(t, h, "GET", "/readyz", "", nil); res.StatusCode != 200 || body != "{\"status\":\"ok\"}\n" {
		t.Errorf("readyz once the store answers = %d %q", res.StatusCode, body)
	}
	if !strings.Contains(log.String(), "failures_not_logged=4") {
		t.Errorf("recovery line does not count the 4 failures left out:\n%s", log.String())
	}
}

func TestStalledBodyTimesOut(t *testing.T) {
	a := newAuthSetup(t, quickStore(), func(c *httpapi.Config) {
		// Long enough for an honest body under CPU load, short for a test.
		c.BodyTimeout = time.Second
		c.PublishKey = "k"
	})
	srv := httptest.NewServer(a.h)
	t.Cleanup(srv.Close)
	for _, req := range []string{
		"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
		"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 100000\r\n\r\n{\"to\":",
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		// The server answers and hangs up on its own; the deadline only
		// keeps a broken server from hanging the test.
		conn.SetReadDeadline(time.Now().Add(testTimeout))
		got, err := io.ReadAll(conn)
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
			t.Errorf("stalled %s: read %q, %v; want a 400 and the connection closed", strings.Fields(req)[1], got, err)
		}
	}
	// An honest client beside them logs in.
	res, err := http.Post(srv.URL+"/auth/login", "application/json",
		strings.NewReader(`{"email":"alice@example.com","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("honest login = %d, want 200", res.StatusCode)
	}
}

func TestReadyzWarnings(t *testing.T) {
	var warnings []string
	down := false
	h := newHandler(t, httpapi.Config{
		Ready: pingFunc(func(context.Context) error {
			if down {
				return errors.New("user=sessiongate host=db.internal")
			}
			return nil
		}),
		Warnings: func() []string { return warnings },
	})
	if _, body := do(t, h, "GET", "/readyz", "", nil); body != "{\"status\":\"ok\"}\n" {
		t.Errorf("readyz without warnings = %q", body)
	}
	warnings = []string{"X-Forwarded-For from 10.0.0.5, not in TRUSTED_PROXIES"}
	if res, body := do(t, h, "GET", "/readyz", "", nil); res.StatusCode != 200 || body != "{\"status\":\"ok\",\"warnings\":[\"X-Forwarded-For from 10.0.0.5, not in TRUSTED_PROXIES\"]}\n" {
		t.Errorf("readyz with a warning = %d %q", res.StatusCode, body)
	}
	down = true
	if res, body := do(t, h, "GET", "/readyz", "", nil); res.StatusCode != 503 || strings.Contains(body, "db.internal") || !strings.Contains(body, "TRUSTED_PROXIES") {
		t.Errorf("readyz down with a warning = %d %q, want 503 with the warning and no store detail", res.StatusCode, body)
	}
}

// TestReadyzBus: on a node of a cluster /readyz reports the bus as "ok" or
// "down"; a node whose bus is down stays ready (200) with a warning, the
// reason logged once per interval and never answered.
func TestReadyzBus(t *testing.T) {
	const detail = "dial tcp 10.0.3.9:6379: connect: connection refused (redis.internal)"
	var down atomic.Bool
	var log syncBuffer
	h := newHandler(t, httpapi.Config{
		Ready: pingFunc(func(context.Context) error { return nil }),
		Bus: pingFunc(func(context.Context) error {
			if down.Load() {
				return errors.New(detail)
			}
			return nil
		}),
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	if res, body := do(t, h, "GET", "/readyz", "", nil); res.StatusCode != 200 || body != "{\"status\":\"ok\",\"bus\":\"ok\"}\n" {
		t.Fatalf("readyz with the bus up = %d %q", res.StatusCode, body)
	}
	down.Store(true)
	want := `{"status":"ok","bus":"down","warnings":["` + httpapi.BusDownWarning + "\"]}\n"
	for range 3 {
		if res, body := do(t, h, "GET", "/readyz", "", nil); res.StatusCode != 200 || body != want {
			t.Fatalf("readyz with the bus down = %d %q, want 200 %q", res.StatusCode, body, want)
		}
	}
	if n := strings.Count(log.String(), "redis.internal"); n != 1 {
		t.Errorf("3 probes logged the reason %d times, want once:\n%s", n, log.String())
	}
	down.Store(false)
	if _, body := do(t, h, "GET", "/readyz", "", nil); body != "{\"status\":\"ok\",\"bus\":\"ok\"}\n" {
		t.Errorf("readyz once the bus answers = %q", body)
	}
	if !strings.Contains(log.String(), "cluster bus answers again") {
		t.Errorf("no recovery line:\n%s", log.String())
	}
}
