package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// results are everything docs/benchmarks.md is written from; they are kept
// in a JSON file beside it so that sections can be re-run one at a time.
type results struct {
	Machine  machine             `json:"machine"`
	Sections map[string]*section `json:"sections"`
}

type machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemoryMiB  int64  `json:"memory_mib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Node       string `json:"node"`
	PostgreSQL string `json:"postgresql"`
}

type section struct {
	Date    string      `json:"date"`
	Command string      `json:"command"`
	Quick   bool        `json:"quick,omitempty"`
	LoadAvg string      `json:"loadavg"` // when the section started
	Sizes   sizes       `json:"sizes"`
	Rows    []row       `json:"rows,omitempty"`
	Codec   []benchLine `json:"codec,omitempty"`
	// RateLimit is the ratelimit section's runs.
	RateLimit []rateLimitRun `json:"ratelimit,omitempty"`
	// Recovery is the recovery section's runs, both servers.
	Recovery []recoveryRun `json:"recovery,omitempty"`
}

func loadResults(path string) (*results, error) {
	r := &results{Sections: map[string]*section{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Sections == nil {
		r.Sections = map[string]*section{}
	}
	return r, nil
}

func saveResults(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func describeMachine(ctx context.Context, dbURL string) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kib)
		m.MemoryMiB = kib / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "node", "--version").Output(); err == nil {
		m.Node = strings.TrimSpace(string(out))
	}
	if conn, err := pgx.Connect(ctx, dbURL); err == nil {
		conn.QueryRow(ctx, "SHOW server_version").Scan(&m.PostgreSQL)
		conn.Close(ctx)
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// benchLine is one result line of `go test -bench -benchmem`.
type benchLine struct {
	Name     string  `json:"name"`
	NsPerOp  float64 `json:"ns_per_op"`
	BPerOp   int64   `json:"bytes_per_op"`
	AllocsOp int64   `json:"allocs_per_op"`
	// PerRecipient is the broadcast benchmarks' bytes allocated per
	// recipient (their B/recipient metric).
	PerRecipient float64 `json:"bytes_per_recipient,omitempty"`
}

// codec runs the codec micro-benchmarks of package bench.
func (e *env) codec(ctx context.Context) ([]benchLine, error) {
	benchtime := "1s"
	if e.quick {
		benchtime = "100ms"
	}
	var lines []benchLine
	for _, run := range [][]string{
		{"-bench", ".", "-benchtime", benchtime, "./bench/"},
		// One 1 MB message to 100 sockets: allocation per recipient.
		{"-bench", "Broadcast1MB", "-benchtime", "20x", "./engineio/", "./socketio/"},
	} {
		args := append([]string{"test", "-run", "^$", "-benchmem"}, run...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = e.repo
		cmd.Stderr = os.Stderr
		fmt.Fprintln(os.Stderr, "  $ go "+strings.Join(args, " "))
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go test -bench: %w", err)
		}
		lines = append(lines, parseBench(string(out))...)
	}
	if len(lines) == 0 {
		return nil, errors.New("go test -bench printed no results")
	}
	return lines, nil
}

// nowUTC is the section time stamp format.
func nowUTC() string { return time.Now().UTC().Format("2006-01-02 15:04 MST") }

// parseBench reads the result lines of `go test -bench -benchmem` output.
func parseBench(out string) []benchLine {
	var lines []benchLine
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		var b benchLine
		b.Name = strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(b.Name, '-'); i > 0 {
			b.Name = b.Name[:i] // the GOMAXPROCS suffix
		}
		// Values precede their units: "123 ns/op", "64 B/op", "1 allocs/op".
		for i := 2; i < len(f); i++ {
			switch f[i] {
			case "ns/op":
				fmt.Sscan(f[i-1], &b.NsPerOp)
			case "B/op":
				fmt.Sscan(f[i-1], &b.BPerOp)
			case "allocs/op":
				fmt.Sscan(f[i-1], &b.AllocsOp)
			case "B/recipient":
				fmt.Sscan(f[i-1], &b.PerRecipient)
			}
		}
		if b.NsPerOp == 0 {
			continue
		}
		if b.PerRecipient > 0 && pkg != "" {
			b.Name = pkg + "." + b.Name
		}
		lines = append(lines, b)
	}
	return lines
}
