package sessiongate

import (
	"context"
	"encoding/json"
	"time"
)

// Session is one row of the express-session store (connect-pg-simple's table
// and its SQLite twin): the session id, the session JSON exactly as stored,
// and the expiry column, which alone decides validity.
type Session struct {
	ID     string          // the sid; never log it, log ShortHash(ID)
	Data   json.RawMessage // the sess column, byte for byte as stored
	Expire time.Time       // the expire column, in UTC
}

// Valid reports whether the session's expiry is in the future at now.
func (s *Session) Valid(now time.Time) bool { return s.Expire.After(now) }

// EndReason says why a session ended; it is the reason sent to clients in the
// session_expired event.
type EndReason string

const (
	EndRevoked   EndReason = "revoked"    // the row was deleted
	EndExpired   EndReason = "expired"    // the expiry passed
	EndLoggedOut EndReason = "logged_out" // passport.user was removed
)

// Refresh asks a store to move one session's expiry.
type Refresh struct {
	ID     string
	Expire time.Time

	// Data, when set, is the session JSON as the caller last read it: the
	// store refreshes the row only if it still holds exactly these bytes,
	// and need not read it again, so a batch costs one statement.
	Data json.RawMessage
}

// UniqueRefreshes returns refreshes with one entry per session id, the
// last one given for it, in the order the ids first appear.
func UniqueRefreshes(refreshes []Refresh) []Refresh {
	index := make(map[string]int, len(refreshes))
	out := make([]Refresh, 0, len(refreshes))
	for _, r := range refreshes {
		if i, ok := index[r.ID]; ok {
			out[i] = r
			continue
		}
		index[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}

// SessionStore reads and writes express-session rows. Implementations are
// safe for concurrent use and read and write the same bytes
// express-session + connect-pg-simple do, so a Node app can share the table.
type SessionStore interface {
	// Session returns the row with the given id whether or not it has
	// expired, or an *Error with code ECodeNotFound when there is none.
	Session(ctx context.Context, sid string) (*Session, error)

	// Sessions returns the rows for the given ids that exist, expired or
	// not, keyed by id, in one round trip (sid = ANY($1)).
	Sessions(ctx context.Context, sids []string) (map[string]*Session, error)

	// SaveSession inserts or replaces a row, as express-session's store.set.
	SaveSession(ctx context.Context, s *Session) error

	// DeleteSession removes a row, as store.destroy. Deleting a missing row
	// is not an error.
	DeleteSession(ctx context.Context, sid string) error

	// RefreshSessions moves the expiry of each listed session, in one
	// statement: the expire column and sess.cookie.expires change together
	// and every other byte of the JSON is kept. It returns the ids that were
	// refreshed; a row that is gone, or that was rewritten concurrently (or
	// no longer holds Refresh.Data), is left alone and not returned.
	RefreshSessions(ctx context.Context, refreshes []Refresh) ([]string, error)
}

// SessionPruner is implemented by stores that delete expired rows, as
// connect-pg-simple's pruneSessionInterval does (see Pruner).
type SessionPruner interface {
	// PruneSessions deletes the rows whose expiry is before the given time,
	// at most batch rows per statement, each statement a short transaction
	// of its own, so that no lock is held for long beside the Node app's or
	// the gateway's writes; it stops after a statement that deleted fewer
	// than batch rows, or when ctx ends, and returns how many rows it
	// deleted. A deleted row that had already expired is not announced as a
	// revocation: its sockets were ended at its expiry.
	PruneSessions(ctx context.Context, before time.Time, batch int) (int64, error)
}

// Revocation tells that a session has ended, or (Resync) that endings may
// have been missed and every live session must be checked again.
type Revocation struct {
	SessionHash string    // SessionHash(sid); empty when Resync
	Reason      EndReason // empty when Resync
	Resync      bool
}

// RevocationFeed is implemented by stores that announce ended sessions as
// they happen (PostgreSQL LISTEN/NOTIFY; in-process for SQLite).
type RevocationFeed interface {
	// WatchRevocations calls fn, from one goroutine, for each ended session
	// until ctx is done, and returns ctx.Err() then. After any gap in
	// delivery (a lost database connection), it calls fn with Resync set once
	// it is listening again.
	WatchRevocations(ctx context.Context, fn func(Revocation)) error
}

// Identity is who is on a socket: taken from the session row at the
// handshake, never from the client.
type Identity struct {
	UserID    string // passport.user, as a string
	SessionID string // the sid; never log it
}

// Room returns the room every socket of this user joins: "user:<id>".
func (id Identity) Room() string { return "user:" + id.UserID }
