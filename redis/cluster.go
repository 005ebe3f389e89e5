package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiongate/sessiongate/internal/backoff"
	"github.com/sessiongate/sessiongate/socketio"
)

// Options configure a Cluster. Zero fields take the defaults beside them.
type Options struct {
	// URL is the Redis server: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS. The user and password are sent with HELLO (AUTH).
	URL string
	// Key is the channel prefix, the Node adapters' `key`: "socket.io".
	Key string
	// RequestTimeout bounds a cross-node request (fetchSockets, allRooms,
	// serverSideEmitWithAck): 5s, as Node's requestsTimeout. It bounds
	// each PUBLISH too.
	RequestTimeout time.Duration
	// MaxMessageBytes is the largest bus message decoded: 16 MiB. Larger
	// ones are dropped and counted. Other nodes' requests waiting to be
	// handled hold at most twice that; beyond it they are dropped too.
	MaxMessageBytes int
	// MaxPendingRequests bounds this node's requests waiting for answers,
	// per namespace: 1024. Beyond it a request fails at once.
	MaxPendingRequests int
	// UnsubscribeLinger is how long a room's channel stays subscribed after
	// its last local member left: 2s, so a socket that leaves and joins
	// again (a reconnecting tab) costs no SUBSCRIBE round trip.
	UnsubscribeLinger time.Duration
	// TLSConfig, when set, is used for rediss:// (a private CA, client
	// certificates); its ServerName defaults to the URL's host.
	TLSConfig *tls.Config
	// SkipSocketIDChannels: do not subscribe each local socket's own channel
	// "<key>#<nsp>#<id>#" (subscribed with its first rooms, in the same
	// round trip), where a Node publisher's io.to(sid) goes. Set it when
	// no Node publisher addresses sessiongate sockets by id.
	SkipSocketIDChannels bool
	// ClientName is the connections' CLIENT SETNAME: "sessiongate".
	ClientName string
	// StreamDelivery: the sessiongate nodes deliver broadcasts from a
	// shared recovery log (a StreamLog, socketio.SharedLog), not from
	// pub/sub. Broadcasts are still published (PublishRemote), for Node
	// peers on @socket.io/redis-adapter, with a uid that Node's never is
	// (it starts with "sg~"): the other sessiongate nodes, which got
	// them from the stream, skip them. Every node must agree on it.
	StreamDelivery bool
	// Logger receives the outages and dropped messages; nil:
	// slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Key == "" {
		o.Key = "socket.io"
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 16 << 20
	}
	if o.MaxPendingRequests <= 0 {
		o.MaxPendingRequests = 1024
	}
	if o.UnsubscribeLinger <= 0 {
		o.UnsubscribeLinger = 2 * time.Second
	}
	if o.ClientName == "" {
		o.ClientName = "sessiongate"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are a Cluster's counters since NewCluster, for metrics. Summed over
// the nodes of a cluster they count the bus traffic of the whole cluster.
type Stats struct {
	MessagesIn, MessagesOut uint64 // bus messages received (before any drop) and published
	BytesIn, BytesOut       uint64
	// Dropped counts received messages not delivered: for a room this node
	// does not hold, its own, another namespace's.
	Dropped uint64
	// Malformed counts received messages that did not decode or were
	// larger than MaxMessageBytes.
	Malformed uint64
	// RequestTimeouts counts this node's requests that did not get every
	// answer in time.
	RequestTimeouts uint64
	// PublishErrors counts messages this node failed to publish (Redis
	// unreachable): lost for the other nodes.
	PublishErrors uint64
	// Outages counts losses of the subscriber connection. Messages
	// published during an outage are lost for this node only; Redis
	// cannot say how many.
	Outages uint64
	// Connected: the subscriber connection is up and subscribed.
	Connected bool
	// Subscriptions is the number of channels subscribed (or being).
	Subscriptions int
}

// ErrClosed is returned by the operations of a closed Cluster.
var ErrClosed = errors.New("redis: cluster closed")

// Cluster is one node's connection to the Redis bus: a client for
// publishing and requests, and one dedicated subscriber connection shared
// by the adapters of every namespace. It serves one socketio.Server (its
// namespaces' channels are its own); it is safe for concurrent use.
type Cluster struct {
	opts   Options
	client rueidis.Client
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	in, out, bytesIn, bytesOut, dropped, malformed atomic.Uint64
	timeouts, pubErrs, outages                     atomic.Uint64
	connected                                      atomic.Bool
	down                                           atomic.Bool // in an outage (after a first connection)

	mu       sync.Mutex
	subs     map[string]*subscription // by channel
	ops      []subOp                  // SUBSCRIBE/UNSUBSCRIBE to send, in order
	kick     chan struct{}            // ops were queued
	adapters map[*Adapter]struct{}
	closed   bool
}

// subscription is one subscribed channel and what handles its messages.
type subscription struct {
	handle    func(payload string)
	confirmed chan struct{} // closed on the SUBSCRIBE confirmation
	isConf    bool
	held      func() bool // a local socket is in the room; nil: a fixed channel
	joining   int         // AddAll calls between subscribing and joining locally
	linger    *time.Timer // pending UNSUBSCRIBE
}

type subOp struct {
	unsubscribe bool
	channel     string
}

// NewCluster connects to Redis (it fails if the server does not answer a
// PING within ctx) and starts the subscriber connection, which reconnects
// on its own with backoff and subscribes again to every channel it holds.
func NewCluster(ctx context.Context, opts Options) (*Cluster, error) {
	opts.defaults()
	client, err := newClient(ctx, opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:     opts,
		client:   client,
		log:      opts.Logger,
		done:     make(chan struct{}),
		subs:     make(map[string]*subscription),
		kick:     make(chan struct{}, 1),
		adapters: make(map[*Adapter]struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	return c, nil
}

// newClient connects to the Redis of opts (URL, TLSConfig, ClientName)
// and checks that it answers a PING within ctx.
func newClient(ctx context.Context, opts Options) (rueidis.Client, error) {
	copts, err := rueidis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: parse URL: %w", err)
	}
	if opts.TLSConfig != nil {
		t := opts.TLSConfig.Clone()
		if t.ServerName == "" && copts.TLSConfig != nil {
			t.ServerName = copts.TLSConfig.ServerName
		}
		copts.TLSConfig = t
	}
	copts.DisableCache = true
	copts.ClientName = opts.ClientName
	copts.DisableRetry = true // a broadcast is not retried behind the caller's back
	client, err := rueidis.NewClient(copts)
	if err != nil {
		return nil, fmt.Errorf("redis: connect to %s: %w", redactURL(opts.URL), err)
	}
	if err := client.Do(ctx, client.B().Ping().Build()).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", redactURL(opts.URL), err)
	}
	return client, nil
}

// redactURL drops the password of a Redis URL, for errors and logs.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndex(u, "@"); j > i {
			return u[:i+3] + "…@" + u[j+1:]
		}
	}
	return u
}

