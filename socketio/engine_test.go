package socketio_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiongate/sessiongate/socketio"
)

// Over a real Engine.IO server: connect on a websocket, then Server.Close
// disconnects the socket with "server shutting down".
func TestServerOverEngine(t *testing.T) {
	io := socketio.NewServer(socketio.Options{})
	reasons := make(chan string, 1)
	io.Of("/").OnConnect(func(s *socketio.Socket) {
		s.Emit("hello", s.Transport(), []byte{1})
	})
	io.Of("/").OnDisconnect(func(s *socketio.Socket, reason string) { reasons <- reason })
	srv := httptest.NewServer(io)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func() (websocket.MessageType, string) {
		t.Helper()
		typ, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return typ, string(b)
	}
	if _, open := read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if _, connect := read(); !strings.HasPrefix(connect, `40{"sid":"`) {
		t.Fatalf("CONNECT reply %q", connect)
	}
	if _, ev := read(); ev != `451-["hello","websocket",{"_placeholder":true,"num":0}]` {
		t.Fatalf("event %q", ev)
	}
	if typ, att := read(); typ != websocket.MessageBinary || att != "\x01" {
		t.Fatalf("attachment %v %q", typ, att)
	}
	if err := io.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reasons:
		if r != "server shutting down" {
			t.Errorf("reason %q", r)
		}
	case <-ctx.Done():
		t.Fatal("no disconnect")
	}
}
