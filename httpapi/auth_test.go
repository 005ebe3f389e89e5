package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/sqlite"
)

// testStore is what the auth endpoints need of a backend, plus Ping and
// Close for /readyz.
type testStore interface {
	sessiongate.SessionStore
	sessiongate.UserStore
	Ping(ctx context.Context) error
}

// stores opens each backend, migrated; closeStore closes it.
var stores = map[string]func(t *testing.T) (s testStore, closeStore func()){
	"sqlite": func(t *testing.T) (testStore, func()) {
		db, err := sqlite.Open(testCtx(t), t.TempDir()+"/test.db")
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		if err := db.Migrate(testCtx(t)); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		closeStore := func() { db.Close() }
		t.Cleanup(closeStore)
		return db, closeStore
	},
	"postgres": func(t *testing.T) (testStore, func()) {
		schema, url := pgtest.Schema(t)
		db, err := postgres.Open(testCtx(t), postgres.Config{URL: url, Schema: schema})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		if err := db.Migrate(testCtx(t)); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		closeStore := func() { db.Close() }
		t.Cleanup(closeStore)
		return db, closeStore
	},
}

// quickStore is the backend for tests that need only one: SQLite when
// built, else PostgreSQL.
func quickStore() func(*testing.T) (testStore, func()) {
	if open, ok := stores["sqlite"]; ok {
		return open
	}
	return stores["postgres"]
}

var secrets = [][]byte{[]byte("current secret"), []byte("old secret")}

const password = "correct horse battery"

// authSetup is a Handler with the embedded login on a store holding one
// user.
type authSetup struct {
	h     *httpapi.Handler
	store testStore
	close func()
	user  *sessiongate.User
	ender *fakeEnder
	pub   *fakePublisher
	now   time.Time
}

func newAuthSetup(t *testing.T, open func(*testing.T) (testStore, func()), tweak func(*httpapi.Config)) *authSetup {
	t.Helper()
	s, closeStore := open(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(testCtx(t), "alice@example.com", string(hash))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	a := &authSetup{store: s, close: closeStore, user: u, ender: &fakeEnder{}, pub: &fakePublisher{},
		now: time.Date(2026, 11, 27, 0, 11, 14, 274_000_000, time.UTC)}
	cfg := httpapi.Config{
		Auth:          true,
		Users:         s,
		Sessions:      s,
		Ender:         a.ender,
		Secrets:       secrets,
		SessionMaxAge: time.Hour,
		Publisher:     a.pub,
		DemoIncidents: true,
		Ready:         s,
		Now:           func() time.Time { return a.now },
	}
	if tweak != nil {
		tweak(&cfg)
	}
	a.h = newHandler(t, cfg)
	return a
}

// login posts credentials and returns the response, its body and the
// cookie header a browser would send back.
func (a *authSetup) login(t *testing.T, email, pw string, header http.Header) (*http.Response, string, http.Header) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": pw})
	res, b := do(t, a.h, "POST", "/auth/login", string(body), header)
	cookie := http.Header{}
	if sc := res.Header.Get("Set-Cookie"); sc != "" {
		nameValue, _, _ := strings.Cut(sc, ";")
		cookie.Set("Cookie", nameValue)
	}
	return res, b, cookie
}

// setCookieRE is the Set-Cookie express-session sends with
// cookie: {maxAge, httpOnly: true, sameSite: "lax"}.
var setCookieRE = regexp.MustCompile(`^connect\.sid=s%3A[A-Za-z0-9_-]{32}\.[A-Za-z0-9%]+; Path=/; Expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT; HttpOnly; SameSite=Lax$`)

