package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/siotest"
	"github.com/sessiongate/sessiongate/socketio"
)

// limitNode is one node of a test cluster on Redis, its gateway with
// ClusterLimits. The tests send its reports with flush, not with Run's
// ticker, so that what each node knows is decided by the test.
type limitNode struct {
	g       *Gateway
	url     string
	audit   *recordingAudit
	applied chan struct{} // a received limits message was applied
}

// limitCluster starts n nodes on a fresh key of bus ("redis", or
// "postgres": LISTEN/NOTIFY in a fresh schema), sharing db and clk, each a
// gateway of cfg with ClusterLimits.
func limitCluster(t *testing.T, bus string, n int, db store, clk *clock, cfg Config) []*limitNode {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	key := "sgtest-limits-" + hex.EncodeToString(b[:])
	pgURL := ""
	if bus == "postgres" {
		_, pgURL = openPostgres(t) // the attachments table, for what would not fit a NOTIFY
	}
	nodes := make([]*limitNode, n)
	for i := range nodes {
		var srv *socketio.Server
		if bus == "postgres" {
			srv = postgresNode(t, pgURL, key)
		} else {
			srv = redisNode(t, key)
		}
		c := cfg
		c.Sessions, c.ClusterLimits, c.Now = db, true, clk.Now
		node := &limitNode{audit: newRecordingAudit(nil), applied: make(chan struct{}, 1)}
		c.Audit = node.audit
		node.g = newGateway(t, c)
		node.g.cluster.afterApply = func() {
			select {
			case node.applied <- struct{}{}:
			default: // one pending signal is enough: the waiter re-checks
			}
		}
		node.g.Attach(srv.Of("/"))
		node.url = httptestServer(t, srv)
		nodes[i] = node
	}
	return nodes
}

// postgresNode is a Socket.IO server on the PostgreSQL bus of url under
// channel prefix key, its "/" namespace listening.
func postgresNode(t *testing.T, url, key string) *socketio.Server {
	t.Helper()
	return postgresBusNode(t, url, key).srv
}

// flush sends the node's report now.
func (n *limitNode) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n.g.flushLimits(ctx)
}

// until waits, re-checking after each message the node applies, for ok.
func (n *limitNode) until(t *testing.T, what string, ok func() bool) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for !ok() {
		select {
		case <-n.applied:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// tokensBecome waits for the node's bucket of uid to hold want tokens.
func (n *limitNode) tokensBecome(t *testing.T, uid string, want float64, now time.Time) {
	t.Helper()
	n.until(t, fmt.Sprintf("user %s's bucket to hold %v tokens", uid, want), func() bool {
		return n.g.limits.lim.Tokens(userKey(uid), now) == want
	})
}

// sendUntilRefused sends client events on c until one is refused
// RATE_LIMITED, and returns how many were accepted before it.
func sendUntilRefused(t *testing.T, c *siotest.Client) int {
	t.Helper()
	for n := 0; ; n++ {
		a := ackOf(t, c, "ping", n)
		if !a.OK {
			if a.Error == nil || a.Error.Code != sessiongate.ECodeRateLimited {
				t.Fatalf("event %d: ack %+v, want ok or RATE_LIMITED", n, a.Error)
			}
			return n
		}
		if n > 1000 {
			t.Fatal("no refusal after 1000 events")
		}
	}
}

// TestClusterEventRateLimit: user 42 with a socket on each of two nodes
// over Redis and over PostgreSQL, at 2 tokens per second, burst 4, on a clock that moves only
// when the test moves it. Once a node's report is in, the other node's
// bucket owes what was spent, so the user's total is what one node allows
// (burst + rate × time); what both nodes spend before either report is in
// is the documented slack (one burst per other node), paid back by the
// debt. User 43, on one of the nodes, is unaffected.
func TestClusterEventRateLimit(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) { testClusterEventRateLimit(t, bus) })
	}
}

