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

// StreamLog is a socketio.SharedLog in a Redis stream, in the format of
// @socket.io/redis-streams-adapter 0.3.1, so that sessiongate nodes (and
// Node servers with that adapter) share the broadcasts of every namespace
// in one order, and a socket that dropped on one node is recovered on
// another:
//   - every namespace's broadcasts go to one stream, StreamName
//     ("socket.io", Node's streamName), as the adapter's entries: fields
//     uid (this StreamLog's, 6 random base62 characters), nsp, type "3"
//     and data, the JSON {"packet":{"type":2,"data":[event, ...args],
//     "nsp":nsp},"opts":{"rooms":[...],"except":[...],"flags":{}}} (flags
//     {"volatile":true} for a volatile one), or, when it has attachments,
//     base64 of the msgpack of the same with each attachment as a bin in
//     place of its placeholder. An event's offset is its stream id
//     "<ms>-<seq>", parsed strictly from clients;
//   - Read follows the stream (XREAD BLOCK, 5 s at a time) and returns the
//     namespace's broadcasts, volatile ones flagged. Entries that are not
//     a broadcast without ack are skipped: another type (Node's 4, 5 and
//     6, socketsJoin, socketsLeave and disconnectSockets, are not
//     applied), a packet with an ack id or a requestId, a packet type
//     other than EVENT and BINARY_EVENT; so are entries whose data does
//     not decode or exceeds MaxEntryBytes (logged). Unlike Node's, our own
//     entries are read back too: that is how they are delivered;
//   - entries older than the window (by the id's time against this node's
//     clock) or past MaxEntries are dropped by a Lua script run with each
//     append and before each Range or Restore, which records the last id
//     it dropped as the stream's max-deleted-entry-id (XSETID, Redis 7.0),
//     so that a read that would need a dropped entry fails with
//     socketio.RecoveryExpired. Node's XADD MAXLEN ~ does not record its
//     drops: an offset that is no longer in the stream, before its first
//     entry, is taken as expired too (a reader more than Node's maxLen
//     behind may then be told it missed entries it did not);
//   - Range and Restore never replay a volatile entry (Node's restore
//     does, and replays acked emits too);
//   - a saved socket is "<key>:recovery:session:<pid>", JSON, SET with PX
//     the time it has left (at most the window), and taken by GETDEL, so
//     it is restored once whichever node asks. It is bound to its session
//     (RecoveryOptions.Key); Node's sessions ("sio:session:<pid>", which
//     it restores with no such check) are neither read nor written: a
//     socket saved by a Node peer connects fresh here, told it may have
//     missed events, and one saved here connects fresh there.
//
// So broadcasts go both ways between sessiongate and Node nodes on the
// same stream, with the same offsets. Node's streamCount > 1 (namespaces
// hashed over several streams) is not supported: StreamLog reads and
// writes one stream.
//
// Every call to Redis is bounded by its ctx and by Options.RequestTimeout;
// a failure of Redis or of what it stores is a *StreamLogError.
type StreamLog struct {
	opts   StreamLogOptions
	client rueidis.Client
	uid    string
	cache  readCache // what Read returned, for Range and Restore
}

// StreamLogOptions configure a StreamLog.
type StreamLogOptions struct {
	// Options are the connection (URL, TLSConfig, ClientName), the Key
	// prefixing the saved sockets' keys ("socket.io"), RequestTimeout,
	// which bounds each call to Redis (5 s), and the Logger of skipped
	// entries. Its other fields are unused.
	Options
	// StreamName is the stream: "socket.io", as the streams adapter's
	// streamName.
	StreamName string
	// Window is how long events and saved sockets are kept: 2 minutes,
	// as socketio.RecoveryOptions.Window.
	Window time.Duration
	// MaxEntries bounds the stream: 10,000, as the streams adapter's
	// maxLen (held within 1% over it by trimLua rather than XADD MAXLEN
	// ~, whose drops Redis does not record). Past it the oldest go first,
	// and a recovery that needs one fails as expired.
	MaxEntries int
	// MaxEntryBytes bounds the data of one entry: 1 MiB. A larger event
	// is not appended (CodeBadEntry); a larger entry written by another
	// is skipped as corrupt.
	MaxEntryBytes int
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
	// CodeBadEntry: an event to append cannot be stored: its data
	// exceeds MaxEntryBytes, or is not a JSON array (whose placeholders
	// match its attachments).
	CodeBadEntry = "recovery_bad_entry"
)

