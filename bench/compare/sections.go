package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/fixture"
	"github.com/sessiongate/sessiongate/bench/internal/load"
	"github.com/sessiongate/sessiongate/bench/internal/pgcount"
)

// row is one server's result in a section.
type row struct {
	Server string       `json:"server"`
	Note   string       `json:"note,omitempty"`
	Error  string       `json:"error,omitempty"`
	Report *load.Report `json:"report,omitempty"`

	// handshake: the server's CPU time over the measured run, and the
	// handshake rates of all its runs (the row is the median one)
	ServerCPUSeconds float64   `json:"server_cpu_seconds,omitempty"`
	RunRates         []float64 `json:"run_rates,omitempty"`

	// fan-out: the median round's last arrival of every run (the row is
	// the median run)
	RunLastMs []float64 `json:"run_last_ms,omitempty"`

	// events: the sockets of the run (one event in flight each), and the
	// p99 latency of all its runs (RunRates holds their rates)
	Sockets int       `json:"sockets,omitempty"`
	RunP99  []float64 `json:"run_p99_ms,omitempty"`
	// subscribe: the application endpoint's calls over the whole run
	HookCalls int64 `json:"hook_calls,omitempty"`

	// statements
	Sessions        int        `json:"sessions,omitempty"`
	Interval        string     `json:"interval,omitempty"`
	Intervals       int        `json:"intervals,omitempty"`
	TableStatements int64      `json:"table_statements,omitempty"`
	PerInterval     float64    `json:"per_interval,omitempty"`
	ServerCounted   float64    `json:"server_counted_per_interval,omitempty"`
	TopSQL          []sqlCount `json:"top_sql,omitempty"`
}

type sqlCount struct {
	SQL   string `json:"sql"`
	Count int64  `json:"count"`
}

func failedRow(server string, err error) row {
	return row{Server: server, Error: err.Error()}
}

// loadRun is one running load tool process.
type loadRun struct {
	cmd       *exec.Cmd
	stdout    bytes.Buffer
	connected chan struct{} // closed when it reports its connections open
	exited    chan error
}

var connectedLine = regexp.MustCompile(`^\w+: \d+/\d+ connected in `)

// startLoad starts the load tool with args.
func (e *env) startLoad(ctx context.Context, args ...string) (*loadRun, error) {
	l := &loadRun{connected: make(chan struct{}), exited: make(chan error, 1)}
	l.cmd = exec.CommandContext(ctx, filepath.Join(e.bin, "loadtool"), args...)
	l.cmd.Env = serverEnv()
	l.cmd.Stdout = &l.stdout
	stderr, err := l.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "  $ loadtool "+strings.Join(args, " "))
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start loadtool: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, "  [loadtool] "+sc.Text())
			if !signalled && connectedLine.MatchString(sc.Text()) {
				close(l.connected)
				signalled = true
			}
		}
		l.exited <- l.cmd.Wait()
	}()
	return l, nil
}

// wait waits for the load tool to exit and returns its report.
func (l *loadRun) wait() (*load.Report, error) {
	werr := <-l.exited
	var rep load.Report
	if err := json.Unmarshal(bytes.TrimSpace(l.stdout.Bytes()), &rep); err != nil {
		if werr != nil {
			return nil, fmt.Errorf("loadtool: %w", werr)
		}
		return nil, fmt.Errorf("loadtool report: %w", err)
	}
	return &rep, werr
}

// runLoad runs the load tool to completion.
func (e *env) runLoad(ctx context.Context, args ...string) (*load.Report, error) {
	l, err := e.startLoad(ctx, args...)
	if err != nil {
		return nil, err
	}
	return l.wait()
}

