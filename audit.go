package sessiongate

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
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
	ActionRoomsChanged     = "SOCKET_ROOMS_CHANGED"     // INFO: SESSION_ROOMS moved a socket
	ActionRateLimited      = "SOCKET_RATE_LIMITED"      // WARN: a user's requests over EVENT_RATE_LIMIT
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

	// Count is how many events the record stands for: 1, or more for
	// refusals from one client address with one code, aggregated over a
	// window (the record then has the Time and fields of the first of
	// them). Zero is taken as 1.
	Count int
}

// Byte limits of the text fields of an AuditEvent, applied by Sanitized.
const (
	MaxAuditUserAgent = 512 // UserAgent
	MaxAuditDetails   = 256 // Details
	MaxAuditUserID    = 256 // UserID
	MaxAuditShort     = 64  // Action, Severity, SessionHash, RemoteAddr, SocketID
)

// auditTruncated marks a field cut to its limit.
const auditTruncated = "…"

// Sanitized returns e with every text field valid for any store: valid UTF-8
// (each invalid byte replaced by U+FFFD), no NUL (replaced by U+FFFD either),
// and at most its Max* length in bytes (cut on a rune boundary and ended by
// "…"). A Count below 1 becomes 1. Fields already valid are returned as
// they are, without allocating.
func (e AuditEvent) Sanitized() AuditEvent {
	e.Action = cleanText(e.Action, MaxAuditShort)
	e.Severity = Severity(cleanText(string(e.Severity), MaxAuditShort))
	e.UserID = cleanText(e.UserID, MaxAuditUserID)
	e.SessionHash = cleanText(e.SessionHash, MaxAuditShort)
	e.RemoteAddr = cleanText(e.RemoteAddr, MaxAuditShort)
	e.UserAgent = cleanText(e.UserAgent, MaxAuditUserAgent)
	e.SocketID = cleanText(e.SocketID, MaxAuditShort)
	e.Details = cleanText(e.Details, MaxAuditDetails)
	if e.Count < 1 {
		e.Count = 1
	}
	return e
}

// cleanText makes s valid UTF-8 without NUL, at most limit bytes long.
func cleanText(s string, limit int) string {
	if len(s) <= limit && strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	s = strings.ReplaceAll(s, "\x00", string(utf8.RuneError))
	if len(s) <= limit {
		return s
	}
	cut := limit - len(auditTruncated)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + auditTruncated
}

// AuditStore durably appends audit events. WriteAudit writes all of events
// or none of them, so a failed batch can be retried whole.
//
// An error whose ErrorCode is ECodeInvalid says the batch holds an event the
// store can never accept (a data or integrity error): retrying cannot help,
// and the caller splits the batch to isolate that event. Any other error
// (connection lost, timeout) is taken as passing, and the batch is retried.
type AuditStore interface {
	WriteAudit(ctx context.Context, events []AuditEvent) error
}
