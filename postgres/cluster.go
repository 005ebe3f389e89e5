package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/backoff"
	"github.com/sessiongate/sessiongate/socketio"
)

// ClusterListenerApplicationName is the application_name of the connection
// a Cluster LISTENs on (one per node), so an operator can find it in
// pg_stat_activity.
const ClusterListenerApplicationName = "sessiongate-cluster-listener"

// DefaultAttachmentsTable is the attachments table of
// @socket.io/postgres-adapter, and ClusterOptions.TableName's default.
const DefaultAttachmentsTable = "socket_io_attachments"

// ClusterOptions configure a Cluster. Zero fields take the defaults beside
// them, which are those of @socket.io/postgres-adapter 0.5.0: a Node server
// and sessiongate nodes in one cluster must agree on the prefix and table.
type ClusterOptions struct {
	// ChannelPrefix: each namespace's channel is "<prefix>#<nsp>" (no
	// trailing #): "socket.io".
	ChannelPrefix string
	// TableName is the attachments table, an unqualified name resolved
	// through the connection's search_path: "socket_io_attachments".
	TableName string
	// PayloadThreshold: a JSON message of this many bytes or more goes
	// through the attachments table: 8000, also the maximum (PostgreSQL
	// refuses a NOTIFY payload of 8000 bytes).
	PayloadThreshold int
	// HeartbeatInterval: a node that published nothing for this long sends
	// a HEARTBEAT: 5s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: a peer heard of for longer than this no longer
	// counts as a node: 10s.
	HeartbeatTimeout time.Duration
	// CleanupInterval: attachments older than this are deleted, this often:
	// 30s.
	CleanupInterval time.Duration
	// RequestTimeout bounds the cross-node requests (fetch sockets,
	// server-side emit with ack, all rooms) and, when its flags set none,
	// the bookkeeping of a broadcast with acks: 5s, Node's fixed value.
	RequestTimeout time.Duration
	// MaxAttachmentSize bounds the attachment a node reads: 4 MiB. A larger
	// row is skipped (and counted in Stats.Dropped).
	MaxAttachmentSize int
	// MaxPendingRequests bounds the requests of this node waiting for
	// answers (fetch sockets, server-side emits and broadcasts with acks):
	// 1024. Beyond it a request fails at once.
	MaxPendingRequests int
	// Logger receives the bus's warnings (the listener lost, a malformed
	// message); nil means slog.Default().
	Logger *slog.Logger
}

