package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/hook"
	"github.com/sessiongate/sessiongate/socketio"
)

// The events a client sends to enter and leave rooms (contract:
// Subscriptions), each with {"room": "<name>"} and, usually, an ack.
const (
	EventSubscribe   = "subscribe"
	EventUnsubscribe = "unsubscribe"
)

// Bounds of subscriptions.
const (
	// MaxRoomLen is the longest room name, in bytes.
	MaxRoomLen = 256
	// MaxSubscriptions is the most rooms one socket holds by subscribing;
	// past it a subscribe is FORBIDDEN.
	MaxSubscriptions = 256
	// MaxDecisionTTL caps how long an allowed subscription is remembered.
	MaxDecisionTTL = time.Hour
	// DefaultDecisionCacheSize is Config.DecisionCacheSize when zero.
	DefaultDecisionCacheSize = 10000
	// DefaultSubscribeTimeout is Config.SubscribeTimeout when zero.
	DefaultSubscribeTimeout = 2 * time.Second
	// joinTimeout bounds the join of an allowed room: a cluster adapter
	// waits for its bus to confirm the subscription.
	joinTimeout = 5 * time.Second
)

// SubscribeRequest is what an Authorizer is asked: may this socket of this
// user's session enter the room? The forwarded fields are the socket's
// handshake, so that the application's own session middleware can decide.
type SubscribeRequest struct {
	User    string // the session's passport.user
	Room    string
	Socket  string // the socket id
	Session string // sessiongate.ShortHash of the session id, never the id

	Cookie    string // the handshake's Cookie header
	UserAgent string
	ClientIP  string // behind TRUSTED_PROXIES, the client's address
}

// Decision is an Authorizer's answer. An allowed decision with a positive
// TTL is reused for the same session, user and room until it passes
// (capped at MaxDecisionTTL); refusals are never reused.
type Decision struct {
	Allow bool
	TTL   time.Duration
}

// Authorizer decides the subscriptions that Config.PublicRooms does not open.
// An error means it could not decide (UNAVAILABLE, temporary); a refusal is
// a Decision. Authorize must return once ctx is done.
type Authorizer interface {
	Authorize(ctx context.Context, req SubscribeRequest) (Decision, error)
}

// RoomPattern matches room names: '*' matches any run of characters (none
// included), every other character itself. "news:*" matches "news:" and
// "news:7:comments"; "lobby" only "lobby".
type RoomPattern struct {
	parts []string // the literal runs between stars
	star  bool     // the pattern holds at least one '*'
}

// ParseRoomPattern parses one pattern: a room name (see ValidRoom) in which
// '*' is a wildcard.
func ParseRoomPattern(p string) (RoomPattern, error) {
	if err := ValidRoom(p); err != nil {
		return RoomPattern{}, fmt.Errorf("pattern %q: %w", p, err)
	}
	parts := strings.Split(p, "*")
	return RoomPattern{parts: parts, star: len(parts) > 1}, nil
}

// ParseRoomPatterns parses a comma-separated list of patterns; empty
// entries are skipped.
func ParseRoomPatterns(list string) ([]RoomPattern, error) {
	var out []RoomPattern
	for p := range strings.SplitSeq(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		rp, err := ParseRoomPattern(p)
		if err != nil {
			return nil, err
		}
		out = append(out, rp)
	}
	return out, nil
}

// String returns the pattern as parsed.
func (p RoomPattern) String() string { return strings.Join(p.parts, "*") }

// Match reports whether room matches the pattern.
func (p RoomPattern) Match(room string) bool {
	if !p.star {
		return len(p.parts) == 1 && room == p.parts[0]
	}
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if len(room) < len(first)+len(last) || !strings.HasPrefix(room, first) || !strings.HasSuffix(room, last) {
		return false
	}
	// Each middle run at its leftmost place leaves the most room for the
	// rest: greedy matching is exact for a single wildcard character.
	rest := room[len(first) : len(room)-len(last)]
	for _, part := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(rest, part)
		if i < 0 {
			return false
		}
		rest = rest[i+len(part):]
	}
	return true
}

// matchAny reports whether name matches one of patterns.
func matchAny(patterns []RoomPattern, name string) bool {
	for _, p := range patterns {
		if p.Match(name) {
			return true
		}
	}
	return false
}

