package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/internal/hook"
	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/web"
)

// server is a running `sessiongate serve`.
type server struct {
	cfg   Config
	log   *slog.Logger
	store *openedStore
	ln    net.Listener
	http  *http.Server
	// metricsLn and metricsHTTP serve /metrics on METRICS_ADDR; nil
	// without it.
	metricsLn   net.Listener
	metricsHTTP *http.Server
	io          *socketio.Server
	gw          *gateway.Gateway
	// bus is the CLUSTER bus; nil on a single node.
	bus clusterBus
	// recoveryLog keeps what connection state recovery replays: the
	// cluster's shared log (closed by recoveryCloser) or the node's own;
	// nil with RECOVERY=off.
	recoveryLog    socketio.RecoveryLog
	recoveryCloser io.Closer

	stopRun   context.CancelFunc
	runDone   chan struct{} // closed when gateway.Run returns
	pruneDone chan struct{} // closed when the pruner returns (at once when off)
	done      chan error    // the listener failed

	once    sync.Once
	stopErr error
}

// startServer opens the store, listens, and serves until shutdown.
func startServer(ctx context.Context, cfg Config, stdout, stderr io.Writer) (_ *server, err error) {
	log := cfg.newLogger(stderr)
	s := &server{cfg: cfg, log: log, runDone: make(chan struct{}), pruneDone: make(chan struct{}), done: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.abort()
		}
	}()

	if cfg.Demo && cfg.DatabaseURL != "" {
		log.Warn("--demo uses the embedded SQLite store: DATABASE_URL is ignored")
	}
	if s.store, err = openStore(ctx, &cfg); err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, &cfg, s.store); err != nil {
		return nil, err
	}
	secrets := make([][]byte, 0, len(cfg.SessionSecrets))
	for _, sec := range cfg.SessionSecrets {
		secrets = append(secrets, []byte(sec))
	}
	var demoUsers []demoUser
	if cfg.Demo {
		if len(secrets) == 0 {
			sec, err := demoSecret(cfg.DataDir)
			if err != nil {
				return nil, err
			}
			secrets = [][]byte{sec}
		}
		if demoUsers, err = ensureDemoUsers(ctx, s.store, cfg.DataDir, cfg.DemoPassword); err != nil {
			return nil, err
		}
	}

	// TCP keep-alive on accepted connections finds peers that vanished
	// without a FIN (a body or an upgrade stalled mid-way, a NAT that
	// dropped its entry) even where no heartbeat or timeout runs yet. It
	// costs four setsockopt calls per accepted connection: 6-9 µs on the
	// benchmark machine, about 3% of the ~220 µs CPU of an authenticated
	// handshake (BenchmarkKeepAliveAccept).
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	ln, err := lc.Listen(ctx, "tcp", cfg.ListenAddr)
	if err != nil {
		return nil, &ConfigError{Setting: "LISTEN_ADDR", Err: err}
	}
	s.ln = framingListener{ln}
	origins := cfg.AllowedOrigins
	if cfg.Demo {
		port := strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)
		origins = append(origins[:len(origins):len(origins)], "http://localhost:"+port, "http://127.0.0.1:"+port)
	}
	if len(origins) == 0 {
		log.Info("ALLOWED_ORIGINS is empty: only pages of this server's own origin (and clients sending no Origin) connect")
	}

	users, err := userChecker(ctx, &cfg, s.store)
	if err != nil {
		return nil, err
	}
	if s.bus, err = openCluster(ctx, &cfg, s.store, log); err != nil {
		return nil, err
	}
	if err := s.openRecoveryLog(ctx, &cfg); err != nil {
		return nil, err
	}
	var newAdapter func(*socketio.MemoryAdapter) socketio.Adapter
	if s.bus != nil {
		newAdapter = s.bus.Adapter
	}
	authorizer, err := subscribeAuthorizer(&cfg, s.store)
	if err != nil {
		return nil, err
	}
	forwarder, err := eventForwarder(&cfg, s.store)
	if err != nil {
		return nil, err
	}
	if cfg.Demo && cfg.PresenceRooms == nil {
		cfg.PresenceRooms, _ = gateway.ParseRoomPatterns(demoPresenceRooms)
	}
	leaveDelay := cfg.PresenceLeaveDelay
	if leaveDelay == 0 {
		leaveDelay = -1 // PRESENCE_LEAVE_DELAY=0: at once
	}
	s.gw, err = gateway.New(gateway.Config{
		Sessions:              s.store,
		Revocations:           s.store,
		Audit:                 s.store,
		Users:                 users,
		Secrets:               secrets,
		CookieName:            cfg.SessionCookie,
		CheckInterval:         cfg.CheckInterval,
		RefreshThreshold:      cfg.RefreshThreshold,
		RefreshExtend:         cfg.RefreshExtend,
		SessionRooms:          cfg.SessionRooms,
		MaxConnectionsPerUser: cfg.MaxConnectionsPerUser,
		EventRate:             cfg.EventRateLimit,
		EventBurst:            cfg.EventRateBurst,
		ClusterLimits:         s.bus != nil,
		TrustedProxies:        cfg.TrustedProxies,
		AuditSpool:            cfg.auditSpoolDir(),
		AuditSpoolMax:         cfg.AuditSpoolMax,
		PublicRooms:           cfg.PublicRooms,
		Authorizer:            authorizer,
		SubscribeTimeout:      cfg.HookTimeout,
		Events:                forwarder,
		ClientEvents:          cfg.ClientEvents,
		PresenceRooms:         cfg.PresenceRooms,
		PresenceLeaveDelay:    leaveDelay,
		PresenceMaxMembers:    cfg.PresenceMaxMembers,
		PresenceTTL:           cfg.PresenceTTL,
		Logger:                log,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.io = socketio.NewServer(socketio.Options{
		Engine: engineio.Options{
			PingInterval: cfg.PingInterval,
			PingTimeout:  cfg.PingTimeout,
			MaxPayload:   cfg.MaxPayload,
			MaxSessions:  cfg.MaxConnections,
			// The one place ALLOWED_ORIGINS is enforced for sockets: CORS,
			// every later request of a session (403), and the opening one
			// marked so that its CONNECTs get ORIGIN_NOT_ALLOWED.
			AllowedOrigins: origins,
			// A session's later requests must come from the browser that
			// opened it: its sid alone is not a credential.
			VerifyRequest:    s.gw.VerifyRequest,
			HandshakeRate:    cfg.RateLimit,
			HandshakeBurst:   cfg.RateBurst,
			MaxPending:       cfg.maxUnauthenticated(),
			MaxPendingPerKey: cfg.MaxUnauthenticatedPerIP,
			// Trusted-proxy aware, IPv6 per /64.
			ClientKey: s.gw.ClientKey,
		},
		ConnectTimeout:  cfg.ConnectTimeout,
		OriginRefusal:   gateway.OriginRefusal(),
		OnOriginRefused: s.gw.OriginRefused,
		// With CLUSTER, rooms and broadcasts go through the bus.
		NewAdapter: newAdapter,
		SocketData: s.gw.SocketData,
		Recovery:   s.recoveryOptions(cfg),
		Logger:     log,
	})
	ns := s.io.Of("/")
	s.gw.Attach(ns)
	// A Node peer's serverSideEmit with an ack waits for an answer from
	// every node it counts, until its requestsTimeout (5 s), then fails:
	// sessiongate runs no application handlers of server-side events, so
	// it acknowledges each one at once, with null (docs/cluster.md).
	ns.OnServerEvent(func(_ socketio.Event, ack func(any)) {
		if ack != nil {
			ack(nil)
		}
	})

	// The handler reads api's counters at each scrape, after api is made.
	var api *httpapi.Handler
	var clusterStats func() prometheus.ClusterStats
	if s.bus != nil {
		clusterStats = s.bus.Stats
	}
	metrics, err := prometheus.Handler(prometheus.Sources{
		Cluster: clusterStats,
		Gateway: s.gw.Stats,
		HTTP:    func() httpapi.Stats { return api.Stats() },
		Engine:  s.io.EngineStats,
		Socket:  s.io.Stats,
		Extra: append([]prometheus.Family{
			prometheus.Counter("untrusted_forwarded_requests_total",
				"Requests with X-Forwarded-For from a peer not in TRUSTED_PROXIES (the header is ignored; such clients share the peer's limits).",
				func() uint64 { _, n := s.gw.UntrustedForwarders(); return n }),
			prometheus.Gauge("presence_rooms",
				"Presence rooms this node tracks (its own and those other nodes report; at most 100,000).",
				func() int64 { return s.gw.PresenceStats().Rooms }),
			prometheus.Counter("presence_events_total",
				"Presence events sent to this node's sockets (one per room and flush, whatever the number of sockets).",
				func() uint64 { return s.gw.PresenceStats().Events }),
			prometheus.Counter("presence_gossip_sent_total",
				"Presence gossip messages published to the other nodes (deltas, heartbeats, sync, bye).",
				func() uint64 { return s.gw.PresenceStats().GossipOut }),
			prometheus.Counter("presence_gossip_received_total",
				"Presence gossip messages received from the other nodes and applied.",
				func() uint64 { return s.gw.PresenceStats().GossipIn }),
			prometheus.Counter("presence_gossip_refused_total",
				"Presence gossip messages refused: undecodable or over the size limit.",
				func() uint64 { return s.gw.PresenceStats().GossipBad }),
			prometheus.Counter("presence_dropped_total",
				"Presence rooms and other nodes' entries not tracked: over 100,000 rooms or 1,000,000 entries.",
				func() uint64 { return s.gw.PresenceStats().Dropped }),
		}, s.recoveryFamilies()...),
	})
	if err != nil {
		return nil, err
	}
	apiCfg := httpapi.Config{
		Publisher:      publisher{ns},
		Rooms:          publisher{ns},
		Presence:       presenceSource(cfg, s.gw),
		PublishKey:     cfg.PublishKey,
		Auth:           cfg.AuthEndpoints,
		Users:          s.store,
		Sessions:       s.store,
		Ender:          s.gw,
		Secrets:        secrets,
		CookieName:     cfg.SessionCookie,
		SessionMaxAge:  cfg.SessionMaxAge,
		CookieSecure:   cfg.CookieSecure,
		LoginRateLimit: cfg.LoginRateLimit,
		TrustedProxies: cfg.TrustedProxies,
		AllowedOrigins: origins,
		Ready:          readiness{s.store, s.gw},
		Bus:            s.busPinger(),
		Warnings:       s.untrustedForwarderWarnings,
		Metrics:        metrics,
		MetricsKey:     cfg.MetricsKey,
		Logger:         log,
	}
	if apiCfg.LoginRateLimit == 0 {
		apiCfg.LoginRateLimit = -1
	}
	if cfg.Demo {
		apiCfg.Static = web.Handler()
		apiCfg.DemoIncidents = cfg.AuthEndpoints
		apiCfg.DemoUsers = demoEmails
	}
	if api, err = httpapi.New(apiCfg); err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle(cfg.SocketPath, s.io)
	mux.Handle("/", api)
	s.http = newHTTPServer(mux, log)

	if err := s.listenMetrics(metrics); err != nil {
		return nil, err
	}

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	s.stopRun = stopRun
	go runGCFloor(runCtx)
	go func() {
		defer close(s.runDone)
		if err := s.gw.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("gateway stopped", "err", err)
		}
	}()
	go s.prune(runCtx)
	go func() {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			s.done <- fmt.Errorf("serve: %w", err)
		}
	}()

	log.Info("listening", "addr", s.addr(), "socket_path", cfg.SocketPath, "store", s.store.desc,
		"cluster", s.clusterDesc(),
		"origins", origins, "publish", cfg.PublishKey != "", "auth_endpoints", cfg.AuthEndpoints,
		"prune_interval", cfg.pruneInterval(),
		"public_rooms", len(cfg.PublicRooms), "presence_rooms", len(cfg.PresenceRooms), "subscribe_hook", cfg.SubscribeURL != "", "events_hook", cfg.EventsURL != "", "metrics_addr", s.metricsAddr(), "metrics_key", cfg.MetricsKey != "",
		"version", version)
	if cfg.MetricsAddr == "" && cfg.MetricsKey == "" {
		log.Info("/metrics is not served: set METRICS_ADDR (e.g. 127.0.0.1:9090) for a private listener, or METRICS_KEY to serve it on LISTEN_ADDR behind a Bearer key")
	}
	if cfg.Demo {
		printDemo(stdout, s.addr(), demoUsers)
	}
	return s, nil
}