// Close closes every adapter of the cluster and the connections to Redis.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ads := make([]*Adapter, 0, len(c.adapters))
	for a := range c.adapters {
		ads = append(ads, a)
	}
	c.mu.Unlock()
	c.cancel() // first: nothing waits for Redis any more
	for _, a := range ads {
		a.shutdown()
	}
	<-c.done
	c.client.Close()
	return nil
}

// Stats returns the cluster's counters.
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	n := len(c.subs)
	c.mu.Unlock()
	return Stats{
		MessagesIn: c.in.Load(), MessagesOut: c.out.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Dropped: c.dropped.Load(), Malformed: c.malformed.Load(),
		RequestTimeouts: c.timeouts.Load(), PublishErrors: c.pubErrs.Load(),
		Outages: c.outages.Load(), Connected: c.connected.Load(),
		Subscriptions: n,
	}
}

// Ready reports whether the node is on the bus: Redis answers a PING and
// the subscriber connection is up. For /readyz.
func (c *Cluster) Ready(ctx context.Context) error {
	if err := c.client.Do(ctx, c.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	if !c.connected.Load() {
		return errors.New("redis: subscriber connection down")
	}
	return nil
}

// publish sends payload on channel, counted. It waits at most
// RequestTimeout: a Redis that stopped answering would otherwise hold the
// caller (a broadcast, an HTTP publish) for the client's connection timeout
// (10 s).
func (c *Cluster) publish(ctx context.Context, channel string, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	err := c.client.Do(ctx, c.client.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()).Error()
	if err != nil {
		c.pubErrs.Add(1)
		return fmt.Errorf("redis: publish on %s: %w", channel, err)
	}
	c.out.Add(1)
	c.bytesOut.Add(uint64(len(payload)))
	return nil
}

// numSub returns the number of subscribers of channel (PUBSUB NUMSUB).
func (c *Cluster) numSub(ctx context.Context, channel string) (int, error) {
	m, err := c.client.Do(ctx, c.client.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
	if err != nil {
		return 0, fmt.Errorf("redis: PUBSUB NUMSUB: %w", err)
	}
	return int(m[channel]), nil
}

// subscribe subscribes channel if it is not yet and waits for the SUBSCRIBE
// confirmation (or ctx). held reports whether a local socket is in the
// channel's room; nil makes a fixed channel (a namespace's own), never
// unsubscribed on its own. A room's caller holds a joining reference until
// it calls joined, so the channel is not lingered away between the
// confirmation and the local join.
func (c *Cluster) subscribe(ctx context.Context, channel string, handle func(string), held func() bool) error {
	wait, err := c.acquire(channel, handle, held)
	if err != nil {
		return err
	}
	if err := c.confirmed(ctx, wait); err != nil {
		if held != nil {
			c.joined(channel)
		}
		return err
	}
	return nil
}

// acquire is subscribe without the wait: it returns what confirmed waits
// on, so that several channels are subscribed in one round trip.
func (c *Cluster) acquire(channel string, handle func(string), held func() bool) (<-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	s := c.subs[channel]
	if s == nil {
		s = &subscription{handle: handle, held: held, confirmed: make(chan struct{})}
		c.subs[channel] = s
		c.queueLocked(subOp{channel: channel})
	}
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	if held != nil {
		s.joining++
	}
	return s.confirmed, nil
}

// confirmed waits for a SUBSCRIBE confirmation of acquire.
func (c *Cluster) confirmed(ctx context.Context, wait <-chan struct{}) error {
	if c.down.Load() {
		// In an outage nothing reaches this node anyway: the join does not
		// wait for Redis, and the channel is subscribed on reconnecting.
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// joined releases a joining reference to channel, and schedules its
// UNSUBSCRIBE if no local socket is in its room.
func (c *Cluster) joined(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[channel]; s != nil {
		s.joining--
		c.lingerLocked(channel, s)
	}
}

// release schedules the UNSUBSCRIBE of channel if no local socket is in its
// room (after the last one left).
func (c *Cluster) release(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[channel]; s != nil {
		c.lingerLocked(channel, s)
	}
}

// lingerLocked starts the linger of an unheld room channel; at its end the
// channel is unsubscribed unless a socket joined meanwhile.
func (c *Cluster) lingerLocked(channel string, s *subscription) {
	if s.held == nil || s.linger != nil || s.joining > 0 || c.closed || s.held() {
		return
	}
	s.linger = time.AfterFunc(c.opts.UnsubscribeLinger, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.subs[channel] != s || s.linger == nil {
			return
		}
		s.linger = nil
		if s.joining > 0 || s.held() {
			return
		}
		delete(c.subs, channel)
		c.queueLocked(subOp{unsubscribe: true, channel: channel})
	})
}

// unsubscribeFixed drops a namespace's own channel (its adapter closed).
func (c *Cluster) unsubscribeFixed(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[channel]; s != nil {
		if s.linger != nil {
			s.linger.Stop()
		}
		delete(c.subs, channel)
		c.queueLocked(subOp{unsubscribe: true, channel: channel})
	}
}

func (c *Cluster) queueLocked(op subOp) {
	c.ops = append(c.ops, op)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run keeps the subscriber connection: it subscribes every channel held,
// sends the queued SUBSCRIBE/UNSUBSCRIBE commands in order, and on a
// disconnection counts the outage, waits (backoff) and starts again.
func (c *Cluster) run() {
	defer close(c.done)
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	var down time.Time
	for c.ctx.Err() == nil {
		err := c.session(func() {
			c.down.Store(false)
			if !down.IsZero() {
				c.log.Warn("redis: subscriber connection restored; messages published meanwhile were lost for this node",
					"down", time.Since(down).Round(time.Millisecond))
				down = time.Time{}
			}
			bo.Reset()
		})
		if c.ctx.Err() != nil {
			return
		}
		c.down.Store(true)
		if c.connected.Swap(false) || down.IsZero() {
			c.outages.Add(1)
			down = time.Now()
			c.log.Error("redis: subscriber connection lost; reconnecting", "err", err)
		}
		if !bo.Wait(c.ctx) {
			return
		}
	}
}

// session runs one subscriber connection until it fails.
func (c *Cluster) session(up func()) error {
	d, release := c.client.Dedicate()
	defer release()
	wait := d.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage:      c.onMessage,
		OnSubscription: c.onSubscription,
	})
	c.mu.Lock()
	c.ops = c.ops[:0]
	chans := make([]string, 0, len(c.subs))
	for ch := range c.subs {
		chans = append(chans, ch)
	}
	c.mu.Unlock()
	if err := c.send(d, subOp{}, chans); err != nil {
		return err
	}
	if err := d.Do(c.ctx, d.B().Ping().Build()).Error(); err != nil {
		return err
	}
	c.connected.Store(true)
	up()
	for {
		select {
		case <-c.ctx.Done():
			return nil
		case err := <-wait:
			if err == nil {
				err = errors.New("connection closed")
			}
			return err
		case <-c.kick:
			c.mu.Lock()
			ops := c.ops
			c.ops = nil
			c.mu.Unlock()
			// Consecutive ops of one kind go in one command.
			for i := 0; i < len(ops); {
				j := i
				var chans []string
				for j < len(ops) && ops[j].unsubscribe == ops[i].unsubscribe {
					chans = append(chans, ops[j].channel)
					j++
				}
				if err := c.send(d, ops[i], chans); err != nil {
					return err
				}
				i = j
			}
		}
	}
}

// send writes SUBSCRIBE (or UNSUBSCRIBE, as kind) of chans, 512 at a time.
func (c *Cluster) send(d rueidis.DedicatedClient, kind subOp, chans []string) error {
	for len(chans) > 0 {
		n := min(len(chans), 512)
		var cmd rueidis.Completed
		if kind.unsubscribe {
			cmd = d.B().Unsubscribe().Channel(chans[:n]...).Build()
		} else {
			cmd = d.B().Subscribe().Channel(chans[:n]...).Build()
		}
		if err := d.Do(c.ctx, cmd).Error(); err != nil {
			return err
		}
		chans = chans[n:]
	}
	return nil
}

func (c *Cluster) onSubscription(s rueidis.PubSubSubscription) {
	if s.Kind != "subscribe" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sub := c.subs[s.Channel]; sub != nil && !sub.isConf {
		sub.isConf = true
		close(sub.confirmed)
	}
}

// onMessage runs on the subscriber connection's reading goroutine: it must
// not wait for Redis (a SUBSCRIBE confirmation arrives on this goroutine).
func (c *Cluster) onMessage(m rueidis.PubSubMessage) {
	c.in.Add(1)
	c.bytesIn.Add(uint64(len(m.Message)))
	c.mu.Lock()
	s := c.subs[m.Channel]
	c.mu.Unlock()
	if s == nil {
		c.dropped.Add(1) // unsubscribed meanwhile
		return
	}
	if len(m.Message) > c.opts.MaxMessageBytes {
		c.malformed.Add(1)
		c.log.Warn("redis: bus message too large, dropped", "channel", m.Channel, "bytes", len(m.Message))
		return
	}
	s.handle(m.Message)
}

// Adapter returns the cluster adapter of the namespace local belongs to,
// for socketio.Options.NewAdapter. It subscribes the namespace's channels
// in the background; until they are confirmed, requests of other nodes are
// not seen.
func (c *Cluster) Adapter(local *socketio.MemoryAdapter) socketio.Adapter {
	a := newAdapter(c, local)
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.adapters[a] = struct{}{}
	}
	c.mu.Unlock()
	if !closed {
		a.start()
	}
	return a
}

func (c *Cluster) forget(a *Adapter) {
	c.mu.Lock()
	delete(c.adapters, a)
	c.mu.Unlock()
}

// uid returns n random base62 characters, as Node's uid2.
func uid(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		for {
			var r [1]byte
			_, _ = rand.Read(r[:])
			if r[0] < 248 { // 4 × 62: no modulo bias
				b[i] = alphabet[r[0]%62]
				break
			}
		}
	}
	return string(b)
}
