package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/expresssession"
	"github.com/sessiongate/sessiongate/internal/clientip"
	"github.com/sessiongate/sessiongate/internal/ratelimit"
)

// Publisher emits an event to the sockets t selects, on every node of a
// cluster (through the namespace's adapter). data is the event's single
// argument as JSON; nil means the event has no argument.
type Publisher interface {
	Publish(ctx context.Context, t Target, event string, data json.RawMessage) error
}

// SessionEnder ends the sockets of a session that was ended in process (the
// embedded logout), as *gateway.Gateway does.
type SessionEnder interface {
	EndSession(ctx context.Context, sid string, reason sessiongate.EndReason)
}

// Pinger reports whether a dependency (the store) answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Defaults of the Config fields left zero.
const (
	DefaultSessionMaxAge  = 24 * time.Hour
	DefaultLoginRateLimit = 10 // login attempts per minute per remote IP
	DefaultBodyTimeout    = 10 * time.Second
)

// Config configures a Handler. Zero fields take the defaults above.
type Config struct {
	// Publisher and PublishKey enable POST /api/publish; with an empty
	// PublishKey it answers 404.
	Publisher  Publisher
	PublishKey string
	// Rooms, with a PublishKey, enables the room operations behind the
	// same key: POST /api/rooms/join, /api/rooms/leave and /api/disconnect
	// (404 without it).
	Rooms RoomOperator
	// Presence, with a PublishKey, enables GET /api/presence behind the
	// same key (404 without it).
	Presence PresenceSource

	// Auth enables /auth/login, /auth/logout and /auth/me; when false they
	// answer 404 (a Node app owns login). Users, Sessions and Secrets are
	// then required; Ender is optional.
	Auth     bool
	Users    sessiongate.UserStore
	Sessions sessiongate.SessionStore
	Ender    SessionEnder
	// Secrets sign new cookies with the first and verify with all.
	Secrets    [][]byte
	CookieName string // default "connect.sid"
	// SessionMaxAge is the cookie's maxAge and the session's lifetime.
	SessionMaxAge time.Duration
	// CookieSecure adds the Secure attribute (serve over HTTPS then).
	CookieSecure bool
	// LoginRateLimit is the login attempts allowed per minute from one
	// remote IP (a token bucket of that size). Negative disables it.
	LoginRateLimit int
	// TrustedProxies are reverse proxies whose X-Forwarded-For is believed
	// for the client's address (login rate limit, logs), as package
	// clientip does. Empty: the peer is the client.
	TrustedProxies []netip.Prefix

	// DemoIncidents enables POST /api/demo/incident, which publishes an
	// incident to the logged-in caller's own room, or to an incident room
	// it names (the demo page uses it).
	// It needs Auth and a Publisher.
	DemoIncidents bool
	// DemoUsers, with DemoIncidents, are the emails of the demo's users,
	// which GET /api/demo/users lists with their ids to a signed-in caller
	// (the page names watchers by them).
	DemoUsers []string

	// AllowedOrigins are the origins, beside the request's own, whose
	// browsers may POST to /auth/login, /auth/logout and /api/demo/incident
	// (exact "scheme://host[:port]", as ALLOWED_ORIGINS). A request with any
	// other Origin, or with Sec-Fetch-Site cross-site or same-site from
	// another origin, is refused with 403.
	AllowedOrigins []string

	// Ready is checked by /readyz; nil means always ready.
	Ready Pinger
	// Bus, on a node of a cluster, is the cluster bus, reported by /readyz
	// as "bus": "ok" or "down". A node whose bus is down stays ready: it
	// still serves its own sockets (taking it out would move them to nodes
	// that, with a shared Redis down, are no better off); it says so in
	// "warnings". Nil: no "bus" (a single node).
	Bus Pinger
	// Warnings, when set, are listed in /readyz's answer as "warnings"
	// (when there are any, ready or not): set-up problems an operator
	// should see that do not make the server unready, such as
	// X-Forwarded-For from a peer not in TrustedProxies. They must not
	// hold connection details (addresses of the database, credentials).
	Warnings func() []string

	// Metrics, with a MetricsKey, is served at GET /metrics to requests
	// bearing "Authorization: Bearer <MetricsKey>"; without either,
	// /metrics answers 404 here (serve it on a private listener instead).
	Metrics    http.Handler
	MetricsKey string

	// BodyTimeout bounds the reading of a request body by the endpoints
	// above: a client that stalls before its Content-Length ends is
	// answered 400 and its connection closed by then, instead of holding a
	// goroutine, a buffer and a descriptor.
	BodyTimeout time.Duration

	// Static serves every other path (the demo page); nil answers 404.
	Static http.Handler

	Logger *slog.Logger     // default slog.Default()
	Now    func() time.Time // default time.Now; for tests
}