// subscribeAuthorizer is the gateway's Authorizer: SUBSCRIBE_URL through
// the hook client; in the demo with its login and no SUBSCRIBE_URL, the
// demo's rule through the same client, served in process; nil otherwise.
func subscribeAuthorizer(cfg *Config, users sessiongate.UserStore) (gateway.Authorizer, error) {
	hc := hook.Config{URL: cfg.SubscribeURL, Secret: []byte(cfg.HookSecret), Timeout: cfg.HookTimeout}
	switch {
	case cfg.SubscribeURL != "":
	case cfg.Demo && cfg.AuthEndpoints:
		hc.URL = "http://demo.invalid" + demoSubscribePath
		hc.Secret = []byte(randomHex(32))
		hc.Transport = hook.Handler{Handler: demoSubscribeRule(users, hc.Secret)}
	default:
		return nil, nil
	}
	c, err := hook.New(hc)
	if err != nil {
		return nil, &ConfigError{Setting: "SUBSCRIBE_URL", Err: err}
	}
	return gateway.HookAuthorizer(c), nil
}

// eventForwarder is the gateway's EventForwarder: EVENTS_URL through a
// hook client of its own (its own MaxInFlight bound and connection pool);
// in the demo with its login and no EVENTS_URL, the demo's rule through
// the same client, served in process (and, without CLIENT_EVENTS, only
// incident:ack is forwarded); nil otherwise.
func eventForwarder(cfg *Config, users sessiongate.UserStore) (gateway.EventForwarder, error) {
	hc := hook.Config{URL: cfg.EventsURL, Secret: []byte(cfg.HookSecret), Timeout: cfg.HookTimeout}
	switch {
	case cfg.EventsURL != "":
	case cfg.Demo && cfg.AuthEndpoints:
		hc.URL = "http://demo.invalid" + demoEventsPath
		hc.Secret = []byte(randomHex(32))
		hc.Transport = hook.Handler{Handler: demoEventsRule(users, hc.Secret)}
		if cfg.ClientEvents == nil {
			cfg.ClientEvents, _ = gateway.ParseRoomPatterns(demoClientEvents)
		}
	default:
		return nil, nil
	}
	c, err := hook.New(hc)
	if err != nil {
		return nil, &ConfigError{Setting: "EVENTS_URL", Err: err}
	}
	return gateway.HookForwarder(c), nil
}

