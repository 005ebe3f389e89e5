package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
	"github.com/sessiongate/sessiongate/internal/tcpproxy"
)

// TestServeRecovery runs the program with RECOVERY left at ask: the
// official client that asks ({"recovery":true}) recovers its socket after
// its TCP connection is cut, counted in /metrics; a stock one gets no pid.
func TestServeRecovery(t *testing.T) {
	nodetest.Require(t, "test/interop")
	m, base, _ := serveMain(t, map[string]string{"METRICS_KEY": "k"})
	defer m.Close()
	cookie, _ := login(t, base)
	px, err := tcpproxy.New(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	start := func(url string, auth map[string]any) *nodetest.Run {
		return nodetest.StartRecoveryClient(t, url, cookie, auth)
	}
	next := func(r *nodetest.Run) nodetest.RecoveryLine {
		for {
			var l nodetest.RecoveryLine
			r.Next(&l, 10*time.Second)
			if l.Event != "disconnect" && l.Event != "connect_error" {
				return l
			}
		}
	}

	stock := start(base, nil)
	if l := next(stock); l.Event != "connect" || l.PID != "" {
		t.Fatalf("stock client: %+v, want a connect without pid", l)
	}
	r := start("http://"+px.Addr(), map[string]any{"recovery": true})
	first := next(r)
	if first.Event != "connect" || first.PID == "" {
		t.Fatalf("got %+v, want a connect with a pid", first)
	}
	if l := next(r); l.Name != "recovery" {
		t.Fatalf("got %+v, want the recovery event", l)
	}
	px.Cut(true)
	for {
		l := next(r)
		if l.Event == "connect" {
			if !l.Recovered || l.ID != first.ID {
				t.Fatalf("reconnect %+v: want %s recovered", l, first.ID)
			}
			break
		}
	}
	_, metrics := get(t, base+"/metrics", http.Header{"Authorization": {"Bearer k"}})
	for _, want := range []string{"sessiongate_recovery_attempts_total 1", "sessiongate_recovery_successes_total 1", `sessiongate_recovery_failures_total{reason="key"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
