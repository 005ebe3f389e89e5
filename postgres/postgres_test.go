package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/storetest"
)

const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// openDB opens a migrated store on a fresh schema whose session table is
// "Session", to prove the name is quoted everywhere.
func openDB(t *testing.T) (db *DB, schema, url string) {
	t.Helper()
	schema, url = pgtest.Schema(t)
	db, err := Open(testCtx(t), Config{URL: url, Schema: schema, Table: "Session", MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(testCtx(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db, schema, url
}

// rawConn is a plain connection with the server's default settings, as the
// Node app's node-pg opens one.
func rawConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		db, _, _ := openDB(t)
		return db
	})
}

// listener runs WatchRevocations on db and reports what it delivers.
type listener struct {
	revs      chan sessiongate.Revocation
	listening chan uint32 // the backend pid, each time LISTEN succeeded
}

func startListener(t *testing.T, db *DB) *listener {
	t.Helper()
	l := &listener{revs: make(chan sessiongate.Revocation, 64), listening: make(chan uint32, 8)}
	db.testHookListening = func(pid uint32) { l.listening <- pid }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// The first delivery is the Resync that follows the first LISTEN
		// (sockets may predate the listener); the tests await what follows.
		first := true
		done <- db.WatchRevocations(ctx, func(r sessiongate.Revocation) {
			if first {
				first = false
				if !r.Resync {
					t.Errorf("first delivery %+v, want the initial Resync", r)
				}
				return
			}
			l.revs <- r
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchRevocations = %v, want context.Canceled", err)
		}
	})
	return l
}

func (l *listener) awaitListening(t *testing.T) uint32 {
	t.Helper()
	select {
	case pid := <-l.listening:
		return pid
	case <-testCtx(t).Done():
		t.Fatal("listener never listened")
		return 0
	}
}

// await returns the next revocation for sid or a Resync, skipping those of
// other sessions (the channel is shared by every schema of the database).
// It fails on a revocation for one of the unwanted sids.
func (l *listener) await(t *testing.T, sid string, unwanted ...string) sessiongate.Revocation {
	t.Helper()
	ctx := testCtx(t)
	for {
		select {
		case r := <-l.revs:
			if r.Resync || r.SessionHash == sessiongate.SessionHash(sid) {
				return r
			}
			for _, u := range unwanted {
				if r.SessionHash == sessiongate.SessionHash(u) {
					t.Fatalf("unexpected %+v for an unwanted session", r)
				}
			}
		case <-ctx.Done():
			t.Fatalf("no revocation for the session")
		}
	}
}

// TestTriggerOnConnectPgSimpleSQL issues connect-pg-simple's own statements,
// byte for byte, on a connection like node-pg's.
func TestTriggerOnConnectPgSimpleSQL(t *testing.T) {
	db, schema, url := openDB(t)
	l := startListener(t, db)
	l.awaitListening(t)
	c := rawConn(t, url)
	ctx := testCtx(t)
	table := pgx.Identifier{schema, "Session"}.Sanitize()
	var (
		set     = `INSERT INTO ` + table + ` (sess, expire, sid) SELECT $1, to_timestamp($2), $3 ON CONFLICT (sid) DO UPDATE SET sess=$1, expire=to_timestamp($2) RETURNING sid`
		touch   = `UPDATE ` + table + ` SET expire = to_timestamp($1) WHERE sid = $2 RETURNING sid`
		destroy = `DELETE FROM ` + table + ` WHERE sid = $1`
		prune   = `DELETE FROM ` + table + ` WHERE expire < to_timestamp($1)`
	)
	now := time.Now().Unix()
	sess := func(passport string) string {
		return `{"cookie":{"originalMaxAge":3600000,"expires":"2030-01-01T00:00:00.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":` + passport + `}`
	}
	exec := func(q string, args ...any) {
		t.Helper()
		// node-pg sends every parameter as text of unknown type.
		if _, err := c.Exec(ctx, q, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	tests := []struct {
		name   string
		steps  func(sid string)
		reason sessiongate.EndReason
	}{
		{"logout sets passport {}", func(sid string) {
			exec(set, sess(`{"user":42}`), fmt.Sprint(now+3600), sid)
			exec(touch, fmt.Sprint(now+3700), sid) // ordinary touch: silent
			exec(set, sess(`{"user":42}`), fmt.Sprint(now+3800), sid)
			exec(set, sess(`{}`), fmt.Sprint(now+3800), sid)
		}, sessiongate.EndLoggedOut},
		{"destroy", func(sid string) {
			exec(set, sess(`{"user":"7"}`), fmt.Sprint(now+3600), sid)
			exec(destroy, sid)
		}, sessiongate.EndRevoked},
		{"touch to the past", func(sid string) {
			exec(set, sess(`{"user":42}`), fmt.Sprint(now+3600), sid)
			exec(touch, fmt.Sprint(now-10), sid)
		}, sessiongate.EndExpired},
		{"destroy of an expired row is silent", func(sid string) {
			exec(set, sess(`{"user":42}`), fmt.Sprint(now-10), sid+"-never")
			exec(destroy, sid+"-never")
			exec(set, sess(`{"user":42}`), fmt.Sprint(now-10), sid+"-never-pruned")
			exec(prune, fmt.Sprint(now))
			exec(set, sess(`{"user":1}`), fmt.Sprint(now+3600), sid) // the marker
			exec(destroy, sid)
		}, sessiongate.EndRevoked},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := fmt.Sprintf("cps-%d-%d", i, now)
			quiet := sid + "-quiet"
			// Ordinary traffic on another session first: it must stay silent.
			exec(set, sess(`{}`), fmt.Sprint(now+3600), quiet)
			exec(set, sess(`{"user":1}`), fmt.Sprint(now+3600), quiet)
			exec(touch, fmt.Sprint(now+7200), quiet)
			tt.steps(sid)
			r := l.await(t, sid, quiet, sid+"-never", sid+"-never-pruned")
			if r.Reason != tt.reason || r.Resync {
				t.Errorf("got %+v, want reason %s", r, tt.reason)
			}
		})
	}
}

