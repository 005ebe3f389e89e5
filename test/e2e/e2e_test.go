// Package e2e tests the demo as a user gets it: the binary that `go install`
// puts into an empty GOBIN serves `--demo` with no Node on its PATH, and
// demo.e2e.mjs drives Chromium through sign-in, a live incident and logout,
// then through an incident room watched by two users and refused to a third.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// gobin is the GOBIN of installed, removed by TestMain; "" until then.
var gobin string

// installed runs `go install ./cmd/sessiongate` once per test binary into an
// empty GOBIN, as a user installing the module would, and returns the path
// of the binary.
var installed = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sessiongate-e2e-gobin-")
	if err != nil {
		return "", err
	}
	gobin = dir
	cmd := exec.Command("go", "install", "./cmd/sessiongate")
	cmd.Dir = nodetest.Root()
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("GOFLAGS=-mod=mod GOBIN=%s go install ./cmd/sessiongate: %w\n%s", dir, err, out)
	}
	return filepath.Join(dir, "sessiongate"), nil
})

// TestMain removes the installed binary's GOBIN after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if gobin != "" {
		os.RemoveAll(gobin)
	}
	os.Exit(code)
}

// installedBinary returns the binary from `go install`, or fails the test.
func installedBinary(t *testing.T) string {
	t.Helper()
	bin, err := installed()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// The installed binary serves the whole demo page, the client library
// included, without Node on its PATH: every file under web/static/vendor is
// served as committed.
func TestInstalledDemoWithoutNode(t *testing.T) {
	bin := installedBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, stop := startDemo(t, ctx, bin)
	waitReady(t, ctx, base)

	page := fetch(t, ctx, base+"/")
	for _, want := range []string{`<script type="importmap">`, "/assets/vendor/sessiongate-client/index.js", "/assets/vendor/socket.io-client.esm.min.js"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("GET / does not contain %q", want)
		}
	}
	vendor := filepath.Join(nodetest.Root(), "web", "static", "vendor")
	n := 0
	err := filepath.WalkDir(vendor, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(vendor, path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if got := fetch(t, ctx, base+"/assets/vendor/"+filepath.ToSlash(rel)); !bytes.Equal(got, want) {
			t.Errorf("GET /assets/vendor/%s: %d bytes, want the committed %d", rel, len(got), len(want))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("web/static/vendor: %v (generate it with `make web`)", err)
	}
	if n == 0 {
		t.Fatal("web/static/vendor holds no files: generate them with `make web` and commit them")
	}
	if err := stop(); err != nil {
		t.Errorf("sessiongate after SIGTERM: %v", err)
	}
}

func TestDemoInBrowser(t *testing.T) {
	nodetest.SkipShort(t, "Chromium and Node (test/e2e)")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("e2e: Chromium is missing (%s): run `make test` (it installs it with apt-get install chromium), or set CHROMIUM", chromium)
	}
	nodetest.Require(t, "test/e2e")
	bin := installedBinary(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base, stop := startDemo(t, ctx, bin)
	waitReady(t, ctx, base)

	e2e := nodetest.Command(t, "test/e2e", "demo.e2e.mjs")
	e2e.Env = append(os.Environ(),
		"BASE_URL="+base, "DEMO_EMAIL="+demoEmail, "DEMO_PASSWORD="+demoPassword, "CHROMIUM="+chromium,
		"WATCHER_EMAIL=carol@example.com", "OUTSIDER_EMAIL=bob@example.com")
	e2e.Stdout = logWriter{t, "e2e"}
	if err := e2e.Run(); err != nil {
		t.Errorf("demo.e2e.mjs: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("sessiongate after SIGTERM: %v", err)
	}
}

// fetch GETs url and returns its body, failing the test unless it is a 200.
func fetch(t *testing.T, ctx context.Context, url string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET %s: status %d, want 200", url, res.StatusCode)
	}
	return b
}

// startDemo starts `bin serve --demo` on a free port of 127.0.0.1 with a
// fresh DATA_DIR and a PATH of one empty folder (so no Node), and returns
// its base URL and a function that sends it SIGTERM and waits for it to exit.
func startDemo(t *testing.T, ctx context.Context, bin string) (base string, stop func() error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "serve", "--demo")
	cmd.Env = append(withoutPath(os.Environ()), "PATH="+t.TempDir(),
		"LISTEN_ADDR=127.0.0.1:0", "DATA_DIR="+t.TempDir(), "DEMO_PASSWORD="+demoPassword,
		"SHUTDOWN_TIMEOUT=10s", "LOG_LEVEL=info",
		// Carol closing her page is seen by alice a second later, not five.
		"PRESENCE_LEAVE_DELAY=1s")
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

// withoutPath returns env less its PATH.
func withoutPath(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
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