func (o *ClusterOptions) setDefaults() {
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = "socket.io"
	}
	if o.TableName == "" {
		o.TableName = DefaultAttachmentsTable
	}
	if o.PayloadThreshold <= 0 || o.PayloadThreshold > maxNotifyPayload {
		o.PayloadThreshold = maxNotifyPayload
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 5 * time.Second
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 10 * time.Second
	}
	if o.CleanupInterval <= 0 {
		o.CleanupInterval = 30 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.MaxAttachmentSize <= 0 {
		o.MaxAttachmentSize = 4 << 20
	}
	if o.MaxPendingRequests <= 0 {
		o.MaxPendingRequests = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ClusterStats count a Cluster's bus traffic since NewCluster. Summed over
// the nodes, MessagesOut counts each publication once; MessagesIn counts it
// once per other node that received it.
type ClusterStats struct {
	MessagesIn      uint64 // ClusterMessages received from other nodes and emitters
	MessagesOut     uint64 // ClusterMessages published
	AttachmentsIn   uint64 // of MessagesIn, those read from the attachments table
	AttachmentsOut  uint64 // of MessagesOut, those written to it
	RequestTimeouts uint64 // requests of this node that lacked an answer in time
	PublishErrors   uint64 // publications that failed (the database down)
	Dropped         uint64 // received messages that were malformed, too large, or whose attachment was gone
	// ListenerLosses counts the times the LISTEN connection was lost. What
	// was published until it was back (Reconnected) is lost for this node:
	// NOTIFY keeps no history, so the messages cannot be counted one by one.
	ListenerLosses uint64
	Reconnects     uint64 // LISTENs re-established after a loss
}

// A Cluster is a node's connection to the bus of @socket.io/postgres-adapter
// 0.5.0: LISTEN/NOTIFY on one channel per namespace, with the attachments
// table for binary or large messages and heartbeats so that every node
// knows how many there are. It also obeys @socket.io/postgres-emitter 0.1.1,
// whose messages omit the top-level "nsp" (their namespace is the
// channel's; Node's adapter drops them).
//
// Every node applies the cluster's broadcasts and room operations in the
// one order of PostgreSQL's NOTIFY queue, its own included: what a node
// publishes takes effect on its own sockets when its listener gets the
// message back (the call returns then), so a join sent by one node and then
// a broadcast sent by another reach the second node's sockets in that
// order too.
//
// One dedicated connection (not a transaction pooler's: LISTEN needs a
// session) LISTENs for every namespace; publishing, attachments and their
// cleanup use a small pool. When the listener is lost the node keeps its
// sockets, reconnects with backoff (100 ms to 5 s), LISTENs again on every
// namespace, and counts and logs the loss (Stats).
//
// # Who can use the bus
//
// Nothing on the bus is authenticated: whoever can NOTIFY on a
// "socket.io#…" channel can emit to any user, join any socket to any room,
// or disconnect everyone, and whoever can INSERT into the attachments table
// can forge an attachment. PostgreSQL has no privilege for NOTIFY: any role
// that can connect to the database can NOTIFY on any channel, and LISTEN on
// any channel. So confine the bus by who can connect at all: a database
// (or a server) of its own for the cluster, reachable only from the nodes
// (network policy, pg_hba.conf entries for their addresses and role), with
// CONNECT revoked from PUBLIC:
//
//	REVOKE CONNECT ON DATABASE app FROM PUBLIC;
//	GRANT CONNECT ON DATABASE app TO sessiongate;
//	-- the attachments table: the nodes (and Node emitters) only
//	REVOKE ALL ON socket_io_attachments FROM PUBLIC;
//	GRANT SELECT, INSERT, DELETE ON socket_io_attachments TO sessiongate;
//	GRANT USAGE ON SEQUENCE socket_io_attachments_id_seq TO sessiongate;
//
// A role that may read sessions but must not drive sockets has no business
// connecting to the cluster's database at all. The table's DDL (created by
// NewCluster when missing, and by DB.Migrate) is @socket.io/postgres-adapter's:
//
//	CREATE TABLE IF NOT EXISTS socket_io_attachments (
//	  id bigserial UNIQUE,
//	  created_at timestamptz DEFAULT NOW(),
//	  payload bytea
//	);
//
// A Cluster is safe for concurrent use.
type Cluster struct {
	opts     ClusterOptions
	log      *slog.Logger
	pool     *pgxpool.Pool
	listenCf *pgx.ConnConfig
	table    string // quoted

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pubs   chan *publication
	events chan func() // server-side events, run off the listener's goroutine

	mu         sync.Mutex
	channels   map[string]*channel // by channel name
	cancelWait context.CancelFunc  // wakes the listener to LISTEN a new channel
	listenGen  uint64              // the listener's connection, counted from 1
	listenPID  uint32
	connected  bool
	closed     bool

	pending atomic.Int64 // requests waiting for answers, for MaxPendingRequests

	in, out, attIn, attOut, timeouts, pubErrs, dropped, losses, reconnects atomic.Uint64

	// testHookListening, when set, runs each time the listener has
	// LISTENed on every channel, with its backend's process id.
	testHookListening func(pid uint32)
}

// channel is a namespace's NOTIFY channel and the adapters on it (one per
// Server serving the namespace with this Cluster).
type channel struct {
	name     string
	nsp      string
	adapters []*clusterAdapter
	gen      uint64        // listenGen of its last LISTEN; 0: never
	ready    chan struct{} // closed after its first LISTEN
}

// NewCluster connects to the database at url (a postgres:// URL or DSN),
// creates the attachments table if it is missing, and starts the listener.
// Adapter then makes the socketio.Adapter of each namespace. Close leaves
// the cluster.
func NewCluster(ctx context.Context, url string, opts ClusterOptions) (*Cluster, error) {
	return newCluster(ctx, url, opts, nil)
}

// newCluster is NewCluster with the test hook set before the listener
// starts.
func newCluster(ctx context.Context, url string, opts ClusterOptions, hookListening func(pid uint32)) (*Cluster, error) {
	opts.setDefaults()
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: cluster: parse database URL: %w", err)
	}
	if pcfg.MaxConns > 4 {
		pcfg.MaxConns = 4 // one publisher, attachment reads, the cleanup
	}
	params := pcfg.ConnConfig.RuntimeParams
	if params["application_name"] == "" {
		setParam(params, "application_name", "sessiongate-cluster")
	}
	listenCf := pcfg.ConnConfig.Copy()
	setParam(listenCf.RuntimeParams, "application_name", ClusterListenerApplicationName)
	// A NOTIFY transaction needs no flush to disk before it returns:
	// listeners hear it at commit, and after a crash there is no one to
	// replay it to. Waiting for the WAL flush would bound the bus by the
	// disk's sync rate.
	setParam(params, "synchronous_commit", "off")
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: cluster: create pool: %w", err)
	}
	c := &Cluster{
		opts:     opts,
		log:      opts.Logger,
		pool:     pool,
		listenCf: listenCf,
		table:    pgx.Identifier{opts.TableName}.Sanitize(),
		pubs:     make(chan *publication, 1024),
		events:   make(chan func(), maxQueuedServerEvents),
		channels: make(map[string]*channel),

		testHookListening: hookListening,
	}
	if err := c.ensureTable(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(4)
	go c.serverEventLoop()
	go c.listenLoop()
	go c.publishLoop()
	go c.cleanupLoop()
	return c, nil
}

// ensureTable creates the attachments table unless it exists: only then,
// since CREATE TABLE IF NOT EXISTS needs the CREATE privilege on the schema
// even when the table is there, which a confined role lacks.
func (c *Cluster) ensureTable(ctx context.Context) error {
	var exists bool
	if err := c.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.table).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: cluster: look up %s: %w", c.table, err)
	}
	if exists {
		return nil
	}
	q, err := render("attachments.sql", names{Attachments: c.table})
	if err != nil {
		return fmt.Errorf("postgres: cluster: %w", err)
	}
	if _, err := c.pool.Exec(ctx, q); err != nil {
		return fmt.Errorf("postgres: cluster: create %s: %w", c.table, err)
	}
	return nil
}

