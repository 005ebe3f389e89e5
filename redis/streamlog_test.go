package redis

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
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

// Entries as Node's @socket.io/redis-streams-adapter 0.3.1 writes their
// data: nodeJSON is the [LAB] XADD of docs/interop (socketio-cluster.md §4),
// nodeBinary @msgpack/msgpack 2.8.0's encoding of a broadcast with a Buffer
// (packet without nsp, as Node publishes it), ourBinary and ourVolatile
// what Node encodes for the entries this log writes (with nsp).
const (
	nodeJSON    = `{"packet":{"type":2,"data":["e2","x"]},"opts":{"rooms":["room1"],"except":[],"flags":{}}}`
	nodeBinary  = "gqZwYWNrZXSCpHR5cGUCpGRhdGGTo2JpbsQEAAEC/4Khbss/+AAAAAAAAKFrkwH+osOppG9wdHODpXJvb21zkaFypmV4Y2VwdJClZmxhZ3OA"
	ourBinary   = "gqZwYWNrZXSDpHR5cGUCpGRhdGGTo2JpbsQEAAEC/4Khbss/+AAAAAAAAKFrkwH+osOpo25zcKEvpG9wdHODpXJvb21zkaFypmV4Y2VwdJClZmxhZ3OA"
	ourVolatile = "gqZwYWNrZXSDpHR5cGUCpGRhdGGSoXbEAKNuc3CiL3ikb3B0c4Olcm9vbXOQpmV4Y2VwdJGhYaVmbGFnc4Godm9sYXRpbGXD"
)

// binaryEntry is the entry of nodeBinary and ourBinary.
var binaryEntry = socketio.LogEntry{
	Rooms:       []string{"r"},
	Data:        []byte(`["bin",{"_placeholder":true,"num":0},{"n":1.5,"k":[1,-2,"é"]}]`),
	Attachments: [][]byte{{0, 1, 2, 255}},
}

func sameEntry(a, b socketio.LogEntry) bool {
	return string(a.Data) == string(b.Data) && slices.Equal(a.Rooms, b.Rooms) && slices.Equal(a.Except, b.Except) &&
		a.Volatile == b.Volatile && slices.EqualFunc(a.Attachments, b.Attachments, bytes.Equal)
}

