package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The request/acknowledgement modes: sockets that send, each, a window of
// requests with acks, and a new one as soon as an ack comes back.
//
//	subscribe  -n sockets (distinct sessions) alternate subscribe and
//	           unsubscribe of -room (an unsubscribe asks no one, a
//	           subscribe asks the server's rules: its cache or its hook),
//	           -window in flight per socket, for -d after -warm: acks/s and
//	           the subscribe acks' latency
//	events     the same with the client event -event {"n": <seq>}: the
//	           server forwards it to its application endpoint and acks the
//	           answer
const (
	ModeSubscribe = "subscribe"
	ModeEvents    = "events"
)

// MaxWindow bounds the requests in flight per socket.
const MaxWindow = 64

// rpcConn is one socket of a request/ack run: a reader goroutine (the
// minimal frame reader of the fanout mode) that hands a credit to a writer
// goroutine for each ack, so that the writer's pacing never delays the
// reading of an ack, and so its latency.
type rpcConn struct {
	c       net.Conn
	br      *bufio.Reader
	wmu     sync.Mutex     // the writer's requests and the reader's pongs
	sent    []atomic.Int64 // unix nanos each ack id in flight was sent, by id % window
	next    atomic.Int64   // the next ack id
	credits chan struct{}  // one per request the writer may send
	wb      []byte
	// gap is the least time between two sends (Config.SocketRate), at is
	// the earliest time of the next one.
	gap time.Duration
	at  time.Time
}

// rpcStats are the acks counted over all sockets in the measured window.
type rpcStats struct {
	measuring atomic.Bool
	stopping  atomic.Bool
	mu        sync.Mutex
	ok        int
	unsub     int // subscribe mode: unsubscribe acks (not in the latency)
	errs      map[string]int
	lat       []time.Duration
}

func runRPC(ctx context.Context, cfg *Config, rep *Report) error {
	rep.Requested = cfg.N
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := newRawDialer(cfg.URL, cfg.Sources, cfg.Creds)
	if err != nil {
		return err
	}
	open := opened(openAll(runCtx, cfg, rep, func(ctx context.Context, i int) (*rpcConn, error) {
		return openRPC(ctx, cfg, d, i)
	}, nil))
	cfg.progress("%s: %d/%d connected in %.1fs", cfg.Mode, rep.Connected, cfg.N, rep.ConnectSeconds)
	defer func() {
		for _, h := range open {
			h.c.Close()
		}
	}()
	if rep.Connected == 0 {
		return errors.New("no connection could be opened")
	}
	if err := Sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	st := &rpcStats{errs: map[string]int{}}
	var readers sync.WaitGroup
	for _, h := range open {
		readers.Go(func() { h.run(runCtx, cfg, st) })
	}
	if err := Sleep(ctx, cfg.Warm); err != nil {
		return err
	}
	cpuBefore, selfBefore := pidsCPU(cfg.ServerPIDs), processCPU()
	st.measuring.Store(true)
	t0 := time.Now()
	err = Sleep(ctx, cfg.Duration)
	st.measuring.Store(false)
	elapsed := time.Since(t0)
	rep.ServerCPUSeconds = (pidsCPU(cfg.ServerPIDs) - cpuBefore).Seconds()
	rep.ClientCPUSeconds = (processCPU() - selfBefore).Seconds()
	// Stop sending; what is in flight drains (bounded), then the sockets close.
	st.stopping.Store(true)
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	cancel()
	for _, h := range open {
		h.c.Close()
	}
	readers.Wait()
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	rep.StillOpen = rep.Connected
	rep.AckOK = st.ok
	rep.AckErrors = st.errs
	for _, n := range st.errs {
		rep.AckFailed += n
	}
	rep.AckRate = float64(st.ok+rep.AckFailed) / elapsed.Seconds()
	if cfg.Mode == ModeSubscribe {
		rep.Unsubscribes = st.unsub
		rep.AckRate = float64(st.ok+rep.AckFailed-st.unsub) / elapsed.Seconds()
		rep.RequestRate = float64(st.ok+rep.AckFailed) / elapsed.Seconds()
	}
	rep.Latency = distribution(st.lat)
	cfg.progress("%s: %d acks ok, %d refused in %.1fs: %.0f/s (p50 %.2f ms, p99 %.2f ms)", cfg.Mode, st.ok, rep.AckFailed,
		elapsed.Seconds(), rep.AckRate, p50(rep.Latency), p99(rep.Latency))
	return nil
}

func p50(d *Dist) float64 {
	if d == nil {
		return 0
	}
	return d.P50
}

func p99(d *Dist) float64 {
	if d == nil {
		return 0
	}
	return d.P99
}

