// Package pgtest gives each test its own PostgreSQL schema on the test
// server, so tests never see each other's rows.
//
// The server is TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. An unreachable
// server fails the test, naming it (`make test` starts it when it is down).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the test server used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BaseURL returns the test server's URL.
func BaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Schema creates a fresh, empty schema, drops it (with everything in it)
// when the test ends, and returns its name and a URL whose connections use
// it as search_path.
func Schema(t testing.TB) (name, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL not reachable at %s: %v (start it: `make test` does; or set TEST_DATABASE_URL)", BaseURL(), err)
	}
	defer conn.Close(ctx)

	var b [6]byte
	rand.Read(b[:])
	name = "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, BaseURL())
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})

	u, err := url.Parse(BaseURL())
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", BaseURL(), err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return name, u.String()
}
