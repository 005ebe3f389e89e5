package socketio

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// slowJoin is a MemoryAdapter whose AddAll first calls before, as a
// cluster adapter waits for its SUBSCRIBE.
type slowJoin struct {
	*MemoryAdapter
	before func(id string)
}

func (a slowJoin) AddAll(ctx context.Context, id string, rooms []string) error {
	a.before(id)
	return a.MemoryAdapter.AddAll(ctx, id, rooms)
}

// TestRecoverySharedLogSlowJoin: what a node delivers while a recovered
// socket is registered but not yet in its rooms (its adapter's AddAll
// waiting) is replayed to it once, in order, before its CONNECT.
func TestRecoverySharedLogSlowJoin(t *testing.T) {
	var sid string
	var nss [2]*Namespace
	var watcher *fakeConn
	_, srvs, nss := newSharedServers(t, func(m *MemoryAdapter) Adapter {
		return slowJoin{m, func(id string) {
			if id == sid {
				// Delivered by node 1 (the watcher got it) while the
				// recovered socket is not in "r".
				nss[0].To("r").Emit(ctx, "e", 2)
				expectOffset(t, watcher, `2["e",2]`)
			}
		}}
	})
	watcher = dial(t, srvs[1])
	connectRecovery(t, watcher, `{"key":"W"}`)
	c1 := dial(t, srvs[0])
	id, pid, _, off, _ := connectRecovery(t, c1, `{"key":"A"}`)
	c1.Close()
	for len(nss[0].Sockets()) > 0 {
		time.Sleep(time.Millisecond)
	}
	nss[0].To("r").Emit(ctx, "e", 1)
	expectOffset(t, watcher, `2["e",1]`)
	sid = id
	c2 := dial(t, srvs[1])
	c2.in(fmt.Sprintf(`0{"key":"A","pid":%q,"offset":%q}`, pid, off))
	expectOffset(t, c2, `2["e",1]`)
	expectOffset(t, c2, `2["e",2]`)
	c2.expect(fmt.Sprintf(`0{"sid":%q,"pid":%q}`, sid, pid))
	c2.expectPrefix(`2["recovery",{"recovered":true,"missed":false},"`)
	nss[0].To("r").Emit(ctx, "e", 3)
	expectOffset(t, c2, `2["e",3]`)
	c2.expectSilence()
}
