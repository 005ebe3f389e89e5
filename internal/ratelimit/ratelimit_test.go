package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

func TestAllowRefills(t *testing.T) {
	l := New(2, 2) // 2/s, burst 2
	now := time.Unix(1000, 0)
	for i := range 2 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("token %d refused", i)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("third = %v, %v; want refused, 500ms", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another key shares the bucket")
	}
	if ok, _ := l.Allow("a", now.Add(500*time.Millisecond)); !ok {
		t.Fatal("not refilled after 500ms")
	}
}

func TestKeysBounded(t *testing.T) {
	l := New(1, 1)
	now := time.Unix(1000, 0)
	for i := range MaxKeys + 10 {
		l.Allow(strconv.Itoa(i), now) // each bucket now empty: none prunable
	}
	if n := len(l.buckets); n > MaxKeys {
		t.Fatalf("%d buckets, want at most %d", n, MaxKeys)
	}
	// New keys beyond the bound share the overflow bucket, now empty.
	if ok, _ := l.Allow("fresh", now); ok {
		t.Fatal("a fresh key beyond MaxKeys got a full bucket of its own")
	}
	// Once the old buckets refill they are pruned and fresh keys get their own.
	later := now.Add(2 * time.Second)
	for i := range minPrune * 2 {
		l.Allow("new"+strconv.Itoa(i), later)
	}
	if ok, _ := l.Allow("fresh2", later.Add(time.Second)); !ok {
		t.Fatal("fresh key refused after old buckets refilled")
	}
}

func TestKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an ip", "not an ip"},
	}
	for _, tt := range tests {
		if got := Key(tt.in); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	type step struct {
		key  string
		at   time.Duration // after t0
		want bool
	}
	tests := []struct {
		name        string
		rate, burst float64
		steps       []step
	}{
		{"burst then refused", 1, 2, []step{{"a", 0, true}, {"a", 0, true}, {"a", 0, false}}},
		{"keys are separate", 1, 1, []step{{"a", 0, true}, {"b", 0, true}, {"a", 0, false}, {"b", 0, false}}},
		{"refills at rate", 2, 1, []step{{"a", 0, true}, {"a", 0, false}, {"a", 400 * time.Millisecond, false}, {"a", 500 * time.Millisecond, true}}},
		{"never above burst", 10, 2, []step{{"a", 0, true}, {"a", time.Hour, true}, {"a", time.Hour, true}, {"a", time.Hour, false}}},
		{"clock going back", 1, 1, []step{{"a", time.Second, true}, {"a", 0, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.rate, tt.burst)
			for i, s := range tt.steps {
				if got := allow(l, s.key, t0.Add(s.at)); got != s.want {
					t.Fatalf("step %d: allow(%s, +%v) = %v, want %v", i, s.key, s.at, got, s.want)
				}
			}
		})
	}
}

func TestLimiterPrunes(t *testing.T) {
	l := New(1, 1)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 * minPrune {
		allow(l, string(rune(i)), t0.Add(time.Duration(i)*time.Second))
	}
	if n := len(l.buckets); n > 2*minPrune {
		t.Errorf("%d buckets kept, want refilled ones pruned", n)
	}
}

func allow(l *Limiter, key string, now time.Time) bool {
	ok, _ := l.Allow(key, now)
	return ok
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBucket(10, 3, now)
	for i := range 3 {
		if !b.Allow(now) {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	if b.Allow(now) {
		t.Fatal("token beyond the burst allowed")
	}
	if !b.Allow(now.Add(100 * time.Millisecond)) {
		t.Fatal("no token after a refill interval")
	}
	if b.Allow(now.Add(100 * time.Millisecond)) {
		t.Fatal("two tokens from one refill interval")
	}
}

// TestDebit: a debit takes tokens from an existing bucket down to -debt at
// most (a deeper debt is kept), the debt delays the next token, a missing
// key is created only when asked to, and Tokens and Len report what is
// held.
func TestDebit(t *testing.T) {
	l := New(2, 4) // 2/s, burst 4
	now := time.Unix(1000, 0)
	l.Debit("absent", 3, 4, now, false)
	if l.Len() != 0 {
		t.Fatal("a debit without create made a bucket")
	}
	l.Debit("a", 3, 4, now, true)
	if got := l.Tokens("a", now); got != 1 {
		t.Fatalf("after a debit of 3: %v tokens, want 1", got)
	}
	l.Debit("a", 100, 8, now, false)
	if got := l.Tokens("a", now); got != -8 {
		t.Fatalf("after a debit of 100: %v tokens, want -8 (the debt allowed)", got)
	}
	l.Debit("a", 1, 4, now, false)
	if got := l.Tokens("a", now); got != -8 {
		t.Fatalf("a debit under a smaller debt allowed: %v tokens, want -8 kept", got)
	}
	ok, wait := l.Allow("a", now)
	if ok || wait != 4500*time.Millisecond {
		t.Fatalf("in debt: %v, %v; want refused, 4.5s (9 tokens at 2/s)", ok, wait)
	}
	later := now.Add(4500 * time.Millisecond)
	if ok, _ := l.Allow("a", later); !ok {
		t.Fatal("not repaid after 4.5s")
	}
	l.Debit("a", 0, 4, later, true)
	l.Debit("a", -5, 4, later, true)
	if got := l.Tokens("a", later); got != 0 {
		t.Fatalf("zero and negative debits changed the bucket: %v tokens", got)
	}
	if l.Tokens("never", now) != 4 || l.Len() != 1 {
		t.Fatalf("Tokens of a missing key %v, Len %d", l.Tokens("never", now), l.Len())
	}
}
