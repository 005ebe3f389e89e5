package adaptertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/socketio"
	"github.com/sessiongate/sessiongate/socketio/adaptertest"
)

// The in-memory adapter is a cluster of one.
func TestMemoryAdapter(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T, n int) []*socketio.Server {
		srv := socketio.NewServer(socketio.Options{})
		t.Cleanup(func() { srv.Close() })
		return []*socketio.Server{srv}
	}, 1)
}

func TestAwaitServers(t *testing.T) {
	srv := socketio.NewServer(socketio.Options{})
	t.Cleanup(func() { srv.Close() })
	if err := adaptertest.AwaitServers(t.Context(), []*socketio.Server{srv}, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if err := adaptertest.AwaitServers(ctx, []*socketio.Server{srv}, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AwaitServers(2) = %v, want the deadline", err)
	}
}
