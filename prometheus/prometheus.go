// Package prometheus exposes sessiongate's counters as Prometheus metrics.
// It is the one place that knows metric names and types: the packages that
// count (gateway, httpapi, …) keep plain atomic counters behind a Stats
// method and import nothing of Prometheus, and a Handler reads them at each
// scrape.
//
// Every metric is named "sessiongate_<name>". A package's counters are
// added with Counter, Gauge and CounterVec families in Sources.Extra (or,
// for a package with many, a Sources field and a function here that lists
// its families, as gatewayFamilies does).
package prometheus

import (
	"fmt"
	"net/http"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/engineio"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/socketio"
)

// Namespace is the prefix of every metric name, with an underscore.
const Namespace = "sessiongate"

// Sources are the counters a Handler exposes, each read at every scrape. A
// nil source is left out.
type Sources struct {
	Gateway func() gateway.Stats  // connections, handshakes, session checks, audit
	HTTP    func() httpapi.Stats  // publish and login requests
	Engine  func() engineio.Stats // Engine.IO sessions, refusals and slow clients
	Socket  func() socketio.Stats // Socket.IO connections closed by their limits
	Cluster func() ClusterStats   // the cluster bus (CLUSTER); nil on a single node

	// Extra are further families (built with Counter, Gauge, CounterVec).
	Extra []Family
}

// Family is one metric family, read at each scrape. Build it with Counter,
// Gauge or CounterVec.
type Family struct {
	desc    *prom.Desc
	collect func(ch chan<- prom.Metric, desc *prom.Desc)
}

// Counter is the family of one counter, sessiongate_<name>, read by read.
func Counter(name, help string, read func() uint64) Family {
	return Family{
		desc: newDesc(name, help),
		collect: func(ch chan<- prom.Metric, d *prom.Desc) {
			ch <- prom.MustNewConstMetric(d, prom.CounterValue, float64(read()))
		},
	}
}

// Gauge is the family of one gauge (a value that goes up and down),
// sessiongate_<name>, read by read.
func Gauge(name, help string, read func() int64) Family {
	return Family{
		desc: newDesc(name, help),
		collect: func(ch chan<- prom.Metric, d *prom.Desc) {
			ch <- prom.MustNewConstMetric(d, prom.GaugeValue, float64(read()))
		},
	}
}

// CounterVec is a family of counters sessiongate_<name>{<label>="…"}, one
// per key of the map read returns (a reason, a code). Keep the keys a
// fixed set, zero or not, so that a series never vanishes.
func CounterVec[K ~string](name, help, label string, read func() map[K]uint64) Family {
	return Family{
		desc: newDesc(name, help, label),
		collect: func(ch chan<- prom.Metric, d *prom.Desc) {
			for k, n := range read() {
				ch <- prom.MustNewConstMetric(d, prom.CounterValue, float64(n), string(k))
			}
		},
	}
}

func newDesc(name, help string, labels ...string) *prom.Desc {
	return prom.NewDesc(prom.BuildFQName(Namespace, "", name), help, labels, nil)
}

// NewRegistry returns a registry of the Go runtime's and the process's
// metrics and those of src. It fails if two families share a name.
func NewRegistry(src Sources) (*prom.Registry, error) {
	var families []Family
	if src.Gateway != nil {
		families = append(families, gatewayFamilies(src.Gateway)...)
	}
	if src.HTTP != nil {
		families = append(families, httpFamilies(src.HTTP)...)
	}
	if src.Engine != nil {
		families = append(families, engineFamilies(src.Engine)...)
	}
	if src.Socket != nil {
		families = append(families, socketFamilies(src.Socket)...)
	}
	if src.Cluster != nil {
		families = append(families, clusterFamilies(src.Cluster)...)
	}
	families = append(families, src.Extra...)

	reg := prom.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, f := range families {
		if err := reg.Register(familyCollector(f)); err != nil {
			return nil, fmt.Errorf("prometheus: register %v: %w", f.desc, err)
		}
	}
	return reg, nil
}

