package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/httpapi"
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

	stopRun context.CancelFunc
	runDone chan struct{} // closed when gateway.Run returns
	done    chan error    // the listener failed

	once    sync.Once
	stopErr error
}

// startServer opens the store, listens, and serves until shutdown.
func startServer(ctx context.Context, cfg Config, stdout, stderr io.Writer) (_ *server, err error) {
	log := cfg.newLogger(stderr)
	s := &server{cfg: cfg, log: log, runDone: make(chan struct{}), done: make(chan error, 1)}
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

	// No TCP keep-alive on accepted connections: it costs four setsockopt
	// calls per connection, and dead peers are found without it (Engine.IO
	// heartbeats on sockets, IdleTimeout on idle HTTP connections).
	lc := net.ListenConfig{KeepAlive: -1}
	if s.ln, err = lc.Listen(ctx, "tcp", cfg.ListenAddr); err != nil {
		return nil, &ConfigError{Setting: "LISTEN_ADDR", Err: err}
	}
	origins := cfg.AllowedOrigins
	if cfg.Demo {
		port := strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)
		origins = append(origins[:len(origins):len(origins)], "http://localhost:"+port, "http://127.0.0.1:"+port)
	}
	if len(origins) == 0 {
		log.Warn("ALLOWED_ORIGINS is empty: browsers (which send an Origin) are refused; only clients without one connect")
	}

	s.io = socketio.NewServer(socketio.Options{
		Engine: engineio.Options{
			PingInterval:   cfg.PingInterval,
			PingTimeout:    cfg.PingTimeout,
			MaxPayload:     cfg.MaxPayload,
			MaxSessions:    cfg.MaxConnections,
			AllowedOrigins: origins,
		},
		ConnectTimeout: cfg.ConnectTimeout,
	})
	rate := cfg.RateLimit
	if rate == 0 {
		rate = -1 // 0 disables here; gateway takes negative for that
	}
	s.gw, err = gateway.New(gateway.Config{
		Sessions:         s.store,
		Revocations:      s.store,
		Audit:            s.store,
		Secrets:          secrets,
		CookieName:       cfg.SessionCookie,
		AllowedOrigins:   origins,
		CheckInterval:    cfg.CheckInterval,
		RefreshThreshold: cfg.RefreshThreshold,
		RefreshExtend:    cfg.RefreshExtend,
		RateLimit:        rate,
		RateBurst:        cfg.RateBurst,
		TrustedProxies:   cfg.TrustedProxies,
		Logger:           log,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ns := s.io.Of("/")
	s.gw.Attach(ns)

	// The handler reads api's counters at each scrape, after api is made.
	var api *httpapi.Handler
	metrics, err := prometheus.Handler(prometheus.Sources{
		Gateway: s.gw.Stats,
		HTTP:    func() httpapi.Stats { return api.Stats() },
	})
	if err != nil {
		return nil, err
	}
	apiCfg := httpapi.Config{
		Publisher:      publisher{ns},
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
		Ready:          s.store,
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
	}
	if api, err = httpapi.New(apiCfg); err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle(cfg.SocketPath, s.io)
	mux.Handle("/", api)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

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
	go func() {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			s.done <- fmt.Errorf("serve: %w", err)
		}
	}()

	log.Info("listening", "addr", s.addr(), "socket_path", cfg.SocketPath, "store", s.store.desc,
		"origins", origins, "publish", cfg.PublishKey != "", "auth_endpoints", cfg.AuthEndpoints,
		"metrics_addr", s.metricsAddr(), "metrics_key", cfg.MetricsKey != "", "version", version)
	if cfg.MetricsAddr == "" && cfg.MetricsKey == "" {
		log.Info("/metrics is not served: set METRICS_ADDR (e.g. 127.0.0.1:9090) for a private listener, or METRICS_KEY to serve it on LISTEN_ADDR behind a Bearer key")
	}
	if cfg.Demo {
		printDemo(stdout, s.addr(), demoUsers)
	}
	return s, nil
}

func (s *server) addr() string { return s.ln.Addr().String() }

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
	if s.store != nil {
		s.store.close()
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
		select {
		case <-s.runDone:
		case <-ctx.Done():
		}
		if err := s.store.close(); err != nil {
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

// publisher publishes to the rooms of a namespace.
type publisher struct{ ns *socketio.Namespace }

// Publish emits event with data (raw JSON, or no argument when nil) to the
// sockets in any of rooms.
func (p publisher) Publish(rooms []string, event string, data json.RawMessage) error {
	if data == nil {
		return p.ns.To(rooms...).Emit(event)
	}
	return p.ns.To(rooms...).Emit(event, data)
}
