package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

func TestParseSessionRoomsErrors(t *testing.T) {
	tests := []struct{ list, want string }{
		{"org:{orgId", `template "org:{orgId": unbalanced braces: { at byte 4 is not closed`},
		{"org:orgId}", `template "org:orgId}": unbalanced braces: } at byte 9 without a {`},
		{"org:{a{b}}", `template "org:{a{b}}": unbalanced braces: { at byte 4 is not closed`},
		{"org:{}", `template "org:{}": empty path at byte 4`},
		{"org:{ }", `template "org:{ }": empty path at byte 4`},
		{"org:{a..b}", `template "org:{a..b}": path "a..b" has an empty segment`},
		{"org:{.a}", `template "org:{.a}": path ".a" has an empty segment`},
		{"org:{a},,t:{b}", `template 2 of the list is empty`},
		{"org:{a},", `template 2 of the list is empty`},
		{"user:{orgId}", `template "user:{orgId}": its rooms could start with "user:", which only the user's own room may`},
		{"user:admins", `template "user:admins": its rooms could start with "user:", which only the user's own room may`},
		{"{orgId}", `template "{orgId}": its rooms could start with "user:", which only the user's own room may`},
		{"us{x}", `template "us{x}": its rooms could start with "user:", which only the user's own room may`},
		{"org:{a}, {b}:x", `template "{b}:x": its rooms could start with "user:", which only the user's own room may`},
		{strings.Repeat("a{b},", 16) + "a{b}", `17 templates, at most 16`},
	}
	for _, tt := range tests {
		r, err := ParseSessionRooms(tt.list)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSessionRooms(%q) = %v, %v; want error %s", tt.list, r, err, tt.want)
		}
	}
	for _, ok := range []string{"", " ", "org:{orgId}", "user", "users:{x}", "{{user:{x}}}", "u-{x}", strings.Repeat("a{b},", 15) + "a{b}"} {
		if _, err := ParseSessionRooms(ok); err != nil {
			t.Errorf("ParseSessionRooms(%q): %v", ok, err)
		}
	}
	if r, _ := ParseSessionRooms("  "); r != nil || r.Len() != 0 || r.String() != "" {
		t.Errorf("an empty list parses to %v, want nil", r)
	}
}

func TestRenderSessionRooms(t *testing.T) {
	const sess = `{"cookie":{"expires":"2030-01-01T00:00:00.000Z"},"passport":{"user":"42","team":"red","profile":{"tier":3}},
		"orgId":42,"ratio":0.5,"big":12345678901234567890,"exp":1e3,"neg":-7,
		"admin":true,"beta":false,"none":null,"empty":"","list":[1,2],"obj":{"a":1},
		"dotted":{"a.b":"no"},"odd":"a b,c:{}","uni":"Zürich"}`
	tests := []struct {
		templates string
		want      []string
	}{
		{"org:{orgId}", []string{"org:42"}},
		{"team:{passport.team}", []string{"team:red"}},
		{"tier:{passport.profile.tier}", []string{"tier:3"}},
		{"r:{ratio},b:{big},e:{exp},n:{neg}", []string{"b:12345678901234567890", "e:1e3", "n:-7", "r:0.5"}},
		{"admin:{admin},beta:{beta}", []string{"admin:true", "beta:false"}},
		{"org:{orgId}:team:{passport.team}", []string{"org:42:team:red"}},
		{"x:{orgId}{passport.team}-{admin}!", []string{"x:42red-true!"}},
		{"esc:{{{orgId}}}", []string{"esc:{42}"}},
		{"lit:{{orgId}}", []string{"lit:{orgId}"}},
		{"everyone", []string{"everyone"}},
		{"org:{ orgId }", []string{"org:42"}},
		// Nothing for a missing path, null, "", an object, an array, or a
		// path through a scalar.
		{"m:{missing},n:{none},e:{empty},l:{list},o:{obj},p:{passport},s:{orgId.x},d:{dotted.a.b}", nil},
		{"org:{orgId},m:{missing}", []string{"org:42"}},
		{"org:{orgId}-{missing}", nil},
		{"odd:{odd},uni:{uni}", []string{"odd:a b,c:{}", "uni:Zürich"}},
		{"a:{orgId}, a:{orgId} ,b", []string{"a:42", "b"}},
	}
	for _, tt := range tests {
		r, err := ParseSessionRooms(tt.templates)
		if err != nil {
			t.Fatalf("ParseSessionRooms(%q): %v", tt.templates, err)
		}
		got, tooLong := r.Render([]byte(sess))
		if !slices.Equal(got, tt.want) || tooLong != nil {
			t.Errorf("%q renders %q (too long %v), want %q", tt.templates, got, tooLong, tt.want)
		}
	}

	r, _ := ParseSessionRooms("org:{orgId}")
	for _, bad := range []string{``, `null`, `[1]`, `"s"`, `{"orgId":`, `{"orgId":1}x`} {
		if got, _ := r.Render([]byte(bad)); got != nil {
			t.Errorf("Render(%q) = %q, want nothing", bad, got)
		}
	}
	var nilRooms *SessionRooms
	if got, _ := nilRooms.Render([]byte(sess)); got != nil {
		t.Errorf("nil SessionRooms renders %q", got)
	}
}

