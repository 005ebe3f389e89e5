package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/socketio"
)

// redisNode is a Socket.IO server on the test Redis (REDIS_URL, default
// the local one) under key, its "/" namespace subscribed.
func redisNode(t *testing.T, key string) *socketio.Server {
	t.Helper()
	return redisBusNode(t, key).srv
}

// TestSessionRoomsCluster: two nodes on Redis. A socket on node A starts in
// org:1 from its session, and an emit from node B to org:1 reaches it;
// after its row moved to org 2 and A's check moved it (the join returns
// once its SUBSCRIBE is confirmed), B's emit to org:1 no longer reaches it
// and one to org:2 does.
func TestSessionRoomsCluster(t *testing.T) {
	var b [6]byte
	rand.Read(b[:])
	key := "sgtest-rooms-" + hex.EncodeToString(b[:])
	a, other := redisNode(t, key), redisNode(t, key)
	db := openSQLite(t)
	rooms, _ := ParseSessionRooms("org:{orgId}")
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), SessionRooms: rooms, CheckInterval: time.Hour, RefreshThreshold: -1})
	nsA := a.Of("/")
	g.Attach(nsA)
	regs := registrations(nsA)
	url := httptestServer(t, a)
	nsB := other.Of("/")

	ctx := context.Background()
	expire := time.Now().Add(time.Hour)
	sid := expresssession.NewSessionID()
	save := orgSaver(t, db, sid, expire)
	save("1")
	c := dial(t, url, browser{cookie: cookieHeader(sid)})
	registered(t, regs)
	wait := func(want string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		if _, err := c.WaitEvent(wctx, want); err != nil {
			t.Fatalf("waiting for %s: %v (got %d events)", want, err, len(c.Events()))
		}
	}
	if err := nsB.To("org:1").Emit(ctx, "org1_before", 1); err != nil {
		t.Fatal(err)
	}
	wait("org1_before")

	save("2")
	g.checkSessions(ctx, g.liveHashes(), false)
	if err := nsB.To("org:1").Emit(ctx, "org1_after", 1); err != nil {
		t.Fatal(err)
	}
	if err := nsB.To("org:2").Emit(ctx, "org2_after", 2); err != nil {
		t.Fatal(err)
	}
	wait("org2_after")
	// Published before org2_after on the same connection: it would have
	// come first.
	for _, ev := range c.Events() {
		if ev.Name == "org1_after" {
			t.Error("an emit to org:1 reached the socket after it left")
		}
	}
}
