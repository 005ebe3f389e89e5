package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/clientip"
)

// Config is every setting of sessiongate, read from the environment and
// overridden by flags (contract §1: SESSION_TABLE ↔ --session-table).
type Config struct {
	ListenAddr     string
	SocketPath     string
	PingInterval   time.Duration
	PingTimeout    time.Duration
	MaxPayload     int64
	MaxConnections int
	// MaxUnauthenticated and MaxUnauthenticatedPerIP cap the sessions that
	// have not joined a namespace yet; 0 for MaxUnauthenticated means a
	// tenth of MaxConnections.
	MaxUnauthenticated      int
	MaxUnauthenticatedPerIP int
	ConnectTimeout          time.Duration
	AllowedOrigins          []string

	SessionCookie  string
	SessionSecrets []string
	SessionMaxAge  time.Duration
	CookieSecure   bool

	DatabaseURL   string
	SessionTable  string
	SessionSchema string
	DataDir       string

	// Cluster is the bus joining this node to others: "" (a single node),
	// ClusterRedis or ClusterPostgres. RedisURL is the Redis of
	// ClusterRedis; ClusterKey the channel prefix of either (the Node
	// adapters' key / channelPrefix).
	Cluster    string
	RedisURL   string
	ClusterKey string
	// RedisCAFile is a PEM file of the CAs that sign the Redis server's
	// certificate (rediss://); "": the system's roots.
	RedisCAFile string

	AuditSpool    string // "" : DATA_DIR/audit-spool; "off": none
	AuditSpoolMax int64

	CheckInterval    time.Duration
	RefreshThreshold time.Duration
	RefreshExtend    time.Duration

	// SessionRooms are the rooms joined from each session's data
	// (SESSION_ROOMS); nil: none.
	SessionRooms *gateway.SessionRooms
	// MaxConnectionsPerUser caps one user's sockets on this node; 0: none.
	MaxConnectionsPerUser int
	// EventRateLimit is the client events and subscribe/unsubscribe
	// requests per second one user may make on this node, EventRateBurst
	// its burst (0: twice the rate); 0 disables.
	EventRateLimit float64
	EventRateBurst int

	// Recovery is who gets connection state recovery (RECOVERY): the
	// clients that ask (RecoveryAsk), every client, or none; the window
	// and the replay bounds of each recovery beside it.
	Recovery            string
	RecoveryWindow      time.Duration
	RecoveryMaxMessages int
	RecoveryMaxBytes    int64
	// RecoveryLogBytes bounds the whole in-memory recovery log
	// (RECOVERY_LOG_BYTES); its oldest events go first past it.
	RecoveryLogBytes int64
	// RecoveryStream is the Redis stream of the shared recovery log with
	// CLUSTER=redis (RECOVERY_STREAM: the streams adapter's streamName;
	// "": CLUSTER_KEY, RecoveryStreamOff: none, a log per node);
	// RecoveryStreamMaxEntries its length bound (the adapter's maxLen).
	RecoveryStream           string
	RecoveryStreamMaxEntries int

	RateLimit      float64
	RateBurst      int
	LoginRateLimit int
	TrustedProxies []netip.Prefix

	PublishKey    string
	AuthEndpoints bool

	// PublicRooms open rooms to every authenticated socket's subscribe;
	// SubscribeURL, signed with HookSecret and bounded by HookTimeout,
	// decides the others (contract: Subscriptions).
	PublicRooms  []gateway.RoomPattern
	SubscribeURL string
	HookSecret   string
	HookTimeout  time.Duration

	// EventsURL receives the client events whose names match ClientEvents
	// (nil: every name), signed with HookSecret and bounded by HookTimeout
	// (contract: Client events).
	EventsURL    string
	ClientEvents []gateway.RoomPattern

	// PresenceRooms are the rooms with presence (nil: none; in --demo,
	// demoPresenceRooms); PresenceLeaveDelay (0: at once),
	// PresenceMaxMembers and PresenceTTL tune it (contract: Presence).
	PresenceRooms      []gateway.RoomPattern
	PresenceLeaveDelay time.Duration
	PresenceMaxMembers int
	PresenceTTL        time.Duration

	// UserActiveQuery, when set, is the SELECT that says which users are
	// still active (postgres.DB.UserQuery); otherwise, with AuthEndpoints,
	// the embedded login's users table does.
	UserActiveQuery string

	// PruneInterval is how often expired sessions are deleted; 0 never.
	// Left empty it is resolved by pruneInterval.
	PruneInterval    time.Duration
	pruneIntervalSet bool

	MetricsAddr string
	MetricsKey  string

	LogFormat string
	LogLevel  slog.Level

	ShutdownTimeout    time.Duration
	ShutdownRetryAfter time.Duration

	Demo         bool
	DemoPassword string
}