func openRPC(ctx context.Context, cfg *Config, d *rawDialer, i int) (*rpcConn, error) {
	c, br, err := d.connect(ctx, cfg.Creds[i%len(cfg.Creds)].Cookie)
	if err != nil {
		return nil, err
	}
	h := &rpcConn{c: c, br: br, sent: make([]atomic.Int64, cfg.Window), credits: make(chan struct{}, cfg.Window)}
	if cfg.SocketRate > 0 {
		h.gap = time.Duration(float64(time.Second) / cfg.SocketRate)
	}
	return h, nil
}

// send writes request number h.next: in subscribe mode an even one
// subscribes, an odd one unsubscribes.
func (h *rpcConn) send(cfg *Config) error {
	if h.gap > 0 {
		// Paced: the server closes a connection that sends more than its
		// packet budget (sessiongate: 200 messages/s, bursts of 500).
		now := time.Now()
		if wait := h.at.Sub(now); wait > 0 {
			time.Sleep(wait)
			now = h.at
		}
		h.at = now.Add(h.gap)
	}
	id := h.next.Load()
	b := append(h.wb[:0], "42"...)
	b = strconv.AppendInt(b, id, 10)
	switch {
	case cfg.Mode == ModeSubscribe && id%2 == 0:
		b = append(b, `["subscribe",{"room":"`+cfg.Room+`"}]`...)
	case cfg.Mode == ModeSubscribe:
		b = append(b, `["unsubscribe",{"room":"`+cfg.Room+`"}]`...)
	default:
		b = append(b, `["`+cfg.Event+`",{"n":`...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, `}]`...)
	}
	h.wb = b
	frame := clientFrame(0x1, true, b)
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.sent[id%int64(len(h.sent))].Store(time.Now().UnixNano())
	h.next.Store(id + 1)
	_, err := h.c.Write(frame)
	return err
}

// write sends p (a pong) between the writer's requests.
func (h *rpcConn) write(p []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err := h.c.Write(p)
	return err
}

// run starts the writer, which sends the first window and then a request
// per credit, and reads: each ack is a credit (until stopping), pings are
// answered. It returns when the connection ends or, once stopping, nothing
// is in flight.
func (h *rpcConn) run(ctx context.Context, cfg *Config, st *rpcStats) {
	stop := context.AfterFunc(ctx, func() { h.c.Close() })
	defer stop()
	for range cfg.Window {
		h.credits <- struct{}{}
	}
	writerDone, quit := make(chan struct{}), make(chan struct{})
	defer func() { close(quit); <-writerDone }()
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-h.credits:
			case <-quit:
				return
			case <-ctx.Done():
				return
			}
			if st.stopping.Load() {
				return
			}
			if h.send(cfg) != nil {
				h.c.Close()
				return
			}
		}
	}()
	defer h.c.Close() // ends the writer's send, if it is blocked
	acked := int64(0)
	for {
		if st.stopping.Load() && acked >= h.next.Load() && len(h.credits) == 0 {
			return
		}
		op, msg, err := readServerFrame(h.br)
		now := time.Now()
		if err != nil {
			return
		}
		switch op {
		case 0x8:
			return
		case 0x9:
			if h.write(wsPong) != nil {
				return
			}
			continue
		case 0x1:
		default:
			continue
		}
		if len(msg) == 1 && msg[0] == '2' {
			if h.write(eioPong) != nil {
				return
			}
			continue
		}
		if !bytes.HasPrefix(msg, []byte("43")) {
			continue
		}
		n := 2
		for n < len(msg) && msg[n] >= '0' && msg[n] <= '9' {
			n++
		}
		id, err := strconv.ParseInt(string(msg[2:n]), 10, 64)
		next := h.next.Load()
		if err != nil || id < 0 || id >= next || id < next-int64(len(h.sent)) {
			continue
		}
		acked++
		if st.measuring.Load() {
			code := ackErrorCode(msg[n:])
			lat := now.Sub(time.Unix(0, h.sent[id%int64(len(h.sent))].Load()))
			st.mu.Lock()
			switch {
			case code != "":
				st.errs[code]++
			default:
				st.ok++
			}
			if cfg.Mode == ModeSubscribe && id%2 == 1 {
				st.unsub++
			} else {
				st.lat = append(st.lat, lat)
			}
			st.mu.Unlock()
		}
		if !st.stopping.Load() {
			h.credits <- struct{}{}
		}
	}
}

// ackErrorCode is the code of an ack refusing the request, as both
// servers shape it ([{"ok":false,"error":{"code":"X",...}}] or
// [{"error":{"code":"X",...}}]), or "" for any other ack.
func ackErrorCode(args []byte) string {
	i := bytes.Index(args, []byte(`"error":{"code":"`))
	if i < 0 {
		if bytes.HasPrefix(args, []byte(`[{"ok":false`)) {
			return "not ok"
		}
		return ""
	}
	rest := args[i+len(`"error":{"code":"`):]
	if j := bytes.IndexByte(rest, '"'); j > 0 && j <= 40 {
		return string(rest[:j])
	}
	return "error"
}
