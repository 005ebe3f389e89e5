package expresssession

import (
	"net/http"
	"time"
)

// CookieOptions are the settings of express-session's cookie option that
// sessiongate supports. They shape both the Set-Cookie header (SetCookie) and
// the cookie object of a new session JSON (NewSession). The zero value is a
// browser-session cookie (no expiry) with Path "/" that is not HttpOnly;
// express-session's own defaults are Path "/" and HTTPOnly true.
type CookieOptions struct {
	MaxAge   time.Duration // cookie.maxAge, whole milliseconds; 0 for no expiry
	Path     string        // "/" when empty
	Domain   string        // no Domain attribute when empty
	HTTPOnly bool
	Secure   bool          // "secure" is written to the JSON only when true
	SameSite http.SameSite // SameSiteDefaultMode (or 0) for no SameSite attribute
}

func (o CookieOptions) path() string {
	if o.Path == "" {
		return "/"
	}
	return o.Path
}

// sameSiteName returns the value express-session stores for s, "" for none.
func sameSiteName(s http.SameSite) string {
	switch s {
	case http.SameSiteLaxMode:
		return "lax"
	case http.SameSiteStrictMode:
		return "strict"
	case http.SameSiteNoneMode:
		return "none"
	}
	return ""
}

// SetCookie returns the value of the Set-Cookie header express-session sends
// for the cookie name holding sid signed with secret, byte for byte as the
// cookie npm package writes it:
//
//	connect.sid=s%3A<sid>.<sig>; Domain=…; Path=/; Expires=Fri, 27 Nov 2026 01:28:14 GMT; HttpOnly; Secure; SameSite=Lax
//
// Expires is written only when expires is not zero (a session with MaxAge).
func (o CookieOptions) SetCookie(name, sid string, secret []byte, expires time.Time) string {
	b := make([]byte, 0, 192)
	b = append(b, name...)
	b = append(b, '=')
	b = append(b, CookieValue(sid, secret)...)
	if o.Domain != "" {
		b = append(b, "; Domain="...)
		b = append(b, o.Domain...)
	}
	b = append(b, "; Path="...)
	b = append(b, o.path()...)
	if !expires.IsZero() {
		b = append(b, "; Expires="...)
		b = expires.UTC().AppendFormat(b, http.TimeFormat)
	}
	if o.HTTPOnly {
		b = append(b, "; HttpOnly"...)
	}
	if o.Secure {
		b = append(b, "; Secure"...)
	}
	switch o.SameSite {
	case http.SameSiteLaxMode:
		b = append(b, "; SameSite=Lax"...)
	case http.SameSiteStrictMode:
		b = append(b, "; SameSite=Strict"...)
	case http.SameSiteNoneMode:
		b = append(b, "; SameSite=None"...)
	}
	return string(b)
}