// ConfigError is a setting that cannot be used. main exits with status 2
// for it, 1 for any other error.
type ConfigError struct {
	Setting string // the environment variable or --flag it came from
	Err     error
}

func (e *ConfigError) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// configErrorf returns a *ConfigError for setting.
func configErrorf(setting, format string, args ...any) *ConfigError {
	return &ConfigError{Setting: setting, Err: fmt.Errorf(format, args...)}
}

// A setting is one environment variable and its flag. parse stores a raw
// value into a Config; its error names the problem, not the setting.
type setting struct {
	env     string
	def     string
	arg     string // placeholder in --help; "" for a boolean
	usage   string
	secret  bool // never echo the value
	parse   func(c *Config, v string) error
	storeOK bool // also read by migrate and users
}

func (s setting) flagName() string {
	return strings.ReplaceAll(strings.ToLower(s.env), "_", "-")
}

// settings lists every setting, in --help order.
var settings = []setting{
	{env: "LISTEN_ADDR", def: ":3000", arg: "ADDR", usage: "address to listen on (host:port)",
		parse: func(c *Config, v string) error { c.ListenAddr = v; return nonEmpty(v) }},
	{env: "SOCKET_PATH", def: "/socket.io/", arg: "PATH", usage: "path of the Socket.IO endpoint",
		parse: parseSocketPath},
	{env: "PING_INTERVAL", def: "25s", arg: "DURATION", usage: "Engine.IO heartbeat interval",
		parse: func(c *Config, v string) error { return parseDuration(&c.PingInterval, v) }},
	{env: "PING_TIMEOUT", def: "20s", arg: "DURATION", usage: "time to wait for a heartbeat answer",
		parse: func(c *Config, v string) error { return parseDuration(&c.PingTimeout, v) }},
	{env: "MAX_PAYLOAD", def: "1000000", arg: "BYTES", usage: "largest Engine.IO message or polling body",
		parse: func(c *Config, v string) error { return parsePositiveInt(&c.MaxPayload, v) }},
	{env: "MAX_CONNECTIONS", def: "50000", arg: "N", usage: "most open Engine.IO sessions; more are refused with HTTP 503; 0: no cap",
		parse: func(c *Config, v string) error { return parseCount(&c.MaxConnections, v, "0 or more") }},
	{env: "MAX_UNAUTHENTICATED", def: "0", arg: "N", usage: "most sessions not yet authenticated (no namespace joined); more are refused with HTTP 503; 0: a tenth of MAX_CONNECTIONS",
		parse: func(c *Config, v string) error { return parseCount(&c.MaxUnauthenticated, v, "0 or more") }},
	{env: "MAX_UNAUTHENTICATED_PER_IP", def: "256", arg: "N", usage: "most sessions not yet authenticated per client IP (IPv6: per /64); 0: no cap",
		parse: func(c *Config, v string) error { return parseCount(&c.MaxUnauthenticatedPerIP, v, "0 or more") }},
	{env: "CONNECT_TIMEOUT", def: "10s", arg: "DURATION", usage: "close a client that joins no namespace by then (socket.io-client joins right after opening)",
		parse: func(c *Config, v string) error { return parseDuration(&c.ConnectTimeout, v) }},
	{env: "ALLOWED_ORIGINS", def: "", arg: "LIST", usage: "comma-separated browser origins allowed (scheme://host[:port])",
		parse: parseOrigins},
	{env: "SESSION_COOKIE", def: "connect.sid", arg: "NAME", usage: "name of the express-session cookie",
		parse: parseCookieName},
	{env: "SESSION_SECRETS", def: "", arg: "LIST", secret: true, usage: "comma-separated express-session secrets; the first signs new cookies (required unless --demo)",
		parse: parseSecrets},
	{env: "SESSION_MAX_AGE", def: "24h", arg: "DURATION", usage: "cookie maxAge of sessions created by /auth/login",
		parse: func(c *Config, v string) error { return parseDuration(&c.SessionMaxAge, v) }},
	{env: "SESSION_COOKIE_SECURE", def: "false", usage: "mark cookies set by /auth/login Secure (serve over HTTPS)",
		parse: func(c *Config, v string) error { return parseBool(&c.CookieSecure, v) }},
	{env: "DATABASE_URL", def: "", arg: "URL", secret: true, usage: "PostgreSQL URL (postgres://…) of the connect-pg-simple store; empty: embedded SQLite",
		parse: parseDatabaseURL, storeOK: true},
	{env: "SESSION_TABLE", def: "session", arg: "NAME", usage: "session table (connect-pg-simple tableName)",
		parse: func(c *Config, v string) error { c.SessionTable = v; return nonEmpty(v) }, storeOK: true},
	{env: "SESSION_SCHEMA", def: "", arg: "NAME", usage: "schema of the session table; empty: the search_path",
		parse: func(c *Config, v string) error { c.SessionSchema = v; return nil }, storeOK: true},
	{env: "DATA_DIR", def: "./data", arg: "DIR", usage: "directory of the embedded SQLite store (and the demo's secret)",
		parse: func(c *Config, v string) error { c.DataDir = v; return nonEmpty(v) }, storeOK: true},
	{env: "CLUSTER", def: "", arg: "BUS", usage: "join a cluster of nodes over a bus: redis (REDIS_URL) or postgres (the DATABASE_URL database, LISTEN/NOTIFY); wire-compatible with @socket.io/redis-adapter and @socket.io/postgres-adapter; needs DATABASE_URL (sessions are shared); empty: a single node",
		parse: parseCluster},
	{env: "REDIS_URL", def: "", arg: "URL", secret: true, usage: "Redis of CLUSTER=redis: redis://[user:password@]host[:port][/db] or rediss:// (TLS)",
		parse: parseRedisURL},
	{env: "REDIS_CA_FILE", def: "", arg: "FILE", usage: "PEM file of the CA certificates that sign the Redis server's (rediss:// only); empty: the system's roots",
		parse: func(c *Config, v string) error { c.RedisCAFile = v; return nil }},
	{env: "CLUSTER_KEY", def: "socket.io", arg: "KEY", usage: "channel prefix of the cluster bus (the Node adapters' and emitters' key); the same on every node and Node peer",
		parse: parseClusterKey},
	{env: "AUDIT_SPOOL", def: "", arg: "DIR", usage: "directory where audit events are kept on disk until the store has them; empty: DATA_DIR/audit-spool; off: none (events wait in memory, lost on a crash)",
		parse: func(c *Config, v string) error { c.AuditSpool = v; return nil }},
	{env: "AUDIT_SPOOL_MAX", def: "67108864", arg: "BYTES", usage: "most bytes of audit events the spool holds; past it events are dropped (counted, logged) and /readyz fails",
		parse: func(c *Config, v string) error { return parsePositiveInt(&c.AuditSpoolMax, v) }},
	{env: "SESSION_CHECK_INTERVAL", def: "5m", arg: "DURATION", usage: "how often live sessions are re-validated",
		parse: func(c *Config, v string) error { return parseDuration(&c.CheckInterval, v) }},
	{env: "SESSION_REFRESH_THRESHOLD", def: "5m", arg: "DURATION", usage: "refresh a live session expiring within this",
		parse: func(c *Config, v string) error { return parseDuration(&c.RefreshThreshold, v) }},
	{env: "SESSION_REFRESH_EXTEND", def: "24h", arg: "DURATION", usage: "a refreshed session expires this long from now",
		parse: func(c *Config, v string) error { return parseDuration(&c.RefreshExtend, v) }},
	{env: "SESSION_ROOMS", def: "", arg: "LIST", usage: "comma-separated room templates over the session JSON joined beside user:<id> (e.g. org:{orgId},team:{passport.team}); {{ and }} are literal braces; a missing, null or non-scalar value joins nothing; rooms follow the row at each session check; at most 16, none may start with user:",
		parse: parseSessionRooms},
	{env: "MAX_CONNECTIONS_PER_USER", def: "0", arg: "N", usage: "most sockets of one user; more are refused with TOO_MANY_CONNECTIONS (with CLUSTER, approximately across the nodes); 0: no cap",
		parse: func(c *Config, v string) error { return parseCount(&c.MaxConnectionsPerUser, v, "0 or more") }},
	{env: "EVENT_RATE_LIMIT", def: "20", arg: "N", usage: "client events and subscribe/unsubscribe requests per second per user (all of the user's sockets share it; with CLUSTER, approximately across the nodes); more are acked RATE_LIMITED; 0 disables",
		parse: parseEventRateLimit},
	{env: "EVENT_RATE_BURST", def: "0", arg: "N", usage: "burst of EVENT_RATE_LIMIT per user; 0: twice EVENT_RATE_LIMIT",
		parse: func(c *Config, v string) error { return parseCount(&c.EventRateBurst, v, "0 or more") }},
	{env: "RECOVERY", def: RecoveryAsk, arg: "WHO", usage: "connection state recovery (a client that lost its connection gets the events it missed, the session checked again): ask — the clients that ask in their CONNECT auth ({\"recovery\":true}, the @sessiongate/client); on — every client (stock socket.io-client handlers then see an offset as an extra last argument); off",
		parse: parseRecovery},
	{env: "RECOVERY_WINDOW", def: "2m", arg: "DURATION", usage: "how long a dropped socket may be recovered; later, it connects fresh and is told it may have missed events",
		parse: func(c *Config, v string) error { return parseDuration(&c.RecoveryWindow, v) }},
	{env: "RECOVERY_MAX_MESSAGES", def: "1000", arg: "N", usage: "most events one recovery replays; more: a fresh connection, told it may have missed events",
		parse: func(c *Config, v string) error { return parsePositiveInt(&c.RecoveryMaxMessages, v) }},
	{env: "RECOVERY_MAX_BYTES", def: "1048576", arg: "BYTES", usage: "most bytes of events one recovery replays; more: a fresh connection, told it may have missed events",
		parse: func(c *Config, v string) error { return parsePositiveInt(&c.RecoveryMaxBytes, v) }},
	{env: "RECOVERY_LOG_BYTES", def: "67108864", arg: "BYTES", usage: "most bytes the node's own recovery log holds (not the recovery stream of CLUSTER=redis) for the whole node (an event costs its JSON plus about 200 bytes); past it the oldest events go, and a socket that needed them connects fresh, told it may have missed events",
		parse: func(c *Config, v string) error { return parsePositiveInt(&c.RecoveryLogBytes, v) }},
	{env: "RECOVERY_STREAM", def: "", arg: "NAME", usage: "with CLUSTER=redis, the Redis stream that carries the cluster's broadcasts (beside pub/sub, for @socket.io/redis-adapter peers), so that a client recovers on any node, even after its node died; one stream for every namespace, in @socket.io/redis-streams-adapter's format (its streamName); empty: CLUSTER_KEY (socket.io by default, the adapter's default); off: none, each node keeps its own recovery log (a client recovers on the node it dropped from); with CLUSTER=postgres, always the node's own",
		parse: parseRecoveryStream},
	{env: "RECOVERY_STREAM_MAX_ENTRIES", def: "100000", arg: "N", usage: "most entries RECOVERY_STREAM keeps, all namespaces together (the streams adapter's maxLen, 10 times its default: an event of 100 bytes costs Redis about 170, so 17 MB); a socket that missed more than this many events cluster-wide connects fresh, told it may have missed events",
		parse: func(c *Config, v string) error { return parsePositiveInt(&c.RecoveryStreamMaxEntries, v) }},
	{env: "RATE_LIMIT", def: "500", arg: "N", usage: "Engine.IO handshakes (new sessions) per second per client IP (IPv6: per /64); more get HTTP 429; 0 disables",
		parse: parseRateLimit},
	{env: "RATE_BURST", def: "0", arg: "N", usage: "handshake burst per client IP; 0: twice RATE_LIMIT",
		parse: func(c *Config, v string) error { return parseCount(&c.RateBurst, v, "0 or more") }},
	{env: "TRUSTED_PROXIES", def: "", arg: "LIST", usage: "comma-separated reverse proxy addresses or CIDRs whose X-Forwarded-For gives the client IP (rate limits, audit)",
		parse: parseTrustedProxies},
	{env: "LOGIN_RATE_LIMIT", def: "10", arg: "N", usage: "login attempts per minute per client IP; 0 disables",
		parse: func(c *Config, v string) error {
			return parseCount(&c.LoginRateLimit, v, "attempts per minute, 0 disables")
		}},
	{env: "PUBLISH_KEY", def: "", arg: "KEY", secret: true, usage: "Bearer key of POST /api/publish, the room operations and GET /api/presence; empty disables them (404)",
		parse: func(c *Config, v string) error { c.PublishKey = v; return nil }},
	{env: "PUBLIC_ROOMS", def: "", arg: "LIST", usage: "comma-separated room patterns any authenticated socket may subscribe to ('*' matches any run of characters, e.g. news:*,lobby); user:* rooms never",
		parse: parsePublicRooms},
	{env: "SUBSCRIBE_URL", def: "", arg: "URL", usage: "the application's endpoint that decides the other subscriptions: POST {user,room,socket,session} with the socket's Cookie, signed with HOOK_SECRET; empty: only PUBLIC_ROOMS",
		parse: parseSubscribeURL},
	{env: "EVENTS_URL", def: "", arg: "URL", usage: "the application's endpoint of client events: POST {user,socket,session,event,args} with the socket's Cookie, signed with HOOK_SECRET; its JSON answer is the client's ack; empty: client events are UNKNOWN_EVENT",
		parse: func(c *Config, v string) error { return parseHookURL(&c.EventsURL, v) }},
	{env: "CLIENT_EVENTS", def: "", arg: "LIST", usage: "comma-separated event name patterns forwarded to EVENTS_URL ('*' matches any run of characters, e.g. incident:*,notification:read); empty: every name; the others are UNKNOWN_EVENT",
		parse: parseClientEvents},
	{env: "PRESENCE_ROOMS", def: "", arg: "LIST", usage: "comma-separated room patterns with presence ('*' as in PUBLIC_ROOMS): their sockets get presence events when a user joins or leaves, the subscribe ack carries the members, GET /api/presence answers; user: rooms never; empty: none (in --demo: incident:*)",
		parse: parsePresenceRooms},
	{env: "PRESENCE_LEAVE_DELAY", def: "5s", arg: "DURATION", usage: "how long a user without a socket in a presence room stays a member before it is announced left (a reload or reconnect within it says nothing); 0: at once",
		parse: func(c *Config, v string) error { return parseDurationIn(&c.PresenceLeaveDelay, v, 0, time.Hour) }},
	{env: "PRESENCE_MAX_MEMBERS", def: "100", arg: "N", usage: "most users in a presence event's lists and a subscribe ack's members (the count stays exact; past it, truncated: true)",
		parse: func(c *Config, v string) error { return parseCountIn(&c.PresenceMaxMembers, v, 1, 10000) }},
	{env: "PRESENCE_TTL", def: "30s", arg: "DURATION", usage: "with CLUSTER, how long another node's presence members live without a word from it (its heartbeat comes every 10s, or TTL/3): a node that died has its users reported left within 1.1 × TTL + PRESENCE_LEAVE_DELAY",
		parse: func(c *Config, v string) error {
			return parseDurationIn(&c.PresenceTTL, v, time.Second, 10*time.Minute)
		}},
	{env: "HOOK_SECRET", def: "", arg: "SECRET", secret: true, usage: "HMAC-SHA256 key of X-Sessiongate-Signature on hook requests (required with SUBSCRIBE_URL or EVENTS_URL)",
		parse: func(c *Config, v string) error { c.HookSecret = v; return nil }},
	{env: "HOOK_TIMEOUT", def: "2s", arg: "DURATION", usage: "how long the application's hook may take; then the subscribe or client event is UNAVAILABLE",
		parse: func(c *Config, v string) error { return parseDuration(&c.HookTimeout, v) }},
	{env: "AUTH_ENDPOINTS", def: "true", usage: "serve /auth/login, /auth/logout, /auth/me (false when a Node app owns login)",
		parse: func(c *Config, v string) error { return parseBool(&c.AuthEndpoints, v) }},
	{env: "USER_ACTIVE_QUERY", def: "", arg: "SQL", usage: "PostgreSQL SELECT of the active user ids among $1 (text[]), run at each handshake and once per batch of session checks; empty: the embedded login's users when AUTH_ENDPOINTS=true, no check otherwise",
		parse: func(c *Config, v string) error { c.UserActiveQuery = strings.TrimSpace(v); return nil }},
	{env: "PRUNE_INTERVAL", def: "", arg: "DURATION", usage: "how often expired sessions are deleted (as connect-pg-simple's pruneSessionInterval); 0 never; empty: 15m, or never with AUTH_ENDPOINTS=false (the Node app prunes)",
		parse: parsePruneInterval},
	{env: "METRICS_ADDR", def: "", arg: "ADDR", usage: "address of a separate listener for GET /metrics (e.g. 127.0.0.1:9090); empty: none",
		parse: func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	{env: "METRICS_KEY", def: "", arg: "KEY", secret: true, usage: "Bearer key of GET /metrics on LISTEN_ADDR (required on METRICS_ADDR too when set); empty: /metrics is not on LISTEN_ADDR (404)",
		parse: func(c *Config, v string) error { c.MetricsKey = v; return nil }},
	{env: "LOG_FORMAT", def: "text", arg: "FORMAT", usage: "log format: text or json",
		parse: parseLogFormat},
	{env: "LOG_LEVEL", def: "info", arg: "LEVEL", usage: "log level: debug, info, warn or error",
		parse: parseLogLevel},
	{env: "SHUTDOWN_TIMEOUT", def: "15s", arg: "DURATION", usage: "graceful shutdown deadline after SIGTERM",
		parse: func(c *Config, v string) error { return parseDuration(&c.ShutdownTimeout, v) }},
	{env: "SHUTDOWN_RETRY_AFTER", def: "5s", arg: "DURATION", usage: "clients told server_restart reconnect within this random delay",
		parse: func(c *Config, v string) error { return parseDuration(&c.ShutdownRetryAfter, v) }},
	{env: "DEMO", def: "false", usage: "demo mode: SQLite, demo users, generated secret, the demo page at /",
		parse: func(c *Config, v string) error { return parseBool(&c.Demo, v) }},
	{env: "DEMO_PASSWORD", def: "", arg: "PASSWORD", secret: true, usage: "password of the demo users when they are created; empty: generated",
		parse: func(c *Config, v string) error { c.DemoPassword = v; return nil }},
}

// rawValue is a flag that only records its text; settings are parsed after
// all flags, so that an error can name the flag or the variable it came from.
type rawValue struct {
	v      string
	set    bool
	isBool bool
}

func (r *rawValue) String() string     { return r.v }
func (r *rawValue) Set(s string) error { r.v, r.set = s, true; return nil }
func (r *rawValue) IsBoolFlag() bool   { return r.isBool }

// settingFlags adds to fs a flag for each setting that keep selects, and
// returns a function that, after fs.Parse, parses every selected setting
// (flag, else environment, else default) into c.
func settingFlags(fs *flag.FlagSet, getenv func(string) string, keep func(setting) bool) func(c *Config) error {
	type bound struct {
		s   setting
		raw *rawValue
	}
	var all []bound
	for _, s := range settings {
		if !keep(s) {
			continue
		}
		r := &rawValue{isBool: s.arg == ""}
		fs.Var(r, s.flagName(), s.usage)
		all = append(all, bound{s, r})
	}
	return func(c *Config) error {
		for _, b := range all {
			name, v := b.s.env, b.s.def
			switch {
			case b.raw.set:
				name, v = "--"+b.s.flagName(), b.raw.v
			case getenv(b.s.env) != "":
				v = getenv(b.s.env)
			}
			if err := b.s.parse(c, v); err != nil {
				return &ConfigError{Setting: name, Err: err}
			}
		}
		return nil
	}
}

// printSettings writes the settings that keep selects as a table: flag,
// environment variable, default, meaning.
func printSettings(w io.Writer, keep func(setting) bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FLAG\tENV\tDEFAULT\tMEANING")
	for _, s := range settings {
		if !keep(s) {
			continue
		}
		f := "--" + s.flagName()
		if s.arg != "" {
			f += " " + s.arg
		}
		def := s.def
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f, s.env, def, s.usage)
	}
	tw.Flush()
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func parseDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. 30s, 5m, 24h)", v)
	}
	if d <= 0 {
		return fmt.Errorf("must be positive, got %q", v)
	}
	*dst = d
	return nil
}