// Adapter returns the adapter of local's namespace, to be given to
// socketio.Options.NewAdapter:
//
//	NewAdapter: func(local *socketio.MemoryAdapter) socketio.Adapter { return cluster.Adapter(local) },
//
// It LISTENs on the namespace's channel (AddAll waits for that the first
// time) and announces the node with an INITIAL_HEARTBEAT.
func (c *Cluster) Adapter(local *socketio.MemoryAdapter) socketio.Adapter {
	nsp := local.Namespace().Name()
	a := &clusterAdapter{
		c:       c,
		local:   local,
		nsp:     nsp,
		uid:     randomID(),
		peers:   make(map[string]time.Time),
		reqs:    make(map[string]*request),
		ackReqs: make(map[string]*ackRequest),
	}
	name := c.opts.ChannelPrefix + "#" + nsp
	if len(name) >= 64 {
		// PostgreSQL truncates a longer identifier in LISTEN and refuses it
		// in pg_notify: the namespace cannot be on the bus.
		c.log.Error("postgres: cluster: channel name longer than 63 bytes; the namespace stays local", "channel", name)
		a.badChannel = true
	}
	a.heartbeat = time.AfterFunc(c.opts.HeartbeatInterval, a.sendHeartbeat)
	c.mu.Lock()
	ch := c.channels[name]
	if ch == nil {
		ch = &channel{name: name, nsp: nsp, ready: make(chan struct{})}
		if !a.badChannel {
			c.channels[name] = ch
			if c.cancelWait != nil {
				c.cancelWait()
			}
		}
	}
	a.ch = ch
	ch.adapters = append(ch.adapters, a)
	closed := c.closed
	c.mu.Unlock()
	if closed {
		a.heartbeat.Stop()
		a.closed.Store(true)
		return a
	}
	if !a.badChannel {
		a.publish(msgInitialHeartbeat, nil)
	}
	return a
}

