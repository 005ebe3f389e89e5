package recoverytest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/recoverytest"
)

// TestMemoryLog runs the suite on a MemoryLog with a test clock.
func TestMemoryLog(t *testing.T) {
	recoverytest.Run(t, func(t *testing.T, opts recoverytest.Options) recoverytest.Log {
		var mu sync.Mutex
		now := time.Unix(1_800_000_000, 0)
		l := socketio.NewMemoryLog(socketio.MemoryLogOptions{Window: opts.Window, Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}})
		return recoverytest.Log{RecoveryLog: l, Advance: func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
		}}
	})
}
