package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiongate/sessiongate/internal/pgtest"
)

const testTimeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testMain returns a Main reading env (and nothing of the process's
// environment) with its output captured.
func testMain(env map[string]string) (m *Main, stdout, stderr *bytes.Buffer) {
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	m = &Main{
		Stdin:  strings.NewReader(""),
		Stdout: stdout,
		Stderr: stderr,
		Getenv: func(k string) string { return env[k] },
	}
	return m, stdout, stderr
}

// validEnv is the least a non-demo serve needs, on a free port and a
// temporary DATA_DIR.
func validEnv(t *testing.T) map[string]string {
	return map[string]string{
		"SESSION_SECRETS": "test secret",
		"LISTEN_ADDR":     "127.0.0.1:0",
		"DATA_DIR":        t.TempDir(),
		"LOG_LEVEL":       "error",
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantLine string // the whole stderr, one line
		wantCode int
	}{
		{name: "bad duration in env", env: map[string]string{"SESSION_CHECK_INTERVAL": "5x"},
			wantLine: `sessiongate: SESSION_CHECK_INTERVAL: invalid duration "5x" (use e.g. 30s, 5m, 24h)`, wantCode: 2},
		{name: "bad duration in flag", args: []string{"serve", "--session-check-interval", "5x"},
			wantLine: `sessiongate: --session-check-interval: invalid duration "5x" (use e.g. 30s, 5m, 24h)`, wantCode: 2},
		{name: "negative duration", env: map[string]string{"PING_INTERVAL": "-1s"},
			wantLine: `sessiongate: PING_INTERVAL: must be positive, got "-1s"`, wantCode: 2},
		{name: "no secrets", env: map[string]string{"SESSION_SECRETS": ""},
			wantLine: `sessiongate: SESSION_SECRETS: required: the express-session secret(s), comma-separated (or run with --demo)`, wantCode: 2},
		{name: "empty secret in list", env: map[string]string{"SESSION_SECRETS": "a,,b"},
			wantLine: `sessiongate: SESSION_SECRETS: secret 2 of the list is empty`, wantCode: 2},
		{name: "origin with path", env: map[string]string{"ALLOWED_ORIGINS": "https://app.example.com/"},
			wantLine: `sessiongate: ALLOWED_ORIGINS: "https://app.example.com/" is not an origin (scheme://host[:port], no path or trailing slash)`, wantCode: 2},
		{name: "origin without scheme", env: map[string]string{"ALLOWED_ORIGINS": "https://a.example.com,app.example.com"},
			wantLine: `sessiongate: ALLOWED_ORIGINS: "app.example.com" is not an origin (scheme://host[:port], no path or trailing slash)`, wantCode: 2},
		{name: "origin upper case", env: map[string]string{"ALLOWED_ORIGINS": "https://App.example.com"},
			wantLine: `sessiongate: ALLOWED_ORIGINS: "https://App.example.com" must be lower case, as browsers send it`, wantCode: 2},
		{name: "database URL scheme", env: map[string]string{"DATABASE_URL": "mysql://root:hunter2@db/x"},
			wantLine: `sessiongate: DATABASE_URL: must be a postgres:// or postgresql:// URL`, wantCode: 2},
		{name: "unreachable database", env: map[string]string{"DATABASE_URL": "postgres://postgres:hunter2@127.0.0.1:1/test?sslmode=disable&connect_timeout=5"},
			wantLine: `sessiongate: DATABASE_URL: cannot connect: `, wantCode: 2},
		{name: "log format", env: map[string]string{"LOG_FORMAT": "xml"},
			wantLine: `sessiongate: LOG_FORMAT: invalid format "xml" (text or json)`, wantCode: 2},
		{name: "log level", args: []string{"--log-level=loud"},
			wantLine: `sessiongate: --log-level: invalid level "loud" (debug, info, warn or error)`, wantCode: 2},
		{name: "recovery", env: map[string]string{"RECOVERY": "yes"},
			wantLine: `sessiongate: RECOVERY: invalid recovery "yes" (ask, on or off)`, wantCode: 2},
		{name: "payload", env: map[string]string{"MAX_PAYLOAD": "1e6"},
			wantLine: `sessiongate: MAX_PAYLOAD: invalid number "1e6" (a positive integer)`, wantCode: 2},
		{name: "connections", env: map[string]string{"MAX_CONNECTIONS": "-1"},
			wantLine: `sessiongate: MAX_CONNECTIONS: invalid number "-1" (0 or more)`, wantCode: 2},
		{name: "proxies", env: map[string]string{"TRUSTED_PROXIES": "10.0.0.1, proxy.local"},
			wantLine: `sessiongate: TRUSTED_PROXIES: invalid address or CIDR (ParseAddr("proxy.local"): unexpected character (at "proxy.local"))`, wantCode: 2},
		{name: "boolean", env: map[string]string{"AUTH_ENDPOINTS": "yes"},
			wantLine: `sessiongate: AUTH_ENDPOINTS: invalid boolean "yes" (true or false)`, wantCode: 2},
		{name: "socket path", env: map[string]string{"SOCKET_PATH": "socket.io"},
			wantLine: `sessiongate: SOCKET_PATH: invalid path "socket.io" (must start with /)`, wantCode: 2},
		{name: "recovery stream without redis", env: map[string]string{"RECOVERY_STREAM": "socket.io", "CLUSTER": "postgres", "DATABASE_URL": "postgres://postgres@127.0.0.1:1/test"},
			wantLine: `sessiongate: RECOVERY_STREAM: needs CLUSTER=redis (the stream is on its Redis)`, wantCode: 2},
		{name: "recovery stream name", env: map[string]string{"RECOVERY_STREAM": "a b"},
			wantLine: `sessiongate: RECOVERY_STREAM: "a b" must not contain spaces or control characters`, wantCode: 2},
		{name: "recovery stream bound", env: map[string]string{"RECOVERY_STREAM_MAX_ENTRIES": "0"},
			wantLine: `sessiongate: RECOVERY_STREAM_MAX_ENTRIES: invalid number "0" (a positive integer)`, wantCode: 2},
		{name: "cluster bus", env: map[string]string{"CLUSTER": "nats"},
			wantLine: `sessiongate: CLUSTER: invalid cluster bus "nats" (redis or postgres; empty for a single node)`, wantCode: 2},
		{name: "cluster without a shared store", env: map[string]string{"CLUSTER": "redis", "REDIS_URL": "redis://127.0.0.1:6379"},
			wantLine: `sessiongate: CLUSTER: needs DATABASE_URL: the nodes of a cluster must share one PostgreSQL session store (the embedded SQLite store is one node's)`, wantCode: 2},
		{name: "cluster in demo", env: map[string]string{"CLUSTER": "postgres", "DEMO": "true"},
			wantLine: `sessiongate: CLUSTER: cannot be used with --demo`, wantCode: 2},
		{name: "redis cluster without REDIS_URL", env: map[string]string{"CLUSTER": "redis", "DATABASE_URL": "postgres://postgres:hunter2@127.0.0.1:1/test"},
			wantLine: `sessiongate: REDIS_URL: required with CLUSTER=redis`, wantCode: 2},
		{name: "redis URL scheme", env: map[string]string{"REDIS_URL": "http://default:hunter2@127.0.0.1:6379"},
			wantLine: `sessiongate: REDIS_URL: must be a redis:// or rediss:// URL with a host`, wantCode: 2},
		{name: "redis URL database", env: map[string]string{"REDIS_URL": "redis://default:hunter2@127.0.0.1:6379/x"},
			wantLine: `sessiongate: REDIS_URL: its path must be a database number`, wantCode: 2},
		{name: "redis URL unparsable", env: map[string]string{"REDIS_URL": "redis://default:hunter2@[::1"},
			wantLine: `sessiongate: REDIS_URL: must be a redis:// or rediss:// URL`, wantCode: 2},
		{name: "redis CA without TLS", env: map[string]string{"REDIS_URL": "redis://default:hunter2@127.0.0.1:6379", "REDIS_CA_FILE": "/etc/ca.pem"},
			wantLine: `sessiongate: REDIS_CA_FILE: needs a rediss:// REDIS_URL (TLS)`, wantCode: 2},
		{name: "cluster key with #", env: map[string]string{"CLUSTER_KEY": "app#1"},
			wantLine: `sessiongate: CLUSTER_KEY: "app#1" must not contain # (it separates the parts of a channel name)`, wantCode: 2},
		{name: "cluster key with space", args: []string{"--cluster-key", "my app"},
			wantLine: `sessiongate: --cluster-key: "my app" must not contain spaces or control characters`, wantCode: 2},
		{name: "session rooms unbalanced", env: map[string]string{"SESSION_ROOMS": "org:{orgId},team:{passport.team"},
			wantLine: `sessiongate: SESSION_ROOMS: template "team:{passport.team": unbalanced braces: { at byte 5 is not closed`, wantCode: 2},
		{name: "session rooms empty path", args: []string{"--session-rooms", "org:{}"},
			wantLine: `sessiongate: --session-rooms: template "org:{}": empty path at byte 4`, wantCode: 2},
		{name: "session rooms user prefix", env: map[string]string{"SESSION_ROOMS": "user:{orgId}"},
			wantLine: `sessiongate: SESSION_ROOMS: template "user:{orgId}": its rooms could start with "user:", which only the user's own room may`, wantCode: 2},
		{name: "session rooms too many", env: map[string]string{"SESSION_ROOMS": strings.Repeat("a:{b},", 16) + "c"},
			wantLine: `sessiongate: SESSION_ROOMS: 17 templates, at most 16`, wantCode: 2},
		{name: "connections per user", env: map[string]string{"MAX_CONNECTIONS_PER_USER": "-1"},
			wantLine: `sessiongate: MAX_CONNECTIONS_PER_USER: invalid number "-1" (0 or more)`, wantCode: 2},
		{name: "event rate negative", env: map[string]string{"EVENT_RATE_LIMIT": "-1"},
			wantLine: `sessiongate: EVENT_RATE_LIMIT: invalid rate "-1" (requests per second per user, 0 disables)`, wantCode: 2},
		{name: "event rate NaN", env: map[string]string{"EVENT_RATE_LIMIT": "NaN"},
			wantLine: `sessiongate: EVENT_RATE_LIMIT: invalid rate "NaN" (requests per second per user, 0 disables)`, wantCode: 2},
		{name: "event rate not a number", args: []string{"--event-rate-limit", "fast"},
			wantLine: `sessiongate: --event-rate-limit: invalid rate "fast" (requests per second per user, 0 disables)`, wantCode: 2},
		{name: "event burst negative", env: map[string]string{"EVENT_RATE_BURST": "-3"},
			wantLine: `sessiongate: EVENT_RATE_BURST: invalid number "-3" (0 or more)`, wantCode: 2},
		{name: "presence user rooms", env: map[string]string{"PRESENCE_ROOMS": "incident:*,user:*"},
			wantLine: `sessiongate: PRESENCE_ROOMS: pattern "user:*": user: rooms never have presence`, wantCode: 2},
		{name: "presence room control", env: map[string]string{"PRESENCE_ROOMS": "a\tb"},
			wantLine: `sessiongate: PRESENCE_ROOMS: pattern "a\tb": room holds a control character`, wantCode: 2},
		{name: "presence leave delay negative", env: map[string]string{"PRESENCE_LEAVE_DELAY": "-1s"},
			wantLine: `sessiongate: PRESENCE_LEAVE_DELAY: must be within 0s and 1h0m0s, got "-1s"`, wantCode: 2},
		{name: "presence max members zero", env: map[string]string{"PRESENCE_MAX_MEMBERS": "0"},
			wantLine: `sessiongate: PRESENCE_MAX_MEMBERS: invalid number "0" (1 to 10000)`, wantCode: 2},
		{name: "presence TTL too short", args: []string{"--presence-ttl", "500ms"},
			wantLine: `sessiongate: --presence-ttl: must be within 1s and 10m0s, got "500ms"`, wantCode: 2},
		{name: "subscribe URL without secret", env: map[string]string{"SUBSCRIBE_URL": "http://127.0.0.1:3001/hooks/subscribe"},
			wantLine: `sessiongate: HOOK_SECRET: required with SUBSCRIBE_URL`, wantCode: 2},
		{name: "subscribe URL scheme", env: map[string]string{"SUBSCRIBE_URL": "ftp://app/hooks", "HOOK_SECRET": "x"},
			wantLine: `sessiongate: SUBSCRIBE_URL: must be an http:// or https:// URL with a host`, wantCode: 2},
		{name: "subscribe URL credentials", env: map[string]string{"SUBSCRIBE_URL": "https://user:hunter2@app/hooks", "HOOK_SECRET": "x"},
			wantLine: `sessiongate: SUBSCRIBE_URL: must be an http:// or https:// URL with a host (and no user:password)`, wantCode: 2},
		{name: "events URL without secret", env: map[string]string{"EVENTS_URL": "http://127.0.0.1:3001/hooks/events"},
			wantLine: `sessiongate: HOOK_SECRET: required with EVENTS_URL`, wantCode: 2},
		{name: "events URL scheme", env: map[string]string{"EVENTS_URL": "app/hooks/events", "HOOK_SECRET": "x"},
			wantLine: `sessiongate: EVENTS_URL: must be an http:// or https:// URL with a host`, wantCode: 2},
		{name: "events URL credentials", args: []string{"--events-url", "https://user:hunter2@app/hooks", "--hook-secret", "x"},
			wantLine: `sessiongate: --events-url: must be an http:// or https:// URL with a host (and no user:password)`, wantCode: 2},
		{name: "client event pattern", env: map[string]string{"CLIENT_EVENTS": "incident:*,a\nb"},
			wantLine: `sessiongate: CLIENT_EVENTS: pattern "a\nb": room holds a control character`, wantCode: 2},
		{name: "public room pattern", env: map[string]string{"PUBLIC_ROOMS": "news:*,a\tb"},
			wantLine: `sessiongate: PUBLIC_ROOMS: pattern "a\tb": room holds a control character`, wantCode: 2},
		{name: "hook timeout", env: map[string]string{"HOOK_TIMEOUT": "0s"},
			wantLine: `sessiongate: HOOK_TIMEOUT: must be positive, got "0s"`, wantCode: 2},
		{name: "unknown flag", args: []string{"serve", "--colour"},
			wantLine: `sessiongate: flags: flag provided but not defined: -colour`, wantCode: 2},
		{name: "listen address in use or bad", env: map[string]string{"LISTEN_ADDR": "127.0.0.1:99999"},
			wantLine: `sessiongate: LISTEN_ADDR: listen tcp: address 99999: invalid port`, wantCode: 2},
		{name: "users without action", args: []string{"users"},
			wantLine: `sessiongate: users: missing action: add, list or delete`, wantCode: 2},
		{name: "users add without email", args: []string{"users", "add", "--password", "long enough"},
			wantLine: `sessiongate: --email: required`, wantCode: 2},
		{name: "users add short password", args: []string{"users", "add", "--email", "a@example.com", "--password", "short"},
			wantLine: `sessiongate: --password: must be at least 8 characters`, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := validEnv(t)
			for k, v := range tt.env {
				env[k] = v
			}
			m, _, stderr := testMain(env)
			code := run(testCtx(t), m, tt.args)
			got := stderr.String()
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
				t.Errorf("stderr is not one line: %q", got)
			}
			if !strings.HasPrefix(got, tt.wantLine) {
				t.Errorf("stderr = %q\nwant prefix %q", got, tt.wantLine)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("stderr shows the database password: %q", got)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	m, _, stderr := testMain(nil)
	if code := run(testCtx(t), m, []string{"serv"}); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `sessiongate: command: unknown command "serv"`) {
		t.Errorf("stderr = %q", stderr)
	}
}

func TestFlagWinsOverEnv(t *testing.T) {
	env := validEnv(t)
	env["SESSION_CHECK_INTERVAL"] = "5x" // ignored: the flag is set
	env["SESSION_TABLE"] = "from_env"
	m, _, _ := testMain(env)
	if err := m.ParseFlags(testCtx(t), []string{"--session-check-interval=2m", "--allowed-origins", "https://a.example.com, http://localhost:3000"}); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	c := m.Config
	if c.CheckInterval != 2*time.Minute || c.SessionTable != "from_env" || c.ListenAddr != "127.0.0.1:0" {
		t.Errorf("config = %+v", c)
	}
	if len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "http://localhost:3000" {
		t.Errorf("origins = %q", c.AllowedOrigins)
	}
	// Defaults.
	if c.PingInterval != 25*time.Second || c.PingTimeout != 20*time.Second || c.MaxPayload != 1_000_000 || c.MaxConnections != 50_000 ||
		c.ConnectTimeout != 10*time.Second || c.SessionCookie != "connect.sid" || c.SocketPath != "/socket.io/" ||
		c.RefreshThreshold != 5*time.Minute || c.RefreshExtend != 24*time.Hour || !c.AuthEndpoints || c.Demo ||
		c.EventRateLimit != 20 || c.EventRateBurst != 0 ||
		c.PresenceRooms != nil || c.PresenceLeaveDelay != 5*time.Second || c.PresenceMaxMembers != 100 || c.PresenceTTL != 30*time.Second {
		t.Errorf("defaults = %+v", c)
	}
}

func TestDemoNeedsNoSecret(t *testing.T) {
	env := validEnv(t)
	delete(env, "SESSION_SECRETS")
	m, _, _ := testMain(env)
	if err := m.ParseFlags(testCtx(t), []string{"serve", "--demo"}); err != nil {
		t.Fatalf("ParseFlags --demo: %v", err)
	}
	if !m.Config.Demo {
		t.Error("--demo without a value did not set Demo")
	}
}

func TestServeHelp(t *testing.T) {
	m, stdout, _ := testMain(nil)
	if code := run(testCtx(t), m, []string{"serve", "--help"}); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	out := stdout.String()
	for _, s := range settings {
		line := ""
		for l := range strings.Lines(out) {
			if strings.Contains(l, "--"+s.flagName()+" ") || strings.Contains(l, "--"+s.flagName()+"\t") || strings.HasPrefix(strings.TrimSpace(l), "--"+s.flagName()) {
				line = l
				break
			}
		}
		if !strings.Contains(line, s.env) {
			t.Errorf("help has no line with --%s and %s", s.flagName(), s.env)
			continue
		}
		def := s.def
		if def == "" {
			def = "(none)"
		}
		if !strings.Contains(line, " "+def+" ") {
			t.Errorf("help line for %s lacks its default %q: %q", s.env, def, line)
		}
	}
}

func TestVersion(t *testing.T) {
	m, stdout, _ := testMain(nil)
	if code := run(testCtx(t), m, []string{"version"}); code != 0 || stdout.String() != "sessiongate dev\n" {
		t.Errorf("version = %d %q", code, stdout)
	}
}

func TestServeNeedsMigration(t *testing.T) {
	schema, url := pgtest.Schema(t)
	env := validEnv(t)
	env["DATABASE_URL"] = url
	env["SESSION_SCHEMA"] = schema
	m, _, stderr := testMain(env)
	if code := run(testCtx(t), m, nil); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	q := `"` + schema + `".`
	want := "sessiongate: DATABASE_URL: missing table " + q + `"session", table ` + q + `"sessiongate_audit", table ` +
		q + `"sessiongate_users": run ` + "`sessiongate migrate`" + " first\n"
	if stderr.String() != want {
		t.Errorf("stderr = %q\nwant     %q", stderr, want)
	}

	// Tables without the revocation trigger would let logged-out users stay
	// connected until the next check: refused too.
	migrate, _, _ := testMain(env)
	if code := run(testCtx(t), migrate, []string{"migrate"}); code != 0 {
		t.Fatalf("migrate: exit %d", code)
	}
	conn, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(testCtx(t), `DROP TRIGGER sessiongate_session_revoked ON session`); err != nil {
		t.Fatal(err)
	}
	m, _, stderr = testMain(env)
	if code := run(testCtx(t), m, nil); code != 2 {
		t.Errorf("exit code without trigger = %d, want 2", code)
	}
	want = "sessiongate: DATABASE_URL: missing revocation trigger on " + q + `"session": run ` + "`sessiongate migrate`" + " first\n"
	if stderr.String() != want {
		t.Errorf("stderr = %q\nwant     %q", stderr, want)
	}
}

func FuzzCheckOrigin(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com", "http://localhost:3000", "http://[::1]:8080",
		"https://app.example.com/", "app.example.com", "https://user@host", "https://h:0",
		"https://h:99999", "https://h?x", "HTTPS://H", "http://", "https://h:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, o string) {
		if checkOrigin(o) != nil {
			return
		}
		// An accepted origin is what a browser sends: scheme://host[:port].
		scheme, rest, ok := strings.Cut(o, "://")
		if !ok || (scheme != "http" && scheme != "https") || rest == "" ||
			strings.ContainsAny(rest, "/?#@") || strings.ToLower(o) != o {
			t.Fatalf("accepted %q", o)
		}
	})
}

