// Package recoverytest is the conformance suite of socketio.RecoveryLog
// implementations, as package adaptertest is of adapters: the in-memory
// MemoryLog and the Redis StreamLog (package redis) both run it. It checks
// only what the interface promises, through its methods: how a log counts
// bytes, what its offsets look like and how it bounds its memory are each
// log's own tests.
//
// What a log must provide for the suite:
//   - newLog(t, opts) returns an empty log of its own (no other test sees
//     its namespaces or saved sockets), whose window is opts.Window (the
//     default when zero), cleaned up by t.Cleanup;
//   - Log.Advance moves the log's clock forward by at least d: a test
//     clock for a log that has one, a wait for one that lives on a real
//     server's clock (the suite then keeps the window short).
package recoverytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// Options are what the suite asks of a new log.
type Options struct {
	// Window is the log's window; zero: the log's default (at least a
	// minute: the suite does not advance past it).
	Window time.Duration
}

// Log is a log under test and the way to move its time.
type Log struct {
	socketio.RecoveryLog
	// Advance moves the log's clock forward by at least d.
	Advance func(d time.Duration)
}

// ShortWindow is the window of the checks that let it pass: short, as a
// log on a real clock waits it out.
const ShortWindow = 300 * time.Millisecond

// Run runs the suite against the logs newLog returns.
func Run(t *testing.T, newLog func(t *testing.T, opts Options) Log) {
	checks := []struct {
		name string
		f    func(t *testing.T, l Log)
		opts Options
	}{
		{"Offsets", testOffsets, Options{}},
		{"Range", testRange, Options{}},
		{"Replay", testReplay, Options{}},
		{"SingleUse", testSingleUse, Options{}},
		{"Refusals", testRefusals, Options{}},
		{"Caps", testCaps, Options{}},
		{"Binary", testBinary, Options{}},
		{"Live", testLive, Options{}},
		{"WindowSocket", testWindowSocket, Options{Window: ShortWindow}},
		{"WindowEntries", testWindowEntries, Options{Window: ShortWindow}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			c.f(t, newLog(t, c.opts))
		})
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func appendN(t *testing.T, l Log, nsp string, rooms []string, n int) []string {
	t.Helper()
	var offs []string
	for i := range n {
		off, err := l.Append(ctxOf(t), nsp, socketio.LogEntry{Rooms: rooms, Data: fmt.Appendf(nil, `["e",%d]`, i)})
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	return offs
}

func add(t *testing.T, l Log, nsp string, rooms, except []string, data string) string {
	t.Helper()
	off, err := l.Append(ctxOf(t), nsp, socketio.LogEntry{Rooms: rooms, Except: except, Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func head(t *testing.T, l Log, nsp string) string {
	t.Helper()
	h, err := l.Head(ctxOf(t), nsp)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func save(t *testing.T, l Log, s socketio.SavedSocket) {
	t.Helper()
	if s.Namespace == "" {
		s.Namespace = "/"
	}
	if err := l.Save(ctxOf(t), s); err != nil {
		t.Fatal(err)
	}
}

// reason is the reason of a *RecoveryError, "" for nil, "other: ..." for
// another error.
func reason(err error) socketio.RecoveryReason {
	if err == nil {
		return ""
	}
	var re *socketio.RecoveryError
	if errors.As(err, &re) && errors.Is(err, socketio.ErrRecovery) {
		return re.Reason
	}
	return socketio.RecoveryReason("other: " + err.Error())
}

func restoreReq(pid, offset string) socketio.RestoreRequest {
	return socketio.RestoreRequest{Namespace: "/", PID: pid, Key: "k", Offset: offset, MaxMessages: 1000, MaxBytes: 1 << 20}
}

func datas(es []socketio.LogEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, string(e.Data))
	}
	return out
}

func offsets(es []socketio.LogEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Offset)
	}
	return out
}

// testOffsets: each append of a namespace gets a new offset, later in
// Range's order; Head is the last one; namespaces do not share them.
func testOffsets(t *testing.T, l Log) {
	ctx := ctxOf(t)
	h0 := head(t, l, "/")
	hb := head(t, l, "/b")
	offs := appendN(t, l, "/", nil, 3)
	if h := head(t, l, "/"); h != offs[2] {
		t.Errorf("head %s, want the last offset %s", h, offs[2])
	}
	if len(slices.Compact(slices.Clone(offs))) != 3 || slices.Contains(offs, h0) {
		t.Errorf("offsets %v after head %s: not distinct", offs, h0)
	}
	got, err := l.Range(ctx, "/", h0, "", "s", nil)
	if err != nil || !slices.Equal(offsets(got), offs) {
		t.Errorf("range from the first head: %v, %v; want %v", offsets(got), err, offs)
	}
	if !slices.Equal(datas(got), []string{`["e",0]`, `["e",1]`, `["e",2]`}) {
		t.Errorf("range data %v", datas(got))
	}
	got, err = l.Range(ctx, "/", offs[0], "", "s", nil)
	if err != nil || !slices.Equal(offsets(got), offs[1:]) {
		t.Errorf("range after the first: %v, %v", offsets(got), err)
	}
	more := appendN(t, l, "/", nil, 1)
	got, err = l.Range(ctx, "/", offs[2], "", "s", nil)
	if err != nil || !slices.Equal(offsets(got), more) {
		t.Errorf("a later append: %v, %v; want %v after %v", offsets(got), err, more, offs)
	}
	if h := head(t, l, "/b"); h != hb {
		t.Errorf("appends to / moved the head of /b: %s, was %s", h, hb)
	}
	got, err = l.Range(ctx, "/b", hb, "", "s", nil)
	if err != nil || len(got) != 0 {
		t.Errorf("range of /b: %v, %v; want none", offsets(got), err)
	}
}

// testRange: Range keeps the entries in (after, until) that reach the
// socket, and refuses an offset that is not the log's.
func testRange(t *testing.T, l Log) {
	ctx := ctxOf(t)
	h0 := head(t, l, "/")
	a := add(t, l, "/", []string{"r"}, nil, `["a"]`)
	b := add(t, l, "/", []string{"s"}, nil, `["b"]`)      // to its id
	add(t, l, "/", []string{"other"}, nil, `["c"]`)       // not for it
	add(t, l, "/", nil, []string{"r"}, `["d"]`)           // excluded by a room
	add(t, l, "/", []string{"r"}, []string{"s"}, `["e"]`) // excluded by its id
	f := add(t, l, "/", nil, nil, `["f"]`)                // to all
	g := add(t, l, "/", []string{"x", "r"}, []string{"y"}, `["g"]`)
	got, err := l.Range(ctx, "/", h0, "", "s", []string{"r"})
	if want := []string{`["a"]`, `["b"]`, `["f"]`, `["g"]`}; err != nil || !slices.Equal(datas(got), want) {
		t.Errorf("range: %v, %v; want %v", datas(got), err, want)
	}
	if err == nil && !slices.Equal(offsets(got), []string{a, b, f, g}) {
		t.Errorf("offsets %v", offsets(got))
	}
	got, err = l.Range(ctx, "/", a, f, "s", []string{"r"})
	if err != nil || !slices.Equal(datas(got), []string{`["b"]`, `["f"]`}) {
		t.Errorf("range (a, f]: %v, %v", datas(got), err)
	}
	got, err = l.Range(ctx, "/", a, b, "s", []string{"r"})
	if err != nil || !slices.Equal(datas(got), []string{`["b"]`}) {
		t.Errorf("range (a, b]: %v, %v; want b", datas(got), err)
	}
	got, err = l.Range(ctx, "/", b, b, "s", []string{"r"})
	if err != nil || len(got) != 0 {
		t.Errorf("range (b, b]: %v, %v; want none", datas(got), err)
	}
	if _, err := l.Append(ctx, "/", socketio.LogEntry{Data: []byte(`["v"]`), Volatile: true}); err != nil {
		t.Fatal(err)
	}
	got, err = l.Range(ctx, "/", g, "", "s", []string{"r"})
	if err != nil || len(got) != 0 {
		t.Errorf("range after g, a volatile entry only: %v, %v; want none", datas(got), err)
	}
	for _, bad := range []string{"", "bad", "garbage-offset", a + "x"} {
		if _, err := l.Range(ctx, "/", bad, "", "s", nil); reason(err) != socketio.RecoveryOffset {
			t.Errorf("range after %q: %v, want offset", bad, err)
		}
	}
	if _, err := l.Range(ctx, "/", h0, "bad", "s", nil); reason(err) != socketio.RecoveryOffset {
		t.Errorf("range until a bad offset: %v, want offset", err)
	}
}

// testReplay: a restore replays what reached the socket after its offset
// up to LastSent (lost in flight) and after Head (sent after the drop).
func testReplay(t *testing.T, l Log) {
	var offs []string
	a := func(rooms, except []string, data string) { offs = append(offs, add(t, l, "/", rooms, except, data)) }
	a([]string{"r"}, nil, `["a"]`)     // received
	a([]string{"s"}, nil, `["b"]`)     // lost in flight (to its id)
	a([]string{"other"}, nil, `["c"]`) // not for it
	a(nil, []string{"r"}, `["d"]`)     // excluded
	a([]string{"r"}, nil, `["e"]`)     // lost in flight: LastSent
	a([]string{"r"}, nil, `["f"]`)     // after LastSent, up to Head: did not reach it
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, State: []byte(`{"n":1}`), LastSent: offs[4], Head: offs[5]})
	a(nil, nil, `["g"]`)                          // after the drop, to all
	a([]string{"x", "r"}, []string{"y"}, `["h"]`) // after the drop
	a([]string{"r"}, []string{"s"}, `["i"]`)      // after the drop, excluding it
	res, err := l.Restore(ctxOf(t), restoreReq("p", offs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := datas(res.Missed), []string{`["b"]`, `["e"]`, `["g"]`, `["h"]`}; !slices.Equal(got, want) {
		t.Errorf("missed %v, want %v", got, want)
	}
	if got, want := offsets(res.Missed), []string{offs[1], offs[4], offs[6], offs[7]}; !slices.Equal(got, want) {
		t.Errorf("missed offsets %v, want %v", got, want)
	}
	s := res.Socket
	if res.Head != offs[len(offs)-1] || s.ID != "s" || s.PID != "p" || s.Namespace != "/" || s.Key != "k" ||
		!slices.Equal(s.Rooms, []string{"r"}) || string(s.State) != `{"n":1}` || s.LastSent != offs[4] || s.Head != offs[5] {
		t.Errorf("result %+v", res)
	}
	// Nothing in flight: only what came after Head.
	save(t, l, socketio.SavedSocket{PID: "q", ID: "s", Key: "k", Rooms: []string{"r"}, LastSent: offs[4], Head: offs[6]})
	res, err = l.Restore(ctxOf(t), restoreReq("q", offs[4]))
	if got := datas(res.Missed); err != nil || !slices.Equal(got, []string{`["h"]`}) {
		t.Errorf("nothing in flight: %v, %v; want [h]", got, err)
	}
	// Until bounds the replay (what a node of a SharedLog has delivered);
	// volatile entries are never replayed.
	if _, err := l.Append(ctxOf(t), "/", socketio.LogEntry{Rooms: []string{"r"}, Data: []byte(`["vol"]`), Volatile: true}); err != nil {
		t.Fatal(err)
	}
	j := add(t, l, "/", []string{"r"}, nil, `["j"]`)
	k := add(t, l, "/", []string{"r"}, nil, `["k"]`)
	save(t, l, socketio.SavedSocket{PID: "u", ID: "s", Key: "k", Rooms: []string{"r"}, LastSent: offs[4], Head: offs[6]})
	r := restoreReq("u", offs[4])
	r.Until = j
	res, err = l.Restore(ctxOf(t), r)
	if got := datas(res.Missed); err != nil || !slices.Equal(got, []string{`["h"]`, `["j"]`}) || res.Head != j {
		t.Errorf("until j: %v, head %q, %v; want [h j], head %q", got, res.Head, err, j)
	}
	got, err := l.Range(ctxOf(t), "/", j, "", "s", []string{"r"})
	if err != nil || !slices.Equal(datas(got), []string{`["k"]`}) || got[0].Offset != k {
		t.Errorf("range after j: %v, %v; want [k]", datas(got), err)
	}
}

// testLive: a live record (no LastSent; Head the offset of its CONNECT)
// is restored from any offset from Head on, with every entry after it that
// reaches the socket; an offset before Head is refused. A log that can
// Forget (a SharedLog) drops it.
func testLive(t *testing.T, l Log) {
	ctx := ctxOf(t)
	before := add(t, l, "/", nil, nil, `["before"]`)
	add(t, l, "/", nil, nil, `["connect"]`)
	h := head(t, l, "/")
	a := add(t, l, "/", []string{"r"}, nil, `["a"]`)
	add(t, l, "/", []string{"other"}, nil, `["no"]`)
	add(t, l, "/", []string{"s"}, nil, `["b"]`)
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, Head: h})
	add(t, l, "/", nil, nil, `["c"]`)
	if _, err := l.Restore(ctx, restoreReq("p", before)); reason(err) != socketio.RecoveryOffset {
		t.Errorf("an offset before its CONNECT: %v, want offset", err)
	}
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s", Key: "k", Rooms: []string{"r"}, Head: h})
	res, err := l.Restore(ctx, restoreReq("p", a))
	if got := datas(res.Missed); err != nil || !slices.Equal(got, []string{`["b"]`, `["c"]`}) {
		t.Errorf("live record from a: %v, %v; want [b c]", got, err)
	}
	f, ok := l.RecoveryLog.(interface {
		Forget(ctx context.Context, nsp, pid string) error
	})
	if !ok {
		return
	}
	save(t, l, socketio.SavedSocket{PID: "q", ID: "s", Key: "k", Rooms: []string{"r"}, Head: h})
	if err := f.Forget(ctx, "/", "q"); err != nil {
		t.Fatal(err)
	}
	if err := f.Forget(ctx, "/", "never"); err != nil {
		t.Errorf("forget an unknown pid: %v", err)
	}
	if _, err := l.Restore(ctx, restoreReq("q", h)); reason(err) != socketio.RecoveryUnknown {
		t.Errorf("forgotten: %v, want unknown", err)
	}
}

