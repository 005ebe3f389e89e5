// Package backoff is the project's one retry delay: exponential, from a
// minimum doubling up to a maximum, for loops that retry a store or a
// connection until it answers.
package backoff

import (
	"context"
	"time"
)

// Backoff is an exponential delay between retries: Min, then twice the
// last delay, up to Max. The zero value of the cursor starts at Min; set Min
// and Max (Min > 0, Max ≥ Min) before use. A Backoff is not safe for
// concurrent use: each retry loop has its own.
type Backoff struct {
	Min, Max time.Duration

	last time.Duration
}

// Next returns the delay before the next retry and advances: Min, then
// twice the last delay, never more than Max.
func (b *Backoff) Next() time.Duration {
	b.last = min(max(2*b.last, b.Min), b.Max)
	return b.last
}

// Wait sleeps for Next(), reporting false if ctx ended first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Reset makes the next delay Min again, after an attempt that worked.
func (b *Backoff) Reset() { b.last = 0 }