// Handler serves the HTTP API. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	limiter *ratelimit.Limiter // nil when disabled
	clients *clientip.Resolver
	origins *http.CrossOriginProtection
	dummy   []byte // bcrypt hash compared when a user does not exist

	publishes, roomOps, logins counters

	// readyLog lets /readyz log a failure once per readyLogInterval;
	// readyQuiet counts the failures left out since, readyDown whether the
	// last probe failed.
	readyLog   *ratelimit.Limiter
	readyQuiet atomic.Int64
	readyDown  atomic.Bool
	// busLog, busQuiet and busDown do the same for the cluster bus.
	busLog   *ratelimit.Limiter
	busQuiet atomic.Int64
	busDown  atomic.Bool
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if (cfg.PublishKey != "" || cfg.DemoIncidents) && cfg.Publisher == nil {
		return nil, errors.New("httpapi: Config.Publisher is required with a PublishKey or DemoIncidents")
	}
	if cfg.DemoIncidents && !cfg.Auth {
		return nil, errors.New("httpapi: Config.DemoIncidents needs Auth")
	}
	if cfg.Auth {
		switch {
		case cfg.Users == nil:
			return nil, errors.New("httpapi: Config.Users is required with Auth")
		case cfg.Sessions == nil:
			return nil, errors.New("httpapi: Config.Sessions is required with Auth")
		case len(cfg.Secrets) == 0 || len(cfg.Secrets[0]) == 0:
			return nil, errors.New("httpapi: Config.Secrets is required with Auth")
		}
	}
	if cfg.CookieName == "" {
		cfg.CookieName = expresssession.DefaultCookieName
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	if cfg.LoginRateLimit == 0 {
		cfg.LoginRateLimit = DefaultLoginRateLimit
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, now: cfg.Now, mux: http.NewServeMux(), clients: clientip.New(cfg.TrustedProxies)}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.log = h.log.With("component", "http")
	if h.now == nil {
		h.now = time.Now
	}
	if cfg.LoginRateLimit > 0 {
		h.limiter = ratelimit.New(float64(cfg.LoginRateLimit)/time.Minute.Seconds(), float64(cfg.LoginRateLimit))
	}
	h.origins = http.NewCrossOriginProtection()
	for _, o := range cfg.AllowedOrigins {
		if err := h.origins.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("httpapi: Config.AllowedOrigins: %w", err)
		}
	}
	h.publishes = newCounters(PublishOK, PublishUnauthorized, PublishBadRequest, PublishError)
	h.roomOps = newCounters(PublishOK, PublishUnauthorized, PublishBadRequest, PublishError)
	h.logins = newCounters(LoginOK, LoginInvalidCredentials, LoginRateLimited, LoginBadRequest,
		LoginCrossOrigin, LoginUnsupportedMedia)
	h.readyLog = ratelimit.New(1/readyLogInterval.Seconds(), 1)
	h.busLog = ratelimit.New(1/readyLogInterval.Seconds(), 1)
	if cfg.Auth {
		hash, err := dummyHash()
		if err != nil {
			return nil, err
		}
		h.dummy = hash
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	h.handle("GET /healthz", http.HandlerFunc(h.healthz))
	h.handle("GET /readyz", http.HandlerFunc(h.readyz))
	if h.cfg.Metrics != nil && h.cfg.MetricsKey != "" {
		h.handle("GET /metrics", BearerAuth(h.cfg.MetricsKey, h.cfg.Metrics))
	} else {
		h.mux.HandleFunc("/metrics", notFound)
	}

	if h.cfg.PublishKey != "" {
		h.handle("POST /api/publish", http.HandlerFunc(h.publish))
		if h.cfg.Rooms != nil {
			h.handle("POST /api/rooms/join", h.roomOp(RoomJoin))
			h.handle("POST /api/rooms/leave", h.roomOp(RoomLeave))
			h.handle("POST /api/disconnect", h.roomOp(RoomDisconnect))
		}
		if h.cfg.Presence != nil {
			h.handle("GET /api/presence", http.HandlerFunc(h.presence))
		}
	}
	if h.cfg.Auth {
		h.handle("POST /auth/login", http.HandlerFunc(h.login))
		h.handle("POST /auth/logout", http.HandlerFunc(h.logout))
		h.handle("GET /auth/me", http.HandlerFunc(h.me))
	}
	if h.cfg.DemoIncidents {
		h.handle("POST /api/demo/incident", http.HandlerFunc(h.demoIncident))
		h.handle("GET /api/demo/users", http.HandlerFunc(h.demoUsers))
	}
	// Disabled and unknown API paths answer JSON 404 rather than reaching
	// Static.
	h.mux.HandleFunc("/auth/", notFound)
	h.mux.HandleFunc("/api/", notFound)
	if h.cfg.Static != nil {
		h.mux.Handle("/", h.cfg.Static)
	} else {
		h.mux.HandleFunc("/", notFound)
	}
}

// handle registers handler for pattern ("METHOD /path"), and a 405 for the
// path's other methods.
func (h *Handler) handle(pattern string, handler http.Handler) {
	method, path, _ := strings.Cut(pattern, " ")
	h.mux.Handle(pattern, handler)
	allow := method
	if method == http.MethodGet {
		allow += ", HEAD"
	}
	h.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
}

// ServeHTTP routes r and logs it at debug level (never its cookies).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h.mux.ServeHTTP(rec, r)
	level := slog.LevelDebug
	if rec.status >= 500 {
		level = slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "request",
		"method", r.Method, "path", r.URL.Path, "status", rec.status,
		"duration", time.Since(start), "remote", h.clients.ClientIP(r.RemoteAddr, r.Header))
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "not found")
}
