package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// testPrune prunes more expired rows than one batch holds: every expired row
// goes, in several statements, every live row stays, and no pruned row is
// announced as a revocation.
func testPrune(t *testing.T, b Backend) {
	w := watch(t, b)
	ctx := ctxFor(t)
	now := time.Now()
	const batch, nExpired, nLive = 10, 25, 5
	var expired, live []string
	for i := range nExpired {
		sid := newSID(t)
		exp := now.Add(-time.Duration(i+1) * time.Minute)
		save(t, b, sid, sessJSON(42, exp, ""), exp)
		expired = append(expired, sid)
	}
	for range nLive {
		sid := newSID(t)
		exp := now.Add(time.Hour)
		save(t, b, sid, sessJSON(42, exp, ""), exp)
		live = append(live, sid)
	}

	n, err := b.PruneSessions(ctx, now, batch)
	if err != nil || n != nExpired {
		t.Fatalf("PruneSessions = %d, %v; want %d (in batches of %d)", n, err, nExpired, batch)
	}
	rows, err := b.Sessions(ctx, append(slices.Clone(expired), live...))
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range expired {
		if rows[sid] != nil {
			t.Errorf("expired session %s was not pruned", sessiongate.ShortHash(sid))
		}
	}
	for _, sid := range live {
		if rows[sid] == nil {
			t.Errorf("live session %s was pruned", sessiongate.ShortHash(sid))
		}
	}
	if n, err := b.PruneSessions(ctx, now, batch); err != nil || n != 0 {
		t.Errorf("second PruneSessions = %d, %v; want 0", n, err)
	}

	// An expired row deleted one by one (express-session's destroy of a
	// stale session) is not announced either.
	stale := newSID(t)
	save(t, b, stale, sessJSON(42, now.Add(-time.Minute), ""), now.Add(-time.Minute))
	if err := b.DeleteSession(ctx, stale); err != nil {
		t.Fatal(err)
	}
	expired = append(expired, stale)

	// Revocations arrive in commit order: the marker's is the first, not
	// one of a pruned row.
	marker := live[0]
	if err := b.DeleteSession(ctx, marker); err != nil {
		t.Fatal(err)
	}
	wantReason(t, w.next(t, marker, expired...), sessiongate.EndRevoked)
}
