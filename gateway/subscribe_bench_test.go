package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/hook"
)

// benchGateway is a Gateway with only what decide needs.
func benchGateway(b *testing.B, auth Authorizer) (*Gateway, *conn) {
	b.Helper()
	g := &Gateway{now: time.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.subs = subscriptions{auth: auth, timeout: DefaultSubscribeTimeout, cache: newDecisionCache(DefaultDecisionCacheSize)}
	c := &conn{identity: sessiongate.Identity{UserID: "1", SessionID: "sid"}, hash: "h", short: "s"}
	return g, c
}

// BenchmarkSubscribeDecision measures one subscribe decision, answered
// from the cache and through the hook (a local HTTP endpoint answering
// allow without ttl, over kept-alive connections), in parallel.
//
//	go test -run XXX -bench SubscribeDecision -benchtime 2s ./gateway
func BenchmarkSubscribeDecision(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"allow":true}`))
	}))
	defer srv.Close()
	hc, err := hook.New(hook.Config{URL: srv.URL, Secret: []byte("k")})
	if err != nil {
		b.Fatal(err)
	}
	defer hc.CloseIdle()
	b.Run("cached", func(b *testing.B) {
		g, c := benchGateway(b, HookAuthorizer(hc))
		g.subs.cache.put(c.hash+"\x00"+c.identity.UserID+"\x00incident:7", time.Now().Add(time.Hour), time.Now())
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if e := g.decide(context.Background(), c, "incident:7", "sock", "connect.sid=x"); e != nil {
					b.Fatal(e.Message)
				}
			}
		})
	})
	b.Run("hook", func(b *testing.B) {
		g, c := benchGateway(b, HookAuthorizer(hc))
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				// No ttl: nothing is cached; the rooms vary, so concurrent
				// decisions seldom share a call.
				if e := g.decide(context.Background(), c, "incident:"+string(rune('a'+i%26)), "sock", "connect.sid=x"); e != nil {
					b.Fatal(e.Message)
				}
			}
		})
	})
}
