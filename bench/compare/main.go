// Command compare runs sessiongate's benchmarks on this machine and writes
// the comparison tables into docs/benchmarks.md. bench/run.sh builds the
// binaries it needs and runs it; see docs/benchmarks.md for what each figure
// means and how it is measured.
//
// Usage:
//
//	compare -bin DIR [-quick] [-out docs/benchmarks.md] [memory broadcast handshake statements revocation attack slowread storm fanout-2000 cluster subscribe events presence codec ratelimit recovery recovery-cluster]
//	compare -render [-out docs/benchmarks.md]
//
// With no section named, all run. Each server under test and the load tool
// run as separate processes; PostgreSQL work happens in fresh schemas of the
// test database, dropped afterwards. Results accumulate in a JSON file beside
// the document (docs/benchmarks.json), so a section can be re-run alone; a
// -quick run writes to a temporary directory unless -out is given.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// table is the session table name used in every schema.
const table = "session"

// Sections, in the order they run and appear.
// "cluster" runs and writes the three sections cluster-fanout,
// cluster-single and cluster-redis-bytes.
var sectionNames = []string{"memory", "broadcast", "handshake", "statements", "revocation", "attack", "slowread", "storm", secFanout2000, "cluster", secSubscribe, secEvents, secPresence, "codec", "ratelimit", secRecovery, secRecoveryCluster}

// sizes are the dimensions of a run.
type sizes struct {
	Memory            int           // idle connections for the memory figure
	Broadcast         int           // sockets in the broadcast room
	HandshakeC        int           // concurrent connecting clients
	HandshakeD        time.Duration // measured run length
	HandshakeRuns     int           // runs of each server, alternating; the median is reported
	Statements        int           // live sessions for the statement count
	CheckInterval     time.Duration // session check interval of the statement count
	Intervals         int           // intervals counted
	Revoke            int           // sessions revoked at once
	NodeRevokeEach    time.Duration // the Node baseline's shortened check interval for revocation
	Settle            time.Duration // pause after connecting, before measuring
	AttackN           int           // anonymous attackers
	AttackD           time.Duration // how long they attack
	SlowN             int           // authenticated sockets that never read
	Publishes         int           // 1 MB publishes to them
	StormN            int           // clients of the reconnect storm
	FanoutN           int           // sockets (of as many users) of the one-node fan-out
	ClusterN          int           // sockets (of as many users) over the three cluster nodes
	FanoutRounds      int           // publishes to every user room, after 3 warm-up ones; the median is reported
	FanoutRuns        int           // runs of each server in the one-node fan-out, alternating; the median is reported
	SingleD           time.Duration // length of the cluster's single-user publishes
	Publishers        int           // concurrent single-user publishers
	SubscribeN        int           // sockets of the subscribe section
	SubscribeWindow   int           // subscribe/unsubscribe requests in flight per socket
	SubscribeRuns     int           // runs of each subscribe server, alternating; the median is reported
	RPCD              time.Duration // measured length of the subscribe runs
	RPCWarm           time.Duration // warm-up of each subscribe and events run
	EventsSockets     []int         // socket counts of the events section (one event in flight each)
	EventsD           time.Duration // measured length of each events run
	EventsRuns        int           // runs of each server at each count, alternating; the median is reported
	EventsGoalSockets int           // the count of the events goal row
	PresenceN         int           // users joining the presence room
	RecoveryN         int           // sockets of the recovery section, half of them cut
	RecoveryRuns      int           // runs of each server in the recovery sections, alternating
	// RecoveryClusterN are the socket counts of the cluster recovery
	// section, each run RecoveryRuns times; the last is its goal's.
	RecoveryClusterN []int
}

