// Package sqlite is the embedded backend of sessiongate, for running without
// PostgreSQL: the same session table shape as connect-pg-simple's, the users
// of the embedded login and the audit trail, in one SQLite file (pure Go,
// modernc.org/sqlite, no cgo).
//
// The session table keeps sess as the JSON text byte for byte and expire as
// UTC text in JavaScript's toISOString() form ("2006-01-02T15:04:05.000Z"):
// fixed width, so it sorts as time does, at millisecond precision.
//
// Ended sessions are announced in process: the writes of this DB (delete
// of a row that had not expired, a save that removes passport.user, a save
// or refresh that moves a live expiry into the past) are delivered to every
// WatchRevocations caller. Writes made by another process to the same file
// are not announced (`sessiongate users delete` is one): the gateway sees
// them at its next batched check.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sessiongate/sessiongate"
)

// DB is one SQLite database file. It implements sessiongate.SessionStore,
// RevocationFeed, UserStore and AuditStore and is safe for concurrent use:
// writes go through a single connection, reads through a pool (WAL mode lets
// them run beside the writer).
type DB struct {
	w *sql.DB // one connection: SQLite has one writer at a time
	r *sql.DB // read-only pool

	hub hub
}

var (
	_ sessiongate.SessionStore   = (*DB)(nil)
	_ sessiongate.RevocationFeed = (*DB)(nil)
	_ sessiongate.UserStore      = (*DB)(nil)
	_ sessiongate.AuditStore     = (*DB)(nil)
	_ sessiongate.SessionPruner  = (*DB)(nil)
	_ sessiongate.UserChecker    = (*DB)(nil)
)

// busyTimeout is how long a connection waits for a lock held by another
// connection or process before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// readConns is the size of the read pool.
const readConns = 4

// Open opens (creating it if needed) the database file at path, in WAL mode
// with foreign keys on. It does not create tables: call Migrate.
func Open(ctx context.Context, path string) (*DB, error) {
	dsn := func(extra ...string) string {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		for _, p := range extra {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	// The writer sets WAL mode first, so readers find the file in it.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	db := &DB{w: w, r: r}
	db.hub.init()
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Ping checks that the database answers, for readiness probes.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Close closes the database's connections and reports the first failure of
// each pool. WatchRevocations calls end with their context. It has the shape
// of io.Closer, as postgres.DB.Close.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

//go:embed sql/schema.sql
var schema string

// Migrate creates the tables and indexes that are missing, in one
// transaction. It never touches rows and may run any number of times.
func (db *DB) Migrate(ctx context.Context) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// An audit table of an older version lacks count (SQLite has no ADD
	// COLUMN IF NOT EXISTS).
	var hasCount bool
	if err := tx.QueryRowContext(ctx, `SELECT count(*) > 0 FROM pragma_table_info('sessiongate_audit') WHERE name = 'count'`).Scan(&hasCount); err != nil {
		return fmt.Errorf("migrate: audit columns: %w", err)
	}
	if !hasCount {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE sessiongate_audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1`); err != nil {
			return fmt.Errorf("migrate: add audit count: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// timeFormat is how times are stored: UTC, milliseconds, as toISOString().
const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) (time.Time, error) {
	if len(s) != len(timeFormat) {
		return time.Time{}, fmt.Errorf("parse stored time %q: not %s", s, timeFormat)
	}
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time: %w", err)
	}
	return t, nil
}

// isCode reports whether err is an SQLite error with the extended code.
func isCode(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code
}

var errUnique = sqlite3.SQLITE_CONSTRAINT_UNIQUE
