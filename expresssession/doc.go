// Package expresssession reads and writes the formats of express-session
// (with its cookie-signature and cookie packages), connect-pg-simple and
// passport, byte for byte, so that sessiongate and a Node.js app can share
// sessions. It knows nothing of databases: stores hold what this package
// writes.
//
// # The session cookie
//
// express-session names a session by a random id, by default 24 random bytes
// in unpadded base64url (32 characters, NewSessionID). The cookie, named
// "connect.sid" by default, holds the id signed with the first of the app's
// secrets:
//
//	connect.sid=s%3A<sid>.<signature>
//
// where the signature is the HMAC-SHA256 of the id keyed with the secret, in
// standard base64 ("+" and "/") without "=" padding (Sign), and the whole
// "s:<sid>.<signature>" is escaped as JavaScript's encodeURIComponent does
// (CookieValue). SetCookie writes the complete Set-Cookie header as
// express-session sends it.
//
// Reading it back (SessionIDFromHeader) follows express-session exactly:
// the first cookie of that name counts; its value is percent-decoded only if
// it contains a "%" (a "+" stays a "+"; an escape that does not decode leaves
// the value as it is) and stripped of surrounding double quotes; it must
// start with "s:"; it is split at its last "."; and the signature is checked,
// in constant time, against every secret in order, so that secrets can be
// rotated by putting the new one first. A padded signature never matches.
//
// # The session JSON
//
// The store keeps each session as JSON (connect-pg-simple's sess column),
// written by JSON.stringify:
//
//	{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T00:11:14.274Z","httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42}}
//
// The cookie object's keys come in the order originalMaxAge, partitioned,
// priority, expires, secure, httpOnly, domain, path, sameSite, each only when
// set; expires is in the form of Date.prototype.toISOString (ISOString).
// passport keeps the logged-in user's id in passport.user, a number or a
// string as the app's serializeUser returned it, and logging out leaves
// "passport":{}. An app may add any keys of its own.
//
// A session without a cookie object cannot be loaded by express-session, and
// unknown keys belong to the app, so this package never re-encodes a session
// it did not create: SetCookieExpires and Logout change the bytes of one
// value and keep every other byte (key order, spacing, number spelling).
// NewSession writes a new logged-in session as express-session + passport
// would; Parse and UserID read one. With duplicate keys the last one counts,
// as with JSON.parse.
//
// The store's own expiry (connect-pg-simple's expire column, the whole
// seconds ceil(cookie.expires / 1000)) alone decides whether a session is
// valid; express-session touches it on every request without rewriting the
// JSON, so cookie.expires in a stored session may lag behind it.
//
// Errors are *sessiongate.Error values with the codes ECodeNoCookie,
// ECodeBadSignature and ECodeInvalid.
package expresssession
