package expresssession

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sessiongate/sessiongate"
)

// More seeds are in testdata/fuzz/<FuzzName>/.

func FuzzSessionIDFromHeader(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.cookie, v.sid)
	}
	f.Add(`a=1; connect.sid="s%3Ax+y.sig"; connect.sid=2`, "a+b")
	f.Add("x; connect.sid = \xe9%E9 ;", "é")
	f.Add(`connect.sid="`, "a.b.c")
	f.Add("connect.sid=s%3A%F0%9F%98%80.x%3D", "")
	secrets := secretList("new-secret-2025,old-secret-2024")
	f.Fuzz(func(t *testing.T, cookie, sid string) {
		h := http.Header{"Cookie": {cookie}}
		got, err := SessionIDFromHeader(h, DefaultCookieName, secrets)
		switch code := sessiongate.ErrorCode(err); code {
		case "":
			if got == "" || !utf8.ValidString(got) {
				t.Fatalf("accepted sid %q", got)
			}
			// Only a cookie signed with one of the secrets is accepted.
			raw, _ := CookieFromHeader(cookie, DefaultCookieName)
			if raw != "s:"+Sign(got, secrets[0]) && raw != "s:"+Sign(got, secrets[1]) {
				t.Fatalf("accepted %q as %q", raw, got)
			}
		case sessiongate.ECodeNoCookie, sessiongate.ECodeBadSignature:
			if got != "" {
				t.Fatalf("sid %q with error %v", got, err)
			}
		default:
			t.Fatalf("error %v", err)
		}

		// A cookie we sign, placed first, always wins and round-trips.
		if sid == "" || !utf8.ValidString(sid) {
			return
		}
		h = http.Header{"Cookie": {DefaultCookieName + "=" + CookieValue(sid, secrets[1]) + "; " + cookie}}
		if got, err := SessionIDFromHeader(h, DefaultCookieName, secrets); err != nil || got != sid {
			t.Fatalf("round trip of %q = %q, %v", sid, got, err)
		}
	})
}

func FuzzSessionIDsFromHeader(f *testing.F) {
	secrets := secretList("new-secret-2025,old-secret-2024")
	f.Add("connect.sid="+CookieValue("a", secrets[0])+"; connect.sid="+CookieValue("b", secrets[1]), "c")
	f.Add(`connect.sid=s%3Ax.y; connect.sid="s:a.b"; connect.sid`, "a.b")
	f.Add("x=1; connect.sid = \xe9%E9 ;connect.sid=;", "é")
	f.Fuzz(func(t *testing.T, cookie, sid string) {
		h := http.Header{"Cookie": {cookie}}
		got := SessionIDsFromHeader(h, DefaultCookieName, secrets)
		if len(got) > MaxSessionCookies {
			t.Fatalf("%d ids, more than MaxSessionCookies", len(got))
		}
		// Each id is one SessionIDFromHeader accepts as the first cookie,
		// once; the first cookie's, when valid, comes first.
		for i, id := range got {
			one := http.Header{"Cookie": {DefaultCookieName + "=" + CookieValue(id, secrets[0])}}
			if id == "" || slices.Contains(got[:i], id) {
				t.Fatalf("ids %q: empty or repeated", got)
			}
			if back, err := SessionIDFromHeader(one, DefaultCookieName, secrets); err != nil || back != id {
				t.Fatalf("id %q does not round-trip: %q, %v", id, back, err)
			}
			var signed bool
			for raw := range cookieValues(cookie, DefaultCookieName) {
				signed = signed || raw == "s:"+Sign(id, secrets[0]) || raw == "s:"+Sign(id, secrets[1])
			}
			if !signed {
				t.Fatalf("id %q of no signed cookie in %q", id, cookie)
			}
		}
		if first, err := SessionIDFromHeader(h, DefaultCookieName, secrets); err == nil && (len(got) == 0 || got[0] != first) {
			t.Fatalf("ids %q, first cookie's %q missing or not first", got, first)
		}

		// A cookie we sign, placed after the header, is found too (when
		// the cap leaves room for it).
		if sid == "" || !utf8.ValidString(sid) {
			return
		}
		h = http.Header{"Cookie": {cookie, DefaultCookieName + "=" + CookieValue(sid, secrets[1])}}
		n := 0
		for range cookieValues(strings.Join(h.Values("Cookie"), "; "), DefaultCookieName) {
			n++
		}
		if all := SessionIDsFromHeader(h, DefaultCookieName, secrets); n <= MaxSessionCookies && !slices.Contains(all, sid) {
			t.Fatalf("appended cookie for %q not found: %q", sid, all)
		}
	})
}

// jsonObject decodes a JSON object with encoding/json, the oracle the
// scanner is checked against (a map keeps the last of duplicate keys, as
// JSON.parse does).
func jsonObject(data []byte) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