func TestRenderSessionRoomTooLong(t *testing.T) {
	r, err := ParseSessionRooms("t:{name},org:{orgId}")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{MaxSessionRoomLen - 2, MaxSessionRoomLen - 1} {
		data := fmt.Appendf(nil, `{"name":%q,"orgId":1}`, strings.Repeat("é", n/2)+strings.Repeat("x", n%2))
		got, tooLong := r.Render(data)
		fits := 2+n <= MaxSessionRoomLen
		if fits && (len(got) != 2 || tooLong != nil) || !fits && (!slices.Equal(got, []string{"org:1"}) || len(tooLong) != 1 || tooLong[0].Template != "t:{name}" || tooLong[0].Len != 2+n) {
			t.Errorf("a %d-byte room: rooms %q, too long %+v", 2+n, got, tooLong)
		}
	}
}

func TestRoomDiff(t *testing.T) {
	leave, join := roomDiff([]string{"a", "c", "d"}, []string{"b", "c", "e"})
	if !slices.Equal(leave, []string{"a", "d"}) || !slices.Equal(join, []string{"b", "e"}) {
		t.Errorf("roomDiff = %q, %q", leave, join)
	}
	if leave, join := roomDiff(nil, nil); leave != nil || join != nil {
		t.Errorf("roomDiff(nil, nil) = %q, %q", leave, join)
	}
}

// FuzzSessionRooms: parsing never panics; what parses renders rooms that
// are sorted, distinct, at most MaxSessionRoomLen bytes, and never a user
// room; String parses back to the same templates.
func FuzzSessionRooms(f *testing.F) {
	for _, seed := range []struct{ list, data string }{
		{"org:{orgId},team:{passport.team}", `{"orgId":42,"passport":{"team":"red"}}`},
		{"x:{a}{b}", `{"a":"user:","b":1}`},
		{"esc:{{{a}}}", `{"a":true}`},
		{"u{a}", `{"a":"ser:1"}`},
		{"{a}", `{"a":"user:1"}`},
		{"a:{b.c.d}", `{"b":{"c":{"d":null}}}`},
		{"a:{b", `{}`},
		{"}}{{", `[]`},
		{"a:{x},,", `{"x":1e400}`},
	} {
		f.Add(seed.list, seed.data)
	}
	f.Fuzz(func(t *testing.T, list, data string) {
		r, err := ParseSessionRooms(list)
		if err != nil {
			if r != nil {
				t.Fatal("a parse error with templates")
			}
			return
		}
		if r.Len() > MaxSessionRoomTemplates {
			t.Fatalf("%d templates", r.Len())
		}
		again, err := ParseSessionRooms(r.String())
		if err != nil || again.String() != r.String() {
			t.Fatalf("String %q parses to %v, %v", r.String(), again, err)
		}
		rooms, _ := r.Render([]byte(data))
		if !slices.IsSorted(rooms) || len(slices.Compact(slices.Clone(rooms))) != len(rooms) {
			t.Fatalf("rooms %q not sorted and distinct", rooms)
		}
		for _, room := range rooms {
			if len(room) > MaxSessionRoomLen || strings.HasPrefix(room, userRoomPrefix) {
				t.Fatalf("room %q from %q", room, list)
			}
		}
	})
}

