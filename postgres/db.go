// Package postgres is the PostgreSQL backend of sessiongate. It reads and
// writes the session table of connect-pg-simple exactly as express-session
// does, announces ended sessions through a trigger and LISTEN/NOTIFY, and
// keeps the users of the embedded login and the audit trail.
//
// It is also a cluster bus (Cluster, CLUSTER=postgres): the socketio.Adapter
// of each namespace speaks @socket.io/postgres-adapter 0.5.0's protocol over
// LISTEN/NOTIFY on the same database, so sessiongate nodes and Node
// Socket.IO servers form one cluster, and obeys @socket.io/postgres-emitter
// 0.1.1. Anyone who can connect to the database can NOTIFY on its channels:
// see Cluster for the grants and the separation that confine it.
//
// Every connection runs with TimeZone=UTC, whatever the Go process's local
// zone or the server's default: connect-pg-simple stores to_timestamp() into
// a timestamp-without-time-zone column, so the Node app and sessiongate agree
// on the expire column only when both use UTC (node-pg uses the server
// default, UTC on a stock server).
//
// Migrate needs PostgreSQL 14 or later (CREATE OR REPLACE TRIGGER).
package postgres

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"text/template"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiongate/sessiongate"
)

// Channel is the NOTIFY channel the revocation trigger announces on.
const Channel = "sessiongate_revocations"

// ListenerApplicationName is the application_name of the connection
// WatchRevocations listens on.
const ListenerApplicationName = "sessiongate-listener"

// DefaultTable is the session table's name when Config.Table is empty, as in
// connect-pg-simple.
const DefaultTable = "session"

// Config says which database and table to use.
type Config struct {
	URL      string // postgres:// URL or key=value DSN
	Schema   string // optional; empty means the connection's search_path
	Table    string // session table, default "session"; always quoted
	MaxConns int32  // pool size; 0 keeps pgxpool's default
}

// Stats counts the work done on the session table since Open.
type Stats struct {
	SessionStatements int64 // statements issued against the session table
}

// DB is a pool of connections to one PostgreSQL database. It implements
// sessiongate.SessionStore, RevocationFeed, UserStore and AuditStore and is
// safe for concurrent use.
type DB struct {
	pool     *pgxpool.Pool
	listenCf *pgx.ConnConfig // copy for the dedicated listener connection

	schema, table string
	names         names
	sql           statements

	sessionStmts atomic.Int64

	// testHookListening, when set, runs each time the listener is
	// listening, with its backend's process id.
	testHookListening func(pid uint32)
	// testHookBeforeRefreshUpdate, when set, runs between the read and the
	// compare-and-swap update of RefreshSessions.
	testHookBeforeRefreshUpdate func()
}

var (
	_ sessiongate.SessionStore   = (*DB)(nil)
	_ sessiongate.RevocationFeed = (*DB)(nil)
	_ sessiongate.UserStore      = (*DB)(nil)
	_ sessiongate.AuditStore     = (*DB)(nil)
	_ sessiongate.SessionPruner  = (*DB)(nil)
	_ sessiongate.UserChecker    = (*DB)(nil)
)

// names holds the quoted identifiers the SQL is built from.
type names struct {
	Table         string // qualified session table
	Func          string // qualified trigger function
	TrigRevoked   string
	TrigLoggedOut string
	TrigExpired   string
	Audit         string // qualified audit table
	Users         string // qualified users table
	Attachments   string // attachments table of the cluster bus (unqualified)
}

func newNames(schema, table string) names {
	q := func(name string) string {
		if schema == "" {
			return pgx.Identifier{name}.Sanitize()
		}
		return pgx.Identifier{schema, name}.Sanitize()
	}
	prefix := "sessiongate_" + table + "_"
	return names{
		Table:         q(table),
		Func:          q(prefix + "notify"),
		TrigRevoked:   pgx.Identifier{prefix + "revoked"}.Sanitize(),
		TrigLoggedOut: pgx.Identifier{prefix + "logged_out"}.Sanitize(),
		TrigExpired:   pgx.Identifier{prefix + "expired"}.Sanitize(),
		Audit:         q("sessiongate_audit"),
		Users:         q("sessiongate_users"),
		// Unqualified, as the Cluster and Node's adapter name it: the
		// connection's search_path decides, not Config.Schema.
		Attachments: pgx.Identifier{DefaultAttachmentsTable}.Sanitize(),
	}
}

// Open connects to the database described by cfg and checks that it answers.
// It does not create tables: call Migrate.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	params := pcfg.ConnConfig.RuntimeParams
	setParam(params, "timezone", "UTC")
	if params["application_name"] == "" {
		setParam(params, "application_name", "sessiongate")
	}
	listenCf := pcfg.ConnConfig.Copy()
	setParam(listenCf.RuntimeParams, "application_name", ListenerApplicationName)

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: create pool: %w", err)
	}
	db := &DB{
		pool:     pool,
		listenCf: listenCf,
		schema:   cfg.Schema,
		table:    cfg.Table,
		names:    newNames(cfg.Schema, cfg.Table),
	}
	db.sql = newStatements(db.names)
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	return db, nil
}