// ValidRoom reports why name cannot be a room a client names: it must be
// non-empty UTF-8 of at most MaxRoomLen bytes without control characters.
func ValidRoom(name string) error {
	switch {
	case name == "":
		return errors.New("room is empty")
	case len(name) > MaxRoomLen:
		return fmt.Errorf("room is longer than %d bytes", MaxRoomLen)
	case !utf8.ValidString(name):
		return errors.New("room is not UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("room holds a control character")
	}
	return nil
}

// ParseRoomRequest returns the room of a subscribe or unsubscribe event's
// arguments: the first must be an object whose "room" is a valid room name
// (other fields are ignored).
func ParseRoomRequest(args []any) (string, error) {
	if len(args) == 0 {
		return "", errors.New(`missing payload {"room": "<name>"}`)
	}
	obj, ok := args[0].(map[string]any)
	if !ok {
		return "", errors.New(`payload is not an object {"room": "<name>"}`)
	}
	room, ok := obj["room"].(string)
	if !ok {
		return "", errors.New(`"room" is missing or not a string`)
	}
	if err := ValidRoom(room); err != nil {
		return "", err
	}
	return room, nil
}

// ackError is the error of a refused subscribe or unsubscribe, as the ack
// carries it.
type ackError struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Temporary    bool   `json:"temporary,omitempty"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

type ackReply struct {
	OK    bool      `json:"ok"`
	Error *ackError `json:"error,omitempty"`
	// Presence is the room's members, for a presence room (contract §15).
	Presence *PresenceSnapshot `json:"presence,omitempty"`
}

func refuseRoom(code, msg string) *ackError {
	return &ackError{Code: code, Message: msg, Temporary: code == sessiongate.ECodeUnavailable}
}

// subscriptions is what the gateway knows of the rooms sockets asked for.
type subscriptions struct {
	public  []RoomPattern
	auth    Authorizer // nil: only public rooms
	timeout time.Duration
	cache   *decisionCache
	flights flights
	logMu   sync.Mutex
	logged  time.Time // the last UNAVAILABLE logged at WARN
}

// subscribe is the handler of EventSubscribe.
func (g *Gateway) subscribe(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
	if e, away := g.limited(s, connOf(s), LimitSubscriptions); e != nil {
		answer(ack, ackReply{Error: e}, away)
		return
	}
	reply := g.subscribeReply(s, ev.Args)
	if ack != nil {
		if reply.OK && g.presence != nil {
			// After the join: the snapshot holds the subscriber.
			if room, err := ParseRoomRequest(ev.Args); err == nil {
				reply.Presence = g.presenceAck(room, connOf(s))
			}
		}
		_ = ack(reply) // an error means the socket is gone
	}
}

// answer acks reply, when asked for, and then sends the socket away if
// away is set: the client sees its ack before the disconnect.
func answer(ack func(...any) error, reply any, away func()) {
	if ack != nil {
		_ = ack(reply) // an error means the socket is gone
	}
	if away != nil {
		away()
	}
}

func (g *Gateway) subscribeReply(s *socketio.Socket, args []any) ackReply {
	c := connOf(s)
	if c == nil {
		return ackReply{Error: refuseRoom(sessiongate.ECodeForbidden, "not authenticated")}
	}
	room, err := ParseRoomRequest(args)
	if err != nil {
		return ackReply{Error: refuseRoom(sessiongate.ECodeInvalidRoom, err.Error())}
	}
	c.subsMu.Lock()
	already, count := c.subs[room], len(c.subs)
	c.subsMu.Unlock()
	if already {
		if inRoom(s, room) {
			return ackReply{OK: true}
		}
		// The server took the socket out (a room operation, a session
		// room's move): the subscription is gone, ask again.
		c.subsMu.Lock()
		delete(c.subs, room)
		count = len(c.subs)
		c.subsMu.Unlock()
	}
	if count >= MaxSubscriptions {
		return ackReply{Error: refuseRoom(sessiongate.ECodeForbidden, fmt.Sprintf("a socket holds at most %d subscriptions", MaxSubscriptions))}
	}
	if !strings.HasPrefix(room, userRoomPrefix) && inRoom(s, room) {
		// The server put the socket there (a SESSION_ROOMS room, a room
		// operation): it stays the server's, which unsubscribe cannot undo.
		return ackReply{OK: true}
	}
	if e := g.decide(s.Context(), c, room, s.ID(), s.Handshake().Header.Get("Cookie")); e != nil {
		return ackReply{Error: e}
	}
	jctx, cancel := context.WithTimeout(s.Context(), joinTimeout)
	err = s.Join(jctx, room)
	cancel()
	if err != nil {
		if !errors.Is(err, socketio.ErrDisconnected) {
			g.log.Warn("subscribe: join failed", "room", room, "session", c.short, "err", err)
		}
		return ackReply{Error: refuseRoom(sessiongate.ECodeUnavailable, "the room could not be joined; retry later")}
	}
	c.subsMu.Lock()
	if c.subs == nil {
		c.subs = make(map[string]bool)
	}
	c.subs[room] = true
	c.subsMu.Unlock()
	return ackReply{OK: true}
}

// unsubscribe is the handler of EventUnsubscribe.
func (g *Gateway) unsubscribe(s *socketio.Socket, ev socketio.Event, ack func(...any) error) {
	if e, away := g.limited(s, connOf(s), LimitSubscriptions); e != nil {
		answer(ack, ackReply{Error: e}, away)
		return
	}
	reply := g.unsubscribeReply(s, ev.Args)
	if ack != nil {
		_ = ack(reply)
	}
}

func (g *Gateway) unsubscribeReply(s *socketio.Socket, args []any) ackReply {
	c := connOf(s)
	if c == nil {
		return ackReply{Error: refuseRoom(sessiongate.ECodeForbidden, "not authenticated")}
	}
	room, err := ParseRoomRequest(args)
	if err != nil {
		return ackReply{Error: refuseRoom(sessiongate.ECodeInvalidRoom, err.Error())}
	}
	if strings.HasPrefix(room, userRoomPrefix) {
		return ackReply{Error: refuseRoom(sessiongate.ECodeForbidden, "a user's room cannot be left")}
	}
	// A room that is also one of the session's (SESSION_ROOMS) stays: the
	// server holds it too, and unsubscribe cannot undo that.
	c.moveMu.Lock()
	defer c.moveMu.Unlock()
	sessionRoom := slices.Contains(c.joined, room)
	c.subsMu.Lock()
	subscribed := c.subs[room]
	if subscribed && !sessionRoom {
		delete(c.subs, room)
	}
	c.subsMu.Unlock()
	if subscribed && !sessionRoom {
		s.Leave(room)
		return ackReply{OK: true}
	}
	if inRoom(s, room) {
		return ackReply{Error: refuseRoom(sessiongate.ECodeForbidden, "the server joined this room; it cannot be left")}
	}
	return ackReply{OK: true} // not in it: nothing to do
}

func inRoom(s *socketio.Socket, room string) bool {
	for _, r := range s.Rooms() {
		if r == room {
			return true
		}
	}
	return false
}

// decide runs the subscription rules in order (contract: Subscriptions);
// nil means allowed.
func (g *Gateway) decide(ctx context.Context, c *conn, room, socketID, cookie string) *ackError {
	sub := &g.subs
	if strings.HasPrefix(room, userRoomPrefix) {
		return refuseRoom(sessiongate.ECodeForbidden, "a user's room is never subscribable")
	}
	if matchAny(sub.public, room) {
		return nil
	}
	if sub.auth == nil {
		return refuseRoom(sessiongate.ECodeForbidden, "subscription not allowed")
	}
	// The user is in the key: a session that changed users asks again.
	key := c.hash + "\x00" + c.identity.UserID + "\x00" + room
	if sub.cache.allowed(key, g.now()) {
		return nil
	}
	req := SubscribeRequest{
		User:      c.identity.UserID,
		Room:      room,
		Socket:    socketID,
		Session:   c.short,
		Cookie:    cookie,
		UserAgent: c.client.userAgent,
		ClientIP:  c.client.remoteAddr,
	}
	wctx, cancel := context.WithTimeout(ctx, sub.timeout)
	defer cancel()
	d, err := sub.flights.do(wctx, key, func() (Decision, error) {
		// Detached from the first asker: the others of its flight wait for
		// the same answer, and the socket that asked may leave.
		actx, acancel := context.WithTimeout(context.Background(), sub.timeout)
		defer acancel()
		d, err := sub.auth.Authorize(actx, req)
		if err == nil && d.Allow && d.TTL > 0 {
			now := g.now()
			sub.cache.put(key, now.Add(min(d.TTL, MaxDecisionTTL)), now)
		}
		return d, err
	})
	switch {
	case err != nil:
		g.logUnavailable(room, c.short, err)
		return refuseRoom(sessiongate.ECodeUnavailable, "the application could not be asked; retry later")
	case !d.Allow:
		return refuseRoom(sessiongate.ECodeForbidden, "subscription not allowed")
	}
	return nil
}

// unavailableLogEvery spaces the WARN lines of a failing authorizer: every
// subscribe fails the same way while the application is down.
const unavailableLogEvery = 10 * time.Second

func (g *Gateway) logUnavailable(room, short string, err error) {
	now := g.now()
	g.subs.logMu.Lock()
	warn := now.Sub(g.subs.logged) >= unavailableLogEvery
	if warn {
		g.subs.logged = now
	}
	g.subs.logMu.Unlock()
	level := "subscribe: authorization unavailable"
	if warn {
		g.log.Warn(level, "room", room, "session", short, "err", err)
	} else {
		g.log.Debug(level, "room", room, "session", short, "err", err)
	}
}

// flights shares one Authorize call among the concurrent askers of one key
// (one session, user and room): ten tabs reconnecting at once ask once.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	waiters int // askers so far, guarded by flights.mu
	done    chan struct{}
	d       Decision
	err     error
}

// do returns fn's result for key, calling it unless a call for key is in
// flight, in which case it waits for that one. It returns ctx.Err() if ctx
// ends first; fn goes on for the others.
func (f *flights) do(ctx context.Context, key string, fn func() (Decision, error)) (Decision, error) {
	f.mu.Lock()
	fl := f.m[key]
	if fl == nil {
		fl = &flight{done: make(chan struct{})}
		if f.m == nil {
			f.m = make(map[string]*flight)
		}
		f.m[key] = fl
		go func() {
			fl.d, fl.err = fn()
			f.mu.Lock()
			delete(f.m, key)
			f.mu.Unlock()
			close(fl.done)
		}()
	}
	fl.waiters++
	f.mu.Unlock()
	select {
	case <-fl.done:
		return fl.d, fl.err
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
}

// waiting returns how many askers the flight of key has had, 0 if none is
// in flight.
func (f *flights) waiting(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.m[key]; fl != nil {
		return fl.waiters
	}
	return 0
}

// decisionCache remembers allowed decisions until they expire, at most size
// of them: the oldest expiry is evicted first when full.
type decisionCache struct {
	mu   sync.Mutex
	size int
	m    map[string]time.Time // key → expiry
}

func newDecisionCache(size int) *decisionCache {
	return &decisionCache{size: size, m: make(map[string]time.Time)}
}

func (c *decisionCache) allowed(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[key]
	if ok && !now.Before(exp) {
		delete(c.m, key)
		ok = false
	}
	return ok
}

func (c *decisionCache) put(key string, expire, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.size {
		c.evictLocked(now)
	}
	c.m[key] = expire
}

// evictLocked drops the expired entries or, if none has expired, an eighth
// of them at random (map order): a full cache costs one scan per size/8
// puts, and an evicted decision is only asked again.
func (c *decisionCache) evictLocked(now time.Time) {
	for k, exp := range c.m {
		if !now.Before(exp) {
			delete(c.m, k)
		}
	}
	n := len(c.m) - c.size + max(1, c.size/8)
	for k := range c.m {
		if n <= 0 {
			break
		}
		delete(c.m, k)
		n--
	}
}

// decodeDecision reads an application's 200 answer: a JSON object whose
// "allow" is a boolean, with an optional "ttl" in seconds.
func decodeDecision(body []byte) (Decision, error) {
	var v struct {
		Allow *bool    `json:"allow"`
		TTL   *float64 `json:"ttl"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Decision{}, fmt.Errorf("answer is not JSON: %w", err)
	}
	if v.Allow == nil {
		return Decision{}, errors.New(`answer has no boolean "allow"`)
	}
	d := Decision{Allow: *v.Allow}
	if v.TTL != nil && *v.TTL > 0 {
		d.TTL = time.Duration(min(*v.TTL, MaxDecisionTTL.Seconds()) * float64(time.Second))
	}
	return d, nil
}