// orgSession is a session row of user 42 with the given orgId JSON ("" for
// none).
// orgSaver returns a function that saves sid's row with orgSession(org,
// expire): a test moves the session from org to org with it.
func orgSaver(t *testing.T, db interface {
	SaveSession(context.Context, *sessiongate.Session) error
}, sid string, expire time.Time) func(org string) {
	return func(org string) {
		t.Helper()
		if err := db.SaveSession(context.Background(), &sessiongate.Session{ID: sid, Data: orgSession(org, expire), Expire: expire}); err != nil {
			t.Fatal(err)
		}
	}
}

func orgSession(orgID string, expire time.Time) []byte {
	org := ""
	if orgID != "" {
		org = `,"orgId":` + orgID
	}
	return fmt.Appendf(nil, `{"cookie":{"originalMaxAge":3600000,"expires":%q},"passport":{"user":"42"}%s}`,
		expresssession.ISOString(expire), org)
}

// registrations returns the ids of ns's sockets as the gateway registers
// them: its OnConnect handler runs first (Attach added it).
func registrations(ns *socketio.Namespace) <-chan string {
	ch := make(chan string, 64)
	ns.OnConnect(func(s *socketio.Socket) { ch <- s.ID() })
	return ch
}

// registered waits for the next id of ch.
func registered(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case id := <-ch:
		return id
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a socket to be registered")
		return ""
	}
}

// roomsOf returns the rooms of ns's socket id, sorted, without its own.
func roomsOf(ns *socketio.Namespace, id string) []string {
	socks := ns.Sockets(id)
	if len(socks) != 1 {
		return nil
	}
	rooms := slices.DeleteFunc(socks[0].Rooms(), func(r string) bool { return r == id })
	slices.Sort(rooms)
	return rooms
}

// httptestServer serves srv until the test ends and returns its URL.
func httptestServer(t *testing.T, srv *socketio.Server) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return hs.URL
}

// socketIDs returns the ids of ns's sockets in room, sorted.
func socketIDs(ns *socketio.Namespace, room string) []string {
	var ids []string
	for _, s := range ns.Sockets(room) {
		ids = append(ids, s.ID())
	}
	slices.Sort(ids)
	return ids
}

