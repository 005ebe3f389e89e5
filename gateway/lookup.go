package gateway

import (
	"context"
	"sync"

	"github.com/sessiongate/sessiongate"
)

// lookupConcurrency is the most store calls the handshakes' session lookups
// have in flight at once. Lookups that arrive while they are all busy wait
// and go together in the next call (SessionStore.Sessions, one round trip),
// so a burst of handshakes costs a few statements rather than one each,
// while a lone handshake is never delayed. One call in flight gave the
// highest handshake rate and the lowest p99 at 100 concurrent handshakes
// (bench/run.sh handshake; two calls: about 4% fewer handshakes per second):
// the database's work per statement outweighs the wait for the call ahead.
const lookupConcurrency = 1

// sessionLoader reads the session rows of handshakes, coalescing concurrent
// lookups into batches as a group commit does: no lookup waits for a batch
// to fill, only for a store call already in flight.
type sessionLoader struct {
	store sessiongate.SessionStore

	mu      sync.Mutex
	pending []*lookup
	active  int // store callers running (leaders and drainers)
}

// lookup is one handshake's request for its row.
type lookup struct {
	ctx  context.Context // the handshake's; bounds a lookup run alone
	sid  string
	sess *sessiongate.Session
	err  error
	done chan struct{} // closed when sess or err is set
}

// session returns the row with id sid as SessionStore.Session does (an
// *Error with ECodeNotFound when there is none). It returns ctx.Err() as
// soon as ctx is done, even while a batch holding the lookup runs on.
func (l *sessionLoader) session(ctx context.Context, sid string) (*sessiongate.Session, error) {
	lk := &lookup{ctx: ctx, sid: sid, done: make(chan struct{})}
	l.mu.Lock()
	l.pending = append(l.pending, lk)
	lead := l.active < lookupConcurrency
	if lead {
		l.active++
	}
	l.mu.Unlock()
	if lead {
		// Run one batch (normally holding lk) here; leave what queued
		// meanwhile to a drainer so that this handshake goes on at once.
		if batch := l.next(); batch != nil {
			l.load(batch)
			l.mu.Lock()
			more := len(l.pending) > 0
			if !more {
				l.active--
			}
			l.mu.Unlock()
			if more {
				go l.drain()
			}
		}
	}
	select {
	case <-lk.done:
		return lk.sess, lk.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// next takes up to batchSize pending lookups, or, when none is pending,
// gives up the caller's slot and returns nil.
func (l *sessionLoader) next() []*lookup {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(l.pending), batchSize)
	if n == 0 {
		l.active--
		return nil
	}
	batch := l.pending[:n:n]
	if n == len(l.pending) {
		l.pending = nil
	} else {
		l.pending = l.pending[n:]
	}
	return batch
}

// drain loads batches until nothing is pending.
func (l *sessionLoader) drain() {
	for batch := l.next(); batch != nil; batch = l.next() {
		l.load(batch)
	}
}

// load answers every lookup of batch with one store call. Lookups whose
// handshake has ended are answered without asking the store.
func (l *sessionLoader) load(batch []*lookup) {
	live := batch[:0] // batch is ours: next cut it off the queue
	for _, lk := range batch {
		if err := lk.ctx.Err(); err != nil {
			lk.err = err
			close(lk.done)
			continue
		}
		live = append(live, lk)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// Alone: the handshake's own context bounds the call, so a client
		// that leaves cancels it.
		lk := live[0]
		ctx, cancel := context.WithTimeout(lk.ctx, storeTimeout)
		lk.sess, lk.err = l.store.Session(ctx, lk.sid)
		cancel()
		close(lk.done)
		return
	}
	// Shared by several handshakes: no single one of them may cancel it.
	sids := make([]string, len(live))
	for i, lk := range live {
		sids[i] = lk.sid
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	rows, err := l.store.Sessions(ctx, sids)
	cancel()
	for _, lk := range live {
		switch s := rows[lk.sid]; {
		case err != nil:
			lk.err = err
		case s == nil:
			lk.err = sessiongate.Errorf(sessiongate.ECodeNotFound, "session not found")
		default:
			lk.sess = s
		}
		close(lk.done)
	}
}
