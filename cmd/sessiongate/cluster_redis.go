package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/redis"
	"github.com/sessiongate/sessiongate/socketio"
)

func init() {
	clusterOpeners[ClusterRedis] = openRedisCluster
	sharedLogOpeners[ClusterRedis] = openStreamLog
}

// redisOptions are the connection settings of REDIS_URL (and
// REDIS_CA_FILE) under CLUSTER_KEY.
func redisOptions(cfg *Config, log *slog.Logger) (redis.Options, error) {
	opts := redis.Options{URL: cfg.RedisURL, Key: cfg.ClusterKey, Logger: log}
	if cfg.RedisCAFile != "" {
		pem, err := os.ReadFile(cfg.RedisCAFile)
		if err != nil {
			return opts, &ConfigError{Setting: "REDIS_CA_FILE", Err: err}
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return opts, configErrorf("REDIS_CA_FILE", "%s holds no PEM certificate", cfg.RedisCAFile)
		}
		opts.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// openRedisCluster joins the Redis bus of REDIS_URL under CLUSTER_KEY.
func openRedisCluster(ctx context.Context, cfg *Config, _ *openedStore, log *slog.Logger) (clusterBus, error) {
	opts, err := redisOptions(cfg, log.With("component", "cluster"))
	if err != nil {
		return nil, err
	}
	// The nodes deliver broadcasts from the stream, and publish them on
	// pub/sub for Node peers only.
	opts.StreamDelivery = cfg.recoveryStream() != ""
	c, err := redis.NewCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	return redisBus{c}, nil
}

// openStreamLog opens the recovery log of CLUSTER=redis: the stream
// recoveryStream of REDIS_URL, shared with every node (and Node server
// with @socket.io/redis-streams-adapter) of the cluster, whose saved
// sockets are under CLUSTER_KEY; nil with RECOVERY_STREAM=off. Redis must
// be 7.0 or later: an older one fails start-up, as any Redis that cannot
// be used, naming REDIS_URL, with the code recovery_redis_version.
func openStreamLog(ctx context.Context, cfg *Config, log *slog.Logger) (socketio.SharedLog, io.Closer, error) {
	stream := cfg.recoveryStream()
	if stream == "" {
		return nil, nil, nil
	}
	opts, err := redisOptions(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	l, err := redis.NewStreamLog(ctx, redis.StreamLogOptions{
		Options:    opts,
		StreamName: stream,
		Window:     cfg.RecoveryWindow,
		MaxEntries: cfg.RecoveryStreamMaxEntries,
	})
	if err == nil {
		if err = l.CheckServer(ctx); err != nil {
			l.Close()
		}
	}
	if err != nil {
		return nil, nil, &ConfigError{Setting: "REDIS_URL", Err: redactErr(fmt.Errorf("cannot open the recovery stream: %w", err), cfg.RedisURL)}
	}
	return l, l, nil
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