func parsePositiveInt[T int | int64](dst *T, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || int64(T(n)) != n {
		return fmt.Errorf("invalid number %q (a positive integer)", v)
	}
	*dst = T(n)
	return nil
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("invalid boolean %q (true or false)", v)
	}
	*dst = b
	return nil
}

func parseSocketPath(c *Config, v string) error {
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?# ") {
		return fmt.Errorf("invalid path %q (must start with /)", v)
	}
	if !strings.HasSuffix(v, "/") {
		v += "/"
	}
	c.SocketPath = v
	return nil
}

func parseTrustedProxies(c *Config, v string) error {
	var list []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			list = append(list, p)
		}
	}
	prefixes, err := clientip.ParsePrefixes(list)
	if err != nil {
		return fmt.Errorf("invalid address or CIDR (%v)", err)
	}
	c.TrustedProxies = prefixes
	return nil
}

func parseOrigins(c *Config, v string) error {
	c.AllowedOrigins = nil
	for o := range strings.SplitSeq(v, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if err := checkOrigin(o); err != nil {
			return err
		}
		c.AllowedOrigins = append(c.AllowedOrigins, o)
	}
	return nil
}

// checkOrigin reports whether o is an origin as browsers send it: scheme,
// host and optional port, nothing else.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	bad := fmt.Errorf("%q is not an origin (scheme://host[:port], no path or trailing slash)", o)
	if err != nil {
		return bad
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		strings.HasSuffix(o, ":") || strings.Contains(o, "?") || strings.Contains(o, "#") {
		return bad
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad
		}
	}
	if strings.ToLower(o) != o {
		return fmt.Errorf("%q must be lower case, as browsers send it", o)
	}
	return nil
}

