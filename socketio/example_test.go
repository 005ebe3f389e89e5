package socketio_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

func Example() {
	io := socketio.NewServer(socketio.Options{AckTimeout: 10 * time.Second})

	// Refuse clients without a token: their connect_error listener gets
	// err.message "unauthorized" and err.data {"code":"NO_TOKEN"}.
	// Every socket starts in the lobby: joined before its client sees it
	// connected.
	io.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		if len(ev.Socket.Handshake().Auth) == 0 {
			return socketio.ConnectReply{}, &socketio.ConnectError{Message: "unauthorized", Data: map[string]string{"code": "NO_TOKEN"}}
		}
		return socketio.ConnectReply{Rooms: []string{"lobby"}}, nil
	})

	chat := io.Of("/chat")
	chat.OnConnect(func(s *socketio.Socket) {
		s.Emit("welcome", map[string]any{"id": s.ID()})
	})
	chat.On("say", func(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
		// Everyone in the lobby but the sender; the packet is encoded once.
		chat.To("lobby").Except(s.ID()).Emit(s.Context(), "said", ev.Args...)
		if ack != nil {
			ack("ok")
		}
	})
	chat.On("avatar", func(s *socketio.Socket, ev socketio.Event, _ func(...any) error) {
		png, _ := ev.Args[0].([]byte) // binary attachments arrive as []byte
		s.Emit("avatar-size", len(png), map[string]any{"thumbnail": png[:min(len(png), 16)]})
	})
	chat.OnDisconnect(func(s *socketio.Socket, reason socketio.Reason) {
		log.Printf("%s left: %s", s.ID(), reason)
	})

	http.Handle("/socket.io/", io)
}

func ExampleSocket_EmitWithAck() {
	io := socketio.NewServer(socketio.Options{})
	io.Of("/").OnConnect(func(s *socketio.Socket) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reply, err := s.EmitWithAck(ctx, "ping")
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			s.Close()
		case err == nil:
			log.Printf("client answered %v", reply)
		}
	})
}

// userKey is the context key under which the example's hook keeps the user.
type userKey struct{}

func ExampleNamespace_OnConnecting() {
	io := socketio.NewServer(socketio.Options{})
	ns := io.Of("/")
	// The socket starts in its user's room (joined before its client sees
	// it connected), with the user in its context.
	ns.OnConnecting(func(ctx context.Context, ev socketio.ConnectEvent) (socketio.ConnectReply, error) {
		var auth struct{ User string }
		if json.Unmarshal(ev.Socket.Handshake().Auth, &auth) != nil || auth.User == "" {
			return socketio.ConnectReply{}, &socketio.ConnectError{Message: "unauthorized"}
		}
		return socketio.ConnectReply{
			Rooms:   []string{"user:" + auth.User},
			Context: context.WithValue(ctx, userKey{}, auth.User),
		}, nil
	})
	ns.On("whoami", func(s *socketio.Socket, _ socketio.Event, ack func(...any) error) {
		if ack != nil {
			ack(s.Context().Value(userKey{}))
		}
	})
	ns.OnDisconnect(func(s *socketio.Socket, reason socketio.Reason) {
		if reason == socketio.ReasonPingTimeout {
			log.Printf("%v's network went away", s.Context().Value(userKey{}))
		}
	})
}

func ExampleBroadcastOperator_EmitWithAck() {
	io := socketio.NewServer(socketio.Options{})
	ns := io.Of("/")
	// Ask every socket of the user, on every node, and wait at most 2 s.
	acks, err := ns.To("user:42").Timeout(2*time.Second).EmitWithAck(context.Background(), "confirm", "delete?")
	if errors.Is(err, socketio.ErrRequestTimeout) {
		log.Printf("only %d answers in time", len(acks))
	}
}

func ExampleServer_Shutdown() {
	io := socketio.NewServer(socketio.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Clients reconnect (to another node); Shutdown returns once every
	// OnDisconnect handler has run.
	if err := io.Shutdown(ctx); err != nil {
		log.Print(err)
	}
}
