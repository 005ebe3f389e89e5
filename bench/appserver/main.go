// Command appserver is the application endpoint of sessiongate's hook
// benchmarks: a small net/http server (keep-alive, as net/http serves by
// default) standing in for the Node app behind SUBSCRIBE_URL and EVENTS_URL,
// and for the endpoint the Node baseline's event handler fetches.
//
//	POST /subscribe        {"allow":true}: the hook is asked every time
//	POST /subscribe?ttl=N  {"allow":true,"ttl":N}: sessiongate may cache it
//	POST /events           decodes the JSON body and answers
//	                       {"ok":true,"event":<event>,"echo":<args[0]>}
//	GET  /stats            {"subscribe":N,"events":N}: requests answered
//
// It does not check X-Sessiongate-Signature: the Node baseline's fetch
// sends none, and the endpoint is to cost both servers the same. Usage:
//
//	appserver -addr 127.0.0.1:3900
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// maxBody bounds a request body read.
const maxBody = 64 << 10

func main() {
	addr := flag.String("addr", "127.0.0.1:3900", "listen address (loopback)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "appserver: -addr must be a loopback host:port")
		os.Exit(2)
	}
	var subscribes, events atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /subscribe", func(w http.ResponseWriter, r *http.Request) {
		// The body is read as an application would, though the answer does
		// not depend on it.
		if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
			http.Error(w, `{"error":"body"}`, http.StatusBadRequest)
			return
		}
		subscribes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if ttl, err := strconv.Atoi(r.URL.Query().Get("ttl")); err == nil && ttl > 0 {
			fmt.Fprintf(w, `{"allow":true,"ttl":%d}`, ttl)
			return
		}
		io.WriteString(w, `{"allow":true}`)
	})
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Event string            `json:"event"`
			Args  []json.RawMessage `json:"args"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&body); err != nil {
			http.Error(w, `{"error":"body is not JSON"}`, http.StatusBadRequest)
			return
		}
		events.Add(1)
		echo := json.RawMessage("null")
		if len(body.Args) > 0 {
			echo = body.Args[0]
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			OK    bool            `json:"ok"`
			Event string          `json:"event"`
			Echo  json.RawMessage `json:"echo"`
		}{true, body.Event, echo})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"subscribe":%d,"events":%d}`, subscribes.Load(), events.Load())
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Fatal(srv.ListenAndServe())
}