func parseCookieName(c *Config, v string) error {
	if v == "" || strings.ContainsAny(v, "=;, \t\"") {
		return fmt.Errorf("invalid cookie name %q", v)
	}
	c.SessionCookie = v
	return nil
}

func parseSecrets(c *Config, v string) error {
	c.SessionSecrets = nil
	if v == "" {
		return nil // required only outside --demo: checked in validate
	}
	for i, s := range strings.Split(v, ",") {
		if s == "" {
			return fmt.Errorf("secret %d of the list is empty", i+1)
		}
		c.SessionSecrets = append(c.SessionSecrets, s)
	}
	return nil
}

func parseDatabaseURL(c *Config, v string) error {
	c.DatabaseURL = v
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The value may hold a password: never echo it.
		return errors.New("must be a postgres:// or postgresql:// URL")
	}
	return nil
}

// The buses of CLUSTER.
const (
	ClusterRedis    = "redis"
	ClusterPostgres = "postgres"
)

func parseCluster(c *Config, v string) error {
	switch v {
	case "", ClusterRedis, ClusterPostgres:
		c.Cluster = v
		return nil
	}
	return fmt.Errorf("invalid cluster bus %q (redis or postgres; empty for a single node)", v)
}

// The values of RECOVERY.
const (
	RecoveryAsk = "ask"
	RecoveryOn  = "on"
	RecoveryOff = "off"
)