// Ready waits until the listener has LISTENed on the channel of every
// namespace that has an adapter (or, with none, until it is connected).
func (c *Cluster) Ready(ctx context.Context) error {
	for {
		c.mu.Lock()
		var wait chan struct{}
		for _, ch := range c.channels {
			if ch.gen == 0 {
				wait = ch.ready
				break
			}
		}
		ok := c.connected
		c.mu.Unlock()
		if wait == nil && ok {
			return nil
		}
		if wait == nil {
			wait = make(chan struct{}) // poll the connection below
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-wait:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("postgres: cluster not listening: %w", ctx.Err())
		}
		t.Stop()
	}
}

// Connected reports whether the listener is up, for readiness probes.
func (c *Cluster) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Stats returns the Cluster's counters.
func (c *Cluster) Stats() ClusterStats {
	return ClusterStats{
		MessagesIn:      c.in.Load(),
		MessagesOut:     c.out.Load(),
		AttachmentsIn:   c.attIn.Load(),
		AttachmentsOut:  c.attOut.Load(),
		RequestTimeouts: c.timeouts.Load(),
		PublishErrors:   c.pubErrs.Load(),
		Dropped:         c.dropped.Load(),
		ListenerLosses:  c.losses.Load(),
		Reconnects:      c.reconnects.Load(),
	}
}

// Close sends ADAPTER_CLOSE for every namespace still open (so peers stop
// counting this node at once), stops the listener and closes the
// connections. Adapters fail their calls afterwards.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var adapters []*clusterAdapter
	for _, ch := range c.channels {
		adapters = append(adapters, ch.adapters...)
	}
	c.mu.Unlock()
	for _, a := range adapters {
		_ = a.Close()
	}
	c.cancel()
	c.wg.Wait()
	c.pool.Close()
	return nil
}

