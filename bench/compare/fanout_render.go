package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

// The fan-out and cluster sections of the document, and their goal rows.

// findAny is find for any of the servers named (a section's sessiongate
// row is named after the one-node or the cluster target).
func findAny(s *section, servers ...string) *row {
	for _, name := range servers {
		if r := find(s, name); r != nil {
			return r
		}
	}
	return nil
}

// fanoutRows are a fan-out section's sessiongate and Node rows.
func fanoutRows(s *section) (sg, node *row) {
	return findAny(s, nameSessiongate, nameSessiongateCluster), findAny(s, nameNode, nameNodeCluster)
}

// ratioGoal is the met cell of an "at most half of Node's" or "at least
// 3× Node's" goal: the verdict and the ratio.
func ratioGoal(ok bool, ratio float64) string {
	return fmt.Sprintf("%s (%.2f×)", verdict(ok), ratio)
}

// renderFanoutSummary writes the goal rows of the fan-out sections.
func renderFanoutSummary(p printer, r *results) {
	for _, g := range []struct {
		sec, what string
	}{
		{secFanout2000, "one node: one publish to %d user rooms (%d sockets of as many users), time until the last socket has it (median of %d)"},
		{secClusterFanout, "3 nodes on Redis: one publish to all %d user rooms (%d sockets of as many users), time until the last socket has it (median of %d)"},
	} {
		s := r.Sections[g.sec]
		sg, node := fanoutRows(s)
		if sg == nil || node == nil || sg.Report.FanoutLastMs == 0 || node.Report.FanoutLastMs == 0 {
			continue
		}
		ratio := sg.Report.FanoutLastMs / node.Report.FanoutLastMs
		p("| "+g.what+" | ≤ ½ Node | %.1f ms | %.1f ms | %s |", sg.Report.StillOpen, sg.Report.StillOpen, len(sg.Report.Rounds),
			sg.Report.FanoutLastMs, node.Report.FanoutLastMs, ratioGoal(ratio <= 0.5, ratio))
	}
	if s := r.Sections[secClusterSingle]; s != nil {
		sg, node := fanoutRows(s)
		if sg != nil && node != nil && node.Report.DeliveredRate > 0 {
			ratio := sg.Report.DeliveredRate / node.Report.DeliveredRate
			p("| 3 nodes on Redis: single-user publishes through one node, %d publishers, delivered messages/s | ≥ 3× Node | %.0f/s | %.0f/s | %s |",
				s.Sizes.Publishers, sg.Report.DeliveredRate, node.Report.DeliveredRate, ratioGoal(ratio >= 3, ratio))
		}
	}
	if s := r.Sections[secClusterBytes]; s != nil {
		sg, node := fanoutRows(s)
		if sg != nil && node != nil && node.Report.RedisBytesPerPublish > 0 {
			ratio := sg.Report.RedisBytesPerPublish / node.Report.RedisBytesPerPublish
			p("| 3 nodes on Redis: Redis output bytes per single-user publish | ≤ ½ Node | %.0f B | %.0f B | %s |",
				sg.Report.RedisBytesPerPublish, node.Report.RedisBytesPerPublish, ratioGoal(ratio <= 0.5, ratio))
		}
	}
}

// medianAnswered is the median time, over the rounds, until the publish
// request was answered.
func medianAnswered(rounds []load.Round) float64 {
	if len(rounds) == 0 {
		return 0
	}
	a := make([]float64, len(rounds))
	for i, r := range rounds {
		a[i] = r.Answered
	}
	slices.Sort(a)
	return a[(len(a)-1)/2]
}

// fanoutTable writes the rounds of a fan-out section, one row a server.
func fanoutTable(p printer, s *section) {
	runs := false
	for _, r := range s.Rows {
		runs = runs || len(r.RunLastMs) > 1
	}
	last := "last of each round (ms)"
	if runs {
		last = "median round's last, all runs (ms)"
	}
	p("| server | sockets | median round: received | first | p50 | p99 | **last** (ms) | publish answered (median, ms) | server CPU per round (ms) | %s |", last)
	p("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil || len(r.Report.Rounds) == 0 {
			continue
		}
		m := medianRoundOf(r.Report.Rounds)
		var each []string
		if runs {
			for _, v := range r.RunLastMs {
				each = append(each, fmt.Sprintf("%.0f", v))
			}
		} else {
			for _, x := range r.Report.Rounds {
				each = append(each, fmt.Sprintf("%.0f", x.Last))
			}
		}
		cpu := "—"
		if r.Report.ServerCPUPerRoundMs > 0 {
			cpu = fmt.Sprintf("%.1f", r.Report.ServerCPUPerRoundMs)
		}
		p("| %s | %d of %d | %d | %.1f | %.1f | %.1f | **%.1f** | %.1f | %s | %s |", r.Server, r.Report.StillOpen, r.Report.Requested,
			m.Received, m.First, m.P50, m.P99, m.Last, medianAnswered(r.Report.Rounds), cpu, strings.Join(each, ", "))
	}
	p("")
	errorRows(p, s)
	p("")
}