func TestAuditSpoolDir(t *testing.T) {
	for _, tt := range []struct{ setting, want string }{
		{"", filepath.Join("/data", "audit-spool")},
		{"off", ""},
		{"/var/spool/sg", "/var/spool/sg"},
	} {
		c := Config{DataDir: "/data", AuditSpool: tt.setting}
		if got := c.auditSpoolDir(); got != tt.want {
			t.Errorf("AUDIT_SPOOL=%q: spool %q, want %q", tt.setting, got, tt.want)
		}
	}
}

// FuzzParseRedisURL: REDIS_URL is parsed without panicking, an accepted one
// is redis:// or rediss:// with a host, and an error never echoes the value
// (it may hold a password).
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{"redis://127.0.0.1:6379", "rediss://u:p@h:6380/2", "redis://h/x", "http://h", "redis://[::1", "redis://:pw@/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var c Config
		err := parseRedisURL(&c, v)
		if err != nil {
			// Fixed texts only: nothing of the value is in them.
			if msg := err.Error(); msg != "must be a redis:// or rediss:// URL with a host (redis://[user:password@]host[:port][/db])" &&
				msg != "its path must be a database number (redis://host:6379/0)" {
				t.Fatalf("error %q is not one of the fixed texts", msg)
			}
			return
		}
		if lv := strings.ToLower(v); v != "" && !strings.HasPrefix(lv, "redis://") && !strings.HasPrefix(lv, "rediss://") {
			t.Fatalf("accepted %q", v)
		}
	})
}