func testClusterEventRateLimit(t *testing.T, bus string) {
	db := openSQLite(t)
	clk := &clock{now: time.Now()}
	const rate, burst = 2, 4
	nodes := limitCluster(t, bus, 2, db, clk, Config{Events: &echoForwarder{}, EventRate: rate, EventBurst: burst})
	na, nb := nodes[0], nodes[1]
	expire := time.Now().Add(time.Hour)
	_, cookieA := saveSession(t, db, `"42"`, expire)
	_, cookieB := saveSession(t, db, `"42"`, expire)
	_, cookieOther := saveSession(t, db, `"43"`, expire)
	a := dial(t, na.url, browser{cookie: cookieA})
	b := dial(t, nb.url, browser{cookie: cookieB})
	other := dial(t, nb.url, browser{cookie: cookieOther})
	for _, c := range []*siotest.Client{a, b, other} {
		connected(t, c)
	}
	total := 0 // user 42's accepted events
	accept := func(what string, c *siotest.Client, want int) int {
		t.Helper()
		got := sendUntilRefused(t, c)
		if got != want {
			t.Errorf("%s: %d accepted, want %d", what, got, want)
		}
		return got
	}

	// A spends the burst; once its report is in, B's bucket is empty.
	total += accept("on A, first", a, burst)
	na.flush(t)
	nb.tokensBecome(t, "42", 0, clk.Now())
	total += accept("on B after A's report", b, 0)
	accept("user 43 on B", other, burst)

	// A second: B spends the refill, and A, once told, has nothing left.
	clk.Set(clk.Now().Add(time.Second))
	total += accept("on B a second later", b, rate)
	nb.flush(t)
	na.tokensBecome(t, "42", 0, clk.Now())
	total += accept("on A after B's report", a, 0)
	if total != burst+rate {
		t.Errorf("user 42 spent %d in 1 s over two nodes, want %d (burst + rate × 1 s)", total, burst+rate)
	}
	if n := na.g.limits.lim.Len(); n != 1 {
		t.Errorf("node A holds %d buckets, want 1: user 43, with no socket there, costs it nothing", n)
	}

	// Two seconds on, both refill to the burst and spend it before either
	// report is in: the slack. The reports leave both a burst in debt,
	// so the next two seconds give nothing.
	clk.Set(clk.Now().Add(2 * time.Second))
	var wg sync.WaitGroup
	var onA, onB int
	wg.Go(func() { onA = sendUntilRefused(t, a) })
	wg.Go(func() { onB = sendUntilRefused(t, b) })
	wg.Wait()
	if onA != burst || onB != burst {
		t.Errorf("concurrently: %d on A and %d on B, want %d each", onA, onB, burst)
	}
	total += onA + onB
	na.flush(t)
	nb.flush(t)
	na.tokensBecome(t, "42", -burst, clk.Now())
	nb.tokensBecome(t, "42", -burst, clk.Now())
	clk.Set(clk.Now().Add(2 * time.Second))
	total += accept("on A, paying back", a, 0)
	total += accept("on B, paying back", b, 0)
	// Over the 5 s of the clock: at most burst + rate × 5 s + one burst
	// of slack; past the payback, the slack is gone.
	if elapsed := 5; total > burst+rate*elapsed+burst {
		t.Errorf("user 42 spent %d over %d s, over the bound %d", total, elapsed, burst+rate*elapsed+burst)
	}
	if total != 3*burst+rate {
		t.Errorf("user 42 spent %d in all, want %d", total, 3*burst+rate)
	}

	for name, n := range map[string]*limitNode{"A": na, "B": nb} {
		st := n.g.Stats()
		if st.ClusterLimitMessages[LimitOut] != 2 || st.ClusterLimitMessages[LimitIn] != 2 || st.ClusterLimitMessages[LimitMalformed] != 0 {
			t.Errorf("node %s messages %v, want 2 out and 2 in", name, st.ClusterLimitMessages)
		}
		if name == "B" && st.ClusterLimitTokens[LimitIn] != 2*burst {
			t.Errorf("node B was reported %d tokens, want %d", st.ClusterLimitTokens[LimitIn], 2*burst)
		}
		if st.RateLimitRefusals[LimitEvents] == 0 || st.RateLimitRefusals[LimitSubscriptions] != 0 {
			t.Errorf("node %s refusals %v", name, st.RateLimitRefusals)
		}
	}
	for name, c := range map[string]*siotest.Client{"a": a, "b": b, "other": other} {
		stillConnected(t, name, c)
	}
}