func TestLoginLogout(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			a := newAuthSetup(t, open, nil)
			ctx := testCtx(t)

			// Wrong password and unknown user: the same 401.
			for _, c := range [][2]string{{"alice@example.com", "wrong password"}, {"nobody@example.com", password}} {
				res, body, _ := a.login(t, c[0], c[1], nil)
				if res.StatusCode != 401 || body != "{\"error\":\"invalid credentials\"}\n" {
					t.Errorf("login %s/%s = %d %q, want 401 invalid credentials", c[0], c[1], res.StatusCode, body)
				}
				if res.Header.Get("Set-Cookie") != "" {
					t.Error("refused login set a cookie")
				}
			}
			if res, _, _ := a.login(t, "alice", "", http.Header{}); res.StatusCode != 401 {
				t.Errorf("login without password = %d, want 401", res.StatusCode)
			}
			if res, _ := do(t, a.h, "POST", "/auth/login", "{", nil); res.StatusCode != 400 {
				t.Errorf("login with bad JSON = %d, want 400", res.StatusCode)
			}

			// A successful login: body, cookie, row.
			res, body, cookie := a.login(t, "ALICE@example.com", password, nil)
			if res.StatusCode != 200 {
				t.Fatalf("login = %d %s", res.StatusCode, body)
			}
			wantBody := `{"user":{"id":` + strconv.FormatInt(a.user.ID, 10) + `,"email":"alice@example.com"}}` + "\n"
			if body != wantBody {
				t.Errorf("login body = %q, want %q", body, wantBody)
			}
			sc := res.Header.Get("Set-Cookie")
			if !setCookieRE.MatchString(sc) {
				t.Errorf("Set-Cookie = %q, not as express-session sends it", sc)
			}
			if !strings.Contains(sc, "Expires=Fri, 27 Nov 2026 01:11:14 GMT") {
				t.Errorf("Set-Cookie = %q, want Expires now+1h", sc)
			}
			sid, err := expresssession.SessionIDFromHeader(cookie, "connect.sid", secrets)
			if err != nil {
				t.Fatalf("express-session would not read the cookie: %v", err)
			}
			row, err := a.store.Session(ctx, sid)
			if err != nil {
				t.Fatalf("session row: %v", err)
			}
			wantRow := `{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T01:11:14.274Z","httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":` +
				strconv.FormatInt(a.user.ID, 10) + `}}`
			if string(row.Data) != wantRow {
				t.Errorf("row = %s\nwant  %s", row.Data, wantRow)
			}
			if want := time.Date(2026, 11, 27, 1, 11, 15, 0, time.UTC); !row.Expire.Equal(want) {
				t.Errorf("expire = %v, want %v (ceil of cookie.expires)", row.Expire, want)
			}

			// /auth/me with and without the cookie.
			if res, body := do(t, a.h, "GET", "/auth/me", "", cookie); res.StatusCode != 200 || body != wantBody {
				t.Errorf("me = %d %q, want 200 %q", res.StatusCode, body, wantBody)
			}
			if res, _ := do(t, a.h, "GET", "/auth/me", "", nil); res.StatusCode != 401 {
				t.Errorf("me without cookie = %d, want 401", res.StatusCode)
			}
			tampered := http.Header{"Cookie": {strings.Replace(cookie.Get("Cookie"), ".", ".x", 1)}}
			if res, _ := do(t, a.h, "GET", "/auth/me", "", tampered); res.StatusCode != 401 {
				t.Errorf("me with tampered cookie = %d, want 401", res.StatusCode)
			}

			// Logging in again with the cookie: a new sid, the old row gone.
			res, _, cookie2 := a.login(t, "alice@example.com", password, cookie)
			if res.StatusCode != 200 {
				t.Fatalf("second login = %d", res.StatusCode)
			}
			sid2, err := expresssession.SessionIDFromHeader(cookie2, "connect.sid", secrets)
			if err != nil || sid2 == sid {
				t.Fatalf("second login reused the session id (fixation): %v", err)
			}
			if _, err := a.store.Session(ctx, sid); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
				t.Errorf("old session after a new login: err = %v, want not found", err)
			}

			// Logout: row gone, sockets ended, cookie cleared.
			res, body = do(t, a.h, "POST", "/auth/logout", "", cookie2)
			if res.StatusCode != 200 || body != "{\"ok\":true}\n" {
				t.Fatalf("logout = %d %q", res.StatusCode, body)
			}
			if sc := res.Header.Get("Set-Cookie"); sc != "connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax" {
				t.Errorf("logout Set-Cookie = %q", sc)
			}
			if _, err := a.store.Session(ctx, sid2); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
				t.Errorf("session after logout: err = %v, want not found", err)
			}
			if len(a.ender.calls) != 1 || a.ender.calls[0] != (ended{sid2, sessiongate.EndLoggedOut}) {
				t.Errorf("EndSession calls = %+v, want one for the session with logged_out", a.ender.calls)
			}
			if res, _ := do(t, a.h, "GET", "/auth/me", "", cookie2); res.StatusCode != 401 {
				t.Errorf("me after logout = %d, want 401", res.StatusCode)
			}
			// Logging out again, or without a session, is fine.
			if res, _ := do(t, a.h, "POST", "/auth/logout", "", cookie2); res.StatusCode != 200 {
				t.Errorf("second logout = %d, want 200", res.StatusCode)
			}
		})
	}
}

