package expresssession

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sessiongate/sessiongate"
)

// cookieKeyOrder is the order in which express-session's Cookie serialises
// its fields (each only when defined).
var cookieKeyOrder = []string{
	"originalMaxAge", "partitioned", "priority", "expires",
	"secure", "httpOnly", "domain", "path", "sameSite",
}

// invalid returns an ECodeInvalid error for a session JSON.
func invalid(msg string, err error) *sessiongate.Error {
	return sessiongate.Wrap(sessiongate.ECodeInvalid, msg, err)
}

// topObject validates sess and returns its top-level object.
func topObject(sess []byte) (object, error) {
	if !json.Valid(sess) {
		return object{}, invalid("invalid session JSON", nil)
	}
	o, err := parseObject(sess, 0)
	if err != nil {
		return object{}, invalid("session JSON is not an object", err)
	}
	return o, nil
}

// cookieObject returns the top-level object of sess and its "cookie" object.
func cookieObject(sess []byte) (top, cookie object, err error) {
	top, err = topObject(sess)
	if err != nil {
		return top, cookie, err
	}
	m, ok := top.lookup("cookie")
	if !ok {
		return top, cookie, invalid("session JSON has no cookie", nil)
	}
	cookie, err = parseObject(sess, m.start)
	if err != nil {
		return top, cookie, invalid("session cookie is not an object", err)
	}
	return top, cookie, nil
}

// SetCookieExpires returns sess (a session JSON as express-session stores it)
// with cookie.expires set to t as JavaScript's toISOString() writes it (UTC,
// millisecond precision, "Z"), every other byte unchanged (key order,
// whitespace, unknown keys). If cookie has no "expires" key it is inserted
// where express-session would write it: after "originalMaxAge" (and after
// "partitioned" and "priority" when present). It returns an *sessiongate.Error
// with code ECodeInvalid if sess is not a JSON object with a "cookie" object.
// With duplicate keys the last one is used, as JSON.parse does.
func SetCookieExpires(sess []byte, t time.Time) ([]byte, error) {
	_, cookie, err := cookieObject(sess)
	if err != nil {
		return nil, err
	}
	val := strconv.AppendQuote(nil, ISOString(t))
	if m, ok := cookie.lookup("expires"); ok {
		return splice(sess, m.start, m.end, val), nil
	}
	// Insert after the last member that express-session writes before
	// "expires", or first if there is none.
	after := -1
	for i, m := range cookie.members {
		if m.key == "originalMaxAge" || m.key == "partitioned" || m.key == "priority" {
			after = i
		}
	}
	entry := append([]byte(`"expires":`), val...)
	switch {
	case after >= 0:
		at := cookie.members[after].end
		return splice(sess, at, at, []byte(","), entry), nil
	case len(cookie.members) == 0:
		return splice(sess, cookie.open+1, cookie.open+1, entry), nil
	default:
		at := cookie.members[0].keyStart
		return splice(sess, at, at, entry, []byte(",")), nil
	}
}

// UserID returns sess.passport.user as a string (a JSON number as written, or
// a string), and whether it is present and non-empty. A user of any other
// JSON type (null, a boolean, an object) counts as absent. It returns an
// *sessiongate.Error with code ECodeInvalid only for malformed JSON.
func UserID(sess []byte) (string, bool, error) {
	if !json.Valid(sess) {
		return "", false, invalid("invalid session JSON", nil)
	}
	top, err := parseObject(sess, 0)
	if err != nil {
		return "", false, nil
	}
	m, ok := top.lookup("passport")
	if !ok {
		return "", false, nil
	}
	pp, err := parseObject(sess, m.start)
	if err != nil {
		return "", false, nil
	}
	u, ok := pp.lookup("user")
	if !ok {
		return "", false, nil
	}
	raw := sess[u.start:u.end]
	switch c := raw[0]; {
	case c == '"':
		s, err := decodeString(raw)
		if err != nil {
			return "", false, invalid("invalid passport.user", err)
		}
		return s, s != "", nil
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw), true, nil
	default:
		return "", false, nil
	}
}

// ISOString formats t as JavaScript's Date.prototype.toISOString does: UTC,
// milliseconds (truncated), a "Z" suffix, and a six-digit signed year outside
// 0000–9999.
func ISOString(t time.Time) string {
	t = t.UTC()
	const layout = "-01-02T15:04:05.000Z"
	y := t.Year()
	switch {
	case y < 0:
		return fmt.Sprintf("-%06d", -y) + t.Format(layout)
	case y > 9999:
		return fmt.Sprintf("+%06d", y) + t.Format(layout)
	default:
		return fmt.Sprintf("%04d", y) + t.Format(layout)
	}
}
