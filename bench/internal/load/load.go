// Package load drives many Socket.IO v4 clients (websocket transport only)
// against one server on this machine and measures what sessiongate's
// benchmarks report: server memory per idle connection, handshake rate and
// latency, broadcast delivery spread and revocation latency.
//
// It speaks just enough of the protocol for that: the Engine.IO open packet,
// pings answered with pongs, the Socket.IO CONNECT (with an optional auth
// payload) and its CONNECT or CONNECT_ERROR reply, and EVENT packets. Every
// run is bounded in connections and time, and only loopback targets are
// accepted.
package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// Modes of a run.
const (
	ModeIdle      = "idle"      // open N connections, hold them, report server memory
	ModeHandshake = "handshake" // connect-until-authenticated-then-close, C connections, D seconds
	ModeBroadcast = "broadcast" // open N, publish once, time receipt on every socket
	ModeRevoke    = "revoke"    // open N with distinct sessions, delete them all, time session_expired
	// ModeAttack, ModeSlowRead and ModeStorm are in hostile.go.
)

// Limits that keep a run bounded.
const (
	MaxConnections = 20000
	MaxDuration    = 15 * time.Minute
)

// Credential is what one connection presents: a Cookie header, and the
// session id inside it (needed to revoke that session).
type Credential struct {
	SID    string
	Cookie string
}

// Config describes one run. Zero fields take the defaults beside them.
type Config struct {
	Mode string
	// URL is the server's base URL (http://127.0.0.1:3000); the Socket.IO
	// path and query are added unless Raw.
	URL string
	// Raw dials URL as a plain websocket and holds it (idle mode only): the
	// baseline servers that speak no Engine.IO.
	Raw         bool
	N           int           // connections (idle, broadcast, revoke)
	Concurrency int           // 100: parallel dials; handshake connections
	Loops       int           // 1: handshake event loops (OS threads) sharing the connections
	Duration    time.Duration // 10s: length of a handshake run
	Creds       []Credential  // used round-robin; revoke needs N distinct ones
	Auth        string        // JSON payload of the CONNECT packet, or ""
	Sources     []netip.Addr  // loopback source addresses, used round-robin
	Settle      time.Duration // 5s: pause after connecting, before measuring
	Hold        time.Duration // idle: how long to keep the connections after measuring
	Timeout     time.Duration // 2m: bound on waiting for an event
	ServerPID   int           // when set, the server's VmRSS is sampled before and after connecting
	// GCURL, when set, is requested (GET) after each RSS sample, and RSS
	// sampled again: a server endpoint that collects garbage, so that
	// retained memory is measured too.
	GCURL string

	// Broadcast: either Trigger (an event the first socket sends; the server
	// broadcasts Event to everyone) or PublishURL (POST /api/publish with
	// PublishKey to Room).
	Event      string // the event to time; "tick" for broadcast, "session_expired" for revoke
	Trigger    string
	PublishURL string
	PublishKey string
	Room       string

	// Slowread: publishes of PublishBytes each to Room through PublishURL.
	Publishes    int
	PublishBytes int

	// Revoke: the database and session table to delete the sessions from.
	DatabaseURL string
	Table       string

	// Fanout: the servers the sockets are spread over (URL is the first;
	// PublishURL is the first's), the fanout rounds, the length of the
	// single-user phase (0: none), its concurrent publishers, and the
	// Redis server whose output bytes are counted ("": none).
	URLs       []string
	Rounds     int
	Single     time.Duration
	Publishers int
	RedisAddr  string
	// ServerPIDs are the processes whose CPU time is counted over the
	// measured rounds and the single-user phase (the servers, their bus).
	ServerPIDs []int

	// Subscribe, events: requests in flight per socket (1) and the pause
	// before measuring while requests already flow (2s); Room is the room
	// subscribed to, Event the client event sent. Presence: the subscribes
	// to Room are spread over Spread (1s).
	Window int
	Warm   time.Duration
	Spread time.Duration
	// SocketRate, when positive, caps the requests each socket sends per
	// second (subscribe, events): sessiongate closes a connection over its
	// packet budget (200 messages/s).
	SocketRate float64

	// Progress, when set, receives one-line progress messages.
	Progress io.Writer
}

