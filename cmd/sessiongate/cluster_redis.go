package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"

	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

func init() { clusterOpeners[ClusterRedis] = openRedisCluster }

// openRedisCluster joins the Redis bus of REDIS_URL under CLUSTER_KEY.
func openRedisCluster(ctx context.Context, cfg *Config, _ *openedStore, log *slog.Logger) (clusterBus, error) {
	opts := redis.Options{URL: cfg.RedisURL, Key: cfg.ClusterKey, Logger: log.With("component", "cluster")}
	if cfg.RedisCAFile != "" {
		pem, err := os.ReadFile(cfg.RedisCAFile)
		if err != nil {
			return nil, &ConfigError{Setting: "REDIS_CA_FILE", Err: err}
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, configErrorf("REDIS_CA_FILE", "%s holds no PEM certificate", cfg.RedisCAFile)
		}
		opts.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	c, err := redis.NewCluster(ctx, opts)
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
