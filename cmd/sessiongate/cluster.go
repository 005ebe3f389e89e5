package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/socketio"
)

// clusterBus is a running CLUSTER bus as serve needs it, whichever package
// (redis, postgres) provides it.
type clusterBus interface {
	// Adapter wraps a namespace's in-memory adapter
	// (socketio.Options.NewAdapter).
	Adapter(local *socketio.MemoryAdapter) socketio.Adapter
	// Ready reports whether the node is connected to the bus (/readyz).
	Ready(ctx context.Context) error
	// Stats are its counters, for /metrics.
	Stats() prometheus.ClusterStats
	// Close leaves the cluster; serve calls it after the sockets are gone.
	Close() error
}

// clusterOpener opens the bus of one CLUSTER value, for the node whose
// settings are cfg and whose store is st.
type clusterOpener func(ctx context.Context, cfg *Config, st *openedStore, log *slog.Logger) (clusterBus, error)

// clusterOpeners are the buses built in, by CLUSTER value; each bus's file
// adds its own.
var clusterOpeners = map[string]clusterOpener{}

// openCluster opens the bus CLUSTER asks for; nil without CLUSTER. A bus
// that cannot be reached is a *ConfigError naming the setting, whose text
// never holds a password.
func openCluster(ctx context.Context, cfg *Config, st *openedStore, log *slog.Logger) (clusterBus, error) {
	if cfg.Cluster == "" {
		return nil, nil
	}
	open, ok := clusterOpeners[cfg.Cluster]
	if !ok {
		return nil, configErrorf("CLUSTER", "%s is not built into this binary", cfg.Cluster)
	}
	bus, err := open(ctx, cfg, st, log)
	var ce *ConfigError
	if errors.As(err, &ce) {
		return nil, err
	}
	if err != nil {
		setting := "CLUSTER"
		if cfg.Cluster == ClusterRedis {
			setting = "REDIS_URL"
		}
		return nil, &ConfigError{Setting: setting, Err: redactErr(fmt.Errorf("cannot join the %s cluster: %w", cfg.Cluster, err), cfg.RedisURL, cfg.DatabaseURL)}
	}
	return bus, nil
}

// redactErr returns err with the password of each URL of urls replaced, in
// case a client library quoted it.
func redactErr(err error, urls ...string) error {
	msg := err.Error()
	redacted := msg
	for _, raw := range urls {
		u, perr := url.Parse(raw)
		if perr != nil || u.User == nil {
			continue
		}
		if p, ok := u.User.Password(); ok && p != "" {
			redacted = strings.ReplaceAll(redacted, p, "xxxxx")
		}
	}
	if redacted == msg {
		return err
	}
	return errors.New(redacted)
}

// redisAddr is REDIS_URL without its user and password, for logs.
func redisAddr(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	return u.Redacted()
}

// busPinger is the /readyz check of the bus.
type busPinger struct{ bus clusterBus }

func (p busPinger) Ping(ctx context.Context) error { return p.bus.Ready(ctx) }
