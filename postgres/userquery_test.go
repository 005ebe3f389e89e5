package postgres

import (
	"strings"
	"testing"
)

// TestUserQuery runs an operator's USER_ACTIVE_QUERY over a Node app's own
// users table: only the ids it returns are active, and a query PostgreSQL
// rejects fails when it is set up.
func TestUserQuery(t *testing.T) {
	db, _, url := openDB(t)
	ctx := testCtx(t)
	c := rawConn(t, url)
	if _, err := c.Exec(ctx, `CREATE TABLE users (id bigint PRIMARY KEY, disabled boolean NOT NULL);
		INSERT INTO users VALUES (1, false), (2, true), (3, false)`); err != nil {
		t.Fatal(err)
	}
	q, err := db.UserQuery(ctx, `SELECT id FROM users WHERE id::text = ANY($1) AND NOT disabled`)
	if err != nil {
		t.Fatalf("UserQuery: %v", err)
	}
	got, err := q.ActiveUsers(ctx, []string{"1", "2", "4", "x"})
	if err != nil || len(got) != 1 || !got["1"] {
		t.Errorf("ActiveUsers = %v, %v; want only 1 (2 is disabled, 4 and x do not exist)", got, err)
	}
	if got, err := q.ActiveUsers(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("ActiveUsers(nil) = %v, %v", got, err)
	}

	for _, bad := range []string{
		`SELECT id FROM no_such_table WHERE id::text = ANY($1)`,
		`SELECT id FROM users WHERE id = $1 AND $2`,
		`SELECT id FROM users WHERE id = ANY($1)`, // bigint = text: would fail on a non-numeric id
		`SELECT id FROM users WHERE id::text = ANY($1);`,
		`not sql`,
	} {
		if _, err := db.UserQuery(ctx, bad); err == nil || !strings.Contains(err.Error(), "user active query") {
			t.Errorf("UserQuery(%q) = %v, want an error", bad, err)
		}
	}
}
