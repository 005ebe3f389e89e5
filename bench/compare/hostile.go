package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

// The hostile sections: what an attacker can make a server hold, and
// whether honest clients still get in.

// attack runs AttackN anonymous attackers for AttackD against each server
// (sessiongate with its default limits) and records the peak RSS growth.
func (e *env) attack(ctx context.Context) ([]row, error) {
	return e.eachAuthTarget(ctx, 1, func(ctx context.Context, s *server, creds string) (row, error) {
		rep, err := e.runLoad(ctx, "-mode", "attack", "-url", s.url, "-n", strconv.Itoa(e.sizes.AttackN),
			"-d", e.sizes.AttackD.String(), "-pid", strconv.Itoa(s.pid()), "-cookies", creds)
		return row{Report: rep}, err
	})
}

// slowRead opens SlowN authenticated sockets that never read and publishes
// Publishes × 1 MB to their room.
func (e *env) slowRead(ctx context.Context) ([]row, error) {
	return e.eachAuthTarget(ctx, e.sizes.SlowN, func(ctx context.Context, s *server, creds string) (row, error) {
		rep, err := e.runLoad(ctx, "-mode", "slowread", "-url", s.url, "-n", strconv.Itoa(e.sizes.SlowN),
			"-pid", strconv.Itoa(s.pid()), "-cookies", creds, "-publish-url", s.publishURL,
			"-publish-key", e.publishKey, "-room", "user:1", "-publishes", strconv.Itoa(e.sizes.Publishes),
			"-publish-bytes", "1000000", "-settle", "2s")
		return row{Report: rep}, err
	})
}

// storm starts StormN clients at once, from four addresses, against each
// server with its default limits; each retries with socket.io-client's
// backoff.
func (e *env) storm(ctx context.Context) ([]row, error) {
	return e.eachAuthTarget(ctx, e.sizes.StormN, func(ctx context.Context, s *server, creds string) (row, error) {
		rep, err := e.runLoad(ctx, "-mode", "storm", "-url", s.url, "-n", strconv.Itoa(e.sizes.StormN),
			"-cookies", creds, "-sources", "4", "-timeout", "2m")
		return row{Report: rep}, err
	})
}

// eachAuthTarget runs fn against the Node baseline and sessiongate serve
// (default limits), each on a fresh schema of n sessions of user 1.
func (e *env) eachAuthTarget(ctx context.Context, n int, fn func(context.Context, *server, string) (row, error)) ([]row, error) {
	targets := []target{
		{nameNode, func(ctx context.Context, db string) (*server, error) { return e.startNode(ctx, db, 5*time.Minute) }, true},
		{nameSessiongate, func(ctx context.Context, db string) (*server, error) {
			return e.startSessiongateLimited(ctx, db, 5*time.Minute)
		}, true},
	}
	var rows []row
	var errs []error
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		r, err := e.hostileRun(ctx, t, n, fn)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			r = failedRow(t.name, err)
		}
		r.Server = t.name
		rows = append(rows, r)
	}
	return rows, errors.Join(errs...)
}

func (e *env) hostileRun(ctx context.Context, t target, n int, fn func(context.Context, *server, string) (row, error)) (row, error) {
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, n, 1)
	if err != nil {
		return row{}, err
	}
	defer cleanup()
	s, err := t.start(ctx, dbURL)
	if err != nil {
		return row{}, err
	}
	defer s.stop()
	return fn(ctx, s, creds)
}

// hostileGoalMiB is the goal for the memory an attacker can make the server
// hold, in total over all its connections.
const hostileGoalMiB = 64

func mib(kib int64) float64 { return float64(kib) / 1024 }

// hostileGoal is the goal cell of a row: sessiongate's peak growth against
// hostileGoalMiB; the baseline has none.
func hostileGoal(r row) string {
	if r.Server != nameSessiongate {
		return "—"
	}
	return fmt.Sprintf("< %d MiB: %s", hostileGoalMiB, verdict(mib(r.Report.PeakGrowthKiB) < hostileGoalMiB))
}

