package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CodeVersion: the Redis server is older than a StreamLog needs.
const CodeVersion = "recovery_redis_version"

// minVersion is the oldest Redis a StreamLog runs on: 7.0 has XSETID's
// MAXDELETEDID and XINFO STREAM's max-deleted-entry-id, which tell a read
// that an entry it needs was trimmed.
var minVersion = [2]int{7, 0}

// CheckServer reports whether the Redis server can hold the log: Redis
// 7.0 or later (Valkey reports a Redis version too). An older or unknown
// one is a *StreamLogError with CodeVersion, so that start-up fails at
// once instead of at the first trimmed stream. It asks with HELLO without
// arguments, which the connection already needs (and an ACL already
// allows), and which a Redis older than 6.2 refuses.
func (l *StreamLog) CheckServer(ctx context.Context) error {
	ctx, cancel := l.bound(ctx)
	defer cancel()
	m, err := l.client.Do(ctx, l.client.B().Hello().Build()).AsMap()
	if err != nil {
		if ctx.Err() != nil {
			return redisErr("hello", err)
		}
		return &StreamLogError{Code: CodeVersion, Op: "hello", Err: fmt.Errorf("needs Redis %d.%d or later (HELLO: %w)", minVersion[0], minVersion[1], err)}
	}
	vm, ok := m["version"]
	v, err := vm.ToString()
	if !ok || err != nil {
		return &StreamLogError{Code: CodeVersion, Op: "hello", Err: errors.New("the server reports no version")}
	}
	if !versionAtLeast(v, minVersion) {
		return &StreamLogError{Code: CodeVersion, Op: "hello", Err: fmt.Errorf("needs Redis %d.%d or later (XSETID MAXDELETEDID), not %s", minVersion[0], minVersion[1], v)}
	}
	return nil
}

// versionAtLeast reports whether v, "major.minor[.patch…]", is at least
// min; a version that does not parse is not.
func versionAtLeast(v string, min [2]int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return false
	}
	return major > min[0] || (major == min[0] && minor >= min[1])
}
