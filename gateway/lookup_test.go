package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// mapStore serves rows from a map; Session calls wait on gate when it is
// set. It records the ids of every call.
type mapStore struct {
	sessiongate.SessionStore
	rows map[string]*sessiongate.Session
	err  error         // returned by Sessions
	gate chan struct{} // Session waits for it (or ctx) when non-nil

	mu       sync.Mutex
	single   []string
	batches  [][]string
	inSingle chan struct{} // receives once per Session call entered, if set
}

func (s *mapStore) Session(ctx context.Context, sid string) (*sessiongate.Session, error) {
	s.mu.Lock()
	s.single = append(s.single, sid)
	s.mu.Unlock()
	if s.inSingle != nil {
		s.inSingle <- struct{}{}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r := s.rows[sid]; r != nil {
		return r, nil
	}
	return nil, sessiongate.Errorf(sessiongate.ECodeNotFound, "session not found")
}

func (s *mapStore) Sessions(ctx context.Context, sids []string) (map[string]*sessiongate.Session, error) {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(sids))
	s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	out := make(map[string]*sessiongate.Session)
	for _, sid := range sids {
		if r := s.rows[sid]; r != nil {
			out[sid] = r
		}
	}
	return out, nil
}

// waitPending waits until n lookups are queued in l.
func waitPending(t *testing.T, l *sessionLoader, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		l.mu.Lock()
		got := len(l.pending)
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lookups pending, want %d", got, n)
		}
		runtime.Gosched()
	}
}

func TestLoaderLone(t *testing.T) {
	st := &mapStore{rows: map[string]*sessiongate.Session{"a": {ID: "a"}}}
	l := &sessionLoader{store: st}
	tests := []struct {
		sid      string
		wantCode string
	}{
		{"a", ""},
		{"missing", sessiongate.ECodeNotFound},
	}
	for _, tt := range tests {
		s, err := l.session(context.Background(), tt.sid)
		if code := sessiongate.ErrorCode(err); code != tt.wantCode {
			t.Errorf("%s: error %v, want code %q", tt.sid, err, tt.wantCode)
		}
		if tt.wantCode == "" && (s == nil || s.ID != tt.sid) {
			t.Errorf("%s: got %+v", tt.sid, s)
		}
	}
	if !slices.Equal(st.single, []string{"a", "missing"}) || len(st.batches) != 0 {
		t.Errorf("store calls: single %v, batches %v; want two lone Session calls", st.single, st.batches)
	}
	if l.active != 0 {
		t.Errorf("active = %d after the lookups, want 0", l.active)
	}
}

// TestLoaderBatches holds the store's first calls, queues more lookups
// meanwhile, and checks they are answered by one Sessions call.
func TestLoaderBatches(t *testing.T) {
	tests := []struct {
		name     string
		storeErr error
	}{
		{"rows", nil},
		{"store failure", errors.New("boom")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := make(map[string]*sessiongate.Session)
			for i := range 20 {
				if i%4 != 3 { // every fourth id has no row
					sid := fmt.Sprint("s", i)
					rows[sid] = &sessiongate.Session{ID: sid}
				}
			}
			st := &mapStore{rows: rows, err: tt.storeErr, gate: make(chan struct{}), inSingle: make(chan struct{})}
			l := &sessionLoader{store: st}

			type result struct {
				sid string
				s   *sessiongate.Session
				err error
			}
			results := make(chan result, 20)
			lookup := func(sid string) {
				s, err := l.session(context.Background(), sid)
				results <- result{sid, s, err}
			}
			// The first lookupConcurrency lookups hold the store.
			for i := range lookupConcurrency {
				go lookup(fmt.Sprint("s", i))
				<-st.inSingle
			}
			for i := lookupConcurrency; i < 20; i++ {
				go lookup(fmt.Sprint("s", i))
			}
			waitPending(t, l, 20-lookupConcurrency)
			close(st.gate)
			for range 20 {
				r := <-results
				want := rows[r.sid]
				switch {
				case slices.Contains(st.single, r.sid):
					if r.s != want {
						t.Errorf("%s (lone): got %+v, %v", r.sid, r.s, r.err)
					}
				case tt.storeErr != nil:
					if !errors.Is(r.err, tt.storeErr) {
						t.Errorf("%s: error %v, want the store's", r.sid, r.err)
					}
				case want == nil:
					if sessiongate.ErrorCode(r.err) != sessiongate.ECodeNotFound {
						t.Errorf("%s: error %v, want NOT_FOUND", r.sid, r.err)
					}
				case r.s != want || r.err != nil:
					t.Errorf("%s: got %+v, %v", r.sid, r.s, r.err)
				}
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if len(st.batches) != 1 || len(st.batches[0]) != 20-lookupConcurrency {
				t.Errorf("Sessions calls %v, want one with the %d queued ids", st.batches, 20-lookupConcurrency)
			}
		})
	}
}

// TestLoaderCancelled checks that a lookup whose context ends returns at
// once, and that a queued lookup already cancelled is not sent to the store.
func TestLoaderCancelled(t *testing.T) {
	st := &mapStore{rows: map[string]*sessiongate.Session{"a": {ID: "a"}, "b": {ID: "b"}}, gate: make(chan struct{}), inSingle: make(chan struct{}, lookupConcurrency+2)}
	l := &sessionLoader{store: st}
	for range lookupConcurrency {
		go l.session(context.Background(), "a")
		<-st.inSingle
	}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error)
	go func() {
		_, err := l.session(ctx, "gone")
		gone <- err
	}()
	waitPending(t, l, 1)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled lookup: error %v, want context.Canceled", err)
	}
	ok := make(chan error)
	go func() {
		_, err := l.session(context.Background(), "b")
		ok <- err
	}()
	waitPending(t, l, 2)
	close(st.gate)
	if err := <-ok; err != nil {
		t.Fatalf("live lookup: %v", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sid := range append(slices.Concat(st.batches...), st.single...) {
		if sid == "gone" {
			t.Errorf("the cancelled lookup reached the store: single %v, batches %v", st.single, st.batches)
		}
	}
}

// TestExpiryHeapPruned registers and unregisters many sessions, as
// handshake churn does: the expiry heap must stay proportional to the live
// sessions instead of keeping an entry per past session until its expiry.
func TestExpiryHeapPruned(t *testing.T) {
	g := newGateway(t, Config{Sessions: &mapStore{}, Audit: newRecordingAudit(nil)})
	expire := time.Now().Add(24 * time.Hour)
	g.mu.Lock()
	keep := &liveSession{hash: "kept"}
	g.live[keep.hash] = keep
	g.setExpireLocked(keep, expire)
	for i := range 10 * minPrune {
		l := &liveSession{hash: fmt.Sprint("h", i)}
		g.live[l.hash] = l
		g.setExpireLocked(l, expire.Add(time.Duration(i)*time.Second))
		delete(g.live, l.hash)
	}
	entries := slices.Clone(g.expiries)
	g.mu.Unlock()
	if n := len(entries); n > minPrune+2 {
		t.Errorf("%d expiry entries for 1 live session, want at most %d", n, minPrune+2)
	}
	var kept int
	for _, e := range entries {
		if e.hash == keep.hash {
			kept++
		}
	}
	if kept != 2 {
		t.Errorf("%d entries of the live session kept, want 2 (refresh chance and end)", kept)
	}
	if at, ok := g.nextExpiry(); !ok || !at.Equal(expire.Add(-g.refreshLead())) {
		t.Errorf("next expiry %v, %v; want the live session's refresh chance", at, ok)
	}
}