func TestListenerReconnect(t *testing.T) {
	db, _, url := openDB(t)
	l := startListener(t, db)
	pid := l.awaitListening(t)

	c := rawConn(t, url)
	var killed bool
	err := c.QueryRow(testCtx(t),
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid = $2`,
		ListenerApplicationName, int(pid)).Scan(&killed)
	if err != nil || !killed {
		t.Fatalf("terminate listener %d: %v, %v", pid, killed, err)
	}
	if pid2 := l.awaitListening(t); pid2 == pid {
		t.Fatalf("listener reconnected with the same backend %d", pid)
	}
	if r := l.await(t, "never-saved"); !r.Resync {
		t.Fatalf("first delivery after reconnect = %+v, want Resync", r)
	}

	sid := "after-reconnect"
	if err := db.SaveSession(testCtx(t), &sessiongate.Session{ID: sid, Data: []byte(`{"cookie":{}}`), Expire: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSession(testCtx(t), sid); err != nil {
		t.Fatal(err)
	}
	if r := l.await(t, sid); r.Reason != sessiongate.EndRevoked {
		t.Fatalf("after reconnect got %+v, want revoked", r)
	}
}

// catalog describes everything Migrate creates in schema.
func catalog(t *testing.T, c *pgx.Conn, schema string) string {
	t.Helper()
	var s string
	err := c.QueryRow(testCtx(t), `
SELECT concat_ws(E'\n',
  (SELECT string_agg(c.oid || ' ' || c.relname || ' ' || c.relkind::text, ',' ORDER BY c.relname)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1),
  (SELECT string_agg(t.oid || ' ' || pg_get_triggerdef(t.oid), ',' ORDER BY t.tgname)
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND NOT t.tgisinternal),
  (SELECT string_agg(p.oid || ' ' || pg_get_functiondef(p.oid), ',' ORDER BY p.proname)
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1))`, schema).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrate(t *testing.T) {
	schema, url := pgtest.Schema(t)
	c := rawConn(t, url)
	ctx := testCtx(t)
	// The Node app got there first: connect-pg-simple's table, with rows.
	for _, q := range []string{
		`CREATE TABLE "session" ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL) WITH (OIDS=FALSE)`,
		`ALTER TABLE "session" ADD CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE`,
		`CREATE INDEX "IDX_session_expire" ON "session" ("expire")`,
		`INSERT INTO session VALUES ('a', '{ "cookie" : {}, "x":1 }', '2030-01-02 03:04:05.123456'), ('b', '{"cookie":{}}', '2001-01-01')`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() string {
		var s string
		if err := c.QueryRow(ctx, `SELECT string_agg(sid || ' ' || sess::text || ' ' || expire::text, ';' ORDER BY sid) FROM session`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := rows()

	db, err := Open(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Concurrent first runs serialise on the advisory lock.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { errs <- db.Migrate(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	first := catalog(t, c, schema)
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if second := catalog(t, c, schema); second != first {
		t.Errorf("second Migrate changed the catalog:\n%s\n---\n%s", first, second)
	}
	if after := rows(); after != before {
		t.Errorf("Migrate changed rows:\n%s\n%s", before, after)
	}
	for _, want := range []string{"sessiongate_audit", "sessiongate_users", "sessiongate_session_revoked", "sessiongate_session_notify"} {
		if !strings.Contains(first, want) {
			t.Errorf("catalog lacks %s:\n%s", want, first)
		}
	}
}

// TestMigrateCreatesConnectPgSimpleTable checks the created table against
// connect-pg-simple's table.sql, column by column.
func TestMigrateCreatesConnectPgSimpleTable(t *testing.T) {
	_, schema, url := openDB(t)
	c := rawConn(t, url)
	var cols, idx string
	err := c.QueryRow(testCtx(t), `
SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(datetime_precision::text, '-') || ' ' || coalesce(character_maximum_length::text, '-'), ',' ORDER BY ordinal_position)
FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'Session'`, schema).Scan(&cols)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sid character varying NO - -,sess json NO - -,expire timestamp without time zone NO 6 -"; cols != want {
		t.Errorf("columns = %s\nwant      %s", cols, want)
	}
	err = c.QueryRow(testCtx(t), `SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'Session'`, schema).Scan(&idx)
	if err != nil {
		t.Fatal(err)
	}
	if idx != "IDX_session_expire,session_pkey" {
		t.Errorf("indexes = %s", idx)
	}
	var lower bool
	if err := c.QueryRow(testCtx(t), `SELECT to_regclass($1) IS NULL`, schema+".session").Scan(&lower); err != nil || !lower {
		t.Errorf("an unquoted session table exists: %v", err)
	}
}

// TestTimeZone runs the process and the connection string in other zones:
// the expire column must still be UTC, as the Node app writes it.
func TestTimeZone(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("UTC+05:30", 5*3600+1800)
	t.Cleanup(func() { time.Local = saved })

	schema, url := pgtest.Schema(t)
	db, err := Open(testCtx(t), Config{URL: url + "&TimeZone=America/New_York", Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var tz string
	if err := db.pool.QueryRow(testCtx(t), "SHOW TimeZone").Scan(&tz); err != nil || tz != "UTC" {
		t.Fatalf("TimeZone = %q, %v; want UTC", tz, err)
	}

	exp := time.Date(2030, 6, 1, 12, 0, 0, 250e6, time.Local)
	if err := db.SaveSession(testCtx(t), &sessiongate.Session{ID: "tz", Data: []byte(`{"cookie":{}}`), Expire: exp}); err != nil {
		t.Fatal(err)
	}
	c := rawConn(t, url)
	var raw string
	if err := c.QueryRow(testCtx(t), `SELECT expire::text FROM "session" WHERE sid = 'tz'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if want := "2030-06-01 06:30:00.25"; raw != want {
		t.Errorf("expire column = %s, want %s (UTC)", raw, want)
	}
	// A row written by connect-pg-simple reads back as the same instant.
	if _, err := c.Exec(testCtx(t), `UPDATE "session" SET expire = to_timestamp($1) WHERE sid = 'tz'`, float64(1900000000)); err != nil {
		t.Fatal(err)
	}
	s, err := db.Session(testCtx(t), "tz")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1900000000, 0); !s.Expire.Equal(want) {
		t.Errorf("Expire = %v, want %v", s.Expire, want.UTC())
	}
}

