//go:build sessiongate_pprof

package main

// Built with -tags sessiongate_pprof, the binary serves net/http/pprof on
// SESSIONGATE_PPROF_ADDR (a loopback address) for profiling under load; see
// bench/README.md. Release builds do not contain it.

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

func init() {
	addr := os.Getenv("SESSIONGATE_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		// http.DefaultServeMux holds only pprof's handlers: the server's
		// own routes are on their own mux.
		err := http.ListenAndServe(addr, nil)
		slog.Error("pprof listener stopped", "addr", addr, "err", err)
	}()
}
