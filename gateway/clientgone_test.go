package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// stallingStore holds every Session lookup until its context is done, as a
// database would hold a query whose caller has not cancelled it yet.
type stallingStore struct {
	sessiongate.SessionStore
	entered chan struct{}
}

func (s *stallingStore) Session(ctx context.Context, sid string) (*sessiongate.Session, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestHandshakeClientGone closes the client's connection while the
// connect hook reads its session row: the cancelled lookup is recorded as a
// client that left (SOCKET_AUTH_FAILURE, WARN, CLIENT_GONE), not as an
// INTERNAL store failure.
func TestHandshakeClientGone(t *testing.T) {
	st := openSQLite(t)
	stalling := &stallingStore{SessionStore: st, entered: make(chan struct{})}
	audit := newRecordingAudit(nil)
	g := newGateway(t, Config{Sessions: stalling, Audit: audit})
	_, url := serve(t, g)
	_, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c := dial(t, url, browser{cookie: cookie})
	select {
	case <-stalling.entered:
	case <-ctx.Done():
		t.Fatal("the handshake never reached the store")
	}
	c.Close() // not connected yet: the transport closes, no DISCONNECT

	ev := audit.waitFor(t, "client gone", action(sessiongate.ActionAuthFailure, HandshakeClientGone))
	if ev.Severity != sessiongate.SeverityWarn || ev.SessionHash == "" {
		t.Errorf("client gone audit = %+v, want WARN with the session hash", ev)
	}
	waitStats(t, g, func(s Stats) bool { return s.Handshakes[HandshakeClientGone] == 1 })
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	audit.mu.Lock()
	defer audit.mu.Unlock()
	for _, ev := range audit.events {
		if ev.Action == sessiongate.ActionAuthError || ev.Severity == sessiongate.SeverityHigh || ev.Details == sessiongate.ECodeInternal {
			t.Errorf("audit %+v for a client that left", ev)
		}
	}
	if n := g.Stats().Handshakes[sessiongate.ECodeInternal]; n != 0 {
		t.Errorf("INTERNAL handshakes = %d, want 0", n)
	}
}
