package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/socketio"
)

// TestRevocationPostgres ends sessions through PostgreSQL's notifications:
// each socket must get session_expired with the reason and be disconnected
// within 1 second of the commit.
func TestRevocationPostgres(t *testing.T) {
	db, _ := openPostgres(t)
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: db, Revocations: db, Audit: audit})
	run(t, g)
	_, url := serve(t, g)

	ctx := context.Background()
	tests := []struct {
		reason sessiongate.EndReason
		end    func(sid string) error
	}{
		{sessiongate.EndRevoked, func(sid string) error { return db.DeleteSession(ctx, sid) }},
		{sessiongate.EndLoggedOut, func(sid string) error {
			// What passport's logout saves before the row is destroyed.
			exp := time.Now().Add(time.Hour)
			return db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: []byte(`{"cookie":{"originalMaxAge":3600000,"expires":"` + expresssession.ISOString(exp) + `"},"passport":{}}`), Expire: exp})
		}},
		{sessiongate.EndExpired, func(sid string) error {
			exp := time.Now().Add(-time.Second)
			return db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: sessionJSON("42", exp), Expire: exp})
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			sid, cookie := saveSession(t, db, "42", time.Now().Add(time.Hour))
			clients := map[string]*siotest.Client{}
			for _, tr := range []string{siotest.Polling, siotest.Websocket} {
				clients[tr] = dial(t, url, browser{cookie: cookie, transport: tr})
				connected(t, clients[tr])
			}
			committed := time.Now()
			if err := tt.end(sid); err != nil {
				t.Fatal(err)
			}
			for c, client := range clients {
				_, d := ended(t, client, string(tt.reason))
				latency := d.Received.Sub(committed)
				t.Logf("%s %s: io server disconnect %v after the commit", tt.reason, c, latency)
				if latency > time.Second {
					t.Errorf("%s: ended %v after the commit, want within 1s", c, latency)
				}
			}
			ev := audit.waitFor(t, "session expired", func(ev sessiongate.AuditEvent) bool {
				return ev.Action == sessiongate.ActionSessionExpired && ev.SessionHash == sessiongate.ShortHash(sid)
			})
			if ev.Details != string(tt.reason) || ev.Severity != sessiongate.SeverityInfo || ev.UserID != "42" {
				t.Errorf("audit %+v, want SOCKET_SESSION_EXPIRED INFO %s", ev, tt.reason)
			}
		})
	}
	if n := g.Stats().SessionsEnded; n[sessiongate.EndRevoked] != 1 || n[sessiongate.EndLoggedOut] != 1 || n[sessiongate.EndExpired] != 1 {
		t.Errorf("SessionsEnded = %v, want one of each", n)
	}
}

// watchCounter passes a feed through, counting the resyncs it delivers
// after the first. The first, which the feed sends once its first LISTEN is
// up, is held back and announced on listening: its check of every live
// session may run at any time before the test's unnotified DELETE, or after
// it under load, and then it, not the resync the test provokes, would end
// the socket. The tests wait for listening before they delete.
type watchCounter struct {
	sessiongate.RevocationFeed
	resyncs   atomic.Int64
	once      sync.Once
	listening chan struct{}
}

func newWatchCounter(feed sessiongate.RevocationFeed) *watchCounter {
	return &watchCounter{RevocationFeed: feed, listening: make(chan struct{})}
}

func (w *watchCounter) WatchRevocations(ctx context.Context, fn func(sessiongate.Revocation)) error {
	return w.RevocationFeed.WatchRevocations(ctx, func(r sessiongate.Revocation) {
		if r.Resync {
			first := false
			w.once.Do(func() { first = true; close(w.listening) })
			if first {
				return
			}
			w.resyncs.Add(1)
		}
		fn(r)
	})
}

// awaitListening waits for the feed's first LISTEN.
func (w *watchCounter) awaitListening(t *testing.T) {
	t.Helper()
	select {
	case <-w.listening:
	case <-time.After(waitTimeout):
		t.Fatal("the revocation feed never listened")
	}
}

