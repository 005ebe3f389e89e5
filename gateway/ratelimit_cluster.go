package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
)

// Per-user limits across a cluster (contract: Per-user rate limits,
// Cluster; Connections per user). With Config.ClusterLimits the nodes tell
// each other what the limits need, over the attached namespace's
// ServerSideEmit (so over any bus: redis, postgres), in one event,
// EventClusterLimits, whose one argument is a limitsMessage.
//
// Event budget. Every limitsFlushInterval, when anything was spent, a node
// sends the tokens each user spent on it since its last message. A
// receiver debits that user's bucket (ratelimit.Limiter.Debit), creating it
// (full) first only when the user has a socket on the receiver: a user with
// none there costs it nothing. The debt allowed is one burst per other node
// heard from within limitsPeerWindow: when every node spends its full
// bucket at once (the user was idle), each owes what the others spent and
// nothing is forgiven. So every node charges its bucket of a user with
// what every node spent, one interval and a bus delivery late, and the
// user's rate over the cluster is EventRate plus what the other nodes spent
// before their report came in (at most a burst each, paid back by the
// debt).
//
// Connections. A node announces a user's socket count on it once it
// reaches connThreshold (half the cap, rounded up), again at each change,
// with 0 when it falls below, and every limitsHeartbeat for all it
// announces; a receiver counts an announcement for limitsTTL after it
// came. The handshake refuses when the user's sockets here plus the live
// announcements of the other nodes reach the cap. A user under the
// threshold on every node adds nothing to the bus; one over it may hold up
// to cap + (nodes−1) × (threshold−1) sockets in all, and exactly the cap
// on one node.
//
// Users are named on the bus by userKey, a hash of fixed size of the user
// id: messages have a bounded size whatever the ids are.

// EventClusterLimits is the server-side event (ServerSideEmit) that carries
// the per-user limits between the nodes of a cluster.
const EventClusterLimits = "sessiongate:ratelimit"

// Cadence and bounds of the limits' messages.
const (
	// limitsFlushInterval is how often a node reports what was spent (and
	// connection counts that changed): the window of the cluster's slack.
	limitsFlushInterval = 200 * time.Millisecond
	// limitsHeartbeat is how often a node repeats the connection counts it
	// announces; limitsTTL is how long a receiver counts one: a node that
	// died stops counting within it.
	limitsHeartbeat = time.Second
	limitsTTL       = 3 * time.Second
	// limitsMaxEntries bounds the users of one message (spent and conns
	// together): about 4 KB of JSON, under PostgreSQL's NOTIFY limit.
	limitsMaxEntries = 128
	// limitsMaxPending bounds the users whose spending waits for the next
	// report; past it, a user new to the window is not reported (counted
	// in Stats.ClusterLimitTokens[LimitUnshared]).
	limitsMaxPending = 16384
	// limitsMaxRemote bounds the other nodes' connection counts held.
	limitsMaxRemote = 100_000
	// limitsMaxCount bounds one entry's number (tokens or sockets).
	limitsMaxCount = 1 << 20
	// limitsMaxNode bounds a node id's length.
	limitsMaxNode = 64
	// limitsMaxPeers bounds the other nodes remembered; limitsPeerWindow
	// is how long a node counts in the debt allowed after its last message.
	limitsMaxPeers   = 1024
	limitsPeerWindow = 10 * time.Second
	// limitsVersion is the version of limitsMessage.
	limitsVersion = 1
	// userKeyLen is the length of a userKey.
	userKeyLen = 16
)

// Keys of Stats.ClusterLimitMessages (messages) and Stats.ClusterLimitTokens
// (tokens reported spent).
const (
	LimitIn        = "in"        // received and applied (tokens: reported by other nodes)
	LimitOut       = "out"       // sent (tokens: reported to the other nodes)
	LimitMalformed = "malformed" // messages received and dropped: not a limitsMessage
	LimitFailed    = "failed"    // messages (tokens) that could not be sent: the bus down
	LimitUnshared  = "unshared"  // tokens never reported: limitsMaxPending users already waited
)

var (
	limitMessageKeys = []string{LimitIn, LimitOut, LimitMalformed, LimitFailed}
	limitTokenKeys   = []string{LimitIn, LimitOut, LimitFailed, LimitUnshared}
)

