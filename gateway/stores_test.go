package gateway

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/sqlite"
)

// postgresOpen opens a second handle on an already migrated schema.
func postgresOpen(url string) (*postgres.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return postgres.Open(ctx, postgres.Config{URL: url, Table: "Session"})
}

// openSQLite returns a migrated SQLite store in t.TempDir.
func openSQLite(t *testing.T) store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sessiongate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
