// Package storetest is the conformance suite every sessiongate backend runs:
// the same behaviour of SessionStore, RevocationFeed, UserStore and
// AuditStore, tested through those interfaces only.
//
// A backend's test calls Run with a function that opens a fresh, migrated,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Backend { return openTestDB(t) })
//	}
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
)

// Backend is everything a sessiongate store provides. Every store closes
// the same way, as an io.Closer.
type Backend interface {
	sessiongate.SessionStore
	sessiongate.RevocationFeed
	sessiongate.UserStore
	sessiongate.AuditStore
	sessiongate.SessionPruner
	sessiongate.UserChecker
	io.Closer
}

// Timeout bounds every wait of the suite for an event.
const Timeout = 5 * time.Second

// Run runs the conformance suite. open is called once per subtest, from
// parallel subtests, and must return an empty, migrated store that is closed
// when t ends.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"SessionRoundTrip", testSessionRoundTrip},
		{"SessionNotFound", testSessionNotFound},
		{"SessionExpiredReturned", testSessionExpiredReturned},
		{"SaveInvalidJSON", testSaveInvalidJSON},
		{"SessionsBatch", testSessionsBatch},
		{"Delete", testDelete},
		{"Refresh", testRefresh},
		{"RefreshWithData", testRefreshWithData},
		{"RefreshKeepsConcurrentRewrite", testRefreshConcurrentRewrite},
		{"RevokedOnDelete", testRevokedOnDelete},
		{"LoggedOutOnSave", testLoggedOutOnSave},
		{"ExpiredOnSave", testExpiredOnSave},
		{"ExpiredOnRefresh", testExpiredOnRefresh},
		{"NoRevocationForOrdinaryWrites", testNoRevocationForOrdinaryWrites},
		{"Prune", testPrune},
		{"Users", testUsers},
		{"UserConflict", testUserConflict},
		{"UserNotFound", testUserNotFound},
		{"DeleteUserDeletesSessions", testDeleteUserDeletesSessions},
		{"ActiveUsers", testActiveUsers},
		{"Audit", testAudit},
		{"AuditRawData", testAuditRawData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func newSID(t *testing.T) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// sessJSON returns a session as express-session and passport write it. user
// is written as JSON (a number, a string) or the passport object is empty
// when nil.
func sessJSON(user any, expires time.Time, extra string) []byte {
	passport := "{}"
	if user != nil {
		u, _ := json.Marshal(user)
		passport = `{"user":` + string(u) + `}`
	}
	return fmt.Appendf(nil,
		`{"cookie":{"originalMaxAge":3600000,"expires":%q,"secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":%s%s}`,
		expresssession.ISOString(expires), passport, extra)
}

// ms returns t in UTC at millisecond precision, the precision every store
// keeps.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func save(t *testing.T, b Backend, sid string, data []byte, expire time.Time) {
	t.Helper()
	if err := b.SaveSession(ctxFor(t), &sessiongate.Session{ID: sid, Data: data, Expire: expire}); err != nil {
		t.Fatalf("SaveSession: %v", err)
	}
}

func get(t *testing.T, b Backend, sid string) *sessiongate.Session {
	t.Helper()
	s, err := b.Session(ctxFor(t), sid)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	return s
}