// TestRefreshSkipsConcurrentRewrite rewrites the row, as the Node app's set
// does, between RefreshSessions' read and its update.
func TestRefreshSkipsConcurrentRewrite(t *testing.T) {
	db, schema, url := openDB(t)
	c := rawConn(t, url)
	ctx := testCtx(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, sid := range []string{"kept", "moved"} {
		if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: []byte(`{"cookie":{"expires":"x"},"v":1}`), Expire: exp}); err != nil {
			t.Fatal(err)
		}
	}
	node := `{"cookie":{"expires":"y"},"v":2}`
	db.testHookBeforeRefreshUpdate = func() {
		if _, err := c.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "Session"}.Sanitize()+` SET sess = $1 WHERE sid = 'kept'`, node); err != nil {
			t.Error(err)
		}
	}
	done, err := db.RefreshSessions(ctx, []sessiongate.Refresh{{ID: "kept", Expire: exp.Add(time.Hour)}, {ID: "moved", Expire: exp.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0] != "moved" {
		t.Errorf("refreshed %q, want [moved]", done)
	}
	s, err := db.Session(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data) != node || !s.Expire.Equal(exp) {
		t.Errorf("kept = %s %v, want the Node app's %s %v", s.Data, s.Expire, node, exp)
	}
}

// TestStatements counts session-table statements for a check of 5,000 live
// sessions of which 500 are refreshed.
func TestStatements(t *testing.T) {
	db, _, _ := openDB(t)
	ctx := testCtx(t)
	const n = 5000
	exp := time.Now().Add(time.Hour)
	ids := make([]string, n)
	batch := &pgx.Batch{}
	for i := range ids {
		ids[i] = fmt.Sprintf("sid-%05d", i)
		batch.Queue(db.sql.set, fmt.Sprintf(`{"cookie":{"expires":"x"},"passport":{"user":%d}}`, i), unixSeconds(exp), ids[i])
	}
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}

	before := db.Stats().SessionStatements
	got, err := db.Sessions(ctx, ids)
	if err != nil || len(got) != n {
		t.Fatalf("Sessions = %d rows, %v", len(got), err)
	}
	if d := db.Stats().SessionStatements - before; d != 1 {
		t.Errorf("Sessions(%d ids) issued %d statements, want 1", n, d)
	}

	refreshes := make([]sessiongate.Refresh, 500)
	for i := range refreshes {
		refreshes[i] = sessiongate.Refresh{ID: ids[i], Expire: exp.Add(24 * time.Hour)}
	}
	before = db.Stats().SessionStatements
	done, err := db.RefreshSessions(ctx, refreshes)
	if err != nil || len(done) != len(refreshes) {
		t.Fatalf("RefreshSessions = %d, %v", len(done), err)
	}
	if d := db.Stats().SessionStatements - before; d != 2 {
		t.Errorf("RefreshSessions(500) issued %d statements, want 2 (read, update)", d)
	}

	// With the JSON the check just read, the read is skipped: one statement.
	for i := range refreshes {
		id := ids[500+i]
		refreshes[i] = sessiongate.Refresh{ID: id, Expire: exp.Add(24 * time.Hour), Data: got[id].Data}
	}
	before = db.Stats().SessionStatements
	done, err = db.RefreshSessions(ctx, refreshes)
	if err != nil || len(done) != len(refreshes) {
		t.Fatalf("RefreshSessions with Data = %d, %v", len(done), err)
	}
	if d := db.Stats().SessionStatements - before; d != 1 {
		t.Errorf("RefreshSessions(500 with Data) issued %d statements, want 1", d)
	}
	var v struct {
		Cookie struct{ Expires string }
	}
	if err := json.Unmarshal(got[ids[0]].Data, &v); err != nil || v.Cookie.Expires != "x" {
		t.Fatalf("unexpected data %s", got[ids[0]].Data)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{URL: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"})
	if err == nil || !strings.Contains(err.Error(), "connect to 127.0.0.1:1") {
		t.Fatalf("Open(unreachable) = %v, want a connect error naming the address", err)
	}
	if _, err := Open(ctx, Config{URL: "postgres://%zz"}); err == nil {
		t.Fatal("Open(bad URL) succeeded")
	}
}

func TestParsePayload(t *testing.T) {
	hash := sessiongate.SessionHash("abc")
	tests := []struct {
		in   string
		want sessiongate.Revocation
		ok   bool
	}{
		{"revoked " + hash, sessiongate.Revocation{SessionHash: hash, Reason: sessiongate.EndRevoked}, true},
		{"expired " + hash, sessiongate.Revocation{SessionHash: hash, Reason: sessiongate.EndExpired}, true},
		{"logged_out " + hash, sessiongate.Revocation{SessionHash: hash, Reason: sessiongate.EndLoggedOut}, true},
		{"revoked", sessiongate.Revocation{}, false},
		{"stolen " + hash, sessiongate.Revocation{}, false},
		{"revoked " + strings.ToUpper(hash), sessiongate.Revocation{}, false},
		{"revoked " + hash[:63], sessiongate.Revocation{}, false},
		{"revoked " + hash + " ", sessiongate.Revocation{}, false},
		{"", sessiongate.Revocation{}, false},
	}
	for _, tt := range tests {
		got, err := ParsePayload(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePayload(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestPayloadHashMatchesSessionHash checks the trigger's SQL hash against
// sessiongate.SessionHash, for ASCII and non-ASCII ids.
func TestPayloadHashMatchesSessionHash(t *testing.T) {
	_, _, url := openDB(t)
	c := rawConn(t, url)
	for _, sid := range []string{"abc", "Z7rE2wO-vP5nQ9xYk_3LmA1bC8dF4gHj", "ünï ✓"} {
		var got string
		if err := c.QueryRow(testCtx(t), `SELECT encode(sha256(convert_to($1::varchar, 'UTF8')), 'hex')`, sid).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := sessiongate.SessionHash(sid); got != want {
			t.Errorf("SQL hash of %q = %s, want %s", sid, got, want)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add("revoked " + sessiongate.SessionHash("abc"))
	f.Add("logged_out " + sessiongate.SessionHash(""))
	f.Add("expired x")
	f.Add(" ")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParsePayload(in)
		if err != nil {
			return
		}
		if r.Resync || in != string(r.Reason)+" "+r.SessionHash {
			t.Fatalf("ParsePayload(%q) = %+v does not round-trip", in, r)
		}
	})
}

func TestAuditAllOrNothing(t *testing.T) {
	db, _, _ := openDB(t)
	ctx := testCtx(t)
	at := time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC)
	ok := sessiongate.AuditEvent{Time: at, Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityWarn,
		SessionHash: sessiongate.ShortHash("s"), RemoteAddr: "10.0.0.1:1234", UserAgent: "ua", SocketID: "sock", Details: "BAD_SIGNATURE"}
	bad := ok
	bad.Details = "nul \x00 byte" // PostgreSQL text cannot hold NUL
	if err := db.WriteAudit(ctx, []sessiongate.AuditEvent{ok, bad, ok}); sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
		t.Fatalf("WriteAudit with a NUL byte = %v, want an INVALID (permanent) error", err)
	}
	bad.Details = "invalid \xff UTF-8"
	if err := db.WriteAudit(ctx, []sessiongate.AuditEvent{bad}); sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
		t.Fatalf("WriteAudit with byte 0xFF = %v, want an INVALID (permanent) error", err)
	}
	count := func() (n int) {
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM `+db.names.Audit).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("a failed batch left %d rows", n)
	}
	if err := db.WriteAudit(ctx, []sessiongate.AuditEvent{ok, ok}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	var got sessiongate.AuditEvent
	var sev string
	err := db.pool.QueryRow(ctx, `SELECT time, action, severity, user_id, session_hash, remote_addr, user_agent, socket_id, details FROM `+db.names.Audit+` LIMIT 1`).
		Scan(&got.Time, &got.Action, &sev, &got.UserID, &got.SessionHash, &got.RemoteAddr, &got.UserAgent, &got.SocketID, &got.Details)
	if err != nil {
		t.Fatal(err)
	}
	got.Severity = sessiongate.Severity(sev)
	got.Time = got.Time.UTC()
	if got != ok {
		t.Errorf("stored %+v, want %+v", got, ok)
	}
}

// TestAuditKeepsEveryByte writes fields holding what COPY's text format
// escapes, and other text, and reads them back unchanged; a zero Time is
// recorded as the time of the write.
func TestAuditKeepsEveryByte(t *testing.T) {
	db, _, _ := openDB(t)
	ctx := testCtx(t)
	ev := sessiongate.AuditEvent{
		Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityHigh,
		UserID: `back\slash \N`, SessionHash: "tab\there", RemoteAddr: "line\nfeed\r\n",
		UserAgent: "Mozilla/5.0 (X11; Linux) \u00e9\u4e2d \"quoted\" ; , =", SocketID: "\\.\t", Details: "",
	}
	before := time.Now().Add(-time.Second)
	if err := db.WriteAudit(ctx, []sessiongate.AuditEvent{ev}); err != nil {
		t.Fatal(err)
	}
	var got sessiongate.AuditEvent
	var sev string
	err := db.pool.QueryRow(ctx, `SELECT time, action, severity, user_id, session_hash, remote_addr, user_agent, socket_id, details FROM `+db.names.Audit).
		Scan(&got.Time, &got.Action, &sev, &got.UserID, &got.SessionHash, &got.RemoteAddr, &got.UserAgent, &got.SocketID, &got.Details)
	if err != nil {
		t.Fatal(err)
	}
	if got.Time.Before(before) || got.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("time %v, want about now", got.Time)
	}
	got.Time, got.Severity = time.Time{}, sessiongate.Severity(sev)
	if got != ev {
		t.Errorf("stored %+v, want %+v", got, ev)
	}
}

// BenchmarkCheck5000 measures one check of 5,000 live sessions: one Sessions
// call for all of them.
func BenchmarkCheck5000(b *testing.B) {
	schema, url := pgtest.Schema(b)
	ctx := context.Background()
	db, err := Open(ctx, Config{URL: url, Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 5000)
	batch := &pgx.Batch{}
	for i := range ids {
		ids[i] = fmt.Sprintf("Z7rE2wO-vP5nQ9xYk_3LmA1bC8d%05d", i)
		batch.Queue(db.sql.set, `{"cookie":{"originalMaxAge":3600000,"expires":"2030-01-01T00:00:00.000Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":42}}`, 1893456000.0, ids[i])
	}
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		b.Fatal(err)
	}
	before := db.Stats().SessionStatements
	for b.Loop() {
		got, err := db.Sessions(ctx, ids)
		if err != nil || len(got) != len(ids) {
			b.Fatalf("Sessions = %d, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(db.Stats().SessionStatements-before)/float64(b.N), "statements/check")
}

func TestCheck(t *testing.T) {
	schema, url := pgtest.Schema(t)
	ctx := testCtx(t)
	db, err := Open(ctx, Config{URL: url, Schema: schema, Table: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	err = db.Check(ctx)
	if sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound || !strings.Contains(err.Error(), `"Session"`) {
		t.Fatalf("Check before Migrate = %v, want NOT_FOUND naming the session table", err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check after Migrate = %v", err)
	}
	c := rawConn(t, url)
	if _, err := c.Exec(ctx, `DROP TRIGGER "sessiongate_Session_revoked" ON "Session"`); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err == nil || !strings.Contains(err.Error(), "revocation trigger") {
		t.Fatalf("Check without a trigger = %v, want it named", err)
	}
	// The trigger of earlier versions, which announced every pruned row.
	if _, err := c.Exec(ctx, `CREATE TRIGGER "sessiongate_Session_revoked" AFTER DELETE ON "Session" `+
		`FOR EACH ROW EXECUTE FUNCTION "sessiongate_Session_notify"('revoked')`); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err == nil || !strings.Contains(err.Error(), "up-to-date revocation trigger") {
		t.Fatalf("Check with the old trigger = %v, want it named", err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check after Migrate replaced the old trigger = %v", err)
	}
}

func TestConnectionLost(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown: the server is restarting
		{fmt.Errorf("get: %w", &pgconn.PgError{Code: "57P03"}), true},
		{&pgconn.PgError{Code: "23505"}, false}, // a statement's own error
		{io.ErrUnexpectedEOF, true},
		{syscall.ECONNRESET, true},
		{pgx.ErrNoRows, false},
		{context.Canceled, false},
	}
	for _, tt := range tests {
		if got := connectionLost(tt.err); got != tt.want {
			t.Errorf("connectionLost(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestAuditCount: the count column holds how many events a row stands for
// (1 for a zero Count), and Migrate adds it, defaulting to 1, to an audit
// table created before it existed.
func TestAuditCount(t *testing.T) {
	db, _, url := openDB(t)
	ctx := testCtx(t)
	c := rawConn(t, url)
	if _, err := c.Exec(ctx, `ALTER TABLE `+db.names.Audit+` DROP COLUMN count`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO `+db.names.Audit+` (time, action, severity) VALUES (now(), 'OLD', 'INFO')`); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err == nil || !strings.Contains(err.Error(), "column count") {
		t.Fatalf("Check without the count column = %v, want it named", err)
	}
	for range 2 { // idempotent
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := []sessiongate.AuditEvent{
		{Action: "ONE", Severity: sessiongate.SeverityWarn},
		{Action: "MANY", Severity: sessiongate.SeverityWarn, Count: 1234},
	}
	if err := db.WriteAudit(ctx, evs); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, `SELECT action || '=' || count FROM `+db.names.Audit+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"OLD=1", "ONE=1", "MANY=1234"}; !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}
