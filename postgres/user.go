package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sessiongate/sessiongate"
)

const userColumns = `id, email, password_hash, created_at`

// CreateUser adds a user; an email taken in any letter case is ECodeConflict.
func (db *DB) CreateUser(ctx context.Context, email, passwordHash string) (*sessiongate.User, error) {
	rows, err := db.pool.Query(ctx,
		`INSERT INTO `+db.names.Users+` (email, password_hash) VALUES ($1, $2) RETURNING `+userColumns,
		email, passwordHash)
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if isCode(err, "23505") { // unique_violation
		return nil, sessiongate.Wrap(sessiongate.ECodeConflict, "email already registered", err)
	}
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with the email, compared case-insensitively.
func (db *DB) UserByEmail(ctx context.Context, email string) (*sessiongate.User, error) {
	return db.oneUser(ctx, `SELECT `+userColumns+` FROM `+db.names.Users+` WHERE lower(email) = lower($1)`, email)
}

// UserByID returns the user with the id.
func (db *DB) UserByID(ctx context.Context, id int64) (*sessiongate.User, error) {
	return db.oneUser(ctx, `SELECT `+userColumns+` FROM `+db.names.Users+` WHERE id = $1`, id)
}

func (db *DB) oneUser(ctx context.Context, query string, arg any) (*sessiongate.User, error) {
	rows, err := db.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sessiongate.Errorf(sessiongate.ECodeNotFound, "user not found")
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// Users returns every user, by id.
func (db *DB) Users(ctx context.Context) ([]*sessiongate.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+` FROM `+db.names.Users+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// DeleteUser removes the user with the id and its session rows, in one
// transaction; a missing user is ECodeNotFound. Finding the sessions reads
// every row's passport.user (the table has no index on it): an
// administrator's rare command, not a request path.
func (db *DB) DeleteUser(ctx context.Context, id int64) (int64, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM `+db.names.Users+` WHERE id = $1`, id)
	if err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return 0, sessiongate.Errorf(sessiongate.ECodeNotFound, "user not found")
	}
	db.sessionStmts.Add(1)
	// ->> gives a JSON number as written and a string unquoted, as
	// expresssession.UserID reads passport.user.
	tag, err = tx.Exec(ctx, `DELETE FROM `+db.names.Table+` WHERE sess -> 'passport' ->> 'user' = $1`,
		strconv.FormatInt(id, 10))
	if err != nil {
		return 0, fmt.Errorf("delete user: sessions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("delete user: commit: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ActiveUsers returns the ids among userIDs that name a user of the
// embedded login, in one query (id = ANY($1)). Ids that are not decimal
// integers name no user.
func (db *DB) ActiveUsers(ctx context.Context, userIDs []string) (map[string]bool, error) {
	active := make(map[string]bool, len(userIDs))
	ids := make([]int64, 0, len(userIDs))
	for _, s := range userIDs {
		if id, ok := sessiongate.ParseUserID(s); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return active, nil
	}
	err := retryRead(ctx, func() error {
		clear(active)
		rows, err := db.pool.Query(ctx, `SELECT id FROM `+db.names.Users+` WHERE id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		var id int64
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			active[strconv.FormatInt(id, 10)] = true
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("active users: %w", err)
	}
	return active, nil
}

// UserQuery returns a UserChecker that runs query, an operator's SELECT
// (one statement, no trailing semicolon) whose parameter $1 is the user ids
// as text[] and whose first column holds the ids of those still active, of
// any type that casts to text, e.g.
//
//	SELECT id FROM users WHERE id::text = ANY($1) AND NOT disabled
//
// $1 is always text[], whatever the query compares it with: passport.user
// may hold any string, and one that is not a number must not fail the
// whole batch. UserQuery runs the query once with no ids, so that a query
// PostgreSQL rejects (id = ANY($1) on a bigint column is one) fails here, at
// start-up, rather than at every handshake.
func (db *DB) UserQuery(ctx context.Context, query string) (sessiongate.UserChecker, error) {
	q := &userQuery{db: db, sql: `SELECT q.id::text FROM (SELECT $1::text[]) AS p, (` + query + `) AS q(id)`}
	if _, err := q.run(ctx, []string{}); err != nil {
		return nil, err
	}
	return q, nil
}

// userQuery is the UserChecker of UserQuery.
type userQuery struct {
	db  *DB
	sql string
}

// ActiveUsers runs the query on userIDs.
func (q *userQuery) ActiveUsers(ctx context.Context, userIDs []string) (map[string]bool, error) {
	if len(userIDs) == 0 {
		return map[string]bool{}, nil
	}
	return q.run(ctx, userIDs)
}

func (q *userQuery) run(ctx context.Context, userIDs []string) (map[string]bool, error) {
	active := make(map[string]bool, len(userIDs))
	err := retryRead(ctx, func() error {
		clear(active)
		rows, err := q.db.pool.Query(ctx, q.sql, userIDs)
		if err != nil {
			return err
		}
		var id pgtype.Text
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			if id.Valid {
				active[id.String] = true
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("user active query: %w", err)
	}
	return active, nil
}

func scanUser(row pgx.CollectableRow) (*sessiongate.User, error) {
	var u sessiongate.User
	if err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.CreatedAt); err != nil {
		return nil, err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return &u, nil
}