var fullSizes = sizes{
	Memory: 10000, Broadcast: 10000, HandshakeC: 100, HandshakeD: 10 * time.Second, HandshakeRuns: 5,
	Statements: 5000, CheckInterval: 5 * time.Second, Intervals: 3,
	Revoke: 1000, NodeRevokeEach: 10 * time.Second, Settle: 10 * time.Second,
	AttackN: 100, AttackD: 30 * time.Second, SlowN: 100, Publishes: 60, StormN: 5000,
	FanoutN: 2000, ClusterN: 3000, FanoutRounds: 9, FanoutRuns: 3, SingleD: 10 * time.Second, Publishers: 32,
	SubscribeN: 256, SubscribeWindow: 2, SubscribeRuns: 3, RPCD: 5 * time.Second, RPCWarm: time.Second,
	EventsSockets: []int{64, 256, 1024}, EventsD: 3 * time.Second, EventsRuns: 3, EventsGoalSockets: 256,
	PresenceN: 1000, RecoveryN: 1000, RecoveryRuns: 3, RecoveryClusterN: []int{100, 1000},
}

var quickSizes = sizes{
	Memory: 300, Broadcast: 300, HandshakeC: 10, HandshakeD: 2 * time.Second, HandshakeRuns: 1,
	Statements: 200, CheckInterval: 2 * time.Second, Intervals: 2,
	Revoke: 100, NodeRevokeEach: 2 * time.Second, Settle: 2 * time.Second,
	AttackN: 12, AttackD: 3 * time.Second, SlowN: 10, Publishes: 5, StormN: 200,
	FanoutN: 200, ClusterN: 300, FanoutRounds: 2, FanoutRuns: 1, SingleD: 2 * time.Second, Publishers: 8,
	SubscribeN: 32, SubscribeWindow: 2, SubscribeRuns: 1, RPCD: 2 * time.Second, RPCWarm: time.Second,
	EventsSockets: []int{32}, EventsD: time.Second, EventsRuns: 1, EventsGoalSockets: 32,
	PresenceN: 100, RecoveryN: 100, RecoveryRuns: 1, RecoveryClusterN: []int{100},
}

