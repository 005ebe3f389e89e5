package main

import (
	"context"
	"log/slog"

	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

func init() { clusterOpeners[ClusterRedis] = openRedisCluster }

// openRedisCluster joins the Redis bus of REDIS_URL under CLUSTER_KEY.
func openRedisCluster(ctx context.Context, cfg *Config, _ *openedStore, log *slog.Logger) (clusterBus, error) {
	c, err := redis.NewCluster(ctx, redis.Options{URL: cfg.RedisURL, Key: cfg.ClusterKey, Logger: log.With("component", "cluster")})
	if err != nil {
		return nil, err
	}
	return redisBus{c}, nil
}

// redisBus is a *redis.Cluster as serve's clusterBus.
type redisBus struct{ c *redis.Cluster }

func (b redisBus) Adapter(local *socketio.MemoryAdapter) socketio.Adapter { return b.c.Adapter(local) }
func (b redisBus) Ready(ctx context.Context) error                        { return b.c.Ready(ctx) }
func (b redisBus) Close() error                                           { return b.c.Close() }

func (b redisBus) Stats() prometheus.ClusterStats {
	st := b.c.Stats()
	return prometheus.ClusterStats{
		Up:              st.Connected,
		MessagesIn:      st.MessagesIn,
		MessagesOut:     st.MessagesOut,
		RequestTimeouts: st.RequestTimeouts,
		LostMessages:    st.PublishErrors,
		Outages:         st.Outages,
		Dropped:         st.Malformed,
		Subscriptions:   int64(st.Subscriptions),
	}
}
