package socketio

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseClaim feeds CONNECT auth payloads to the parser of the pid and
// offset a client claims: it never panics, and what it accepts is 1 to
// maxTokenLen printable ASCII characters.
func FuzzParseClaim(f *testing.F) {
	for _, s := range []string{
		`{"pid":"qXzFabc","offset":"Q8tAhqB.0","token":"abc"}`,
		`{"pid":"p"}`, `{"pid":1,"offset":"x"}`, `{"pid":"","offset":""}`,
		`{"pid":"\u0000","offset":"\"\\"}`, `[]`, `null`, `{`, `"x"`,
		`{"pid":"` + strings.Repeat("a", 65) + `","offset":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, auth []byte) {
		c, hasPID, ok := parseClaim(json.RawMessage(auth))
		if ok && !hasPID {
			t.Fatal("ok without a pid")
		}
		check := func(s string) {
			if len(s) == 0 || len(s) > maxTokenLen {
				t.Fatalf("accepted %q", s)
			}
			for i := 0; i < len(s); i++ {
				if s[i] < 0x21 || s[i] > 0x7e {
					t.Fatalf("accepted %q", s)
				}
			}
		}
		if hasPID {
			check(c.pid)
		}
		if ok {
			check(c.offset)
		}
	})
}

// FuzzMemoryLogOffset feeds offsets to a MemoryLog: parsing never panics,
// a Restore or Range with any offset fails cleanly or answers, and the
// offsets the log makes parse back to their number.
func FuzzMemoryLogOffset(f *testing.F) {
	l := NewMemoryLog(MemoryLogOptions{MaxEntries: 16})
	for range 20 {
		l.Append(ctx, "/", LogEntry{Rooms: []string{"s"}, Data: []byte(`["e"]`)})
	}
	h, _ := l.Head(ctx, "/")
	f.Add(h)
	f.Add(l.epoch + ".3")
	f.Add(l.epoch + ".18446744073709551615")
	f.Add("x.1")
	f.Add("")
	f.Fuzz(func(t *testing.T, off string) {
		if n, ok := l.parse(off); ok && l.offset(n) != off {
			t.Fatalf("parse(%q) = %d, which prints %q", off, n, l.offset(n))
		}
		l.Save(ctx, SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", LastSent: h, Head: h})
		if _, err := l.Restore(ctx, RestoreRequest{Namespace: "/", PID: "p", Key: "k", Offset: off, MaxMessages: 100, MaxBytes: 1 << 20}); err != nil && reasonOf(err) == RecoveryLogError {
			t.Fatalf("restore(%q): %v", off, err)
		}
		if _, err := l.Range(ctx, "/", off, off, "s", nil); err != nil && reasonOf(err) == RecoveryLogError {
			t.Fatalf("range(%q): %v", off, err)
		}
	})
}
