package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
)

// statements holds the session-table SQL for one table name. get, set,
// destroy are connect-pg-simple's own statements apart from the columns read.
type statements struct {
	get, many, set, destroy, readSess, refresh, prune string
}

func newStatements(n names) statements {
	t := n.Table
	return statements{
		get:  `SELECT sid, sess::text, expire FROM ` + t + ` WHERE sid = $1`,
		many: `SELECT sid, sess::text, expire FROM ` + t + ` WHERE sid = ANY($1)`,
		set: `INSERT INTO ` + t + ` (sess, expire, sid) SELECT $1, to_timestamp($2), $3 ` +
			`ON CONFLICT (sid) DO UPDATE SET sess=$1, expire=to_timestamp($2) RETURNING sid`,
		destroy:  `DELETE FROM ` + t + ` WHERE sid = $1`,
		readSess: `SELECT sid, sess::text FROM ` + t + ` WHERE sid = ANY($1)`,
		// The compare on sess::text skips a row the Node app rewrote since
		// it was read: its new JSON wins.
		refresh: `UPDATE ` + t + ` AS s SET sess = u.new_sess::json, expire = u.expire ` +
			`FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamp[]) AS u(sid, old_sess, new_sess, expire) ` +
			`WHERE s.sid = u.sid AND s.sess::text = u.old_sess RETURNING s.sid`,
		// connect-pg-simple's prune (expire < to_timestamp($1)), a batch at
		// a time: the ids come from the expire index, the rows by primary
		// key (sid IN (subquery) would hash-join every expired row, each
		// batch). SKIP LOCKED passes over rows another transaction is
		// writing (a refresh) rather than waiting for it, and the outer
		// expire test keeps a row such a write moved into the future.
		prune: `DELETE FROM ` + t + ` WHERE sid = ANY(ARRAY(SELECT sid FROM ` + t + ` WHERE expire < to_timestamp($1) ` +
			`LIMIT $2 FOR UPDATE SKIP LOCKED)) AND expire < to_timestamp($1)`,
	}
}

// Session returns the row with the given id, expired or not.
func (db *DB) Session(ctx context.Context, sid string) (*sessiongate.Session, error) {
	db.sessionStmts.Add(1)
	var (
		s    sessiongate.Session
		sess string
	)
	err := retryRead(ctx, func() error {
		return db.pool.QueryRow(ctx, db.sql.get, sid).Scan(&s.ID, &sess, &s.Expire)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sessiongate.Errorf(sessiongate.ECodeNotFound, "session not found")
	}
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	s.Data = json.RawMessage(sess)
	s.Expire = s.Expire.UTC()
	return &s, nil
}

// Sessions returns the existing rows among sids, expired or not, in one
// query whatever the number of ids.
func (db *DB) Sessions(ctx context.Context, sids []string) (map[string]*sessiongate.Session, error) {
	out := make(map[string]*sessiongate.Session, len(sids))
	if len(sids) == 0 {
		return out, nil
	}
	db.sessionStmts.Add(1)
	var (
		sid, sess string
		expire    time.Time
	)
	err := retryRead(ctx, func() error {
		clear(out)
		rows, err := db.pool.Query(ctx, db.sql.many, sids)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&sid, &sess, &expire}, func() error {
			out[sid] = &sessiongate.Session{ID: sid, Data: json.RawMessage(sess), Expire: expire.UTC()}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get sessions: %w", err)
	}
	return out, nil
}

// SaveSession inserts or replaces a row with connect-pg-simple's set
// statement. Expire is stored to the millisecond, as a JavaScript Date.
func (db *DB) SaveSession(ctx context.Context, s *sessiongate.Session) error {
	if !json.Valid(s.Data) {
		return sessiongate.Errorf(sessiongate.ECodeInvalid, "session data is not JSON")
	}
	db.sessionStmts.Add(1)
	_, err := db.pool.Exec(ctx, db.sql.set, string(s.Data), unixSeconds(s.Expire), s.ID)
	if isCode(err, "22P02") { // invalid_text_representation: JSON PostgreSQL rejects
		return sessiongate.Wrap(sessiongate.ECodeInvalid, "session data is not JSON", err)
	}
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// DeleteSession removes a row, with connect-pg-simple's destroy statement.
func (db *DB) DeleteSession(ctx context.Context, sid string) error {
	db.sessionStmts.Add(1)
	if _, err := db.pool.Exec(ctx, db.sql.destroy, sid); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// RefreshSessions moves each session's expiry to its Refresh.Expire: the
// expire column becomes Expire rounded up to a whole second (as
// connect-pg-simple computes it) and sess.cookie.expires becomes Expire, every
// other byte of the JSON kept. Rows whose Refresh carries no Data are read
// first, in one query; then one statement updates them all, skipping a row
// whose JSON is no longer what was read (a concurrent rewrite by the Node
// app wins).
func (db *DB) RefreshSessions(ctx context.Context, refreshes []sessiongate.Refresh) ([]string, error) {
	var (
		sids, olds, news []string
		expires          []time.Time
		unread           = make(map[string]time.Time)
		unreadIDs        []string
	)
	add := func(sid, sess string, t time.Time) {
		updated, err := expresssession.SetCookieExpires([]byte(sess), t)
		if err != nil {
			// No cookie to edit: move the column only, as a touch does.
			updated = []byte(sess)
		}
		sids = append(sids, sid)
		olds = append(olds, sess)
		news = append(news, string(updated))
		expires = append(expires, expresssession.StoreExpire(t))
	}
	for _, r := range sessiongate.UniqueRefreshes(refreshes) {
		if r.Data != nil {
			add(r.ID, string(r.Data), r.Expire)
			continue
		}
		unread[r.ID] = r.Expire
		unreadIDs = append(unreadIDs, r.ID)
	}

	if len(unreadIDs) > 0 {
		db.sessionStmts.Add(1)
		rows, err := db.pool.Query(ctx, db.sql.readSess, unreadIDs)
		if err != nil {
			return nil, fmt.Errorf("refresh sessions: read: %w", err)
		}
		var sid, sess string
		_, err = pgx.ForEachRow(rows, []any{&sid, &sess}, func() error {
			add(sid, sess, unread[sid])
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("refresh sessions: read: %w", err)
		}
	}
	if len(sids) == 0 {
		return nil, nil
	}
	if db.testHookBeforeRefreshUpdate != nil {
		db.testHookBeforeRefreshUpdate()
	}

	db.sessionStmts.Add(1)
	rows, err := db.pool.Query(ctx, db.sql.refresh, sids, olds, news, expires)
	if err != nil {
		return nil, fmt.Errorf("refresh sessions: update: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("refresh sessions: update: %w", err)
	}
	return done, nil
}

// unixSeconds returns t as the fractional Unix seconds to_timestamp takes,
// to the millisecond.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}

// PruneSessions deletes the rows whose expiry is before `before`, batch rows
// per statement (each a transaction of its own, on the expire index), until
// a statement deletes fewer. The revocation trigger announces none of them.
func (db *DB) PruneSessions(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		return 0, sessiongate.Errorf(sessiongate.ECodeInvalid, "prune batch must be positive")
	}
	var total int64
	for ctx.Err() == nil {
		db.sessionStmts.Add(1)
		tag, err := db.pool.Exec(ctx, db.sql.prune, unixSeconds(before), batch)
		if err != nil {
			return total, fmt.Errorf("prune sessions: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
	return total, fmt.Errorf("prune sessions: %w", ctx.Err())
}
