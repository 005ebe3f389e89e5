package httpapi

import (
	"sync"
	"time"
)

// loginLimiter is a token bucket per remote IP: size tokens, refilled
// evenly over period. It is safe for concurrent use.
type loginLimiter struct {
	size   float64
	rate   float64 // tokens per second
	mu     sync.Mutex
	bucket map[string]*tokens
	pruned time.Time
}

type tokens struct {
	n    float64
	last time.Time
}

func newLoginLimiter(size int, period time.Duration) *loginLimiter {
	return &loginLimiter{
		size:   float64(size),
		rate:   float64(size) / period.Seconds(),
		bucket: make(map[string]*tokens),
	}
}

// allow takes a token from key's bucket. When none is left it returns false
// and how long until one is.
func (l *loginLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	b, ok := l.bucket[key]
	if !ok {
		b = &tokens{n: l.size, last: now}
		l.bucket[key] = b
	}
	b.n = min(l.size, b.n+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.n < 1 {
		wait := time.Duration((1 - b.n) / l.rate * float64(time.Second))
		return false, wait
	}
	b.n--
	return true, 0
}

// pruneLocked forgets, at most once a minute, the buckets that have refilled:
// they hold nothing a new bucket would not.
func (l *loginLimiter) pruneLocked(now time.Time) {
	if now.Sub(l.pruned) < time.Minute {
		return
	}
	l.pruned = now
	for k, b := range l.bucket {
		if b.n+now.Sub(b.last).Seconds()*l.rate >= l.size {
			delete(l.bucket, k)
		}
	}
}