// unregister takes a closed adapter off its channel.
func (c *Cluster) unregister(a *clusterAdapter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := a.ch
	for i, x := range ch.adapters {
		if x == a {
			ch.adapters = append(ch.adapters[:i:i], ch.adapters[i+1:]...)
			break
		}
	}
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Backoff bounds of the cluster listener's reconnection, as the revocation
// listener's.
const (
	clusterMinBackoff = 100 * time.Millisecond
	clusterMaxBackoff = 5 * time.Second
)

// listenLoop keeps one connection LISTENing on every channel and hands
// each notification to its adapters, in order.
func (c *Cluster) listenLoop() {
	defer c.wg.Done()
	retry := backoff.Backoff{Min: clusterMinBackoff, Max: clusterMaxBackoff}
	lost := false
	for {
		conn, err := pgx.ConnectConfig(c.ctx, c.listenCf)
		if err == nil {
			err = c.serve(conn, &retry, &lost)
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(closeCtx)
			cancel()
		}
		if c.ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		wasConnected := c.connected
		c.connected = false
		// No echo comes back for what is in flight: apply it now.
		var pending []*echo
		for _, ch := range c.channels {
			for _, a := range ch.adapters {
				pending = append(pending, a.echoes...)
				a.echoes = nil
			}
		}
		c.mu.Unlock()
		for _, e := range pending {
			e.run()
		}
		if wasConnected {
			lost = true
			c.losses.Add(1)
			c.log.Warn("postgres: cluster listener lost; reconnecting (messages published until then are lost for this node)", "error", err)
		} else {
			c.log.Warn("postgres: cluster listener cannot connect; retrying", "error", err)
		}
		if !retry.Wait(c.ctx) {
			return
		}
	}
}

// serve LISTENs on conn and receives until the connection fails or the
// Cluster is closed.
func (c *Cluster) serve(conn *pgx.Conn, retry *backoff.Backoff, lost *bool) error {
	c.mu.Lock()
	c.listenGen++
	gen := c.listenGen
	c.mu.Unlock()
	listenedAll := false
	for {
		// Wake-ups (a new channel) cancel waitCtx; LISTEN what is new.
		waitCtx, cancel := context.WithCancel(c.ctx)
		c.mu.Lock()
		c.cancelWait = cancel
		var todo []*channel
		for _, ch := range c.channels {
			if ch.gen != gen {
				todo = append(todo, ch)
			}
		}
		c.mu.Unlock()
		for _, ch := range todo {
			if _, err := conn.Exec(c.ctx, "LISTEN "+pgx.Identifier{ch.name}.Sanitize()); err != nil {
				cancel()
				return fmt.Errorf("listen %s: %w", ch.name, err)
			}
			c.mu.Lock()
			if ch.gen == 0 {
				close(ch.ready)
			}
			ch.gen = gen
			c.mu.Unlock()
		}
		if !listenedAll {
			listenedAll = true
			retry.Reset()
			c.mu.Lock()
			c.connected = true
			c.listenPID = conn.PgConn().PID()
			c.mu.Unlock()
			if *lost {
				*lost = false
				c.reconnects.Add(1)
				c.log.Info("postgres: cluster listener back", "channels", len(todo))
			}
			if c.testHookListening != nil {
				c.testHookListening(conn.PgConn().PID())
			}
		}
		n, err := conn.WaitForNotification(waitCtx)
		woken := waitCtx.Err() != nil
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			if woken && !conn.IsClosed() {
				continue
			}
			return err
		}
		c.dispatch(n)
		// Notifications received meanwhile (during a LISTEN) are buffered
		// by pgx and returned by the next WaitForNotification.
	}
}

// dispatch hands a notification to the adapters of its channel.
func (c *Cluster) dispatch(n *pgconn.Notification) {
	c.mu.Lock()
	ch := c.channels[n.Channel]
	var adapters []*clusterAdapter
	if ch != nil {
		adapters = append(adapters, ch.adapters...)
	}
	c.mu.Unlock()
	if len(adapters) == 0 {
		return
	}
	m, err := parseNotification([]byte(n.Payload))
	if err != nil {
		c.drop("malformed notification", n.Channel, err)
		return
	}
	if m.HasNSP && m.NSP != ch.nsp {
		c.drop("notification for another namespace", n.Channel, fmt.Errorf("nsp %q", m.NSP))
		return
	}
	// Our own message: what it does locally happens now, in the bus's
	// order (see echo); nothing else to do, not even read an attachment.
	for _, a := range adapters {
		if a.uid == m.UID {
			key := n.Payload
			if m.AttachmentID > 0 {
				key = attachmentEchoKey(m.Type)
			}
			a.echoed(key)
			return
		}
	}
	if m.AttachmentID > 0 {
		headerType := m.Type
		m, err = c.readAttachment(m.AttachmentID)
		if err != nil {
			c.drop("attachment", n.Channel, err)
			return
		}
		if m.Type != headerType || (m.HasNSP && m.NSP != ch.nsp) {
			c.drop("attachment does not match its header", n.Channel, nil)
			return
		}
		c.attIn.Add(1)
	}
	c.in.Add(1)
	for _, a := range adapters {
		a.onMessage(m)
	}
}

func (c *Cluster) drop(what, channel string, err error) {
	c.dropped.Add(1)
	c.log.Warn("postgres: cluster: dropped "+what, "channel", channel, "error", err)
}