// limitsMessage is the argument of EventClusterLimits. Keys are userKeys.
type limitsMessage struct {
	V    int    `json:"v"`
	Node string `json:"node"`
	// Spent are the tokens each user spent on Node since its last message.
	Spent map[string]int `json:"spent,omitempty"`
	// Conns are Node's socket counts of the users it announces; 0: no
	// longer announced.
	Conns map[string]int `json:"conns,omitempty"`
}

// userKey names a user's bucket and connection count, here and on the bus:
// 96 bits of the SHA-256 of the user id, base64url (userKeyLen bytes).
func userKey(uid string) string {
	h := sha256.Sum256([]byte(uid))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// connThreshold is the socket count at which a user's count on a node is
// announced, for a cap of max.
func connThreshold(max int) int { return (max + 1) / 2 }

// clusterLimits is what a node shares of its limits, and what it knows of
// the other nodes'.
type clusterLimits struct {
	node      string
	threshold int // 0: connection counts are not shared (no cap)
	ns        atomic.Pointer[socketio.Namespace]

	mu        sync.Mutex
	spent     map[string]int              // by user key, since the last report
	dirty     map[string]struct{}         // users whose count may need announcing
	announced map[string]int              // the counts this node announces
	remote    map[string]map[string]count // the other nodes': by user key, then node
	remoteN   int                         // entries of remote
	peers     map[string]time.Time        // the other nodes heard from, when last
	beatAt    time.Time                   // the next heartbeat

	msgs   map[string]*atomic.Uint64 // messages, by limitMessageKeys
	tokens map[string]*atomic.Uint64 // tokens, by limitTokenKeys

	// afterApply, set by tests, runs after each received message is
	// applied.
	afterApply func()
}

// count is another node's announced socket count of a user.
type count struct {
	n     int
	until time.Time
}

func newClusterLimits(node string, maxPerUser int) *clusterLimits {
	cl := &clusterLimits{
		node:      node,
		spent:     make(map[string]int),
		dirty:     make(map[string]struct{}),
		announced: make(map[string]int),
		remote:    make(map[string]map[string]count),
		peers:     make(map[string]time.Time),
		msgs:      counterMap(limitMessageKeys),
		tokens:    counterMap(limitTokenKeys),
	}
	if maxPerUser > 0 {
		cl.threshold = connThreshold(maxPerUser)
	}
	return cl
}

func counterMap(keys []string) map[string]*atomic.Uint64 {
	m := make(map[string]*atomic.Uint64, len(keys))
	for _, k := range keys {
		m[k] = new(atomic.Uint64)
	}
	return m
}

// snapshot reads counters.
func snapshot(counters map[string]*atomic.Uint64) map[string]uint64 {
	m := make(map[string]uint64, len(counters))
	for k, n := range counters {
		m[k] = n.Load()
	}
	return m
}

// spend records a token of the user key spent on this node.
func (cl *clusterLimits) spend(key string) {
	if cl == nil {
		return
	}
	cl.mu.Lock()
	if n, ok := cl.spent[key]; ok || len(cl.spent) < limitsMaxPending {
		cl.spent[key] = n + 1
	} else {
		cl.tokens[LimitUnshared].Add(1)
	}
	cl.mu.Unlock()
}

// connsChanged notes that the user key has n sockets here, after old; the
// caller holds Gateway.mu.
func (cl *clusterLimits) connsChanged(key string, old, n int) {
	if cl == nil || cl.threshold == 0 || (old < cl.threshold && n < cl.threshold) {
		return
	}
	cl.mu.Lock()
	cl.dirty[key] = struct{}{}
	cl.mu.Unlock()
}

// remoteConns returns the sockets the other nodes announce for the user
// key at now.
func (cl *clusterLimits) remoteConns(key string, now time.Time) int {
	if cl == nil || cl.threshold == 0 {
		return 0
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	total := 0
	for _, c := range cl.remote[key] {
		if now.Before(c.until) {
			total += c.n
		}
	}
	return total
}

// setRemoteLocked records node's announcement of n sockets of key.
func (cl *clusterLimits) setRemoteLocked(key, node string, n int, now time.Time) {
	nodes := cl.remote[key]
	_, had := nodes[node]
	switch {
	case n == 0 && had:
		delete(nodes, node)
		cl.remoteN--
		if len(nodes) == 0 {
			delete(cl.remote, key)
		}
	case n == 0:
	case had || cl.remoteN < limitsMaxRemote:
		if nodes == nil {
			nodes = make(map[string]count)
			cl.remote[key] = nodes
		}
		if !had {
			cl.remoteN++
		}
		nodes[node] = count{n: n, until: now.Add(limitsTTL)}
	}
}

// sweepLocked forgets the announcements that expired at now, and the nodes
// not heard from within limitsPeerWindow.
func (cl *clusterLimits) sweepLocked(now time.Time) {
	for node, at := range cl.peers {
		if now.Sub(at) >= limitsPeerWindow {
			delete(cl.peers, node)
		}
	}
	for key, nodes := range cl.remote {
		for node, c := range nodes {
			if !now.Before(c.until) {
				delete(nodes, node)
				cl.remoteN--
			}
		}
		if len(nodes) == 0 {
			delete(cl.remote, key)
		}
	}
}

// shareLimits reports this node's share every limitsFlushInterval until
// ctx ends.
func (g *Gateway) shareLimits(ctx context.Context) {
	t := time.NewTicker(limitsFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.flushLimits(ctx)
		}
	}
}

// flushLimits sends what was spent since the last report and the
// connection counts to announce (all of them at a heartbeat), in messages
// of at most limitsMaxEntries users. Nothing is sent when there is
// nothing to say.
func (g *Gateway) flushLimits(ctx context.Context) {
	cl := g.cluster
	ns := cl.ns.Load()
	if ns == nil {
		return
	}
	now := g.now()
	cl.mu.Lock()
	// The maps are handed over only when they hold something: spend and
	// connsChanged keep writing to the ones left.
	var spent map[string]int
	var dirty map[string]struct{}
	if len(cl.spent) > 0 {
		spent, cl.spent = cl.spent, make(map[string]int)
	}
	if len(cl.dirty) > 0 {
		dirty, cl.dirty = cl.dirty, make(map[string]struct{})
	}
	beat := !now.Before(cl.beatAt)
	if beat {
		cl.beatAt = now.Add(limitsHeartbeat)
		cl.sweepLocked(now)
	}
	cl.mu.Unlock()

	conns := make(map[string]int, len(dirty))
	if len(dirty) > 0 {
		g.mu.Lock()
		for key := range dirty {
			conns[key] = g.perUser[key]
		}
		g.mu.Unlock()
	}
	cl.mu.Lock()
	for key, n := range conns {
		_, was := cl.announced[key]
		switch {
		case n >= cl.threshold:
			cl.announced[key] = n
		case was:
			delete(cl.announced, key)
			conns[key] = 0
		default:
			delete(conns, key)
		}
	}
	if beat {
		for key, n := range cl.announced {
			conns[key] = n
		}
	}
	cl.mu.Unlock()

	for _, m := range splitLimits(cl.node, spent, conns) {
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		err := ns.ServerSideEmit(ectx, EventClusterLimits, m)
		cancel()
		tokens := 0
		for _, n := range m.Spent {
			tokens += n
		}
		if err != nil {
			cl.msgs[LimitFailed].Add(1)
			cl.tokens[LimitFailed].Add(uint64(tokens))
			g.log.Debug("cluster limits: send failed", "err", err)
			continue
		}
		cl.msgs[LimitOut].Add(1)
		cl.tokens[LimitOut].Add(uint64(tokens))
	}
}

// splitLimits cuts spent and conns into messages of at most
// limitsMaxEntries users.
func splitLimits(node string, spent, conns map[string]int) []limitsMessage {
	var out []limitsMessage
	var m *limitsMessage
	next := func() {
		if m == nil || len(m.Spent)+len(m.Conns) >= limitsMaxEntries {
			out = append(out, limitsMessage{V: limitsVersion, Node: node})
			m = &out[len(out)-1]
		}
	}
	for key, n := range spent {
		next()
		if m.Spent == nil {
			m.Spent = make(map[string]int)
		}
		m.Spent[key] = min(n, limitsMaxCount)
	}
	for key, n := range conns {
		next()
		if m.Conns == nil {
			m.Conns = make(map[string]int)
		}
		m.Conns[key] = min(n, limitsMaxCount)
	}
	return out
}

// limitsEvent is the namespace's OnServerEvent handler of
// EventClusterLimits; it leaves other events (and every ack) to the other
// handlers. It runs on the bus's receiving goroutine: it takes two short
// locks and never waits.
func (g *Gateway) limitsEvent(ev socketio.Event, _ func(any)) {
	if ev.Name != EventClusterLimits {
		return
	}
	cl := g.cluster
	m, err := decodeLimits(ev.Args)
	if err != nil {
		cl.msgs[LimitMalformed].Add(1)
		g.log.Debug("cluster limits: message dropped", "err", err)
		return
	}
	if m.Node == cl.node {
		return
	}
	cl.msgs[LimitIn].Add(1)
	tokens := 0
	for _, n := range m.Spent {
		tokens += n
	}
	cl.tokens[LimitIn].Add(uint64(tokens))
	now := g.now()
	cl.mu.Lock()
	if _, ok := cl.peers[m.Node]; ok || len(cl.peers) < limitsMaxPeers {
		cl.peers[m.Node] = now
	}
	debt := float64(max(1, len(cl.peers)) * g.limits.burst)
	cl.mu.Unlock()
	if len(m.Spent) > 0 && g.limits.lim != nil {
		local := make(map[string]bool, len(m.Spent))
		g.mu.Lock()
		for key := range m.Spent {
			local[key] = g.perUser[key] > 0
		}
		g.mu.Unlock()
		for key, n := range m.Spent {
			g.limits.lim.Debit(key, float64(n), debt, now, local[key])
		}
	}
	if len(m.Conns) > 0 && cl.threshold > 0 {
		cl.mu.Lock()
		for key, n := range m.Conns {
			cl.setRemoteLocked(key, m.Node, n, now)
		}
		cl.mu.Unlock()
	}
	if cl.afterApply != nil {
		cl.afterApply()
	}
}

// errMalformedLimits is the error of every message decodeLimits refuses.
var errMalformedLimits = errors.New("gateway: malformed " + EventClusterLimits + " message")

// decodeLimits reads the arguments of an EventClusterLimits event as the
// bus decoded them (JSON or msgpack values), refusing anything that is not
// a limitsMessage of this version within the bounds: at most
// limitsMaxEntries users, keys of userKeyLen bytes, counts integers in
// [0, limitsMaxCount] (spent ones positive).
func decodeLimits(args []any) (limitsMessage, error) {
	var m limitsMessage
	if len(args) < 1 {
		return m, fmt.Errorf("%w: no argument", errMalformedLimits)
	}
	obj, ok := args[0].(map[string]any)
	if !ok {
		return m, fmt.Errorf("%w: not an object", errMalformedLimits)
	}
	if v, ok := wholeNumber(obj["v"]); !ok || v != limitsVersion {
		return m, fmt.Errorf("%w: version %v", errMalformedLimits, obj["v"])
	}
	node, ok := obj["node"].(string)
	if !ok || node == "" || len(node) > limitsMaxNode {
		return m, fmt.Errorf("%w: node", errMalformedLimits)
	}
	m.V, m.Node = limitsVersion, node
	entries := 0
	var err error
	if m.Spent, entries, err = decodeCounts(obj["spent"], 1, entries); err != nil {
		return limitsMessage{}, fmt.Errorf("%w: spent: %w", errMalformedLimits, err)
	}
	if m.Conns, _, err = decodeCounts(obj["conns"], 0, entries); err != nil {
		return limitsMessage{}, fmt.Errorf("%w: conns: %w", errMalformedLimits, err)
	}
	return m, nil
}

// decodeCounts reads a map of userKey to a count in [low, limitsMaxCount],
// absent or null being empty, with entries users already read.
func decodeCounts(v any, low int, entries int) (map[string]int, int, error) {
	if v == nil {
		return nil, entries, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, entries, errors.New("not an object")
	}
	if entries += len(obj); entries > limitsMaxEntries {
		return nil, entries, fmt.Errorf("more than %d users", limitsMaxEntries)
	}
	out := make(map[string]int, len(obj))
	for key, raw := range obj {
		if len(key) != userKeyLen {
			return nil, entries, errors.New("a key is not a user key")
		}
		n, ok := wholeNumber(raw)
		if !ok || n < int64(low) || n > limitsMaxCount {
			return nil, entries, errors.New("a count is out of range")
		}
		out[key] = int(n)
	}
	return out, entries, nil
}

// wholeNumber returns v as an integer, if it is a number of one (as JSON
// and msgpack decoders give them).
func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// randomID returns a node id for the limits' and presence messages: 8
// random bytes, hex.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
