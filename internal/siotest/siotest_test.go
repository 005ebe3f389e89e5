package siotest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/socketio"
)

// waitTimeout bounds every wait: generous, so that a loaded machine does
// not fail a test.
const waitTimeout = 10 * time.Second

var transports = []string{Websocket, Polling}

// serve starts a Socket.IO server in the style of examples/echo: "/" and
// "/custom" send "auth" with the CONNECT's payload on connect, answer
// "message" with "message-back", acknowledge "message-with-ack" with its
// arguments, and on "bye" send "bye-bye" and disconnect the socket (or, for
// "drop", close its transport). "/private" refuses every client with a
// coded error.
func serve(t *testing.T, engine engineio.Options) string {
	t.Helper()
	srv := socketio.NewServer(socketio.Options{Engine: engine})
	for _, name := range []string{"/", "/custom"} {
		ns := srv.Of(name)
		ns.OnConnect(func(s *socketio.Socket) {
			auth := s.Handshake().Auth
			if auth == nil {
				auth = json.RawMessage(`{}`)
			}
			s.Emit("auth", auth)
		})
		ns.On("message", func(s *socketio.Socket, ev socketio.Event, _ func(...any) error) {
			s.Emit("message-back", ev.Args...)
		})
		ns.On("message-with-ack", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
			if ack != nil {
				ack(ev.Args...)
			}
		})
		ns.On("bye", func(s *socketio.Socket, _ socketio.Event, _ func(...any) error) {
			s.Emit("bye-bye")
			s.Disconnect()
		})
		ns.On("drop", func(s *socketio.Socket, _ socketio.Event, _ func(...any) error) {
			s.Drop()
		})
	}
	srv.Of("/private").OnConnecting(func(context.Context, socketio.ConnectEvent) (socketio.ConnectReply, error) {
		return socketio.ConnectReply{}, &socketio.ConnectError{Message: "unauthorized", Data: map[string]string{"code": "NO_COOKIE"}}
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return hs.URL
}

// dial connects a client, closed when the test ends.
func dial(t *testing.T, url string, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connect dials a client that must be admitted, and returns it with a
// context for the test's waits.
func connect(t *testing.T, url string, opts Options) (*Client, context.Context) {
	t.Helper()
	ctx := waitCtx(t)
	c := dial(t, url, opts)
	if _, err := c.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestConnect(t *testing.T) {
	url := serve(t, engineio.Options{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := waitCtx(t)
			c := dial(t, url, Options{Transport: tr, Namespace: "/custom", Auth: map[string]string{"token": "abc"}})
			sid, err := c.Connected(ctx)
			if err != nil || sid == "" {
				t.Fatalf("Connected = %q, %v; want a sid", sid, err)
			}
			ev, err := c.WaitEvent(ctx, "auth")
			if err != nil {
				t.Fatal(err)
			}
			if len(ev.Args) != 1 || string(ev.Args[0]) != `{"token":"abc"}` {
				t.Errorf("auth event args %s, want the CONNECT payload", ev.Args)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if d, ok := c.Disconnected(); !ok || d.Reason != ReasonClientDisconnect {
				t.Errorf("after Close: %+v, %v; want %s", d, ok, ReasonClientDisconnect)
			}
		})
	}
}

func TestEventEcho(t *testing.T) {
	url := serve(t, engineio.Options{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c, ctx := connect(t, url, Options{Transport: tr})
			for i := range 3 { // each WaitEvent takes the next one
				if err := c.Emit(ctx, "message", i, "two", map[string]bool{"three": true}); err != nil {
					t.Fatal(err)
				}
				ev, err := c.WaitEvent(ctx, "message-back")
				if err != nil {
					t.Fatal(err)
				}
				got, _ := json.Marshal(ev.Args)
				if want := `[` + string(rune('0'+i)) + `,"two",{"three":true}]`; string(got) != want {
					t.Errorf("message-back %s, want %s", got, want)
				}
			}
			if n := len(c.Events()); n != 4 { // auth and three echoes
				t.Errorf("%d events recorded, want 4", n)
			}
		})
	}
}

func TestAck(t *testing.T) {
	url := serve(t, engineio.Options{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c, ctx := connect(t, url, Options{Transport: tr})
			for _, arg := range []string{"a", "b"} {
				args, err := c.EmitWithAck(ctx, "message-with-ack", arg, 42)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := json.Marshal(args)
				if want := `["` + arg + `",42]`; string(got) != want {
					t.Errorf("ack %s, want %s", got, want)
				}
			}
		})
	}
}

func TestConnectError(t *testing.T) {
	url := serve(t, engineio.Options{})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c := dial(t, url, Options{Transport: tr, Namespace: "/private"})
			_, err := c.Connected(waitCtx(t))
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("Connected: %v, want a *ConnectError", err)
			}
			if ce.Message != "unauthorized" || ce.Code != "NO_COOKIE" || string(ce.Data) != `{"code":"NO_COOKIE"}` {
				t.Errorf("connect error %+v (data %s), want unauthorized NO_COOKIE", ce, ce.Data)
			}
		})
	}
}

func TestServerDisconnect(t *testing.T) {
	url := serve(t, engineio.Options{})
	tests := []struct {
		event, reason string
	}{
		{"bye", ReasonServerDisconnect},
		{"drop", ReasonTransportClose},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr+"/"+tt.event, func(t *testing.T) {
				c, ctx := connect(t, url, Options{Transport: tr})
				if err := c.Emit(ctx, tt.event); err != nil {
					t.Fatal(err)
				}
				d, err := c.WaitDisconnect(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if d.Reason != tt.reason {
					t.Errorf("disconnect %+v, want %s", d, tt.reason)
				}
				if tt.event == "bye" {
					// Sent before the DISCONNECT: still there to take.
					if _, err := c.WaitEvent(ctx, "bye-bye"); err != nil {
						t.Error(err)
					}
				}
				if _, err := c.WaitEvent(ctx, "never"); !errors.Is(err, ErrDisconnected) {
					t.Errorf("WaitEvent after the end: %v, want ErrDisconnected", err)
				}
				if err := c.Emit(ctx, "message"); !errors.Is(err, ErrDisconnected) {
					t.Errorf("Emit after the end: %v, want ErrDisconnected", err)
				}
			})
		}
	}
}

// TestPingPong serves with a short ping interval: the client must answer
// each ping, and the server sends the next only after the pong, so five
// pings received show four pongs arrived in time. The timeout is long, so
// that a loaded machine does not fail the test.
func TestPingPong(t *testing.T) {
	url := serve(t, engineio.Options{PingInterval: 20 * time.Millisecond, PingTimeout: waitTimeout})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c, ctx := connect(t, url, Options{Transport: tr})
			err := c.wait(ctx, "five pings", func() (bool, error) { return c.pings >= 5, nil })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.EmitWithAck(ctx, "message-with-ack", "still here"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestHandshakeRefused(t *testing.T) {
	srv := socketio.NewServer(socketio.Options{Engine: engineio.Options{
		AllowRequest: func(*http.Request) error {
			return &engineio.RequestError{Status: http.StatusTooManyRequests, Message: "Too many handshakes"}
		},
	}})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			_, err := Dial(waitCtx(t), hs.URL, Options{Transport: tr})
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Dial: %v, want a *HandshakeError", err)
			}
			if he.StatusCode != http.StatusTooManyRequests || he.Code != 4 || he.Message != "Too many handshakes" {
				t.Errorf("refusal %+v, want HTTP 429, code 4", he)
			}
		})
	}
}
