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
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The hostile modes: what a client that wants to hurt the server does, and a
// reconnect storm of honest ones.
//
//	attack    -n anonymous connections for -d, each repeating one of the
//	          attacks (attackKinds) as hard as it can, reconnecting when closed;
//	          the server's peak RSS growth is the figure
//	slowread  -n authenticated connections that never read, then -publishes
//	          publishes of -publish-bytes each to -room; peak RSS growth
//	storm     -n clients connect at once and retry with socket.io-client's
//	          backoff until all are in; time until the last is connected
const (
	ModeAttack   = "attack"
	ModeSlowRead = "slowread"
	ModeStorm    = "storm"
)

// attackKinds are the attacks of ModeAttack, given to connections in turn.
var attackKinds = []string{"attachments", "pings", "events", "fragments", "headers", "bodies"}

// smallRcvBuf is the receive buffer of connections that never read: the
// kernel holds little for them, so what the server queues stays in the
// server.
const smallRcvBuf = 4096

// hostileSample is how often the server's RSS is read during a hostile run.
const hostileSample = 50 * time.Millisecond

// rssPeak samples the server's RSS until stop is closed and reports the
// highest value seen, in KiB.
type rssPeak struct {
	pid  int
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startRSSPeak(pid int) *rssPeak {
	p := &rssPeak{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(hostileSample)
		defer t.Stop()
		for {
			if kib, err := RSS(pid); err == nil && kib > p.peak.Load() {
				p.peak.Store(kib)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *rssPeak) end() int64 {
	close(p.stop)
	<-p.done
	return p.peak.Load()
}

// rawDialer opens plain TCP connections from the loopback sources in turn,
// optionally with a small receive buffer.
type rawDialer struct {
	addr  string
	host  string
	nets  []*net.Dialer
	slow  []*net.Dialer // SO_RCVBUF = smallRcvBuf
	next  atomic.Uint64
	path  string // Socket.IO path and query prefix: /socket.io/?EIO=4
	creds []Credential
}

func newRawDialer(base string, sources []netip.Addr, creds []Credential) (*rawDialer, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", base, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if len(sources) == 0 {
		sources = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	d := &rawDialer{addr: addr, host: u.Host, path: strings.TrimRight(u.Path, "/") + "/socket.io/?EIO=4", creds: creds}
	for _, src := range sources {
		local := &net.TCPAddr{IP: src.AsSlice()}
		d.nets = append(d.nets, &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local, Control: bindAddressNoPort})
		d.slow = append(d.slow, &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local, Control: func(network, address string, c syscall.RawConn) error {
			if err := bindAddressNoPort(network, address, c); err != nil {
				return err
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, smallRcvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}})
	}
	return d, nil
}

func (d *rawDialer) dial(ctx context.Context, slow bool) (net.Conn, error) {
	n := int(d.next.Add(1))
	nd := d.nets[n%len(d.nets)]
	if slow {
		nd = d.slow[n%len(d.slow)]
	}
	return nd.DialContext(ctx, "tcp", d.addr)
}

// upgrade opens a websocket to the Socket.IO endpoint with cookie (may be
// empty) and reads the 101 response; the Engine.IO open packet is left
// unread.
func (d *rawDialer) upgrade(ctx context.Context, slow bool, cookie string) (net.Conn, *bufio.Reader, error) {
	c, err := d.dial(ctx, slow)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s&transport=websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", d.path, d.host)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", wsKey)
	if cookie != "" {
		fmt.Fprintf(&b, "Cookie: %s\r\n", cookie)
	}
	b.WriteString("\r\n")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b.Bytes()); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	_ = c.SetDeadline(time.Time{})
	return c, br, nil
}

// clientFrame is a client websocket frame with a zero mask key (a valid
// mask that leaves the payload as is, so large frames cost no masking).
func clientFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var f []byte
	switch n := len(payload); {
	case n < 126:
		f = []byte{b0, 0x80 | byte(n)}
	case n <= 0xffff:
		f = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		f = []byte{b0, 0x80 | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, payload...)
}

// attackStats counts what the attackers did, by kind.
type attackStats struct {
	mu       sync.Mutex
	opened   map[string]int // connections (or requests) that reached the server
	refused  map[string]int // refused before they did (HTTP error, dial error)
	sentMiB  map[string]float64
	closedBy map[string]int // closed by the server while attacking
}

func (s *attackStats) add(m map[string]int, kind string) {
	s.mu.Lock()
	m[kind]++
	s.mu.Unlock()
}

func (s *attackStats) sent(kind string, n int) {
	s.mu.Lock()
	s.sentMiB[kind] += float64(n) / (1 << 20)
	s.mu.Unlock()
}

// runAttack runs cfg.N attackers for cfg.Duration while an honest client
// keeps connecting, and reports the server's peak RSS growth.
func runAttack(ctx context.Context, cfg *Config, rep *Report) error {
	d, err := newRawDialer(cfg.URL, cfg.Sources, nil)
	if err != nil {
		return err
	}
	rep.Requested = cfg.N
	if cfg.ServerPID > 0 {
		if rep.RSSBeforeKiB, err = RSS(cfg.ServerPID); err != nil {
			return err
		}
	}
	var peak *rssPeak
	if cfg.ServerPID > 0 {
		peak = startRSSPeak(cfg.ServerPID)
	}
	st := &attackStats{opened: map[string]int{}, refused: map[string]int{}, sentMiB: map[string]float64{}, closedBy: map[string]int{}}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cfg.N {
		kind := attackKinds[i%len(attackKinds)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				attack(runCtx, d, kind, st)
				// Reconnect at once, but not in a tight loop when refused.
				_ = Sleep(runCtx, 20*time.Millisecond)
			}
		}()
	}
	honestOK, honestTried := honestLoop(runCtx, cfg)
	wg.Wait()
	if peak != nil {
		rep.PeakRSSKiB = peak.end()
		rep.PeakGrowthKiB = rep.PeakRSSKiB - rep.RSSBeforeKiB
		rep.RSSAfterKiB, _ = RSS(cfg.ServerPID)
	}
	rep.Attacks = map[string]AttackCount{}
	for _, k := range attackKinds {
		rep.Attacks[k] = AttackCount{Opened: st.opened[k], Refused: st.refused[k], ClosedByServer: st.closedBy[k], SentMiB: st.sentMiB[k]}
	}
	rep.HonestOK, rep.HonestTried = honestOK, honestTried
	return nil
}

