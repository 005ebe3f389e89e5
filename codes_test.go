package sessiongate

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var updateCodes = flag.Bool("update", false, "rewrite client/src/codes.ts from codes.json")

// clientCodesPath is the TypeScript client's copy of the refusal table.
const clientCodesPath = "client/src/codes.ts"

// TestRefusalCodes: the table holds each handshake code once, with its
// message, and says that exactly RATE_LIMITED and INTERNAL are retried
// (contract §2).
func TestRefusalCodes(t *testing.T) {
	handshake := []string{
		ECodeOriginNotAllowed, ECodeNoCookie, ECodeBadSignature, ECodeSessionNotFound,
		ECodeSessionExpired, ECodeNotAuthenticated, ECodeTooManyConnections, ECodeRateLimited, ECodeInternal,
	}
	var got []string
	for _, c := range RefusalCodes() {
		if c.Message == "" || strings.ContainsAny(c.Message, `'\`) || strings.Trim(c.Code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != "" {
			t.Errorf("%q: a code is upper case and underscores, a message non-empty without quotes or backslashes (%q)", c.Code, c.Message)
		}
		if want := c.Code == ECodeRateLimited || c.Code == ECodeInternal; c.Retry != want {
			t.Errorf("%s retry = %v, want %v", c.Code, c.Retry, want)
		}
		got = append(got, c.Code)
	}
	if !slices.Equal(got, handshake) {
		t.Errorf("table codes = %v, want %v", got, handshake)
	}
	if c, ok := LookupRefusal(ECodeRateLimited); !ok || c.Message != "rate limited" || !c.Retry {
		t.Errorf("LookupRefusal(RATE_LIMITED) = %+v, %v", c, ok)
	}
	if _, ok := LookupRefusal(ECodeNotFound); ok {
		t.Error("LookupRefusal(NOT_FOUND) found a row: it is not a handshake code")
	}
}

// TestClientCodes: the TypeScript client's table is the one generated from
// codes.json. Regenerate it with `go test -run TestClientCodes -update .`.
func TestClientCodes(t *testing.T) {
	want := renderClientCodes(RefusalCodes())
	if *updateCodes {
		if err := os.WriteFile(clientCodesPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(clientCodesPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s does not match codes.json; run `go test -run TestClientCodes -update .`\ngot:\n%s\nwant:\n%s", clientCodesPath, got, want)
	}
}

// renderClientCodes is client/src/codes.ts for the table codes.
func renderClientCodes(codes []RefusalCode) string {
	var b strings.Builder
	b.WriteString(`// Code generated from codes.json by ` + "`go test -run TestClientCodes -update .`" + ` in the
// repository root; DO NOT EDIT. The client's tests check that it matches codes.json.

/**
 * The refusal table of the sessiongate contract (§2): every code the server
 * may send in a CONNECT_ERROR, the message it comes with, and whether the
 * client retries it with backoff (` + "`retry: true`" + `) or stops (` + "`retry: false`" + `).
 */
export const CODES = [
`)
	for _, c := range codes {
		fmt.Fprintf(&b, "  { code: '%s', message: '%s', retry: %v },\n", c.Code, c.Message, c.Retry)
	}
	b.WriteString("] as const;\n")
	return b.String()
}
