package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiongate/sessiongate/socketio"
)

// StreamLog is a socketio.RecoveryLog in Redis streams, as
// @socket.io/redis-streams-adapter keeps it, so that a socket that dropped
// on one node can be recovered on another:
//   - each namespace's events go to the stream "<key>:recovery:<nsp>"
//     (XADD, then trimmed past MaxEntries by the oldest 1%), fields r
//     (rooms, JSON), x (except, JSON), d (the packet's data as is) and a
//     (attachments, JSON of base64), each left out when empty; an event's
//     offset is its stream id "<ms>-<seq>", parsed strictly from clients;
//   - entries older than the window (by the id's time against this node's
//     clock) are dropped: trimmed with MINID when appending and before
//     each read, by a Lua script that also records the last id it dropped
//     as the stream's max-deleted-entry-id (XSETID, Redis 7.0), so that a
//     read that would need a dropped entry fails with
//     socketio.RecoveryExpired;
//   - a saved socket is "<key>:recovery:session:<pid>", JSON, SET with PX
//     the time it has left (at most the window), and taken by GETDEL, so
//     it is restored once whichever node asks.
//
// Every call to Redis is bounded by its ctx and by Options.RequestTimeout;
// a failure of Redis or of what it stores is a *StreamLogError.
//
// It is not yet wired into cmd/sessiongate: socketio appends an event to
// the log and delivers it under the namespace's recovery lock, which
// orders the two on one node only. On a cluster, each node must deliver
// the events in the stream's order (read them back from the stream, as
// the streams adapter does, instead of from pub/sub), or a recovering
// socket could be replayed an event in another order than its peers saw
// it, or skip one appended by another node before its LastSent. That
// delivery path is the next step; until then StreamLog is a building
// block, checked by the socketio/recoverytest suite.
type StreamLog struct {
	opts   StreamLogOptions
	client rueidis.Client
}

// StreamLogOptions configure a StreamLog.
type StreamLogOptions struct {
	// Options are the connection (URL, TLSConfig, ClientName), the Key
	// prefixing the log's keys ("socket.io") and RequestTimeout, which
	// bounds each call to Redis (5 s). Its other fields are unused.
	Options
	// Window is how long events and saved sockets are kept: 2 minutes,
	// as socketio.RecoveryOptions.Window.
	Window time.Duration
	// MaxEntries bounds each namespace's stream: 10,000, as the streams
	// adapter's maxLen (held within 1% over it by trimLua rather than
	// XADD MAXLEN ~, whose drops Redis does not record). Past it the
	// oldest go first, and a recovery that needs one fails as expired.
	MaxEntries int
	// MaxSocketBytes bounds one saved socket as stored (its rooms and
	// state): 64 KiB; a larger one is not saved (it connects fresh).
	MaxSocketBytes int
	// Now is the clock the window is measured by: time.Now. Stream ids
	// carry Redis' time: the nodes' clocks must agree with it to well
	// within the window.
	Now func() time.Time
}

// The codes of a StreamLogError.
const (
	// CodeRedis: a call to Redis failed or timed out.
	CodeRedis = "recovery_redis"
	// CodeCorrupt: what Redis holds under the log's keys does not decode
	// (written by something else).
	CodeCorrupt = "recovery_corrupt"
)

// StreamLogError is a failure of a StreamLog, with its machine code
// (CodeRedis, CodeCorrupt). socketio counts it as RecoveryLogError.
type StreamLogError struct {
	Code string
	Op   string // what it was doing: "xadd", "restore", ...
	Err  error
}

func (e *StreamLogError) Error() string {
	return "redis: recovery log: " + e.Code + ": " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *StreamLogError) Unwrap() error { return e.Err }

func redisErr(op string, err error) error { return &StreamLogError{Code: CodeRedis, Op: op, Err: err} }

func corrupt(op, format string, args ...any) error {
	return &StreamLogError{Code: CodeCorrupt, Op: op, Err: fmt.Errorf(format, args...)}
}

// NewStreamLog connects to Redis (it fails if the server does not answer
// a PING within ctx). Close closes its connection.
func NewStreamLog(ctx context.Context, opts StreamLogOptions) (*StreamLog, error) {
	opts.Options.defaults()
	if opts.Window <= 0 {
		opts.Window = 2 * time.Minute
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	if opts.MaxSocketBytes <= 0 {
		opts.MaxSocketBytes = 64 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	client, err := newClient(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	return &StreamLog{opts: opts, client: client}, nil
}

// Close closes the connection to Redis.
func (l *StreamLog) Close() error {
	l.client.Close()
	return nil
}

func (l *StreamLog) streamKey(nsp string) string { return l.opts.Key + ":recovery:" + nsp }

func (l *StreamLog) sessionKey(pid string) string { return l.opts.Key + ":recovery:session:" + pid }

func (l *StreamLog) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.opts.RequestTimeout)
}

// streamID is a stream entry id: milliseconds and sequence.
type streamID struct{ ms, seq uint64 }

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// parseID reads an offset: "<ms>-<seq>", two decimal numbers without sign
// or leading zero that fit in 64 bits, as Redis writes ids. Anything else
// (a client's guess, another log's offset) is refused.
func parseID(s string) (streamID, bool) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, ok1 := parseDec(msPart)
	seq, ok2 := parseDec(seqPart)
	return streamID{ms, seq}, ok1 && ok2
}