// TestStreamData: the data field is Node's, both ways.
func TestStreamData(t *testing.T) {
	got, err := encodeStreamData("/", socketio.LogEntry{Rooms: []string{"room1"}, Data: []byte(`["e2","x"]`)})
	if want := `{"packet":{"type":2,"data":["e2","x"],"nsp":"/"},"opts":{"rooms":["room1"],"except":[],"flags":{}}}`; err != nil || got != want {
		t.Errorf("JSON: %s, %v\nwant %s", got, err, want)
	}
	got, _ = encodeStreamData("/", socketio.LogEntry{Except: []string{"<a>"}, Data: []byte(`["v"]`), Volatile: true})
	if want := `{"packet":{"type":2,"data":["v"],"nsp":"/"},"opts":{"rooms":[],"except":["\u003ca\u003e"],"flags":{"volatile":true}}}`; got != want {
		t.Errorf("volatile JSON: %s\nwant %s", got, want)
	}
	if got, err := encodeStreamData("/", binaryEntry); err != nil || got != ourBinary {
		t.Errorf("binary: %s, %v\nwant %s (@msgpack/msgpack's)", got, err, ourBinary)
	}
	vol := socketio.LogEntry{Except: []string{"a"}, Data: []byte(`["v",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{}}, Volatile: true}
	if got, err := encodeStreamData("/x", vol); err != nil || got != ourVolatile {
		t.Errorf("binary volatile: %s, %v\nwant %s", got, err, ourVolatile)
	}
	for _, c := range []struct {
		name, data string
		want       socketio.LogEntry
	}{
		{"Node JSON", nodeJSON, socketio.LogEntry{Rooms: []string{"room1"}, Data: []byte(`["e2","x"]`)}},
		{"Node binary", nodeBinary, binaryEntry},
		{"our binary", ourBinary, binaryEntry},
		{"our binary volatile", ourVolatile, vol},
		{"numeric rooms", `{"packet":{"type":2,"data":["e", {"b":1,"a":2}]},"opts":{"rooms":[7],"except":["x"],"flags":{"volatile":true}}}`,
			socketio.LogEntry{Rooms: []string{"7"}, Except: []string{"x"}, Data: []byte(`["e", {"b":1,"a":2}]`), Volatile: true}},
		{"binary event type", `{"packet":{"type":5,"data":["e"]}}`, socketio.LogEntry{Data: []byte(`["e"]`)}},
	} {
		got, err := decodeStreamData(c.data, 1<<20)
		if err != nil || !sameEntry(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct{ name, data string }{
		{"acked", `{"packet":{"type":2,"data":["e"],"id":3},"opts":{}}`},
		{"request", `{"requestId":"abc","packet":{"type":2,"data":["e"]},"opts":{}}`},
		{"ack packet", `{"packet":{"type":3,"data":["e"]},"opts":{}}`},
		{"connect packet", `{"packet":{"type":0,"data":{}},"opts":{}}`},
	} {
		if _, err := decodeStreamData(c.data, 1<<20); !errors.Is(err, errNotOurs) {
			t.Errorf("%s: %v, want skipped", c.name, err)
		}
	}
	for _, c := range []struct{ name, data string }{
		{"not JSON", `{"packet"`},
		{"no packet", `{"opts":{}}`},
		{"data not an array", `{"packet":{"type":2,"data":{"a":1}}}`},
		{"empty data", `{"packet":{"type":2,"data":[]}}`},
		{"event not a string", `{"packet":{"type":2,"data":[1]}}`},
		{"rooms not a list", `{"packet":{"type":2,"data":["e"]},"opts":{"rooms":"r"}}`},
		{"not base64", "!!!"},
		{"not msgpack", base64.StdEncoding.EncodeToString([]byte{0xc1})},
		{"trailing msgpack", nodeBinary[:len(nodeBinary)-4] + "gAA="},
		{"too large", `{"packet":{"type":2,"data":["` + strings.Repeat("x", 100) + `"]}}`},
	} {
		if _, err := decodeStreamData(c.data, 64); err == nil || errors.Is(err, errNotOurs) {
			t.Errorf("%s: %v, want an error", c.name, err)
		}
	}
	for _, bad := range []socketio.LogEntry{
		{Data: []byte(`["e",`)},
		{Data: []byte(`["e",{"_placeholder":true,"num":1}]`), Attachments: [][]byte{{1}}},
		{Data: []byte(`{"a":1}`), Attachments: [][]byte{{1}}},
		{Data: []byte(strings.Repeat("[", 70) + strings.Repeat("]", 70)), Attachments: [][]byte{{1}}},
	} {
		if _, err := encodeStreamData("/", bad); err == nil {
			t.Errorf("encode %s: no error", bad.Data)
		}
	}
}

// FuzzDecodeStreamEntry: any data decodes or fails without panicking, and
// what decodes encodes back to data that decodes to a fixed point (JSON
// numbers go through float64, so the first round may normalise them).
func FuzzDecodeStreamEntry(f *testing.F) {
	ours, _ := encodeStreamData("/", socketio.LogEntry{Rooms: []string{"r"}, Except: []string{"s"}, Data: []byte(`["e",1,{"a":[true,null]}]`)})
	for _, s := range []string{ours, nodeJSON, nodeBinary, ourBinary, ourVolatile, `{"packet":{"type":2,"data":["e"],"id":1}}`, "", "{", "gA=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		e, err := decodeStreamData(data, 1<<20)
		if err != nil {
			return
		}
		round := func(e socketio.LogEntry) socketio.LogEntry {
			d, err := encodeStreamData("/", e)
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", e, err)
			}
			back, err := decodeStreamData(d, 4<<20)
			if err != nil {
				t.Fatalf("encoded %q does not decode: %v", d, err)
			}
			return back
		}
		e2 := round(e)
		if e3 := round(e2); !sameEntry(e2, e3) {
			t.Errorf("not a fixed point: %+v, then %+v", e2, e3)
		}
	})
}

// xadd writes an entry to l's stream as another process would.
func xadd(t *testing.T, l *StreamLog, fv ...string) string {
	t.Helper()
	rc := admin(t)
	cmd := rc.B().Xadd().Key(l.opts.StreamName).Id("*").FieldValue()
	for i := 0; i < len(fv); i += 2 {
		cmd = cmd.FieldValue(fv[i], fv[i+1])
	}
	id, err := rc.Do(waitCtx(t), cmd.Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// readAll reads l's entries of nsp after after until it has read up to
// until.
func readAll(t *testing.T, l *StreamLog, nsp, after, until string) []socketio.LogEntry {
	t.Helper()
	var out []socketio.LogEntry
	for after != until {
		es, upTo, err := l.Read(waitCtx(t), nsp, after)
		if err != nil {
			t.Fatalf("read after %s: %v", after, err)
		}
		out = append(out, es...)
		after = upTo
	}
	return out
}

// TestStreamLogNodeEntries: what a Node peer writes is read and replayed
// when it is a broadcast without ack, skipped otherwise; volatile entries
// are read, never replayed.
func TestStreamLogNodeEntries(t *testing.T) {
	var logs bytes.Buffer // written by the test's goroutine only
	l := newStreamLog(t, StreamLogOptions{Options: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	ctx := waitCtx(t)
	h, _ := l.Head(ctx, "/")
	node := func(typ, data string) string {
		return xadd(t, l, "uid", "83b1f0", "nsp", "/", "type", typ, "data", data)
	}
	a := node("3", nodeJSON)
	node("3", `{"packet":{"type":2,"data":["withack"],"id":4},"opts":{"rooms":[],"except":[],"flags":{}}}`)
	node("3", `{"requestId":"x","packet":{"type":2,"data":["req"]},"opts":{}}`)
	node("4", `{"opts":{"rooms":[],"except":[]},"rooms":["zz"]}`)
	node("6", `{"opts":{"rooms":[],"except":[]},"close":false}`)
	broken := node("3", `{"packet":{"type":2,"data":["broken"`)
	xadd(t, l, "uid", "83b1f0", "nsp", "/admin", "type", "3", "data", nodeJSON)
	xadd(t, l, "uid", "83b1f0", "type", "3", "data", nodeJSON) // no nsp
	v := node("3", `{"packet":{"type":2,"data":["vol","x"]},"opts":{"rooms":[],"except":[],"flags":{"volatile":true}}}`)
	b := node("3", nodeBinary)
	got := readAll(t, l, "/", h, b)
	want := []socketio.LogEntry{
		{Offset: a, Rooms: []string{"room1"}, Data: []byte(`["e2","x"]`)},
		{Offset: v, Data: []byte(`["vol","x"]`), Volatile: true},
		binaryEntry,
	}
	want[2].Offset = b
	if len(got) != len(want) {
		t.Fatalf("read %d entries: %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if !sameEntry(got[i], want[i]) || got[i].Offset != want[i].Offset {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if !strings.Contains(logs.String(), `entry skipped" code=recovery_corrupt`) || !strings.Contains(logs.String(), "id="+broken) {
		t.Errorf("the broken entry %s was not logged: %s", broken, logs.String())
	}
	rs, err := l.Range(ctx, "/", h, "", "s", []string{"room1", "r"})
	if err != nil || len(rs) != 2 || rs[0].Offset != a || rs[1].Offset != b {
		t.Errorf("range: %+v, %v; want a and b, not the volatile one", rs, err)
	}
	if err := l.Save(ctx, socketio.SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", Rooms: []string{"room1", "r"}, LastSent: h, Head: h}); err != nil {
		t.Fatal(err)
	}
	res, err := l.Restore(ctx, socketio.RestoreRequest{Namespace: "/", PID: "p", Key: "k", Offset: h, MaxMessages: 10, MaxBytes: 1 << 20})
	if err != nil || len(res.Missed) != 2 || res.Missed[0].Offset != a || res.Missed[1].Offset != b || res.Head != b {
		t.Errorf("restore: %+v, %v; want a and b up to b", res, err)
	}
}

// TestStreamLogWrites: Append writes the entries Node's adapter writes, to
// the one stream of every namespace, with this log's uid.
func TestStreamLogWrites(t *testing.T) {
	l := newStreamLog(t, StreamLogOptions{})
	ctx := waitCtx(t)
	a, err := l.Append(ctx, "/", socketio.LogEntry{Rooms: []string{"room1"}, Data: []byte(`["e2","x"]`)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Append(ctx, "/x", socketio.LogEntry{Except: []string{"a"}, Data: []byte(`["v",{"_placeholder":true,"num":0}]`), Attachments: [][]byte{{}}, Volatile: true})
	if err != nil {
		t.Fatal(err)
	}
	rc := admin(t)
	es, err := rc.Do(ctx, rc.B().Xrange().Key(l.opts.StreamName).Start("-").End("+").Build()).AsXRange()
	if err != nil || len(es) != 2 {
		t.Fatalf("XRANGE: %v, %v", es, err)
	}
	wantA := map[string]string{"uid": l.uid, "nsp": "/", "type": "3", "data": `{"packet":{"type":2,"data":["e2","x"],"nsp":"/"},"opts":{"rooms":["room1"],"except":[],"flags":{}}}`}
	wantB := map[string]string{"uid": l.uid, "nsp": "/x", "type": "3", "data": ourVolatile}
	if es[0].ID != a || !maps.Equal(es[0].FieldValues, wantA) || es[1].ID != b || !maps.Equal(es[1].FieldValues, wantB) {
		t.Errorf("entries %+v, want %s %v, %s %v", es, a, wantA, b, wantB)
	}
	if len(l.uid) != 6 {
		t.Errorf("uid %q, want 6 characters", l.uid)
	}
	if _, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["big","` + strings.Repeat("x", 1<<20) + `"]`)}); !isCode(err, CodeBadEntry) {
		t.Errorf("append over MaxEntryBytes: %v, want %s", err, CodeBadEntry)
	}
	if _, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["e",`)}); !isCode(err, CodeBadEntry) {
		t.Errorf("append of bad JSON: %v, want %s", err, CodeBadEntry)
	}
}

func isCode(err error, code string) bool {
	var se *StreamLogError
	return errors.As(err, &se) && se.Code == code
}

// TestStreamLogReadOrder: two logs appending at once read the same
// entries in the same order, each its own in the order it appended them.
func TestStreamLogReadOrder(t *testing.T) {
	l1 := newStreamLog(t, StreamLogOptions{})
	l2 := newStreamLog(t, StreamLogOptions{Options: Options{Key: l1.opts.Key}, StreamName: l1.opts.StreamName})
	ctx := waitCtx(t)
	h, _ := l1.Head(ctx, "/")
	const n = 200
	var wg sync.WaitGroup
	last := make([]string, 2)
	for i, l := range []*StreamLog{l1, l2} {
		wg.Go(func() {
			for j := range n {
				off, err := l.Append(ctx, "/", socketio.LogEntry{Data: fmt.Appendf(nil, `["e",%d,%d]`, i, j)})
				if err != nil {
					t.Error(err)
					return
				}
				last[i] = off
			}
		})
	}
	wg.Wait()
	end := last[0]
	if mustID(t, last[0]).less(mustID(t, last[1])) {
		end = last[1]
	}
	var reads [2][]socketio.LogEntry
	for i, l := range []*StreamLog{l1, l2} {
		wg.Go(func() { reads[i] = readAll(t, l, "/", h, end) })
	}
	wg.Wait()
	if len(reads[0]) != 2*n || !slices.Equal(offsets(reads[0]), offsets(reads[1])) || !slices.Equal(datas(reads[0]), datas(reads[1])) {
		t.Fatalf("reads differ or miss entries: %d and %d entries", len(reads[0]), len(reads[1]))
	}
	next := [2]int{}
	for _, e := range reads[0] {
		var i, j int
		fmt.Sscanf(string(e.Data), `["e",%d,%d]`, &i, &j)
		if j != next[i] {
			t.Fatalf("log %d's entry %d read where %d was due", i, j, next[i])
		}
		next[i]++
	}
}

func mustID(t *testing.T, s string) streamID {
	id, ok := parseID(s)
	if !ok {
		t.Fatalf("offset %q", s)
	}
	return id
}

func offsets(es []socketio.LogEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Offset)
	}
	return out
}

func datas(es []socketio.LogEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Data))
	}
	return out
}