// maxHeaderBytes bounds a request's line and header, as Node's default
// (16 KiB) does: a larger one is answered 431 before any handler runs.
const maxHeaderBytes = 16 << 10

// keepAlive probes an idle accepted connection after a minute, then every
// 15 s, and drops it after 4 unanswered probes.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: time.Minute, Interval: 15 * time.Second, Count: 4}

// newHTTPServer is the HTTP server of `sessiongate serve` around handler.
func newHTTPServer(handler http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           refuseSmuggled(handler),
		ConnContext:       withConn,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func (s *server) addr() string { return s.ln.Addr().String() }

// prune deletes expired sessions every pruneInterval until ctx ends; with
// pruning off it returns at once.
func (s *server) prune(ctx context.Context) {
	defer close(s.pruneDone)
	interval := s.cfg.pruneInterval()
	if interval <= 0 {
		return
	}
	p := &sessiongate.Pruner{Store: s.store, Interval: interval, Logger: s.log}
	_ = p.Run(ctx) // returns ctx.Err() when shutdown stops it
}

// listenMetrics serves metrics on METRICS_ADDR, if set, with a server of its
// own (behind METRICS_KEY when that is set too).
func (s *server) listenMetrics(metrics http.Handler) error {
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	var err error
	if s.metricsLn, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
		return &ConfigError{Setting: "METRICS_ADDR", Err: err}
	}
	if s.cfg.MetricsKey != "" {
		metrics = httpapi.BearerAuth(s.cfg.MetricsKey, metrics)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	s.metricsHTTP = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.metricsHTTP.Serve(s.metricsLn); !errors.Is(err, http.ErrServerClosed) {
			select {
			case s.done <- fmt.Errorf("serve metrics: %w", err):
			default: // the main listener failed first
			}
		}
	}()
	return nil
}