func TestMeExpiredSession(t *testing.T) {
	a := newAuthSetup(t, quickStore(), nil)
	_, _, cookie := a.login(t, "alice@example.com", password, nil)
	a.now = a.now.Add(2 * time.Hour)
	if res, _ := do(t, a.h, "GET", "/auth/me", "", cookie); res.StatusCode != 401 {
		t.Errorf("me with an expired session = %d, want 401", res.StatusCode)
	}
}

func TestLogoutRewritesBeforeDelete(t *testing.T) {
	// passport saves {"passport":{}} before destroying the row; a store
	// that records writes shows both.
	a := newAuthSetup(t, quickStore(), nil)
	rec := &recordingStore{testStore: a.store}
	h := newHandler(t, httpapi.Config{Auth: true, Users: a.store, Sessions: rec, Secrets: secrets})
	body, _ := json.Marshal(map[string]string{"email": "alice@example.com", "password": password})
	res, _ := do(t, h, "POST", "/auth/login", string(body), nil)
	nameValue, _, _ := strings.Cut(res.Header.Get("Set-Cookie"), ";")
	rec.ops = nil
	do(t, h, "POST", "/auth/logout", "", http.Header{"Cookie": {nameValue}})
	if len(rec.ops) != 2 || !strings.HasPrefix(rec.ops[0], "save ") || !strings.Contains(rec.ops[0], `"passport":{}`) || rec.ops[1] != "delete" {
		t.Errorf("logout store operations = %q, want save with \"passport\":{} then delete", rec.ops)
	}
}

// recordingStore records SaveSession and DeleteSession calls.
type recordingStore struct {
	testStore
	ops []string
}

func (r *recordingStore) SaveSession(ctx context.Context, s *sessiongate.Session) error {
	r.ops = append(r.ops, "save "+string(s.Data))
	return r.testStore.SaveSession(ctx, s)
}

func (r *recordingStore) DeleteSession(ctx context.Context, sid string) error {
	r.ops = append(r.ops, "delete")
	return r.testStore.DeleteSession(ctx, sid)
}