// StreamLogError is a failure of a StreamLog, with its machine code
// (CodeRedis, CodeCorrupt, CodeBadEntry). socketio counts it as
// RecoveryLogError.
type StreamLogError struct {
	Code string
	Op   string // what it was doing: "append", "restore", ...
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
	if opts.StreamName == "" {
		opts.StreamName = "socket.io"
	}
	if opts.Window <= 0 {
		opts.Window = 2 * time.Minute
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	if opts.MaxEntryBytes <= 0 {
		opts.MaxEntryBytes = 1 << 20
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
	return &StreamLog{opts: opts, client: client, uid: uid(6)}, nil
}

// Close closes the connection to Redis; a Read in progress returns.
func (l *StreamLog) Close() error {
	l.client.Close()
	return nil
}

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

func (l *StreamLog) trimArgs() []string {
	return []string{l.cutoff().String(), strconv.Itoa(l.opts.MaxEntries)}
}

// Append adds e to the stream as a broadcast of nsp and returns its id. It
// trims what is past MaxEntries or the window (approximately: whole nodes
// of the stream) in the same round trip.
func (l *StreamLog) Append(ctx context.Context, nsp string, e socketio.LogEntry) (string, error) {
	data, err := encodeStreamData(nsp, e)
	if err != nil {
		return "", &StreamLogError{Code: CodeBadEntry, Op: "append", Err: err}
	}
	if len(data) > l.opts.MaxEntryBytes {
		return "", &StreamLogError{Code: CodeBadEntry, Op: "append", Err: fmt.Errorf("data of %d bytes, over MaxEntryBytes", len(data))}
	}
	ctx, cancel := l.bound(ctx)
	defer cancel()
	args := append(l.trimArgs(), "uid", l.uid, "nsp", nsp, "type", typeBroadcast, "data", data)
	id, err := appendScript.Exec(ctx, l.client, []string{l.opts.StreamName}, args).ToString()
	if err != nil {
		return "", redisErr("append", err)
	}
	return id, nil
}

// trimLua trims the stream KEYS[1]: the entries before the id ARGV[1]
// (the window), then the oldest past ARGV[2] entries once they are 1%
// (at least one, at most 100) over it. Redis 7.0 does not move a stream's
// max-deleted-entry-id when it is trimmed, only on XDEL: the script sets
// it (XSETID) to the last entry it dropped, so that a read knows whether
// an entry it needs is gone.
//
// state(floor) is what a read from the id floor needs to know: the
// stream's last id, its max-deleted-entry-id, its first entry's id ("" if
// none), whether floor is an entry ("1"), and whether an entry was ever
// removed ("1").
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
local function state(floor)
  if redis.call('EXISTS', key) == 0 then return {'0-0', '0-0', '', '0', '0'} end
  local st = info(key)
  local first = ''
  if st['first-entry'] then first = st['first-entry'][1] end
  local present = '0'
  if #redis.call('XRANGE', key, floor, floor) > 0 then present = '1' end
  local removed = '0'
  if st['entries-added'] > st['length'] then removed = '1' end
  return {st['last-generated-id'], st['max-deleted-entry-id'], first, present, removed}
end
`

// stateScript trims the stream (see trimLua) and returns its state(ARGV[3]).
var stateScript = rueidis.NewLuaScript(trimLua + `
if redis.call('EXISTS', key) == 1 then trim(ARGV[1], tonumber(ARGV[2])) end
return state(ARGV[3])
`)

// appendScript adds an entry (ARGV[3:], fields and values) to the stream,
// then trims it (see trimLua), and returns the entry's id.
var appendScript = rueidis.NewLuaScript(trimLua + `
local id = redis.call('XADD', key, '*', unpack(ARGV, 3))
trim(ARGV[1], tonumber(ARGV[2]))
return id
`)

// readScript returns state(ARGV[1]) and the first ARGV[2] entries after
// ARGV[1], read at the same instant. It does not trim: a reader only
// follows.
var readScript = rueidis.NewLuaScript(trimLua + `
return {state(ARGV[1]), redis.call('XRANGE', key, '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))}
`)

// headScan is how many of the stream's last entries Head looks through
// for the namespace's last one.
const headScan = 1000

// headScript trims the stream (see trimLua) and returns the id of the last
// entry of namespace ARGV[3] among the last ARGV[4] entries. When there is
// none there, it returns "0-0" if it looked through the whole stream and
// nothing was ever removed from it, else the stream's last id: either
// way, the namespace has no entry after the id returned.
var headScript = rueidis.NewLuaScript(trimLua + `
if redis.call('EXISTS', key) == 0 then return '0-0' end
trim(ARGV[1], tonumber(ARGV[2]))
local nsp, limit = ARGV[3], tonumber(ARGV[4])
local start, seen = '+', 0
while seen < limit do
  local page = redis.call('XREVRANGE', key, start, '-', 'COUNT', 100)
  for _, e in ipairs(page) do
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'nsp' then
        if f[i + 1] == nsp then return e[1] end
        break
      end
    end
  end
  seen = seen + #page
  if #page < 100 then
    local st = info(key)
    if st['entries-added'] == st['length'] then return '0-0' end
    return st['last-generated-id']
  end
  start = '(' .. page[#page][1]
end
return info(key)['last-generated-id']
`)

// streamState is what a read from an id needs of the stream (state in
// trimLua).
type streamState struct {
	last, dropped streamID
	first         streamID
	hasFirst      bool
	present       bool // the id read from is an entry of the stream
	removed       bool // entries were removed from the stream, ever
}

func parseState(res []string) (streamState, bool) {
	var st streamState
	if len(res) != 5 {
		return st, false
	}
	var ok1, ok2, ok3 bool
	st.last, ok1 = parseID(res[0])
	st.dropped, ok2 = parseID(res[1])
	ok3 = res[2] == ""
	if !ok3 {
		st.first, ok3 = parseID(res[2])
		st.hasFirst = true
	}
	st.present, st.removed = res[3] == "1", res[4] == "1"
	return st, ok1 && ok2 && ok3
}

// lost reports whether entries after the id after were removed from the
// stream: our trims record the last one they drop (max-deleted-entry-id);
// Node's MAXLEN ~ does not, so an id that is no longer in the stream,
// before its first entry, counts as lost too, unless it is the last one
// our trim dropped ("0-0": unless nothing was ever removed).
func (st streamState) lost(after streamID) bool {
	switch {
	case after.less(st.dropped):
		return true
	case st.present:
		return false
	case after == streamID{}:
		return st.removed
	case st.hasFirst:
		return after.less(st.first) && after != st.dropped
	}
	return after.less(st.last) // all gone
}

// state trims the stream, then reads its state for a read from floor.
func (l *StreamLog) state(ctx context.Context, floor streamID) (streamState, error) {
	res, err := stateScript.Exec(ctx, l.client, []string{l.opts.StreamName}, append(l.trimArgs(), floor.String())).AsStrSlice()
	if err != nil {
		return streamState{}, redisErr("trim", err)
	}
	st, ok := parseState(res)
	if !ok {
		return streamState{}, corrupt("trim", "stream %q: state %q (Redis 7.0 or later is needed)", l.opts.StreamName, res)
	}
	return st, nil
}

// Head returns the id of the namespace's last entry, found among the
// stream's last 1,000; when it has none there, the stream's last id (even
// when that entry was trimmed, so offsets only grow), or "0-0" for a
// stream that never lost an entry: either way no entry of the namespace
// comes after it, which is all an offset says. It costs a Lua script that
// may look through those 1,000 entries: a SharedLog's follower calls it
// once, at its start.
func (l *StreamLog) Head(ctx context.Context, nsp string) (string, error) {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	h, err := headScript.Exec(ctx, l.client, []string{l.opts.StreamName}, append(l.trimArgs(), nsp, strconv.Itoa(headScan))).ToString()
	if err != nil {
		return "", redisErr("head", err)
	}
	if _, ok := parseID(h); !ok {
		return "", corrupt("head", "stream %q: id %q", l.opts.StreamName, h)
	}
	return h, nil
}

// readCount is how many entries one Read takes at most, as the streams
// adapter's readCount; readBlock how long one XREAD waits for more.
const (
	readCount = 100
	readBlock = 5 * time.Second
)

// Read waits until the stream holds entries after the id after, or ctx
// ends, and returns the broadcasts of nsp among them (volatile ones
// included), in order, with the id of the last entry read (of any
// namespace). If entries after after were dropped before being read, it
// returns the entries that follow them with a *socketio.RecoveryError
// (RecoveryExpired), and upTo where reading goes on. after must be an
// offset of the stream ("0-0" included), as Head returns.
func (l *StreamLog) Read(ctx context.Context, nsp, after string) ([]socketio.LogEntry, string, error) {
	a, ok := parseID(after)
	if !ok {
		return nil, "", &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
	}
	key := l.opts.StreamName
	for {
		rctx, cancel := l.bound(ctx)
		res, err := readScript.Exec(rctx, l.client, []string{key}, []string{a.String(), strconv.Itoa(readCount)}).ToArray()
		cancel()
		if err != nil {
			return nil, "", redisErr("read", err)
		}
		if len(res) != 2 {
			return nil, "", corrupt("read", "stream %q: %d elements", key, len(res))
		}
		sres, err1 := res[0].AsStrSlice()
		page, err2 := res[1].AsXRange()
		st, ok := parseState(sres)
		if err1 != nil || err2 != nil || !ok {
			return nil, "", corrupt("read", "stream %q: reply %v, %v, %q", key, err1, err2, sres)
		}
		var out []socketio.LogEntry
		upTo := a
		for _, x := range page {
			id, ok := parseID(x.ID)
			if !ok {
				return nil, "", corrupt("read", "stream %q: entry id %q", key, x.ID)
			}
			upTo = id
			if e, ok := l.entry(x, nsp); ok {
				out = append(out, e)
			}
		}
		if st.lost(a) {
			if upTo.less(st.last) && len(page) == 0 {
				upTo = st.last
			}
			l.cache.reset(nsp)
			return out, upTo.String(), &socketio.RecoveryError{Reason: socketio.RecoveryExpired}
		}
		if len(page) > 0 {
			l.cache.add(nsp, a, upTo, out, l.opts.MaxEntries, l.cutoff())
			return out, upTo.String(), nil
		}
		// Nothing yet: wait for an entry (on a connection of its own,
		// given back by CLIENT UNBLOCK when ctx ends), then read again
		// with the state.
		bctx, cancel := context.WithTimeout(ctx, readBlock+l.opts.RequestTimeout)
		cmd := l.client.B().Xread().Count(1).Block(readBlock.Milliseconds()).Streams().Key(key).Id(a.String()).Build().UnblockOnCancel()
		err = l.client.Do(bctx, cmd).Error()
		cancel()
		if ctx.Err() != nil {
			return nil, "", redisErr("xread", ctx.Err())
		}
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, "", redisErr("xread", err)
		}
	}
}

// entry returns the broadcast of nsp that x is, if it is one. An entry of
// nsp that does not decode is logged and skipped: every node skips it
// alike, as Node's do.
func (l *StreamLog) entry(x rueidis.XRangeEntry, nsp string) (socketio.LogEntry, bool) {
	if x.FieldValues["nsp"] != nsp || x.FieldValues["type"] != typeBroadcast {
		return socketio.LogEntry{}, false
	}
	e, err := decodeStreamData(x.FieldValues["data"], l.opts.MaxEntryBytes)
	if err != nil {
		if !errors.Is(err, errNotOurs) {
			l.opts.Logger.Warn("redis: recovery log: entry skipped", "code", CodeCorrupt, "stream", l.opts.StreamName, "id", x.ID, "err", err)
		}
		return socketio.LogEntry{}, false
	}
	e.Offset = x.ID
	return e, true
}

// pageSize is how many entries one XRANGE reads.
const pageSize = 256

// scan calls f with each broadcast of nsp in (after, until] in order,
// volatile ones excepted, until f returns false or an error: from what
// this node's Reads returned when they cover the span (readCache), else
// from the stream, a page at a time.
func (l *StreamLog) scan(ctx context.Context, nsp string, after, until streamID, f func(streamID, socketio.LogEntry) (bool, error)) error {
	if es, ok := l.cache.span(nsp, after, until); ok {
		for _, x := range es {
			if more, err := f(x.id, x.e); !more || err != nil {
				return err
			}
		}
		return nil
	}
	key := l.opts.StreamName
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
			e, ok := l.entry(x, nsp)
			if !ok || e.Volatile {
				continue
			}
			if more, err := f(id, e); !more || err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		start = "(" + page[len(page)-1].ID
	}
}

// Range returns the entries of nsp in (after, until] that reach id in
// rooms, volatile ones excepted, or socketio.RecoveryExpired if one after
// after was dropped.
func (l *StreamLog) Range(ctx context.Context, nsp, after, until, id string, rooms []string) ([]socketio.LogEntry, error) {
	a, ok := parseID(after)
	if !ok {
		return nil, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
	}
	var u streamID
	if until != "" {
		if u, ok = parseID(until); !ok {
			return nil, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
		}
	}
	ctx, cancel := l.bound(ctx)
	defer cancel()
	st, err := l.state(ctx, a)
	if err != nil {
		return nil, err
	}
	if st.lost(a) {
		return nil, &socketio.RecoveryError{Reason: socketio.RecoveryExpired}
	}
	end := st.last
	if until != "" && u.less(end) {
		end = u
	}
	var out []socketio.LogEntry
	if !a.less(end) {
		return out, nil
	}
	err = l.scan(ctx, nsp, a, end, func(_ streamID, e socketio.LogEntry) (bool, error) {
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
	// A live record (no LastSent: its node died with it connected) gives
	// everything after x, from its CONNECT's offset (Head) on.
	live := sv.LastSent == ""
	last, ok1 := parseID(sv.LastSent)
	head, ok2 := parseID(sv.Head)
	if (!live && !ok1) || !ok2 {
		return socketio.RestoreResult{}, corrupt("restore", "saved socket offsets %q, %q", sv.LastSent, sv.Head)
	}
	if !ok || (!live && last.less(x)) || (live && x.less(head)) {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
	}
	// It missed what reached it after x up to LastSent (lost in flight),
	// and what was sent after Head; nothing in (LastSent, Head] reached
	// it. With nothing in flight, only what came after Head is needed.
	floor := x
	if !live && x == last && x.less(head) {
		floor = head
	}
	st, err := l.state(ctx, floor)
	if err != nil {
		return socketio.RestoreResult{}, err
	}
	if st.lost(floor) {
		return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryExpired}
	}
	end := st.last
	if r.Until != "" {
		u, ok := parseID(r.Until)
		if !ok {
			return socketio.RestoreResult{}, &socketio.RecoveryError{Reason: socketio.RecoveryOffset}
		}
		if u.less(end) {
			end = u
		}
	}
	var missed []socketio.LogEntry
	var bytes int64
	if floor.less(end) {
		err = l.scan(ctx, r.Namespace, floor, end, func(id streamID, e socketio.LogEntry) (bool, error) {
			if !live && last.less(id) && !head.less(id) {
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
	}
	return socketio.RestoreResult{
		Socket: socketio.SavedSocket{
			Namespace: sv.Namespace, PID: r.PID, ID: sv.ID, Key: sv.Key, Rooms: sv.Rooms, State: sv.State,
			LastSent: sv.LastSent, Head: sv.Head, Expires: time.UnixMilli(sv.Expires),
		},
		Missed: missed,
		Head:   end.String(),
	}, nil
}

// Forget deletes the saved socket pid (a live record of a socket that
// left). Pids are unique across namespaces: nsp is not checked.
func (l *StreamLog) Forget(ctx context.Context, nsp, pid string) error {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	if err := l.client.Do(ctx, l.client.B().Del().Key(l.sessionKey(pid)).Build()).Error(); err != nil {
		return redisErr("del", err)
	}
	return nil
}

var _ socketio.SharedLog = (*StreamLog)(nil)
