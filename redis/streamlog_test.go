package redis

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/recoverytest"
)

// newStreamLog is a StreamLog on the test Redis under a fresh key, whose
// keys are deleted at cleanup.
func newStreamLog(t testing.TB, opts StreamLogOptions) *StreamLog {
	t.Helper()
	if opts.URL == "" {
		opts.URL = redisURL(t)
	}
	if opts.Key == "" {
		opts.Key = testKey()
	}
	if opts.StreamName == "" {
		opts.StreamName = opts.Key + ":stream"
	}
	l, err := NewStreamLog(waitCtx(t), opts)
	if err != nil {
		t.Fatalf("Redis at %s is not reachable (start it, or run with -short): %v", opts.URL, err)
	}
	rc := admin(t)
	t.Cleanup(func() {
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := rc.Do(ctx, rc.B().Keys().Pattern(opts.Key+":*").Build()).AsStrSlice()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		if len(keys) > 0 {
			if err := rc.Do(ctx, rc.B().Del().Key(keys...).Build()).Error(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return l
}

// TestStreamLogConformance runs the RecoveryLog suite on Redis. Its
// windows are Redis' PX and stream ids: Advance waits.
func TestStreamLogConformance(t *testing.T) {
	redisURL(t) // -short skips here, once
	recoverytest.Run(t, func(t *testing.T, opts recoverytest.Options) recoverytest.Log {
		l := newStreamLog(t, StreamLogOptions{Window: opts.Window})
		return recoverytest.Log{RecoveryLog: l, Advance: func(d time.Duration) { time.Sleep(d) }}
	})
}

func TestParseID(t *testing.T) {
	for _, ok := range []string{"0-0", "1-0", "1796221887126-0", "1796221887126-17", "18446744073709551615-18446744073709551615"} {
		id, good := parseID(ok)
		if !good || id.String() != ok {
			t.Errorf("parseID(%q) = %v, %v", ok, id, good)
		}
	}
	for _, bad := range []string{"", "-", "1", "1-", "-1", "01-0", "1-00", "+1-0", "1-0-0", "1 -0", "1-0 ", "a-0", "1.0",
		"18446744073709551616-0", "1-18446744073709551616", "１-0", "1-*", "$", "+", "(1-0"} {
		if id, good := parseID(bad); good {
			t.Errorf("parseID(%q) accepted: %v", bad, id)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0-0", "1796221887126-0", "1796221887126-17", "01-0", "1-", "18446744073709551616-0", "abc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseID(s)
		if ok && id.String() != s {
			t.Errorf("parseID(%q) = %v: not the same id", s, id)
		}
		if !ok && len(s) <= 41 {
			// Anything of the form must parse.
			if a, b, cut := strings.Cut(s, "-"); cut {
				_, ok1 := parseDec(a)
				_, ok2 := parseDec(b)
				if ok1 && ok2 {
					t.Errorf("parseID(%q) refused", s)
				}
			}
		}
	})
}

// TestStreamLogBounds: the stream is trimmed near MaxEntries, a socket
// too large is not saved, and the keys are where the doc says.
func TestStreamLogBounds(t *testing.T) {
	rc := admin(t)
	ctx := waitCtx(t)
	l := newStreamLog(t, StreamLogOptions{MaxEntries: 100, MaxSocketBytes: 200})
	for range 1000 {
		if _, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["e"]`)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rc.Do(ctx, rc.B().Xlen().Key(l.opts.StreamName).Build()).AsInt64()
	if err != nil || n < 100 || n > 300 {
		t.Errorf("XLEN %d, %v; want about 100", n, err)
	}
	h, _ := l.Head(ctx, "/")
	if _, err := l.Range(ctx, "/", "0-0", "", "s", nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("range from the start after trimming: %v, want expired", err)
	}
	big := socketio.SavedSocket{Namespace: "/", PID: "big", Key: "k", Rooms: []string{strings.Repeat("r", 200)}, LastSent: h, Head: h}
	if err := l.Save(ctx, big); err != nil {
		t.Fatal(err)
	}
	small := big
	small.PID, small.Rooms = "small", []string{"r"}
	if err := l.Save(ctx, small); err != nil {
		t.Fatal(err)
	}
	if n, _ := rc.Do(ctx, rc.B().Exists().Key(l.opts.Key+":recovery:session:big").Build()).AsInt64(); n != 0 {
		t.Errorf("a socket over MaxSocketBytes was saved")
	}
	ttl, err := rc.Do(ctx, rc.B().Pttl().Key(l.opts.Key+":recovery:session:small").Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > (2*time.Minute).Milliseconds() {
		t.Errorf("PTTL of a saved socket %d, %v; want within the window", ttl, err)
	}
}

// TestStreamLogErrors: a Redis that fails gives a coded error, which
// socketio counts as a log error.
func TestStreamLogErrors(t *testing.T) {
	l := newStreamLog(t, StreamLogOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["e"]`)})
	var se *StreamLogError
	if !errors.As(err, &se) || se.Code != CodeRedis {
		t.Errorf("append with a done ctx: %v, want %s", err, CodeRedis)
	}
	rc := admin(t)
	if err := rc.Do(waitCtx(t), rc.B().Set().Key(l.opts.Key+":recovery:session:p").Value("not json").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err = l.Restore(waitCtx(t), socketio.RestoreRequest{Namespace: "/", PID: "p", Key: "k", Offset: "0-0", MaxMessages: 1, MaxBytes: 1})
	if !errors.As(err, &se) || se.Code != CodeCorrupt {
		t.Errorf("restore of a corrupt socket: %v, want %s", err, CodeCorrupt)
	}
}

// BenchmarkStreamLogAppend: one Append, an XADD and its trim in one
// script call.
func BenchmarkStreamLogAppend(b *testing.B) {
	l := newStreamLog(b, StreamLogOptions{})
	ctx := waitCtx(b)
	e := socketio.LogEntry{Rooms: []string{"room"}, Data: []byte(`["e","` + strings.Repeat("x", 40) + `"]`)}
	b.Run("StreamLog", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Append(ctx, "/", e); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The floor: a bare XADD MAXLEN ~ of the same fields, same client.
	b.Run("XADD", func(b *testing.B) {
		c, key := l.client, l.opts.StreamName+":bare"
		data, _ := encodeStreamData("/", e)
		for b.Loop() {
			cmd := c.B().Xadd().Key(key).Maxlen().Almost().Threshold("10000").Id("*").FieldValue().
				FieldValue("uid", l.uid).FieldValue("nsp", "/").FieldValue("type", "3").FieldValue("data", data).Build()
			if err := c.Do(ctx, cmd).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStreamLogRestore: Save then Restore of a socket that missed 10
// events among 100 (GET, GETDEL, the trim script, one XRANGE page).
func BenchmarkStreamLogRestore(b *testing.B) {
	l := newStreamLog(b, StreamLogOptions{})
	ctx := waitCtx(b)
	h, _ := l.Head(ctx, "/")
	for i := range 100 {
		room := "other"
		if i%10 == 0 {
			room = "r"
		}
		l.Append(ctx, "/", socketio.LogEntry{Rooms: []string{room}, Data: []byte(`["e",1]`)})
	}
	sv := socketio.SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, LastSent: h, Head: h}
	r := socketio.RestoreRequest{Namespace: "/", PID: "p", Key: "k", Offset: h, MaxMessages: 1000, MaxBytes: 1 << 20}
	for b.Loop() {
		if err := l.Save(ctx, sv); err != nil {
			b.Fatal(err)
		}
		if res, err := l.Restore(ctx, r); err != nil || len(res.Missed) != 10 {
			b.Fatal(len(res.Missed), err)
		}
	}
}

// TestStreamLogWindowMany: more than a page of entries ageing out at once
// are trimmed, and recorded as dropped.
func TestStreamLogWindowMany(t *testing.T) {
	var skew atomic.Int64
	l := newStreamLog(t, StreamLogOptions{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	ctx := waitCtx(t)
	h, _ := l.Head(ctx, "/")
	var offs []string
	for range 250 {
		o, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["e"]`)})
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, o)
	}
	skew.Store(int64(3 * time.Minute))
	if got, err := l.Range(ctx, "/", offs[248], "", "s", nil); err == nil {
		t.Errorf("range after the window: %d entries, want expired", len(got))
	}
	if got, err := l.Range(ctx, "/", offs[249], "", "s", nil); err != nil || len(got) != 0 {
		t.Errorf("range after the last: %v, %v", got, err)
	}
	if got, _ := l.Head(ctx, "/"); got != offs[249] || got == h {
		t.Errorf("head %s after trimming all, want %s", got, offs[249])
	}
	rc := admin(t)
	if n, err := rc.Do(ctx, rc.B().Xlen().Key(l.opts.StreamName).Build()).AsInt64(); err != nil || n != 0 {
		t.Errorf("XLEN %d, %v; want 0", n, err)
	}
}