// Handler returns the handler of GET /metrics for src, in the Prometheus
// text format. It is safe for concurrent use; a scrape reads every source.
func Handler(src Sources) (http.Handler, error) {
	reg, err := NewRegistry(src)
	if err != nil {
		return nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// familyCollector is a Family as a prom.Collector.
type familyCollector Family

// Describe implements prom.Collector.
func (f familyCollector) Describe(ch chan<- *prom.Desc) { ch <- f.desc }

// Collect implements prom.Collector.
func (f familyCollector) Collect(ch chan<- prom.Metric) { f.collect(ch, f.desc) }

// gatewayFamilies are the gateway's counters. Each family reads its own
// snapshot: Stats is cheap, and a scrape needs no single instant.
func gatewayFamilies(stats func() gateway.Stats) []Family {
	return []Family{
		Gauge("connections", "Authenticated sockets connected now.",
			func() int64 { return stats().Connections }),
		Gauge("live_sessions", "Distinct sessions with at least one socket now.",
			func() int64 { return stats().LiveSessions }),
		CounterVec("handshakes_total", "Socket handshakes by result code (OK or the refusal code).", "code",
			func() map[string]uint64 { return stats().Handshakes }),
		Counter("session_check_batches_total", "Store calls made to re-validate live sessions.",
			func() uint64 { return stats().SessionCheckBatches }),
		Counter("session_checks_total", "Live sessions re-validated.",
			func() uint64 { return stats().SessionsChecked }),
		Counter("session_refreshes_total", "Live sessions whose expiry was extended.",
			func() uint64 { return stats().Refreshes }),
		CounterVec("revocations_total", "Sessions ended while they had sockets, by reason.", "reason",
			func() map[sessiongate.EndReason]uint64 { return stats().SessionsEnded }),
		Gauge("audit_backlog", "Audit events waiting to be written.",
			func() int64 { return stats().AuditBacklog }),
		Counter("audit_write_failures_total", "Failed audit writes (each is retried).",
			func() uint64 { return stats().AuditWriteFailures }),
		Counter("audit_dropped_total", "Audit events given up on.",
			func() uint64 { return stats().AuditDropped }),
		Gauge("audit_spool_bytes", "Bytes of audit records in the spool not yet written to the store.",
			func() int64 { return stats().AuditSpoolBytes }),
		Counter("audit_rejected_total", "Audit events the store refused for their data (isolated and logged).",
			func() uint64 { return stats().AuditRejected }),
		Counter("audit_aggregated_total", "Refusals counted into another audit record's count.",
			func() uint64 { return stats().AuditAggregated }),
		CounterVec("rate_limit_refusals_total", "Requests refused by the per-user limits, by kind (events, subscriptions: RATE_LIMITED; connections: TOO_MANY_CONNECTIONS).", "kind",
			func() map[string]uint64 { return stats().RateLimitRefusals }),
		CounterVec("rate_limit_disconnects_total", "Sockets disconnected far over the per-user rate, by the kind of request that crossed the line.", "kind",
			func() map[string]uint64 { return stats().RateLimitDisconnects }),
		Gauge("rate_limit_buckets", "Per-user rate-limit buckets held now.",
			func() int64 { return stats().RateLimitBuckets }),
		CounterVec("rate_limit_cluster_messages_total", "Per-user limit messages between cluster nodes (sessiongate:ratelimit), by direction (in, out, malformed, failed).", "direction",
			func() map[string]uint64 { return stats().ClusterLimitMessages }),
		CounterVec("rate_limit_cluster_tokens_total", "Tokens those messages reported spent, by direction (in, out, failed; unshared: never reported, the report full).", "direction",
			func() map[string]uint64 { return stats().ClusterLimitTokens }),
		Gauge("rate_limit_remote_connections", "Other nodes' announced per-user connection counts held now.",
			func() int64 { return stats().RemoteConnections }),
	}
}

// engineFamilies are the Engine.IO server's counters: every session, and
// the handshakes its limits refused, by reason (a fixed set of labels).
func engineFamilies(stats func() engineio.Stats) []Family {
	return []Family{
		Gauge("engine_sessions", "Engine.IO sessions open now, authenticated or not.",
			func() int64 { return int64(stats().Sessions) }),
		Gauge("engine_unauthenticated_sessions", "Engine.IO sessions that have joined no namespace yet.",
			func() int64 { return int64(stats().Pending) }),
		CounterVec("engine_refusals_total", "Engine.IO handshakes refused by a limit, by reason.", "reason",
			func() map[string]uint64 {
				st := stats()
				return map[string]uint64{
					"rate_limited":               st.RefusedRateLimited,
					"at_capacity":                st.RefusedAtCapacity,
					"unauthenticated":            st.RefusedPending,
					"unauthenticated_per_client": st.RefusedPendingPerKey,
				}
			}),
		Counter("engine_slow_clients_total", "Sessions closed because their outbound queue passed its byte limit.",
			func() uint64 { return stats().ClosedSlow }),
	}
}

// socketFamilies are the Socket.IO layer's closes by reason (a fixed set of
// labels).
func socketFamilies(stats func() socketio.Stats) []Family {
	return []Family{
		CounterVec("socketio_closes_total", "Connections closed by a Socket.IO limit or error, by reason.", "reason",
			func() map[string]uint64 {
				st := stats()
				return map[string]uint64{
					"parse_error":         st.ParseErrors,
					"attachments":         st.Attachments,
					"namespace_violation": st.NamespaceViolations,
					"refused_connects":    st.RefusedConnects,
					"packet_budget":       st.PacketBudget,
					"queue_full":          st.QueueFull,
					"connect_timeout":     st.ConnectTimeouts,
					"handler_panic":       st.HandlerPanics,
				}
			}),
	}
}

// httpFamilies are the HTTP API's counters.
func httpFamilies(stats func() httpapi.Stats) []Family {
	return []Family{
		CounterVec("publish_requests_total", "POST /api/publish requests by result (ok, unauthorized, bad_request, error).", "result",
			func() map[string]uint64 { return stats().Publishes }),
		CounterVec("room_requests_total", "POST /api/rooms/join, /api/rooms/leave and /api/disconnect requests by result (ok, unauthorized, bad_request, error).", "result",
			func() map[string]uint64 { return stats().RoomOps }),
		CounterVec("login_attempts_total", "POST /auth/login requests by result (ok, invalid_credentials, rate_limited, bad_request, cross_origin, unsupported_media_type).", "result",
			func() map[string]uint64 { return stats().Logins }),
	}
}

// ClusterStats are what one node's cluster bus (package redis or postgres)
// counts. Each node counts only its own traffic, so a sum over the nodes is
// the cluster's: a message one node publishes is one "out" there and one
// "in" on each node that receives it.
type ClusterStats struct {
	// Up: the node is connected to the bus and subscribed (it receives
	// what the other nodes publish).
	Up bool
	// MessagesIn and MessagesOut are the bus messages received and
	// published: broadcasts, room operations, requests and responses.
	MessagesIn, MessagesOut uint64
	// RequestTimeouts are this node's requests to the others (fetch
	// sockets, all rooms, server-side emit with acks) that did not get
	// every answer in time.
	RequestTimeouts uint64
	// LostMessages are the messages this node could not publish (the bus
	// down): lost for the other nodes.
	LostMessages uint64
	// Outages are the losses of the connection this node receives on;
	// what the others published until it was back is lost for this node
	// alone, and no bus says how many messages that was.
	Outages uint64
	// Dropped are received messages not delivered because they were
	// malformed or over the size limit.
	Dropped uint64
	// Subscriptions is the number of bus channels this node is subscribed
	// to (Redis: one per room it holds, plus the namespace's); 0 where
	// the bus has one channel per namespace and does not count it.
	Subscriptions int64
}

// clusterFamilies are the cluster bus's counters.
func clusterFamilies(stats func() ClusterStats) []Family {
	return []Family{
		Gauge("cluster_up", "1 while this node is connected to the cluster bus and subscribed, else 0.",
			func() int64 {
				if stats().Up {
					return 1
				}
				return 0
			}),
		CounterVec("cluster_messages_total", "Cluster bus messages by direction: in (received by this node), out (published by it).", "direction",
			func() map[string]uint64 {
				st := stats()
				return map[string]uint64{"in": st.MessagesIn, "out": st.MessagesOut}
			}),
		Counter("cluster_request_timeouts_total", "Requests of this node to the other nodes that did not get every answer in time.",
			func() uint64 { return stats().RequestTimeouts }),
		Counter("cluster_lost_messages_total", "Bus messages this node could not publish (lost for the other nodes).",
			func() uint64 { return stats().LostMessages }),
		Counter("cluster_outages_total", "Losses of this node's receiving bus connection (what was published meanwhile is lost for this node).",
			func() uint64 { return stats().Outages }),
		Counter("cluster_dropped_messages_total", "Received bus messages not delivered: malformed or over the size limit.",
			func() uint64 { return stats().Dropped }),
		Gauge("cluster_subscriptions", "Bus channels this node is subscribed to (Redis: one per room it holds, plus the namespace's).",
			func() int64 { return stats().Subscriptions }),
	}
}