// metricsAddr is the address METRICS_ADDR listens on, or "" without it.
func (s *server) metricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// abort releases what a failed start opened.
func (s *server) abort() {
	if s.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.gw.Close(ctx)
		cancel()
	}
	if s.io != nil {
		s.io.Close()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.metricsLn != nil {
		s.metricsLn.Close()
	}
	s.closeRecoveryLog()
	if s.bus != nil {
		s.bus.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// shutdown stops serving within SHUTDOWN_TIMEOUT: the listener closes, every
// client is told server_restart and disconnected, the audit trail is
// flushed, and the store closed.
func (s *server) shutdown() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)

		// Stop accepting first; in-flight requests (long polls) end as
		// their sockets are sent away below.
		httpDone := make(chan error, 1)
		go func() { httpDone <- s.http.Shutdown(ctx) }()
		if s.metricsHTTP != nil {
			s.metricsHTTP.Close() // a scrape has nothing to finish
		}

		var errs []error
		if err := s.gw.Shutdown(ctx, s.cfg.ShutdownRetryAfter); err != nil {
			errs = append(errs, err)
		}
		if err := s.io.Close(); err != nil {
			errs = append(errs, fmt.Errorf("socket.io: %w", err))
		}
		if err := <-httpDone; err != nil {
			s.http.Close()
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
		s.stopRun()
		for _, done := range []chan struct{}{s.runDone, s.pruneDone} {
			select {
			case <-done:
			case <-ctx.Done():
			}
		}
		// The sockets are gone: close the shared recovery log (its
		// readers stopped with them) and leave the cluster, before the
		// store (the postgres bus uses its database).
		if err := s.closeRecoveryLog(); err != nil {
			errs = append(errs, fmt.Errorf("close recovery log: %w", err))
		}
		if s.bus != nil {
			if err := s.bus.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close cluster bus: %w", err))
			}
		}
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		s.stopErr = errors.Join(errs...)
		if s.stopErr != nil {
			s.log.Error("shutdown", "err", s.stopErr)
		} else {
			s.log.Info("stopped")
		}
	})
	return s.stopErr
}