// sessionSchema makes a fresh schema with a session table holding n
// logged-in sessions (users distinct user ids, 0 = one each), and returns
// its URL, the credentials file and a cleanup.
func (e *env) sessionSchema(ctx context.Context, n, users int) (dbURL, creds string, cleanup func(), err error) {
	name, dbURL, err := fixture.Schema(ctx, e.dbURL, "bench")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() {
		if e.keep {
			fmt.Fprintf(os.Stderr, "  kept schema %s\n", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := fixture.DropSchema(ctx, e.dbURL, name); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
		}
	}
	if err := fixture.CreateTable(ctx, dbURL, table); err != nil {
		cleanup()
		return "", "", nil, err
	}
	cs, err := fixture.Seed(ctx, dbURL, table, fixture.Options{N: n, Users: users, Secret: e.secret})
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	creds = filepath.Join(e.tmp, name+".tsv")
	f, err := os.Create(creds)
	if err == nil {
		err = load.WriteCredentials(f, cs)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	return dbURL, creds, cleanup, nil
}

// target is a server to start for a section, with the schema it needs.
type target struct {
	name  string
	start func(ctx context.Context, dbURL string) (*server, error)
	auth  bool // needs a session schema
}

// memoryAndBroadcast opens N idle sockets on each server, samples the
// server's RSS, and (when broadcast) publishes one event to all of them.
func (e *env) memoryAndBroadcast(ctx context.Context, memory, broadcast bool) (mem, bc []row, err error) {
	n := e.sizes.Memory
	if !memory {
		n = e.sizes.Broadcast
	}
	defaultInterval := 5 * time.Minute
	targets := []target{
		{nameEcho, func(ctx context.Context, _ string) (*server, error) { return e.startEcho(ctx) }, false},
		{nameWS, func(ctx context.Context, _ string) (*server, error) { return e.startWS(ctx) }, false},
		{nameNode, func(ctx context.Context, db string) (*server, error) { return e.startNode(ctx, db, defaultInterval) }, true},
		{nameSessiongate, func(ctx context.Context, db string) (*server, error) {
			return e.startSessiongate(ctx, db, defaultInterval)
		}, true},
	}
	var errs []error
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		raw := t.name == nameWS
		if raw && !memory {
			continue
		}
		rep, err := e.memoryRun(ctx, t, n, memory, broadcast && !raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
		}
		if memory {
			mem = append(mem, resultRow(t.name, rep, err))
		}
		if broadcast && !raw {
			bc = append(bc, resultRow(t.name, rep, err))
		}
	}
	return mem, bc, errors.Join(errs...)
}

func resultRow(server string, rep *load.Report, err error) row {
	r := row{Server: server, Report: rep}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func (e *env) memoryRun(ctx context.Context, t target, n int, memory, broadcast bool) (*load.Report, error) {
	var dbURL, creds string
	if t.auth {
		var cleanup func()
		var err error
		if dbURL, creds, cleanup, err = e.sessionSchema(ctx, n, 1); err != nil {
			return nil, err
		}
		defer cleanup()
	}
	s, err := t.start(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	mode := load.ModeIdle
	if broadcast {
		mode = load.ModeBroadcast
	}
	args := []string{"-mode", mode, "-n", strconv.Itoa(n), "-settle", e.sizes.Settle.String(), "-timeout", "60s"}
	if t.name == nameWS {
		args = append(args, "-raw", "-url", "ws"+strings.TrimPrefix(s.url, "http")+"/")
	} else {
		args = append(args, "-url", s.url)
	}
	if memory {
		args = append(args, "-pid", strconv.Itoa(s.pid()))
		if s.gcURL != "" {
			args = append(args, "-gc-url", s.gcURL)
		}
	}
	if creds != "" {
		args = append(args, "-cookies", creds)
	}
	if broadcast {
		if s.publishURL != "" {
			args = append(args, "-publish-url", s.publishURL, "-publish-key", e.publishKey, "-room", "user:1")
		} else {
			args = append(args, "-trigger", "broadcast")
		}
	}
	return e.runLoad(ctx, args...)
}

// handshake measures authenticated handshakes per second and their latency
// with HandshakeC clients connecting in a loop. Each server runs
// HandshakeRuns times, the servers alternating, so that a drift in what
// else the machine does falls on both alike; each server's row is its
// median run.
func (e *env) handshake(ctx context.Context) ([]row, error) {
	targets := e.authTargets(5 * time.Minute)
	runs := make([][]row, len(targets))
	var errs []error
	for range max(e.sizes.HandshakeRuns, 1) {
		for i, t := range targets {
			if ctx.Err() != nil {
				break
			}
			rep, cpu, err := e.handshakeRun(ctx, t)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
			r := resultRow(t.name, rep, err)
			r.ServerCPUSeconds = cpu
			runs[i] = append(runs[i], r)
		}
	}
	var rows []row
	for i, t := range targets {
		rows = append(rows, medianRun(t.name, runs[i]))
	}
	return rows, errors.Join(errs...)
}

// medianRun returns the run of runs with the median handshake rate (the
// lower middle one of an even count), with the rates of all the runs that
// completed; or the last failure if none did.
func medianRun(name string, runs []row) row {
	var ok []row
	for _, r := range runs {
		if r.Error == "" && r.Report != nil {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		if len(runs) == 0 {
			return failedRow(name, errors.New("not run"))
		}
		return runs[len(runs)-1]
	}
	rates := make([]float64, len(ok))
	for i, r := range ok {
		rates[i] = r.Report.HandshakeRate
	}
	slices.SortFunc(ok, func(a, b row) int { return cmp.Compare(a.Report.HandshakeRate, b.Report.HandshakeRate) })
	m := ok[(len(ok)-1)/2]
	m.RunRates = rates
	return m
}

func (e *env) authTargets(interval time.Duration) []target {
	return []target{
		{nameNode, func(ctx context.Context, db string) (*server, error) { return e.startNode(ctx, db, interval) }, true},
		{nameSessiongate, func(ctx context.Context, db string) (*server, error) { return e.startSessiongate(ctx, db, interval) }, true},
	}
}

func (e *env) handshakeRun(ctx context.Context, t target) (rep *load.Report, cpuSeconds float64, err error) {
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, 1000, 0)
	if err != nil {
		return nil, 0, err
	}
	defer cleanup()
	s, err := t.start(ctx, dbURL)
	if err != nil {
		return nil, 0, err
	}
	defer s.stop()
	args := []string{"-mode", load.ModeHandshake, "-url", s.url, "-cookies", creds, "-c", strconv.Itoa(e.sizes.HandshakeC)}
	// A short warm-up (JIT, pools, caches), not recorded.
	if _, err := e.runLoad(ctx, append(args, "-d", "2s")...); err != nil {
		return nil, 0, fmt.Errorf("warm-up: %w", err)
	}
	before, err := cpuTime(s.pid())
	if err != nil {
		return nil, 0, err
	}
	rep, err = e.runLoad(ctx, append(args, "-d", e.sizes.HandshakeD.String())...)
	after, cerr := cpuTime(s.pid())
	if err == nil && cerr != nil {
		err = cerr
	}
	return rep, (after - before).Seconds(), err
}

// cpuTime is the user plus system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) { return load.CPUTime(pid) }

// statements counts the session-table statements each server makes per
// check interval while Statements sessions are live, at the PostgreSQL wire.
func (e *env) statements(ctx context.Context) ([]row, error) {
	var rows []row
	var errs []error
	for _, t := range e.authTargets(e.sizes.CheckInterval) {
		if ctx.Err() != nil {
			break
		}
		r, err := e.statementsRun(ctx, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			r = failedRow(t.name, err)
		}
		rows = append(rows, r)
	}
	return rows, errors.Join(errs...)
}

func (e *env) statementsRun(ctx context.Context, t target) (row, error) {
	r := row{Server: t.name, Interval: e.sizes.CheckInterval.String(), Intervals: e.sizes.Intervals}
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, e.sizes.Statements, 0)
	if err != nil {
		return r, err
	}
	defer cleanup()
	u, err := url.Parse(dbURL)
	if err != nil {
		return r, err
	}
	proxy, err := pgcount.Listen(u.Host, table)
	if err != nil {
		return r, err
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()

	s, err := t.start(ctx, u.String())
	if err != nil {
		return r, err
	}
	defer s.stop()
	iv := e.sizes.CheckInterval
	hold := time.Duration(e.sizes.Intervals+4)*iv + time.Minute
	l, err := e.startLoad(ctx, "-mode", load.ModeIdle, "-url", s.url, "-cookies", creds,
		"-n", strconv.Itoa(e.sizes.Statements), "-hold", hold.String())
	if err != nil {
		return r, err
	}
	select {
	case <-l.connected:
	case err := <-l.exited:
		l.exited <- err
		_, err = l.wait()
		return r, fmt.Errorf("loadtool exited early: %v", err)
	case <-ctx.Done():
		return r, ctx.Err()
	}
	// Let every socket's timer (or the batch schedule) start, then align
	// the window half an interval after a check was seen, so that a
	// periodic batch check falls inside it exactly Intervals times.
	if err := load.Sleep(ctx, iv); err != nil {
		return r, err
	}
	if err := awaitStatement(ctx, proxy, iv+iv/2); err != nil {
		return r, err
	}
	if err := load.Sleep(ctx, iv/2); err != nil {
		return r, err
	}
	before, serverBefore := proxy.Snapshot(), e.serverCount(ctx, s)
	if err := load.Sleep(ctx, time.Duration(e.sizes.Intervals)*iv); err != nil {
		return r, err
	}
	d, serverAfter := proxy.Snapshot().Sub(before), e.serverCount(ctx, s)
	l.cmd.Process.Signal(syscall.SIGINT)
	rep, _ := l.wait()
	if rep != nil {
		r.Sessions = rep.StillOpen
	}
	r.TableStatements = d.Table
	r.PerInterval = float64(d.Table) / float64(e.sizes.Intervals)
	if serverBefore >= 0 && serverAfter >= 0 {
		r.ServerCounted = (serverAfter - serverBefore) / float64(e.sizes.Intervals)
	}
	for i, q := range d.Top() {
		if i == 3 {
			break
		}
		r.TopSQL = append(r.TopSQL, sqlCount{SQL: q, Count: d.BySQL[q]})
	}
	return r, nil
}

// awaitStatement returns when the proxy counts a new session-table
// statement, or after max.
func awaitStatement(ctx context.Context, proxy *pgcount.Proxy, max time.Duration) error {
	start := proxy.Snapshot().Table
	deadline := time.Now().Add(max)
	for proxy.Snapshot().Table == start && time.Now().Before(deadline) {
		if err := load.Sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

var checkBatchesMetric = regexp.MustCompile(`(?m)^sessiongate_session_check_batches_total ([0-9.e+]+)$`)

// serverCount is the server's own count of session checks: the Node
// baseline's session queries, sessiongate's check batches; -1 if unknown.
func (e *env) serverCount(ctx context.Context, s *server) float64 {
	switch s.name {
	case nameNode:
		body, err := httpGet(ctx, s.url+"/debug/stats")
		if err != nil {
			return -1
		}
		var st struct {
			SessionQueries float64 `json:"sessionQueries"`
		}
		if json.Unmarshal([]byte(body), &st) != nil {
			return -1
		}
		return st.SessionQueries
	case nameSessiongate:
		body, err := httpGet(ctx, s.url+"/metrics")
		if err != nil {
			return -1
		}
		m := checkBatchesMetric.FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}

// revocation deletes Revoke sessions in one commit while each has a socket
// open and times the session_expired events.
func (e *env) revocation(ctx context.Context) ([]row, error) {
	var rows []row
	var errs []error
	targets := []struct {
		target
		interval time.Duration
	}{
		{e.authTargets(e.sizes.NodeRevokeEach)[0], e.sizes.NodeRevokeEach},
		{e.authTargets(5 * time.Minute)[1], 5 * time.Minute},
	}
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		rep, err := e.revocationRun(ctx, t.target, t.interval)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
		}
		r := resultRow(t.name, rep, err)
		r.Note = "check interval " + t.interval.String()
		rows = append(rows, r)
	}
	return rows, errors.Join(errs...)
}

func (e *env) revocationRun(ctx context.Context, t target, interval time.Duration) (*load.Report, error) {
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, e.sizes.Revoke, 0)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	s, err := t.start(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	timeout := 30 * time.Second
	if t.name == nameNode {
		timeout += interval
	}
	return e.runLoad(ctx, "-mode", load.ModeRevoke, "-url", s.url, "-cookies", creds,
		"-n", strconv.Itoa(e.sizes.Revoke), "-db", dbURL, "-table", table,
		"-settle", "2s", "-timeout", timeout.String())
}