// TestStreamLogReadNamespaces: Read returns its namespace's entries and
// goes past the others'.
func TestStreamLogReadNamespaces(t *testing.T) {
	l := newStreamLog(t, StreamLogOptions{})
	ctx := waitCtx(t)
	h, _ := l.Head(ctx, "/b")
	x, _ := l.Append(ctx, "/b", socketio.LogEntry{Data: []byte(`["x"]`)})
	y, _ := l.Append(ctx, "/a", socketio.LogEntry{Data: []byte(`["y"]`)})
	es, upTo, err := l.Read(ctx, "/b", h)
	if err != nil || len(es) != 1 || es[0].Offset != x || upTo != y {
		t.Errorf("read /b: %+v up to %s, %v; want x up to y (%s)", es, upTo, err, y)
	}
	if hb, _ := l.Head(ctx, "/b"); hb != x {
		t.Errorf("head of /b %s, want its last entry %s", hb, x)
	}
	z, _ := l.Append(ctx, "/a", socketio.LogEntry{Data: []byte(`["z"]`)})
	es, upTo, err = l.Read(ctx, "/b", y)
	if err != nil || len(es) != 0 || upTo != z {
		t.Errorf("read /b after y: %+v up to %s, %v; want none up to z (%s)", es, upTo, err, z)
	}
	if _, _, err := l.Read(ctx, "/b", "$"); !errors.Is(err, socketio.ErrRecovery) {
		t.Errorf("read after $: %v, want an offset error", err)
	}
}