// TestClusterEventRateLimitRun: the same two nodes with Run's own reports
// (every limitsFlushInterval) while both sockets send at once, on a clock
// that does not move: each node accepts at most its burst, the user at
// least one burst in all, and once the reports are in both buckets owe
// exactly what the other node spent.
func TestClusterEventRateLimitRun(t *testing.T) {
	db := openSQLite(t)
	clk := &clock{now: time.Now()}
	const burst = 20
	nodes := limitCluster(t, "redis", 2, db, clk, Config{Events: &echoForwarder{}, EventRate: 1, EventBurst: burst})
	expire := time.Now().Add(time.Hour)
	var clients []*siotest.Client
	for _, n := range nodes {
		run(t, n.g)
		_, cookie := saveSession(t, db, `"42"`, expire)
		c := dial(t, n.url, browser{cookie: cookie})
		connected(t, c)
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	got := make([]int, len(clients))
	for i, c := range clients {
		wg.Go(func() { got[i] = sendUntilRefused(t, c) })
	}
	wg.Wait()
	total := got[0] + got[1]
	if total < burst || got[0] > burst || got[1] > burst {
		t.Fatalf("accepted %v: want at most the burst (%d) a node and at least one burst in all", got, burst)
	}
	for _, n := range nodes {
		n.tokensBecome(t, "42", float64(burst-total), clk.Now())
	}
}

// TestClusterMaxConnectionsPerUser: a cap of 4 over two nodes on Redis,
// and on PostgreSQL (announced from 2 sockets on a node). One socket adds nothing to the
// bus; past the threshold each node counts the other's sockets, so the
// user holds 4 in all; a count that falls below the threshold is
// withdrawn, and one whose node stops announcing it expires after
// limitsTTL.
func TestClusterMaxConnectionsPerUser(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) { testClusterMaxConnectionsPerUser(t, bus) })
	}
}

func testClusterMaxConnectionsPerUser(t *testing.T, bus string) {
	db := openSQLite(t)
	clk := &clock{now: time.Now()}
	nodes := limitCluster(t, bus, 2, db, clk, Config{MaxConnectionsPerUser: 4})
	na, nb := nodes[0], nodes[1]
	expire := time.Now().Add(time.Hour)
	_, cookie := saveSession(t, db, `"42"`, expire)
	_, cookieOther := saveSession(t, db, `"43"`, expire)
	key := userKey("42")
	remoteBecomes := func(n *limitNode, want int) {
		t.Helper()
		n.until(t, fmt.Sprintf("%d remote sockets of user 42", want), func() bool {
			return n.g.cluster.remoteConns(key, clk.Now()) == want
		})
	}

	first := dial(t, na.url, browser{cookie: cookie})
	connected(t, first)
	na.flush(t)
	if out := na.g.Stats().ClusterLimitMessages[LimitOut]; out != 0 {
		t.Fatalf("one socket sent %d messages, want none", out)
	}
	connected(t, dial(t, na.url, browser{cookie: cookie}))
	na.flush(t)
	remoteBecomes(nb, 2)
	onB := []*siotest.Client{dial(t, nb.url, browser{cookie: cookie}), dial(t, nb.url, browser{cookie: cookie})}
	for _, c := range onB {
		connected(t, c)
	}
	refused(t, dial(t, nb.url, browser{cookie: cookie}), sessiongate.ECodeTooManyConnections)
	nb.flush(t)
	remoteBecomes(na, 2)
	refused(t, dial(t, na.url, browser{cookie: cookie}), sessiongate.ECodeTooManyConnections)
	connected(t, dial(t, na.url, browser{cookie: cookieOther}))
	connected(t, dial(t, nb.url, browser{cookie: cookieOther}))

	// Below the threshold on A: withdrawn, and B takes a third.
	firstID, _ := first.Connected(context.Background())
	first.Close()
	na.audit.waitFor(t, "disconnect", func(ev sessiongate.AuditEvent) bool {
		return ev.Action == sessiongate.ActionDisconnect && ev.SocketID == firstID
	})
	na.flush(t)
	remoteBecomes(nb, 0)
	connected(t, dial(t, nb.url, browser{cookie: cookie}))
	nb.flush(t)
	remoteBecomes(na, 3)
	refused(t, dial(t, na.url, browser{cookie: cookie}), sessiongate.ECodeTooManyConnections)

	// B goes silent (as a node that died): after limitsTTL its count no
	// longer holds A back.
	clk.Set(clk.Now().Add(limitsTTL))
	connected(t, dial(t, na.url, browser{cookie: cookie}))

	for name, want := range map[string]uint64{"A": 2, "B": 1} {
		n := map[string]*limitNode{"A": na, "B": nb}[name]
		if got := n.g.Stats().RateLimitRefusals[LimitConnections]; got != want {
			t.Errorf("node %s counts %d connection refusals, want %d", name, got, want)
		}
	}
}

