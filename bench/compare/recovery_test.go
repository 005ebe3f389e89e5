package main

import (
	"fmt"
	"strings"
	"testing"
)

// The goals are 0 in every run, so lost and duplicated events are summed
// over the runs (one bad run shows), the rest is the median.
func TestSummarizeRecovery(t *testing.T) {
	runs := []recoveryRun{
		{Server: "go", Sockets: 10, Cut: 5, CatchUpP99: 300, LogHeapPerSocket: 100, LogEntries: 50},
		{Server: "node", Sockets: 10, Cut: 5, Lost: 7, CatchUpP99: 900},
		{Server: "go", Sockets: 10, Cut: 5, Dup: 2, CatchUpP99: 100, LogHeapPerSocket: 300, LogEntries: 50},
		{Server: "go", Sockets: 10, Cut: 5, CatchUpP99: 200, LogHeapPerSocket: 200, LogEntries: 50},
	}
	s := summarizeRecovery(runs, "go")
	if s.runs != 3 || s.lost != 0 || s.dup != 2 || s.p99 != 200 || s.logHeap != 200 || s.perEntry != 40 {
		t.Fatalf("summary %+v", s)
	}
	if summarizeRecovery(runs, "other") != nil {
		t.Fatal("a summary of no runs")
	}
	var b strings.Builder
	p := func(format string, args ...any) { b.WriteString(strings.TrimSpace(format) + "\n") }
	renderRecoverySummary(p, &results{Sections: map[string]*section{secRecovery: {Recovery: runs}}})
	if !strings.Contains(b.String(), "connection state recovery") {
		t.Fatalf("no summary row: %q", b.String())
	}
}

// The cluster runs add out-of-order events, fresh reconnections and
// failures by reason, summed; a run with irregular numbers is described.
func TestSummarizeRecoveryCluster(t *testing.T) {
	c := func(onB int, failed map[string]uint64, anomalies ...anomaly) *recoveryClusterRun {
		return &recoveryClusterRun{RecoveredOn: map[string]int{"A": 0, "B": onB}, StreamBytes: 1000, SessionBytes: 100,
			RedisPerSocket: 110, FailedOn: map[string]map[string]uint64{"B": failed}, Anomalies: anomalies}
	}
	runs := []recoveryRun{
		{Server: "go", Sockets: 10, Cut: 5, Recovered: 5, LogEntries: 100, Cluster: c(5, nil)},
		{Server: "node", Sockets: 10, Cut: 5, Recovered: 5, Dup: 1, OutOfOrder: 2, LogEntries: 100,
			Cluster: c(5, nil, anomaly{I: 3, Kind: "late", Seq: 9, Expected: 11, Phase: "first"})},
		{Server: "go", Sockets: 10, Cut: 5, Recovered: 3, Fresh: 2, Lost: 4, LogEntries: 100,
			Cluster: c(3, map[string]uint64{"log_error": 2}, anomaly{I: 0, Kind: "gap", Seq: 40, Expected: 21, Phase: "live", Reconnects: 1})},
		{Server: "go", Sockets: 10, Cut: 5, Recovered: 5, LogEntries: 100, Cluster: c(5, nil)},
		{Server: "go", Sockets: 10, Cut: 5, Recovered: 5}, // one-node: not counted
	}
	s := summarizeRecoveryCluster(runs, "go", 0)
	if s.runs != 3 || s.lost != 4 || s.fresh != 2 || s.onB != 5 || s.failed["log_error"] != 2 || s.perEvent != 10 || s.perSocket != 110 {
		t.Fatalf("summary %+v", s)
	}
	if n := summarizeRecoveryCluster(runs, "node", 10); n.outOfOrder != 2 || n.dup != 1 {
		t.Fatalf("node summary %+v", n)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	res := &results{Sections: map[string]*section{secRecoveryCluster: {Recovery: runs}}}
	renderRecoveryClusterSummary(p, res)
	if !strings.Contains(b.String(), "cluster recovery on another node") || !strings.Contains(b.String(), "| **no** |") {
		t.Fatalf("summary row: %q", b.String())
	}
	b.Reset()
	renderRecoveryCluster(p, &section{Date: "now", Recovery: runs})
	for _, want := range []string{"2 log_error", "0 gap 40 (due 21, live)", "sessiongate, 10 sockets, run 2", "Node, 10 sockets, run 1: 3 late 9"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("section lacks %q:\n%s", want, b.String())
		}
	}
}
