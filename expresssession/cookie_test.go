package expresssession

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

func secretList(s string) [][]byte {
	var out [][]byte
	for _, p := range strings.Split(s, ",") {
		out = append(out, []byte(p))
	}
	return out
}

// The vectors of shared/interop/express-session.md, produced by
// express-session 1.19.0 (cookie 0.7.2, cookie-signature 1.0.7).
var vectors = []struct {
	name    string
	secrets string // comma-separated, the first signs
	signer  string // the secret that signed the cookie
	sid     string
	cookie  string // the Cookie header the browser sends
}{
	{"keyboard cat", "keyboard cat", "keyboard cat", "abc123",
		"connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0"},
	{"plus and slash", "supersecret", "supersecret", "Z7rE2wO-vP5nQ9xYk_3LmA1bC8dF4gHj",
		"connect.sid=s%3AZ7rE2wO-vP5nQ9xYk_3LmA1bC8dF4gHj.W7SqIaTqEl%2B6IyveI2Ae%2FavyMtcaZXgA%2B9G4rCyrtkU"},
	{"rotation, new secret", "new-secret-2025,old-secret-2024", "new-secret-2025", "tK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe",
		"connect.sid=s%3AtK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe.FJxZyVCiZBBhRWdUzawkRg4LCRVLYDTldw2s3u25HG8"},
	{"rotation, old secret", "new-secret-2025,old-secret-2024", "old-secret-2024", "tK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe",
		"connect.sid=s%3AtK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe.TTgLJDuDb%2BSRvgHaa3t1N9C6M24rohPl%2BymmHLZMoZA"},
}

func header(cookies ...string) http.Header {
	h := http.Header{}
	for _, c := range cookies {
		h.Add("Cookie", c)
	}
	return h
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			if got, want := "connect.sid="+CookieValue(v.sid, []byte(v.signer)), v.cookie; got != want {
				t.Errorf("CookieValue = %q, want %q", got, want)
			}
			sid, err := SessionIDFromHeader(header(v.cookie), DefaultCookieName, secretList(v.secrets))
			if err != nil || sid != v.sid {
				t.Errorf("SessionIDFromHeader = %q, %v; want %q", sid, err, v.sid)
			}
		})
	}
}

func TestSessionIDFromHeader(t *testing.T) {
	const (
		good     = "s%3AtK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe.FJxZyVCiZBBhRWdUzawkRg4LCRVLYDTldw2s3u25HG8"
		sid      = "tK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe"
		unsigned = "tK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe"
	)
	secrets := secretList("new-secret-2025,old-secret-2024")
	plusSID := "a+b c"
	plusSigned := Sign(plusSID, secrets[0])
	tests := []struct {
		name    string
		cookies []string
		wantSID string
		code    string
	}{
		{"plain", []string{"connect.sid=" + good}, sid, ""},
		{"among others", []string{"a=1; connect.sid=" + good + "; b=2"}, sid, ""},
		{"first occurrence wins", []string{"connect.sid=" + good + "; connect.sid=s%3Aother.sig"}, sid, ""},
		{"first occurrence wins even if bad", []string{"connect.sid=s%3Aother.sig; connect.sid=" + good}, "", sessiongate.ECodeBadSignature},
		{"first header line wins", []string{"connect.sid=" + good, "connect.sid=s%3Aother.sig"}, sid, ""},
		{"second header line", []string{"a=1", "connect.sid=" + good}, sid, ""},
		{"quoted", []string{`connect.sid="` + good + `"`}, sid, ""},
		{"spaces and tabs", []string{"a=1;\t connect.sid \t= " + good + " \t;"}, sid, ""},
		{"not percent-encoded", []string{"connect.sid=s:" + Sign(sid, secrets[1])}, sid, ""},
		{"plus stays plus", []string{"connect.sid=s%3A" + strings.ReplaceAll(plusSigned, " ", "%20")}, plusSID, ""},
		{"pair without equals before", []string{"junk; connect.sid=" + good}, sid, ""},
		{"name is case-sensitive", []string{"Connect.sid=" + good}, "", sessiongate.ECodeNoCookie},

		{"no header", nil, "", sessiongate.ECodeNoCookie},
		{"other cookies only", []string{"a=1; b=2"}, "", sessiongate.ECodeNoCookie},
		{"empty value", []string{"connect.sid=; connect.sid=" + good}, "", sessiongate.ECodeNoCookie},
		{"unsigned raw sid", []string{"connect.sid=" + unsigned}, "", sessiongate.ECodeNoCookie},
		{"padded signature", []string{"connect.sid=" + good + "%3D"}, "", sessiongate.ECodeBadSignature},
		{"tampered signature", []string{"connect.sid=" + strings.Replace(good, "FJx", "FJy", 1)}, "", sessiongate.ECodeBadSignature},
		{"tampered sid", []string{"connect.sid=" + strings.Replace(good, "tK9", "tK8", 1)}, "", sessiongate.ECodeBadSignature},
		{"unknown secret", []string{"connect.sid=s%3A" + Sign(sid, []byte("other"))}, "", sessiongate.ECodeBadSignature},
		{"no dot", []string{"connect.sid=s%3Aabc"}, "", sessiongate.ECodeBadSignature},
		{"empty sid", []string{"connect.sid=s%3A" + Sign("", secrets[0])}, "", sessiongate.ECodeNoCookie},
		{"plus decoded as space would not match", []string{"connect.sid=s%3Aa+b." + signature("a b", secrets[0])}, "", sessiongate.ECodeBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SessionIDFromHeader(header(tt.cookies...), DefaultCookieName, secrets)
			if code := sessiongate.ErrorCode(err); code != tt.code || got != tt.wantSID {
				t.Fatalf("SessionIDFromHeader = %q, %v; want %q, code %q", got, err, tt.wantSID, tt.code)
			}
		})
	}
}

