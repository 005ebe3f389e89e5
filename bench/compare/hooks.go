package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

// The sections of the application hooks and presence (issue 11):
// subscribes answered from sessiongate's cache and through its hook, client
// events forwarded to the application against the Node baseline's handler
// calling the same endpoint with fetch, and presence as many users join one
// room at once.

// Names of this file's targets, as they appear in the tables.
const (
	nameApp             = "application endpoint"
	nameSGSubscribeHook = "sessiongate serve, through the hook (no ttl)"
	nameSGSubscribeTTL  = "sessiongate serve, answered from cache (ttl 300 s)"
	nameNodeEvents      = "Node socket.io 4.8 baseline, handler calling fetch"
)

// Sections of this file.
const (
	secSubscribe = "subscribe"
	secEvents    = "events"
	secPresence  = "presence"
)

// Room and event names of these sections.
const (
	benchSubscribeRoom = "bench:sub"
	benchPresenceRoom  = "bench:presence"
	benchEvent         = "bench:act"
)

// startApp starts bench/appserver, the application endpoint.
func (e *env) startApp(ctx context.Context) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "appserver"), "-addr", addr)
	cmd.Env = serverEnv()
	return start(ctx, nameApp, addr, cmd)
}

// hookSecret signs sessiongate's hook requests in these sections (the
// application endpoint does not check it; see bench/appserver).
const hookSecret = "bench-hook-secret"

// socketRate is the most requests per second one socket sends: below
// sessiongate's per-connection packet budget (200 messages/s, bursts of
// 500), past which it closes the connection (PACKET_BUDGET).
const socketRate = 180

// ackRun runs the load tool's mode (subscribe or events) against s, n
// sockets with window requests in flight each, for d; it counts the CPU
// time of s and app, and returns the calls app answered during the run.
func (e *env) ackRun(ctx context.Context, mode string, s, app *server, creds string, n, window int, warm, d time.Duration) (*load.Report, int64, error) {
	before := appCalls(ctx, app)
	rep, err := e.runLoad(ctx, "-mode", mode, "-url", s.url, "-cookies", creds, "-n", strconv.Itoa(n),
		"-window", strconv.Itoa(window), "-warm", warm.String(), "-d", d.String(),
		"-room", benchSubscribeRoom, "-event", benchEvent, "-socket-rate", strconv.Itoa(socketRate),
		"-pids", strconv.Itoa(s.pid())+","+strconv.Itoa(app.pid()))
	after := appCalls(ctx, app)
	calls := int64(-1)
	if before >= 0 && after >= 0 {
		calls = after - before
	}
	return rep, calls, err
}

// appCalls is the requests the application endpoint answered (its
// /stats), subscribe and events together; -1 if unknown.
func appCalls(ctx context.Context, app *server) int64 {
	body, err := httpGet(ctx, app.url+"/stats")
	if err != nil {
		return -1
	}
	var st struct{ Subscribe, Events int64 }
	if json.Unmarshal([]byte(body), &st) != nil {
		return -1
	}
	return st.Subscribe + st.Events
}

// subscribe measures subscribes per second, answered from the decision
// cache (the endpoint answers with a ttl; warmed by the first subscribe of
// each socket) and through the hook every time (no ttl): two servers on one
// schema, each with an endpoint of its own, up for the whole section;
// SubscribeRuns rounds of a run on either in turn, a row being the run with
// the median rate.
func (e *env) subscribe(ctx context.Context) ([]row, error) {
	n := e.sizes.SubscribeN
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, n, 0)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	type subTarget struct {
		name, query string
		s, app      *server
	}
	targets := []*subTarget{{name: nameSGSubscribeTTL, query: "?ttl=300"}, {name: nameSGSubscribeHook}}
	for _, t := range targets {
		if t.app, err = e.startApp(ctx); err != nil {
			return nil, err
		}
		defer t.app.stop()
		dir := filepath.Join(e.tmp, "subscribe-"+randomHex(4))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		t.s, err = e.startSessiongateEnv(ctx, dbURL, 5*time.Minute, "RATE_LIMIT=0", "EVENT_RATE_LIMIT=0",
			"SUBSCRIBE_URL="+t.app.url+"/subscribe"+t.query, "HOOK_SECRET="+hookSecret, "DATA_DIR="+dir)
		if err != nil {
			return nil, err
		}
		defer t.s.stop()
	}
	runs := map[string][]row{}
	var errs []error
	for range max(e.sizes.SubscribeRuns, 1) {
		for _, t := range targets {
			if ctx.Err() != nil {
				break
			}
			rep, calls, err := e.ackRun(ctx, load.ModeSubscribe, t.s, t.app, creds, n, e.sizes.SubscribeWindow, e.sizes.RPCWarm, e.sizes.RPCD)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
			r := resultRow(t.name, rep, err)
			r.HookCalls = calls
			runs[t.name] = append(runs[t.name], r)
		}
	}
	var rows []row
	for _, t := range targets {
		rows = append(rows, medianAckRun(t.name, 0, runs[t.name]))
	}
	return rows, errors.Join(errs...)
}

