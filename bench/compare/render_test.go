package main

import (
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkEncode/Event-2           	 1000000	       672.7 ns/op	 104.05 MB/s	      96 B/op	       1 allocs/op
BenchmarkEmitEncode-2             	   18685	      9051 ns/op	     456 B/op	      11 allocs/op
PASS
`
	got := parseBench(out)
	want := []benchLine{
		{Name: "Encode/Event", NsPerOp: 672.7, BPerOp: 96, AllocsOp: 1},
		{Name: "EmitEncode", NsPerOp: 9051, BPerOp: 456, AllocsOp: 11},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseBench = %+v, want %+v", got, want)
	}
}

// TestRenderSummary checks the goal verdicts drawn from the figures.
func TestRenderSummary(t *testing.T) {
	r := &results{Sections: map[string]*section{
		"memory": {Rows: []row{
			{Server: nameEcho, Report: &load.Report{StillOpen: 10000, KiBPerConn: 4.2, RSSAfterGCKiB: 1, KiBPerConnGC: 3.1}},
			{Server: nameNode, Report: &load.Report{StillOpen: 10000, KiBPerConn: 15.5}},
			{Server: nameSessiongate, Report: &load.Report{StillOpen: 10000, KiBPerConn: 12.0}},
		}},
		"handshake": {Sizes: fullSizes, Rows: []row{
			{Server: nameNode, Report: &load.Report{HandshakeRate: 500, Latency: &load.Dist{P99: 700}}},
			{Server: nameSessiongate, Report: &load.Report{HandshakeRate: 1600, Latency: &load.Dist{P99: 200}}},
		}},
		"statements": {Rows: []row{
			{Server: nameNode, Sessions: 5000, PerInterval: 5000},
			{Server: nameSessiongate, Sessions: 5000, PerInterval: 10},
		}},
		"revocation": {Rows: []row{
			{Server: nameSessiongate, Report: &load.Report{Requested: 1000, StillOpen: 1000, Received: 1000, Latency: &load.Dist{P50: 300, P99: 1200}}},
		}},
	}}
	doc := string(render(r))
	for _, want := range []string{
		"| RSS per idle connection, protocol only (10000 connections) | ≤ 10 KiB | 4.2 KiB (3.1 after GC) (echo server) | — | yes |",
		"| RSS per idle authenticated socket (10000) | ≤ 10 KiB | 12.0 KiB | 15.5 KiB | **no** |",
		"| 1600/s (p99 200 ms) | 500/s (p99 700 ms) | yes (3.2×) |",
		"| ≤ 1 per 500 (≤ 10) | 10.0 | 5000 | yes |",
		"| p50 300 ms, p99 1200 ms (1000/1000) | — | **no** |",
		"Not measured yet",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q", want)
		}
	}
}
