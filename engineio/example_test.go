package engineio_test

import (
	"log"
	"net/http"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
)

// An echo server: every message a client sends comes back to it.
func Example() {
	srv := engineio.NewServer(engineio.Options{
		PingInterval: 25 * time.Second,
		PingTimeout:  20 * time.Second,
		OnConnection: func(s *engineio.Socket) {
			s.OnMessage(func(m engineio.Message) {
				if err := s.Send(m); err != nil {
					log.Printf("echo to %s: %v", s.ID(), err)
				}
			})
			s.OnClose(func(reason string) {
				log.Printf("session %s closed: %s", s.ID(), reason)
			})
		},
	})
	defer srv.Close()

	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	_ = &http.Server{Addr: ":3000", Handler: mux} // then ListenAndServe
}
