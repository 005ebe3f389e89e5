package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// rateLimitRun is one line of bench/ratelimit's -json output: one user,
// one socket on each of Nodes nodes, sending as fast as its acks allow.
type rateLimitRun struct {
	Nodes        int     `json:"nodes"`
	Shared       bool    `json:"shared"`
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"rate"`
	Burst        int     `json:"burst"`
	Accepted     int     `json:"accepted"`
	Refused      int     `json:"refused"`
	PerSecond    float64 `json:"per_second"`
	Steady       float64 `json:"steady_per_second"`
	Messages     uint64  `json:"messages"`
	Disconnected int     `json:"disconnected"`
}

// rateLimitArgs are bench/ratelimit's arguments for the section.
func (e *env) rateLimitArgs(redisURL string) []string {
	args := []string{"-json", "-per-node", "-rate", "20", "-redis", redisURL}
	if e.quick {
		return append(args, "-nodes", "1,2", "-d", "2s")
	}
	return append(args, "-nodes", "1,2,3", "-d", "10s")
}

// rateLimit runs bench/ratelimit on a Redis of its own.
func (e *env) rateLimit(ctx context.Context) ([]rateLimitRun, error) {
	redis, err := e.startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer redis.stop()
	args := e.rateLimitArgs("redis://" + strings.TrimPrefix(redis.url, "http://"))
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "ratelimit"), args...)
	cmd.Stderr = os.Stderr
	fmt.Fprintln(os.Stderr, "  $ ratelimit "+strings.Join(args, " "))
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	var runs []rateLimitRun
	if err := json.Unmarshal(out, &runs); err != nil {
		return nil, fmt.Errorf("ratelimit output: %w", err)
	}
	if len(runs) == 0 {
		return nil, errors.New("ratelimit printed no results")
	}
	return runs, nil
}

func renderRateLimit(p printer, s *section) {
	if !header(p, "17. Cluster: one user's event rate limit over 1–3 nodes", s) {
		return
	}
	p("`bench/ratelimit` (`go run ./bench/ratelimit -nodes 1,2,3 -d 10s -rate 20 -per-node`, on a Redis")
	p("of its own): 1, 2 and 3 gateway nodes in one process on one Redis, one socket of the same user")
	p("on each, `EVENT_RATE_LIMIT=20` (burst 40). Every socket sends client events for 10 s as fast as")
	p("its acknowledgements allow: the next one when the ack comes, or `retryAfterMs` after a")
	p("`RATE_LIMITED` one. *shared*: the nodes debit each other's buckets (what `CLUSTER` does,")
	p("contract §14); *per node*: each node limits alone. *second half* is the rate over the last 5 s,")
	p("once each node's full bucket at the start is spent and, when shared, its debt paid back.")
	p("")
	p("| nodes | limits | accepted/s | second half | accepted | refused | limit messages sent | disconnected |")
	p("|---|---|---|---|---|---|---|---|")
	for _, r := range s.RateLimit {
		mode := "per node"
		if r.Shared {
			mode = "shared"
		}
		p("| %d | %s | %.1f | %.1f | %d | %d | %d | %d |", r.Nodes, mode, r.PerSecond, r.Steady, r.Accepted, r.Refused, r.Messages, r.Disconnected)
	}
	p("")
	p("With the limits shared, one user's rate over the cluster stays at the limit once under way,")
	p("whatever the node count; the total over the run exceeds burst + rate × time (240) only by the")
	p("slack of the start (what the other nodes spent before the first reports came, at most a burst")
	p("per other node, mostly paid back by the debt). Per node, a user gets nodes × the limit.")
	p("")
}
