package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// presenceServer is a naive presence server for the presence mode's test:
// on subscribe it acks the members so far (the subscriber first) and sends
// every member a presence event of the join — repeat times over.
func presenceServer(t *testing.T, repeat int) string {
	t.Helper()
	srv := socketio.NewServer(socketio.Options{})
	ns := srv.Of("/")
	var mu sync.Mutex
	var members []string
	ns.On("subscribe", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		user := strings.TrimPrefix(s.Handshake().Header.Get("Cookie"), "u=")
		// One join at a time: its snapshot and its events then agree.
		mu.Lock()
		defer mu.Unlock()
		if err := s.Join(context.Background(), "room"); err != nil {
			t.Errorf("join: %v", err)
			return
		}
		members = append(members, user)
		users := append([]string{user}, members[:len(members)-1]...)
		ack(map[string]any{"ok": true, "presence": map[string]any{"users": users, "count": len(users), "connections": len(users)}})
		for range repeat {
			ns.To("room").Emit(context.Background(), "presence",
				map[string]any{"room": "room", "joined": []string{user}, "left": []string{}, "count": len(users)})
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL
}

// TestPresenceMode checks what the presence mode counts against a server
// that sends every join to every member, once and then twice.
func TestPresenceMode(t *testing.T) {
	const n = 20
	for _, repeat := range []int{1, 2} {
		t.Run("repeat="+strconv.Itoa(repeat), func(t *testing.T) {
			url := presenceServer(t, repeat)
			var creds []Credential
			for i := range n {
				creds = append(creds, Credential{Cookie: "u=" + strconv.Itoa(i+1)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := Run(ctx, Config{Mode: ModePresence, URL: url, N: n, Creds: creds, Sources: Sources(1),
				Room: "room", Spread: 200 * time.Millisecond, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Presence
			// Socket i (1-based, joining in order) gets the joins of i..n.
			wantEvents := repeat * n * (n + 1) / 2
			if p.Users != n || p.AckedOK != n || p.Complete != n || p.Missing != 0 || p.LeftEntries != 0 || p.Naive != n*(n-1) {
				t.Errorf("report %+v: want %d users, all acked and complete, nothing missing or left", p, n)
			}
			if p.Events != wantEvents || p.JoinedEntries != wantEvents || p.FinalCount != n || p.FinalCountOther != 0 {
				t.Errorf("%d events, %d joined entries, final count %d (%d other); want %d, %d, %d (0)",
					p.Events, p.JoinedEntries, p.FinalCount, p.FinalCountOther, wantEvents, wantEvents, n)
			}
			// Each socket hears its own join in its snapshot and an event.
			if p.Overlap != n {
				t.Errorf("overlap %d, want %d", p.Overlap, n)
			}
			if wantRepeated := (repeat - 1) * n * (n + 1) / 2; p.RepeatedJoins != wantRepeated {
				t.Errorf("repeated joins %d, want %d", p.RepeatedJoins, wantRepeated)
			}
		})
	}
}
