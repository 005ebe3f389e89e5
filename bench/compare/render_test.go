package main

import (
	"slices"
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

func TestMedianRun(t *testing.T) {
	run := func(rate float64) row {
		return row{Server: "s", Report: &load.Report{HandshakeRate: rate}, ServerCPUSeconds: rate / 1000}
	}
	failed := row{Server: "s", Error: "boom"}
	tests := []struct {
		name    string
		runs    []row
		want    float64 // the median run's rate; 0: the failure
		wantAll []float64
	}{
		{"three", []row{run(30), run(10), run(20)}, 20, []float64{30, 10, 20}},
		{"even takes the lower middle", []row{run(40), run(10), run(30), run(20)}, 20, []float64{40, 10, 30, 20}},
		{"failures left out", []row{failed, run(10), run(20)}, 10, []float64{10, 20}},
		{"all failed", []row{failed, failed}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := medianRun("s", tt.runs)
			if tt.want == 0 {
				if got.Error == "" {
					t.Fatalf("got %+v, want the failure", got)
				}
				return
			}
			if got.Report == nil || got.Report.HandshakeRate != tt.want || got.ServerCPUSeconds != tt.want/1000 {
				t.Fatalf("median %+v, want the run at %v/s", got, tt.want)
			}
			if !slices.Equal(got.RunRates, tt.wantAll) {
				t.Errorf("run rates %v, want %v", got.RunRates, tt.wantAll)
			}
		})
	}
}

// TestRenderFanoutSummary checks the fan-out and cluster goal verdicts.
func TestRenderFanoutSummary(t *testing.T) {
	rounds := func(last ...float64) []load.Round {
		var rs []load.Round
		for _, l := range last {
			rs = append(rs, load.Round{Received: 2000, Last: l})
		}
		return rs
	}
	cluster := []row{
		{Server: nameSessiongateCluster, Report: &load.Report{StillOpen: 3000, Rounds: rounds(20, 30, 25), FanoutLastMs: 25,
			DeliveredRate: 9000, RedisBytesPerPublish: 100, Published: 10, RedisOutputBytes: 1000}},
		{Server: nameNodeCluster, Report: &load.Report{StillOpen: 3000, Rounds: rounds(40, 45, 50), FanoutLastMs: 45,
			DeliveredRate: 4000, RedisBytesPerPublish: 300, Published: 10, RedisOutputBytes: 3000}},
	}
	r := &results{Sections: map[string]*section{
		secFanout2000: {Sizes: fullSizes, Rows: []row{
			{Server: nameNode, Report: &load.Report{StillOpen: 2000, Rounds: rounds(60), FanoutLastMs: 60}},
			{Server: nameSessiongate, Report: &load.Report{StillOpen: 2000, Rounds: rounds(30), FanoutLastMs: 30}},
		}},
		secClusterFanout: {Sizes: fullSizes, Rows: cluster},
		secClusterSingle: {Sizes: fullSizes, Rows: cluster},
		secClusterBytes:  {Sizes: fullSizes, Rows: cluster},
	}}
	doc := string(render(r))
	for _, want := range []string{
		"one publish to 2000 user rooms (2000 sockets of as many users), time until the last socket has it (median of 1) | ≤ ½ Node | 30.0 ms | 60.0 ms | yes (0.50×) |",
		"all 3000 user rooms (3000 sockets of as many users), time until the last socket has it (median of 3) | ≤ ½ Node | 25.0 ms | 45.0 ms | **no** (0.56×) |",
		"32 publishers, delivered messages/s | ≥ 3× Node | 9000/s | 4000/s | **no** (2.25×) |",
		"Redis output bytes per single-user publish | ≤ ½ Node | 100 B | 300 B | yes (0.33×) |",
		"| 3 × sessiongate serve, CLUSTER=redis | 10 | 1000 | **100** |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q", want)
		}
	}
}