// events measures client events forwarded to the application endpoint, by
// sessiongate (EVENTS_URL) and by the Node baseline's handler (fetch), at
// each of EventsSockets sockets (one event in flight per socket). Both
// servers and the endpoint start once, on one schema, and stay up (warm)
// between the load runs: EventsRuns rounds, each of every socket count on
// either server in turn, so that a drift in what else the machine does
// falls on both alike; a row is the run with the median rate.
func (e *env) events(ctx context.Context) ([]row, error) {
	counts := e.sizes.EventsSockets
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, slices.Max(counts), 0)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	app, err := e.startApp(ctx)
	if err != nil {
		return nil, err
	}
	defer app.stop()
	node, err := e.startNodeEnv(ctx, dbURL, 5*time.Minute, "EVENTS_URL="+app.url+"/events")
	if err != nil {
		return nil, err
	}
	defer node.stop()
	sg, err := e.startSessiongateEnv(ctx, dbURL, 5*time.Minute, "RATE_LIMIT=0", "EVENT_RATE_LIMIT=0",
		"EVENTS_URL="+app.url+"/events", "HOOK_SECRET="+hookSecret)
	if err != nil {
		return nil, err
	}
	defer sg.stop()
	servers := []struct {
		name string
		s    *server
	}{{nameNodeEvents, node}, {nameSessiongate, sg}}
	runs := map[string][]row{}
	var errs []error
	// A warm-up of each server at the largest count, not recorded: Node's
	// JIT compiles the handler and fetch over the first thousands of calls.
	for _, t := range servers {
		if _, err := e.runLoad(ctx, "-mode", load.ModeEvents, "-url", t.s.url, "-cookies", creds, "-n", strconv.Itoa(slices.Max(counts)),
			"-window", "1", "-warm", "500ms", "-d", e.sizes.EventsD.String(), "-event", benchEvent,
			"-socket-rate", strconv.Itoa(socketRate)); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", t.name, err)
		}
	}
	for range max(e.sizes.EventsRuns, 1) {
		for _, n := range counts {
			for _, t := range servers {
				if ctx.Err() != nil {
					break
				}
				rep, _, err := e.ackRun(ctx, load.ModeEvents, t.s, app, creds, n, 1, e.sizes.RPCWarm, e.sizes.EventsD)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s, %d sockets: %w", t.name, n, err))
				}
				r := resultRow(t.name, rep, err)
				r.Sockets = n
				key := t.name + "/" + strconv.Itoa(n)
				runs[key] = append(runs[key], r)
			}
		}
	}
	var rows []row
	for _, n := range counts {
		for _, t := range servers {
			rows = append(rows, medianAckRun(t.name, n, runs[t.name+"/"+strconv.Itoa(n)]))
		}
	}
	return rows, errors.Join(errs...)
}