// HookAuthorizer asks the application (SUBSCRIBE_URL) through c: a POST
// of {"user","room","socket","session"} with the handshake's Cookie,
// User-Agent and client address, signed. 200 {"allow": bool, "ttl"?: s}
// decides; 403 and any other status below 500 refuse; a 5xx, a timeout, a
// failed connection or an answer that is not such an object is an error
// (UNAVAILABLE).
func HookAuthorizer(c *hook.Client) Authorizer { return hookAuthorizer{c} }

type hookAuthorizer struct{ c *hook.Client }

// hookBody is the JSON the application receives.
type hookBody struct {
	User    string `json:"user"`
	Room    string `json:"room"`
	Socket  string `json:"socket"`
	Session string `json:"session"`
}

func (h hookAuthorizer) Authorize(ctx context.Context, req SubscribeRequest) (Decision, error) {
	body, err := json.Marshal(hookBody{User: req.User, Room: req.Room, Socket: req.Socket, Session: req.Session})
	if err != nil {
		return Decision{}, err
	}
	resp, err := h.c.Post(ctx, body, hook.Forwarded{Cookie: req.Cookie, UserAgent: req.UserAgent, ClientIP: req.ClientIP})
	switch {
	case err != nil:
		return Decision{}, err
	case resp.Status == http.StatusOK:
		return decodeDecision(resp.Body)
	case resp.Status >= 500:
		return Decision{}, fmt.Errorf("application answered %d", resp.Status)
	}
	return Decision{}, nil // 403, or any other answer: refused
}
