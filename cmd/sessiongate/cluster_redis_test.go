package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessiongate/sessiongate/internal/pgtest"
	"github.com/sessiongate/sessiongate/internal/testcert"
)

// TestClusterRedisACL: the ACL of docs/cluster.md is enough for a node and
// confines it. A Redis user made with exactly that line (for this test's
// CLUSTER_KEY, which is also the recovery stream's name) runs two nodes
// through which a publish reaches a socket on the other node (through the
// recovery stream, RECOVERY=ask); the same user may not publish on another
// channel, nor touch another key.
func TestClusterRedisACL(t *testing.T) {
	modes := clusterEnvs(t)
	env, ok := modes[ClusterRedis]
	if !ok {
		t.Fatal("CLUSTER=redis is not built in")
	}
	key := env["CLUSTER_KEY"]
	ctx := testCtx(t)
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisHost(t)}, DisableCache: true})
	if err != nil {
		t.Fatalf("Redis at %s: %v", redisHost(t), err)
	}
	var b [8]byte
	rand.Read(b[:])
	user, password := "sgacl-"+hex.EncodeToString(b[:4]), hex.EncodeToString(b[4:])+"-acl-password"
	// docs/cluster.md, "Security of the bus", with socket.io replaced by the key.
	acl := "on >" + password + " resetkeys resetchannels &" + key + "#* &" + key + "-request#* &" + key + "-response#*" +
		" ~" + key + " ~" + key + ":recovery:session:*" +
		" -@all +publish +subscribe +unsubscribe +pubsub|numsub +ping +hello +client|setname" +
		" +evalsha +eval +xadd +xread +xrange +xrevrange +xlen +xtrim +xsetid +xinfo|stream +exists +set +get +getdel +del"
	if err := admin.Do(ctx, admin.B().Arbitrary("ACL", "SETUSER", user, "reset").Args(strings.Fields(acl)...).Build()).Error(); err != nil {
		admin.Close()
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() {
		if err := admin.Do(context.Background(), admin.B().Arbitrary("ACL", "DELUSER", user).Build()).Error(); err != nil {
			t.Errorf("ACL DELUSER %s: %v", user, err)
		}
		admin.Close()
	})

	u, _ := url.Parse(testRedisURL())
	u.User = url.UserPassword(user, password)
	env = maps.Clone(env)
	env["REDIS_URL"] = u.String()
	nodes := startCluster(t, 2, env)
	cookie, room := login(t, nodes[0])
	c := startClient(t, nodes[1], cookie, "websocket")
	if l := c.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	if res, body := post(t, nodes[0]+"/api/publish", `{"to":["`+room+`"],"event":"e","data":1}`, http.Header{"Authorization": {"Bearer pk"}}); res.StatusCode != 200 {
		t.Fatalf("publish = %d %s", res.StatusCode, body)
	}
	c.expectEvent(t, "e", "1")

	confined, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisHost(t)}, Username: user, Password: password, DisableCache: true})
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	defer confined.Close()
	for name, cmd := range map[string]rueidis.Completed{
		"PUBLISH on another channel": confined.B().Publish().Channel("other#/#").Message("x").Build(),
		"PUBLISH on a longer key":    confined.B().Publish().Channel(key + "x#/#").Message("x").Build(),
		"SET":                        confined.B().Set().Key(key + "#k").Value("1").Build(),
	} {
		if err := confined.Do(ctx, cmd).Error(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s as the confined user: %v, want NOPERM", name, err)
		}
	}
}

// redisHost is the host:port of the test Redis.
func redisHost(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(testRedisURL())
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestClusterRediss: CLUSTER=redis over TLS with AUTH, as configured:
// REDIS_URL rediss://default:<password>@… and REDIS_CA_FILE naming the CA
// of the server's certificate. The test starts its own redis-server with
// TLS (a certificate it makes); two nodes on it carry a publish across, and
// without REDIS_CA_FILE start-up refuses, naming REDIS_URL, not the
// password.
func TestClusterRediss(t *testing.T) {
	const password = "tls-s3cret-password"
	rs := testcert.RedisTLS(t, password)

	env := maps.Clone(clusterEnvs(t)[ClusterRedis])
	env["REDIS_URL"] = "rediss://default:" + password + "@" + rs.Addr
	env["REDIS_CA_FILE"] = rs.CertFile
	nodes := startCluster(t, 2, env)
	cookie, room := login(t, nodes[0])
	c := startClient(t, nodes[1], cookie, "websocket")
	if l := c.next(t); l.Type != "connect" {
		t.Fatalf("client got %+v, want connect", l)
	}
	if res, body := post(t, nodes[0]+"/api/publish", `{"to":["`+room+`"],"event":"e","data":"tls"}`, http.Header{"Authorization": {"Bearer pk"}}); res.StatusCode != 200 {
		t.Fatalf("publish = %d %s", res.StatusCode, body)
	}
	c.expectEvent(t, "e", `"tls"`)

	// Not trusting the certificate: refused at start-up.
	env2 := validEnv(t)
	for k, v := range env {
		env2[k] = v
	}
	schema, dbURL := pgtest.Schema(t)
	env2["DATABASE_URL"], env2["SESSION_SCHEMA"] = dbURL, schema
	delete(env2, "REDIS_CA_FILE")
	if code, _, stderr := runCmd(t, env2, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	code, _, stderr := runCmd(t, env2, "", "serve")
	if code != 2 || !strings.HasPrefix(stderr, "sessiongate: REDIS_URL: cannot join the redis cluster: ") || strings.Contains(stderr, password) {
		t.Errorf("serve without the CA: exit %d, stderr %q; want 2 naming REDIS_URL, without the password", code, stderr)
	}
}

// deleteRedisKeys deletes what a test cluster under CLUSTER_KEY key left
// in the test Redis: its recovery stream (named key by default) and its
// saved sockets (key:recovery:session:…). It runs after the nodes stopped.
func deleteRedisKeys(t *testing.T, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisHost(t)}, DisableCache: true})
	if err != nil {
		return // the test failed for it already, if it needed Redis
	}
	defer c.Close()
	keys := []string{key}
	for cursor := uint64(0); ; {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(key+":*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Errorf("clean up Redis keys %s:*: %v", key, err)
			return
		}
		keys = append(keys, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	if err := c.Do(ctx, c.B().Del().Key(keys...).Build()).Error(); err != nil {
		t.Errorf("clean up Redis keys of %s: %v", key, err)
	}
}
