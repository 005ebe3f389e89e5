package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"7.0.15", true}, {"7.0", true}, {"7.2.4", true}, {"8.0.0", true}, {"10.1", true},
		{"6.2.14", false}, {"6", false}, {"", false}, {"7", false}, {"x.y", false},
		{"-7.0", false}, {"7.-1", false}, {"7.0-rc1", false}, {"255.255.255", true},
	} {
		if got := versionAtLeast(c.v, minVersion); got != c.want {
			t.Errorf("versionAtLeast(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

// FuzzVersionAtLeast: whatever a server reports, the check answers
// without panicking, and only for a version that starts with 7 or more.
func FuzzVersionAtLeast(f *testing.F) {
	for _, s := range []string{"7.0.15", "6.2.0", "", ".", "7..", "99999999999999999999.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if versionAtLeast(v, minVersion) && (v == "" || v[0] < '0' || v[0] > '9') {
			t.Fatalf("%q accepted", v)
		}
	})
}

// TestCheckServer: the test Redis (7.0 or later) passes; a server that
// does not answer is CodeRedis, not a version problem.
func TestCheckServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := NewStreamLog(ctx, StreamLogOptions{Options: Options{URL: redisURL(t), Key: "sgtest-version"}})
	if err != nil {
		t.Fatalf("Redis at %s: %v", redisURL(t), err)
	}
	defer l.Close()
	if err := l.CheckServer(ctx); err != nil {
		t.Fatalf("CheckServer: %v", err)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	var se *StreamLogError
	if err := l.CheckServer(done); !errors.As(err, &se) || se.Code != CodeRedis || !strings.Contains(err.Error(), "hello") {
		t.Errorf("CheckServer with a done ctx: %v, want %s", err, CodeRedis)
	}
}
