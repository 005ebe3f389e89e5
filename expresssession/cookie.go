package expresssession

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"iter"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sessiongate/sessiongate"
)

// DefaultCookieName is express-session's default cookie name.
const DefaultCookieName = "connect.sid"

// Sign returns sid signed with secret as cookie-signature does: sid, a ".",
// and the HMAC-SHA256 of sid keyed with secret in standard base64 without
// "=" padding. The value in the cookie is "s:" followed by this.
func Sign(sid string, secret []byte) string {
	return sid + "." + signature(sid, secret)
}

func signature(sid string, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(sid))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// Unsign returns the sid of a signed value (what follows "s:" in the cookie)
// if its signature, after the last ".", is that of one of secrets, tried in
// order. Signatures are compared in constant time; one with "=" padding
// never matches, as with cookie-signature.
func Unsign(signed string, secrets [][]byte) (sid string, ok bool) {
	dot := strings.LastIndexByte(signed, '.')
	if dot < 0 {
		return "", false
	}
	sid, sig := signed[:dot], []byte(signed[dot+1:])
	for _, secret := range secrets {
		if hmac.Equal(sig, []byte(signature(sid, secret))) {
			return sid, true
		}
	}
	return "", false
}

// CookieValue returns the value of the session cookie for sid as
// express-session sends it: "s:" + Sign(sid, secret), escaped as
// JavaScript's encodeURIComponent does.
func CookieValue(sid string, secret []byte) string {
	return encodeURIComponent("s:" + Sign(sid, secret))
}

// NewSessionID returns a new random session id as express-session's default
// generator makes them: 24 random bytes in unpadded base64url, 32 characters.
func NewSessionID() string {
	var b [24]byte
	rand.Read(b[:]) // never returns an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SessionIDFromHeader returns the session id carried by the cookie named
// name in h, exactly as express-session reads it: the first cookie of that
// name in the Cookie header lines (joined with "; " as Node.js joins them),
// decoded as the cookie npm package does (see CookieFromHeader), which must
// start with "s:" and be signed by one of secrets (see Unsign).
//
// The error is a *sessiongate.Error with code ECodeNoCookie when there is no
// such cookie, it is empty, unsigned or signs an empty id, and
// ECodeBadSignature when its signature matches no secret.
func SessionIDFromHeader(h http.Header, name string, secrets [][]byte) (string, error) {
	raw, ok := CookieFromHeader(strings.Join(h.Values("Cookie"), "; "), name)
	if !ok {
		return "", sessiongate.Errorf(sessiongate.ECodeNoCookie, "no session cookie")
	}
	return sessionIDOf(raw, secrets)
}

// sessionIDOf returns the session id of a decoded session cookie value, with
// the errors of SessionIDFromHeader.
func sessionIDOf(raw string, secrets [][]byte) (string, error) {
	if raw == "" {
		return "", sessiongate.Errorf(sessiongate.ECodeNoCookie, "no session cookie")
	}
	signed, ok := strings.CutPrefix(raw, "s:")
	if !ok {
		return "", sessiongate.Errorf(sessiongate.ECodeNoCookie, "session cookie is not signed")
	}
	sid, ok := Unsign(signed, secrets)
	if !ok {
		return "", sessiongate.Errorf(sessiongate.ECodeBadSignature, "session cookie signature does not match")
	}
	if sid == "" {
		// express-session treats an empty id as no id at all.
		return "", sessiongate.Errorf(sessiongate.ECodeNoCookie, "empty session id")
	}
	return sid, nil
}

// CookieFromHeader returns the value of the first cookie named name in a
// Cookie header, as the cookie npm package (0.7, used by express-session)
// parses it: pairs split at ";", name and value trimmed of spaces and tabs,
// one pair of surrounding double quotes removed, and the value
// percent-decoded as decodeURIComponent does if it contains a "%" (a "+"
// stays a "+"; on a decoding error the value is kept as it is). Node.js reads
// header bytes as Latin-1, so a byte of 0x80 or above becomes the character
// U+0080–U+00FF, returned in UTF-8. ok is false if there is no such cookie.
func CookieFromHeader(header, name string) (value string, ok bool) {
	for v := range cookieValues(header, name) {
		return v, true
	}
	return "", false
}

// MaxSessionCookies bounds how many cookies of the session cookie's name
// SessionIDsFromHeader looks at; the rest are ignored, so that a header of
// thousands of them costs no more signature checks than a browser's few.
const MaxSessionCookies = 16

// SessionIDsFromHeader returns the distinct session ids of every cookie
// named name in h (the first MaxSessionCookies of them) that
// SessionIDFromHeader would accept were it the first: browsers send one per
// path and domain they hold. Unsigned, badly signed and empty ones are left
// out; the ids are in header order, and nil when there is none.
func SessionIDsFromHeader(h http.Header, name string, secrets [][]byte) []string {
	var sids []string
	seen := 0
	for raw := range cookieValues(strings.Join(h.Values("Cookie"), "; "), name) {
		if seen++; seen > MaxSessionCookies {
			break
		}
		if sid, err := sessionIDOf(raw, secrets); err == nil && !slices.Contains(sids, sid) {
			sids = append(sids, sid)
		}
	}
	return sids
}

// cookieValues yields the value of every cookie named name in header, in
// order, parsed as CookieFromHeader describes.
func cookieValues(header, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		n := len(header)
		if n < 2 {
			return
		}
		for index := 0; index < n; {
			eq := indexFrom(header, '=', index)
			if eq < 0 {
				return
			}
			end := indexFrom(header, ';', index)
			if end < 0 {
				end = n
			} else if eq > end {
				// A pair without "=": restart after the last ";" before eq.
				index = strings.LastIndexByte(header[:eq], ';') + 1
				continue
			}
			if trimSpaceTab(header[index:eq]) == name {
				v := trimSpaceTab(header[eq+1 : end])
				if len(v) > 0 && v[0] == '"' && v[len(v)-1] == '"' {
					if len(v) == 1 {
						v = ""
					} else {
						v = v[1 : len(v)-1]
					}
				}
				if !yield(decodeCookieValue(v)) {
					return
				}
			}
			index = end + 1
		}
	}
}