// TestSessionRoomsMove: the sockets of a session join org:<orgId> before
// CONNECT; when a check reads a row whose orgId changed, both sockets leave
// org:1 and join org:2, an unchanged session's socket stays, and a row
// without an orgId leaves the room without joining another.
func TestSessionRoomsMove(t *testing.T) {
	db := openSQLite(t)
	rooms, err := ParseSessionRooms("org:{orgId}, plan:{plan}")
	if err != nil {
		t.Fatal(err)
	}
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: db, Audit: audit, SessionRooms: rooms, CheckInterval: time.Hour, RefreshThreshold: -1})
	ns, url := serve(t, g)
	regs := registrations(ns)
	ctx := context.Background()
	expire := time.Now().Add(time.Hour)

	save := func(sid, org string) {
		t.Helper()
		if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: orgSession(org, expire), Expire: expire}); err != nil {
			t.Fatal(err)
		}
	}
	moved := expresssession.NewSessionID()
	save(moved, "1")
	stays := expresssession.NewSessionID()
	save(stays, "1")

	var clients []*siotest.Client
	ids := map[string]string{}
	for i, sid := range []string{moved, moved, stays} {
		c := dial(t, url, browser{cookie: cookieHeader(sid), transport: []string{siotest.Websocket, siotest.Polling}[i%2]})
		id, err := c.Connected(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if reg := registered(t, regs); reg != id {
			t.Fatalf("registered %s, want %s", reg, id)
		}
		clients = append(clients, c)
		ids[fmt.Sprint(i)] = id
	}
	all := []string{ids["0"], ids["1"], ids["2"]}
	slices.Sort(all)
	if got := socketIDs(ns, "org:1"); !slices.Equal(got, all) {
		t.Fatalf("org:1 holds %q, want every socket %q", got, all)
	}

	save(moved, "2")
	g.checkSessions(ctx, g.liveHashes(), false)
	movedIDs := []string{ids["0"], ids["1"]}
	slices.Sort(movedIDs)
	if got := socketIDs(ns, "org:2"); !slices.Equal(got, movedIDs) {
		t.Errorf("org:2 holds %q, want the moved session's sockets %q", got, movedIDs)
	}
	if got := socketIDs(ns, "org:1"); !slices.Equal(got, []string{ids["2"]}) {
		t.Errorf("org:1 holds %q, want only the unchanged session's %s", got, ids["2"])
	}
	// Delivery follows: an emit to org:1, then one to org:2, reach the
	// moved sockets with only the second.
	if err := ns.To("org:1").Emit(ctx, "to_org", 1); err != nil {
		t.Fatal(err)
	}
	if err := ns.To("org:2").Emit(ctx, "to_org", 2); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		wctx, cancel := context.WithTimeout(ctx, waitTimeout)
		ev, err := c.WaitEvent(wctx, "to_org")
		cancel()
		want := []string{"2", "2", "1"}[i]
		if err != nil || len(ev.Args) != 1 || string(ev.Args[0]) != want {
			t.Errorf("client %d: first to_org %v %s, want %s", i, err, ev.Args, want)
		}
	}
	ev := audit.waitFor(t, "rooms changed", func(ev sessiongate.AuditEvent) bool {
		return ev.Action == sessiongate.ActionRoomsChanged && ev.SocketID == ids["0"]
	})
	if ev.Details != "left: org:1; joined: org:2" || ev.UserID != "42" || ev.SessionHash != sessiongate.ShortHash(moved) || ev.Severity != sessiongate.SeverityInfo {
		t.Errorf("audit %+v", ev)
	}

	// An unchanged row moves nothing; a row that lost its orgId leaves
	// org:2 for no other room; a second session room comes with a plan.
	g.checkSessions(ctx, g.liveHashes(), false)
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: moved, Data: []byte(strings.Replace(string(orgSession("", expire)), `}}`, `},"plan":"pro"}`, 1)), Expire: expire}); err != nil {
		t.Fatal(err)
	}
	g.checkSessions(ctx, g.liveHashes(), false)
	if got := socketIDs(ns, "org:2"); got != nil {
		t.Errorf("org:2 holds %q after orgId went away", got)
	}
	if got := socketIDs(ns, "plan:pro"); !slices.Equal(got, movedIDs) {
		t.Errorf("plan:pro holds %q, want %q", got, movedIDs)
	}
	for _, id := range movedIDs {
		if got := roomsOf(ns, id); !slices.Equal(got, []string{"plan:pro", "user:42"}) {
			t.Errorf("socket %s rooms %q", id, got)
		}
	}
	for i, c := range clients {
		stillConnected(t, fmt.Sprint("client ", i), c)
	}
	changes := 0
	audit.mu.Lock()
	for _, ev := range audit.events {
		if ev.Action == sessiongate.ActionRoomsChanged {
			changes++
		}
	}
	audit.mu.Unlock()
	// Written in the background: at least the first move's two are in.
	if changes < 2 {
		t.Errorf("%d SOCKET_ROOMS_CHANGED records, want at least 2", changes)
	}
}