func renderAttack(p printer, s *section) {
	if !header(p, "6. Anonymous attackers", s) {
		return
	}
	p("%d connections with no cookie, from four source addresses, each repeat one attack for %s as", s.Sizes.AttackN, s.Sizes.AttackD)
	p("hard as they can, reconnecting (after 20 ms) whenever the server closes them. The six attacks,")
	p("given to the connections in turn: **attachments** (a binary event announcing 1000 attachments,")
	p("then 900 kB binary frames), **pings** (websocket and Engine.IO pings and an event now and then,")
	p("never reading the answers; receive buffer 4 KiB), **events** (1 kB events and no CONNECT),")
	p("**fragments** (a text message of 64 KiB fragments that never ends), **headers** (polling")
	p("handshakes with 1 MiB of headers), **bodies** (a polling POST announcing 1 MB that stalls")
	p("after 500 kB). The server's `VmRSS` is sampled every 50 ms; the figure is its peak minus its")
	p("value before the attack. Meanwhile an honest client with a valid cookie connects every 200 ms;")
	p("*honest* counts its handshakes that got their CONNECT. sessiongate runs with its default limits.")
	p("")
	p("| server | RSS before | peak | **peak growth** | honest handshakes | goal |")
	p("|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil {
			continue
		}
		goal := hostileGoal(r)
		p("| %s | %.1f MiB | %.1f MiB | **%.1f MiB** | %d of %d | %s |", r.Server, mib(r.Report.RSSBeforeKiB),
			mib(r.Report.PeakRSSKiB), mib(r.Report.PeakGrowthKiB), r.Report.HonestOK, r.Report.HonestTried, goal)
	}
	p("")
	p("What the attackers achieved (connections or requests that reached the server / refused before /")
	p("closed or refused by the server while attacking / MiB sent):")
	p("")
	p("| server | attachments | pings | events | fragments | headers | bodies |")
	p("|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil {
			continue
		}
		cells := ""
		for _, k := range []string{"attachments", "pings", "events", "fragments", "headers", "bodies"} {
			a := r.Report.Attacks[k]
			cells += fmt.Sprintf(" %d / %d / %d / %.0f |", a.Opened, a.Refused, a.ClosedByServer, a.SentMiB)
		}
		p("| %s |%s", r.Server, cells)
	}
	p("")
	errorRows(p, s)
	p("")
}

func renderSlowRead(p printer, s *section) {
	if !header(p, "7. Slow readers", s) {
		return
	}
	p("%d authenticated websocket sockets (receive buffer 4 KiB) stop reading once connected; then", s.Sizes.SlowN)
	p("%d events of 1 MB each are published to their room (`POST /api/publish`, one after the", s.Sizes.Publishes)
	p("other). The figure is the server's peak `VmRSS` growth (sampled every 50 ms) until 2 s after")
	p("the last publish.")
	p("")
	p("| server | sockets | RSS before | peak | **peak growth** | goal |")
	p("|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil {
			continue
		}
		goal := hostileGoal(r)
		p("| %s | %d of %d | %.1f MiB | %.1f MiB | **%.1f MiB** | %s |", r.Server, r.Report.Connected, r.Report.Requested,
			mib(r.Report.RSSBeforeKiB), mib(r.Report.PeakRSSKiB), mib(r.Report.PeakGrowthKiB), goal)
	}
	p("")
	errorRows(p, s)
	p("")
}

func renderStorm(p printer, s *section) {
	if !header(p, "8. Reconnect storm", s) {
		return
	}
	p("%d clients with valid cookies (all of one user), from four source addresses, start at the", s.Sizes.StormN)
	p("same moment, as after a restart; a refused or failed attempt is retried with socket.io-client's")
	p("default backoff (1 s doubling to 5 s, randomization 0.5). sessiongate runs with its default")
	p("limits (per-address handshake rate, unauthenticated caps). Times are from the start to each")
	p("client's CONNECT, in milliseconds.")
	p("")
	p("| server | connected | attempts | p50 | p99 | last (ms) | failures by kind |")
	p("|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil {
			continue
		}
		var errs []string
		for k, v := range r.Report.Errors {
			errs = append(errs, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(errs)
		d := r.Report.Latency
		if d == nil {
			d = &load.Dist{}
		}
		p("| %s | %d of %d | %d | %.0f | %.0f | %.0f | %s |", r.Server, r.Report.Connected, r.Report.Requested,
			r.Report.Attempts, d.P50, d.P99, d.Max, strings.Join(errs, ", "))
	}
	p("")
	errorRows(p, s)
	p("")
}