// medianRoundOf is the round with the median last arrival (the lower middle
// one of an even count), as the load tool reports it.
func medianRoundOf(rounds []load.Round) load.Round {
	s := slices.Clone(rounds)
	slices.SortFunc(s, func(a, b load.Round) int {
		switch {
		case a.Last < b.Last:
			return -1
		case a.Last > b.Last:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

func renderFanout2000(p printer, s *section) {
	if !header(p, "9. One publish to 2,000 user rooms, one node", s) {
		return
	}
	p("%d sockets, each with its own session of its own user (so each alone in its `user:<id>` room),", s.Sizes.FanoutN)
	p("are connected to one server. The load tool then sends one `POST /api/publish` whose `to` lists")
	p("all %d rooms (`user:1` … `user:%d`), waits until every socket has the event (or 30 s), pauses", s.Sizes.FanoutN, s.Sizes.FanoutN)
	p("200 ms, and does it again: three warm-up rounds (Node's JIT compiles the emit path over the")
	p("first publishes), then %d measured rounds. Times are from just before the request is sent to", s.Sizes.FanoutRounds)
	p("each socket's receipt; a row shows the round with the median *last* arrival, the figure of the")
	p("goal. *Publish answered* is when the server answered the request: both servers answer after")
	p("handing the event to every socket's connection, so it is the server's own share of the time.")
	p("*Server CPU per round* is the server process's CPU time (user + system, from `/proc/<pid>/stat`)")
	p("over the measured rounds divided by their number: the cost of one such publish, steadier than")
	p("the times when other work shares the machine. The load tool stays light, like wrk: the sockets")
	p("are read by plain goroutines with a minimal frame reader (no websocket library), and the")
	p("publishes go over its own HTTP/1.1 client (see section 11), so that the client's cost competes")
	p("as little as possible with the server for this machine's two cores.")
	if n := s.Sizes.FanoutRuns; n > 1 {
		p("")
		p("Each server runs %d times, the two alternating (each run on a fresh server and schema), so that", n)
		p("a drift in what else the machine does falls on both alike; a row is the server's run with the")
		p("median last arrival, and the last column lists that figure for all its runs.")
	}
	p("")
	fanoutTable(p, s)
	p("Where sessiongate's time goes (CPU profile of `sessiongate serve` built with `-tags")
	p("sessiongate_pprof`, 60 such publishes): 71–77%% is the `writev(2)` of each socket's frame (about")
	p("12 µs each on loopback, which includes the kernel's delivery into the client's socket); the")
	p("recipient selection, the request's JSON decoding and the locks are 2–5%% each. Node's publish")
	p("costs about 1.5× sessiongate's CPU (the table), about half of it the same system calls, so on")
	p("one core no server gets much below half of Node's time. sessiongate writes the sockets from the")
	p("publishing goroutine, one after the other; spreading the writes over both cores shortens the")
	p("time only when a core is free, which with the load tool on the other core (and, during these")
	p("runs, other work: see the load average) it rarely is.")
	p("")
}

func renderClusterFanout(p printer, s *section) {
	if !header(p, "10. Cluster: one publish to every user room", s) {
		return
	}
	p("Three servers of each kind share one Redis (started by the benchmark on a port of its own, with")
	p("nothing on disk, so that its counters see only them) and one PostgreSQL session table:")
	p("`sessiongate serve` with `CLUSTER=redis`, `REDIS_URL`, `CLUSTER_KEY`; the Node baseline with")
	p("`CLUSTER=redis`, which attaches `@socket.io/redis-adapter` 8.3.0's classic `createAdapter` over two")
	p("node-redis 4.7.1 clients (publisher and a duplicate subscriber), its `/api/publish` emitting")
	p("through the adapter (`io.to(rooms).emit`). %d sockets of %d distinct users are spread evenly", s.Sizes.ClusterN, s.Sizes.ClusterN)
	p("over the three (socket *i* on server *i* mod 3). Each round is one `POST /api/publish` to the")
	p("first server whose `to` lists all %d `user:<id>` rooms, so two thirds of the recipients are on", s.Sizes.ClusterN)
	p("the other two servers and are reached through Redis; otherwise as in section 9 (three warm-up rounds,")
	p("%d measured rounds, the median round shown). *Server CPU per round* adds up the three servers", s.Sizes.FanoutRounds)
	p("and Redis.")
	p("")
	fanoutTable(p, s)
}

func renderClusterSingle(p printer, s *section) {
	if !header(p, "11. Cluster: single-user publishes through one node", s) {
		return
	}
	p("On the same cluster and sockets, right after section 10's rounds: %d concurrent publishers", s.Sizes.Publishers)
	p("send, for %s, `POST /api/publish` to the first server, each to one random user's room", s.Sizes.SingleD)
	p("(`{\"to\":[\"user:<random>\"]}`), each over a kept-alive connection of its own, waiting for the")
	p("answer before the next; like wrk, the load tool writes each request in one piece and reads the")
	p("answer with a minimal HTTP/1.1 reader instead of net/http's client, whose goroutines would take")
	p("cores from the servers. The sockets count the deliveries; the rate is deliveries over the time from")
	p("the first publish to the last delivery (waiting up to 10 s after the last publish for those")
	p("still in flight). Latency is from each publish's send time (carried in the event) to its")
	p("delivery, in milliseconds.")
	p("")
	p("| server | publishes | failed | publishes/s | delivered | **delivered/s** | latency p50 | p99 | max (ms) | CPU per delivery (3 servers + Redis) |")
	p("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil || r.Report.Published == 0 {
			continue
		}
		d := r.Report.Latency
		if d == nil {
			d = &load.Dist{}
		}
		cpu := "—"
		if r.Report.ServerCPUPerDeliveryUs > 0 {
			cpu = fmt.Sprintf("%.0f µs", r.Report.ServerCPUPerDeliveryUs)
		}
		p("| %s | %d | %d | %.0f | %d | **%.0f** | %.1f | %.1f | %.1f | %s |", r.Server, r.Report.Published, r.Report.PublishFailed,
			r.Report.PublishRate, r.Report.Delivered, r.Report.DeliveredRate, d.P50, d.P99, d.Max, cpu)
	}
	p("")
	errorRows(p, s)
	p("")
	p("Both clusters are bound by the CPU of the publishing node, which handles every HTTP request.")
	p("Profiled, sessiongate's publishing node spends about 40%% of its CPU in net/http itself (reading")
	p("the request, writing the answer), 20%% in the adapter's broadcast (half the Redis PUBLISH with")
	p("the JSON data re-encoded as msgpack, half the delivery to its own third of the sockets), 7%% in")
	p("decoding the request; a receiving node spends about 40 µs per delivery, most of it the socket")
	p("write. sessiongate uses both cores where Node's publishing node has one, but with the load tool,")
	p("Redis and the other nodes on the same two cores that is worth far less than the goal's 3×.")
	p("")
}

func renderClusterBytes(p printer, s *section) {
	if !header(p, "12. Cluster: Redis output bytes per single-user publish", s) {
		return
	}
	p("Around section 11's publishes, the load tool reads `total_net_output_bytes` from the")
	p("benchmark's own Redis (`INFO stats`) before the first and after the last delivery: everything")
	p("Redis wrote to its clients meanwhile (the messages to subscribers, the replies to PUBLISH, one")
	p("INFO reply), divided by the publishes. The Node adapter's nodes each PSUBSCRIBE to the")
	p("namespace's pattern, so Redis sends every message to all three of them (each drops what it has")
	p("no socket for); sessiongate's nodes subscribe to the channel of each room they hold, so Redis")
	p("sends a single-user message only to the node holding that user.")
	p("")
	p("| server | publishes | Redis output bytes | **bytes per publish** |")
	p("|---|---|---|---|")
	for _, r := range s.Rows {
		if r.Report == nil || r.Report.Published == 0 || r.Report.RedisOutputBytes == 0 {
			continue
		}
		p("| %s | %d | %d | **%.0f** |", r.Server, r.Report.Published, r.Report.RedisOutputBytes, r.Report.RedisBytesPerPublish)
	}
	p("")
	errorRows(p, s)
	p("")
}