// TestStreamLogReadCancel: a Read waiting for entries returns when its
// ctx ends, well before its XREAD's BLOCK would.
func TestStreamLogReadCancel(t *testing.T) {
	name := "sg-test-" + uid(8)
	l := newStreamLog(t, StreamLogOptions{Options: Options{ClientName: name}})
	ctx := waitCtx(t)
	h, _ := l.Head(ctx, "/")
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := l.Read(rctx, "/", h)
		done <- err
	}()
	// Wait until it blocks in XREAD.
	rc := admin(t)
	for {
		list, err := rc.Do(ctx, rc.B().ClientList().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(list, "name="+name+" ") && strings.Contains(list, "cmd=xread") {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("read returned before it blocked: %v", err)
		case <-ctx.Done():
			t.Fatal("no XREAD blocked")
		case <-time.After(5 * time.Millisecond):
		}
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("read returned %v after cancel", d)
		}
	case <-time.After(readBlock):
		t.Fatal("read did not return on cancel")
	}
	// The log still works: the blocked connection was released.
	x, _ := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["x"]`)})
	if es, upTo, err := l.Read(ctx, "/", h); err != nil || len(es) != 1 || upTo != x {
		t.Errorf("read after a cancelled one: %+v, %s, %v", es, upTo, err)
	}
}

// TestStreamLogReadWakes: a Read waiting for entries returns the one
// another log appends.
func TestStreamLogReadWakes(t *testing.T) {
	l1 := newStreamLog(t, StreamLogOptions{})
	l2 := newStreamLog(t, StreamLogOptions{Options: Options{Key: l1.opts.Key}, StreamName: l1.opts.StreamName})
	ctx := waitCtx(t)
	h, _ := l1.Head(ctx, "/")
	type read struct {
		es   []socketio.LogEntry
		upTo string
		err  error
	}
	done := make(chan read, 1)
	go func() {
		es, upTo, err := l1.Read(ctx, "/", h)
		done <- read{es, upTo, err}
	}()
	x, err := l2.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["x"]`)})
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.es) != 1 || r.es[0].Offset != x || r.upTo != x {
		t.Errorf("read: %+v", r)
	}
}

