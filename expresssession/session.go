package expresssession

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sessiongate/sessiongate"
)

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
	val := appendJSString(nil, ISOString(t))
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
	id := userID(sess, top)
	return id, id != "", nil
}

// userID returns passport.user of the session whose top-level object is
// top, or "" when there is none.
func userID(sess []byte, top object) string {
	m, ok := top.lookup("passport")
	if !ok {
		return ""
	}
	pp, err := parseObject(sess, m.start)
	if err != nil {
		return ""
	}
	u, ok := pp.lookup("user")
	if !ok {
		return ""
	}
	raw := sess[u.start:u.end]
	switch c := raw[0]; {
	case c == '"':
		s, _ := decodeString(raw) // valid: sess passed json.Valid
		return s
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw)
	default:
		return ""
	}
}

// Info is what sessiongate reads from a session JSON.
type Info struct {
	// Expires is cookie.expires, zero when it is absent or null (a
	// browser-session cookie). The store's expire column, not this, decides
	// whether the session is valid.
	Expires time.Time
	// OriginalMaxAge is cookie.originalMaxAge, zero when it is null.
	OriginalMaxAge time.Duration
	// UserID is passport.user as UserID returns it, "" when nobody is
	// logged in.
	UserID string
}

// Parse reads a session JSON. It returns an *sessiongate.Error with code
// ECodeInvalid if sess is not a JSON object with a "cookie" object (a row
// express-session cannot load), or if cookie.expires is neither null nor an
// ISO 8601 date string, or cookie.originalMaxAge neither null nor a number.
func Parse(sess []byte) (Info, error) {
	top, cookie, err := cookieObject(sess)
	if err != nil {
		return Info{}, err
	}
	info := Info{UserID: userID(sess, top)}
	if m, ok := cookie.lookup("expires"); ok && !isNull(sess, m) {
		var s string
		if err := json.Unmarshal(sess[m.start:m.end], &s); err != nil {
			return Info{}, invalid("cookie.expires is not a string", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Info{}, invalid("cookie.expires is not a date", err)
		}
		info.Expires = t.UTC()
	}
	if m, ok := cookie.lookup("originalMaxAge"); ok && !isNull(sess, m) {
		ms, err := strconv.ParseFloat(string(sess[m.start:m.end]), 64)
		if err != nil {
			return Info{}, invalid("cookie.originalMaxAge is not a number", err)
		}
		info.OriginalMaxAge = time.Duration(ms * float64(time.Millisecond))
	}
	return info, nil
}

func isNull(data []byte, m member) bool {
	return string(data[m.start:m.end]) == "null"
}

// Logout returns sess with passport.user removed, as passport's logout does
// before it saves the session ("passport":{"user":42} becomes
// "passport":{}), every other byte unchanged. A session without a passport
// object is returned as it is. It returns an *sessiongate.Error with code
// ECodeInvalid if sess is not a JSON object.
func Logout(sess []byte) ([]byte, error) {
	top, err := topObject(sess)
	if err != nil {
		return nil, err
	}
	m, ok := top.lookup("passport")
	if !ok {
		return sess, nil
	}
	start := m.start
	for {
		pp, err := parseObject(sess, start)
		if err != nil {
			return sess, nil
		}
		i := slices.IndexFunc(pp.members, func(m member) bool { return m.key == "user" })
		if i < 0 {
			return sess, nil
		}
		// Remove the member with the separator that follows it, or the
		// one before it if it is last.
		ms := pp.members
		switch {
		case i+1 < len(ms):
			sess = splice(sess, ms[i].keyStart, ms[i+1].keyStart)
		case i > 0:
			sess = splice(sess, ms[i-1].end, ms[i].end)
		default:
			sess = splice(sess, ms[i].keyStart, ms[i].end)
		}
	}
}

// NewSession returns the JSON of a new session logged in as userID, created
// at now, as express-session and passport write it with these cookie
// options, and the cookie's expiry (zero when MaxAge is 0). A userID that is a
// decimal integer JavaScript holds exactly (no leading zero, at most
// 2^53-1) is written as a number, as a Node app whose user ids are numbers
// writes it; any other as a string.
func (o CookieOptions) NewSession(userID string, now time.Time) (sess []byte, expires time.Time) {
	b := []byte(`{"cookie":{"originalMaxAge":`)
	if o.MaxAge > 0 {
		b = strconv.AppendInt(b, o.MaxAge.Milliseconds(), 10)
		expires = time.UnixMilli(now.UnixMilli() + o.MaxAge.Milliseconds()).UTC()
		b = append(b, `,"expires":`...)
		b = appendJSString(b, ISOString(expires))
	} else {
		b = append(b, "null"...)
	}
	if o.Secure {
		b = append(b, `,"secure":true`...)
	}
	b = append(b, `,"httpOnly":`...)
	b = strconv.AppendBool(b, o.HTTPOnly)
	if o.Domain != "" {
		b = append(b, `,"domain":`...)
		b = appendJSString(b, o.Domain)
	}
	b = append(b, `,"path":`...)
	b = appendJSString(b, o.path())
	if s := sameSiteName(o.SameSite); s != "" {
		b = append(b, `,"sameSite":`...)
		b = appendJSString(b, s)
	}
	b = append(b, `},"passport":{"user":`...)
	if isJSSafeInteger(userID) {
		b = append(b, userID...)
	} else {
		b = appendJSString(b, userID)
	}
	return append(b, "}}"...), expires
}

// isJSSafeInteger reports whether s is a non-negative decimal integer
// without leading zeros that a JavaScript number holds exactly.
func isJSSafeInteger(s string) bool {
	if s == "" || len(s) > 16 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n <= 1<<53-1
}

// appendJSString appends s as JSON.stringify writes a string: only '"',
// '\' and control characters are escaped. Invalid UTF-8 becomes U+FFFD.
func appendJSString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b = append(b, '\\', byte(r))
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if r < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&15])
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
	}
	return append(b, '"')
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

// StoreExpire returns the expire column connect-pg-simple stores for a
// session whose cookie expires at t: Math.ceil(expires.getTime() / 1000)
// seconds, in UTC. Only that column decides a session's validity.
func StoreExpire(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Millisecond)
	s := t.Truncate(time.Second)
	if s.Before(t) {
		s = s.Add(time.Second)
	}
	return s
}
