package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ModeFanout measures delivery to many users' rooms, on one server or on a
// cluster of servers sharing a bus:
//
//	fanout  -n sockets with distinct sessions (credential i is user i+1),
//	        spread round-robin over the servers of -urls; then, after
//	        warmUpRounds, -rounds publishes, one after the other, each to every user room
//	        (user:1..user:n) in one POST /api/publish to the first server:
//	        time from the publish to each socket's receipt. With -single D,
//	        then D of single-user publishes (each to one random user's
//	        room) from -publishers concurrent publishers through the first
//	        server: deliveries per second counted on the sockets. With
//	        -redis, the bus's total_net_output_bytes (INFO stats) around the
//	        single-user publishes, per publish.
const ModeFanout = "fanout"

// Events the fanout mode publishes: fanEvent carries {"r": round},
// oneEvent {"t": unix nanos at publish}.
const (
	fanEvent = "fan"
	oneEvent = "one"
)

// MaxRounds bounds the fanout rounds of a run.
const MaxRounds = 100

// warmUpRounds are the fanout rounds before the measured ones: Node's JIT
// compiles the emit path over the first publishes.
const warmUpRounds = 3

// Round is one fanout publish: how many sockets got it and when, in
// milliseconds after the publish was sent; and when the publish request
// was answered (both servers answer once they have handed the event to
// every local socket, so it is the server's own share of the time).
type Round struct {
	Received int     `json:"received"`
	Answered float64 `json:"answered_ms"`
	First    float64 `json:"first_ms"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Last     float64 `json:"last_ms"`
}

// fanConn is one socket of a fanout run. It is a raw websocket read by
// one goroutine with a minimal frame reader: a client library's per-message
// cost (coder/websocket's context watch, its locks) would compete with the
// servers for this machine's cores and blur what is measured.
type fanConn struct {
	c      net.Conn
	br     *bufio.Reader
	gotAt  []atomic.Int64 // unix nanos of round r's arrival; 0 = not yet
	closed atomic.Bool
}

// fanCounters are the single-user deliveries counted over all sockets.
type fanCounters struct {
	delivered atomic.Int64
	lastAt    atomic.Int64 // unix nanos of the latest delivery
	mu        sync.Mutex
	latency   []time.Duration // publish-to-delivery, from the event's "t"
}

func runFanout(ctx context.Context, cfg *Config, rep *Report) error {
	rep.Requested = cfg.N
	rep.Servers = len(cfg.URLs)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	dialers := make([]*rawDialer, len(cfg.URLs))
	for i, u := range cfg.URLs {
		var err error
		if dialers[i], err = newRawDialer(u, cfg.Sources, cfg.Creds); err != nil {
			return err
		}
	}
	var (
		rounds   = warmUpRounds + cfg.Rounds // the warm-up rounds come first, not reported
		arrived  = make([]chan struct{}, rounds)
		counters fanCounters
		readers  sync.WaitGroup
	)
	for r := range arrived {
		arrived[r] = make(chan struct{}, cfg.N)
	}
	conns := openAll(runCtx, cfg, rep, func(ctx context.Context, i int) (*fanConn, error) {
		return openFan(ctx, cfg, dialers[i%len(dialers)], i, rounds)
	}, func(h *fanConn) {
		readers.Go(func() { h.read(runCtx, arrived, &counters) })
	})
	cfg.progress("%s: %d/%d connected in %.1fs over %d servers", cfg.Mode, rep.Connected, cfg.N, rep.ConnectSeconds, len(cfg.URLs))
	defer func() {
		cancel()
		for _, h := range conns {
			if h != nil {
				h.c.Close()
			}
		}
		readers.Wait()
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rep.Connected == 0 {
		return errors.New("no connection could be opened")
	}
	if err := Sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	for _, h := range conns {
		if h != nil && !h.closed.Load() {
			rep.StillOpen++
		}
	}

	pub, err := newPublisher(cfg)
	if err != nil {
		return err
	}
	defer pub.close()
	rooms := make([]string, cfg.N)
	for i := range rooms {
		rooms[i] = "user:" + strconv.Itoa(i+1)
	}
	var cpuBefore time.Duration
	for r := range rounds {
		if r == warmUpRounds {
			cpuBefore = pidsCPU(cfg.ServerPIDs)
		}
		body, _ := json.Marshal(map[string]any{"to": rooms, "event": fanEvent, "data": map[string]int{"r": r}})
		t0 := time.Now()
		if err := pub.post(ctx, body); err != nil {
			return fmt.Errorf("fanout round %d: %w", r, err)
		}
		answered := time.Since(t0)
		got := awaitCount(ctx, arrived[r], rep.StillOpen, cfg.Timeout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lat := make([]time.Duration, 0, got)
		for _, h := range conns {
			if h == nil {
				continue
			}
			if at := h.gotAt[r].Load(); at != 0 {
				lat = append(lat, time.Unix(0, at).Sub(t0))
			}
		}
		d := distribution(lat)
		if d == nil {
			d = &Dist{}
		}
		cfg.progress("%s: round %d: %d/%d received, last after %.1f ms (publish answered after %.1f ms)", cfg.Mode, r, len(lat), rep.StillOpen, d.Max, ms(answered))
		if r >= warmUpRounds {
			rep.Rounds = append(rep.Rounds, Round{Received: len(lat), Answered: ms(answered), First: d.Min, P50: d.P50, P99: d.P99, Last: d.Max})
			rep.Missing += rep.StillOpen - len(lat)
		}
		// Let the server's garbage collection and the readers settle.
		if err := Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	if len(cfg.ServerPIDs) > 0 && len(rep.Rounds) > 0 {
		rep.ServerCPUPerRoundMs = ms(pidsCPU(cfg.ServerPIDs)-cpuBefore) / float64(len(rep.Rounds))
	}
	if len(rep.Rounds) > 0 {
		m := medianRound(rep.Rounds)
		rep.FanoutLastMs = m.Last
		rep.Received = m.Received
	}
	if cfg.Single > 0 {
		return runSingle(ctx, cfg, rep, pub, &counters)
	}
	return nil
}

// runSingle publishes single-user events for cfg.Single from
// cfg.Publishers concurrent publishers, then waits (bounded) for the
// deliveries to drain, and counts them.
func runSingle(ctx context.Context, cfg *Config, rep *Report, pub *publisher, counters *fanCounters) error {
	var before int64
	if cfg.RedisAddr != "" {
		var err error
		if before, err = redisOutputBytes(ctx, cfg.RedisAddr); err != nil {
			return err
		}
	}
	var published, failed atomic.Int64
	cpuBefore := pidsCPU(cfg.ServerPIDs)
	start := time.Now()
	end := start.Add(cfg.Single)
	var wg sync.WaitGroup
	for range cfg.Publishers {
		wg.Go(func() {
			var b []byte
			for ctx.Err() == nil && time.Now().Before(end) {
				user := rand.IntN(cfg.N) + 1
				b = append(b[:0], `{"to":["user:`...)
				b = strconv.AppendInt(b, int64(user), 10)
				b = append(b, `"],"event":"`+oneEvent+`","data":{"t":`...)
				b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
				b = append(b, `}}`...)
				if err := pub.post(ctx, b); err != nil {
					failed.Add(1)
					continue
				}
				published.Add(1)
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)
	rep.Published = int(published.Load())
	rep.PublishFailed = int(failed.Load())
	// Deliveries still in flight are waited for, up to a bound; a server
	// that queued far behind shows as a longer window, so a lower rate.
	drain := time.Now().Add(10 * time.Second)
	for counters.delivered.Load() < published.Load() && time.Now().Before(drain) && ctx.Err() == nil {
		_ = Sleep(ctx, 5*time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	delivered := counters.delivered.Load()
	rep.Delivered = int(delivered)
	if len(cfg.ServerPIDs) > 0 && delivered > 0 {
		rep.ServerCPUPerDeliveryUs = float64((pidsCPU(cfg.ServerPIDs) - cpuBefore).Microseconds()) / float64(delivered)
	}
	window := sent
	if last := counters.lastAt.Load(); last != 0 {
		window = max(window, time.Unix(0, last).Sub(start))
	}
	rep.SingleSeconds = window.Seconds()
	rep.PublishRate = float64(rep.Published) / sent.Seconds()
	rep.DeliveredRate = float64(delivered) / window.Seconds()
	counters.mu.Lock()
	rep.Latency = distribution(counters.latency)
	counters.mu.Unlock()
	cfg.progress("%s: single-user: %d published (%d failed) in %.1fs, %d delivered: %.0f/s", cfg.Mode,
		rep.Published, rep.PublishFailed, sent.Seconds(), delivered, rep.DeliveredRate)
	if cfg.RedisAddr != "" {
		after, err := redisOutputBytes(ctx, cfg.RedisAddr)
		if err != nil {
			return err
		}
		rep.RedisOutputBytes = after - before
		if rep.Published > 0 {
			rep.RedisBytesPerPublish = float64(rep.RedisOutputBytes) / float64(rep.Published)
		}
		cfg.progress("%s: redis output %d bytes, %.0f per publish", cfg.Mode, rep.RedisOutputBytes, rep.RedisBytesPerPublish)
	}
	return nil
}

// pidsCPU is the CPU time (user + system) the processes pids have used, in
// all; a process that cannot be read counts nothing.
func pidsCPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if d, err := CPUTime(pid); err == nil {
			sum += d
		}
	}
	return sum
}

// CPUTime is the user plus system CPU time process pid has used.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// The command name (field 2) may hold spaces: fields count from after it.
	st := string(b)
	f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu time: bad /proc/%d/stat", pid)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// medianRound is the round with the median last arrival (the lower middle
// one of an even count).
func medianRound(rounds []Round) Round {
	s := slices.Clone(rounds)
	slices.SortFunc(s, func(a, b Round) int {
		switch {
		case a.Last < b.Last:
			return -1
		case a.Last > b.Last:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

// awaitCount receives from ch until want values came, the timeout passed
// or ctx ended, and returns how many came.
func awaitCount(ctx context.Context, ch <-chan struct{}, want int, timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	got := 0
	for got < want {
		select {
		case <-ch:
			got++
		case <-deadline.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
	return got
}

func openFan(ctx context.Context, cfg *Config, d *rawDialer, i, rounds int) (*fanConn, error) {
	c, br, err := d.connect(ctx, cfg.Creds[i].Cookie)
	if err != nil {
		return nil, err
	}
	return &fanConn{c: c, br: br, gotAt: make([]atomic.Int64, rounds)}, nil
}

// Frames a fanout socket answers with.
var (
	eioPong = clientFrame(0x1, true, []byte("3"))
	wsPong  = clientFrame(0xA, true, nil)
)

// read answers pings, records each fanout round's first arrival and counts
// single-user deliveries until the connection ends (closed when ctx is).
func (h *fanConn) read(ctx context.Context, arrived []chan struct{}, counters *fanCounters) {
	defer h.closed.Store(true)
	stop := context.AfterFunc(ctx, func() { h.c.Close() })
	defer stop()
	for {
		op, msg, err := readServerFrame(h.br)
		now := time.Now()
		if err != nil {
			return
		}
		switch op {
		case 0x8: // close
			return
		case 0x9: // websocket ping
			if _, err := h.c.Write(wsPong); err != nil {
				return
			}
			continue
		case 0x1:
		default:
			continue
		}
		switch {
		case len(msg) == 1 && msg[0] == '2':
			if _, err := h.c.Write(eioPong); err != nil {
				return
			}
		case bytes.HasPrefix(msg, []byte(`42["`+oneEvent+`",`)):
			counters.delivered.Add(1)
			counters.lastAt.Store(now.UnixNano())
			if t, ok := fanField(msg, "t"); ok {
				counters.mu.Lock()
				counters.latency = append(counters.latency, now.Sub(time.Unix(0, t)))
				counters.mu.Unlock()
			}
		case bytes.HasPrefix(msg, []byte(`42["`+fanEvent+`",`)):
			r, ok := fanField(msg, "r")
			if !ok || r < 0 || int(r) >= len(h.gotAt) || h.gotAt[r].Load() != 0 {
				continue
			}
			h.gotAt[r].Store(now.UnixNano())
			arrived[r] <- struct{}{}
		}
	}
}

// fanField reads the integer field key of the object that is an event
// packet's first argument: 42["name",{"key":123}].
func fanField(msg []byte, key string) (int64, bool) {
	// The servers write the data as published, {"key":digits}: read it
	// without a JSON decoder, which would cost the load tool more than the
	// servers spend on the message.
	if i := bytes.Index(msg, []byte(`",{"`+key+`":`)); i > 0 {
		rest := msg[i+len(key)+6:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n > 0 && n <= 18 && bytes.HasPrefix(rest[n:], []byte("}]")) {
			v, err := strconv.ParseInt(string(rest[:n]), 10, 64)
			return v, err == nil
		}
	}
	args, ok := eventArgs(msg)
	if !ok || len(args) < 2 {
		return 0, false
	}
	var m map[string]int64
	if err := json.Unmarshal(args[1], &m); err != nil {
		return 0, false
	}
	v, ok := m[key]
	return v, ok
}

// publisher posts to /api/publish over kept-alive connections of its own:
// a request written in one piece and a minimal HTTP/1.1 response reader, as
// wrk does, since net/http's client costs the load tool several goroutine
// switches and tens of microseconds per request, which the servers under
// test would otherwise lose on this machine's shared cores.
type publisher struct {
	addr string
	head []byte // the request up to the Content-Length value
	idle chan *pubConn
}

type pubConn struct {
	c  net.Conn
	br *bufio.Reader
	wb []byte
}

func newPublisher(cfg *Config) (*publisher, error) {
	u, err := url.Parse(cfg.PublishURL)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", cfg.PublishURL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%q: only http:// publish URLs are supported", cfg.PublishURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Bearer " + cfg.PublishKey +
		"\r\nContent-Type: application/json\r\nContent-Length: "
	return &publisher{addr: addr, head: []byte(head), idle: make(chan *pubConn, max(cfg.Publishers, 1)+1)}, nil
}

// post sends one publish and reads its answer; an error other than the
// server's answer drops the connection.
func (p *publisher) post(ctx context.Context, body []byte) error {
	var pc *pubConn
	select {
	case pc = <-p.idle:
	default:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return err
		}
		pc = &pubConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	}
	keep, err := pc.do(p.head, body)
	if err != nil || !keep {
		pc.c.Close()
	} else {
		select {
		case p.idle <- pc:
		default:
			pc.c.Close()
		}
	}
	return err
}

// close closes the idle connections.
func (p *publisher) close() {
	for {
		select {
		case pc := <-p.idle:
			pc.c.Close()
		default:
			return
		}
	}
}

// do writes the request and reads the response; keep reports whether the
// connection may be used again. A status other than 200 is an error.
func (pc *pubConn) do(head, body []byte) (keep bool, err error) {
	_ = pc.c.SetDeadline(time.Now().Add(30 * time.Second))
	pc.wb = append(append(pc.wb[:0], head...), strconv.Itoa(len(body))...)
	pc.wb = append(append(pc.wb, "\r\n\r\n"...), body...)
	if _, err := pc.c.Write(pc.wb); err != nil {
		return false, err
	}
	status, keep, msg, err := readResponse(pc.br)
	if err != nil {
		return false, err
	}
	if status != 200 {
		return keep, fmt.Errorf("publish: %d: %s", status, strings.TrimSpace(string(msg)))
	}
	return keep, nil
}

// readResponse reads one HTTP/1.1 response: its status, whether the
// connection stays open, and the first KiB of its body (Content-Length or
// chunked).
func readResponse(br *bufio.Reader) (status int, keep bool, body []byte, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, nil, fmt.Errorf("bad status line %.40q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, nil, fmt.Errorf("bad status line %.40q", line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, nil, err
		}
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, false, nil, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(v, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	take := func(n int) error {
		for n > 0 {
			b, err := br.Peek(min(n, br.Size()))
			if len(b) == 0 && err != nil {
				return err
			}
			if room := 1024 - len(body); room > 0 {
				body = append(body, b[:min(room, len(b))]...)
			}
			br.Discard(len(b))
			n -= len(b)
		}
		return nil
	}
	switch {
	case chunked:
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, false, nil, err
			}
			hexLen, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
			n, err := strconv.ParseInt(string(hexLen), 16, 32)
			if err != nil || n < 0 {
				return 0, false, nil, fmt.Errorf("bad chunk size %.20q", line)
			}
			if n == 0 {
				for { // trailers, then the blank line
					line, err := br.ReadSlice('\n')
					if err != nil {
						return 0, false, nil, err
					}
					if len(bytes.TrimRight(line, "\r\n")) == 0 {
						return status, keep, body, nil
					}
				}
			}
			if err := take(int(n)); err != nil {
				return 0, false, nil, err
			}
			if _, err := br.Discard(2); err != nil {
				return 0, false, nil, err
			}
		}
	case length >= 0:
		if err := take(length); err != nil {
			return 0, false, nil, err
		}
		return status, keep, body, nil
	}
	// No length: the body ends with the connection.
	return status, false, body, nil
}

// redisOutputBytes reads total_net_output_bytes from INFO stats of the
// Redis server at addr: everything it has written to its clients.
func redisOutputBytes(ctx context.Context, addr string) (int64, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("redis INFO: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n"); err != nil {
		return 0, fmt.Errorf("redis INFO: %w", err)
	}
	info, err := readBulk(bufio.NewReader(c))
	if err != nil {
		return 0, fmt.Errorf("redis INFO: %w", err)
	}
	return infoField(info, "total_net_output_bytes")
}

// readBulk reads one RESP bulk string reply (at most 1 MiB).
func readBulk(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	if !strings.HasPrefix(line, "$") {
		return "", fmt.Errorf("unexpected reply %.40q", line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("bad bulk length %q", line)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// infoField is the integer value of field in an INFO reply.
func infoField(info, field string) (int64, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO has no %s", field)
}
