package sessiongate

import (
	"context"
	"time"
)

// Severity ranks an audit event.
type Severity string

const (
	SeverityInfo Severity = "INFO"
	SeverityWarn Severity = "WARN"
	SeverityHigh Severity = "HIGH"
)

// Audit actions and the severity each is recorded with.
const (
	ActionAuthSuccess      = "SOCKET_AUTH_SUCCESS"      // INFO
	ActionAuthFailure      = "SOCKET_AUTH_FAILURE"      // WARN
	ActionAuthError        = "SOCKET_AUTH_ERROR"        // HIGH
	ActionSessionRefreshed = "SOCKET_SESSION_REFRESHED" // INFO
	ActionSessionExpired   = "SOCKET_SESSION_EXPIRED"   // INFO
	ActionDisconnect       = "SOCKET_DISCONNECT"        // INFO
)

// AuditEvent is one record of the audit trail. It never holds a raw session
// id: SessionHash is ShortHash(sid).
type AuditEvent struct {
	Time        time.Time
	Action      string
	Severity    Severity
	UserID      string // empty when not known
	SessionHash string // ShortHash(sid); empty when there was no valid cookie
	RemoteAddr  string
	UserAgent   string
	SocketID    string
	Details     string // the machine code, or a short reason
}

// AuditStore durably appends audit events. WriteAudit writes all of events
// or none of them, so a failed batch can be retried whole.
type AuditStore interface {
	WriteAudit(ctx context.Context, events []AuditEvent) error
}
