package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// held is one connection kept open by runHeld. Its reader goroutine records
// the first arrival of the awaited event.
type held struct {
	c      *websocket.Conn
	gotAt  atomic.Int64 // unix nanos of the awaited event; 0 = not yet
	reason atomic.Value // string: session_expired reason
	closed atomic.Bool
}

// runHeld opens cfg.N connections, lets them settle, measures the server's
// memory, then performs the mode's action and waits for its event.
func runHeld(ctx context.Context, cfg *Config, rep *Report) error {
	rep.Requested = cfg.N
	if cfg.ServerPID > 0 {
		var err error
		if rep.RSSBeforeKiB, rep.RSSBeforeGCKiB, err = cfg.serverRSS(ctx); err != nil {
			return err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		d       = newDialer(cfg.socketURL(), cfg.Sources, cfg.Creds)
		arrived = make(chan struct{}, cfg.N)
		readers sync.WaitGroup
	)
	conns := openAll(runCtx, cfg, rep, func(ctx context.Context, i int) (*held, error) {
		return openHeld(ctx, cfg, d, i)
	}, func(h *held) {
		readers.Go(func() { h.read(runCtx, cfg, arrived) })
	})
	cfg.progress("%s: %d/%d connected in %.1fs", cfg.Mode, rep.Connected, cfg.N, rep.ConnectSeconds)
	defer func() {
		cancel()
		for _, h := range conns {
			if h != nil {
				h.c.CloseNow()
			}
		}
		readers.Wait()
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if err := Sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	for _, h := range conns {
		if h != nil && !h.closed.Load() {
			rep.StillOpen++
		}
	}
	if cfg.ServerPID > 0 {
		var err error
		if rep.RSSAfterKiB, rep.RSSAfterGCKiB, err = cfg.serverRSS(ctx); err != nil {
			return err
		}
		if rep.StillOpen > 0 {
			rep.KiBPerConn = float64(rep.RSSAfterKiB-rep.RSSBeforeKiB) / float64(rep.StillOpen)
			cfg.progress("%s: server RSS %d → %d KiB, %.2f KiB per connection", cfg.Mode, rep.RSSBeforeKiB, rep.RSSAfterKiB, rep.KiBPerConn)
			if cfg.GCURL != "" {
				rep.KiBPerConnGC = float64(rep.RSSAfterGCKiB-rep.RSSBeforeGCKiB) / float64(rep.StillOpen)
				cfg.progress("%s: after GC %d → %d KiB, %.2f KiB per connection", cfg.Mode, rep.RSSBeforeGCKiB, rep.RSSAfterGCKiB, rep.KiBPerConnGC)
			}
		}
	}
	if rep.Connected == 0 {
		return errors.New("no connection could be opened")
	}

	var t0 time.Time
	var err error
	switch cfg.Mode {
	case ModeIdle:
		Sleep(ctx, cfg.Hold) // an interrupt ends the hold early: not an error
		return nil
	case ModeBroadcast:
		t0, err = publish(ctx, cfg, conns)
	case ModeRevoke:
		t0, err = revoke(ctx, cfg)
	}
	if err != nil {
		return err
	}
	cfg.progress("%s: published; waiting for %q on %d sockets", cfg.Mode, cfg.Event, rep.StillOpen)

	// Wait until every socket that was open has the event, or the timeout.
	want := rep.StillOpen
	deadline := time.NewTimer(cfg.Timeout)
	defer deadline.Stop()
wait:
	for got := 0; got < want; got++ {
		select {
		case <-arrived:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	lat := make([]time.Duration, 0, want)
	reasons := map[string]int{}
	for _, h := range conns {
		if h == nil {
			continue
		}
		if at := h.gotAt.Load(); at != 0 {
			lat = append(lat, time.Unix(0, at).Sub(t0))
			if r, ok := h.reason.Load().(string); ok {
				reasons[r]++
			}
		}
	}
	rep.Received = len(lat)
	rep.Missing = want - len(lat)
	rep.Latency = distribution(lat)
	if cfg.Mode == ModeRevoke {
		rep.Reasons = reasons
	}
	return nil
}

// openHeld dials connection i and, unless raw, completes the Socket.IO
// connect.
func openHeld(ctx context.Context, cfg *Config, d *dialer, i int) (*held, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := d.dial(dctx, i)
	if err != nil {
		return nil, err
	}
	if !cfg.Raw {
		if _, err := socketIOConnect(coderConn{dctx, c}, cfg.Auth); err != nil {
			c.CloseNow()
			return nil, err
		}
	}
	return &held{c: c}, nil
}

// read answers pings and records the first cfg.Event until the connection
// or ctx ends.
func (h *held) read(ctx context.Context, cfg *Config, arrived chan<- struct{}) {
	defer h.closed.Store(true)
	for {
		_, msg, err := h.c.Read(ctx)
		now := time.Now()
		if err != nil {
			return
		}
		if cfg.Raw {
			continue
		}
		switch {
		case len(msg) == 1 && msg[0] == '2':
			if err := h.c.Write(ctx, websocket.MessageText, []byte("3")); err != nil {
				return
			}
		case len(msg) >= 2 && msg[0] == '4' && msg[1] == '2':
			name, ok := eventName(msg)
			if !ok || name != cfg.Event || h.gotAt.Load() != 0 {
				continue
			}
			h.gotAt.Store(now.UnixNano())
			if cfg.Mode == ModeRevoke {
				h.reason.Store(expiredReason(msg))
			}
			arrived <- struct{}{}
		}
	}
}

// publish makes the server broadcast cfg.Event and returns when it asked.
func publish(ctx context.Context, cfg *Config, conns []*held) (time.Time, error) {
	if cfg.Trigger != "" {
		for _, h := range conns {
			if h == nil || h.closed.Load() {
				continue
			}
			pkt, _ := json.Marshal([]any{cfg.Trigger, map[string]string{"event": cfg.Event}})
			t0 := time.Now()
			if err := h.c.Write(ctx, websocket.MessageText, append([]byte("42"), pkt...)); err != nil {
				return t0, fmt.Errorf("send trigger: %w", err)
			}
			return t0, nil
		}
		return time.Time{}, errors.New("no open connection to send the trigger on")
	}
	body, _ := json.Marshal(map[string]any{
		"to":    []string{cfg.Room},
		"event": cfg.Event,
		"data":  map[string]any{"bench": true},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.PublishURL, bytes.NewReader(body))
	if err != nil {
		return time.Time{}, fmt.Errorf("publish: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.PublishKey)
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return t0, fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return t0, fmt.Errorf("publish: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return t0, nil
}

// revoke deletes the sessions of the first cfg.N credentials in one
// transaction and returns the moment just before its COMMIT was sent, so
// that the latencies measured from it include the whole commit.
func revoke(ctx context.Context, cfg *Config) (time.Time, error) {
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke: %w", err)
	}
	defer conn.Close(context.Background())
	sids := make([]string, cfg.N)
	for i := range sids {
		sids[i] = cfg.Creds[i].SID
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{cfg.Table}.Sanitize()+" WHERE sid = ANY($1)", sids)
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke: delete: %w", err)
	}
	if int(tag.RowsAffected()) != len(sids) {
		return time.Time{}, fmt.Errorf("revoke: deleted %d sessions, want %d", tag.RowsAffected(), len(sids))
	}
	t0 := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return t0, fmt.Errorf("revoke: commit: %w", err)
	}
	return t0, nil
}

// runHandshake keeps cfg.Concurrency connections, spread over cfg.Loops event
// loops, each of which connects, waits for the
// Socket.IO CONNECT reply and closes, until cfg.Duration has passed.
func runHandshake(ctx context.Context, cfg *Config, rep *Report) error {
	t, err := newHSTemplate(cfg.socketURL(), cfg.Sources, cfg.Creds, cfg.Auth)
	if err != nil {
		return err
	}
	end := time.Now().Add(cfg.Duration)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end = dl
	}
	var next atomic.Int64
	nextIndex := func() int { return int(next.Add(1) - 1) }
	var stopped atomic.Bool
	// The connections are dealt to the loops as evenly as they go.
	loops := make([]*hsLoop, 0, cfg.Loops)
	for i := range cfg.Loops {
		slots := cfg.Concurrency / cfg.Loops
		if i < cfg.Concurrency%cfg.Loops {
			slots++
		}
		if slots == 0 {
			continue
		}
		l, err := newHSLoop(t, slots, nextIndex, end)
		if err == nil {
			l.stopped = &stopped
		} else {
			for _, l := range loops {
				unix.Close(l.epfd)
			}
			return err
		}
		loops = append(loops, l)
	}
	// ctx ends the run early; a loop notices within its epoll wait's
	// timeout.
	stop := context.AfterFunc(ctx, func() { stopped.Store(true) })
	defer stop()
	cpuBefore := processCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Go(l.run)
	}
	wg.Wait()
	elapsed := time.Since(start)
	rep.ClientCPUSeconds = (processCPU() - cpuBefore).Seconds()
	var all []time.Duration
	for _, l := range loops {
		all = append(all, l.lat...)
		for k, v := range l.errs {
			rep.Errors[k] += v
		}
	}
	rep.HandshakesOK = len(all)
	for _, v := range rep.Errors {
		rep.Failed += v
	}
	rep.HandshakeRate = float64(len(all)) / elapsed.Seconds()
	rep.Latency = distribution(all)
	cfg.progress("handshake: %d ok, %d failed in %.1fs: %.0f/s", rep.HandshakesOK, rep.Failed, elapsed.Seconds(), rep.HandshakeRate)
	return ctx.Err()
}

// Sleep waits for d, or until ctx is done (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