// medianAckRun is the run of runs with the median ack rate (the lower
// middle one of an even count), with the rate and p99 of every run that
// completed; or the last failure if none did.
func medianAckRun(name string, n int, runs []row) row {
	var ok []row
	for _, r := range runs {
		if r.Error == "" && r.Report != nil && r.Report.Latency != nil {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		if len(runs) == 0 {
			r := failedRow(name, errors.New("not run"))
			r.Sockets = n
			return r
		}
		return runs[len(runs)-1]
	}
	var rates, p99s []float64
	for _, r := range ok {
		rates = append(rates, r.Report.AckRate)
		p99s = append(p99s, r.Report.Latency.P99)
	}
	slices.SortFunc(ok, func(a, b row) int { return cmp.Compare(a.Report.AckRate, b.Report.AckRate) })
	m := ok[(len(ok)-1)/2]
	m.RunRates, m.RunP99 = rates, p99s
	return m
}

// presenceSpread is how long the presence section's subscribes take, and
// presenceWindow the contract's coalescing window: at most one presence
// event per room per window, so a socket that joined in the first should
// get at most 1 + spread/window events.
const (
	presenceSpread = time.Second
	presenceWindow = 500 * time.Millisecond
)

// presenceMaxEvents is the most presence events one socket may get while
// the users join: one per window.
func presenceMaxEvents() int { return 1 + int((presenceSpread+presenceWindow-1)/presenceWindow) }

// presence has PresenceN users (one socket each) join one presence room
// within a second.
func (e *env) presence(ctx context.Context) ([]row, error) {
	n := e.sizes.PresenceN
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, n, 0)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	s, err := e.startSessiongateEnv(ctx, dbURL, 5*time.Minute, "RATE_LIMIT=0", "EVENT_RATE_LIMIT=0",
		"PUBLIC_ROOMS="+benchPresenceRoom, "PRESENCE_ROOMS="+benchPresenceRoom,
		"PRESENCE_MAX_MEMBERS="+strconv.Itoa(n))
	if err != nil {
		return []row{failedRow(nameSessiongate, err)}, err
	}
	defer s.stop()
	rep, err := e.runLoad(ctx, "-mode", load.ModePresence, "-url", s.url, "-cookies", creds, "-n", strconv.Itoa(n),
		"-room", benchPresenceRoom, "-spread", presenceSpread.String(), "-settle", "2s", "-timeout", "30s")
	return []row{resultRow(nameSessiongate, rep, err)}, err
}

// rpcRow finds the row of server at n sockets.
func rpcRow(s *section, server string, n int) *row {
	if s == nil {
		return nil
	}
	for i := range s.Rows {
		r := &s.Rows[i]
		if r.Server == server && r.Sockets == n && r.Error == "" && r.Report != nil && r.Report.Latency != nil {
			return r
		}
	}
	return nil
}

// cpuPerAck is the CPU time of the counted processes per acked request, in µs.
func cpuPerAck(rep *load.Report) string {
	acks := rep.AckOK + rep.AckFailed
	if acks == 0 || rep.ServerCPUSeconds <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f µs", rep.ServerCPUSeconds/float64(acks)*1e6)
}

// allRuns lists the rate (and p99) of every run of an ack row.
func allRuns(r *row) string {
	var each []string
	for i, v := range r.RunRates {
		if i < len(r.RunP99) {
			each = append(each, fmt.Sprintf("%.0f (%.0f)", v, r.RunP99[i]))
		}
	}
	if len(each) == 0 {
		return "—"
	}
	return strings.Join(each, ", ")
}

// refusedCell lists an rpc row's refused acks by code.
func refusedCell(rep *load.Report) string {
	if rep.AckFailed == 0 {
		return "0"
	}
	var parts []string
	for code, n := range rep.AckErrors {
		parts = append(parts, fmt.Sprintf("%s: %d", code, n))
	}
	return strings.Join(parts, ", ")
}

// renderHooksSummary writes the goal rows of this file's sections.
func renderHooksSummary(p printer, r *results) {
	if s := r.Sections[secSubscribe]; s != nil {
		ttl, hook := find(s, nameSGSubscribeTTL), find(s, nameSGSubscribeHook)
		if ttl != nil && hook != nil && ttl.Report.Latency != nil && hook.Report.Latency != nil {
			p("| subscribes/s, %d sockets × %d in flight: from cache; through the hook | measured (no target) | %.0f/s (p99 %.1f ms); %.0f/s (p99 %.1f ms) | — | — |",
				s.Sizes.SubscribeN, s.Sizes.SubscribeWindow, ttl.Report.AckRate, ttl.Report.Latency.P99, hook.Report.AckRate, hook.Report.Latency.P99)
		}
	}
	if s := r.Sections[secEvents]; s != nil {
		n := s.Sizes.EventsGoalSockets
		sg, node := rpcRow(s, nameSessiongate, n), rpcRow(s, nameNodeEvents, n)
		if sg != nil && node != nil && node.Report.AckRate > 0 && node.Report.Latency.P99 > 0 {
			rate := sg.Report.AckRate / node.Report.AckRate
			lat := sg.Report.Latency.P99 / node.Report.Latency.P99
			p("| client events forwarded to the app and acked, %d sockets (one in flight each) | ≥ 3× Node's rate at ≤ ½ its p99 | %.0f/s (p99 %.1f ms) | %.0f/s (p99 %.1f ms) | %s (%.2f× the rate, %.2f× the p99) |",
				n, sg.Report.AckRate, sg.Report.Latency.P99, node.Report.AckRate, node.Report.Latency.P99,
				verdict(rate >= 3 && lat <= 0.5), rate, lat)
		}
	}
	if s := r.Sections[secPresence]; s != nil {
		if sg := find(s, nameSessiongate); sg != nil && sg.Report.Presence != nil {
			pr := sg.Report.Presence
			ok := pr.Complete == pr.Users && pr.RepeatedJoins == 0 && pr.LeftEntries == 0 && pr.MaxEvents <= presenceMaxEvents()
			p("| presence: %d users join one room within %s | every member learns of every user, no join twice; no storm (≤ %d events a socket, one per 500 ms) | %d/%d members learnt of all, %d repeated joins; %d events in all, ≤ %d a socket (naive fan-out: %d messages) | — | %s |",
				pr.Users, presenceSpread, presenceMaxEvents(), pr.Complete, pr.Users, pr.RepeatedJoins, pr.Events, pr.MaxEvents, pr.Naive, verdict(ok))
		}
	}
}

