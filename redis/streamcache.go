package redis

import (
	"slices"
	"sync"

	"github.com/sessiongate/sessiongate/socketio"
)

// readCache keeps, per namespace, the broadcasts this node's follower has
// read from the stream (Read), so that a restore or a range on this node
// is served from memory instead of a scan of the stream: a recovery after
// a drop of d seconds reads every entry of the cluster since its offset
// (10,000 per second of drop at 10,000 events/s), for each socket that
// recovers; 500 of them at once, each decoding its range from Redis, took
// longer than the request timeout (docs/benchmarks.md §19). The cache
// holds what the follower decoded anyway, within the stream's own bounds
// (MaxEntries, the window).
type readCache struct {
	mu    sync.Mutex
	byNsp map[string]*nsCache
}

// nsCache holds every non-volatile broadcast of a namespace in (from, to]
// of the stream, in order.
type nsCache struct {
	from, to streamID
	entries  []cachedEntry
}

type cachedEntry struct {
	id streamID
	e  socketio.LogEntry
}

// add records what a Read after after returned, up to upTo. A read that
// does not follow the last one (another reader of the namespace, a
// restart) starts the cache again from after.
func (c *readCache) add(nsp string, after, upTo streamID, es []socketio.LogEntry, maxEntries int, cutoff streamID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byNsp == nil {
		c.byNsp = make(map[string]*nsCache)
	}
	nc := c.byNsp[nsp]
	if nc == nil || nc.to != after {
		nc = &nsCache{from: after, to: after}
		c.byNsp[nsp] = nc
	}
	for _, e := range es {
		if e.Volatile {
			continue // never replayed
		}
		if id, ok := parseID(e.Offset); ok {
			nc.entries = append(nc.entries, cachedEntry{id, e})
		}
	}
	nc.to = upTo
	// Within the stream's bounds: the oldest go first. The slice is only
	// ever resliced from the front or appended to, never written in
	// place, so a view taken by span stays valid.
	drop := 0
	for drop < len(nc.entries) && (len(nc.entries)-drop > maxEntries || nc.entries[drop].id.less(cutoff)) {
		drop++
	}
	if drop > 0 {
		nc.from = nc.entries[drop-1].id
		nc.entries = nc.entries[drop:]
	}
}

// reset forgets what the namespace's reads held (they skipped entries).
func (c *readCache) reset(nsp string) {
	c.mu.Lock()
	delete(c.byNsp, nsp)
	c.mu.Unlock()
}

// span returns the cached broadcasts of nsp in (after, until], and
// whether the cache holds all of them.
func (c *readCache) span(nsp string, after, until streamID) ([]cachedEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	nc := c.byNsp[nsp]
	if nc == nil || after.less(nc.from) || nc.to.less(until) {
		return nil, false
	}
	es := nc.entries
	i, _ := slices.BinarySearchFunc(es, after, func(x cachedEntry, id streamID) int {
		switch {
		case x.id.less(id):
			return -1
		case id.less(x.id):
			return 1
		}
		return 0
	})
	if i < len(es) && es[i].id == after {
		i++
	}
	j := i
	for j < len(es) && !until.less(es[j].id) {
		j++
	}
	return es[i:j:j], true
}