func parseRecovery(c *Config, v string) error {
	switch v {
	case RecoveryAsk, RecoveryOn, RecoveryOff:
		c.Recovery = v
		return nil
	}
	return fmt.Errorf("invalid recovery %q (ask, on or off)", v)
}

// maxRecoveryStream bounds RECOVERY_STREAM, a Redis key.
const maxRecoveryStream = 256

func parseRecoveryStream(c *Config, v string) error {
	c.RecoveryStream = ""
	switch {
	case v == "":
		return nil
	case len(v) > maxRecoveryStream:
		return fmt.Errorf("is longer than %d bytes", maxRecoveryStream)
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q must not contain spaces or control characters", v)
		}
	}
	c.RecoveryStream = v
	return nil
}

// RecoveryStreamOff is the RECOVERY_STREAM of a CLUSTER=redis without a
// shared recovery log.
const RecoveryStreamOff = "off"

// recoveryStream is the stream of the shared recovery log, "" for none:
// with CLUSTER=redis and recovery on, RECOVERY_STREAM, else CLUSTER_KEY,
// so that two clusters on one Redis share no stream unless told to (their
// broadcasts would reach each other's sockets).
func (c *Config) recoveryStream() string {
	switch {
	case c.Cluster != ClusterRedis, c.Recovery == RecoveryOff, c.RecoveryStream == RecoveryStreamOff:
		return ""
	case c.RecoveryStream != "":
		return c.RecoveryStream
	}
	return c.ClusterKey
}

