package pgcount_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate/bench/internal/pgcount"
	"github.com/sessiongate/sessiongate/internal/pgtest"
)

func TestProxyCountsTableStatements(t *testing.T) {
	_, dbURL := pgtest.Schema(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pgcount.Listen(u.Host, "session")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u.Host = p.Addr()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	steps := []struct {
		sql   string
		args  []any
		table int64 // statements naming "session" counted by this step
	}{
		{`CREATE TABLE "session" (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp NOT NULL)`, nil, 1},
		{`SELECT 1`, nil, 0},
		{`SELECT sess FROM "session" WHERE sid = $1`, []any{"a"}, 1},
		{`SELECT sess FROM "session" WHERE sid = $1`, []any{"b"}, 1}, // prepared once, executed twice
		{`SELECT sid FROM "session" WHERE sid = ANY($1)`, []any{[]string{"a", "b", "c"}}, 1},
		{`SELECT 'session'`, nil, 0},
	}
	for _, st := range steps {
		before := p.Snapshot()
		rows, err := conn.Query(ctx, st.sql, st.args...)
		if err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
		d := p.Snapshot().Sub(before)
		if d.Table != st.table {
			t.Errorf("%s: counted %d table statements, want %d", st.sql, d.Table, st.table)
		}
		if d.Total < 1 {
			t.Errorf("%s: counted no statement at all", st.sql)
		}
	}
	if top := p.Snapshot().Top(); len(top) != 3 || top[0] != `SELECT sess FROM "session" WHERE sid = $1` {
		t.Errorf("Top() = %q", top)
	}
}
