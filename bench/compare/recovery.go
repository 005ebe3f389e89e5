package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const secRecovery = "recovery"

// The servers of the recovery section, as the tables name them.
const (
	nameRecoveryGo   = "sessiongate (socketio + MemoryLog)"
	nameRecoveryNode = "Node socket.io 4.8"
)

// recoveryRun is the JSON line bench/recovery prints for one run.
type recoveryRun struct {
	Server              string  `json:"server"` // "go" (sessiongate's socketio) or "node"
	Sockets             int     `json:"sockets"`
	Cut                 int     `json:"cut"`
	Lost                int     `json:"lost"`
	Dup                 int     `json:"dup"`
	OutOfOrder          int     `json:"out_of_order,omitempty"`
	Received            int     `json:"received"`
	Recovered           int     `json:"recovered"`
	Fresh               int     `json:"fresh"`
	CatchUpP50          float64 `json:"catchup_p50_ms"`
	CatchUpP99          float64 `json:"catchup_p99_ms"`
	CatchUpMax          float64 `json:"catchup_max_ms"`
	LogBytesPerSocket   float64 `json:"log_bytes_per_socket,omitempty"`
	LogHeapPerSocket    float64 `json:"log_heap_per_socket"`
	HeapGrowthPerSocket float64 `json:"heap_growth_per_socket"`
	LogEntries          int     `json:"log_entries"`
	RatePerSocket       float64 `json:"rate_per_socket"`
	Seconds             float64 `json:"seconds"`
	// Cluster: the figures of a -cluster redis run (section recovery-cluster).
	Cluster *recoveryClusterRun `json:"cluster,omitempty"`
}