// indexFrom returns the index of the first c in s at or after from, or -1.
func indexFrom(s string, c byte, from int) int {
	i := strings.IndexByte(s[from:], c)
	if i < 0 {
		return -1
	}
	return from + i
}

func trimSpaceTab(s string) string {
	return strings.Trim(s, " \t")
}

// decodeCookieValue converts the Latin-1 header bytes of v to UTF-8 and, if
// v contains a "%", decodes it as decodeURIComponent does, keeping v as it
// is (converted) when that would throw.
func decodeCookieValue(v string) string {
	if !strings.Contains(v, "%") {
		return latin1(v)
	}
	if d, ok := decodeURIComponent(v); ok {
		return d
	}
	return latin1(v)
}

// latin1 returns s, read as Latin-1, in UTF-8.
func latin1(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// decodeURIComponent decodes s (Latin-1 bytes) as JavaScript's
// decodeURIComponent does; ok is false where it would throw a URIError:
// a malformed escape, or escapes that are not exactly one valid UTF-8
// encoded code point (overlong forms and surrogates included).
func decodeURIComponent(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s)) // decoding never lengthens ASCII; one allocation in the usual case
	for k := 0; k < len(s); k++ {
		c := s[k]
		if c != '%' {
			b.WriteRune(rune(c))
			continue
		}
		first, ok := unhexAt(s, k)
		if !ok {
			return "", false
		}
		k += 2
		if first < utf8.RuneSelf {
			b.WriteByte(first)
			continue
		}
		var n int
		switch {
		case first&0xE0 == 0xC0:
			n = 2
		case first&0xF0 == 0xE0:
			n = 3
		case first&0xF8 == 0xF0:
			n = 4
		default:
			return "", false
		}
		octets := []byte{first}
		for j := 1; j < n; j++ {
			k++
			if k >= len(s) || s[k] != '%' {
				return "", false
			}
			o, ok := unhexAt(s, k)
			if !ok || o&0xC0 != 0x80 {
				return "", false
			}
			k += 2
			octets = append(octets, o)
		}
		if _, size := utf8.DecodeRune(octets); size != n || !utf8.Valid(octets) {
			return "", false
		}
		b.Write(octets)
	}
	return b.String(), true
}

// unhexAt decodes the escape "%XX" at s[k].
func unhexAt(s string, k int) (byte, bool) {
	if k+2 >= len(s) {
		return 0, false
	}
	hi, ok1 := unhex(s[k+1])
	lo, ok2 := unhex(s[k+2])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodeURIComponent escapes s as JavaScript's encodeURIComponent does: every
// byte of its UTF-8 form except A–Z a–z 0–9 - _ . ! ~ * ' ( ) becomes %XX.
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if uriUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func uriUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}
