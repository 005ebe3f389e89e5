package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const secRecoveryCluster = "recovery-cluster"

// The servers of the cluster recovery section, as the tables name them.
const (
	nameRecoveryClusterGo   = "sessiongate (socketio + redis.StreamLog)"
	nameRecoveryClusterNode = "Node socket.io 4.8 + redis-streams-adapter 0.3.1"
)

// recoveryClusterRun is the "cluster" object of a bench/recovery -cluster
// redis run.
type recoveryClusterRun struct {
	ConnectionsOn    map[string]int               `json:"connections_on"`
	RecoveredOn      map[string]int               `json:"recovered_on"`
	FailedOn         map[string]map[string]uint64 `json:"failed_on,omitempty"`
	Replayed         uint64                       `json:"replayed,omitempty"`
	EmitErrors       int                          `json:"emit_errors,omitempty"`
	Rounds           int                          `json:"rounds"`
	StreamBytes      int64                        `json:"redis_stream_bytes"`
	SessionKeys      int                          `json:"redis_session_keys"`
	SessionBytes     int64                        `json:"redis_session_bytes"`
	UsedMemoryDelta  int64                        `json:"redis_used_memory_delta"`
	RedisPerSocket   float64                      `json:"log_redis_bytes_per_socket"`
	BehindAtStop     int                          `json:"behind_at_stop"`
	ReconnectWaitSec float64                      `json:"reconnect_wait_s"`
	// Anomalies: the first of the clients' irregular numbers (kept to
	// maxAnomalies here), each {i, kind, seq, expected, phase, reconnects}.
	Anomalies []anomaly `json:"anomalies,omitempty"`
	Behind    [][3]int  `json:"behind,omitempty"`  // [socket, sent, last received], kept to maxAnomalies
	Missing   [][]int   `json:"missing,omitempty"` // [socket, numbers lost...], kept to maxAnomalies
}

// anomaly is one irregular number a client received (test/interop/recovery-load.mjs).
type anomaly struct {
	I          int    `json:"i"`
	Kind       string `json:"kind"` // gap, late, dup
	Seq        int    `json:"seq"`
	Expected   int    `json:"expected"`
	Phase      string `json:"phase"` // first, replay, live
	Reconnects int    `json:"reconnects"`
}

// maxAnomalies bounds the anomalies a run keeps in docs/benchmarks.json.
const maxAnomalies = 12

// recoveryCluster runs bench/recovery -cluster redis RecoveryRuns times for
// each server at each of RecoveryClusterN, alternating, each run on a
// Redis of its own (so that INFO memory sees only it).
func (e *env) recoveryCluster(ctx context.Context) ([]recoveryRun, error) {
	var runs []recoveryRun
	for _, n := range e.sizes.RecoveryClusterN {
		for range e.sizes.RecoveryRuns {
			for _, server := range []string{"go", "node"} {
				r, err := e.recoveryClusterRun(ctx, server, n)
				if err != nil {
					return runs, err
				}
				runs = append(runs, r)
			}
		}
	}
	return runs, nil
}

func (e *env) recoveryClusterRun(ctx context.Context, server string, n int) (recoveryRun, error) {
	var r recoveryRun
	redis, err := e.startRedis(ctx)
	if err != nil {
		return r, err
	}
	defer redis.stop()
	args := []string{"-server", server, "-cluster", "redis", "-n", strconv.Itoa(n), "-repo", e.repo,
		"-redis", "redis://" + strings.TrimPrefix(redis.url, "http://")}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "recovery"), args...)
	cmd.Stderr = os.Stderr
	fmt.Fprintln(os.Stderr, "  $ recovery "+strings.Join(args, " "))
	out, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("recovery -server %s -cluster redis: %w", server, err)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("recovery output: %w", err)
	}
	if r.Cluster == nil {
		return r, fmt.Errorf("recovery -cluster redis printed no cluster figures")
	}
	if len(r.Cluster.Anomalies) > maxAnomalies {
		r.Cluster.Anomalies = r.Cluster.Anomalies[:maxAnomalies]
	}
	if len(r.Cluster.Behind) > maxAnomalies {
		r.Cluster.Behind = r.Cluster.Behind[:maxAnomalies]
	}
	if len(r.Cluster.Missing) > maxAnomalies {
		r.Cluster.Missing = r.Cluster.Missing[:maxAnomalies]
	}
	return r, nil
}