// TestDecodeLimits: what a node sends decodes back, through JSON as a bus
// carries it; anything out of bounds is refused.
func TestDecodeLimits(t *testing.T) {
	spent := map[string]int{}
	for i := range limitsMaxEntries + 10 {
		spent[userKey(fmt.Sprint(i))] = i + 1
	}
	conns := map[string]int{userKey("a"): 3, userKey("b"): 0}
	msgs := splitLimits("node1", spent, conns)
	if len(msgs) != 2 {
		t.Fatalf("%d messages for %d users, want 2", len(msgs), len(spent)+len(conns))
	}
	gotSpent, gotConns := map[string]int{}, map[string]int{}
	for _, m := range msgs {
		b, err := json.Marshal([]any{m})
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 8000-1000 {
			t.Errorf("a message of %d bytes: over PostgreSQL's NOTIFY limit with the envelope", len(b))
		}
		var args []any
		if err := json.Unmarshal(b, &args); err != nil {
			t.Fatal(err)
		}
		d, err := decodeLimits(args)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		for k, n := range d.Spent {
			gotSpent[k] = n
		}
		for k, n := range d.Conns {
			gotConns[k] = n
		}
	}
	if fmt.Sprint(gotSpent) != fmt.Sprint(spent) || fmt.Sprint(gotConns) != fmt.Sprint(conns) {
		t.Error("a split and decoded report differs from what was split")
	}

	k := userKey("x")
	for _, bad := range []string{
		`[]`, `[1]`, `[{"v":2,"node":"n"}]`, `[{"v":1}]`, `[{"v":1,"node":""}]`,
		`[{"v":1,"node":"` + strings.Repeat("n", 65) + `"}]`,
		`[{"v":1,"node":"n","spent":[]}]`,
		`[{"v":1,"node":"n","spent":{"short":1}}]`,
		`[{"v":1,"node":"n","spent":{"` + k + `":0}}]`,
		`[{"v":1,"node":"n","spent":{"` + k + `":1.5}}]`,
		`[{"v":1,"node":"n","spent":{"` + k + `":"1"}}]`,
		`[{"v":1,"node":"n","conns":{"` + k + `":-1}}]`,
		`[{"v":1,"node":"n","conns":{"` + k + `":1e300}}]`,
	} {
		var args []any
		if err := json.Unmarshal([]byte(bad), &args); err != nil {
			t.Fatal(err)
		}
		if _, err := decodeLimits(args); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// FuzzDecodeLimits: no input panics decodeLimits, and what it accepts is
// within the bounds and splits back into the same message.
func FuzzDecodeLimits(f *testing.F) {
	k := userKey("42")
	for _, seed := range []string{
		`[{"v":1,"node":"abc","spent":{"` + k + `":3}}]`,
		`[{"v":1,"node":"abc","conns":{"` + k + `":0}}]`,
		`[{"v":1,"node":"abc","spent":{"` + k + `":1},"conns":{"` + k + `":7}}]`,
		`[{"v":1,"node":"abc","spent":null}]`,
		`[{"v":"1","node":1}]`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var args []any
		if json.Unmarshal(data, &args) != nil {
			return
		}
		m, err := decodeLimits(args)
		if err != nil {
			return
		}
		if len(m.Spent)+len(m.Conns) > limitsMaxEntries || m.Node == "" || len(m.Node) > limitsMaxNode {
			t.Fatalf("out of bounds: %+v", m)
		}
		for _, counts := range []map[string]int{m.Spent, m.Conns} {
			for key, n := range counts {
				if len(key) != userKeyLen || n < 0 || n > limitsMaxCount {
					t.Fatalf("entry %q: %d", key, n)
				}
			}
		}
		if again := splitLimits(m.Node, m.Spent, m.Conns); len(m.Spent)+len(m.Conns) > 0 && len(again) != 1 {
			t.Fatalf("an accepted message splits into %d", len(again))
		}
	})
}

// TestFlushLimitsConcurrent: reports taken while tokens are spent and
// sockets counted lose nothing and share no map with the spenders (-race).
func TestFlushLimitsConcurrent(t *testing.T) {
	db := openSQLite(t)
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), EventRate: 1, MaxConnectionsPerUser: 2, ClusterLimits: true})
	srv := socketio.NewServer(socketio.Options{})
	t.Cleanup(func() { srv.Close() })
	g.Attach(srv.Of("/"))
	const n = 2000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			g.cluster.spend(userKey(fmt.Sprint(i % 7)))
			g.mu.Lock()
			g.cluster.connsChanged(userKey("x"), 1, 2)
			g.mu.Unlock()
		}
	})
	for range 200 {
		g.flushLimits(context.Background())
	}
	wg.Wait()
	g.flushLimits(context.Background())
	if out := g.Stats().ClusterLimitMessages[LimitOut]; out == 0 {
		t.Error("no report was sent")
	}
}

