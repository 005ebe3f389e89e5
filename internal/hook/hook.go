// Package hook calls the application over HTTP on behalf of a socket: a
// signed JSON POST that carries the browser's Cookie, User-Agent and
// address from the socket's handshake, so that the application's own
// session middleware (express-session and passport's req.user) decides.
//
// A Client is shared by every socket of the process. Its calls are bounded:
// each by its timeout (the wait for a free slot included), all together by
// MaxInFlight, and each response body by MaxBody; redirects are not
// followed (a 3xx is returned as the answer), and connections are kept
// alive and reused. The subscribe authorization (package gateway) uses it,
// and so can any later hook (client events): the classification of a
// status into a decision is the caller's.
package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// SignatureHeader carries the body's signature: "sha256=" and the hex
// HMAC-SHA256 of the exact body bytes with the shared secret.
const SignatureHeader = "X-Sessiongate-Signature"

// Defaults of the Config fields left zero.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 64
	DefaultMaxBody     = 64 << 10
)

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is the signature of body under secret,
// comparing in constant time.
func Verify(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Forwarded is what a call carries of the socket's handshake.
type Forwarded struct {
	Cookie    string // the handshake's Cookie header, as the browser sent it
	UserAgent string
	ClientIP  string // the client's address as resolved behind TRUSTED_PROXIES; sent as X-Forwarded-For
}

// Config configures a Client. URL and Secret are required.
type Config struct {
	URL    string // http:// or https://
	Secret []byte // HMAC key of SignatureHeader

	Timeout     time.Duration // per call, including the wait for a slot: DefaultTimeout
	MaxInFlight int           // calls in flight in the process: DefaultMaxInFlight
	MaxBody     int64         // bytes of a response body read: DefaultMaxBody

	// Transport, when set, carries the requests instead of a pooled
	// http.Transport: an in-process handler (the demo's built-in rules) or
	// a test's.
	Transport http.RoundTripper
}

// Client posts signed JSON bodies to one URL. Its methods are safe for
// concurrent use.
type Client struct {
	url     string
	secret  []byte
	timeout time.Duration
	maxBody int64
	slots   chan struct{}
	http    *http.Client
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("hook: Config.URL is required")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("hook: Config.Secret is required")
	}
	if cfg.Timeout < 0 || cfg.MaxInFlight < 0 || cfg.MaxBody < 0 {
		return nil, errors.New("hook: Timeout, MaxInFlight and MaxBody must not be negative")
	}
	c := &Client{
		url:     cfg.URL,
		secret:  cfg.Secret,
		timeout: or(cfg.Timeout, DefaultTimeout),
		maxBody: or(cfg.MaxBody, DefaultMaxBody),
		slots:   make(chan struct{}, or(cfg.MaxInFlight, DefaultMaxInFlight)),
	}
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:       nil, // the application is reached directly, never through HTTP_PROXY
			DialContext: (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext,
			// Every call in flight may keep its connection for the next.
			MaxIdleConns:        cap(c.slots),
			MaxIdleConnsPerHost: cap(c.slots),
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
	}
	c.http = &http.Client{
		Transport: rt,
		// A redirect is the application's answer, not a place to go:
		// following it would send the cookie elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func or[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Timeout returns the bound of one call.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Response is the application's answer: its status and body (at most
// Config.MaxBody bytes).
type Response struct {
	Status int
	Body   []byte
}

// The kinds of Error.
const (
	KindTimeout = "timeout" // the call did not end within the timeout
	KindBusy    = "busy"    // no slot was free within the timeout
	KindNetwork = "network" // the connection failed
	KindTooBig  = "too_big" // the body exceeded MaxBody
)

// Error is a call that got no usable answer.
type Error struct {
	Kind string
	Err  error
}

func (e *Error) Error() string { return "hook: " + e.Kind + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Post sends body (JSON) signed, with fwd's headers, and returns the answer.
// The call ends within the Client's timeout, or earlier with ctx; every
// failure to get an answer is an *Error. Any status is an answer: the
// caller classifies it.
func (c *Client) Post(ctx context.Context, body []byte, fwd Forwarded) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return Response{}, &Error{Kind: KindBusy, Err: fmt.Errorf("%d calls in flight: %w", cap(c.slots), ctx.Err())}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Response{}, &Error{Kind: KindNetwork, Err: err}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set(SignatureHeader, Sign(c.secret, body))
	if fwd.Cookie != "" {
		h.Set("Cookie", fwd.Cookie)
	}
	// An empty value sends no User-Agent, rather than Go's own.
	h.Set("User-Agent", fwd.UserAgent)
	if fwd.ClientIP != "" {
		h.Set("X-Forwarded-For", fwd.ClientIP)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, c.failed(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return Response{}, c.failed(ctx, err)
	}
	if int64(len(b)) > c.maxBody {
		return Response{}, &Error{Kind: KindTooBig, Err: fmt.Errorf("response body over %d bytes", c.maxBody)}
	}
	return Response{Status: resp.StatusCode, Body: b}, nil
}

func (c *Client) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &Error{Kind: KindTimeout, Err: fmt.Errorf("no answer within %v: %w", c.timeout, ctx.Err())}
	}
	return &Error{Kind: KindNetwork, Err: err}
}

// CloseIdle closes the kept-alive connections that are idle.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Handler is an http.RoundTripper that serves requests with an in-process
// http.Handler: the embedded rules stand in for the application behind the
// same Client, signature and answer included.
type Handler struct{ http.Handler }

// RoundTrip serves req with the handler and returns what it wrote.
func (h Handler) RoundTrip(req *http.Request) (*http.Response, error) {
	w := &recorder{header: make(http.Header), status: http.StatusOK}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			// As net/http confines a panicking handler to its request.
			if recover() != nil {
				w.status, w.wrote = http.StatusInternalServerError, true
				w.body.Reset()
			}
		}()
		h.ServeHTTP(w, req)
	}()
	select {
	case <-done:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status:     http.StatusText(w.status),
		StatusCode: w.status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     w.header,
		Body:       io.NopCloser(&w.body),
		Request:    req,
	}, nil
}

// recorder is the in-process handler's ResponseWriter.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