// AttackCount is what the attackers of one kind achieved.
type AttackCount struct {
	Opened         int     `json:"opened"`
	Refused        int     `json:"refused"`
	ClosedByServer int     `json:"closed_by_server"`
	SentMiB        float64 `json:"sent_mib"`
}

// honestLoop connects an honest client (cfg.Creds[0], when given) every
// 200 ms until ctx ends, and counts the handshakes that got through.
func honestLoop(ctx context.Context, cfg *Config) (ok, tried int) {
	d := newDialer(cfg.socketURL(), cfg.Sources, cfg.Creds)
	for ctx.Err() == nil {
		tried++
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		c, err := d.dial(hctx, 0)
		if err == nil {
			_, err = socketIOConnect(coderConn{hctx, c}, cfg.Auth)
			var ce *ConnectError
			if err == nil || len(cfg.Creds) == 0 && errors.As(err, &ce) {
				ok++ // without credentials a clear refusal is the honest answer
			}
			c.CloseNow()
		}
		cancel()
		_ = Sleep(ctx, 200*time.Millisecond)
	}
	return ok, tried
}

var (
	bigBinary = bytes.Repeat([]byte{0xab}, 900_000)
	fragment  = bytes.Repeat([]byte{'a'}, 64<<10)
	pingBody  = bytes.Repeat([]byte{'p'}, 125)
)

// attack makes one connection of kind and keeps at it until the server
// closes it or ctx ends.
func attack(ctx context.Context, d *rawDialer, kind string, st *attackStats) {
	switch kind {
	case "headers":
		attackHeaders(ctx, d, st)
		return
	case "bodies":
		attackBody(ctx, d, st)
		return
	}
	c, _, err := d.upgrade(ctx, true, "")
	if err != nil {
		st.add(st.refused, kind)
		return
	}
	defer c.Close()
	st.add(st.opened, kind)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	write := func(b []byte) bool {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b); err != nil {
			if ctx.Err() == nil {
				st.add(st.closedBy, kind)
			}
			return false
		}
		st.sent(kind, len(b))
		return true
	}
	switch kind {
	case "attachments":
		// A binary event announcing 1000 attachments, then 900 kB each.
		if !write(clientFrame(0x1, true, []byte(`451000-["a",{"_placeholder":true,"num":0}]`))) {
			return
		}
		frame := clientFrame(0x2, true, bigBinary)
		for write(frame) {
		}
	case "pings":
		// Websocket and Engine.IO pings that want answers, never reading
		// them, with an event now and then.
		var b []byte
		for range 16 {
			b = append(b, clientFrame(0x9, true, pingBody)...)
			b = append(b, clientFrame(0x1, true, []byte("2"))...)
		}
		b = append(b, clientFrame(0x1, true, []byte(`42["x",1]`))...)
		for write(b) {
		}
	case "events":
		// Events before (and instead of) any CONNECT.
		ev := clientFrame(0x1, true, []byte(`42["flood","`+strings.Repeat("e", 1000)+`"]`))
		b := bytes.Repeat(ev, 64)
		for write(b) {
		}
	case "fragments":
		// A text message that never ends.
		if !write(clientFrame(0x1, false, fragment)) {
			return
		}
		cont := clientFrame(0x0, false, fragment)
		for write(cont) {
		}
	}
}

