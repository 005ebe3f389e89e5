package socketio_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
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
	io.Of("/").OnDisconnect(func(s *socketio.Socket, reason socketio.Reason) { reasons <- string(reason) })
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

// Over a real Engine.IO server, polling: Close sends the event
// and the DISCONNECT first, and the close packet alone in a later response,
// so that the client handles the DISCONNECT before the transport closes.
func TestDisconnectCloseOverPolling(t *testing.T) {
	sio := socketio.NewServer(socketio.Options{})
	sio.Of("/").OnConnect(func(s *socketio.Socket) {
		s.Emit("bye")
		s.Close()
	})
	srv := httptest.NewServer(sio)
	defer srv.Close()
	defer sio.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := srv.URL + "/socket.io/?EIO=4&transport=polling"
	do := func(method, url, body string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %q", method, resp.StatusCode, b)
		}
		return string(b)
	}
	open := do("GET", base, "")
	var hs struct{ SID string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(open, "0")), &hs); err != nil {
		t.Fatalf("open packet %q: %v", open, err)
	}
	url := base + "&sid=" + hs.SID
	if got := do("POST", url, "40"); got != "ok" {
		t.Fatalf("POST = %q", got)
	}
	var got []string // the packets before the close, in order
	for {
		payload := do("GET", url, "")
		if payload == "1" {
			break
		}
		for _, p := range strings.Split(payload, "\x1e") {
			if p == "1" {
				t.Fatalf("close packet in payload %q, with packets sent before it", payload)
			}
			got = append(got, p)
		}
	}
	if len(got) != 3 || !strings.HasPrefix(got[0], "40{") || got[1] != `42["bye"]` || got[2] != "41" {
		t.Fatalf("packets before the close = %q, want CONNECT, the event, DISCONNECT", got)
	}
}