// TestResyncAfterListenerLoss deletes a row without any notification, then
// kills the listener's connection: the Resync that follows the reconnect
// must find the row gone and end the socket.
func TestResyncAfterListenerLoss(t *testing.T) {
	db, url := openPostgres(t)
	feed := newWatchCounter(db)
	g := newGateway(t, Config{Sessions: db, Revocations: feed, Audit: newRecordingAudit(nil)})
	run(t, g)
	_, srvURL := serve(t, g)
	sid, cookie := saveSession(t, db, "42", time.Now().Add(time.Hour))
	c := dial(t, srvURL, browser{cookie: cookie, transport: siotest.Polling})
	connected(t, c)
	feed.awaitListening(t) // a listener to terminate, and no resync before the DELETE

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The delete is missed, as one made while the listener is down would be:
	// with the replica role no trigger fires.
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM "Session" WHERE sid = $1`, sid); err != nil {
		t.Fatal(err)
	}
	var killed int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`,
		postgres.ListenerApplicationName).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no listener connection to terminate")
	}
	ended(t, c, string(sessiongate.EndRevoked))
	if feed.resyncs.Load() == 0 {
		t.Error("the socket ended without a Resync")
	}
}

// TestResyncAfterDatabaseRestart restarts a PostgreSQL server of the test's
// own under a live socket. The socket's row was deleted without a
// notification just before, as a row deleted while the listener is away
// would be: once the listener is back it must resync, find the row gone and
// end the socket. A handshake after the restart must succeed too (the
// pool's connections died with the server).
func TestResyncAfterDatabaseRestart(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{URL: cluster.URL, Table: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	feed := newWatchCounter(db)
	g := newGateway(t, Config{Sessions: db, Revocations: feed, Audit: newRecordingAudit(nil)})
	run(t, g)
	_, srvURL := serve(t, g)
	sid, cookie := saveSession(t, db, "42", time.Now().Add(time.Hour))
	_, laterCookie := saveSession(t, db, "43", time.Now().Add(time.Hour))
	c := dial(t, srvURL, browser{cookie: cookie})
	connected(t, c)
	feed.awaitListening(t)

	conn, err := pgx.Connect(ctx, cluster.URL)
	if err != nil {
		t.Fatal(err)
	}
	// With the replica role no trigger fires: the delete is missed.
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM "Session" WHERE sid = $1`, sid); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	before := feed.resyncs.Load()
	cluster.Stop(t)
	cluster.Start(t)
	ended(t, c, string(sessiongate.EndRevoked))
	if feed.resyncs.Load() == before {
		t.Error("the socket ended without a Resync")
	}
	connected(t, dial(t, srvURL, browser{cookie: laterCookie}))
}

// manualFeed is a RevocationFeed the test drives.
type manualFeed chan sessiongate.Revocation

func (f manualFeed) WatchRevocations(ctx context.Context, fn func(sessiongate.Revocation)) error {
	for {
		select {
		case r := <-f:
			fn(r)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failingReads fails Sessions while fail is positive, counting down.
type failingReads struct {
	sessiongate.SessionStore
	fail  atomic.Int64
	calls atomic.Int64
	read  chan struct{} // if set, gets a value at each read, when there is room
}

func (s *failingReads) Sessions(ctx context.Context, sids []string) (map[string]*sessiongate.Session, error) {
	s.calls.Add(1)
	select {
	case s.read <- struct{}{}:
	default:
	}
	if s.fail.Add(-1) >= 0 {
		return nil, errors.New("connection refused (the database is still starting)")
	}
	return s.SessionStore.Sessions(ctx, sids)
}

// TestResyncRetried sends a Resync while the store cannot be read: the
// scheduler must retry it until the store answers, and then end the socket
// whose row went away unannounced, without waiting for the next periodic
// check (an hour away here).
func TestResyncRetried(t *testing.T) {
	st := openSQLite(t)
	reads := &failingReads{SessionStore: st}
	feed := make(manualFeed)
	g := newGateway(t, Config{Sessions: reads, Revocations: feed, Audit: newRecordingAudit(nil), CheckInterval: time.Hour})
	run(t, g)
	_, url := serve(t, g)
	sid, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	c := dial(t, url, browser{cookie: cookie})
	connected(t, c)
	// The client sees CONNECT before the socket is registered (see
	// TestResyncDuringHandshake for that window).
	waitStats(t, g, func(s Stats) bool { return s.LiveSessions == 1 })
	if err := st.DeleteSession(context.Background(), sid); err != nil { // st's own feed is not watched
		t.Fatal(err)
	}
	reads.fail.Store(2)
	before := reads.calls.Load()
	feed <- sessiongate.Revocation{Resync: true}
	ended(t, c, string(sessiongate.EndRevoked))
	if n := reads.calls.Load() - before; n != 3 {
		t.Errorf("%d reads for the resync, want 3 (two failures, then the one that found the row gone)", n)
	}
}

// TestResyncDuringHandshake runs a resync after a handshake read its row
// but before its socket was registered, so the resync's list of live
// sessions misses it; the row goes away unannounced in between. The socket
// must be checked as it registers and ended, not left until the next
// periodic check (an hour away here).
func TestResyncDuringHandshake(t *testing.T) {
	st := openSQLite(t)
	reads := &failingReads{SessionStore: st, read: make(chan struct{}, 1)}
	feed := make(manualFeed)
	g := newGateway(t, Config{Sessions: reads, Revocations: feed, Audit: newRecordingAudit(nil), CheckInterval: time.Hour})
	run(t, g)
	ns, url := serve(t, g)
	// Runs after the gateway's hook (the row is read) and before the
	// socket is registered; holds client "a" there.
	authenticated := make(chan struct{})
	release := make(chan struct{})
	ns.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		s := ev.Socket
		if id, _ := IdentityOf(s); id.UserID == "42" {
			close(authenticated)
			select {
			case <-release:
			case <-ctx.Done(): // the server closed (the test failed)
			}
		}
		return socketio.ConnectReply{}, nil
	})
	// Another live session, so that the resync reads the store and the test
	// can tell it has taken its list.
	otherSID, _ := saveSession(t, st, "7", time.Now().Add(time.Hour))
	addLive(g, otherSID, "7", time.Now().Add(time.Hour))

	sid, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	c := dial(t, url, browser{cookie: cookie})
	<-authenticated
	if err := st.DeleteSession(context.Background(), sid); err != nil { // st's own feed is not watched
		t.Fatal(err)
	}
	select { // forget the handshakes' reads
	case <-reads.read:
	default:
	}
	feed <- sessiongate.Revocation{Resync: true}
	<-reads.read // the resync has taken its list once it reads
	close(release)
	ended(t, c, string(sessiongate.EndRevoked))
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.live[sessiongate.SessionHash(sid)]; ok {
		t.Error("the revoked session is still live")
	}
}

// TestExpiryBetweenChecks ends a session when its known expiry passes, with
// no notification and no periodic check due.
func TestExpiryBetweenChecks(t *testing.T) {
	st := openSQLite(t)
	g := newGateway(t, Config{Sessions: st, Audit: newRecordingAudit(nil), CheckInterval: time.Hour, RefreshThreshold: -1})
	run(t, g)
	_, url := serve(t, g)
	sid, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	c := dial(t, url, browser{cookie: cookie})
	connected(t, c)
	waitStats(t, g, func(s Stats) bool { return s.LiveSessions == 1 })

	// The row's expiry moves closer without any notification (as a Node app
	// with a shorter maxAge would); a check learns it, and the scheduler then
	// ends the session at that time, not at the next check an hour away.
	expire := time.Now().Add(time.Second)
	if err := st.SaveSession(context.Background(), &sessiongate.Session{ID: sid, Data: sessionJSON("42", expire), Expire: expire}); err != nil {
		t.Fatal(err)
	}
	g.checkSessions(context.Background(), g.liveHashes(), false)
	ev, _ := ended(t, c, string(sessiongate.EndExpired))
	late := ev.Received.Sub(expire)
	t.Logf("ended %v after the expiry", late)
	// Not a latency target (that is the benchmarks' job): anything short of
	// the hour to the next check shows the scheduler acted on the expiry;
	// the bound is loose so that a loaded machine does not fail it.
	if late < 0 || late > 5*time.Second {
		t.Errorf("ended %v after the expiry, want within [0, 5s]", late)
	}
}

// TestEndSession ends a session in process, as the embedded login's logout
// does.
func TestEndSession(t *testing.T) {
	st := openSQLite(t)
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: st, Audit: audit})
	_, url := serve(t, g)
	sid, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	r := startClients(t, url, false,
		clientSpec{Name: "a", Cookie: cookie, ExpectEnd: string(sessiongate.EndLoggedOut)},
		clientSpec{Name: "b", Cookie: cookie, Transports: []string{"websocket"}, ExpectEnd: string(sessiongate.EndLoggedOut)},
		clientSpec{Name: "c", Cookie: cookie, Transports: []string{"polling"}, ExpectEnd: string(sessiongate.EndLoggedOut)},
	)
	r.waitFor("a", "connect")
	r.waitFor("b", "connect")
	r.waitFor("c", "connect")
	waitStats(t, g, func(s Stats) bool { return s.Connections == 3 && s.LiveSessions == 1 })
	g.EndSession(context.Background(), sid, sessiongate.EndLoggedOut)
	r.finish()
	waitStats(t, g, func(s Stats) bool { return s.Connections == 0 && s.LiveSessions == 0 })
	audit.waitFor(t, "expired", action(sessiongate.ActionSessionExpired, string(sessiongate.EndLoggedOut)))
}

// waitStats waits until ok holds for g.Stats(), polling: the counters have
// no change notification.
func waitStats(t *testing.T, g *Gateway, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !ok(g.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; stats %+v", g.Stats())
		}
		<-tick.C
	}
}

func TestShutdown(t *testing.T) {
	st := openSQLite(t)
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: st, Audit: audit})
	runDone := make(chan error, 1)
	go func() { runDone <- g.Run(context.Background()) }()
	_, url := serve(t, g)
	_, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	clients := map[string]*siotest.Client{}
	for _, tr := range []string{siotest.Polling, siotest.Websocket} {
		clients[tr] = dial(t, url, browser{cookie: cookie, transport: tr})
		connected(t, clients[tr])
	}
	waitStats(t, g, func(s Stats) bool { return s.Connections == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := g.Shutdown(ctx, 2500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Errorf("Run returned %v after Shutdown, want nil", err)
	}
	for c, client := range clients {
		ev, _ := ended(t, client, EventServerRestart)
		var payload struct {
			RetryAfterMs *int64 `json:"retryAfterMs"`
		}
		if len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &payload) != nil || payload.RetryAfterMs == nil || *payload.RetryAfterMs != 2500 {
			t.Errorf("%s: server_restart %s, want retryAfterMs 2500", c, ev.Args)
		}
	}
	// Shutdown flushed the audit trail, disconnections included.
	audit.mu.Lock()
	n := 0
	for _, ev := range audit.events {
		if ev.Action == sessiongate.ActionDisconnect {
			n++
		}
	}
	audit.mu.Unlock()
	if n != 2 {
		t.Errorf("%d disconnect audit events written by Shutdown, want 2", n)
	}
}

// addLive registers a live session without sockets, as the monitor sees
// one.
func addLive(g *Gateway, sid, userID string, expire time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := &liveSession{sid: sid, userID: userID, hash: sessiongate.SessionHash(sid), short: sessiongate.ShortHash(sid), sockets: map[*socketio.Socket]*conn{}}
	g.live[l.hash] = l
	g.setExpireLocked(l, expire)
}

// TestBatchedChecks re-validates 1,200 live sessions: three Sessions calls
// of at most 500 ids, one refresh call per batch that has sessions to
// refresh, and the right sessions ended.
func TestBatchedChecks(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			counting := &countingStore{SessionStore: st}
			now := time.Now().UTC().Truncate(time.Millisecond)
			clk := &clock{now: now}
			audit := newRecordingAudit(nil)
			g := newGateway(t, Config{Sessions: counting, Audit: audit, Now: clk.Now})

			const n = 1200
			var (
				mu                                   sync.Mutex
				revoked, loggedOut, expired, refresh []string
			)
			setUp := func(i int) error {
				sid := expresssession.NewSessionID()
				userID := fmt.Sprint(i)
				expire := now.Add(time.Hour)
				user := userID
				var list *[]string
				switch i % 100 {
				case 3:
					list = &revoked
				case 7:
					list, expire = &refresh, now.Add(time.Minute) // within the threshold
				case 9:
					list, user = &loggedOut, ""
				case 11:
					list, expire = &expired, now.Add(-time.Second)
				}
				addLive(g, sid, userID, now.Add(time.Hour))
				if list != nil {
					mu.Lock()
					*list = append(*list, sid)
					mu.Unlock()
					if list == &revoked {
						return nil // no row
					}
				}
				return st.SaveSession(context.Background(), &sessiongate.Session{ID: sid, Data: sessionJSON(user, expire), Expire: expire})
			}
			// Rows are written by a few goroutines: one at a time is slow.
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for w := range 8 {
				wg.Go(func() {
					for i := w; i < n; i += 8 {
						if err := setUp(i); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			g.checkSessions(context.Background(), g.liveHashes(), false)

			if c := counting.sessionsCalls.Load(); c != 3 {
				t.Errorf("%d Sessions calls for %d sessions, want 3", c, n)
			}
			if m := counting.maxBatch.Load(); m > batchSize {
				t.Errorf("a Sessions call had %d ids, want at most %d", m, batchSize)
			}
			if c := counting.refreshCalls.Load(); c < 1 || c > 3 {
				t.Errorf("%d RefreshSessions calls, want one per batch with sessions to refresh", c)
			}
			st2 := g.Stats()
			if st2.SessionCheckBatches != 3 || st2.SessionsChecked != n {
				t.Errorf("stats: %d batches, %d checked; want 3, %d", st2.SessionCheckBatches, st2.SessionsChecked, n)
			}
			want := map[sessiongate.EndReason]uint64{
				sessiongate.EndRevoked:   uint64(len(revoked)),
				sessiongate.EndLoggedOut: uint64(len(loggedOut)),
				sessiongate.EndExpired:   uint64(len(expired)),
			}
			for reason, k := range want {
				if st2.SessionsEnded[reason] != k {
					t.Errorf("SessionsEnded[%s] = %d, want %d", reason, st2.SessionsEnded[reason], k)
				}
			}
			if st2.Refreshes != uint64(len(refresh)) {
				t.Errorf("Refreshes = %d, want %d", st2.Refreshes, len(refresh))
			}
			if got, want := st2.LiveSessions, int64(n-len(revoked)-len(loggedOut)-len(expired)); int64(len(g.liveHashes())) != want {
				t.Errorf("%d live sessions (stat %d), want %d", len(g.liveHashes()), got, want)
			}
			for _, sid := range refresh {
				row, err := st.Session(context.Background(), sid)
				if err != nil {
					t.Fatal(err)
				}
				if d := row.Expire.Sub(now.Add(DefaultRefreshExtend)); d < -time.Second || d > time.Second {
					t.Errorf("refreshed expire %v, want now+24h", row.Expire)
				}
			}
		})
	}
}

// TestRefresh drives one check with an injected clock and verifies the
// refreshed row: expire and sess.cookie.expires moved together, every other
// byte of the JSON kept.
func TestRefresh(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			clk := &clock{now: now}
			audit := newRecordingAudit(nil)
			g := newGateway(t, Config{Sessions: st, Audit: audit, Now: clk.Now})

			expire := now.Add(10 * time.Minute)
			sid, _ := saveSession(t, st, "42", expire)
			addLive(g, sid, "42", expire)
			before, err := st.Session(context.Background(), sid)
			if err != nil {
				t.Fatal(err)
			}

			// Outside the threshold: nothing moves.
			g.checkSessions(context.Background(), g.liveHashes(), false)
			if g.Stats().Refreshes != 0 {
				t.Fatal("refreshed a session 10 minutes from its expiry")
			}
			// Six minutes later it is within the 5 minute threshold.
			clk.Set(now.Add(6 * time.Minute))
			g.checkSessions(context.Background(), g.liveHashes(), false)
			if g.Stats().Refreshes != 1 {
				t.Fatalf("Refreshes = %d, want 1", g.Stats().Refreshes)
			}
			after, err := st.Session(context.Background(), sid)
			if err != nil {
				t.Fatal(err)
			}
			wantExpire := clk.Now().Add(DefaultRefreshExtend)
			if d := after.Expire.Sub(wantExpire); d < -time.Second || d > time.Second {
				t.Errorf("expire %v, want %v", after.Expire, wantExpire)
			}
			var sess struct {
				Cookie struct {
					Expires time.Time `json:"expires"`
				} `json:"cookie"`
			}
			if err := json.Unmarshal(after.Data, &sess); err != nil {
				t.Fatal(err)
			}
			if d := sess.Cookie.Expires.Sub(after.Expire); d < -time.Second || d > time.Second {
				t.Errorf("sess.cookie.expires %v and expire %v disagree", sess.Cookie.Expires, after.Expire)
			}
			rest, err := expresssession.SetCookieExpires(before.Data, sess.Cookie.Expires)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != string(after.Data) {
				t.Errorf("JSON beyond cookie.expires changed:\nbefore %s\nafter  %s", before.Data, after.Data)
			}
			ev := audit.waitFor(t, "refreshed", func(ev sessiongate.AuditEvent) bool { return ev.Action == sessiongate.ActionSessionRefreshed })
			if ev.SessionHash != sessiongate.ShortHash(sid) || ev.UserID != "42" || ev.Severity != sessiongate.SeverityInfo {
				t.Errorf("audit %+v", ev)
			}
			// The scheduler now expects the new expiry.
			if next, ok := g.nextExpiry(); !ok || !next.Equal(wantExpire.Add(-maxRefreshLead)) {
				t.Errorf("next look %v, %v; want %v", next, ok, wantExpire.Add(-maxRefreshLead))
			}
		})
	}
}

// TestExpireDue checks the expiry heap with an injected clock: a session is
// ended exactly when its known expiry has passed, and not before; a session
// whose row moved its expiry meanwhile is kept.
func TestExpireDue(t *testing.T) {
	st, _ := openPostgres(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	clk := &clock{now: now}
	g := newGateway(t, Config{Sessions: st, Audit: newRecordingAudit(nil), Now: clk.Now, RefreshThreshold: -1})

	soon := now.Add(2 * time.Second)
	ending, _ := saveSession(t, st, "1", soon)
	touched, _ := saveSession(t, st, "2", soon)
	later, _ := saveSession(t, st, "3", now.Add(time.Hour))
	for i, sid := range []string{ending, touched, later} {
		row, err := st.Session(context.Background(), sid)
		if err != nil {
			t.Fatal(err)
		}
		addLive(g, sid, fmt.Sprint(i+1), row.Expire)
	}
	// The Node app touches the second session: its row moves, the gateway's
	// known expiry does not.
	moved := now.Add(time.Hour)
	if err := st.SaveSession(context.Background(), &sessiongate.Session{ID: touched, Data: sessionJSON("2", moved), Expire: moved}); err != nil {
		t.Fatal(err)
	}

	clk.Set(soon.Add(-time.Millisecond))
	g.expireDue(context.Background())
	if len(g.liveHashes()) != 3 {
		t.Fatal("a session ended before its expiry")
	}
	clk.Set(soon)
	g.expireDue(context.Background())
	live := map[string]bool{}
	for _, h := range g.liveHashes() {
		live[h] = true
	}
	if live[sessiongate.SessionHash(ending)] {
		t.Error("the session whose expiry passed is still live")
	}
	if !live[sessiongate.SessionHash(touched)] || !live[sessiongate.SessionHash(later)] {
		t.Error("a session that is still valid was ended")
	}
	if n := g.Stats().SessionsEnded[sessiongate.EndExpired]; n != 1 {
		t.Errorf("SessionsEnded[expired] = %d, want 1", n)
	}
	if next, ok := g.nextExpiry(); !ok || !next.Equal(moved) && !next.Equal(now.Add(time.Hour)) {
		t.Errorf("next expiry %v, want an hour on", next)
	}
}

// TestLastChanceRefresh: a session the periodic checks did not refresh
// (they run late, or it entered the threshold between two of them) gets a
// check of its own shortly before its expiry, and is refreshed, not ended.
func TestLastChanceRefresh(t *testing.T) {
	st := openSQLite(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	clk := &clock{now: now}
	counting := &countingStore{SessionStore: st}
	g := newGateway(t, Config{Sessions: counting, Audit: newRecordingAudit(nil), Now: clk.Now})
	expire := now.Add(time.Minute)
	sid, _ := saveSession(t, st, "42", expire)
	addLive(g, sid, "42", expire)

	clk.Set(expire.Add(-maxRefreshLead - time.Millisecond))
	g.expireDue(context.Background())
	if c := counting.sessionsCalls.Load(); c != 0 {
		t.Fatalf("%d checks before the last chance", c)
	}
	clk.Set(expire.Add(-maxRefreshLead))
	g.expireDue(context.Background())
	if c := counting.refreshCalls.Load(); c != 1 {
		t.Fatalf("%d refreshes at the last chance, want 1", c)
	}
	row, err := st.Session(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(DefaultRefreshExtend); row.Expire.Sub(want).Abs() > time.Second {
		t.Errorf("expire %v, want %v", row.Expire, want)
	}
	// The old expiry passes: nothing is due any more.
	clk.Set(expire.Add(time.Second))
	g.expireDue(context.Background())
	if len(g.liveHashes()) != 1 || g.Stats().SessionsEnded[sessiongate.EndExpired] != 0 {
		t.Error("the refreshed session was ended at its old expiry")
	}
}

// blockingStore holds every Session lookup until released.
type blockingStore struct {
	sessiongate.SessionStore
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Session(ctx context.Context, sid string) (*sessiongate.Session, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.SessionStore.Session(ctx, sid)
}

// TestEndDuringHandshake ends a session while a handshake is reading its
// row: the socket, admitted with what was read, must be ended as soon as it
// connects rather than outlive its session.
func TestEndDuringHandshake(t *testing.T) {
	st := openSQLite(t)
	blocking := &blockingStore{SessionStore: st, entered: make(chan struct{}), release: make(chan struct{})}
	g := newGateway(t, Config{Sessions: blocking, Audit: newRecordingAudit(nil)})
	_, url := serve(t, g)
	sid, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	c := dial(t, url, browser{cookie: cookie, transport: siotest.Polling})
	select {
	case <-blocking.entered:
	case <-time.After(waitTimeout):
		t.Fatal("no handshake reached the store")
	}
	g.EndSession(context.Background(), sid, sessiongate.EndLoggedOut)
	close(blocking.release)
	ended(t, c, string(sessiongate.EndLoggedOut))
	waitStats(t, g, func(s Stats) bool { return s.LiveSessions == 0 && s.Connections == 0 })
}

// TestSweep spreads 1,200 sessions over a 3 s interval: three batches a
// second apart, each session in exactly one per interval and in the same
// place the next interval; sessions that appear mid-interval wait for the
// next one.
func TestSweep(t *testing.T) {
	live := make([]string, 1200)
	for i := range live {
		live[i] = fmt.Sprintf("%064x", (i*7919)%1200) // unsorted, distinct
	}
	liveNow := func() []string { return slices.Clone(live) }
	sw := sweep{interval: 3 * time.Second}
	place := map[string]int{} // batch index in the first interval
	for interval := range 2 {
		seen := map[string]int{}
		var sizes []int
		for k := range 3 {
			batch, wait := sw.next(liveNow)
			if wait != time.Second {
				t.Fatalf("interval %d: wait %v, want 1s", interval, wait)
			}
			sizes = append(sizes, len(batch))
			for i, h := range batch {
				seen[h]++
				if p, ok := place[h]; interval == 0 {
					place[h] = k
				} else if ok && p != k {
					t.Errorf("%s moved from batch %d to %d", h, p, k)
				}
				if i > 0 && batch[i-1] >= h {
					t.Fatalf("batch not in hash order at %d", i)
				}
			}
		}
		if want := []int{batchSize, batchSize, len(live) - 2*batchSize}; !slices.Equal(sizes, want) {
			t.Errorf("interval %d: batch sizes %v, want %v", interval, sizes, want)
		}
		if len(seen) != len(live) {
			t.Errorf("interval %d: %d sessions checked, want %d", interval, len(seen), len(live))
		}
		for h, n := range seen {
			if n != 1 {
				t.Fatalf("interval %d: %s checked %d times", interval, h, n)
			}
		}
		if interval == 0 {
			live = append(live, strings.Repeat("f", 64)) // arrives now: checked from the next interval on
		}
	}
	// With nothing live, the sweep waits a whole interval between looks.
	empty := sweep{interval: time.Minute}
	if batch, wait := empty.next(func() []string { return nil }); len(batch) != 0 || wait != time.Minute {
		t.Errorf("no sessions: batch %d, wait %v; want none and 1m", len(batch), wait)
	}
}
