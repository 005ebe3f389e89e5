package redis

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/socketio"
)

// TestTLS: rediss:// to a real Redis serving TLS (a redis-server this test
// starts on a free port, with a certificate it makes), with AUTH.
func TestTLS(t *testing.T) {
	redisURL(t) // -short skips
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server (Redis with TLS) is needed to test rediss://: %v", err)
	}
	dir := t.TempDir()
	certPEM, keyPEM := testcert.SelfSigned(t)
	for name, b := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", "0", "--tls-port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "cert.pem"), "--tls-key-file", filepath.Join(dir, "key.pem"),
		"--tls-ca-cert-file", filepath.Join(dir, "cert.pem"), "--tls-auth-clients", "no",
		"--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	until(t, "the TLS Redis to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	url := fmt.Sprintf("rediss://default:s3cret@127.0.0.1:%d", port)
	key := testKey()
	var srvs []*socketio.Server
	for range 2 {
		cl := newCluster(t, Options{URL: url, Key: key, TLSConfig: &tls.Config{RootCAs: pool}})
		srv := socketio.NewServer(socketio.Options{NewAdapter: cl.Adapter})
		t.Cleanup(func() { srv.Close() })
		if err := srv.Of("/").Adapter().(*Adapter).Ready(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
	}
	n, err := srvs[0].Of("/").Adapter().ServerCount(waitCtx(t))
	if err != nil || n != 2 {
		t.Fatalf("ServerCount over TLS: %d, %v", n, err)
	}
	if _, err := NewCluster(waitCtx(t), Options{URL: url}); err == nil {
		t.Error("connected without trusting the certificate")
	}
}
