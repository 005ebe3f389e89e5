package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

// TestRenderHooksSummary checks the goal rows of the subscribe, events and
// presence sections.
func TestRenderHooksSummary(t *testing.T) {
	ev := func(name string, n int, rate, p99 float64) row {
		return row{Server: name, Sockets: n, Report: &load.Report{AckOK: 10, AckRate: rate, Latency: &load.Dist{P99: p99}}}
	}
	presence := func(p load.PresenceReport) *section {
		return &section{Sizes: fullSizes, Rows: []row{{Server: nameSessiongate, Report: &load.Report{Presence: &p}}}}
	}
	good := load.PresenceReport{Users: 1000, Complete: 1000, Events: 2500, MaxEvents: 3, Naive: 999000}
	r := &results{Sections: map[string]*section{
		secSubscribe: {Sizes: fullSizes, Rows: []row{
			{Server: nameSGSubscribeTTL, Report: &load.Report{AckRate: 13000, Latency: &load.Dist{P99: 9}}},
			{Server: nameSGSubscribeHook, Report: &load.Report{AckRate: 7000, Latency: &load.Dist{P99: 20}}},
		}},
		secEvents: {Sizes: fullSizes, Rows: []row{
			ev(nameNodeEvents, 64, 2000, 100), ev(nameSessiongate, 64, 9000, 20),
			ev(nameNodeEvents, 256, 1500, 400), ev(nameSessiongate, 256, 6000, 220),
		}},
		secPresence: presence(good),
	}}
	doc := string(render(r))
	for _, want := range []string{
		"| 13000/s (p99 9.0 ms); 7000/s (p99 20.0 ms) |",
		"256 sockets (one in flight each) | ≥ 3× Node's rate at ≤ ½ its p99 | 6000/s (p99 220.0 ms) | 1500/s (p99 400.0 ms) | **no** (4.00× the rate, 0.55× the p99) |",
		"1000/1000 members learnt of all, 0 repeated joins; 2500 events in all, ≤ 3 a socket (naive fan-out: 999000 messages) | — | yes |",
		"64 sockets: 4.50× the rate, 0.20× the p99",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q", want)
		}
	}
	for name, bad := range map[string]func(*load.PresenceReport){
		"a storm":       func(p *load.PresenceReport) { p.MaxEvents = 4 },
		"a repeat":      func(p *load.PresenceReport) { p.RepeatedJoins = 1 },
		"one missing":   func(p *load.PresenceReport) { p.Complete = 999 },
		"a false leave": func(p *load.PresenceReport) { p.LeftEntries = 1 },
	} {
		p := good
		bad(&p)
		r.Sections[secPresence] = presence(p)
		if doc := string(render(r)); !strings.Contains(doc, "(naive fan-out: 999000 messages) | — | **no** |") {
			t.Errorf("presence with %s is not refused", name)
		}
	}
}

func TestMedianAckRun(t *testing.T) {
	run := func(rate, p99 float64) row {
		return row{Server: "s", Sockets: 8, Report: &load.Report{AckRate: rate, Latency: &load.Dist{P99: p99}}}
	}
	got := medianAckRun("s", 8, []row{run(30, 3), {Server: "s", Error: "boom"}, run(10, 1), run(20, 2)})
	if got.Report.AckRate != 20 || !slices.Equal(got.RunRates, []float64{30, 10, 20}) || !slices.Equal(got.RunP99, []float64{3, 1, 2}) {
		t.Errorf("median %+v (rates %v, p99 %v), want the run at 20/s and every run's figures", got.Report, got.RunRates, got.RunP99)
	}
	if got := medianAckRun("s", 8, nil); got.Error == "" || got.Sockets != 8 {
		t.Errorf("no runs: %+v, want a failed row of 8 sockets", got)
	}
}
