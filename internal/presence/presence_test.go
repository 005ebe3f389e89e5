package presence

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a fake time, moved by the tests only.
type clock struct{ now time.Time }

func (c *clock) add(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

func newEngine(node string, c *clock, cfg Config) *Engine {
	cfg.Node = node
	e := New(cfg, c.now)
	e.Step(c.now) // the start's sync and empty state
	return e
}

// runUntil steps e at each of its deadlines up to until (the clock ends
// there), returning the events and gossip produced.
func runUntil(e *Engine, c *clock, until time.Time) (events []Event, gossip []Message) {
	for {
		next := e.Next()
		if next.After(until) {
			c.now = until
			return events, gossip
		}
		if next.After(c.now) {
			c.now = next
		}
		ev, g := e.Step(c.now)
		events = append(events, ev...)
		gossip = append(gossip, g...)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestCoalescedJoins(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{})
	e.Join("r", "alice", c.now)
	e.Join("r", "bob", c.add(100*time.Millisecond))
	if ev, _ := e.Step(c.add(300 * time.Millisecond)); len(ev) != 0 {
		t.Fatalf("event before the window ended: %+v", ev)
	}
	evs, _ := runUntil(e, c, t0.Add(2*time.Second))
	if len(evs) != 1 {
		t.Fatalf("events = %+v, want one", evs)
	}
	ev := evs[0]
	if got := sorted(ev.Joined); !slices.Equal(got, []string{"alice", "bob"}) || len(ev.Left) != 0 || ev.Count != 2 || ev.Local != 2 {
		t.Fatalf("event = %+v", ev)
	}
	if !c.now.After(t0.Add(500*time.Millisecond)) || ev.Truncated {
		t.Fatalf("event = %+v", ev)
	}
}

func TestJoinAndLeaveWithinWindowSaysNothing(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{})
	e.Join("r", "alice", c.now)
	e.Leave("r", "alice", c.add(100*time.Millisecond))
	if evs, _ := runUntil(e, c, t0.Add(time.Minute)); len(evs) != 0 {
		t.Fatalf("events = %+v", evs)
	}
	if st := e.Stats(); st.Rooms != 0 {
		t.Fatalf("room still tracked: %+v", st)
	}
}

func TestTabsAreOneMember(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{})
	e.Join("r", "alice", c.now)
	if evs, _ := runUntil(e, c, t0.Add(time.Second)); len(evs) != 1 {
		t.Fatalf("events = %+v", evs)
	}
	e.Join("r", "alice", c.add(time.Second)) // a second tab
	e.Leave("r", "alice", c.add(time.Second))
	if evs, _ := runUntil(e, c, c.now.Add(time.Minute)); len(evs) != 0 {
		t.Fatalf("a second tab, or closing one of two, said %+v", evs)
	}
	if s := e.Snapshot("r", "alice", 10); s.Count != 1 || s.Connections != 1 || !slices.Equal(s.Users, []string{"alice"}) {
		t.Fatalf("snapshot = %+v", s)
	}
}

func TestLeaveIsDebounced(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{LeaveDelay: 5 * time.Second})
	e.Join("r", "alice", c.now)
	e.Join("r", "bob", c.now)
	runUntil(e, c, t0.Add(time.Second))

	// A reload: gone and back within the delay.
	e.Leave("r", "alice", c.now)
	e.Join("r", "alice", c.add(3*time.Second))
	if evs, _ := runUntil(e, c, c.now.Add(time.Minute)); len(evs) != 0 {
		t.Fatalf("a reload said %+v", evs)
	}

	left := c.now
	e.Leave("r", "bob", left)
	if s := e.Snapshot("r", "", 10); s.Count != 2 || s.Connections != 1 {
		t.Fatalf("within the delay, snapshot = %+v", s)
	}
	evs, _ := runUntil(e, c, left.Add(time.Minute))
	if len(evs) != 1 || !slices.Equal(evs[0].Left, []string{"bob"}) || len(evs[0].Joined) != 0 || evs[0].Count != 1 {
		t.Fatalf("events = %+v", evs)
	}
	if s := e.Snapshot("r", "", 10); s.Count != 1 || !slices.Equal(s.Users, []string{"alice"}) {
		t.Fatalf("snapshot = %+v", s)
	}
}

