// Command loadtool is a Socket.IO v4 load client (websocket transport only)
// for sessiongate's benchmarks. It prints progress on stderr and one JSON
// report on stdout.
//
// Modes:
//
//	idle       open -n connections, settle, sample the server's RSS (-pid), hold (-hold)
//	handshake  -c connections connect-until-authenticated-then-close for -d; rate and latency
//	broadcast  open -n, make the server broadcast once (-trigger or -publish-url), time receipt
//	revoke     open -n with distinct sessions, DELETE them all in one commit, time session_expired
//	attack     -n anonymous connections attack for -d (attachments, pings, events, fragments,
//	           headers, stalled bodies); the server's peak RSS growth (-pid)
//	slowread   -n authenticated connections that never read; -publishes × -publish-bytes to -room
//	storm      -n clients at once, retrying with socket.io-client's backoff; time until all are in
//	fanout     -n sockets of distinct users spread over -urls; -rounds publishes to every user
//	           room, time until the last socket has each; with -single D, D of single-user
//	           publishes from -publishers, deliveries/s; with -redis, the bus's output bytes
//	subscribe  -n sockets alternate subscribe/unsubscribe of -room, -window acks in flight each,
//	           for -d after -warm: subscribes/s and their ack latency (the server's cache or hook)
//	events     the same with client events -event {"n":seq} (forwarded to the server's app): acks/s
//	presence   -n sockets of as many users subscribe to the presence room -room over -spread:
//	           events and messages received, every user learnt of exactly once, time to converge
//
// Examples:
//
//	loadtool -mode idle -url http://127.0.0.1:3000 -n 10000 -cookies creds.tsv -pid 1234
//	loadtool -mode handshake -url http://127.0.0.1:3000 -c 100 -d 10s -cookies creds.tsv
//	loadtool -mode broadcast -url http://127.0.0.1:3100 -n 10000 -trigger broadcast
//	loadtool -mode revoke -url http://127.0.0.1:3000 -n 1000 -cookies creds.tsv \
//	    -db 'postgres://postgres@127.0.0.1:5432/test?search_path=bench' -table session
//	loadtool -mode fanout -urls http://127.0.0.1:3001,http://127.0.0.1:3002 -n 3000 -cookies creds.tsv \
//	    -publish-url http://127.0.0.1:3001/api/publish -publish-key K -rounds 5 -single 10s -redis 127.0.0.1:6390
//
// A credentials file (-cookies) has one session a line: the session id, a
// tab, and the Cookie header to send (as written by bench/seed). Only
// loopback targets are accepted, at most 20000 connections, and every wait is
// bounded. (Go raises its own soft limit on open files to the hard limit;
// run it under `ulimit -n 20000`.)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtool:", err)
		os.Exit(1)
	}
}

// run parses args, performs the run and writes the report to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: loadtool -mode MODE [flags]

A Socket.IO v4 load client (websocket only) for loopback servers. Modes:
  idle       open -n connections, settle, sample the server's RSS (-pid), hold (-hold)
  handshake  -c connections connect-until-authenticated-then-close for -d; rate and latency
  broadcast  open -n, make the server broadcast once (-trigger or -publish-url), time receipt
  revoke     open -n with distinct sessions, DELETE them in one commit (-db), time session_expired
  attack     -n anonymous connections attack for -d; the server's peak RSS growth (-pid)
  slowread   -n authenticated connections that never read; -publishes x -publish-bytes to -room
  storm      -n clients at once, retrying with socket.io-client's backoff; time until all are in
  fanout     -n sockets of distinct users over -urls; -rounds publishes to every user room;
             -single D of single-user publishes (deliveries/s); -redis: the bus's output bytes
  subscribe  -n sockets alternate subscribe/unsubscribe of -room, -window acks in flight each,
             for -d after -warm: subscribes/s and their ack latency
  events     the same with client events -event {"n":seq}: acks/s and latency
  presence   -n sockets of as many users subscribe to presence room -room over -spread:
             events and messages received, every user learnt of exactly once
Prints progress on stderr and one JSON report on stdout.