// testSingleUse: a saved socket is restored once; saving it again
// replaces it; sockets of other namespaces or pids are not it.
func testSingleUse(t *testing.T, l Log) {
	ctx := ctxOf(t)
	h := head(t, l, "/")
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s1", Key: "k", LastSent: h, Head: h})
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s2", Key: "k", LastSent: h, Head: h})
	r := restoreReq("p", h)
	r.Namespace = "/other"
	if _, err := l.Restore(ctx, r); reason(err) != socketio.RecoveryUnknown {
		t.Errorf("another namespace: %v, want unknown", err)
	}
	if _, err := l.Restore(ctx, restoreReq("q", h)); reason(err) != socketio.RecoveryUnknown || !errors.Is(err, socketio.ErrRecovery) {
		t.Errorf("unknown pid: %v", err)
	}
	res, err := l.Restore(ctx, restoreReq("p", h))
	if err != nil || res.Socket.ID != "s2" || len(res.Missed) != 0 || res.Head != h {
		t.Errorf("restore: %+v, %v; want the last saved, nothing missed", res, err)
	}
	if _, err := l.Restore(ctx, restoreReq("p", h)); reason(err) != socketio.RecoveryUnknown {
		t.Errorf("a second restore: %v, want unknown", err)
	}
	// Racing restores (two nodes, one client reconnecting twice): one wins.
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s3", Key: "k", LastSent: h, Head: h})
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 8 {
		wg.Go(func() {
			_, err := l.Restore(ctx, restoreReq("p", h))
			if err == nil {
				won.Add(1)
			} else if reason(err) != socketio.RecoveryUnknown {
				t.Errorf("a racing restore: %v, want unknown", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d racing restores succeeded, want 1", won.Load())
	}
}

// testRefusals: another key leaves the socket saved; a bad offset takes it.
func testRefusals(t *testing.T, l Log) {
	ctx := ctxOf(t)
	offs := appendN(t, l, "/", []string{"s"}, 3)
	sv := socketio.SavedSocket{PID: "p", ID: "s", Key: "k", LastSent: offs[1], Head: offs[1]}
	save(t, l, sv)
	r := restoreReq("p", offs[0])
	r.Key = "other"
	if _, err := l.Restore(ctx, r); reason(err) != socketio.RecoveryKey {
		t.Errorf("another key: %v, want key", err)
	}
	// Still there for its owner. An offset never sent to it: refused.
	if _, err := l.Restore(ctx, restoreReq("p", offs[2])); reason(err) != socketio.RecoveryOffset {
		t.Errorf("offset after LastSent: %v, want offset", err)
	}
	if _, err := l.Restore(ctx, restoreReq("p", offs[0])); reason(err) != socketio.RecoveryUnknown {
		t.Errorf("after a refused offset: %v, want unknown (taken)", err)
	}
	for _, bad := range []string{"garbage", "-", offs[0] + "0x"} {
		save(t, l, sv)
		if _, err := l.Restore(ctx, restoreReq("p", bad)); reason(err) != socketio.RecoveryOffset {
			t.Errorf("offset %q: %v, want offset", bad, err)
		}
	}
}

// testCaps: more to replay than MaxMessages or MaxBytes is an overflow.
func testCaps(t *testing.T, l Log) {
	ctx := ctxOf(t)
	offs := appendN(t, l, "/", []string{"s"}, 3)
	sv := socketio.SavedSocket{PID: "p", ID: "s", Key: "k", LastSent: offs[1], Head: offs[1]}
	save(t, l, sv)
	appendN(t, l, "/", []string{"s"}, 5) // 7 to replay from offs[0]: offs[1], offs[2] and these
	appendN(t, l, "/", []string{"elsewhere"}, 20)
	r := restoreReq("p", offs[0])
	r.MaxMessages = 6
	if _, err := l.Restore(ctx, r); reason(err) != socketio.RecoveryOverflow {
		t.Errorf("7 to replay, max 6: %v, want overflow", err)
	}
	save(t, l, sv)
	r.MaxMessages = 7
	if res, err := l.Restore(ctx, r); err != nil || len(res.Missed) != 7 {
		t.Errorf("7 to replay, max 7: %d, %v", len(res.Missed), err)
	}
	save(t, l, sv)
	r = restoreReq("p", offs[0])
	r.MaxBytes = 48 // each event is 7 bytes
	if _, err := l.Restore(ctx, r); reason(err) != socketio.RecoveryOverflow {
		t.Errorf("49 bytes, max 48: %v, want overflow", err)
	}
	save(t, l, sv)
	r.MaxBytes = 49
	if res, err := l.Restore(ctx, r); err != nil || len(res.Missed) != 7 {
		t.Errorf("49 bytes, max 49: %d, %v", len(res.Missed), err)
	}
}

// testBinary: attachments and empty selections come back as appended.
func testBinary(t *testing.T, l Log) {
	ctx := ctxOf(t)
	h := head(t, l, "/")
	e := socketio.LogEntry{Rooms: []string{"r", ""}, Except: []string{"x"}, Data: []byte(`["bin",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`),
		Attachments: [][]byte{{0, 1, 2, 255}, {}}}
	off, err := l.Append(ctx, "/", e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Range(ctx, "/", h, "", "s", []string{"r"})
	if err != nil || len(got) != 1 {
		t.Fatalf("range: %v, %v", got, err)
	}
	g := got[0]
	if g.Offset != off || string(g.Data) != string(e.Data) || !slices.Equal(g.Rooms, e.Rooms) || !slices.Equal(g.Except, e.Except) ||
		len(g.Attachments) != 2 || string(g.Attachments[0]) != string(e.Attachments[0]) || len(g.Attachments[1]) != 0 {
		t.Errorf("got %+v, want %+v", g, e)
	}
}

// testWindowSocket: a saved socket is not restored after the window.
func testWindowSocket(t *testing.T, l Log) {
	h := head(t, l, "/")
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s", Key: "k", LastSent: h, Head: h})
	l.Advance(ShortWindow + ShortWindow/2)
	_, err := l.Restore(ctxOf(t), restoreReq("p", h))
	if r := reason(err); r != socketio.RecoveryUnknown && r != socketio.RecoveryExpired {
		t.Errorf("after the window: %v, want unknown or expired", err)
	}
}

// testWindowEntries: entries older than the window are dropped, and a
// Range or Restore that needs one fails as expired; one that does not
// need them still works.
func testWindowEntries(t *testing.T, l Log) {
	ctx := ctxOf(t)
	offs := appendN(t, l, "/", []string{"s"}, 2)
	l.Advance(ShortWindow + ShortWindow/2)
	later := appendN(t, l, "/", []string{"s"}, 1)
	if _, err := l.Range(ctx, "/", offs[0], "", "s", nil); reason(err) != socketio.RecoveryExpired {
		t.Errorf("range needing a dropped entry: %v, want expired", err)
	}
	got, err := l.Range(ctx, "/", offs[1], "", "s", nil)
	if err != nil || !slices.Equal(offsets(got), later) {
		t.Errorf("range after the dropped ones: %v, %v; want %v", offsets(got), err, later)
	}
	// Saved now, sent offs[1], but the client has offs[0] only.
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s", Key: "k", LastSent: offs[1], Head: later[0]})
	if _, err := l.Restore(ctx, restoreReq("p", offs[0])); reason(err) != socketio.RecoveryExpired {
		t.Errorf("restore needing a dropped entry: %v, want expired", err)
	}
	save(t, l, socketio.SavedSocket{PID: "p", ID: "s", Key: "k", LastSent: offs[1], Head: later[0]})
	more := appendN(t, l, "/", []string{"s"}, 1)
	res, err := l.Restore(ctx, restoreReq("p", offs[1]))
	if err != nil || !slices.Equal(offsets(res.Missed), more) {
		t.Errorf("restore with nothing dropped needed: %v, %v; want %v", offsets(res.Missed), err, more)
	}
}
