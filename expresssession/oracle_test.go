package expresssession_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/nodetest"
)

// TestCookieOracle compares CookieFromHeader and SessionIDFromHeader with
// express-session's own code (testdata/express-app/cookie-oracle.js) on
// generated Cookie headers full of the characters that matter.
func TestCookieOracle(t *testing.T) {
	const name = "connect.sid"
	secrets := []string{"new-secret", "old-secret"}
	signed := func(sid, secret string) string {
		return expresssession.CookieValue(sid, []byte(secret))
	}
	tokens := []string{
		name, name, name, "a", "s:", "s%3A", "=", "=", ";", ";", " ", "\t", `"`, ".", "+", "%",
		"%3A", "%2B", "%2F", "%3D", "%20", "%2", "%zz", "%E9", "%C3%A9", "%F0%9F%98%80", "%ED%A0%80",
		"%C0%80", "\xe9", "\xff", "ab.cd",
		signed("abc", secrets[0]), signed("abc", secrets[1]), signed("a b+c.d", secrets[1]),
		signed("é", secrets[0]), signed("", secrets[0]), signed("abc", "other"),
		"s:" + expresssession.Sign("abc", []byte(secrets[0])),
		"s:" + expresssession.Sign("é", []byte(secrets[0])),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	headers := []string{"", "c", name + "=", name + `="`}
	values := tokens[len(tokens)-8:] // the signed ones
	pick := func(from []string) string { return from[rng.IntN(len(from))] }
	maybe := func(s string) string {
		if rng.IntN(3) == 0 {
			return s
		}
		return ""
	}
	for len(headers) < 3000 {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			if b.Len() > 0 {
				b.WriteString(pick([]string{"; ", ";", "; ", " ;\t"}))
			}
			if rng.IntN(2) == 0 { // random tokens
				for range 1 + rng.IntN(6) {
					b.WriteString(pick(tokens))
				}
				continue
			}
			// A pair: name=value, with optional spaces, quotes and damage.
			q := maybe(`"`)
			b.WriteString(maybe(" ") + pick([]string{name, name, "a"}) + maybe("\t") + "=" + maybe(" "))
			b.WriteString(q + maybe(pick(tokens)) + pick(values) + maybe(pick(tokens)) + q)
		}
		headers = append(headers, b.String())
	}

	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, h := range headers {
		// The header's bytes as the characters Node reads (Latin-1).
		latin1 := make([]rune, len(h))
		for i := range len(h) {
			latin1[i] = rune(h[i])
		}
		enc.Encode(map[string]any{"header": string(latin1), "name": name, "secrets": secrets})
	}
	cmd := nodetest.Command(t, "testdata/express-app", "cookie-oracle.js")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cookie-oracle.js: %v", err)
	}

	keys := [][]byte{[]byte(secrets[0]), []byte(secrets[1])}
	sc := bufio.NewScanner(bytes.NewReader(out))
	accepted := 0
	for i, h := range headers {
		if !sc.Scan() {
			t.Fatalf("cookie-oracle.js answered %d of %d cases", i, len(headers))
		}
		var want struct{ Raw, SID *string }
		if err := json.Unmarshal(sc.Bytes(), &want); err != nil {
			t.Fatal(err)
		}
		raw, ok := expresssession.CookieFromHeader(h, name)
		if ok != (want.Raw != nil) || (ok && raw != *want.Raw) {
			t.Errorf("CookieFromHeader(%q) = %q, %v; express-session: %s", h, raw, ok, sc.Bytes())
		}
		sid, err := expresssession.SessionIDFromHeader(http.Header{"Cookie": {h}}, name, keys)
		if (err == nil) != (want.SID != nil) || (err == nil && sid != *want.SID) {
			t.Errorf("SessionIDFromHeader(%q) = %q, %v; express-session: %s", h, sid, err, sc.Bytes())
		}
		if err == nil {
			accepted++
		}
	}
	if accepted < 50 {
		t.Errorf("only %d of %d headers carry a valid session: the generator needs more", accepted, len(headers))
	}
	t.Logf("%d headers, %d with a valid session id", len(headers), accepted)
}
