// Package e2e runs the browser end-to-end test of the demo: the real
// binary, built here, serves `--demo`, and demo.e2e.mjs drives Chromium
// through sign-in, a live incident and logout.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/nodetest"
)

const (
	demoEmail    = "alice@example.com"
	demoPassword = "e2e demo password"
)

// requireFile fails (CI=true) or skips the test when path is missing.
func requireFile(t *testing.T, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	msg := fmt.Sprintf("e2e: %s is missing: %s", path, hint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestDemoInBrowser(t *testing.T) {
	root := nodetest.Root()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	requireFile(t, chromium, "install Chromium (apt-get install chromium) or set CHROMIUM")
	requireFile(t, filepath.Join(root, "web/static/vendor/socket.io-client.esm.min.js"), "run `bash web/build.sh`")
	nodetest.Require(t, "test/e2e")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "sessiongate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sessiongate")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	base, stop := startDemo(t, ctx, bin)
	waitReady(t, ctx, base)

	e2e := nodetest.Command(t, "test/e2e", "demo.e2e.mjs")
	e2e.Env = append(os.Environ(),
		"BASE_URL="+base, "DEMO_EMAIL="+demoEmail, "DEMO_PASSWORD="+demoPassword, "CHROMIUM="+chromium)
	e2e.Stdout = logWriter{t, "e2e"}
	if err := e2e.Run(); err != nil {
		t.Errorf("demo.e2e.mjs: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("sessiongate after SIGTERM: %v", err)
	}
}

// startDemo starts `bin serve --demo` on a free port of 127.0.0.1 with a
// fresh DATA_DIR and returns its base URL, and a function that sends it
// SIGTERM and waits for it to exit.
func startDemo(t *testing.T, ctx context.Context, bin string) (base string, stop func() error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "serve", "--demo")
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR=127.0.0.1:0", "DATA_DIR="+t.TempDir(), "DEMO_PASSWORD="+demoPassword,
		"SHUTDOWN_TIMEOUT=10s", "LOG_LEVEL=info")
	cmd.Stderr = logWriter{t, "sessiongate"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sessiongate: %v", err)
	}
	exited := make(chan error, 1)
	stop = sync.OnceValue(func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			return errors.New("did not exit within 15 s of SIGTERM")
		}
	})
	t.Cleanup(func() { stop() })

	// The demo prints its URL once it is listening.
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`open http://localhost:(\d+)/`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Logf("sessiongate: %s", sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case p := <-port:
		return "http://127.0.0.1:" + p, stop
	case <-time.After(30 * time.Second):
		t.Fatal("sessiongate printed no demo URL within 30 s")
	}
	return "", stop
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s/readyz did not answer 200: %v", base, ctx.Err())
		}
	}
}

// logWriter sends a process's output to the test log, line by line.
type logWriter struct {
	t      *testing.T
	prefix string
}

func (w logWriter) Write(p []byte) (int, error) {
	for l := range strings.Lines(string(p)) {
		w.t.Logf("%s: %s", w.prefix, strings.TrimRight(l, "\n"))
	}
	return len(p), nil
}