`)
		fs.PrintDefaults()
	}
	var (
		cfg     = load.Config{Progress: stderr}
		cookies = fs.String("cookies", "", "credentials file: <sid>\\t<Cookie header> per line")
		cookie  = fs.String("cookie", "", "one Cookie header for every connection")
		sources = fs.Int("sources", 4, "number of loopback source addresses (127.0.0.1, .2, ...)")
		pids    = fs.String("pids", "", "fanout, subscribe, events: comma-separated process ids whose CPU time is counted (the servers, their bus, the app)")
		urls    = fs.String("urls", "", "fanout: comma-separated server base URLs the sockets are spread over (default -url)")
	)
	fs.StringVar(&cfg.Mode, "mode", load.ModeIdle, "idle, handshake, broadcast, revoke, attack, slowread, storm, fanout, subscribe, events or presence")
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:3000", "server base URL (loopback only)")
	fs.BoolVar(&cfg.Raw, "raw", false, "plain websocket at -url, no Engine.IO (idle only)")
	fs.IntVar(&cfg.N, "n", 100, "connections to open (idle, broadcast, revoke)")
	fs.IntVar(&cfg.Concurrency, "c", 100, "parallel dials; connections in handshake mode")
	fs.IntVar(&cfg.Loops, "loops", 1, "handshake mode: event loops (OS threads) sharing the -c connections")
	fs.DurationVar(&cfg.Duration, "d", 0, "handshake run length (default 10s)")
	fs.StringVar(&cfg.Auth, "auth", "", "JSON auth payload of the CONNECT packet")
	fs.DurationVar(&cfg.Settle, "settle", 0, "pause after connecting, before measuring and acting")
	fs.DurationVar(&cfg.Hold, "hold", 0, "idle: keep the connections this long after measuring")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound on waiting for the event (default 2m)")
	fs.IntVar(&cfg.ServerPID, "pid", 0, "server process id: sample its VmRSS before and after connecting")
	fs.StringVar(&cfg.GCURL, "gc-url", "", "server URL to GET before each RSS sample, to collect garbage")
	fs.StringVar(&cfg.Event, "event", "", "event to time (default tick; session_expired for revoke)")
	fs.StringVar(&cfg.Trigger, "trigger", "", "broadcast: event the first socket sends to make the server broadcast")
	fs.StringVar(&cfg.PublishURL, "publish-url", "", "broadcast: POST /api/publish URL")
	fs.StringVar(&cfg.PublishKey, "publish-key", "", "broadcast: the publish bearer key")
	fs.IntVar(&cfg.Publishes, "publishes", 60, "slowread: publishes to make")
	fs.IntVar(&cfg.PublishBytes, "publish-bytes", 1_000_000, "slowread: bytes of each publish's data")
	fs.StringVar(&cfg.Room, "room", "", "broadcast: the room to publish to")
	fs.StringVar(&cfg.DatabaseURL, "db", "", "revoke: PostgreSQL URL (loopback only)")
	fs.StringVar(&cfg.Table, "table", "session", "revoke: the session table")
	fs.IntVar(&cfg.Rounds, "rounds", 5, "fanout: publishes to every user room (after 3 warm-up ones)")
	fs.DurationVar(&cfg.Single, "single", 0, "fanout: length of the single-user publish phase (0: none)")
	fs.IntVar(&cfg.Publishers, "publishers", 32, "fanout: concurrent single-user publishers")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "fanout: host:port of the bus's Redis, whose INFO stats output bytes are counted")
	fs.IntVar(&cfg.Window, "window", 1, "subscribe, events: requests in flight per socket")
	fs.DurationVar(&cfg.Warm, "warm", 0, "subscribe, events: requests before measuring (default 2s)")
	fs.Float64Var(&cfg.SocketRate, "socket-rate", 0, "subscribe, events: most requests per second from one socket (0: no limit)")
	fs.DurationVar(&cfg.Spread, "spread", 0, "presence: the subscribes are spread over this (default 1s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Sources = load.Sources(*sources)
	if *urls != "" {
		cfg.URLs = strings.Split(*urls, ",")
	}
	if *pids != "" {
		for _, f := range strings.Split(*pids, ",") {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 0 {
				return fmt.Errorf("-pids: bad process id %q", f)
			}
			cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
		}
	}
	switch {
	case *cookies != "" && *cookie != "":
		return fmt.Errorf("use one of -cookies and -cookie")
	case *cookies != "":
		f, err := os.Open(*cookies)
		if err != nil {
			return err
		}
		cfg.Creds, err = load.ReadCredentials(f)
		f.Close()
		if err != nil {
			return err
		}
	case *cookie != "":
		cfg.Creds = []load.Credential{{Cookie: *cookie}}
	}
	rep, err := load.Run(ctx, cfg)
	if rep != nil {
		stdout.Write(rep.MarshalLine())
	}
	return err
}
