package storetest

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// testDeleteUserDeletesSessions deletes a user with sessions of every shape:
// its sessions go (passport.user as a number or a string, live or expired),
// the live ones are announced as revoked, and no other session is touched.
func testDeleteUserDeletesSessions(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	alice, err := b.CreateUser(ctx, "alice@example.com", "h")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := b.CreateUser(ctx, "bob@example.com", "h")
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, b)
	live, past := time.Now().Add(time.Hour), time.Now().Add(-time.Minute)
	aliceID := strconv.FormatInt(alice.ID, 10)
	sessions := []struct {
		user    any
		expire  time.Time
		deleted bool
	}{
		{alice.ID, live, true},       // passport.user a number, as sessiongate's login writes it
		{aliceID, live, true},        // a string, as many Node apps serialize it
		{alice.ID, past, true},       // expired: deleted, not announced
		{bob.ID, live, false},        // someone else
		{aliceID + "0", live, false}, // an id that merely starts with alice's
		{nil, live, false},           // anonymous
	}
	var sids, gone, kept []string
	for _, s := range sessions {
		sid := newSID(t)
		save(t, b, sid, sessJSON(s.user, s.expire, ""), s.expire)
		sids = append(sids, sid)
		if s.deleted {
			gone = append(gone, sid)
		} else {
			kept = append(kept, sid)
		}
	}

	n, err := b.DeleteUser(ctx, alice.ID)
	if err != nil || n != int64(len(gone)) {
		t.Fatalf("DeleteUser = %d, %v; want %d sessions", n, err, len(gone))
	}
	rows, err := b.Sessions(ctx, sids)
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range gone {
		if rows[sid] != nil {
			t.Errorf("session %s of the deleted user is still there", sessiongate.ShortHash(sid))
		}
	}
	for _, sid := range kept {
		if rows[sid] == nil {
			t.Errorf("session %s of another user was deleted", sessiongate.ShortHash(sid))
		}
	}

	// The two live sessions are announced, in any order, before a marker's
	// revocation; nothing else of this test is.
	want := map[string]bool{sessiongate.SessionHash(gone[0]): true, sessiongate.SessionHash(gone[1]): true}
	unwanted := append(slices.Clone(kept), gone[2])
	marker := kept[0]
	if err := b.DeleteSession(ctx, marker); err != nil {
		t.Fatal(err)
	}
	for len(want) > 0 {
		var r sessiongate.Revocation
		select {
		case r = <-w.ch:
		case <-ctx.Done():
			t.Fatalf("no revocation for %d sessions of the deleted user", len(want))
		}
		for _, u := range unwanted {
			if r.SessionHash == sessiongate.SessionHash(u) {
				t.Fatalf("unexpected revocation %+v", r)
			}
		}
		if want[r.SessionHash] {
			wantReason(t, r, sessiongate.EndRevoked)
			delete(want, r.SessionHash)
		}
	}
	wantReason(t, w.next(t, marker, gone[2]), sessiongate.EndRevoked)
}

// testActiveUsers: ActiveUsers names exactly the existing users among the
// ids it is given, whatever else is in the list, and forgets a deleted one.
func testActiveUsers(t *testing.T, b Backend) {
	ctx := ctxFor(t)
	alice, err := b.CreateUser(ctx, "alice@example.com", "h")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := b.CreateUser(ctx, "bob@example.com", "h")
	if err != nil {
		t.Fatal(err)
	}
	a, bo := strconv.FormatInt(alice.ID, 10), strconv.FormatInt(bob.ID, 10)
	ids := []string{a, bo, a, "987654", "", "alice", "0" + a, a + ".0", "-1", "99999999999999999999"}
	got, err := b.ActiveUsers(ctx, ids)
	if err != nil || len(got) != 2 || !got[a] || !got[bo] {
		t.Fatalf("ActiveUsers(%q) = %v, %v; want alice and bob", ids, got, err)
	}
	if _, err := b.DeleteUser(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ActiveUsers(ctx, ids); err != nil || len(got) != 1 || !got[a] {
		t.Errorf("ActiveUsers after deleting bob = %v, %v; want alice only", got, err)
	}
	if got, err := b.ActiveUsers(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("ActiveUsers(nil) = %v, %v; want none", got, err)
	}
}
