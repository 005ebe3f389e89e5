package siotest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

// A test connects, sends an event, and awaits the server's answer.
func ExampleDial() {
	srv := socketio.NewServer(socketio.Options{})
	srv.Of("/").On("ping", func(s *socketio.Socket, ev socketio.Event, _ func(...any) error) {
		s.Emit("pong", ev.Args...)
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := siotest.Dial(ctx, hs.URL, siotest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if _, err := c.Connected(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Emit(ctx, "ping", "hello"); err != nil {
		fmt.Println(err)
		return
	}
	ev, err := c.WaitEvent(ctx, "pong")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Name, string(ev.Args[0]))
	// Output: pong "hello"
}