// setParam sets a run-time parameter, replacing any spelling of its name
// in another letter case (PostgreSQL's names are case-insensitive).
func setParam(params map[string]string, name, value string) {
	for k := range params {
		if strings.EqualFold(k, name) {
			delete(params, k)
		}
	}
	params[name] = value
}

// Ping checks that the database answers, for readiness probes.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for the ones in use to
// be released. Listeners started by WatchRevocations stop when their context
// ends. It has the shape of io.Closer, as sqlite.DB.Close; its error is
// always nil (pgxpool reports none).
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Stats returns counters of the work done since Open.
func (db *DB) Stats() Stats {
	return Stats{SessionStatements: db.sessionStmts.Load()}
}

//go:embed sql/*.sql
var sqlFiles embed.FS

var migrations = template.Must(template.New("").Option("missingkey=error").ParseFS(sqlFiles, "sql/*.sql"))

func render(name string, n names) (string, error) {
	var b bytes.Buffer
	if err := migrations.ExecuteTemplate(&b, name, n); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// migrateLock is the key of the transaction-level advisory lock that
// serialises concurrent Migrate calls ("sessiongate" in ASCII).
const migrateLock int64 = 0x73657373696f6e67

// Migrate creates what is missing, in one transaction: the connect-pg-simple
// session table with its exact DDL (an existing table is left as it is), the
// revocation trigger (replaced), the audit and users tables, and the
// attachments table of the cluster bus (see Cluster). It never
// touches rows and may run any number of times.
func (db *DB) Migrate(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if db.schema != "" {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{db.schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrate: create schema: %w", err)
		}
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", db.names.Table).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look up session table: %w", err)
	}
	files := []string{"revocation.sql", "audit.sql", "users.sql", "attachments.sql"}
	if !exists {
		files = append([]string{"session_table.sql"}, files...)
	}
	for _, f := range files {
		q, err := render(f, db.names)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("migrate: %s: %w", f, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// isCode reports whether err is a PostgreSQL error with the given SQLSTATE.
// readAttempts bounds how often a read is tried when its connection turns
// out to be dead.
const readAttempts = 3

// retryRead runs read, and runs it again (up to readAttempts in all) while
// it fails because its connection was lost: after a database restart every
// pooled connection is dead, and each is found so only by using it (the
// pool then drops it). Reads are safe to repeat.
func retryRead(ctx context.Context, read func() error) error {
	var err error
	for range readAttempts {
		if err = read(); err == nil || !connectionLost(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// connectionLost reports whether err says the connection, not the
// statement, failed: the server shut it down (SQLSTATE class 57P) or it
// broke before or while the statement was sent.
func connectionLost(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "57P")
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func isCode(err error, code string) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == code
}

// Check reports what Migrate would have to create: it returns nil when the
// session table, the revocation trigger and sessiongate's own tables are all
// in place, and otherwise an *sessiongate.Error (ECodeNotFound) naming the
// missing objects, so a server can refuse to start without revocations.
func (db *DB) Check(ctx context.Context) error {
	var missing []string
	for _, rel := range []string{db.names.Table, db.names.Audit, db.names.Users} {
		var ok bool
		if err := db.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", rel).Scan(&ok); err != nil {
			return fmt.Errorf("postgres: check %s: %w", rel, err)
		}
		if !ok {
			missing = append(missing, "table "+rel)
		}
	}
	if len(missing) == 0 {
		// The column Migrate adds to an audit table of an older version.
		var ok bool
		if err := db.pool.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'count' AND NOT attisdropped)`,
			db.names.Audit).Scan(&ok); err != nil {
			return fmt.Errorf("postgres: check %s: %w", db.names.Audit, err)
		}
		if !ok {
			missing = append(missing, "column count of "+db.names.Audit)
		}
		// Trigger names are unquoted identifiers in pg_trigger.tgname. A
		// revoked trigger without its WHEN clause predates the one that
		// keeps prunes silent: it counts as missing, so Migrate replaces it.
		prefix := "sessiongate_" + db.table + "_"
		var n, old int
		err := db.pool.QueryRow(ctx,
			`SELECT count(*), count(*) FILTER (WHERE tgname = $3 AND tgqual IS NULL) `+
				`FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = ANY($2) AND tgenabled <> 'D'`,
			db.names.Table, []string{prefix + "revoked", prefix + "logged_out", prefix + "expired"}, prefix+"revoked").Scan(&n, &old)
		if err != nil {
			return fmt.Errorf("postgres: check triggers: %w", err)
		}
		switch {
		case n != 3:
			missing = append(missing, "revocation trigger on "+db.names.Table)
		case old > 0:
			missing = append(missing, "an up-to-date revocation trigger on "+db.names.Table+" (this one announces pruned rows)")
		}
	}
	if len(missing) > 0 {
		return sessiongate.Errorf(sessiongate.ECodeNotFound, "missing %s", strings.Join(missing, ", "))
	}
	return nil
}