// readAttachment reads and decodes an attachment row, refusing one larger
// than MaxAttachmentSize before transferring it.
func (c *Cluster) readAttachment(id int64) (clusterMessage, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	defer cancel()
	var size int64
	var payload []byte
	err := c.pool.QueryRow(ctx,
		`SELECT octet_length(payload), CASE WHEN octet_length(payload) <= $2 THEN payload END FROM `+c.table+` WHERE id = $1`,
		id, c.opts.MaxAttachmentSize).Scan(&size, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return clusterMessage{}, fmt.Errorf("attachment %d: gone (older than the cleanup interval?)", id)
	}
	if err != nil {
		return clusterMessage{}, fmt.Errorf("attachment %d: %w", id, err)
	}
	if payload == nil {
		return clusterMessage{}, fmt.Errorf("attachment %d: %d bytes, more than %d", id, size, c.opts.MaxAttachmentSize)
	}
	return parseAttachment(payload)
}

// maxQueuedServerEvents bounds the server-side events waiting for their
// handlers; more are dropped (and counted).
const maxQueuedServerEvents = 1024

// serverEventLoop runs the OnServerEvent handlers in order, on a goroutine
// of their own: a handler that broadcasts waits for its broadcast to come
// back through the listener, which must not be the goroutine it blocks.
func (c *Cluster) serverEventLoop() {
	defer c.wg.Done()
	for {
		select {
		case f := <-c.events:
			f()
		case <-c.ctx.Done():
			return
		}
	}
}

// serverEvent queues f for serverEventLoop, or drops it when the queue is
// full.
func (c *Cluster) serverEvent(channel string, f func()) {
	select {
	case c.events <- f:
	default:
		c.drop("server-side event (too many waiting for their handlers)", channel, nil)
	}
}

// cleanupLoop deletes the attachments older than CleanupInterval, every
// CleanupInterval, as Node's adapter does (every node does it; the DELETEs
// are idempotent).
func (c *Cluster) cleanupLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.CleanupInterval)
	defer t.Stop()
	interval := strconv.FormatInt(c.opts.CleanupInterval.Milliseconds(), 10) + " milliseconds"
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.CleanupInterval)
		_, err := c.pool.Exec(ctx, `DELETE FROM `+c.table+` WHERE created_at < now() - $1::interval`, interval)
		cancel()
		if err != nil && c.ctx.Err() == nil {
			c.log.Warn("postgres: cluster: delete old attachments", "error", err)
		}
	}
}

// A publication is one NOTIFY: a JSON payload, or an attachment row and
// its header.
type publication struct {
	channel string
	payload []byte // the JSON message; nil for an attachment
	attach  []byte // msgpack of the message
	// header = prefix || id || suffix, built by the statement itself.
	prefix, suffix string
	done           chan error // nil: nobody waits
	echo           *echo      // what the message does on this node, if anything
	owner          *clusterAdapter
}

// errClusterClosed is returned by the adapters of a closed Cluster.
var errClusterClosed = sessiongate.Errorf(sessiongate.ECodeInternal, "postgres: cluster closed")

// enqueue hands p to the publisher, waiting while its queue is full.
func (c *Cluster) enqueue(ctx context.Context, p *publication) error {
	select {
	case c.pubs <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return errClusterClosed
	}
}

// maxBatch bounds the publications sent in one round trip.
const maxBatch = 64

// publishLoop sends the queued publications in order, a batch per round
// trip (see send).
func (c *Cluster) publishLoop() {
	defer c.wg.Done()
	batch := make([]*publication, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case p := <-c.pubs:
			batch = append(batch, p)
		case <-c.ctx.Done():
			c.failQueued()
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-c.pubs:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		errs := c.send(batch)
		for i, p := range batch {
			if errs[i] != nil {
				c.pubErrs.Add(1)
				if p.done == nil && c.ctx.Err() == nil {
					c.log.Warn("postgres: cluster: publish", "channel", p.channel, "error", errs[i])
				}
			} else {
				c.out.Add(1)
				if p.attach != nil {
					c.attOut.Add(1)
				}
			}
			if e := p.echo; e != nil && (errs[i] != nil || e.direct) {
				// Failed: no echo will come (the local effect happens
				// anyway, as when the bus is down); direct: none was awaited.
				p.owner.dropEcho(e)
				e.run()
			}
			if p.done != nil {
				p.done <- errs[i]
			}
		}
	}
}

