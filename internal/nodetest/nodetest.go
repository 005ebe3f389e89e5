// Package nodetest runs Node.js programs from Go tests: the official
// socket.io-client and the Express fixture are real peers, not mocks.
//
// A test that needs Node fails, naming what is missing and the command that
// installs it, when node is not on PATH or a folder's npm packages are
// missing or stale (`make test` installs them: scripts/npm-deps.sh). Under
// `go test -short` such tests are skipped, and say so.
package nodetest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// StampFile is the file, inside a folder's node_modules, in which
// scripts/npm-deps.sh keeps the SHA-256 of the package-lock.json it installed.
const StampFile = ".sessiongate-lock.sha256"

// Root returns the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// SkipShort skips the test under `go test -short`, saying that it needs
// what (Node, Chromium).
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs " + what)
	}
}

// Require checks that node is on PATH and that dir (relative to the
// repository root) has its npm packages installed from its current
// package-lock.json, and returns dir's absolute path. A missing peer fails
// the test; under -short the test is skipped instead.
func Require(t testing.TB, dir string) string {
	t.Helper()
	SkipShort(t, "Node ("+dir+")")
	abs := filepath.Join(Root(), dir)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("nodetest: Node.js is not on PATH: install Node 20 or later (or run with -short to skip the Node tests)")
	}
	if err := installed(abs); err != "" {
		t.Fatalf("nodetest: npm packages of %s %s: run `make test` or `npm ci --prefix %s`", dir, err, dir)
	}
	return abs
}

// installed reports what is wrong with dir's npm install ("" if nothing):
// node_modules is missing, or its stamp names another package-lock.json.
// A node_modules without a stamp (installed by hand) is taken as it is.
func installed(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		return "are not installed"
	}
	stamp, err := os.ReadFile(filepath.Join(dir, "node_modules", StampFile))
	if err != nil {
		return ""
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return "have no package-lock.json"
	}
	sum := sha256.Sum256(lock)
	if strings.TrimSpace(string(stamp)) != hex.EncodeToString(sum[:]) {
		return "are stale (package-lock.json changed since npm ci)"
	}
	return ""
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
