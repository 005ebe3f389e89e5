package sessiongate

import (
	"context"
	"log/slog"
	"time"
)

// DefaultPruneBatch is the most rows one statement of a Pruner deletes.
const DefaultPruneBatch = 1000

// Pruner deletes expired sessions from a store periodically, as
// connect-pg-simple's pruneSessionInterval does: without it, every login
// leaves a row behind for ever. Its zero value is not usable: Store and
// Interval are required.
type Pruner struct {
	Store    SessionPruner
	Interval time.Duration    // time between two prunes; must be positive
	Batch    int              // rows per statement; DefaultPruneBatch when 0
	Logger   *slog.Logger     // default slog.Default()
	Now      func() time.Time // default time.Now; for tests
}

// Run prunes at once and then every Interval until ctx ends, when it returns
// ctx.Err(); cancel ctx to stop it. A failed prune is logged and tried again
// at the next interval. Run is one goroutine's loop: start it with go.
func (p *Pruner) Run(ctx context.Context) error {
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "pruner")
	now := p.Now
	if now == nil {
		now = time.Now
	}
	batch := p.Batch
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		n, err := p.Store.PruneSessions(ctx, now(), batch)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			log.Error("pruning expired sessions failed", "deleted", n, "err", err)
		case n > 0:
			log.Info("pruned expired sessions", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
