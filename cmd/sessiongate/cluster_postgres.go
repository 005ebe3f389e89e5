package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sessiongate/sessiongate/postgres"
	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/socketio"
)

func init() { clusterOpeners[ClusterPostgres] = openPostgresCluster }

// openPostgresCluster joins the LISTEN/NOTIFY bus on the DATABASE_URL
// database under CLUSTER_KEY, with a connection of its own (LISTEN needs a
// session, and the store's pool must not lose one to it).
func openPostgresCluster(ctx context.Context, cfg *Config, _ *openedStore, log *slog.Logger) (clusterBus, error) {
	c, err := postgres.NewCluster(ctx, cfg.DatabaseURL, postgres.ClusterOptions{ChannelPrefix: cfg.ClusterKey, Logger: log.With("component", "cluster")})
	if err != nil {
		return nil, err
	}
	return postgresBus{c}, nil
}

// postgresBus is a *postgres.Cluster as serve's clusterBus.
type postgresBus struct{ c *postgres.Cluster }

func (b postgresBus) Adapter(local *socketio.MemoryAdapter) socketio.Adapter {
	return b.c.Adapter(local)
}
func (b postgresBus) Close() error { return b.c.Close() }

// errListenerDown is /readyz's reason while the LISTEN connection is lost.
var errListenerDown = errors.New("postgres: cluster listener not connected")

// Ready answers at once (Cluster.Ready waits for the listener): a probe
// must not hang while the database is away.
func (b postgresBus) Ready(context.Context) error {
	if !b.c.Connected() {
		return errListenerDown
	}
	return nil
}

func (b postgresBus) Stats() prometheus.ClusterStats {
	st := b.c.Stats()
	return prometheus.ClusterStats{
		Up:              b.c.Connected(),
		MessagesIn:      st.MessagesIn,
		MessagesOut:     st.MessagesOut,
		RequestTimeouts: st.RequestTimeouts,
		LostMessages:    st.PublishErrors,
		Outages:         st.ListenerLosses,
		Dropped:         st.Dropped,
	}
}
