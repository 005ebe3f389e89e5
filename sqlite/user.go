package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sessiongate/sessiongate"
)

const userColumns = `id, email, password_hash, created_at`

// CreateUser adds a user; an email taken in any letter case is ECodeConflict.
// Case is folded by SQLite's lower(), which folds ASCII letters only.
func (db *DB) CreateUser(ctx context.Context, email, passwordHash string) (*sessiongate.User, error) {
	row := db.w.QueryRowContext(ctx,
		`INSERT INTO sessiongate_users (email, password_hash, created_at) VALUES (?, ?, ?) RETURNING `+userColumns,
		email, passwordHash, formatTime(time.Now()))
	u, err := scanUser(row)
	if isCode(err, errUnique) {
		return nil, sessiongate.Wrap(sessiongate.ECodeConflict, "email already registered", err)
	}
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// UserByEmail returns the user with the email, compared case-insensitively.
func (db *DB) UserByEmail(ctx context.Context, email string) (*sessiongate.User, error) {
	return db.oneUser(ctx, `SELECT `+userColumns+` FROM sessiongate_users WHERE lower(email) = lower(?)`, email)
}

// UserByID returns the user with the id.
func (db *DB) UserByID(ctx context.Context, id int64) (*sessiongate.User, error) {
	return db.oneUser(ctx, `SELECT `+userColumns+` FROM sessiongate_users WHERE id = ?`, id)
}

func (db *DB) oneUser(ctx context.Context, query string, arg any) (*sessiongate.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, query, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessiongate.Errorf(sessiongate.ECodeNotFound, "user not found")
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// Users returns every user, by id.
func (db *DB) Users(ctx context.Context) ([]*sessiongate.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+userColumns+` FROM sessiongate_users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []*sessiongate.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// DeleteUser removes the user with the id and its session rows, in one
// write transaction; a missing user is ECodeNotFound. The ended sessions
// are announced to this DB's watchers; another process (the server, when
// `sessiongate users delete` ran) sees them at its next batched check.
func (db *DB) DeleteUser(ctx context.Context, id int64) (int64, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM sessiongate_users WHERE id = ?`, id)
	if err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("delete user: %w", err)
	} else if n == 0 {
		return 0, sessiongate.Errorf(sessiongate.ECodeNotFound, "user not found")
	}
	// json_extract gives a number as a number and a string unquoted: as
	// text, both are what expresssession.UserID reads. A row that is not
	// JSON has no user.
	rows, err := tx.QueryContext(ctx,
		`DELETE FROM session WHERE CAST(CASE WHEN json_valid(sess) THEN json_extract(sess, '$.passport.user') END AS TEXT) = ? `+
			`RETURNING sid, expire`, strconv.FormatInt(id, 10))
	if err != nil {
		return 0, fmt.Errorf("delete user: sessions: %w", err)
	}
	var (
		n     int64
		ended []sessiongate.Revocation
		now   = formatTime(time.Now())
	)
	for rows.Next() {
		var sid, expire string
		if err := rows.Scan(&sid, &expire); err != nil {
			rows.Close()
			return 0, fmt.Errorf("delete user: sessions: %w", err)
		}
		n++
		if expire > now {
			ended = append(ended, revocation(sid, sessiongate.EndRevoked))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("delete user: sessions: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("delete user: commit: %w", err)
	}
	db.hub.publish(ended)
	return n, nil
}

// ActiveUsers returns the ids among userIDs that name a user of the
// embedded login, in one query. Ids that are not decimal integers name no
// user.
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
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("active users: %w", err)
	}
	rows, err := db.r.QueryContext(ctx,
		`SELECT id FROM sessiongate_users WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, fmt.Errorf("active users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("active users: %w", err)
		}
		active[strconv.FormatInt(id, 10)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("active users: %w", err)
	}
	return active, nil
}

func scanUser(row interface{ Scan(...any) error }) (*sessiongate.User, error) {
	var (
		u       sessiongate.User
		created string
	)
	if err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &created); err != nil {
		return nil, err
	}
	t, err := parseTime(created)
	if err != nil {
		return nil, err
	}
	u.CreatedAt = t
	return &u, nil
}
