package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/socketio"
)

// sharedLogOpener opens the recovery log that the nodes of one CLUSTER bus
// share (a socketio.SharedLog), with its Close; nil when the settings ask
// for none.
type sharedLogOpener func(ctx context.Context, cfg *Config, log *slog.Logger) (socketio.SharedLog, io.Closer, error)

// sharedLogOpeners are the shared recovery logs built in, by CLUSTER value
// (CLUSTER=redis: RECOVERY_STREAM). Without one (CLUSTER=postgres, or
// RECOVERY_STREAM=off) each node keeps its own log: a client recovers on the
// node it dropped from only.
var sharedLogOpeners = map[string]sharedLogOpener{}

// openRecoveryLog sets s.recoveryLog (and s.recoveryCloser) for the
// settings: none with RECOVERY=off, the cluster's shared log when its bus
// has one, otherwise the node's in-memory log.
func (s *server) openRecoveryLog(ctx context.Context, cfg *Config) error {
	if cfg.Recovery == RecoveryOff {
		return nil
	}
	if open, ok := sharedLogOpeners[cfg.Cluster]; ok {
		l, c, err := open(ctx, cfg, s.log.With("component", "recovery"))
		if err != nil {
			return err
		}
		if l != nil {
			s.recoveryLog, s.recoveryCloser = l, c
			return nil
		}
	}
	s.recoveryLog = socketio.NewMemoryLog(socketio.MemoryLogOptions{Window: cfg.RecoveryWindow, MaxBytes: cfg.RecoveryLogBytes})
	return nil
}

// closeRecoveryLog closes a shared log, once the sockets that read it are
// gone.
func (s *server) closeRecoveryLog() error {
	if s.recoveryCloser == nil {
		return nil
	}
	c := s.recoveryCloser
	s.recoveryCloser = nil
	return c.Close()
}

// recoveryOptions are the socketio options of connection state recovery
// (RECOVERY, contract §16) over s.recoveryLog, with the gateway's key and
// state; nil with RECOVERY=off.
func (s *server) recoveryOptions(cfg Config) *socketio.RecoveryOptions {
	if s.recoveryLog == nil {
		return nil
	}
	opts := &socketio.RecoveryOptions{
		Log:         s.recoveryLog,
		Key:         s.gw.RecoveryKey,
		State:       s.gw.RecoveryState,
		Window:      cfg.RecoveryWindow,
		MaxMessages: cfg.RecoveryMaxMessages,
		MaxBytes:    cfg.RecoveryMaxBytes,
		OffsetEvent: gateway.EventRecovery,
	}
	if cfg.Recovery == RecoveryAsk {
		opts.Enabled = gateway.AsksRecovery
	}
	return opts
}

// recoveryFamilies are the metrics of recovery: attempts and their
// outcomes, and, for the in-memory log, what it holds; none with
// RECOVERY=off.
func (s *server) recoveryFamilies() []prometheus.Family {
	if s.recoveryLog == nil {
		return nil
	}
	st := s.io.RecoveryStats
	fams := []prometheus.Family{
		prometheus.Counter("recovery_attempts_total", "CONNECTs that asked to recover a dropped socket (a pid in their auth).",
			func() uint64 { return st().Attempted }),
		prometheus.Counter("recovery_successes_total", "Dropped sockets recovered (same id, rooms, missed events replayed).",
			func() uint64 { return st().Succeeded }),
		prometheus.CounterVec("recovery_failures_total", "Recoveries that failed, by reason (unknown, key, offset, expired, overflow, busy, log_error, refused).", "reason",
			func() map[socketio.RecoveryReason]uint64 { return st().Failed }),
		prometheus.Counter("recovery_replayed_total", "Events replayed to recovered sockets.",
			func() uint64 { return st().Replayed }),
	}
	mem, ok := s.recoveryLog.(*socketio.MemoryLog)
	if !ok {
		// A shared log's size is Redis' (XLEN, DBSIZE).
		return append(fams, prometheus.Counter("recovery_stream_read_gaps_total", "Times the shared recovery stream had dropped events before this node read them (its sockets missed them live): the node lagged more than RECOVERY_STREAM_MAX_ENTRIES behind.",
			func() uint64 { return st().ReadGaps }))
	}
	return append(fams,
		prometheus.Gauge("recovery_log_entries", "Events held by the recovery log.",
			func() int64 { return int64(mem.Stats().Entries) }),
		prometheus.Gauge("recovery_log_bytes", "Bytes of events held by the recovery log.",
			func() int64 { return mem.Stats().Bytes }),
		prometheus.Gauge("recovery_saved_sockets", "Dropped sockets kept for recovery.",
			func() int64 { return int64(mem.Stats().Sockets) }),
	)
}
