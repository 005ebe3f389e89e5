package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/internal/expressapp"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/postgres"
)

// TestLoginAcceptedByExpress proves the reverse direction of the Express
// interop: a session made by sessiongate's own /auth/login (row and cookie)
// is one a real Express app with express-session, connect-pg-simple and
// passport loads as logged in; and after sessiongate's /auth/logout it no
// longer does.
func TestLoginAcceptedByExpress(t *testing.T) {
	schema, url := pgtest.Schema(t)
	ctx := testCtx(t)
	db, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema, Table: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	user, err := db.CreateUser(ctx, "alice@example.com", string(hash))
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, httpapi.Config{
		Auth: true, Users: db, Sessions: db, Ender: &fakeEnder{}, Ready: db,
		Secrets: secrets, SessionMaxAge: time.Hour,
	})
	app := expressapp.Start(t, expressapp.Options{
		DatabaseURL: url,
		Secrets:     string(secrets[0]),
		Users:       fmt.Sprintf("alice@example.com:unused:%d", user.ID),
	})

	body := fmt.Sprintf(`{"email":"alice@example.com","password":%q}`, password)
	res, b := do(t, h, "POST", "/auth/login", body, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sessiongate login: %d %s", res.StatusCode, b)
	}
	cookie := res.Cookies()[0]
	browser := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}

	me := func() (int, string) {
		req, err := http.NewRequestWithContext(ctx, "GET", app+"/me", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = browser.Clone()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, got := me()
	if code != http.StatusOK {
		t.Fatalf("Express /me with sessiongate's cookie = %d %s, want 200", code, got)
	}
	var v struct{ User struct{ ID json.Number } }
	if err := json.Unmarshal([]byte(got), &v); err != nil || v.User.ID.String() != fmt.Sprint(user.ID) {
		t.Fatalf("Express /me = %s, want user %d", got, user.ID)
	}

	if res, b := do(t, h, "POST", "/auth/logout", "", browser); res.StatusCode != http.StatusOK {
		t.Fatalf("sessiongate logout: %d %s", res.StatusCode, b)
	}
	if code, got := me(); code != http.StatusUnauthorized {
		t.Fatalf("Express /me after sessiongate's logout = %d %s, want 401", code, got)
	}
}