func (c *Cluster) failQueued() {
	for {
		select {
		case p := <-c.pubs:
			if p.echo != nil {
				p.owner.dropEcho(p.echo)
				p.echo.run()
			}
			if p.done != nil {
				p.done <- errClusterClosed
			}
		default:
			return
		}
	}
}

const (
	sqlNotify = `SELECT pg_notify($1, $2)`
	// The row and its header's NOTIFY commit together; the header is built
	// around the new id.
	sqlNotifyAttachment = `WITH a AS (INSERT INTO %s (payload) VALUES ($1) RETURNING id) ` +
		`SELECT pg_notify($2, $3::text || a.id::text || $4::text) FROM a`
)

// send publishes batch in one round trip and returns each one's error.
// Consecutive publications share a transaction (one Sync), which is what
// bounds the rate of NOTIFY, unless one is equal to an earlier one of the
// group: PostgreSQL folds equal notifications of one transaction into one,
// and two equal broadcasts must both arrive. A failed statement rolls back
// its group: all of it fails.
func (c *Cluster) send(batch []*publication) []error {
	errs := make([]error, len(batch))
	fail := func(err error) []error {
		err = fmt.Errorf("postgres: cluster: publish: %w", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	defer cancel()
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Release()
	attachSQL := fmt.Sprintf(sqlNotifyAttachment, c.table)
	p := conn.Conn().PgConn().StartPipeline(ctx)
	var groups []int // the end of each group
	seen := make(map[string]struct{}, len(batch))
	for i, pub := range batch {
		if pub.attach == nil {
			key := pub.channel + "\x00" + string(pub.payload)
			if _, dup := seen[key]; dup {
				p.SendPipelineSync()
				groups = append(groups, i)
				clear(seen)
			}
			seen[key] = struct{}{}
			p.SendQueryParams(sqlNotify, [][]byte{[]byte(pub.channel), pub.payload}, nil, nil, nil)
		} else {
			p.SendQueryParams(attachSQL,
				[][]byte{pub.attach, []byte(pub.channel), []byte(pub.prefix), []byte(pub.suffix)},
				[]uint32{17, 25, 25, 25}, []int16{1, 0, 0, 0}, nil) // bytea in binary, texts
		}
	}
	p.SendPipelineSync()
	groups = append(groups, len(batch))
	if err := p.Flush(); err != nil {
		p.Close()
		return fail(err)
	}
	isPg := func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe)
	}
	start := 0
	for _, end := range groups {
		var gerr error
		synced := false
		for k := start; k < end && gerr == nil && !synced; k++ {
			res, err := p.GetResults()
			if err == nil {
				switch r := res.(type) {
				case *pgconn.ResultReader:
					_, err = r.Close()
				case *pgconn.PipelineSync:
					synced = true // the rest was skipped after an error
				default:
					err = fmt.Errorf("unexpected pipeline result %T", res)
				}
			}
			if err != nil && !isPg(err) {
				p.Close()
				return fail(err) // the connection failed
			}
			gerr = err
		}
		// The group's Sync: its commit, or the end of its rollback. An
		// error at commit is followed by the Sync's own result.
		for tries := 0; !synced && tries < 2; tries++ {
			res, err := p.GetResults()
			if err != nil && !isPg(err) {
				p.Close()
				return fail(err)
			}
			if err != nil {
				gerr = err
				continue
			}
			if _, ok := res.(*pgconn.PipelineSync); !ok {
				p.Close()
				return fail(fmt.Errorf("unexpected pipeline result %T", res))
			}
			synced = true
		}
		if gerr != nil {
			for k := start; k < end; k++ {
				errs[k] = fmt.Errorf("postgres: cluster: publish: %w", gerr)
			}
		}
		start = end
	}
	if err := p.Close(); err != nil {
		return fail(err)
	}
	return errs
}
