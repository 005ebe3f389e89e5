package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate/internal/pgtest"
)

// runCmd runs one command with env and stdin and returns its exit status
// and output.
func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	m, out, errOut := testMain(env)
	m.Stdin = strings.NewReader(stdin)
	code = run(testCtx(t), m, args)
	return code, out.String(), errOut.String()
}

func TestUsers(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	steps := []struct {
		args       []string
		stdin      string
		wantCode   int
		wantStdout string // regexp
		wantStderr string
	}{
		{args: []string{"users", "list"}, wantStdout: `^ID\s+EMAIL\s+CREATED\n$`},
		{args: []string{"users", "add", "--email", "alice@example.com", "--password", "alice password"},
			wantStdout: `^added user 1 alice@example.com\n$`},
		{args: []string{"users", "add", "--email", "bob@example.com"}, stdin: "bob password\n",
			wantStdout: `^added user 2 bob@example.com\n$`},
		{args: []string{"users", "add", "--email", "carol@example.com"}, stdin: "short\n", wantCode: 2,
			wantStderr: "sessiongate: password (stdin): must be at least 8 characters\n"},
		{args: []string{"users", "add", "--email", "ALICE@example.com", "--password", "another one"}, wantCode: 1,
			wantStderr: "sessiongate: user ALICE@example.com already exists\n"},
		{args: []string{"users", "list"},
			wantStdout: `^ID\s+EMAIL\s+CREATED\n1\s+alice@example.com\s+\d{4}-\d\d-\d\dT\S+Z\n2\s+bob@example.com\s+\S+\n$`},
		{args: []string{"users", "delete", "--email", "alice@example.com"}, wantStdout: `^deleted user 1 alice@example.com and its 0 sessions\n$`},
		{args: []string{"users", "delete", "--email", "alice@example.com"}, wantCode: 1,
			wantStderr: "sessiongate: no user alice@example.com\n"},
		{args: []string{"users", "list"}, wantStdout: `^ID\s+EMAIL\s+CREATED\n2\s+bob@example.com\s+\S+\n$`},
		{args: []string{"users", "rename"}, wantCode: 2,
			wantStderr: "sessiongate: users: unknown action \"rename\": add, list or delete\n"},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, env, s.stdin, s.args...)
		if code != s.wantCode || stderr != s.wantStderr {
			t.Errorf("%q: exit %d stderr %q, want %d %q", s.args, code, stderr, s.wantCode, s.wantStderr)
		}
		if s.wantStdout != "" && !regexp.MustCompile(s.wantStdout).MatchString(stdout) {
			t.Errorf("%q: stdout %q, want %s", s.args, stdout, s.wantStdout)
		}
	}
}

func TestMigratePostgres(t *testing.T) {
	schema, url := pgtest.Schema(t)
	env := map[string]string{"DATABASE_URL": url, "SESSION_SCHEMA": schema, "SESSION_TABLE": "Session"}
	want := `migrated PostgreSQL table "` + schema + `"."Session": `
	for i := range 2 { // idempotent
		code, stdout, stderr := runCmd(t, env, "", "migrate")
		if code != 0 || !strings.HasPrefix(stdout, want) {
			t.Fatalf("migrate #%d: exit %d stdout %q stderr %q", i+1, code, stdout, stderr)
		}
	}
	// The store is usable: users and serve work on it.
	if code, _, stderr := runCmd(t, env, "", "users", "add", "--email", "alice@example.com", "--password", "alice password"); code != 0 {
		t.Fatalf("users add on PostgreSQL: %s", stderr)
	}
	if code, stdout, _ := runCmd(t, env, "", "users", "list"); code != 0 || !strings.Contains(stdout, "alice@example.com") {
		t.Errorf("users list on PostgreSQL: %q", stdout)
	}
	m, _, base := startMain(t, env)

	// A session deleted by someone else (a Node app's logout) ends the
	// socket through the database's notification.
	cookie, _ := login(t, base)
	c := startClient(t, base, cookie, "websocket")
	if l := c.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	conn, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if tag, err := conn.Exec(testCtx(t), `DELETE FROM "Session"`); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("delete the session row: %v (%v)", err, tag)
	}
	c.expectEvent(t, "session_expired", `{"reason":"revoked"}`)
	c.expectDisconnect(t, "io server disconnect")
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestMigrateSQLite(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		code, stdout, stderr := runCmd(t, map[string]string{"DATA_DIR": dir}, "", "migrate")
		if code != 0 || !strings.HasPrefix(stdout, "migrated SQLite "+dir+"/sessiongate.db") {
			t.Fatalf("migrate: exit %d stdout %q stderr %q", code, stdout, stderr)
		}
	}
}
