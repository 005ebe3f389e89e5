// Package expressapp runs testdata/express-app — a real Express 5 +
// express-session + connect-pg-simple + passport-local app — for tests that
// prove sessiongate interoperates with it.
package expressapp

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
)

// Options configure the app; see testdata/express-app/README.md.
type Options struct {
	DatabaseURL string // may carry ?search_path=<schema> (pgtest.Schema)
	Secrets     string // comma-separated, as SESSION_SECRETS
	Table       string // connect-pg-simple's tableName; "" means "Session"
	Users       string // email:password:id,…
	HookSecret  string // HOOK_SECRET of the /hooks routes; "" refuses every hook call (401)
}

// Start runs the app, waits until it listens, and returns its base URL
// (http://127.0.0.1:<port>). The app is stopped with SIGTERM when the test
// ends; an unclean exit fails the test.
func Start(t testing.TB, opts Options) string {
	t.Helper()
	if opts.Table == "" {
		opts.Table = "Session"
	}
	cmd := nodetest.Command(t, "testdata/express-app", "server.js")
	cmd.Env = append(os.Environ(),
		"PORT=0",
		"DATABASE_URL="+opts.DatabaseURL,
		"SESSION_SECRETS="+opts.Secrets,
		"SESSION_TABLE="+opts.Table,
		"USERS="+opts.Users,
		"HOOK_SECRET="+opts.HookSecret,
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("expressapp: start: %v", err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("expressapp: exit: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("expressapp: did not exit on SIGTERM")
		}
	})

	select {
	case line := <-lines:
		var port int
		if _, err := fmt.Sscanf(line, "listening %d", &port); err != nil {
			t.Fatalf("expressapp: said %q, want \"listening <port>\"", line)
		}
		return fmt.Sprintf("http://127.0.0.1:%d", port)
	case err := <-exited:
		t.Fatalf("expressapp: exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("expressapp: did not start within 30s")
	}
	return ""
}