// TestStreamLogGaps: entries dropped before they were read or replayed
// are reported as expired, whether our trim dropped them (recorded) or
// Node's XADD MAXLEN ~ did (not recorded: found by the floor entry being
// gone).
func TestStreamLogGaps(t *testing.T) {
	t.Run("OurTrim", func(t *testing.T) {
		l := newStreamLog(t, StreamLogOptions{MaxEntries: 10})
		ctx := waitCtx(t)
		h, _ := l.Head(ctx, "/")
		var offs []string
		for i := range 30 {
			o, err := l.Append(ctx, "/", socketio.LogEntry{Data: fmt.Appendf(nil, `["e",%d]`, i)})
			if err != nil {
				t.Fatal(err)
			}
			offs = append(offs, o)
		}
		es, upTo, err := l.Read(ctx, "/", h)
		if reason(err) != socketio.RecoveryExpired || len(es) == 0 || len(es) > 11 || upTo != offs[29] || es[len(es)-1].Offset != offs[29] {
			t.Errorf("read from the start: %d entries up to %s, %v; want the last ones up to %s, expired", len(es), upTo, err, offs[29])
		}
		if es, upTo, err := l.Read(ctx, "/", offs[25]); err != nil || len(es) != 4 || upTo != offs[29] {
			t.Errorf("read after a kept one: %d up to %s, %v", len(es), upTo, err)
		}
	})
	t.Run("NodeTrim", func(t *testing.T) {
		l := newStreamLog(t, StreamLogOptions{})
		ctx := waitCtx(t)
		h, _ := l.Head(ctx, "/")
		var offs []string
		for i := range 20 {
			o, err := l.Append(ctx, "/", socketio.LogEntry{Rooms: []string{"r"}, Data: fmt.Appendf(nil, `["e",%d]`, i)})
			if err != nil {
				t.Fatal(err)
			}
			offs = append(offs, o)
		}
		rc := admin(t)
		if err := rc.Do(ctx, rc.B().Xtrim().Key(l.opts.StreamName).Maxlen().Threshold("5").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		for _, after := range []string{h, offs[3], offs[14]} {
			if _, err := l.Range(ctx, "/", after, "", "s", []string{"r"}); reason(err) != socketio.RecoveryExpired {
				t.Errorf("range after %s, trimmed: %v, want expired", after, err)
			}
			es, upTo, err := l.Read(ctx, "/", after)
			if reason(err) != socketio.RecoveryExpired || len(es) != 5 || es[0].Offset != offs[15] || upTo != offs[19] {
				t.Errorf("read after %s, trimmed: %d entries up to %s, %v; want 5 up to %s, expired", after, len(es), upTo, err, offs[19])
			}
		}
		if es, err := l.Range(ctx, "/", offs[15], "", "s", []string{"r"}); err != nil || len(es) != 4 {
			t.Errorf("range after a kept one: %d, %v", len(es), err)
		}
		sv := socketio.SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, LastSent: offs[3], Head: offs[19]}
		if err := l.Save(ctx, sv); err != nil {
			t.Fatal(err)
		}
		r := socketio.RestoreRequest{Namespace: "/", PID: "p", Key: "k", Offset: offs[2], MaxMessages: 100, MaxBytes: 1 << 20}
		if _, err := l.Restore(ctx, r); reason(err) != socketio.RecoveryExpired {
			t.Errorf("restore needing trimmed entries: %v, want expired", err)
		}
		sv.LastSent, sv.Head = offs[16], offs[17]
		l.Save(ctx, sv)
		r.Offset = offs[16]
		if res, err := l.Restore(ctx, r); err != nil || len(res.Missed) != 2 || res.Missed[0].Offset != offs[18] {
			t.Errorf("restore after kept ones: %+v, %v", res, err)
		}
	})
}