// attackHeaders sends a polling handshake with 1 MiB of headers.
func attackHeaders(ctx context.Context, d *rawDialer, st *attackStats) {
	c, err := d.dial(ctx, false)
	if err != nil {
		st.add(st.refused, "headers")
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s&transport=polling HTTP/1.1\r\nHost: %s\r\n", d.path, d.host)
	pad := strings.Repeat("h", 8000)
	for i := range 128 {
		fmt.Fprintf(&b, "X-Pad-%d: %s\r\n", i, pad)
	}
	b.WriteString("\r\n")
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Write(b.Bytes())
	st.sent("headers", n)
	if err != nil {
		st.add(st.closedBy, "headers")
		return
	}
	st.add(st.opened, "headers")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		st.add(st.closedBy, "headers")
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		st.add(st.closedBy, "headers")
	}
}

// attackBody opens a polling session and POSTs half of a 1 MB body, then
// stalls, holding the request open.
func attackBody(ctx context.Context, d *rawDialer, st *attackStats) {
	c, err := d.dial(ctx, false)
	if err != nil {
		st.add(st.refused, "bodies")
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	br := bufio.NewReader(c)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s&transport=polling HTTP/1.1\r\nHost: %s\r\n\r\n", d.path, d.host)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		st.add(st.refused, "bodies")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	var open struct {
		SID string `json:"sid"`
	}
	if i := bytes.IndexByte(body, '{'); resp.StatusCode != http.StatusOK || i < 0 || json.Unmarshal(body[i:], &open) != nil || open.SID == "" {
		st.add(st.refused, "bodies")
		return
	}
	st.add(st.opened, "bodies")
	_ = c.SetDeadline(time.Time{})
	head := fmt.Sprintf("POST %s&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n4", d.path, url.QueryEscape(open.SID), d.host)
	if _, err := io.WriteString(c, head); err != nil {
		st.add(st.closedBy, "bodies")
		return
	}
	n, err := c.Write(bytes.Repeat([]byte{'b'}, 500_000))
	st.sent("bodies", n)
	if err != nil {
		st.add(st.closedBy, "bodies")
		return
	}
	// Stall: wait for the server to give up on the body, or the end.
	var one [1]byte
	if _, err := c.Read(one[:]); err != nil && ctx.Err() == nil {
		st.add(st.closedBy, "bodies")
		return
	}
	for {
		if _, err := c.Read(one[:]); err != nil {
			if ctx.Err() == nil {
				st.add(st.closedBy, "bodies")
			}
			return
		}
	}
}