func TestAuthDisabled(t *testing.T) {
	h := newHandler(t, httpapi.Config{})
	for _, c := range [][2]string{{"POST", "/auth/login"}, {"POST", "/auth/logout"}, {"GET", "/auth/me"}, {"POST", "/api/demo/incident"}, {"GET", "/api/demo/users"}} {
		if res, _ := do(t, h, c[0], c[1], "{}", nil); res.StatusCode != 404 {
			t.Errorf("%s %s = %d, want 404 with auth disabled", c[0], c[1], res.StatusCode)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	a := newAuthSetup(t, quickStore(), func(c *httpapi.Config) { c.LoginRateLimit = 2 })
	for i := range 2 {
		if res, _, _ := a.login(t, "alice@example.com", "wrong", nil); res.StatusCode != 401 {
			t.Fatalf("attempt %d = %d, want 401", i+1, res.StatusCode)
		}
	}
	res, body, _ := a.login(t, "alice@example.com", password, nil)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "30" {
		t.Errorf("third attempt = %d %q Retry-After %q, want 429 after 30s", res.StatusCode, body, res.Header.Get("Retry-After"))
	}
	a.now = a.now.Add(30 * time.Second)
	if res, _, _ := a.login(t, "alice@example.com", password, nil); res.StatusCode != 200 {
		t.Errorf("after the refill = %d, want 200", res.StatusCode)
	}
}

func TestDemoIncident(t *testing.T) {
	a := newAuthSetup(t, quickStore(), nil)
	if res, _ := do(t, a.h, "POST", "/api/demo/incident", "", nil); res.StatusCode != 401 {
		t.Errorf("incident without a session = %d, want 401", res.StatusCode)
	}
	_, _, cookie := a.login(t, "alice@example.com", password, nil)
	res, body := do(t, a.h, "POST", "/api/demo/incident", `{"title":"Disk full","severity":"critical"}`, cookie)
	if res.StatusCode != 200 {
		t.Fatalf("incident = %d %s", res.StatusCode, body)
	}
	got := a.pub.last(t)
	wantRoom := "user:" + strconv.FormatInt(a.user.ID, 10)
	if len(got.Rooms) != 1 || got.Rooms[0] != wantRoom || got.Event != httpapi.EventIncidentCreated {
		t.Fatalf("published %+v, want incident:created to %s", got, wantRoom)
	}
	var in struct{ ID, Title, Severity, CreatedAt string }
	if err := json.Unmarshal(got.Data, &in); err != nil {
		t.Fatal(err)
	}
	if in.ID == "" || in.Title != "Disk full" || in.Severity != "critical" || in.CreatedAt != "2026-11-27T00:11:14.274Z" {
		t.Errorf("incident = %+v", in)
	}
	if res, _ := do(t, a.h, "POST", "/api/demo/incident", `{"severity":"apocalyptic"}`, cookie); res.StatusCode != 400 {
		t.Errorf("bad severity = %d, want 400", res.StatusCode)
	}

	// To an incident room: published there, the room in the payload.
	if res, body := do(t, a.h, "POST", "/api/demo/incident", `{"room":"incident:7"}`, cookie); res.StatusCode != 200 {
		t.Fatalf("incident to incident:7 = %d %s", res.StatusCode, body)
	}
	got = a.pub.last(t)
	var inRoom struct{ Room, Title string }
	if err := json.Unmarshal(got.Data, &inRoom); err != nil {
		t.Fatal(err)
	}
	if len(got.Rooms) != 1 || got.Rooms[0] != "incident:7" || inRoom.Room != "incident:7" || inRoom.Title == "" {
		t.Errorf("published %+v %+v, want an incident to incident:7 naming its room", got, inRoom)
	}
	for _, room := range []string{"user:1", "news:1", "incident:", "incident:\u0007", "incident:" + strings.Repeat("x", 250)} {
		if res, body := do(t, a.h, "POST", "/api/demo/incident", `{"room":"`+room+`"}`, cookie); res.StatusCode != 400 {
			t.Errorf("incident to %q = %d %s, want 400", room, res.StatusCode, body)
		}
	}
}

func TestDemoUsers(t *testing.T) {
	a := newAuthSetup(t, quickStore(), func(c *httpapi.Config) {
		c.DemoUsers = []string{"alice@example.com", "gone@example.com"}
	})
	if res, _ := do(t, a.h, "GET", "/api/demo/users", "", nil); res.StatusCode != 401 {
		t.Errorf("users without a session = %d, want 401", res.StatusCode)
	}
	_, _, cookie := a.login(t, "alice@example.com", password, nil)
	res, body := do(t, a.h, "GET", "/api/demo/users", "", cookie)
	want := `{"users":[{"id":` + strconv.FormatInt(a.user.ID, 10) + `,"email":"alice@example.com"}]}` + "\n"
	if res.StatusCode != 200 || body != want {
		t.Errorf("users = %d %s, want 200 %s (the missing demo user left out)", res.StatusCode, body, want)
	}
}

func TestReadyz(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s, closeStore := open(t)
			h := newHandler(t, httpapi.Config{Ready: s})
			if res, body := do(t, h, "GET", "/readyz", "", nil); res.StatusCode != 200 {
				t.Fatalf("readyz = %d %s, want 200", res.StatusCode, body)
			}
			closeStore()
			res, body := do(t, h, "GET", "/readyz", "", nil)
			if res.StatusCode != 503 || body != "{\"status\":\"unavailable\"}\n" {
				t.Errorf("readyz with the store closed = %d %s, want 503 without the reason", res.StatusCode, body)
			}
		})
	}
}
