package sessiongate

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAuditEventSanitized(t *testing.T) {
	long := strings.Repeat("é", MaxAuditUserAgent) // 2 bytes a rune: cut inside one
	tests := []struct {
		name string
		in   AuditEvent
		want AuditEvent
	}{
		{"valid is kept", AuditEvent{UserAgent: "Mozilla/5.0 ✓", UserID: "42", Count: 3},
			AuditEvent{UserAgent: "Mozilla/5.0 ✓", UserID: "42", Count: 3}},
		{"0xFF replaced", AuditEvent{UserAgent: "curl\xff/8"}, AuditEvent{UserAgent: "curl\uFFFD/8", Count: 1}},
		{"NUL replaced", AuditEvent{UserID: "4\x002"}, AuditEvent{UserID: "4\uFFFD2", Count: 1}},
		{"cut on a rune boundary", AuditEvent{UserAgent: long},
			AuditEvent{UserAgent: strings.Repeat("é", (MaxAuditUserAgent-len(auditTruncated))/2) + auditTruncated, Count: 1}},
		{"short fields bounded", AuditEvent{RemoteAddr: strings.Repeat("1", 100)},
			AuditEvent{RemoteAddr: strings.Repeat("1", MaxAuditShort-len(auditTruncated)) + auditTruncated, Count: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Sanitized(); got != tt.want {
				t.Errorf("Sanitized() =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// FuzzAuditEventSanitized: whatever the input, every field comes out valid
// UTF-8, without NUL, within its limit, and a valid field is unchanged.
func FuzzAuditEventSanitized(f *testing.F) {
	f.Add("Mozilla/5.0", "42")
	f.Add("\xff\xfe\x00", "\x00")
	f.Add(strings.Repeat("✓", 300), strings.Repeat("a\xc3", 200))
	f.Fuzz(func(t *testing.T, ua, uid string) {
		e := AuditEvent{UserAgent: ua, UserID: uid, Details: ua, RemoteAddr: uid}.Sanitized()
		for _, c := range []struct {
			in, out string
			limit   int
		}{{ua, e.UserAgent, MaxAuditUserAgent}, {uid, e.UserID, MaxAuditUserID}, {ua, e.Details, MaxAuditDetails}, {uid, e.RemoteAddr, MaxAuditShort}} {
			if !utf8.ValidString(c.out) || strings.IndexByte(c.out, 0) >= 0 || len(c.out) > c.limit {
				t.Fatalf("%q sanitized to %q (limit %d)", c.in, c.out, c.limit)
			}
			if utf8.ValidString(c.in) && !strings.Contains(c.in, "\x00") && len(c.in) <= c.limit && c.out != c.in {
				t.Fatalf("valid %q changed to %q", c.in, c.out)
			}
		}
	})
}
