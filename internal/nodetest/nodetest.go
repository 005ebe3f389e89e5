// Package nodetest runs Node.js programs from Go tests: the official
// socket.io-client and the Express fixture are real peers, not mocks.
//
// A directory's node_modules must have been installed (.ci/run does it with
// npm ci). When CI=true a missing install fails the test; otherwise the test
// is skipped with the command to run.
package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Root returns the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Require checks that node is on PATH and that dir (relative to the
// repository root) has its npm packages installed, and returns dir's
// absolute path.
func Require(t testing.TB, dir string) string {
	t.Helper()
	abs := filepath.Join(Root(), dir)
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not on PATH"
	} else if _, err := os.Stat(filepath.Join(abs, "node_modules")); err != nil {
		missing = "npm packages missing: run `npm ci --prefix " + dir + "`"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("nodetest: " + missing)
		}
		t.Skip("nodetest: " + missing)
	}
	return abs
}

// Command returns a command running `node script args...` in dir (relative
// to the repository root), after Require. Its stderr goes to the test log.
func Command(t testing.TB, dir, script string, args ...string) *exec.Cmd {
	t.Helper()
	abs := Require(t, dir)
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = abs
	cmd.Stderr = testWriter{t}
	return cmd
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("node: %s", p)
	return len(p), nil
}
