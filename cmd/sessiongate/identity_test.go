package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate/internal/pgtest"
)

// TestUsersDeleteEndsSockets: `sessiongate users delete`, run as its own
// command beside a serving PostgreSQL server, ends the user's open socket
// (session_expired revoked, through the revocation trigger) and its cookie
// opens no other.
func TestUsersDeleteEndsSockets(t *testing.T) {
	schema, url := pgtest.Schema(t)
	env := map[string]string{"DATABASE_URL": url, "SESSION_SCHEMA": schema}
	if code, _, stderr := runCmd(t, env, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	_, base, _ := serveMain(t, env)
	cookie, _ := login(t, base)
	c := startClient(t, base, cookie, "websocket")
	if l := c.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	code, stdout, stderr := runCmd(t, env, "", "users", "delete", "--email", "alice@example.com")
	if code != 0 || !strings.HasSuffix(stdout, "alice@example.com and its 1 sessions\n") {
		t.Fatalf("users delete: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	c.expectEvent(t, "session_expired", `{"reason":"revoked"}`)
	c.expectDisconnect(t, "io server disconnect")

	again := startClient(t, base, cookie, "websocket")
	if l := again.next(t); l.Type != "connect_error" || l.Message != "unauthorized" {
		t.Errorf("the deleted user's cookie: %+v, want connect_error unauthorized", l)
	}
}

// TestUserActiveQuerySetting: USER_ACTIVE_QUERY needs PostgreSQL, and a
// query PostgreSQL rejects stops serve at start-up, naming the setting.
func TestUserActiveQuerySetting(t *testing.T) {
	schema, url := pgtest.Schema(t)
	pg := map[string]string{"DATABASE_URL": url, "SESSION_SCHEMA": schema}
	if code, _, stderr := runCmd(t, pg, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	conn, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(testCtx(t), `CREATE TABLE app_users (id bigint PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, query, store, wantErr string
	}{
		{"sqlite", "SELECT id FROM app_users WHERE id::text = ANY($1)", "sqlite", "sessiongate: USER_ACTIVE_QUERY: needs a PostgreSQL store"},
		{"bad query", "SELECT id FROM app_users WHERE id = ANY($1)", "postgres", "sessiongate: USER_ACTIVE_QUERY: user active query: "},
		{"good query", "SELECT id FROM app_users WHERE id::text = ANY($1)", "postgres", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := validEnv(t)
			if tt.store == "postgres" {
				for k, v := range pg {
					env[k] = v
				}
			}
			env["USER_ACTIVE_QUERY"] = tt.query
			m, _, stderr := testMain(env)
			if err := m.ParseFlags(testCtx(t), nil); err != nil {
				t.Fatalf("ParseFlags: %v", err)
			}
			err := m.Run(testCtx(t))
			t.Cleanup(func() { m.Close() })
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v (%s)", err, stderr)
				}
				return
			}
			if err == nil || !strings.HasPrefix("sessiongate: "+err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