func TestLeaveEventComesAfterTheDelay(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{LeaveDelay: 5 * time.Second})
	e.Join("r", "alice", c.now)
	runUntil(e, c, t0.Add(time.Second))
	left := c.now
	e.Leave("r", "alice", left)
	if next := e.Next(); next.Before(left.Add(5 * time.Second)) {
		// Other deadlines (the delta, a heartbeat) may come first, but no
		// event.
		if evs, _ := runUntil(e, c, left.Add(5*time.Second-time.Millisecond)); len(evs) != 0 {
			t.Fatalf("left announced before the delay: %+v", evs)
		}
	}
	evs, _ := runUntil(e, c, left.Add(6*time.Second))
	if len(evs) != 1 || !slices.Equal(evs[0].Left, []string{"alice"}) || evs[0].Count != 0 || evs[0].Local != 0 {
		t.Fatalf("events = %+v", evs)
	}
}

func TestListsAreCapped(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{MaxMembers: 3})
	for i := range 10 {
		e.Join("r", fmt.Sprint("u", i), c.now)
	}
	evs, _ := runUntil(e, c, t0.Add(time.Second))
	if len(evs) != 1 || len(evs[0].Joined) != 3 || !evs[0].Truncated || evs[0].Count != 10 {
		t.Fatalf("events = %+v", evs)
	}
	s := e.Snapshot("r", "u7", 3)
	if len(s.Users) != 3 || s.Users[0] != "u7" || !s.Truncated || s.Count != 10 || s.Connections != 10 {
		t.Fatalf("snapshot = %+v", s)
	}
}

func TestRoomsAreBounded(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{MaxRooms: 2})
	if !e.Join("r1", "a", c.now) || !e.Join("r2", "a", c.now) || e.Join("r3", "a", c.now) {
		t.Fatal("MaxRooms not applied")
	}
	e.Leave("r3", "a", c.now) // its join was refused: ignored
	if st := e.Stats(); st.Rooms != 2 || st.Dropped != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// deliver applies gossip to every engine but its sender's.
func deliver(now time.Time, gossip []Message, to ...*Engine) {
	for _, m := range gossip {
		wire := m.Encode()
		for _, e := range to {
			got, err := Decode(wire)
			if err != nil {
				panic(err)
			}
			e.Apply(got, now)
		}
	}
}

func TestTwoNodesMerge(t *testing.T) {
	c := &clock{t0}
	cfg := Config{LeaveDelay: 5 * time.Second, TTL: 30 * time.Second}
	a, b := newEngine("a", c, cfg), newEngine("b", c, cfg)
	a.Join("r", "alice", c.now)
	b.Join("r", "bob", c.now)
	b.Join("r", "bob", c.now)
	b.Join("r", "alice", c.now) // alice has tabs on both nodes

	evA, gA := runUntil(a, c, t0.Add(time.Second))
	c.now = t0
	evB, gB := runUntil(b, c, t0.Add(time.Second))
	deliver(c.now, gA, b)
	deliver(c.now, gB, a)
	if len(evA) != 1 || len(evB) != 1 {
		t.Fatalf("local events: %+v %+v", evA, evB)
	}
	for _, e := range []*Engine{a, b} {
		s := e.Snapshot("r", "", 10)
		if s.Count != 2 || s.Connections != 4 || !slices.Equal(sorted(s.Users), []string{"alice", "bob"}) {
			t.Fatalf("snapshot = %+v", s)
		}
	}
	evs, _ := runUntil(a, c, c.now.Add(2*time.Second))
	if len(evs) != 1 || !slices.Equal(evs[0].Joined, []string{"bob"}) || evs[0].Count != 2 {
		t.Fatalf("node a's events after b's gossip: %+v", evs)
	}

	// alice closes her tab on a: still on b, nobody is told.
	a.Leave("r", "alice", c.now)
	_, g := runUntil(a, c, c.now.Add(time.Second))
	deliver(c.now, g, b)
	evs, _ = runUntil(b, c, c.now.Add(time.Minute))
	if len(evs) != 0 {
		t.Fatalf("b's events = %+v", evs)
	}
	if s := b.Snapshot("r", "", 10); s.Count != 2 || s.Connections != 3 {
		t.Fatalf("b's snapshot = %+v", s)
	}
}

