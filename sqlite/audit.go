package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiongate/sessiongate"
)

// WriteAudit appends events in one transaction: all of them or none. An
// event with a zero Time is recorded at the time of the call.
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
		`(time, action, severity, user_id, session_hash, remote_addr, user_agent, socket_id, details) `+
		`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
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
			e.SessionHash, e.RemoteAddr, e.UserAgent, e.SocketID, e.Details); err != nil {
			return fmt.Errorf("write audit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}