func parseRedisURL(c *Config, v string) error {
	c.RedisURL = v
	if v == "" {
		return nil
	}
	// The value may hold a password: never echo it.
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return errors.New("must be a redis:// or rediss:// URL with a host (redis://[user:password@]host[:port][/db])")
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 0 {
			return errors.New("its path must be a database number (redis://host:6379/0)")
		}
	}
	return nil
}

// maxClusterKey bounds CLUSTER_KEY: it prefixes every channel name.
const maxClusterKey = 128

func parseClusterKey(c *Config, v string) error {
	switch {
	case v == "":
		return errors.New("must not be empty (the Node adapters' default is socket.io)")
	case strings.Contains(v, "#"):
		// "#" separates the parts of a channel name (<key>#<nsp>#<room>#).
		return fmt.Errorf("%q must not contain # (it separates the parts of a channel name)", v)
	case len(v) > maxClusterKey:
		return fmt.Errorf("is longer than %d bytes", maxClusterKey)
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q must not contain spaces or control characters", v)
		}
	}
	c.ClusterKey = v
	return nil
}

func parseSessionRooms(c *Config, v string) error {
	r, err := gateway.ParseSessionRooms(v)
	if err != nil {
		return err
	}
	c.SessionRooms = r
	return nil
}

func parsePublicRooms(c *Config, v string) error {
	p, err := gateway.ParseRoomPatterns(v)
	if err != nil {
		return err
	}
	c.PublicRooms = p
	return nil
}