// failingJoins is a MemoryAdapter whose AddAll fails while fail is set.
type failingJoins struct {
	*socketio.MemoryAdapter
	fail chan struct{} // closed: AddAll succeeds again
}

func (a *failingJoins) AddAll(ctx context.Context, id string, rooms []string) error {
	select {
	case <-a.fail:
		return a.MemoryAdapter.AddAll(ctx, id, rooms)
	default:
	}
	if slices.Contains(rooms, "org:2") {
		return fmt.Errorf("bus down")
	}
	return a.MemoryAdapter.AddAll(ctx, id, rooms)
}

// TestSessionRoomsJoinFails: a join that fails (a cluster bus down) leaves
// the socket in neither room and is retried at the next check, though the
// row did not change again.
func TestSessionRoomsJoinFails(t *testing.T) {
	db := openSQLite(t)
	rooms, _ := ParseSessionRooms("org:{orgId}")
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), SessionRooms: rooms, CheckInterval: time.Hour, RefreshThreshold: -1})
	ad := &failingJoins{fail: make(chan struct{})}
	srv := socketio.NewServer(socketio.Options{NewAdapter: func(m *socketio.MemoryAdapter) socketio.Adapter {
		ad.MemoryAdapter = m
		return ad
	}})
	ns := srv.Of("/")
	g.Attach(ns)
	regs := registrations(ns)
	hs := httptestServer(t, srv)
	ctx := context.Background()
	expire := time.Now().Add(time.Hour)
	sid := expresssession.NewSessionID()
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: orgSession("1", expire), Expire: expire}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, hs, browser{cookie: cookieHeader(sid)})
	id := registered(t, regs)
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: orgSession("2", expire), Expire: expire}); err != nil {
		t.Fatal(err)
	}
	g.checkSessions(ctx, g.liveHashes(), false)
	if got := roomsOf(ns, id); !slices.Equal(got, []string{"user:42"}) {
		t.Errorf("after a failed join the socket is in %q, want neither org room", got)
	}
	close(ad.fail)
	g.checkSessions(ctx, g.liveHashes(), false)
	if got := roomsOf(ns, id); !slices.Equal(got, []string{"org:2", "user:42"}) {
		t.Errorf("after the retry the socket is in %q, want org:2", got)
	}
	stillConnected(t, "client", c)
}

// TestSessionRoomsBeforeConnect: a broadcast to the session room made as
// soon as the client sees CONNECT reaches it (the room was joined before).
func TestSessionRoomsBeforeConnect(t *testing.T) {
	db := openSQLite(t)
	rooms, _ := ParseSessionRooms("org:{orgId},team:{passport.user}")
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), SessionRooms: rooms})
	ns, url := serve(t, g)
	ctx := context.Background()
	expire := time.Now().Add(time.Hour)
	sid := expresssession.NewSessionID()
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: orgSession("7", expire), Expire: expire}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, url, browser{cookie: cookieHeader(sid)})
	id, err := c.Connected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.To("org:7").Emit(ctx, "hello", "org"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	ev, err := c.WaitEvent(wctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Args[0]) != `"org"` {
		t.Errorf("hello %s", ev.Args)
	}
	if got, want := roomsOf(ns, id), []string{"org:7", "team:42", "user:42"}; !slices.Equal(got, want) {
		t.Errorf("rooms %q, want %q", got, want)
	}
}