// env is what every section needs.
type env struct {
	bin        string // the built binaries
	repo       string // the repository root
	tmp        string // scratch directory, removed at the end
	dbURL      string // the PostgreSQL test database
	secret     string // signs the seeded cookies
	publishKey string
	sizes      sizes
	quick      bool
	keep       bool // keep the schemas
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		e     env
		out   = flag.String("out", "", "document to write (default docs/benchmarks.md; a temporary file with -quick)")
		limit = flag.Duration("limit", 20*time.Minute, "abort the whole run after this long")
		only  = flag.Bool("render", false, "only rewrite the document from its JSON figures")
	)
	flag.StringVar(&e.bin, "bin", "", "directory holding loadtool, echoserver, wsbaseline and sessiongate (required)")
	flag.StringVar(&e.dbURL, "db", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL test database (loopback)")
	flag.BoolVar(&e.quick, "quick", false, "small sizes: a smoke test of the whole pipeline")
	flag.BoolVar(&e.keep, "keep", false, "keep the benchmark schemas")
	flag.Parse()
	if *only {
		if *out == "" {
			*out = filepath.Join("docs", "benchmarks.md")
		}
		res, err := loadResults(strings.TrimSuffix(*out, filepath.Ext(*out)) + ".json")
		if err != nil {
			return err
		}
		return os.WriteFile(*out, render(res), 0o644)
	}
	if e.bin == "" {
		return errors.New("-bin is required (bench/run.sh sets it)")
	}
	want := flag.Args()
	if len(want) == 0 {
		want = sectionNames
	}
	for _, w := range want {
		if !slices.Contains(sectionNames, w) {
			return fmt.Errorf("unknown section %q (have %s)", w, strings.Join(sectionNames, ", "))
		}
	}
	e.sizes = fullSizes
	if e.quick {
		e.sizes = quickSizes
	}
	var err error
	if e.repo, err = os.Getwd(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(e.repo, "bench", "node-baseline", "server.js")); err != nil {
		return errors.New("run from the repository root")
	}
	if *out == "" {
		*out = filepath.Join(e.repo, "docs", "benchmarks.md")
		if e.quick {
			*out = filepath.Join(os.TempDir(), "sessiongate-benchmarks-quick.md")
		}
	}
	if e.tmp, err = os.MkdirTemp("", "sessiongate-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.tmp)
	e.secret, e.publishKey = randomHex(16), randomHex(16)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()

	jsonPath := strings.TrimSuffix(*out, filepath.Ext(*out)) + ".json"
	res, err := loadResults(jsonPath)
	if err != nil {
		return err
	}
	res.Machine = describeMachine(ctx, e.dbURL)
	command := "bench/run.sh"
	if e.quick {
		command += " --quick"
	}
	if len(flag.Args()) > 0 {
		command += " " + strings.Join(flag.Args(), " ")
	}

	began := time.Now()
	memory, broadcast := slices.Contains(want, "memory"), slices.Contains(want, "broadcast")
	var failed []string
	record := func(name string, sec *section, err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: %s: %v\n", name, err)
			failed = append(failed, name)
		}
		if len(sec.Rows) > 0 || len(sec.Codec) > 0 || len(sec.RateLimit) > 0 || len(sec.Recovery) > 0 {
			sec.Date, sec.Command, sec.Quick, sec.Sizes = nowUTC(), command, e.quick, e.sizes
			res.Sections[name] = sec
		}
	}
	if memory || broadcast {
		fmt.Fprintln(os.Stderr, "== memory and broadcast")
		load := loadAvg()
		mem, bc, err := e.memoryAndBroadcast(ctx, memory, broadcast)
		if memory {
			record("memory", &section{LoadAvg: load, Rows: mem}, err)
		}
		if broadcast {
			record("broadcast", &section{LoadAvg: load, Rows: bc}, err)
		}
	}
	for _, s := range []struct {
		name string
		run  func(context.Context) ([]row, error)
	}{
		{"handshake", e.handshake},
		{"statements", e.statements},
		{"revocation", e.revocation},
		{"attack", e.attack},
		{"slowread", e.slowRead},
		{"storm", e.storm},
		{secFanout2000, e.fanout2000},
		{secSubscribe, e.subscribe},
		{secEvents, e.events},
		{secPresence, e.presence},
	} {
		if !slices.Contains(want, s.name) || ctx.Err() != nil {
			continue
		}
		fmt.Fprintln(os.Stderr, "== "+s.name)
		load := loadAvg()
		rows, err := s.run(ctx)
		record(s.name, &section{LoadAvg: load, Rows: rows}, err)
	}
	if slices.Contains(want, "cluster") && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "== cluster")
		load := loadAvg()
		fan, single, bytes, err := e.cluster(ctx)
		record(secClusterFanout, &section{LoadAvg: load, Rows: fan}, err)
		record(secClusterSingle, &section{LoadAvg: load, Rows: single}, nil)
		record(secClusterBytes, &section{LoadAvg: load, Rows: bytes}, nil)
	}
	if slices.Contains(want, "codec") && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "== codec")
		load := loadAvg()
		lines, err := e.codec(ctx)
		record("codec", &section{LoadAvg: load, Codec: lines}, err)
	}
	if slices.Contains(want, "ratelimit") && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "== ratelimit")
		load := loadAvg()
		runs, err := e.rateLimit(ctx)
		record("ratelimit", &section{LoadAvg: load, RateLimit: runs}, err)
	}
	if slices.Contains(want, secRecovery) && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "== "+secRecovery)
		load := loadAvg()
		runs, err := e.recovery(ctx)
		record(secRecovery, &section{LoadAvg: load, Recovery: runs}, err)
	}
	if slices.Contains(want, secRecoveryCluster) && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "== "+secRecoveryCluster)
		load := loadAvg()
		runs, err := e.recoveryCluster(ctx)
		record(secRecoveryCluster, &section{LoadAvg: load, Recovery: runs}, err)
	}
	if err := saveResults(jsonPath, res); err != nil {
		return err
	}
	if err := os.WriteFile(*out, render(res), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "compare: wrote %s and %s in %s\n", *out, jsonPath, time.Since(began).Round(time.Second))
	if len(failed) > 0 {
		return fmt.Errorf("sections failed: %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
