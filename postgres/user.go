package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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

// DeleteUser removes the user with the id; a missing user is ECodeNotFound.
func (db *DB) DeleteUser(ctx context.Context, id int64) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM `+db.names.Users+` WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return sessiongate.Errorf(sessiongate.ECodeNotFound, "user not found")
	}
	return nil
}

func scanUser(row pgx.CollectableRow) (*sessiongate.User, error) {
	var u sessiongate.User
	if err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.CreatedAt); err != nil {
		return nil, err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return &u, nil
}
