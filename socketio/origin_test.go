package socketio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/socketio"
)

// dialOrigin opens a websocket Engine.IO session on srv with origin, reads
// its open packet, sends CONNECT for "/" and returns the reply.
func dialOrigin(t *testing.T, srv *httptest.Server, origin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
		&websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("dial with Origin %q: %v (the opening request must not be refused by HTTP)", origin, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, open, err := ws.Read(ctx); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("open packet %q, %v", open, err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
		t.Fatal(err)
	}
	_, reply, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(reply)
}

// TestOriginRefusal: a session opened directly on a websocket from a foreign
// Origin gets CONNECT_ERROR ORIGIN_NOT_ALLOWED (no middleware runs, the hook
// sees the socket); with no configuration the server's own origin and no
// Origin at all connect.
func TestOriginRefusal(t *testing.T) {
	var middleware atomic.Int32
	refused := make(chan *socketio.Socket, 1)
	io := socketio.NewServer(socketio.Options{OnOriginRefused: func(s *socketio.Socket) { refused <- s }})
	io.Of("/").OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		middleware.Add(1)
		return socketio.ConnectReply{}, nil
	})
	srv := httptest.NewServer(io)
	defer srv.Close()
	defer io.Close()

	if got := dialOrigin(t, srv, "https://evil.example"); got != `44{"message":"unauthorized","data":{"code":"ORIGIN_NOT_ALLOWED"}}` {
		t.Fatalf("foreign origin: reply %q, want CONNECT_ERROR ORIGIN_NOT_ALLOWED", got)
	}
	select {
	case s := <-refused:
		if s.Handshake().Header.Get("Origin") != "https://evil.example" || s.Handshake().OriginAllowed {
			t.Errorf("hook saw handshake %+v", s.Handshake().Handshake)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnOriginRefused not called")
	}
	if n := middleware.Load(); n != 0 {
		t.Fatalf("middleware ran %d times for a foreign origin", n)
	}

	for _, origin := range []string{"", "http://" + strings.TrimPrefix(srv.URL, "http://")} {
		if got := dialOrigin(t, srv, origin); !strings.HasPrefix(got, `40{"sid":"`) {
			t.Fatalf("Origin %q: reply %q, want CONNECT", origin, got)
		}
	}
	if n := middleware.Load(); n != 2 {
		t.Fatalf("middleware ran %d times, want 2", n)
	}
}

// TestOriginRefusalConfigured: Options.OriginRefusal replaces the payload,
// and Engine.AllowedOrigins lets a listed origin in.
func TestOriginRefusalConfigured(t *testing.T) {
	io := socketio.NewServer(socketio.Options{
		Engine:        engineio.Options{AllowedOrigins: []string{"https://app.example"}},
		OriginRefusal: &socketio.ConnectError{Message: "forbidden origin", Data: map[string]any{"code": "X"}},
	})
	srv := httptest.NewServer(io)
	defer srv.Close()
	defer io.Close()
	if got := dialOrigin(t, srv, "https://evil.example"); got != `44{"message":"forbidden origin","data":{"code":"X"}}` {
		t.Fatalf("foreign origin: reply %q", got)
	}
	if got := dialOrigin(t, srv, "https://app.example"); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("listed origin: reply %q", got)
	}
}
