// Command echo is the server the official Engine.IO and Socket.IO protocol
// test suites (the test-suite directories of socketio/engine.io-protocol and
// socketio/socket.io-protocol) run against.
//
// Socket.IO is served at /socket.io/ with the namespaces "/" and "/custom":
// on connect a socket receives "auth" with its handshake's auth payload,
// "message" is answered with "message-back" and the same arguments, and
// "message-with-ack" is acknowledged with the same arguments. A bare
// Engine.IO server at /engine.io/ echoes every message.
//
//	go run ./examples/echo -addr :3000
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/socketio"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flag.Parse()

	engineOpts := engineio.Options{
		PingInterval: 300 * time.Millisecond,
		PingTimeout:  200 * time.Millisecond,
		MaxPayload:   1e6,
	}

	io := socketio.NewServer(socketio.Options{Engine: engineOpts, ConnectTimeout: time.Second})
	for _, name := range []string{"/", "/custom"} {
		ns := io.Of(name)
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
	}

	echoOpts := engineOpts
	echoOpts.OnConnection = func(s *engineio.Socket) {
		// A bare Engine.IO echo has no authentication: every session is
		// admitted at once, so MaxPayload (not MaxPendingPayload) applies.
		s.Admit()
		s.OnMessage(func(m engineio.Message) {
			s.Send(engineio.Message{Data: append([]byte(nil), m.Data...), Binary: m.Binary})
		})
	}
	eio := engineio.NewServer(echoOpts)

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io)
	mux.Handle("/engine.io/", eio)
	log.Printf("echo: listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