// Report is the result of a run, printed as JSON by the load tool.
type Report struct {
	Mode      string         `json:"mode"`
	Target    string         `json:"target"`
	Requested int            `json:"requested,omitempty"`
	Connected int            `json:"connected,omitempty"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors,omitempty"`
	// ConnectSeconds is how long opening all connections took.
	ConnectSeconds float64 `json:"connect_seconds,omitempty"`

	// Server memory (idle and the modes that open N connections), as it is
	// and, with Config.GCURL, after a garbage collection.
	RSSBeforeKiB   int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB    int64   `json:"rss_after_kib,omitempty"`
	KiBPerConn     float64 `json:"kib_per_conn,omitempty"`
	RSSBeforeGCKiB int64   `json:"rss_before_gc_kib,omitempty"` // before = the first sample
	RSSAfterGCKiB  int64   `json:"rss_after_gc_kib,omitempty"`
	KiBPerConnGC   float64 `json:"kib_per_conn_gc,omitempty"`
	StillOpen      int     `json:"still_open,omitempty"` // connections alive when measured
	HandshakesOK   int     `json:"handshakes_ok,omitempty"`
	// ClientCPUSeconds is the load tool's own CPU time (user + system)
	// during a handshake run: the share of the machine the client took.
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
	HandshakeRate    float64 `json:"handshakes_per_second,omitempty"`

	// Latency is the handshake latency, or for broadcast and revoke the
	// time from the publish (the DELETE's commit) to each socket's receipt.
	Latency  *Dist          `json:"latency_ms,omitempty"`
	Received int            `json:"received,omitempty"`
	Missing  int            `json:"missing,omitempty"`
	Reasons  map[string]int `json:"reasons,omitempty"` // revoke: session_expired reasons

	// Hostile modes: the server's highest RSS during the run and its growth
	// over RSSBeforeKiB; what the attackers achieved; how many of an honest
	// client's handshakes during the attack got their answer; storm attempts.
	PeakRSSKiB    int64                  `json:"peak_rss_kib,omitempty"`
	PeakGrowthKiB int64                  `json:"peak_growth_kib,omitempty"`
	Attacks       map[string]AttackCount `json:"attacks,omitempty"`
	HonestOK      int                    `json:"honest_ok,omitempty"`
	HonestTried   int                    `json:"honest_tried,omitempty"`
	Attempts      int                    `json:"attempts,omitempty"`

	// Fanout: the servers the sockets were spread over; each fanout round
	// and the median round's last arrival; the single-user phase's
	// publishes and deliveries (Latency is then publish to delivery) and
	// the Redis server's output bytes over it.
	Servers              int     `json:"servers,omitempty"`
	Rounds               []Round `json:"rounds,omitempty"`
	FanoutLastMs         float64 `json:"fanout_last_ms,omitempty"`
	Published            int     `json:"published,omitempty"`
	PublishFailed        int     `json:"publish_failed,omitempty"`
	Delivered            int     `json:"delivered,omitempty"`
	SingleSeconds        float64 `json:"single_seconds,omitempty"`
	PublishRate          float64 `json:"publishes_per_second,omitempty"`
	DeliveredRate        float64 `json:"delivered_per_second,omitempty"`
	RedisOutputBytes     int64   `json:"redis_output_bytes,omitempty"`
	RedisBytesPerPublish float64 `json:"redis_bytes_per_publish,omitempty"`
	// The CPU time of Config.ServerPIDs, in all, per measured round and per
	// single-user delivery.
	ServerCPUPerRoundMs    float64 `json:"server_cpu_per_round_ms,omitempty"`
	ServerCPUPerDeliveryUs float64 `json:"server_cpu_per_delivery_us,omitempty"`

	// Subscribe and events: acks in the measured window (ok, refused, by
	// code); AckRate is subscribe acks (or event acks) per second,
	// RequestRate every request's (subscribe mode: with the unsubscribes);
	// Latency is then request to ack of the subscribes (events). The CPU
	// time of Config.ServerPIDs over the window (the servers, the
	// application endpoint).
	AckOK            int            `json:"ack_ok,omitempty"`
	AckFailed        int            `json:"ack_failed,omitempty"`
	AckErrors        map[string]int `json:"ack_errors,omitempty"`
	AckRate          float64        `json:"acks_per_second,omitempty"`
	RequestRate      float64        `json:"requests_per_second,omitempty"`
	Unsubscribes     int            `json:"unsubscribes,omitempty"`
	ServerCPUSeconds float64        `json:"server_cpu_seconds,omitempty"`

	// Presence: see PresenceReport.
	Presence *PresenceReport `json:"presence,omitempty"`
}