// recovery runs bench/recovery RecoveryRuns times for each server,
// alternating, each run with a server process of its own.
func (e *env) recovery(ctx context.Context) ([]recoveryRun, error) {
	var runs []recoveryRun
	for range e.sizes.RecoveryRuns {
		for _, server := range []string{"go", "node"} {
			args := []string{"-server", server, "-n", strconv.Itoa(e.sizes.RecoveryN), "-repo", e.repo}
			cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "recovery"), args...)
			cmd.Stderr = os.Stderr
			fmt.Fprintln(os.Stderr, "  $ recovery "+strings.Join(args, " "))
			out, err := cmd.Output()
			if err != nil {
				return runs, fmt.Errorf("recovery -server %s: %w", server, err)
			}
			var r recoveryRun
			if err := json.Unmarshal(out, &r); err != nil {
				return runs, fmt.Errorf("recovery output: %w", err)
			}
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// The defaults of socketio.MemoryLogOptions (MaxEntries, MaxBytes).
const (
	memLogMaxEntries = 1_000_000
	memLogMaxBytes   = 64 << 20
)

// recoverySummary is one server's runs: lost, duplicated and fresh
// reconnections summed over them (the goals are 0 in every run), the
// other figures their median.
type recoverySummary struct {
	runs, sockets, cut, lost, dup, fresh         int
	recovered                                    float64
	p50, p99, max, rate, logHeap, perEntry, logB float64
	growth                                       float64
	entries                                      float64 // log entries per socket at the stop
}

func summarizeRecovery(runs []recoveryRun, server string) *recoverySummary {
	var s recoverySummary
	var rec, p50, p99, max, rate, logHeap, perEntry, logB, growth, entries []float64
	for _, r := range runs {
		if r.Server != server {
			continue
		}
		s.runs++
		s.sockets, s.cut = r.Sockets, r.Cut
		s.lost += r.Lost
		s.dup += r.Dup
		s.fresh += r.Fresh
		rec = append(rec, float64(r.Recovered))
		p50, p99, max = append(p50, r.CatchUpP50), append(p99, r.CatchUpP99), append(max, r.CatchUpMax)
		rate, logHeap, growth = append(rate, r.RatePerSocket), append(logHeap, r.LogHeapPerSocket), append(growth, r.HeapGrowthPerSocket)
		logB, entries = append(logB, r.LogBytesPerSocket), append(entries, float64(r.LogEntries)/float64(r.Sockets))
		if r.LogEntries > 0 {
			perEntry = append(perEntry, r.LogHeapPerSocket*float64(r.Sockets)/float64(r.LogEntries))
		}
	}
	if s.runs == 0 {
		return nil
	}
	s.recovered, s.p50, s.p99, s.max = medianOf(rec), medianOf(p50), medianOf(p99), medianOf(max)
	s.rate, s.logHeap, s.perEntry, s.logB, s.growth = medianOf(rate), medianOf(logHeap), medianOf(perEntry), medianOf(logB), medianOf(growth)
	s.entries = medianOf(entries)
	return &s
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// renderRecoverySummary writes the section's goal row.
func renderRecoverySummary(p printer, r *results) {
	s := r.Sections[secRecovery]
	if s == nil {
		return
	}
	sg, node := summarizeRecovery(s.Recovery, "go"), summarizeRecovery(s.Recovery, "node")
	if sg == nil {
		return
	}
	nodeText := "—"
	if node != nil {
		nodeText = fmt.Sprintf("%d lost, %d duplicated; catch-up p99 %.0f ms", node.lost, node.dup, node.p99)
	}
	p("| connection state recovery, %d sockets at 10 events/s, half cut for 2 s (%d runs): messages lost, duplicated | 0, 0 | %d lost, %d duplicated; catch-up p99 %.0f ms | %s | %s |",
		sg.sockets, sg.runs, sg.lost, sg.dup, sg.p99, nodeText, verdict(sg.lost == 0 && sg.dup == 0))
}

func renderRecovery(p printer, s *section) {
	if !header(p, "18. Connection state recovery: 1,000 sockets, half cut for 2 s", s) {
		return
	}
	p("`bench/recovery` (`go run ./bench/recovery -server go|node -n %d`), %d runs of each server,", s.Sizes.RecoveryN, s.Sizes.RecoveryRuns)
	p("alternating; each server is a process of its own. %d official socket.io-client 4.8 clients", s.Sizes.RecoveryN)
	p("(`test/interop/recovery-load.mjs`, websocket, recovery on, reconnection delay 100–500 ms), each")
	p("in a room of its own that the server sends `tick` 1, 2, … ten times a second (one `emit` to each")
	p("room every 100 ms, in the server's process). The clients reach the server through two TCP proxies")
	p("(`internal/tcpproxy`); after 2 s of load the first proxy closes every connection it carries, both")
	p("sides, and refuses new ones for 2 s, cutting half the clients; the load runs 5 s more, then stops,")
	p("and 1 s later the clients report. Servers: *sessiongate* is its `socketio` package with a")
	p("`MemoryLog` (2 min window), no sessions (`bench/recovery -serve`); *Node* is socket.io 4.8.4 with")
	p("`connectionStateRecovery` (in-memory adapter, 2 min `maxDisconnectionDuration`,")
	p("`bench/node-baseline/recovery-server.js`). The same load is also a Go benchmark:")
	p("`RECOVERY_BENCH_SOCKETS=%d go test -run '^$' -bench RecoveryCut -benchtime 1x ./test/interop`.", s.Sizes.RecoveryN)
	p("")
	p("*lost*: numbers a client skipped, plus those the server sent that never arrived, summed over")
	p("the runs; *duplicated*: numbers received again, summed. *catch-up*: for each recovered")
	p("reconnection, the time from the new transport's open to the client's `connect` event (both")
	p("servers send the missed events before the CONNECT packet, so by then the client is caught up);")
	p("the median over runs of each run's p50, p99 and maximum. *events/s per socket*: what the server")
	p("achieved of the 10 asked for (it shares the machine's cores with the clients and the proxies).")
	p("*log heap per socket*: the server's live heap after a forced collection when the load stops,")
	p("less the same once its log is emptied, divided by the sockets (sessiongate: the log's clock")
	p("moved past the window so every entry is trimmed, plus the entry array trimming keeps for reuse,")
	p("read by reflection; Node, run with `--expose-gc`: the adapter's `packets` array replaced by an")
	p("empty one). *per event held*: the same divided by the events in the log (every event of the")
	p("run, all within the window). *log accounting*: what sessiongate's log counts against its")
	p("`MaxBytes` bound (data, rooms, and each entry's slot in its array, 152 bytes). *heap growth*: the live heap when the")
	p("load stops less the same before it started, per socket: the log and whatever else the cut left.")
	p("")
	p("| server | runs | cut | recovered | fresh | lost | duplicated | events/s per socket | catch-up p50 | p99 | max (ms) | log heap per socket | per event held | log accounting | heap growth |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, srv := range []struct{ key, name string }{{"go", nameRecoveryGo}, {"node", nameRecoveryNode}} {
		m := summarizeRecovery(s.Recovery, srv.key)
		if m == nil {
			continue
		}
		acct := "—"
		if m.logB > 0 {
			acct = fmt.Sprintf("%.1f KiB", m.logB/1024)
		}
		p("| %s | %d | %d of %d | %.0f | %d | **%d** | **%d** | %.1f | %.0f | **%.0f** | %.0f | **%.1f KiB** | %.0f B | %s | %.1f KiB |",
			srv.name, m.runs, m.cut, m.sockets, m.recovered, m.fresh, m.lost, m.dup, m.rate, m.p50, m.p99, m.max,
			m.logHeap/1024, m.perEntry, acct, m.growth/1024)
	}
	p("")
	p("Each run:")
	p("")
	p("| server | lost | duplicated | recovered | fresh | events received | events/s per socket | catch-up p50 | p99 | max (ms) | log heap per socket | log entries | seconds |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range s.Recovery {
		name := nameRecoveryGo
		if r.Server == "node" {
			name = nameRecoveryNode
		}
		p("| %s | %d | %d | %d | %d | %d | %.1f | %.0f | %.0f | %.0f | %.1f KiB | %d | %.1f |", name, r.Lost, r.Dup, r.Recovered, r.Fresh,
			r.Received, r.RatePerSocket, r.CatchUpP50, r.CatchUpP99, r.CatchUpMax, r.LogHeapPerSocket/1024, r.LogEntries, r.Seconds)
	}
	p("")
	p("Both logs hold every event of the window whoever it went to, so their memory grows with the")
	p("event rate and the window: here about 9 s of events; a full 2 min window at this rate is about")
	p("13× as much. Node's log is bounded only by that window.")
	if m := summarizeRecovery(s.Recovery, "go"); m != nil && m.entries > 0 && m.logB > 0 && m.rate > 0 {
		accounted := m.logB / m.entries // per entry
		held := memLogMaxBytes / accounted
		if held > memLogMaxEntries {
			held = memLogMaxEntries
		}
		p("sessiongate's `MemoryLog` also stops at its defaults of %d entries and 64 MiB *accounted*:", int(memLogMaxEntries))
		p("at %.0f accounted bytes an entry it holds at most %.0f entries, %.0f s of this load's %.0f events/s,", accounted, held, held/(m.rate*float64(m.sockets)), m.rate*float64(m.sockets))
		p("which at the %.0f bytes of heap an entry measured here is %.0f MiB of heap: the accounting", m.perEntry, held*m.perEntry/(1<<20))
		p("counts about 1/%.1f of what an entry really holds.", m.perEntry/accounted)
	}
	p("Catch-up times include the clients' own scheduling: %d clients in one Node process on a", s.Sizes.RecoveryN)
	p("shared machine.")
	p("")
}