func TestDeadNodeExpires(t *testing.T) {
	c := &clock{t0}
	cfg := Config{LeaveDelay: 5 * time.Second, TTL: 30 * time.Second}
	a, b := newEngine("a", c, cfg), newEngine("b", c, cfg)
	a.Join("r", "alice", c.now)
	b.Join("r", "bob", c.now)

	// Both run for two minutes, a's gossip reaching b: alive.
	for c.now.Before(t0.Add(2 * time.Minute)) {
		next := minTime(a.Next(), b.Next())
		c.now = maxTime(c.now, next)
		_, g := a.Step(c.now)
		deliver(c.now, g, b)
		b.Step(c.now)
	}
	if s := b.Snapshot("r", "", 10); s.Count != 2 {
		t.Fatalf("alice expired while a was alive: %+v", s)
	}
	// a dies without a word.
	died := c.now
	var left time.Time
	for c.now.Before(died.Add(2 * time.Minute)) {
		c.now = maxTime(c.now, b.Next())
		evs, _ := b.Step(c.now)
		for _, ev := range evs {
			if slices.Equal(ev.Left, []string{"alice"}) {
				left = c.now
			}
		}
	}
	if left.IsZero() {
		t.Fatal("alice never left")
	}
	if d := left.Sub(died); d < 30*time.Second || d > 30*time.Second+5*time.Second+30*time.Second/4+time.Second {
		t.Fatalf("alice left %v after a died", d)
	}
	if st := b.Stats(); st.Nodes != 0 || st.Remote != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestByeAndSync(t *testing.T) {
	c := &clock{t0}
	cfg := Config{LeaveDelay: time.Second}
	a, b := newEngine("a", c, cfg), newEngine("b", c, cfg)
	a.Join("r", "alice", c.now)
	_, g := runUntil(a, c, t0.Add(time.Second))
	deliver(c.now, g, b)
	runUntil(b, c, c.now.Add(time.Second))

	// A new node asks; b answers with its state within a second, however
	// many ask.
	b.Join("r", "bob", c.now)
	runUntil(b, c, c.now.Add(time.Second))
	asked := c.now
	for range 5 {
		b.Apply(Message{Type: TypeSync, Node: "new"}, asked)
	}
	_, g = runUntil(b, c, asked.Add(time.Second))
	states := 0
	for _, m := range g {
		if m.Type == TypeState {
			states++
			if m.Rooms["r"]["bob"] != 1 || len(m.Rooms["r"]) != 1 {
				t.Fatalf("b's state = %+v", m)
			}
		}
	}
	if states != 1 {
		t.Fatalf("b sent %d states after the syncs: %+v", states, g)
	}

	deliver(c.now, []Message{a.Bye()}, b)
	if s := b.Snapshot("r", "", 10); s.Count != 2 || s.Connections != 1 {
		t.Fatalf("after the bye, within the delay: %+v", s)
	}
	evs, _ := runUntil(b, c, c.now.Add(3*time.Second))
	if len(evs) != 1 || !slices.Equal(evs[0].Left, []string{"alice"}) {
		t.Fatalf("events = %+v", evs)
	}
}

func TestReloadSendsNoDelta(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{})
	e.Join("r", "alice", c.now)
	runUntil(e, c, t0.Add(time.Second))
	e.Leave("r", "alice", c.now)
	e.Join("r", "alice", c.add(50*time.Millisecond))
	_, g := runUntil(e, c, c.now.Add(time.Second))
	for _, m := range g {
		if m.Type == TypeDelta {
			t.Fatalf("a reload within the window sent %+v", m)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	long := strings.Repeat("x", MaxRoomLen+1)
	for _, in := range []string{
		``, `null`, `[]`, `{"v":2,"t":"sync","node":"a"}`,
		`{"v":1,"t":"hello","node":"a"}`,
		`{"v":1,"t":"sync","node":""}`,
		`{"v":1,"t":"bye","node":"a","rooms":{"r":{"u":1}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"r":{"u":-1}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"r":{"u":1.5}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"user:1":{"u":1}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"r":{"":1}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"` + long + `":{"u":1}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"r":{"u":1}}`,
		strings.Repeat(" ", MaxMessage+1),
	} {
		if _, err := Decode(in); err == nil {
			t.Errorf("Decode(%.80q) accepted", in)
		}
	}
}

func TestLargeStateIsSplit(t *testing.T) {
	c := &clock{t0}
	e := newEngine("a", c, Config{MaxRooms: 100_000})
	user := strings.Repeat("u", 400)
	for i := range 3000 {
		e.Join(fmt.Sprint("room:", i), user, c.now)
	}
	msgs := e.state()
	if len(msgs) < 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	n := 0
	for _, m := range msgs {
		wire := m.Encode()
		if len(wire) > chunkSize+2048 {
			t.Fatalf("a message of %d bytes", len(wire))
		}
		got, err := Decode(wire)
		if err != nil {
			t.Fatal(err)
		}
		for _, users := range got.Rooms {
			n += len(users)
		}
	}
	if n != 3000 {
		t.Fatalf("%d entries", n)
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"t":"sync","node":"a"}`,
		`{"v":1,"t":"bye","node":"a"}`,
		`{"v":1,"t":"state","node":"a"}`,
		`{"v":1,"t":"delta","node":"9f2c","rooms":{"incident:7":{"42":2,"7":0}}}`,
		`{"v":1,"t":"state","node":"n","rooms":{"a":{"b":1},"c":{"d":1048576}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"r":{"u":1e3}}}`,
		`{"v":1,"t":"delta","node":"a","rooms":{"r":null}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := Decode(in)
		if err != nil {
			return
		}
		// What Decode accepts, an engine takes, and re-encodes the same.
		c := &clock{t0}
		e := New(Config{Node: "self"}, c.now)
		e.Apply(m, c.now)
		e.Step(c.add(time.Hour))
		again, err := Decode(m.Encode())
		if err != nil || again.Type != m.Type || again.Node != m.Node || len(again.Rooms) != len(m.Rooms) {
			t.Fatalf("re-encoded %+v: %+v, %v", m, again, err)
		}
	})
}

// TestDeployReconnectSaysNothing: node a goes away with a bye and its 500
// users reconnect to node b within the leave delay: b's rooms are told
// nothing, however many users moved.
func TestDeployReconnectSaysNothing(t *testing.T) {
	c := &clock{t0}
	cfg := Config{LeaveDelay: 5 * time.Second}
	a, b := newEngine("a", c, cfg), newEngine("b", c, cfg)
	b.Join("r", "watcher", c.now)
	for i := range 500 {
		a.Join("r", fmt.Sprint("u", i), c.now)
	}
	_, g := runUntil(a, c, t0.Add(time.Second))
	deliver(c.now, g, b)
	runUntil(b, c, c.now.Add(time.Second))
	if s := b.Snapshot("r", "", 1000); s.Count != 501 {
		t.Fatalf("before: %+v", s)
	}
	deliver(c.now, []Message{a.Bye()}, b)
	for i := range 500 {
		b.Join("r", fmt.Sprint("u", i), c.add(8*time.Millisecond)) // 4 s in all
	}
	if evs, _ := runUntil(b, c, c.now.Add(time.Minute)); len(evs) != 0 {
		t.Fatalf("the deploy said %d events, the first %+v", len(evs), evs[0])
	}
	if s := b.Snapshot("r", "", 1000); s.Count != 501 || s.Connections != 501 {
		t.Fatalf("after: %+v", s)
	}
}

func FuzzJSONLen(f *testing.F) {
	for _, s := range []string{"", "incident:7", "a\"b\\c", "<&>", "\u2028\u2029", "é\x00\n", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // the builder takes valid names only
		}
		b, _ := json.Marshal(s)
		if got := jsonLen(s); got < len(b)-2 {
			t.Fatalf("jsonLen(%q) = %d, encoded %d", s, got, len(b)-2)
		}
	})
}
