package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

// redisNode is a Socket.IO server on the test Redis (REDIS_URL, default
// the local one) under key, its "/" namespace subscribed.
func redisNode(t *testing.T, key string) *socketio.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the tests that need Redis")
	}
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cl, err := redis.NewCluster(ctx, redis.Options{URL: url, Key: key})
	if err != nil {
		t.Fatalf("Redis at %s: %v", url, err)
	}
	t.Cleanup(func() { cl.Close() })
	srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
	t.Cleanup(func() { srv.Close() })
	if err := srv.Of("/").Adapter().(*redis.Adapter).Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
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
	save := func(org string) {
		t.Helper()
		if err := db.SaveSession(ctx, &sessiongate.Session{ID: sid, Data: orgSession(org, expire), Expire: expire}); err != nil {
			t.Fatal(err)
		}
	}
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