func reason(err error) socketio.RecoveryReason {
	var re *socketio.RecoveryError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// TestStreamLogACL: a StreamLog works as a Redis user confined to the
// commands and keys of the package documentation.
func TestStreamLogACL(t *testing.T) {
	rc := admin(t)
	user := "sgtest-" + uid(6)
	acl := "ACL SETUSER " + user + " on >pw resetkeys ~socket.io* -@all +evalsha +eval +xadd +xrange +xrevrange +xtrim +xlen +xinfo|stream +xsetid +exists +xread +set +get +getdel +del +client|unblock +ping +hello +auth +client|setname"
	if err := rc.Do(waitCtx(t), rc.B().Arbitrary(strings.Fields(acl)...).Build()).Error(); err != nil {
		t.Fatalf("%s: %v", acl, err)
	}
	t.Cleanup(func() { rc.Do(context.Background(), rc.B().AclDeluser().Username(user).Build()) })
	u := strings.Replace(redisURL(t), "redis://", "redis://"+user+":pw@", 1)
	l := newStreamLog(t, StreamLogOptions{Options: Options{URL: u}, MaxEntries: 5})
	ctx := waitCtx(t)
	h, err := l.Head(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for range 10 {
		if last, err = l.Append(ctx, "/", socketio.LogEntry{Rooms: []string{"r"}, Data: []byte(`["e"]`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, upTo, err := l.Read(ctx, "/", h); reason(err) != socketio.RecoveryExpired || upTo != last {
		t.Errorf("read: up to %s, %v", upTo, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := l.Read(rctx, "/", last); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read at the end: %v, want the deadline", err)
	}
	sv := socketio.SavedSocket{Namespace: "/", PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, LastSent: last, Head: last}
	if err := l.Save(ctx, sv); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Restore(ctx, socketio.RestoreRequest{Namespace: "/", PID: "p", Key: "k", Offset: last, MaxMessages: 10, MaxBytes: 1 << 20}); err != nil {
		t.Errorf("restore: %v", err)
	}
	if _, err := l.Range(ctx, "/", last, "", "s", nil); err != nil {
		t.Errorf("range: %v", err)
	}
	if err := l.Forget(ctx, "/", "p"); err != nil {
		t.Errorf("forget: %v", err)
	}
	// The read cancelled above was unblocked (CLIENT UNBLOCK), not left
	// blocked for its 5 s: one more read at the end returns the next entry.
	done := make(chan error, 1)
	go func() {
		_, _, err := l.Read(ctx, "/", last)
		done <- err
	}()
	if _, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["e"]`)}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("read: %v", err)
	}
	// Nothing was denied, in the scripts or to rueidis (whose CLIENT
	// UNBLOCK of a cancelled read would fail silently).
	entries, err := rc.Do(ctx, rc.B().AclLog().Count(100).Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		m, _ := e.AsMap()
		nm, om := m["username"], m["object"]
		name, _ := nm.ToString()
		object, _ := om.ToString()
		if name == user && object != "cluster|slots" { // rueidis probes for a cluster, and falls back
			t.Errorf("denied to the ACL user: %s", object)
		}
	}
}

// BenchmarkDecodeStreamData: decoding one entry's data, which every node
// does for each entry of its namespaces it reads.
func BenchmarkDecodeStreamData(b *testing.B) {
	for _, c := range []struct{ name, data string }{{"JSON", nodeJSON}, {"msgpack", nodeBinary}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := decodeStreamData(c.data, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
