// Package sessiongate holds the domain of sessiongate: a Socket.IO server that
// admits only browsers holding a valid express-session session.
//
// The root package has no dependencies beyond the standard library. It defines
// the plain types (Session, Identity, User, AuditEvent), the interfaces the
// backends implement (SessionStore, RevocationFeed, SessionPruner, UserStore,
// AuditStore), the Pruner that deletes expired sessions periodically, and
// the error type with machine codes that every layer returns. Backends live in
// subpackages named after their dependency (postgres, sqlite); the protocol in
// engineio and socketio; the cookie and session JSON formats in
// expresssession; the wiring in cmd/sessiongate.
package sessiongate

import (
	"crypto/sha256"
	"encoding/hex"
)

// SessionHash returns the hex SHA-256 of a session id. It is how a session is
// named anywhere outside its store row: revocation notifications carry it, and
// the gateway indexes live sessions by it, so a raw session id never has to
// travel or be logged.
func SessionHash(sid string) string {
	sum := sha256.Sum256([]byte(sid))
	return hex.EncodeToString(sum[:])
}

// ShortHash returns the first 16 hex digits of SessionHash(sid): enough to tell
// sessions apart in logs and the audit trail, useless for finding the id.
func ShortHash(sid string) string {
	return SessionHash(sid)[:ShortHashLen]
}

// ShortHashLen is the length of ShortHash's result: ShortHash(sid) is
// SessionHash(sid)[:ShortHashLen].
const ShortHashLen = 16
