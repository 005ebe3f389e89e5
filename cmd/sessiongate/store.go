package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/sqlite"
)

// store is what both backends implement.
type store interface {
	sessiongate.SessionStore
	sessiongate.RevocationFeed
	sessiongate.UserStore
	sessiongate.AuditStore
	sessiongate.SessionPruner
	sessiongate.UserChecker
	Migrate(ctx context.Context) error
	Ping(ctx context.Context) error
	io.Closer
}

// openedStore is an open backend and what to call it.
type openedStore struct {
	store
	desc string // for messages: "PostgreSQL table "session"" or the SQLite path
}

// sqlitePath is the embedded store's file.
func (c *Config) sqlitePath() string { return filepath.Join(c.DataDir, "sessiongate.db") }

// usePostgres reports whether the settings choose PostgreSQL.
func (c *Config) usePostgres() bool { return c.DatabaseURL != "" && !c.Demo }

// openStore opens the backend the settings choose. The SQLite file is
// created and migrated (it is sessiongate's own); PostgreSQL is only
// connected to: its tables belong to the operator, created by migrate.
// An unreachable database is a *ConfigError naming DATABASE_URL.
func openStore(ctx context.Context, c *Config) (*openedStore, error) {
	if c.usePostgres() {
		db, err := postgres.Open(ctx, postgres.Config{URL: c.DatabaseURL, Schema: c.SessionSchema, Table: c.SessionTable})
		if err != nil {
			return nil, &ConfigError{Setting: "DATABASE_URL", Err: fmt.Errorf("cannot connect: %w", err)}
		}
		desc := fmt.Sprintf("PostgreSQL table %q", c.SessionTable)
		if c.SessionSchema != "" {
			desc = fmt.Sprintf("PostgreSQL table %q.%q", c.SessionSchema, c.SessionTable)
		}
		return &openedStore{store: db, desc: desc}, nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, &ConfigError{Setting: "DATA_DIR", Err: err}
	}
	path := c.sqlitePath()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, &ConfigError{Setting: "DATA_DIR", Err: fmt.Errorf("open %s: %w", path, err)}
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return &openedStore{store: db, desc: "SQLite " + path}, nil
}

// checkSchema makes sure the PostgreSQL objects serve needs exist (the
// session table, the revocation trigger, sessiongate's own tables), so that a
// missing migration is one clear line at start-up rather than errors at
// every handshake, or sockets that are never told of a logout.
func checkSchema(ctx context.Context, c *Config, s *openedStore) error {
	pg, ok := s.store.(*postgres.DB)
	if !c.usePostgres() || !ok {
		return nil
	}
	err := pg.Check(ctx)
	if sessiongate.ErrorCode(err) == sessiongate.ECodeNotFound {
		return &ConfigError{Setting: "DATABASE_URL", Err: fmt.Errorf("%s: run `sessiongate migrate` first", sessiongate.ErrorMessage(err))}
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", s.desc, err)
	}
	return nil
}

// userChecker returns what the gateway asks whether a session's user still
// exists: the operator's USER_ACTIVE_QUERY (PostgreSQL only; checked by
// running it once), else the embedded login's users when sessiongate owns
// login, else nothing (the Node app's users are not ours to know).
func userChecker(ctx context.Context, c *Config, s *openedStore) (sessiongate.UserChecker, error) {
	if c.UserActiveQuery == "" {
		if c.AuthEndpoints {
			return s.store, nil
		}
		return nil, nil
	}
	pg, ok := s.store.(*postgres.DB)
	if !c.usePostgres() || !ok {
		return nil, configErrorf("USER_ACTIVE_QUERY", "needs a PostgreSQL store (DATABASE_URL)")
	}
	q, err := pg.UserQuery(ctx, c.UserActiveQuery)
	if err != nil {
		return nil, &ConfigError{Setting: "USER_ACTIVE_QUERY", Err: err}
	}
	return q, nil
}