// Run performs cfg and returns its report. It stops by itself: connections
// are bounded by MaxConnections and waiting by cfg.Timeout and ctx.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	rep := &Report{Mode: cfg.Mode, Target: cfg.URL, Errors: map[string]int{}}
	var err error
	switch cfg.Mode {
	case ModeHandshake:
		err = runHandshake(ctx, &cfg, rep)
	case ModeAttack:
		err = runAttack(ctx, &cfg, rep)
	case ModeSlowRead:
		err = runSlowRead(ctx, &cfg, rep)
	case ModeStorm:
		err = runStorm(ctx, &cfg, rep)
	case ModeFanout:
		err = runFanout(ctx, &cfg, rep)
	case ModeSubscribe, ModeEvents:
		err = runRPC(ctx, &cfg, rep)
	case ModePresence:
		err = runPresence(ctx, &cfg, rep)
	default:
		err = runHeld(ctx, &cfg, rep)
	}
	if len(rep.Errors) == 0 {
		rep.Errors = nil
	}
	return rep, err
}

func (cfg *Config) fill() error {
	switch cfg.Mode {
	case ModeIdle, ModeHandshake, ModeBroadcast, ModeRevoke, ModeAttack, ModeSlowRead, ModeStorm, ModeFanout,
		ModeSubscribe, ModeEvents, ModePresence:
	default:
		return fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	if cfg.Loops <= 0 {
		cfg.Loops = 1
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 100
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Settle < 0 {
		cfg.Settle = 0
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Duration > MaxDuration || cfg.Hold > MaxDuration || cfg.Timeout > MaxDuration || cfg.Settle > MaxDuration {
		return fmt.Errorf("durations are limited to %v", MaxDuration)
	}
	if cfg.Mode != ModeHandshake && (cfg.N <= 0 || cfg.N > MaxConnections) {
		return fmt.Errorf("-n must be in 1..%d", MaxConnections)
	}
	if cfg.Concurrency > MaxConnections {
		return fmt.Errorf("-c must be at most %d", MaxConnections)
	}
	if cfg.Raw && cfg.Mode != ModeIdle {
		return errors.New("raw websocket connections support only idle mode")
	}
	if len(cfg.URLs) == 0 {
		cfg.URLs = []string{cfg.URL}
	}
	cfg.URL = cfg.URLs[0]
	for _, u := range append([]string{cfg.GCURL}, cfg.URLs...) {
		if u == "" {
			continue
		}
		if err := requireLoopback(u); err != nil {
			return err
		}
	}
	for _, s := range cfg.Sources {
		if !s.IsLoopback() {
			return fmt.Errorf("source %v is not a loopback address", s)
		}
	}
	switch cfg.Mode {
	case ModeBroadcast:
		if cfg.Event == "" {
			cfg.Event = "tick"
		}
		if (cfg.Trigger == "") == (cfg.PublishURL == "") {
			return errors.New("broadcast needs exactly one of -trigger and -publish-url")
		}
		if cfg.PublishURL != "" {
			if err := requireLoopback(cfg.PublishURL); err != nil {
				return err
			}
			if cfg.Room == "" {
				return errors.New("-publish-url needs -room")
			}
		}
	case ModeSlowRead:
		if cfg.ServerPID <= 0 || cfg.PublishURL == "" || cfg.Room == "" {
			return errors.New("slowread needs -pid, -publish-url and -room")
		}
		if err := requireLoopback(cfg.PublishURL); err != nil {
			return err
		}
		if cfg.Publishes <= 0 || cfg.Publishes > 1000 || cfg.PublishBytes <= 0 || cfg.PublishBytes > 16<<20 {
			return errors.New("slowread needs -publishes in 1..1000 and -publish-bytes in 1..16 MiB")
		}
	case ModeFanout:
		if cfg.PublishURL == "" {
			return errors.New("fanout needs -publish-url")
		}
		if err := requireLoopback(cfg.PublishURL); err != nil {
			return err
		}
		if cfg.Rounds < 1 || cfg.Rounds > MaxRounds {
			return fmt.Errorf("fanout needs -rounds in 1..%d", MaxRounds)
		}
		if cfg.Single < 0 || cfg.Single > MaxDuration {
			return fmt.Errorf("-single is limited to %v", MaxDuration)
		}
		if cfg.Publishers <= 0 {
			cfg.Publishers = 32
		}
		if cfg.Publishers > 1000 {
			return errors.New("-publishers must be at most 1000")
		}
		if cfg.RedisAddr != "" {
			if err := requireLoopback("redis://" + cfg.RedisAddr); err != nil {
				return err
			}
		}
		seen := make(map[string]bool, cfg.N)
		for _, c := range cfg.Creds {
			seen[c.Cookie] = true
		}
		if len(cfg.Creds) < cfg.N || len(seen) < cfg.N {
			return fmt.Errorf("fanout needs %d distinct sessions (one user each), have %d", cfg.N, len(seen))
		}
	case ModeSubscribe, ModeEvents, ModePresence:
		if cfg.Window <= 0 {
			cfg.Window = 1
		}
		if cfg.Window > MaxWindow {
			return fmt.Errorf("-window must be at most %d", MaxWindow)
		}
		if cfg.Warm <= 0 {
			cfg.Warm = 2 * time.Second
		}
		if cfg.Spread <= 0 {
			cfg.Spread = time.Second
		}
		if cfg.SocketRate < 0 {
			return errors.New("-socket-rate must not be negative")
		}
		if cfg.Warm > MaxDuration || cfg.Spread > MaxDuration {
			return fmt.Errorf("durations are limited to %v", MaxDuration)
		}
		if cfg.Room == "" {
			cfg.Room = "bench:room"
		}
		if cfg.Event == "" {
			cfg.Event = "bench:act"
		}
		if !plainName(cfg.Room) || !plainName(cfg.Event) {
			return errors.New("-room and -event must be letters, digits and :_-. only")
		}
		if len(cfg.Creds) == 0 {
			return fmt.Errorf("%s needs -cookies", cfg.Mode)
		}
		if cfg.Mode == ModePresence {
			seen := make(map[string]bool, cfg.N)
			for _, c := range cfg.Creds {
				seen[c.Cookie] = true
			}
			if len(cfg.Creds) < cfg.N || len(seen) < cfg.N {
				return fmt.Errorf("presence needs %d distinct sessions (one user each), have %d", cfg.N, len(seen))
			}
		}
	case ModeRevoke:
		if cfg.Event == "" {
			cfg.Event = "session_expired"
		}
		if cfg.DatabaseURL == "" || cfg.Table == "" {
			return errors.New("revoke needs -db and -table")
		}
		if err := requireLoopback(cfg.DatabaseURL); err != nil {
			return err
		}
		seen := make(map[string]bool, cfg.N)
		for _, c := range cfg.Creds {
			seen[c.SID] = true
		}
		if len(cfg.Creds) < cfg.N || len(seen) < cfg.N {
			return fmt.Errorf("revoke needs %d distinct sessions, have %d", cfg.N, len(seen))
		}
	}
	return nil
}

// plainName reports whether s needs no escaping in JSON: the room and
// event names the request/ack modes write into their packets as they are.
func plainName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":_-.", r)) {
			return false
		}
	}
	return s != ""
}