func renderSubscribe(p printer, s *section) {
	if !header(p, "14. Subscribes: from the cache and through the hook", s) {
		return
	}
	p("%d sockets, each with its own session of its own user, each keep %d requests in flight (a new one", s.Sizes.SubscribeN, s.Sizes.SubscribeWindow)
	p("as soon as an ack comes back), alternating `subscribe` and `unsubscribe` of one room")
	p("(`%s`), at most %d requests a second per socket (sessiongate's packet budget is 200 messages/s),", benchSubscribeRoom, socketRate)
	p("for %s after %s of warm-up, with `EVENT_RATE_LIMIT=0`. A socket's requests are", s.Sizes.RPCD, s.Sizes.RPCWarm)
	p("handled one at a time, in order (contract §12), so its window queues at the server. The room")
	p("is neither public nor a `user:` room, so every `subscribe` goes to the rules: `SUBSCRIBE_URL` is")
	p("`bench/appserver` (a small Go net/http server, keep-alive, answering `{\"allow\":true}` without")
	p("checking the signature), started for the run. *From cache*: the endpoint answers with `\"ttl\":300`,")
	p("so after each socket's first subscribe (in the warm-up) the decision is reused; *through the hook*:")
	p("no ttl, so every subscribe is a signed POST to the endpoint. An `unsubscribe` asks no one. The")
	p("rate and the latency are the subscribes' (request sent to ack read); *all requests/s* counts the")
	p("unsubscribes too. *CPU per request* is sessiongate's and the endpoint's CPU time (user + system,")
	p("`/proc/<pid>/stat`) over the window divided by the subscribes and unsubscribes acked. The")
	p("server, the endpoint, the load tool and PostgreSQL are separate processes on the same %d cores,", 2)
	p("none pinned. Both servers (one schema, an endpoint each) stay up for the section: %d rounds of a", s.Sizes.SubscribeRuns)
	p("run on either in turn; a row is the run with the median rate, the last column every run's rate")
	p("and p99. *Hook calls* are the requests the endpoint answered during the row's run (warm-up,")
	p("window, drain): without a ttl one per subscribe; with one, none once the first run has filled")
	p("the cache (one per socket in that run).")
	p("")
	p("| server | sockets | subscribes acked | refused | **subscribes/s** | all requests/s | p50 | p99 | max (ms) | CPU per request (server + endpoint) | load tool CPU (cores) | hook calls | all runs: subscribes/s (p99 ms) |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil || r.Report.Latency == nil {
			continue
		}
		rep := r.Report
		calls := "—"
		if r.HookCalls >= 0 {
			calls = strconv.FormatInt(r.HookCalls, 10)
		}
		p("| %s | %d of %d | %d | %s | **%.0f** | %.0f | %.2f | %.2f | %.1f | %s | %.2f | %s | %s |", r.Server, rep.Connected, rep.Requested,
			rep.AckOK-rep.Unsubscribes, refusedCell(rep), rep.AckRate, rep.RequestRate, rep.Latency.P50, rep.Latency.P99, rep.Latency.Max,
			cpuPerAck(rep), rep.ClientCPUSeconds/s.Sizes.RPCD.Seconds(), calls, allRuns(&r))
	}
	p("")
	errorRows(p, s)
	p("")
	p("Profiled by hand (`-tags sessiongate_pprof`, the cached configuration, 256 sockets, about 12,000")
	p("requests/s), sessiongate used 0.4 of a core: the decision from the cache is 3%% of it, `encoding/json`")
	p("(the request's decoding, the ack's encoding) 17%%, the system calls of the websocket's reads and")
	p("writes 39%%. The latencies above are those of a machine whose cores were busy with")
	p("other work as well (the load average), not of the server's own cost.")
	p("")
}