// demoPresenceRooms is PRESENCE_ROOMS in --demo when it is unset.
const demoPresenceRooms = "incident:*"

func parsePresenceRooms(c *Config, v string) error {
	p, err := gateway.ParseRoomPatterns(v)
	if err != nil {
		return err
	}
	for _, rp := range p {
		if strings.HasPrefix(rp.String(), "user:") {
			return fmt.Errorf("pattern %q: user: rooms never have presence", rp.String())
		}
	}
	c.PresenceRooms = p
	return nil
}

// parseDurationIn sets *dst to v, a duration within [lo, hi].
func parseDurationIn(dst *time.Duration, v string, lo, hi time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. 5s, 1m)", v)
	}
	if d < lo || d > hi {
		return fmt.Errorf("must be within %v and %v, got %q", lo, hi, v)
	}
	*dst = d
	return nil
}

// parseCountIn sets *dst to v, a whole number within [lo, hi].
func parseCountIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("invalid number %q (%d to %d)", v, lo, hi)
	}
	*dst = n
	return nil
}

func parseSubscribeURL(c *Config, v string) error { return parseHookURL(&c.SubscribeURL, v) }

func parseClientEvents(c *Config, v string) error {
	p, err := gateway.ParseRoomPatterns(v)
	if err != nil {
		return err
	}
	c.ClientEvents = p // nil when empty: every name
	return nil
}

