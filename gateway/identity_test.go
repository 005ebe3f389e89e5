package gateway

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/sqlite"
)

// userStore is a backend with the embedded login's users.
type userStore interface {
	store
	sessiongate.RevocationFeed
	sessiongate.UserStore
	sessiongate.UserChecker
}

// addUser creates a user and saves a live session of it, returning the
// user's id and the session's cookie.
func addUser(t *testing.T, s userStore, email string) (id, cookie string) {
	t.Helper()
	u, err := s.CreateUser(context.Background(), email, "$2a$10$hash")
	if err != nil {
		t.Fatal(err)
	}
	id = strconv.FormatInt(u.ID, 10)
	_, cookie = saveSession(t, s, id, time.Now().Add(time.Hour))
	return id, cookie
}

// openSQLiteAt returns a migrated SQLite store at path, closed when the test
// ends.
func openSQLiteAt(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestDeletedUserSocketsEndPostgres: DeleteUser (as `sessiongate users
// delete`) ends the user's open socket through the revocation trigger, its
// cookie no longer opens one, and another user's socket stays.
func TestDeletedUserSocketsEndPostgres(t *testing.T) {
	db, _ := openPostgres(t)
	g := newGateway(t, Config{Sessions: db, Revocations: db, Users: db, Audit: newRecordingAudit(nil)})
	run(t, g)
	ns, url := serve(t, g)
	aliceID, aliceCookie := addUser(t, db, "alice@example.com")
	bobID, bobCookie := addUser(t, db, "bob@example.com")
	alice := dial(t, url, browser{cookie: aliceCookie})
	bob := dial(t, url, browser{cookie: bobCookie})
	connected(t, alice)
	connected(t, bob)

	id, _ := sessiongate.ParseUserID(aliceID)
	if n, err := db.DeleteUser(context.Background(), id); err != nil || n != 1 {
		t.Fatalf("DeleteUser = %d, %v; want 1 session", n, err)
	}
	ended(t, alice, string(sessiongate.EndRevoked))
	if err := ns.To(sessiongate.Identity{UserID: bobID}.Room()).Emit(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	gotEvent(t, bob, "hello")
	stillConnected(t, "bob", bob)

	refused(t, dial(t, url, browser{cookie: aliceCookie, transport: siotest.Polling}), sessiongate.ECodeSessionNotFound)
	connected(t, dial(t, url, browser{cookie: bobCookie, transport: siotest.Polling}))
}

// gotEvent waits for the event name on c.
func gotEvent(t *testing.T, c *siotest.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.WaitEvent(ctx, name); err != nil {
		t.Fatalf("waiting for %s: %v", name, err)
	}
}

// TestDeletedUserRefused deletes users behind the store's back (their rows
// only, the sessions left in place, as an older version or a hand-written
// DELETE would): a handshake with such a session is refused
// NOT_AUTHENTICATED, and an open socket of it ends as revoked at the next
// batched check; another user is served throughout.
func TestDeletedUserRefused(t *testing.T) {
	backends := map[string]func(t *testing.T) (userStore, func(id string)){
		"sqlite": func(t *testing.T) (userStore, func(string)) {
			path := filepath.Join(t.TempDir(), "sessiongate.db")
			db := openSQLiteAt(t, path)
			raw, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			return db, func(id string) {
				if _, err := raw.Exec(`DELETE FROM sessiongate_users WHERE id = ?`, id); err != nil {
					t.Fatal(err)
				}
			}
		},
		"postgres": func(t *testing.T) (userStore, func(string)) {
			db, url := openPostgres(t)
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(context.Background()) })
			return db, func(id string) {
				if _, err := conn.Exec(context.Background(), `DELETE FROM sessiongate_users WHERE id = $1::bigint`, id); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			db, deleteRow := open(t)
			g := newGateway(t, Config{Sessions: db, Revocations: db, Users: db, Audit: newRecordingAudit(nil),
				CheckInterval: 200 * time.Millisecond})
			run(t, g)
			ns, url := serve(t, g)
			carolID, carolCookie := addUser(t, db, "carol@example.com")
			daveID, daveCookie := addUser(t, db, "dave@example.com")
			bobID, bobCookie := addUser(t, db, "bob@example.com")

			deleteRow(carolID)
			refused(t, dial(t, url, browser{cookie: carolCookie, transport: siotest.Polling}), sessiongate.ECodeNotAuthenticated)
			refused(t, dial(t, url, browser{cookie: carolCookie}), sessiongate.ECodeNotAuthenticated)

			dave := dial(t, url, browser{cookie: daveCookie})
			bob := dial(t, url, browser{cookie: bobCookie, transport: siotest.Polling})
			connected(t, dave)
			connected(t, bob)
			deleteRow(daveID) // no revocation: only the batched check can tell
			ended(t, dave, string(sessiongate.EndRevoked))
			if err := ns.To(sessiongate.Identity{UserID: bobID}.Room()).Emit(context.Background(), "hello"); err != nil {
				t.Fatal(err)
			}
			gotEvent(t, bob, "hello")
			stillConnected(t, "bob", bob)
		})
	}
}

