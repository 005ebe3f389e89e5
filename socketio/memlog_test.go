package socketio

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testClock is a MemoryLog's clock that moves only when told.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newTestLog(opts MemoryLogOptions) (*MemoryLog, *testClock) {
	c := &testClock{t: time.Unix(1_800_000_000, 0)}
	opts.Now = c.now
	return NewMemoryLog(opts), c
}

var ctx = context.Background()

func appendN(t *testing.T, l *MemoryLog, nsp string, rooms []string, n int) []string {
	t.Helper()
	var offs []string
	for i := range n {
		off, err := l.Append(ctx, nsp, LogEntry{Rooms: rooms, Data: fmt.Appendf(nil, `["e",%d]`, i)})
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	return offs
}

func reason(err error) RecoveryReason {
	if err == nil {
		return ""
	}
	return reasonOf(err)
}

func head(t *testing.T, l *MemoryLog, nsp string) string {
	t.Helper()
	h, err := l.Head(ctx, nsp)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func restoreReq(pid, offset string) RestoreRequest {
	return RestoreRequest{Namespace: "/", PID: pid, Key: "k", Offset: offset, MaxMessages: 1000, MaxBytes: 1 << 20}
}

func TestMemoryLogOffsets(t *testing.T) {
	l, _ := newTestLog(MemoryLogOptions{})
	h0 := head(t, l, "/")
	offs := appendN(t, l, "/", nil, 3)
	if head(t, l, "/") != offs[2] {
		t.Errorf("head %s, want the last offset %s", head(t, l, "/"), offs[2])
	}
	for i, o := range append([]string{h0}, offs...) {
		n, ok := l.parse(o)
		if !ok || n != uint64(i) {
			t.Errorf("parse(%q) = %d, %v; want %d", o, n, ok, i)
		}
	}
	other, _ := newTestLog(MemoryLogOptions{})
	if _, ok := other.parse(offs[0]); ok {
		t.Errorf("another log took offset %s as its own", offs[0])
	}
	for _, bad := range []string{"", "x", l.epoch, l.epoch + ".", l.epoch + ".01", l.epoch + ".-1", l.epoch + ".1x", l.epoch + ".99999999999999999999999"} {
		if _, ok := l.parse(bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

// TestMemoryLogBounds: whatever is appended, the log holds at most its
// entries and bytes, and the window's worth; a recovery that needs what
// was dropped fails as expired.
func TestMemoryLogBounds(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		l, _ := newTestLog(MemoryLogOptions{MaxEntries: 10})
		appendN(t, l, "/", nil, 25)
		appendN(t, l, "/b", nil, 25)
		if st := l.Stats(); st.Entries != 10 {
			t.Errorf("holds %d entries, want 10", st.Entries)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		l, _ := newTestLog(MemoryLogOptions{MaxBytes: 1000})
		for range 100 {
			l.Append(ctx, "/", LogEntry{Rooms: []string{"room"}, Data: []byte(`["e","` + strings.Repeat("x", 50) + `"]`), Attachments: [][]byte{make([]byte, 20)}})
			if st := l.Stats(); st.Bytes > 1000 {
				t.Fatalf("holds %d bytes, over 1000", st.Bytes)
			}
		}
		if st := l.Stats(); st.Entries == 0 || st.Entries > 1000/(64+60+20) {
			t.Errorf("holds %d entries", st.Entries)
		}
	})
	t.Run("window", func(t *testing.T) {
		l, c := newTestLog(MemoryLogOptions{Window: time.Minute})
		appendN(t, l, "/", nil, 5)
		c.t = c.t.Add(61 * time.Second)
		appendN(t, l, "/", nil, 1)
		if st := l.Stats(); st.Entries != 1 {
			t.Errorf("holds %d entries, want the one within the window", st.Entries)
		}
	})
	t.Run("expired", func(t *testing.T) {
		l, _ := newTestLog(MemoryLogOptions{MaxEntries: 5})
		offs := appendN(t, l, "/", []string{"r"}, 2)
		// Sent offs[1]; the client got offs[0] only: offs[1] is needed.
		l.Save(ctx, SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, LastSent: offs[1], Head: offs[1]})
		appendN(t, l, "/", []string{"r"}, 5) // pushes offs[1] out
		_, err := l.Restore(ctx, restoreReq("p", offs[0]))
		if reason(err) != RecoveryExpired {
			t.Errorf("restore: %v, want expired", err)
		}
	})
	t.Run("sockets", func(t *testing.T) {
		l, c := newTestLog(MemoryLogOptions{MaxSockets: 3, MaxSocketBytes: 100, Window: time.Minute})
		h := head(t, l, "/")
		for i := range 5 {
			l.Save(ctx, SavedSocket{Namespace: "/", PID: fmt.Sprint("p", i), ID: "s", Key: "k", LastSent: h, Head: h})
		}
		if st := l.Stats(); st.Sockets != 3 {
			t.Errorf("holds %d sockets, want 3", st.Sockets)
		}
		if _, err := l.Restore(ctx, restoreReq("p0", h)); reason(err) != RecoveryUnknown {
			t.Errorf("the oldest: %v, want unknown (pushed out)", err)
		}
		l.Save(ctx, SavedSocket{Namespace: "/", PID: "big", Key: "k", Rooms: []string{strings.Repeat("r", 101)}, LastSent: h, Head: h})
		if _, err := l.Restore(ctx, restoreReq("big", h)); reason(err) != RecoveryUnknown {
			t.Errorf("over MaxSocketBytes: %v, want unknown (not saved)", err)
		}
		c.t = c.t.Add(61 * time.Second)
		if _, err := l.Restore(ctx, restoreReq("p4", h)); reason(err) != RecoveryExpired {
			t.Errorf("after the window: %v, want expired", err)
		}
		l.Save(ctx, SavedSocket{Namespace: "/", PID: "new", Key: "k", LastSent: h, Head: h})
		if st := l.Stats(); st.Sockets != 1 {
			t.Errorf("holds %d sockets after the window, want the new one", st.Sockets)
		}
	})
}

// TestMemoryLogRestore: what a restore replays, and when it refuses,
// past what socketio/recoverytest (TestMemoryLog there) checks of every
// log: its own bounds and epoch.
func TestMemoryLogRestore(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		// Nothing in flight (the client has LastSent): entries up to Head
		// may have aged out without failing it (socket.io#5282).
		l, _ := newTestLog(MemoryLogOptions{MaxEntries: 3})
		offs := appendN(t, l, "/", []string{"elsewhere"}, 1)
		appendN(t, l, "/", []string{"elsewhere"}, 5)
		h := head(t, l, "/")
		l.Save(ctx, SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", LastSent: offs[0], Head: h})
		after := appendN(t, l, "/", []string{"s"}, 1)
		res, err := l.Restore(ctx, restoreReq("p", offs[0]))
		if err != nil || len(res.Missed) != 1 || res.Missed[0].Offset != after[0] {
			t.Errorf("restore: %+v, %v; want the one event after the drop", res, err)
		}
	})
	t.Run("another log", func(t *testing.T) {
		l, _ := newTestLog(MemoryLogOptions{})
		offs := appendN(t, l, "/", []string{"s"}, 2)
		l.Save(ctx, SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", LastSent: offs[1], Head: offs[1]})
		r := restoreReq("p", head(t, NewMemoryLog(MemoryLogOptions{}), "/"))
		if _, err := l.Restore(ctx, r); reason(err) != RecoveryOffset {
			t.Errorf("another log's offset: %v", err)
		}
		if _, err := l.Range(ctx, "/", r.Offset, "", "s", nil); reason(err) != RecoveryOffset {
			t.Errorf("range from another log's offset: %v", err)
		}
	})
}

func TestAppendOffset(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`["e"]`, `["e","o.1"]`},
		{`["e",1,{"a":[2]}]`, `["e",1,{"a":[2]},"o.1"]`},
	} {
		if got := string(appendOffset([]byte(tc.data), "o.1")); got != tc.want {
			t.Errorf("appendOffset(%s) = %s, want %s", tc.data, got, tc.want)
		}
	}
}