// TestClusterLimitsDebt: reports from two other nodes of a user who spent
// a full bucket on each are both owed (one burst of debt per node heard
// from), a report of this node's own id or a malformed one changes
// nothing, and a user without a socket here gets no bucket.
func TestClusterLimitsDebt(t *testing.T) {
	db := openSQLite(t)
	clk := &clock{now: time.Now()}
	const burst = 4
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), EventRate: 1, EventBurst: burst, ClusterLimits: true, Now: clk.Now})
	key, absent := userKey("42"), userKey("43")
	g.mu.Lock()
	g.perUser[key] = 1 // a socket of 42 here
	g.mu.Unlock()
	for range burst {
		if ok, _ := g.limits.lim.Allow(key, clk.Now()); !ok {
			t.Fatal("the burst was refused")
		}
	}
	report := func(node string, spent map[string]any) {
		g.limitsEvent(socketio.Event{Name: EventClusterLimits, Args: []any{map[string]any{"v": 1.0, "node": node, "spent": spent}}}, nil)
	}
	want := func(what string, tokens float64) {
		t.Helper()
		if got := g.limits.lim.Tokens(key, clk.Now()); got != tokens {
			t.Errorf("%s: %v tokens, want %v", what, got, tokens)
		}
	}
	report("n1", map[string]any{key: float64(burst), absent: 3.0})
	want("after node 1's report", -burst)
	report("n2", map[string]any{key: float64(burst)})
	want("after node 2's report", -2*burst)
	report(g.cluster.node, map[string]any{key: 1.0})
	report("n3", map[string]any{key: "1"})
	g.limitsEvent(socketio.Event{Name: "other", Args: []any{1}}, nil)
	want("after an own and a malformed report", -2*burst)
	if n := g.limits.lim.Len(); n != 1 {
		t.Errorf("%d buckets, want 1: user 43 has no socket here", n)
	}
	st := g.Stats()
	if st.ClusterLimitMessages[LimitIn] != 2 || st.ClusterLimitMessages[LimitMalformed] != 1 || st.ClusterLimitTokens[LimitIn] != 2*burst+3 {
		t.Errorf("messages %v, tokens %v", st.ClusterLimitMessages, st.ClusterLimitTokens)
	}
}

// TestClusterLimitsBounds: what other nodes and this node's users can grow
// stays bounded — the spending awaiting the next report (the rest counted
// unshared), the peers remembered, and the remote connection counts.
func TestClusterLimitsBounds(t *testing.T) {
	cl := newClusterLimits("here", 4)
	for i := range limitsMaxPending + 10 {
		cl.spend(userKey(strconv.Itoa(i)))
	}
	cl.spend(userKey("0")) // a user already waiting still counts
	if n := len(cl.spent); n != limitsMaxPending {
		t.Errorf("%d users' spending held, want %d", n, limitsMaxPending)
	}
	if n := cl.tokens[LimitUnshared].Load(); n != 10 {
		t.Errorf("%d tokens unshared, want 10", n)
	}
	if n := cl.spent[userKey("0")]; n != 2 {
		t.Errorf("user 0 spent %d, want 2", n)
	}

	now := time.Now()
	cl.mu.Lock()
	for i := range limitsMaxRemote + 10 {
		cl.setRemoteLocked(userKey(strconv.Itoa(i)), "n1", 3, now)
	}
	if cl.remoteN != limitsMaxRemote || len(cl.remote) != limitsMaxRemote {
		t.Errorf("%d remote counts over %d users, want %d", cl.remoteN, len(cl.remote), limitsMaxRemote)
	}
	cl.mu.Unlock()

	db := openSQLite(t)
	g := newGateway(t, Config{Sessions: db, Audit: newRecordingAudit(nil), EventRate: 1, ClusterLimits: true})
	for i := range limitsMaxPeers + 10 {
		g.limitsEvent(socketio.Event{Name: EventClusterLimits, Args: []any{map[string]any{"v": 1.0, "node": "n" + strconv.Itoa(i), "spent": map[string]any{}}}}, nil)
	}
	g.cluster.mu.Lock()
	peers := len(g.cluster.peers)
	g.cluster.mu.Unlock()
	if peers != limitsMaxPeers {
		t.Errorf("%d peers remembered, want %d", peers, limitsMaxPeers)
	}
}