// runSlowRead opens cfg.N authenticated connections that stop reading once
// connected, publishes cfg.Publishes messages of cfg.PublishBytes to
// cfg.Room, and reports the server's peak RSS growth.
func runSlowRead(ctx context.Context, cfg *Config, rep *Report) error {
	d, err := newRawDialer(cfg.URL, cfg.Sources, cfg.Creds)
	if err != nil {
		return err
	}
	rep.Requested = cfg.N
	if rep.RSSBeforeKiB, err = RSS(cfg.ServerPID); err != nil {
		return err
	}
	peak := startRSSPeak(cfg.ServerPID)
	conns := make([]net.Conn, 0, cfg.N)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range cfg.N {
		cookie := ""
		if len(cfg.Creds) > 0 {
			cookie = cfg.Creds[i%len(cfg.Creds)].Cookie
		}
		c, br, err := d.upgrade(ctx, true, cookie)
		if err != nil {
			rep.Failed++
			rep.Errors[errClass(err)]++
			continue
		}
		if err := rawConnect(c, br); err != nil {
			c.Close()
			rep.Failed++
			rep.Errors[errClass(err)]++
			continue
		}
		conns = append(conns, c) // and never read again
	}
	rep.Connected = len(conns)
	cfg.progress("slowread: %d/%d connected; publishing %d × %d bytes", len(conns), cfg.N, cfg.Publishes, cfg.PublishBytes)
	data, _ := json.Marshal(strings.Repeat("s", cfg.PublishBytes))
	body, _ := json.Marshal(struct {
		To    []string        `json:"to"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}{[]string{cfg.Room}, "big", data})
	for range cfg.Publishes {
		if err := postPublish(ctx, cfg, body); err != nil {
			rep.Errors["publish: "+errClass(err)]++
		}
	}
	_ = Sleep(ctx, cfg.Settle)
	rep.PeakRSSKiB = peak.end()
	rep.PeakGrowthKiB = rep.PeakRSSKiB - rep.RSSBeforeKiB
	rep.RSSAfterKiB, _ = RSS(cfg.ServerPID)
	return nil
}

// connect opens an authenticated socket: the websocket upgrade with
// cookie, within 30 s, then the main namespace's CONNECT (rawConnect).
func (d *rawDialer) connect(ctx context.Context, cookie string) (net.Conn, *bufio.Reader, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, br, err := d.upgrade(dctx, false, cookie)
	if err != nil {
		return nil, nil, err
	}
	if err := rawConnect(c, br); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, br, nil
}

// rawConnect reads the open packet on a raw websocket, sends CONNECT and
// reads until the CONNECT reply, answering nothing else.
func rawConnect(c net.Conn, br *bufio.Reader) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(clientFrame(0x1, true, []byte("40"))); err != nil {
		return err
	}
	for {
		op, p, err := readServerFrame(br)
		if err != nil {
			return err
		}
		if op != 0x1 {
			continue
		}
		if bytes.HasPrefix(p, []byte("40")) || bytes.HasPrefix(p, []byte("44")) {
			_, err := parseConnectReply(p)
			return err
		}
	}
}

// readServerFrame reads one unmasked server frame (control frames and
// fragments are returned as they come).
func readServerFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(e[0])<<8 | uint64(e[1])
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(br, e[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, b := range e {
			n = n<<8 | uint64(b)
		}
	}
	if n > 4<<20 {
		return 0, nil, errors.New("server frame over 4 MiB")
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0] & 0x0f, payload, err
}

func postPublish(ctx context.Context, cfg *Config, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.PublishURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.PublishKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New("publish: " + resp.Status)
	}
	return nil
}

// Reconnection delays of socket.io-client's defaults: reconnectionDelay
// 1 s doubling to reconnectionDelayMax 5 s, randomizationFactor 0.5.
const (
	stormMinDelay = time.Second
	stormMaxDelay = 5 * time.Second
)

// stormDelay is socket.io-client's backoff before retry attempt (0-based).
func stormDelay(attempt int) time.Duration {
	ms := float64(stormMinDelay.Milliseconds()) * float64(uint(1)<<min(attempt, 10))
	dev := rand.Float64() * 0.5 * ms
	if rand.IntN(2) == 0 {
		ms -= dev
	} else {
		ms += dev
	}
	return min(time.Duration(ms)*time.Millisecond, stormMaxDelay)
}

// runStorm starts cfg.N clients at once; each retries with socket.io-client's
// backoff until it is connected (and then stays), or cfg.Timeout.
func runStorm(ctx context.Context, cfg *Config, rep *Report) error {
	rep.Requested = cfg.N
	d := newDialer(cfg.socketURL(), cfg.Sources, cfg.Creds)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	var (
		mu       sync.Mutex
		times    []time.Duration
		attempts atomic.Int64
		wg       sync.WaitGroup
		release  = make(chan struct{})
	)
	for i := range cfg.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			for attempt := 0; runCtx.Err() == nil; attempt++ {
				attempts.Add(1)
				actx, acancel := context.WithTimeout(runCtx, 20*time.Second)
				c, err := d.dial(actx, i)
				if err == nil {
					if _, err = socketIOConnect(coderConn{actx, c}, cfg.Auth); err == nil {
						acancel()
						mu.Lock()
						times = append(times, time.Since(start))
						mu.Unlock()
						// Stay connected, answering pings, until the end.
						go func() {
							for {
								p, err := (coderConn{runCtx, c}).ReadMessage()
								if err != nil {
									return
								}
								if bytes.Equal(p, []byte("2")) {
									_ = (coderConn{runCtx, c}).WriteMessage([]byte("3"))
								}
							}
						}()
						<-runCtx.Done()
						c.CloseNow()
						return
					}
					c.CloseNow()
				}
				acancel()
				mu.Lock()
				rep.Errors[errClass(err)]++
				mu.Unlock()
				_ = Sleep(runCtx, stormDelay(attempt))
			}
		}()
	}
	close(release)
	// Done when everyone is in (or the timeout).
	for runCtx.Err() == nil {
		mu.Lock()
		n := len(times)
		mu.Unlock()
		if n == cfg.N {
			break
		}
		_ = Sleep(runCtx, 50*time.Millisecond)
	}
	mu.Lock()
	rep.Connected = len(times)
	rep.Latency = distribution(times)
	for _, t := range times {
		rep.ConnectSeconds = max(rep.ConnectSeconds, t.Seconds())
	}
	mu.Unlock()
	rep.Failed = cfg.N - rep.Connected
	rep.Attempts = int(attempts.Load())
	cancel()
	wg.Wait()
	cfg.progress("storm: %d/%d connected in %.2fs, %d attempts", rep.Connected, cfg.N, rep.ConnectSeconds, rep.Attempts)
	return nil
}
