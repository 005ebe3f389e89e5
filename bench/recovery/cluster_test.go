package main

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// testRedis connects to the Redis of REDIS_URL (127.0.0.1:6379); the test
// fails, naming it, when it does not answer.
func testRedis(t *testing.T) rueidis.Client {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("Redis at %s (set REDIS_URL) is needed: %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// The measure counts the stream and every other key of the run's prefix,
// and clean leaves none of them.
func TestRedisInfo(t *testing.T) {
	c := testRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "sgtest-recovery-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	rd := &redisInfo{c: c, prefix: prefix, stream: prefix + "stream"}
	t.Cleanup(func() { rd.clean(context.Background()) })
	for i := range 3 {
		if err := c.Do(ctx, c.B().Xadd().Key(rd.stream).Id("*").FieldValue().FieldValue("data", "tick "+strconv.Itoa(i)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if err := c.Do(ctx, c.B().Set().Key(prefix+"session:"+strconv.Itoa(i)).Value("saved socket").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	var res clusterResult
	if err := rd.measure(ctx, &res, 0); err != nil {
		t.Fatal(err)
	}
	if res.StreamBytes <= 0 || res.SessionKeys != 2 || res.SessionBytes <= 0 || res.UsedMemoryDelta <= 0 {
		t.Fatalf("measured %+v", res)
	}
	if err := rd.clean(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, err := rd.keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("after clean: %v, %v", keys, err)
	}
}
