package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Stats is a snapshot of the gateway's counters, read at each scrape of
// /metrics. Counters (uint64) only grow; gauges (int64) go up and down.
type Stats struct {
	Connections  int64 // sockets connected now
	LiveSessions int64 // distinct sessions with at least one socket now

	Handshakes map[string]uint64 // by result code ("OK" or the refusal code)

	SessionCheckBatches uint64 // store calls made to re-validate sessions
	SessionsChecked     uint64 // sessions re-validated
	Refreshes           uint64 // sessions whose expiry was moved

	SessionsEnded map[string]uint64 // by reason: revoked, expired, logged_out

	AuditBacklog       int64  // audit events waiting to be written
	AuditWriteFailures uint64 // failed audit writes (each retried)
	AuditDropped       uint64 // audit events given up on
}

const namespace = "sessiongate"

// metrics is the registry /metrics serves and the counters of this package.
type metrics struct {
	registry  *prometheus.Registry
	publishes *prometheus.CounterVec
	logins    *prometheus.CounterVec
}

func newMetrics(stats func() Stats) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "publish_requests_total",
			Help: "POST /api/publish requests by result (ok, unauthorized, bad_request, error).",
		}, []string{"result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "login_attempts_total",
			Help: "POST /auth/login requests by result (ok, invalid_credentials, rate_limited, bad_request).",
		}, []string{"result"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.publishes, m.logins,
	)
	if stats != nil {
		m.registry.MustRegister(newStatsCollector(stats))
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statsCollector turns a Stats snapshot into metrics at each scrape, so the
// gateway keeps plain atomic counters and knows nothing of Prometheus.
type statsCollector struct {
	stats func() Stats

	connections, liveSessions, handshakes *prometheus.Desc
	checkBatches, checked, refreshes      *prometheus.Desc
	ended                                 *prometheus.Desc
	auditBacklog, auditFailures, dropped  *prometheus.Desc
}

func newStatsCollector(stats func() Stats) *statsCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &statsCollector{
		stats:         stats,
		connections:   desc("connections", "Authenticated sockets connected now."),
		liveSessions:  desc("live_sessions", "Distinct sessions with at least one socket now."),
		handshakes:    desc("handshakes_total", "Socket handshakes by result code (OK or the refusal code).", "code"),
		checkBatches:  desc("session_check_batches_total", "Store calls made to re-validate live sessions."),
		checked:       desc("session_checks_total", "Live sessions re-validated."),
		refreshes:     desc("session_refreshes_total", "Live sessions whose expiry was extended."),
		ended:         desc("revocations_total", "Sessions ended while they had sockets, by reason.", "reason"),
		auditBacklog:  desc("audit_backlog", "Audit events waiting to be written."),
		auditFailures: desc("audit_write_failures_total", "Failed audit writes (each is retried)."),
		dropped:       desc("audit_dropped_total", "Audit events given up on."),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connections, c.liveSessions, c.handshakes, c.checkBatches, c.checked,
		c.refreshes, c.ended, c.auditBacklog, c.auditFailures, c.dropped,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.connections, st.Connections)
	gauge(c.liveSessions, st.LiveSessions)
	for code, n := range st.Handshakes {
		counter(c.handshakes, n, code)
	}
	counter(c.checkBatches, st.SessionCheckBatches)
	counter(c.checked, st.SessionsChecked)
	counter(c.refreshes, st.Refreshes)
	for reason, n := range st.SessionsEnded {
		counter(c.ended, n, reason)
	}
	gauge(c.auditBacklog, st.AuditBacklog)
	counter(c.auditFailures, st.AuditWriteFailures)
	counter(c.dropped, st.AuditDropped)
}
