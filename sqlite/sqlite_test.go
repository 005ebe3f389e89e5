package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/storetest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(testCtx(t), filepath.Join(t.TempDir(), "sessiongate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := db.Migrate(testCtx(t)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend { return openDB(t) })
}

func TestMigrateIdempotentKeepsRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := testCtx(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	data := `{ "cookie":{}, "k" : 1 }`
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	if err := db.SaveSession(ctx, &sessiongate.Session{ID: "a", Data: []byte(data), Expire: exp}); err != nil {
		t.Fatal(err)
	}
	schemaSQL := func() string {
		var s string
		if err := db.r.QueryRowContext(ctx, `SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := schemaSQL()
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if after := schemaSQL(); after != before {
		t.Errorf("second Migrate changed the schema:\n%s\n%s", before, after)
	}
	var raw, expire string
	if err := db.r.QueryRowContext(ctx, `SELECT sess, expire FROM session WHERE sid = 'a'`).Scan(&raw, &expire); err != nil {
		t.Fatal(err)
	}
	if raw != data || expire != "2030-01-02T03:04:05.006Z" {
		t.Errorf("row = %s %s", raw, expire)
	}
}

// TestExpireFormat checks the stored form: fixed width, UTC, milliseconds,
// so that text order is time order.
func TestExpireFormat(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 0, 11, 14, 274_999_999, time.UTC), "2026-11-27T00:11:14.274Z"},
		{time.Date(2026, 11, 27, 5, 41, 14, 0, time.FixedZone("IST", 5*3600+1800)), "2026-11-27T00:11:14.000Z"},
		{time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC), "0999-01-01T00:00:00.000Z"},
	}
	for _, tt := range tests {
		got := formatTime(tt.in)
		if got != tt.want {
			t.Errorf("formatTime(%v) = %s, want %s", tt.in, got, tt.want)
		}
		back, err := parseTime(got)
		if err != nil || !back.Equal(tt.in.Truncate(time.Millisecond)) || back.Location() != time.UTC {
			t.Errorf("parseTime(%s) = %v, %v", got, back, err)
		}
	}
	if _, err := parseTime("2026-11-27 00:11:14"); err == nil {
		t.Error("parseTime accepted another format")
	}
}

// TestOverflowResync blocks a watcher until more revocations than its queue
// holds have been published: the writer must not wait, and the watcher must
// get a Resync.
func TestOverflowResync(t *testing.T) {
	db := openDB(t)
	db.hub.buffer = 2
	added := make(chan struct{}, 1)
	db.hub.testHookAdded = func() { added <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	got := make(chan sessiongate.Revocation, 16)
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.WatchRevocations(ctx, func(r sessiongate.Revocation) {
			<-release
			got <- r
		})
	}()
	select {
	case <-added:
	case <-testCtx(t).Done():
		t.Fatal("watcher never registered")
	}
	exp := time.Now().Add(time.Hour)
	for _, sid := range []string{"a", "b", "c", "d", "e"} {
		if err := db.SaveSession(testCtx(t), &sessiongate.Session{ID: sid, Data: []byte(`{"cookie":{}}`), Expire: exp}); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSession(testCtx(t), sid); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	ctxWait := testCtx(t)
	var revoked int
	for {
		select {
		case r := <-got:
			if r.Resync {
				if revoked > 3 {
					t.Errorf("got %d revocations through a queue of 2 (+1 in flight)", revoked)
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("WatchRevocations = %v", err)
				}
				return
			}
			revoked++
		case <-ctxWait.Done():
			t.Fatalf("no Resync after overflow (%d revocations)", revoked)
		}
	}
}

func TestOpenBadPath(t *testing.T) {
	_, err := Open(testCtx(t), filepath.Join(t.TempDir(), "missing-dir", "x", "db"))
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

func TestAuditStored(t *testing.T) {
	db := openDB(t)
	ctx := testCtx(t)
	ev := sessiongate.AuditEvent{Time: time.Date(2026, 11, 27, 1, 2, 3, 456e6, time.UTC), Action: sessiongate.ActionAuthSuccess,
		Severity: sessiongate.SeverityInfo, UserID: "42", SessionHash: sessiongate.ShortHash("s"), RemoteAddr: "10.0.0.1:1",
		UserAgent: "ua", SocketID: "sock", Details: "d"}
	if err := db.WriteAudit(ctx, []sessiongate.AuditEvent{ev, ev}); err != nil {
		t.Fatal(err)
	}
	var (
		got     sessiongate.AuditEvent
		at, sev string
		n       int
	)
	err := db.r.QueryRowContext(ctx, `SELECT time, action, severity, user_id, session_hash, remote_addr, user_agent, socket_id, details, (SELECT count(*) FROM sessiongate_audit) FROM sessiongate_audit LIMIT 1`).
		Scan(&at, &got.Action, &sev, &got.UserID, &got.SessionHash, &got.RemoteAddr, &got.UserAgent, &got.SocketID, &got.Details, &n)
	if err != nil {
		t.Fatal(err)
	}
	got.Severity = sessiongate.Severity(sev)
	if got.Time, err = parseTime(at); err != nil {
		t.Fatal(err)
	}
	if got != ev || n != 2 {
		t.Errorf("stored %d rows, first %+v; want 2 of %+v", n, got, ev)
	}
}

func FuzzParseTime(f *testing.F) {
	f.Add("2026-11-27T00:11:14.274Z")
	f.Add("0000-01-01T00:00:00.000Z")
	f.Add("2026-11-27 00:11:14")
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTime(s)
		if err != nil {
			return
		}
		if got := formatTime(tm); got != s {
			t.Fatalf("parseTime(%q) formats back as %q", s, got)
		}
	})
}

// TestAuditCount: the count column holds how many events a row stands for
// (1 for a zero Count), and Migrate adds it, defaulting to 1, to an audit
// table created before it existed.
func TestAuditCount(t *testing.T) {
	db := openDB(t)
	ctx := testCtx(t)
	for _, q := range []string{
		`DROP TABLE sessiongate_audit`,
		`CREATE TABLE sessiongate_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, action TEXT NOT NULL,
		  severity TEXT NOT NULL, user_id TEXT NOT NULL DEFAULT '', session_hash TEXT NOT NULL DEFAULT '',
		  remote_addr TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '', socket_id TEXT NOT NULL DEFAULT '',
		  details TEXT NOT NULL DEFAULT '') STRICT`,
		`INSERT INTO sessiongate_audit (time, action, severity) VALUES ('2026-01-01T00:00:00.000Z', 'OLD', 'INFO')`,
	} {
		if _, err := db.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
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
	rows, err := db.r.QueryContext(ctx, `SELECT action || '=' || count FROM sessiongate_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if want := []string{"OLD=1", "ONE=1", "MANY=1234"}; !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}
