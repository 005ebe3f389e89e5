package redis

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sessiongate/sessiongate/socketio"
)

func cacheEntries(ids ...uint64) []socketio.LogEntry {
	var out []socketio.LogEntry
	for _, ms := range ids {
		out = append(out, socketio.LogEntry{Offset: streamID{ms: ms}.String(), Data: fmt.Appendf(nil, `["e",%d]`, ms)})
	}
	return out
}

func spanIDs(es []cachedEntry) []uint64 {
	var out []uint64
	for _, x := range es {
		out = append(out, x.id.ms)
	}
	return out
}

// TestReadCache: the cache answers a span it holds whole, from a run of
// reads that follow each other; a read that does not follow starts it
// again; bounds drop the oldest, and what is dropped is no longer held.
func TestReadCache(t *testing.T) {
	var c readCache
	id := func(ms uint64) streamID { return streamID{ms: ms} }
	c.add("/", id(10), id(13), cacheEntries(11, 13), 100, id(0))
	vol := cacheEntries(15)
	vol[0].Volatile = true
	c.add("/", id(13), id(16), append(vol, cacheEntries(16)...), 100, id(0))
	if es, ok := c.span("/", id(10), id(16)); !ok || !slices.Equal(spanIDs(es), []uint64{11, 13, 16}) {
		t.Errorf("(10, 16]: %v %v, want 11 13 16 (not the volatile 15)", spanIDs(es), ok)
	}
	if es, ok := c.span("/", id(11), id(13)); !ok || !slices.Equal(spanIDs(es), []uint64{13}) {
		t.Errorf("(11, 13]: %v %v", spanIDs(es), ok)
	}
	if es, ok := c.span("/", id(12), id(14)); !ok || !slices.Equal(spanIDs(es), []uint64{13}) {
		t.Errorf("(12, 14]: %v %v", spanIDs(es), ok)
	}
	for _, bad := range [][2]uint64{{9, 16}, {10, 17}} {
		if _, ok := c.span("/", id(bad[0]), id(bad[1])); ok {
			t.Errorf("(%d, %d] is not all held", bad[0], bad[1])
		}
	}
	if _, ok := c.span("/b", id(10), id(16)); ok {
		t.Error("another namespace is not held")
	}
	// A read that does not follow: held from its start only.
	c.add("/", id(20), id(21), cacheEntries(21), 100, id(0))
	if _, ok := c.span("/", id(10), id(21)); ok {
		t.Error("(10, 21] after a jump: not held")
	}
	if es, ok := c.span("/", id(20), id(21)); !ok || !slices.Equal(spanIDs(es), []uint64{21}) {
		t.Errorf("(20, 21]: %v %v", spanIDs(es), ok)
	}
	// Bounds: 2 entries, then a cutoff.
	c.add("/", id(21), id(24), cacheEntries(22, 23, 24), 2, id(0))
	if _, ok := c.span("/", id(21), id(24)); ok {
		t.Error("(21, 24] with 21 and 22 dropped: not held")
	}
	if es, ok := c.span("/", id(22), id(24)); !ok || !slices.Equal(spanIDs(es), []uint64{23, 24}) {
		t.Errorf("(22, 24]: %v %v", spanIDs(es), ok)
	}
	c.add("/", id(24), id(25), nil, 2, id(24))
	if es, ok := c.span("/", id(23), id(25)); !ok || !slices.Equal(spanIDs(es), []uint64{24}) {
		t.Errorf("(23, 25] past the cutoff 24: %v %v", spanIDs(es), ok)
	}
	c.reset("/")
	if _, ok := c.span("/", id(24), id(25)); ok {
		t.Error("reset: nothing held")
	}
}