// TestSessionRoomsNewTabLeads: a new socket of a session whose row changed
// since its other sockets joined (no check ran meanwhile) starts in the new
// rooms, and its registration moves the older sockets too: the sockets of a
// session follow the newest read of its row.
func TestSessionRoomsNewTabLeads(t *testing.T) {
	db := openSQLite(t)
	rooms, _ := ParseSessionRooms("org:{orgId}")
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), SessionRooms: rooms, CheckInterval: time.Hour, RefreshThreshold: -1})
	ns, url := serve(t, g)
	regs := registrations(ns)
	ctx := context.Background()
	expire := time.Now().Add(time.Hour)
	sid := expresssession.NewSessionID()
	save := orgSaver(t, db, sid, expire)
	save("1")
	dial(t, url, browser{cookie: cookieHeader(sid)})
	old := registered(t, regs)
	save("2")
	dial(t, url, browser{cookie: cookieHeader(sid), transport: siotest.Polling})
	tab := registered(t, regs)
	want := []string{old, tab}
	slices.Sort(want)
	if got := socketIDs(ns, "org:2"); !slices.Equal(got, want) {
		t.Errorf("org:2 holds %q, want both sockets %q", got, want)
	}
	if got := socketIDs(ns, "org:1"); got != nil {
		t.Errorf("org:1 still holds %q", got)
	}
	// A check that reads the same row moves nothing more.
	g.checkSessions(ctx, g.liveHashes(), false)
	if got := socketIDs(ns, "org:2"); !slices.Equal(got, want) {
		t.Errorf("after a check org:2 holds %q", got)
	}
}

// A room a socket holds both as a session room and by subscribe stays
// while either holds it: the session moving away does not end the
// subscription, and unsubscribe cannot leave a room the session holds.
func TestSessionRoomAlsoSubscribed(t *testing.T) {
	db := openSQLite(t)
	rooms, err := ParseSessionRooms("org:{orgId}")
	if err != nil {
		t.Fatal(err)
	}
	public, err := ParseRoomPatterns("org:*")
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), SessionRooms: rooms, PublicRooms: public, CheckInterval: time.Hour, RefreshThreshold: -1})
	ns, url := serve(t, g)
	regs := registrations(ns)
	ctx := context.Background()
	expire := time.Now().Add(time.Hour)
	sid := expresssession.NewSessionID()
	save := orgSaver(t, db, sid, expire)
	save("1")
	c := dial(t, url, browser{cookie: cookieHeader(sid), transport: siotest.Websocket})
	id, err := c.Connected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if reg := registered(t, regs); reg != id {
		t.Fatalf("registered %s, want %s", reg, id)
	}
	ack := func(event, room string) string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		args, err := c.EmitWithAck(wctx, event, map[string]any{"room": room})
		if err != nil || len(args) != 1 {
			t.Fatalf("%s %s: %v %s", event, room, err, args)
		}
		return string(args[0])
	}
	// Subscribed to org:2, then the session moves into it and out again:
	// the subscription keeps it.
	if got := ack("subscribe", "org:2"); got != `{"ok":true}` {
		t.Fatalf("subscribe org:2: %s", got)
	}
	save("2")
	g.checkSessions(ctx, g.liveHashes(), false)
	save("3")
	g.checkSessions(ctx, g.liveHashes(), false)
	if got := socketIDs(ns, "org:2"); !slices.Equal(got, []string{id}) {
		t.Errorf("org:2 holds %q after the session left it, want the subscribed socket", got)
	}
	if got := socketIDs(ns, "org:3"); !slices.Equal(got, []string{id}) {
		t.Errorf("org:3 holds %q, want the socket", got)
	}
	// org:3 is the session's: unsubscribe cannot leave it, even after a
	// subscribe to it.
	if got := ack("subscribe", "org:3"); got != `{"ok":true}` {
		t.Fatalf("subscribe org:3: %s", got)
	}
	if got := ack("unsubscribe", "org:3"); !strings.Contains(got, `"FORBIDDEN"`) {
		t.Errorf("unsubscribe of a session room: %s, want FORBIDDEN", got)
	}
	if got := socketIDs(ns, "org:3"); !slices.Equal(got, []string{id}) {
		t.Errorf("org:3 holds %q after the refused unsubscribe, want the socket", got)
	}
	// org:2 is only subscribed: unsubscribe leaves it.
	if got := ack("unsubscribe", "org:2"); got != `{"ok":true}` {
		t.Errorf("unsubscribe org:2: %s", got)
	}
	if got := socketIDs(ns, "org:2"); len(got) != 0 {
		t.Errorf("org:2 holds %q after unsubscribe", got)
	}
}
