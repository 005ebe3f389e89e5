package expresssession_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/expressapp"
	"github.com/sessiongate/sessiongate/internal/pgtest"
)

// fixtureCookie is the cookie option of testdata/express-app.
var fixtureCookie = expresssession.CookieOptions{
	MaxAge:   time.Hour,
	HTTPOnly: true,
	SameSite: http.SameSiteLaxMode,
}

const fixtureUsers = "ada@example.com:pw-ada:42,bob@example.com:pw-bob:bob"

// fixture is a running testdata/express-app and the schema it uses.
type fixture struct {
	url  string    // http://127.0.0.1:<port>
	conn *pgx.Conn // to the fixture's schema, TimeZone=UTC
}

// startFixture runs the Express app against a fresh schema with the given
// comma-separated secrets, and stops it (SIGTERM) when the test ends.
func startFixture(t *testing.T, secrets string) *fixture {
	t.Helper()
	_, dbURL := pgtest.Schema(t)
	url := expressapp.Start(t, expressapp.Options{DatabaseURL: dbURL, Secrets: secrets, Users: fixtureUsers})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["timezone"] = "UTC" // as the Node app's connections
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &fixture{url: url, conn: conn}
}

// do sends a request with the given Cookie header (if any) and returns the
// response with its body read.
func (f *fixture) do(t *testing.T, method, path, cookie, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// row returns the sess column, as stored, and the expire column of sid.
func (f *fixture) row(t *testing.T, sid string) (string, time.Time) {
	t.Helper()
	var sess string
	var expire time.Time
	err := f.conn.QueryRow(context.Background(),
		`SELECT sess::text, expire FROM "Session" WHERE sid = $1`, sid).Scan(&sess, &expire)
	if err != nil {
		t.Fatalf("read row: %v", err)
	}
	return sess, expire
}

// save writes a row with connect-pg-simple's set statement.
func (f *fixture) save(t *testing.T, sid string, sess []byte, expire time.Time) {
	t.Helper()
	_, err := f.conn.Exec(context.Background(),
		`INSERT INTO "Session" (sess, expire, sid) SELECT $1, to_timestamp($2), $3 ON CONFLICT (sid) DO UPDATE SET sess=$1, expire=to_timestamp($2) RETURNING sid`,
		string(sess), expire.Unix(), sid)
	if err != nil {
		t.Fatalf("save row: %v", err)
	}
}

// storeExpiry is connect-pg-simple's expire for a cookie expiry:
// ceil(expires / 1000) seconds.
func storeExpiry(expires time.Time) time.Time {
	return time.Unix(int64(math.Ceil(float64(expires.UnixMilli())/1000)), 0).UTC()
}

func TestInteropLogin(t *testing.T) {
	secret := []byte("new-secret")
	f := startFixture(t, "new-secret,old-secret")

	resp, body := f.do(t, "POST", "/login", "", `{"email":"ada@example.com","password":"pw-ada"}`)
	if resp.StatusCode != 200 || body != `{"user":{"id":42,"email":"ada@example.com"}}` {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	setCookies := resp.Header.Values("Set-Cookie")
	if len(setCookies) != 1 {
		t.Fatalf("Set-Cookie: %q", setCookies)
	}
	setCookie := setCookies[0]
	t.Logf("Set-Cookie: %s", setCookie)

	// Go reads the cookie the browser would send back.
	pair, _, _ := strings.Cut(setCookie, ";")
	h := http.Header{"Cookie": {pair}}
	sid, err := expresssession.SessionIDFromHeader(h, expresssession.DefaultCookieName, [][]byte{secret})
	if err != nil {
		t.Fatalf("SessionIDFromHeader(%q): %v", pair, err)
	}

	// The row the fixture wrote.
	sess, expire := f.row(t, sid)
	t.Logf("row: %s, expire %v", sess, expire)
	id, ok, err := expresssession.UserID([]byte(sess))
	if err != nil || !ok || id != "42" {
		t.Fatalf("UserID = %q, %v, %v", id, ok, err)
	}
	info, err := expresssession.Parse([]byte(sess))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := storeExpiry(info.Expires); !expire.Equal(want) {
		t.Errorf("expire column %v, want ceil(cookie.expires) %v", expire, want)
	}
	if info.OriginalMaxAge != time.Hour || info.UserID != "42" {
		t.Errorf("Parse = %+v", info)
	}

	// Go writes the same bytes.
	created := info.Expires.Add(-fixtureCookie.MaxAge)
	if got, _ := fixtureCookie.NewSession("42", created); string(got) != sess {
		t.Errorf("NewSession =\n%s\nfixture wrote\n%s", got, sess)
	}
	if got := fixtureCookie.SetCookie(expresssession.DefaultCookieName, sid, secret, info.Expires); got != setCookie {
		t.Errorf("SetCookie =\n%s\nfixture sent\n%s", got, setCookie)
	}

	// And the cookie is good for the fixture itself.
	if resp, body := f.do(t, "GET", "/me", pair, ""); resp.StatusCode != 200 {
		t.Errorf("GET /me: %d %s", resp.StatusCode, body)
	}
}

func TestInteropGoSession(t *testing.T) {
	secrets := []string{"new-secret", "old-secret"}
	f := startFixture(t, strings.Join(secrets, ","))

	tests := []struct {
		name   string
		user   string
		signer string
		status int
		body   string
	}{
		{"numeric user", "42", secrets[0], 200, `{"user":{"id":42,"email":"ada@example.com"}}`},
		{"string user", "bob", secrets[0], 200, `{"user":{"id":"bob","email":"bob@example.com"}}`},
		{"signed with the old secret", "42", secrets[1], 200, `{"user":{"id":42,"email":"ada@example.com"}}`},
		{"signed with an unknown secret", "42", "other", 401, `{"error":"not authenticated"}`},
		{"unknown user", "7", secrets[0], 401, `{"error":"not authenticated"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := expresssession.NewSessionID()
			sess, expires := fixtureCookie.NewSession(tt.user, time.Now())
			f.save(t, sid, sess, storeExpiry(expires))
			cookie := expresssession.DefaultCookieName + "=" + expresssession.CookieValue(sid, []byte(tt.signer))
			resp, body := f.do(t, "GET", "/me", cookie, "")
			if resp.StatusCode != tt.status || body != tt.body {
				t.Errorf("GET /me: %d %s; want %d %s", resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
}

func TestInteropRewrite(t *testing.T) {
	secret := []byte("s3cret")
	f := startFixture(t, string(secret))

	tests := []struct {
		name string
		opts expresssession.CookieOptions
	}{
		{"replace expires", fixtureCookie},
		{"insert expires", expresssession.CookieOptions{HTTPOnly: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := expresssession.NewSessionID()
			now := time.Now()
			sess, _ := tt.opts.NewSession("42", now)
			sess = append(sess[:len(sess)-1], `,"theme":{"dark": true}}`...) // an app's own key
			f.save(t, sid, sess, now.Add(time.Minute))
			cookie := expresssession.DefaultCookieName + "=" + expresssession.CookieValue(sid, secret)

			// Go moves the expiry; express-session loads the new value.
			later := time.UnixMilli(now.Add(2 * time.Hour).UnixMilli())
			moved, err := expresssession.SetCookieExpires(sess, later)
			if err != nil {
				t.Fatal(err)
			}
			f.save(t, sid, moved, storeExpiry(later))
			resp, body := f.do(t, "GET", "/session-touch", cookie, "")
			var got struct{ PreviousExpires string }
			if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil || got.PreviousExpires != expresssession.ISOString(later) {
				t.Fatalf("GET /session-touch: %d %s; want previousExpires %s", resp.StatusCode, body, expresssession.ISOString(later))
			}
			// The store's touch moved only the expire column.
			row, expire := f.row(t, sid)
			if row != string(moved) {
				t.Errorf("row after touch =\n%s\nwant\n%s", row, moved)
			}
			if expire.Equal(storeExpiry(later)) || expire.Before(now) {
				t.Errorf("expire after touch = %v, want it moved from %v", expire, storeExpiry(later))
			}

			// Go logs the user out; express-session sees nobody.
			out, err := expresssession.Logout(moved)
			if err != nil {
				t.Fatal(err)
			}
			f.save(t, sid, out, storeExpiry(later))
			if resp, body := f.do(t, "GET", "/me", cookie, ""); resp.StatusCode != 401 {
				t.Errorf("GET /me after Logout: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestInteropLogout(t *testing.T) {
	f := startFixture(t, "s3cret")
	resp, body := f.do(t, "POST", "/login", "", `{"email":"bob@example.com","password":"pw-bob"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	pair, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	sid, err := expresssession.SessionIDFromHeader(http.Header{"Cookie": {pair}}, expresssession.DefaultCookieName, [][]byte{[]byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	if sess, _ := f.row(t, sid); !strings.HasSuffix(sess, `"passport":{"user":"bob"}}`) {
		t.Errorf("row %s: want passport.user \"bob\"", sess)
	}
	if resp, body := f.do(t, "POST", "/logout", pair, ""); resp.StatusCode != 200 {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	// passport 0.7 regenerates the session: the old row is gone.
	var n int
	if err := f.conn.QueryRow(context.Background(), `SELECT count(*) FROM "Session" WHERE sid = $1`, sid).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows for the old sid after logout: %d, %v", n, err)
	}
	if resp, _ := f.do(t, "GET", "/me", pair, ""); resp.StatusCode != 401 {
		t.Errorf("GET /me after logout: %d", resp.StatusCode)
	}
	if resp, _ := f.do(t, "POST", "/login", "", `{"email":"bob@example.com","password":"wrong"}`); resp.StatusCode != 401 {
		t.Errorf("login with a wrong password: %d", resp.StatusCode)
	}
}
