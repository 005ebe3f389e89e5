package nodetest

import (
	"bufio"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// Run is a running Node script that prints one JSON object per line and
// may read commands on its stdin (test/interop/recovery-client.mjs).
type Run struct {
	t     testing.TB
	lines chan json.RawMessage
	stdin io.WriteCloser
}

// Start runs `node script args...` in dir (see Command) until the test
// ends.
func Start(t testing.TB, dir, script string, args ...string) *Run {
	t.Helper()
	cmd := Command(t, dir, script, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &Run{t: t, lines: make(chan json.RawMessage, 1<<16), stdin: in}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(r.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r.lines <- json.RawMessage(append([]byte(nil), sc.Bytes()...))
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		cmd.Wait()
	})
	return r
}

// Next decodes the next line into v, failing the test if none comes
// within timeout or the script exited.
func (r *Run) Next(v any, timeout time.Duration) {
	r.t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			r.t.Fatal("nodetest: the script exited")
		}
		if err := json.Unmarshal(l, v); err != nil {
			r.t.Fatalf("nodetest: the script printed %s: %v", l, err)
		}
	case <-time.After(timeout):
		r.t.Fatalf("nodetest: no line from the script in %v", timeout)
	}
}

// Send writes line to the script's stdin.
func (r *Run) Send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		r.t.Fatalf("nodetest: write to the script: %v", err)
	}
}
