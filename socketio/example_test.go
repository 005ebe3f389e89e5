package socketio_test

import (
	"context"
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
