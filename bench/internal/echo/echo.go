// Package echo is the Socket.IO server of sessiongate's protocol benchmarks:
// package socketio with no sessions. Every socket joins the room "bench";
// "echo" is answered (by ack, or by an "echo" event) with its arguments, and
// "broadcast" makes the server emit an event to the whole room — by default
// "tick", or the "event" named in the first argument.
package echo

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"

	"github.com/sessiongate/sessiongate/socketio"
)

// Room is the room every socket joins.
const Room = "bench"

// New returns the server and a handler serving it at /socket.io/, with
// GET /debug/gc, which collects garbage and returns freed memory to the
// operating system before a memory measurement.
func New(opts socketio.Options) (*socketio.Server, http.Handler) {
	srv := socketio.NewServer(opts)
	ns := srv.Of("/")
	// Joined by the connect hook, not OnConnect: the room then holds the
	// socket before its CONNECT is sent, so a broadcast triggered by another
	// client that has seen every socket connect reaches this one too.
	ns.OnConnecting(func(context.Context, socketio.ConnectEvent) (socketio.ConnectReply, error) {
		return socketio.ConnectReply{Rooms: []string{Room}}, nil
	})
	ns.On("echo", func(s *socketio.Socket, ev socketio.Event, ack func(args ...any) error) {
		if ack != nil {
			ack(ev.Args...)
			return
		}
		s.Emit("echo", ev.Args...)
	})
	ns.On("broadcast", func(s *socketio.Socket, ev socketio.Event, _ func(args ...any) error) {
		name := "tick"
		if len(ev.Args) > 0 {
			if m, ok := ev.Args[0].(map[string]any); ok {
				if e, ok := m["event"].(string); ok && e != "" {
					name = e
				}
			}
		}
		ns.To(Room).Emit(context.Background(), name, map[string]any{"bench": true})
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	mux.HandleFunc("GET /debug/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})
	return srv, mux
}
