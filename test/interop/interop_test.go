// Package interop runs the official socket.io-client (Node, in this
// directory's node_modules) against the Go servers.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/socketio"
)

// newSocketIOServer returns a server with the handlers the scenarios of
// socketio-scenario.mjs expect. The server-side disconnect reasons of the
// sockets of each scenario (named in their auth payload) go to
// reasons[scenario].
func newSocketIOServer(t *testing.T, reasons map[string]chan string) *httptest.Server {
	t.Helper()
	io := socketio.NewServer(socketio.Options{ConnectTimeout: 5 * time.Second, AckTimeout: 5 * time.Second})
	main := io.Of("/")
	main.OnConnect(func(s *socketio.Socket) {
		var auth struct{ DisconnectOnConnect bool }
		json.Unmarshal(s.Handshake().Auth, &auth)
		if auth.DisconnectOnConnect {
			s.Close()
		}
	})
	main.OnDisconnect(func(s *socketio.Socket, reason socketio.Reason) {
		var auth struct{ Scenario string }
		json.Unmarshal(s.Handshake().Auth, &auth)
		select {
		case reasons[auth.Scenario] <- string(reason):
		default:
		}
	})
	main.On("echo", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		if ack != nil {
			ack(ev.Args...)
		}
	})
	main.On("ask-me", func(s *socketio.Socket, ev socketio.Event, _ func(...any) error) {
		q := map[string]any{"blob": []byte{9, 8, 7}, "nested": []any{map[string]any{"more": []byte("more")}}}
		args, err := s.EmitWithAck(context.Background(), "question", q)
		if err != nil {
			t.Errorf("EmitWithAck: %v", err)
			return
		}
		s.Emit("answer", map[string]any{"args": args})
	})
	main.On("disconnect-me", func(s *socketio.Socket, ev socketio.Event, _ func(...any) error) {
		if closeConn, _ := ev.Args[0].(bool); closeConn {
			s.Close()
		} else {
			s.Disconnect()
		}
	})
	main.On("disconnect-me-in", func(s *socketio.Socket, ev socketio.Event, _ func(...any) error) {
		ms, _ := ev.Args[0].(float64)
		time.AfterFunc(time.Duration(ms)*time.Millisecond, func() { s.Close() })
	})
	main.On("drop-me", func(s *socketio.Socket, _ socketio.Event, _ func(...any) error) {
		s.Drop()
	})
	main.On("join", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		room, _ := ev.Args[0].(string)
		if err := s.Join(context.Background(), room); err != nil {
			t.Errorf("Join: %v", err)
		}
		ack()
	})
	main.On("broadcast", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		var req struct {
			To, Except []string
			Msg        string
		}
		b, _ := json.Marshal(ev.Args[0])
		if err := json.Unmarshal(b, &req); err != nil {
			t.Errorf("broadcast request: %v", err)
		}
		if err := main.To(req.To...).Except(req.Except...).Emit(context.Background(), "news", req.Msg); err != nil {
			t.Errorf("broadcast: %v", err)
		}
		ack()
	})
	main.On("done", func(s *socketio.Socket, _ socketio.Event, ack func(...any) error) {
		main.Emit(context.Background(), "done")
		ack()
	})

	custom := io.Of("/custom")
	custom.OnConnect(func(s *socketio.Socket) { s.Emit("hello-custom", s.Handshake().Auth) })
	custom.On("echo", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		ack("custom:" + ev.Args[0].(string))
	})

	private := io.Of("/private")
	private.OnConnecting(func(_ context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		var auth struct{ Token string }
		json.Unmarshal(ev.Socket.Handshake().Auth, &auth)
		return socketio.ConnectReply{}, &socketio.ConnectError{Message: "unauthorized", Data: map[string]string{"code": "NO_SESSION", "token": auth.Token}}
	})

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		io.Close()
		srv.Close()
	})
	return srv
}

func TestSocketIOClient(t *testing.T) {
	nodetest.Require(t, "test/interop")

	tests := []struct {
		scenario string
		reason   string // the server-side disconnect reason the scenario causes, if any
	}{
		{"websocket", ""},
		{"polling", ""},
		{"upgrade", ""},
		{"acks", ""},
		{"connectError", ""},
		{"serverDisconnect", "server namespace disconnect"},
		{"serverDisconnectClose", "server namespace disconnect"},
		{"serverDisconnectClosePolling", "server namespace disconnect"},
		{"serverDisconnectCloseUpgrading", "server namespace disconnect"},
		{"serverDisconnectCloseUpgraded", "server namespace disconnect"},
		{"serverDisconnectCloseDuringUpgrade", "server namespace disconnect"},
		{"serverDisconnectCloseOnConnect", "server namespace disconnect"},
		{"serverDisconnectCloseOnConnectPolling", "server namespace disconnect"},
		{"serverDisconnectCloseOnConnectWebsocket", "server namespace disconnect"},
		{"transportDrop", "forced close"},
		{"customNamespace", ""},
		{"rooms", ""},
	}
	reasons := make(map[string]chan string)
	for _, tt := range tests {
		reasons[tt.scenario] = make(chan string, 16)
	}
	srv := newSocketIOServer(t, reasons)
	slots := make(chan struct{}, 4) // Node processes at once

	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			cmd := nodetest.Command(t, "test/interop", "socketio-scenario.mjs", srv.URL, tt.scenario)
			var out bytes.Buffer
			cmd.Stdout = &out
			err := cmd.Run()
			t.Logf("%s", out.Bytes())
			if err != nil {
				t.Fatalf("scenario %s: %v", tt.scenario, err)
			}
			var res struct{ OK bool }
			if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &res); err != nil || !res.OK {
				t.Fatalf("scenario %s: result %q (%v)", tt.scenario, out.Bytes(), err)
			}
			if tt.reason != "" {
				awaitReason(t, reasons[tt.scenario], tt.reason)
			}
		})
	}
}

// awaitReason waits for want among the server-side disconnect reasons
// (others come from the scenarios' clients closing).
func awaitReason(t *testing.T, reasons <-chan string, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-reasons:
			if got == want {
				return
			}
		case <-deadline:
			t.Errorf("no server-side disconnect with reason %q", want)
			return
		}
	}
}
