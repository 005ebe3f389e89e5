package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
)

var auditColumns = []string{"time", "action", "severity", "user_id", "session_hash", "remote_addr", "user_agent", "socket_id", "details"}

// WriteAudit appends events with one COPY: all of them or none. An event
// with a zero Time is recorded at the time of the call.
func (db *DB) WriteAudit(ctx context.Context, events []sessiongate.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now()
	table := pgx.Identifier{"sessiongate_audit"}
	if db.schema != "" {
		table = pgx.Identifier{db.schema, "sessiongate_audit"}
	}
	_, err := db.pool.CopyFrom(ctx, table, auditColumns, pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
		e := events[i]
		t := e.Time
		if t.IsZero() {
			t = now
		}
		return []any{t, e.Action, string(e.Severity), e.UserID, e.SessionHash, e.RemoteAddr, e.UserAgent, e.SocketID, e.Details}, nil
	}))
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}
