package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sessiongate/sessiongate"
)

// WriteAudit appends events in one transaction: all of them or none. An
// event with a zero Time is recorded at the time of the call, a Count below
// 1 as 1. A batch SQLite rejects for its data (a constraint, a type
// mismatch, a value too big) fails with an *sessiongate.Error of code
// ECodeInvalid: retrying it cannot help.
func (db *DB) WriteAudit(ctx context.Context, events []sessiongate.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO sessiongate_audit `+
		`(time, action, severity, user_id, session_hash, remote_addr, user_agent, socket_id, details, count) `+
		`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	defer stmt.Close()
	now := time.Now()
	for _, e := range events {
		t := e.Time
		if t.IsZero() {
			t = now
		}
		if _, err := stmt.ExecContext(ctx, formatTime(t), e.Action, string(e.Severity), e.UserID,
			e.SessionHash, e.RemoteAddr, e.UserAgent, e.SocketID, e.Details, max(e.Count, 1)); err != nil {
			if rejectedData(err) {
				return sessiongate.Wrap(sessiongate.ECodeInvalid, "audit event rejected", fmt.Errorf("write audit: %w", err))
			}
			return fmt.Errorf("write audit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// rejectedData reports whether SQLite refused a statement for the data it
// carried, not for the database's state (busy, I/O).
func rejectedData(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_RANGE:
		return true
	}
	return false
}
