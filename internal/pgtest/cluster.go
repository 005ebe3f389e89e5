package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL server of a test's own, in a temporary data
// directory on a free loopback port: a test may stop and restart it, which
// it must never do to the shared test server. Its database "postgres"
// accepts the user postgres without a password.
type Cluster struct {
	URL string // postgres://postgres@127.0.0.1:<port>/postgres?sslmode=disable

	dir    string // data directory
	bin    string // directory of initdb and pg_ctl
	port   int
	asUser string // run the server's programs as this user ("" = as the test)
}

// NewCluster initialises and starts a cluster, and stops and removes it
// when the test ends. It needs PostgreSQL's server programs (initdb, pg_ctl:
// PG_BIN, or the newest /usr/lib/postgresql/*/bin); without them the test
// fails, naming them. PostgreSQL refuses to run as root, so
// as root its programs run as the user postgres.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := os.Getenv("PG_BIN")
	if bin == "" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		// Lexical order is numeric order for 10 and above.
		if len(dirs) > 0 {
			bin = dirs[len(dirs)-1]
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "pg_ctl")); bin == "" || err != nil {
		t.Fatal("pgtest: PostgreSQL's server programs (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin: install PostgreSQL (apt-get install postgresql) or set PG_BIN")
	}
	c := &Cluster{bin: bin}
	if os.Getuid() == 0 {
		c.asUser = "postgres"
	}
	dir, err := os.MkdirTemp("", "sessiongate-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() {
		_ = c.pgCtl("stop", "-m", "immediate", "-w")
		os.RemoveAll(c.dir)
	})
	if c.asUser != "" {
		u, err := user.Lookup(c.asUser)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	c.Start(t)
	return c
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories='' -c fsync=off", c.port)
	if err := c.pgCtl("start", "-w", "-t", "30", "-o", opts, "-l", filepath.Join(c.dir, "server.log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		t.Fatalf("pgtest: start cluster: %v\n%s", err, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL)
		if err == nil {
			conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("pgtest: cluster does not accept connections: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the cluster down the way a restart does (fast: sessions are
// terminated, then the server exits).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.pgCtl("stop", "-m", "fast", "-w", "-t", "30"); err != nil {
		t.Fatalf("pgtest: stop cluster: %v", err)
	}
}

func (c *Cluster) pgCtl(args ...string) error {
	out, err := c.run("pg_ctl", append([]string{"-D", c.dir}, args...)...)
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// run runs one of PostgreSQL's programs, as c.asUser when set.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = os.TempDir() // readable by c.asUser
	return cmd.CombinedOutput()
}