func renderEvents(p printer, s *section) {
	if !header(p, "15. Client events forwarded to the application", s) {
		return
	}
	p("Each socket (its own session, its own user) sends the client event `%s` `{\"n\": <seq>}` with an", benchEvent)
	p("ack, and the next one as soon as the ack comes back (one in flight per socket), at most %d a second", socketRate)
	p("per socket (sessiongate closes a connection past its packet budget of 200 messages/s), for %s", s.Sizes.EventsD)
	p("after %s of warm-up. The server forwards it to the application endpoint `POST /events` of", s.Sizes.RPCWarm)
	p("`bench/appserver` (a small Go net/http server, keep-alive; it decodes the JSON body and answers")
	p("`{\"ok\":true,\"event\":…,\"echo\":<args[0]>}`, without checking a signature) and acks the")
	p("answer. sessiongate: `EVENTS_URL` (contract §13: one call in flight per socket, order kept, at most")
	p("64 calls in flight per process, signed, with the socket's Cookie), `EVENT_RATE_LIMIT=0`. Node: the")
	p("baseline with `EVENTS_URL`, a `socket.onAny` handler that calls the endpoint with Node's global")
	p("`fetch` (undici, keep-alive by default, no connection limit) with the same body and the Cookie,")
	p("and acks the JSON. Both servers and the endpoint start once and stay up between the load runs:")
	p("one unrecorded warm-up run of each at %d sockets (Node's JIT compiles the handler and `fetch`", slices.Max(s.Sizes.EventsSockets))
	p("over the first calls), then %d rounds, each of every socket count on either server in turn, so", s.Sizes.EventsRuns)
	p("that a drift in what else the machine does falls on both alike (see the load average: other work")
	p("shared the machine); a row is the run with the median rate, and the last column lists")
	p("every run's rate and p99. Latency is from the event's send to its ack's read. *CPU per event* is the")
	p("server's and the endpoint's CPU time over the window divided by the acks. The server, the")
	p("endpoint, the load tool and PostgreSQL are separate processes on the same 2 cores, none pinned;")
	p("Node runs its JavaScript on one core, sessiongate may use both.")
	p("")
	p("| server | sockets | acked | refused | **events/s** | p50 | p99 | max (ms) | CPU per event (server + endpoint) | server + endpoint CPU (cores) | load tool CPU (cores) | all runs: events/s (p99 ms) |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil || r.Report.Latency == nil {
			continue
		}
		rep := r.Report
		p("| %s | %d | %d | %s | **%.0f** | %.2f | %.2f | %.1f | %s | %.2f | %.2f | %s |", r.Server, r.Sockets, rep.AckOK, refusedCell(rep),
			rep.AckRate, rep.Latency.P50, rep.Latency.P99, rep.Latency.Max, cpuPerAck(rep),
			rep.ServerCPUSeconds/s.Sizes.EventsD.Seconds(), rep.ClientCPUSeconds/s.Sizes.EventsD.Seconds(), allRuns(&r))
	}
	p("")
	errorRows(p, s)
	p("")
	var ratios []string
	for _, n := range s.Sizes.EventsSockets {
		sg, node := rpcRow(s, nameSessiongate, n), rpcRow(s, nameNodeEvents, n)
		if sg == nil || node == nil || node.Report.AckRate == 0 || node.Report.Latency.P99 == 0 {
			continue
		}
		ratios = append(ratios, fmt.Sprintf("%d sockets: %.2f× the rate, %.2f× the p99", n,
			sg.Report.AckRate/node.Report.AckRate, sg.Report.Latency.P99/node.Report.Latency.P99))
	}
	if len(ratios) > 0 {
		p("sessiongate against Node: %s. The goal row of the summary is the %d-socket run.", strings.Join(ratios, "; "), s.Sizes.EventsGoalSockets)
		p("")
	}
	eventsNotes(p)
}

