package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate"
)

// BenchmarkAuditRecord measures what a granted CONNECT pays for its
// SOCKET_AUTH_SUCCESS record, with 64 handshakes per CPU at once: in
// memory, and with the spool (append, then wait for the shared fsync).
func BenchmarkAuditRecord(b *testing.B) {
	ev := sessiongate.AuditEvent{Time: time.Now(), Action: sessiongate.ActionAuthSuccess, Severity: sessiongate.SeverityInfo,
		UserID: "42", SessionHash: sessiongate.ShortHash("s"), RemoteAddr: "203.0.113.9",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		SocketID:  "Z7rE2wO-vP5nQ9xYkAAAB"}
	discard := auditFunc(func(context.Context, []sessiongate.AuditEvent) error { return nil })
	log := slog.New(slog.DiscardHandler)
	for _, spooled := range []bool{false, true} {
		name := "memory"
		if spooled {
			name = "spool"
		}
		b.Run(name, func(b *testing.B) {
			w := newAuditWriter(discard, log, time.Millisecond, benchSpool(b, spooled))
			defer w.close(context.Background())
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w.record(context.Background(), ev)
				}
			})
			b.StopTimer()
			if d := w.dropped.Load(); spooled && d != 0 {
				b.Errorf("%d events dropped", d)
			}
		})
	}
}
