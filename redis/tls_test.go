package redis

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/socketio"
)

// TestTLS: rediss:// to a real Redis serving TLS (a redis-server this test
// starts on a free port, with a certificate it makes), with AUTH.
func TestTLS(t *testing.T) {
	redisURL(t) // -short skips
	rs := testcert.RedisTLS(t, "s3cret")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rs.CertPEM)
	url := "rediss://default:s3cret@" + rs.Addr
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
