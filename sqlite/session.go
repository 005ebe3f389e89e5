package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
)

// Session returns the row with the given id, expired or not.
func (db *DB) Session(ctx context.Context, sid string) (*sessiongate.Session, error) {
	var sess, expire string
	err := db.r.QueryRowContext(ctx, `SELECT sess, expire FROM session WHERE sid = ?`, sid).Scan(&sess, &expire)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessiongate.Errorf(sessiongate.ECodeNotFound, "session not found")
	}
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	t, err := parseTime(expire)
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return &sessiongate.Session{ID: sid, Data: json.RawMessage(sess), Expire: t}, nil
}

// idList encodes ids as the JSON array that json_each expands, so one
// statement takes any number of ids.
func idList(ids []string) (string, error) {
	b, err := json.Marshal(ids)
	if err != nil {
		return "", fmt.Errorf("encode ids: %w", err)
	}
	return string(b), nil
}

// Sessions returns the existing rows among sids, expired or not, in one
// query whatever the number of ids.
func (db *DB) Sessions(ctx context.Context, sids []string) (map[string]*sessiongate.Session, error) {
	out := make(map[string]*sessiongate.Session, len(sids))
	if len(sids) == 0 {
		return out, nil
	}
	list, err := idList(sids)
	if err != nil {
		return nil, fmt.Errorf("get sessions: %w", err)
	}
	rows, err := db.r.QueryContext(ctx,
		`SELECT sid, sess, expire FROM session WHERE sid IN (SELECT value FROM json_each(?))`, list)
	if err != nil {
		return nil, fmt.Errorf("get sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sid, sess, expire string
		if err := rows.Scan(&sid, &sess, &expire); err != nil {
			return nil, fmt.Errorf("get sessions: %w", err)
		}
		t, err := parseTime(expire)
		if err != nil {
			return nil, fmt.Errorf("get sessions: %w", err)
		}
		out[sid] = &sessiongate.Session{ID: sid, Data: json.RawMessage(sess), Expire: t}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get sessions: %w", err)
	}
	return out, nil
}

// SaveSession inserts or replaces a row, as express-session's store.set.
// Expire is stored to the millisecond. A save that ends a live session
// (passport.user removed, or expiry moved into the past) is announced.
func (db *DB) SaveSession(ctx context.Context, s *sessiongate.Session) error {
	if !json.Valid(s.Data) {
		return sessiongate.Errorf(sessiongate.ECodeInvalid, "session data is not JSON")
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	defer tx.Rollback()

	var oldSess, oldExpire string
	err = tx.QueryRowContext(ctx, `SELECT sess, expire FROM session WHERE sid = ?`, s.ID).Scan(&oldSess, &oldExpire)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("save session: %w", err)
	}
	newExpire := formatTime(s.Expire)
	_, err = tx.ExecContext(ctx,
		`INSERT INTO session (sid, sess, expire) VALUES (?, ?, ?) `+
			`ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire`,
		s.ID, string(s.Data), newExpire)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if found {
		db.hub.publish(endings(s.ID, oldSess, oldExpire, string(s.Data), newExpire, time.Now()))
	}
	return nil
}

// endings returns the revocations an update of a row causes, with the same
// rules as the PostgreSQL trigger: the expiry moved from the future to the
// past (expired); passport.user removed (logged_out).
func endings(sid, oldSess, oldExpire, newSess, newExpire string, now time.Time) []sessiongate.Revocation {
	var out []sessiongate.Revocation
	n := formatTime(now)
	if newExpire <= n && oldExpire > n {
		out = append(out, revocation(sid, sessiongate.EndExpired))
	}
	if oldSess != newSess && hasUser(oldSess) && !hasUser(newSess) {
		out = append(out, revocation(sid, sessiongate.EndLoggedOut))
	}
	return out
}

func hasUser(sess string) bool {
	_, ok, err := expresssession.UserID([]byte(sess))
	return ok && err == nil
}

func revocation(sid string, reason sessiongate.EndReason) sessiongate.Revocation {
	return sessiongate.Revocation{SessionHash: sessiongate.SessionHash(sid), Reason: reason}
}

// DeleteSession removes a row, as store.destroy, and announces it as
// revoked, unless the row had expired already (as the PostgreSQL trigger:
// its sockets were ended at its expiry).
func (db *DB) DeleteSession(ctx context.Context, sid string) error {
	var expire string
	err := db.w.QueryRowContext(ctx, `DELETE FROM session WHERE sid = ? RETURNING expire`, sid).Scan(&expire)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if expire > formatTime(time.Now()) {
		db.hub.publish([]sessiongate.Revocation{revocation(sid, sessiongate.EndRevoked)})
	}
	return nil
}

// RefreshSessions moves each session's expiry to its Refresh.Expire: the
// expire column becomes Expire rounded up to a whole second (as
// connect-pg-simple computes it) and sess.cookie.expires becomes Expire,
// every other byte of the JSON kept. It runs in one write transaction, so no
// other write can come between the read and the update.
func (db *DB) RefreshSessions(ctx context.Context, refreshes []sessiongate.Refresh) ([]string, error) {
	want := make(map[string]sessiongate.Refresh, len(refreshes))
	ids := make([]string, 0, len(refreshes))
	for _, r := range sessiongate.UniqueRefreshes(refreshes) {
		want[r.ID] = r
		ids = append(ids, r.ID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := idList(ids)
	if err != nil {
		return nil, fmt.Errorf("refresh sessions: %w", err)
	}

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("refresh sessions: %w", err)
	}
	defer tx.Rollback()
	type row struct{ sid, sess, expire string }
	var found []row
	rows, err := tx.QueryContext(ctx, `SELECT sid, sess, expire FROM session WHERE sid IN (SELECT value FROM json_each(?))`, list)
	if err != nil {
		return nil, fmt.Errorf("refresh sessions: read: %w", err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.sid, &r.sess, &r.expire); err != nil {
			rows.Close()
			return nil, fmt.Errorf("refresh sessions: read: %w", err)
		}
		found = append(found, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("refresh sessions: read: %w", err)
	}

	update, err := tx.PrepareContext(ctx, `UPDATE session SET sess = ?, expire = ? WHERE sid = ?`)
	if err != nil {
		return nil, fmt.Errorf("refresh sessions: %w", err)
	}
	defer update.Close()
	now := time.Now()
	done := make([]string, 0, len(found))
	var ended []sessiongate.Revocation
	for _, r := range found {
		if data := want[r.sid].Data; data != nil && string(data) != r.sess {
			continue // rewritten since the caller read it
		}
		t := want[r.sid].Expire
		sess, err := expresssession.SetCookieExpires([]byte(r.sess), t)
		if err != nil {
			// No cookie to edit: move the column only, as a touch does.
			sess = []byte(r.sess)
		}
		expire := formatTime(expresssession.StoreExpire(t))
		if _, err := update.ExecContext(ctx, string(sess), expire, r.sid); err != nil {
			return nil, fmt.Errorf("refresh sessions: update: %w", err)
		}
		done = append(done, r.sid)
		ended = append(ended, endings(r.sid, r.sess, r.expire, string(sess), expire, now)...)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("refresh sessions: %w", err)
	}
	db.hub.publish(ended)
	return done, nil
}

// PruneSessions deletes the rows whose expiry is before `before`, batch rows
// per statement (a write transaction of its own: other writers go between
// two), until a statement deletes fewer. Pruned rows are not announced.
func (db *DB) PruneSessions(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		return 0, sessiongate.Errorf(sessiongate.ECodeInvalid, "prune batch must be positive")
	}
	cutoff := formatTime(before)
	var total int64
	for ctx.Err() == nil {
		res, err := db.w.ExecContext(ctx,
			`DELETE FROM session WHERE sid IN (SELECT sid FROM session WHERE expire < ? LIMIT ?)`, cutoff, batch)
		if err != nil {
			return total, fmt.Errorf("prune sessions: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune sessions: %w", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
	return total, fmt.Errorf("prune sessions: %w", ctx.Err())
}
