// Command echoserver serves package echo (sessiongate's Socket.IO server with
// no sessions) for the memory and broadcast benchmarks.
//
// Usage:
//
//	echoserver -addr 127.0.0.1:3100
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiongate/sessiongate/bench/internal/echo"
	"github.com/sessiongate/sessiongate/socketio"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3100", "listen address")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	io, handler := echo.New(socketio.Options{})
	srv := &http.Server{Addr: *addr, Handler: handler}
	go func() {
		<-ctx.Done()
		io.Close()
		srv.Close()
	}()
	log.Printf("echoserver listening on %s", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