// socketURL is the websocket URL of the server's Socket.IO endpoint.
func (cfg *Config) socketURL() string {
	u := strings.TrimRight(cfg.URL, "/")
	if cfg.Raw {
		return u
	}
	return u + "/socket.io/?EIO=4&transport=websocket"
}

func (cfg *Config) progress(format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}

// requireLoopback refuses any URL whose host is not a loopback address.
func requireLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse %q: %w", raw, err)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%q is not a loopback address: only this machine may be loaded", host)
		}
	}
	return nil
}

// Sources returns n loopback source addresses: 127.0.0.1, 127.0.0.2, ...
func Sources(n int) []netip.Addr {
	if n < 1 {
		n = 1
	}
	n = min(n, 250)
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
	}
	return out
}

// ReadCredentials reads a credentials file: one session a line, the session
// id and the Cookie header separated by a tab. Blank lines and lines starting
// with # are skipped.
func ReadCredentials(r io.Reader) ([]Credential, error) {
	var out []Credential
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		sid, cookie, ok := strings.Cut(text, "\t")
		if !ok || sid == "" || cookie == "" {
			return nil, fmt.Errorf("credentials line %d: want <sid>\\t<cookie header>", line)
		}
		out = append(out, Credential{SID: sid, Cookie: cookie})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return out, nil
}

// WriteCredentials writes creds in the format ReadCredentials reads.
func WriteCredentials(w io.Writer, creds []Credential) error {
	bw := bufio.NewWriter(w)
	for _, c := range creds {
		fmt.Fprintf(bw, "%s\t%s\n", c.SID, c.Cookie)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// RSS returns the resident set size of process pid in KiB (VmRSS).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// MarshalLine is the report as one line of JSON.
func (r *Report) MarshalLine() []byte {
	b, _ := json.Marshal(r)
	return append(b, '\n')
}

// serverRSS returns the server's VmRSS in KiB and, when cfg.GCURL is set,
// its VmRSS after a garbage collection requested there (else 0).
func (cfg *Config) serverRSS(ctx context.Context) (asIs, afterGC int64, err error) {
	if asIs, err = RSS(cfg.ServerPID); err != nil || cfg.GCURL == "" {
		return asIs, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.GCURL, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("gc: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("gc: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, 0, fmt.Errorf("gc: %s answered %s", cfg.GCURL, resp.Status)
	}
	afterGC, err = RSS(cfg.ServerPID)
	return asIs, afterGC, err
}