func renderPresence(p printer, s *section) {
	if !header(p, "16. Presence: 1,000 users join one room", s) {
		return
	}
	p("%d sockets, each with its own session of its own user, connect to one `sessiongate serve` with", s.Sizes.PresenceN)
	p("`PRESENCE_ROOMS=%s`, `PUBLIC_ROOMS=%s` and `PRESENCE_MAX_MEMBERS=%d` (so that no list", benchPresenceRoom, benchPresenceRoom, s.Sizes.PresenceN)
	p("is truncated and every user can be checked); then each subscribes to the room, the subscribes")
	p("spread evenly over one second. Each socket keeps what it is told: its subscribe ack's snapshot")
	p("(`presence.users`), then every `presence` event's `joined` and `left` (contract §15); the run")
	p("waits until every socket knows all %d users, then 2 s more for late or repeated events.", s.Sizes.PresenceN)
	p("*Repeated joins* counts (socket, user) pairs in the `joined` list of more than one event — the")
	p("deduplication; *in snapshot and an event* those a socket was told of twice, by its snapshot and by")
	p("the event of the window it joined in (allowed: a client applies the lists idempotently). The naive")
	p("design sends every join to every other member: %d × %d = %d messages. *Messages received* counts", s.Sizes.PresenceN, s.Sizes.PresenceN-1, s.Sizes.PresenceN*(s.Sizes.PresenceN-1))
	p("every websocket message the sockets got after the first subscribe (the events, the acks, pings);")
	p("*complete after* is the time from the first subscribe until a socket knew every user. The goal's")
	p("*no storm* is the contract's coalescing: at most one event per room per 500 ms, so at most %d", presenceMaxEvents())
	p("events for a socket while the users join over %s.", presenceSpread)
	p("")
	p("| server | users | subscribes ok | **presence events** | their bytes | messages received | most events on one socket | naive fan-out | learnt of every user | repeated joins | in snapshot and an event | left entries | truncated | final count | complete after: p50 | p99 | last (ms) |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil || r.Report.Presence == nil {
			continue
		}
		pr := r.Report.Presence
		d := pr.CompleteMs
		if d == nil {
			d = &load.Dist{}
		}
		final := strconv.Itoa(pr.FinalCount)
		if pr.FinalCountOther > 0 {
			final += fmt.Sprintf(" (%d sockets ended on another)", pr.FinalCountOther)
		}
		p("| %s | %d | %d | **%d** | %.1f MiB | %d | %d | %d | %d of %d | %d | %d | %d | %d | %s | %.0f | %.0f | %.0f |", r.Server, pr.Users, pr.AckedOK,
			pr.Events, float64(pr.EventBytes)/(1<<20), pr.Messages, pr.MaxEvents, pr.Naive, pr.Complete, pr.Users, pr.RepeatedJoins, pr.Overlap, pr.LeftEntries,
			pr.Truncated, final, d.P50, d.P99, d.Max)
	}
	p("")
	errorRows(p, s)
	p("")
}

// eventsNotes says what the events figures show beyond the table: where
// sessiongate's time goes and what the per-process cap of 64 calls does
// (measured by hand, as the text says).
func eventsNotes(p printer) {
	p("Where sessiongate's time goes (CPU profile of `sessiongate serve` built with `-tags")
	p("sessiongate_pprof`, 256 sockets, 12,400 events/s, 6 s, by hand on a less busy machine): about")
	p("58 µs of CPU per event: net/http's client about 45%% (the request, its per-connection read and")
	p("write goroutines and the hand-offs between them, their system calls), the websocket side about")
	p("28%% (reading the event, writing the ack: mostly system calls), `encoding/json` about 12%% (the")
	p("event's decoding, the body's encoding, the answer's check and the ack), the garbage collector")
	p("5%%, the HMAC 1%%. Measured alone (its own CPU time over a run), sessiongate takes 58–90 µs per")
	p("event depending on how busy the machine is, and the application endpoint 35 µs (the CPU column")
	p("counts both); Node's CPU per event is about five times sessiongate's. The rates are bounded by this")
	p("machine's two cores, which the servers share with the endpoint, the load tool and the other work")
	p("visible in the load average: the same")
	p("configuration measured by hand ranged from 7,500 to 12,500 events/s from one run to the next.")
	p("")
	p("The per-process cap of 64 calls in flight (contract §13) is not what limits: with 256 and 1,024")
	p("sockets, a build with the cap raised to 512 gave 13,291 and 11,179 events/s (256 sockets) against")
	p("12,456 and 7,532 with 64, and 11,071 and 6,593 (1,024 sockets) against 10,741 and 10,281 —")
	p("differences within the run-to-run spread, the CPU being the bound. A setting for the cap is not")
	p("warranted by these figures; with a slower application (tens of milliseconds per answer) the cap")
	p("would bound the rate at 64 ÷ the answer time, and the calls past it wait for a slot within")
	p("`HOOK_TIMEOUT`.")
	p("")
}
