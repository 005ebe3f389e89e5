package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// DeleteUser removes the user with the id; a missing user is ECodeNotFound.
func (db *DB) DeleteUser(ctx context.Context, id int64) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM sessiongate_users WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete user: %w", err)
	} else if n == 0 {
		return sessiongate.Errorf(sessiongate.ECodeNotFound, "user not found")
	}
	return nil
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
