package sessiongate

import (
	"context"
	"time"
)

// User is an account of the embedded login (standalone mode). When a Node app
// owns login, sessiongate has no users of its own.
type User struct {
	ID           int64
	Email        string
	PasswordHash string // bcrypt
	CreatedAt    time.Time
}

// UserStore keeps the users of the embedded login. Emails are unique and
// compared case-insensitively. Missing users are an *Error with ECodeNotFound;
// a taken email on create is ECodeConflict.
type UserStore interface {
	CreateUser(ctx context.Context, email, passwordHash string) (*User, error)
	UserByEmail(ctx context.Context, email string) (*User, error)
	UserByID(ctx context.Context, id int64) (*User, error)
	Users(ctx context.Context) ([]*User, error)
	DeleteUser(ctx context.Context, id int64) error
}