func TestSessionIDSplitsAtLastDot(t *testing.T) {
	secret := []byte("s3cret")
	const sid = "a.b.c"
	got, err := SessionIDFromHeader(header("connect.sid="+CookieValue(sid, secret)), "connect.sid", [][]byte{secret})
	if err != nil || got != sid {
		t.Fatalf("got %q, %v; want %q", got, err, sid)
	}
}

// The cases were checked against cookie.parse of the cookie npm package 0.7.2.
func TestCookieFromHeader(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{`a=1; connect.sid="s%3Ax+y"; connect.sid=2`, "s:x+y", true},
		{"connect.sid=%E9%; b", "%E9%", true}, // decoding throws: kept raw
		{"connect.sid=%E9", "%E9", true},      // not UTF-8: kept raw
		{"connect.sid=%C3%A9", "é", true},
		{"connect.sid=%ED%A0%80", "%ED%A0%80", true}, // a surrogate
		{"connect.sid=%C0%80", "%C0%80", true},       // overlong
		{"connect.sid=%F4%90%80%80", "%F4%90%80%80", true},
		{"connect.sid=%zz", "%zz", true},
		{"connect.sid=a%2", "a%2", true},
		{"connect.sid=\xe9", "é", true},       // Node reads header bytes as Latin-1
		{"connect.sid=\xe9%41", "éA", true},   // both
		{"connect.sid=\xe9%E9", "é%E9", true}, // both, decoding throws
		{"x; connect.sid = v ;", "v", true},
		{`connect.sid="`, "", true},
		{`connect.sid=""`, "", true},
		{`connect.sid="a`, `"a`, true},
		{"connect.sid=a=b", "a=b", true},
		{"connect.sid", "", false},
		{"c", "", false},
		{"", "", false},
		{"xconnect.sid=1", "", false},
		{"a=1;;connect.sid=2", "2", true},
		{"a; b; connect.sid=3", "3", true},
	}
	for _, tt := range tests {
		got, ok := CookieFromHeader(tt.header, "connect.sid")
		if got != tt.want || ok != tt.ok {
			t.Errorf("CookieFromHeader(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEncodeURIComponent(t *testing.T) {
	// Output of Node's encodeURIComponent.
	const in, want = "s:a b!*'()~-_.+/=é", "s%3Aa%20b!*'()~-_.%2B%2F%3D%C3%A9"
	if got := encodeURIComponent(in); got != want {
		t.Errorf("encodeURIComponent(%q) = %q, want %q", in, got, want)
	}
	if got, ok := decodeURIComponent(want); !ok || got != in {
		t.Errorf("decodeURIComponent(%q) = %q, %v", want, got, ok)
	}
}

func TestSignUnsign(t *testing.T) {
	secrets := secretList("one,two")
	signed := Sign("sid", secrets[1])
	if sid, ok := Unsign(signed, secrets); !ok || sid != "sid" {
		t.Errorf("Unsign(Sign) = %q, %v", sid, ok)
	}
	if _, ok := Unsign(signed, secrets[:1]); ok {
		t.Error("Unsign accepted a signature of a secret not in the list")
	}
	if _, ok := Unsign(signed, nil); ok {
		t.Error("Unsign accepted a signature with no secrets")
	}
	if sig := signed[strings.LastIndexByte(signed, '.')+1:]; len(sig) != 43 || strings.Contains(sig, "=") {
		t.Errorf("signature %q: want 43 unpadded base64 characters", sig)
	}
}

func TestNewSessionID(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)
	seen := map[string]bool{}
	for range 100 {
		id := NewSessionID()
		if !valid.MatchString(id) {
			t.Fatalf("NewSessionID() = %q: want 32 base64url characters", id)
		}
		if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 24 {
			t.Fatalf("NewSessionID() = %q: want 24 bytes (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("NewSessionID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestSetCookie(t *testing.T) {
	expires := time.Date(2026, 11, 27, 1, 28, 14, 438e6, time.UTC)
	secret := []byte("keyboard cat")
	tests := []struct {
		name    string
		opts    CookieOptions
		expires time.Time
		want    string
	}{
		// Captured from the fixture (testdata/express-app); see also
		// TestInteropLogin, which compares with a live response.
		{"fixture", CookieOptions{MaxAge: time.Hour, HTTPOnly: true, SameSite: http.SameSiteLaxMode}, expires,
			"connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0; Path=/; Expires=Fri, 27 Nov 2026 01:28:14 GMT; HttpOnly; SameSite=Lax"},
		{"express-session defaults", CookieOptions{HTTPOnly: true}, time.Time{},
			"connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0; Path=/; HttpOnly"},
		{"everything", CookieOptions{MaxAge: time.Hour, Path: "/app", Domain: "example.com", HTTPOnly: true, Secure: true, SameSite: http.SameSiteNoneMode}, expires,
			"connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0; Domain=example.com; Path=/app; Expires=Fri, 27 Nov 2026 01:28:14 GMT; HttpOnly; Secure; SameSite=None"},
		{"strict, local time", CookieOptions{SameSite: http.SameSiteStrictMode}, expires.In(time.FixedZone("X", 3600)),
			"connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0; Path=/; Expires=Fri, 27 Nov 2026 01:28:14 GMT; SameSite=Strict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.opts.SetCookie(DefaultCookieName, "abc123", secret, tt.expires); got != tt.want {
				t.Errorf("SetCookie =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSessionIDsFromHeader(t *testing.T) {
	secrets := secretList("new-secret-2025,old-secret-2024")
	a, b := CookieValue("sid-a", secrets[0]), CookieValue("sid-b", secrets[1])
	forged := CookieValue("sid-f", []byte("not our secret"))
	tests := []struct {
		name  string
		lines []string // Cookie header lines
		want  []string
	}{
		{"none", nil, nil},
		{"one", []string{"connect.sid=" + a}, []string{"sid-a"}},
		{"two, one per path", []string{"connect.sid=" + a + "; other=1; connect.sid=" + b}, []string{"sid-a", "sid-b"}},
		{"across header lines", []string{"connect.sid=" + b, "connect.sid=" + a}, []string{"sid-b", "sid-a"}},
		{"forged, unsigned and empty ignored", []string{"connect.sid=" + forged + "; connect.sid=sid-u; connect.sid=; connect.sid=" + a}, []string{"sid-a"}},
		{"duplicates once", []string{"connect.sid=" + a + "; connect.sid=" + a}, []string{"sid-a"}},
		{"past the cap ignored", []string{strings.Repeat("connect.sid=x; ", MaxSessionCookies) + "connect.sid=" + a}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SessionIDsFromHeader(http.Header{"Cookie": tt.lines}, DefaultCookieName, secrets)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SessionIDsFromHeader = %q, want %q", got, tt.want)
			}
		})
	}
}
