package expresssession

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// A row as express-session + passport wrote it (see the interop doc).
const docRow = `{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T00:11:14.274Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42},"theme":"dark"}`

var newExpiry = time.Date(2027, 1, 2, 3, 4, 5, 678999999, time.UTC)

func TestSetCookieExpires(t *testing.T) {
	const iso = `"2027-01-02T03:04:05.678Z"`
	tests := []struct {
		name, in, want string
	}{
		{"replace", docRow,
			`{"cookie":{"originalMaxAge":3600000,"expires":` + iso + `,"secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42},"theme":"dark"}`},
		{"keeps whitespace and unknown keys", "{ \"a\" : [1,{\"cookie\":{}}],\n \"cookie\" : { \"expires\" : null , \"x\":\"}\" } ,\"z\":1e3 }",
			"{ \"a\" : [1,{\"cookie\":{}}],\n \"cookie\" : { \"expires\" : " + iso + " , \"x\":\"}\" } ,\"z\":1e3 }"},
		{"insert after originalMaxAge", `{"cookie":{"originalMaxAge":null,"httpOnly":true,"path":"/"}}`,
			`{"cookie":{"originalMaxAge":null,"expires":` + iso + `,"httpOnly":true,"path":"/"}}`},
		{"insert after priority", `{"cookie":{"originalMaxAge":null,"partitioned":true,"priority":"high","path":"/"}}`,
			`{"cookie":{"originalMaxAge":null,"partitioned":true,"priority":"high","expires":` + iso + `,"path":"/"}}`},
		{"insert first", `{"cookie":{"path":"/"}}`,
			`{"cookie":{"expires":` + iso + `,"path":"/"}}`},
		{"insert into empty", `{"cookie":{ }}`,
			`{"cookie":{"expires":` + iso + ` }}`},
		{"last duplicate wins", `{"cookie":{"expires":1},"cookie":{"expires":2,"expires":3}}`,
			`{"cookie":{"expires":1},"cookie":{"expires":2,"expires":` + iso + `}}`},
		{"escaped key", `{"cookie":{"exp\u0069res":"x"}}`,
			`{"cookie":{"exp\u0069res":` + iso + `}}`},
		{"nested cookie untouched", `{"x":{"cookie":{"expires":1}},"cookie":{"expires":2}}`,
			`{"x":{"cookie":{"expires":1}},"cookie":{"expires":` + iso + `}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SetCookieExpires([]byte(tt.in), newExpiry)
			if err != nil || string(got) != tt.want {
				t.Fatalf("SetCookieExpires =\n%s, %v\nwant\n%s", got, err, tt.want)
			}
		})
	}
}

func TestSetCookieExpiresInvalid(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `"x"`, `{}`, `{"cookie":null}`, `{"cookie":[]}`, `{"cookie":{}} x`} {
		_, err := SetCookieExpires([]byte(in), newExpiry)
		if code := sessiongate.ErrorCode(err); code != sessiongate.ECodeInvalid {
			t.Errorf("SetCookieExpires(%q) error %v, want code %s", in, err, sessiongate.ECodeInvalid)
		}
	}
}

func TestUserID(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
		code string
	}{
		{docRow, "42", true, ""},
		{`{"passport":{"user":"bob"}}`, "bob", true, ""},
		{`{"passport":{"user":"b\u00f6b\n"}}`, "böb\n", true, ""},
		{`{"passport":{"user":0}}`, "0", true, ""},
		{`{"passport":{"user":-1.5e3}}`, "-1.5e3", true, ""},
		{`{"passport":{"user":1,"user":2}}`, "2", true, ""},
		{`{"passport":{"user":1},"passport":{}}`, "", false, ""},
		{`{"passport":{"user":""}}`, "", false, ""},
		{`{"passport":{"user":null}}`, "", false, ""},
		{`{"passport":{"user":true}}`, "", false, ""},
		{`{"passport":{"user":{"id":1}}}`, "", false, ""},
		{`{"passport":{}}`, "", false, ""},
		{`{"passport":"x"}`, "", false, ""},
		{`{"cookie":{}}`, "", false, ""},
		{`{"x":{"passport":{"user":1}}}`, "", false, ""},
		{`[1]`, "", false, ""},
		{`{"passport":{"user":1}`, "", false, sessiongate.ECodeInvalid},
		{``, "", false, sessiongate.ECodeInvalid},
	}
	for _, tt := range tests {
		got, ok, err := UserID([]byte(tt.in))
		if got != tt.want || ok != tt.ok || sessiongate.ErrorCode(err) != tt.code {
			t.Errorf("UserID(%s) = %q, %v, %v; want %q, %v, code %q", tt.in, got, ok, err, tt.want, tt.ok, tt.code)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Info
		code string
	}{
		{docRow, Info{Expires: time.Date(2026, 11, 27, 0, 11, 14, 274e6, time.UTC), OriginalMaxAge: time.Hour, UserID: "42"}, ""},
		{`{"cookie":{"originalMaxAge":null,"httpOnly":true,"path":"/"}}`, Info{}, ""},
		{`{"cookie":{"originalMaxAge":1.5,"expires":null}}`, Info{OriginalMaxAge: 1500 * time.Microsecond}, ""},
		{`{"cookie":{"expires":"2026-11-27T01:00:00+01:00"},"passport":{"user":"u"}}`, Info{Expires: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), UserID: "u"}, ""},
		{`{"passport":{"user":42}}`, Info{}, sessiongate.ECodeInvalid},
		{`{"cookie":{"expires":"tomorrow"}}`, Info{}, sessiongate.ECodeInvalid},
		{`{"cookie":{"expires":1}}`, Info{}, sessiongate.ECodeInvalid},
		{`{"cookie":{"originalMaxAge":"1"}}`, Info{}, sessiongate.ECodeInvalid},
		{`nope`, Info{}, sessiongate.ECodeInvalid},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.in))
		if got != tt.want || sessiongate.ErrorCode(err) != tt.code {
			t.Errorf("Parse(%s) = %+v, %v; want %+v, code %q", tt.in, got, err, tt.want, tt.code)
		}
	}
}

func TestLogout(t *testing.T) {
	tests := []struct{ in, want string }{
		{docRow, `{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T00:11:14.274Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{},"theme":"dark"}`},
		{`{"passport":{ "user" : 1 }}`, `{"passport":{  }}`},
		{`{"passport":{"a":1, "user":2}}`, `{"passport":{"a":1}}`},
		{`{"passport":{"user":2, "a":1}}`, `{"passport":{"a":1}}`},
		{`{"passport":{"user":1,"a":[],"user":2}}`, `{"passport":{"a":[]}}`},
		{`{"passport":{}}`, `{"passport":{}}`},
		{`{"passport":null}`, `{"passport":null}`},
		{`{"cookie":{}}`, `{"cookie":{}}`},
	}
	for _, tt := range tests {
		got, err := Logout([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("Logout(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
		if id, ok, _ := UserID(got); ok {
			t.Errorf("UserID(Logout(%s)) = %q", tt.in, id)
		}
	}
	if _, err := Logout([]byte(`[]`)); sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
		t.Errorf("Logout([]) error %v, want code %s", err, sessiongate.ECodeInvalid)
	}
}

func TestNewSession(t *testing.T) {
	now := time.Date(2026, 11, 27, 0, 28, 14, 438_900_000, time.UTC)
	fixture := CookieOptions{MaxAge: time.Hour, HTTPOnly: true, SameSite: http.SameSiteLaxMode}
	tests := []struct {
		name    string
		opts    CookieOptions
		user    string
		want    string
		expires time.Time
	}{
		// The row the fixture (testdata/express-app) wrote at login.
		{"fixture", fixture, "42",
			`{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T01:28:14.438Z","httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42}}`,
			time.Date(2026, 11, 27, 1, 28, 14, 438e6, time.UTC)},
		{"string user", fixture, "bob \"b\"",
			`{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T01:28:14.438Z","httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":"bob \"b\""}}`,
			time.Date(2026, 11, 27, 1, 28, 14, 438e6, time.UTC)},
		{"leading zero", CookieOptions{}, "007",
			`{"cookie":{"originalMaxAge":null,"httpOnly":false,"path":"/"},"passport":{"user":"007"}}`, time.Time{}},
		{"beyond 2^53", CookieOptions{}, "9007199254740992",
			`{"cookie":{"originalMaxAge":null,"httpOnly":false,"path":"/"},"passport":{"user":"9007199254740992"}}`, time.Time{}},
		{"2^53-1", CookieOptions{}, "9007199254740991",
			`{"cookie":{"originalMaxAge":null,"httpOnly":false,"path":"/"},"passport":{"user":9007199254740991}}`, time.Time{}},
		{"everything", CookieOptions{MaxAge: 1500 * time.Millisecond, Path: "/a", Domain: "example.com", HTTPOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}, "0",
			`{"cookie":{"originalMaxAge":1500,"expires":"2026-11-27T00:28:15.938Z","secure":true,"httpOnly":true,"domain":"example.com","path":"/a","sameSite":"strict"},"passport":{"user":0}}`,
			time.Date(2026, 11, 27, 0, 28, 15, 938e6, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess, expires := tt.opts.NewSession(tt.user, now)
			if string(sess) != tt.want || !expires.Equal(tt.expires) {
				t.Fatalf("NewSession =\n%s, %v\nwant\n%s, %v", sess, expires, tt.want, tt.expires)
			}
			info, err := Parse(sess)
			if err != nil || info.UserID != tt.user || !info.Expires.Equal(tt.expires) || info.OriginalMaxAge != tt.opts.MaxAge {
				t.Fatalf("Parse(NewSession) = %+v, %v", info, err)
			}
		})
	}
}

func TestISOString(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string // Date.prototype.toISOString
	}{
		{time.Date(2026, 11, 27, 0, 11, 14, 274_999_999, time.UTC), "2026-11-27T00:11:14.274Z"},
		{time.Date(2026, 11, 27, 1, 11, 14, 0, time.FixedZone("CET", 3600)), "2026-11-27T00:11:14.000Z"},
		{time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC), "+012345-01-01T00:00:00.000Z"},
		{time.Date(-3, 1, 1, 0, 0, 0, 0, time.UTC), "-000003-01-01T00:00:00.000Z"},
		{time.UnixMilli(-1), "1969-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		if got := ISOString(tt.t); got != tt.want {
			t.Errorf("ISOString(%v) = %s, want %s", tt.t, got, tt.want)
		}
	}
}

func TestAppendJSString(t *testing.T) {
	// JSON.stringify("\"\\\b\f\n\r\t\u0001</script>\u2028é")
	const in, want = "\"\\\b\f\n\r\t\x01</script>\u2028é\xff", `"\"\\\b\f\n\r\t\u0001</script>` + "\u2028é\ufffd\""
	got := appendJSString(nil, in)
	if string(got) != want {
		t.Errorf("appendJSString = %s, want %s", got, want)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Errorf("not JSON: %v", err)
	}
}

func TestStoreExpire(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2026-11-27T00:11:14.274Z", "2026-11-27T00:11:15Z"},
		{"2026-11-27T00:11:14.000Z", "2026-11-27T00:11:14Z"},
		{"2026-11-27T00:11:14.0004Z", "2026-11-27T00:11:14Z"}, // below a millisecond: as JS, which has none
		{"2026-11-27T01:11:14.001+01:00", "2026-11-27T00:11:15Z"},
	} {
		in, err := time.Parse(time.RFC3339Nano, tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := StoreExpire(in).Format(time.RFC3339Nano); got != tt.want {
			t.Errorf("StoreExpire(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