// parseHookURL sets *dst to v, an application endpoint (or "").
func parseHookURL(dst *string, v string) error {
	*dst = v
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// A URL may carry credentials: never echo it.
		return errors.New("must be an http:// or https:// URL with a host (and no user:password)")
	}
	return nil
}

func parseRateLimit(c *Config, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return fmt.Errorf("invalid rate %q (handshakes per second, 0 disables)", v)
	}
	c.RateLimit = f
	return nil
}

func parseEventRateLimit(c *Config, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0) || math.IsInf(f, 0) {
		return fmt.Errorf("invalid rate %q (requests per second per user, 0 disables)", v)
	}
	c.EventRateLimit = f
	return nil
}

// maxUnauthenticated is the cap on sessions not yet authenticated:
// MAX_UNAUTHENTICATED, or a tenth of MAX_CONNECTIONS (at least 1), never
// more than MAX_CONNECTIONS; 0 when neither caps anything.
func (c *Config) maxUnauthenticated() int {
	n := c.MaxUnauthenticated
	if n == 0 && c.MaxConnections > 0 {
		n = max(1, c.MaxConnections/10)
	}
	if c.MaxConnections > 0 {
		n = min(n, c.MaxConnections)
	}
	return n
}

// parseCount parses a number of 0 or more; hint says what it counts.
func parseCount(dst *int, v, hint string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("invalid number %q (%s)", v, hint)
	}
	*dst = n
	return nil
}

// DefaultPruneInterval is PRUNE_INTERVAL when unset and sessiongate owns
// login (connect-pg-simple's default pruneSessionInterval is 15 minutes).
const DefaultPruneInterval = 15 * time.Minute

func parsePruneInterval(c *Config, v string) error {
	c.PruneInterval, c.pruneIntervalSet = 0, v != ""
	if v == "" || v == "0" {
		return nil
	}
	return parseDuration(&c.PruneInterval, v)
}

// pruneInterval is how often serve prunes expired sessions, 0 for never:
// PRUNE_INTERVAL when set; otherwise DefaultPruneInterval when sessiongate
// owns login (and so the session table), and never beside a Node app, whose
// connect-pg-simple prunes the table itself.
func (c *Config) pruneInterval() time.Duration {
	switch {
	case c.pruneIntervalSet:
		return c.PruneInterval
	case c.AuthEndpoints:
		return DefaultPruneInterval
	default:
		return 0
	}
}

func parseLogFormat(c *Config, v string) error {
	if v != "text" && v != "json" {
		return fmt.Errorf("invalid format %q (text or json)", v)
	}
	c.LogFormat = v
	return nil
}

func parseLogLevel(c *Config, v string) error {
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("invalid level %q (debug, info, warn or error)", v)
	}
	return nil
}

// validate checks what no single setting can: the ones that depend on
// each other, for serve.
func (c *Config) validate() error {
	if len(c.SessionSecrets) == 0 && !c.Demo {
		return configErrorf("SESSION_SECRETS", "required: the express-session secret(s), comma-separated (or run with --demo)")
	}
	switch {
	case c.Cluster == "":
	case c.Demo:
		return configErrorf("CLUSTER", "cannot be used with --demo (its embedded SQLite store is one node's)")
	case c.DatabaseURL == "":
		// Every node must see every session and its end: the embedded
		// SQLite store is one process's file, and it announces no
		// revocation to other processes.
		return configErrorf("CLUSTER", "needs DATABASE_URL: the nodes of a cluster must share one PostgreSQL session store (the embedded SQLite store is one node's)")
	case c.Cluster == ClusterRedis && c.RedisURL == "":
		return configErrorf("REDIS_URL", "required with CLUSTER=redis (redis://[user:password@]host[:port][/db] or rediss://)")
	}
	if c.RecoveryStream != "" && c.RecoveryStream != RecoveryStreamOff && c.Cluster != ClusterRedis {
		return configErrorf("RECOVERY_STREAM", "needs CLUSTER=redis (the stream is on its Redis)")
	}
	if c.SubscribeURL != "" && c.HookSecret == "" {
		return configErrorf("HOOK_SECRET", "required with SUBSCRIBE_URL: the application checks X-Sessiongate-Signature with it")
	}
	if c.EventsURL != "" && c.HookSecret == "" {
		return configErrorf("HOOK_SECRET", "required with EVENTS_URL: the application checks X-Sessiongate-Signature with it")
	}
	if c.RedisCAFile != "" && !strings.HasPrefix(strings.ToLower(c.RedisURL), "rediss://") {
		return configErrorf("REDIS_CA_FILE", "needs a rediss:// REDIS_URL (TLS)")
	}
	return nil
}

// newLogger returns the logger the settings ask for, writing to w.
func (c *Config) newLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
