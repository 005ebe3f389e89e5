package main

import (
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