func parseDec(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// cutoff is the id before which entries are older than the window.
func (l *StreamLog) cutoff() streamID {
	ms := l.opts.Now().Add(-l.opts.Window).UnixMilli()
	return streamID{ms: uint64(max(ms, 0))}
}

// Append adds e to its namespace's stream and returns its id. It trims
// what is past MaxEntries or the window (approximately: whole nodes of the
// stream) in the same round trip.
func (l *StreamLog) Append(ctx context.Context, nsp string, e socketio.LogEntry) (string, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	args := []string{l.cutoff().String(), strconv.Itoa(l.opts.MaxEntries), "d", string(e.Data)}
	if len(e.Rooms) > 0 {
		args = append(args, "r", jsonString(e.Rooms))
	}
	if len(e.Except) > 0 {
		args = append(args, "x", jsonString(e.Except))
	}
	if len(e.Attachments) > 0 {
		args = append(args, "a", jsonString(e.Attachments))
	}
	id, err := appendScript.Exec(ctx, l.client, []string{l.streamKey(nsp)}, args).ToString()
	if err != nil {
		return "", redisErr("append", err)
	}
	return id, nil
}

// jsonString is v in JSON; v is strings or byte slices, which always
// encode.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// trimLua trims the stream KEYS[1]: the entries before the id ARGV[1]
// (the window), then the oldest past ARGV[2] entries once they are 1%
// (at least one, at most 100) over it. Redis 7.0 does not move a stream's
// max-deleted-entry-id when it is trimmed, only on XDEL: the script sets
// it (XSETID) to the last entry it dropped, so that a read knows whether
// an entry it needs is gone. It returns the stream's last id and that
// mark, "0-0" for a stream that does not exist.
const trimLua = `
local key = KEYS[1]
local function info(k)
  local r, out = redis.call('XINFO', 'STREAM', k), {}
  for i = 1, #r, 2 do out[r[i]] = r[i + 1] end
  return out
end
local function trim(cutoff, maxlen)
  local dropped = nil
  -- Forward from the oldest (XREVRANGE from the cutoff costs the size of
  -- the stream): usually none or a few have aged out since the last call.
  local old = redis.call('XRANGE', key, '-', '(' .. cutoff, 'COUNT', 100)
  if #old == 100 then
    old = redis.call('XREVRANGE', key, '(' .. cutoff, '-', 'COUNT', 1)
  end
  if #old > 0 then
    dropped = old[#old][1]
    redis.call('XTRIM', key, 'MINID', cutoff)
  end
  local n = redis.call('XLEN', key)
  local slack = math.min(100, math.max(1, math.floor(maxlen / 100)))
  if n >= maxlen + slack then
    local k = n - maxlen
    local es = redis.call('XRANGE', key, '-', '+', 'COUNT', k + 1)
    dropped = es[k][1]
    if #es > k then
      redis.call('XTRIM', key, 'MINID', es[k + 1][1])
    else
      redis.call('XTRIM', key, 'MAXLEN', 0)
    end
  end
  if dropped then
    local last = info(key)['last-generated-id']
    redis.call('XSETID', key, last, 'MAXDELETEDID', dropped)
  end
end
`

// stateScript trims a stream (see trimLua) and returns its state.
var stateScript = rueidis.NewLuaScript(trimLua + `
if redis.call('EXISTS', key) == 0 then return {'0-0', '0-0'} end
trim(ARGV[1], tonumber(ARGV[2]))
local st = info(key)
return {st['last-generated-id'], st['max-deleted-entry-id']}
`)

// appendScript adds an entry (ARGV[3:], fields and values) to a stream,
// then trims it (see trimLua), and returns the entry's id.
var appendScript = rueidis.NewLuaScript(trimLua + `
local id = redis.call('XADD', key, '*', unpack(ARGV, 3))
trim(ARGV[1], tonumber(ARGV[2]))
return id
`)

// streamState is what a read needs of a stream: its last id and the
// highest id it dropped.
type streamState struct {
	last, dropped streamID
}

// state trims the stream, then reads its state.
func (l *StreamLog) state(ctx context.Context, key string) (streamState, error) {
	res, err := stateScript.Exec(ctx, l.client, []string{key}, []string{l.cutoff().String(), strconv.Itoa(l.opts.MaxEntries)}).AsStrSlice()
	if err != nil {
		return streamState{}, redisErr("trim", err)
	}
	var st streamState
	var ok1, ok2 bool
	if len(res) == 2 {
		st.last, ok1 = parseID(res[0])
		st.dropped, ok2 = parseID(res[1])
	}
	if !ok1 || !ok2 {
		return streamState{}, corrupt("trim", "stream %q: state %q (Redis 7.0 or later is needed)", key, res)
	}
	return st, nil
}

// Head returns the id of the namespace's last entry, "0-0" if it never had
// one. It is the stream's last id even when that entry was trimmed, so
// offsets only grow.
func (l *StreamLog) Head(ctx context.Context, nsp string) (string, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	st, err := l.state(ctx, l.streamKey(nsp))
	if err != nil {
		return "", err
	}
	return st.last.String(), nil
}

// pageSize is how many entries one XRANGE reads.
const pageSize = 256

// scan calls f with each entry of key in (after, until] in order, a page
// at a time, until f returns false or an error.
func (l *StreamLog) scan(ctx context.Context, key string, after, until streamID, f func(streamID, socketio.LogEntry) (bool, error)) error {
	start := "(" + after.String()
	for {
		page, err := l.client.Do(ctx, l.client.B().Xrange().Key(key).Start(start).End(until.String()).Count(pageSize).Build()).AsXRange()
		if err != nil {
			return redisErr("xrange", err)
		}
		for _, x := range page {
			id, ok := parseID(x.ID)
			if !ok {
				return corrupt("xrange", "stream %q: entry id %q", key, x.ID)
			}
			e, err := decodeEntry(x)
			if err != nil {
				return corrupt("xrange", "stream %q: entry %s: %v", key, x.ID, err)
			}
			if more, err := f(id, e); !more || err != nil {
				return err
			}
			start = "(" + x.ID
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

func decodeEntry(x rueidis.XRangeEntry) (socketio.LogEntry, error) {
	e := socketio.LogEntry{Offset: x.ID}
	d, ok := x.FieldValues["d"]
	if !ok {
		return e, errors.New("no data")
	}
	e.Data = []byte(d)
	for _, f := range []struct {
		name string
		v    any
	}{{"r", &e.Rooms}, {"x", &e.Except}, {"a", &e.Attachments}} {
		if s, ok := x.FieldValues[f.name]; ok {
			if err := json.Unmarshal([]byte(s), f.v); err != nil {
				return e, fmt.Errorf("field %s: %w", f.name, err)
			}
		}
	}
	return e, nil
}

// Range returns the entries of nsp in (after, until) that reach id in
// rooms, or socketio.RecoveryExpired if one after after was dropped.
func (l *StreamLog) Range(ctx context.Context, nsp, after, until, id string, rooms []string) ([]socketio.LogEntry, error) {
	a, ok := parseID(after)
	if !ok {
		return nil, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
	}
	var u streamID
	hasUntil := until != ""
	if hasUntil {
		if u, ok = parseID(until); !ok {
			return nil, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
		}
	}
	ctx, cancel := l.bound(ctx)
	defer cancel()
	key := l.streamKey(nsp)
	st, err := l.state(ctx, key)
	if err != nil {
		return nil, err
	}
	if a.less(st.dropped) {
		return nil, &socketio.RecoveryError{Reason: socketio.RecoveryExpired}
	}
	end := st.last
	if hasUntil && !st.last.less(u) {
		end = u // until is exclusive: skipped below
	}
	var out []socketio.LogEntry
	err = l.scan(ctx, key, a, end, func(x streamID, e socketio.LogEntry) (bool, error) {
		if hasUntil && !x.less(u) {
			return false, nil
		}
		if e.Reaches(id, rooms) {
			out = append(out, e)
		}
		return true, nil
	})
	return out, err
}

// storedSocket is a saved socket as stored.
type storedSocket struct {
	Namespace string          `json:"n"`
	ID        string          `json:"i"`
	Key       string          `json:"k"`
	Rooms     []string        `json:"r,omitempty"`
	State     json.RawMessage `json:"s,omitempty"`
	LastSent  string          `json:"l"`
	Head      string          `json:"h"`
	Expires   int64           `json:"e"` // Unix ms
}

// Save stores s until s.Expires (at most the window) or its restore. A
// socket larger than MaxSocketBytes stored is not saved.
func (l *StreamLog) Save(ctx context.Context, s socketio.SavedSocket) error {
	now := l.opts.Now()
	if limit := now.Add(l.opts.Window); s.Expires.IsZero() || s.Expires.After(limit) {
		s.Expires = limit
	}
	ttl := s.Expires.Sub(now)
	if ttl < time.Millisecond {
		return nil
	}
	b, err := json.Marshal(storedSocket{s.Namespace, s.ID, s.Key, s.Rooms, s.State, s.LastSent, s.Head, s.Expires.UnixMilli()})
	if err != nil {
		return corrupt("save", "state: %v", err) // State is not JSON
	}
	if len(b) > l.opts.MaxSocketBytes {
		return nil
	}
	ctx, cancel := l.bound(ctx)
	defer cancel()
	if err := l.client.Do(ctx, l.client.B().Set().Key(l.sessionKey(s.PID)).Value(string(b)).Px(ttl).Build()).Error(); err != nil {
		return redisErr("set", err)
	}
	return nil
}

// getSocket reads the saved socket of a GET or GETDEL reply; nil if none.
func (l *StreamLog) getSocket(r rueidis.RedisResult, op string) (*storedSocket, error) {
	s, err := r.ToString()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, redisErr(op, err)
	}
	if len(s) > l.opts.MaxSocketBytes {
		return nil, corrupt(op, "saved socket of %d bytes", len(s))
	}
	var sv storedSocket
	if err := json.Unmarshal([]byte(s), &sv); err != nil {
		return nil, corrupt(op, "saved socket: %v", err)
	}
	return &sv, nil
}

// Restore takes the saved socket r names (GETDEL: once, whichever node
// asks) with what it missed. A request with another Key leaves it saved;
// should the socket be saved again by another Key between the check and
// the GETDEL, that one is taken and refused.
func (l *StreamLog) Restore(ctx context.Context, r socketio.RestoreRequest) (socketio.RestoreResult, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	key := l.sessionKey(r.PID)
	sv, err := l.getSocket(l.client.Do(ctx, l.client.B().Get().Key(key).Build()), "get")
	if err != nil {
		return socketio.RestoreResult{}, err
	}
	if sv == nil || sv.Namespace != r.Namespace {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryUnknown}
	}
	if sv.Key != r.Key {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryKey}
	}
	// The client is done with this pid, whatever follows.
	sv, err = l.getSocket(l.client.Do(ctx, l.client.B().Getdel().Key(key).Build()), "getdel")
	if err != nil {
		return socketio.RestoreResult{}, err
	}
	if sv == nil || sv.Namespace != r.Namespace {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryUnknown}
	}
	if sv.Key != r.Key {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryKey}
	}
	if l.opts.Now().UnixMilli() > sv.Expires {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryExpired}
	}
	x, ok := parseID(r.Offset)
	last, ok1 := parseID(sv.LastSent)
	head, ok2 := parseID(sv.Head)
	if !ok1 || !ok2 {
		return socketio.RestoreResult{}, corrupt("restore", "saved socket offsets %q, %q", sv.LastSent, sv.Head)
	}
	if !ok || last.less(x) {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
	}
	// It missed what reached it after x up to LastSent (lost in flight),
	// and what was sent after Head; nothing in (LastSent, Head] reached
	// it. With nothing in flight, only what came after Head is needed.
	floor := x
	if x == last && x.less(head) {
		floor = head
	}
	skey := l.streamKey(r.Namespace)
	st, err := l.state(ctx, skey)
	if err != nil {
		return socketio.RestoreResult{}, err
	}
	if floor.less(st.dropped) {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryExpired}
	}
	var missed []socketio.LogEntry
	var bytes int64
	err = l.scan(ctx, skey, floor, st.last, func(id streamID, e socketio.LogEntry) (bool, error) {
		if last.less(id) && !head.less(id) {
			return true, nil // in (LastSent, Head]: did not reach it
		}
		if !e.Reaches(sv.ID, sv.Rooms) {
			return true, nil
		}
		bytes += e.Size()
		if len(missed) >= r.MaxMessages || bytes > r.MaxBytes {
			return false, &socketio.RecoveryError{Reason: socketio.RecoveryOverflow}
		}
		missed = append(missed, e)
		return true, nil
	})
	if err != nil {
		return socketio.RestoreResult{}, err
	}
	return socketio.RestoreResult{
		Socket: socketio.SavedSocket{
			Namespace: sv.Namespace, PID: r.PID, ID: sv.ID, Key: sv.Key, Rooms: sv.Rooms, State: sv.State,
			LastSent: sv.LastSent, Head: sv.Head, Expires: time.UnixMilli(sv.Expires),
		},
		Missed: missed,
		Head:   st.last.String(),
	}, nil
}

var _ socketio.RecoveryLog = (*StreamLog)(nil)
