package engineio

import (
	"hash/maphash"
	"sync"
	"time"
)

// shardCount is the number of registry shards; a power of two.
const shardCount = 32

// shard is one part of the session registry, so that handshakes and the
// scheduler's walk contend on small locks.
type shard struct {
	mu sync.Mutex
	m  map[string]*Socket
}

var shardSeed = maphash.MakeSeed()

func (srv *Server) shard(id string) *shard {
	return &srv.shards[maphash.String(shardSeed, id)&(shardCount-1)]
}

func (srv *Server) register(s *Socket) {
	sh := srv.shard(s.id)
	sh.mu.Lock()
	sh.m[s.id] = s
	sh.mu.Unlock()
	srv.count.Add(1)
}

// unregister removes s; it is safe to call more than once. The count of
// open sessions is decremented by Socket.end, not here.
func (srv *Server) unregister(s *Socket) {
	sh := srv.shard(s.id)
	sh.mu.Lock()
	delete(sh.m, s.id)
	sh.mu.Unlock()
}

func (srv *Server) lookup(id string) *Socket {
	sh := srv.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

// sockets appends every registered socket to buf.
func (srv *Server) sockets(buf []*Socket) []*Socket {
	for i := range srv.shards {
		sh := &srv.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			buf = append(buf, s)
		}
		sh.mu.Unlock()
	}
	return buf
}

// tickInterval is the scheduler period for a ping interval:
// interval/10, at most 1s and at least 20ms.
func tickInterval(ping time.Duration) time.Duration {
	return min(max(ping/10, 20*time.Millisecond), time.Second)
}

// schedule is the one goroutine that runs heartbeats and deadlines for all
// sockets of srv, walking the registry every period.
func (srv *Server) schedule(period time.Duration) {
	defer close(srv.done)
	t := time.NewTicker(period)
	defer t.Stop()
	var batch []*Socket
	for {
		select {
		case <-srv.stop:
			return
		case <-t.C:
		}
		batch = srv.sockets(batch[:0])
		now := srv.now()
		for _, s := range batch {
			s.tick(now)
		}
		clear(batch)
	}
}