// TestUsersDeletedByAnotherProcessSQLite: `sessiongate users delete` runs in
// another process, whose writes the server's SQLite feed never hears of;
// the user's socket ends, as revoked, at the server's next batched check.
func TestUsersDeletedByAnotherProcessSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessiongate.db")
	db := openSQLiteAt(t, path)
	other := openSQLiteAt(t, path) // the other process's handle
	g := newGateway(t, Config{Sessions: db, Revocations: db, Users: db, Audit: newRecordingAudit(nil),
		CheckInterval: 200 * time.Millisecond})
	run(t, g)
	_, url := serve(t, g)
	aliceID, aliceCookie := addUser(t, db, "alice@example.com")
	_, bobCookie := addUser(t, db, "bob@example.com")
	alice := dial(t, url, browser{cookie: aliceCookie})
	connected(t, alice)
	id, _ := sessiongate.ParseUserID(aliceID)
	if n, err := other.DeleteUser(context.Background(), id); err != nil || n != 1 {
		t.Fatalf("DeleteUser = %d, %v; want 1 session", n, err)
	}
	ended(t, alice, string(sessiongate.EndRevoked))
	refused(t, dial(t, url, browser{cookie: aliceCookie, transport: siotest.Polling}), sessiongate.ECodeSessionNotFound)
	connected(t, dial(t, url, browser{cookie: bobCookie, transport: siotest.Polling}))
}

// TestUserActiveQuery: beside a Node app, the operator's query (a users
// table of the app's, with a disabled flag) decides. A disabled user's
// cookie is refused NOT_AUTHENTICATED, an active one's connects, and a user
// disabled while connected ends as revoked at the next batched check.
func TestUserActiveQuery(t *testing.T) {
	db, url := openPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE app_users (id text PRIMARY KEY, disabled boolean NOT NULL);
		INSERT INTO app_users VALUES ('u-active', false), ('u-disabled', true), ('u-later', false)`); err != nil {
		t.Fatal(err)
	}
	users, err := db.UserQuery(ctx, `SELECT id FROM app_users WHERE id = ANY($1) AND NOT disabled`)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, Config{Sessions: db, Revocations: db, Users: users, Audit: newRecordingAudit(nil),
		CheckInterval: 200 * time.Millisecond})
	run(t, g)
	ns, srvURL := serve(t, g)
	_, active := saveSession(t, db, `"u-active"`, time.Now().Add(time.Hour))
	_, disabled := saveSession(t, db, `"u-disabled"`, time.Now().Add(time.Hour))
	_, later := saveSession(t, db, `"u-later"`, time.Now().Add(time.Hour))
	_, unknown := saveSession(t, db, `"u-unknown"`, time.Now().Add(time.Hour))

	refused(t, dial(t, srvURL, browser{cookie: disabled, transport: siotest.Polling}), sessiongate.ECodeNotAuthenticated)
	refused(t, dial(t, srvURL, browser{cookie: unknown}), sessiongate.ECodeNotAuthenticated)
	connected(t, dial(t, srvURL, browser{cookie: active, transport: siotest.Polling}))

	laterC := dial(t, srvURL, browser{cookie: later})
	activeC := dial(t, srvURL, browser{cookie: active, transport: siotest.Polling})
	connected(t, laterC)
	connected(t, activeC)
	if _, err := conn.Exec(ctx, `UPDATE app_users SET disabled = true WHERE id = 'u-later'`); err != nil {
		t.Fatal(err)
	}
	ended(t, laterC, string(sessiongate.EndRevoked))
	if err := ns.To(sessiongate.Identity{UserID: "u-active"}.Room()).Emit(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	gotEvent(t, activeC, "hello")
	stillConnected(t, "active", activeC)
}
