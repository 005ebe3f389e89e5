package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiongate/sessiongate/bench/internal/load"
)

// The fan-out sections: one publish to every user's room, on one node and
// on a cluster of three over one Redis, and the cluster's single-user
// publishes (their rate, and the Redis output bytes each costs).

// Names of the cluster targets, as they appear in the tables.
const (
	nameSessiongateCluster = "3 × sessiongate serve, CLUSTER=redis"
	nameNodeCluster        = "3 × Node socket.io 4.8, @socket.io/redis-adapter 8.3.0"
)

// Sections fed by the one cluster run of each target.
const (
	secClusterFanout = "cluster-fanout"
	secClusterSingle = "cluster-single"
	secClusterBytes  = "cluster-redis-bytes"
	secFanout2000    = "fanout-2000"
)

// clusterNodes is the size of the benchmark cluster.
const clusterNodes = 3

// fanout2000 opens FanoutN sockets of as many users on one server and
// publishes Rounds times to all their rooms at once. Each server runs
// FanoutRuns times, the two alternating (a fresh server and schema each
// time), so that a drift in what else the machine does falls on both
// alike; each server's row is its run with the median last arrival.
func (e *env) fanout2000(ctx context.Context) ([]row, error) {
	targets := e.authTargets(5 * time.Minute)
	runs := make([][]row, len(targets))
	var errs []error
	for range max(e.sizes.FanoutRuns, 1) {
		for i, t := range targets {
			if ctx.Err() != nil {
				break
			}
			rep, err := e.fanoutRun(ctx, t.name, e.sizes.FanoutN, 0, func(ctx context.Context, dbURL string) ([]*server, func(), error) {
				s, err := t.start(ctx, dbURL)
				if err != nil {
					return nil, nil, err
				}
				return []*server{s}, s.stop, nil
			}, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
			runs[i] = append(runs[i], resultRow(t.name, rep, err))
		}
	}
	var rows []row
	for i, t := range targets {
		rows = append(rows, medianFanoutRun(t.name, runs[i]))
	}
	return rows, errors.Join(errs...)
}

// medianFanoutRun returns the run of runs with the median last arrival
// (the lower middle one of an even count), with the figure of every run
// that completed; or the last failure if none did.
func medianFanoutRun(name string, runs []row) row {
	var ok []row
	for _, r := range runs {
		if r.Error == "" && r.Report != nil && r.Report.FanoutLastMs > 0 {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		if len(runs) == 0 {
			return failedRow(name, errors.New("not run"))
		}
		return runs[len(runs)-1]
	}
	lasts := make([]float64, len(ok))
	for i, r := range ok {
		lasts[i] = r.Report.FanoutLastMs
	}
	slices.SortFunc(ok, func(a, b row) int { return cmp.Compare(a.Report.FanoutLastMs, b.Report.FanoutLastMs) })
	m := ok[(len(ok)-1)/2]
	m.RunLastMs = lasts
	return m
}

// cluster runs three sessiongate nodes, then three Node servers, each trio
// on a Redis of its own and one session schema, with ClusterN sockets of as
// many users spread over the three; it returns the rows of the three
// cluster sections, taken from one load run per trio.
func (e *env) cluster(ctx context.Context) (fan, single, bytes []row, err error) {
	var errs []error
	for _, name := range []string{nameSessiongateCluster, nameNodeCluster} {
		if ctx.Err() != nil {
			break
		}
		redis, err := e.startRedis(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		addr := strings.TrimPrefix(redis.url, "http://")
		key := "bench-" + randomHex(4)
		rep, err := e.fanoutRun(ctx, name, e.sizes.ClusterN, e.sizes.SingleD, func(ctx context.Context, dbURL string) ([]*server, func(), error) {
			return e.startTrio(ctx, name, dbURL, addr, key)
		}, redis)
		redis.stop()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		r := resultRow(name, rep, err)
		fan, single, bytes = append(fan, r), append(single, r), append(bytes, r)
	}
	return fan, single, bytes, errors.Join(errs...)
}

// fanoutRun seeds n sessions of n users, starts the servers, and runs the
// load tool's fanout mode against them (with a single-user phase of single,
// and the Redis counted, when not nil). The CPU time of the servers (and
// the Redis) is counted over the measured rounds and the single-user phase.
func (e *env) fanoutRun(ctx context.Context, name string, n int, single time.Duration,
	start func(context.Context, string) ([]*server, func(), error), redis *server) (*load.Report, error) {
	dbURL, creds, cleanup, err := e.sessionSchema(ctx, n, 0)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	servers, stop, err := start(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer stop()
	urls := make([]string, len(servers))
	var pids []string
	for i, s := range servers {
		urls[i] = s.url
		pids = append(pids, strconv.Itoa(s.pid()))
	}
	if redis != nil {
		pids = append(pids, strconv.Itoa(redis.pid()))
	}
	args := []string{"-mode", load.ModeFanout, "-urls", strings.Join(urls, ","), "-n", strconv.Itoa(n),
		"-cookies", creds, "-publish-url", servers[0].publishURL, "-publish-key", e.publishKey,
		"-rounds", strconv.Itoa(e.sizes.FanoutRounds), "-settle", "2s", "-timeout", "30s", "-pids", strings.Join(pids, ",")}
	if single > 0 {
		args = append(args, "-single", single.String(), "-publishers", strconv.Itoa(e.sizes.Publishers))
	}
	if redis != nil {
		args = append(args, "-redis", strings.TrimPrefix(redis.url, "http://"))
	}
	return e.runLoad(ctx, args...)
}

// startTrio starts the three nodes of a cluster on Redis addr with key.
func (e *env) startTrio(ctx context.Context, name, dbURL, addr, key string) ([]*server, func(), error) {
	var servers []*server
	stop := func() {
		for _, s := range servers {
			s.stop()
		}
	}
	redisURL := "redis://" + addr
	for i := range clusterNodes {
		var s *server
		var err error
		switch name {
		case nameSessiongateCluster:
			dir := filepath.Join(e.tmp, fmt.Sprintf("node-%s-%d", key, i))
			if err = os.MkdirAll(dir, 0o700); err == nil {
				s, err = e.startSessiongateEnv(ctx, dbURL, 5*time.Minute, "RATE_LIMIT=0",
					"CLUSTER=redis", "REDIS_URL="+redisURL, "CLUSTER_KEY="+key, "DATA_DIR="+dir)
			}
		default:
			s, err = e.startNodeEnv(ctx, dbURL, 5*time.Minute, "CLUSTER=redis", "REDIS_URL="+redisURL, "CLUSTER_KEY="+key)
		}
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		servers = append(servers, s)
	}
	return servers, stop, nil
}

// startRedis starts a Redis server of the benchmark's own on a free
// loopback port, keeping nothing on disk: its INFO counters then see only
// the cluster under test.
func (e *env) startRedis(ctx context.Context) (*server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH: the cluster benchmarks start a Redis of their own (apt-get install redis-server)")
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", e.tmp, "--loglevel", "warning", "--logfile", filepath.Join(e.tmp, "redis-"+port+".log"))
	cmd.Env = serverEnv()
	return start(ctx, nameRedis, addr, cmd)
}

// nameRedis labels the benchmark's Redis in the log.
const nameRedis = "redis"
