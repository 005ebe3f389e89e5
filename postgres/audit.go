package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate"
)

// auditColumns are the columns WriteAudit fills, in the order it writes them.
const auditColumns = "time, action, severity, user_id, session_hash, remote_addr, user_agent, socket_id, details, count"

// WriteAudit appends events with one COPY: all of them or none. An event
// with a zero Time is recorded at the time of the call, a Count below 1 as
// 1. A batch PostgreSQL rejects for its data (SQLSTATE class 22, data
// exception, e.g. a NUL byte or invalid UTF-8; 23, integrity; 54, limits)
// fails with an *sessiongate.Error of code ECodeInvalid: retrying it cannot
// help.
//
// The rows go in COPY's text format, built into one buffer: a handshake
// writes two audit rows, and the binary path (pgx.CopyFrom) boxes every
// value of every row into an interface, which made the audit trail the
// largest source of allocations on the handshake path.
func (db *DB) WriteAudit(ctx context.Context, events []sessiongate.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now()
	buf := make([]byte, 0, len(events)*192)
	for i := range events {
		e := &events[i]
		t := e.Time
		if t.IsZero() {
			t = now
		}
		buf = t.UTC().AppendFormat(buf, "2006-01-02 15:04:05.999999-07:00")
		for _, s := range [...]string{e.Action, string(e.Severity), e.UserID, e.SessionHash, e.RemoteAddr, e.UserAgent, e.SocketID, e.Details} {
			buf = append(buf, '\t')
			buf = appendCopyText(buf, s)
		}
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(max(e.Count, 1)), 10)
		buf = append(buf, '\n')
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	defer conn.Release()
	sql := "COPY " + db.names.Audit + " (" + auditColumns + ") FROM STDIN"
	if _, err := conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql); err != nil {
		if rejectedData(err) {
			return sessiongate.Wrap(sessiongate.ECodeInvalid, "audit event rejected", fmt.Errorf("write audit: %w", err))
		}
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// rejectedData reports whether PostgreSQL refused a statement for the data
// it carried (SQLSTATE classes 22, 23 and 54), not for the connection or
// the server's state.
func rejectedData(err error) bool {
	var pe interface{ SQLState() string }
	if !errors.As(err, &pe) {
		return false
	}
	code := pe.SQLState()
	return len(code) == 5 && (code[:2] == "22" || code[:2] == "23" || code[:2] == "54")
}

// copyTextSpecial holds the bytes COPY's text format escapes.
const copyTextSpecial = "\\\t\n\r"

// appendCopyText appends s as a field of COPY's text format: backslash,
// tab, newline and carriage return escaped, everything else as it is (a NUL
// byte, which PostgreSQL text cannot hold, fails the COPY as it should).
func appendCopyText(b []byte, s string) []byte {
	if !strings.ContainsAny(s, copyTextSpecial) {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}
