package main

import (
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/prometheus"
	"github.com/sessiongate/sessiongate/socketio"
)

// recoveryOptions are the socketio options of connection state recovery
// (RECOVERY, contract §16), with the gateway's key and state, and an
// in-memory log; nil with RECOVERY=off. With CLUSTER each node keeps its
// own log: a client recovers when it reconnects to the same node.
func (s *server) recoveryOptions(cfg Config) *socketio.RecoveryOptions {
	if cfg.Recovery == RecoveryOff {
		return nil
	}
	s.recoveryLog = socketio.NewMemoryLog(socketio.MemoryLogOptions{Window: cfg.RecoveryWindow, MaxBytes: cfg.RecoveryLogBytes})
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
// outcomes, and what the log holds; none with RECOVERY=off.
func (s *server) recoveryFamilies() []prometheus.Family {
	if s.recoveryLog == nil {
		return nil
	}
	st := s.io.RecoveryStats
	return []prometheus.Family{
		prometheus.Counter("recovery_attempts_total", "CONNECTs that asked to recover a dropped socket (a pid in their auth).",
			func() uint64 { return st().Attempted }),
		prometheus.Counter("recovery_successes_total", "Dropped sockets recovered (same id, rooms, missed events replayed).",
			func() uint64 { return st().Succeeded }),
		prometheus.CounterVec("recovery_failures_total", "Recoveries that failed, by reason (unknown, key, offset, expired, overflow, busy, log_error, refused).", "reason",
			func() map[socketio.RecoveryReason]uint64 { return st().Failed }),
		prometheus.Counter("recovery_replayed_total", "Events replayed to recovered sockets.",
			func() uint64 { return st().Replayed }),
		prometheus.Gauge("recovery_log_entries", "Events held by the recovery log.",
			func() int64 { return int64(s.recoveryLog.Stats().Entries) }),
		prometheus.Gauge("recovery_log_bytes", "Bytes of events held by the recovery log.",
			func() int64 { return s.recoveryLog.Stats().Bytes }),
		prometheus.Gauge("recovery_saved_sockets", "Dropped sockets kept for recovery.",
			func() int64 { return int64(s.recoveryLog.Stats().Sockets) }),
	}
}
