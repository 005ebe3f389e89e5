package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/internal/siotest"
)

// flakyAudit fails its first n writes, then writes into the recording
// store.
type flakyAudit struct {
	*recordingAudit
	mu    sync.Mutex
	fails int
}

var errWrite = errors.New("audit store down")

func (a *flakyAudit) WriteAudit(ctx context.Context, events []sessiongate.AuditEvent) error {
	a.mu.Lock()
	if a.fails != 0 {
		a.fails--
		a.mu.Unlock()
		return errWrite
	}
	a.mu.Unlock()
	return a.recordingAudit.WriteAudit(ctx, events)
}

func events(n int) []sessiongate.AuditEvent {
	evs := make([]sessiongate.AuditEvent, n)
	for i := range evs {
		evs[i] = sessiongate.AuditEvent{Action: sessiongate.ActionDisconnect, Severity: sessiongate.SeverityInfo, SocketID: fmt.Sprint(i)}
	}
	return evs
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func TestAuditWriter(t *testing.T) {
	tests := []struct {
		name   string
		fails  int // -1: always
		events int
	}{
		{"healthy", 0, 10},
		{"more than a batch", 0, 3*auditBatch + 7},
		{"fails then recovers", 3, 1200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &flakyAudit{recordingAudit: newRecordingAudit(nil), fails: tt.fails}
			w := newAuditWriter(store, testLogger(t), time.Millisecond, nil)
			ctx := context.Background()
			for _, ev := range events(tt.events) {
				w.add(ev)
			}
			if err := w.close(ctx); err != nil {
				t.Fatal(err)
			}
			store.mu.Lock()
			got := len(store.events)
			store.mu.Unlock()
			if got != tt.events {
				t.Errorf("%d events written, want %d", got, tt.events)
			}
			for i, ev := range store.events {
				if ev.SocketID != fmt.Sprint(i) {
					t.Fatalf("event %d is %s: order lost", i, ev.SocketID)
				}
			}
			if f := w.failures.Load(); f != uint64(tt.fails) {
				t.Errorf("failures = %d, want %d", f, tt.fails)
			}
			if d := w.dropped.Load(); d != 0 {
				t.Errorf("dropped = %d, want 0", d)
			}
			if b := w.backlog(); b != 0 {
				t.Errorf("backlog = %d after close, want 0", b)
			}
		})
	}
}

// TestAuditWriterBatches checks that events are written in batches, not
// one call per event, and without waiting for Close.
func TestAuditWriterBatches(t *testing.T) {
	store := newRecordingAudit(nil)
	calls := 0
	counting := auditFunc(func(ctx context.Context, evs []sessiongate.AuditEvent) error {
		calls++ // the writer calls from one goroutine
		return store.WriteAudit(ctx, evs)
	})
	w := newAuditWriter(counting, testLogger(t), time.Millisecond, nil)
	for _, ev := range events(1000) {
		w.add(ev)
	}
	store.waitFor(t, "the last event", func(ev sessiongate.AuditEvent) bool { return ev.SocketID == "999" })
	if err := w.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls > 10 {
		t.Errorf("%d writes for 1000 events, want batches", calls)
	}
}

type auditFunc func(context.Context, []sessiongate.AuditEvent) error

func (f auditFunc) WriteAudit(ctx context.Context, evs []sessiongate.AuditEvent) error {
	return f(ctx, evs)
}

// TestAuditWriterGivesUp: a store that never recovers makes close return
// when its context ends, counting what it could not write.
func TestAuditWriterGivesUp(t *testing.T) {
	store := &flakyAudit{recordingAudit: newRecordingAudit(nil), fails: -1}
	w := newAuditWriter(store, testLogger(t), time.Millisecond, nil)
	for _, ev := range events(20) {
		w.add(ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close = %v, want deadline exceeded", err)
	}
	if d := w.dropped.Load(); d != 20 {
		t.Errorf("dropped = %d, want 20", d)
	}
	if w.failures.Load() == 0 {
		t.Error("no failure counted")
	}
	// After close, events are counted as dropped, never queued for nobody.
	w.add(events(1)[0])
	if d := w.dropped.Load(); d != 21 {
		t.Errorf("dropped = %d after a late add, want 21", d)
	}
}

// TestAuditRetryThroughGateway: a failing audit store behind a gateway:
// handshakes still succeed, failures are counted in Stats, and every event
// is written once the store recovers.
func TestAuditRetryThroughGateway(t *testing.T) {
	st, _ := openPostgres(t)
	store := &flakyAudit{recordingAudit: newRecordingAudit(nil), fails: 2}
	g := newGateway(t, Config{Sessions: st, Audit: store})
	_, url := serve(t, g)
	_, cookie := saveSession(t, st, "42", time.Now().Add(time.Hour))
	connected(t, dial(t, url, browser{cookie: cookie, transport: siotest.Polling}))
	refused(t, dial(t, url, browser{transport: siotest.Polling}), sessiongate.ECodeNoCookie)
	store.waitFor(t, "success", action(sessiongate.ActionAuthSuccess, ""))
	store.waitFor(t, "failure", action(sessiongate.ActionAuthFailure, sessiongate.ECodeNoCookie))
	if f := g.Stats().AuditWriteFailures; f < 1 {
		t.Errorf("AuditWriteFailures = %d, want at least 1", f)
	}
}