// recoveryClusterSummary is one server's cluster runs: lost, duplicated,
// out of order, fresh and failed summed over them, the rest their median.
type recoveryClusterSummary struct {
	recoverySummary
	outOfOrder, onB, replayed int
	failed                    map[string]uint64
	wait, perSocket, stream   float64
	sessions, sessionKeys     float64
	used, perEvent            float64
}

// summarizeRecoveryCluster summarizes the runs of server with sockets
// sockets (0: the most of any run).
func summarizeRecoveryCluster(runs []recoveryRun, server string, sockets int) *recoveryClusterSummary {
	if sockets == 0 {
		sockets = maxClusterSockets(runs)
	}
	var mine []recoveryRun
	for _, r := range runs {
		if r.Server == server && r.Cluster != nil && r.Sockets == sockets {
			mine = append(mine, r)
		}
	}
	base := summarizeRecovery(mine, server)
	if base == nil {
		return nil
	}
	s := &recoveryClusterSummary{recoverySummary: *base, failed: map[string]uint64{}}
	var onB, wait, perSocket, stream, sessions, keys, used, perEvent []float64
	for _, r := range mine {
		c := r.Cluster
		s.outOfOrder += r.OutOfOrder
		s.replayed += int(c.Replayed)
		for _, f := range c.FailedOn {
			for reason, n := range f {
				s.failed[reason] += n
			}
		}
		onB = append(onB, float64(c.RecoveredOn["B"]))
		wait = append(wait, c.ReconnectWaitSec)
		perSocket = append(perSocket, c.RedisPerSocket)
		stream = append(stream, float64(c.StreamBytes)/float64(r.Sockets))
		sessions = append(sessions, float64(c.SessionBytes)/float64(r.Sockets))
		keys = append(keys, float64(c.SessionKeys))
		used = append(used, float64(c.UsedMemoryDelta)/float64(r.Sockets))
		if r.LogEntries > 0 {
			perEvent = append(perEvent, float64(c.StreamBytes)/float64(r.LogEntries))
		}
	}
	s.onB = int(medianOf(onB))
	s.wait, s.perSocket, s.stream, s.sessions = medianOf(wait), medianOf(perSocket), medianOf(stream), medianOf(sessions)
	s.sessionKeys, s.used, s.perEvent = medianOf(keys), medianOf(used), medianOf(perEvent)
	return s
}

// maxClusterSockets is the most sockets of the cluster runs.
func maxClusterSockets(runs []recoveryRun) int {
	n := 0
	for _, r := range runs {
		if r.Cluster != nil {
			n = max(n, r.Sockets)
		}
	}
	return n
}

// clusterSockets are the socket counts of the cluster runs, in order.
func clusterSockets(runs []recoveryRun) []int {
	var ns []int
	for _, r := range runs {
		if r.Cluster != nil && !slices.Contains(ns, r.Sockets) {
			ns = append(ns, r.Sockets)
		}
	}
	slices.Sort(ns)
	return ns
}

