package sessiongate

import (
	"context"
	"strconv"
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

// ParseUserID returns the User.ID a passport.user value names, and false
// when it names none: the embedded login writes ids as decimal integers, and
// any other spelling ("007", "7.0") is another user's.
func ParseUserID(userID string) (int64, bool) {
	id, err := strconv.ParseInt(userID, 10, 64)
	if err != nil || strconv.FormatInt(id, 10) != userID {
		return 0, false
	}
	return id, true
}

// UserStore keeps the users of the embedded login. Emails are unique and
// compared case-insensitively. Missing users are an *Error with ECodeNotFound;
// a taken email on create is ECodeConflict.
type UserStore interface {
	CreateUser(ctx context.Context, email, passwordHash string) (*User, error)
	UserByEmail(ctx context.Context, email string) (*User, error)
	UserByID(ctx context.Context, id int64) (*User, error)
	Users(ctx context.Context) ([]*User, error)

	// DeleteUser removes the user and, in the same transaction, every
	// session row whose passport.user is its id (a number or a string),
	// so that no cookie of it still opens a socket; it returns how many
	// sessions it deleted. The deletions are announced as revocations as
	// any other (on PostgreSQL, by the trigger).
	DeleteUser(ctx context.Context, id int64) (sessions int64, err error)
}

// UserChecker says which users may still hold sessions. With the embedded
// login it is the users table (a deleted user's cookie stops working); beside
// a Node app it is the operator's query (USER_ACTIVE_QUERY). The gateway asks
// it at each handshake and once per batch of its periodic checks.
type UserChecker interface {
	// ActiveUsers returns the ids among userIDs (passport.user values, as
	// strings) whose users exist and may connect, in one round trip
	// whatever the number of ids. An id that names no user is simply
	// absent from the result.
	ActiveUsers(ctx context.Context, userIDs []string) (map[string]bool, error)
}