func testSessionRoundTrip(t *testing.T, b Backend) {
	exp := ms(time.Now().Add(time.Hour))
	tests := []struct {
		name string
		data string
	}{
		{"express", string(sessJSON(42, exp, `,"theme":"dark"`))},
		{"string user and unicode", string(sessJSON("u-7", exp, `,"name":"Zoë \u00e9 \ud83d\ude00","n":1.50`))},
		{"whitespace and key order kept", `{ "z":1,  "cookie" : {"path":"/","originalMaxAge":null},"a":[ 1, 2 ] }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := newSID(t)
			save(t, b, sid, []byte(tt.data), exp)
			s := get(t, b, sid)
			if s.ID != sid {
				t.Errorf("ID = %q, want %q", s.ID, sid)
			}
			if string(s.Data) != tt.data {
				t.Errorf("Data = %s, want %s", s.Data, tt.data)
			}
			if !s.Expire.Equal(exp) || s.Expire.Location() != time.UTC {
				t.Errorf("Expire = %v, want %v in UTC", s.Expire, exp)
			}
		})
	}

	t.Run("replace", func(t *testing.T) {
		sid := newSID(t)
		save(t, b, sid, sessJSON(1, exp, ""), exp)
		exp2 := exp.Add(time.Minute)
		data2 := sessJSON(2, exp2, `,"v":2`)
		save(t, b, sid, data2, exp2)
		s := get(t, b, sid)
		if string(s.Data) != string(data2) || !s.Expire.Equal(exp2) {
			t.Errorf("after replace got %s %v, want %s %v", s.Data, s.Expire, data2, exp2)
		}
	})
}

func testSessionNotFound(t *testing.T, b Backend) {
	s, err := b.Session(ctxFor(t), newSID(t))
	if code := sessiongate.ErrorCode(err); code != sessiongate.ECodeNotFound {
		t.Fatalf("Session(missing) = %v, %v; want code %s", s, err, sessiongate.ECodeNotFound)
	}
}

func testSessionExpiredReturned(t *testing.T, b Backend) {
	sid := newSID(t)
	exp := ms(time.Now().Add(-time.Hour))
	save(t, b, sid, sessJSON(42, exp, ""), exp)
	s := get(t, b, sid)
	if !s.Expire.Equal(exp) {
		t.Errorf("Expire = %v, want %v", s.Expire, exp)
	}
	if s.Valid(time.Now()) {
		t.Error("expired session is Valid")
	}
}

func testSaveInvalidJSON(t *testing.T, b Backend) {
	for _, data := range []string{``, `{`, `{"a":}`, `not json`} {
		err := b.SaveSession(ctxFor(t), &sessiongate.Session{ID: newSID(t), Data: json.RawMessage(data), Expire: time.Now().Add(time.Hour)})
		if code := sessiongate.ErrorCode(err); code != sessiongate.ECodeInvalid {
			t.Errorf("SaveSession(%q) = %v, want code %s", data, err, sessiongate.ECodeInvalid)
		}
	}
}

func testSessionsBatch(t *testing.T, b Backend) {
	const n, workers = 1000, 8
	exp := ms(time.Now().Add(time.Hour))
	ids := make([]string, 0, 2*n)
	want := make(map[string]string, n)
	for i := range n {
		sid := newSID(t)
		want[sid] = string(sessJSON(i, exp, ""))
		ids = append(ids, sid, newSID(t)) // every other id is missing
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				sid := ids[2*i]
				err := b.SaveSession(ctxFor(t), &sessiongate.Session{ID: sid, Data: json.RawMessage(want[sid]), Expire: exp})
				if err != nil {
					t.Errorf("SaveSession: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got, err := b.Sessions(ctxFor(t), ids)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(got) != n {
		t.Fatalf("Sessions returned %d rows, want %d", len(got), n)
	}
	for sid, data := range want {
		s := got[sid]
		if s == nil || s.ID != sid || string(s.Data) != data {
			t.Fatalf("Sessions[%s] = %+v, want data %s", sid, s, data)
		}
	}

	empty, err := b.Sessions(ctxFor(t), nil)
	if err != nil || len(empty) != 0 {
		t.Errorf("Sessions(nil) = %v, %v; want empty", empty, err)
	}
}

func testDelete(t *testing.T, b Backend) {
	sid := newSID(t)
	exp := time.Now().Add(time.Hour)
	save(t, b, sid, sessJSON(1, exp, ""), exp)
	if err := b.DeleteSession(ctxFor(t), sid); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := b.Session(ctxFor(t), sid); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
		t.Errorf("Session after delete: err = %v, want not found", err)
	}
	if err := b.DeleteSession(ctxFor(t), sid); err != nil {
		t.Errorf("DeleteSession(missing) = %v, want nil", err)
	}
}

// expireColumn is the expiry connect-pg-simple stores for a cookie expiring
// at t: whole seconds, rounded up.
func expireColumn(t time.Time) time.Time {
	t = ms(t)
	s := t.Truncate(time.Second)
	if s.Before(t) {
		s = s.Add(time.Second)
	}
	return s
}

func testRefresh(t *testing.T, b Backend) {
	old := ms(time.Now().Add(2 * time.Minute))
	a, c := newSID(t), newSID(t)
	dataA := sessJSON(42, old, `,"theme":"dark","nested":{"expires":"keep me"}`)
	save(t, b, a, dataA, old)
	save(t, b, c, sessJSON(7, old, ""), old)

	to := time.Now().Add(24*time.Hour + 123*time.Millisecond + 456*time.Microsecond)
	gone := newSID(t)
	done, err := b.RefreshSessions(ctxFor(t), []sessiongate.Refresh{{ID: a, Expire: to}, {ID: gone, Expire: to}})
	if err != nil {
		t.Fatalf("RefreshSessions: %v", err)
	}
	if !slices.Equal(done, []string{a}) {
		t.Errorf("RefreshSessions returned %q, want [%s]", done, a)
	}

	s := get(t, b, a)
	if want := expireColumn(to); !s.Expire.Equal(want) {
		t.Errorf("Expire = %v, want %v (ceil to the second)", s.Expire, want)
	}
	want, err := expresssession.SetCookieExpires(dataA, to)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data) != string(want) {
		t.Errorf("Data = %s\nwant %s", s.Data, want)
	}
	if untouched := get(t, b, c); !untouched.Expire.Equal(old) {
		t.Errorf("session not listed was moved to %v", untouched.Expire)
	}

	// A row without a cookie object has no cookie.expires to keep in step:
	// only its expiry moves, as connect-pg-simple's touch does.
	bare, bareData := newSID(t), `{"passport":{"user":1}}`
	save(t, b, bare, []byte(bareData), old)
	done, err = b.RefreshSessions(ctxFor(t), []sessiongate.Refresh{{ID: bare, Expire: to}})
	if err != nil || !slices.Equal(done, []string{bare}) {
		t.Errorf("RefreshSessions(no cookie) = %q, %v; want [%s]", done, err, bare)
	}
	if s := get(t, b, bare); string(s.Data) != bareData || !s.Expire.Equal(expireColumn(to)) {
		t.Errorf("no-cookie row after refresh = %s %v, want %s %v", s.Data, s.Expire, bareData, expireColumn(to))
	}

	if done, err := b.RefreshSessions(ctxFor(t), nil); err != nil || len(done) != 0 {
		t.Errorf("RefreshSessions(nil) = %q, %v; want nothing", done, err)
	}
}

// testRefreshWithData checks Refresh.Data: the row is refreshed only while
// it still holds exactly the JSON the caller read.
func testRefreshWithData(t *testing.T, b Backend) {
	old := ms(time.Now().Add(2 * time.Minute))
	to := time.Now().Add(24 * time.Hour)
	same, changed := newSID(t), newSID(t)
	data := sessJSON(42, old, `,"theme":"dark"`)
	save(t, b, same, data, old)
	save(t, b, changed, data, old)
	// The Node app rewrites one row after the caller read it.
	rewritten := sessJSON(42, old, `,"theme":"light"`)
	save(t, b, changed, rewritten, old)

	done, err := b.RefreshSessions(ctxFor(t), []sessiongate.Refresh{
		{ID: same, Expire: to, Data: data},
		{ID: changed, Expire: to, Data: data},
	})
	if err != nil {
		t.Fatalf("RefreshSessions: %v", err)
	}
	if !slices.Equal(done, []string{same}) {
		t.Errorf("RefreshSessions returned %q, want [%s]", done, same)
	}
	want, err := expresssession.SetCookieExpires(data, to)
	if err != nil {
		t.Fatal(err)
	}
	if s := get(t, b, same); string(s.Data) != string(want) || !s.Expire.Equal(expireColumn(to)) {
		t.Errorf("refreshed row = %s %v, want %s %v", s.Data, s.Expire, want, expireColumn(to))
	}
	if s := get(t, b, changed); string(s.Data) != string(rewritten) || !s.Expire.Equal(old) {
		t.Errorf("rewritten row = %s %v, want it untouched: %s %v", s.Data, s.Expire, rewritten, old)
	}
}

// testRefreshConcurrentRewrite races refreshes against the Node app's whole
// rewrites of the same row: whatever the interleaving, the last rewrite's
// content must survive (a refresh may only change cookie.expires of the JSON
// it read, never bring an older JSON back).
func testRefreshConcurrentRewrite(t *testing.T, b Backend) {
	const rounds = 40
	sid := newSID(t)
	exp := ms(time.Now().Add(time.Hour))
	save(t, b, sid, sessJSON(1, exp, `,"v":-1`), exp)

	ctx := ctxFor(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			to := exp.Add(time.Duration(i) * time.Second)
			if _, err := b.RefreshSessions(ctx, []sessiongate.Refresh{{ID: sid, Expire: to}}); err != nil {
				t.Errorf("RefreshSessions: %v", err)
				return
			}
		}
	}()
	for i := range rounds {
		if err := b.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: sessJSON(1, exp, fmt.Sprintf(`,"v":%d`, i)), Expire: exp}); err != nil {
			t.Errorf("SaveSession: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()

	var v struct{ V int }
	if err := json.Unmarshal(get(t, b, sid).Data, &v); err != nil {
		t.Fatal(err)
	}
	if v.V != rounds-1 {
		t.Errorf("final row has v=%d, want %d: a refresh clobbered a newer rewrite", v.V, rounds-1)
	}
}

// watcher collects the revocations of one WatchRevocations call.
type watcher struct {
	ch chan sessiongate.Revocation
}

// watch starts WatchRevocations and returns once it is delivering, proved
// by a probe session's revocation.
func watch(t *testing.T, b Backend) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{ch: make(chan sessiongate.Revocation, 64)}
	stopped := make(chan error, 1)
	go func() {
		stopped <- b.WatchRevocations(ctx, func(r sessiongate.Revocation) {
			select {
			case w.ch <- r:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-stopped:
			if err != context.Canceled {
				t.Errorf("WatchRevocations returned %v, want context.Canceled", err)
			}
		case <-time.After(Timeout):
			t.Error("WatchRevocations did not return after cancel")
		}
	})

	deadline := time.After(Timeout)
	for {
		probe := newSID(t)
		exp := time.Now().Add(time.Hour)
		save(t, b, probe, sessJSON(nil, exp, ""), exp)
		if err := b.DeleteSession(ctxFor(t), probe); err != nil {
			t.Fatalf("DeleteSession: %v", err)
		}
		retry := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case r := <-w.ch:
				if r.SessionHash == sessiongate.SessionHash(probe) {
					return w
				}
			case <-retry:
				break wait // the listener was not ready: probe again
			case <-deadline:
				t.Fatal("WatchRevocations never delivered a probe's revocation")
			}
		}
	}
}

// next returns the first revocation of sid, failing if another revocation of
// one of the ids in unwanted comes first.
func (w *watcher) next(t *testing.T, sid string, unwanted ...string) sessiongate.Revocation {
	t.Helper()
	hash := sessiongate.SessionHash(sid)
	ctx := ctxFor(t)
	for {
		select {
		case r := <-w.ch:
			if r.SessionHash == hash {
				return r
			}
			for _, u := range unwanted {
				if r.SessionHash == sessiongate.SessionHash(u) {
					t.Fatalf("unexpected revocation %+v before the one awaited", r)
				}
			}
		case <-ctx.Done():
			t.Fatalf("no revocation of the session within %v", Timeout)
		}
	}
}

func wantReason(t *testing.T, r sessiongate.Revocation, want sessiongate.EndReason) {
	t.Helper()
	if r.Reason != want || r.Resync {
		t.Errorf("revocation = %+v, want reason %q", r, want)
	}
}

func testRevokedOnDelete(t *testing.T, b Backend) {
	w := watch(t, b)
	sid := newSID(t)
	exp := time.Now().Add(time.Hour)
	save(t, b, sid, sessJSON(42, exp, ""), exp)
	if err := b.DeleteSession(ctxFor(t), sid); err != nil {
		t.Fatal(err)
	}
	wantReason(t, w.next(t, sid), sessiongate.EndRevoked)
}

func testLoggedOutOnSave(t *testing.T, b Backend) {
	w := watch(t, b)
	tests := []struct {
		name string
		user any
	}{
		{"number user", 42},
		{"string user", "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := newSID(t)
			exp := time.Now().Add(time.Hour)
			save(t, b, sid, sessJSON(tt.user, exp, ""), exp)
			save(t, b, sid, sessJSON(nil, exp, ""), exp) // passport.logout: "passport":{}
			wantReason(t, w.next(t, sid), sessiongate.EndLoggedOut)
		})
	}
}

func testExpiredOnSave(t *testing.T, b Backend) {
	w := watch(t, b)
	sid := newSID(t)
	exp := time.Now().Add(time.Hour)
	save(t, b, sid, sessJSON(42, exp, ""), exp)
	past := time.Now().Add(-time.Minute)
	save(t, b, sid, sessJSON(42, past, ""), past)
	wantReason(t, w.next(t, sid), sessiongate.EndExpired)
}

func testExpiredOnRefresh(t *testing.T, b Backend) {
	w := watch(t, b)
	sid := newSID(t)
	exp := time.Now().Add(time.Hour)
	save(t, b, sid, sessJSON(42, exp, ""), exp)
	if _, err := b.RefreshSessions(ctxFor(t), []sessiongate.Refresh{{ID: sid, Expire: time.Now().Add(-time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	wantReason(t, w.next(t, sid), sessiongate.EndExpired)
}

// testNoRevocationForOrdinaryWrites makes ordinary writes to one session,
// then deletes another: the deletion's revocation must be the first one.
func testNoRevocationForOrdinaryWrites(t *testing.T, b Backend) {
	w := watch(t, b)
	quiet, marker := newSID(t), newSID(t)
	exp := time.Now().Add(time.Hour)
	save(t, b, quiet, sessJSON(nil, exp, ""), exp)                                    // anonymous insert
	save(t, b, quiet, sessJSON(42, exp, ""), exp)                                     // login
	save(t, b, quiet, sessJSON(42, exp, `,"theme":"dark"`), exp)                      // set
	save(t, b, quiet, sessJSON("42", exp.Add(time.Minute), ""), exp.Add(time.Minute)) // user id as a string
	if _, err := b.RefreshSessions(ctxFor(t), []sessiongate.Refresh{{ID: quiet, Expire: exp.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	save(t, b, newSID(t), sessJSON(42, past, ""), past) // an expired row inserted: nothing ended
	save(t, b, marker, sessJSON(1, exp, ""), exp)
	if err := b.DeleteSession(ctxFor(t), marker); err != nil {
		t.Fatal(err)
	}
	wantReason(t, w.next(t, marker, quiet), sessiongate.EndRevoked)
}

func testUsers(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	before := time.Now().Add(-time.Second)
	alice, err := b.CreateUser(ctx, "Alice@Example.com", "$2a$10$hashA")
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if alice.ID == 0 || alice.Email != "Alice@Example.com" || alice.PasswordHash != "$2a$10$hashA" || alice.CreatedAt.Before(before) {
		t.Errorf("CreateUser = %+v", alice)
	}
	bob, err := b.CreateUser(ctx, "bob@example.com", "$2a$10$hashB")
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}

	for _, email := range []string{"alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.com"} {
		u, err := b.UserByEmail(ctx, email)
		if err != nil || u.ID != alice.ID || u.Email != alice.Email {
			t.Errorf("UserByEmail(%q) = %+v, %v; want %+v", email, u, err, alice)
		}
	}
	u, err := b.UserByID(ctx, bob.ID)
	if err != nil || u.Email != "bob@example.com" || u.PasswordHash != "$2a$10$hashB" || !u.CreatedAt.Equal(bob.CreatedAt) {
		t.Errorf("UserByID = %+v, %v; want %+v", u, err, bob)
	}

	all, err := b.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(all) != 2 || all[0].ID != alice.ID || all[1].ID != bob.ID {
		t.Errorf("Users = %+v, want alice then bob", all)
	}

	if _, err := b.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := b.UserByID(ctx, alice.ID); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
		t.Errorf("UserByID after delete: %v, want not found", err)
	}
	if _, err := b.CreateUser(ctx, "alice@example.com", "h"); err != nil {
		t.Errorf("CreateUser after delete: %v", err)
	}
}

func testUserConflict(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	if _, err := b.CreateUser(ctx, "carol@example.com", "h"); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"carol@example.com", "Carol@Example.COM"} {
		if _, err := b.CreateUser(ctx, email, "h2"); sessiongate.ErrorCode(err) != sessiongate.ECodeConflict {
			t.Errorf("CreateUser(%q) = %v, want code %s", email, err, sessiongate.ECodeConflict)
		}
	}
	if all, err := b.Users(ctx); err != nil || len(all) != 1 {
		t.Errorf("Users = %d, %v; want 1", len(all), err)
	}
}

func testUserNotFound(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	if _, err := b.UserByEmail(ctx, "nobody@example.com"); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
		t.Errorf("UserByEmail = %v, want not found", err)
	}
	if _, err := b.UserByID(ctx, 987654); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
		t.Errorf("UserByID = %v, want not found", err)
	}
	if _, err := b.DeleteUser(ctx, 987654); sessiongate.ErrorCode(err) != sessiongate.ECodeNotFound {
		t.Errorf("DeleteUser = %v, want not found", err)
	}
	if all, err := b.Users(ctx); err != nil || len(all) != 0 {
		t.Errorf("Users = %v, %v; want none", all, err)
	}
}

func testAudit(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	now := time.Now()
	events := []sessiongate.AuditEvent{
		{Time: now, Action: sessiongate.ActionAuthSuccess, Severity: sessiongate.SeverityInfo, UserID: "42", SessionHash: sessiongate.ShortHash("s1"), RemoteAddr: "127.0.0.1:5000", UserAgent: "Mozilla/5.0", SocketID: "abc"},
		{Time: now, Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityWarn, Details: sessiongate.ECodeBadSignature, UserAgent: "ünïcode ✓"},
		{Action: sessiongate.ActionDisconnect, Severity: sessiongate.SeverityInfo}, // zero time
	}
	if err := b.WriteAudit(ctx, events); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	if err := b.WriteAudit(ctx, nil); err != nil {
		t.Fatalf("WriteAudit(nil): %v", err)
	}
}

// testAuditRawData: an event a store cannot hold as it is (a NUL byte,
// invalid UTF-8, an overlong field) is either written or refused with
// ECodeInvalid, the code that tells the writer retrying cannot help; the
// same event Sanitized is always written, and so is a Count.
func testAuditRawData(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	raw := []sessiongate.AuditEvent{
		{Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityWarn, UserAgent: "curl\xff/8"},
		{Action: sessiongate.ActionAuthSuccess, Severity: sessiongate.SeverityInfo, UserID: "4\x002"},
		{Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityWarn, UserAgent: strings.Repeat("x", 1<<16)},
	}
	for _, ev := range raw {
		err := b.WriteAudit(ctx, []sessiongate.AuditEvent{ev})
		if err != nil && sessiongate.ErrorCode(err) != sessiongate.ECodeInvalid {
			t.Errorf("WriteAudit(%q, %q) = %v, want nil or an INVALID error", ev.UserAgent[:min(len(ev.UserAgent), 16)], ev.UserID, err)
		}
		if err := b.WriteAudit(ctx, []sessiongate.AuditEvent{ev.Sanitized()}); err != nil {
			t.Errorf("WriteAudit of the sanitized event: %v", err)
		}
	}
	if err := b.WriteAudit(ctx, []sessiongate.AuditEvent{{Action: sessiongate.ActionAuthFailure, Severity: sessiongate.SeverityWarn, Count: 7}}); err != nil {
		t.Errorf("WriteAudit with a Count: %v", err)
	}
}