// msText is a catch-up time, "—" when nothing was recovered.
func msText(ms float64, any bool) string {
	if !any {
		return "—"
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// waitText is the time until every cut socket reconnected, 0: not by
// the end of the rounds.
func waitText(s float64) string {
	if s == 0 {
		return "not by the stop"
	}
	return fmt.Sprintf("%.1f s", s)
}

// failedText is failures by reason, "—" for none.
func failedText(failed map[string]uint64) string {
	var parts []string
	for _, reason := range slices.Sorted(maps.Keys(failed)) {
		if failed[reason] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", failed[reason], reason))
		}
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

// renderRecoveryClusterSummary writes the section's goal row.
func renderRecoveryClusterSummary(p printer, r *results) {
	s := r.Sections[secRecoveryCluster]
	if s == nil {
		return
	}
	sg, node := summarizeRecoveryCluster(s.Recovery, "go", 0), summarizeRecoveryCluster(s.Recovery, "node", 0)
	if sg == nil {
		return
	}
	text := func(m *recoveryClusterSummary) string {
		return fmt.Sprintf("%d lost, %d duplicated, %d out of order, %d fresh; %d of %d recovered on the other node (median); catch-up p99 %s",
			m.lost, m.dup, m.outOfOrder, m.fresh, m.onB, m.cut, msText(m.p99, m.recovered > 0))
	}
	nodeText := "—"
	if node != nil {
		nodeText = text(node)
	}
	p("| cluster recovery on another node, %d sockets at 10 events/s, half cut for 2 s (%d runs): messages lost, duplicated | 0, 0 | %s | %s | %s |",
		sg.sockets, sg.runs, text(sg), nodeText, verdict(sg.lost == 0 && sg.dup == 0 && sg.outOfOrder == 0 && sg.fresh == 0))
}

func renderRecoveryCluster(p printer, s *section) {
	if !header(p, "19. Cluster: connection state recovery on another node, half the sockets cut for 2 s", s) {
		return
	}
	sizes := clusterSockets(s.Recovery)
	if len(sizes) == 0 {
		return
	}
	var counts []string
	for _, k := range sizes {
		counts = append(counts, strconv.Itoa(k))
	}
	p("`bench/recovery -cluster redis` (`go run ./bench/recovery -server go|node -cluster redis -n N`) with")
	p("N = %s sockets, %d runs of each server at each, alternating, each on a Redis 7.0 of its own (`redis-server`, no", strings.Join(counts, " and "), s.Sizes.RecoveryRuns)
	p("persistence; the run's keys under a random prefix). Two server processes, *A* and *B*, share")
	p("one stream: *sessiongate* is its `socketio` package with a `redis.StreamLog` (the streams")
	p("adapter's format) as its shared recovery log, so every broadcast is appended to the stream and")
	p("each node delivers what it reads back, in the stream's order; no cluster adapter (nothing else")
	p("crosses nodes here); *Node* is socket.io 4.8.4 with `connectionStateRecovery` on")
	p("`@socket.io/redis-streams-adapter` 0.3.1 (`bench/node-baseline/recovery-server.js`). Both keep")
	p("a 2 min window, and the stream is bounded at 1,200,000 entries (the window at this rate; Node:")
	p("`maxLen`, `MAXLEN ~`). N official socket.io-client 4.8 clients (`test/interop/recovery-load.mjs`,")
	p("as in section 18) connect through two TCP proxies, all to node A, each in a room of its own.")
	p("The ticks go out in rounds, every 100 ms: round *r* is `tick` *r* to every room, published by")
	p("node A when *r* is odd and node B when even; the next round starts once the last one is in the")
	p("stream (sessiongate: its appends returned; Node: a `PING` on the XADD connection answered), so")
	p("each socket's numbers are in the stream in order, alternately from either node. After 2 s the")
	p("first proxy cuts its half of the clients (both sides) and refuses connections for 2 s, and is")
	p("pointed at node B meanwhile: the cut half reconnect to B, which must recover them from what A")
	p("saved and the stream. The rounds go on until every cut client has reconnected and 5 s have")
	p("passed since the cut ended (at most 60 s), then stop; 1 s later the clients report.")
	p("")
	p("*lost*: numbers up to a client's highest never received, plus those sent but not received at")
	p("the end (1 s after the rounds stop: a delivery slower than that counts as lost too); *duplicated*: numbers received again; *out of order*: numbers received, the first time,")
	p("after a higher one; each summed over the runs. *recovered on B*: reconnections node B counted")
	p("with `recovered` (the median run); *fresh*: reconnections that were not recovered (their")
	p("client is told it may have missed events), summed; *failed*: the reasons sessiongate's nodes")
	p("counted for those (`RecoveryStats`), summed. *catch-up*: for each recovered reconnection, the")
	p("time from the new transport's open to the client's `connect`; *all reconnected*: from the end")
	p("of the cut to the last cut client's reconnection. *Redis per socket*: `MEMORY USAGE key SAMPLES")
	p("0` of the stream plus every other key of the run (the saved sockets: sessiongate keeps a record")
	p("for every connected socket, so that a socket whose node dies can be recovered elsewhere; Node")
	p("keeps a session only from a drop to its restore), when the ticks stop, divided by the sockets;")
	p("*per event*: the stream's bytes per entry; *INFO delta*: `used_memory` when the ticks stop less")
	p("the same before the servers started, per socket (the whole Redis: buffers and clients too).")
	p("")
	p("| server | sockets | runs | cut | recovered on B | fresh | failed | lost | duplicated | out of order | events/s per socket | catch-up p50 | p99 | max | all reconnected | Redis per socket | stream per socket | per event | saved sockets | INFO delta per socket |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range sizes {
		for _, srv := range []struct{ key, name string }{{"go", nameRecoveryClusterGo}, {"node", nameRecoveryClusterNode}} {
			m := summarizeRecoveryCluster(s.Recovery, srv.key, k)
			if m == nil {
				continue
			}
			rec := m.recovered > 0
			p("| %s | %d | %d | %d of %d | %d | %d | %s | **%d** | **%d** | **%d** | %.1f | %s | **%s** | %s | %s | **%.1f KiB** | %.1f KiB | %.0f B | %.0f keys, %.0f B a socket | %.1f KiB |",
				srv.name, m.sockets, m.runs, m.cut, m.sockets, m.onB, m.fresh, failedText(m.failed), m.lost, m.dup, m.outOfOrder, m.rate,
				msText(m.p50, rec), msText(m.p99, rec), msText(m.max, rec), waitText(m.wait), m.perSocket/1024, m.stream/1024, m.perEvent, m.sessionKeys, m.sessions, m.used/1024)
		}
	}
	p("")
	p("Each run:")
	p("")
	p("| server | sockets | lost | duplicated | out of order | connections A, B | recovered A, B | fresh | failed | events received | rounds | events/s per socket | catch-up p50 | p99 | max | all reconnected | Redis per socket | stream entries | seconds |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Recovery {
		c := r.Cluster
		if c == nil {
			continue
		}
		name := nameRecoveryClusterGo
		if r.Server == "node" {
			name = nameRecoveryClusterNode
		}
		failed := map[string]uint64{}
		for _, f := range c.FailedOn {
			for reason, k := range f {
				failed[reason] += k
			}
		}
		rec := r.Recovered > 0
		p("| %s | %d | %d | %d | %d | %d, %d | %d, %d | %d | %s | %d | %d | %.1f | %s | %s | %s | %s | %.1f KiB | %d | %.1f |",
			name, r.Sockets, r.Lost, r.Dup, r.OutOfOrder, c.ConnectionsOn["A"], c.ConnectionsOn["B"], c.RecoveredOn["A"], c.RecoveredOn["B"],
			r.Fresh, failedText(failed), r.Received, c.Rounds, r.RatePerSocket, msText(r.CatchUpP50, rec), msText(r.CatchUpP99, rec), msText(r.CatchUpMax, rec),
			waitText(c.ReconnectWaitSec), c.RedisPerSocket/1024, r.LogEntries, r.Seconds)
	}
	p("")
	p("What the two designs do here. Both keep one stream for every room, so the entries a restore")
	p("must look through are every entry since the client's offset, whoever it went to (10 a second per")
	p("socket of the cluster): their number grows with the cluster's whole event rate, not with what")
	p("the socket missed. *sessiongate*'s node B serves a restore from memory: the entries its follower")
	p("read from the stream and delivered, kept within the stream's bounds (`readCache`), from the")
	p("client's offset (or the position its old node had delivered) up to what B has delivered,")
	p("matched to the socket's rooms; only a span its reads do not cover (an offset from before B")
	p("started following) is scanned from the stream, in `XRANGE` pages of 256. Each call to Redis")
	p("is bounded by `RequestTimeout` (5 s); one that fails fails the restore (`log_error`), and the")
	p("socket connects fresh, told it may have missed events. Its nodes deliver every broadcast, their")
	p("own too, as their follower reads it back from the stream, so in the stream's order. *Node*'s")
	p("`restoreSession` reads `XRANGE` from the offset to the stream's end, without `COUNT`, again and")
	p("again until a read comes back empty (at most 100 times); a node delivers")
	p("its own broadcasts as soon as its `XADD` answers and the others' when its `XREAD` (`COUNT 100`)")
	p("reaches them, so its sockets can get them out of the stream's order, and the restore's reads")
	p("and the live reads of the same entries can overlap (duplicates) or miss what comes between them.")
	p("Nothing bounds Node's restore but socket.io's `connectTimeout` (45 s for a connection to join a")
	p("namespace): one that outlasts it has its connection closed (\"forced close\"), and the")
	p("client's next attempt finds the session already taken by the first one's `GETDEL` (\"session or")
	p("offset not found\"): it connects fresh (seen with 300 sockets, in trial runs). Its restores")
	p("also share the node's publishing connection: a round's `XADD`s, and the `PING` after them, wait")
	p("behind their multi-megabyte `XRANGE` replies, so node B's rounds slow the whole load down.")
	for _, k := range sizes {
		none := 0
		for _, r := range s.Recovery {
			if r.Server == "node" && r.Sockets == k && r.Cluster != nil && r.Cluster.ConnectionsOn["B"] == 0 {
				none++
			}
		}
		if none > 0 {
			p("With %d sockets, in %d of Node's runs node B had connected none of the cut sockets when the", k, none)
			p("rounds stopped (at least 60 s after the cut ended): none of their restores had finished.")
		}
	}
	p("")
	renderAnomalies(p, s.Recovery)
}

// renderAnomalies describes the first irregular numbers of each run that
// had any: which sockets, which numbers, before or after the CONNECT.
func renderAnomalies(p printer, runs []recoveryRun) {
	started := false
	nth := map[string]int{}
	for _, r := range runs {
		c := r.Cluster
		if c == nil {
			continue
		}
		key := r.Server + "/" + strconv.Itoa(r.Sockets)
		nth[key]++
		if r.Lost == 0 && r.Dup == 0 && r.OutOfOrder == 0 {
			continue
		}
		if !started {
			p("Irregular numbers, as the clients saw them (the first %d of each run that had any: socket,", maxAnomalies)
			p("kind, number, the next one due then, and when: *first* before any reconnection, *replay* sent")
			p("with the reconnection's CONNECT, *live* after it; *gap*: a number past the next one due,")
			p("*late*: one below the highest received, the first time, *dup*: one received again):")
			p("")
			started = true
		}
		name := "sessiongate"
		if r.Server == "node" {
			name = "Node"
		}
		var parts []string
		for _, a := range c.Anomalies {
			parts = append(parts, fmt.Sprintf("%d %s %d (due %d, %s)", a.I, a.Kind, a.Seq, a.Expected, a.Phase))
		}
		var missing []string
		for _, m := range c.Missing {
			if len(m) > 1 {
				missing = append(missing, fmt.Sprintf("socket %d: %s", m[0], strings.Trim(fmt.Sprint(m[1:]), "[]")))
			}
		}
		if len(missing) > 0 {
			parts = append(parts, "numbers never received: "+strings.Join(missing, ", "))
		}
		behind := ""
		if c.BehindAtStop > 0 {
			behind = fmt.Sprintf("; %d events sent were not received by the end", c.BehindAtStop)
		}
		p("- %s, %d sockets, run %d: %s%s.", name, r.Sockets, nth[key], strings.Join(parts, "; "), behind)
	}
	if started {
		p("")
	}
	for _, r := range runs {
		if r.Cluster != nil && r.Recovered == 0 && r.Fresh > 0 && r.Lost > 0 {
			p("In a run with no reconnection recovered, every *live* gap is on a fresh reconnection: the")
			p("events of the drop, which its client was told it may have missed.")
			p("")
			break
		}
	}
}