func FuzzUserID(f *testing.F) {
	f.Add([]byte(docRow))
	f.Add([]byte(`{"passport":{"user":"b\u00f6b"},"passport":{"user":-1.5e3}}`))
	f.Add([]byte(`{"passport":{"a":1, "user" : "x" ,"user":null}}`))
	f.Add([]byte(`[{"passport":{"user":1}}]`))
	f.Fuzz(func(t *testing.T, sess []byte) {
		id, ok, err := UserID(sess)
		if !json.Valid(sess) {
			if sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
				t.Fatalf("invalid JSON: error %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid JSON: error %v", err)
		}
		if ok != (id != "") {
			t.Fatalf("UserID = %q, %v", id, ok)
		}

		// Compare with encoding/json.
		want := ""
		if top, isObj := jsonObject(sess); isObj {
			if pp, isObj := jsonObject(top["passport"]); isObj {
				var s string
				var n json.Number
				switch u := pp["user"]; {
				case json.Unmarshal(u, &s) == nil:
					want = s
				case json.Unmarshal(u, &n) == nil:
					want = string(bytes.TrimSpace(u))
				}
			}
		}
		if id != want {
			t.Fatalf("UserID = %q, encoding/json says %q", id, want)
		}

		// Logout removes the user and nothing else.
		out, err := Logout(sess)
		top, isObj := jsonObject(sess)
		if !isObj {
			if sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
				t.Fatalf("Logout of a non-object: %v", err)
			}
			return
		}
		if err != nil || !json.Valid(out) {
			t.Fatalf("Logout = %s, %v", out, err)
		}
		if id, ok, _ := UserID(out); ok {
			t.Fatalf("UserID after Logout = %q", id)
		}
		outTop, _ := jsonObject(out)
		if !maps.EqualFunc(withoutKey(top, "passport"), withoutKey(outTop, "passport"), rawEqual) {
			t.Fatalf("Logout changed more than passport:\n%s\n%s", sess, out)
		}
		if pp, isObj := jsonObject(top["passport"]); isObj {
			outPP, _ := jsonObject(outTop["passport"])
			if !maps.EqualFunc(withoutKey(pp, "user"), outPP, rawEqual) {
				t.Fatalf("Logout changed more than passport.user:\n%s\n%s", sess, out)
			}
		}
	})
}

func rawEqual(a, b json.RawMessage) bool { return bytes.Equal(a, b) }

func withoutKey(m map[string]json.RawMessage, key string) map[string]json.RawMessage {
	c := maps.Clone(m)
	delete(c, key)
	return c
}

func FuzzSetCookieExpires(f *testing.F) {
	f.Add([]byte(docRow), int64(1798765432109))
	f.Add([]byte(`{"cookie":{"originalMaxAge":null , "path":"/"}}`), int64(0))
	f.Add([]byte(`{"cookie":{ },"cookie":{"expires":1,"x":"}"}}`), int64(-1))
	f.Add([]byte(`{"cookie":{"priority":"high","expires":"2026-11-27T00:11:14.274Z"}}`), int64(253402300799999))
	f.Fuzz(func(t *testing.T, sess []byte, ms int64) {
		const maxMS = 253402300799999 // 9999-12-31T23:59:59.999Z
		if ms < 0 || ms > maxMS {
			ms %= maxMS + 1
			if ms < 0 {
				ms = -ms
			}
		}
		when := time.UnixMilli(ms)
		out, err := SetCookieExpires(sess, when)
		top, isObj := jsonObject(sess)
		var cookie map[string]json.RawMessage
		if isObj {
			cookie, isObj = jsonObject(top["cookie"])
		}
		if !isObj {
			if sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
				t.Fatalf("no cookie object: error %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("error %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %s", out)
		}

		// expires changed, nothing else did.
		outTop, _ := jsonObject(out)
		outCookie, _ := jsonObject(outTop["cookie"])
		var got string
		if json.Unmarshal(outCookie["expires"], &got) != nil || got != ISOString(when) {
			t.Fatalf("cookie.expires = %s, want %s", outCookie["expires"], ISOString(when))
		}
		if !maps.EqualFunc(withoutKey(top, "cookie"), withoutKey(outTop, "cookie"), rawEqual) ||
			!maps.EqualFunc(withoutKey(cookie, "expires"), withoutKey(outCookie, "expires"), rawEqual) {
			t.Fatalf("changed more than cookie.expires:\n%s\n%s", sess, out)
		}
		if len(out)-len(sess) > len(`,"expires":"2006-01-02T15:04:05.000Z"`) {
			t.Fatalf("grew by %d bytes:\n%s\n%s", len(out)-len(sess), sess, out)
		}

		// Setting again replaces in place: the last write wins, and the
		// same time twice is a no-op.
		again, err := SetCookieExpires(out, when)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%s\n%s", out, again)
		}
		later := when.Add(time.Hour)
		direct, _ := SetCookieExpires(sess, later)
		twice, _ := SetCookieExpires(out, later)
		if !bytes.Equal(direct, twice) {
			t.Fatalf("second write differs:\n%s\n%s", direct, twice)
		}
	})
}
