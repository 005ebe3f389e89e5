package prometheus_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessiongate/sessiongate"
	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/httpapi"
	"github.com/sessiongate/sessiongate/prometheus"
)

// scrape returns the body of GET /metrics from h.
func scrape(t *testing.T, src prometheus.Sources) string {
	t.Helper()
	h, err := prometheus.Handler(src)
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape = %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestHandler(t *testing.T) {
	var scrapes atomic.Int64
	gw := gateway.Stats{
		Connections:         3,
		LiveSessions:        2,
		Handshakes:          map[string]uint64{"OK": 5, sessiongate.ECodeBadSignature: 1},
		SessionCheckBatches: 4, SessionsChecked: 9, Refreshes: 1,
		SessionsEnded: map[sessiongate.EndReason]uint64{sessiongate.EndRevoked: 2, sessiongate.EndLoggedOut: 1},
		AuditBacklog:  7, AuditWriteFailures: 1, AuditDropped: 0,
		RateLimitRefusals:    map[string]uint64{gateway.LimitEvents: 11, gateway.LimitSubscriptions: 0, gateway.LimitConnections: 3},
		RateLimitDisconnects: map[string]uint64{gateway.LimitEvents: 1},
		RateLimitBuckets:     12,
		ClusterLimitMessages: map[string]uint64{gateway.LimitIn: 8, gateway.LimitOut: 5},
		ClusterLimitTokens:   map[string]uint64{gateway.LimitIn: 80},
		RemoteConnections:    2,
	}
	api := httpapi.Stats{
		Publishes: map[string]uint64{httpapi.PublishOK: 6},
		Logins:    map[string]uint64{httpapi.LoginCrossOrigin: 2},
	}
	body := scrape(t, prometheus.Sources{
		Gateway: func() gateway.Stats { scrapes.Add(1); return gw },
		HTTP:    func() httpapi.Stats { return api },
	})
	for _, want := range []string{
		"sessiongate_connections 3",
		"sessiongate_live_sessions 2",
		`sessiongate_handshakes_total{code="OK"} 5`,
		`sessiongate_handshakes_total{code="BAD_SIGNATURE"} 1`,
		"sessiongate_session_check_batches_total 4",
		"sessiongate_session_checks_total 9",
		"sessiongate_session_refreshes_total 1",
		`sessiongate_revocations_total{reason="revoked"} 2`,
		`sessiongate_revocations_total{reason="logged_out"} 1`,
		"sessiongate_audit_backlog 7",
		"sessiongate_audit_write_failures_total 1",
		"sessiongate_audit_dropped_total 0",
		`sessiongate_rate_limit_refusals_total{kind="events"} 11`,
		`sessiongate_rate_limit_refusals_total{kind="connections"} 3`,
		`sessiongate_rate_limit_disconnects_total{kind="events"} 1`,
		"sessiongate_rate_limit_buckets 12",
		`sessiongate_rate_limit_cluster_messages_total{direction="in"} 8`,
		`sessiongate_rate_limit_cluster_messages_total{direction="out"} 5`,
		`sessiongate_rate_limit_cluster_tokens_total{direction="in"} 80`,
		"sessiongate_rate_limit_remote_connections 2",
		`sessiongate_publish_requests_total{result="ok"} 6`,
		`sessiongate_login_attempts_total{result="cross_origin"} 2`,
		"# TYPE sessiongate_connections gauge",
		"# TYPE sessiongate_handshakes_total counter",
		"go_goroutines ",
		"process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if scrapes.Load() == 0 {
		t.Error("the gateway's counters were not read at the scrape")
	}
}

func TestExtra(t *testing.T) {
	var refusals atomic.Uint64
	refusals.Add(4)
	src := prometheus.Sources{Extra: []prometheus.Family{
		prometheus.CounterVec("engine_refusals_total", "Engine.IO handshakes refused, by reason.", "reason",
			func() map[string]uint64 { return map[string]uint64{"rate_limited": refusals.Load(), "too_many": 0} }),
		prometheus.Gauge("audit_spool_bytes", "Bytes in the audit spool.", func() int64 { return 512 }),
		prometheus.Counter("untrusted_forwarded_total", "Handshakes with X-Forwarded-For from an untrusted peer.", func() uint64 { return 1 }),
	}}
	body := scrape(t, src)
	for _, want := range []string{
		`sessiongate_engine_refusals_total{reason="rate_limited"} 4`,
		`sessiongate_engine_refusals_total{reason="too_many"} 0`,
		"sessiongate_audit_spool_bytes 512",
		"sessiongate_untrusted_forwarded_total 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	src.Extra = append(src.Extra, prometheus.Gauge("connections", "A second family of a gateway name.", func() int64 { return 0 }))
	src.Gateway = func() gateway.Stats { return gateway.Stats{} }
	if _, err := prometheus.Handler(src); err == nil {
		t.Error("Handler accepted two families named sessiongate_connections")
	}
}

// TestClusterFamilies: the cluster bus's counters, per node; no family
// without a Cluster source.
func TestClusterFamilies(t *testing.T) {
	st := prometheus.ClusterStats{Up: true, MessagesIn: 12, MessagesOut: 5, RequestTimeouts: 2, LostMessages: 1, Outages: 3, Dropped: 4, Subscriptions: 40}
	body := scrape(t, prometheus.Sources{Cluster: func() prometheus.ClusterStats { return st }})
	for _, want := range []string{
		"sessiongate_cluster_up 1",
		`sessiongate_cluster_messages_total{direction="in"} 12`,
		`sessiongate_cluster_messages_total{direction="out"} 5`,
		"sessiongate_cluster_request_timeouts_total 2",
		"sessiongate_cluster_lost_messages_total 1",
		"sessiongate_cluster_outages_total 3",
		"sessiongate_cluster_dropped_messages_total 4",
		"sessiongate_cluster_subscriptions 40",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	st.Up = false
	if body := scrape(t, prometheus.Sources{Cluster: func() prometheus.ClusterStats { return st }}); !strings.Contains(body, "sessiongate_cluster_up 0\n") {
		t.Error("cluster_up is not 0 with the bus down")
	}
	if body := scrape(t, prometheus.Sources{}); strings.Contains(body, "sessiongate_cluster_") {
		t.Error("cluster metrics without a Cluster source")
	}
}
