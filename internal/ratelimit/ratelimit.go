// Package ratelimit is the project's one token bucket: a bucket per key
// (a client address, a user), refilled evenly, debited for what other
// nodes of a cluster report spent, with the set of buckets bounded so
// that a client with many addresses cannot grow it without end.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// MaxKeys bounds the buckets a Limiter tracks. When that many are tracked
// and none has refilled, new keys share one overflow bucket: a flood of
// fresh addresses is limited as one client instead of growing the map.
const MaxKeys = 100_000

// Limiter is a token bucket per key: burst tokens, refilled at rate tokens
// per second. It is safe for concurrent use.
type Limiter struct {
	rate, burst float64

	mu        sync.Mutex
	buckets   map[string]*bucket
	overflow  bucket
	nextPrune int
}

type bucket struct {
	tokens float64
	last   time.Time
}

// minPrune is the map size below which no prune is attempted.
const minPrune = 1024

// New returns a Limiter of rate tokens per second and burst tokens.
func New(rate, burst float64) *Limiter {
	return &Limiter{
		rate:      rate,
		burst:     burst,
		buckets:   make(map[string]*bucket),
		overflow:  bucket{tokens: burst},
		nextPrune: minPrune,
	}
}

// Allow takes a token from key's bucket at time now. When none is left it
// reports false and how long until one is.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.nextPrune {
			l.pruneLocked(now)
		}
		if len(l.buckets) >= MaxKeys {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[key] = b
		}
	}
	return b.take(now, l.rate, l.burst)
}

// take refills b for the time since its last use and takes a token.
func (b *bucket) take(now time.Time, rate, burst float64) (bool, time.Duration) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed.Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// Debit takes n tokens, spent elsewhere (on another node of a cluster), from
// key's bucket at time now, leaving it at no less than -debt (a bucket
// already deeper in debt stays as it is): what others report is paid back
// in bounded time. A key without a bucket is created full first when
// create is true (its user may spend here), and ignored otherwise (nothing
// spent here, nothing to charge). Past MaxKeys buckets a new key is
// ignored.
func (l *Limiter) Debit(key string, n, debt float64, now time.Time, create bool) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if !create || len(l.buckets) >= MaxKeys {
			return
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	b.tokens = max(min(b.tokens, -debt), b.tokens-n)
}

// Tokens returns the tokens key's bucket holds at time now (burst for a
// key without one), negative while it is in debt.
func (l *Limiter) Tokens(key string, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return l.burst
	}
	return min(l.burst, b.tokens+max(0, now.Sub(b.last).Seconds())*l.rate)
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Bucket is a single token bucket, for a budget that belongs to one object
// (such as one connection) rather than to a key. It is not safe for
// concurrent use: its owner serializes calls.
type Bucket struct {
	rate, burst float64
	b           bucket
}

// NewBucket returns a full Bucket of rate tokens per second and burst tokens.
func NewBucket(rate, burst float64, now time.Time) Bucket {
	return Bucket{rate: rate, burst: burst, b: bucket{tokens: burst, last: now}}
}

// Allow takes a token at time now, reporting false when none is left.
func (b *Bucket) Allow(now time.Time) bool {
	ok, _ := b.b.take(now, b.rate, b.burst)
	return ok
}

// pruneLocked forgets buckets that have refilled: they would start full.
func (l *Limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	l.nextPrune = min(MaxKeys, max(minPrune, 2*len(l.buckets)))
}

// Key is the bucket key of a client address: the address itself for IPv4,
// its /64 network for IPv6 (one subscriber is commonly given a whole /64,
// so a key per /128 would be no limit at all). An unparsable address is its
// own key.
func Key(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}
