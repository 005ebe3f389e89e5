package expresssession_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
)

func ExampleSessionIDFromHeader() {
	// SESSION_SECRETS="new-secret-2025,old-secret-2024": a cookie signed
	// with the old secret is still accepted.
	secrets := [][]byte{[]byte("new-secret-2025"), []byte("old-secret-2024")}
	h := http.Header{}
	h.Set("Cookie", "theme=dark; connect.sid=s%3AtK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe.TTgLJDuDb%2BSRvgHaa3t1N9C6M24rohPl%2BymmHLZMoZA")
	sid, err := expresssession.SessionIDFromHeader(h, expresssession.DefaultCookieName, secrets)
	fmt.Println(sid, err)

	h.Set("Cookie", "connect.sid=tK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe")
	_, err = expresssession.SessionIDFromHeader(h, expresssession.DefaultCookieName, secrets)
	fmt.Println(sessiongate.ErrorCode(err))
	// Output:
	// tK9bR2mWq7YxL0sN4vJ8hP1cF6dG3aZe <nil>
	// NO_COOKIE
}

func ExampleCookieOptions() {
	opts := expresssession.CookieOptions{MaxAge: time.Hour, HTTPOnly: true, SameSite: http.SameSiteLaxMode}
	now := time.Date(2026, 11, 27, 0, 11, 14, 274e6, time.UTC)
	secret := []byte("keyboard cat")

	sess, expires := opts.NewSession("42", now)
	fmt.Println(string(sess))
	fmt.Println(opts.SetCookie(expresssession.DefaultCookieName, "abc123", secret, expires))
	// Output:
	// {"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T01:11:14.274Z","httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42}}
	// connect.sid=s%3Aabc123.L3URH8qEUlRhbJErOXuJ%2FR5i21GJUY02kERb2c2p5w0; Path=/; Expires=Fri, 27 Nov 2026 01:11:14 GMT; HttpOnly; SameSite=Lax
}

func ExampleSetCookieExpires() {
	sess := []byte(`{"cookie":{"originalMaxAge":3600000,"expires":"2026-11-27T00:11:14.274Z","httpOnly":true,"path":"/"},"passport":{"user":42},"theme":"dark"}`)
	sess, err := expresssession.SetCookieExpires(sess, time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(sess))
	id, ok, _ := expresssession.UserID(sess)
	fmt.Println(id, ok)
	// Output:
	// {"cookie":{"originalMaxAge":3600000,"expires":"2026-11-28T00:00:00.000Z","httpOnly":true,"path":"/"},"passport":{"user":42},"theme":"dark"}
	// 42 true
}

func ExampleLogout() {
	sess, _ := expresssession.Logout([]byte(`{"cookie":{"originalMaxAge":null},"passport":{"user":"bob"},"cart":[1,2]}`))
	fmt.Println(string(sess))
	// Output:
	// {"cookie":{"originalMaxAge":null},"passport":{},"cart":[1,2]}
}
