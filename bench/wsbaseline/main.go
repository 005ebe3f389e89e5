// Command wsbaseline is the plain websocket baseline of the memory benchmark:
// a github.com/coder/websocket echo server with one goroutine (and its
// buffers) per connection, the usual way a Go websocket server is written.
// Every path but GET /debug/gc (collect garbage and return freed memory to
// the operating system, before a measurement) accepts websockets.
//
// Usage:
//
//	wsbaseline -addr 127.0.0.1:3101
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/coder/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3101", "listen address")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("/", echo)
	mux.HandleFunc("GET /debug/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{
		Addr:        *addr,
		Handler:     mux,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Printf("wsbaseline listening on %s", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// echo accepts a websocket and writes back every message it reads, until the
// connection or the server closes.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}