// auditSpoolDir is the gateway's AuditSpool for AUDIT_SPOOL: "" when it is
// off.
func (c *Config) auditSpoolDir() string {
	switch c.AuditSpool {
	case "off":
		return ""
	case "":
		return filepath.Join(c.DataDir, "audit-spool")
	}
	return c.AuditSpool
}

// readiness is ready while the store answers and the audit trail keeps up
// (gateway.AuditHealthy).
type readiness struct {
	store httpapi.Pinger
	gw    *gateway.Gateway
}

func (r readiness) Ping(ctx context.Context) error {
	if err := r.store.Ping(ctx); err != nil {
		return err
	}
	return r.gw.AuditHealthy()
}

// untrustedForwarderWarnings is the /readyz warning for peers that send
// X-Forwarded-For without being in TRUSTED_PROXIES: every client behind
// such a peer shares its rate limits.
func (s *server) untrustedForwarderWarnings() []string {
	peers, _ := s.gw.UntrustedForwarders()
	if len(peers) == 0 {
		return nil
	}
	return []string{"X-Forwarded-For ignored from peers not in TRUSTED_PROXIES (their clients share one rate limit): " + strings.Join(peers, ", ")}
}

// busPinger is the /readyz check of the bus, nil on a single node.
func (s *server) busPinger() httpapi.Pinger {
	if s.bus == nil {
		return nil
	}
	return busPinger{s.bus}
}

// clusterDesc says which cluster the node joined, for the start-up line:
// never a password.
func (s *server) clusterDesc() string {
	switch s.cfg.Cluster {
	case "":
		return "none (single node)"
	case ClusterRedis:
		return "redis " + redisAddr(s.cfg.RedisURL) + " key " + s.cfg.ClusterKey
	default:
		return s.cfg.Cluster + " key " + s.cfg.ClusterKey
	}
}
