package httpapi

import "sync/atomic"

// Results of POST /api/publish, the label values of Stats.Publishes, and of
// the room operations (Stats.RoomOps).
const (
	PublishOK           = "ok"
	PublishUnauthorized = "unauthorized"
	PublishBadRequest   = "bad_request"
	PublishError        = "error"
)

// Results of POST /auth/login, the label values of Stats.Logins.
const (
	LoginOK                 = "ok"
	LoginInvalidCredentials = "invalid_credentials"
	LoginRateLimited        = "rate_limited"
	LoginBadRequest         = "bad_request"
	LoginCrossOrigin        = "cross_origin"           // a foreign Origin or Sec-Fetch-Site (403)
	LoginUnsupportedMedia   = "unsupported_media_type" // a body that is not application/json (415)
)

// Stats is a snapshot of the Handler's counters. Every result has an entry,
// zero or not; the counters only grow.
type Stats struct {
	Publishes map[string]uint64 // POST /api/publish by result (Publish*)
	RoomOps   map[string]uint64 // POST /api/rooms/join, /api/rooms/leave, /api/disconnect by result (Publish*)
	Logins    map[string]uint64 // POST /auth/login by result (Login*)
}

// Stats returns a snapshot of the counters. It is cheap and safe to call
// concurrently (e.g. from a metrics scrape).
func (h *Handler) Stats() Stats {
	return Stats{Publishes: h.publishes.snapshot(), RoomOps: h.roomOps.snapshot(), Logins: h.logins.snapshot()}
}

// counters counts requests by a fixed set of results. The map is never
// written after newCounters, so concurrent use needs no lock.
type counters map[string]*atomic.Uint64

func newCounters(results ...string) counters {
	c := make(counters, len(results))
	for _, r := range results {
		c[r] = new(atomic.Uint64)
	}
	return c
}

// inc counts one request with result, which must be one of the set.
func (c counters) inc(result string) { c[result].Add(1) }

func (c counters) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(c))
	for r, n := range c {
		m[r] = n.Load()
	}
	return m
}
