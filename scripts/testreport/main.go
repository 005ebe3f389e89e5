// Command testreport reads `go test -json` on stdin and prints what a plain
// `go test` prints (a line per package, the output of failed tests), then
// every skipped test with its reason, so that a skip is never silent.
// It exits 1 when a test or package failed.
//
//	go test -json ./... | go run ./scripts/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ pkg, test string }

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// report copies the summary of the events on r to w and reports whether
// anything failed.
func report(r io.Reader, w io.Writer) (failed bool, err error) {
	output := map[key][]string{}  // buffered until the test or package ends
	started := map[string][]key{} // each package's tests, in the order they wrote
	var skipped []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintf(w, "%s\n", line) // not an event: go's own message
			continue
		}
		k := key{ev.Package, ev.Test}
		switch ev.Action {
		case "build-output":
			fmt.Fprint(w, ev.Output)
		case "output":
			if _, ok := output[k]; !ok && ev.Test != "" {
				started[ev.Package] = append(started[ev.Package], k)
			}
			output[k] = append(output[k], ev.Output)
		case "skip":
			if ev.Test != "" {
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", ev.Package, ev.Test, reason(output[k])))
			}
			delete(output, k)
		case "fail":
			failed = true
			if ev.Test == "" {
				// Tests that never ended (a panic, a timeout) come first.
				for _, tk := range started[ev.Package] {
					fmt.Fprint(w, strings.Join(output[tk], ""))
					delete(output, tk)
				}
				delete(started, ev.Package)
			}
			fmt.Fprint(w, strings.Join(output[k], ""))
			delete(output, k)
		case "pass":
			if ev.Test == "" {
				delete(started, ev.Package)
				// The package's own lines: "ok  \tpkg\t1.2s" and the like.
				for _, l := range output[k] {
					if !strings.HasPrefix(l, "PASS") && !strings.HasPrefix(l, "=== ") {
						fmt.Fprint(w, l)
					}
				}
			}
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		return failed, fmt.Errorf("read go test -json: %w", err)
	}
	if len(skipped) == 0 {
		fmt.Fprintln(w, "testreport: no test skipped")
	} else {
		fmt.Fprintf(w, "testreport: %d tests skipped:\n", len(skipped))
		for _, s := range skipped {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	return failed, nil
}

// reason returns a skipped test's message: its output less go test's own
// "=== RUN" and "--- SKIP" lines.
func reason(lines []string) string {
	var msg []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		msg = append(msg, l)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " / ")
}
